/**
 * Runs translated blocks for the soft CPU: counts entries per decoded
 * instruction (decode-cache slot), translates a block once its first
 * instruction has been entered `threshold` times (translate.ts), and runs it
 * when the vCPU reaches it again. Blocks hang off the shared CodeCache (same
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
 * Translation is off by default until a regression is fixed: the Debian rootfs boot (systemd, many processes) ran far slower with it than interpreted (same host, side by side). TYPEVISOR_SOFT_JIT=1 turns it on; TYPEVISOR_SOFT_JIT_THRESHOLD
 * sets the entry count (0: translate on first entry); TYPEVISOR_SOFT_JIT_STATS=1
 * prints blocks translated, dispatcher entries and blocks run to stderr at exit.
 */

import { L_NONE, TLB_SIZE } from '../arch.js';
import type { CodeCache } from '../code-cache.js';
import type { Cpu } from '../cpu.js';
import type { GuestRam } from '../guest-ram.js';
import { buildDispatcher, MAX_TABLE_INDEX, packBlock } from './dispatcher.js';
import { translateBlock } from './translate.js';
import { instantiate, newFunctionTable, type FunctionTable } from './wasm-emitter.js';
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

/** Whether translation is on by default (TYPEVISOR_SOFT_JIT unset). */
export const JIT_DEFAULT_ON = false;
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

  private readonly table: FunctionTable = newFunctionTable(1024);
  /** Function table indices of released blocks, for reuse. */
  private readonly freeIndices: number[] = [];
  private nextIndex = 0;
  private readonly dispatch: (stateOffset: number, packed: number) => number;
  /** The dispatch tables of the vCPUs that entered blocks through this translator. */
  private readonly dispatchTables: Int32Array[] = [];

  constructor(private readonly code: CodeCache, private readonly ram: GuestRam, readonly threshold: number) {
    this.dispatch = instantiate(buildDispatcher({ pages: ram.pages, shared: ram.shared }), ram.wasmMemory, this.table);
    if (process.env.TYPEVISOR_SOFT_JIT_STATS === '1') {
      process.on('exit', () => process.stderr.write(
        `soft jit: ${this.translated} blocks translated, ${this.entries} block entries, ${this.blocksRun} blocks run\n`));
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
    code.jitCounts[slot] = -RETRY_DELAY;
    const block = this.translate(off, cpu.rip);
    if (block === null) return false;
    const old = code.jitBlocks[slot];
    if (old !== null) old.owner.release(old);
    code.jitTags[slot] = tag;
    code.jitBlocks[slot] = block;
    return this.run(cpu, block);
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

  private translate(off: number, rip: number): JitBlock | null {
    const ram = this.ram;
    const t = translateBlock(ram.bytes, off, rip, { pages: ram.pages, shared: ram.shared });
    if (t === null) return null;
    const index = this.freeIndices.length > 0 ? this.freeIndices.pop() as number : this.nextIndex++;
    if (index >= MAX_TABLE_INDEX) return null;
    if (index >= this.table.length) this.table.grow(this.table.length);
    this.table.set(index, instantiate(t.bytes, ram.wasmMemory));
    this.translated++;
    const ripLo = rip % TWO32 | 0;
    return {
      owner: this, count: t.count, rips: t.rips, target: t.target, readsFlagsIn: t.readsFlagsIn, writesFlags: t.writesFlags,
      tableIndex: index, packed: packBlock(index, t.count, t.readsFlagsIn),
      ripLo, ripHi: Math.floor(rip / TWO32) | 0, slot: dispatchSlot(ripLo), codePage: off - (off & 0xfff),
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
    // The dispatcher evaluates records of 32- and 64-bit operations only.
    if (cpu.lazyOp !== L_NONE && cpu.lazySize !== 4 && cpu.lazySize !== 8) { cpu.flags = cpu.getFlags(); cpu.lazyOp = L_NONE; }
    w[W_FLAGS_BASE] = cpu.flags;
    w[W_LAZY] = cpu.lazyOp; w[W_LAZY + 1] = cpu.lazySize;
    w[W_LAZY + 2] = cpu.lazyRes; w[W_LAZY + 3] = cpu.lazyResHi;
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
    return true;
  }
}
