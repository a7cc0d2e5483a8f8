/**
 * virtio-net (virtio 1.2, section 5.1) over a host `NetBackend` (a tap).
 * Queues: 0 receive, 1 transmit. Features: MAC, STATUS (link always up) and
 * MRG_RXBUF; no checksum or segmentation offloads, so every header the device
 * writes is zero apart from num_buffers and every transmit header is ignored.
 * The header is 12 bytes (VERSION_1 is always negotiated).
 *
 * Receive with backpressure: a frame is read from the backend only when the
 * receive queue has a buffer available; when it has none the backend watch is
 * stopped, and the driver's next receive notification restarts it. So frames
 * wait in the host's tap queue (bounded by the kernel), never here; the device
 * holds at most one frame (the one being placed). With MRG_RXBUF a frame may
 * span several buffers; their used entries are published together, with
 * num_buffers in the first header. Transmit: each chain's readable bytes after
 * the header are one frame, written straight to the backend.
 *
 * Guest input never throws out of the device: ring errors mark the device
 * DEVICE_NEEDS_RESET through the context.
 */

import { createHash } from 'node:crypto';
import { featureWords, hasFeature, VirtioDeviceType, type VirtioDevice, type VirtioDeviceContext } from './virtio.js';
import { DescriptorChain } from './virtqueue.js';
import type { NetBackend } from './backends/tap.js';

/** Device feature bits (5.1.3). */
export const VirtioNetFeature = {
  CSUM: 0,
  GUEST_CSUM: 1,
  MAC: 5,
  MRG_RXBUF: 15,
  STATUS: 16,
} as const;

export const VIRTIO_NET_S_LINK_UP = 1;
/** struct virtio_net_hdr with num_buffers. */
export const VIRTIO_NET_HDR_SIZE = 12;
const QUEUE_SIZE = 256;
/** Largest frame accepted either way (64 KiB MTU plus the Ethernet header). */
export const NET_MAX_FRAME = 65536 + 14;
/** Most merged buffers one received frame may take. */
const MAX_MERGED_BUFFERS = 64;
/** Cap on a chain's bytes: generous for merged buffers, rejects absurd chains. */
const NET_MAX_CHAIN_BYTES = 1024 * 1024;
export const NetQueue = { RX: 0, TX: 1 } as const;

/** A locally administered unicast MAC derived from `seed` (the tap name): stable across runs. */
export function defaultMac(seed: string): Uint8Array {
  const digest = createHash('sha256').update(`typevisor-net:${seed}`).digest();
  const mac = new Uint8Array(digest.subarray(0, 6));
  mac[0] = (mac[0] & 0xfc) | 0x02;
  return mac;
}

export function formatMac(mac: Uint8Array): string {
  return Array.from(mac, (b) => b.toString(16).padStart(2, '0')).join(':');
}

export interface VirtioNetStats {
  rxFrames: number;
  rxBytes: number;
  /** Frames that did not fit the guest's buffers and were cut short. */
  rxTruncated: number;
  txFrames: number;
  txBytes: number;
  /** Transmit chains dropped: too short, too long, or refused by the host. */
  txDropped: number;
}

export class VirtioNet implements VirtioDevice {
  readonly deviceType = VirtioDeviceType.NET;
  readonly name = 'virtio-net';
  readonly features = featureWords(VirtioNetFeature.MAC, VirtioNetFeature.STATUS, VirtioNetFeature.MRG_RXBUF);
  readonly queueMaxSizes = [QUEUE_SIZE, QUEUE_SIZE];
  readonly maxChainBytes = NET_MAX_CHAIN_BYTES;
  /** mac[6], status u16. */
  readonly configSize = 8;
  readonly mac: Uint8Array;
  readonly stats: VirtioNetStats = { rxFrames: 0, rxBytes: 0, rxTruncated: 0, txFrames: 0, txBytes: 0, txDropped: 0 };

  private context: VirtioDeviceContext | undefined;
  private mergeable = false;
  private readonly txChain = new DescriptorChain(QUEUE_SIZE);
  private readonly txFrame = new Uint8Array(NET_MAX_FRAME);
  private readonly rxChains: DescriptorChain[] = [];
  private readonly rxUsedLengths = new Uint32Array(MAX_MERGED_BUFFERS);
  private readonly rxFrame = new Uint8Array(NET_MAX_FRAME);
  private readonly rxHeader = new Uint8Array(VIRTIO_NET_HDR_SIZE);
  /** Length of the frame being placed (0: none held). */
  private rxFrameLength = 0;
  /** Frame bytes already placed into buffers. */
  private rxFramePlaced = 0;
  /** Buffers popped for the frame being placed. */
  private rxHeld = 0;
  private readonly onReadable = (): void => this.pumpRx();

  constructor(
    private readonly backend: NetBackend,
    mac: Uint8Array,
  ) {
    if (mac.length !== 6) throw new RangeError('a MAC address has 6 bytes');
    this.mac = new Uint8Array(mac);
    for (let i = 0; i < MAX_MERGED_BUFFERS; i++) this.rxChains.push(new DescriptorChain(QUEUE_SIZE));
  }

  readConfig(offset: number, size: 1 | 2 | 4): number {
    let value = 0;
    for (let i = 0; i < size; i++) {
      const at = offset + i;
      let byte = 0;
      if (at < 6) byte = this.mac[at];
      else if (at === 6) byte = VIRTIO_NET_S_LINK_UP;
      value |= byte << (8 * i);
    }
    return value >>> 0;
  }

  /** The MAC is read-only once VERSION_1 is negotiated (5.1.4.1); writes are ignored. */
  writeConfig(): void {}

  activate(context: VirtioDeviceContext): void {
    this.context = context;
    this.mergeable = hasFeature(context.features, VirtioNetFeature.MRG_RXBUF);
    this.rxFrameLength = 0;
    this.rxHeld = 0;
    this.pumpRx();
  }

  reset(): void {
    this.context = undefined;
    this.rxFrameLength = 0;
    this.rxHeld = 0;
    this.backend.watchReadable(undefined);
  }

  /** Stops using the backend for good (VM teardown). */
  close(): void {
    this.reset();
    this.backend.close();
  }

  onQueueNotify(queue: number): void {
    if (queue === NetQueue.RX) this.pumpRx();
    else if (queue === NetQueue.TX) this.drainTx();
  }

  private guard(body: (ctx: VirtioDeviceContext) => void): void {
    const ctx = this.context;
    if (ctx === undefined) return;
    try {
      body(ctx);
    } catch (e) {
      this.backend.watchReadable(undefined);
      ctx.fail(`${this.name}: ${(e as Error).message}`);
    }
  }

  private drainTx(): void {
    this.guard((ctx) => {
      const queue = ctx.queues[NetQueue.TX];
      const chain = this.txChain;
      let completed = 0;
      while (queue.pop(chain)) {
        const frameLength = chain.readableBytes - VIRTIO_NET_HDR_SIZE;
        if (frameLength <= 0 || frameLength > NET_MAX_FRAME) {
          this.stats.txDropped++;
        } else {
          const frame = this.txFrame.subarray(0, frameLength);
          chain.readInto(ctx.memory, frame, VIRTIO_NET_HDR_SIZE);
          if (this.backend.writeFrame(frame)) {
            this.stats.txFrames++;
            this.stats.txBytes += frameLength;
          } else {
            this.stats.txDropped++;
          }
        }
        queue.pushUsed(chain.head, 0);
        completed++;
      }
      if (completed > 0) ctx.signalUsed(NetQueue.TX);
    });
  }

  /** Moves frames from the backend into receive buffers while both exist. */
  private pumpRx(): void {
    this.guard((ctx) => {
      const queue = ctx.queues[NetQueue.RX];
      if (!queue.enabled || queue.broken) {
        this.backend.watchReadable(undefined);
        return;
      }
      for (;;) {
        if (this.rxFrameLength === 0) {
          if (queue.pending() === 0) {
            // Backpressure: no buffer, so do not read; the driver's notify restarts us.
            this.backend.watchReadable(undefined);
            return;
          }
          const n = this.backend.readFrame(this.rxFrame);
          if (n === 0) {
            this.backend.watchReadable(this.onReadable);
            return;
          }
          this.rxFrameLength = n;
          this.rxFramePlaced = 0;
          this.rxHeld = 0;
        }
        if (!this.placeFrame(ctx)) {
          this.backend.watchReadable(undefined);
          return;
        }
      }
    });
  }

  /** Places the held frame; false when the queue ran out of buffers first (the frame stays held). */
  private placeFrame(ctx: VirtioDeviceContext): boolean {
    const queue = ctx.queues[NetQueue.RX];
    const memory = ctx.memory;
    const frameLength = this.rxFrameLength;
    const maxBuffers = this.mergeable ? MAX_MERGED_BUFFERS : 1;
    while (this.rxHeld === 0 || (this.rxFramePlaced < frameLength && this.rxHeld < maxBuffers)) {
      const chain = this.rxChains[this.rxHeld];
      if (!queue.pop(chain)) return false;
      let written = 0;
      if (this.rxHeld === 0) {
        this.rxHeader.fill(0);
        written = chain.writeFrom(memory, this.rxHeader);
      }
      const placed = chain.writeFrom(memory, this.rxFrame.subarray(this.rxFramePlaced, frameLength), written);
      this.rxFramePlaced += placed;
      this.rxUsedLengths[this.rxHeld] = written + placed;
      this.rxHeld++;
    }
    const buffers = this.rxHeld;
    if (this.rxFramePlaced < frameLength) this.stats.rxTruncated++;
    // num_buffers (le16 at offset 10) in the first buffer's header.
    this.rxHeader[10] = buffers & 0xff;
    this.rxHeader[11] = buffers >>> 8;
    this.rxChains[0].writeFrom(memory, this.rxHeader);
    for (let i = 0; i < buffers; i++) queue.pushUsed(this.rxChains[i].head, this.rxUsedLengths[i], false);
    queue.publishUsed();
    this.stats.rxFrames++;
    this.stats.rxBytes += this.rxFramePlaced;
    this.rxFrameLength = 0;
    this.rxHeld = 0;
    ctx.signalUsed(NetQueue.RX);
    return true;
  }
}
