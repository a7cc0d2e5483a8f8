/**
 * Runs translated blocks for the soft CPU: counts entries per decoded
 * instruction (decode-cache slot), translates a block once its first
 * instruction has been entered `threshold` times (translate.ts), and runs it
 * when the vCPU reaches it again. Translated blocks wait in a queue and are
 * compiled together, BATCH_BLOCKS to a module (or as soon as a queued one is
 * entered `threshold` more times). Blocks hang off the shared CodeCache (same
 * slot and tag as the decoded first instruction), so self-modifying-code
 * invalidation of a page drops its blocks too (CodeCache calls release()).
 *
 * Chaining: every block function sits in one shared WebAssembly.Table, and
 * the vCPU enters blocks through the dispatcher (dispatcher.ts), which runs
 * the block and then the blocks that follow it, as long as each next RIP has
 * an entry in the vCPU's dispatch table that the exec TLB confirms and the
 * batch budget (Cpu.jitLimit) has room. A block is put in the dispatch table
 * when JavaScript enters it (after the usual decode-cache and RIP checks)
 * and taken out when the code cache drops it. At entry the lazy-flag record
 * is handed over in W_LAZY (a record the dispatcher cannot evaluate, of an
 * 8- or 16-bit operation, is materialised into RFLAGS first) and copied
 * back at exit with the RIP (W_RIP) and the instructions completed.
 *
 * Translation is on by default; TYPEVISOR_SOFT_JIT=0 turns it off (the
 * interpreter alone), TYPEVISOR_SOFT_JIT_THRESHOLD
 * sets the entry count (0: translate on first entry); TYPEVISOR_SOFT_JIT_STATS=1
 * prints blocks translated, dispatcher entries and blocks run to stderr at exit.
 */

import { ARITH_FLAGS, L_NONE, TLB_SIZE } from '../arch.js';
import { DC_SIZE, type CodeCache } from '../code-cache.js';
import type { Cpu } from '../cpu.js';
import type { GuestRam } from '../guest-ram.js';
import { buildDispatcher, MAX_TABLE_INDEX, packBlock } from './dispatcher.js';
import { translateBlock, type BlockCode } from './translate.js';
import { emitFunctions, instantiate, instantiateFunctions, newFunctionTable, type FunctionTable } from './wasm-emitter.js';
import {
  DISPATCH_SIZE, dispatchSlot, S_DISPATCH, W_BUDGET, W_CHAINED, W_EX_SET, W_FLAGS_BASE, W_LAZY, W_RD_SET, W_RIP, W_WR_SET,
} from './state-layout.js';

/** A translated block: where its function sits and what the dispatcher needs to know of it. */
export interface JitBlock {
  /** The translator that owns its function table entry. */
  owner: Jit;
  count: number;
  /** RIP after each instruction (rips[0]: the block start). */
  rips: Float64Array;
  target: number;
  readsFlagsIn: boolean;
  writesFlags: boolean;
  /** Function table index, and the dispatch word (index | count << 24 | reads-flags-in << 31). */
  tableIndex: number;
  packed: number;
  /** Low and high halves of rips[0], its dispatch table slot, and the wasm offset of its code page. */
  ripLo: number;
  ripHi: number;
  slot: number;
  codePage: number;
}

/** A translated block waiting for its batch to be compiled. */
interface QueuedBlock {
  code: BlockCode;
  slot: number;
  tag: number;
  /** Wasm offset and RIP of its first instruction. */
  off: number;
  rip: number;
  /** CodeCache.pageGenerations of its page and CodeCache.generation when it was translated. */
  pageGeneration: number;
  generation: number;
}

/**
 * Blocks compiled into one module. Measured here: call_indirect spread over
 * 20,000 one-block modules cost about 3.9 us a call, over 1,000 functions of
 * one module 40 ns (each module is its own mapping of code; the host's
 * nested paging makes touching many of them slow). Also keeps the number of
 * mappings far below vm.max_map_count (65530), which one module per block
 * reaches in a long boot.
 */
const BATCH_BLOCKS = 32;

/** Whether translation is on by default (TYPEVISOR_SOFT_JIT unset). */
export const JIT_DEFAULT_ON = true;
const DEFAULT_THRESHOLD = 2000;
/** A slot whose block could not be translated waits this many entries before trying again. */
const RETRY_DELAY = 1 << 30;
/** Code size index in decode-cache tags for 64-bit code (Cpu.tagBias / 2^32). */
const TAG_BIAS_64 = 2 * 0x1_0000_0000;
const TWO32 = 0x1_0000_0000;
/** Exec TLB set bases (entries) for supervisor and user code (set = ACC_EXEC, 3 + ACC_EXEC). */
const EX_SET_SUPERVISOR = 2 * TLB_SIZE;
const EX_SET_USER = 5 * TLB_SIZE;
/** High half of a RIP no block has (non-canonical): an empty dispatch entry. */
const NO_RIP_HI = 0x80000000 | 0;

export interface JitOptions {
  enabled: boolean;
  threshold: number;
}

/** Options from TYPEVISOR_SOFT_JIT / TYPEVISOR_SOFT_JIT_THRESHOLD. */
export function jitOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): JitOptions {
  const on = env.TYPEVISOR_SOFT_JIT;
  const enabled = on === undefined || on === '' ? JIT_DEFAULT_ON : on !== '0';
  const t = Number(env.TYPEVISOR_SOFT_JIT_THRESHOLD);
  const threshold = env.TYPEVISOR_SOFT_JIT_THRESHOLD !== undefined && Number.isInteger(t) && t >= 0 ? t : DEFAULT_THRESHOLD;
  return { enabled, threshold };
}

export class Jit {
  /** Blocks translated so far (statistics). */
  translated = 0;
  /** Dispatcher entries from JavaScript that ran at least one instruction (statistics). */
  entries = 0;
  /** Blocks run, chained or not (statistics). */
  blocksRun = 0;
  /** Modules compiled, each holding a batch of blocks (statistics). */
  modules = 0;

  private readonly table: FunctionTable = newFunctionTable(1024);
  /** Function table indices of released blocks, for reuse. */
  private readonly freeIndices: number[] = [];
  private nextIndex = 0;
  /** Translated blocks waiting to be compiled together (compileQueue). */
  private readonly queue: QueuedBlock[] = [];
  /** Per decode-cache slot: 1 while a block for it is queued. */
  private readonly queuedSlots = new Uint8Array(DC_SIZE);
  /** Blocks per compiled module: 1 when translating at the first entry (threshold 0), else BATCH_BLOCKS. */
  private readonly batch: number;
  private readonly dispatch: (stateOffset: number, packed: number) => number;
  /** The dispatch tables of the vCPUs that entered blocks through this translator. */
  private readonly dispatchTables: Int32Array[] = [];

  constructor(private readonly code: CodeCache, private readonly ram: GuestRam, readonly threshold: number, batch = threshold === 0 ? 1 : BATCH_BLOCKS) {
    this.batch = batch;
    this.dispatch = instantiate(buildDispatcher({ pages: ram.pages, shared: ram.shared }), ram.wasmMemory, this.table);
    if (process.env.TYPEVISOR_SOFT_JIT_STATS === '1') {
      process.on('exit', () => process.stderr.write(
        `soft jit: ${this.translated} blocks translated in ${this.modules} modules, ${this.entries} block entries, ${this.blocksRun} blocks run\n`));
    }
  }

  /** The shared translator of `code`, creating it when translation is enabled; null when off. */
  static forCache(code: CodeCache, ram: GuestRam, options: JitOptions = jitOptionsFromEnv()): Jit | null {
    if (!options.enabled) return null;
    if (code.jit === null) code.jit = new Jit(code, ram, options.threshold);
    return code.jit;
  }

  /**
   * Called by Cpu.step() when the instruction at wasm offset `off` (slot
   * `slot`, tag `tag`) is in the decode cache. Runs its block (and the
   * blocks chained after it) if there is one and it fits the batch; returns
   * whether any instruction was executed.
   */
  enter(cpu: Cpu, slot: number, tag: number, off: number): boolean {
    const code = this.code;
    if (code.jitTags[slot] === tag) return this.run(cpu, code.jitBlocks[slot] as JitBlock);
    if (++code.jitCounts[slot] <= this.threshold || tag < TAG_BIAS_64) return false;
    if (this.queuedSlots[slot] === 0) {
      // Translate now, compile with the next batch.
      const t = translateBlock(this.ram.bytes, off, cpu.rip);
      if (t === null) { code.jitCounts[slot] = -RETRY_DELAY; return false; }
      this.queue.push({ code: t, slot, tag, off, rip: cpu.rip, pageGeneration: code.pageGenerations[Math.floor(off / 4096)], generation: code.generation });
      this.queuedSlots[slot] = 1;
      code.jitCounts[slot] = 0;
      if (this.queue.length < this.batch) return false;
    }
    // The batch is full, or a queued block was entered `threshold` more times while it waited.
    this.compileQueue();
    return code.jitTags[slot] === tag ? this.run(cpu, code.jitBlocks[slot] as JitBlock) : false;
  }

  /**
   * Compiles the queued blocks into one module (one mapping of compiled code
   * for the whole batch: here, calls spread over thousands of one-block
   * modules cost microseconds each) and puts each into service, unless its
   * code page was dropped (self-modifying code) or the cache flushed since it
   * was translated.
   */
  private compileQueue(): void {
    const code = this.code;
    const live: QueuedBlock[] = [];
    for (const q of this.queue) {
      this.queuedSlots[q.slot] = 0;
      code.jitCounts[q.slot] = -RETRY_DELAY;
      if (q.generation === code.generation && q.pageGeneration === code.pageGenerations[Math.floor(q.off / 4096)]) live.push(q);
    }
    this.queue.length = 0;
    if (live.length === 0) return;
    const names = live.map((_, i) => `b${i}`);
    this.modules++;
    const exports = instantiateFunctions(emitFunctions({ pages: this.ram.pages, shared: this.ram.shared }, live.map((q) => q.code.fn), names), this.ram.wasmMemory);
    for (let i = 0; i < live.length; i++) {
      const q = live[i];
      const block = this.install(q, exports[names[i]]);
      if (block === null) return;
      const old = code.jitBlocks[q.slot];
      if (old !== null) old.owner.release(old);
      code.jitTags[q.slot] = q.tag;
      code.jitBlocks[q.slot] = block;
    }
  }

  /**
   * Takes a block the code cache dropped out of service: out of every
   * dispatch table, its function table entry freed for reuse.
   */
  release(block: JitBlock): void {
    const s = block.slot * 4;
    for (const t of this.dispatchTables) {
      if (t[s + 3] === block.packed && t[s] === block.ripLo && t[s + 1] === block.ripHi) { t[s + 1] = NO_RIP_HI; t[s + 3] = 0; }
    }
    this.table.set(block.tableIndex, null);
    this.freeIndices.push(block.tableIndex);
  }

  /** Gives a compiled block function a function table index; null when the table is full. */
  private install(q: QueuedBlock, fn: unknown): JitBlock | null {
    const index = this.freeIndices.length > 0 ? this.freeIndices.pop() as number : this.nextIndex++;
    if (index >= MAX_TABLE_INDEX) return null;
    if (index >= this.table.length) this.table.grow(this.table.length);
    this.table.set(index, fn);
    this.translated++;
    const t = q.code;
    const ripLo = q.rip % TWO32 | 0;
    return {
      owner: this, count: t.count, rips: t.rips, target: t.target, readsFlagsIn: t.readsFlagsIn, writesFlags: t.writesFlags,
      tableIndex: index, packed: packBlock(index, t.count, t.readsFlagsIn),
      ripLo, ripHi: Math.floor(q.rip / TWO32) | 0, slot: dispatchSlot(ripLo), codePage: q.off - (q.off & 0xfff),
    };
  }

  /** The vCPU's dispatch table, set up (all entries empty) the first time it enters a block of this translator. */
  private attach(cpu: Cpu): Int32Array {
    const t = new Int32Array(this.ram.wasmMemory.buffer, cpu.stateOffset + S_DISPATCH, DISPATCH_SIZE * 4);
    for (let i = 0; i < DISPATCH_SIZE; i++) { t[i * 4] = 0; t[i * 4 + 1] = NO_RIP_HI; t[i * 4 + 2] = 0; t[i * 4 + 3] = 0; }
    this.dispatchTables.push(t);
    cpu.jitDispatch = t;
    cpu.jitDispatchOwner = this;
    return t;
  }

  private run(cpu: Cpu, block: JitBlock): boolean {
    // The same physical code reached at another linear address (aliased mappings) has other RIPs: interpret it.
    if (cpu.rip !== block.rips[0] || cpu.instructions + block.count > cpu.jitLimit) return false;
    const table = cpu.jitDispatchOwner === this ? cpu.jitDispatch as Int32Array : this.attach(cpu);
    const w = cpu.jitWords as Int32Array;
    w[W_RD_SET] = cpu.rdSet;
    w[W_WR_SET] = cpu.wrSet;
    w[W_EX_SET] = cpu.cpl === 3 ? EX_SET_USER : EX_SET_SUPERVISOR;
    w[W_BUDGET] = cpu.jitLimit - cpu.instructions;
    w[W_CHAINED] = 0;
    // An interpreter record of an 8- or 16-bit operation is materialised into RFLAGS first (blocks' own records of
    // every size the dispatcher evaluates).
    if (cpu.lazyOp !== L_NONE && cpu.lazySize !== 4 && cpu.lazySize !== 8) { cpu.flags = cpu.getFlags(); cpu.lazyOp = L_NONE; }
    w[W_FLAGS_BASE] = cpu.flags;
    w[W_LAZY] = cpu.lazyOp; w[W_LAZY + 1] = cpu.lazySize;
    // Materialized flags (L_NONE) travel in the result word: blocks write such a record after a rotate.
    w[W_LAZY + 2] = cpu.lazyOp === L_NONE ? cpu.flags : cpu.lazyRes; w[W_LAZY + 3] = cpu.lazyResHi;
    w[W_LAZY + 4] = cpu.lazyA; w[W_LAZY + 5] = cpu.lazyAHi;
    w[W_LAZY + 6] = cpu.lazyB; w[W_LAZY + 7] = cpu.lazyBHi;
    w[W_LAZY + 8] = cpu.lazyCF; w[W_LAZY + 9] = cpu.lazyOF;
    // This block is the current translation at its RIP: later blocks may chain to it.
    const s = block.slot * 4;
    table[s] = block.ripLo; table[s + 1] = block.ripHi; table[s + 2] = block.codePage; table[s + 3] = block.packed;
    const done = this.dispatch(cpu.stateOffset, block.packed);
    if (done === 0) return false;
    this.entries++;
    this.blocksRun += w[W_CHAINED];
    cpu.rip = w[W_RIP + 1] * TWO32 + (w[W_RIP] >>> 0);
    cpu.instructions += done;
    cpu.lazyOp = w[W_LAZY]; cpu.lazySize = w[W_LAZY + 1];
    cpu.lazyRes = w[W_LAZY + 2]; cpu.lazyResHi = w[W_LAZY + 3];
    cpu.lazyA = w[W_LAZY + 4]; cpu.lazyAHi = w[W_LAZY + 5];
    cpu.lazyB = w[W_LAZY + 6]; cpu.lazyBHi = w[W_LAZY + 7];
    cpu.lazyCF = w[W_LAZY + 8]; cpu.lazyOF = w[W_LAZY + 9];
    if (cpu.lazyOp === L_NONE) cpu.flags = (cpu.flags & ~ARITH_FLAGS) | (cpu.lazyRes & ARITH_FLAGS);
    return true;
  }
}
