/**
 * 64- and 128-bit integer arithmetic on 32-bit halves, without BigInt, for the
 * soft CPU's MUL/IMUL/DIV/IDIV. Results go to the `out` words of a WideMath
 * instance (preallocated, so the hot path never allocates).
 */

const TWO32 = 0x1_0000_0000;

export class WideMath {
  /** Result words, least significant first: a 128-bit product, or quotient (0,1) and remainder (2,3). */
  readonly out = new Int32Array(4);
  private readonly limbsA = new Uint32Array(4);
  private readonly limbsB = new Uint32Array(4);
  private readonly acc = new Uint32Array(8);

  /** Unsigned 64×64 → 128 multiply of (aHi:aLo) × (bHi:bLo). */
  mulU64(aLo: number, aHi: number, bLo: number, bHi: number): void {
    const a = this.limbsA;
    const b = this.limbsB;
    a[0] = aLo & 0xffff; a[1] = aLo >>> 16; a[2] = aHi & 0xffff; a[3] = aHi >>> 16;
    b[0] = bLo & 0xffff; b[1] = bLo >>> 16; b[2] = bHi & 0xffff; b[3] = bHi >>> 16;
    const acc = this.acc;
    acc.fill(0);
    for (let i = 0; i < 4; i++) {
      let carry = 0;
      const ai = a[i];
      for (let j = 0; j < 4; j++) {
        const t = ai * b[j] + acc[i + j] + carry; // < 2^32 + 2^17: exact in a double
        acc[i + j] = t & 0xffff;
        carry = Math.floor(t / 0x10000);
      }
      let k = i + 4;
      while (carry !== 0 && k < 8) {
        const t = acc[k] + carry;
        acc[k] = t & 0xffff;
        carry = t >>> 16;
        k++;
      }
    }
    const o = this.out;
    o[0] = acc[0] | (acc[1] << 16);
    o[1] = acc[2] | (acc[3] << 16);
    o[2] = acc[4] | (acc[5] << 16);
    o[3] = acc[6] | (acc[7] << 16);
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
    // Shift-subtract long division, remainder in (r1:r0) plus a carry bit.
    let r0 = n2 >>> 0;
    let r1 = n3 >>> 0;
    let q0 = n0 >>> 0;
    let q1 = n1 >>> 0;
    const d0 = dLo >>> 0;
    const d1 = dHi >>> 0;
    for (let i = 0; i < 64; i++) {
      const top = r1 >>> 31;
      r1 = ((r1 << 1) | (r0 >>> 31)) >>> 0;
      r0 = ((r0 << 1) | (q1 >>> 31)) >>> 0;
      q1 = ((q1 << 1) | (q0 >>> 31)) >>> 0;
      q0 = (q0 << 1) >>> 0;
      if (top !== 0 || r1 > d1 || (r1 === d1 && r0 >= d0)) {
        const borrow = r0 < d0 ? 1 : 0;
        r0 = (r0 - d0) >>> 0;
        r1 = (r1 - d1 - borrow) >>> 0;
        q0 |= 1;
      }
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
