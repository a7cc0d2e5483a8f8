/**
 * The stock Debian 6.1 cloud kernel booted by `typevisor run --engine soft`
 * (the kernel and busybox initramfs come from the test cache that
 * `node dist/tests/setup.js` fills). One boot; each test asserts a milestone
 * of it, in boot order, and reports when the console reached it. The shell
 * test types `uname -a`, reads /proc/cpuinfo, hashes 1 MiB of zeros and
 * powers off with `poweroff -f`, which must end typevisor with status 0.
 */

import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { testCacheDirectory } from '../../src/assets/cache.js';
import { listDefaultGuests, type DefaultGuest } from '../../src/assets/default-guest.js';
import { READY_BANNER } from '../../src/assets/initramfs.js';
import { CLI } from './harness.js';

/** Whole boot budget: the soft CPU runs the kernel at a few guest MIPS on a shared host. */
const BOOT_TIMEOUT_MS = 900_000;
/** Give up when the console stays silent this long (the guest is halted or spinning). The kernel prints nothing during its crypto self-tests, about two thirds of the boot under soft (measured with the RIP profiler), which a loaded host stretches 3-5x. */
const SILENCE_MS = 300_000;

/** Console lines that end the boot early: the kernel stopped for good. */
const TERMINAL = [/x86\/fpu: Giving up, no FPU found/, /Kernel panic - not syncing/, /reboot: Power down/];

/** Milestones in boot order, each with the console text that proves it. */
const MILESTONES = {
  banner: /Linux version 6\.1\.\d+-\d+-cloud-amd64/,
  tsc: /tsc: Detected 1000\.000 MHz processor/,
  acpiTables: /ACPI: APIC 0x[0-9A-F]+ /,
  acpiCore: /ACPI: Core revision \d+/,
  ioapicTimer: /\.\.TIMER: vector=0x30 apic1=0 pin1=2/,
  delayLoop: /Calibrating delay loop \(skipped\), value calculated using timer frequency/,
  fpu: /x86\/fpu: x87 FPU will use FXSAVE/,
  freeingInit: /Freeing unused kernel image/,
  init: /Run \/init as init process/,
  shell: new RegExp(READY_BANNER),
} as const;
type Milestone = keyof typeof MILESTONES;

interface Boot {
  output: string;
  status: number | null;
  /** Wall milliseconds from spawn to the first console line matching each milestone. */
  reached: Partial<Record<Milestone, number>>;
  /** Why the boot ended: 'exit', 'terminal line', 'silence' or 'timeout'. */
  ended: string;
}

const SHELL_COMMANDS = [
  'uname -a',
  'grep -c ^processor /proc/cpuinfo',
  'grep -m1 "model name" /proc/cpuinfo',
  'dd if=/dev/zero bs=1k count=1024 2>/dev/null | sha256sum',
  'poweroff -f',
].join('\n') + '\n';

function bootDebian(kernel: string, initrd: string): Promise<Boot> {
  return new Promise((resolve) => {
    const start = performance.now();
    const child = spawn(process.execPath, [CLI, 'run', '--engine', 'soft', '--kernel', kernel, '--initrd', initrd, '--append', 'console=ttyS0'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const boot: Boot = { output: '', status: null, reached: {}, ended: 'exit' };
    let typed = false;
    let silence: ReturnType<typeof setTimeout> | undefined;
    const stop = (why: string): void => {
      boot.ended = why;
      child.kill('SIGKILL');
    };
    const armSilence = (): void => {
      clearTimeout(silence);
      silence = setTimeout(() => stop('silence'), SILENCE_MS);
    };
    const overall = setTimeout(() => stop('timeout'), BOOT_TIMEOUT_MS);
    armSilence();
    const onData = (d: string): void => {
      boot.output += d;
      armSilence();
      for (const [name, re] of Object.entries(MILESTONES) as [Milestone, RegExp][]) {
        if (boot.reached[name] === undefined && re.test(boot.output)) boot.reached[name] = performance.now() - start;
      }
      if (!typed && boot.reached.shell !== undefined) {
        typed = true;
        child.stdin.write(SHELL_COMMANDS);
      }
      if (TERMINAL.some((re) => re.test(boot.output)) && boot.ended === 'exit') {
        // Let the kernel print the rest of its message, then stop.
        setTimeout(() => { if (child.exitCode === null) stop('terminal line'); }, 3000);
      }
    };
    child.stdout.setEncoding('latin1').on('data', onData);
    child.stderr.setEncoding('latin1').on('data', (d: string) => { boot.output += d; });
    child.on('close', (status) => {
      clearTimeout(overall);
      clearTimeout(silence);
      boot.status = status;
      resolve(boot);
    });
  });
}

process.env.TYPEVISOR_CACHE = testCacheDirectory();
const guest: DefaultGuest | undefined = listDefaultGuests().at(0);

describe('Debian 6.1 cloud kernel under --engine soft', {
  skip: guest === undefined ? `no Debian guest in the test cache ${testCacheDirectory()} (run: node dist/tests/setup.js)` : false,
  timeout: BOOT_TIMEOUT_MS + 60_000,
}, () => {
  let boot: Boot;
  before(async () => {
    boot = await bootDebian(guest!.kernelPath, guest!.initrdPath);
  }, { timeout: BOOT_TIMEOUT_MS + 30_000 });

  const tail = (): string => boot.output.split('\n').slice(-25).join('\n');
  const expectMilestone = (name: Milestone, t: { diagnostic(message: string): void }): void => {
    const at = boot.reached[name];
    assert.ok(at !== undefined, `milestone ${name} (${MILESTONES[name].source}) not reached (boot ended by ${boot.ended}); last console lines:\n${tail()}`);
    // The kernel's own timestamp on that line (guest time; console output before
    // "printk: console [ttyS0] enabled" is replayed late, so wall times bunch up there).
    const line = boot.output.split('\n').find((l) => MILESTONES[name].test(l)) ?? '';
    const stamp = /^\[\s*(\d+\.\d+)\]/.exec(line)?.[1];
    t.diagnostic(`${name}: console after ${(at / 1000).toFixed(1)} s wall${stamp !== undefined ? `, kernel time ${stamp} s` : ''}`);
  };

  test('the kernel starts: banner, TSC frequency from CPUID, our ACPI tables', (t) => {
    expectMilestone('banner', t);
    expectMilestone('tsc', t);
    expectMilestone('acpiTables', t);
    assert.doesNotMatch(boot.output, /ACPI (Error|BIOS Error|Exception)/, 'the kernel accepts our ACPI tables');
  });

  test('platform bring-up: ACPI core, IOAPIC timer through pin 2, delay loop from the timer frequency', (t) => {
    expectMilestone('acpiCore', t);
    expectMilestone('ioapicTimer', t);
    expectMilestone('delayLoop', t);
    assert.doesNotMatch(boot.output, /Marking TSC unstable/, 'the TSC stays the clocksource (invariant TSC, TSC_ADJUST)');
  });

  test('shell: uname, /proc/cpuinfo, sha256sum of 1 MiB, poweroff -f exits 0', (t) => {
    expectMilestone('fpu', t);
    expectMilestone('freeingInit', t);
    expectMilestone('init', t);
    expectMilestone('shell', t);
    assert.match(boot.output, /Linux \S+ 6\.1\.\d+-\d+-cloud-amd64 #1 SMP PREEMPT_DYNAMIC Debian \S+ \(\d{4}-\d\d-\d\d\) x86_64 GNU\/Linux/);
    assert.match(boot.output, /^1\r?$/m, 'one processor in /proc/cpuinfo');
    assert.match(boot.output, /model name\s*: typevisor soft x86-64 interpreter/);
    const zeros = createHash('sha256').update(Buffer.alloc(1024 * 1024)).digest('hex');
    assert.match(boot.output, new RegExp(`${zeros}\\s+-`), 'sha256sum of 1 MiB of zeros, as the host computes it');
    assert.equal(boot.status, 0, `poweroff -f: exit status ${boot.status}; ended by ${boot.ended}`);
    t.diagnostic(`shell session:\n${boot.output.slice(boot.output.indexOf(READY_BANNER))}`);
  });
});
