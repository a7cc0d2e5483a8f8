/**
 * x87 instructions on the soft CPU end to end: small 64-bit programs
 * assembled with `as` and run with runProgram(); stored results are checked
 * against values computed here (JS doubles, exact integers).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ASM_IDT_MACROS, ASM_STORE_MACRO, assemble, identityPageTables, longModeState, softRunner, type ProgramResult } from '../test-support.js';

const PRELUDE = `${ASM_STORE_MACRO}${ASM_IDT_MACROS}
  mov r13, 0x200000
`;

async function run64(body: string): Promise<{ result: ProgramResult; values: bigint[] }> {
  const code = assemble(PRELUDE + body + '\nout 0xf4, al\n', 64);
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

const f64 = (v: bigint): number => new Float64Array(new BigUint64Array([v]).buffer)[0];
const bits64 = (x: number): bigint => new BigUint64Array(new Float64Array([x]).buffer)[0];

void test('x87 loads, arithmetic, stores, integer and BCD conversions in 64-bit mode', async () => {
  const { values } = await run64(`
    fninit
    fld1
    fldpi
    fmulp st(1), st
    fstp qword ptr [r13]
    add r13, 8
    mov qword ptr [0x210000], 1000000007
    mov qword ptr [0x220000], 0
    mov qword ptr [0x220008], 0
    fild qword ptr [0x210000]
    mov dword ptr [0x210008], 3
    fidiv dword ptr [0x210008]
    fistp qword ptr [r13]
    add r13, 8
    mov rax, 0x4005999999999999
    mov [0x210010], rax
    fld qword ptr [0x210010]
    fisttp qword ptr [r13]
    add r13, 8
    fld qword ptr [0x210010]
    fchs
    fisttp qword ptr [r13]
    add r13, 8
    mov rax, 0x0000001234567890
    mov [0x210020], rax
    mov word ptr [0x210028], 0x8000
    fbld tbyte ptr [0x210020]
    fistp qword ptr [r13]
    add r13, 8
    mov qword ptr [0x210030], -987654321
    fild qword ptr [0x210030]
    fbstp tbyte ptr [0x210040]
    mov rax, [0x210040]
    st rax
    movzx rax, word ptr [0x210048]
    st rax
    fld1
    fld qword ptr [0x210010]
    push 0x27f
    fldcw [rsp]
    pop rax
    fsqrt
    fstp qword ptr [r13]
    add r13, 8
    fnstsw ax
    st rax
    fstp st(0)
    fnstsw ax
    st rax
  `);
  assert.equal(f64(values[0]), Math.PI);
  assert.equal(values[1], 333333336n, '1000000007 / 3 rounded to nearest');
  assert.equal(values[2], 2n, 'FISTTP truncates 2.7');
  assert.equal(BigInt.asIntN(64, values[3]), -2n, 'FISTTP truncates -2.7');
  assert.equal(BigInt.asIntN(64, values[4]), -1234567890n, 'FBLD');
  assert.equal(values[5], 0x0000000987654321n, 'FBSTP digits');
  assert.equal(values[6], 0x8000n, 'FBSTP sign');
  assert.equal(values[7], bits64(Math.sqrt(f64(0x4005999999999999n))), 'FSQRT at 53-bit precision control equals the double square root');
  assert.equal(Number(values[8]) & 0x3800, 7 << 11, 'TOP = 7 with one value on the stack');
  assert.equal(Number(values[9]) & 0x3800, 0, 'TOP = 0 after popping it');
});

void test('x87 compares (FCOMI/FUCOMIP/FCOM/FTST/FXAM), FCMOVcc, FXCH, constants, FNSTENV/FLDENV', async () => {
  const { values } = await run64(`
    fninit
    fld1
    fldz
    fcomi st, st(1)
    pushfq
    pop rax
    and rax, 0x8d5
    st rax
    fxch st(1)
    fcom st(1)
    fnstsw ax
    and rax, 0x4500
    st rax
    ftst
    fnstsw ax
    and rax, 0x4500
    st rax
    fxam
    fnstsw ax
    and rax, 0x4700
    st rax
    stc
    fcmovb st, st(1)
    fstp qword ptr [r13]
    add r13, 8
    fldpi
    fld st(0)
    fucomip st, st(1)
    pushfq
    pop rax
    and rax, 0x8d5
    st rax
    fldl2e
    fnstenv [0x220000]
    fninit
    fldenv [0x220000]
    fstp qword ptr [r13]
    add r13, 8
    fnstcw [r13]
    add r13, 8
  `);
  assert.equal(values[0], 0x01n, '0 < 1: CF');
  assert.equal(values[1], 0x0000n, '1 > 0: C3=C2=C0=0');
  assert.equal(values[2], 0x0000n, 'FTST 1 > 0');
  assert.equal(values[3], 0x0400n, 'FXAM: positive normal');
  assert.equal(f64(values[4]), 0, 'FCMOVB moved ST1 (0) into ST0 when CF=1');
  assert.equal(values[5], 0x40n, 'FUCOMIP equal: ZF');
  assert.equal(f64(values[6]), Math.LOG2E, 'FLDL2E survives FNSTENV/FNINIT/FLDENV');
  assert.equal(values[7], 0x37fn, 'FNSTENV masked exceptions; FLDENV restored the control word');
});

void test('x87 exceptions: #MF at the next waiting instruction (CR0.NE=1), #NM with CR0.EM, #GP store leaves the stack unchanged', async () => {
  const { values } = await run64(`
    gate 16, mf_handler
    gate 7, nm_handler
    gate 13, gp_handler
    load_idt
    fninit
    push 0x37b
    fldcw [rsp]
    pop rax
    fld1
    fldz
    fdivr st, st(1)
    fnstsw ax
    st rax
    lea r15, [rip + r1]
    fwait
  r1:
    fstp qword ptr [r13]
    add r13, 8
    fninit
    fld1
    mov rax, 0x8000000000000000
    lea r15, [rip + r2]
    fstp qword ptr [rax]
  r2:
    fnstsw ax
    st rax
    mov rax, cr0
    or rax, 4
    mov cr0, rax
    lea r15, [rip + r3]
    fld1
  r3:
    jmp done
  mf_handler:
    mov rax, 16
    st rax
    fnclex
    mov [rsp], r15
    iretq
  nm_handler:
    mov rax, 7
    st rax
    mov rax, cr0
    and rax, ~4
    mov cr0, rax
    mov [rsp], r15
    iretq
  gp_handler:
    mov rax, 13
    st rax
    add rsp, 8
    mov [rsp], r15
    iretq
  done:
  `);
  assert.equal(Number(values[0]) & 0x80ff, 0x8084, 'unmasked ZE sets ZE, ES and B');
  assert.equal(values[1], 16n, '#MF delivered at FWAIT');
  assert.equal(f64(values[2]), 0, 'the unmasked zero divide left ST0 (0.0) unchanged');
  assert.equal(values[3], 13n, '#GP for a non-canonical store');
  assert.equal(Number(values[4]) & 0x3800, 7 << 11, 'the faulting FSTP did not pop');
  assert.equal(values[5], 7n, '#NM with CR0.EM');
});

void test('x87 transcendentals follow the float64 Math functions; |x| ≥ 2^63 sets C2 and leaves ST0', async () => {
  const { values } = await run64(`
    fninit
    mov rax, 0x3fe0000000000000
    mov [0x210000], rax
    mov rax, 0x4020000000000000
    mov [0x210008], rax
    mov rax, 0x4008000000000000
    mov [0x210010], rax
    fld qword ptr [0x210000]
    fsin
    fstp qword ptr [r13]
    add r13, 8
    fld qword ptr [0x210000]
    fcos
    fstp qword ptr [r13]
    add r13, 8
    fld qword ptr [0x210000]
    fptan
    fstp qword ptr [r13]
    add r13, 8
    fstp qword ptr [r13]
    add r13, 8
    fld1
    fld1
    fpatan
    fstp qword ptr [r13]
    add r13, 8
    fld qword ptr [0x210010]
    fld qword ptr [0x210008]
    fyl2x
    fstp qword ptr [r13]
    add r13, 8
    fld qword ptr [0x210000]
    f2xm1
    fstp qword ptr [r13]
    add r13, 8
    fld qword ptr [0x210000]
    fsincos
    fstp qword ptr [r13]
    add r13, 8
    fstp qword ptr [r13]
    add r13, 8
    mov rax, 0x43e0000000000000
    mov [0x210018], rax
    fld qword ptr [0x210018]
    fsin
    fnstsw ax
    and rax, 0x400
    st rax
    fstp qword ptr [r13]
    add r13, 8
  `);
  const d = values.map(f64);
  assert.equal(d[0], Math.sin(0.5));
  assert.equal(d[1], Math.cos(0.5));
  assert.equal(d[2], 1, 'FPTAN pushes 1.0');
  assert.equal(d[3], Math.tan(0.5));
  assert.equal(d[4], Math.PI / 4);
  assert.equal(d[5], 9, '3 × log2(8)');
  assert.equal(d[6], Math.expm1(0.5 * Math.LN2), '2^0.5 - 1');
  assert.equal(d[7], Math.cos(0.5), 'FSINCOS: cosine on top');
  assert.equal(d[8], Math.sin(0.5));
  assert.equal(values[9], 0x400n, 'C2 for an out-of-range FSIN operand');
  assert.equal(d[10], 2 ** 63, 'operand unchanged');
});

void test('FXSAVE/FXRSTOR carry the x87 state (through sse/x87-bridge.ts)', async () => {
  const { values } = await run64(`
    mov rax, cr4
    or rax, 0x600
    mov cr4, rax
    fninit
    fldpi
    fld1
    fxsave [0x230000]
    mov rax, [0x230000]
    st rax
    mov rax, [0x230020]
    st rax
    movzx rax, word ptr [0x230028]
    st rax
    fninit
    fxrstor [0x230000]
    fstp st(0)
    fstp qword ptr [r13]
    add r13, 8
    fnstsw ax
    and rax, 0x3800
    st rax
  `);
  assert.equal(values[0] & 0xffffffffn, 0x3000037fn, 'FCW and FSW (TOP = 6)');
  assert.equal((values[0] >> 32n) & 0xffn, 0xc0n, 'abridged tag: R6 and R7 in use');
  assert.equal(values[1], 0x8000000000000000n, 'ST0 = 1.0 significand');
  assert.equal(values[2], 0x3fffn, 'ST0 = 1.0 exponent');
  assert.equal(f64(values[3]), Math.PI, 'FXRSTOR restored ST1 = pi');
  assert.equal(values[4], 0n, 'stack empty again');
});
