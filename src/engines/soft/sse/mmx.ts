/**
 * MMX for the soft CPU: the MMX instruction set (the no-prefix forms of 0F
 * 60-7F and 0F D0-FE, EMMS), the SSE/SSE2 instructions on MMX registers
 * (PAVGB/W, PMINUB/PMAXUB, PMINSW/PMAXSW, PMOVMSKB, PMULHUW, PSADBW,
 * PEXTRW/PINSRW, PSHUFW, MASKMOVQ, MOVNTQ, PADDQ/PSUBQ, PMULUDQ) and the
 * moves and conversions between MMX and XMM registers (MOVQ2DQ, MOVDQ2Q,
 * CVTPI2PS, CVT(T)PS2PI, CVTPI2PD, CVT(T)PD2PI). interp.ts sends every
 * instruction `isMmxForm` accepts here instead of to exec.ts.
 *
 * MM0-MM7 are the 64-bit significands of the x87 physical registers R0-R7
 * (`cpu.x87.lo/hi`, MMi = Ri, not ST(i)), so FXSAVE/FNSAVE carry them. Every
 * MMX instruction except EMMS sets TOP to 0 and every tag to valid, after its
 * last possible fault; writing MMi also sets Ri's sign and exponent to all
 * ones. EMMS empties every tag. CVTPI2PD with a memory source is the one
 * exception: no transition, no #MF (SDM). Checks, in order: CR0.EM → #UD (plus
 * CR4.OSFXSR = 0 → #UD for the forms that use XMM state), CR0.TS → #NM, a
 * pending unmasked x87 exception with CR0.NE → #MF.
 *
 * The lane arithmetic reuses exec.ts's 128-bit integer helpers on scratch
 * slots (the destination in X_MMX, the source in X_SRC; the low quadword is
 * the result), so nothing allocates.
 */

import type { Cpu } from '../cpu.js';
import { ACC_WRITE, CR0_EM, CR0_NE, CR0_TS, X_MF, X_NM, X_UD } from '../arch.js';
import { D_IMM, D_REG, D_RM, F_MOD3, F_OPSIZE_PREFIX, F_REP, F_REPNE, F_REXW, OP_MAP_0F } from '../decoder.js';
import { effectiveAddress, readRm, writeReg, writeRm } from '../operands.js';
import { SW_ES, TAG_EMPTY, TAG_VALID, type X87State } from '../fpu/state.js';
import { X_MMX, X_RES, X_SRC } from './state.js';
import { beginFp, round32 } from './fp.js';
import {
  CR4_OSFXSR, commitFp, finishFlags, intOp, isIntOp, maskMoveAddress, shiftCount, shiftLanes, src128, src64, toInt32Lane,
} from './exec.js';

/** Sign/exponent bits an MMX register write leaves in its x87 register. */
const MMX_EXPONENT = 0xffff;

/**
 * True for the encodings this module executes: the no-prefix forms of 0F
 * 2A/2C/2D, 60-7F, C4/C5 and D0-FF, 66 0F 2A/2C/2D and F3/F2 0F D6.
 */
export function isMmxForm(op: number, f: number): boolean {
  if (op < OP_MAP_0F || op >= OP_MAP_0F + 0x100) return false;
  const o = op & 0xff;
  if ((f & (F_REP | F_REPNE)) !== 0) return o === 0xd6;
  if ((f & F_OPSIZE_PREFIX) !== 0) return o === 0x2a || o === 0x2c || o === 0x2d;
  return (o >= 0x60 && o <= 0x7f) || o >= 0xd0 || o === 0x2a || o === 0x2c || o === 0x2d || o === 0xc4 || o === 0xc5;
}

// ---------------------------------------------------------------------------
// State transitions and checks
// ---------------------------------------------------------------------------

/** The x87 → MMX transition: TOP = 0, all tags valid. */
function enterMmx(x: X87State): void {
  x.top = 0;
  x.tag.fill(TAG_VALID);
}

/** Writes MMn (sign/exponent all ones) and makes the MMX transition. */
function commitMm(x: X87State, n: number, lo: number, hi: number): void {
  x.lo[n] = lo;
  x.hi[n] = hi;
  x.se[n] = MMX_EXPONENT;
  enterMmx(x);
}

/** #MF for a pending unmasked x87 exception (only with CR0.NE, as for the x87 instructions). */
function checkPendingX87(c: Cpu): void {
  if ((c.x87.sw & SW_ES) !== 0 && (c.cr0 & CR0_NE) !== 0) c.raise(X_MF);
}

/** The checks of every instruction on MMX registers only (CR4.OSFXSR does not matter). */
function checkMmx(c: Cpu): void {
  if ((c.cr0 & CR0_EM) !== 0) c.raise(X_UD);
  if ((c.cr0 & CR0_TS) !== 0) c.raise(X_NM);
  checkPendingX87(c);
}

/** The checks of the MMX ↔ XMM forms; `mmx`: the instruction touches an MMX register (#MF applies). */
function checkMmxXmm(c: Cpu, mmx: boolean): void {
  if ((c.cr0 & CR0_EM) !== 0 || (c.cr4 & CR4_OSFXSR) === 0) c.raise(X_UD);
  if ((c.cr0 & CR0_TS) !== 0) c.raise(X_NM);
  if (mmx) checkPendingX87(c);
}

function ud(c: Cpu): never {
  return c.raise(X_UD);
}

// ---------------------------------------------------------------------------
// Operands
// ---------------------------------------------------------------------------

/** Loads the mm/m64 source operand into X_SRC's low quadword (`m32`: PUNPCKL* read only a dword from memory). */
function loadSource(c: Cpu, r: Int32Array, b: number, f: number, m32 = false): void {
  const w = c.sse.i32;
  const at = X_SRC * 4;
  if ((f & F_MOD3) !== 0) {
    const m = r[b + D_RM] & 7;
    w[at] = c.x87.lo[m]; w[at + 1] = c.x87.hi[m];
    return;
  }
  if (m32) { w[at] = c.rd32(effectiveAddress(c, r, b)); w[at + 1] = 0; return; }
  w[at] = c.rd64(effectiveAddress(c, r, b));
  w[at + 1] = c.rdHi;
}

/** Loads MMn into X_MMX's low quadword. */
function loadDest(c: Cpu, n: number): void {
  const w = c.sse.i32;
  w[X_MMX * 4] = c.x87.lo[n]; w[X_MMX * 4 + 1] = c.x87.hi[n];
}

/** Commits X_MMX's low quadword to MMn. */
function commitDest(c: Cpu, n: number): void {
  const w = c.sse.i32;
  commitMm(c.x87, n, w[X_MMX * 4], w[X_MMX * 4 + 1]);
}

/** Shift by register (0F D1-D3, E1-E2, F1-F3). */
function isShiftByRegister(o: number): boolean {
  return (o >= 0xd1 && o <= 0xd3) || o === 0xe1 || o === 0xe2 || (o >= 0xf1 && o <= 0xf3);
}

// ---------------------------------------------------------------------------
// Dispatch
// ---------------------------------------------------------------------------

/** Executes an instruction `isMmxForm` accepted. */
export function executeMmx(c: Cpu, op: number, b: number, r: Int32Array, f: number): void {
  const o = op & 0xff;
  if ((f & (F_REP | F_REPNE | F_OPSIZE_PREFIX)) !== 0) return executePrefixed(c, o, b, r, f);
  const x = c.x87;
  const s = c.sse;
  const w = s.i32;
  const d = r[b + D_REG] & 7;
  const mod3 = (f & F_MOD3) !== 0;

  if (isIntOp(o) && o !== 0x6c && o !== 0x6d) {
    checkMmx(c);
    loadSource(c, r, b, f, o <= 0x62);
    const t = X_MMX * 4;
    if (o >= 0x68 && o <= 0x6a) {
      // PUNPCKH{BW,WD,DQ} of two quadwords = PUNPCKL of their high dwords.
      w[t] = x.hi[d];
      w[X_SRC * 4] = w[X_SRC * 4 + 1];
      intOp(s, o - 8, X_MMX, X_SRC);
    } else if (o === 0x63 || o === 0x67 || o === 0x6b) {
      // PACK*: the 128-bit pack of (dest, source) with itself has the 64-bit result in its low quadword.
      w[t] = x.lo[d]; w[t + 1] = x.hi[d]; w[t + 2] = w[X_SRC * 4]; w[t + 3] = w[X_SRC * 4 + 1];
      intOp(s, o, X_MMX, X_MMX);
    } else {
      loadDest(c, d);
      intOp(s, o, X_MMX, X_SRC);
    }
    commitDest(c, d);
    return;
  }
  if (isShiftByRegister(o)) {
    checkMmx(c);
    loadSource(c, r, b, f);
    loadDest(c, d);
    shiftLanes(s, X_MMX, shiftCount(s, X_SRC), o < 0xe0 ? 0 : o < 0xf0 ? 1 : 2, (o & 3) === 1 ? 16 : (o & 3) === 2 ? 32 : 64);
    commitDest(c, d);
    return;
  }

  switch (o) {
    case 0x6e: { // MOVD mm, r/m32 / MOVQ mm, r/m64
      checkMmx(c);
      const wide = (f & F_REXW) !== 0;
      const v = readRm(c, r, b, wide ? 8 : 4);
      commitMm(x, d, v, wide ? c.rdHi : 0);
      return;
    }
    case 0x7e: // MOVD r/m32, mm / MOVQ r/m64, mm
      checkMmx(c);
      if ((f & F_REXW) !== 0) writeRm(c, r, b, 8, x.lo[d] | 0, x.hi[d] | 0);
      else writeRm(c, r, b, 4, x.lo[d] | 0, 0);
      enterMmx(x);
      return;
    case 0x6f: // MOVQ mm, mm/m64
      checkMmx(c);
      loadSource(c, r, b, f);
      commitMm(x, d, w[X_SRC * 4], w[X_SRC * 4 + 1]);
      return;
    case 0x7f: case 0xe7: // MOVQ mm/m64, mm; MOVNTQ m64, mm
      if (o === 0xe7 && mod3) return ud(c);
      checkMmx(c);
      if (mod3) commitMm(x, r[b + D_RM] & 7, x.lo[d], x.hi[d]);
      else { c.wr64(effectiveAddress(c, r, b), x.lo[d] | 0, x.hi[d] | 0); enterMmx(x); }
      return;
    case 0x70: { // PSHUFW mm, mm/m64, imm8
      checkMmx(c);
      loadSource(c, r, b, f);
      const imm = r[b + D_IMM];
      const u16 = s.u16; const from = X_SRC * 8; const to = X_MMX * 8;
      for (let i = 0; i < 4; i++) u16[to + i] = u16[from + ((imm >> (2 * i)) & 3)];
      commitDest(c, d);
      return;
    }
    case 0x71: case 0x72: case 0x73: { // PSRLx/PSRAx/PSLLx mm, imm8
      const sub = d;
      const valid = o === 0x73 ? sub === 2 || sub === 6 : sub === 2 || sub === 4 || sub === 6;
      if (!mod3 || !valid) return ud(c);
      checkMmx(c);
      const m = r[b + D_RM] & 7;
      loadDest(c, m);
      shiftLanes(s, X_MMX, r[b + D_IMM] & 0xff, sub === 2 ? 0 : sub === 4 ? 1 : 2, o === 0x71 ? 16 : o === 0x72 ? 32 : 64);
      commitDest(c, m);
      return;
    }
    case 0x77: // EMMS
      checkMmx(c);
      x.tag.fill(TAG_EMPTY);
      return;
    case 0xc4: { // PINSRW mm, r32/m16, imm8
      checkMmx(c);
      const v = readRm(c, r, b, 2);
      loadDest(c, d);
      s.u16[X_MMX * 8 + (r[b + D_IMM] & 3)] = v;
      commitDest(c, d);
      return;
    }
    case 0xc5: { // PEXTRW r32, mm, imm8
      if (!mod3) return ud(c);
      checkMmx(c);
      const m = r[b + D_RM] & 7;
      const sel = r[b + D_IMM] & 3;
      const v = (((sel & 2) === 0 ? x.lo[m] : x.hi[m]) >>> ((sel & 1) * 16)) & 0xffff;
      writeReg(c, r[b + D_REG], 4, f, v, 0);
      enterMmx(x);
      return;
    }
    case 0xd7: { // PMOVMSKB r32, mm
      if (!mod3) return ud(c);
      checkMmx(c);
      const m = r[b + D_RM] & 7;
      const lo = x.lo[m]; const hi = x.hi[m];
      let v = 0;
      for (let i = 0; i < 4; i++) v |= ((lo >>> (8 * i + 7)) & 1) << i | ((hi >>> (8 * i + 7)) & 1) << (i + 4);
      writeReg(c, r[b + D_REG], 4, f, v, 0);
      enterMmx(x);
      return;
    }
    case 0xf7: maskMoveQ(c, r, b, f, d); return;
    case 0x2a: { // CVTPI2PS xmm, mm/m64 (the SDM makes both forms MMX transitions, unlike CVTPI2PD)
      const xd = r[b + D_REG];
      checkMmxXmm(c, true);
      loadSource(c, r, b, f);
      beginFp(s);
      s.copy(X_RES, xd);
      s.f32[X_RES * 4] = round32(w[X_SRC * 4], 0);
      s.f32[X_RES * 4 + 1] = round32(w[X_SRC * 4 + 1], 0);
      commitFp(c, xd);
      enterMmx(x);
      return;
    }
    case 0x2c: case 0x2d: { // CVTTPS2PI / CVTPS2PI mm, xmm/m64
      checkMmxXmm(c, true);
      const a = src64(c, r, b, f) * 4;
      beginFp(s);
      const lo = toInt32Lane(s, a, false, o === 0x2c);
      const hi = toInt32Lane(s, a + 1, false, o === 0x2c);
      finishFlags(c);
      commitMm(x, d, lo, hi);
      return;
    }
    default: return ud(c);
  }
}

/** 66 0F 2A/2C/2D (CVTPI2PD, CVTTPD2PI, CVTPD2PI) and F3/F2 0F D6 (MOVQ2DQ, MOVDQ2Q). */
function executePrefixed(c: Cpu, o: number, b: number, r: Int32Array, f: number): void {
  const x = c.x87;
  const s = c.sse;
  const w = s.i32;
  const mod3 = (f & F_MOD3) !== 0;
  if (o === 0xd6) {
    if (!mod3) return ud(c);
    checkMmxXmm(c, true);
    if ((f & F_REP) !== 0) { // MOVQ2DQ xmm, mm
      const at = r[b + D_REG] * 4;
      const m = r[b + D_RM] & 7;
      w[at] = x.lo[m]; w[at + 1] = x.hi[m]; w[at + 2] = 0; w[at + 3] = 0;
      enterMmx(x);
    } else { // MOVDQ2Q mm, xmm
      const at = r[b + D_RM] * 4;
      commitMm(x, r[b + D_REG] & 7, w[at], w[at + 1]);
    }
    return;
  }
  if (o === 0x2a) { // CVTPI2PD xmm, mm/m64 (exact: no MXCSR flags; the m64 form is no MMX transition and takes no #MF)
    checkMmxXmm(c, mod3);
    loadSource(c, r, b, f);
    const at = r[b + D_REG] * 2;
    const lo = w[X_SRC * 4]; const hi = w[X_SRC * 4 + 1];
    s.f64[at] = lo; s.f64[at + 1] = hi;
    if (mod3) enterMmx(x);
    return;
  }
  // CVTTPD2PI / CVTPD2PI mm, xmm/m128 (16-byte aligned)
  checkMmxXmm(c, true);
  const a = src128(c, r, b, f, true) * 4;
  beginFp(s);
  const lo = toInt32Lane(s, a, true, o === 0x2c);
  const hi = toInt32Lane(s, a + 2, true, o === 0x2c);
  finishFlags(c);
  commitMm(x, r[b + D_REG] & 7, lo, hi);
}

/** MASKMOVQ mm1, mm2: stores the bytes of mm1 whose mask byte in mm2 has its top bit set, at DS:rDI. */
function maskMoveQ(c: Cpu, r: Int32Array, b: number, f: number, d: number): void {
  if ((f & F_MOD3) === 0) return ud(c);
  checkMmx(c);
  const x = c.x87;
  const m = r[b + D_RM] & 7;
  const maskLo = x.lo[m]; const maskHi = x.hi[m];
  if (((maskLo | maskHi) & 0x80808080) !== 0) {
    const off = maskMoveAddress(c, f);
    c.translate(off, ACC_WRITE, c.cpl === 3);
    c.translate(c.linWrap(off + 7), ACC_WRITE, c.cpl === 3);
    const lo = x.lo[d]; const hi = x.hi[d];
    for (let i = 0; i < 8; i++) {
      const mask = i < 4 ? maskLo >>> (8 * i + 7) : maskHi >>> (8 * i - 25);
      if ((mask & 1) !== 0) c.wr8(c.linWrap(off + i), (i < 4 ? lo >>> (8 * i) : hi >>> (8 * i - 32)) & 0xff);
    }
  }
  enterMmx(x);
}
