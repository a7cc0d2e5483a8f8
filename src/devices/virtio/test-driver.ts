/**
 * Test support: a minimal virtio-pci driver written the way Linux's
 * virtio_pci_modern + virtio_ring drive a device — feature negotiation
 * through the common configuration, split rings placed in a GuestMemory,
 * chains of direct or indirect descriptors, notify writes and used-ring
 * reads. Used by the device unit tests and the fuzz test; not part of the VMM.
 */

import type { BusDevice } from '../../machine/bus.js';
import type { GuestMemory } from '../../machine/memory.js';
import { CommonCfg, VirtioPciLayout, type VirtioPciFunction } from './virtio-pci.js';
import { VirtioFeature, VirtioStatus, featureWords } from './virtio.js';
import { VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from './virtqueue.js';

export interface Segment {
  readonly address: number;
  readonly length: number;
  readonly writable: boolean;
}

/** Where queue q's rings live: desc at base, avail at base+0x1000, used at base+0x3000 (room for 256 entries). */
export function ringBase(q: number): number {
  return 0x20000 + q * 0x8000;
}

export class TestVirtioDriver {
  readonly bar: BusDevice;
  private readonly sizes: number[] = [];
  private readonly nextDesc: number[] = [];
  private readonly availIdx: number[] = [];
  private readonly lastUsed: number[] = [];

  constructor(
    readonly fn: VirtioPciFunction,
    readonly memory: GuestMemory,
  ) {
    this.bar = fn.bars[VirtioPciLayout.BAR]!.device;
  }

  common(offset: number, size: 1 | 2 | 4): number {
    return this.bar.read(VirtioPciLayout.COMMON + offset, size);
  }

  setCommon(offset: number, size: 1 | 2 | 4, value: number): void {
    this.bar.write(VirtioPciLayout.COMMON + offset, size, value);
  }

  get status(): number {
    return this.common(CommonCfg.DEVICE_STATUS, 1);
  }

  deviceFeatures(): [number, number] {
    this.setCommon(CommonCfg.DEVICE_FEATURE_SELECT, 4, 0);
    const low = this.common(CommonCfg.DEVICE_FEATURE, 4);
    this.setCommon(CommonCfg.DEVICE_FEATURE_SELECT, 4, 1);
    return [low, this.common(CommonCfg.DEVICE_FEATURE, 4)];
  }

  /**
   * Resets and initialises the device (3.1.1), accepting `accept` ∩ offered
   * features (default: everything offered), with every queue at `queueSize`
   * (default: the device maximum). Returns the status read back.
   */
  init(options: { accept?: readonly [number, number]; queueSize?: number; msix?: boolean; enableQueues?: boolean } = {}): number {
    this.setCommon(CommonCfg.DEVICE_STATUS, 1, 0);
    this.setCommon(CommonCfg.DEVICE_STATUS, 1, VirtioStatus.ACKNOWLEDGE);
    this.setCommon(CommonCfg.DEVICE_STATUS, 1, VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER);
    const offered = this.deviceFeatures();
    const accept = options.accept ?? offered;
    for (let i = 0; i < 2; i++) {
      this.setCommon(CommonCfg.DRIVER_FEATURE_SELECT, 4, i);
      this.setCommon(CommonCfg.DRIVER_FEATURE, 4, (accept[i] & offered[i]) >>> 0);
    }
    this.setCommon(CommonCfg.DEVICE_STATUS, 1, VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER | VirtioStatus.FEATURES_OK);
    if ((this.status & VirtioStatus.FEATURES_OK) === 0) return this.status;
    const queues = this.common(CommonCfg.NUM_QUEUES, 2);
    for (let q = 0; q < queues; q++) {
      this.setCommon(CommonCfg.QUEUE_SELECT, 2, q);
      const max = this.common(CommonCfg.QUEUE_SIZE, 2);
      const size = options.queueSize ?? max;
      this.setCommon(CommonCfg.QUEUE_SIZE, 2, size);
      const base = ringBase(q);
      this.memory.fill(base, 0x8000, 0);
      this.setCommon(CommonCfg.QUEUE_DESC_LO, 4, base);
      this.setCommon(CommonCfg.QUEUE_DESC_HI, 4, 0);
      this.setCommon(CommonCfg.QUEUE_DRIVER_LO, 4, base + 0x1000);
      this.setCommon(CommonCfg.QUEUE_DRIVER_HI, 4, 0);
      this.setCommon(CommonCfg.QUEUE_DEVICE_LO, 4, base + 0x3000);
      this.setCommon(CommonCfg.QUEUE_DEVICE_HI, 4, 0);
      if (options.msix === true) this.setCommon(CommonCfg.QUEUE_MSIX_VECTOR, 2, q + 1);
      if (options.enableQueues !== false) this.setCommon(CommonCfg.QUEUE_ENABLE, 2, 1);
      this.sizes[q] = size;
      this.nextDesc[q] = 0;
      this.availIdx[q] = 0;
      this.lastUsed[q] = 0;
    }
    this.setCommon(CommonCfg.DEVICE_STATUS, 1, VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER | VirtioStatus.FEATURES_OK | VirtioStatus.DRIVER_OK);
    return this.status;
  }

  /** Writes descriptor `index` of the table at `table`. */
  writeDescriptor(table: number, index: number, address: number, length: number, flags: number, next: number): void {
    const at = table + 16 * index;
    // Two halves, so tests can also write addresses at or above 2^53.
    this.memory.write32(at, address % 0x1_0000_0000);
    this.memory.write32(at + 4, Math.floor(address / 0x1_0000_0000) >>> 0);
    this.memory.write32(at + 8, length);
    this.memory.write16(at + 12, flags);
    this.memory.write16(at + 14, next);
  }

  /** Makes descriptor `head` available on queue q (without notifying). */
  publish(q: number, head: number): void {
    const size = this.sizes[q];
    const avail = ringBase(q) + 0x1000;
    this.memory.write16(avail + 4 + 2 * (this.availIdx[q] % size), head);
    this.availIdx[q] = (this.availIdx[q] + 1) & 0xffff;
    this.memory.write16(avail + 2, this.availIdx[q]);
  }

  /** Adds a chain of direct descriptors (or one indirect table at `indirectAt`) and publishes it; returns the head. */
  add(q: number, segments: readonly Segment[], indirectAt?: number): number {
    const size = this.sizes[q];
    const table = ringBase(q);
    if (indirectAt !== undefined) {
      segments.forEach((s, i) => this.writeDescriptor(indirectAt, i, s.address, s.length,
        (s.writable ? VIRTQ_DESC_F_WRITE : 0) | (i < segments.length - 1 ? VIRTQ_DESC_F_NEXT : 0), i + 1));
      const head = this.nextDesc[q];
      this.nextDesc[q] = (head + 1) % size;
      this.writeDescriptor(table, head, indirectAt, 16 * segments.length, VIRTQ_DESC_F_INDIRECT, 0);
      this.publish(q, head);
      return head;
    }
    const head = this.nextDesc[q];
    for (let i = 0; i < segments.length; i++) {
      const index = (head + i) % size;
      const s = segments[i];
      this.writeDescriptor(table, index, s.address, s.length,
        (s.writable ? VIRTQ_DESC_F_WRITE : 0) | (i < segments.length - 1 ? VIRTQ_DESC_F_NEXT : 0), (index + 1) % size);
    }
    this.nextDesc[q] = (head + segments.length) % size;
    this.publish(q, head);
    return head;
  }

  kick(q: number): void {
    this.bar.write(VirtioPciLayout.NOTIFY + q * VirtioPciLayout.NOTIFY_MULTIPLIER, 2, q);
  }

  /** Used entries added since the last call. */
  takeUsed(q: number): { id: number; len: number }[] {
    const size = this.sizes[q];
    const used = ringBase(q) + 0x3000;
    const idx = this.memory.read16(used + 2);
    const out: { id: number; len: number }[] = [];
    while (this.lastUsed[q] !== idx) {
      const at = used + 4 + 8 * (this.lastUsed[q] % size);
      out.push({ id: this.memory.read32(at), len: this.memory.read32(at + 4) });
      this.lastUsed[q] = (this.lastUsed[q] + 1) & 0xffff;
    }
    return out;
  }

  readIsr(): number {
    return this.bar.read(VirtioPciLayout.ISR, 1);
  }
}

/** The transport features a Linux 6.1 driver accepts. */
export const LINUX_TRANSPORT_FEATURES = featureWords(VirtioFeature.VERSION_1, VirtioFeature.RING_EVENT_IDX, VirtioFeature.INDIRECT_DESC);
