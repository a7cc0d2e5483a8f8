/**
 * Tests for the extended-precision softfloat core: random operands checked
 * against an exact BigInt reference (test code only) for correct rounding in
 * every rounding mode and precision, plus known answers for special cases.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  add, compare, div, EX_IE, EX_OE, EX_PE, EX_UE, EX_ZE, FloatEnv, fromF32, fromF64, fromInt64, mul, remainder, roundToIntegral,
  sqrt, toFloat, toInt,
} from './softfloat.js';

const BIAS = 16383n;

// ---- A tiny deterministic PRNG ----
let seed = 0x12345678;
function rnd32(): number {
  seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5;
  return seed >>> 0;
}

interface Ext { se: number; hi: number; lo: number }

function toBig(x: Ext): { sign: number; m: bigint; e: bigint } {
  const sig = (BigInt(x.hi >>> 0) << 32n) | BigInt(x.lo >>> 0);
  const be = BigInt(x.se & 0x7fff);
  return { sign: x.se >>> 15, m: sig, e: (be === 0n ? 1n : be) - BIAS - 63n };
}

function randomExt(expLo: number, expHi: number, denormals: boolean): Ext {
  const sign = rnd32() & 1;
  let hi = rnd32(); let lo = rnd32();
  // Sometimes sparse significands (exact cases, ties).
  const kind = rnd32() % 4;
  if (kind === 0) lo = 0;
  if (kind === 1) { lo = 0; hi &= 0xfff00000; }
  let e = expLo + (rnd32() % (expHi - expLo + 1));
  if (denormals && rnd32() % 8 === 0) e = 0;
  hi = e === 0 ? hi >>> 1 : (hi | 0x80000000) >>> 0;
  return { se: (sign << 15) | e, hi, lo };
}

interface Ref { se: number; hi: number; lo: number; flags: number; up: number }

/** Rounds the exact value sign × num / den (num, den > 0) like the x87 does. */
function roundRef(sign: number, num: bigint, den: bigint, rc: number, prec: number): Ref {
  // Exponent: 2^e ≤ num/den < 2^(e+1).
  let e = BigInt(num.toString(2).length - den.toString(2).length);
  const ge = (ee: bigint): boolean => ee >= 0n ? num >= den << ee : num << -ee >= den;
  if (!ge(e)) e -= 1n;
  if (ge(e + 1n)) e += 1n;
  const emin = 1n - BIAS;
  const tiny = e < emin;
  const qexp = tiny ? emin - BigInt(prec) + 1n : e - BigInt(prec) + 1n;
  // q = num / (den × 2^qexp)
  let qn = num; let qd = den;
  if (qexp >= 0n) qd <<= qexp; else qn <<= -qexp;
  let n = qn / qd;
  const rem = qn - n * qd;
  const inexact = rem !== 0n;
  let up = false;
  if (inexact) {
    if (rc === 0) up = rem * 2n > qd || (rem * 2n === qd && (n & 1n) === 1n);
    else if (rc === 1) up = sign === 1;
    else if (rc === 2) up = sign === 0;
  }
  if (up) n += 1n;
  let flags = inexact ? EX_PE : 0;
  if (tiny && inexact) flags |= EX_UE;
  // Value = n × 2^qexp; normalise into the 64-bit significand.
  if (n === 0n) return { se: sign << 15, hi: 0, lo: 0, flags, up: 0 };
  let bits = BigInt(n.toString(2).length);
  const exp = qexp + bits - 1n; // unbiased exponent of the top bit
  if (exp > 0x7ffen - BIAS) {
    flags |= EX_OE | EX_PE;
    const toInf = rc === 0 || (rc === 2 && sign === 0) || (rc === 1 && sign === 1);
    if (toInf) return { se: (sign << 15) | 0x7fff, hi: 0x80000000, lo: 0, flags, up: 1 };
    const maxSig = ((1n << BigInt(prec)) - 1n) << BigInt(64 - prec);
    return { se: (sign << 15) | 0x7ffe, hi: Number(maxSig >> 32n), lo: Number(maxSig & 0xffffffffn), flags, up: 0 };
  }
  let sig: bigint; let be: bigint;
  if (exp < emin) {
    // Denormal: significand = value / 2^(emin - 63).
    sig = n << (qexp - (emin - 63n));
    be = 0n;
  } else {
    sig = bits <= 64n ? n << (64n - bits) : n >> (bits - 64n);
    be = exp + BIAS;
  }
  bits = 0n;
  return { se: (sign << 15) | Number(be), hi: Number(sig >> 32n), lo: Number(sig & 0xffffffffn), flags, up: up ? 1 : 0 };
}

function ratio(x: { m: bigint; e: bigint }): [bigint, bigint] {
  return x.e >= 0n ? [x.m << x.e, 1n] : [x.m, 1n << -x.e];
}

function hex(r: { se: number; hi: number; lo: number }): string {
  return `${(r.se & 0xffff).toString(16).padStart(4, '0')}:${(r.hi >>> 0).toString(16).padStart(8, '0')}${(r.lo >>> 0).toString(16).padStart(8, '0')}`;
}

function check(env: FloatEnv, ref: Ref, what: string): void {
  const got = hex(env);
  const want = hex(ref);
  assert.equal(got, want, `${what}: result`);
  assert.equal(env.flags & (EX_PE | EX_UE | EX_OE), ref.flags, `${what}: flags`);
  if ((ref.flags & EX_PE) !== 0) assert.equal(env.roundedUp, ref.up, `${what}: C1`);
}

type Op = 'add' | 'sub' | 'mul' | 'div' | 'sqrt';

function exact(op: Op, a: Ext, b: Ext): { sign: number; num: bigint; den: bigint } | null {
  const A = toBig(a); const B = toBig(b);
  const [an, ad] = ratio(A); const [bn, bd] = ratio(B);
  const sa = A.sign === 1 ? -1n : 1n; const sb = B.sign === 1 ? -1n : 1n;
  let num: bigint; let den: bigint;
  switch (op) {
    case 'add': num = sa * an * bd + sb * bn * ad; den = ad * bd; break;
    case 'sub': num = sa * an * bd - sb * bn * ad; den = ad * bd; break;
    case 'mul': num = sa * sb * an * bn; den = ad * bd; break;
    case 'div': num = sa * sb * an * bd; den = ad * bn; break;
    default: {
      // sqrt: floor(sqrt(x × 4^k)) with a sticky bit is exact enough when k is large (200 extra bits).
      if (A.sign === 1) return null;
      const k = BigInt(Math.max(200, ((ad.toString(2).length - an.toString(2).length) >> 1) + 200));
      let x = an << (2n * k);
      x /= ad;
      let r = 1n << BigInt((x.toString(2).length >> 1) + 1);
      // Newton to convergence.
      for (;;) { const nr = (r + x / r) >> 1n; if (nr >= r) break; r = nr; }
      while (r * r > x) r -= 1n;
      while ((r + 1n) * (r + 1n) <= x) r += 1n;
      const inexact = r * r !== x || x * ad !== an << (2n * k);
      // value = (r + tiny) / 2^k: make the sticky visible by 2r+1 over 2^(k+1).
      return inexact ? { sign: 0, num: 2n * r + 1n, den: 1n << (k + 1n) } : { sign: 0, num: r, den: 1n << k };
    }
  }
  if (num === 0n) return { sign: -1, num, den };
  return { sign: num < 0n ? 1 : 0, num: num < 0n ? -num : num, den };
}

function runRandom(op: Op, count: number, expLo: number, expHi: number): void {
  const env = new FloatEnv();
  for (let i = 0; i < count; i++) {
    const a = randomExt(expLo, expHi, true);
    const b = op === 'sqrt' ? a : randomExt(expLo, expHi, true);
    if (op === 'sqrt') a.se &= 0x7fff;
    if ((b.se & 0x7fff) === 0 && b.hi === 0 && b.lo === 0) continue;
    const ex = exact(op, a, b);
    if (ex === null || ex.num === 0n) continue;
    for (const prec of [24, 53, 64]) {
      for (let rc = 0; rc < 4; rc++) {
        env.rc = rc; env.prec = prec; env.flags = 0; env.masks = 0x3f;
        switch (op) {
          case 'add': add(env, a.se, a.hi, a.lo, b.se, b.hi, b.lo, false); break;
          case 'sub': add(env, a.se, a.hi, a.lo, b.se, b.hi, b.lo, true); break;
          case 'mul': mul(env, a.se, a.hi, a.lo, b.se, b.hi, b.lo); break;
          case 'div': div(env, a.se, a.hi, a.lo, b.se, b.hi, b.lo); break;
          default: sqrt(env, a.se, a.hi, a.lo); break;
        }
        const ref = roundRef(ex.sign, ex.num, ex.den, rc, prec);
        check(env, ref, `${op} ${hex(a)} ${hex(b)} rc=${rc} pc=${prec}`);
      }
    }
  }
}

describe('softfloat: correctly rounded against an exact reference', () => {
  for (const op of ['add', 'sub', 'mul', 'div', 'sqrt'] as const) {
    it(`${op}: normal range, every rounding mode and precision`, () => runRandom(op, 400, 16383 - 70, 16383 + 70));
    it(`${op}: near underflow and overflow`, () => {
      runRandom(op, 150, 1, 120);
      if (op !== 'sqrt') runRandom(op, 150, 0x7ffe - 40, 0x7ffe);
      if (op === 'mul' || op === 'div') runRandom(op, 150, 8000, 8400);
    });
  }
});

describe('softfloat: special cases', () => {
  const env = new FloatEnv();
  const reset = (): void => { env.flags = 0; env.rc = 0; env.prec = 64; env.masks = 0x3f; };
  it('inf - inf and 0 × inf give the real indefinite with IE', () => {
    reset();
    add(env, 0x7fff, 0x80000000, 0, 0x7fff, 0x80000000, 0, true);
    assert.equal(hex(env), 'ffff:c000000000000000');
    assert.equal(env.flags & EX_IE, EX_IE);
    reset();
    mul(env, 0, 0, 0, 0xffff, 0x80000000, 0);
    assert.equal(hex(env), 'ffff:c000000000000000');
  });
  it('x / 0 raises ZE and gives a signed infinity', () => {
    reset();
    div(env, 0x3fff, 0x80000000, 0, 0x8000, 0, 0);
    assert.equal(hex(env), 'ffff:8000000000000000');
    assert.equal(env.flags, EX_ZE);
  });
  it('SNaN operands raise IE and are quieted; the larger significand wins', () => {
    reset();
    add(env, 0x7fff, 0xa0000000, 5, 0x7fff, 0xc0000000, 1, false);
    assert.equal(hex(env), '7fff:e000000000000005');
    assert.equal(env.flags & EX_IE, EX_IE);
  });
  it('x - x is +0 except when rounding down', () => {
    reset();
    add(env, 0x4000, 0x90000000, 0, 0x4000, 0x90000000, 0, true);
    assert.equal(hex(env), '0000:0000000000000000');
    env.rc = 1;
    add(env, 0x4000, 0x90000000, 0, 0x4000, 0x90000000, 0, true);
    assert.equal(hex(env), '8000:0000000000000000');
  });
  it('sqrt(-1) is invalid, sqrt(-0) is -0', () => {
    reset();
    sqrt(env, 0xbfff, 0x80000000, 0);
    assert.equal(hex(env), 'ffff:c000000000000000');
    sqrt(env, 0x8000, 0, 0);
    assert.equal(hex(env), '8000:0000000000000000');
  });
  it('integer and float conversions round trip and round', () => {
    reset();
    fromInt64(env, -5, -1);
    assert.equal(hex(env), 'c001:a000000000000000');
    toInt(env, env.se, env.hi, env.lo, 32, false);
    assert.equal(env.iLo, -5);
    fromInt64(env, 0, 0x80000000 | 0);
    assert.equal(hex(env), 'c03e:8000000000000000');
    // 2.5 → 2 (nearest even), 3 (up), 2 (chop)
    const f = new FloatEnv();
    fromF64(f, 0, 0x40040000);
    assert.equal(hex(f), '4000:a000000000000000');
    env.rc = 0; toInt(env, f.se, f.hi, f.lo, 16, false); assert.equal(env.iLo, 2);
    env.rc = 2; toInt(env, f.se, f.hi, f.lo, 16, false); assert.equal(env.iLo, 3);
    toInt(env, f.se, f.hi, f.lo, 16, true); assert.equal(env.iLo, 2);
    // 40000 does not fit in int16.
    fromInt64(f, 40000, 0);
    env.flags = 0;
    assert.equal(toInt(env, f.se, f.hi, f.lo, 16, false), false);
    assert.equal(env.iLo, 0x8000);
    assert.equal(env.flags & EX_IE, EX_IE);
    // float round trips
    fromF32(f, 0x3fc00000); // 1.5
    assert.equal(hex(f), '3fff:c000000000000000');
    fromF32(f, 1); // smallest single denormal 2^-149
    toFloat(env, f.se, f.hi, f.lo, 32);
    assert.equal(env.iLo, 1);
    fromF64(f, 1, 0);
    toFloat(env, f.se, f.hi, f.lo, 64);
    assert.deepEqual([env.iLo, env.iHi], [1, 0]);
    // 1/3 to single, nearest: 0x3eaaaaab
    div(env, 0x3fff, 0x80000000, 0, 0x4000, 0xc0000000, 0);
    toFloat(env, env.se, env.hi, env.lo, 32);
    assert.equal(env.iLo >>> 0, 0x3eaaaaab);
  });
  it('FRNDINT rounds by RC', () => {
    reset();
    const f = new FloatEnv();
    fromF64(f, 0, 0xc0040000 | 0); // -2.5
    env.rc = 0; roundToIntegral(env, f.se, f.hi, f.lo); assert.equal(hex(env), 'c000:8000000000000000');
    env.rc = 1; roundToIntegral(env, f.se, f.hi, f.lo); assert.equal(hex(env), 'c000:c000000000000000');
  });
  it('compare orders values and reports unordered', () => {
    reset();
    assert.equal(compare(env, 0x3fff, 0x80000000, 0, 0x4000, 0x80000000, 0, false), 1);
    assert.equal(compare(env, 0x4000, 0x80000000, 0, 0xc000, 0x80000000, 0, false), 0);
    assert.equal(compare(env, 0x0000, 0, 0, 0x8000, 0, 0, false), 2);
    assert.equal(compare(env, 0x7fff, 0xc0000000, 0, 0, 0, 0, true), 3);
    assert.equal(env.flags & EX_IE, 0);
    assert.equal(compare(env, 0x7fff, 0xc0000000, 0, 0, 0, 0, false), 3);
    assert.equal(env.flags & EX_IE, EX_IE);
  });
  it('FPREM/FPREM1 remainders are exact with the quotient bits', () => {
    reset();
    const a = new FloatEnv(); const b = new FloatEnv();
    for (let i = 0; i < 300; i++) {
      const x = BigInt(rnd32() % 100000 + 1); const y = BigInt(rnd32() % 300 + 1);
      fromInt64(a, Number(x), 0); fromInt64(b, Number(y), 0);
      for (const nearest of [false, true]) {
        const q = remainder(env, a.se, a.hi, a.lo, b.se, b.hi, b.lo, nearest);
        let qq = x / y; let r = x - qq * y;
        if (nearest && (2n * r > y || (2n * r === y && (qq & 1n) === 1n))) { qq += 1n; r -= y; }
        const e2 = new FloatEnv();
        toInt(e2, env.se, env.hi, env.lo, 32, true);
        assert.equal(e2.iLo, Number(r), `${x} rem ${y} nearest=${nearest}`);
        assert.equal(q & 7, Number(qq & 7n));
      }
    }
  });
});

describe('softfloat: unmasked overflow and underflow deliver the bias-adjusted result', () => {
  it('OE unmasked: exponent wrapped down by 24576; UE unmasked: up by 24576', () => {
    const env = new FloatEnv();
    env.masks = 0x3f & ~EX_OE;
    mul(env, 0x7000, 0x80000000, 0, 0x7000, 0x80000000, 0); // 2^(2×12289) overflows
    assert.equal(env.flags & EX_OE, EX_OE);
    assert.equal(env.se, 0x7000 + 0x7000 - 16383 - 24576);
    env.flags = 0;
    env.masks = 0x3f & ~EX_UE;
    mul(env, 0x0100, 0x80000000, 0, 0x0100, 0x80000000, 0);
    assert.equal(env.flags & EX_UE, EX_UE);
    assert.equal(env.se, 0x100 + 0x100 - 16383 + 24576);
  });
});
