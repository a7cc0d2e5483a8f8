/**
 * WideMath against a BigInt reference: 64×64→128 multiplies and 128/64
 * divides (signed and unsigned) on edge values and random operands.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WideMath } from './wide-math.js';

const M64 = (1n << 64n) - 1n;
const M128 = (1n << 128n) - 1n;

function halves(v: bigint): [number, number] {
  const u = v & M64;
  return [Number(u & 0xffffffffn) | 0, Number(u >> 32n) | 0];
}

function words128(o: Int32Array): bigint {
  return BigInt(o[0] >>> 0) | (BigInt(o[1] >>> 0) << 32n) | (BigInt(o[2] >>> 0) << 64n) | (BigInt(o[3] >>> 0) << 96n);
}

function signed64(v: bigint): bigint {
  return BigInt.asIntN(64, v);
}

/** Deterministic xorshift so failures reproduce. */
function* randomBig(seed: number, count: number): Generator<bigint> {
  let s = BigInt(seed) | 1n;
  for (let i = 0; i < count; i++) {
    s ^= (s << 13n) & M64; s ^= s >> 7n; s ^= (s << 17n) & M64;
    // Vary the magnitude: small values, 32-bit values, full 64-bit values.
    const shift = BigInt(Number(s & 63n));
    yield i % 3 === 0 ? s >> shift : s;
  }
}

const EDGES = [0n, 1n, 2n, 3n, 0x7fffn, 0xffffn, 0x10000n, 0x7fffffffn, 0x80000000n, 0xffffffffn, 0x100000000n,
  0x1fffffffffffffn, 0x20000000000000n, 0x7fffffffffffffffn, 0x8000000000000000n, 0xfffffffffffffffen, M64,
  0x123456789abcdef0n, 0xfedcba9876543210n];

function operands(): bigint[] {
  return [...EDGES, ...randomBig(12345, 200)];
}

test('mulU64 and mulS64 give the exact 128-bit product', () => {
  const w = new WideMath();
  const ops = operands();
  for (const a of ops) {
    for (const b of ops) {
      const [aLo, aHi] = halves(a);
      const [bLo, bHi] = halves(b);
      w.mulU64(aLo, aHi, bLo, bHi);
      assert.equal(words128(w.out), (a * b) & M128, `mulU64 ${a.toString(16)} × ${b.toString(16)}`);
      w.mulS64(aLo, aHi, bLo, bHi);
      assert.equal(words128(w.out), (signed64(a) * signed64(b)) & M128, `mulS64 ${a.toString(16)} × ${b.toString(16)}`);
    }
  }
});

test('divU128 and divS128 give quotient and remainder, or #DE', () => {
  const w = new WideMath();
  const ops = operands();
  const highs = [0n, 1n, 0xffffffffn, 0x7fffffffffffffffn, M64, ...randomBig(777, 12)];
  for (const d of ops) {
    for (const lo of ops.slice(0, 60)) {
      for (const hi of highs) {
        const n = (hi << 64n) | lo;
        const [n0, n1] = halves(lo);
        const [n2, n3] = halves(hi);
        const [dLo, dHi] = halves(d);
        // Unsigned.
        const okU = w.divU128(n0, n1, n2, n3, dLo, dHi);
        const expectOkU = d !== 0n && n / d <= M64;
        assert.equal(okU, expectOkU, `divU128 ok ${n.toString(16)} / ${d.toString(16)}`);
        if (okU) {
          assert.equal(words128(w.out), (n / d) | ((n % d) << 64n), `divU128 ${n.toString(16)} / ${d.toString(16)}`);
        }
        // Signed.
        const sn = BigInt.asIntN(128, n);
        const sd = signed64(d);
        const okS = w.divS128(n0, n1, n2, n3, dLo, dHi);
        const q = sd === 0n ? 0n : sn / sd;
        const expectOkS = sd !== 0n && q >= -(1n << 63n) && q < (1n << 63n);
        assert.equal(okS, expectOkS, `divS128 ok ${sn} / ${sd}`);
        if (okS) {
          assert.equal(words128(w.out), (q & M64) | (((sn % sd) & M64) << 64n), `divS128 ${sn} / ${sd}`);
        }
      }
    }
  }
});
