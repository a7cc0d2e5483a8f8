/**
 * Regression tests for bugs found while booting the Debian 6.1 kernel on the
 * soft CPU: each test is a small program reproducing one instruction sequence
 * Linux executes, with the result checked against the architecture.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assemble, identityPageTables, longModeState, softRunner } from './test-support.js';

/** Runs a 64-bit program at 0x100000 (identity-mapped first GiB) that ends with `out 0xf4, al`; returns final state and memory reader. */
async function run64(source: string): Promise<Awaited<ReturnType<typeof softRunner>>> {
  const code = assemble(source + '\n    out 0xf4, al\n', 64, 0x100000);
  const r = await softRunner({ code, loadAddress: 0x100000, state: longModeState(0x100000, 0x9000), memory: identityPageTables(0x9000) });
  assert.equal(r.exit.kind, 'debug-exit', JSON.stringify(r.exit));
  return r;
}

void test('Linux startup_64_setup_env: lea/sub of a kernel-virtual address, store the GDT base, LGDT', async () => {
  const r = await run64(`
    mov rdi, 0x100000
    lea rax, [rdi - 0x7d5e5fc0]
    sub rax, -0x7f000000
    mov rbx, 0x200032
    mov [rbx], rax
    mov word ptr [rbx - 2], 0x7f
    lgdt [rbx - 2]
    sgdt [rbx + 0x100 - 2]
    mov rcx, [rbx + 0x100]
  `);
  const expected = 0x100000 + 0x82a1a040 - 0x81000000;
  assert.equal(r.state.gpr.rax, BigInt(expected), 'lea + sub imm32');
  assert.equal(r.state.gpr.rcx, BigInt(expected), 'LGDT base read back with SGDT');
});

void test('64-bit kernel addresses keep their low bits: LEA, RDMSR of LSTAR', async () => {
  const r = await run64(`
    mov rdi, 0x1000000
    lea rbx, [rdi - 0x7d5e5fc1]
    mov ecx, 0xc0000082
    mov eax, 0x81a00123
    mov edx, 0xffffffff
    wrmsr
    xor eax, eax
    xor edx, edx
    rdmsr
    shl rdx, 32
    or rax, rdx
  `);
  assert.equal(r.state.gpr.rbx, 0xffffffff83a1a03fn, 'LEA with a negative 64-bit result');
  assert.equal(r.state.gpr.rax, 0xffffffff81a00123n, 'RDMSR LSTAR');
});

void test('4-level paging: the PDPT index uses linear-address bits above bit 31 (kernel mapping at -2 GiB)', async () => {
  // Map 0xffffffff80000000 (PML4[511], PDPT[510]) and 0x0000000080000000 (PDPT[2]) to different 2 MiB pages.
  const r = await run64(`
    mov rbx, 0x9000
    mov qword ptr [rbx + 511 * 8], 0x20000 | 3
    mov qword ptr [rbx + 0x1000 + 2 * 8], 0x21000 | 3
    mov qword ptr [0x20000 + 510 * 8], 0x22000 | 3
    mov qword ptr [0x21000], 0x400000 | 0x83
    mov qword ptr [0x22000], 0x600000 | 0x83
    mov qword ptr [0x400000], 0x1111
    mov qword ptr [0x600000], 0x2222
    mov rax, cr3
    mov cr3, rax
    mov rcx, 0xffffffff80000000
    mov rax, [rcx]
    mov ecx, 0x80000000
    mov rdx, [rcx]
  `);
  assert.equal(r.state.gpr.rax, 0x2222n, 'PML4[511] / PDPT[510] mapping');
  assert.equal(r.state.gpr.rdx, 0x1111n, 'PDPT[2] mapping');
});

void test('invariant TSC with IA32_TSC_ADJUST (lets Linux skip the TSC clocksource watchdog)', async () => {
  const r = await run64(`
    mov eax, 7
    xor ecx, ecx
    cpuid
    mov r8, rbx
    mov eax, 0x80000007
    cpuid
    mov r9, rdx
    mov ecx, 0x3b
    rdmsr
    mov r10, rax
    rdtsc
    shl rdx, 32
    or rdx, rax
    mov r11, rdx
    mov ecx, 0x3b
    mov eax, 0
    mov edx, 0x100
    wrmsr
    rdtsc
    shl rdx, 32
    or rdx, rax
    sub rdx, r11
    mov r12, rdx
    mov ecx, 0x10
    xor eax, eax
    xor edx, edx
    wrmsr
    mov ecx, 0x3b
    rdmsr
    shl rdx, 32
    or rax, rdx
    mov r13, rax
  `);
  assert.equal(r.state.gpr.r8 & 2n, 2n, 'CPUID.7.0:EBX.TSC_ADJUST');
  assert.equal(r.state.gpr.r9 & 0x100n, 0x100n, 'CPUID.80000007:EDX invariant TSC');
  assert.equal(r.state.gpr.r10, 0n, 'TSC_ADJUST starts at 0');
  const jump = r.state.gpr.r12;
  assert.ok(jump >= 0x100_0000_0000n && jump < 0x100_0000_0000n + 1_000_000_000n, `writing TSC_ADJUST moves the TSC by the change (moved ${jump})`);
  // Writing TSC = 0 moves TSC_ADJUST by (0 - TSC): it becomes about -(elapsed time), the 2^40 cancels out.
  const adj = BigInt.asIntN(64, r.state.gpr.r13);
  assert.ok(adj < 0n && adj > -10_000_000_000n, `TSC_ADJUST after writing TSC: ${adj}`);
});
