/**
 * SSE, SSE2 and SSE3 instruction semantics for the soft CPU (legacy-SSE
 * encodings of the 0F map; 0F38/0F3A are #UD because SSSE3+ is not
 * advertised). Entered from interp.ts for every SSE-space opcode that is not
 * an MMX-register form (those go to mmx.ts, which reuses the integer helpers
 * exported here) and for 0F AE /0-/3 (FXSAVE, FXRSTOR, LDMXCSR, STMXCSR).
 *
 * Operands: XMM registers are slots of SseState; a memory source is read
 * into the X_SRC slot first, so every instruction works slot to slot.
 * Floating-point results are built in X_RES and committed only when no
 * unmasked exception occurred (#XM, or #UD without CR4.OSXMMEXCPT).
 */

import type { Cpu } from '../cpu.js';
import {
  ACC_READ, ACC_WRITE, AF, CF, CR0_EM, CR0_TS, OF, PF, SF, X_GP, X_NM, X_UD, ZF,
} from '../arch.js';
import {
  D_IMM, D_REG, D_RM, F_MOD3, F_OPSIZE_PREFIX, F_REP, F_REPNE, F_REXW, F_ASIZE_SHIFT, F_SEG_SHIFT, SEG_FLAT,
} from '../decoder.js';
import { effectiveAddress, readRm, writeReg, writeRm } from '../operands.js';
import {
  MXCSR_MASK, MX_DE, MX_IE, X_RES, X_SRC, X_TMP, type SseState,
} from './state.js';
import {
  OP_ADD, OP_DIV, OP_MAX, OP_MIN, OP_MUL, OP_SQRT, OP_SUB, arith32, arith64, beginFp, comparePredicate, env, f64FromBits,
  in32, in64, intToFloat, isNaN32, isNaN64, isSNaN32, isSNaN64, round32, toInt, unmaskedExceptions,
} from './fp.js';
import { fxrstor, fxsave } from './fxsave.js';

/** CR4 bits this module implements. */
export const CR4_OSFXSR = 1 << 9;
export const CR4_OSXMMEXCPT = 1 << 10;
/** SIMD floating-point exception vector. */
export const X_XM = 19;

const PFX_NONE = 0;
const PFX_66 = 1;
const PFX_F3 = 2;
const PFX_F2 = 3;

function prefix(f: number): number {
  if ((f & F_REP) !== 0) return PFX_F3;
  if ((f & F_REPNE) !== 0) return PFX_F2;
  return (f & F_OPSIZE_PREFIX) !== 0 ? PFX_66 : PFX_NONE;
}

/** The checks every SSE instruction makes before anything else (SDM 13.1, table 23-?). */
function checkSse(c: Cpu): void {
  if ((c.cr0 & CR0_EM) !== 0 || (c.cr4 & CR4_OSFXSR) === 0) c.raise(X_UD);
  if ((c.cr0 & CR0_TS) !== 0) c.raise(X_NM);
}

/** Unimplemented forms (0F38/0F3A): #UD, after the #NM check real CPUs make for them. */
function mmxUd(c: Cpu): never {
  if ((c.cr0 & CR0_EM) === 0 && (c.cr0 & CR0_TS) !== 0) c.raise(X_NM);
  return c.raise(X_UD);
}

function ud(c: Cpu): never {
  return c.raise(X_UD);
}

// ---------------------------------------------------------------------------
// Memory operands
// ---------------------------------------------------------------------------

/** Reads 16 bytes at `lin` into slot `slot` (alignment checked by the caller). */
function read128(c: Cpu, lin: number, slot: number): void {
  const w = c.sse.i32;
  const lo = c.rd64(lin);
  const hi = c.rdHi;
  const lo2 = c.rd64(c.linWrap(lin + 8));
  const at = slot << 2;
  w[at] = lo; w[at + 1] = hi; w[at + 2] = lo2; w[at + 3] = c.rdHi;
}

/** Writes slot `slot` to 16 bytes at `lin`; all-or-nothing for page faults. */
function write128(c: Cpu, lin: number, slot: number): void {
  if ((lin & 0xfff) > 0xff0) {
    c.translate(lin, ACC_WRITE, c.cpl === 3);
    c.translate(c.linWrap(lin + 15), ACC_WRITE, c.cpl === 3);
  }
  const w = c.sse.i32;
  const at = slot << 2;
  c.wr64(lin, w[at], w[at + 1]);
  c.wr64(c.linWrap(lin + 8), w[at + 2], w[at + 3]);
}

function aligned(c: Cpu, lin: number): void {
  if ((lin & 15) !== 0) c.raise(X_GP, 0);
}

/** The 128-bit source operand: its slot (the register, or X_SRC loaded from memory). */
export function src128(c: Cpu, r: Int32Array, b: number, f: number, align: boolean): number {
  if ((f & F_MOD3) !== 0) return r[b + D_RM];
  const lin = effectiveAddress(c, r, b);
  if (align) aligned(c, lin);
  read128(c, lin, X_SRC);
  return X_SRC;
}

/** A 64-bit source (low qword of the register, or 8 bytes from memory into X_SRC's low qword). */
export function src64(c: Cpu, r: Int32Array, b: number, f: number): number {
  if ((f & F_MOD3) !== 0) return r[b + D_RM];
  const lin = effectiveAddress(c, r, b);
  const w = c.sse.i32;
  w[X_SRC * 4] = c.rd64(lin);
  w[X_SRC * 4 + 1] = c.rdHi;
  return X_SRC;
}

/** A 32-bit source (low dword of the register, or 4 bytes from memory). */
function src32(c: Cpu, r: Int32Array, b: number, f: number): number {
  if ((f & F_MOD3) !== 0) return r[b + D_RM];
  const lin = effectiveAddress(c, r, b);
  c.sse.i32[X_SRC * 4] = c.rd32(lin);
  return X_SRC;
}

function memOnly(c: Cpu, f: number): void {
  if ((f & F_MOD3) !== 0) ud(c);
}

// ---------------------------------------------------------------------------
// Floating-point lanes (indexes are Int32Array word indexes)
// ---------------------------------------------------------------------------

const DEFAULT_NAN32 = 0xffc00000 | 0;
const DEFAULT_NAN64_HI = 0xfff80000 | 0;

function lane32(s: SseState, op: number, out: number, ai: number, bi: number): void {
  const w = s.i32;
  const aw = w[ai];
  const bw = w[bi];
  if (op === OP_SQRT) {
    if (isNaN32(bw)) { if (isSNaN32(bw)) env.flags |= MX_IE; w[out] = bw | 0x400000; return; }
    const res = arith32(op, in32(bw), 0);
    if (res !== res) w[out] = DEFAULT_NAN32; else s.f32[out] = res;
    return;
  }
  if (op === OP_MIN || op === OP_MAX) {
    // A selection: the chosen operand's bits (a denormal stays as is under DAZ; only the compare sees zero).
    if (isNaN32(aw) || isNaN32(bw)) { env.flags |= MX_IE; w[out] = bw; return; }
    const x = in32(aw);
    const y = in32(bw);
    w[out] = (op === OP_MIN ? x < y : x > y) ? aw : bw;
    return;
  }
  const an = isNaN32(aw);
  if (an || isNaN32(bw)) {
    if (isSNaN32(aw) || isSNaN32(bw)) env.flags |= MX_IE;
    w[out] = an ? aw | 0x400000 : bw | 0x400000;
    return;
  }
  const res = arith32(op, in32(aw), in32(bw));
  if (res !== res) w[out] = DEFAULT_NAN32; else s.f32[out] = res;
}

function lane64(s: SseState, op: number, out: number, ai: number, bi: number): void {
  const w = s.i32;
  const alo = w[ai]; const ahi = w[ai + 1];
  const blo = w[bi]; const bhi = w[bi + 1];
  if (op === OP_SQRT) {
    if (isNaN64(blo, bhi)) { if (isSNaN64(blo, bhi)) env.flags |= MX_IE; w[out] = blo; w[out + 1] = bhi | 0x80000; return; }
    store64(s, out, arith64(op, in64(blo, bhi), 0));
    return;
  }
  if (op === OP_MIN || op === OP_MAX) {
    if (isNaN64(alo, ahi) || isNaN64(blo, bhi)) { env.flags |= MX_IE; w[out] = blo; w[out + 1] = bhi; return; }
    const x = in64(alo, ahi);
    const y = in64(blo, bhi);
    if (op === OP_MIN ? x < y : x > y) { w[out] = alo; w[out + 1] = ahi; } else { w[out] = blo; w[out + 1] = bhi; }
    return;
  }
  const an = isNaN64(alo, ahi);
  if (an || isNaN64(blo, bhi)) {
    if (isSNaN64(alo, ahi) || isSNaN64(blo, bhi)) env.flags |= MX_IE;
    if (an) { w[out] = alo; w[out + 1] = ahi | 0x80000; } else { w[out] = blo; w[out + 1] = bhi | 0x80000; }
    return;
  }
  store64(s, out, arith64(op, in64(alo, ahi), in64(blo, bhi)));
}

/** Stores a double at word index `out` (NaN → the default QNaN). */
function store64(s: SseState, out: number, v: number): void {
  if (v !== v) { s.i32[out] = 0; s.i32[out + 1] = DEFAULT_NAN64_HI; return; }
  s.f64[out >> 1] = v;
}

/** Merges the instruction's exception flags into MXCSR; raises the SIMD exception for unmasked ones. */
export function finishFlags(c: Cpu): void {
  const unmasked = unmaskedExceptions();
  c.sse.mxcsr |= env.flags;
  if (unmasked !== 0) raiseXm(c);
}

/** Commits X_RES to register `d` and the flags to MXCSR, or raises the SIMD exception. */
export function commitFp(c: Cpu, d: number): void {
  finishFlags(c);
  c.sse.copy(d, X_RES);
}

function raiseXm(c: Cpu): never {
  return c.raise((c.cr4 & CR4_OSXMMEXCPT) !== 0 ? X_XM : X_UD);
}

/** Packed or scalar arithmetic: lanes 4/1 (single) or 2/1 (double). */
function fpArith(c: Cpu, op: number, d: number, src: number, double: boolean, lanes: number): void {
  const s = c.sse;
  beginFp(s);
  s.copy(X_RES, d);
  const ra = X_RES << 2; const da = d << 2; const sa = src << 2;
  if (double) for (let i = 0; i < lanes; i++) lane64(s, op, ra + 2 * i, da + 2 * i, sa + 2 * i);
  else for (let i = 0; i < lanes; i++) lane32(s, op, ra + i, da + i, sa + i);
  commitFp(c, d);
}

/** HADD/HSUB (single or double): pairs within dest then within source. */
function fpHorizontal(c: Cpu, op: number, d: number, src: number, double: boolean): void {
  const s = c.sse;
  beginFp(s);
  const ra = X_RES << 2; const da = d << 2; const sa = src << 2;
  if (double) {
    lane64(s, op, ra, da, da + 2);
    lane64(s, op, ra + 2, sa, sa + 2);
  } else {
    lane32(s, op, ra, da, da + 1);
    lane32(s, op, ra + 1, da + 2, da + 3);
    lane32(s, op, ra + 2, sa, sa + 1);
    lane32(s, op, ra + 3, sa + 2, sa + 3);
  }
  commitFp(c, d);
}

function fpAddSub(c: Cpu, d: number, src: number, double: boolean): void {
  const s = c.sse;
  beginFp(s);
  const ra = X_RES << 2; const da = d << 2; const sa = src << 2;
  if (double) {
    lane64(s, OP_SUB, ra, da, sa);
    lane64(s, OP_ADD, ra + 2, da + 2, sa + 2);
  } else {
    for (let i = 0; i < 4; i++) lane32(s, (i & 1) === 0 ? OP_SUB : OP_ADD, ra + i, da + i, sa + i);
  }
  commitFp(c, d);
}

/** CMPPS/PD/SS/SD lane: all-ones or zero. */
function cmpLane(s: SseState, pred: number, out: number, ai: number, bi: number, double: boolean): void {
  const w = s.i32;
  let x: number;
  let y: number;
  if (double) {
    const an = isNaN64(w[ai], w[ai + 1]);
    const bn = isNaN64(w[bi], w[bi + 1]);
    if (an || bn) {
      if (isSNaN64(w[ai], w[ai + 1]) || isSNaN64(w[bi], w[bi + 1]) || signalling(pred)) env.flags |= MX_IE;
      x = NaN; y = 0;
    } else { x = in64(w[ai], w[ai + 1]); y = in64(w[bi], w[bi + 1]); }
    const m = comparePredicate(pred, x, y) ? -1 : 0;
    w[out] = m; w[out + 1] = m;
  } else {
    const an = isNaN32(w[ai]);
    const bn = isNaN32(w[bi]);
    if (an || bn) {
      if (isSNaN32(w[ai]) || isSNaN32(w[bi]) || signalling(pred)) env.flags |= MX_IE;
      x = NaN; y = 0;
    } else { x = in32(w[ai]); y = in32(w[bi]); }
    w[out] = comparePredicate(pred, x, y) ? -1 : 0;
  }
}

/** LT, LE, NLT, NLE signal on QNaN too. */
function signalling(pred: number): boolean {
  const p = pred & 3;
  return p === 1 || p === 2;
}

/** COMISS/UCOMISS/COMISD/UCOMISD. */
function comis(c: Cpu, d: number, src: number, double: boolean, ordered: boolean): void {
  const s = c.sse;
  const w = s.i32;
  beginFp(s);
  const da = d << 2; const sa = src << 2;
  let x: number;
  let y: number;
  let nan: boolean;
  if (double) {
    nan = isNaN64(w[da], w[da + 1]) || isNaN64(w[sa], w[sa + 1]);
    if (nan) {
      if (ordered || isSNaN64(w[da], w[da + 1]) || isSNaN64(w[sa], w[sa + 1])) env.flags |= MX_IE;
      x = 0; y = 0;
    } else { x = in64(w[da], w[da + 1]); y = in64(w[sa], w[sa + 1]); }
  } else {
    nan = isNaN32(w[da]) || isNaN32(w[sa]);
    if (nan) {
      if (ordered || isSNaN32(w[da]) || isSNaN32(w[sa])) env.flags |= MX_IE;
      x = 0; y = 0;
    } else { x = in32(w[da]); y = in32(w[sa]); }
  }
  finishFlags(c);
  const v = nan ? ZF | PF | CF : x < y ? CF : x === y ? ZF : 0;
  c.setFlags(v, ZF | PF | CF | OF | SF | AF);
}

// ---------------------------------------------------------------------------
// Conversions
// ---------------------------------------------------------------------------

/**
 * Reads a float lane as a number for conversion to integer (NaN stays NaN; DAZ
 * applied). Float-to-integer conversions report only IE and PE (SDM: CVTPS2DQ,
 * CVTSS2SI, CVTPS2PI, ...), so a denormal source does not set DE.
 */
function laneValue(s: SseState, wi: number, double: boolean): number {
  const w = s.i32;
  const de = env.flags & MX_DE;
  let v: number;
  if (double) v = isNaN64(w[wi], w[wi + 1]) ? NaN : in64(w[wi], w[wi + 1]);
  else v = isNaN32(w[wi]) ? NaN : in32(w[wi]);
  env.flags = (env.flags & ~MX_DE) | de;
  return v;
}

/** Float lane to int32 (integer indefinite 0x80000000 on NaN/overflow). */
export function toInt32Lane(s: SseState, wi: number, double: boolean, truncate: boolean): number {
  const v = toInt(laneValue(s, wi, double), 32, truncate);
  return v !== v ? 0x80000000 | 0 : v | 0;
}

/** float32 → float64 lane. */
function widenLane(s: SseState, out: number, wi: number): void {
  const w = s.i32;
  const x = w[wi];
  if (isNaN32(x)) {
    if (isSNaN32(x)) env.flags |= MX_IE;
    // Sign, quiet bit forced, payload shifted into the top of the double mantissa.
    w[out + 1] = (x & 0x80000000) | 0x7ff80000 | ((x & 0x3fffff) >>> 3);
    w[out] = (x & 7) << 29;
    return;
  }
  s.f64[out >> 1] = in32(x);
}

/** float64 → float32 lane. */
function narrowLane(s: SseState, out: number, wi: number): void {
  const w = s.i32;
  const lo = w[wi];
  const hi = w[wi + 1];
  if (isNaN64(lo, hi)) {
    if (isSNaN64(lo, hi)) env.flags |= MX_IE;
    w[out] = (hi & 0x80000000) | 0x7fc00000 | ((hi & 0x7ffff) << 3) | (lo >>> 29);
    return;
  }
  s.f32[out] = round32(in64(lo, hi), 0);
}

// ---------------------------------------------------------------------------
// Integer helpers
// ---------------------------------------------------------------------------

function satS8(v: number): number { return v > 127 ? 127 : v < -128 ? -128 : v; }
function satU8(v: number): number { return v > 255 ? 255 : v < 0 ? 0 : v; }
function satS16(v: number): number { return v > 32767 ? 32767 : v < -32768 ? -32768 : v; }
function satU16(v: number): number { return v > 65535 ? 65535 : v < 0 ? 0 : v; }

/** The shift count of PSxx xmm, xmm/m128: the low quadword, saturated to 255. */
export function shiftCount(s: SseState, src: number): number {
  const w = s.i32;
  return w[src * 4 + 1] !== 0 || (w[src * 4] >>> 0) > 255 ? 255 : w[src * 4];
}

/** Shift each lane of register d: kind 0 = logical right, 1 = arithmetic right, 2 = left; width 16/32/64. */
export function shiftLanes(s: SseState, d: number, count: number, kind: number, width: number): void {
  if (width === 16) {
    const a = s.u16; const ai = s.i16; const base = d * 8;
    for (let i = 0; i < 8; i++) {
      if (kind === 1) ai[base + i] = ai[base + i] >> (count > 15 ? 15 : count);
      else if (count > 15) a[base + i] = 0;
      else a[base + i] = kind === 0 ? a[base + i] >>> count : a[base + i] << count;
    }
  } else if (width === 32) {
    const a = s.i32; const base = d * 4;
    for (let i = 0; i < 4; i++) {
      if (kind === 1) a[base + i] = a[base + i] >> (count > 31 ? 31 : count);
      else if (count > 31) a[base + i] = 0;
      else a[base + i] = kind === 0 ? a[base + i] >>> count : a[base + i] << count;
    }
  } else {
    const a = s.i32; const base = d * 4;
    for (let q = 0; q < 2; q++) {
      const lo = a[base + 2 * q]; const hi = a[base + 2 * q + 1];
      let nl: number; let nh: number;
      if (count > 63) { nl = 0; nh = 0; }
      else if (count === 0) { nl = lo; nh = hi; }
      else if (kind === 2) {
        if (count >= 32) { nh = lo << (count - 32); nl = 0; } else { nh = (hi << count) | (lo >>> (32 - count)); nl = lo << count; }
      } else if (count >= 32) { nl = hi >>> (count - 32); nh = 0; }
      else { nl = (lo >>> count) | (hi << (32 - count)); nh = hi >>> count; }
      a[base + 2 * q] = nl; a[base + 2 * q + 1] = nh;
    }
  }
}

/** Byte shift of the whole register (PSLLDQ left = true / PSRLDQ). */
function byteShift(s: SseState, d: number, n: number, left: boolean): void {
  const u = s.u8; const base = d * 16; const t = X_TMP * 16;
  for (let i = 0; i < 16; i++) u[t + i] = u[base + i];
  for (let i = 0; i < 16; i++) {
    const from = left ? i - n : i + n;
    u[base + i] = from >= 0 && from < 16 ? u[t + from] : 0;
  }
}

/** Packed integer binary operation on register d with source slot `src`. */
export function intOp(s: SseState, o: number, d: number, src: number): void {
  const u8 = s.u8; const i8 = s.i8; const u16 = s.u16; const i16 = s.i16; const w = s.i32;
  const d8 = d * 16; const s8 = src * 16; const d16 = d * 8; const s16 = src * 8; const d32 = d * 4; const s32 = src * 4;
  switch (o) {
    case 0x74: for (let i = 0; i < 16; i++) u8[d8 + i] = u8[d8 + i] === u8[s8 + i] ? 0xff : 0; return;
    case 0x75: for (let i = 0; i < 8; i++) u16[d16 + i] = u16[d16 + i] === u16[s16 + i] ? 0xffff : 0; return;
    case 0x76: for (let i = 0; i < 4; i++) w[d32 + i] = w[d32 + i] === w[s32 + i] ? -1 : 0; return;
    case 0x64: for (let i = 0; i < 16; i++) u8[d8 + i] = i8[d8 + i] > i8[s8 + i] ? 0xff : 0; return;
    case 0x65: for (let i = 0; i < 8; i++) u16[d16 + i] = i16[d16 + i] > i16[s16 + i] ? 0xffff : 0; return;
    case 0x66: for (let i = 0; i < 4; i++) w[d32 + i] = w[d32 + i] > w[s32 + i] ? -1 : 0; return;
    case 0xdb: for (let i = 0; i < 4; i++) w[d32 + i] &= w[s32 + i]; return;
    case 0xdf: for (let i = 0; i < 4; i++) w[d32 + i] = ~w[d32 + i] & w[s32 + i]; return;
    case 0xeb: for (let i = 0; i < 4; i++) w[d32 + i] |= w[s32 + i]; return;
    case 0xef: for (let i = 0; i < 4; i++) w[d32 + i] ^= w[s32 + i]; return;
    case 0xfc: for (let i = 0; i < 16; i++) u8[d8 + i] += u8[s8 + i]; return;
    case 0xfd: for (let i = 0; i < 8; i++) u16[d16 + i] += u16[s16 + i]; return;
    case 0xfe: for (let i = 0; i < 4; i++) w[d32 + i] += w[s32 + i]; return;
    case 0xf8: for (let i = 0; i < 16; i++) u8[d8 + i] -= u8[s8 + i]; return;
    case 0xf9: for (let i = 0; i < 8; i++) u16[d16 + i] -= u16[s16 + i]; return;
    case 0xfa: for (let i = 0; i < 4; i++) w[d32 + i] -= w[s32 + i]; return;
    case 0xd4: case 0xfb: // PADDQ / PSUBQ
      for (let q = 0; q < 2; q++) {
        const al = w[d32 + 2 * q] >>> 0; const ah = w[d32 + 2 * q + 1];
        const bl = w[s32 + 2 * q] >>> 0; const bh = w[s32 + 2 * q + 1];
        if (o === 0xd4) { const l = al + bl; w[d32 + 2 * q] = l | 0; w[d32 + 2 * q + 1] = (ah + bh + (l > 0xffffffff ? 1 : 0)) | 0; }
        else { const l = al - bl; w[d32 + 2 * q] = l | 0; w[d32 + 2 * q + 1] = (ah - bh - (l < 0 ? 1 : 0)) | 0; }
      }
      return;
    case 0xec: for (let i = 0; i < 16; i++) i8[d8 + i] = satS8(i8[d8 + i] + i8[s8 + i]); return;
    case 0xed: for (let i = 0; i < 8; i++) i16[d16 + i] = satS16(i16[d16 + i] + i16[s16 + i]); return;
    case 0xdc: for (let i = 0; i < 16; i++) u8[d8 + i] = satU8(u8[d8 + i] + u8[s8 + i]); return;
    case 0xdd: for (let i = 0; i < 8; i++) u16[d16 + i] = satU16(u16[d16 + i] + u16[s16 + i]); return;
    case 0xe8: for (let i = 0; i < 16; i++) i8[d8 + i] = satS8(i8[d8 + i] - i8[s8 + i]); return;
    case 0xe9: for (let i = 0; i < 8; i++) i16[d16 + i] = satS16(i16[d16 + i] - i16[s16 + i]); return;
    case 0xd8: for (let i = 0; i < 16; i++) u8[d8 + i] = satU8(u8[d8 + i] - u8[s8 + i]); return;
    case 0xd9: for (let i = 0; i < 8; i++) u16[d16 + i] = satU16(u16[d16 + i] - u16[s16 + i]); return;
    case 0xd5: for (let i = 0; i < 8; i++) u16[d16 + i] = Math.imul(i16[d16 + i], i16[s16 + i]); return;
    case 0xe5: for (let i = 0; i < 8; i++) u16[d16 + i] = Math.imul(i16[d16 + i], i16[s16 + i]) >> 16; return;
    case 0xe4: for (let i = 0; i < 8; i++) u16[d16 + i] = (u16[d16 + i] * u16[s16 + i]) >>> 16; return;
    case 0xf5: // PMADDWD
      for (let i = 0; i < 4; i++) {
        w[d32 + i] = (Math.imul(i16[d16 + 2 * i], i16[s16 + 2 * i]) + Math.imul(i16[d16 + 2 * i + 1], i16[s16 + 2 * i + 1])) | 0;
      }
      return;
    case 0xf4: // PMULUDQ
      for (let q = 0; q < 2; q++) {
        const a = w[d32 + 2 * q] >>> 0; const bb = w[s32 + 2 * q] >>> 0;
        const ah = a >>> 16; const al = a & 0xffff; const bh = bb >>> 16; const bl = bb & 0xffff;
        const mid = ah * bl + al * bh;
        const low = al * bl + (mid % 65536) * 65536;
        w[d32 + 2 * q] = low | 0;
        w[d32 + 2 * q + 1] = (ah * bh + Math.floor(mid / 65536) + Math.floor(low / 4294967296)) | 0;
      }
      return;
    case 0xda: for (let i = 0; i < 16; i++) if (u8[s8 + i] < u8[d8 + i]) u8[d8 + i] = u8[s8 + i]; return;
    case 0xde: for (let i = 0; i < 16; i++) if (u8[s8 + i] > u8[d8 + i]) u8[d8 + i] = u8[s8 + i]; return;
    case 0xea: for (let i = 0; i < 8; i++) if (i16[s16 + i] < i16[d16 + i]) i16[d16 + i] = i16[s16 + i]; return;
    case 0xee: for (let i = 0; i < 8; i++) if (i16[s16 + i] > i16[d16 + i]) i16[d16 + i] = i16[s16 + i]; return;
    case 0xe0: for (let i = 0; i < 16; i++) u8[d8 + i] = (u8[d8 + i] + u8[s8 + i] + 1) >> 1; return;
    case 0xe3: for (let i = 0; i < 8; i++) u16[d16 + i] = (u16[d16 + i] + u16[s16 + i] + 1) >> 1; return;
    case 0xf6: // PSADBW
      for (let q = 0; q < 2; q++) {
        let sum = 0;
        for (let i = 0; i < 8; i++) sum += Math.abs(u8[d8 + 8 * q + i] - u8[s8 + 8 * q + i]);
        w[d32 + 2 * q] = sum; w[d32 + 2 * q + 1] = 0;
      }
      return;
    default: break;
  }
  // Unpack and pack (results built in X_TMP: they read both operands across lanes).
  const t8 = X_TMP * 16; const t16 = X_TMP * 8; const t32 = X_TMP * 4;
  switch (o) {
    case 0x60: for (let i = 0; i < 8; i++) { u8[t8 + 2 * i] = u8[d8 + i]; u8[t8 + 2 * i + 1] = u8[s8 + i]; } break;
    case 0x68: for (let i = 0; i < 8; i++) { u8[t8 + 2 * i] = u8[d8 + 8 + i]; u8[t8 + 2 * i + 1] = u8[s8 + 8 + i]; } break;
    case 0x61: for (let i = 0; i < 4; i++) { u16[t16 + 2 * i] = u16[d16 + i]; u16[t16 + 2 * i + 1] = u16[s16 + i]; } break;
    case 0x69: for (let i = 0; i < 4; i++) { u16[t16 + 2 * i] = u16[d16 + 4 + i]; u16[t16 + 2 * i + 1] = u16[s16 + 4 + i]; } break;
    case 0x62: w[t32] = w[d32]; w[t32 + 1] = w[s32]; w[t32 + 2] = w[d32 + 1]; w[t32 + 3] = w[s32 + 1]; break;
    case 0x6a: w[t32] = w[d32 + 2]; w[t32 + 1] = w[s32 + 2]; w[t32 + 2] = w[d32 + 3]; w[t32 + 3] = w[s32 + 3]; break;
    case 0x6c: w[t32] = w[d32]; w[t32 + 1] = w[d32 + 1]; w[t32 + 2] = w[s32]; w[t32 + 3] = w[s32 + 1]; break;
    case 0x6d: w[t32] = w[d32 + 2]; w[t32 + 1] = w[d32 + 3]; w[t32 + 2] = w[s32 + 2]; w[t32 + 3] = w[s32 + 3]; break;
    case 0x63: for (let i = 0; i < 8; i++) { i8[t8 + i] = satS8(i16[d16 + i]); i8[t8 + 8 + i] = satS8(i16[s16 + i]); } break;
    case 0x67: for (let i = 0; i < 8; i++) { u8[t8 + i] = satU8(i16[d16 + i]); u8[t8 + 8 + i] = satU8(i16[s16 + i]); } break;
    case 0x6b: for (let i = 0; i < 4; i++) { i16[t16 + i] = satS16(w[d32 + i]); i16[t16 + 4 + i] = satS16(w[s32 + i]); } break;
    default: throw new Error(`sse: integer op ${o.toString(16)} not handled`);
  }
  s.copy(d, X_TMP);
}

export function isIntOp(o: number): boolean {
  return (o >= 0x60 && o <= 0x6d) || (o >= 0x74 && o <= 0x76) || o === 0xd4 || o === 0xd5 ||
    (o >= 0xd8 && o <= 0xe0) || o === 0xe3 || o === 0xe4 || o === 0xe5 || (o >= 0xe8 && o <= 0xef) ||
    (o >= 0xf4 && o <= 0xf6) || (o >= 0xf8 && o <= 0xfe);
}

// ---------------------------------------------------------------------------
// Dispatch
// ---------------------------------------------------------------------------

/** Executes an instruction of the SSE opcode space (0F 10-17, 28-2F, 50-7F, C2-C6, D0-FF, 0F38, 0F3A). */
export function executeSse(c: Cpu, op: number, b: number, r: Int32Array, f: number): void {
  const o = op & 0xff;
  if (op >= 0x200) return mmxUd(c); // SSSE3/SSE4 are not advertised
  const p = prefix(f);
  if (o === 0xc3) { // MOVNTI m32/m64, r (a plain store; not an SSE-state instruction)
    if ((f & F_MOD3) !== 0 || p !== PFX_NONE) return ud(c);
    const size = (f & F_REXW) !== 0 ? 8 : 4;
    const n = r[b + D_REG];
    writeRm(c, r, b, size, c.lo[n], c.hi[n]);
    return;
  }
  checkSse(c);
  const s = c.sse;
  const w = s.i32;
  const d = r[b + D_REG];
  const mod3 = (f & F_MOD3) !== 0;

  if (isIntOp(o)) {
    if (p !== PFX_66) return ud(c);
    const src = src128(c, r, b, f, true);
    intOp(s, o, d, src);
    return;
  }

  switch (o) {
    case 0x10: // MOVUPS/MOVUPD/MOVSS/MOVSD load
      if (p === PFX_F3) {
        if (mod3) { w[d * 4] = w[r[b + D_RM] * 4]; return; }
        const v = c.rd32(effectiveAddress(c, r, b));
        w[d * 4] = v; w[d * 4 + 1] = 0; w[d * 4 + 2] = 0; w[d * 4 + 3] = 0;
        return;
      }
      if (p === PFX_F2) {
        if (mod3) { const m = r[b + D_RM]; w[d * 4] = w[m * 4]; w[d * 4 + 1] = w[m * 4 + 1]; return; }
        const lo = c.rd64(effectiveAddress(c, r, b));
        w[d * 4] = lo; w[d * 4 + 1] = c.rdHi; w[d * 4 + 2] = 0; w[d * 4 + 3] = 0;
        return;
      }
      s.copy(d, src128(c, r, b, f, false));
      return;
    case 0x11: // store forms
      if (p === PFX_F3) {
        if (mod3) { w[r[b + D_RM] * 4] = w[d * 4]; return; }
        c.wr32(effectiveAddress(c, r, b), w[d * 4]);
        return;
      }
      if (p === PFX_F2) {
        if (mod3) { const m = r[b + D_RM]; w[m * 4] = w[d * 4]; w[m * 4 + 1] = w[d * 4 + 1]; return; }
        c.wr64(effectiveAddress(c, r, b), w[d * 4], w[d * 4 + 1]);
        return;
      }
      if (mod3) s.copy(r[b + D_RM], d);
      else write128(c, effectiveAddress(c, r, b), d);
      return;
    case 0x12:
      if (p === PFX_F3 || p === PFX_F2) { // MOVSLDUP / MOVDDUP
        const src = p === PFX_F2 ? src64(c, r, b, f) : src128(c, r, b, f, true);
        const a = src * 4;
        if (p === PFX_F2) { const lo = w[a]; const hi = w[a + 1]; w[d * 4] = lo; w[d * 4 + 1] = hi; w[d * 4 + 2] = lo; w[d * 4 + 3] = hi; }
        else { const x = w[a]; const y = w[a + 2]; w[d * 4] = x; w[d * 4 + 1] = x; w[d * 4 + 2] = y; w[d * 4 + 3] = y; }
        return;
      }
      if (mod3) { // MOVHLPS
        if (p === PFX_66) return ud(c);
        const m = r[b + D_RM] * 4;
        w[d * 4] = w[m + 2]; w[d * 4 + 1] = w[m + 3];
        return;
      }
      { // MOVLPS / MOVLPD load
        const lo = c.rd64(effectiveAddress(c, r, b));
        w[d * 4] = lo; w[d * 4 + 1] = c.rdHi;
      }
      return;
    case 0x13: case 0x17: // MOVLPS/MOVLPD/MOVHPS/MOVHPD store
      if (p > PFX_66) return ud(c);
      memOnly(c, f);
      { const at = d * 4 + (o === 0x17 ? 2 : 0); c.wr64(effectiveAddress(c, r, b), w[at], w[at + 1]); }
      return;
    case 0x16:
      if (p === PFX_F3) { // MOVSHDUP
        const a = src128(c, r, b, f, true) * 4;
        const x = w[a + 1]; const y = w[a + 3];
        w[d * 4] = x; w[d * 4 + 1] = x; w[d * 4 + 2] = y; w[d * 4 + 3] = y;
        return;
      }
      if (p === PFX_F2) return ud(c);
      if (mod3) { // MOVLHPS
        if (p === PFX_66) return ud(c);
        const m = r[b + D_RM] * 4;
        w[d * 4 + 2] = w[m]; w[d * 4 + 3] = w[m + 1];
        return;
      }
      { const lo = c.rd64(effectiveAddress(c, r, b)); w[d * 4 + 2] = lo; w[d * 4 + 3] = c.rdHi; }
      return;
    case 0x14: case 0x15: { // UNPCKL/H PS/PD
      if (p > PFX_66) return ud(c);
      const a = src128(c, r, b, f, true) * 4;
      const t = X_TMP * 4; const dd = d * 4;
      const h = o === 0x15 ? 2 : 0;
      if (p === PFX_66) { w[t] = w[dd + h]; w[t + 1] = w[dd + h + 1]; w[t + 2] = w[a + h]; w[t + 3] = w[a + h + 1]; }
      else { w[t] = w[dd + h]; w[t + 1] = w[a + h]; w[t + 2] = w[dd + h + 1]; w[t + 3] = w[a + h + 1]; }
      s.copy(d, X_TMP);
      return;
    }
    case 0x28: // MOVAPS/MOVAPD load
      if (p > PFX_66) return ud(c);
      s.copy(d, src128(c, r, b, f, true));
      return;
    case 0x29: case 0x2b: // MOVAPS/MOVAPD store, MOVNTPS/MOVNTPD
      if (p > PFX_66) return ud(c);
      if (mod3) { if (o === 0x2b) return ud(c); s.copy(r[b + D_RM], d); return; }
      { const lin = effectiveAddress(c, r, b); aligned(c, lin); write128(c, lin, d); }
      return;
    case 0x2a: { // CVTSI2SS / CVTSI2SD
      if (p !== PFX_F3 && p !== PFX_F2) return ud(c);
      const wide = (f & F_REXW) !== 0;
      const v = readRm(c, r, b, wide ? 8 : 4);
      const hi = wide ? c.rdHi : v >> 31;
      beginFp(s);
      const res = intToFloat(v, hi, p === PFX_F3);
      finishFlags(c);
      if (p === PFX_F3) s.f32[d * 4] = res; else s.f64[d * 2] = res;
      return;
    }
    case 0x2c: case 0x2d: { // CVTTSS2SI / CVTSS2SI / CVTTSD2SI / CVTSD2SI
      if (p !== PFX_F3 && p !== PFX_F2) return ud(c);
      const double = p === PFX_F2;
      const src = double ? src64(c, r, b, f) : src32(c, r, b, f);
      const bits = (f & F_REXW) !== 0 ? 64 : 32;
      beginFp(s);
      const v = toInt(laneValue(s, src * 4, double), bits, o === 0x2c);
      finishFlags(c);
      const n = d;
      if (bits === 32) { c.lo[n] = v !== v ? 0x80000000 | 0 : v | 0; c.hi[n] = 0; }
      else if (v !== v) { c.lo[n] = 0; c.hi[n] = 0x80000000 | 0; }
      else { const hi = Math.floor(v / 4294967296); c.lo[n] = (v - hi * 4294967296) | 0; c.hi[n] = hi | 0; }
      return;
    }
    case 0x2e: case 0x2f: { // UCOMIS / COMIS
      if (p > PFX_66) return ud(c);
      const double = p === PFX_66;
      const src = double ? src64(c, r, b, f) : src32(c, r, b, f);
      comis(c, d, src, double, o === 0x2f);
      return;
    }
    case 0x50: { // MOVMSKPS/PD
      if (p > PFX_66 || !mod3) return ud(c);
      const m = r[b + D_RM] * 4;
      const v = p === PFX_66 ? ((w[m + 1] >>> 31) | ((w[m + 3] >>> 31) << 1))
        : (w[m] >>> 31) | ((w[m + 1] >>> 31) << 1) | ((w[m + 2] >>> 31) << 2) | ((w[m + 3] >>> 31) << 3);
      c.lo[d] = v; c.hi[d] = 0;
      return;
    }
    case 0x51: case 0x58: case 0x59: case 0x5c: case 0x5d: case 0x5e: case 0x5f: {
      const fop = o === 0x51 ? OP_SQRT : o === 0x58 ? OP_ADD : o === 0x59 ? OP_MUL : o === 0x5c ? OP_SUB : o === 0x5d ? OP_MIN : o === 0x5e ? OP_DIV : OP_MAX;
      const double = p === PFX_66 || p === PFX_F2;
      const scalar = p >= PFX_F3;
      const src = scalar ? (double ? src64(c, r, b, f) : src32(c, r, b, f)) : src128(c, r, b, f, true);
      fpArith(c, fop, d, src, double, scalar ? 1 : double ? 2 : 4);
      return;
    }
    case 0x52: case 0x53: { // RSQRTPS/SS, RCPPS/SS (approximations, see approxLane)
      if (p === PFX_66 || p === PFX_F2) return ud(c);
      const scalar = p === PFX_F3;
      const src = scalar ? src32(c, r, b, f) : src128(c, r, b, f, true);
      const n = scalar ? 1 : 4;
      s.copy(X_RES, d);
      for (let i = 0; i < n; i++) approxLane(s, X_RES * 4 + i, src * 4 + i, o === 0x52);
      s.copy(d, X_RES);
      return;
    }
    case 0x54: case 0x55: case 0x56: case 0x57: { // AND/ANDN/OR/XOR PS/PD
      if (p > PFX_66) return ud(c);
      const a = src128(c, r, b, f, true) * 4;
      const dd = d * 4;
      for (let i = 0; i < 4; i++) {
        const x = w[dd + i]; const y = w[a + i];
        w[dd + i] = o === 0x54 ? x & y : o === 0x55 ? ~x & y : o === 0x56 ? x | y : x ^ y;
      }
      return;
    }
    case 0x5a: { // CVTPS2PD / CVTPD2PS / CVTSS2SD / CVTSD2SS
      beginFp(s);
      const dd = X_RES * 4;
      s.copy(X_RES, d);
      if (p === PFX_NONE) {
        const a = src64(c, r, b, f) * 4;
        s.copy(X_TMP, a >> 2);
        widenLane(s, dd, X_TMP * 4); widenLane(s, dd + 2, X_TMP * 4 + 1);
      } else if (p === PFX_66) {
        const a = src128(c, r, b, f, true) * 4;
        narrowLane(s, dd, a); narrowLane(s, dd + 1, a + 2); w[dd + 2] = 0; w[dd + 3] = 0;
      } else if (p === PFX_F3) widenLane(s, dd, src32(c, r, b, f) * 4);
      else narrowLane(s, dd, src64(c, r, b, f) * 4);
      commitFp(c, d);
      return;
    }
    case 0x5b: { // CVTDQ2PS / CVTPS2DQ / CVTTPS2DQ
      if (p === PFX_F2) return ud(c);
      const a = src128(c, r, b, f, true) * 4;
      const dd = X_RES * 4;
      beginFp(s);
      for (let i = 0; i < 4; i++) {
        if (p === PFX_NONE) s.f32[dd + i] = round32(w[a + i], 0);
        else w[dd + i] = toInt32Lane(s, a + i, false, p === PFX_F3);
      }
      commitFp(c, d);
      return;
    }
    case 0xe6: { // CVTTPD2DQ / CVTDQ2PD / CVTPD2DQ
      beginFp(s);
      const dd = X_RES * 4;
      if (p === PFX_F3) {
        const a = src64(c, r, b, f) * 4;
        const x = w[a]; const y = w[a + 1];
        s.f64[X_RES * 2] = x; s.f64[X_RES * 2 + 1] = y;
      } else {
        const a = src128(c, r, b, f, true) * 4;
        w[dd] = toInt32Lane(s, a, true, p === PFX_66);
        w[dd + 1] = toInt32Lane(s, a + 2, true, p === PFX_66);
        w[dd + 2] = 0; w[dd + 3] = 0;
      }
      commitFp(c, d);
      return;
    }
    case 0x6e: { // MOVD/MOVQ xmm, r/m32/64
      if (p !== PFX_66) return ud(c);
      const wide = (f & F_REXW) !== 0;
      const v = readRm(c, r, b, wide ? 8 : 4);
      w[d * 4] = v; w[d * 4 + 1] = wide ? c.rdHi : 0; w[d * 4 + 2] = 0; w[d * 4 + 3] = 0;
      return;
    }
    case 0x7e:
      if (p === PFX_F3) { // MOVQ xmm, xmm/m64
        const a = src64(c, r, b, f) * 4;
        const lo = w[a]; const hi = w[a + 1];
        w[d * 4] = lo; w[d * 4 + 1] = hi; w[d * 4 + 2] = 0; w[d * 4 + 3] = 0;
        return;
      }
      if (p !== PFX_66) return ud(c);
      if ((f & F_REXW) !== 0) writeRm(c, r, b, 8, w[d * 4], w[d * 4 + 1]);
      else writeRm(c, r, b, 4, w[d * 4], 0);
      return;
    case 0xd6: // MOVQ xmm/m64, xmm
      if (p !== PFX_66) return ud(c); // the F3/F2 forms (MOVQ2DQ/MOVDQ2Q) are mmx.ts's
      if (mod3) { const m = r[b + D_RM] * 4; w[m] = w[d * 4]; w[m + 1] = w[d * 4 + 1]; w[m + 2] = 0; w[m + 3] = 0; }
      else c.wr64(effectiveAddress(c, r, b), w[d * 4], w[d * 4 + 1]);
      return;
    case 0x6f: // MOVDQA / MOVDQU load
      if (p !== PFX_66 && p !== PFX_F3) return ud(c);
      s.copy(d, src128(c, r, b, f, p === PFX_66));
      return;
    case 0x7f: // MOVDQA / MOVDQU store
      if (p !== PFX_66 && p !== PFX_F3) return ud(c);
      if (mod3) { s.copy(r[b + D_RM], d); return; }
      { const lin = effectiveAddress(c, r, b); if (p === PFX_66) aligned(c, lin); write128(c, lin, d); }
      return;
    case 0xe7: // MOVNTDQ
      if (p !== PFX_66 || mod3) return ud(c);
      { const lin = effectiveAddress(c, r, b); aligned(c, lin); write128(c, lin, d); }
      return;
    case 0xf0: // LDDQU
      if (p !== PFX_F2 || mod3) return ud(c);
      read128(c, effectiveAddress(c, r, b), d);
      return;
    case 0x70: { // PSHUFD / PSHUFHW / PSHUFLW
      if (p === PFX_NONE) return ud(c);
      const a = src128(c, r, b, f, true);
      const imm = r[b + D_IMM] & 0xff;
      const t = X_TMP;
      s.copy(t, a);
      if (p === PFX_66) for (let i = 0; i < 4; i++) w[t * 4 + i] = w[a * 4 + ((imm >> (2 * i)) & 3)];
      else {
        const base = p === PFX_F3 ? 4 : 0;
        for (let i = 0; i < 4; i++) s.u16[t * 8 + base + i] = s.u16[a * 8 + base + ((imm >> (2 * i)) & 3)];
      }
      s.copy(d, t);
      return;
    }
    case 0x71: case 0x72: case 0x73: { // shift by immediate groups
      if (p !== PFX_66 || !mod3) return ud(c);
      const sub = d & 7;
      const m = r[b + D_RM];
      const n = r[b + D_IMM] & 0xff;
      if (o === 0x73) {
        if (sub === 2) shiftLanes(s, m, n, 0, 64);
        else if (sub === 6) shiftLanes(s, m, n, 2, 64);
        else if (sub === 3) byteShift(s, m, n > 16 ? 16 : n, false);
        else if (sub === 7) byteShift(s, m, n > 16 ? 16 : n, true);
        else return ud(c);
        return;
      }
      const width = o === 0x71 ? 16 : 32;
      if (sub === 2) shiftLanes(s, m, n, 0, width);
      else if (sub === 4) shiftLanes(s, m, n, 1, width);
      else if (sub === 6) shiftLanes(s, m, n, 2, width);
      else return ud(c);
      return;
    }
    case 0xd1: case 0xd2: case 0xd3: case 0xe1: case 0xe2: case 0xf1: case 0xf2: case 0xf3: { // shifts by xmm/m128
      if (p !== PFX_66) return ud(c);
      const count = shiftCount(s, src128(c, r, b, f, true));
      const kind = o < 0xe0 ? 0 : o < 0xf0 ? 1 : 2;
      const width = (o & 3) === 1 ? 16 : (o & 3) === 2 ? 32 : 64;
      shiftLanes(s, d, count, kind, width);
      return;
    }
    case 0x7c: case 0x7d: { // HADDPD/HADDPS/HSUBPD/HSUBPS
      if (p !== PFX_66 && p !== PFX_F2) return ud(c);
      fpHorizontal(c, o === 0x7c ? OP_ADD : OP_SUB, d, src128(c, r, b, f, true), p === PFX_66);
      return;
    }
    case 0xd0: // ADDSUBPD / ADDSUBPS
      if (p !== PFX_66 && p !== PFX_F2) return ud(c);
      fpAddSub(c, d, src128(c, r, b, f, true), p === PFX_66);
      return;
    case 0xc2: { // CMPPS/PD/SS/SD
      const double = p === PFX_66 || p === PFX_F2;
      const scalar = p >= PFX_F3;
      const src = scalar ? (double ? src64(c, r, b, f) : src32(c, r, b, f)) : src128(c, r, b, f, true);
      const pred = r[b + D_IMM] & 0xff;
      if (pred > 7) return ud(c); // the AVX predicates need VEX
      beginFp(s);
      s.copy(X_RES, d);
      const n = scalar ? 1 : double ? 2 : 4;
      const step = double ? 2 : 1;
      for (let i = 0; i < n; i++) cmpLane(s, pred, X_RES * 4 + i * step, d * 4 + i * step, src * 4 + i * step, double);
      commitFp(c, d);
      return;
    }
    case 0xc4: { // PINSRW
      if (p !== PFX_66) return ud(c);
      const v = readRm(c, r, b, 2);
      s.u16[d * 8 + (r[b + D_IMM] & 7)] = v;
      return;
    }
    case 0xc5: // PEXTRW
      if (p !== PFX_66 || !mod3) return ud(c);
      writeReg(c, d, 4, f, s.u16[r[b + D_RM] * 8 + (r[b + D_IMM] & 7)], 0);
      return;
    case 0xc6: { // SHUFPS / SHUFPD
      if (p > PFX_66) return ud(c);
      const a = src128(c, r, b, f, true) * 4;
      const imm = r[b + D_IMM] & 0xff;
      const t = X_TMP * 4; const dd = d * 4;
      if (p === PFX_66) {
        const i0 = (imm & 1) * 2; const i1 = ((imm >> 1) & 1) * 2;
        w[t] = w[dd + i0]; w[t + 1] = w[dd + i0 + 1]; w[t + 2] = w[a + i1]; w[t + 3] = w[a + i1 + 1];
      } else {
        w[t] = w[dd + (imm & 3)]; w[t + 1] = w[dd + ((imm >> 2) & 3)];
        w[t + 2] = w[a + ((imm >> 4) & 3)]; w[t + 3] = w[a + ((imm >> 6) & 3)];
      }
      s.copy(d, X_TMP);
      return;
    }
    case 0xd7: { // PMOVMSKB
      if (p !== PFX_66 || !mod3) return ud(c);
      const m = r[b + D_RM] * 16;
      let v = 0;
      for (let i = 0; i < 16; i++) v |= (s.u8[m + i] >> 7) << i;
      c.lo[d] = v; c.hi[d] = 0;
      return;
    }
    case 0xf7: maskMove(c, r, b, f, p, d); return;
    default: return ud(c);
  }
}

/** MASKMOVDQU xmm1, xmm2: stores the bytes of xmm1 whose mask byte in xmm2 has its top bit set, at DS:rDI. */
function maskMove(c: Cpu, r: Int32Array, b: number, f: number, p: number, d: number): void {
  if (p !== PFX_66 || (f & F_MOD3) === 0) return ud(c);
  const s = c.sse;
  const m = r[b + D_RM] * 16;
  const off = maskMoveAddress(c, f);
  let any = false;
  for (let i = 0; i < 16; i++) if ((s.u8[m + i] & 0x80) !== 0) any = true;
  if (!any) return;
  c.translate(off, ACC_WRITE, c.cpl === 3);
  c.translate(c.linWrap(off + 15), ACC_WRITE, c.cpl === 3);
  for (let i = 0; i < 16; i++) if ((s.u8[m + i] & 0x80) !== 0) c.wr8(c.linWrap(off + i), s.u8[d * 16 + i]);
}

/** The linear address of MASKMOVDQU/MASKMOVQ's implicit destination, DS:rDI (segment overridable). */
export function maskMoveAddress(c: Cpu, f: number): number {
  const asz = (f >> F_ASIZE_SHIFT) & 3;
  const off = asz === 2 ? c.reg64(7) : asz === 1 ? c.lo[7] >>> 0 : c.lo[7] & 0xffff;
  const seg = (f >> F_SEG_SHIFT) & 7;
  if (seg !== SEG_FLAT && (!c.long64 || seg >= 4)) return c.long64 ? off + c.segBase[seg] : (off + c.segBase[seg]) >>> 0;
  return off;
}

/**
 * RCPPS/RCPSS/RSQRTPS/RSQRTSS. The SDM allows a relative error up to
 * 1.5 * 2^-12; this returns the correctly rounded float32 of 1/x or 1/sqrt(x)
 * (error <= 2^-24), which is within that bound but not bit-identical to any
 * hardware table. Denormal inputs count as zero, results too small for a
 * normal float32 become zero; no MXCSR flags are raised.
 */
function approxLane(s: SseState, out: number, wi: number, rsqrt: boolean): void {
  const w = s.i32;
  const x = w[wi];
  if (isNaN32(x)) { w[out] = x | 0x400000; return; }
  let v = s.f32[wi];
  if ((x & 0x7f800000) === 0) v = (x & 0x80000000) !== 0 ? -0 : 0;
  let res: number;
  if (rsqrt) res = v === 0 ? 1 / v : v < 0 ? NaN : 1 / Math.sqrt(v);
  else res = 1 / v;
  if (res !== res) { w[out] = DEFAULT_NAN32; return; }
  res = Math.fround(res);
  if (res !== 0 && Math.abs(res) < 2 ** -126) res = res < 0 ? -0 : 0;
  s.f32[out] = res;
}

/** 0F AE /0-/3 memory forms: FXSAVE, FXRSTOR, LDMXCSR, STMXCSR. Returns false for anything else. */
export function executeGroup15Sse(c: Cpu, r: Int32Array, b: number, f: number, sub: number): void {
  if ((c.cr0 & CR0_EM) !== 0) c.raise(X_UD);
  if ((c.cr0 & CR0_TS) !== 0) c.raise(X_NM);
  const s = c.sse;
  const lin = effectiveAddress(c, r, b);
  switch (sub) {
    case 0: fxsave(c, lin, (f & F_REXW) !== 0); return;
    case 1: fxrstor(c, lin, (f & F_REXW) !== 0); return;
    case 2: { // LDMXCSR
      if ((c.cr4 & CR4_OSFXSR) === 0) c.raise(X_UD);
      const v = c.rd32(lin);
      if ((v & ~MXCSR_MASK) !== 0) c.raise(X_GP, 0);
      s.mxcsr = v & MXCSR_MASK;
      return;
    }
    default: // STMXCSR
      if ((c.cr4 & CR4_OSFXSR) === 0) c.raise(X_UD);
      c.wr32(lin, s.mxcsr);
      return;
  }
}

/** CLFLUSH: nothing to flush, but the address must translate like a read (#PF/#GP as for a byte load). */
export function clflush(c: Cpu, lin: number): void {
  c.translate(lin, ACC_READ, c.cpl === 3);
}

/** Test hook: the double at XMM `n` lane `lane`. */
export function xmmDouble(s: SseState, n: number, lane: number): number {
  return f64FromBits(s.i32[n * 4 + lane * 2], s.i32[n * 4 + lane * 2 + 1]);
}
