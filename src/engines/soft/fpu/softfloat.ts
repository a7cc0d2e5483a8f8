/**
 * A softfloat-style core for the x87's 80-bit extended format, on 32-bit
 * limbs held in JS numbers (no BigInt, no allocation). Values travel as three
 * numbers: `se` (sign << 15 | biased 15-bit exponent), `hi` and `lo` (the
 * 64-bit significand with its explicit integer bit at hi bit 31, unsigned).
 *
 * Every operation computes the exact result as a normalised 128-bit
 * significand plus a sticky bit, then `roundPack` rounds it once, in the
 * rounding mode (RC) and to the precision (24/53/64 bits) of the environment,
 * with the x87 exponent range; tininess is detected before rounding (as x87
 * hardware and QEMU do). Masked overflow/underflow give the IEEE default
 * results; unmasked ones give the bias-adjusted (±24576) result the SDM
 * specifies for register destinations. Results and the exception flags go to
 * the FloatEnv passed in.
 */

export const EX_IE = 0x01;
export const EX_DE = 0x02;
export const EX_ZE = 0x04;
export const EX_OE = 0x08;
export const EX_UE = 0x10;
export const EX_PE = 0x20;

export const RC_NEAREST = 0;
export const RC_DOWN = 1;
export const RC_UP = 2;
export const RC_CHOP = 3;

/** Extended-format exponent bias. */
export const BIAS = 16383;
const TWO32 = 0x1_0000_0000;

/** The rounding environment and the result registers of one operation. */
export class FloatEnv {
  /** Rounding control 0-3. */
  rc = RC_NEAREST;
  /** Significand precision in bits: 24, 53 or 64. */
  prec = 64;
  /** Exception mask bits (FCW bits 0-5): a set bit means masked. */
  masks = 0x3f;
  /** Exception flags raised by operations since the caller cleared them. */
  flags = 0;
  /** 1 when the last rounding increased the magnitude (becomes C1). */
  roundedUp = 0;
  // Result.
  se = 0;
  hi = 0;
  lo = 0;
  // Integer results (toInt): low/high halves.
  iLo = 0;
  iHi = 0;
}

// ---- Classification ----------------------------------------------------

export function isNaN80(se: number, hi: number, lo: number): boolean {
  return (se & 0x7fff) === 0x7fff && (((hi & 0x7fffffff) | lo) !== 0);
}
export function isSNaN80(se: number, hi: number, lo: number): boolean {
  return isNaN80(se, hi, lo) && (hi & 0x40000000) === 0;
}
export function isInf80(se: number, hi: number, lo: number): boolean {
  return (se & 0x7fff) === 0x7fff && (hi >>> 0) === 0x80000000 && lo === 0;
}
/** Unsupported encodings: pseudo-NaN/pseudo-infinity and unnormals (integer bit clear with exponent ≠ 0). */
export function isUnsupported80(se: number, hi: number): boolean {
  const e = se & 0x7fff;
  return e !== 0 && (hi & 0x80000000) === 0;
}
export function isZero80(se: number, hi: number, lo: number): boolean {
  return (se & 0x7fff) === 0 && hi === 0 && lo === 0;
}
export function isDenormal80(se: number, hi: number, lo: number): boolean {
  return (se & 0x7fff) === 0 && (hi !== 0 || lo !== 0);
}

function setResult(env: FloatEnv, se: number, hi: number, lo: number): void {
  env.se = se;
  env.hi = hi >>> 0;
  env.lo = lo >>> 0;
}

/** The real indefinite QNaN (0xFFFF C000000000000000). */
export function setIndefinite(env: FloatEnv): void {
  setResult(env, 0xffff, 0xc0000000, 0);
}

function invalid(env: FloatEnv): void {
  env.flags |= EX_IE;
  setIndefinite(env);
}

/**
 * NaN propagation for two operands where at least one is a NaN (SDM table
 * 4-7): SNaN raises IE; two NaNs give the one with the larger significand,
 * quieted (ties: the first operand); one NaN gives that NaN, quieted.
 * Unsupported encodings give the indefinite.
 */
function propagateNaN(env: FloatEnv, ase: number, ahi: number, alo: number, bse: number, bhi: number, blo: number): void {
  const aNaN = isNaN80(ase, ahi, alo);
  const bNaN = isNaN80(bse, bhi, blo);
  if ((aNaN && (ahi & 0x40000000) === 0) || (bNaN && (bhi & 0x40000000) === 0)) env.flags |= EX_IE;
  let pickA: boolean;
  if (aNaN && bNaN) {
    const ah = (ahi & 0x3fffffff) >>> 0;
    const bh = (bhi & 0x3fffffff) >>> 0;
    pickA = ah > bh || (ah === bh && (alo >>> 0) >= (blo >>> 0));
  } else pickA = aNaN;
  if (pickA) setResult(env, ase, ahi | 0xc0000000, alo);
  else setResult(env, bse, bhi | 0xc0000000, blo);
}

function propagateNaN1(env: FloatEnv, se: number, hi: number, lo: number): void {
  if ((hi & 0x40000000) === 0) env.flags |= EX_IE;
  setResult(env, se, hi | 0xc0000000, lo);
}

// ---- Rounding ----------------------------------------------------------

// Scratch 128-bit significand: s3 (top) .. s0, unsigned 32-bit numbers.
let s3 = 0;
let s2 = 0;
let s1 = 0;
let s0 = 0;
/** Whether the last roundSig discarded nonzero bits. */
let roundInexact = false;

/** Shifts s3..s0 right by n (≥ 0) bits, OR-ing the lost bits into bit 0 (jamming). */
function shiftRightJam(n: number): void {
  if (n <= 0) return;
  if (n >= 128) {
    const any = (s3 | s2 | s1 | s0) !== 0;
    s3 = 0; s2 = 0; s1 = 0; s0 = any ? 1 : 0;
    return;
  }
  let sticky = 0;
  while (n >= 32) {
    sticky |= s0;
    s0 = s1; s1 = s2; s2 = s3; s3 = 0;
    n -= 32;
  }
  if (n > 0) {
    sticky |= s0 & ((1 << n) - 1);
    s0 = ((s0 >>> n) | (s1 << (32 - n))) >>> 0;
    s1 = ((s1 >>> n) | (s2 << (32 - n))) >>> 0;
    s2 = ((s2 >>> n) | (s3 << (32 - n))) >>> 0;
    s3 = s3 >>> n;
  }
  if (sticky !== 0) s0 = (s0 | 1) >>> 0;
}

/** Shifts s3..s0 left until bit 127 is set; returns the shift (128 when zero). */
function normalize128(): number {
  if ((s3 | s2 | s1 | s0) === 0) return 128;
  let n = 0;
  while (s3 === 0) { s3 = s2; s2 = s1; s1 = s0; s0 = 0; n += 32; }
  const z = Math.clz32(s3);
  if (z > 0) {
    s3 = ((s3 << z) | (s2 >>> (32 - z))) >>> 0;
    s2 = ((s2 << z) | (s1 >>> (32 - z))) >>> 0;
    s1 = ((s1 << z) | (s0 >>> (32 - z))) >>> 0;
    s0 = (s0 << z) >>> 0;
  }
  return n + z;
}

/** Rounds the scratch significand (s3 bit 31 at the rounding position's top) to `prec` bits; returns 1 on a carry out. */
function roundSig(env: FloatEnv, prec: number, sign: number): number {
  let lsb: number; let round: number; let sticky: boolean;
  if (prec === 64) {
    lsb = s2 & 1; round = s1 >>> 31; sticky = ((s1 & 0x7fffffff) | s0) !== 0;
  } else if (prec === 53) {
    lsb = (s2 >>> 11) & 1; round = (s2 >>> 10) & 1; sticky = ((s2 & 0x3ff) | s1 | s0) !== 0;
  } else {
    lsb = (s3 >>> 8) & 1; round = (s3 >>> 7) & 1; sticky = ((s3 & 0x7f) | s2 | s1 | s0) !== 0;
  }
  const inexact = round !== 0 || sticky;
  roundInexact = inexact;
  let inc = false;
  switch (env.rc) {
    case RC_NEAREST: inc = round !== 0 && (sticky || lsb !== 0); break;
    case RC_DOWN: inc = inexact && sign !== 0; break;
    case RC_UP: inc = inexact && sign === 0; break;
    default: break;
  }
  s1 = 0; s0 = 0;
  if (prec === 53) s2 = (s2 & ~0x7ff) >>> 0;
  else if (prec === 24) { s3 = (s3 & ~0xff) >>> 0; s2 = 0; }
  if (inexact) { env.flags |= EX_PE; }
  env.roundedUp = inc ? 1 : 0;
  if (!inc) return 0;
  const unit = prec === 64 ? 1 : prec === 53 ? 0x800 : 0;
  if (prec === 24) {
    s3 += 0x100;
  } else {
    s2 += unit;
    if (s2 >= TWO32) { s2 -= TWO32; s3 += 1; }
  }
  if (s3 >= TWO32) { s3 = 0x80000000; return 1; }
  return 0;
}

/**
 * Rounds and packs sign/exp (biased 16383; the value is s3..s0 / 2^127 ×
 * 2^(exp-16383), s3 bit 31 set or all zero) to `prec` bits within the
 * biased exponent range [emin, emax] and writes env.se/hi/lo. For the
 * extended format emin = 1, emax = 0x7ffe; narrower formats use their own
 * range and return denormals with the integer bit clear and se = emin.
 * `adjust` enables the x87 bias adjustment on unmasked OE/UE.
 */
function roundPackRange(env: FloatEnv, sign: number, exp: number, prec: number, emin: number, emax: number, adjust: boolean): void {
  if ((s3 | s2 | s1 | s0) === 0) { setResult(env, sign << 15, 0, 0); env.roundedUp = 0; return; }
  if (exp < emin) {
    if (adjust && (env.masks & EX_UE) === 0) {
      env.flags |= EX_UE;
      exp += 24576;
    } else {
      // Tiny before rounding: denormalise, then round at the same bit position.
      shiftRightJam(emin - exp);
      const carry = roundSig(env, prec, sign);
      // A masked underflow is signalled only when the denormalised result is inexact.
      if (roundInexact) env.flags |= EX_UE;
      if (carry !== 0) { setResult(env, (sign << 15) | emin, 0x80000000, 0); return; }
      const normal = (s3 & 0x80000000) !== 0;
      setResult(env, (sign << 15) | (normal ? emin : emin === 1 ? 0 : emin), s3, s2);
      return;
    }
  }
  const carry = roundSig(env, prec, sign);
  exp += carry;
  if (exp > emax) {
    if (adjust && (env.masks & EX_OE) === 0) {
      env.flags |= EX_OE;
      exp -= 24576;
    } else {
      env.flags |= EX_OE | EX_PE;
      // Masked overflow: infinity or the largest finite number, by rounding mode.
      const toInf = env.rc === RC_NEAREST || (env.rc === RC_UP && sign === 0) || (env.rc === RC_DOWN && sign !== 0);
      if (toInf) {
        env.roundedUp = 1;
        setResult(env, (sign << 15) | (emax === 0x7ffe ? 0x7fff : emax + 1), 0x80000000, 0);
      } else {
        env.roundedUp = 0;
        const lo = prec === 64 ? 0xffffffff : prec === 53 ? 0xfffff800 : 0;
        const hi = prec === 24 ? 0xffffff00 : 0xffffffff;
        setResult(env, (sign << 15) | emax, hi, lo);
      }
      return;
    }
  }
  setResult(env, (sign << 15) | exp, s3, s2);
}

/** Rounds the scratch significand to the extended format at the environment's precision. */
function roundPack(env: FloatEnv, sign: number, exp: number): void {
  roundPackRange(env, sign, exp, env.prec, 1, 0x7ffe, true);
}

// ---- Unpacking ---------------------------------------------------------

/** Loads (hi:lo) into s3:s2 and returns the effective biased exponent (denormals: 1). */
function load(se: number, hi: number, lo: number): number {
  s3 = hi >>> 0; s2 = lo >>> 0; s1 = 0; s0 = 0;
  const e = se & 0x7fff;
  return e === 0 ? 1 : e;
}

/** Normalises a finite nonzero 64-bit significand (hi:lo); sets nHi/nLo and returns the adjusted exponent. */
let nHi = 0;
let nLo = 0;
function norm64(se: number, hi: number, lo: number): number {
  let e = se & 0x7fff;
  if (e === 0) e = 1;
  hi >>>= 0; lo >>>= 0;
  if (hi === 0) { hi = lo; lo = 0; e -= 32; }
  const z = Math.clz32(hi);
  if (z > 0) { hi = ((hi << z) | (lo >>> (32 - z))) >>> 0; lo = (lo << z) >>> 0; e -= z; }
  nHi = hi; nLo = lo;
  return e;
}

/**
 * Checks operands for NaNs, unsupported encodings and denormals. Returns
 * true when the result is already decided (NaN/invalid). Sets DE for
 * denormal operands.
 */
function checkOperands2(env: FloatEnv, ase: number, ahi: number, alo: number, bse: number, bhi: number, blo: number): boolean {
  if (isUnsupported80(ase, ahi) || isUnsupported80(bse, bhi)) { invalid(env); return true; }
  if (isNaN80(ase, ahi, alo) || isNaN80(bse, bhi, blo)) { propagateNaN(env, ase, ahi, alo, bse, bhi, blo); return true; }
  if (isDenormal80(ase, ahi, alo) || isDenormal80(bse, bhi, blo)) env.flags |= EX_DE;
  return false;
}

// ---- Add / subtract -----------------------------------------------------

/** a + b, or a - b when `negB`. */
export function add(env: FloatEnv, ase: number, ahi: number, alo: number, bse: number, bhi: number, blo: number, negB: boolean): void {
  env.roundedUp = 0;
  if (checkOperands2(env, ase, ahi, alo, bse, bhi, blo)) return;
  if (negB) bse ^= 0x8000;
  const as = ase >>> 15;
  const bs = bse >>> 15;
  const aInf = isInf80(ase, ahi, alo);
  const bInf = isInf80(bse, bhi, blo);
  if (aInf || bInf) {
    if (aInf && bInf && as !== bs) { invalid(env); return; }
    if (aInf) setResult(env, ase, ahi, alo); else setResult(env, bse, bhi, blo);
    return;
  }
  const aZero = isZero80(ase, ahi, alo);
  const bZero = isZero80(bse, bhi, blo);
  if (aZero && bZero) {
    const sign = as === bs ? as : env.rc === RC_DOWN ? 1 : 0;
    setResult(env, sign << 15, 0, 0);
    return;
  }
  if (bZero) {
    // x + 0 = x, but rounded to the precision (and denormals stay as they are).
    const e = load(ase, ahi, alo);
    const sh = normalize128();
    roundPack(env, as, e - sh);
    return;
  }
  if (aZero) {
    const e = load(bse, bhi, blo);
    const sh = normalize128();
    roundPack(env, bs, e - sh);
    return;
  }
  let ea = (ase & 0x7fff) || 1;
  let eb = (bse & 0x7fff) || 1;
  let sign = as;
  let xHi = ahi >>> 0; let xLo = alo >>> 0; let yHi = bhi >>> 0; let yLo = blo >>> 0;
  // Order so that x has the larger magnitude exponent.
  if (eb > ea || (eb === ea && (yHi > xHi || (yHi === xHi && yLo > xLo)))) {
    let t = ea; ea = eb; eb = t;
    t = xHi; xHi = yHi; yHi = t;
    t = xLo; xLo = yLo; yLo = t;
    sign = bs;
  }
  // y aligned into s3..s0.
  s3 = yHi; s2 = yLo; s1 = 0; s0 = 0;
  shiftRightJam(ea - eb);
  let exp = ea;
  if (as === bs) {
    // 129-bit sum: x<<64 + y.
    let t = s2 + xLo; s2 = t >>> 0; let c = t >= TWO32 ? 1 : 0;
    t = s3 + xHi + c; s3 = t >>> 0; c = t >= TWO32 ? 1 : 0;
    if (c !== 0) {
      shiftRightJam(1);
      s3 = (s3 | 0x80000000) >>> 0;
      exp += 1;
    }
  } else {
    // x<<64 - y (x ≥ y in magnitude).
    let t = 0 - s0; s0 = t < 0 ? t + TWO32 : t; let bw = t < 0 ? 1 : 0;
    t = 0 - s1 - bw; s1 = t < 0 ? t + TWO32 : t; bw = t < 0 ? 1 : 0;
    t = xLo - s2 - bw; s2 = t < 0 ? t + TWO32 : t; bw = t < 0 ? 1 : 0;
    t = xHi - s3 - bw; s3 = t < 0 ? t + TWO32 : t;
    if ((s3 | s2 | s1 | s0) === 0) {
      setResult(env, (env.rc === RC_DOWN ? 1 : 0) << 15, 0, 0);
      return;
    }
  }
  const sh = normalize128();
  roundPack(env, sign, exp - sh);
}

// ---- Multiply ----------------------------------------------------------

const mulLimbs = new Float64Array(8);

/** (aHi:aLo) × (bHi:bLo) → s3..s0 (128-bit product). */
function mul64(aHi: number, aLo: number, bHi: number, bLo: number): void {
  const a0 = aLo & 0xffff; const a1 = aLo >>> 16; const a2 = aHi & 0xffff; const a3 = aHi >>> 16;
  const b0 = bLo & 0xffff; const b1 = bLo >>> 16; const b2 = bHi & 0xffff; const b3 = bHi >>> 16;
  const r = mulLimbs;
  r[0] = a0 * b0;
  r[1] = a0 * b1 + a1 * b0;
  r[2] = a0 * b2 + a1 * b1 + a2 * b0;
  r[3] = a0 * b3 + a1 * b2 + a2 * b1 + a3 * b0;
  r[4] = a1 * b3 + a2 * b2 + a3 * b1;
  r[5] = a2 * b3 + a3 * b2;
  r[6] = a3 * b3;
  r[7] = 0;
  let carry = 0;
  for (let i = 0; i < 8; i++) {
    const v = r[i] + carry;
    const low = v % 65536;
    r[i] = low;
    carry = (v - low) / 65536;
  }
  s0 = (r[0] + r[1] * 65536) >>> 0;
  s1 = (r[2] + r[3] * 65536) >>> 0;
  s2 = (r[4] + r[5] * 65536) >>> 0;
  s3 = (r[6] + r[7] * 65536) >>> 0;
}

export function mul(env: FloatEnv, ase: number, ahi: number, alo: number, bse: number, bhi: number, blo: number): void {
  env.roundedUp = 0;
  if (checkOperands2(env, ase, ahi, alo, bse, bhi, blo)) return;
  const sign = (ase ^ bse) >>> 15 & 1;
  const aInf = isInf80(ase, ahi, alo); const bInf = isInf80(bse, bhi, blo);
  const aZero = isZero80(ase, ahi, alo); const bZero = isZero80(bse, bhi, blo);
  if (aInf || bInf) {
    if (aZero || bZero) { invalid(env); return; }
    setResult(env, (sign << 15) | 0x7fff, 0x80000000, 0);
    return;
  }
  if (aZero || bZero) { setResult(env, sign << 15, 0, 0); return; }
  const ea = norm64(ase, ahi, alo); const aH = nHi; const aL = nLo;
  const eb = norm64(bse, bhi, blo);
  mul64(aH, aL, nHi, nLo);
  // Product of two [1,2) significands: value = P / 2^126.
  let exp = ea + eb - BIAS + 1;
  const sh = normalize128();
  exp -= sh;
  roundPack(env, sign, exp);
}

// ---- Divide ------------------------------------------------------------

const divU = new Float64Array(10);
const divD = new Float64Array(4);
const divQ = new Float64Array(6);

/** floor((aHi:aLo) × 2^80 / (bHi:bLo)) into s3:s2:s1 (s0 = 0); returns 1 when the remainder is nonzero. */
function divide80(aHi: number, aLo: number, bHi: number, bLo: number): number {
  const u = divU; const d = divD; const q = divQ;
  u.fill(0);
  u[5] = aLo & 0xffff; u[6] = aLo >>> 16; u[7] = aHi & 0xffff; u[8] = aHi >>> 16;
  d[0] = bLo & 0xffff; d[1] = bLo >>> 16; d[2] = bHi & 0xffff; d[3] = bHi >>> 16;
  const den = d[3] * 65536 + d[2];
  for (let j = 5; j >= 0; j--) {
    // Estimate from the top three dividend limbs and top two divisor limbs: never too small, at most 2 too large.
    let qhat = Math.floor((u[j + 4] * 4294967296 + u[j + 3] * 65536 + u[j + 2]) / den);
    if (qhat > 0xffff) qhat = 0xffff;
    let borrow = 0; let carry = 0;
    for (let i = 0; i < 4; i++) {
      const p = qhat * d[i] + carry;
      carry = Math.floor(p / 65536);
      let t = u[j + i] - (p - carry * 65536) - borrow;
      if (t < 0) { t += 65536; borrow = 1; } else borrow = 0;
      u[j + i] = t;
    }
    let top = u[j + 4] - carry - borrow;
    while (top < 0) {
      // Added back: qhat was too large.
      qhat -= 1;
      let c = 0;
      for (let i = 0; i < 4; i++) {
        const t = u[j + i] + d[i] + c;
        if (t >= 65536) { u[j + i] = t - 65536; c = 1; } else { u[j + i] = t; c = 0; }
      }
      top += c;
    }
    u[j + 4] = top;
    q[j] = qhat;
  }
  s3 = (q[5] * 65536 + q[4]) >>> 0;
  s2 = (q[3] * 65536 + q[2]) >>> 0;
  s1 = (q[1] * 65536 + q[0]) >>> 0;
  s0 = 0;
  return (u[0] !== 0 || u[1] !== 0 || u[2] !== 0 || u[3] !== 0 || u[4] !== 0) ? 1 : 0;
}

export function div(env: FloatEnv, ase: number, ahi: number, alo: number, bse: number, bhi: number, blo: number): void {
  env.roundedUp = 0;
  if (checkOperands2(env, ase, ahi, alo, bse, bhi, blo)) return;
  const sign = (ase ^ bse) >>> 15 & 1;
  const aInf = isInf80(ase, ahi, alo); const bInf = isInf80(bse, bhi, blo);
  const aZero = isZero80(ase, ahi, alo); const bZero = isZero80(bse, bhi, blo);
  if (aInf) {
    if (bInf) { invalid(env); return; }
    setResult(env, (sign << 15) | 0x7fff, 0x80000000, 0);
    return;
  }
  if (bInf) { setResult(env, sign << 15, 0, 0); return; }
  if (bZero) {
    if (aZero) { invalid(env); return; }
    env.flags |= EX_ZE;
    setResult(env, (sign << 15) | 0x7fff, 0x80000000, 0);
    return;
  }
  if (aZero) { setResult(env, sign << 15, 0, 0); return; }
  const ea = norm64(ase, ahi, alo); const aH = nHi; const aL = nLo;
  const eb = norm64(bse, bhi, blo);
  // Q' = floor(A × 2^80 / B) by schoolbook division in base 2^16 (Knuth D; the divisor is normalised).
  const sticky = divide80(aH, aL, nHi, nLo);
  const sh = normalize128();
  s0 = (s0 | sticky) >>> 0;
  // A/B = Q' / 2^80 and Q' sits at s-bit 32: after the shift the exponent offset is 15 - sh.
  const exp = ea - eb + BIAS + 15 - sh;
  roundPack(env, sign, exp);
}

// ---- Square root -------------------------------------------------------

/** Bit p of the normalised significand nHi:nLo (0 outside 0..63). */
function radicandBit(p: number): number {
  if (p < 0 || p > 63) return 0;
  return p >= 32 ? (nHi >>> (p - 32)) & 1 : (nLo >>> p) & 1;
}

export function sqrt(env: FloatEnv, ase: number, ahi: number, alo: number): void {
  env.roundedUp = 0;
  if (isUnsupported80(ase, ahi)) { invalid(env); return; }
  if (isNaN80(ase, ahi, alo)) { propagateNaN1(env, ase, ahi, alo); return; }
  if (isZero80(ase, ahi, alo)) { setResult(env, ase, 0, 0); return; }
  if ((ase & 0x8000) !== 0) { invalid(env); return; }
  if (isInf80(ase, ahi, alo)) { setResult(env, ase, ahi, alo); return; }
  if (isDenormal80(ase, ahi, alo)) env.flags |= EX_DE;
  const e = norm64(ase, ahi, alo) - BIAS;
  // Radicand N = sig << (67 or 68), root = floor(sqrt(N)) has 66 bits (2^65 ≤ root < 2^66).
  const odd = (e & 1) !== 0;
  // N = sig × 2^k is consumed two bits at a time from bit 131 down.
  const k = odd ? 68 : 67;
  // Remainder and root as three-limb numbers (r2:r1:r0), root (q2:q1:q0).
  let r2 = 0; let r1 = 0; let r0 = 0;
  let q2 = 0; let q1 = 0; let q0 = 0;
  for (let i = 65; i >= 0; i--) {
    // next two bits of N: bits 2i+1 and 2i
    const two = (radicandBit(2 * i + 1 - k) << 1) | radicandBit(2 * i - k);
    // rem = rem << 2 | two
    r2 = ((r2 << 2) | (r1 >>> 30)) >>> 0;
    r1 = ((r1 << 2) | (r0 >>> 30)) >>> 0;
    r0 = ((r0 << 2) | two) >>> 0;
    // trial = root << 2 | 1
    const t2 = ((q2 << 2) | (q1 >>> 30)) >>> 0;
    const t1 = ((q1 << 2) | (q0 >>> 30)) >>> 0;
    const t0 = ((q0 << 2) | 1) >>> 0;
    // root <<= 1
    q2 = ((q2 << 1) | (q1 >>> 31)) >>> 0;
    q1 = ((q1 << 1) | (q0 >>> 31)) >>> 0;
    q0 = (q0 << 1) >>> 0;
    if (r2 > t2 || (r2 === t2 && (r1 > t1 || (r1 === t1 && r0 >= t0)))) {
      let t = r0 - t0; let bw = 0; if (t < 0) { t += TWO32; bw = 1; } r0 = t;
      t = r1 - t1 - bw; bw = 0; if (t < 0) { t += TWO32; bw = 1; } r1 = t;
      r2 = (r2 - t2 - bw) >>> 0;
      q0 = (q0 | 1) >>> 0;
    }
  }
  // root: 66 bits in q2:q1:q0 (bit 65 = q2 bit 1). Put into s3..s0 with bit 65 → 127.
  s3 = q2; s2 = q1; s1 = q0; s0 = 0;
  normalize128();
  s0 = (s0 | ((r2 | r1 | r0) !== 0 ? 1 : 0)) >>> 0;
  const exp = ((e - (odd ? 1 : 0)) >> 1) + BIAS;
  roundPack(env, 0, exp);
}

// ---- Conversions -------------------------------------------------------

/** Rounds a value to the environment precision (FLD from memory keeps exact values; used by FADD x,0 etc.). */
export function roundToPrecision(env: FloatEnv, se: number, hi: number, lo: number): void {
  env.roundedUp = 0;
  const e = load(se, hi, lo);
  const sh = normalize128();
  roundPack(env, se >>> 15 & 1, e - sh);
}

/** A signed 64-bit integer (hi:lo two's complement) → extended, exact. */
export function fromInt64(env: FloatEnv, lo: number, hi: number): void {
  let sign = 0;
  lo >>>= 0; hi >>>= 0;
  if (hi >= 0x80000000) {
    sign = 1;
    lo = TWO32 - lo;
    hi = TWO32 - 1 - hi + (lo === TWO32 ? 1 : 0);
    if (lo === TWO32) lo = 0;
    hi >>>= 0;
  }
  if (hi === 0 && lo === 0) { setResult(env, sign << 15, 0, 0); return; }
  s3 = hi; s2 = lo; s1 = 0; s0 = 0;
  const sh = normalize128();
  setResult(env, (sign << 15) | (BIAS + 63 - sh), s3, s2);
}

function intIndefinite(env: FloatEnv, bits: number): boolean {
  env.flags |= EX_IE;
  if (bits === 64) { env.iLo = 0; env.iHi = 0x80000000 | 0; } else { env.iLo = bits === 32 ? 0x80000000 | 0 : 0x8000; env.iHi = 0; }
  return false;
}

/**
 * Extended → signed integer of `bits` (16, 32, 64) rounded by env.rc (or
 * truncated when `chop`). Out of range or NaN: IE and the integer indefinite
 * (0x8000…); returns false then. Result in env.iLo/iHi.
 */
export function toInt(env: FloatEnv, se: number, hi: number, lo: number, bits: number, chop: boolean): boolean {
  env.roundedUp = 0;
  const sign = se >>> 15 & 1;
  const e = se & 0x7fff;
  if (isUnsupported80(se, hi) || e === 0x7fff) return intIndefinite(env, bits);
  if (isZero80(se, hi, lo)) { env.iLo = 0; env.iHi = 0; return true; }
  if (e === 0) env.flags |= EX_DE;
  // Integer part: shift the 64-bit significand right by (BIAS + 63 - e).
  s3 = hi >>> 0; s2 = lo >>> 0; s1 = 0; s0 = 0;
  const shift = BIAS + 63 - (e === 0 ? 1 : e);
  if (shift < 0) return intIndefinite(env, bits);
  // Put the integer part into s3:s2 and the fraction in s1:s0 (shift right by `shift` bits).
  shiftRightJam(Math.min(shift, 200));
  // Round: the binary point is between s2 and s1.
  const lsb = s2 & 1; const round = s1 >>> 31; const sticky = ((s1 & 0x7fffffff) | s0) !== 0;
  const inexact = round !== 0 || sticky;
  const rc = chop ? RC_CHOP : env.rc;
  let inc = false;
  if (rc === RC_NEAREST) inc = round !== 0 && (sticky || lsb !== 0);
  else if (rc === RC_DOWN) inc = inexact && sign !== 0;
  else if (rc === RC_UP) inc = inexact && sign === 0;
  let mHi = s3; let mLo = s2;
  if (inc) { mLo += 1; if (mLo >= TWO32) { mLo = 0; mHi += 1; } }
  // Range check: magnitude ≤ 2^(bits-1) - 1, or 2^(bits-1) when negative.
  const limHi = bits === 64 ? 0x80000000 : 0;
  const limLo = bits === 64 ? 0 : bits === 32 ? 0x80000000 : 0x8000;
  if (mHi >= TWO32 || mHi > limHi || (mHi === limHi && mLo > limLo) || (mHi === limHi && mLo === limLo && sign === 0)) {
    return intIndefinite(env, bits);
  }
  if (inexact) env.flags |= EX_PE;
  env.roundedUp = inc ? 1 : 0;
  if (sign !== 0) {
    // negate 64-bit
    mLo = TWO32 - mLo;
    mHi = TWO32 - 1 - mHi + (mLo === TWO32 ? 1 : 0);
    if (mLo === TWO32) mLo = 0;
  }
  env.iLo = mLo | 0; env.iHi = mHi | 0;
  if (bits === 16) { env.iLo &= 0xffff; env.iHi = 0; }
  else if (bits === 32) env.iHi = 0;
  return true;
}

/** Rounds to an integral value (FRNDINT) in the environment's rounding mode; exact inputs stay. */
export function roundToIntegral(env: FloatEnv, se: number, hi: number, lo: number): void {
  env.roundedUp = 0;
  if (isUnsupported80(se, hi)) { invalid(env); return; }
  if (isNaN80(se, hi, lo)) { propagateNaN1(env, se, hi, lo); return; }
  const e = se & 0x7fff;
  if (e === 0x7fff || isZero80(se, hi, lo) || e >= BIAS + 63) { setResult(env, se, hi, lo); return; }
  if (e === 0) env.flags |= EX_DE;
  const sign = se >>> 15 & 1;
  s3 = hi >>> 0; s2 = lo >>> 0; s1 = 0; s0 = 0;
  const shift = BIAS + 63 - (e === 0 ? 1 : e);
  shiftRightJam(Math.min(shift, 200));
  const lsb = s2 & 1; const round = s1 >>> 31; const sticky = ((s1 & 0x7fffffff) | s0) !== 0;
  const inexact = round !== 0 || sticky;
  let inc = false;
  if (env.rc === RC_NEAREST) inc = round !== 0 && (sticky || lsb !== 0);
  else if (env.rc === RC_DOWN) inc = inexact && sign !== 0;
  else if (env.rc === RC_UP) inc = inexact && sign === 0;
  let mHi = s3; let mLo = s2;
  if (inc) { mLo += 1; if (mLo >= TWO32) { mLo = 0; mHi += 1; } }
  if (inexact) env.flags |= EX_PE;
  env.roundedUp = inc ? 1 : 0;
  if (mHi === 0 && mLo === 0) { setResult(env, sign << 15, 0, 0); return; }
  s3 = mHi >>> 0; s2 = mLo >>> 0; s1 = 0; s0 = 0;
  let exp = BIAS + 63;
  if (mHi >= TWO32) { s3 = 0x80000000; s2 = 0; exp = BIAS + 64; }
  const sh = normalize128();
  setResult(env, (sign << 15) | (exp - sh), s3, s2);
}

/** IEEE single (bits) → extended, exact; SNaN → IE and quieted; denormals raise DE. */
export function fromF32(env: FloatEnv, bits: number): void {
  const sign = bits >>> 31;
  const e = (bits >>> 23) & 0xff;
  const f = bits & 0x7fffff;
  if (e === 0xff) {
    if (f === 0) { setResult(env, (sign << 15) | 0x7fff, 0x80000000, 0); return; }
    if ((f & 0x400000) === 0) env.flags |= EX_IE;
    setResult(env, (sign << 15) | 0x7fff, 0xc0000000 | (f << 8), 0);
    return;
  }
  if (e === 0) {
    if (f === 0) { setResult(env, sign << 15, 0, 0); return; }
    env.flags |= EX_DE;
    // value = f × 2^-149; normalise f so its top bit is at bit 31.
    const lz = Math.clz32(f);
    setResult(env, (sign << 15) | (BIAS - 118 - lz), (f << lz) >>> 0, 0);
    return;
  }
  setResult(env, (sign << 15) | (e - 127 + BIAS), (0x80000000 | (f << 8)) >>> 0, 0);
}

/** IEEE double (hi:lo bits) → extended, exact. */
export function fromF64(env: FloatEnv, lo: number, hi: number): void {
  const sign = hi >>> 31;
  const e = (hi >>> 20) & 0x7ff;
  const fHi = hi & 0xfffff; const fLo = lo >>> 0;
  if (e === 0x7ff) {
    if ((fHi | fLo) === 0) { setResult(env, (sign << 15) | 0x7fff, 0x80000000, 0); return; }
    if ((fHi & 0x80000) === 0) env.flags |= EX_IE;
    setResult(env, (sign << 15) | 0x7fff, 0xc0000000 | (fHi << 11) | (fLo >>> 21), fLo << 11);
    return;
  }
  if (e === 0) {
    if ((fHi | fLo) === 0) { setResult(env, sign << 15, 0, 0); return; }
    env.flags |= EX_DE;
    // value = f × 2^-1074, f has at most 52 bits: place in s3:s2 at bit 11 and normalise.
    s3 = ((fHi << 11) | (fLo >>> 21)) >>> 0; s2 = (fLo << 11) >>> 0; s1 = 0; s0 = 0;
    const sh = normalize128();
    setResult(env, (sign << 15) | (BIAS - 1022 - sh), s3, s2);
    return;
  }
  setResult(env, (sign << 15) | (e - 1023 + BIAS), 0x80000000 | (fHi << 11) | (fLo >>> 21), fLo << 11);
}

/** Packs an infinity (fraction 0) or NaN with the given 63-bit fraction into env.iLo/iHi. */
function packInfNaN(env: FloatEnv, single: boolean, sign: number, fracHi: number, fracLo: number): void {
  if (single) { env.iLo = ((sign << 31) | 0x7f800000 | (fracHi >>> 8)) | 0; env.iHi = 0; }
  else { env.iHi = ((sign << 31) | 0x7ff00000 | (fracHi >>> 11)) | 0; env.iLo = ((fracHi << 21) | (fracLo >>> 11)) | 0; }
}

/**
 * Extended → IEEE single or double (`bits` 32/64), rounded by env.rc with
 * that format's range. Result bits in env.iLo (single, or double low) and
 * env.iHi (double high). NaNs are quieted (SNaN → IE).
 */
export function toFloat(env: FloatEnv, se: number, hi: number, lo: number, bits: number): void {
  env.roundedUp = 0;
  const sign = se >>> 15 & 1;
  const single = bits === 32;
  if (isUnsupported80(se, hi)) { env.flags |= EX_IE; env.iLo = single ? 0xffc00000 | 0 : 0; env.iHi = single ? 0 : 0xfff80000 | 0; return; }
  if (isNaN80(se, hi, lo)) {
    if ((hi & 0x40000000) === 0) env.flags |= EX_IE;
    packInfNaN(env, single, sign, (hi | 0x40000000) & 0x7fffffff, lo);
    return;
  }
  if (isInf80(se, hi, lo)) { packInfNaN(env, single, sign, 0, 0); return; }
  if (isZero80(se, hi, lo)) { env.iLo = single ? sign << 31 : 0; env.iHi = single ? 0 : sign << 31; return; }
  if ((se & 0x7fff) === 0) env.flags |= EX_DE;
  const e = load(se, hi, lo);
  const sh = normalize128();
  const bias = single ? 127 : 1023;
  const emin = BIAS - bias + 1;
  const emax = BIAS + bias;
  roundPackRange(env, sign, e - sh, single ? 24 : 53, emin, emax, false);
  const re = env.se & 0x7fff;
  const rHi = env.hi; const rLo = env.lo;
  if (re > emax) { packInfNaN(env, single, sign, 0, 0); return; }
  let fe: number;
  if ((rHi & 0x80000000) === 0) fe = 0; // denormal (or zero)
  else fe = re - BIAS + bias;
  if (rHi === 0 && rLo === 0) fe = 0;
  if (single) {
    env.iLo = ((sign << 31) | (fe << 23) | ((rHi >>> 8) & 0x7fffff)) | 0; env.iHi = 0;
  } else {
    env.iHi = ((sign << 31) | (fe << 20) | ((rHi >>> 11) & 0xfffff)) | 0;
    env.iLo = ((rHi << 21) | (rLo >>> 11)) | 0;
  }
}

// ---- Comparison --------------------------------------------------------

/**
 * Compares a and b: returns 0 (a > b), 1 (a < b), 2 (equal), 3 (unordered).
 * `quiet`: QNaNs do not raise IE (FUCOM); SNaNs and unsupported always do.
 */
export function compare(env: FloatEnv, ase: number, ahi: number, alo: number, bse: number, bhi: number, blo: number, quiet: boolean): number {
  if (isUnsupported80(ase, ahi) || isUnsupported80(bse, bhi)) { env.flags |= EX_IE; return 3; }
  const aNaN = isNaN80(ase, ahi, alo); const bNaN = isNaN80(bse, bhi, blo);
  if (aNaN || bNaN) {
    if (!quiet || (aNaN && (ahi & 0x40000000) === 0) || (bNaN && (bhi & 0x40000000) === 0)) env.flags |= EX_IE;
    return 3;
  }
  if (isDenormal80(ase, ahi, alo) || isDenormal80(bse, bhi, blo)) env.flags |= EX_DE;
  const aZero = isZero80(ase, ahi, alo); const bZero = isZero80(bse, bhi, blo);
  if (aZero && bZero) return 2;
  const as = aZero ? 0 : ase >>> 15 & 1; const bs = bZero ? 0 : bse >>> 15 & 1;
  if (as !== bs) return as === 0 ? 0 : 1;
  // Same sign: compare magnitudes (normalising denormals to compare pseudo-denormals correctly).
  const ea = aZero ? -1e9 : norm64(ase, ahi, alo); const aH = nHi; const aL = nLo;
  const eb = bZero ? -1e9 : norm64(bse, bhi, blo);
  let cmp = ea !== eb ? (ea > eb ? 1 : -1) : aH !== nHi ? (aH > nHi ? 1 : -1) : aL !== nLo ? (aL > nLo ? 1 : -1) : 0;
  if (cmp === 0) return 2;
  if (as !== 0) cmp = -cmp;
  return cmp > 0 ? 0 : 1;
}

// ---- Exact remainder (FPREM/FPREM1) -------------------------------------

/**
 * Partial remainder of a / b. `nearest`: IEEE remainder (FPREM1), else
 * truncating (FPREM). Writes the result to env and returns the low three
 * quotient bits (bits 0-2) plus 8 when the reduction is incomplete (C2).
 */
export function remainder(env: FloatEnv, ase: number, ahi: number, alo: number, bse: number, bhi: number, blo: number, nearest: boolean): number {
  env.roundedUp = 0;
  if (checkOperands2(env, ase, ahi, alo, bse, bhi, blo)) return 0;
  if (isInf80(ase, ahi, alo) || isZero80(bse, bhi, blo)) { invalid(env); return 0; }
  if (isInf80(bse, bhi, blo) || isZero80(ase, ahi, alo)) { setResult(env, ase, ahi, alo); return 0; }
  const ea = norm64(ase, ahi, alo); let rHi = nHi; let rLo = nLo;
  const eb = norm64(bse, bhi, blo); const dHi = nHi; const dLo = nLo;
  let sign = ase >>> 15 & 1;
  const d = ea - eb;
  let q = 0;
  let rExp: number;
  let partial = false;
  if (d < 0) {
    if (!nearest || d < -1 || rHi < dHi || (rHi === dHi && rLo <= dLo)) { setResult(env, ase, ahi, alo); return 0; }
    // FPREM1 with b/2 < |a| < |b|: the quotient rounds to 1, remainder = |b| - |a| = (2B - A) at exponent ea.
    const twoBLo = (dLo * 2) % TWO32;
    const twoBHi = dHi * 2 + (dLo >= 0x80000000 ? 1 : 0);
    let t = twoBLo - rLo; let bw = 0;
    if (t < 0) { t += TWO32; bw = 1; }
    rLo = t;
    rHi = (twoBHi - bw - rHi) >>> 0;
    sign ^= 1;
    q = 1;
    rExp = ea;
  } else {
    let steps = d;
    if (d >= 64) { steps = 32 + (d % 32); partial = true; }
    // Restoring division of A × 2^steps by B: steps + 1 quotient bits; the remainder stays below 2^65.
    let top = 0;
    for (let i = 0; i <= steps; i++) {
      let bit = 0;
      if (top !== 0 || rHi > dHi || (rHi === dHi && rLo >= dLo)) {
        let t = rLo - dLo; let bw = 0;
        if (t < 0) { t += TWO32; bw = 1; }
        rLo = t;
        rHi = rHi - dHi - bw;
        if (rHi < 0) rHi += TWO32;
        top = 0;
        bit = 1;
      }
      q = ((q << 1) | bit) & 7;
      if (i < steps) {
        top = rHi >>> 31;
        rHi = ((rHi << 1) | (rLo >>> 31)) >>> 0;
        rLo = (rLo << 1) >>> 0;
      }
    }
    rExp = ea - steps;
    if (nearest && !partial) {
      // Round the quotient to nearest even: 2R > B, or 2R = B with an odd quotient → R = B - R.
      const twoTop = rHi >>> 31;
      const twoHi = ((rHi << 1) | (rLo >>> 31)) >>> 0;
      const twoLo = (rLo << 1) >>> 0;
      const gt = twoTop !== 0 || twoHi > dHi || (twoHi === dHi && twoLo > dLo);
      const eq = twoTop === 0 && twoHi === dHi && twoLo === dLo;
      if (gt || (eq && (q & 1) !== 0)) {
        let t = dLo - rLo; let bw = 0;
        if (t < 0) { t += TWO32; bw = 1; }
        rLo = t;
        rHi = (dHi - rHi - bw) >>> 0;
        sign ^= 1;
        q = (q + 1) & 7;
      }
    }
  }
  const cc = q | (partial ? 8 : 0);
  if (rHi === 0 && rLo === 0) { setResult(env, sign << 15, 0, 0); return cc; }
  s3 = rHi >>> 0; s2 = rLo >>> 0; s1 = 0; s0 = 0;
  const sh = normalize128();
  // The remainder is exact; a tiny one is denormalised without loss unless far below range.
  roundPackRange(env, sign, rExp - sh, 64, 1, 0x7ffe, false);
  return cc;
}

// ---- Scale -------------------------------------------------------------

/** a × 2^n for an integer n (FSCALE's core), rounded at the environment precision. */
export function scale(env: FloatEnv, se: number, hi: number, lo: number, n: number): void {
  env.roundedUp = 0;
  if (isUnsupported80(se, hi)) { invalid(env); return; }
  if (isNaN80(se, hi, lo)) { propagateNaN1(env, se, hi, lo); return; }
  if (isZero80(se, hi, lo) || (se & 0x7fff) === 0x7fff) { setResult(env, se, hi, lo); return; }
  if ((se & 0x7fff) === 0) env.flags |= EX_DE;
  const e = load(se, hi, lo);
  const sh = normalize128();
  const clamped = n > 70000 ? 70000 : n < -70000 ? -70000 : n;
  roundPack(env, se >>> 15 & 1, e - sh + clamped);
}

/** Packs a JS double into the result as an extended value rounded to the environment (for the transcendental fallbacks). */
export function fromNumber(env: FloatEnv, v: number): void {
  const buf = f64buf;
  buf[0] = v;
  fromF64(env, u32buf[0], u32buf[1]);
}
/** An extended value as a JS double (rounded to nearest). */
export function toNumber(se: number, hi: number, lo: number): number {
  const tmp = convEnv;
  tmp.rc = RC_NEAREST; tmp.flags = 0; tmp.masks = 0x3f;
  toFloat(tmp, se, hi, lo, 64);
  u32buf[0] = tmp.iLo; u32buf[1] = tmp.iHi;
  return f64buf[0];
}
const f64buf = new Float64Array(1);
const u32buf = new Uint32Array(f64buf.buffer);
const convEnv = new FloatEnv();

