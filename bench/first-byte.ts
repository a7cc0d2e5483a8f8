/**
 * Benchmark: time from starting a VMM process to the guest's first serial
 * byte, for typevisor's CLI and for QEMU with the same multiboot guest,
 * measured side by side (interleaved runs, medians).
 */

import { spawn } from 'node:child_process';
import { CLI } from '../tests/integration/harness.js';
import { qemuArgs, QEMU_BINARY } from '../tests/guests/qemu.js';

/** Milliseconds from spawn to the first byte on the child's stdout. */
export function msToFirstByte(command: string, args: readonly string[], timeoutMs = 60_000): Promise<number> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let done = false;
    const finish = (err?: Error, ms?: number): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      if (err) reject(err);
      else resolve(ms!);
    };
    const timer = setTimeout(() => finish(new Error(`${command}: no serial output within ${timeoutMs} ms`)), timeoutMs);
    child.stdout.once('data', () => finish(undefined, performance.now() - start));
    child.on('error', (e) => finish(e));
    child.on('exit', (code) => finish(new Error(`${command} exited (${code}) before printing anything`)));
  });
}

/** typevisor's CLI booting `guest` on `engine`. */
export function typevisorFirstByte(guest: string, engine: 'kvm' | 'soft'): Promise<number> {
  return msToFirstByte(process.execPath, [CLI, 'run', '--engine', engine, '--debug-exit', '--memory', '128M', '--kernel', guest]);
}

/** QEMU booting the same guest (through its firmware, as QEMU always does). */
export function qemuFirstByte(guest: string, accel: 'kvm' | 'tcg'): Promise<number> {
  return msToFirstByte(QEMU_BINARY, qemuArgs(guest, { accel, memoryMiB: 128 }));
}
