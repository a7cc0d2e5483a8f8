/**
 * Fuzz test of the virtio devices' queue handling: for each device, 100,000
 * generated cases of random rings — well-formed chains mixed with loops, wild
 * and huge addresses, huge lengths, bad indirect tables, wrong ring sizes,
 * runaway available indices and random transport register writes. Each case
 * must leave the process healthy (nothing thrown out of the transport), and
 * the device must either complete every published chain or have set
 * DEVICE_NEEDS_RESET. Guest RAM is a window inside a larger buffer whose
 * surrounding canary bytes must stay intact: nothing outside guest RAM is
 * ever written. The seed is fixed, so a failure names a reproducible case.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GuestMemory } from '../../machine/memory.js';
import { RecordingInterruptController } from '../fakes.js';
import { createServer } from 'node:net';
import { DiskImage, VirtioBlk } from './blk.js';
import { NetQueue, VirtioNet } from './net.js';
import type { NetBackend } from './backends/tap.js';
import { VirtioVsock, VsockQueue } from './vsock.js';
import { VirtioRng } from './rng.js';
import { TestVirtioDriver, ringBase } from './test-driver.js';
import { VirtioPciFunction, VirtioPciLayout } from './virtio-pci.js';
import { VirtioStatus, type VirtioDevice } from './virtio.js';
import { VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from './virtqueue.js';

const CASES = 100_000;
const FUZZ_GUEST_CID = 3;
/** Host ports the fuzzed vsock packets mostly use; the first has a listening echo server. */
const FUZZ_VSOCK_PORTS = [5000, 5001, 1 << 30, 7];
const RAM = 1024 * 1024;
const CANARY = 64 * 1024;

/** xorshift32: small, fast, reproducible. */
class Rng {
  constructor(private s: number) {}
  next(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
  below(n: number): number {
    return this.next() % n;
  }
  chance(p: number): boolean {
    return this.next() / 0x1_0000_0000 < p;
  }
}

function guardedMemory(): { memory: GuestMemory; outer: Uint8Array } {
  const outer = new Uint8Array(CANARY + RAM + CANARY).fill(0xa5);
  const bytes = outer.subarray(CANARY, CANARY + RAM);
  bytes.fill(0);
  return { memory: new GuestMemory([{ guestBase: 0, size: RAM, bytes }]), outer };
}

function canariesIntact(outer: Uint8Array): boolean {
  for (let i = 0; i < CANARY; i++) if (outer[i] !== 0xa5 || outer[CANARY + RAM + i] !== 0xa5) return false;
  return true;
}

/** An address: mostly a valid buffer area, sometimes near the end of RAM, in the MMIO hole or absurd. */
function address(r: Rng): number {
  switch (r.below(10)) {
    case 0: return RAM - r.below(64);
    case 1: return 0xfee00000 + r.below(4096);
    case 2: return r.next() * 0x1_0000_0000 + r.next(); // may exceed 2^53
    case 3: return r.below(RAM);
    default: return 0x60000 + r.below(0x80000);
  }
}

function length(r: Rng): number {
  switch (r.below(10)) {
    case 0: return 0;
    case 1: return r.next();
    case 2: return 0x80000000 + r.below(1000);
    case 3: return 16;
    default: return 1 + r.below(4096);
  }
}

/** What the first (device-readable) buffer of a plausible chain holds. */
type ChainShape = 'plain' | 'blk' | 'net' | 'vsock';

/** A virtio-vsock packet header: mostly plausible (right cids, a few ports, real ops), sometimes garbage. */
function vsockHeader(r: Rng, memory: GuestMemory, at: number, bufferLength: number): void {
  memory.write32(at, r.chance(0.9) ? FUZZ_GUEST_CID : r.next());
  memory.write32(at + 4, r.chance(0.95) ? 0 : r.next());
  memory.write32(at + 8, r.chance(0.9) ? 2 : r.next());
  memory.write32(at + 12, r.chance(0.95) ? 0 : r.next());
  memory.write32(at + 16, r.chance(0.9) ? 1000 + r.below(4) : r.next());
  memory.write32(at + 20, r.chance(0.9) ? FUZZ_VSOCK_PORTS[r.below(FUZZ_VSOCK_PORTS.length)] : r.next());
  memory.write32(at + 24, r.chance(0.8) ? Math.max(0, bufferLength - 44) : r.chance(0.5) ? r.below(100) : r.next());
  memory.write16(at + 28, r.chance(0.9) ? 1 : r.below(4));
  memory.write16(at + 30, r.chance(0.95) ? r.below(8) : r.next() & 0xffff);
  memory.write32(at + 32, r.below(4));
  memory.write32(at + 36, r.chance(0.8) ? 65536 : r.next());
  memory.write32(at + 40, r.chance(0.8) ? r.below(65536) : r.next());
}

/** Fills queue `q`'s descriptor table with a mix of plausible chains (shaped for the device) and garbage. */
function buildRing(r: Rng, d: TestVirtioDriver, size: number, shape: ChainShape, q = 0): number {
  const memory = d.memory;
  const blkShaped = shape === 'blk';
  const table = ringBase(q);
  let nextFree = 0;
  let published = 0;
  const chains = 1 + r.below(Math.min(size, 6));
  for (let c = 0; c < chains && nextFree < size; c++) {
    const head = nextFree;
    if (r.chance(0.15)) {
      // An indirect table, possibly malformed.
      const t = 0x58000 + 0x100 * r.below(16);
      const entries = 1 + r.below(4);
      for (let i = 0; i < entries; i++) {
        const flags = r.chance(0.9) ? (i < entries - 1 ? VIRTQ_DESC_F_NEXT : 0) | (i > 0 && r.chance(0.7) ? VIRTQ_DESC_F_WRITE : 0) : r.below(8);
        d.writeDescriptor(t, i, r.chance(0.8) ? 0x60000 + r.below(0x80000) : address(r), r.chance(0.8) ? 1 + r.below(600) : length(r), flags,
          r.chance(0.9) ? i + 1 : r.below(20));
      }
      const tableLength = r.chance(0.85) ? 16 * entries : length(r);
      d.writeDescriptor(table, head, r.chance(0.9) ? t : address(r), tableLength, r.chance(0.9) ? VIRTQ_DESC_F_INDIRECT : r.below(8), r.below(size + 2));
      nextFree++;
    } else {
      const n = Math.min(size - nextFree, 1 + r.below(4));
      for (let i = 0; i < n; i++) {
        const last = i === n - 1;
        let flags = (last ? 0 : VIRTQ_DESC_F_NEXT) | (i > 0 && (last || r.chance(0.5)) ? VIRTQ_DESC_F_WRITE : 0);
        let len = r.chance(0.85) ? (blkShaped && i === 0 ? 16 : last ? 1 + r.below(3) : 512 * (1 + r.below(4))) : length(r);
        if (shape === 'vsock' && i === 0 && r.chance(0.8)) len = r.chance(0.5) ? 44 : 44 + r.below(300);
        if (shape === 'net' && i === 0 && r.chance(0.8)) len = r.chance(0.3) ? 12 : 12 + r.below(1600);
        if (shape !== 'plain' && i === 0) flags &= ~VIRTQ_DESC_F_WRITE;
        if (r.chance(0.05)) flags = r.below(8);
        if (r.chance(0.02)) len = 0;
        const buf = r.chance(0.9) ? 0x60000 + 0x1000 * r.below(0x70) : address(r);
        const next = r.chance(0.95) ? head + i + 1 : r.below(size + 4);
        d.writeDescriptor(table, head + i, buf, len, flags, next);
        if (blkShaped && i === 0 && len >= 16 && memory.contains(buf, 16)) {
          const types = [0, 1, 4, 8, 11, 13, r.next()];
          memory.write32(buf, types[r.below(types.length)]);
          memory.write32(buf + 8, r.chance(0.8) ? r.below(200) : r.next());
          memory.write32(buf + 12, r.chance(0.9) ? 0 : r.next());
          // A discard/write-zeroes range right after the header, when the next buffer holds one.
        }
        if (shape === 'vsock' && i === 0 && len >= 44 && memory.contains(buf, 44)) vsockHeader(r, memory, buf, len);
      }
      nextFree += n;
    }
    d.publish(q, r.chance(0.97) ? head : r.below(size + 8));
    published++;
  }
  if (r.chance(0.03)) {
    // The driver claims far more buffers than it has.
    memory.write16(ringBase(q) + 0x1000 + 2, published + size + r.below(1000));
    published = -1;
  }
  return published;
}

/** Random writes into the BAR (common config, notify, ISR, MSI-X table) and config space. */
function pokeTransport(r: Rng, fn: VirtioPciFunction, d: TestVirtioDriver): void {
  for (let i = 0; i < 1 + r.below(4); i++) {
    const sizes = [1, 2, 4] as const;
    const size = sizes[r.below(3)];
    const regions = [VirtioPciLayout.COMMON, VirtioPciLayout.ISR, VirtioPciLayout.DEVICE, VirtioPciLayout.NOTIFY, VirtioPciLayout.MSIX_TABLE, VirtioPciLayout.MSIX_PBA];
    const offset = regions[r.below(regions.length)] + r.below(0x48);
    if (r.chance(0.5)) d.bar.write(offset, size, r.next());
    else d.bar.read(offset, size);
    if (r.chance(0.2)) fn.configWrite(r.below(256) & ~(size - 1), size, r.next());
  }
}

interface FuzzOptions {
  /** The queue each case fills (default 0). */
  queue?: (r: Rng) => number;
  /** Whether every published chain of queue q must complete (default: yes); receive queues wait for data. */
  completes?: (q: number) => boolean;
  shape?: ChainShape;
  /** Runs after each case's kicks (e.g. host traffic for a receive queue). */
  afterKick?: (r: Rng, d: TestVirtioDriver, q: number) => void;
}

async function fuzzDevice(t: { diagnostic(message: string): void }, name: string, device: VirtioDevice, settle: () => Promise<void>, seed: number, options: FuzzOptions = {}): Promise<void> {
  const { memory, outer } = guardedMemory();
  const irq = new RecordingInterruptController();
  const fn = new VirtioPciFunction({ device, memory, interrupts: irq });
  const d = new TestVirtioDriver(fn, memory);
  const r = new Rng(seed);
  const started = performance.now();
  let completed = 0;
  let broken = 0;
  let resetByPoke = 0;
  let waiting = 0;
  const shape: ChainShape = options.shape ?? (device.deviceType === 2 ? 'blk' : 'plain');
  for (let i = 0; i < CASES; i++) {
    const caseSeed = r.next() || 1;
    const cr = new Rng(caseSeed);
    const sizes = [device.queueMaxSizes[0], 8, 16, 1, 2];
    const bad = [0, 3, 48, 65535, device.queueMaxSizes[0] * 2];
    const queueSize = cr.chance(0.97) ? sizes[cr.below(sizes.length)] : bad[cr.below(bad.length)];
    let status: number;
    try {
      status = d.init({ queueSize, msix: cr.chance(0.3) });
    } catch (e) {
      assert.fail(`${name} case ${i} (seed ${caseSeed}): init threw ${(e as Error).stack}`);
    }
    if ((status & VirtioStatus.DEVICE_NEEDS_RESET) !== 0) {
      broken++;
      continue;
    }
    assert.ok((status & VirtioStatus.DRIVER_OK) !== 0, `${name} case ${i}: driver ok`);
    let published: number;
    const q = options.queue?.(cr) ?? 0;
    try {
      published = buildRing(cr, d, queueSize, shape, q);
      if (cr.chance(0.1)) pokeTransport(cr, fn, d);
      if (cr.chance(0.03)) d.kick(device.queueMaxSizes.length + cr.below(3)); // a queue that does not exist
      d.kick(q);
      options.afterKick?.(cr, d, q);
      await settle();
      if (cr.chance(0.05)) d.kick(q); // a second notify with nothing new
      await settle();
    } catch (e) {
      assert.fail(`${name} case ${i} (seed ${caseSeed}): threw out of the device: ${(e as Error).stack}`);
    }
    const usedIdx = memory.read16(ringBase(q) + 0x3000 + 2);
    const mustComplete = options.completes?.(q) ?? true;
    const nowBroken = (fn.core.status & VirtioStatus.DEVICE_NEEDS_RESET) !== 0;
    const reset = fn.core.status === 0 || (fn.core.status & VirtioStatus.DRIVER_OK) === 0; // a random poke reset or unset the device
    if (nowBroken) broken++;
    else if (usedIdx === published) completed++;
    else if (reset) resetByPoke++;
    else if (!mustComplete) {
      // A receive queue: chains wait for host data, but the device never returns more than it was given.
      assert.ok(published < 0 || ((published - usedIdx) & 0xffff) <= published, `${name} case ${i} (seed ${caseSeed}): used ${usedIdx} beyond published ${published}`);
      waiting++;
    }
    else assert.ok(usedIdx === published, `${name} case ${i} (seed ${caseSeed}): ${usedIdx} used of ${published} published, not broken`);
    if (i % 10_000 === 0) assert.ok(canariesIntact(outer), `${name} case ${i}: memory outside guest RAM changed`);
  }
  assert.ok(canariesIntact(outer), `${name}: memory outside guest RAM changed`);
  const ms = performance.now() - started;
  t.diagnostic(`${name}: ${CASES} cases in ${Math.round(ms)} ms: ${completed} completed every chain, ${broken} marked DEVICE_NEEDS_RESET, ${resetByPoke} reset or stopped by random register writes, ${waiting} receive rings partly waiting for host data`);
  assert.ok(completed > CASES / 10, `${name}: too few well-formed cases completed (${completed})`);
  assert.ok(broken > CASES / 10, `${name}: too few malformed cases detected (${broken})`);
}

test('fuzz: virtio-rng queue handling survives 100,000 generated rings', async (t) => {
  await fuzzDevice(t, 'virtio-rng', new VirtioRng(), async () => {}, 0x1234567);
});

test('fuzz: virtio-blk queue handling survives 100,000 generated rings', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'typevisor-fuzz-'));
  try {
    const path = join(dir, 'disk.img');
    await writeFile(path, new Uint8Array(128 * 512));
    const disk = await DiskImage.open({ path, readOnly: false, id: 'fuzz' });
    const blk = new VirtioBlk(disk);
    await fuzzDevice(t, 'virtio-blk', blk, async () => {
      if (blk.inFlight > 0) await blk.idle();
    }, 0x7654321);
    t.diagnostic(`virtio-blk request statuses: ${JSON.stringify(blk.completed)}`);
    await disk.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/** A host network that always has a frame waiting and accepts every frame. */
class FloodBackend implements NetBackend {
  private readonly r = new Rng(0xbeef);
  framesRead = 0;
  framesWritten = 0;
  readFrame(buffer: Uint8Array): number {
    const n = Math.min(buffer.length, this.r.chance(0.9) ? 14 + this.r.below(1500) : 14 + this.r.below(65000));
    buffer[0] = this.r.below(256);
    this.framesRead++;
    return n;
  }
  writeFrame(): boolean {
    this.framesWritten++;
    return true;
  }
  watchReadable(): void {}
  close(): void {}
}

test('fuzz: virtio-net queue handling survives 100,000 generated rings', async (t) => {
  const backend = new FloodBackend();
  const net = new VirtioNet(backend, new Uint8Array([2, 0, 0, 0, 0, 1]));
  await fuzzDevice(t, 'virtio-net', net, async () => {}, 0x2468ace, {
    shape: 'net',
    queue: (r) => (r.chance(0.5) ? NetQueue.RX : NetQueue.TX),
    completes: (q) => q === NetQueue.TX,
  });
  t.diagnostic(`virtio-net: ${backend.framesRead} frames received, ${backend.framesWritten} sent, ${JSON.stringify(net.stats)}`);
});

test('fuzz: virtio-vsock queue handling survives 100,000 generated rings', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'typevisor-fuzz-'));
  const udsPath = join(dir, 'v.sock');
  const echo = createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => undefined);
    s.on('data', (d) => s.write(d));
  });
  await new Promise<void>((resolve) => echo.listen(`${udsPath}_${FUZZ_VSOCK_PORTS[0]}`, resolve));
  const vsock = new VirtioVsock({ guestCid: FUZZ_GUEST_CID, udsPath });
  try {
    await vsock.listen();
    let caseNumber = 0;
    await fuzzDevice(t, 'virtio-vsock', vsock, async () => {
      // Let socket events (connects, echoes, errors) run now and then.
      if (++caseNumber % 64 === 0) await new Promise((resolve) => setImmediate(resolve));
    }, 0x1357bdf, {
      shape: 'vsock',
      queue: (r) => (r.chance(0.7) ? VsockQueue.TX : r.chance(0.9) ? VsockQueue.RX : VsockQueue.EVENT),
      completes: (q) => q === VsockQueue.TX,
      afterKick: (r, d, q) => {
        if (q !== VsockQueue.TX || !r.chance(0.7) || (d.status & VirtioStatus.DEVICE_NEEDS_RESET) !== 0) return;
        // Receive buffers for the device's answers (RST, RESPONSE, echoed data).
        for (let i = 0; i < 1 + r.below(6); i++) d.add(VsockQueue.RX, [{ address: 0xd0000 + 0x200 * i, length: r.chance(0.9) ? 44 + r.below(400) : r.below(60), writable: true }]);
        d.kick(VsockQueue.RX);
      },
    });
    t.diagnostic(`virtio-vsock: ${JSON.stringify(vsock.stats)}`);
  } finally {
    vsock.close();
    echo.close();
    await rm(dir, { recursive: true, force: true });
  }
});
