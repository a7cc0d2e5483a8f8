/**
 * SSE throughput of the soft CPU: a strlen-style loop (MOVDQA, PCMPEQB,
 * PMOVMSKB, TEST) plus packed float arithmetic (ADDPS, MULPD), 64-bit mode.
 * Prints guest instructions per CPU-second for 5 runs and the median.
 * Run: node dist/src/engines/soft/sse/sse-bench.js [iterations]. Needs binutils (assemble()).
 */

import { CodeCache } from '../code-cache.js';
import { Cpu, RUN_HALTED } from '../cpu.js';
import { GuestRam } from '../guest-ram.js';
import { MonotonicClock } from '../soft-engine.js';
import { assemble, identityPageTables, longModeState } from '../test-support.js';

function main(): void {
  const iterations = Number(process.argv[2] ?? 2_000_000);
  const ram = new GuestRam(16 * 1024 * 1024);
  for (const m of identityPageTables(0x9000)) ram.guestMemory.writeBytes(m.address, m.bytes);
  const code = assemble(`
    mov esi, 0x200000
    mov ecx, ${iterations}
    pxor xmm0, xmm0
  1:
    movdqa xmm1, [rsi]
    pcmpeqb xmm1, xmm0
    pmovmskb eax, xmm1
    test eax, eax
    addps xmm2, xmm3
    mulpd xmm4, xmm5
    add esi, 16
    and esi, 0x20ffff
    dec ecx
    jnz 1b
    hlt
  `, 64, 0x100000);
  ram.guestMemory.writeBytes(0x100000, code);
  const results: number[] = [];
  for (let round = 0; round < 5; round++) {
    const cpu = new Cpu(0, ram, new CodeCache(ram.size), null, new MonotonicClock());
    const state = longModeState(0x100000, 0x9000);
    state.cr4 |= 0x600n;
    cpu.setState(state);
    const cpu0 = process.cpuUsage();
    while (cpu.run(1 << 20) !== RUN_HALTED) { /* keep going */ }
    const used = process.cpuUsage(cpu0);
    const cpuMs = (used.user + used.system) / 1000;
    const mips = cpu.instructions / cpuMs / 1000;
    results.push(mips);
    console.log(`run ${round}: ${cpu.instructions} instructions, ${cpuMs.toFixed(0)} ms CPU = ${mips.toFixed(1)} MIPS`);
  }
  results.sort((a, b) => a - b);
  console.log(`SSE loop median: ${results[2].toFixed(1)} MIPS per CPU-second`);
}

main();
