/**
 * End-to-end x87 oracle: runs the x87-ops test guest (a table of x87
 * operations under every rounding mode and precision control, printing
 * 80-bit results and status words) under QEMU TCG, whose x87 is
 * softfloat-based, and under the soft engine, and compares the output line
 * by line. Skips when QEMU or the guest toolchain is missing.
 * Known differences of QEMU from the SDM are normalised first (see
 * oracle-normalise.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { buildGuests, GuestToolchainError } from '../../../../tests/guests/build.js';
import { normalise } from './oracle-normalise.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../..');

function run(cmd: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 64 << 20, cwd: ROOT }, (error, stdout) => {
      // Both runners exit non-zero by design (isa-debug-exit status 1).
      if (error && stdout.length === 0) reject(new Error(error.message)); else resolve(stdout);
    });
  });
}

async function qemuPresent(): Promise<boolean> {
  try { await run('qemu-system-x86_64', ['--version'], 10_000); return true; } catch { return false; }
}

void test('x87 results match QEMU TCG (softfloat) for the x87-ops table', { timeout: 600_000 }, async (t) => {
  if (!(await qemuPresent())) { t.skip('qemu-system-x86_64 is not installed'); return; }
  let guest: string;
  try {
    guest = (await buildGuests())['x87-ops'];
  } catch (e) {
    if (e instanceof GuestToolchainError) { t.skip(e.message); return; }
    throw e;
  }
  const qemu = await run('qemu-system-x86_64', ['-M', 'pc', '-nodefaults', '-display', 'none', '-serial', 'stdio',
    '-device', 'isa-debug-exit,iobase=0xf4,iosize=4', '-kernel', guest, '-accel', 'tcg'], 120_000);
  const soft = await run(process.execPath, [path.join(ROOT, 'bin/typevisor.js'), 'run', '--engine', 'soft', '--debug-exit', '--kernel', guest], 300_000);
  const q = qemu.split('\n').map((l) => l.trimEnd()).filter((l) => l.length > 0);
  const s = soft.split('\n').map((l) => l.trimEnd()).filter((l) => l.length > 0);
  assert.ok(q.includes('x87-ops done'), 'QEMU finished the table');
  assert.ok(s.includes('x87-ops done'), 'the soft engine finished the table');
  assert.equal(s.length, q.length, 'same number of lines');
  let compared = 0;
  const mismatches: string[] = [];
  for (let i = 0; i < q.length; i++) {
    const a = normalise(q[i]);
    if (a === null) continue;
    compared++;
    const b = normalise(s[i]);
    if (a !== b) mismatches.push(`qemu: ${q[i]}\nsoft: ${s[i]}`);
  }
  assert.ok(compared > 10_000, `compared ${compared} lines`);
  // Stack faults (masked): the real indefinite with IE+SF; C1 = 0 for underflow, 1 for overflow.
  assert.ok(s.includes('underflow 037f ffff:c000000000000000 0041 0'), 'stack underflow response');
  assert.ok(s.includes('overflow 037f ffff:c000000000000000 3a41 0'), 'stack overflow response');
  assert.deepEqual(mismatches.slice(0, 10), [], `${mismatches.length} of ${compared} lines differ`);
});
