/**
 * Benchmark: guest instructions per second on a fixed CPU-bound guest (the
 * `cpu-loop` test guest: 10 ALU instructions per iteration), under typevisor
 * and under QEMU, as whole processes. The per-instruction rate is the slope
 * between a short and a long run, so process start-up and firmware cancel out.
 */

import { spawn } from 'node:child_process';
import { CLI } from '../tests/integration/harness.js';
import { qemuArgs, QEMU_BINARY } from '../tests/guests/qemu.js';

/** Instructions per iteration of the cpu-loop guest's loop body. */
export const CPU_LOOP_INSTRUCTIONS_PER_ITERATION = 10;

/** Wall-clock seconds for a command to exit with status 1 (the guest's PASS through isa-debug-exit). */
export function timeToExit(command: string, args: readonly string[], timeoutMs = 300_000): Promise<number> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString('latin1')));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      if (status !== 1) reject(new Error(`${command} ended with status ${status}: ${out.slice(-300)}`));
      else resolve((performance.now() - start) / 1000);
    });
  });
}

export type Runner = 'soft' | 'kvm' | 'qemu-tcg';

function command(runner: Runner, guest: string, iterations: number): [string, string[]] {
  const append = `iters=${iterations}`;
  if (runner === 'qemu-tcg') return [QEMU_BINARY, qemuArgs(guest, { accel: 'tcg', memoryMiB: 64, append })];
  return [process.execPath, [CLI, 'run', '--engine', runner, '--debug-exit', '--memory', '64M', '--kernel', guest, '--append', append]];
}

/** Guest instructions per second for `runner` (one sample: a short and a long run). */
export async function instructionsPerSecond(runner: Runner, guest: string, iterations: number): Promise<number> {
  const [cmd, shortArgs] = command(runner, guest, 1000);
  const short = await timeToExit(cmd, shortArgs);
  const [, longArgs] = command(runner, guest, iterations + 1000);
  const long = await timeToExit(cmd, longArgs);
  return (iterations * CPU_LOOP_INSTRUCTIONS_PER_ITERATION) / Math.max(1e-6, long - short);
}
