/**
 * Byte layout of one vCPU's state area in the guest-RAM WebAssembly.Memory
 * (after RAM, never guest-visible; see GuestRam.cpuAreaOffset). The
 * interpreter's register and TLB typed arrays are views of it; translated
 * blocks load and store the same bytes.
 */

import { TLB_SIZE } from '../arch.js';

/** Int32Array(16): low halves of the 16 GPRs. */
export const S_LO = 0;
/** Int32Array(16): high halves. */
export const S_HI = 64;
/** Int32 words handed between JS and a block on entry/exit. */
export const S_WORDS = 128;
/** Word indices inside S_WORDS (Int32Array view starting there). */
export const W_RD_SET = 0; // TLB set base (entries) for reads at the current CPL
export const W_WR_SET = 1; // ... for writes
export const W_FLAGS_IN = 2; // RFLAGS at block entry (when the block reads flags written before it)
export const W_LAZY = 3; // 10 words: op, size, res, resHi, a, aHi, b, bHi, cf, of
export const W_BUDGET = 13; // instructions the batch still allows (a self-looping block iterates within it)
export const W_EXIT = 14; // set by the block: EXIT_CHAIN or EXIT_EARLY
export const W_RIP = 16; // 2 words (i64): set by the block, the RIP the vCPU continues at
export const W_EX_SET = 18; // exec TLB set base (entries) at the current CPL (the dispatcher's chaining check)
export const W_FLAGS_BASE = 19; // RFLAGS at dispatcher entry: its non-arithmetic bits (arithmetic ones come from W_LAZY; for L_NONE its result word)
export const W_CHAINED = 20; // blocks run by the dispatcher (statistics; JS resets it)
export const W_COUNT = 32;
/** W_EXIT values: the block ended (at its end or a branch; another block may follow at W_RIP)... */
export const EXIT_CHAIN = 0;
/** ... or stopped before an instruction it cannot do on the fast path (the interpreter must run it). */
export const EXIT_EARLY = 1;
/** Float64Array(8): segment bases by segment register (Cpu.segBase is this view); blocks add FS/GS bases. */
export const S_SEG_BASE = 256;
/**
 * TLB sets the area has room for: the CPU uses 6 (supervisor/user ×
 * read/write/exec); 8 leaves room for two more (e.g. SMAP with AC set).
 */
export const TLB_SET_CAPACITY = 8;
/** Float64Array(sets * TLB_SIZE): TLB tags (linear page bases). */
export const S_TLB_TAG = 4096;
/** Float64Array(sets * TLB_SIZE): TLB wasm offsets (-1 = not RAM). */
export const S_TLB_OFF = S_TLB_TAG + TLB_SET_CAPACITY * TLB_SIZE * 8;
/**
 * The dispatcher's direct-mapped block table (jit/dispatcher.ts), per vCPU:
 * DISPATCH_SIZE entries of 16 bytes, indexed by dispatchSlot(low 32 bits of
 * the block's RIP): i64 RIP, i32 wasm offset of the code page, i32 packed
 * (function table index | instruction count << 24 | reads-flags-in << 31).
 */
export const S_DISPATCH = S_TLB_OFF + TLB_SET_CAPACITY * TLB_SIZE * 8;
export const DISPATCH_BITS = 16;
export const DISPATCH_SIZE = 1 << DISPATCH_BITS;
export const DISPATCH_STRIDE = 16;
export const S_END = S_DISPATCH + DISPATCH_SIZE * DISPATCH_STRIDE;

/** The dispatch table entry for a RIP whose low 32 bits are `ripLo`. */
export function dispatchSlot(ripLo: number): number {
  return (ripLo ^ (ripLo >>> DISPATCH_BITS)) & (DISPATCH_SIZE - 1);
}
