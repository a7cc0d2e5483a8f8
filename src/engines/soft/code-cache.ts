/**
 * The decoded-instruction cache shared by every vCPU of a soft VM: a
 * direct-mapped table of decoder records keyed by (wasm offset of the first
 * byte, code size). Pages holding cached code are tracked so that a guest
 * write to one drops its decoded instructions (self-modifying code), and the
 * vCPUs' write TLBs never map such a page (so those writes take the slow path).
 */

import { D_SHIFT, D_STRIDE } from './decoder.js';
import type { Jit, JitBlock } from './jit/jit.js';

export const DC_BITS = 18;
export const DC_SIZE = 1 << DC_BITS;
export const DC_MASK = DC_SIZE - 1;
const TWO32 = 0x1_0000_0000;

/** What the cache asks of a vCPU when a page becomes code. */
export interface CodePageListener {
  dropWriteMappings(pageOffset: number): void;
}

export class CodeCache {
  /** Decoded records, D_STRIDE words each; one extra record at the end is a scratch slot. */
  readonly records = new Int32Array((DC_SIZE + 1) * D_STRIDE);
  /** Per slot: offset + codeSizeIndex * 2^32, or NaN when empty. */
  readonly tags = new Float64Array(DC_SIZE).fill(NaN);
  /** Per 4 KiB page of RAM: 1 while decoded instructions from it are cached. */
  readonly codePages: Uint8Array;
  readonly listeners: CodePageListener[] = [];
  /** Record index (word offset) of the scratch slot, for instructions that are not cached. */
  readonly scratch = DC_SIZE << D_SHIFT;
  /** Translated blocks (jit/), keyed like the decoded records: tag of the block's first instruction, or NaN. */
  readonly jitTags = new Float64Array(DC_SIZE).fill(NaN);
  readonly jitBlocks: Array<JitBlock | null> = new Array<JitBlock | null>(DC_SIZE).fill(null);
  /** Entries per slot until translation (jit/jit.ts). */
  readonly jitCounts = new Int32Array(DC_SIZE);
  /** The shared block translator when translation is on. */
  jit: Jit | null = null;
  /** Per page: bumped each time its cached code is dropped (a translation queued before is stale). */
  readonly pageGenerations: Uint32Array;
  /** Bumped by flush(). */
  generation = 0;

  constructor(ramSize: number) {
    this.codePages = new Uint8Array(Math.ceil(ramSize / 4096));
    this.pageGenerations = new Uint32Array(this.codePages.length);
  }

  static tagOf(offset: number, codeSizeIndex: number): number {
    return offset + codeSizeIndex * TWO32;
  }

  /** Marks the page of `offset` as holding code, dropping write mappings to it everywhere. */
  markCode(offset: number): void {
    const page = Math.floor(offset / 4096);
    if (this.codePages[page] !== 0) return;
    this.codePages[page] = 1;
    for (const l of this.listeners) l.dropWriteMappings(page * 4096);
  }

  /** Drops every cached instruction that starts in the page of `offset`. */
  invalidatePage(offset: number): void {
    const page = Math.floor(offset / 4096);
    if (this.codePages[page] === 0) return;
    this.codePages[page] = 0;
    this.pageGenerations[page]++;
    const pageBase = page * 4096;
    const first = pageBase & DC_MASK;
    const tags = this.tags;
    const jitTags = this.jitTags;
    for (let i = 0; i < 4096; i++) {
      const slot = (first + i) & DC_MASK;
      const t = tags[slot];
      if (t === t && Math.floor((t % TWO32) / 4096) === page) { tags[slot] = NaN; this.jitCounts[slot] = 0; }
      // Blocks never cross their first instruction's page, so this drops every block with code in it.
      const j = jitTags[slot];
      if (j === j && Math.floor((j % TWO32) / 4096) === page) {
        const block = this.jitBlocks[slot];
        if (block !== null) block.owner.release(block); // out of the dispatchers' tables too
        jitTags[slot] = NaN; this.jitBlocks[slot] = null; this.jitCounts[slot] = 0;
      }
    }
  }

  flush(): void {
    this.generation++;
    this.tags.fill(NaN);
    this.jitTags.fill(NaN);
    for (const block of this.jitBlocks) if (block !== null) block.owner.release(block);
    this.jitBlocks.fill(null);
    this.codePages.fill(0);
  }
}

export { D_STRIDE };
