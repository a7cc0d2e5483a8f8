/**
 * MMX unit tests on the soft CPU in 64-bit mode: known answers for every
 * instruction group (the QEMU comparison in mmx-compare.test.ts covers the
 * operand space), REX.W and high-register forms, the x87 aliasing (TOP, tags,
 * exponent bits, EMMS, FXSAVE/FXRSTOR images, x87 use after EMMS) and the
 * #UD/#NM/#MF cases.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ASM_IDT_MACROS, ASM_STORE_MACRO, assemble, identityPageTables, longModeState, softRunner, type ProgramResult } from '../test-support.js';

const PRELUDE = `${ASM_STORE_MACRO}${ASM_IDT_MACROS}    mov r13, 0x200000
    gate 6, ud_handler
    gate 7, nm_handler
    gate 16, mf_handler
    load_idt
    mov rax, cr4
    or rax, 0x600
    mov cr4, rax
    jmp body
ud_handler:
    mov rax, 0xee06
    st rax
    mov [rsp], r15
    iretq
nm_handler:
    mov rax, 0xee07
    st rax
    mov [rsp], r15
    iretq
mf_handler:
    mov rax, 0xee10
    st rax
    fnclex
    mov [rsp], r15
    iretq
body:
`;

async function run(body: string, data = ''): Promise<{ result: ProgramResult; values: bigint[] }> {
  const code = assemble(PRELUDE + body + '\n out 0xf4, al\n .balign 16\n' + data, 64, 0x100000);
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

const OPERANDS = `
    opa: .quad 0x80ff7f0100037ffe
    opb: .quad 0x7f01ff80fffe8002
`;

const A = 0x80ff7f0100037ffen;
const B = 0x7f01ff80fffe8002n;

const lanes = (v: bigint, bits: number): bigint[] =>
  Array.from({ length: 64 / bits }, (_, i) => (v >> BigInt(i * bits)) & ((1n << BigInt(bits)) - 1n));
const join = (l: bigint[], bits: number): bigint =>
  l.reduce((acc, x, i) => acc | (BigInt.asUintN(bits, x) << BigInt(i * bits)), 0n);
const sx = (x: bigint, bits: number): bigint => BigInt.asIntN(bits, x);
const clamp = (v: bigint, lo: bigint, hi: bigint): bigint => (v < lo ? lo : v > hi ? hi : v);
const lanewise = (bits: number, fn: (x: bigint, y: bigint) => bigint) =>
  (a: bigint, b: bigint): bigint => join(lanes(a, bits).map((x, i) => fn(x, lanes(b, bits)[i])), bits);
const S8 = [-128n, 127n] as const;
const S16 = [-32768n, 32767n] as const;

/** A BigInt reference model of the two-operand MMX instructions (test code only). */
const MODEL: Record<string, (a: bigint, b: bigint) => bigint> = {
  paddb: lanewise(8, (x, y) => x + y),
  paddw: lanewise(16, (x, y) => x + y),
  paddd: lanewise(32, (x, y) => x + y),
  paddq: (a, b) => BigInt.asUintN(64, a + b),
  psubb: lanewise(8, (x, y) => x - y),
  psubw: lanewise(16, (x, y) => x - y),
  psubd: lanewise(32, (x, y) => x - y),
  psubq: (a, b) => BigInt.asUintN(64, a - b),
  paddsb: lanewise(8, (x, y) => clamp(sx(x, 8) + sx(y, 8), ...S8)),
  paddsw: lanewise(16, (x, y) => clamp(sx(x, 16) + sx(y, 16), ...S16)),
  paddusb: lanewise(8, (x, y) => clamp(x + y, 0n, 255n)),
  paddusw: lanewise(16, (x, y) => clamp(x + y, 0n, 65535n)),
  psubsb: lanewise(8, (x, y) => clamp(sx(x, 8) - sx(y, 8), ...S8)),
  psubsw: lanewise(16, (x, y) => clamp(sx(x, 16) - sx(y, 16), ...S16)),
  psubusb: lanewise(8, (x, y) => clamp(x - y, 0n, 255n)),
  psubusw: lanewise(16, (x, y) => clamp(x - y, 0n, 65535n)),
  pcmpeqb: lanewise(8, (x, y) => (x === y ? -1n : 0n)),
  pcmpeqw: lanewise(16, (x, y) => (x === y ? -1n : 0n)),
  pcmpeqd: lanewise(32, (x, y) => (x === y ? -1n : 0n)),
  pcmpgtb: lanewise(8, (x, y) => (sx(x, 8) > sx(y, 8) ? -1n : 0n)),
  pcmpgtw: lanewise(16, (x, y) => (sx(x, 16) > sx(y, 16) ? -1n : 0n)),
  pcmpgtd: lanewise(32, (x, y) => (sx(x, 32) > sx(y, 32) ? -1n : 0n)),
  pand: (a, b) => a & b,
  pandn: (a, b) => BigInt.asUintN(64, ~a) & b,
  por: (a, b) => a | b,
  pxor: (a, b) => a ^ b,
  pmullw: lanewise(16, (x, y) => x * y),
  pmulhw: lanewise(16, (x, y) => (sx(x, 16) * sx(y, 16)) >> 16n),
  pmulhuw: lanewise(16, (x, y) => (x * y) >> 16n),
  pmaddwd: (a, b) => join([0, 1].map((j) => [0, 1].reduce((acc, k) =>
    acc + sx(lanes(a, 16)[2 * j + k], 16) * sx(lanes(b, 16)[2 * j + k], 16), 0n)), 32),
  pmuludq: (a, b) => (a & 0xffffffffn) * (b & 0xffffffffn),
  pminub: lanewise(8, (x, y) => (x < y ? x : y)),
  pmaxub: lanewise(8, (x, y) => (x > y ? x : y)),
  pminsw: lanewise(16, (x, y) => (sx(x, 16) < sx(y, 16) ? x : y)),
  pmaxsw: lanewise(16, (x, y) => (sx(x, 16) > sx(y, 16) ? x : y)),
  pavgb: lanewise(8, (x, y) => (x + y + 1n) >> 1n),
  pavgw: lanewise(16, (x, y) => (x + y + 1n) >> 1n),
  psadbw: (a, b) => lanes(a, 8).reduce((acc, x, i) => acc + (x > lanes(b, 8)[i] ? x - lanes(b, 8)[i] : lanes(b, 8)[i] - x), 0n),
  packsswb: (a, b) => join([...lanes(a, 16), ...lanes(b, 16)].map((x) => clamp(sx(x, 16), ...S8)), 8),
  packuswb: (a, b) => join([...lanes(a, 16), ...lanes(b, 16)].map((x) => clamp(sx(x, 16), 0n, 255n)), 8),
  packssdw: (a, b) => join([...lanes(a, 32), ...lanes(b, 32)].map((x) => clamp(sx(x, 32), ...S16)), 16),
  punpcklbw: (a, b) => join([0, 1, 2, 3].flatMap((i) => [lanes(a, 8)[i], lanes(b, 8)[i]]), 8),
  punpckhbw: (a, b) => join([4, 5, 6, 7].flatMap((i) => [lanes(a, 8)[i], lanes(b, 8)[i]]), 8),
  punpcklwd: (a, b) => join([0, 1].flatMap((i) => [lanes(a, 16)[i], lanes(b, 16)[i]]), 16),
  punpckhwd: (a, b) => join([2, 3].flatMap((i) => [lanes(a, 16)[i], lanes(b, 16)[i]]), 16),
  punpckldq: (a, b) => (a & 0xffffffffn) | ((b & 0xffffffffn) << 32n),
  punpckhdq: (a, b) => (a >> 32n) | ((b >> 32n) << 32n),
};

/** Shift model: kind 'l' left, 'r' logical right, 'a' arithmetic right. */
function shiftModel(v: bigint, bits: number, kind: string, count: bigint): bigint {
  return join(lanes(v, bits).map((x) => {
    if (kind === 'a') return sx(x, bits) >> (count > BigInt(bits - 1) ? BigInt(bits - 1) : count);
    if (count >= BigInt(bits)) return 0n;
    return kind === 'l' ? x << count : x >> count;
  }), bits);
}

void test('every two-operand MMX/SSE-on-MMX integer instruction, register and memory source, against a BigInt model', async () => {
  const names = Object.keys(MODEL);
  // PUNPCKL* read a 32-bit memory operand: pair 1's source dword is followed by bytes the instruction must not use.
  const pairs: Array<[bigint, bigint]> = [[A, B], [B, A], [0x8000800080008000n, 0x7fff7fff00010000n], [0xffffffffffffffffn, 0x0101010101010101n]];
  let body = '';
  for (let p = 0; p < pairs.length; p++) {
    for (const name of names) {
      const src = p !== 1 ? 'mm1' : name.startsWith('punpckl') ? `dword ptr [rip + op${p}b]` : `qword ptr [rip + op${p}b]`;
      body += `
    mov rax, [rip + op${p}a]
    movq mm0, rax
    movq mm1, [rip + op${p}b]
    ${name} mm0, ${src}
    movq rax, mm0
    st rax`;
    }
  }
  const data = pairs.map(([a, b], p) => `op${p}a: .quad 0x${a.toString(16)}\nop${p}b: .quad 0x${b.toString(16)}\n`).join('');
  const { values } = await run(body, data);
  assert.equal(values.length, names.length * pairs.length);
  pairs.forEach(([a, b], p) => names.forEach((name, i) => {
    assert.equal(values[p * names.length + i].toString(16), BigInt.asUintN(64, MODEL[name](a, b)).toString(16), `${name} a=${a.toString(16)} b=${b.toString(16)}`);
  }));
});

void test('shifts by immediate, by mm and by m64 (counts past the lane width), PSHUFW, PINSRW/PEXTRW, PMOVMSKB', async () => {
  const counts = [0n, 1n, 7n, 15n, 16n, 31n, 32n, 33n, 63n, 64n, 255n];
  const shifts: Array<[string, number, string]> = [['psllw', 16, 'l'], ['psrlw', 16, 'r'], ['psraw', 16, 'a'], ['pslld', 32, 'l'],
    ['psrld', 32, 'r'], ['psrad', 32, 'a'], ['psllq', 64, 'l'], ['psrlq', 64, 'r']];
  let body = '';
  const want: bigint[] = [];
  for (const count of counts) {
    for (const [name, bits, kind] of shifts) {
      body += `
    movq mm2, [rip + opa]
    ${name} mm2, ${count}
    st_mm mm2
    movq mm3, [rip + opa]
    mov rax, ${count}
    movq mm4, rax
    ${name} mm3, mm4
    st_mm mm3`;
      want.push(shiftModel(A, bits, kind, count), shiftModel(A, bits, kind, count));
    }
  }
  body += `
    movq mm5, [rip + opa]
    psrlq mm5, [rip + huge]
    st_mm mm5
    movq mm6, [rip + opa]
    pshufw mm7, mm6, 0x1b
    st_mm mm7
    pshufw mm7, [rip + opb], 0xe4
    st_mm mm7
    mov eax, 0x12345
    pinsrw mm7, eax, 6
    st_mm mm7
    pinsrw mm7, word ptr [rip + opa], 1
    st_mm mm7
    mov r9, -1
    pextrw r9d, mm6, 3
    st r9
    pextrw r10, mm6, 5
    st r10
    mov r11, -1
    pmovmskb r11d, mm6
    st r11`;
  const lanesA = lanes(A, 16);
  const lanesB = lanes(B, 16);
  const pinsr1 = join([lanesB[0], lanesB[1], lanesB[2], lanesB[3]].map((x, i) => (i === 2 ? 0x2345n : x)), 16);
  want.push(0n, join([3, 2, 1, 0].map((i) => lanesA[i]), 16), B, pinsr1, join(lanes(pinsr1, 16).map((x, i) => (i === 1 ? lanesA[0] : x)), 16),
    lanesA[3], lanesA[1], lanes(A, 8).reduce((acc, x, i) => acc | ((x >> 7n) << BigInt(i)), 0n));
  const macro = `.macro st_mm m
    movq [r13], \\m
    add r13, 8
.endm
`;
  const { values } = await run(macro + body, OPERANDS + '    huge: .quad 0x100000000\n');
  assert.deepEqual(values.map((v) => v.toString(16)), want.map((v) => BigInt.asUintN(64, v).toString(16)));
});

/** FXSAVE image fields: FSW, abridged FTW, and each ST slot's mantissa and sign/exponent. */
function fxFields(image: Uint8Array): { fsw: number; ftw: number; mant: bigint[]; se: number[] } {
  const dv = new DataView(image.buffer, image.byteOffset, image.byteLength);
  return {
    fsw: dv.getUint16(2, true),
    ftw: dv.getUint8(4),
    mant: Array.from({ length: 8 }, (_, i) => dv.getBigUint64(32 + 16 * i, true)),
    se: Array.from({ length: 8 }, (_, i) => dv.getUint16(40 + 16 * i, true)),
  };
}

void test('x87 aliasing: MMn = Rn, TOP 0 and tags valid after MMX, exponent ones on writes only, EMMS, FXRSTOR into MMX, x87 after EMMS', async () => {
  const { result, values } = await run(`
    fninit
    fld1
    fld1                          # TOP = 6, R6/R7 hold 1.0
    fxsave [0x240000]
    mov rax, 0x1122334455667788
    movq mm3, rax                 # writes R3
    fxsave [0x240200]
    movq [rip + scratch], mm7     # MMX store: TOP/tags change, no exponent written
    fxsave [0x240400]
    emms
    fxsave [0x240600]
    fld1
    fadd st(0), st(0)
    fstp qword ptr [rip + scratch]
    mov rax, [rip + scratch]
    st rax                        # 2.0 after EMMS
    fninit
    fxrstor [rip + restore]       # TOP = 5: ST0 = R5, mantissa of ST(2) is R7 = MM7
    movq rax, mm7
    st rax
    movq rax, mm5
    st rax
    fnstsw ax
    st rax
    fnstenv [rip + env]
    mov eax, [rip + env + 8]
    st rax                        # full tag word after MMX: all "special" (exponent ones) or from contents
  `, `
    scratch: .quad 0
    env: .space 28
    .balign 16
    restore: .word 0x037f, 0x2800       # FCW, FSW with TOP = 5
      .byte 0xff, 0
      .space 18
      .long 0x1f80, 0xffff
      .quad 0xaaaa000000000005          # ST0 = R5
      .word 0x4005
      .space 6
      .quad 0xaaaa000000000006          # ST1 = R6
      .word 0x4006
      .space 6
      .quad 0xaaaa000000000007          # ST2 = R7
      .word 0x3fff
      .space 6
      .space 16 * 5 + 512 - 160
  `);
  const area = [0, 1, 2, 3].map((i) => result.readMemory(0x240000 + 512 * i, 512));
  const i0 = fxFields(area[0]);
  assert.equal((i0.fsw >> 11) & 7, 6);
  assert.equal(i0.ftw, 0xc0);
  const i1 = fxFields(area[1]);
  assert.equal((i1.fsw >> 11) & 7, 0, 'TOP = 0 after MOVQ mm3');
  assert.equal(i1.ftw, 0xff, 'all tags valid');
  assert.equal(i1.mant[3], 0x1122334455667788n, 'ST3 slot (TOP 0) = R3 = MM3');
  assert.equal(i1.se[3], 0xffff, 'exponent bits of R3 set');
  assert.equal(i1.mant[6], 0x8000000000000000n, 'R6 keeps 1.0');
  assert.equal(i1.se[6], 0x3fff);
  assert.equal(i1.se[0], 0, 'untouched registers keep their exponent');
  const i2 = fxFields(area[2]);
  assert.equal(i2.se[7], 0x3fff, 'a store from MM7 does not write R7');
  assert.equal(i2.ftw, 0xff);
  const i3 = fxFields(area[3]);
  assert.equal(i3.ftw, 0, 'EMMS empties every tag');
  assert.equal((i3.fsw >> 11) & 7, 0);
  assert.equal(i3.mant[3], 0x1122334455667788n, 'EMMS keeps the register contents');
  assert.equal(values[0], 0x4000000000000000n, 'FLD/FADD/FSTP work after EMMS');
  assert.equal(values[1], 0xaaaa000000000007n, 'MM7 = R7 = ST2 under TOP 5');
  assert.equal(values[2], 0xaaaa000000000005n);
  assert.equal((values[3] >> 11n) & 7n, 0n, 'TOP = 0 after the MMX reads');
  assert.equal(values[4] & 0xffffn, 0x0155n, 'FNSTENV tags from contents: R0-R4 zero, R5-R7 valid');
});

void test('faults: #UD with CR0.EM, #NM with CR0.TS (EMMS too), #MF for a pending x87 exception, no OSFXSR needed, invalid forms', async () => {
  const { values } = await run(`
    mov rax, cr0
    or rax, 4                     # EM
    mov cr0, rax
    lea r15, [rip + 1f]
    paddb mm0, mm1
1:  lea r15, [rip + 1f]
    emms
1:  mov rax, cr0
    and rax, ~4
    or rax, 8                     # TS
    mov cr0, rax
    lea r15, [rip + 1f]
    movq mm0, rax
1:  lea r15, [rip + 1f]
    emms
1:  clts
    mov rax, cr4
    and rax, ~0x200               # OSFXSR off: MMX still runs, the XMM forms do not
    mov cr4, rax
    mov rax, 5
    movq mm0, rax
    paddd mm0, mm0
    movq rax, mm0
    st rax
    lea r15, [rip + 1f]
    cvtpi2ps xmm0, mm0
1:  lea r15, [rip + 1f]
    movq2dq xmm0, mm0
1:  mov rax, cr4
    or rax, 0x200
    mov cr4, rax
    fninit
    fldcw [rip + cw_unmask_ze]
    fldz
    fld1
    fdiv st(0), st(1)             # unmasked #Z: pending, ES set
    fnstsw ax
    st rax
    lea r15, [rip + 1f]
    paddb mm0, mm1                # #MF (handler runs FNCLEX)
1:  paddb mm0, mm0                # runs now
    movq rax, mm0
    st rax
    fninit                        # (the MMX instruction left every tag valid)
    fldcw [rip + cw_unmask_ze]
    fldz
    fld1
    fdiv st(0), st(1)
    lea r15, [rip + 1f]
    emms                          # EMMS checks too
1:  fninit
    fldcw [rip + cw_unmask_ze]
    fldz
    fld1
    fdiv st(0), st(1)
    cvtpi2pd xmm1, [rip + ints]   # memory source: no MMX transition, no #MF
    movq rax, xmm1
    st rax
    lea r15, [rip + 1f]
    cvtpi2ps xmm1, [rip + ints]   # CVTPI2PS m64 is a transition: #MF
1:  fnclex
    lea r15, [rip + 1f]
    .byte 0x0f, 0x73, 0xd8, 0x04  # PSRLDQ without 66: #UD
1:  lea r15, [rip + 1f]
    .byte 0x0f, 0x6c, 0xc1        # PUNPCKLQDQ without 66: #UD
1:  lea r15, [rip + 1f]
    .byte 0x0f, 0x71, 0xf8, 0x04  # 0F 71 /7: #UD
1:  lea r15, [rip + 1f]
    .byte 0x0f, 0xe7, 0xc1        # MOVNTQ with a register destination: #UD
1:  lea r15, [rip + 1f]
    .byte 0x0f, 0xd6, 0xc1        # 0F D6 without prefix: #UD
1:  nop
  `, `
    cw_unmask_ze: .word 0x037b
    .balign 8
    ints: .long 3, -7
  `);
  assert.deepEqual(values.map((v) => v.toString(16)), [
    'ee06', 'ee06', 'ee07', 'ee07',
    'a',
    'ee06', 'ee06',
    (0x0004 | 0x0080 | 0x8000 | (6 << 11)).toString(16),
    'ee10', '14', 'ee10',
    '4008000000000000', 'ee10',
    'ee06', 'ee06', 'ee06', 'ee06', 'ee06',
  ]);
});

void test('64-bit and MMX<->XMM forms: MOVQ r64/m64, MOVD zero-extension, MOVNTQ, MASKMOVQ, MOVQ2DQ/MOVDQ2Q, CVT*PI*', async () => {
  const { values } = await run(`
    mov rax, 0x8877665544332211
    movq mm4, rax
    movq rbx, mm4
    st rbx
    movd ecx, mm4
    st rcx
    mov r8, -1
    movd mm5, r8d
    movq [r13], mm5
    add r13, 8
    movntq [r13], mm4
    add r13, 8
    movq rax, [rip + mask]
    movq mm6, rax
    mov qword ptr [r13], 0
    mov rdi, r13
    maskmovq mm4, mm6
    add r13, 8
    movdqa xmm9, [rip + xmmval]
    movq2dq xmm9, mm4
    movdqu [r13], xmm9
    add r13, 16
    movdq2q mm7, xmm9
    movq [r13], mm7
    add r13, 8
    movq mm0, [rip + ints]
    movdqa xmm10, [rip + xmmval]
    cvtpi2ps xmm10, mm0
    movdqu [r13], xmm10
    add r13, 16
    cvtpi2pd xmm11, mm0
    movdqu [r13], xmm11
    add r13, 16
    cvtps2pi mm1, [rip + floats]
    movq [r13], mm1
    add r13, 8
    cvttps2pi mm1, [rip + floats]
    movq [r13], mm1
    add r13, 8
    movapd xmm12, [rip + doubles]
    cvtpd2pi mm2, xmm12
    movq [r13], mm2
    add r13, 8
    cvttpd2pi mm2, [rip + doubles]
    movq [r13], mm2
    add r13, 8
    stmxcsr [r13]
    add r13, 8
    ldmxcsr [rip + mx_default]
    cvtps2pi mm3, [rip + denormals]   # denormal sources: PE only, no DE (float-to-integer conversions)
    movq [r13], mm3
    add r13, 8
    stmxcsr [r13]
    add r13, 8
  `, `
    mx_default: .long 0x1f80
    denormals: .long 0x00000001, 0x807fffff
    mask: .quad 0x80000080007f8000
    .balign 16
    xmmval: .quad 0xdeaddeaddeaddead, 0xbeefbeefbeefbeef
    ints: .long 3, -7
    .balign 16
    floats: .float 2.5, -1e10
    .balign 16
    doubles: .double -3.5, 3e9
  `);
  const f32 = (x: number): bigint => BigInt(new Uint32Array(new Float32Array([x]).buffer)[0]);
  const f64 = (x: number): bigint => new BigUint64Array(new Float64Array([x]).buffer)[0];
  assert.deepEqual(values.map((v) => v.toString(16)), [
    '8877665544332211', '44332211', 'ffffffff', '8877665544332211',
    '8800005500002200',
    '8877665544332211', '0', '8877665544332211',
    ((f32(-7) << 32n) | f32(3)).toString(16), 'beefbeefbeefbeef',
    f64(3).toString(16), f64(-7).toString(16),
    '8000000000000002', '8000000000000002',
    '80000000fffffffc', '80000000fffffffd',
    '1fa1',
    '0', '1fa0',
  ]);
});
