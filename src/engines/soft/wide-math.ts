/**
 * 64- and 128-bit integer arithmetic on 32-bit halves, without BigInt, for the
 * soft CPU's MUL/IMUL/DIV/IDIV. Results go to the `out` words of a WideMath
 * instance (preallocated, so the hot path never allocates).
 */

const TWO32 = 0x1_0000_0000;

export class WideMath {
  /** Result words, least significant first: a 128-bit product, or quotient (0,1) and remainder (2,3). */
  readonly out = new Int32Array(4);

  /** High word (unsigned) of the last mulU32. */
  mulHi = 0;

  /**
   * Unsigned 32×32 → 64 multiply of a, b in [0, 2^32): returns the low word
   * (as an unsigned number), leaves the high word in mulHi. Two 32×16 partial products are
   * below 2^48, so every step is exact in a double.
   */
  mulU32(a: number, b: number): number {
    const p0 = a * (b & 0xffff);
    const p1 = a * (b >>> 16);
    const p0Hi = Math.floor(p0 / TWO32);
    const t = (p0 - p0Hi * TWO32) + (p1 % 0x10000) * 0x10000; // < 2^33
    const tHi = t >= TWO32 ? 1 : 0;
    this.mulHi = p0Hi + Math.floor(p1 / 0x10000) + tHi;
    return t - tHi * TWO32;
  }

  /** Unsigned 64×64 → 128 multiply of (aHi:aLo) × (bHi:bLo). */
  mulU64(aLo: number, aHi: number, bLo: number, bHi: number): void {
    const a0 = aLo >>> 0;
    const a1 = aHi >>> 0;
    const b0 = bLo >>> 0;
    const b1 = bHi >>> 0;
    const o = this.out;
    const ll = this.mulU32(a0, b0);
    const llHi = this.mulHi;
    if (a1 === 0 && b1 === 0) {
      o[0] = ll | 0; o[1] = llHi | 0; o[2] = 0; o[3] = 0;
      return;
    }
    const lh = this.mulU32(a0, b1);
    const lhHi = this.mulHi;
    const hl = this.mulU32(a1, b0);
    const hlHi = this.mulHi;
    const hh = this.mulU32(a1, b1);
    const hhHi = this.mulHi;
    // Column sums of 32-bit words (each below 2^34, exact), carried upwards.
    const w1 = llHi + lh + hl;
    const c1 = Math.floor(w1 / TWO32);
    const w2 = lhHi + hlHi + hh + c1;
    const c2 = Math.floor(w2 / TWO32);
    o[0] = ll | 0;
    o[1] = w1 | 0;
    o[2] = w2 | 0;
    o[3] = (hhHi + c2) | 0;
  }

  /** Signed 64×64 → 128 multiply. */
  mulS64(aLo: number, aHi: number, bLo: number, bHi: number): void {
    const negA = aHi < 0;
    const negB = bHi < 0;
    if (negA) { aLo = -aLo | 0; aHi = (~aHi + (aLo === 0 ? 1 : 0)) | 0; }
    if (negB) { bLo = -bLo | 0; bHi = (~bHi + (bLo === 0 ? 1 : 0)) | 0; }
    this.mulU64(aLo, aHi, bLo, bHi);
    if (negA !== negB) this.negate128();
  }

  private negate128(): void {
    const o = this.out;
    let carry = 1;
    for (let i = 0; i < 4; i++) {
      const t = (~o[i] >>> 0) + carry;
      o[i] = t | 0;
      carry = t > 0xffffffff ? 1 : 0;
    }
  }

  /**
   * Unsigned 128/64 divide of (n3:n2:n1:n0) by (dHi:dLo). Returns false on a
   * zero divisor or a quotient wider than 64 bits (#DE); otherwise out[0..1]
   * = quotient, out[2..3] = remainder.
   */
  divU128(n0: number, n1: number, n2: number, n3: number, dLo: number, dHi: number): boolean {
    const o = this.out;
    if (dLo === 0 && dHi === 0) return false;
    // The quotient fits in 64 bits iff the high half of the dividend < divisor.
    if ((n3 >>> 0) > (dHi >>> 0) || ((n3 >>> 0) === (dHi >>> 0) && (n2 >>> 0) >= (dLo >>> 0))) return false;
    if (n2 === 0 && n3 === 0 && (n1 >>> 0) < 0x200000 && dHi === 0) {
      const n = (n1 >>> 0) * TWO32 + (n0 >>> 0);
      const d = dLo >>> 0;
      const q = Math.floor(n / d);
      const r = n - q * d;
      o[0] = q % TWO32 | 0; o[1] = Math.floor(q / TWO32) | 0; o[2] = r | 0; o[3] = 0;
      return true;
    }
    // Long division by 16-bit quotient digits. The remainder starts as the
    // dividend's high half (below the divisor, checked above); each step
    // brings down 16 bits of (n1:n0).
    const d0 = dLo >>> 0;
    const d1 = dHi >>> 0;
    let q0 = 0;
    let q1 = 0;
    if (d1 === 0) {
      // A 32-bit divisor: remainder·2^16 + digit < 2^48, exact in a double.
      let rem = n2 >>> 0;
      for (let i = 3; i >= 0; i--) {
        const x = rem * 0x10000 + digit16(n0, n1, i);
        const q = Math.floor(x / d0);
        rem = x - q * d0;
        if (i >= 2) q1 = q1 * 0x10000 + q; else q0 = q0 * 0x10000 + q;
      }
      o[0] = q0 | 0; o[1] = q1 | 0; o[2] = rem | 0; o[3] = 0;
      return true;
    }
    // A divisor of 33..64 bits: estimate each digit from doubles (off by at
    // most one or two), then fix it with an exact multiply-subtract.
    const dApprox = d1 * TWO32 + d0;
    let r0 = n2 >>> 0;
    let r1 = n3 >>> 0;
    for (let i = 3; i >= 0; i--) {
      // x = (r1:r0)·2^16 + digit as 32-bit words x2:x1:x0.
      const x0 = (r0 & 0xffff) * 0x10000 + digit16(n0, n1, i);
      const x1 = (r1 & 0xffff) * 0x10000 + (r0 >>> 16);
      const x2 = r1 >>> 16;
      let q = Math.floor(((x2 * TWO32 + x1) * TWO32 + x0) / dApprox);
      if (q > 0xffff) q = 0xffff;
      // s = x - q·d, 32-bit words with a signed top word.
      const pl = q * d0;
      const plHi = Math.floor(pl / TWO32);
      const pm = q * d1 + plHi;
      const pmHi = Math.floor(pm / TWO32);
      let s0 = x0 - (pl - plHi * TWO32);
      let borrow = s0 < 0 ? 1 : 0;
      s0 += borrow * TWO32;
      let s1 = x1 - (pm - pmHi * TWO32) - borrow;
      borrow = s1 < 0 ? 1 : 0;
      s1 += borrow * TWO32;
      let s2 = x2 - pmHi - borrow;
      while (s2 < 0) { // estimate too large: add the divisor back
        q--;
        s0 += d0;
        const c0 = s0 >= TWO32 ? 1 : 0;
        s0 -= c0 * TWO32;
        s1 += d1 + c0;
        const c1 = s1 >= TWO32 ? 1 : 0;
        s1 -= c1 * TWO32;
        s2 += c1;
      }
      while (s2 > 0 || s1 > d1 || (s1 === d1 && s0 >= d0)) { // too small: subtract once more
        q++;
        s0 -= d0;
        const b0 = s0 < 0 ? 1 : 0;
        s0 += b0 * TWO32;
        s1 -= d1 + b0;
        const b1 = s1 < 0 ? 1 : 0;
        s1 += b1 * TWO32;
        s2 -= b1;
      }
      r0 = s0;
      r1 = s1;
      if (i >= 2) q1 = q1 * 0x10000 + q; else q0 = q0 * 0x10000 + q;
    }
    o[0] = q0 | 0; o[1] = q1 | 0; o[2] = r0 | 0; o[3] = r1 | 0;
    return true;
  }

  /** Signed 128/64 divide (IDIV): false on #DE. */
  divS128(n0: number, n1: number, n2: number, n3: number, dLo: number, dHi: number): boolean {
    const negN = n3 < 0;
    const negD = dHi < 0;
    if (negN) {
      // Two's complement of the 128-bit dividend, word by word.
      n0 = ~n0 >>> 0; n1 = ~n1 >>> 0; n2 = ~n2 >>> 0; n3 = ~n3 >>> 0;
      n0 = (n0 + 1) >>> 0;
      if (n0 === 0) { n1 = (n1 + 1) >>> 0; if (n1 === 0) { n2 = (n2 + 1) >>> 0; if (n2 === 0) n3 = (n3 + 1) >>> 0; } }
    }
    if (negD) { dLo = -dLo | 0; dHi = (~dHi + (dLo === 0 ? 1 : 0)) | 0; }
    if (!this.divU128(n0, n1, n2, n3, dLo, dHi)) return false;
    const o = this.out;
    const negQ = negN !== negD;
    // Quotient magnitude must fit the signed range.
    const qHi = o[1];
    if (negQ) {
      if ((qHi >>> 0) > 0x80000000 || (qHi >>> 0 === 0x80000000 && o[0] !== 0)) return false;
      o[0] = -o[0] | 0; o[1] = (~o[1] + (o[0] === 0 ? 1 : 0)) | 0;
    } else if (qHi < 0) return false;
    if (negN) { o[2] = -o[2] | 0; o[3] = (~o[3] + (o[2] === 0 ? 1 : 0)) | 0; }
    return true;
  }
}

/** Bits 16·i..16·i+15 of the 64-bit value (n1:n0), i = 0..3. */
function digit16(n0: number, n1: number, i: number): number {
  const w = i >= 2 ? n1 : n0;
  return (i & 1) !== 0 ? w >>> 16 : w & 0xffff;
}
