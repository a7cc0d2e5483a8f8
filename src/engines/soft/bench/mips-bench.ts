/**
 * Soft CPU throughput on a tight ALU loop (add/sub/dec/jnz, 10M iterations)
 * in 64-bit mode. Prints guest instructions per second for several runs and
 * the median, per CPU-second (process.cpuUsage) since the host is shared. Run: node dist/src/engines/soft/bench/mips-bench.js [iterations]
 */

import { CodeCache } from '../code-cache.js';
import { Cpu, RUN_HALTED } from '../cpu.js';
import { GuestRam } from '../guest-ram.js';
import { MonotonicClock } from '../soft-engine.js';
import { identityPageTables, longModeState } from '../test-support.js';

function main(): void {
  const iterations = Number(process.argv[2] ?? 10_000_000);
  const ram = new GuestRam(16 * 1024 * 1024);
  for (const m of identityPageTables(0x9000)) ram.guestMemory.writeBytes(m.address, m.bytes);
  const code = new Uint8Array([
    0xb9, iterations & 0xff, (iterations >> 8) & 0xff, (iterations >> 16) & 0xff, (iterations >>> 24) & 0xff, // mov ecx, N
    0x01, 0xd8, // 1: add eax, ebx
    0x29, 0xc2, // sub edx, eax
    0xff, 0xc9, // dec ecx
    0x75, 0xf8, // jnz 1b
    0xf4, // hlt
  ]);
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
  console.log(`median: ${results[2].toFixed(1)} MIPS per CPU-second`);
}

main();
