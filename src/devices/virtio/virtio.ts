/**
 * Transport-independent virtio (virtio 1.2, chapters 2-3): the `VirtioDevice`
 * interface that device models (blk, rng; net and vsock next) implement, the
 * context a device gets when the driver sets DRIVER_OK, and `VirtioCore`,
 * the state every transport shares — feature negotiation, the device status
 * state machine with reset, the queues, the config generation, the ISR and
 * the notification path. A transport (virtio-pci today, virtio-mmio later)
 * only maps its registers onto `VirtioCore` and says how to raise interrupts.
 *
 * Guest errors never escape: a malformed ring or a device failing on guest
 * input sets DEVICE_NEEDS_RESET and raises a configuration interrupt, as
 * section 2.1.2 describes; the device then ignores the driver until reset.
 */

import type { GuestMemory } from '../../machine/memory.js';
import { DescriptorChain, Virtqueue, VirtqueueError } from './virtqueue.js';

/** Device status bits (2.1). */
export const VirtioStatus = {
  ACKNOWLEDGE: 1,
  DRIVER: 2,
  DRIVER_OK: 4,
  FEATURES_OK: 8,
  DEVICE_NEEDS_RESET: 0x40,
  FAILED: 0x80,
} as const;

/** Reserved feature bits (6). */
export const VirtioFeature = {
  INDIRECT_DESC: 28,
  RING_EVENT_IDX: 29,
  VERSION_1: 32,
  ACCESS_PLATFORM: 33,
} as const;

/** Device IDs (5). */
export const VirtioDeviceType = {
  NET: 1,
  BLOCK: 2,
  CONSOLE: 3,
  ENTROPY: 4,
  VSOCK: 19,
} as const;

/** "No MSI-X vector" (4.1.5.1.2). */
export const VIRTIO_MSI_NO_VECTOR = 0xffff;

/** ISR status bits. */
export const VirtioIsr = {
  QUEUE: 1,
  CONFIG: 2,
} as const;

/** A 64-bit feature set as two 32-bit words (low, high). */
export type FeatureWords = readonly [low: number, high: number];

export function hasFeature(words: FeatureWords, bit: number): boolean {
  return bit < 32 ? ((words[0] >>> bit) & 1) === 1 : ((words[1] >>> (bit - 32)) & 1) === 1;
}

/** Builds feature words from bit numbers. */
export function featureWords(...bits: number[]): [number, number] {
  let low = 0;
  let high = 0;
  for (const b of bits) {
    if (b < 32) low |= 1 << b;
    else high |= 1 << (b - 32);
  }
  return [low >>> 0, high >>> 0];
}

/** What a device model sees of its transport while the driver runs it. */
export interface VirtioDeviceContext {
  readonly memory: GuestMemory;
  readonly queues: readonly Virtqueue[];
  /** The features the driver accepted. */
  readonly features: FeatureWords;
  /** False once the device has been reset (or failed): late asynchronous completions must then be dropped. */
  readonly active: boolean;
  /** After `pushUsed` on queue `queue`: raises its interrupt if the driver wants one. */
  signalUsed(queue: number): void;
  /** The device configuration changed: bumps config_generation and raises the config interrupt. */
  configChanged(): void;
  /** A fatal error: sets DEVICE_NEEDS_RESET and tells the driver. */
  fail(reason: string): void;
}

/** A virtio device model, independent of the transport. */
export interface VirtioDevice {
  readonly deviceType: number;
  /** Short name for diagnostics ("virtio-blk"). */
  readonly name: string;
  /** Device-specific features offered (bits 0-23 and 50+); the transport adds VERSION_1, EVENT_IDX, INDIRECT_DESC. */
  readonly features: FeatureWords;
  /** Each queue's maximum size (power of two). */
  readonly queueMaxSizes: readonly number[];
  /** Optional per-queue cap on a chain's total bytes. */
  readonly maxChainBytes?: number;
  /** Bytes of device configuration space. */
  readonly configSize: number;
  readConfig(offset: number, size: 1 | 2 | 4): number;
  writeConfig(offset: number, size: 1 | 2 | 4, value: number): void;
  /** The driver set DRIVER_OK; `context` stays valid until `reset`. */
  activate(context: VirtioDeviceContext): void;
  /** The driver notified queue `queue` (available buffers). May throw VirtqueueError/GuestMemoryError. */
  onQueueNotify(queue: number): void;
  /** The driver reset the device (status 0) or it failed; drop all in-flight work. */
  reset(): void;
}

/** How a transport raises interrupts. */
export interface VirtioInterrupts {
  /** Queue `queue` has used buffers the driver wants to hear about. */
  queue(queue: number, vector: number): void;
  /** The configuration changed (or the device needs reset). */
  config(vector: number): void;
}

/** Features every device gets from the transport. */
const TRANSPORT_FEATURES = featureWords(VirtioFeature.VERSION_1, VirtioFeature.RING_EVENT_IDX, VirtioFeature.INDIRECT_DESC);

class Activation implements VirtioDeviceContext {
  active = true;
  constructor(
    private readonly core: VirtioCore,
    readonly memory: GuestMemory,
    readonly queues: readonly Virtqueue[],
    readonly features: FeatureWords,
  ) {}
  signalUsed(queue: number): void {
    if (this.active) this.core.signalUsed(queue);
  }
  configChanged(): void {
    if (this.active) this.core.configChanged();
  }
  fail(reason: string): void {
    if (this.active) this.core.fail(reason);
  }
}

export class VirtioCore {
  readonly queues: Virtqueue[];
  readonly offered: [number, number];
  deviceFeatureSelect = 0;
  driverFeatureSelect = 0;
  readonly driverFeatures: [number, number] = [0, 0];
  status = 0;
  configGeneration = 0;
  queueSelect = 0;
  configVector = VIRTIO_MSI_NO_VECTOR;
  isr = 0;
  /** Why the device last failed (diagnostics). */
  lastError: string | undefined;
  private activation: Activation | undefined;
  private interrupts: VirtioInterrupts | undefined;

  constructor(
    readonly device: VirtioDevice,
    readonly memory: GuestMemory,
  ) {
    this.offered = [(device.features[0] | TRANSPORT_FEATURES[0]) >>> 0, (device.features[1] | TRANSPORT_FEATURES[1]) >>> 0];
    // ACCESS_PLATFORM is never offered: the device reaches guest RAM by physical address.
    this.offered[1] &= ~(1 << (VirtioFeature.ACCESS_PLATFORM - 32));
    this.queues = device.queueMaxSizes.map((maxSize, i) =>
      new Virtqueue(memory, i, { maxSize, ...(device.maxChainBytes !== undefined ? { maxChainBytes: device.maxChainBytes } : {}) }));
  }

  setInterrupts(interrupts: VirtioInterrupts): void {
    this.interrupts = interrupts;
  }

  /** The selected queue, or undefined when queue_select is out of range. */
  get selectedQueue(): Virtqueue | undefined {
    return this.queues[this.queueSelect];
  }

  get driverOk(): boolean {
    return (this.status & (VirtioStatus.DRIVER_OK | VirtioStatus.DEVICE_NEEDS_RESET)) === VirtioStatus.DRIVER_OK;
  }

  get featuresOk(): boolean {
    return (this.status & VirtioStatus.FEATURES_OK) !== 0;
  }

  deviceFeatureWord(): number {
    return this.deviceFeatureSelect < 2 ? this.offered[this.deviceFeatureSelect] : 0;
  }

  driverFeatureWord(): number {
    return this.driverFeatureSelect < 2 ? this.driverFeatures[this.driverFeatureSelect] : 0;
  }

  /** Driver feature writes count only before FEATURES_OK. */
  setDriverFeatureWord(value: number): void {
    if (this.featuresOk || this.driverFeatureSelect > 1) return;
    this.driverFeatures[this.driverFeatureSelect] = value >>> 0;
  }

  /** A write to device_status: 0 resets; FEATURES_OK is kept only for an acceptable feature set; DRIVER_OK activates. */
  writeStatus(value: number): void {
    const v = value & 0xff;
    if (v === 0) {
      this.reset();
      return;
    }
    const before = this.status;
    let next = (v & ~VirtioStatus.DEVICE_NEEDS_RESET) | (before & VirtioStatus.DEVICE_NEEDS_RESET);
    if ((next & VirtioStatus.FEATURES_OK) !== 0 && (before & VirtioStatus.FEATURES_OK) === 0 && !this.featuresAcceptable()) {
      next &= ~VirtioStatus.FEATURES_OK;
    }
    this.status = next;
    if ((next & VirtioStatus.DRIVER_OK) !== 0 && (before & VirtioStatus.DRIVER_OK) === 0 && (next & VirtioStatus.FEATURES_OK) !== 0 && this.activation === undefined) {
      this.activate();
    }
  }

  private featuresAcceptable(): boolean {
    const [low, high] = this.driverFeatures;
    if ((low & ~this.offered[0]) !== 0 || (high & ~this.offered[1]) !== 0) return false;
    return hasFeature(this.driverFeatures, VirtioFeature.VERSION_1);
  }

  /** queue_enable = 1: validate the ring now; a bad ring makes the device need a reset. */
  enableQueue(queue: Virtqueue): void {
    if (queue.enabled) return;
    queue.enabled = true;
    try {
      queue.activate(hasFeature(this.driverFeatures, VirtioFeature.RING_EVENT_IDX));
    } catch (e) {
      if (e instanceof VirtqueueError) this.fail(e.message);
      else throw e;
    }
  }

  private activate(): void {
    const activation = new Activation(this, this.memory, this.queues, [this.driverFeatures[0], this.driverFeatures[1]]);
    this.activation = activation;
    try {
      this.device.activate(activation);
    } catch (e) {
      this.fail(`${this.device.name}: activation failed: ${(e as Error).message}`);
    }
  }

  /** The driver wrote queue `index`'s notify register. Never throws. */
  notify(index: number): void {
    if (!this.driverOk) return;
    const queue = this.queues[index];
    if (queue === undefined || !queue.enabled || queue.broken) return;
    try {
      this.device.onQueueNotify(index);
    } catch (e) {
      this.fail(`${this.device.name}: ${(e as Error).message}`);
    }
  }

  signalUsed(index: number): void {
    const queue = this.queues[index];
    if (queue === undefined) return;
    let wanted: boolean;
    try {
      wanted = queue.needsInterrupt();
    } catch (e) {
      this.fail(`${this.device.name}: ${(e as Error).message}`);
      return;
    }
    if (!wanted) return;
    this.isr |= VirtioIsr.QUEUE;
    this.interrupts?.queue(index, queue.msixVector);
  }

  configChanged(): void {
    this.configGeneration = (this.configGeneration + 1) & 0xff;
    this.isr |= VirtioIsr.CONFIG;
    this.interrupts?.config(this.configVector);
  }

  /** Sets DEVICE_NEEDS_RESET (once) and raises the config interrupt; the device stops until reset. */
  fail(reason: string): void {
    this.lastError = reason;
    if ((this.status & VirtioStatus.DEVICE_NEEDS_RESET) !== 0) return;
    this.status |= VirtioStatus.DEVICE_NEEDS_RESET;
    if (this.activation !== undefined) {
      this.activation.active = false;
      this.activation = undefined;
      this.safeDeviceReset();
    }
    if ((this.status & VirtioStatus.DRIVER_OK) !== 0) this.configChanged();
  }

  /** Reads and clears the ISR (the caller lowers INTx). */
  takeIsr(): number {
    const v = this.isr;
    this.isr = 0;
    return v;
  }

  private safeDeviceReset(): void {
    try {
      this.device.reset();
    } catch {
      // a device's reset cannot fail on guest input; nothing more to undo
    }
  }

  /** Device reset (status 0, or a transport reset). */
  reset(): void {
    if (this.activation !== undefined) {
      this.activation.active = false;
      this.activation = undefined;
    }
    this.safeDeviceReset();
    for (const q of this.queues) q.reset();
    this.status = 0;
    this.deviceFeatureSelect = 0;
    this.driverFeatureSelect = 0;
    this.driverFeatures[0] = 0;
    this.driverFeatures[1] = 0;
    this.queueSelect = 0;
    this.configVector = VIRTIO_MSI_NO_VECTOR;
    this.isr = 0;
  }
}

/**
 * Pops every available chain of `queue` and hands it to `handle`, then
 * raises the queue's interrupt if anything completed synchronously. For
 * devices whose requests complete at once (rng, simple control queues).
 */
export function drainQueue(
  context: VirtioDeviceContext,
  queueIndex: number,
  chain: DescriptorChain,
  handle: (chain: DescriptorChain) => number,
): void {
  const queue = context.queues[queueIndex];
  let completed = 0;
  while (queue.pop(chain)) {
    queue.pushUsed(chain.head, handle(chain));
    completed++;
  }
  if (completed > 0) context.signalUsed(queueIndex);
}
