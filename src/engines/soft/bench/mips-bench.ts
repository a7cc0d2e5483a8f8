/**
 * Soft CPU throughput on a tight ALU loop (add/sub/dec/jnz, 10M iterations)
 * in 64-bit mode, or (argument `memory`) a loop with a load and a store, or
 * (argument `bignum`) the multiply-subtract limb loop that dominates the Linux
 * boot (mpihelp_submul_1 of the Debian 6.1 kernel, its generic C umul_ppmm:
 * 4 IMUL r64 per limb, 38 instructions per limb, 256-limb vectors). Prints guest instructions per second for several runs and
 * the median, per CPU-second (process.cpuUsage) since the host is shared. Run: node dist/src/engines/soft/bench/mips-bench.js [iterations] [alu|memory|bignum]
 */

import { CodeCache } from '../code-cache.js';
import { Cpu, RUN_HALTED } from '../cpu.js';
import { GuestRam } from '../guest-ram.js';
import { MonotonicClock } from '../soft-engine.js';
import { identityPageTables, longModeState } from '../test-support.js';

/** Limbs per vector in the `bignum` loop (iterations are rounded to whole vectors). */
const BIGNUM_LIMBS = 256;

/** Loop bodies: a register-only ALU loop and one with a load and a store per iteration. */
function program(kind: string, iterations: number): Uint8Array {
  const n = [iterations & 0xff, (iterations >> 8) & 0xff, (iterations >> 16) & 0xff, (iterations >>> 24) & 0xff];
  if (kind === 'bignum') {
    const vectors = Math.max(1, Math.round(iterations / BIGNUM_LIMBS));
    const v = [vectors & 0xff, (vectors >> 8) & 0xff, (vectors >> 16) & 0xff, (vectors >>> 24) & 0xff];
    return new Uint8Array([
      0x41, 0xbf, ...v, // mov r15d, vectors
      0x49, 0xc7, 0xc4, 0x00, 0xff, 0xff, 0xff, // mov r12, -256
      0xbb, 0x00, 0x00, 0x20, 0x00, // mov ebx, 0x200000 (source limbs)
      0x41, 0xbb, 0x00, 0x10, 0x20, 0x00, // mov r11d, 0x201000 (destination limbs)
      0x41, 0xb9, 0x89, 0x67, 0x45, 0x23, // mov r9d, 0x23456789 (multiplier, low half)
      0x41, 0xba, 0x21, 0x43, 0x65, 0x87, // mov r10d, 0x87654321 (multiplier, high half)
      0x48, 0xbd, 0, 0, 0, 0, 1, 0, 0, 0, // movabs rbp, 1 << 32
      0x31, 0xf6, // xor esi, esi
      0x4d, 0x89, 0xe0, // 1: mov r8, r12
      // 2: the kernel's loop body, byte for byte
      0x49, 0x63, 0xc0, 0x4c, 0x29, 0xe0, 0x48, 0x8b, 0x0c, 0xc3, 0x48, 0x8d, 0x3c, 0xc5, 0x00, 0x00, 0x00, 0x00,
      0x48, 0x89, 0xca, 0x89, 0xc9, 0x48, 0xc1, 0xea, 0x20, 0x48, 0x89, 0xc8, 0x49, 0x0f, 0xaf, 0xc1,
      0x49, 0x89, 0xd5, 0x4d, 0x0f, 0xaf, 0xe9, 0x49, 0x0f, 0xaf, 0xca, 0x49, 0x0f, 0xaf, 0xd2, 0x49, 0x89, 0xc6,
      0x89, 0xc0, 0x49, 0xc1, 0xee, 0x20, 0x4c, 0x01, 0xe9, 0x4c, 0x01, 0xf1, 0x49, 0x89, 0xd6, 0x48, 0x01, 0xea,
      0x4c, 0x39, 0xe9, 0x49, 0x89, 0xcd, 0x49, 0x0f, 0x43, 0xd6, 0x48, 0x01, 0xf0, 0x49, 0xc1, 0xe5, 0x20,
      0x4c, 0x01, 0xe8, 0x48, 0x39, 0xf0, 0x40, 0x0f, 0x92, 0xc6, 0x4c, 0x01, 0xdf, 0x48, 0xc1, 0xe9, 0x20,
      0x4c, 0x8b, 0x2f, 0x40, 0x0f, 0xb6, 0xf6, 0x49, 0x29, 0xc5, 0x48, 0x11, 0xce, 0x4c, 0x89, 0x2f,
      0x48, 0x01, 0xd6, 0x41, 0x83, 0xc0, 0x01,
      0x0f, 0x85, 0x7b, 0xff, 0xff, 0xff, // jne 2b
      0x41, 0xff, 0xcf, // dec r15d
      0x0f, 0x85, 0x6f, 0xff, 0xff, 0xff, // jnz 1b
      0xf4, // hlt
    ]);
  }
  if (kind === 'memory') {
    return new Uint8Array([
      0xbe, 0x00, 0x00, 0x20, 0x00, // mov esi, 0x200000
      0xb9, ...n, // mov ecx, N
      0x48, 0x8b, 0x06, // 1: mov rax, [rsi]
      0x48, 0x01, 0xc8, // add rax, rcx
      0x48, 0x89, 0x06, // mov [rsi], rax
      0x83, 0xc6, 0x08, // add esi, 8
      0x81, 0xe6, 0xff, 0xff, 0x20, 0x00, // and esi, 0x20ffff
      0xff, 0xc9, // dec ecx
      0x75, 0xea, // jnz 1b
      0xf4, // hlt
    ]);
  }
  return new Uint8Array([
    0xb9, ...n, // mov ecx, N
    0x01, 0xd8, // 1: add eax, ebx
    0x29, 0xc2, // sub edx, eax
    0xff, 0xc9, // dec ecx
    0x75, 0xf8, // jnz 1b
    0xf4, // hlt
  ]);
}

function main(): void {
  const iterations = Number(process.argv[2] ?? 10_000_000);
  const kind = process.argv[3] ?? 'alu';
  const ram = new GuestRam(16 * 1024 * 1024);
  for (const m of identityPageTables(0x9000)) ram.guestMemory.writeBytes(m.address, m.bytes);
  const code = program(kind, iterations);
  ram.guestMemory.writeBytes(0x100000, code);
  const limbs = new Uint8Array(2 * BIGNUM_LIMBS * 8);
  for (let i = 0; i < limbs.length; i++) limbs[i] = (i * 157 + 31) & 0xff;
  ram.guestMemory.writeBytes(0x200000, limbs.subarray(0, BIGNUM_LIMBS * 8));
  ram.guestMemory.writeBytes(0x201000, limbs.subarray(BIGNUM_LIMBS * 8));
  const results: number[] = [];
  for (let round = 0; round < 5; round++) {
    const cpu = new Cpu(0, ram, new CodeCache(ram.size), null, new MonotonicClock());
    cpu.setState(longModeState(0x100000, 0x9000));
    cpu.lo[3] = 3;
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    while (cpu.run(1 << 20) !== RUN_HALTED) { /* keep going */ }
    const ms = performance.now() - t0;
    const used = process.cpuUsage(cpu0);
    const cpuMs = (used.user + used.system) / 1000;
    // CPU time, not wall time: the build machine is shared, so wall time is noisy.
    const mips = cpu.instructions / cpuMs / 1000;
    results.push(mips);
    console.log(`run ${round}: ${cpu.instructions} instructions, ${ms.toFixed(0)} ms wall, ${cpuMs.toFixed(0)} ms CPU = ${mips.toFixed(1)} MIPS (CPU time)`);
  }
  results.sort((a, b) => a - b);
  console.log(`${kind} loop median: ${results[2].toFixed(1)} MIPS per CPU-second`);
}

main();
