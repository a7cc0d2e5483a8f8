/**
 * Known answers for the SSE floating-point core (fp.ts): directed rounding of
 * +,-,*,/,sqrt in float64 and float32 (including operands that need the
 * scaled error computation), overflow and underflow per rounding mode, FTZ,
 * conversions to integers, and the exception flags each case raises.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  OP_ADD, OP_DIV, OP_MUL, OP_SQRT, OP_SUB, arith32, arith64, beginFp, env, f64Bits, bitsHi, intToFloat, round32, toInt,
} from './fp.js';
import { MX_OE, MX_PE, MX_UE, SseState } from './state.js';

const state = new SseState();
function mode(rc: number, extra = 0): void {
  state.mxcsr = 0x1f80 | (rc << 13) | extra;
  beginFp(state);
}
const hex64 = (x: number): string => {
  const lo = f64Bits(x);
  return (bitsHi >>> 0).toString(16).padStart(8, '0') + (lo >>> 0).toString(16).padStart(8, '0');
};

void test('float64 directed rounding: 1/3, -1/3, sqrt(2), 0.1 + 0.2 in all four modes', () => {
  const cases: Array<[number, number, number, string[]]> = [
    [OP_DIV, 1, 3, ['3fd5555555555555', '3fd5555555555555', '3fd5555555555556', '3fd5555555555555']],
    [OP_DIV, -1, 3, ['bfd5555555555555', 'bfd5555555555556', 'bfd5555555555555', 'bfd5555555555555']],
    [OP_SQRT, 2, 0, ['3ff6a09e667f3bcd', '3ff6a09e667f3bcc', '3ff6a09e667f3bcd', '3ff6a09e667f3bcc']],
    [OP_ADD, 0.1, 0.2, ['3fd3333333333334', '3fd3333333333333', '3fd3333333333334', '3fd3333333333333']],
    [OP_MUL, 1 + 2 ** -52, 1 + 2 ** -52, ['3ff0000000000002', '3ff0000000000002', '3ff0000000000003', '3ff0000000000002']],
    // Operands outside Dekker's safe range: the scaled path.
    [OP_MUL, 3 * 2 ** 1000, (1 + 2 ** -52) * 2 ** -1000, ['4008000000000002', '4008000000000001', '4008000000000002', '4008000000000001']],
  ];
  for (const [op, x, y, want] of cases) {
    for (let rc = 0; rc < 4; rc++) {
      mode(rc);
      assert.equal(hex64(arith64(op, x, y)), want[rc], `op ${op} (${x}, ${y}) rc ${rc}`);
      assert.equal(env.flags, MX_PE, 'inexact only');
    }
  }
  mode(0);
  assert.equal(arith64(OP_SUB, 1.5, 0.5), 1);
  assert.equal(env.flags, 0, 'exact: no flags');
  mode(1);
  assert.ok(Object.is(arith64(OP_SUB, 1.5, 1.5), -0), 'x - x = -0 when rounding down');
  mode(0);
  assert.ok(Object.is(arith64(OP_SUB, 1.5, 1.5), 0));
});

void test('overflow and underflow per rounding mode; FTZ', () => {
  const max = Number.MAX_VALUE;
  const want = [Infinity, max, Infinity, max];
  for (let rc = 0; rc < 4; rc++) {
    mode(rc);
    assert.equal(arith64(OP_MUL, max, 2), want[rc], `rc ${rc}`);
    assert.equal(env.flags, MX_OE | MX_PE);
  }
  mode(0);
  assert.equal(arith64(OP_MUL, 2 ** -1022, 2 ** -30), 2 ** -1052, 'exact denormal result');
  assert.equal(env.flags, 0, 'exact tiny results do not raise UE when UM is masked');
  mode(0);
  assert.equal(arith64(OP_MUL, 2 ** -1022, 1 / 3), 2 ** -1022 / 3);
  assert.equal(env.flags, MX_UE | MX_PE);
  mode(0, 1 << 15);
  assert.equal(arith64(OP_MUL, 2 ** -1022, 1 / 3), 0, 'FTZ');
  assert.equal(env.flags, MX_UE | MX_PE);
  mode(2);
  assert.equal(arith64(OP_MUL, 2 ** -1000, 2 ** -1000), 5e-324, 'round up from a vanishing product');
  mode(3);
  assert.equal(arith32(OP_MUL, 3e38, 10), 3.4028234663852886e38, 'float32 overflow toward zero gives FLT_MAX');
  mode(0);
  assert.equal(arith32(OP_MUL, 3e38, 10), Infinity);
  assert.equal(env.flags, MX_OE | MX_PE);
});

void test('float32 rounding through float64 (double rounding is exact) and directed modes', () => {
  // 1/3 in float32 is 0x3eaaaaab under nearest and up, 0x3eaaaaaa under down and toward zero.
  const third = [0.3333333432674408, 0.3333333134651184, 0.3333333432674408, 0.3333333134651184];
  for (let rc = 0; rc < 4; rc++) {
    mode(rc);
    assert.equal(arith32(OP_DIV, 1, 3), third[rc], `rc ${rc}`);
    assert.equal(arith32(OP_DIV, -1, 3), -third[rc ^ (rc === 1 || rc === 2 ? 3 : 0)], `-1/3 rc ${rc}`);
  }
  mode(0);
  assert.equal(arith32(OP_ADD, 16777216, 1), 16777216, 'ties to even');
  mode(2);
  assert.equal(arith32(OP_ADD, 16777216, 1), 16777218);
  mode(1);
  assert.equal(round32(0.1, 0), 0.09999999403953552, 'CVTSD2SS rounds down');
});

void test('conversions: integer indefinite, rounding of CVTSx2SI, 64-bit integers to float', () => {
  mode(0);
  assert.equal(toInt(2.5, 32, false), 2);
  assert.equal(toInt(3.5, 32, false), 4);
  assert.equal(env.flags, MX_PE);
  assert.equal(toInt(-2.7, 32, true), -2, 'truncation');
  mode(0);
  assert.ok(Number.isNaN(toInt(2 ** 31, 32, false)), 'out of range');
  assert.equal(env.flags & 1, 1, 'IE');
  mode(0);
  assert.equal(toInt(-(2 ** 31), 32, false), -(2 ** 31));
  assert.equal(toInt(-(2 ** 63), 64, false), -(2 ** 63));
  assert.ok(Number.isNaN(toInt(2 ** 63, 64, false)));
  mode(1);
  assert.equal(toInt(-0.5, 32, false), -1, 'round down');
  mode(0);
  // 2^63 - 1 as (lo, hi): nearest is 2^63; toward zero is the float below.
  assert.equal(intToFloat(-1, 0x7fffffff, false), 2 ** 63);
  mode(3);
  assert.equal(intToFloat(-1, 0x7fffffff, false), 2 ** 63 - 1024);
  assert.equal(intToFloat(-1, 0x7fffffff, true), 2 ** 63 - 2 ** 39);
});
