/**
 * Soft CPU throughput on a tight ALU loop (add/sub/dec/jnz, 10M iterations)
 * in 64-bit mode, or (argument `memory`) a loop with a load and a store. Prints guest instructions per second for several runs and
 * the median, per CPU-second (process.cpuUsage) since the host is shared. Run: node dist/src/engines/soft/bench/mips-bench.js [iterations] [alu|memory]
 */

import { CodeCache } from '../code-cache.js';
import { Cpu, RUN_HALTED } from '../cpu.js';
import { GuestRam } from '../guest-ram.js';
import { MonotonicClock } from '../soft-engine.js';
import { identityPageTables, longModeState } from '../test-support.js';

/** Loop bodies: a register-only ALU loop and one with a load and a store per iteration. */
function program(kind: string, iterations: number): Uint8Array {
  const n = [iterations & 0xff, (iterations >> 8) & 0xff, (iterations >> 16) & 0xff, (iterations >>> 24) & 0xff];
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
