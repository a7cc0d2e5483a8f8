/**
 * Test support (not used by the engine): a multiboot program that runs a
 * table of MMX instructions and prints each result to COM1, so the soft
 * engine's output can be compared with QEMU TCG's (mmx-compare.test.ts).
 *
 * Each case FXRSTORs a template whose R0/R1 (= MM0/MM1) hold the case's two
 * operands with non-MMX exponents and whose other tags are empty, pushes 1.0
 * (TOP = 7), loads XMM0/XMM1, MXCSR and EAX, runs the instruction, and prints
 * MM0, XMM0, EAX, the arithmetic EFLAGS, MXCSR, then from an FXSAVE image the
 * FSW, the abridged tag byte and the eight sign/exponent words, and MM1.
 */

import { MODES, Rng, caseTail, f32Lanes, f64Lanes, hexBytes, intLanes, linkOracleProgram, printResultAsm } from './qemu-oracle.js';

export interface MmxCase {
  /**
   * Instruction text (Intel syntax, `;` separates instructions). Operands: mm0/xmm0 (dest), mm1/xmm1 (source),
   * eax, `[src]` (16-byte aligned: xmm1's bytes, twice), `[dst]` (48 scratch bytes; EDI points at it).
   */
  insn: string;
  /** MM0 and MM1 (8 bytes each), XMM0 and XMM1 (16 bytes each). */
  mm0: Uint8Array;
  mm1: Uint8Array;
  xmm0: Uint8Array;
  xmm1: Uint8Array;
  mxcsr: number;
  eax: number;
}

/** The two-operand instructions (mm, mm/m64; PUNPCKL* take mm/m32). */
export const MMX_BINARY = ['paddb', 'paddw', 'paddd', 'paddq', 'psubb', 'psubw', 'psubd', 'psubq', 'paddsb', 'paddsw',
  'paddusb', 'paddusw', 'psubsb', 'psubsw', 'psubusb', 'psubusw', 'pcmpeqb', 'pcmpeqw', 'pcmpeqd', 'pcmpgtb', 'pcmpgtw',
  'pcmpgtd', 'pand', 'pandn', 'por', 'pxor', 'pmullw', 'pmulhw', 'pmulhuw', 'pmaddwd', 'pmuludq', 'pminub', 'pmaxub',
  'pminsw', 'pmaxsw', 'pavgb', 'pavgw', 'psadbw', 'packsswb', 'packuswb', 'packssdw', 'punpcklbw', 'punpckhbw',
  'punpcklwd', 'punpckhwd', 'punpckldq', 'punpckhdq', 'psllw', 'pslld', 'psllq', 'psrlw', 'psrld', 'psrlq', 'psraw', 'psrad'];

const SHIFTS = ['psllw', 'pslld', 'psllq', 'psrlw', 'psrld', 'psrlq', 'psraw', 'psrad'];

/** Shift-count operands: small counts in the low quadword (the rest of the bytes random). */
function withCount(b: Uint8Array, count: number): Uint8Array {
  const out = b.slice();
  const v = new DataView(out.buffer);
  v.setUint32(0, count, true);
  v.setUint32(4, count === 0x100 ? 1 : 0, true);
  return out;
}

/** The case table: every instruction, register and memory forms, special and random operands. */
export function buildMmxCases(seed = 0x6d6d7831, perOp = 4): MmxCase[] {
  const rng = new Rng(seed);
  const cases: MmxCase[] = [];
  const add = (insn: string, mm0: Uint8Array, mm1: Uint8Array, xmm0 = intLanes(rng), xmm1 = intLanes(rng), mxcsr = 0x1f80,
    eax = rng.next()): void => {
    cases.push({ insn, mm0: mm0.slice(0, 8), mm1: mm1.slice(0, 8), xmm0, xmm1, mxcsr, eax });
  };
  for (let k = 0; k < perOp; k++) {
    for (const op of MMX_BINARY) {
      add(`${op} mm0, mm1`, intLanes(rng), intLanes(rng));
      const mem = op.startsWith('punpckl') ? 'dword ptr [src]' : 'qword ptr [src]';
      add(`${op} mm0, ${mem}`, intLanes(rng), intLanes(rng));
    }
    const count = rng.pick([0, 1, 3, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 200, 0x100]);
    for (const op of SHIFTS) {
      add(`${op} mm0, mm1`, intLanes(rng), withCount(intLanes(rng), count));
      add(`${op} mm0, ${count & 0xff}`, intLanes(rng), intLanes(rng));
    }
    const imm = rng.next() & 0xff;
    add(`pshufw mm0, mm1, ${imm}`, intLanes(rng), intLanes(rng));
    add(`pshufw mm0, qword ptr [src], ${imm}`, intLanes(rng), intLanes(rng));
    add(`pinsrw mm0, eax, ${imm & 3}`, intLanes(rng), intLanes(rng));
    add(`pinsrw mm0, word ptr [src + 6], ${imm >> 6}`, intLanes(rng), intLanes(rng));
    add(`pextrw eax, mm1, ${imm & 3}`, intLanes(rng), intLanes(rng));
    for (const insn of ['pmovmskb eax, mm1', 'movd mm0, eax', 'movd eax, mm1', 'movd mm0, dword ptr [src + 4]', 'movq mm0, mm1',
      'movq mm0, qword ptr [src + 8]', 'movd dword ptr [dst + 4], mm1; movq mm0, qword ptr [dst]',
      'movq qword ptr [dst + 3], mm1; movq mm0, qword ptr [dst + 3]', 'movntq qword ptr [dst + 8], mm1; movq mm0, qword ptr [dst + 8]',
      '.byte 0x0f, 0x7f, 0xc8', // MOVQ mm0 (r/m), mm1 — the store form, register to register
      'mov dword ptr [dst + 16], 0; mov dword ptr [dst + 20], 0; lea edi, [dst + 16]; maskmovq mm1, mm0; movq mm0, qword ptr [dst + 16]',
      'emms', 'movq2dq xmm0, mm1', 'movdq2q mm0, xmm1', 'paddb mm1, mm1; emms']) {
      add(insn, intLanes(rng), intLanes(rng));
    }
  }
  for (const mode of MODES) {
    for (let k = 0; k < perOp; k++) {
      const ints = (): Uint8Array => {
        const out = intLanes(rng);
        const v = new DataView(out.buffer);
        for (let i = 0; i < 4; i++) if ((rng.next() & 3) === 0) v.setUint32(4 * i, rng.pick([0x7fffffff, 0x80000000, 16777217, 0x7ffffff9, 3, 0xfffffffb]), true);
        return out;
      };
      add('cvtpi2ps xmm0, mm1', intLanes(rng), ints(), f32Lanes(rng), intLanes(rng), mode);
      add('cvtpi2ps xmm0, qword ptr [src]', intLanes(rng), intLanes(rng), f32Lanes(rng), ints(), mode);
      add('cvtpi2pd xmm0, mm1', intLanes(rng), ints(), f32Lanes(rng), intLanes(rng), mode);
      add('cvtpi2pd xmm0, qword ptr [src]', intLanes(rng), intLanes(rng), f32Lanes(rng), ints(), mode);
      for (const insn of ['cvtps2pi mm0, xmm1', 'cvttps2pi mm0, xmm1', 'cvtps2pi mm0, qword ptr [src + 8]']) {
        add(insn, intLanes(rng), intLanes(rng), intLanes(rng), f32Lanes(rng), mode);
      }
      for (const insn of ['cvtpd2pi mm0, xmm1', 'cvttpd2pi mm0, xmm1', 'cvtpd2pi mm0, xmmword ptr [src]']) {
        add(insn, intLanes(rng), intLanes(rng), intLanes(rng), f64Lanes(rng), mode);
      }
    }
  }
  return cases;
}

/** Bytes printed per case. */
export const MMX_RESULT_BYTES = 63;

/** GNU as source of the multiboot program for `cases` (32-bit, Intel syntax). */
export function mmxProgramSource(cases: readonly MmxCase[]): string {
  const lines: string[] = [];
  lines.push('.intel_syntax noprefix', '.section .text', '.code32', '.globl _start',
    '.balign 4', 'mb_header: .long 0x1BADB002, 0, -(0x1BADB002)',
    '_start:', 'cli', 'mov esp, offset stack_top',
    'mov eax, cr0', 'and eax, 0xfffffffb', 'or eax, 0x22', 'mov cr0, eax',
    'mov eax, cr4', 'or eax, 0x600', 'mov cr4, eax');
  cases.forEach((c, i) => {
    lines.push(`mov esi, offset case${i}`, 'call setup', c.insn, 'pushfd', 'pop dword ptr [res + 28]', 'call dump');
  });
  lines.push('mov dx, 0xf4', 'mov eax, 0', 'out dx, eax', '1: hlt', 'jmp 1b');
  // setup: MM0/MM1 via the FXRSTOR template, TOP = 7 by FLD1, then XMM0/XMM1, [src], MXCSR, EAX, ECX, EDI.
  lines.push('setup:',
    'mov eax, [esi]', 'mov [template + 32], eax', 'mov eax, [esi + 4]', 'mov [template + 36], eax',
    'mov eax, [esi + 8]', 'mov [template + 48], eax', 'mov eax, [esi + 12]', 'mov [template + 52], eax',
    'fxrstor [template]', 'fld1',
    'movdqa xmm0, [esi + 16]', 'movdqa xmm1, [esi + 32]', 'movdqa [src], xmm1', 'movdqa [src + 16], xmm1',
    'ldmxcsr [esi + 48]', 'mov eax, [esi + 52]', 'xor ecx, ecx', 'mov edi, offset dst', 'ret');
  // dump: FXSAVE first (the MOVQ stores below are MMX instructions themselves), then the result record as hex.
  lines.push('dump:', 'mov [res + 24], eax', 'fxsave [fxout]', 'movq [res], mm0', 'movdqu [res + 8], xmm0',
    'and dword ptr [res + 28], 0x8d5', 'stmxcsr [res + 32]',
    'mov ax, [fxout + 2]', 'mov [res + 36], ax', 'mov al, [fxout + 4]', 'mov [res + 38], al');
  for (let i = 0; i < 8; i++) lines.push(`mov ax, [fxout + ${40 + 16 * i}]`, `mov [res + ${39 + 2 * i}], ax`);
  lines.push('movq [res + 55], mm1', ...printResultAsm(MMX_RESULT_BYTES));
  lines.push('.section .data', '.balign 16');
  cases.forEach((c, i) => {
    lines.push(`case${i}: .byte ${hexBytes(c.mm0)},${hexBytes(c.mm1)}`, `.byte ${hexBytes(c.xmm0)}`, `.byte ${hexBytes(c.xmm1)}`,
      `.byte ${hexBytes(caseTail(c.mxcsr, c.eax))}`);
  });
  // The FXRSTOR template: FCW 0x037F, FSW 0 (TOP 0), R0/R1 valid with exponents 0x4001/0xC002, the rest empty, MXCSR 0x1F80.
  lines.push('.balign 16', 'template: .word 0x037f, 0', '.byte 0x03, 0', '.space 18', '.long 0x1f80, 0xffff',
    '.quad 0', '.word 0x4001', '.space 6', '.quad 0', '.word 0xc002', '.space 6', '.space 512 - 64');
  lines.push('.balign 16', 'src: .space 48', 'res: .space 64', 'dst: .space 48', '.balign 16', 'fxout: .space 512',
    '.section .bss', '.balign 16', '.space 8192', 'stack_top:');
  return lines.join('\n') + '\n';
}

/** Assembles and links the MMX program for `cases` as a multiboot ELF32 at 1 MiB; returns its path. */
export function buildMmxProgram(cases: readonly MmxCase[]): string {
  return linkOracleProgram(mmxProgramSource(cases), 'mmx-oracle-');
}
