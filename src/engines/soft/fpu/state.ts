/**
 * The x87 FPU's architectural state for the soft CPU (eight 80-bit physical
 * registers in typed arrays, TOP, tags, status/control words, last
 * instruction/operand pointers) and its memory images: the x87 part of the
 * 512-byte FXSAVE area (`fxsaveX87`/`fxrstorX87`, called by the SSE code's
 * FXSAVE/FXRSTOR) and the FNSTENV/FLDENV/FNSAVE/FRSTOR layouts for 16- and
 * 32-bit operand sizes in real and protected mode.
 */

import type { Cpu } from '../cpu.js';
import { FloatEnv } from './softfloat.js';

/** Status word bits (TOP, bits 11-13, lives in X87State.top). */
export const SW_IE = 0x0001;
export const SW_SF = 0x0040;
export const SW_ES = 0x0080;
export const SW_C0 = 0x0100;
export const SW_C1 = 0x0200;
export const SW_C2 = 0x0400;
export const SW_C3 = 0x4000;
export const SW_B = 0x8000;

/** Tag values (2 bits per physical register, as in the full tag word). */
export const TAG_VALID = 0;
export const TAG_ZERO = 1;
export const TAG_SPECIAL = 2;
export const TAG_EMPTY = 3;

/** The x87 state of one vCPU. */
export class X87State {
  /** Physical registers R0-R7: sign/exponent, significand high and low halves. */
  readonly se = new Uint16Array(8);
  readonly hi = new Uint32Array(8);
  readonly lo = new Uint32Array(8);
  /** Tag per physical register (TAG_*). */
  readonly tag = new Uint8Array(8);
  top = 0;
  /** Control word. */
  cw = 0x037f;
  /** Status word without TOP. */
  sw = 0;
  /** Last non-control instruction: opcode (11 bits), offset, CS; last memory operand: offset, DS. */
  fop = 0;
  fip = 0;
  fcs = 0;
  fdp = 0;
  fds = 0;
  /** Rounding environment and result scratch of the softfloat core. */
  readonly env = new FloatEnv();

  constructor() {
    this.init();
  }

  /** FNINIT: CW 0x037F, SW 0, all registers empty, pointers cleared. */
  init(): void {
    this.cw = 0x037f;
    this.sw = 0;
    this.top = 0;
    this.tag.fill(TAG_EMPTY);
    this.fop = 0; this.fip = 0; this.fcs = 0; this.fdp = 0; this.fds = 0;
  }

  /** The status word including TOP. */
  statusWord(): number {
    return (this.sw & ~0x3800) | (this.top << 11);
  }

  setStatusWord(v: number): void {
    this.top = (v >> 11) & 7;
    this.sw = v & 0xc7ff;
  }

  /** Sets ES and B from the exception flags that the control word leaves unmasked. */
  updateSummary(): void {
    if ((this.sw & ~this.cw & 0x3f) !== 0) this.sw |= SW_ES | SW_B;
    else this.sw &= ~(SW_ES | SW_B);
  }

  /** The tag a value would get from its contents. */
  static classify(se: number, hi: number, lo: number): number {
    const e = se & 0x7fff;
    if (e === 0x7fff) return TAG_SPECIAL;
    if (e === 0) return hi === 0 && lo === 0 ? TAG_ZERO : TAG_SPECIAL;
    return (hi & 0x80000000) !== 0 ? TAG_VALID : TAG_SPECIAL;
  }

  /** Writes physical register `p` and its tag. */
  setPhys(p: number, se: number, hi: number, lo: number): void {
    this.se[p] = se; this.hi[p] = hi; this.lo[p] = lo;
    this.tag[p] = X87State.classify(se, hi, lo);
  }

  /** The full 16-bit tag word. */
  fullTagWord(): number {
    let w = 0;
    for (let p = 0; p < 8; p++) {
      const t = this.tag[p] === TAG_EMPTY ? TAG_EMPTY : X87State.classify(this.se[p], this.hi[p], this.lo[p]);
      w |= t << (2 * p);
    }
    return w;
  }

  /** Loads a full tag word: 11 marks empty, anything else is recomputed from the register. */
  setFullTagWord(w: number): void {
    for (let p = 0; p < 8; p++) {
      this.tag[p] = ((w >> (2 * p)) & 3) === TAG_EMPTY ? TAG_EMPTY : X87State.classify(this.se[p], this.hi[p], this.lo[p]);
    }
  }

  /** The abridged (FXSAVE) tag byte: bit p set when R(p) is not empty. */
  abridgedTag(): number {
    let w = 0;
    for (let p = 0; p < 8; p++) if (this.tag[p] !== TAG_EMPTY) w |= 1 << p;
    return w;
  }

  setAbridgedTag(w: number): void {
    for (let p = 0; p < 8; p++) {
      this.tag[p] = (w & (1 << p)) === 0 ? TAG_EMPTY : X87State.classify(this.se[p], this.hi[p], this.lo[p]);
    }
  }
}

const TWO32 = 0x1_0000_0000;

/**
 * Writes the x87 part of an FXSAVE image at `offset` in `view`: FCW, FSW,
 * abridged FTW, FOP, FIP/FCS (or the 64-bit FIP when `wide`, FXSAVE64),
 * FDP/FDS, and ST0-ST7 at bytes 32..159 (10 bytes each, 16-byte slots, the
 * upper 6 bytes of each slot zeroed). Bytes 24..31 (MXCSR, MXCSR_MASK) are
 * left to the caller.
 */
export function fxsaveX87(cpu: Cpu, view: DataView, offset: number, wide = false): void {
  const x = cpu.x87;
  view.setUint16(offset, x.cw, true);
  view.setUint16(offset + 2, x.statusWord(), true);
  view.setUint8(offset + 4, x.abridgedTag());
  view.setUint8(offset + 5, 0);
  view.setUint16(offset + 6, x.fop, true);
  if (wide) {
    writeU64(view, offset + 8, x.fip);
    writeU64(view, offset + 16, x.fdp);
  } else {
    view.setUint32(offset + 8, x.fip >>> 0, true);
    view.setUint32(offset + 12, x.fcs & 0xffff, true);
    view.setUint32(offset + 16, x.fdp >>> 0, true);
    view.setUint32(offset + 20, x.fds & 0xffff, true);
  }
  for (let i = 0; i < 8; i++) {
    const p = (x.top + i) & 7;
    const o = offset + 32 + 16 * i;
    view.setUint32(o, x.lo[p], true);
    view.setUint32(o + 4, x.hi[p], true);
    view.setUint16(o + 8, x.se[p], true);
    view.setUint16(o + 10, 0, true);
    view.setUint32(o + 12, 0, true);
  }
}

/** Loads the x87 part of an FXSAVE image (the inverse of fxsaveX87). */
export function fxrstorX87(cpu: Cpu, view: DataView, offset: number, wide = false): void {
  const x = cpu.x87;
  x.cw = view.getUint16(offset, true) & 0x1f7f | 0x40;
  x.setStatusWord(view.getUint16(offset + 2, true));
  x.fop = view.getUint16(offset + 6, true) & 0x7ff;
  if (wide) {
    x.fip = readU64(view, offset + 8);
    x.fdp = readU64(view, offset + 16);
    x.fcs = 0; x.fds = 0;
  } else {
    x.fip = view.getUint32(offset + 8, true);
    x.fcs = view.getUint16(offset + 12, true);
    x.fdp = view.getUint32(offset + 16, true);
    x.fds = view.getUint16(offset + 20, true);
  }
  for (let i = 0; i < 8; i++) {
    const p = (x.top + i) & 7;
    const o = offset + 32 + 16 * i;
    x.lo[p] = view.getUint32(o, true);
    x.hi[p] = view.getUint32(o + 4, true);
    x.se[p] = view.getUint16(o + 8, true);
  }
  x.setAbridgedTag(view.getUint8(offset + 4));
  x.updateSummary();
}

function writeU64(view: DataView, o: number, v: number): void {
  const lo = v % TWO32;
  const l = lo < 0 ? lo + TWO32 : lo;
  view.setUint32(o, l, true);
  view.setUint32(o + 4, Math.floor((v - l) / TWO32) >>> 0, true);
}

function readU64(view: DataView, o: number): number {
  const lo = view.getUint32(o, true);
  const hi = view.getInt32(o + 4, true);
  return hi * TWO32 + lo;
}

// ---- FNSTENV / FLDENV / FNSAVE / FRSTOR --------------------------------

/** Size in bytes of the environment image: 14 (16-bit operand size) or 28 (32-bit). */
export function envSize(op32: boolean): number {
  return op32 ? 28 : 14;
}

/** Writes slot `slot` of an environment image (16-bit or 32-bit slots). */
function putSlot(dv: DataView, op32: boolean, slot: number, v: number): void {
  if (op32) dv.setUint32(slot * 4, v >>> 0, true); else dv.setUint16(slot * 2, v & 0xffff, true);
}

function getSlot(dv: DataView, op32: boolean, slot: number): number {
  return op32 ? dv.getUint32(slot * 4, true) : dv.getUint16(slot * 2, true);
}

/**
 * Serialises the environment into `dv` (from byte 0, little-endian) in the
 * layout for the operand size and mode (`protectedMode`: CR0.PE=1 and not
 * VM86).
 */
export function storeEnv(x: X87State, dv: DataView, op32: boolean, protectedMode: boolean): void {
  for (let i = 0; i < envSize(op32); i++) dv.setUint8(i, 0);
  const fill = op32 ? 0xffff0000 : 0;
  putSlot(dv, op32, 0, x.cw | fill);
  putSlot(dv, op32, 1, x.statusWord() | fill);
  putSlot(dv, op32, 2, x.fullTagWord() | fill);
  if (protectedMode) {
    putSlot(dv, op32, 3, x.fip);
    if (op32) dv.setUint32(16, (x.fcs & 0xffff) | ((x.fop & 0x7ff) << 16), true); else putSlot(dv, op32, 4, x.fcs);
    putSlot(dv, op32, 5, x.fdp);
    putSlot(dv, op32, 6, x.fds | fill);
  } else {
    // Real/VM86 layout: 20/32-bit linear pointers split around the opcode.
    const ip = x.fip + x.fcs * 16;
    const dp = x.fdp + x.fds * 16;
    putSlot(dv, op32, 3, (ip & 0xffff) | fill);
    if (op32) dv.setUint32(16, (((ip >>> 16) & 0xffff) << 12) | (x.fop & 0x7ff), true);
    else dv.setUint16(8, (((ip >>> 16) & 0xf) << 12) | (x.fop & 0x7ff), true);
    putSlot(dv, op32, 5, (dp & 0xffff) | fill);
    if (op32) dv.setUint32(24, ((dp >>> 16) & 0xffff) << 12, true);
    else dv.setUint16(12, ((dp >>> 16) & 0xf) << 12, true);
  }
}

/** Loads an environment image (the inverse of storeEnv). */
export function loadEnv(x: X87State, dv: DataView, op32: boolean, protectedMode: boolean): void {
  x.cw = (getSlot(dv, op32, 0) & 0x1f7f) | 0x40;
  x.setStatusWord(getSlot(dv, op32, 1) & 0xffff);
  const tagWord = getSlot(dv, op32, 2) & 0xffff;
  if (protectedMode) {
    x.fip = getSlot(dv, op32, 3);
    if (op32) { const v = dv.getUint32(16, true); x.fcs = v & 0xffff; x.fop = (v >>> 16) & 0x7ff; } else x.fcs = getSlot(dv, op32, 4);
    x.fdp = getSlot(dv, op32, 5);
    x.fds = getSlot(dv, op32, 6) & 0xffff;
  } else {
    const hiIp = op32 ? dv.getUint32(16, true) : dv.getUint16(8, true);
    x.fop = hiIp & 0x7ff;
    x.fip = (getSlot(dv, op32, 3) & 0xffff) | ((hiIp >>> 12) << 16);
    x.fcs = 0;
    const hiDp = op32 ? dv.getUint32(24, true) : dv.getUint16(12, true);
    x.fdp = (getSlot(dv, op32, 5) & 0xffff) | ((hiDp >>> 12) << 16);
    x.fds = 0;
  }
  x.setFullTagWord(tagWord);
  x.updateSummary();
}
