/**
 * The block dispatcher: one wasm function, built once per guest-RAM memory,
 * that runs translated blocks back to back without returning to JavaScript.
 *
 * `run(stateOffset, packed) -> instructions` calls the block described by
 * `packed` (function table index | count << 24 | reads-flags-in << 31, see
 * state-layout.ts) through the shared function table, then follows the RIP
 * the block stored in W_RIP: the vCPU's dispatch table entry for that RIP
 * (S_DISPATCH) names the next block, which runs when the entry's RIP matches
 * and the exec TLB set of the current CPL (W_EX_SET) maps that RIP's page to
 * the block's code page (so an address space switch, an aliased mapping or an
 * evicted TLB entry never runs a block for other code). It returns to
 * JavaScript with the instructions completed after an early exit (W_EXIT),
 * a lookup miss, or when the next block does not fit the batch (W_BUDGET).
 * Before a block that reads the flags written before it, W_FLAGS_IN is
 * computed from the lazy record in W_LAZY (ops ADD..RESULT_CFOF), or taken
 * from its result word when the op is L_NONE (materialized flags), AF
 * included (a rotate block materializes it).
 */

import { L_ADC, L_ADD, L_DEC, L_INC, L_LOGIC, L_SBB, L_SUB, TLB_MASK } from '../arch.js';
import { CodeWriter, emitModule, I32, I64, Op, type MemorySpec } from './wasm-emitter.js';
import {
  DISPATCH_BITS, DISPATCH_SIZE, EXIT_CHAIN, S_DISPATCH, S_TLB_OFF, S_TLB_TAG, S_WORDS,
  W_BUDGET, W_CHAINED, W_EX_SET, W_EXIT, W_FLAGS_BASE, W_FLAGS_IN, W_LAZY, W_RIP,
} from './state-layout.js';

/** Packs a block's dispatch word. */
export function packBlock(tableIndex: number, count: number, readsFlagsIn: boolean): number {
  return tableIndex | (count << 24) | (readsFlagsIn ? 1 << 31 : 0);
}
/** Most function table entries a packed word can name. */
export const MAX_TABLE_INDEX = 1 << 24;

// Locals: 0 = state offset, 1 = packed (params), then:
const ST = 0;
const PACKED = 1;
const DONE = 2; // i32
const BUDGET = 3; // i32
const RIP = 4; // i64
const LO = 5; // i32
const ENTRY = 6; // i32: state offset + dispatch entry
const TLB = 7; // i32: state offset + exec TLB index * 8
const COUNT = 8; // i32
const OP = 9; // i32: lazy op
const MASK = 10; // i64: operand mask
const SH = 11; // i64: sign bit position
const R = 12; // i64
const A = 13; // i64
const B = 14; // i64
const CF = 15; // i32: record CF
const LOCALS = [I32, I32, I64, I32, I32, I32, I32, I32, I64, I64, I64, I64, I64, I32];

const word = (i: number): number => S_WORDS + i * 4;

/** Builds the dispatcher module (imports env.mem and env.tbl, exports run). */
export function buildDispatcher(memory: MemorySpec): Uint8Array {
  const w = new CodeWriter();
  w.get(ST).mem(Op.i32Load, 2, word(W_BUDGET)).set(BUDGET);
  w.loop();
  // Does the block fit the batch?
  w.get(PACKED).i32Const(24).op(Op.i32ShrU).i32Const(0x7f).op(Op.i32And).set(COUNT);
  w.get(DONE).get(COUNT).op(Op.i32Add).get(BUDGET).op(Op.i32GtS).if().get(DONE).op(Op.return).end();
  w.get(ST).get(BUDGET).get(DONE).op(Op.i32Sub).mem(Op.i32Store, 2, word(W_BUDGET));
  w.get(PACKED).i32Const(0).op(Op.i32LtS).if();
  w.get(ST); flagsIn(w); w.mem(Op.i32Store, 2, word(W_FLAGS_IN));
  w.end();
  // Run it.
  w.get(ST).get(ST).get(PACKED).i32Const(0xffffff).op(Op.i32And).callIndirect(1).get(DONE).op(Op.i32Add).set(DONE);
  w.get(ST).get(ST).mem(Op.i32Load, 2, word(W_CHAINED)).i32Const(1).op(Op.i32Add).mem(Op.i32Store, 2, word(W_CHAINED));
  w.get(ST).mem(Op.i32Load, 2, word(W_EXIT)).i32Const(EXIT_CHAIN).op(Op.i32Ne).if().get(DONE).op(Op.return).end();
  // The next block: dispatch entry for W_RIP, checked against the RIP and the exec TLB.
  w.get(ST).mem(Op.i64Load, 3, word(W_RIP)).set(RIP);
  w.get(RIP).op(Op.i32WrapI64).set(LO);
  w.get(LO).get(LO).i32Const(DISPATCH_BITS).op(Op.i32ShrU).op(Op.i32Xor).i32Const(DISPATCH_SIZE - 1).op(Op.i32And)
    .i32Const(4).op(Op.i32Shl).get(ST).op(Op.i32Add).set(ENTRY);
  w.get(ENTRY).mem(Op.i64Load, 3, S_DISPATCH).get(RIP).op(Op.i64Ne).if().get(DONE).op(Op.return).end();
  w.get(LO).i32Const(12).op(Op.i32ShrU).i32Const(TLB_MASK).op(Op.i32And).get(ST).mem(Op.i32Load, 2, word(W_EX_SET)).op(Op.i32Add)
    .i32Const(3).op(Op.i32Shl).get(ST).op(Op.i32Add).set(TLB);
  w.get(TLB).mem(Op.f64Load, 3, S_TLB_TAG).get(RIP).i64Const(~0xfff, -1).op(Op.i64And).op(Op.f64ConvertI64S).op(Op.f64Ne)
    .if().get(DONE).op(Op.return).end();
  w.get(TLB).mem(Op.f64Load, 3, S_TLB_OFF).get(ENTRY).mem(Op.i32Load, 2, S_DISPATCH + 8).op(Op.f64ConvertI32U).op(Op.f64Ne)
    .if().get(DONE).op(Op.return).end();
  w.get(ENTRY).mem(Op.i32Load, 2, S_DISPATCH + 12).set(PACKED);
  w.br(0);
  w.end().op(Op.unreachable);
  return emitModule(memory, {
    params: [I32, I32], results: [I32], locals: LOCALS, body: w, table: true,
    callTypes: [{ params: [I32], results: [I32] }],
  });
}

/** Pushes RFLAGS: CF PF AF ZF SF OF from the lazy record in W_LAZY, the other bits from W_FLAGS_BASE. */
function flagsIn(w: CodeWriter): void {
  const lazy = (i: number): number => word(W_LAZY + i);
  w.get(ST).mem(Op.i32Load, 2, lazy(0)).tee(OP).op(Op.i32Eqz).if(I32);
  // L_NONE: materialized flags in the result word (JS puts RFLAGS there at entry; a rotate block writes them).
  w.get(ST).mem(Op.i32Load, 2, lazy(2));
  w.else();
  // sh = size * 8 - 1; mask = 2^(size * 8) - 1
  w.get(ST).mem(Op.i32Load, 2, lazy(1)).i32Const(3).op(Op.i32Shl).i32Const(1).op(Op.i32Sub).op(Op.i64ExtendI32U).set(SH);
  w.i64Const(2, 0).get(SH).op(Op.i64Shl).i64Const(1, 0).op(Op.i64Sub).set(MASK);
  w.get(ST).mem(Op.i64Load, 2, lazy(2)).get(MASK).op(Op.i64And).set(R);
  w.get(ST).mem(Op.i64Load, 2, lazy(4)).get(MASK).op(Op.i64And).set(A);
  w.get(ST).mem(Op.i64Load, 2, lazy(6)).get(MASK).op(Op.i64And).set(B);
  w.get(ST).mem(Op.i32Load, 2, lazy(8)).set(CF);
  w.get(ST).mem(Op.i32Load, 2, word(W_FLAGS_BASE)).i32Const(~0x8d5).op(Op.i32And);
  // CF
  const isOp = (op: number): void => { w.get(OP).i32Const(op).op(Op.i32Eq); };
  isOp(L_ADD); w.if(I32).get(R).get(A).op(Op.i64LtU).else();
  isOp(L_ADC); w.if(I32).get(R).get(A).op(Op.i64LeU).get(R).get(A).op(Op.i64LtU).get(CF).op(Op.select).else();
  isOp(L_SUB); w.if(I32).get(A).get(B).op(Op.i64LtU).else();
  isOp(L_SBB); w.if(I32).get(A).get(B).op(Op.i64LeU).get(A).get(B).op(Op.i64LtU).get(CF).op(Op.select).else();
  isOp(L_LOGIC); w.if(I32).i32Const(0).else();
  w.get(CF);
  w.end().end().end().end().end();
  w.op(Op.i32Or);
  // PF ZF SF
  w.get(R).op(Op.i32WrapI64).i32Const(0xff).op(Op.i32And).op(Op.i32Popcnt).i32Const(1).op(Op.i32And).i32Const(1).op(Op.i32Xor)
    .i32Const(2).op(Op.i32Shl).op(Op.i32Or);
  w.get(R).op(Op.i64Eqz).i32Const(6).op(Op.i32Shl).op(Op.i32Or);
  w.get(R).get(SH).op(Op.i64ShrU).op(Op.i32WrapI64).i32Const(1).op(Op.i32And).i32Const(7).op(Op.i32Shl).op(Op.i32Or);
  // OF
  w.get(OP).i32Const(L_ADD).op(Op.i32Eq).get(OP).i32Const(L_ADC).op(Op.i32Eq).op(Op.i32Or).if(I32);
  w.get(A).get(R).op(Op.i64Xor).get(B).get(R).op(Op.i64Xor).op(Op.i64And).get(SH).op(Op.i64ShrU).op(Op.i32WrapI64).i32Const(1).op(Op.i32And);
  w.else();
  w.get(OP).i32Const(L_SUB).op(Op.i32Eq).get(OP).i32Const(L_SBB).op(Op.i32Eq).op(Op.i32Or).if(I32);
  w.get(A).get(B).op(Op.i64Xor).get(A).get(R).op(Op.i64Xor).op(Op.i64And).get(SH).op(Op.i64ShrU).op(Op.i32WrapI64).i32Const(1).op(Op.i32And);
  w.else();
  isOp(L_INC); w.if(I32).get(R).i64Const(1, 0).get(SH).op(Op.i64Shl).op(Op.i64Eq).else();
  isOp(L_DEC); w.if(I32).get(R).i64Const(1, 0).get(SH).op(Op.i64Shl).i64Const(1, 0).op(Op.i64Sub).op(Op.i64Eq).else();
  isOp(L_LOGIC); w.if(I32).i32Const(0).else();
  w.get(ST).mem(Op.i32Load, 2, lazy(9));
  w.end().end().end().end().end();
  w.i32Const(11).op(Op.i32Shl).op(Op.i32Or);
  // AF, as Cpu.getAF (a block may materialize it into its record, after a rotate)
  w.get(OP).i32Const(L_INC).op(Op.i32Eq).if(I32);
  w.get(R).op(Op.i32WrapI64).i32Const(0xf).op(Op.i32And).op(Op.i32Eqz);
  w.else();
  w.get(OP).i32Const(L_DEC).op(Op.i32Eq).if(I32);
  w.get(R).op(Op.i32WrapI64).i32Const(0xf).op(Op.i32And).i32Const(0xf).op(Op.i32Eq);
  w.else();
  w.get(OP).i32Const(L_LOGIC).op(Op.i32LtU); // ADD ADC SUB SBB (1-4)
  w.get(A).get(B).op(Op.i64Xor).get(R).op(Op.i64Xor).op(Op.i32WrapI64).i32Const(4).op(Op.i32ShrU).i32Const(1).op(Op.i32And);
  w.op(Op.i32And);
  w.end().end();
  w.i32Const(4).op(Op.i32Shl).op(Op.i32Or);
  w.end();
}
