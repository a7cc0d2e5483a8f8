/**
 * Operand access for the soft CPU's interpreter: effective addresses from a
 * decoded record, registers by operand size (8-bit high-byte registers
 * included), memory by size, and the integer ALU core that records lazy flags.
 */

import type { Cpu } from './cpu.js';
import {
  L_ADC, L_ADD, L_DEC, L_INC, L_LOGIC, L_SBB, L_SUB, FS, X_SS,
} from './arch.js';
import {
  D_BASE, D_DISP, D_FLAGS, D_INDEX, D_RM, D_SCALE, F_ASIZE_SHIFT, F_MOD3, F_REX, F_RIPREL, F_SEG_OVERRIDE, F_SEG_SHIFT, SEG_FLAT,
} from './decoder.js';

const TWO32 = 0x1_0000_0000;

/** Operand size in bytes (2, 4 or 8) from decoder flags. */
export function opSize(f: number): number {
  return 2 << (f & 3);
}

/** Address size in bytes (2, 4 or 8). */
export function addrSize(f: number): number {
  return 2 << ((f >> F_ASIZE_SHIFT) & 3);
}

/** The linear address of the memory operand of record `b`. */
export function effectiveAddress(c: Cpu, r: Int32Array, b: number): number {
  const f = r[b + D_FLAGS];
  const asz = (f >> F_ASIZE_SHIFT) & 3;
  const base = r[b + D_BASE];
  const index = r[b + D_INDEX];
  let off = r[b + D_DISP];
  const seg = (f >> F_SEG_SHIFT) & 7;
  if (asz === 2) {
    offset64(c, r, b, f);
    // Exact for canonical offsets; a non-canonical one stays non-canonical (|value| >= 2^47) after rounding.
    const v = c.eaHi * TWO32 + (c.eaLo >>> 0);
    // A non-canonical stack reference (RSP/RBP base, no segment override) is #SS(0), not #GP(0).
    // (An explicit SS: override on another base is not told apart from DS: in 64-bit mode here.)
    if ((base === 4 || base === 5) && (f & F_SEG_OVERRIDE) === 0 && (v < -0x800000000000 || v >= 0x800000000000)) c.raise(X_SS, 0);
    return seg === SEG_FLAT ? v : v + c.segBase[seg];
  }
  if (asz === 1) {
    if (base >= 0) off += c.lo[base];
    if (index >= 0) off += c.lo[index] << r[b + D_SCALE];
    if ((f & F_RIPREL) !== 0) off += c.nextRip;
    off >>>= 0;
  } else {
    if (base >= 0) off += c.lo[base];
    if (index >= 0) off += c.lo[index];
    off &= 0xffff;
  }
  if (seg === SEG_FLAT) return off;
  if (c.long64) return seg >= FS ? off + c.segBase[seg] : off;
  return (c.segBase[seg] + off) >>> 0;
}

/**
 * The 64-bit offset part of a memory operand, exact modulo 2^64 (compilers
 * use LEA for plain arithmetic), into c.eaLo/c.eaHi.
 */
export function offset64(c: Cpu, r: Int32Array, b: number, f: number): void {
  let lo = r[b + D_DISP];
  let hi = lo >> 31;
  const base = r[b + D_BASE];
  const index = r[b + D_INDEX];
  if (base >= 0) {
    const s = (lo >>> 0) + (c.lo[base] >>> 0);
    hi = hi + c.hi[base] + (s > 0xffffffff ? 1 : 0);
    lo = s | 0;
  }
  if (index >= 0) {
    const sc = r[b + D_SCALE];
    let il = c.lo[index];
    let ih = c.hi[index];
    if (sc !== 0) { ih = (ih << sc) | (il >>> (32 - sc)); il <<= sc; }
    const s = (lo >>> 0) + (il >>> 0);
    hi = hi + ih + (s > 0xffffffff ? 1 : 0);
    lo = s | 0;
  }
  if ((f & F_RIPREL) !== 0) {
    const ip = c.nextRip;
    const s = (lo >>> 0) + (ip % TWO32 >>> 0);
    hi = hi + Math.floor(ip / TWO32) + (s > 0xffffffff ? 1 : 0);
    lo = s | 0;
  }
  c.eaLo = lo;
  c.eaHi = hi | 0;
}

/** Reads register `n` at `size` bytes (1: AL..BH or SPL..R15B by REX). Size 8 sets rdHi. */
export function readReg(c: Cpu, n: number, size: number, f: number): number {
  if (size === 4) return c.lo[n];
  if (size === 8) { c.rdHi = c.hi[n]; return c.lo[n]; }
  if (size === 2) return c.lo[n] & 0xffff;
  if ((f & F_REX) !== 0 || n < 4 || n > 7) return c.lo[n] & 0xff;
  return (c.lo[n - 4] >> 8) & 0xff;
}

export function writeReg(c: Cpu, n: number, size: number, f: number, v: number, vHi: number): void {
  if (size === 4) { c.lo[n] = v; c.hi[n] = 0; return; }
  if (size === 8) { c.lo[n] = v; c.hi[n] = vHi; return; }
  if (size === 2) { c.lo[n] = (c.lo[n] & ~0xffff) | (v & 0xffff); return; }
  if ((f & F_REX) !== 0 || n < 4 || n > 7) c.lo[n] = (c.lo[n] & ~0xff) | (v & 0xff);
  else c.lo[n - 4] = (c.lo[n - 4] & ~0xff00) | ((v & 0xff) << 8);
}

export function readMem(c: Cpu, lin: number, size: number): number {
  if (size === 4) return c.rd32(lin);
  if (size === 8) return c.rd64(lin);
  if (size === 2) return c.rd16(lin);
  return c.rd8(lin);
}

export function writeMem(c: Cpu, lin: number, size: number, v: number, vHi: number): void {
  if (size === 4) c.wr32(lin, v);
  else if (size === 8) c.wr64(lin, v, vHi);
  else if (size === 2) c.wr16(lin, v);
  else c.wr8(lin, v);
}

/** Reads the ModRM r/m operand; memory operands remember their address in c.lastLin for a later write. */
export function readRm(c: Cpu, r: Int32Array, b: number, size: number): number {
  const f = r[b + D_FLAGS];
  if ((f & F_MOD3) !== 0) return readReg(c, r[b + D_RM], size, f);
  const lin = effectiveAddress(c, r, b);
  c.lastLin = lin;
  return readMem(c, lin, size);
}

/**
 * readRm for read-modify-write instructions: a memory operand is also checked
 * for write access first, so a write fault (#PF on a read-only page) is raised
 * before the instruction changes any flag.
 */
export function readRmRmw(c: Cpu, r: Int32Array, b: number, size: number): number {
  const f = r[b + D_FLAGS];
  if ((f & F_MOD3) !== 0) return readReg(c, r[b + D_RM], size, f);
  const lin = effectiveAddress(c, r, b);
  c.lastLin = lin;
  c.probeWrite(lin, size);
  return readMem(c, lin, size);
}

/** Writes the r/m operand after readRm (memory: to c.lastLin). */
export function writeRmAfterRead(c: Cpu, r: Int32Array, b: number, size: number, v: number, vHi: number): void {
  const f = r[b + D_FLAGS];
  if ((f & F_MOD3) !== 0) writeReg(c, r[b + D_RM], size, f, v, vHi);
  else writeMem(c, c.lastLin, size, v, vHi);
}

/** Writes the r/m operand (no prior read). */
export function writeRm(c: Cpu, r: Int32Array, b: number, size: number, v: number, vHi: number): void {
  const f = r[b + D_FLAGS];
  if ((f & F_MOD3) !== 0) writeReg(c, r[b + D_RM], size, f, v, vHi);
  else writeMem(c, effectiveAddress(c, r, b), size, v, vHi);
}

/** Truncates `v` to `size` bytes: unsigned for 1 and 2, int32 for 4 and 8 (low half). */
export function trunc(v: number, size: number): number {
  return size === 1 ? v & 0xff : size === 2 ? v & 0xffff : v | 0;
}

/**
 * The eight classic ALU operations (ADD OR ADC SBB AND SUB XOR CMP, in
 * encoding order) on (aHi:a) and (bHi:b) of `size` bytes. Sets lazy flags,
 * returns the low result; the high half goes to c.resHi.
 */
export function alu(c: Cpu, kind: number, size: number, a: number, aHi: number, b: number, bHi: number): number {
  let res: number;
  let resHi = 0;
  switch (kind) {
    case 0: // ADD
      if (size === 8) {
        res = (a + b) | 0;
        resHi = (aHi + bHi + ((a >>> 0) + (b >>> 0) > 0xffffffff ? 1 : 0)) | 0;
      } else res = trunc(a + b, size);
      c.setLazy(L_ADD, size, res, resHi, a, aHi, b, bHi);
      break;
    case 1: // OR
      res = a | b; resHi = aHi | bHi;
      c.setLazy(L_LOGIC, size, res, resHi, a, aHi, b, bHi);
      break;
    case 2: { // ADC
      const cin = c.getCF();
      if (size === 8) {
        res = (a + b + cin) | 0;
        resHi = (aHi + bHi + ((a >>> 0) + (b >>> 0) + cin > 0xffffffff ? 1 : 0)) | 0;
      } else res = trunc(a + b + cin, size);
      c.setLazy(L_ADC, size, res, resHi, a, aHi, b, bHi);
      c.lazyCF = cin;
      break;
    }
    case 3: { // SBB
      const cin = c.getCF();
      if (size === 8) {
        res = (a - b - cin) | 0;
        resHi = (aHi - bHi - ((a >>> 0) - (b >>> 0) - cin < 0 ? 1 : 0)) | 0;
      } else res = trunc(a - b - cin, size);
      c.setLazy(L_SBB, size, res, resHi, a, aHi, b, bHi);
      c.lazyCF = cin;
      break;
    }
    case 4: // AND
      res = a & b; resHi = aHi & bHi;
      c.setLazy(L_LOGIC, size, res, resHi, a, aHi, b, bHi);
      break;
    case 6: // XOR
      res = a ^ b; resHi = aHi ^ bHi;
      c.setLazy(L_LOGIC, size, res, resHi, a, aHi, b, bHi);
      break;
    default: // SUB, CMP
      if (size === 8) {
        res = (a - b) | 0;
        resHi = (aHi - bHi - ((a >>> 0) < (b >>> 0) ? 1 : 0)) | 0;
      } else res = trunc(a - b, size);
      c.setLazy(L_SUB, size, res, resHi, a, aHi, b, bHi);
      break;
  }
  c.resHi = resHi;
  return res;
}

/** INC (dec = false) or DEC of (aHi:a): keeps CF. */
export function incDec(c: Cpu, dec: boolean, size: number, a: number, aHi: number): number {
  const cf = c.getCF();
  let res: number;
  let resHi = 0;
  if (size === 8) {
    if (dec) { res = (a - 1) | 0; resHi = (aHi - (a === 0 ? 1 : 0)) | 0; }
    else { res = (a + 1) | 0; resHi = (aHi + (res === 0 ? 1 : 0)) | 0; }
  } else res = trunc(dec ? a - 1 : a + 1, size);
  c.setLazy(dec ? L_DEC : L_INC, size, res, resHi, a, aHi, 1, 0);
  c.lazyCF = cf;
  c.resHi = resHi;
  return res;
}

/** Sign-extends the low `size` bytes of v to int32. */
export function signExtend(v: number, size: number): number {
  return size === 1 ? (v << 24) >> 24 : size === 2 ? (v << 16) >> 16 : v | 0;
}

/** The sign bit mask of a `size`-byte value's low word. */
export function signBitOf(size: number): number {
  return size === 1 ? 0x80 : size === 2 ? 0x8000 : 0x80000000 | 0;
}
