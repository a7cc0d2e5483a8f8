/**
 * Page protection features of the soft CPU beyond U/S and R/W: SMEP, SMAP
 * with EFLAGS.AC and STAC/CLAC (explicit vs implicit supervisor accesses),
 * protection keys (PKRU with RDPKRU/WRPKRU, IA32_PKRS), and the TLB flushes
 * on CR4 changes and new key rights. Each fault is checked by its #PF error
 * code and CR2.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ASM_IDT_MACROS, ASM_STORE_MACRO, assemble, buildGdt, buildTss, DESCRIPTOR, longModeState, softRunner } from './test-support.js';

const PML4 = 0x9000;
const GDT = 0x310000;
const TSS = 0x320000;
/** The 2 MiB pages at 4-8 MiB are user pages; everything else in the first GiB is supervisor-only. */
const USER_DATA = 0x400000;
const USER_CODE = 0x600000;
/** A supervisor page (2 MiB) with protection key 2; USER_DATA has key 1. */
const SUPER_KEYED = 0x800000;
/** A read-only user page (2 MiB) with protection key 1. */
const USER_READ_ONLY = 0xa00000;

/** 4-level tables identity-mapping 1 GiB with 2 MiB pages; only 0x400000-0x7fffff is user-accessible; keys 1 (USER_DATA) and 2 (SUPER_KEYED). */
function protectionPageTables(): Array<{ address: number; bytes: Uint8Array }> {
  const pml4 = new Uint8Array(4096);
  const pdpt = new Uint8Array(4096);
  const pd = new Uint8Array(4096);
  new DataView(pml4.buffer).setUint32(0, (PML4 + 0x1000) | 7, true);
  new DataView(pdpt.buffer).setUint32(0, (PML4 + 0x2000) | 7, true);
  const pdv = new DataView(pd.buffer);
  for (let i = 0; i < 512; i++) pdv.setUint32(i * 8, (i * 0x200000) | (i === 2 || i === 3 ? 0x87 : i === 5 ? 0x85 : 0x83), true);
  pdv.setUint32(2 * 8 + 4, 1 << 27, true); // key 1: PTE bits 62:59
  pdv.setUint32(4 * 8 + 4, 2 << 27, true); // key 2
  pdv.setUint32(5 * 8 + 4, 1 << 27, true);
  return [{ address: PML4, bytes: pml4 }, { address: PML4 + 0x1000, bytes: pdpt }, { address: PML4 + 0x2000, bytes: pd }];
}

/** GDT: 0x08 kernel code64, 0x10 kernel data, 0x20 user data, 0x28 user code64, 0x30 TSS; and the TSS with IST1. */
function gdtAndTss(): Array<{ address: number; bytes: Uint8Array }> {
  const gdt = buildGdt(0x40, [[0x08, DESCRIPTOR.code64], [0x10, DESCRIPTOR.data], [0x20, DESCRIPTOR.userData], [0x28, DESCRIPTOR.userCode64]], { at: 0x30, base: TSS });
  return [{ address: GDT, bytes: gdt }, { address: TSS, bytes: buildTss(0x90000, 0xa0000) }];
}

/** IRETQ to ring 3 at USER_CODE (code 0x2b, stack 0x23 at USER_CODE + 1 MiB, IOPL 3). */
const IRET_TO_USER = `push 0x23
    push ${USER_CODE + 0x100000}
    push 0x3002
    push 0x2b
    push ${USER_CODE}
    iretq`;

/** Macros: `st reg` appends to r13's list; `gate vec, handler[, attr]` writes a 64-bit IDT gate; `load_idt`. */
const MACROS = `${ASM_STORE_MACRO}${ASM_IDT_MACROS}`;

/** Common prologue: IDT with #PF on IST1 (stores error code and CR2), #UD (CS, 6), #GP (error code, 13), all resuming at r15; TSS loaded. */
const PROLOGUE = `${MACROS}
    mov r13, 0x200000
    gate 14, pf, 0x8e01
    gate 6, ud_handler, 0x8e00
    gate 13, gp_handler, 0x8e00
    gate 0x40, soft40, 0x8e00
    load_idt
    mov ax, 0x30
    ltr ax
`;

const HANDLERS = `
pf:
    pop rax
    st rax
    mov rax, cr2
    st rax
    mov [rsp], r15
    iretq
soft40:
    iretq
ud_handler:
    mov rax, [rsp + 8]
    st rax
    mov rax, 6
    st rax
    mov [rsp], r15
    iretq
gp_handler:
    pop rax
    st rax
    mov rax, 13
    st rax
    mov [rsp], r15
    iretq
`;

async function run(kernel: string, user = 'out 0xf4, al', cr4Extra = 0n): Promise<{ v: bigint[]; rbx: bigint }> {
  const code = assemble(PROLOGUE + kernel + HANDLERS, 64);
  const userCode = assemble(user, 64);
  const state = longModeState(0x100000, PML4);
  state.gdt = { base: BigInt(GDT), limit: 0x3f };
  state.cr4 |= cr4Extra;
  const result = await softRunner({
    code, loadAddress: 0x100000, state,
    memory: [...protectionPageTables(), ...gdtAndTss(), { address: USER_CODE, bytes: userCode }],
  });
  assert.equal(result.exit.kind, 'debug-exit', JSON.stringify(result.exit));
  const n = (Number(result.state.gpr.r13) - 0x200000) / 8;
  const dv = new DataView(result.readMemory(0x200000, n * 8).buffer);
  return { v: Array.from({ length: n }, (_, i) => dv.getBigUint64(i * 8, true)), rbx: result.state.gpr.rbx };
}

void test('SMAP: supervisor data access to a user page faults unless AC=1; STAC/CLAC set and clear AC; implicit stack pushes fault even with AC=1', async () => {
  const { v } = await run(`
    mov rax, cr4
    or rax, 0x200000
    mov cr4, rax
    lea r15, [rip + r1]
    mov rax, qword ptr [${USER_DATA}]
r1:
    stac
    pushfq
    pop rax
    and rax, 0x40000
    st rax
    mov qword ptr [${USER_DATA + 8}], 0x1234
    mov rax, qword ptr [${USER_DATA + 8}]
    st rax
    clac
    pushfq
    pop rax
    and rax, 0x40000
    st rax
    lea r15, [rip + r2]
    mov qword ptr [${USER_DATA + 0x10}], 1
r2:
    stac
    mov r12, rsp
    mov rsp, ${USER_DATA + 0x10000}
    lea r15, [rip + r3]
    int 0x40
r3:
    mov rsp, r12
    clac
    mov rax, cr4
    and rax, ~0x200000
    mov cr4, rax
    mov rax, qword ptr [${USER_DATA + 8}]
    st rax
    mov rax, cr4
    or rax, 0x200000
    mov cr4, rax
    lea r15, [rip + r4]
    mov rax, qword ptr [${USER_DATA + 8}]
r4:
    out 0xf4, al
  `);
  const hex = v.map((x) => x.toString(16)).join(' ');
  assert.equal(v.length, 12, hex);
  assert.deepEqual(v.slice(0, 2), [1n, BigInt(USER_DATA)], 'AC=0 read: #PF(P), CR2');
  assert.equal(v[2], 0x40000n, 'STAC sets AC');
  assert.equal(v[3], 0x1234n, 'AC=1: write and read of the user page succeed');
  assert.equal(v[4], 0n, 'CLAC clears AC');
  assert.deepEqual(v.slice(5, 7), [3n, BigInt(USER_DATA + 0x10)], 'AC=0 write: #PF(P|W)');
  assert.equal(v[7], 3n, 'INT pushing onto a user-page stack with AC=1: #PF(P|W), implicit');
  assert.ok(v[8] >= BigInt(USER_DATA + 0x10000 - 40) && v[8] < BigInt(USER_DATA + 0x10000), `CR2 ${hex} in the 40-byte frame`);
  assert.equal(v[9], 0x1234n, 'CR4.SMAP cleared: the read succeeds');
  assert.deepEqual(v.slice(10, 12), [1n, BigInt(USER_DATA + 8)], 'CR4.SMAP set again: the cached mapping was flushed, #PF');
});

void test('SMEP: supervisor fetch from a user page faults with I/D; user code still reads user pages with SMAP on; STAC at CPL 3 is #UD', async () => {
  const { v, rbx } = await run(`
    mov byte ptr [${USER_DATA + 0x100}], 0xc3
    mov rax, cr4
    or rax, 0x300000
    mov cr4, rax
    lea r15, [rip + r1]
    mov rax, ${USER_DATA + 0x100}
    call rax
r1:
    add rsp, 8
    mov rax, cr4
    and rax, ~0x100000
    mov cr4, rax
    mov rax, ${USER_DATA + 0x100}
    call rax
    mov rax, 0x5e
    st rax
    stac
    mov qword ptr [${USER_DATA + 8}], 0x4321
    clac
    mov rax, cr4
    or rax, 0x100000
    mov cr4, rax
    ${IRET_TO_USER}
  `, `
    mov rbx, qword ptr [${USER_DATA + 8}]
    lea r15, [rip + done]
    stac
done:
    out 0xf4, al
  `);
  const hex = v.map((x) => x.toString(16)).join(' ');
  assert.equal(v.length, 5, hex);
  assert.deepEqual(v.slice(0, 2), [0x11n, BigInt(USER_DATA + 0x100)], 'SMEP: #PF(P|I/D), CR2 = the target');
  assert.equal(v[2], 0x5en, 'CR4.SMEP cleared: the call returns');
  assert.equal(rbx, 0x4321n, 'user-mode read of a user page with SMAP on');
  assert.deepEqual(v.slice(3, 5), [0x2bn, 6n], 'STAC at CPL 3: #UD from user CS');
});

void test('PKU and PKS: RDPKRU/WRPKRU, access- and write-disable per key on user and supervisor pages, CR0.WP, error code PK, TLB follows new rights', async () => {
  const { v, rbx } = await run(`
    lea r15, [rip + r0]
    rdpkru
r0:
    mov rax, cr4
    or rax, 0x1400000
    mov cr4, rax
    xor ecx, ecx
    rdpkru
    st rax
    mov eax, 7
    xor ecx, ecx
    cpuid
    mov eax, ecx
    and eax, 0x80000018
    st rax
    mov rax, qword ptr [${USER_DATA + 8}]
    mov eax, 4
    xor ecx, ecx
    xor edx, edx
    wrpkru
    lea r15, [rip + r1]
    mov rax, qword ptr [${USER_DATA + 8}]
r1:
    mov eax, 8
    wrpkru
    mov rax, qword ptr [${USER_DATA + 8}]
    lea r15, [rip + r2]
    mov qword ptr [${USER_DATA + 8}], 7
r2:
    mov rax, cr0
    and rax, ~0x10000
    mov cr0, rax
    mov qword ptr [${USER_DATA + 8}], 7
    mov rax, cr0
    or rax, 0x10000
    mov cr0, rax
    mov rax, qword ptr [${USER_DATA + 8}]
    st rax
    mov ecx, 1
    lea r15, [rip + r3]
    wrpkru
r3:
    mov ecx, 0x6e1
    mov eax, 0x10
    xor edx, edx
    wrmsr
    lea r15, [rip + r4]
    mov rax, qword ptr [${SUPER_KEYED}]
r4:
    mov ecx, 0x6e1
    rdmsr
    st rax
    mov eax, 0x20
    wrmsr
    mov rax, qword ptr [${SUPER_KEYED}]
    lea r15, [rip + r5]
    mov qword ptr [${SUPER_KEYED}], 1
r5:
    mov eax, 4
    xor ecx, ecx
    xor edx, edx
    wrpkru
    mov rbx, 0x77
    ${IRET_TO_USER}
  `, `
    lea r15, [rip + next]
    mov rbx, qword ptr [${USER_DATA}]
next:
    lea r15, [rip + done]
    mov qword ptr [${USER_READ_ONLY}], 1
done:
    out 0xf4, al
  `);
  const hex = v.map((x) => x.toString(16)).join(' ');
  assert.equal(v.length, 20, hex);
  assert.deepEqual(v.slice(0, 2), [8n, 6n], 'RDPKRU with CR4.PKE=0: #UD');
  assert.equal(v[2], 0n, 'PKRU starts at 0');
  assert.equal(v[3], 0x80000018n, 'CPUID.7.0:ECX PKU, OSPKE (CR4.PKE=1), PKS');
  assert.deepEqual(v.slice(4, 6), [0x21n, BigInt(USER_DATA + 8)], 'AD for key 1 after a cached read: #PF(P|PK)');
  assert.deepEqual(v.slice(6, 8), [0x23n, BigInt(USER_DATA + 8)], 'WD, CR0.WP=1, supervisor write: #PF(P|W|PK)');
  assert.equal(v[8], 7n, 'WD with CR0.WP=0: the supervisor write succeeds');
  assert.deepEqual(v.slice(9, 11), [0n, 13n], 'WRPKRU with ECX != 0: #GP(0)');
  assert.deepEqual(v.slice(11, 13), [0x21n, BigInt(SUPER_KEYED)], 'IA32_PKRS AD for key 2 on a supervisor page: #PF(P|PK)');
  assert.equal(v[13], 0x10n, 'RDMSR IA32_PKRS');
  assert.deepEqual(v.slice(14, 16), [0x23n, BigInt(SUPER_KEYED)], 'IA32_PKRS WD: #PF(P|W|PK)');
  assert.deepEqual(v.slice(16, 18), [0x25n, BigInt(USER_DATA)], 'user-mode read with AD: #PF(P|U|PK)');
  assert.equal(rbx, 0x77n, 'the faulting user load did not complete');
  assert.deepEqual(v.slice(18, 20), [0x27n, BigInt(USER_READ_ONLY)], 'user write to a read-only page whose key also denies: #PF(P|W|U|PK)');
});
