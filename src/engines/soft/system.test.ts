/**
 * System instructions of the soft CPU: CPUID contents, MSR reads and writes
 * (with #GP for bad values and unknown MSRs), SWAPGS, LAR/LSL/VERR, RDTSC and
 * RDTSCP, and SYSENTER/SYSEXIT between ring 0 and ring 3.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ASM_IDT_MACROS, ASM_STORE_MACRO, assemble, identityPageTables, longModeState, softRunner } from './test-support.js';

void test('CPUID, MSRs, SWAPGS, LAR/LSL/VERR, RDTSCP and SYSENTER/SYSEXIT', async () => {
  const code = assemble(`${ASM_IDT_MACROS}
.macro st r
    mov [r13], \\r
    add r13, 8
.endm
    mov r13, 0x200000
    gate 13, gp
    load_idt
    xor eax, eax
    cpuid
    st rbx
    st rdx
    st rcx
    mov eax, 1
    cpuid
    st rcx
    st rdx
    mov eax, 0x15
    cpuid
    st rcx
    mov eax, 0x40000000
    cpuid
    st rbx
    mov ecx, 0xc0000081
    mov eax, 0x11111111
    mov edx, 0x00230010
    wrmsr
    xor eax, eax
    xor edx, edx
    rdmsr
    st rax
    st rdx
    lea r15, [rip + r1]
    mov ecx, 0x277
    mov eax, 0x02020202
    xor edx, edx
    wrmsr
  r1:
    lea r15, [rip + r2]
    mov ecx, 0x12345
    rdmsr
  r2:
    mov ecx, 0xc0000102
    mov eax, 0x1000
    xor edx, edx
    wrmsr
    mov ecx, 0xc0000101
    mov eax, 0x2000
    wrmsr
    swapgs
    rdmsr
    st rax
    mov ax, 0x10
    lar ebx, ax
    st rbx
    lsl ebx, ax
    st rbx
    verr ax
    setz bl
    movzx ebx, bl
    st rbx
    mov ecx, 0xc0000103
    mov eax, 7
    xor edx, edx
    wrmsr
    rdtscp
    st rcx
    mov ecx, 0x174
    mov eax, 8
    xor edx, edx
    wrmsr
    mov ecx, 0x175
    mov eax, 0x90000
    wrmsr
    mov ecx, 0x176
    lea rax, [rip + sysenter_entry]
    mov rdx, rax
    shr rdx, 32
    wrmsr
    lea rdx, [rip + user]
    mov rcx, 0x70000
    .byte 0x48, 0x0f, 0x35
  user:
    mov ax, cs
    movzx eax, ax
    st rax
    st rsp
    sysenter
  sysenter_entry:
    mov ax, cs
    movzx eax, ax
    st rax
    st rsp
    out 0xf4, al
  gp:
    pop rax
    st rax
    mov [rsp], r15
    iretq
  `, 64);
  const r = await softRunner({ code, loadAddress: 0x100000, state: longModeState(0x100000, 0x9000), memory: identityPageTables(0x9000) });
  assert.equal(r.exit.kind, 'debug-exit', JSON.stringify(r.exit));
  const n = (Number(r.state.gpr.r13) - 0x200000) / 8;
  const dv = new DataView(r.readMemory(0x200000, n * 8).buffer);
  const v = Array.from({ length: n }, (_, i) => Number(dv.getBigUint64(i * 8, true)));
  const text = (x: number): string => String.fromCharCode(x & 0xff, (x >> 8) & 0xff, (x >> 16) & 0xff, (x >>> 24) & 0xff);
  assert.equal(text(v[0]) + text(v[1]) + text(v[2]), 'GenuineIntel');
  assert.ok((v[3] & 0x80000000) !== 0, 'hypervisor bit');
  assert.ok((v[3] & (1 << 24)) !== 0, 'TSC-deadline timer advertised (there is a local APIC)');
  assert.equal(v[4] & 1, 1, 'x87 FPU advertised');
  assert.equal(v[4] & (7 << 24), 7 << 24, 'FXSR, SSE, SSE2 advertised (sse/)');
  assert.equal(v[4] & (1 << 23), 1 << 23, 'MMX advertised (sse/mmx.ts)');
  assert.ok((v[4] & (1 << 15)) !== 0 && (v[4] & (1 << 8)) !== 0 && (v[4] & (1 << 6)) !== 0, 'CMOV, CX8, PAE');
  assert.equal(v[5], 1_000_000_000, 'CPUID 0x15 crystal = TSC Hz');
  assert.equal(text(v[6]), 'Type');
  assert.deepEqual([v[7], v[8]], [0x11111111, 0x00230010], 'STAR round trip');
  assert.deepEqual([v[9], v[10]], [0, 0], 'invalid PAT and unknown MSR raise #GP(0)');
  assert.equal(v[11], 0x1000, 'SWAPGS exchanged GS base and KERNEL_GS_BASE');
  assert.equal(v[12], 0x00c09300, 'LAR of the flat data segment (accessed: IRETQ loaded SS)');
  assert.equal(v[13], 0xffffffff, 'LSL');
  assert.equal(v[14], 1, 'VERR');
  assert.equal(v[15], 7, 'RDTSCP returns TSC_AUX in ECX');
  assert.deepEqual([v[16], v[17]], [0x2b, 0x70000], 'SYSEXIT (64-bit) to ring 3');
  assert.deepEqual([v[18], v[19]], [0x8, 0x90000], 'SYSENTER back to ring 0');
});

void test('IA32_MISC_ENABLE keeps XD Bit Disable (bit 34), which hides NX and excludes EFER.NXE; IA32_MCG_CAP reads 0 banks', async () => {
  const code = assemble(`${ASM_IDT_MACROS}${ASM_STORE_MACRO}
    mov r13, 0x200000
    gate 13, gp
    load_idt
    mov ecx, 0x179
    mov eax, 0x55
    mov edx, 0x55
    rdmsr
    st rax
    st rdx
    lea r15, [rip + 1f]
    mov ecx, 0x1a0
    mov eax, 1
    mov edx, 4
    wrmsr
    mov rax, 0xaa
    st rax
  1:
    mov ecx, 0xc0000080
    rdmsr
    and eax, ~0x800
    wrmsr
    mov ecx, 0x1a0
    mov eax, 1
    mov edx, 4
    wrmsr
    xor eax, eax
    xor edx, edx
    rdmsr
    st rax
    st rdx
    mov eax, 0x80000001
    cpuid
    st rdx
    lea r15, [rip + 2f]
    mov ecx, 0xc0000080
    rdmsr
    or eax, 0x800
    wrmsr
    mov rax, 0xbb
    st rax
  2:
    out 0xf4, al
  gp:
    pop rax
    mov rax, 0x6d
    st rax
    mov [rsp], r15
    iretq
  `, 64);
  const r = await softRunner({ code, loadAddress: 0x100000, state: longModeState(0x100000, 0x9000), memory: identityPageTables(0x9000) });
  assert.equal(r.exit.kind, 'debug-exit', JSON.stringify(r.exit));
  const n = (Number(r.state.gpr.r13) - 0x200000) / 8;
  const dv = new DataView(r.readMemory(0x200000, n * 8).buffer);
  const v = Array.from({ length: n }, (_, i) => dv.getBigUint64(i * 8, true));
  assert.deepEqual(v.slice(0, 3), [0n, 0n, 0x6dn], 'MCG_CAP = 0; XD disable with EFER.NXE set is #GP');
  assert.deepEqual(v.slice(3, 5), [1n, 4n], 'MISC_ENABLE reads back bit 34');
  assert.equal(v[5] & (1n << 20n), 0n, 'CPUID.80000001:EDX.NX hidden');
  assert.equal(v[6], 0x6dn, 'EFER.NXE is reserved while XD is disabled');
  assert.equal(v.length, 7);
});

void test('CPUID.1:EDX.APIC is clear while IA32_APIC_BASE.EN is clear (a globally disabled APIC)', async () => {
  const code = assemble(`${ASM_STORE_MACRO}
    mov r13, 0x200000
    mov eax, 1
    cpuid
    st rdx
    mov ecx, 0x1b
    rdmsr
    mov r12d, eax
    and eax, ~0x800
    wrmsr
    mov eax, 1
    cpuid
    st rdx
    mov ecx, 0x1b
    mov eax, r12d
    xor edx, edx
    wrmsr
    mov eax, 1
    cpuid
    st rdx
    out 0xf4, al
  `, 64);
  const r = await softRunner({ code, loadAddress: 0x100000, state: longModeState(0x100000, 0x9000), memory: identityPageTables(0x9000) });
  assert.equal(r.exit.kind, 'debug-exit', JSON.stringify(r.exit));
  const dv = new DataView(r.readMemory(0x200000, 24).buffer);
  const apicBit = (i: number): number => (dv.getUint32(i * 8, true) >>> 9) & 1;
  assert.deepEqual([apicBit(0), apicBit(1), apicBit(2)], [1, 0, 1]);
});

void test('CPUID.1:ECX advertises x2APIC when the vCPU has a local APIC (its x2APIC mode: platform/local-apic.test.ts)', async () => {
  const code = assemble(`${ASM_STORE_MACRO}
    mov r13, 0x200000
    mov eax, 1
    cpuid
    st rcx
    out 0xf4, al
  `, 64);
  const r = await softRunner({ code, loadAddress: 0x100000, state: longModeState(0x100000, 0x9000), memory: identityPageTables(0x9000) });
  assert.equal(r.exit.kind, 'debug-exit', JSON.stringify(r.exit));
  const dv = new DataView(r.readMemory(0x200000, 8).buffer);
  assert.equal((dv.getUint32(0, true) >>> 21) & 1, 1, 'x2APIC in CPUID.1:ECX');
});
