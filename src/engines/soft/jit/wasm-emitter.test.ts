/**
 * Tests for the wasm emitter: modules built from it are instantiated against
 * a real memory and run (arithmetic, locals, loops, loads/stores, constants).
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CodeWriter, emitModule, F64, I32, I64, instantiate, Op } from './wasm-emitter.js';

const WasmMemory = (globalThis as unknown as { WebAssembly: { Memory: new (d: { initial: number; maximum?: number; shared?: boolean }) => { buffer: ArrayBuffer } } }).WebAssembly.Memory;

test('i32 add of two params', () => {
  const mem = new WasmMemory({ initial: 1, maximum: 1 });
  const w = new CodeWriter().get(0).get(1).op(Op.i32Add);
  const run = instantiate(emitModule({ pages: 1, shared: false }, { params: [I32, I32], results: [I32], locals: [], body: w }), mem);
  assert.equal(run(40, 2), 42);
  assert.equal(run(0x7fffffff, 1), -0x80000000);
});

test('loop with br_if sums 1..n in an i64 local and stores it', () => {
  const mem = new WasmMemory({ initial: 1, maximum: 1, shared: true });
  // locals: 0 = n (param), 1 = i (i32), 2 = sum (i64), 3 = scratch f64 (unused, checks grouping)
  const w = new CodeWriter()
    .loop()
    .get(2).get(0).op(Op.i64ExtendI32U).op(Op.i64Add).set(2)
    .get(0).i32Const(1).op(Op.i32Sub).tee(0)
    .brIf(0)
    .end()
    .i32Const(0).get(2).mem(Op.i64Store, 3, 16)
    .i32Const(0).mem(Op.i32Load, 2, 16);
  const run = instantiate(emitModule({ pages: 1, shared: true }, { params: [I32], results: [I32], locals: [I32, I64, F64], body: w }), mem);
  assert.equal(run(100), 5050);
  const dv = new DataView(mem.buffer);
  assert.equal(dv.getUint32(16, true), 5050);
  assert.equal(dv.getUint32(20, true), 0);
});

test('i64 constants of every size round-trip through memory', () => {
  const mem = new WasmMemory({ initial: 1, maximum: 1 });
  const values: Array<[number, number]> = [[0, 0], [-1, -1], [0x12345678, 0x9abcdef0 | 0], [0x80000000 | 0, 0x7fffffff], [63, 0], [64, 0], [-64, -1], [-65, -1],
    [0, 0x80000000 | 0], [-1, 0x7fffffff], [0x80000000 | 0, -1], [0x7fffffff, 0], [0x80000000 | 0, 0], [0, 1], [0, -1], [-1, 0], [0x2000, 0], [-0x2000, -1], [0x1fff, 0], [-0x2001, -1]];
  for (const [lo, hi] of values) {
    const w = new CodeWriter().i32Const(8).i64Const(lo, hi).mem(Op.i64Store, 3, 0).i32Const(0);
    instantiate(emitModule({ pages: 1, shared: false }, { params: [], results: [I32], locals: [], body: w }), mem)();
    const dv = new DataView(mem.buffer);
    assert.equal(dv.getInt32(8, true), lo);
    assert.equal(dv.getInt32(12, true), hi);
  }
});

test('i32 constants of every size round-trip through memory', () => {
  const mem = new WasmMemory({ initial: 1, maximum: 1 });
  for (const v of [0, 1, -1, 63, 64, -64, -65, 0x1fff, 0x2000, -0x2001, 0x7fffffff, -0x80000000, 0x12345678, -0x12345678, 0xfffff, 0x100000]) {
    const w = new CodeWriter().i32Const(4).i32Const(v).mem(Op.i32Store, 2, 0).i32Const(4).mem(Op.i32Load, 2, 0);
    assert.equal(instantiate(emitModule({ pages: 1, shared: false }, { params: [], results: [I32], locals: [], body: w }), mem)(), v);
  }
});

test('if/else and early return', () => {
  const mem = new WasmMemory({ initial: 1, maximum: 1 });
  const w = new CodeWriter()
    .get(0).i32Const(10).op(Op.i32LtS)
    .if().i32Const(-1).op(Op.return).end()
    .get(0).i32Const(2).op(Op.i32Mul);
  const run = instantiate(emitModule({ pages: 1, shared: false }, { params: [I32], results: [I32], locals: [], body: w }), mem);
  assert.equal(run(3), -1);
  assert.equal(run(30), 60);
});
