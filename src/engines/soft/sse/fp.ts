/**
 * IEEE-754 arithmetic for the SSE unit with MXCSR semantics: rounding control,
 * DAZ/FTZ, NaN propagation and the six exception flags, without allocation.
 *
 * Method. Every operation first computes the round-to-nearest-even result
 * with JS doubles (float64 natively; float32 by computing in float64 and
 * rounding with Math.fround, which is exact for +,-,*,/,sqrt because
 * 53 >= 2*24+2), then determines the sign of the rounding error (exact -
 * result) with error-free transformations: TwoSum for add/sub, Dekker's
 * split product for mul, the remainder a - q*b (via the exact product) for
 * div, s*s - a for sqrt; operands outside the safe exponent range are first
 * scaled by powers of two (exact). That sign gives the inexact flag (PE) and
 * turns the nearest result into the directed one (round up/down/toward zero
 * move at most one ulp). Overflow, underflow (tininess after rounding, taken
 * as |result| < smallest normal) and FTZ are applied afterwards.
 *
 * Values pass between the register file and this module as numbers only after
 * NaNs were handled on the bit level (so signalling NaNs keep their bits).
 */

import {
  MX_DAZ, MX_DE, MX_FTZ, MX_IE, MX_MASK_SHIFT, MX_OE, MX_PE, MX_RC_SHIFT, MX_UE, MX_ZE, RC_DOWN, RC_NEAREST, RC_UP, RC_ZERO,
  type SseState,
} from './state.js';

export const OP_ADD = 0;
export const OP_SUB = 1;
export const OP_MUL = 2;
export const OP_DIV = 3;
export const OP_SQRT = 4;
export const OP_MIN = 5;
export const OP_MAX = 6;

const MIN_NORMAL64 = 2 ** -1022;
const MIN_NORMAL32 = 2 ** -126;
const MAX32 = 3.4028234663852886e38;
const SPLIT = 134217729; // 2^27 + 1

/** Per-instruction floating-point environment (single JS thread, one instruction at a time). */
export const env = {
  /** Exception flags raised by the current instruction. */
  flags: 0,
  rc: RC_NEAREST,
  daz: false,
  ftz: false,
  /** MXCSR mask bits (1 = masked), shifted down to flag positions. */
  masks: 0x3f,
};

/** Starts an instruction: loads rounding control and modes from MXCSR. */
export function beginFp(s: SseState): void {
  const m = s.mxcsr;
  env.flags = 0;
  env.rc = (m >> MX_RC_SHIFT) & 3;
  env.daz = (m & MX_DAZ) !== 0;
  env.ftz = (m & MX_FTZ) !== 0;
  env.masks = (m >> MX_MASK_SHIFT) & 0x3f;
}

// Bit-level scratch (little-endian host assumed, as everywhere in the soft engine).
const b64 = new Float64Array(1);
const b64w = new Int32Array(b64.buffer);
const b32 = new Float32Array(1);
const b32w = new Int32Array(b32.buffer);

export function f64FromBits(lo: number, hi: number): number {
  b64w[0] = lo; b64w[1] = hi;
  return b64[0];
}
/** Bits of a double: returns the low word, the high word in `bitsHi`. */
export let bitsHi = 0;
export function f64Bits(x: number): number {
  b64[0] = x;
  bitsHi = b64w[1];
  return b64w[0];
}
export function f32FromBits(w: number): number {
  b32w[0] = w;
  return b32[0];
}
export function f32Bits(x: number): number {
  b32[0] = x;
  return b32w[0];
}

export function isNaN32(w: number): boolean { return (w & 0x7fffffff) > 0x7f800000; }
export function isSNaN32(w: number): boolean { return isNaN32(w) && (w & 0x400000) === 0; }
export function isNaN64(lo: number, hi: number): boolean {
  const h = hi & 0x7fffffff;
  return h > 0x7ff00000 || (h === 0x7ff00000 && lo !== 0);
}
export function isSNaN64(lo: number, hi: number): boolean { return isNaN64(lo, hi) && (hi & 0x80000) === 0; }
function isDenormal32(w: number): boolean { return (w & 0x7f800000) === 0 && (w & 0x7fffff) !== 0; }
function isDenormal64(lo: number, hi: number): boolean { return (hi & 0x7ff00000) === 0 && ((hi & 0xfffff) | lo) !== 0; }

/** A float32 operand's value: DAZ applied, DE recorded. */
export function in32(w: number): number {
  if (isDenormal32(w)) {
    if (env.daz) return (w & 0x80000000) !== 0 ? -0 : 0;
    env.flags |= MX_DE;
  }
  return f32FromBits(w);
}
export function in64(lo: number, hi: number): number {
  if (isDenormal64(lo, hi)) {
    if (env.daz) return (hi & 0x80000000) !== 0 ? -0 : 0;
    env.flags |= MX_DE;
  }
  return f64FromBits(lo, hi);
}

// ---- error-free transformations ----

/** Sign of the error of the last operation: exact - rounded (-1, 0, 1). */
let errSign = 0;

function twoProdErr(a: number, p: number, b: number): number {
  // Dekker: a*b = p + err exactly (no overflow/underflow in the partial products).
  let t = SPLIT * a;
  const ah = t - (t - a);
  const al = a - ah;
  t = SPLIT * b;
  const bh = t - (t - b);
  const bl = b - bh;
  return ((ah * bh - p) + ah * bl + al * bh) + al * bl;
}

let mant = 0;
let expo = 0;
/** Splits finite non-zero |x| into mant in [1,2) and expo. */
function decompose(x: number): void {
  let e = 0;
  x = Math.abs(x);
  if (x < MIN_NORMAL64) { x *= 2 ** 64; e = -64; }
  f64Bits(x);
  const be = (bitsHi >>> 20) & 0x7ff;
  expo = be - 1023 + e;
  mant = f64FromBits(b64w[0], (bitsHi & 0x800fffff) | (1023 << 20));
}
/** x * 2^n exactly (when representable), in steps that cannot overflow or underflow midway. */
function scale2(x: number, n: number): number {
  while (n > 600) { x *= 2 ** 600; n -= 600; }
  while (n < -600) { x *= 2 ** -600; n += 600; }
  return x * 2 ** n;
}
function safe(x: number): boolean {
  const a = Math.abs(x);
  return a === 0 || (a > 2 ** -450 && a < 2 ** 450);
}
function sgn(x: number): number { return x > 0 ? 1 : x < 0 ? -1 : 0; }

/** Double result of op with errSign set (round-to-nearest). x, y finite, non-NaN. */
function exact64(op: number, x: number, y: number): number {
  switch (op) {
    case OP_ADD: case OP_SUB: {
      if (op === OP_SUB) y = -y;
      const s = x + y;
      if (!Number.isFinite(s)) { errSign = -sgn(s); return s; }
      const bb = s - x;
      errSign = sgn((x - (s - bb)) + (y - bb));
      return s;
    }
    case OP_MUL: {
      const p = x * y;
      if (p === 0 && (x === 0 || y === 0)) { errSign = 0; return p; }
      if (!Number.isFinite(p)) { errSign = -sgn(p); return p; }
      if (safe(x) && safe(y) && Math.abs(p) > 2 ** -900) { errSign = sgn(twoProdErr(x, p, y)); return p; }
      decompose(x); const mx = mant; const ex = expo;
      decompose(y); const my = mant; const ey = expo;
      const q = mx * my;
      const e = twoProdErr(mx, q, my);
      const rs = scale2(Math.abs(p), -(ex + ey));
      const d = rs - q;
      const mag = d !== 0 ? -sgn(d) : sgn(e);
      errSign = (x < 0) !== (y < 0) ? -mag : mag;
      return p;
    }
    case OP_DIV: {
      const q = x / y;
      if (x === 0 || !Number.isFinite(x) || !Number.isFinite(y) || y === 0) { errSign = 0; return q; }
      if (!Number.isFinite(q)) { errSign = -sgn(q); return q; }
      decompose(x); const mx = mant; const ex = expo;
      decompose(y); const my = mant; const ey = expo;
      const qs = mx / my;
      const P = qs * my;
      const rem = (mx - P) - twoProdErr(qs, P, my);
      const rs = scale2(Math.abs(q), -(ex - ey));
      const d = rs - qs;
      const mag = d !== 0 ? -sgn(d) : sgn(rem);
      errSign = (x < 0) !== (y < 0) ? -mag : mag;
      return q;
    }
    default: { // SQRT
      const r = Math.sqrt(x);
      if (x <= 0 || !Number.isFinite(x)) { errSign = 0; return r; }
      decompose(x);
      let m = mant;
      if ((expo & 1) !== 0) m *= 2;
      const s = Math.sqrt(m);
      const P = s * s;
      errSign = sgn((m - P) - twoProdErr(s, P, s));
      return r;
    }
  }
}

/** Float32 result of op (operands are float32 values) with errSign set. */
function exact32(op: number, x: number, y: number): number {
  let d: number;
  let e = 0;
  switch (op) {
    case OP_ADD: case OP_SUB: {
      if (op === OP_SUB) y = -y;
      d = x + y;
      const bb = d - x;
      e = sgn((x - (d - bb)) + (y - bb));
      break;
    }
    case OP_MUL: d = x * y; break; // exact in double
    case OP_DIV: {
      d = x / y;
      if (x !== 0 && Number.isFinite(x) && Number.isFinite(y) && y !== 0) {
        const P = d * y;
        e = sgn((x - P) - twoProdErr(d, P, y)) * sgn(y);
      }
      break;
    }
    default: {
      d = Math.sqrt(x);
      if (x > 0 && Number.isFinite(x)) {
        const P = d * d;
        e = sgn((x - P) - twoProdErr(d, P, d));
      }
      break;
    }
  }
  const r = Math.fround(d);
  if (!Number.isFinite(r) && Number.isFinite(d)) errSign = -sgn(r);
  else errSign = d !== r ? sgn(d - r) : e;
  return r;
}

// ---- ulp steps ----

function nextUp64(x: number): number {
  if (x === 0) return 5e-324;
  const lo = f64Bits(x);
  const hi = bitsHi;
  let l = lo >>> 0;
  let h = hi;
  if (x > 0) { l += 1; if (l > 0xffffffff) { l = 0; h += 1; } }
  else { if (l === 0) { l = 0xffffffff; h -= 1; } else l -= 1; }
  return f64FromBits(l | 0, h);
}
function nextUp32(x: number): number {
  if (x === 0) return f32FromBits(1);
  const w = f32Bits(x);
  return f32FromBits(x > 0 ? w + 1 : w - 1);
}

/** Moves a nearest-rounded result one ulp as the rounding control requires, given the error sign. */
function directed(r: number, single: boolean, err: number): number {
  const rc = env.rc;
  if (err === 0 || rc === RC_NEAREST) return r;
  let up = false;
  let down = false;
  if (rc === RC_UP) up = err > 0;
  else if (rc === RC_DOWN) down = err < 0;
  else if (r > 0 && err < 0) down = true;
  else if (r < 0 && err > 0) up = true;
  if (up) return single ? nextUp32(r) : nextUp64(r);
  if (down) return single ? -nextUp32(-r) : -nextUp64(-r);
  return r;
}

const TINY_SCALE = 2 ** 64;

/**
 * Tininess after rounding with an unbounded exponent for a result that
 * rounded to exactly the smallest normal: redo the operation on operands
 * scaled by 2^64 (exact, and the result is then a normal number) and see
 * whether it still reaches the smallest normal. `op` -1 is a conversion of x.
 */
function tinyAtMinNormal(single: boolean, op: number, x: number, y: number): boolean {
  let r: number;
  if (op < 0) { r = single ? Math.fround(x * TINY_SCALE) : x * TINY_SCALE; errSign = sgn(x * TINY_SCALE - r); }
  else {
    const ys = op === OP_ADD || op === OP_SUB ? y * TINY_SCALE : y;
    r = single ? exact32(op, x * TINY_SCALE, ys) : exact64(op, x * TINY_SCALE, ys);
  }
  r = directed(r, single, errSign);
  return Math.abs(r) < (single ? MIN_NORMAL32 : MIN_NORMAL64) * TINY_SCALE;
}

/**
 * Applies rounding control, overflow, underflow and FTZ to a nearest-rounded
 * result `r` of `op` on x, y (op -1: a conversion of x) whose exact value
 * differs from it in the direction `err`. `single` picks float32 limits.
 */
function finish(r: number, single: boolean, err: number, op: number, x: number, y: number): number {
  const rc = env.rc;
  const max = single ? MAX32 : Number.MAX_VALUE;
  if (err !== 0) {
    env.flags |= MX_PE;
    const a = Math.abs(r);
    if (a === Infinity || (a === max && rc !== RC_NEAREST && rc !== RC_ZERO && sgn(r) === err && (rc === RC_UP) === (r > 0))) {
      env.flags |= MX_OE;
    }
    r = directed(r, single, err);
  }
  const minNormal = single ? MIN_NORMAL32 : MIN_NORMAL64;
  let tiny = r !== 0 ? Math.abs(r) < minNormal : err !== 0;
  if (!tiny && err !== 0 && Math.abs(r) === minNormal) tiny = tinyAtMinNormal(single, op, x, y);
  if (tiny) {
    const um = (env.masks & MX_UE) !== 0;
    if (!um) env.flags |= MX_UE;
    else if (env.ftz) { env.flags |= MX_UE | MX_PE; r = r < 0 || (r === 0 && err < 0) ? -0 : 0; }
    else if (err !== 0) env.flags |= MX_UE;
  }
  return r;
}

/** Arithmetic on float64 values (non-NaN operands): the MXCSR-rounded result. */
export function arith64(op: number, x: number, y: number): number {
  if (op === OP_MIN) return x < y ? x : y;
  if (op === OP_MAX) return x > y ? x : y;
  const r = exact64(op, x, y);
  if (r !== r) { env.flags |= MX_IE; return NaN; }
  if (op === OP_DIV && y === 0 && Number.isFinite(x)) { env.flags |= MX_ZE; return r; }
  if (!Number.isFinite(x) || (op !== OP_SQRT && !Number.isFinite(y))) return r;
  const e = errSign;
  return signedZero(finish(r, false, e, op, x, y), op, x, y, e);
}

/** Arithmetic on float32 values (non-NaN operands). */
export function arith32(op: number, x: number, y: number): number {
  if (op === OP_MIN) return x < y ? x : y;
  if (op === OP_MAX) return x > y ? x : y;
  const r = exact32(op, x, y);
  if (r !== r) { env.flags |= MX_IE; return NaN; }
  if (op === OP_DIV && y === 0 && Number.isFinite(x)) { env.flags |= MX_ZE; return r; }
  if (!Number.isFinite(x) || (op !== OP_SQRT && !Number.isFinite(y))) return r;
  const e = errSign;
  return signedZero(finish(r, true, e, op, x, y), op, x, y, e);
}

/** x + (-x) is -0 when rounding down. */
function signedZero(r: number, op: number, x: number, y: number, err: number): number {
  if (r === 0 && env.rc === RC_DOWN && (op === OP_ADD || op === OP_SUB)) {
    const ny = op === OP_SUB ? -y : y;
    if (!(Object.is(x, 0) && Object.is(ny, 0)) && err === 0) return -0;
  }
  return r;
}

/** Rounds a double to float32 under MXCSR (CVTSD2SS, CVTPD2PS, int to float). `e` = sign of (exact - x). */
export function round32(x: number, e: number): number {
  const r = Math.fround(x);
  if (!Number.isFinite(x)) return r;
  let err: number;
  if (!Number.isFinite(r)) err = -sgn(r);
  else err = x !== r ? sgn(x - r) : e;
  return finish(r, true, err, -1, x, 0);
}

/** Rounds an exact double-with-error to float64 under MXCSR (int64 to double). */
export function round64(x: number, e: number): number {
  return finish(x, false, e, -1, x, 0);
}

/** Rounds x to an integer under rounding control rc (ties to even for nearest). */
export function roundInt(x: number, rc: number): number {
  if (Math.abs(x) >= 2 ** 52) return x;
  let t: number;
  switch (rc) {
    case RC_DOWN: t = Math.floor(x); break;
    case RC_UP: t = Math.ceil(x); break;
    case RC_ZERO: t = Math.trunc(x); break;
    default: {
      t = Math.floor(x);
      const d = x - t;
      if (d > 0.5 || (d === 0.5 && t % 2 !== 0)) t += 1;
      break;
    }
  }
  return t === 0 && x < 0 ? -0 : t;
}

/**
 * Float to signed integer (CVT(T)SS2SI/SD2SI/PS2DQ/PD2DQ): `bits` 32 or 64.
 * Returns the integer as a double, or NaN for the integer indefinite (IE set).
 */
export function toInt(x: number, bits: number, truncate: boolean): number {
  if (x !== x) { env.flags |= MX_IE; return NaN; }
  const t = roundInt(x, truncate ? RC_ZERO : env.rc);
  const lim = bits === 32 ? 2 ** 31 : 2 ** 63;
  if (t >= lim || t < -lim) { env.flags |= MX_IE; return NaN; }
  if (t !== x) env.flags |= MX_PE;
  return t;
}

/** Integer (exact double `hi*2^32 + lo`) to float64/float32 with rounding; 64-bit sources may round. */
export function intToFloat(lo: number, hi: number, single: boolean): number {
  const a = hi * 4294967296;
  const b = lo >>> 0;
  const s = a + b;
  const bb = s - a;
  const e = sgn((a - (s - bb)) + (b - bb));
  return single ? round32(s, e) : round64(s, e);
}

/** Comparison predicate 0-7 (EQ LT LE UNORD NEQ NLT NLE ORD) on numbers (NaN = unordered). */
export function comparePredicate(pred: number, x: number, y: number): boolean {
  const unord = x !== x || y !== y;
  switch (pred & 7) {
    case 0: return !unord && x === y;
    case 1: return !unord && x < y;
    case 2: return !unord && x <= y;
    case 3: return unord;
    case 4: return unord || x !== y;
    case 5: return unord || !(x < y);
    case 6: return unord || !(x <= y);
    default: return !unord;
  }
}

/** Unmasked exceptions among env.flags (0 when none). Pre-computation ones (IE DE ZE) suppress the others. */
export function unmaskedExceptions(): number {
  let f = env.flags;
  if ((f & ~env.masks & (MX_IE | MX_DE | MX_ZE)) !== 0) { f &= MX_IE | MX_DE | MX_ZE; env.flags = f; }
  return f & ~env.masks & 0x3f;
}
