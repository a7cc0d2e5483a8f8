import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { GuestMemory } from '../../machine/memory.js';
import { MiB } from '../../machine/layout.js';
import { RecordingInterruptController } from '../fakes.js';
import { defaultMac, formatMac, NetQueue, VirtioNet, VirtioNetFeature, VIRTIO_NET_HDR_SIZE } from './net.js';
import { TapBackend, TapError, type NetBackend } from './backends/tap.js';
import { LINUX_TRANSPORT_FEATURES, TestVirtioDriver } from './test-driver.js';
import { VirtioPciFunction, VirtioPciLayout } from './virtio-pci.js';
import { featureWords, VirtioStatus } from './virtio.js';

/** A backend with a queue of frames the "host" sent and a list of frames the guest sent. */
class FakeBackend implements NetBackend {
  readonly incoming: Uint8Array[] = [];
  readonly sent: Uint8Array[] = [];
  handler: (() => void) | undefined;
  reads = 0;
  readFrame(buffer: Uint8Array): number {
    this.reads++;
    const f = this.incoming.shift();
    if (f === undefined) return 0;
    buffer.set(f);
    return f.length;
  }
  writeFrame(frame: Uint8Array): boolean {
    this.sent.push(new Uint8Array(frame));
    return true;
  }
  watchReadable(handler: (() => void) | undefined): void {
    this.handler = handler;
  }
  close(): void {}
  /** The host delivers a frame (as the tap becoming readable would). */
  inject(frame: Uint8Array): void {
    this.incoming.push(frame);
    this.handler?.();
  }
}

const RXBUF = 0x100000;
const TXBUF = 0x200000;

function frame(length: number, seed: number): Uint8Array {
  const f = new Uint8Array(length);
  for (let i = 0; i < length; i++) f[i] = (i * 13 + seed) & 0xff;
  return f;
}

function setup(backend: NetBackend, accept?: readonly [number, number]) {
  const memory = GuestMemory.allocate(4 * MiB);
  const net = new VirtioNet(backend, defaultMac('tvtest0'));
  const fn = new VirtioPciFunction({ device: net, memory, interrupts: new RecordingInterruptController() });
  const driver = new TestVirtioDriver(fn, memory);
  const status = driver.init(accept !== undefined ? { accept } : {});
  assert.equal(status & VirtioStatus.DRIVER_OK, VirtioStatus.DRIVER_OK);
  let nextRx = 0;
  const postRx = (count: number, size: number): void => {
    for (let i = 0; i < count; i++) {
      driver.add(NetQueue.RX, [{ address: RXBUF + (nextRx++ % 32) * 0x10000, length: size, writable: true }]);
    }
    driver.kick(NetQueue.RX);
  };
  let nextTx = 0;
  const send = (f: Uint8Array): void => {
    const at = TXBUF + (nextTx++ % 16) * 0x10000;
    memory.fill(at, VIRTIO_NET_HDR_SIZE, 0);
    memory.writeBytes(at + VIRTIO_NET_HDR_SIZE, f);
    driver.add(NetQueue.TX, [{ address: at, length: VIRTIO_NET_HDR_SIZE + f.length, writable: false }]);
    driver.kick(NetQueue.TX);
  };
  return { memory, net, fn, driver, postRx, send };
}

test('default MAC is deterministic, unicast and locally administered', () => {
  const a = defaultMac('tap0');
  assert.deepEqual(a, defaultMac('tap0'));
  assert.notDeepEqual(a, defaultMac('tap1'));
  assert.equal(a[0] & 1, 0);
  assert.equal(a[0] & 2, 2);
  assert.match(formatMac(a), /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
});

test('config space has the MAC and link up; features offer MAC, STATUS, MRG_RXBUF only', () => {
  const { driver, net } = setup(new FakeBackend());
  const cfg = (o: number) => driver.bar.read(VirtioPciLayout.DEVICE + o, 1);
  for (let i = 0; i < 6; i++) assert.equal(cfg(i), net.mac[i]);
  assert.equal(driver.bar.read(VirtioPciLayout.DEVICE + 6, 2), 1);
  const [low] = driver.deviceFeatures();
  assert.equal(low & (1 << VirtioNetFeature.CSUM), 0);
  assert.equal(low & (1 << VirtioNetFeature.GUEST_CSUM), 0);
  assert.notEqual(low & (1 << VirtioNetFeature.MRG_RXBUF), 0);
});

test('receive: frames land in guest buffers with a 12-byte header; no buffers means no reads', () => {
  const backend = new FakeBackend();
  const { driver, memory, postRx } = setup(backend);
  // No buffers yet: the backend is not even watched, so the tap queue holds frames.
  assert.equal(backend.handler, undefined);
  backend.incoming.push(frame(60, 1), frame(1514, 2));
  assert.equal(backend.reads, 0);
  postRx(1, 2048);
  const used = driver.takeUsed(NetQueue.RX);
  assert.equal(used.length, 1);
  assert.equal(used[0].len, VIRTIO_NET_HDR_SIZE + 60);
  assert.equal(memory.read16(RXBUF + 10), 1, 'num_buffers');
  assert.deepEqual(memory.readBytes(RXBUF + VIRTIO_NET_HDR_SIZE, 60), frame(60, 1));
  // One frame still waits on the host side; the device stopped reading (backpressure).
  assert.equal(backend.incoming.length, 1);
  assert.equal(backend.handler, undefined);
  postRx(1, 2048);
  const used2 = driver.takeUsed(NetQueue.RX);
  assert.equal(used2[0].len, VIRTIO_NET_HDR_SIZE + 1514);
  assert.deepEqual(memory.readBytes(RXBUF + 0x10000 + VIRTIO_NET_HDR_SIZE, 1514), frame(1514, 2));
  // Buffers available and nothing waiting: the device watches the backend and delivers on readiness.
  postRx(4, 2048);
  assert.notEqual(backend.handler, undefined);
  backend.inject(frame(100, 3));
  assert.equal(driver.takeUsed(NetQueue.RX)[0].len, VIRTIO_NET_HDR_SIZE + 100);
});

test('receive with MRG_RXBUF spreads a large frame over several buffers, published together', () => {
  const backend = new FakeBackend();
  const { driver, memory, postRx, net } = setup(backend);
  backend.incoming.push(frame(3000, 9));
  postRx(2, 1024); // not enough room yet: 2 KiB for 3012 bytes
  assert.equal(driver.takeUsed(NetQueue.RX).length, 0, 'nothing published before the frame is complete');
  postRx(2, 1024);
  const used = driver.takeUsed(NetQueue.RX);
  assert.deepEqual(used.map((u) => u.len), [1024, 1024, 964]);
  assert.equal(memory.read16(RXBUF + 10), 3);
  const got = new Uint8Array(3000);
  got.set(memory.readBytes(RXBUF + 12, 1012), 0);
  got.set(memory.readBytes(RXBUF + 0x10000, 1024), 1012);
  got.set(memory.readBytes(RXBUF + 0x20000, 964), 2036);
  assert.deepEqual(got, frame(3000, 9));
  assert.equal(net.stats.rxFrames, 1);
});

test('receive without MRG_RXBUF truncates to one buffer', () => {
  const backend = new FakeBackend();
  const { driver, net, postRx } = setup(backend, LINUX_TRANSPORT_FEATURES.map((w, i) => w | featureWords(VirtioNetFeature.MAC)[i]) as unknown as [number, number]);
  backend.incoming.push(frame(3000, 9));
  postRx(1, 1024);
  assert.deepEqual(driver.takeUsed(NetQueue.RX).map((u) => u.len), [1024]);
  assert.equal(net.stats.rxTruncated, 1);
});

test('transmit: the frame after the header goes to the backend; bad chains are dropped, not fatal', () => {
  const backend = new FakeBackend();
  const { driver, send, fn, net } = setup(backend);
  send(frame(60, 5));
  send(frame(1514, 6));
  assert.deepEqual(backend.sent, [frame(60, 5), frame(1514, 6)]);
  assert.equal(driver.takeUsed(NetQueue.TX).length, 2);
  // A header-only chain and a write-only chain: dropped and completed.
  driver.add(NetQueue.TX, [{ address: TXBUF, length: 8, writable: false }]);
  driver.add(NetQueue.TX, [{ address: TXBUF, length: 100, writable: true }]);
  driver.kick(NetQueue.TX);
  assert.equal(driver.takeUsed(NetQueue.TX).length, 2);
  assert.equal(net.stats.txDropped, 2);
  assert.equal(fn.core.status & VirtioStatus.DEVICE_NEEDS_RESET, 0);
});

function sh(...args: string[]): string {
  return execFileSync(args[0], args.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function canUseNetns(): boolean {
  try {
    sh('ip', '-V');
    return process.getuid?.() === 0;
  } catch {
    return false;
  }
}

test('tap backend errors are one clear line', () => {
  assert.throws(() => TapBackend.open('a-name-that-is-far-too-long'), (e: unknown) => e instanceof TapError && /1 to 15 bytes/.test(e.message));
});

test('real tap in a private network namespace: ARP from the host reaches the guest, the guest reply reaches the host', { skip: !canUseNetns() && 'needs root and iproute2' }, async () => {
  const ns = `tvnet${process.pid}`;
  const tap = `tvt${process.pid % 100000}`;
  sh('ip', 'netns', 'add', ns);
  let backend: TapBackend | undefined;
  try {
    sh('ip', 'tuntap', 'add', 'dev', tap, 'mode', 'tap');
    backend = TapBackend.open(tap);
    // A second attach is refused with one line.
    assert.throws(() => TapBackend.open(tap), (e: unknown) => e instanceof TapError && /busy/.test(e.message));
    sh('ip', 'link', 'set', tap, 'netns', ns);
    sh('ip', 'netns', 'exec', ns, 'ip', 'addr', 'add', '10.213.0.1/24', 'dev', tap);
    sh('ip', 'netns', 'exec', ns, 'ip', 'link', 'set', tap, 'up');
    const { driver, memory, postRx, send, net } = setup(backend);
    postRx(8, 2048);
    // The host sends a UDP datagram to the "guest" address: its kernel first broadcasts an ARP request out of the tap.
    sh('ip', 'netns', 'exec', ns, process.execPath, '-e',
      "const s=require('dgram').createSocket('udp4');s.send('hi',9,'10.213.0.2',()=>s.close())");
    let arp: Uint8Array | undefined;
    for (let i = 0; i < 100 && arp === undefined; i++) {
      await new Promise((r) => setTimeout(r, 10));
      for (const u of driver.takeUsed(NetQueue.RX)) {
        const base = RXBUF + u.id * 0x10000;
        const f = memory.readBytes(base + VIRTIO_NET_HDR_SIZE, u.len - VIRTIO_NET_HDR_SIZE);
        // ethertype ARP, op request, target IP 10.213.0.2
        if (f[12] === 0x08 && f[13] === 0x06 && f[21] === 1 && f[38] === 10 && f[39] === 213 && f[41] === 2) arp = f;
      }
    }
    assert.ok(arp !== undefined, 'the ARP request reached a guest receive buffer');
    // The guest answers: 10.213.0.2 is-at our MAC.
    const reply = new Uint8Array(42);
    reply.set(arp.subarray(6, 12), 0); // to the requester
    reply.set(net.mac, 6);
    reply.set([0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2], 12);
    reply.set(net.mac, 22);
    reply.set([10, 213, 0, 2], 28);
    reply.set(arp.subarray(22, 32), 32); // sender MAC + IP become target
    send(reply);
    assert.equal(net.stats.txFrames, 1);
    const neigh = sh('ip', 'netns', 'exec', ns, 'ip', 'neigh', 'show', '10.213.0.2', 'dev', tap);
    assert.match(neigh, new RegExp(formatMac(net.mac)), `host neighbour table learnt the guest MAC: ${neigh}`);
  } finally {
    backend?.close();
    try {
      sh('ip', 'netns', 'exec', ns, 'ip', 'link', 'del', tap);
    } catch {
      // already gone
    }
    sh('ip', 'netns', 'del', ns);
  }
});

test('real tap: with no guest buffers the device leaves frames in the tap queue, then delivers them all', { skip: !canUseNetns() && 'needs root and iproute2' }, async () => {
  const ns = `tvbp${process.pid}`;
  const tap = `tvb${process.pid % 100000}`;
  sh('ip', 'netns', 'add', ns);
  let backend: TapBackend | undefined;
  try {
    sh('ip', 'tuntap', 'add', 'dev', tap, 'mode', 'tap');
    backend = TapBackend.open(tap);
    sh('ip', 'link', 'set', tap, 'netns', ns);
    sh('ip', 'netns', 'exec', ns, 'ip', 'addr', 'add', '10.214.0.1/24', 'dev', tap);
    sh('ip', 'netns', 'exec', ns, 'ip', 'link', 'set', tap, 'up');
    const { driver, memory, postRx, net } = setup(backend);
    sh('ip', 'netns', 'exec', ns, 'ip', 'neigh', 'add', '10.214.0.2', 'lladdr', formatMac(net.mac), 'dev', tap);
    const count = 200;
    sh('ip', 'netns', 'exec', ns, process.execPath, '-e',
      `const s=require('dgram').createSocket('udp4');let n=0;const b=Buffer.alloc(100,7);for(let i=0;i<${count};i++)s.send(b,9,'10.214.0.2',()=>{if(++n===${count})s.close()})`);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(net.stats.rxFrames, 0, 'nothing read without buffers');
    let udp = 0;
    for (let round = 0; round < 200 && udp < count; round++) {
      postRx(16, 2048);
      await new Promise((r) => setTimeout(r, 2));
      for (const u of driver.takeUsed(NetQueue.RX)) {
        const f = memory.readBytes(RXBUF + (u.id % 32) * 0x10000 + VIRTIO_NET_HDR_SIZE, 42);
        if (f[12] === 0x08 && f[13] === 0x00 && f[23] === 17) udp++;
      }
    }
    assert.equal(udp, count, 'every datagram waited in the tap queue and was delivered');
  } finally {
    backend?.close();
    try {
      sh('ip', 'netns', 'exec', ns, 'ip', 'link', 'del', tap);
    } catch {
      // already gone
    }
    sh('ip', 'netns', 'del', ns);
  }
});
