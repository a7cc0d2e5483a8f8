/**
 * The port-I/O and MMIO buses: each maps address ranges to one device, the way
 * crosvm's `Bus` does. A device sees offsets relative to the base of its range
 * and never learns which engine issued the access.
 *
 * Accesses are 1, 2 or 4 bytes wide. An 8-byte MMIO access is split by the
 * caller into two 4-byte accesses, low half first. Reads of unclaimed
 * addresses return all ones, as on a PC; writes to them are dropped.
 */

/** The width of one bus access in bytes. */
export type AccessSize = 1 | 2 | 4;

/** A device (or one register block of a device) attached to a bus. */
export interface BusDevice {
  /** Reads `size` bytes at `offset` from the start of the device's range. */
  read(offset: number, size: AccessSize): number;
  /** Writes the low `size` bytes of `value` at `offset`. */
  write(offset: number, size: AccessSize, value: number): void;
}

/** One claimed range on a bus. */
export interface BusRange {
  readonly base: number;
  readonly length: number;
  readonly device: BusDevice;
  /** A short name for diagnostics, such as "uart0". */
  readonly name: string;
}

/** Raised when a range overlaps one already on the bus. */
export class BusConflictError extends Error {
  constructor(a: BusRange, b: BusRange) {
    super(
      `bus range ${b.name} [0x${b.base.toString(16)}, +0x${b.length.toString(16)}) overlaps ` +
        `${a.name} [0x${a.base.toString(16)}, +0x${a.length.toString(16)})`,
    );
    this.name = 'BusConflictError';
  }
}

const ALL_ONES = [0, 0xff, 0xffff, 0, 0xffffffff] as const;

/** A bus for an arbitrary address space (MMIO): sorted ranges, binary search, last-hit cache. */
export class Bus {
  private ranges: BusRange[] = [];
  private lastHit: BusRange | undefined;

  /** Claims [base, base+length) for `device`. */
  insert(base: number, length: number, device: BusDevice, name: string): void {
    if (!(length > 0) || !Number.isSafeInteger(base) || base < 0) throw new RangeError(`bad bus range for ${name}`);
    const range: BusRange = { base, length, device, name };
    for (const r of this.ranges) {
      if (base < r.base + r.length && r.base < base + length) throw new BusConflictError(r, range);
    }
    this.ranges.push(range);
    this.ranges.sort((a, b) => a.base - b.base);
    this.lastHit = undefined;
  }

  /** Releases the range that starts at `base`; returns whether one was found. */
  remove(base: number): boolean {
    const i = this.ranges.findIndex((r) => r.base === base);
    if (i < 0) return false;
    this.ranges.splice(i, 1);
    this.lastHit = undefined;
    return true;
  }

  /** The range containing `address`, if any. */
  find(address: number): BusRange | undefined {
    const hit = this.lastHit;
    if (hit !== undefined && address >= hit.base && address < hit.base + hit.length) return hit;
    const ranges = this.ranges;
    let lo = 0;
    let hi = ranges.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const r = ranges[mid];
      if (address < r.base) hi = mid - 1;
      else if (address >= r.base + r.length) lo = mid + 1;
      else {
        this.lastHit = r;
        return r;
      }
    }
    return undefined;
  }

  read(address: number, size: AccessSize): number {
    const r = this.find(address);
    if (r === undefined || address + size > r.base + r.length) return ALL_ONES[size];
    return r.device.read(address - r.base, size);
  }

  write(address: number, size: AccessSize, value: number): void {
    const r = this.find(address);
    if (r === undefined || address + size > r.base + r.length) return;
    r.device.write(address - r.base, size, value);
  }

  /** Every range, in address order (for diagnostics and device trees). */
  list(): readonly BusRange[] {
    return this.ranges;
  }
}

/** The 64 KiB x86 I/O port space, with an O(1) port-to-device table. */
export class PortBus extends Bus {
  private readonly table: (BusRange | undefined)[] = new Array<BusRange | undefined>(0x10000).fill(undefined);

  override insert(base: number, length: number, device: BusDevice, name: string): void {
    if (base + length > 0x10000) throw new RangeError(`port range for ${name} exceeds 0xffff`);
    super.insert(base, length, device, name);
    const r = super.find(base)!;
    for (let p = base; p < base + length; p++) this.table[p] = r;
  }

  override remove(base: number): boolean {
    const r = super.find(base);
    if (r === undefined || r.base !== base) return false;
    for (let p = r.base; p < r.base + r.length; p++) this.table[p] = undefined;
    return super.remove(base);
  }

  override find(port: number): BusRange | undefined {
    return this.table[port & 0xffff];
  }
}
