/**
 * Benchmark: the stock Debian kernel plus the default busybox initramfs,
 * booted to a shell and powered off, under typevisor's soft engine and under
 * `qemu-system-x86_64 -M microvm -accel tcg`. Wall time from process start to
 * process exit; the shell is told `poweroff -f` as soon as the guest is up.
 */

import { spawn } from 'node:child_process';
import { CLI } from '../tests/integration/harness.js';
import { QEMU_BINARY } from '../tests/guests/qemu.js';
import { READY_BANNER } from '../src/assets/initramfs.js';

export interface BootResult {
  seconds: number;
  /** Whether the guest reached its shell and powered off. */
  completed: boolean;
  /** The last console line seen (for a boot that did not complete). */
  lastLine: string;
}

function bootOnce(cmd: string, args: readonly string[], timeoutMs: number): Promise<BootResult> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let typed = false;
    let timedOut = false;
    child.stdin.on('error', () => undefined);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString('latin1');
      if (!typed && out.includes(READY_BANNER)) {
        typed = true;
        child.stdin.write('poweroff -f\n');
      }
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      const lines = out.split(/\r?\n/).filter((l) => l.trim() !== '');
      resolve({ seconds: (performance.now() - start) / 1000, completed: !timedOut && typed && status === 0, lastLine: lines.at(-1) ?? '(no output)' });
    });
  });
}

export function bootUnderSoft(kernel: string, initrd: string, timeoutMs: number): Promise<BootResult> {
  return bootOnce(process.execPath, [CLI, 'run', '--engine', 'soft', '--memory', '256M', '--kernel', kernel, '--initrd', initrd, '--append', 'console=ttyS0'], timeoutMs);
}

export function bootUnderQemuTcg(kernel: string, initrd: string, timeoutMs: number, machine: 'microvm' | 'pc' = 'microvm'): Promise<BootResult> {
  return bootOnce(QEMU_BINARY, [
    '-M', machine, '-accel', 'tcg', '-m', '256', '-nodefaults', '-no-user-config', '-display', 'none',
    '-serial', 'stdio', '-no-reboot', '-kernel', kernel, '-initrd', initrd, '-append', 'console=ttyS0',
  ], timeoutMs);
}
