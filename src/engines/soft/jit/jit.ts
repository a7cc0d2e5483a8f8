/**
 * Runs translated blocks for the soft CPU: counts entries per decoded
 * instruction (decode-cache slot), translates a block once its first
 * instruction has been entered `threshold` times (translate.ts), and runs it
 * when the vCPU reaches it again. Blocks hang off the shared CodeCache (same
 * slot and tag as the decoded first instruction), so self-modifying-code
 * invalidation of a page drops its blocks too.
 *
 * Translation is off by default until a regression is fixed: the Debian rootfs boot (systemd, many processes) ran far slower with it than interpreted (same host, side by side). TYPEVISOR_SOFT_JIT=1 turns it on; TYPEVISOR_SOFT_JIT_THRESHOLD
 * sets the entry count (0: translate on first entry); TYPEVISOR_SOFT_JIT_STATS=1
 * prints blocks translated and entries to stderr at exit.
 */

import type { CodeCache } from '../code-cache.js';
import type { Cpu } from '../cpu.js';
import type { GuestRam } from '../guest-ram.js';
import { translateBlock } from './translate.js';
import { instantiate } from './wasm-emitter.js';
import { W_BUDGET, W_FLAGS_IN, W_LAZY, W_RD_SET, W_RIP, W_WR_SET } from './state-layout.js';

/** A translated block: its function and the RIP after each instruction. */
export interface JitBlock {
  run: (stateOffset: number) => number;
  count: number;
  rips: Float64Array;
  target: number;
  readsFlagsIn: boolean;
  writesFlags: boolean;
}

/** Whether translation is on by default (TYPEVISOR_SOFT_JIT unset). */
export const JIT_DEFAULT_ON = false;
const DEFAULT_THRESHOLD = 2000;
/** A slot whose block could not be translated waits this many entries before trying again. */
const RETRY_DELAY = 1 << 30;
/** Code size index in decode-cache tags for 64-bit code (Cpu.tagBias / 2^32). */
const TAG_BIAS_64 = 2 * 0x1_0000_0000;
const TWO32 = 0x1_0000_0000;

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
  /** Entries into translated blocks (statistics). */
  entries = 0;

  constructor(private readonly code: CodeCache, private readonly ram: GuestRam, readonly threshold: number) {
    if (process.env.TYPEVISOR_SOFT_JIT_STATS === '1') {
      process.on('exit', () => process.stderr.write(`soft jit: ${this.translated} blocks translated, ${this.entries} block entries\n`));
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
   * `slot`, tag `tag`) is in the decode cache. Runs its block if there is
   * one and it fits the batch; returns whether any instruction was executed.
   */
  enter(cpu: Cpu, slot: number, tag: number, off: number): boolean {
    const code = this.code;
    if (code.jitTags[slot] === tag) return this.run(cpu, code.jitBlocks[slot] as JitBlock);
    if (++code.jitCounts[slot] <= this.threshold || tag < TAG_BIAS_64) return false;
    code.jitCounts[slot] = -RETRY_DELAY;
    const block = this.translate(off, cpu.rip);
    if (block === null) return false;
    code.jitTags[slot] = tag;
    code.jitBlocks[slot] = block;
    return this.run(cpu, block);
  }

  private translate(off: number, rip: number): JitBlock | null {
    const ram = this.ram;
    const t = translateBlock(ram.bytes, off, rip, { pages: ram.pages, shared: ram.shared });
    if (t === null) return null;
    this.translated++;
    const run = instantiate(t.bytes, ram.wasmMemory);
    return { run, count: t.count, rips: t.rips, target: t.target, readsFlagsIn: t.readsFlagsIn, writesFlags: t.writesFlags };
  }

  private run(cpu: Cpu, block: JitBlock): boolean {
    // The same physical code reached at another linear address (aliased mappings) has other RIPs: interpret it.
    if (cpu.rip !== block.rips[0] || cpu.instructions + block.count > cpu.jitLimit) return false;
    const w = cpu.jitWords as Int32Array;
    w[W_RD_SET] = cpu.rdSet;
    w[W_WR_SET] = cpu.wrSet;
    w[W_BUDGET] = cpu.jitLimit - cpu.instructions;
    if (block.readsFlagsIn) w[W_FLAGS_IN] = cpu.getFlags();
    if (block.writesFlags) {
      w[W_LAZY] = cpu.lazyOp; w[W_LAZY + 1] = cpu.lazySize;
      w[W_LAZY + 2] = cpu.lazyRes; w[W_LAZY + 3] = cpu.lazyResHi;
      w[W_LAZY + 4] = cpu.lazyA; w[W_LAZY + 5] = cpu.lazyAHi;
      w[W_LAZY + 6] = cpu.lazyB; w[W_LAZY + 7] = cpu.lazyBHi;
      w[W_LAZY + 8] = cpu.lazyCF; w[W_LAZY + 9] = cpu.lazyOF;
    }
    const done = block.run(cpu.stateOffset);
    if (done === 0) return false;
    this.entries++;
    cpu.rip = w[W_RIP + 1] * TWO32 + (w[W_RIP] >>> 0);
    cpu.instructions += done;
    if (block.writesFlags) {
      cpu.lazyOp = w[W_LAZY]; cpu.lazySize = w[W_LAZY + 1];
      cpu.lazyRes = w[W_LAZY + 2]; cpu.lazyResHi = w[W_LAZY + 3];
      cpu.lazyA = w[W_LAZY + 4]; cpu.lazyAHi = w[W_LAZY + 5];
      cpu.lazyB = w[W_LAZY + 6]; cpu.lazyBHi = w[W_LAZY + 7];
      cpu.lazyCF = w[W_LAZY + 8]; cpu.lazyOF = w[W_LAZY + 9];
    }
    return true;
  }
}
