/**
 * Test support (not used by the engine): generates a multiboot test program
 * that runs a table of SSE instructions and prints every result to COM1, so
 * the soft engine's output can be compared byte for byte with QEMU TCG's.
 *
 * Each case loads MXCSR, XMM0 and XMM1 (and EAX) from its data record, runs
 * one instruction, and prints XMM0, EAX, the arithmetic EFLAGS and MXCSR as
 * one hex line. The program runs in 32-bit protected mode with CR4.OSFXSR
 * and CR4.OSXMMEXCPT set and every SIMD exception masked.
 */

import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SseCase {
  /**
   * Instruction text (Intel syntax, `;` separates instructions); operands: xmm0 (dest), xmm1 (source), eax,
   * `[src]` (16-byte aligned copy of xmm1), `[dst]` (48 scratch bytes), `[fxarea]` (512 bytes).
   */
  insn: string;
  mxcsr: number;
  /** 16 bytes each. */
  a: Uint8Array;
  b: Uint8Array;
  eax: number;
}

/** A small deterministic PRNG (xorshift32). */
export class Rng {
  constructor(private state = 0x12345678) {}
  next(): number {
    let x = this.state;
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    this.state = x;
    return x >>> 0;
  }
  pick<T>(list: readonly T[]): T {
    return list[this.next() % list.length];
  }
}

const F32_SPECIALS = [
  0, 0x80000000, 0x3f800000, 0xbf800000, 0x3fc00000, 0x40400000, 0x3eaaaaab, 0x7f7fffff, 0xff7fffff, 0x00800000,
  0x80800000, 0x00000001, 0x007fffff, 0x807ffffe, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00001, 0x7f800001,
  0xff812345, 0x4b800001, 0x4f000000, 0xcf000000, 0x4effffff, 0x40200000, 0xc0200000, 0x40600000, 0x3f000000,
  0xbf000000, 0x5f000000, 0xdf000000, 0x0c000000, 0x33d6bf95, 0x7149f2ca, 0x01000001, 0x3fffffff,
  0x3f7fffff, 0x3f800001, 0x00800001, 0x80800001, 0x00400000, 0x3f7ffffe,
];

const F64_SPECIALS: Array<[number, number]> = [
  [0, 0], [0, 0x80000000], [0, 0x3ff00000], [0, 0xbff00000], [0, 0x3ff80000], [0x55555555, 0x3fd55555],
  [0xffffffff, 0x7fefffff], [0xffffffff, 0xffefffff], [0, 0x00100000], [0, 0x80100000], [1, 0], [0xffffffff, 0x000fffff],
  [0, 0x7ff00000], [0, 0xfff00000], [0, 0x7ff80000], [1, 0xfff80000], [1, 0x7ff00000], [0x12345, 0xfff01234],
  [0, 0x41e00000], [0, 0xc1e00000], [0xfffff000, 0x41dfffff], [0, 0x43e00000], [0, 0xc3e00000], [0, 0x40040000],
  [0, 0xc0040000], [0, 0x400c0000], [1, 0x3ff00000], [0x20000000, 0x3ff00000], [0, 0x47f00000], [0, 0x38100000],
  [0xe0000000, 0x36a00000], [1, 0x43300000], [0x80000000, 0x41dfffff],
  [0xffffffff, 0x3fefffff], [1, 0x00100000], [1, 0x80100000], [0, 0x00080000], [0xfffffffe, 0x3fefffff],
];

export function f32Lanes(rng: Rng): Uint8Array {
  const out = new Uint8Array(16);
  const v = new DataView(out.buffer);
  for (let i = 0; i < 4; i++) {
    const r = rng.next();
    const w = r % 4 === 0 ? rng.next() : rng.pick(F32_SPECIALS);
    v.setUint32(i * 4, w >>> 0, true);
  }
  return out;
}

export function f64Lanes(rng: Rng): Uint8Array {
  const out = new Uint8Array(16);
  const v = new DataView(out.buffer);
  for (let i = 0; i < 2; i++) {
    const r = rng.next();
    const [lo, hi] = r % 4 === 0 ? [rng.next(), rng.next()] : rng.pick(F64_SPECIALS);
    v.setUint32(i * 8, lo >>> 0, true);
    v.setUint32(i * 8 + 4, hi >>> 0, true);
  }
  return out;
}

export function intLanes(rng: Rng): Uint8Array {
  const out = new Uint8Array(16);
  const kind = rng.next() % 3;
  for (let i = 0; i < 16; i++) {
    const r = rng.next();
    out[i] = kind === 0 ? r & 0xff : kind === 1 ? rng.pick([0, 0x7f, 0x80, 0xff, 1, 0xfe]) : (r & 1 ? 0xff : 0);
  }
  return out;
}

export const MODES = [0x1f80, 0x3f80, 0x5f80, 0x7f80, 0x9f80 | 0x40];

const FP_PS = ['addps', 'subps', 'mulps', 'divps', 'minps', 'maxps', 'sqrtps', 'addsubps', 'haddps', 'hsubps'];
const FP_SS = ['addss', 'subss', 'mulss', 'divss', 'minss', 'maxss', 'sqrtss'];
const FP_PD = ['addpd', 'subpd', 'mulpd', 'divpd', 'minpd', 'maxpd', 'sqrtpd', 'addsubpd', 'haddpd', 'hsubpd'];
const FP_SD = ['addsd', 'subsd', 'mulsd', 'divsd', 'minsd', 'maxsd', 'sqrtsd'];
const CVT_FROM_PS = ['cvtps2pd xmm0, xmm1', 'cvtss2sd xmm0, xmm1', 'cvtps2dq xmm0, xmm1', 'cvttps2dq xmm0, xmm1',
  'cvtss2si eax, xmm1', 'cvttss2si eax, xmm1', 'comiss xmm0, xmm1', 'ucomiss xmm0, xmm1'];
const CVT_FROM_PD = ['cvtpd2ps xmm0, xmm1', 'cvtsd2ss xmm0, xmm1', 'cvtpd2dq xmm0, xmm1', 'cvttpd2dq xmm0, xmm1',
  'cvtsd2si eax, xmm1', 'cvttsd2si eax, xmm1', 'comisd xmm0, xmm1', 'ucomisd xmm0, xmm1'];
const CVT_FROM_INT = ['cvtdq2ps xmm0, xmm1', 'cvtdq2pd xmm0, xmm1', 'cvtsi2ss xmm0, eax', 'cvtsi2sd xmm0, eax'];
const LOGIC = ['andps', 'andnps', 'orps', 'xorps', 'andpd', 'andnpd', 'orpd', 'xorpd', 'unpcklps', 'unpckhps', 'unpcklpd',
  'unpckhpd', 'movss', 'movsd', 'movhlps', 'movlhps', 'movsldup', 'movshdup', 'movddup', 'movaps', 'movq'];
const INT_OPS = ['paddb', 'paddw', 'paddd', 'paddq', 'psubb', 'psubw', 'psubd', 'psubq', 'paddsb', 'paddsw', 'paddusb',
  'paddusw', 'psubsb', 'psubsw', 'psubusb', 'psubusw', 'pmullw', 'pmulhw', 'pmulhuw', 'pmuludq', 'pmaddwd', 'pand',
  'pandn', 'por', 'pxor', 'pcmpeqb', 'pcmpeqw', 'pcmpeqd', 'pcmpgtb', 'pcmpgtw', 'pcmpgtd', 'pmaxub', 'pminub', 'pmaxsw',
  'pminsw', 'pavgb', 'pavgw', 'psadbw', 'punpcklbw', 'punpcklwd', 'punpckldq', 'punpcklqdq', 'punpckhbw', 'punpckhwd',
  'punpckhdq', 'punpckhqdq', 'packsswb', 'packuswb', 'packssdw', 'psllw', 'pslld', 'psllq', 'psrlw', 'psrld', 'psrlq',
  'psraw', 'psrad'];

/**
 * QEMU 7.2 picks between two NaN operands by the x87 rule (larger
 * significand); SSE hardware returns the first source operand (SDM vol. 1
 * table 4-7). Operations that combine two NaNs are left to the unit tests:
 * this replaces the second NaN of such a pair by 1.0.
 */
function avoidTwoNaNs(insn: string, a: Uint8Array, b: Uint8Array): void {
  const m = /^(\w+)/.exec(insn);
  const op = m ? m[1] : '';
  if (!/^(add|sub|mul|div|hadd|hsub|addsub)(ps|pd|ss|sd)$/.test(op)) return;
  const double = op.endsWith('pd') || op.endsWith('sd');
  const va = new DataView(a.buffer);
  const vb = new DataView(b.buffer);
  const isNaN = (v: DataView, i: number): boolean => (double
    ? ((v.getUint32(i * 8 + 4, true) & 0x7fffffff) > 0x7ff00000 || ((v.getUint32(i * 8 + 4, true) & 0x7fffffff) === 0x7ff00000 && v.getUint32(i * 8, true) !== 0))
    : (v.getUint32(i * 4, true) & 0x7fffffff) > 0x7f800000);
  const setOne = (v: DataView, i: number): void => {
    if (double) { v.setUint32(i * 8, 0, true); v.setUint32(i * 8 + 4, 0x3ff00000, true); } else v.setUint32(i * 4, 0x3f800000, true);
  };
  const lanes = double ? 2 : 4;
  if (op.startsWith('hadd') || op.startsWith('hsub')) {
    for (const v of [va, vb]) for (let i = 0; i < lanes; i += 2) if (isNaN(v, i) && isNaN(v, i + 1)) setOne(v, i + 1);
  } else {
    for (let i = 0; i < lanes; i++) if (isNaN(va, i) && isNaN(vb, i)) setOne(vb, i);
  }
}

/** The case table: every instruction class with special and random operands under all rounding modes. */
export function buildCases(seed = 0x5eed1234, perOp = 6): SseCase[] {
  const rng = new Rng(seed);
  const cases: SseCase[] = [];
  const add = (insn: string, mxcsr: number, a: Uint8Array, b: Uint8Array, eax = 0x5a5a5a5a): void => {
    avoidTwoNaNs(insn, a, b);
    cases.push({ insn, mxcsr, a, b, eax });
  };
  for (const mode of MODES) {
    for (let k = 0; k < perOp; k++) {
      for (const op of [...FP_PS, ...FP_SS]) add(`${op} xmm0, xmm1`, mode, f32Lanes(rng), f32Lanes(rng));
      for (const op of [...FP_PD, ...FP_SD]) add(`${op} xmm0, xmm1`, mode, f64Lanes(rng), f64Lanes(rng));
      for (const insn of CVT_FROM_PS) add(insn, mode, f32Lanes(rng), f32Lanes(rng));
      for (const insn of CVT_FROM_PD) add(insn, mode, f64Lanes(rng), f64Lanes(rng));
      for (const insn of CVT_FROM_INT) {
        const b = intLanes(rng);
        add(insn, mode, f32Lanes(rng), b, rng.pick([rng.next(), 0x7fffffff, 0x80000000, 16777217, 3, -5 >>> 0]));
      }
      const pred = k % 8;
      add(`cmpps xmm0, xmm1, ${pred}`, mode, f32Lanes(rng), f32Lanes(rng));
      add(`cmpss xmm0, xmm1, ${pred}`, mode, f32Lanes(rng), f32Lanes(rng));
      add(`cmppd xmm0, xmm1, ${pred}`, mode, f64Lanes(rng), f64Lanes(rng));
      add(`cmpsd xmm0, xmm1, ${pred}`, mode, f64Lanes(rng), f64Lanes(rng));
      add(`addps xmm0, [src]`, mode, f32Lanes(rng), f32Lanes(rng));
      add(`mulsd xmm0, qword ptr [src]`, mode, f64Lanes(rng), f64Lanes(rng));
    }
  }
  for (let k = 0; k < perOp; k++) {
    for (const op of LOGIC) add(`${op} xmm0, xmm1`, 0x1f80, intLanes(rng), intLanes(rng));
    for (const op of INT_OPS) add(`${op} xmm0, xmm1`, 0x1f80, intLanes(rng), intLanes(rng));
    add(`pcmpeqb xmm0, [src]`, 0x1f80, intLanes(rng), intLanes(rng));
    const imm = rng.next() & 0xff;
    const sh = rng.pick([0, 1, 7, 8, 15, 16, 31, 32, 33, 63, 64, 200]);
    for (const op of ['psllw', 'pslld', 'psllq', 'psrlw', 'psrld', 'psrlq', 'psraw', 'psrad', 'pslldq', 'psrldq']) {
      add(`${op} xmm0, ${sh}`, 0x1f80, intLanes(rng), intLanes(rng));
    }
    for (const op of ['pshufd', 'pshuflw', 'pshufhw', 'shufps', 'shufpd']) add(`${op} xmm0, xmm1, ${imm}`, 0x1f80, intLanes(rng), intLanes(rng));
    add(`pinsrw xmm0, eax, ${imm & 7}`, 0x1f80, intLanes(rng), intLanes(rng), rng.next());
    add(`pextrw eax, xmm1, ${imm & 7}`, 0x1f80, intLanes(rng), intLanes(rng));
    for (const insn of ['movmskps eax, xmm1', 'movmskpd eax, xmm1', 'pmovmskb eax, xmm1', 'movd eax, xmm1', 'movd xmm0, eax',
      'movq xmm0, xmm1', 'movdqu xmm0, [src + 1]', 'lddqu xmm0, [src + 3]', 'movlps xmm0, [src]', 'movhps xmm0, [src]',
      'movlpd xmm0, [src + 8]', 'movhpd xmm0, [src + 8]', 'movss xmm0, [src + 4]', 'movsd xmm0, [src + 8]', 'movq xmm0, [src + 8]']) {
      add(insn, 0x1f80, intLanes(rng), intLanes(rng), rng.next());
    }
    // Stores: through memory back into XMM0.
    for (const insn of ['movaps [dst], xmm1', 'movntps [dst], xmm1', 'movntdq [dst], xmm1', 'movapd [dst], xmm1',
      'movdqa [dst], xmm1', 'movlps [dst + 4], xmm1', 'movhps [dst + 8], xmm1', 'movlpd [dst], xmm1', 'movhpd [dst + 2], xmm1',
      'movss [dst + 4], xmm1', 'movsd [dst + 8], xmm1', 'movq [dst + 6], xmm1', 'movd [dst + 12], xmm1', 'movnti [dst + 4], eax']) {
      add(`${insn}; movdqa xmm0, [dst]`, 0x1f80, intLanes(rng), intLanes(rng), rng.next());
    }
    for (const insn of ['movups [dst + 3], xmm1', 'movdqu [dst + 5], xmm1', 'movupd [dst + 1], xmm1']) {
      add(`${insn}; movdqu xmm0, [dst + ${k % 4}]`, 0x1f80, intLanes(rng), intLanes(rng), rng.next());
    }
    add('lea edi, [dst + 16]; maskmovdqu xmm1, xmm0; movdqa xmm0, [dst + 16]', 0x1f80, intLanes(rng), intLanes(rng));
    // FXSAVE: bytes 16-31 hold FDP, MXCSR and MXCSR_MASK; then XMM1's image; FXRSTOR brings XMM0 and MXCSR back.
    add('fxsave [fxarea]; movdqa xmm0, [fxarea + 16]', MODES[k % MODES.length], intLanes(rng), intLanes(rng));
    add('fxsave [fxarea]; movdqa xmm0, [fxarea + 176]', 0x1f80, intLanes(rng), intLanes(rng));
    add('fxsave [fxarea]; pxor xmm0, xmm0; ldmxcsr [fxarea + 28]; fxrstor [fxarea]', MODES[k % MODES.length], intLanes(rng), intLanes(rng));
  }
  return cases;
}

/** Bytes as a GNU as `.byte` operand list. */
export function hexBytes(bytes: Uint8Array): string {
  return Array.from(bytes, (x) => '0x' + x.toString(16)).join(',');
}

/** The 16 bytes after a case's operands: MXCSR to load, then EAX. */
export function caseTail(mxcsr: number, eax: number): Uint8Array {
  const tail = new Uint8Array(16);
  const v = new DataView(tail.buffer);
  v.setUint32(0, mxcsr, true);
  v.setUint32(4, eax >>> 0, true);
  return tail;
}

/**
 * The end of a `dump` routine: prints `count` bytes at `res` as hex on COM1,
 * then a newline, and returns (with its `nib` helper after it).
 */
export function printResultAsm(count: number): string[] {
  return [
    'mov esi, offset res', `mov ecx, ${count}`,
    '2: movzx ebx, byte ptr [esi]', 'mov eax, ebx', 'shr eax, 4', 'call nib', 'mov eax, ebx', 'and eax, 15', 'call nib',
    'inc esi', 'dec ecx', 'jnz 2b', 'mov al, 10', 'mov dx, 0x3f8', 'out dx, al', 'ret',
    'nib:', 'cmp al, 10', 'jb 3f', 'add al, 39', '3: add al, 48', 'mov dx, 0x3f8', 'out dx, al', 'ret',
  ];
}

/** GNU as source of the multiboot program for `cases` (32-bit, Intel syntax). */
export function programSource(cases: readonly SseCase[]): string {
  const lines: string[] = [];
  lines.push('.intel_syntax noprefix', '.section .text', '.code32', '.globl _start',
    '.balign 4', 'mb_header: .long 0x1BADB002, 0, -(0x1BADB002)',
    '_start:', 'cli', 'mov esp, offset stack_top',
    'mov eax, cr0', 'and eax, 0xfffffffb', 'or eax, 2', 'mov cr0, eax',
    'mov eax, cr4', 'or eax, 0x600', 'mov cr4, eax');
  cases.forEach((c, i) => {
    lines.push(
      `ldmxcsr [case${i} + 32]`,
      `movdqa xmm0, [case${i}]`,
      `movdqa xmm1, [case${i} + 16]`,
      `movdqa [src], xmm1`, `movdqa [src + 16], xmm1`,
      `mov eax, [case${i} + 36]`,
      'xor ecx, ecx',
      c.insn,
      'pushfd', 'pop dword ptr [res + 20]',
      'movdqu [res], xmm0',
      'mov [res + 16], eax',
      'stmxcsr [res + 24]',
      'call dump',
    );
  });
  lines.push('mov dx, 0xf4', 'mov eax, 0', 'out dx, eax', '1: hlt', 'jmp 1b');
  // dump: 28 bytes at res as hex (EFLAGS masked to the arithmetic flags), then "\n".
  lines.push('dump:', 'and dword ptr [res + 20], 0x8d5', ...printResultAsm(28));
  lines.push('.section .data', '.balign 16');
  cases.forEach((c, i) => {
    lines.push(`case${i}: .byte ${hexBytes(c.a)}`, `.byte ${hexBytes(c.b)}`, `.byte ${hexBytes(caseTail(c.mxcsr, c.eax))}`);
  });
  lines.push('.balign 16', 'src: .space 48', 'res: .space 32', 'dst: .space 48', '.balign 16', 'fxarea: .space 512', '.section .bss', '.balign 16', '.space 8192', 'stack_top:');
  return lines.join('\n') + '\n';
}

/** Assembles and links a 32-bit oracle program's source as a multiboot ELF32 at 1 MiB (in a fresh `prefix` temp dir); returns its path. */
export function linkOracleProgram(source: string, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  writeFileSync(join(dir, 'p.s'), source);
  execFileSync('as', ['--32', '-o', join(dir, 'p.o'), join(dir, 'p.s')], { stdio: ['ignore', 'ignore', 'pipe'] });
  execFileSync('ld', ['-m', 'elf_i386', '-n', '-Ttext=0x100000', '-e', '_start', '-o', join(dir, 'p.elf'), join(dir, 'p.o')], { stdio: ['ignore', 'ignore', 'pipe'] });
  return join(dir, 'p.elf');
}

/** Assembles and links the SSE program for `cases`; returns its path. */
export function buildProgram(cases: readonly SseCase[]): string {
  return linkOracleProgram(programSource(cases), 'sse-oracle-');
}
