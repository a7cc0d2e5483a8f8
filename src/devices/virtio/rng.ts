/**
 * virtio-rng, the entropy device (virtio 1.2, section 5.4): one request queue
 * whose device-writable buffers the device fills with random bytes from the
 * host's CSPRNG (crypto.randomFillSync, straight into guest RAM). At most
 * 64 KiB are supplied per request; the used length says how many, which the
 * specification allows.
 */

import { randomFillSync } from 'node:crypto';
import { featureWords, VirtioDeviceType, drainQueue, type VirtioDevice, type VirtioDeviceContext } from './virtio.js';
import { DescriptorChain } from './virtqueue.js';

const QUEUE_SIZE = 64;
/** Most random bytes handed out per request. */
export const RNG_MAX_BYTES_PER_REQUEST = 64 * 1024;

export class VirtioRng implements VirtioDevice {
  readonly deviceType = VirtioDeviceType.ENTROPY;
  readonly name = 'virtio-rng';
  readonly features = featureWords();
  readonly queueMaxSizes = [QUEUE_SIZE];
  readonly configSize = 0;
  readonly maxChainBytes = 16 * 1024 * 1024;
  private context: VirtioDeviceContext | undefined;
  private readonly chain = new DescriptorChain(QUEUE_SIZE);
  /** Bytes handed to the guest so far (diagnostics). */
  bytesServed = 0;

  readConfig(): number {
    return 0;
  }

  writeConfig(): void {}

  activate(context: VirtioDeviceContext): void {
    this.context = context;
  }

  reset(): void {
    this.context = undefined;
  }

  onQueueNotify(queue: number): void {
    const ctx = this.context;
    if (ctx === undefined || queue !== 0) return;
    drainQueue(ctx, 0, this.chain, (chain) => this.fill(ctx, chain));
  }

  private fill(ctx: VirtioDeviceContext, chain: DescriptorChain): number {
    let remaining = RNG_MAX_BYTES_PER_REQUEST;
    let written = 0;
    for (let i = chain.readableCount; i < chain.count && remaining > 0; i++) {
      const n = Math.min(chain.lengths[i], remaining);
      if (n === 0) continue;
      randomFillSync(ctx.memory.view(chain.addresses[i], n));
      written += n;
      remaining -= n;
    }
    this.bytesServed += written;
    return written;
  }
}
