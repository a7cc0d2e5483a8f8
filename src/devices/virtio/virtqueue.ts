/**
 * The virtio split virtqueue (virtio 1.2, section 2.7) from the device side:
 * descriptor table, available (driver) ring and used (device) ring in guest
 * memory, indirect descriptors, and event-index notification suppression.
 *
 * Everything in the rings is guest input. `pop` walks one descriptor chain
 * into a reusable `DescriptorChain` and validates it completely before a
 * device sees it: the head and every `next` index in range, the walk bounded by
 * the queue size (so loops end), no nested indirect tables, indirect tables
 * with a non-zero length that is a multiple of 16, every buffer inside guest
 * RAM, device-readable buffers before device-writable ones, and the total
 * length capped. The available index may not run more than the queue size
 * ahead of the device. A violation throws `VirtqueueError`; the transport then
 * sets DEVICE_NEEDS_RESET (spec 2.1.2) and the device stops using the queue.
 *
 * No allocation happens per descriptor or per chain: the chain's segment
 * arrays are allocated once per queue. Memory ordering: under kvm another
 * vCPU thread may write the rings while the machine thread reads them; x86
 * keeps loads and stores in program order, and the JS engine does not reorder
 * typed-array accesses across the calls made here, so the idx-before-entries
 * protocol of the spec holds.
 */

import { GuestMemoryError, type GuestMemory } from '../../machine/memory.js';

/** Descriptor flags. */
export const VIRTQ_DESC_F_NEXT = 1;
export const VIRTQ_DESC_F_WRITE = 2;
export const VIRTQ_DESC_F_INDIRECT = 4;
/** Available ring flag: the driver does not want interrupts (without EVENT_IDX). */
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
/** Used ring flag: the device does not want notifications (without EVENT_IDX). */
export const VIRTQ_USED_F_NO_NOTIFY = 1;

/** The largest queue size the split ring allows. */
export const VIRTQ_MAX_SIZE = 32768;
/** Default cap on the bytes one chain may describe (readable + writable). */
export const DEFAULT_MAX_CHAIN_BYTES = 64 * 1024 * 1024;

/** A fatal ring error caused by the driver (guest); the message says what was wrong. */
export class VirtqueueError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VirtqueueError';
  }
}

/**
 * One descriptor chain, flattened: `count` segments, the first `readableCount`
 * device-readable, the rest device-writable. Reused for every `pop`; a device
 * that completes a request asynchronously copies what it needs.
 */
export class DescriptorChain {
  /** Index of the head descriptor (what goes into the used ring). */
  head = 0;
  count = 0;
  readableCount = 0;
  readableBytes = 0;
  writableBytes = 0;
  readonly addresses: Float64Array;
  readonly lengths: Uint32Array;

  constructor(readonly capacity: number) {
    this.addresses = new Float64Array(capacity);
    this.lengths = new Uint32Array(capacity);
  }

  get writableCount(): number {
    return this.count - this.readableCount;
  }

  /**
   * Copies up to `dest.length` device-readable bytes, starting `skip` bytes
   * into the readable part, into `dest`; returns how many were copied.
   */
  readInto(memory: GuestMemory, dest: Uint8Array, skip = 0): number {
    let copied = 0;
    let toSkip = skip;
    for (let i = 0; i < this.readableCount && copied < dest.length; i++) {
      const len = this.lengths[i];
      if (toSkip >= len) {
        toSkip -= len;
        continue;
      }
      const n = Math.min(len - toSkip, dest.length - copied);
      dest.set(memory.view(this.addresses[i] + toSkip, n), copied);
      copied += n;
      toSkip = 0;
    }
    return copied;
  }

  /**
   * Copies `src` into the device-writable part, starting `skip` bytes into it;
   * returns how many bytes fitted.
   */
  writeFrom(memory: GuestMemory, src: Uint8Array, skip = 0): number {
    let copied = 0;
    let toSkip = skip;
    for (let i = this.readableCount; i < this.count && copied < src.length; i++) {
      const len = this.lengths[i];
      if (toSkip >= len) {
        toSkip -= len;
        continue;
      }
      const n = Math.min(len - toSkip, src.length - copied);
      memory.view(this.addresses[i] + toSkip, n).set(src.subarray(copied, copied + n));
      copied += n;
      toSkip = 0;
    }
    return copied;
  }
}

export interface VirtqueueOptions {
  /** The largest size the device offers (a power of two up to 32768). */
  readonly maxSize: number;
  /** Cap on one chain's total bytes; default 64 MiB. */
  readonly maxChainBytes?: number;
}

export class Virtqueue {
  readonly maxSize: number;
  readonly maxChainBytes: number;
  /** Driver-visible configuration (written through the transport before the queue is enabled). */
  size: number;
  descAddress = 0;
  driverAddress = 0;
  deviceAddress = 0;
  enabled = false;
  /** MSI-X vector for this queue (0xffff: none). */
  msixVector = 0xffff;
  /** Set once the device negotiated VIRTIO_F_RING_EVENT_IDX; read at activation. */
  eventIndex = false;

  private lastAvail = 0;
  private usedIndex = 0;
  private signalledUsed = 0;
  /** Set when the queue had a fatal error; it is then ignored until reset. */
  broken = false;

  constructor(
    private readonly memory: GuestMemory,
    readonly index: number,
    options: VirtqueueOptions,
  ) {
    const { maxSize } = options;
    if (!Number.isInteger(maxSize) || maxSize < 1 || maxSize > VIRTQ_MAX_SIZE || (maxSize & (maxSize - 1)) !== 0) {
      throw new RangeError(`virtqueue max size ${maxSize} is not a power of two up to ${VIRTQ_MAX_SIZE}`);
    }
    this.maxSize = maxSize;
    this.size = maxSize;
    this.maxChainBytes = options.maxChainBytes ?? DEFAULT_MAX_CHAIN_BYTES;
  }

  /** Back to the state after a device reset. */
  reset(): void {
    this.size = this.maxSize;
    this.descAddress = 0;
    this.driverAddress = 0;
    this.deviceAddress = 0;
    this.enabled = false;
    this.msixVector = 0xffff;
    this.eventIndex = false;
    this.lastAvail = 0;
    this.usedIndex = 0;
    this.signalledUsed = 0;
    this.broken = false;
  }

  /** Bytes of each ring area for the current size. */
  private areaSizes(): [desc: number, driver: number, device: number] {
    const n = this.size;
    return [16 * n, 6 + 2 * n, 6 + 8 * n];
  }

  /** Why the driver's configuration is unusable, or undefined if it is fine. */
  validate(): string | undefined {
    const n = this.size;
    if (!Number.isInteger(n) || n < 1 || n > this.maxSize || (n & (n - 1)) !== 0) return `queue ${this.index}: size ${n} is not a power of two up to ${this.maxSize}`;
    const [d, a, u] = this.areaSizes();
    if (this.descAddress % 16 !== 0 || !this.memory.contains(this.descAddress, d)) return `queue ${this.index}: descriptor table outside RAM or misaligned`;
    if (this.driverAddress % 2 !== 0 || !this.memory.contains(this.driverAddress, a)) return `queue ${this.index}: available ring outside RAM or misaligned`;
    if (this.deviceAddress % 4 !== 0 || !this.memory.contains(this.deviceAddress, u)) return `queue ${this.index}: used ring outside RAM or misaligned`;
    return undefined;
  }

  /** Makes the queue usable: validates it (throws VirtqueueError) and starts from the rings' current indices. */
  activate(eventIndex: boolean): void {
    const problem = this.validate();
    if (problem !== undefined) {
      this.broken = true;
      throw new VirtqueueError(problem);
    }
    this.eventIndex = eventIndex;
    this.lastAvail = 0;
    this.usedIndex = 0;
    this.signalledUsed = 0;
  }

  private availIndex(): number {
    return this.memory.read16(this.driverAddress + 2);
  }

  /** Chains the driver made available that the device has not popped yet. */
  pending(): number {
    if (!this.enabled || this.broken) return 0;
    const ahead = (this.availIndex() - this.lastAvail) & 0xffff;
    if (ahead > this.size) this.fail(`queue ${this.index}: available index ran ${ahead} entries ahead (size ${this.size})`);
    return ahead;
  }

  /**
   * Takes the next available chain into `chain`. Returns false when the ring
   * is empty; with EVENT_IDX it then publishes avail_event (asking for a
   * notification at the next buffer) and looks once more, so no buffer added
   * meanwhile is missed. Throws VirtqueueError on a malformed ring or chain.
   */
  pop(chain: DescriptorChain): boolean {
    if (!this.enabled || this.broken) return false;
    let ahead = this.pending();
    if (ahead === 0) {
      this.publishAvailEvent();
      ahead = this.pending();
      if (ahead === 0) return false;
    }
    const slot = this.lastAvail & (this.size - 1);
    const head = this.memory.read16(this.driverAddress + 4 + 2 * slot);
    this.lastAvail = (this.lastAvail + 1) & 0xffff;
    this.walk(head, chain);
    return true;
  }

  private publishAvailEvent(): void {
    if (!this.eventIndex) return;
    this.memory.write16(this.deviceAddress + 4 + 8 * this.size, this.lastAvail);
  }

  private fail(message: string): never {
    this.broken = true;
    throw new VirtqueueError(message);
  }

  /** Walks and validates the chain starting at descriptor `head`. */
  private walk(head: number, chain: DescriptorChain): void {
    const size = this.size;
    if (head >= size) this.fail(`queue ${this.index}: head descriptor ${head} out of range`);
    const memory = this.memory;
    const limit = Math.min(size, chain.capacity);
    chain.head = head;
    chain.count = 0;
    chain.readableCount = 0;
    chain.readableBytes = 0;
    chain.writableBytes = 0;
    let table = this.descAddress;
    let tableSize = size;
    let index = head;
    let inIndirect = false;
    let steps = 0;
    let sawWritable = false;
    for (;;) {
      if (++steps > limit + 1) this.fail(`queue ${this.index}: descriptor chain longer than ${limit} (loop?)`);
      const at = table + 16 * index;
      const address = memory.read64(at);
      const length = memory.read32(at + 8);
      const flags = memory.read16(at + 12);
      const next = memory.read16(at + 14);
      if ((flags & VIRTQ_DESC_F_INDIRECT) !== 0) {
        if (inIndirect) this.fail(`queue ${this.index}: nested indirect descriptor`);
        if ((flags & VIRTQ_DESC_F_NEXT) !== 0) this.fail(`queue ${this.index}: indirect descriptor with NEXT`);
        if (length === 0 || length % 16 !== 0) this.fail(`queue ${this.index}: indirect table length ${length} is not a non-zero multiple of 16`);
        if (length / 16 > limit) this.fail(`queue ${this.index}: indirect table of ${length / 16} entries exceeds ${limit}`);
        if (!memory.contains(address, length)) this.fail(`queue ${this.index}: indirect table outside RAM`);
        inIndirect = true;
        table = address;
        tableSize = length / 16;
        index = 0;
        steps = 0;
        continue;
      }
      if (chain.count >= limit) this.fail(`queue ${this.index}: descriptor chain longer than ${limit}`);
      if (length > 0 && !memory.contains(address, length)) this.fail(`queue ${this.index}: buffer 0x${address.toString(16)}+${length} outside RAM`);
      const writable = (flags & VIRTQ_DESC_F_WRITE) !== 0;
      if (writable) {
        sawWritable = true;
        chain.writableBytes += length;
      } else {
        if (sawWritable) this.fail(`queue ${this.index}: device-readable descriptor after a writable one`);
        chain.readableCount++;
        chain.readableBytes += length;
      }
      if (chain.readableBytes + chain.writableBytes > this.maxChainBytes) this.fail(`queue ${this.index}: chain exceeds ${this.maxChainBytes} bytes`);
      chain.addresses[chain.count] = address;
      chain.lengths[chain.count] = length;
      chain.count++;
      if ((flags & VIRTQ_DESC_F_NEXT) === 0) break;
      if (next >= tableSize) this.fail(`queue ${this.index}: next descriptor ${next} out of range`);
      index = next;
    }
  }

  /**
   * Returns chain `head` to the driver with `written` bytes written into its
   * writable buffers. With `publish` false the used index is not yet written,
   * so several entries (one received frame spread over merged buffers) become
   * visible to the driver together at the next `publishUsed()`.
   */
  pushUsed(head: number, written: number, publish = true): void {
    if (!this.enabled || this.broken) return;
    const slot = this.usedIndex & (this.size - 1);
    const at = this.deviceAddress + 4 + 8 * slot;
    this.memory.write32(at, head);
    this.memory.write32(at + 4, written);
    this.usedIndex = (this.usedIndex + 1) & 0xffff;
    if (publish) this.memory.write16(this.deviceAddress + 2, this.usedIndex);
  }

  /** Makes used entries pushed with `publish` false visible to the driver. */
  publishUsed(): void {
    if (!this.enabled || this.broken) return;
    this.memory.write16(this.deviceAddress + 2, this.usedIndex);
  }

  /**
   * Whether the driver wants an interrupt for the used entries added since the
   * last call (VIRTQ_AVAIL_F_NO_INTERRUPT, or used_event with EVENT_IDX).
   */
  needsInterrupt(): boolean {
    if (!this.enabled || this.broken) return false;
    const newIdx = this.usedIndex;
    const oldIdx = this.signalledUsed;
    this.signalledUsed = newIdx;
    if (newIdx === oldIdx) return false;
    if (this.eventIndex) {
      const usedEvent = this.memory.read16(this.driverAddress + 4 + 2 * this.size);
      // vring_need_event: (u16)(new - event - 1) < (u16)(new - old)
      return ((newIdx - usedEvent - 1) & 0xffff) < ((newIdx - oldIdx) & 0xffff);
    }
    return (this.memory.read16(this.driverAddress) & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
  }
}

/** True for errors that a malicious or buggy guest can cause through ring contents. */
export function isGuestRingError(e: unknown): e is VirtqueueError | GuestMemoryError {
  return e instanceof VirtqueueError || e instanceof GuestMemoryError;
}
