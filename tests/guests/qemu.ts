/**
 * Runs a test guest under QEMU (qemu-system-x86_64, TCG by default) as an
 * oracle: same guest, same flags as typevisor's test harness (COM1 on stdio,
 * isa-debug-exit at 0xf4), so tests and benchmarks can compare both.
 */
import { spawn } from 'node:child_process';

/** qemu-system-x86_64 is not installed (or not on PATH). Tests skip with this message. */
export class QemuUnavailableError extends Error {
  override name = 'QemuUnavailableError';
}

export interface QemuRunOptions {
  /** Kernel command line (-append). Multiboot guests see "<guest path> <append>". */
  append?: string;
  /** Number of CPUs (-smp). Default 1. */
  smp?: number;
  /** Bytes written to the serial port's input (the process stdin) at start. */
  stdin?: string | Uint8Array;
  /** Bytes written to the serial input once the output contains `match`. */
  reply?: { match: string; send: string | Uint8Array };
  /** Guest RAM in MiB (-m). Default 128. */
  memoryMiB?: number;
  /** 'tcg' (default) or 'kvm'. */
  accel?: 'tcg' | 'kvm';
  /** Pass -no-reboot: a guest reset ends QEMU (status 0) instead of restarting. */
  noReboot?: boolean;
  /** Kill QEMU after this many milliseconds. Default 60000. */
  timeoutMs?: number;
  /** Extra QEMU arguments, appended last. */
  extraArgs?: readonly string[];
}

export interface QemuRunResult {
  /** QEMU's exit status: (v << 1) | 1 after the guest wrote v to isa-debug-exit; null if killed. */
  status: number | null;
  /** Serial output with "\r\n" turned into "\n". */
  output: string;
  /** QEMU's own stderr (warnings, errors). */
  stderr: string;
  /** True when the run was killed at timeoutMs. */
  timedOut: boolean;
  /** The full QEMU command line, for logs. */
  command: string;
}

export const QEMU_BINARY = 'qemu-system-x86_64';

/** The QEMU arguments used for `guestPath`, e.g. for printing a reproducible command line. */
export function qemuArgs(guestPath: string, options: QemuRunOptions = {}): string[] {
  const args = [
    '-M', 'pc', '-nodefaults', '-display', 'none', '-serial', 'stdio',
    '-device', 'isa-debug-exit,iobase=0xf4,iosize=4',
    '-accel', options.accel ?? 'tcg',
    '-m', String(options.memoryMiB ?? 128),
    '-smp', String(options.smp ?? 1),
    '-kernel', guestPath,
  ];
  if (options.append !== undefined) args.push('-append', options.append);
  if (options.noReboot) args.push('-no-reboot');
  if (options.extraArgs) args.push(...options.extraArgs);
  return args;
}

let availability: Promise<boolean> | undefined;

/** True if qemu-system-x86_64 can be started. Cached per process. */
export function qemuAvailable(): Promise<boolean> {
  availability ??= new Promise((resolve) => {
    const child = spawn(QEMU_BINARY, ['--version'], { stdio: 'ignore' });
    child.on('error', () => resolve(false));
    child.on('exit', (code) => resolve(code === 0));
  });
  return availability;
}

/**
 * Boots `guestPath` under QEMU and collects its serial output and exit status.
 * Rejects with QemuUnavailableError when QEMU is not installed.
 */
export function runUnderQemu(guestPath: string, options: QemuRunOptions = {}): Promise<QemuRunResult> {
  const args = qemuArgs(guestPath, options);
  const command = [QEMU_BINARY, ...args].map((a) => (/[\s"']/.test(a) ? JSON.stringify(a) : a)).join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn(QEMU_BINARY, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let replied = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs ?? 60000);

    child.stdin.on('error', () => {
      /* QEMU may exit before reading its input; that is not an error here. */
    });
    if (options.stdin !== undefined) child.stdin.write(options.stdin);
    if (!options.reply) child.stdin.end();

    child.stdout.setEncoding('latin1');
    child.stdout.on('data', (chunk: string) => {
      stdout += chunk;
      if (options.reply && !replied && stdout.includes(options.reply.match)) {
        replied = true;
        child.stdin.end(options.reply.send);
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => (stderr += chunk));

    child.on('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (error.code === 'ENOENT') {
        reject(new QemuUnavailableError(`${QEMU_BINARY} not found on PATH: the QEMU oracle is unavailable`));
      } else {
        reject(error);
      }
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ status: code, output: stdout.replace(/\r\n/g, '\n'), stderr, timedOut, command });
    });
  });
}
