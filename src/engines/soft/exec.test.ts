/**
 * Instruction semantics of the soft CPU: small programs assembled with `as`,
 * run from a CpuState through runProgram(), with every stored result compared
 * to a known answer (computed here with BigInt where that is clearer).
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ASM_IDT_MACROS, assemble, flat32State, identityPageTables, longModeState, realModeState, softRunner, type ProgramResult } from './test-support.js';

const STORE_MACRO = `
.macro st r
  mov [r13], \\r
  add r13, 8
.endm
`;

async function run64(body: string): Promise<{ result: ProgramResult; values: bigint[] }> {
  const code = assemble(STORE_MACRO + 'mov r13, 0x200000\n' + body + '\nout 0xf4, al\n', 64);
  const result = await softRunner({
    code, loadAddress: 0x100000, state: longModeState(0x100000, 0x9000), memory: identityPageTables(0x9000),
  });
  assert.equal(result.exit.kind, 'debug-exit', `program ended with ${JSON.stringify(result.exit)}`);
  const end = Number(result.state.gpr.r13);
  const bytes = result.readMemory(0x200000, end - 0x200000);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const values: bigint[] = [];
  for (let i = 0; i < bytes.length; i += 8) values.push(dv.getBigUint64(i, true));
  return { result, values };
}

const U64 = (v: bigint): bigint => BigInt.asUintN(64, v);

void test('MUL/IMUL/DIV/IDIV in every size, 64x64->128 without BigInt', async () => {
  const a = 0x123456789abcdef0n;
  const b = 0xfedcba9876543210n;
  const { values } = await run64(`
    mov rax, ${a}
    mov rbx, ${b}
    mul rbx
    st rax
    st rdx
    mov rax, ${a}
    imul rbx
    st rax
    st rdx
    mov rdx, 0x1234
    mov rax, 0x56789abcdef01234
    mov rbx, 0xfedcba98765
    div rbx
    st rax
    st rdx
    mov rax, -12345678901234
    cqo
    mov rbx, 1000
    idiv rbx
    st rax
    st rdx
    mov edx, 5
    mov eax, 7
    mov ecx, 9
    div ecx
    st rax
    st rdx
    mov eax, -100
    cdq
    mov ecx, 7
    idiv ecx
    st rax
    st rdx
    mov rax, 0
    mov ax, 1000
    mov cl, 7
    div cl
    st rax
    mov eax, 0xffff
    mov ecx, 0xffff
    mul cx
    st rax
    st rdx
    mov eax, -3
    mov ecx, 5
    imul eax, ecx
    st rax
    mov rax, -7
    imul rax, rax, 9
    st rax
  `);
  const p = a * b;
  const sp = BigInt.asIntN(64, a) * BigInt.asIntN(64, b);
  const n = (0x1234n << 64n) | 0x56789abcdef01234n;
  const q = -12345678901234n / 1000n;
  const expected = [
    p & 0xffffffffffffffffn, p >> 64n,
    U64(sp), U64(sp >> 64n),
    n / 0xfedcba98765n, n % 0xfedcba98765n,
    U64(q), U64(-12345678901234n - q * 1000n),
    ((5n << 32n) | 7n) / 9n, ((5n << 32n) | 7n) % 9n,
    BigInt(Math.trunc(-100 / 7)) & 0xffffffffn, BigInt(-100 % 7) & 0xffffffffn,
    BigInt((1000 % 7) << 8 | Math.floor(1000 / 7)),
    BigInt((0xffff * 0xffff) & 0xffff), BigInt(((0xffff * 0xffff) >>> 16) & 0xffff) | 0n,
    BigInt(-15 >>> 0),
    U64(-63n),
  ];
  assert.deepEqual(values.slice(0, 14), expected.slice(0, 14));
  // mul cx writes only DX (RDX keeps bits 16+ from the previous 32-bit remainder).
  assert.equal(values[14] & 0xffffn, expected[14]);
  assert.deepEqual(values.slice(15), expected.slice(15));
});

void test('#DE on divide by zero and on quotient overflow is delivered through the IDT', async () => {
  // IDT at 0x300000 with a handler for vector 0 that records the vector and the faulting RIP.
  const { values } = await run64(`
    lea rax, [rip + handler]
    mov rbx, 0x300000
    mov word ptr [rbx], ax
    mov word ptr [rbx+2], 8
    mov word ptr [rbx+4], 0x8e00
    shr rax, 16
    mov word ptr [rbx+6], ax
    shr rax, 16
    mov dword ptr [rbx+8], eax
    mov dword ptr [rbx+12], 0
    sub rsp, 16
    mov word ptr [rsp], 0xfff
    mov qword ptr [rsp+2], rbx
    lidt [rsp]
    add rsp, 16
    mov r12, 0
    xor ecx, ecx
  fault1:
    div ecx
    mov edx, 1
    mov eax, 0
    mov ecx, 1
  fault2:
    div ecx
    lea rax, [rip + fault1]
    st rax
    lea rax, [rip + fault2]
    st rax
    jmp done
  handler:
    mov rax, [rsp]
    st rax
    mov rax, [rsp+8]
    st rax
    inc r12
    add qword ptr [rsp], 2
    iretq
  done:
    st r12
  `);
  // Handler stores (rip, cs) twice, then the two fault addresses, then the count.
  assert.equal(values[6], 2n);
  assert.equal(values[0], values[4]);
  assert.equal(values[1], 8n);
  assert.equal(values[2], values[5]);
});

void test('bit operations, byte swaps, extensions, CMOV/SETcc, XADD/CMPXCHG', async () => {
  const { values } = await run64(`
    mov rax, 0x0000100000000000
    bsf rbx, rax
    st rbx
    bsr rbx, rax
    st rbx
    mov rax, 0x10
    bts rax, 63
    setc bl
    st rax
    movzx rbx, bl
    st rbx
    bt rax, 4
    setc bl
    movzx rbx, bl
    st rbx
    btr rax, 4
    btc rax, 0
    st rax
    mov rax, 0x1122334455667788
    bswap rax
    st rax
    mov eax, 0x11223344
    bswap eax
    st rax
    mov rax, -1
    mov al, 0x80
    movsx rbx, al
    st rbx
    movzx ebx, ax
    st rbx
    mov ecx, -5
    movsxd rbx, ecx
    st rbx
    mov eax, 1
    mov ebx, 2
    cmp eax, ebx
    cmovl rcx, rbx
    setg dl
    st rcx
    movzx rdx, dl
    st rdx
    mov rax, 10
    mov rbx, 0x300000
    mov qword ptr [rbx], 5
    xadd qword ptr [rbx], rax
    st rax
    mov rax, [rbx]
    st rax
    mov rax, 15
    mov rcx, 99
    lock cmpxchg qword ptr [rbx], rcx
    st rax
    mov rax, [rbx]
    st rax
    mov rax, 1
    lock cmpxchg qword ptr [rbx], rcx
    st rax
    mov rax, 0x8000000000000001
    mov rbx, 0x0123456789abcdef
    shld rax, rbx, 8
    st rax
    shrd rbx, rax, 12
    st rbx
    stc
    mov eax, 0x80000000
    rcl eax, 1
    setc cl
    movzx rcx, cl
    st rax
    st rcx
    mov al, 0x81
    mov cl, 9
    rcr al, cl
    st rax
    mov rax, 0x12345678
    cdqe
    mov ax, 0x8000
    cwde
    st rax
    mov rax, 0x8000000000000000
    cqo
    st rdx
    xor eax, eax
    stc
    lahf
    mov al, ah
    movzx eax, al
    st rax
  `);
  const [bsf, bsr, bts, btsCf, btCf, btrc, bsw64, bsw32, movsx, movzx, movsxd, cmov, setg, xaddOld, xaddNew, cmpx1, cmpx1m, cmpx2, shld, shrd, rcl, rclCf, rcr, cwde, cqo] = values;
  assert.equal(bsf, 44n);
  assert.equal(bsr, 44n);
  assert.equal(bts, 0x8000000000000010n);
  assert.equal(btsCf, 0n);
  assert.equal(btCf, 1n);
  assert.equal(btrc, 0x8000000000000001n);
  assert.equal(bsw64, 0x8877665544332211n);
  assert.equal(bsw32, 0x44332211n);
  assert.equal(movsx, U64(-128n));
  assert.equal(movzx, 0xff80n);
  assert.equal(movsxd, U64(-5n));
  assert.equal(cmov, 2n);
  assert.equal(setg, 0n);
  assert.equal(xaddOld, 5n);
  assert.equal(xaddNew, 15n);
  assert.equal(cmpx1, 15n); // equal: RAX unchanged
  assert.equal(cmpx1m, 99n);
  assert.equal(cmpx2, 99n); // not equal: RAX loaded
  assert.equal(shld, 0x0000000000000101n);
  assert.equal(shrd, U64((0x0123456789abcdefn >> 12n) | ((0x101n & 0xfffn) << 52n)));
  assert.equal(rcl, 1n);
  assert.equal(rclCf, 1n);
  // rcr al by 9 over 9 bits (8 + CF) with CF=1 from the rcl: a full rotation.
  assert.equal(rcr & 0xffn, 0x81n);
  assert.equal(cwde, U64(-32768n) & 0xffffffffn);
  assert.equal(cqo, U64(-1n));
  assert.equal(values[25], 0x47n); // LAHF after STC with ZF and PF set
  assert.equal(values.length, 26);
});

void test('REP MOVS/STOS in bulk: overlapping copies, page crossings, chunks and element sizes give the element-by-element result', async () => {
  const { values } = await run64(`
    cld
    mov byte ptr [0x300000], 0x5a
    mov rsi, 0x300000
    mov rdi, 0x300001
    mov rcx, 100
    rep movsb
    mov rax, [0x300040]
    st rax
    st rsi
    st rdi
    mov rdi, 0x302ff8
    mov eax, 0x11223344
    mov rcx, 4
    rep stosd
    mov rax, [0x302ff8]
    st rax
    mov rax, [0x303000]
    st rax
    st rdi
    mov rdi, 0x304000
    xor eax, eax
  fill:
    mov [rdi + rax * 8], rax
    inc rax
    cmp rax, 1024
    jne fill
    mov rsi, 0x304000
    mov rdi, 0x306004
    mov rcx, 1024
    rep movsq
    st rsi
    st rcx
    xor ebx, ebx
    xor eax, eax
  sum:
    add rbx, [0x306004 + rax * 8]
    inc rax
    cmp rax, 1024
    jne sum
    st rbx
    mov rax, [0x306004 + 1023 * 8]
    st rax
    mov rsi, 0x308000
    mov qword ptr [rsi], 1
    mov qword ptr [rsi + 8], 2
    lea rdi, [rsi + 16]
    mov rcx, 6
    rep movsq
    mov rax, [0x308030]
    st rax
    mov rax, [0x308038]
    st rax
    mov byte ptr [0x310000 + 10000], 0x77
    mov rdi, 0x310000
    mov al, 0xc3
    mov ecx, 10000
    rep stosb
    movzx eax, byte ptr [0x310000 + 9999]
    st rax
    movzx eax, byte ptr [0x310000 + 10000]
    st rax
    mov rdi, 0x312ffe
    mov ax, 0xbeef
    mov rcx, 3
    rep stosw
    mov eax, [0x313000]
    st rax
  `);
  assert.deepEqual(values, [
    0x5a5a5a5a5a5a5a5an, 0x300064n, 0x300065n,
    0x1122334411223344n, 0x1122334411223344n, 0x303008n,
    0x306000n, 0n, 523776n, 1023n,
    1n, 2n,
    0xc3n, 0x77n,
    0xbeefbeefn,
  ]);
});

void test('string instructions with REP/REPE/REPNE, LOOP, ENTER/LEAVE, CALL/RET', async () => {
  const { values } = await run64(`
    mov rsi, 0x300000
    mov rax, 0x0807060504030201
    mov [rsi], rax
    mov rax, 0x100f0e0d0c0b0a09
    mov [rsi+8], rax
    mov rdi, 0x301000
    mov rcx, 16
    cld
    rep movsb
    mov rax, [0x301008]
    st rax
    st rcx
    mov rdi, 0x302000
    mov rax, 0xabababababababab
    mov rcx, 4
    rep stosq
    mov rax, [0x302018]
    st rax
    mov rsi, 0x300000
    mov rdi, 0x301000
    mov byte ptr [0x301005], 0xff
    mov rcx, 16
    repe cmpsb
    st rcx
    mov rdi, 0x300000
    mov al, 0x0c
    mov rcx, 16
    repne scasb
    mov rbx, rdi
    st rcx
    st rbx
    xor eax, eax
    mov ecx, 10
  l1:
    add eax, ecx
    loop l1
    st rax
    mov rbp, 0x1234
    enter 32, 0
    mov rbx, rbp
    sub rbx, rsp
    leave
    st rbx
    st rbp
    call func
    st rax
    std
    mov rsi, 0x30000f
    lodsb
    cld
    st rax
    st rsi
    jmp end
  func:
    mov eax, 77
    ret
  end:
  `);
  assert.deepEqual(values, [0x100f0e0d0c0b0a09n, 0n, 0xababababababababn, 10n, 4n, 0x30000cn, 55n, 32n, 0x1234n, 77n, 0x10n, 0x30000en]);
});

void test('real mode -> 32-bit protected mode -> long mode, ending with OUT', async () => {
  // GDT at 0x1000: null, 32-bit code (0x8), data (0x10), 64-bit code (0x18).
  const gdt = new Uint8Array(32);
  const gv = new DataView(gdt.buffer);
  gv.setBigUint64(8, 0x00cf9a000000ffffn, true);
  gv.setBigUint64(16, 0x00cf92000000ffffn, true);
  gv.setBigUint64(24, 0x00af9a000000ffffn, true);
  const gdtr = new Uint8Array(6);
  new DataView(gdtr.buffer).setUint16(0, 31, true);
  new DataView(gdtr.buffer).setUint32(2, 0x1000, true);
  const code16 = assemble(`
    cli
    lgdt [0x1100]
    mov eax, cr0
    or eax, 1
    mov cr0, eax
    ljmp 0x8, 0x8000
  `, 16);
  const code32 = assemble(`
    mov ax, 0x10
    mov ds, ax
    mov ss, ax
    mov es, ax
    mov esp, 0x7000
    mov eax, cr4
    or eax, 0x20
    mov cr4, eax
    mov eax, 0x9000
    mov cr3, eax
    mov ecx, 0xc0000080
    rdmsr
    or eax, 0x100
    wrmsr
    mov eax, cr0
    or eax, 0x80000000
    mov cr0, eax
    ljmp 0x18, 0xe000
  `, 32);
  const code64 = assemble(`
    mov rax, 0x1122334455667788
    mov rbx, rax
    mov ecx, 0xc0000080
    rdmsr
    mov r8, rax
    mov rax, cr0
    mov r9, rax
    mov al, 0x42
    out 0xf4, al
  `, 64);
  const result = await softRunner({
    code: code16, loadAddress: 0x7c00, state: realModeState(0x7c00),
    memory: [
      { address: 0x1000, bytes: gdt }, { address: 0x1100, bytes: gdtr },
      { address: 0x8000, bytes: code32 }, { address: 0xe000, bytes: code64 }, ...identityPageTables(0x9000).map((m, i) => (i === 0 ? m : m)),
    ],
  });
  assert.deepEqual(result.exit, { kind: 'debug-exit', value: 0x42 });
  assert.equal(result.state.gpr.rbx, 0x1122334455667788n);
  assert.equal(result.state.gpr.r8 & 0x500n, 0x500n, 'EFER.LME and LMA set');
  assert.equal(result.state.gpr.r9 & 0x80000001n, 0x80000001n);
  assert.equal(result.state.seg.cs.selector, 0x18);
  assert.equal(result.state.seg.cs.l, true);
});

const IDT_SETUP = ASM_IDT_MACROS;

void test('page fault: CR2 and error code, accessed and dirty bits, write protection and NX', async () => {
  // 4 KiB pages for [0, 2 MiB) through a page table at 0xd000; 2 MiB pages above.
  const pt = new Uint8Array(4096);
  const ptv = new DataView(pt.buffer);
  for (let i = 0; i < 512; i++) ptv.setUint32(i * 8, (i * 4096) | 3, true);
  ptv.setUint32(0x50 * 8, 0, true); // not present
  ptv.setUint32(0x51 * 8, 0x51000 | 1, true); // read-only
  ptv.setUint32(0x52 * 8 + 4, 0x80000000, true); // no-execute
  const tables = identityPageTables(0x9000);
  new DataView(tables[2].bytes.buffer).setUint32(0, 0xd000 | 3, true);
  const code = assemble(STORE_MACRO + IDT_SETUP + `
    mov r13, 0x200000
    gate 14, pf_handler
    load_idt
    lea r15, [rip + r1]
    mov rax, [0x50008]
  r1:
    lea r15, [rip + r2]
    mov qword ptr [0x51010], 1
  r2:
    lea r15, [rip + r3]
    mov byte ptr [0x52000], 0xc3
    mov rax, 0x52000
    call rax
  r3:
    mov rax, [0x54000]
    mov qword ptr [0x55000], 7
    out 0xf4, al
  pf_handler:
    mov rax, cr2
    st rax
    pop rax
    st rax
    mov [rsp], r15
    iretq
  `, 64);
  const result = await softRunner({
    code, loadAddress: 0x100000, state: longModeState(0x100000, 0x9000),
    memory: [...tables, { address: 0xd000, bytes: pt }],
  });
  assert.equal(result.exit.kind, 'debug-exit');
  const out = new DataView(result.readMemory(0x200000, 48).buffer);
  const got = [0, 1, 2, 3, 4, 5].map((i) => out.getBigUint64(i * 8, true));
  assert.deepEqual(got, [0x50008n, 0n, 0x51010n, 3n, 0x52000n, 0x11n]);
  const ptAfter = new DataView(result.readMemory(0xd000, 4096).buffer);
  const pte54 = ptAfter.getUint32(0x54 * 8, true);
  const pte55 = ptAfter.getUint32(0x55 * 8, true);
  assert.equal(pte54 & 0x60, 0x20, 'read sets A only');
  assert.equal(pte55 & 0x60, 0x60, 'write sets A and D');
  const pd = new DataView(result.readMemory(0xb000, 8).buffer).getUint32(0, true);
  assert.equal(pd & 0x20, 0x20, 'walk sets A in the PD entry');
});

void test('#UD, #GP with error code and INT3 are delivered to IDT handlers with the right frames', async () => {
  const code = assemble(STORE_MACRO + IDT_SETUP + `
    mov r13, 0x200000
    gate 6, ud_handler
    gate 13, gp_handler
    gate 3, bp_handler
    load_idt
    lea r15, [rip + r1]
  f1:
    ud2
  r1:
    lea r15, [rip + r2]
    mov ax, 0x28
  f2:
    mov ds, ax
  r2:
    int3
    mov rax, 0x8000000000000000
    lea r15, [rip + r3]
  f3:
    mov rbx, [rax]
  r3:
    lea rax, [rip + f1]
    st rax
    lea rax, [rip + f2]
    st rax
    lea rax, [rip + f3]
    st rax
    out 0xf4, al
  ud_handler:
    mov rax, 6
    st rax
    mov rax, [rsp]
    st rax
    mov [rsp], r15
    iretq
  gp_handler:
    mov rax, 13
    st rax
    pop rax
    st rax
    mov rax, [rsp]
    st rax
    mov [rsp], r15
    iretq
  bp_handler:
    mov rax, 3
    st rax
    mov rax, [rsp]
    st rax
    iretq
  `, 64);
  const result = await softRunner({ code, loadAddress: 0x100000, state: longModeState(0x100000, 0x9000), memory: identityPageTables(0x9000) });
  assert.equal(result.exit.kind, 'debug-exit');
  const n = (Number(result.state.gpr.r13) - 0x200000) / 8;
  const out = new DataView(result.readMemory(0x200000, n * 8).buffer);
  const v = Array.from({ length: n }, (_, i) => out.getBigUint64(i * 8, true));
  const [f1, f2, f3] = v.slice(-3);
  // #UD: vector, RIP of ud2.
  assert.equal(v[0], 6n);
  assert.equal(v[1], f1);
  // #GP loading selector 0x28 (beyond the GDT limit): error code = selector.
  assert.equal(v[2], 13n);
  assert.equal(v[3], 0x28n);
  assert.equal(v[4], f2);
  // INT3: trap, RIP after the instruction.
  assert.equal(v[5], 3n);
  assert.equal(v[6], f2 + 3n);
  // Non-canonical address: #GP(0) at the faulting instruction.
  assert.deepEqual([v[7], v[8], v[9]], [13n, 0n, f3]);
});

void test('32-bit protected mode and real mode run the same arithmetic', async () => {
  const body = `
    mov eax, 1000
    mov ecx, 7
    xor edx, edx
    div ecx
    imul eax, eax, 3
    push eax
    pop ebx
    mov [0x5000], ebx
    out 0xf4, al
  `;
  const r32 = await softRunner({ code: assemble(body, 32), loadAddress: 0x10000, state: flat32State(0x10000) });
  assert.equal(r32.exit.kind, 'debug-exit');
  assert.equal(r32.state.gpr.rbx, 426n);
  assert.equal(r32.state.gpr.rdx, 6n);
  const r16 = await softRunner({ code: assemble(body, 16), loadAddress: 0x7c00, state: realModeState(0x7c00) });
  assert.equal(r16.exit.kind, 'debug-exit');
  assert.equal(r16.state.gpr.rbx, 426n);
  assert.equal(new DataView(r16.readMemory(0x5000, 4).buffer).getUint32(0, true), 426);
});

void test('real-mode software interrupt through the IVT and IRET', async () => {
  const src = `
  start:
    mov word ptr [0x80 * 4], offset handler - start + 0x7c00
    mov word ptr [0x80 * 4 + 2], 0
    mov ax, 5
    int 0x80
    add ax, 1
    out 0xf4, al
  handler:
    shl ax, 2
    iret
  `;
  const r = await softRunner({ code: assemble(src, 16), loadAddress: 0x7c00, state: realModeState(0x7c00) });
  assert.deepEqual(r.exit, { kind: 'debug-exit', value: 21 });
});

void test('triple fault ends the VM', async () => {
  // No IDT (limit 0): #UD cannot be delivered -> #GP -> #DF -> triple fault.
  const code = assemble('ud2', 64);
  const state = longModeState(0x100000, 0x9000);
  state.idt = { base: 0n, limit: 0 };
  const r = await softRunner({ code, loadAddress: 0x100000, state, memory: identityPageTables(0x9000) });
  assert.equal(r.exit.kind, 'triple-fault');
});

void test('single-step: TF traps (#DB) after each instruction following the POPF that sets it', async () => {
  const code = assemble(STORE_MACRO + IDT_SETUP + `
    mov r13, 0x200000
    gate 1, db_handler
    load_idt
    xor r12, r12
    pushfq
    or qword ptr [rsp], 0x100
    popfq
    nop
    nop
    pushfq
    and qword ptr [rsp], ~0x100
    popfq
    st r12
    out 0xf4, al
  db_handler:
    inc r12
    iretq
  `, 64);
  const r = await softRunner({ code, loadAddress: 0x100000, state: longModeState(0x100000, 0x9000), memory: identityPageTables(0x9000) });
  assert.equal(r.exit.kind, 'debug-exit');
  assert.equal(new DataView(r.readMemory(0x200000, 8).buffer).getBigUint64(0, true), 5n);
});

void test('#DF when #GP delivery hits a not-present gate; LOCK on a register operand is #UD', async () => {
  const code = assemble(STORE_MACRO + IDT_SETUP + `
    mov r13, 0x200000
    gate 8, df_handler
    gate 6, ud_handler
    gate 13, df_handler
    mov byte ptr [0x300000 + 13 * 16 + 5], 0x0e
    load_idt
    lea r15, [rip + r1]
    .byte 0xf0, 0x01, 0xc3
  r1:
    mov ax, 0x28
    mov ds, ax
  df_handler:
    mov rax, 8
    st rax
    pop rax
    st rax
    out 0xf4, al
  ud_handler:
    mov rax, 6
    st rax
    mov [rsp], r15
    iretq
  `, 64);
  const r = await softRunner({ code, loadAddress: 0x100000, state: longModeState(0x100000, 0x9000), memory: identityPageTables(0x9000) });
  assert.equal(r.exit.kind, 'debug-exit');
  const dv = new DataView(r.readMemory(0x200000, 24).buffer);
  assert.deepEqual([0, 1, 2].map((i) => dv.getBigUint64(i * 8, true)), [6n, 8n, 0n]);
});

void test('compatibility mode: far jump from 64-bit to a 32-bit code segment and back', async () => {
  // Test GDT: 0x08 64-bit code, 0x18 32-bit code. Code linked at 0x100000 for absolute far pointers.
  const code = assemble(`
    mov rax, 0x1111111122222222
    ljmp [rip + to32]
  to32:
    .long compat
    .word 0x18
  compat:
    .code32
    mov eax, 0x33
    mov ebx, esp
    push 0x8
    push offset back
    retf
    .code64
  back:
    mov ecx, eax
    out 0xf4, al
  `, 64, 0x100000);
  const r = await softRunner({ code, loadAddress: 0x100000, state: longModeState(0x100000, 0x9000), memory: identityPageTables(0x9000) });
  assert.deepEqual(r.exit, { kind: 'debug-exit', value: 0x33 });
  assert.equal(r.state.gpr.rax, 0x33n, '32-bit MOV in compatibility mode zero-extends');
  assert.equal(r.state.seg.cs.selector, 0x8);
});

void test('x87 raises #NM with CR0.TS and executes after CLTS; SSE with CR4.OSFXSR clear is #UD; PUSHA/POPA in real mode', async () => {
  const code = assemble(STORE_MACRO + IDT_SETUP + `
    mov r13, 0x200000
    gate 6, ud_handler
    gate 7, nm_handler
    load_idt
    mov rax, cr0
    or rax, 8
    mov cr0, rax
    lea r15, [rip + r1]
    fld1
  r1:
    lea r15, [rip + r2]
    pxor xmm0, xmm0
  r2:
    clts
    lea r15, [rip + r3]
    fld1
  r3:
    lea r15, [rip + r4]
    pxor xmm0, xmm0
  r4:
    out 0xf4, al
  ud_handler:
    mov rax, 6
    st rax
    mov [rsp], r15
    iretq
  nm_handler:
    mov rax, 7
    st rax
    mov [rsp], r15
    iretq
  `, 64);
  const r = await softRunner({ code, loadAddress: 0x100000, state: longModeState(0x100000, 0x9000), memory: identityPageTables(0x9000) });
  assert.equal(r.exit.kind, 'debug-exit');
  const dv = new DataView(r.readMemory(0x200000, 32).buffer);
  assert.deepEqual([0, 1, 2, 3].map((i) => dv.getBigUint64(i * 8, true)), [7n, 6n, 6n, 0n]);

  const real = await softRunner({
    code: assemble(`
      mov ax, 1
      mov cx, 2
      mov dx, 3
      mov bx, 4
      mov bp, 6
      mov si, 7
      mov di, 8
      pusha
      xor ax, ax
      xor cx, cx
      xor di, di
      mov bx, sp
      mov si, [bx + 6]
      mov [0x5000], si
      popa
      add ax, cx
      add ax, di
      add ax, si
      out 0xf4, al
    `, 16),
    loadAddress: 0x7c00, state: realModeState(0x7c00),
  });
  assert.deepEqual(real.exit, { kind: 'debug-exit', value: (1 + 2 + 8 + 7) & 0xff });
  // The SP slot PUSHA wrote holds the value before the pushes.
  assert.equal(new DataView(real.readMemory(0x5000, 2).buffer).getUint16(0, true), 0x7000);
  assert.equal(real.state.gpr.rsp, 0x7000n);
});

void test('LEA is exact 64-bit arithmetic, also for values far from canonical addresses', async () => {
  const { values } = await run64(`
    mov rax, 0x7fffffffffffffff
    mov rdx, 0x7ffffffffffffff3
    lea rcx, [rax + rdx*8 + 0x12345678]
    st rcx
    lea ecx, [rax + rdx + 1]
    st rcx
    mov rbx, 0x8000000000000001
    lea rcx, [rbx - 2]
    st rcx
  `);
  assert.deepEqual(values, [
    U64(0x7fffffffffffffffn + 0x7ffffffffffffff3n * 8n + 0x12345678n),
    (0x7fffffffffffffffn + 0x7ffffffffffffff3n + 1n) & 0xffffffffn,
    0x7fffffffffffffffn,
  ]);
});
