/**
 * Guest RAM: a set of regions, each a zero-copy byte view over memory the
 * engine owns (an mmap'd region under kvm, a WebAssembly.Memory under soft).
 *
 * Devices and loaders reach guest memory only through this class. Every access
 * is bounds-checked, so a guest-supplied address can never reach host memory
 * outside the regions it was given.
 */

import { ramRanges, type RamRange } from './layout.js';

/** Raised when a guest-physical range is not entirely inside guest RAM. */
export class GuestMemoryError extends Error {
  constructor(
    readonly address: number,
    readonly length: number,
  ) {
    super(`guest memory access out of range: 0x${address.toString(16)} + ${length}`);
    this.name = 'GuestMemoryError';
  }
}

/** One contiguous region of guest RAM and the bytes that back it. */
export interface MemoryRegion extends RamRange {
  /** The backing bytes; `bytes.length === size`. */
  readonly bytes: Uint8Array;
}

const TWO_32 = 0x1_0000_0000;

export class GuestMemory {
  readonly regions: readonly MemoryRegion[];
  /** Total RAM in bytes. */
  readonly size: number;
  private readonly views: DataView[];

  constructor(regions: MemoryRegion[]) {
    for (const r of regions) {
      if (r.bytes.length !== r.size) throw new Error('memory region size does not match its bytes');
    }
    this.regions = [...regions].sort((a, b) => a.guestBase - b.guestBase);
    this.views = this.regions.map((r) => new DataView(r.bytes.buffer, r.bytes.byteOffset, r.bytes.byteLength));
    this.size = this.regions.reduce((sum, r) => sum + r.size, 0);
  }

  /**
   * Allocates RAM of `size` bytes laid out around the MMIO hole, backed by
   * ordinary ArrayBuffers (used by tests and by engines that own no memory).
   */
  static allocate(size: number): GuestMemory {
    return new GuestMemory(ramRanges(size).map((r) => ({ ...r, bytes: new Uint8Array(r.size) })));
  }

  /** Index of the region holding [gpa, gpa+length), or -1. */
  private regionIndex(gpa: number, length: number): number {
    const regions = this.regions;
    for (let i = 0; i < regions.length; i++) {
      const r = regions[i];
      if (gpa >= r.guestBase && gpa + length <= r.guestBase + r.size && length >= 0) return i;
    }
    return -1;
  }

  /** True when [gpa, gpa+length) lies entirely inside one RAM region. */
  contains(gpa: number, length: number): boolean {
    return Number.isSafeInteger(gpa) && this.regionIndex(gpa, length) >= 0;
  }

  /** A zero-copy view of [gpa, gpa+length); throws GuestMemoryError if out of range. */
  view(gpa: number, length: number): Uint8Array {
    const i = this.checked(gpa, length);
    const r = this.regions[i];
    const off = gpa - r.guestBase;
    return r.bytes.subarray(off, off + length);
  }

  private checked(gpa: number, length: number): number {
    const i = Number.isSafeInteger(gpa) && Number.isSafeInteger(length) ? this.regionIndex(gpa, length) : -1;
    if (i < 0) throw new GuestMemoryError(gpa, length);
    return i;
  }

  read8(gpa: number): number {
    const i = this.checked(gpa, 1);
    return this.regions[i].bytes[gpa - this.regions[i].guestBase];
  }
  read16(gpa: number): number {
    const i = this.checked(gpa, 2);
    return this.views[i].getUint16(gpa - this.regions[i].guestBase, true);
  }
  read32(gpa: number): number {
    const i = this.checked(gpa, 4);
    return this.views[i].getUint32(gpa - this.regions[i].guestBase, true);
  }
  /** Reads a 64-bit value as a number; exact below 2^53, which covers every valid guest address. */
  read64(gpa: number): number {
    const i = this.checked(gpa, 8);
    const v = this.views[i];
    const off = gpa - this.regions[i].guestBase;
    return v.getUint32(off + 4, true) * TWO_32 + v.getUint32(off, true);
  }
  write8(gpa: number, value: number): void {
    const i = this.checked(gpa, 1);
    this.regions[i].bytes[gpa - this.regions[i].guestBase] = value;
  }
  write16(gpa: number, value: number): void {
    const i = this.checked(gpa, 2);
    this.views[i].setUint16(gpa - this.regions[i].guestBase, value, true);
  }
  write32(gpa: number, value: number): void {
    const i = this.checked(gpa, 4);
    this.views[i].setUint32(gpa - this.regions[i].guestBase, value >>> 0, true);
  }
  /** Writes a non-negative 64-bit value given as a number (must be a safe integer). */
  write64(gpa: number, value: number): void {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`write64: ${value} is not a safe unsigned integer`);
    const i = this.checked(gpa, 8);
    const v = this.views[i];
    const off = gpa - this.regions[i].guestBase;
    v.setUint32(off, value % TWO_32, true);
    v.setUint32(off + 4, Math.floor(value / TWO_32), true);
  }

  /** Copies `data` into guest memory at `gpa`. */
  writeBytes(gpa: number, data: Uint8Array): void {
    this.view(gpa, data.length).set(data);
  }

  /** Copies `length` bytes out of guest memory at `gpa` into a new array. */
  readBytes(gpa: number, length: number): Uint8Array {
    return this.view(gpa, length).slice();
  }

  /** Fills [gpa, gpa+length) with `value`. */
  fill(gpa: number, length: number, value = 0): void {
    this.view(gpa, length).fill(value);
  }
}
