/**
 * SSE unit tests on the soft CPU in 64-bit mode: REX.W and XMM8-15 forms
 * (the QEMU comparison runs 32-bit code), exceptions (#GP alignment, #XM and
 * #UD for unmasked SIMD exceptions, #NM, reserved MXCSR bits), FXSAVE /
 * FXRSTOR, the two-NaN rule, the denormal flag, and CpuState.fx.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ASM_IDT_MACROS, ASM_STORE_MACRO, assemble, identityPageTables, longModeState, softRunner, type ProgramResult } from '../test-support.js';

const PRELUDE = `${ASM_STORE_MACRO}${ASM_IDT_MACROS}    mov r13, 0x200000
    gate 6, ud_handler
    gate 7, nm_handler
    gate 13, gp_handler
    gate 19, xm_handler
    sub rsp, 16
    mov word ptr [rsp], 0xfff
    mov rax, 0x300000
    mov qword ptr [rsp+2], rax
    lidt [rsp]
    add rsp, 16
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
gp_handler:
    add rsp, 8
    mov rax, 0xee0d
    st rax
    mov [rsp], r15
    iretq
xm_handler:
    mov rax, 0xee13
    st rax
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

const bits64 = (x: number): bigint => new BigUint64Array(new Float64Array([x]).buffer)[0];
const bits32 = (x: number): bigint => BigInt(new Uint32Array(new Float32Array([x]).buffer)[0]);

void test('64-bit forms: MOVQ r64<->xmm, CVTSI2SD/SS r64, CVT(T)SD2SI r64 incl. integer indefinite, XMM8-15', async () => {
  const { values } = await run(`
    mov rax, 0x123456789abcdef0
    movq xmm9, rax
    movq rbx, xmm9
    st rbx
    mov rax, -3
    cvtsi2sd xmm10, rax
    movq rbx, xmm10
    st rbx
    mov rax, 0x7fffffffffffffff
    cvtsi2ss xmm11, rax
    movd ebx, xmm11
    st rbx
    stmxcsr [r13]
    add r13, 8
    mov rax, 0x20000000000001
    ldmxcsr [rip + mx_up]
    cvtsi2sd xmm12, rax
    movq rbx, xmm12
    st rbx
    ldmxcsr [rip + mx_default]
    movsd xmm13, [rip + big]
    cvttsd2si rax, xmm13
    st rax
    stmxcsr [r13]
    add r13, 8
    movsd xmm14, [rip + minus_two_and_half]
    cvtsd2si rax, xmm14
    st rax
    cvtsd2si eax, xmm14
    st rax
    movdqa xmm15, [rip + ints]
    paddq xmm15, xmm15
    movq rax, xmm15
    st rax
    pextrw eax, xmm15, 7
    st rax
  `, `
    mx_up: .long 0x5f80
    mx_default: .long 0x1f80
    .balign 8
    big: .double 1e19
    minus_two_and_half: .double -2.5
    .balign 16
    ints: .quad 0x80000000ffffffff, 0x7fff000000000000
  `);
  assert.equal(values[0], 0x123456789abcdef0n);
  assert.equal(values[1], bits64(-3));
  assert.equal(values[2], 0x5f000000n, '2^63 - 1 rounds to 2^63 in float32');
  assert.equal(values[3] & 0xffffn, 0x1fa0n, 'PE set by the inexact conversion');
  assert.equal(values[4], bits64(2 ** 53 + 2), '2^53 + 1 rounds up under RC=up');
  assert.equal(values[5], 0x8000000000000000n, 'integer indefinite');
  assert.equal(values[6] & 0xffffn, 0x1f81n, 'IE');
  assert.equal(values[7], BigInt.asUintN(64, -2n), '-2.5 rounds to even');
  assert.equal(values[8], 0xfffffffen);
  assert.equal(values[9], 0x00000001fffffffen, 'PADDQ carries across the dword boundary');
  assert.equal(values[10], 0xfffen);
});

void test('exceptions: #GP on misaligned MOVAPS, #XM / #UD for unmasked exceptions (destination kept), #NM, LDMXCSR reserved bits', async () => {
  const { values, result } = await run(`
    lea r15, [rip + 1f]
    movaps xmm0, [rip + data + 4]
1:  movups xmm0, [rip + data + 4]
    movd eax, xmm0
    st rax
    movss xmm1, [rip + one]
    xorps xmm2, xmm2
    movaps xmm3, xmm1
    ldmxcsr [rip + mx_zm_clear]
    lea r15, [rip + 2f]
    divss xmm3, xmm2
2:  movd eax, xmm3
    st rax
    stmxcsr [r13]
    add r13, 8
    mov rax, cr4
    and rax, ~0x400
    mov cr4, rax
    lea r15, [rip + 3f]
    divss xmm3, xmm2
3:  ldmxcsr [rip + mx_default]
    mov rax, cr0
    or rax, 8
    mov cr0, rax
    lea r15, [rip + 4f]
    addps xmm0, xmm1
4:  clts
    lea r15, [rip + 5f]
    ldmxcsr [rip + mx_reserved]
5:  stmxcsr [r13]
    add r13, 8
    lea r15, [rip + 6f]
    fxsave [rip + fxarea + 8]
6:  nop
  `, `
    data: .long 0x11111111, 0x22222222, 0x33333333, 0x44444444, 0x55555555
    one: .float 1.0
    mx_zm_clear: .long 0x1d80
    mx_default: .long 0x1f80
    mx_reserved: .long 0x11f80
    .balign 16
    fxarea: .space 528
  `);
  assert.deepEqual(values.map((v) => v & 0xffffffffn), [
    0xee0dn, 0x22222222n,
    0xee13n, 0x3f800000n, 0x1d84n, // #XM, xmm3 unchanged, ZE recorded
    0xee06n, // #UD without OSXMMEXCPT
    0xee07n, // #NM with CR0.TS
    0xee0dn, 0x1f80n, // reserved MXCSR bit
    0xee0dn, // misaligned FXSAVE
  ]);
  assert.equal(result.state.fx?.length, 512);
});

void test('FXSAVE/FXRSTOR round trip; image layout; CpuState.fx', async () => {
  const { values, result } = await run(`
    movdqa xmm0, [rip + pattern]
    movdqa xmm15, [rip + pattern + 16]
    ldmxcsr [rip + mx]
    fxsave64 [rip + area]
    pxor xmm0, xmm0
    pxor xmm15, xmm15
    ldmxcsr [rip + mx_default]
    fxrstor64 [rip + area]
    movq rax, xmm0
    st rax
    movhlps xmm1, xmm15
    movq rax, xmm1
    st rax
    stmxcsr [r13]
    add r13, 8
    mov eax, [rip + area + 24]
    st rax
    mov eax, [rip + area + 28]
    st rax
    mov rax, [rip + area + 160]
    st rax
    mov rax, [rip + area + 160 + 15 * 16 + 8]
    st rax
  `, `
    pattern: .quad 0x0123456789abcdef, 0x1122334455667788, 0x99aabbccddeeff00, 0xcafef00dd00dfeed
    mx: .long 0x7fa0
    mx_default: .long 0x1f80
    .balign 16
    area: .space 512
  `);
  assert.deepEqual(values, [0x0123456789abcdefn, 0xcafef00dd00dfeedn, 0x7fa0n, 0x7fa0n, 0xffffn, 0x0123456789abcdefn, 0xcafef00dd00dfeedn]);
  const fx = result.state.fx;
  assert.ok(fx !== undefined);
  const dv = new DataView(fx.buffer, fx.byteOffset, fx.byteLength);
  assert.equal(dv.getUint32(24, true), 0x7fa0, 'MXCSR in CpuState.fx');
  assert.equal(dv.getBigUint64(160 + 15 * 16 + 8, true), 0xcafef00dd00dfeedn, 'XMM15 in CpuState.fx');

  // setState loads fx: a program that only reads XMM3 and MXCSR.
  const image = new Uint8Array(512);
  const iv = new DataView(image.buffer);
  iv.setUint32(24, 0x3f80, true);
  iv.setBigUint64(160 + 3 * 16, 0x4242424242424242n, true);
  const state = longModeState(0x100000, 0x9000);
  state.cr4 |= 0x600n;
  state.fx = image;
  const code = assemble('movq rax, xmm3\n stmxcsr [rsp - 8]\n mov ebx, [rsp - 8]\n out 0xf4, al', 64, 0x100000);
  const r = await softRunner({ code, loadAddress: 0x100000, state, memory: identityPageTables(0x9000) });
  assert.equal(r.state.gpr.rax, 0x4242424242424242n);
  assert.equal(r.state.gpr.rbx, 0x3f80n);
});

void test('NaN rules: first operand NaN wins (SDM table 4-7), SNaN quieted, default NaN, MIN/MAX return the source; DE for denormals', async () => {
  const { values } = await run(`
    movsd xmm0, [rip + snan_a]
    addsd xmm0, [rip + qnan_b]
    movq rax, xmm0
    st rax
    movsd xmm0, [rip + qnan_b]
    addsd xmm0, [rip + snan_a]
    movq rax, xmm0
    st rax
    movss xmm0, [rip + inf]
    subss xmm0, [rip + inf]
    movd eax, xmm0
    st rax
    movss xmm0, [rip + qnan32]
    minss xmm0, [rip + one]
    movd eax, xmm0
    st rax
    stmxcsr [r13]
    add r13, 8
    ldmxcsr [rip + mx_default]
    movss xmm0, [rip + denormal]
    addss xmm0, [rip + one]
    stmxcsr [r13]
    add r13, 8
    ldmxcsr [rip + mx_daz]
    movss xmm0, [rip + denormal]
    addss xmm0, [rip + denormal]
    movd eax, xmm0
    st rax
    stmxcsr [r13]
    add r13, 8
  `, `
    .balign 8
    snan_a: .quad 0x7ff0000000000123
    qnan_b: .quad 0xfff8000000000456
    inf: .float inf
    qnan32: .long 0x7fc00001
    one: .float 1.0
    denormal: .long 0x00000010
    mx_default: .long 0x1f80
    mx_daz: .long 0x1fc0
  `);
  assert.deepEqual(values, [
    0x7ff8000000000123n, // SNaN first operand, quieted
    0xfff8000000000456n, // QNaN first operand wins over the second's SNaN
    0xffc00000n, // inf - inf: the default QNaN
    bits32(1), // MINSS with a NaN: the second (source) operand
    0x1f81n, // IE (QNaN counts for MIN)
    0x1fa2n, // 1 + denormal: DE and PE
    0n, 0x1fc0n, // DAZ: denormals are zero, no DE
  ]);
});

void test('RCPPS/RSQRTPS within the architectural 1.5 * 2^-12 relative error; CLFLUSH faults like a read; MASKMOVDQU', async () => {
  const { values } = await run(`
    movaps xmm1, [rip + inputs]
    rcpps xmm0, xmm1
    movaps [rip + out], xmm0
    rsqrtps xmm2, xmm1
    movaps [rip + out + 16], xmm2
    movaps xmm3, [rip + bytes]
    movaps xmm4, [rip + mask]
    lea rdi, [rip + target]
    maskmovdqu xmm3, xmm4
    mov rax, [rip + target]
    st rax
    mov rax, [rip + target + 8]
    st rax
    lea r15, [rip + 1f]
    mov rax, 0x8000000000001000
    clflush [rax]
1:  mov rax, [rip + out]
    st rax
    mov rax, [rip + out + 8]
    st rax
    mov rax, [rip + out + 16]
    st rax
    mov rax, [rip + out + 24]
    st rax
  `, `
    .balign 16
    inputs: .float 3.0, 0.1, 1e-30, 7.5
    out: .space 32
    bytes: .byte 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16
    mask: .byte 0x80, 0, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80
    target: .quad 0xaaaaaaaaaaaaaaaa, 0xaaaaaaaaaaaaaaaa
  `);
  assert.deepEqual(values.slice(0, 2), [0xaaaaaaaaaa03aa01n, 0x10aaaaaaaaaaaaaan]);
  assert.equal(values[2], 0xee0dn, 'CLFLUSH of a non-canonical address: #GP');
  const lanes = new Float32Array(new BigUint64Array(values.slice(3, 7)).buffer);
  const inputs = [3.0, 0.1, 1e-30, 7.5].map(Math.fround);
  inputs.forEach((x, i) => {
    assert.ok(Math.abs(lanes[i] * x - 1) <= 1.5 * 2 ** -12, `rcp(${x}) = ${lanes[i]}`);
    assert.ok(Math.abs(lanes[4 + i] * Math.sqrt(x) - 1) <= 1.5 * 2 ** -12, `rsqrt(${x}) = ${lanes[4 + i]}`);
  });
});
