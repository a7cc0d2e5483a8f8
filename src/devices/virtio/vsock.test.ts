import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GuestMemory } from '../../machine/memory.js';
import { MiB } from '../../machine/layout.js';
import { RecordingInterruptController } from '../fakes.js';
import { TestVirtioDriver } from './test-driver.js';
import { VirtioPciFunction, VirtioPciLayout } from './virtio-pci.js';
import { VirtioStatus } from './virtio.js';
import { VirtioVsock, VsockError, VsockOp, VsockQueue, VsockShutdown, VSOCK_BUF_ALLOC, VSOCK_HDR_SIZE, VSOCK_HOST_CID } from './vsock.js';

const GUEST_CID = 42;
const RX_AREA = 0x100000;
const RX_BUF = VSOCK_HDR_SIZE + 4096;
const TX_AREA = 0x300000;

interface Packet {
  srcCid: number; dstCid: number; srcPort: number; dstPort: number; len: number;
  type: number; op: number; flags: number; bufAlloc: number; fwdCnt: number; payload: Uint8Array;
}

const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms));

/** A fake guest vsock driver over the test virtio-pci driver. */
class FakeGuest {
  readonly memory = GuestMemory.allocate(8 * MiB);
  readonly device: VirtioVsock;
  readonly fn: VirtioPciFunction;
  readonly driver: TestVirtioDriver;
  private rxSlot = 0;
  private txSlot = 0;
  readonly received: Packet[] = [];
  /** The guest's own receive accounting per connection ("hostPort:guestPort"). */
  bufAlloc = 64 * 1024;
  fwdCnt = 0;

  constructor(readonly dir: string) {
    this.device = new VirtioVsock({ guestCid: GUEST_CID, udsPath: join(dir, 'v.sock') });
    this.fn = new VirtioPciFunction({ device: this.device, memory: this.memory, interrupts: new RecordingInterruptController() });
    this.driver = new TestVirtioDriver(this.fn, this.memory);
    assert.equal(this.driver.init() & VirtioStatus.DRIVER_OK, VirtioStatus.DRIVER_OK);
  }

  /** Posts `count` receive buffers. */
  post(count: number): void {
    for (let i = 0; i < count; i++) {
      this.driver.add(VsockQueue.RX, [{ address: RX_AREA + (this.rxSlot++ % 256) * RX_BUF, length: RX_BUF, writable: true }]);
    }
    this.driver.kick(VsockQueue.RX);
  }

  /** Collects packets the device completed. */
  collect(): Packet[] {
    const out: Packet[] = [];
    for (const u of this.driver.takeUsed(VsockQueue.RX)) {
      const at = RX_AREA + u.id * RX_BUF;
      const m = this.memory;
      const len = m.read32(at + 24);
      out.push({
        srcCid: m.read32(at), dstCid: m.read32(at + 8), srcPort: m.read32(at + 16), dstPort: m.read32(at + 20), len,
        type: m.read16(at + 28), op: m.read16(at + 30), flags: m.read32(at + 32), bufAlloc: m.read32(at + 36), fwdCnt: m.read32(at + 40),
        payload: m.readBytes(at + VSOCK_HDR_SIZE, Math.min(len, u.len - VSOCK_HDR_SIZE)),
      });
    }
    this.received.push(...out);
    return out;
  }

  send(op: number, srcPort: number, dstPort: number, options: { payload?: Uint8Array; flags?: number; type?: number; srcCid?: number; dstCid?: number; len?: number } = {}): void {
    const at = TX_AREA + (this.txSlot++ % 64) * (VSOCK_HDR_SIZE + 65536);
    const m = this.memory;
    const payload = options.payload ?? new Uint8Array(0);
    m.write32(at, options.srcCid ?? GUEST_CID);
    m.write32(at + 4, 0);
    m.write32(at + 8, options.dstCid ?? VSOCK_HOST_CID);
    m.write32(at + 12, 0);
    m.write32(at + 16, srcPort);
    m.write32(at + 20, dstPort);
    m.write32(at + 24, options.len ?? payload.length);
    m.write16(at + 28, options.type ?? 1);
    m.write16(at + 30, op);
    m.write32(at + 32, options.flags ?? 0);
    m.write32(at + 36, this.bufAlloc);
    m.write32(at + 40, this.fwdCnt);
    m.writeBytes(at + VSOCK_HDR_SIZE, payload);
    this.driver.add(VsockQueue.TX, [{ address: at, length: VSOCK_HDR_SIZE + payload.length, writable: false }]);
    this.driver.kick(VsockQueue.TX);
    this.driver.takeUsed(VsockQueue.TX);
  }

  /** Waits until a packet matching `pred` arrives. */
  async waitFor(pred: (p: Packet) => boolean, what: string): Promise<Packet> {
    for (let i = 0; i < 400; i++) {
      this.collect();
      const index = this.received.findIndex(pred);
      if (index >= 0) return this.received.splice(index, 1)[0];
      await tick();
    }
    throw new Error(`timed out waiting for ${what}`);
  }

  get healthy(): boolean {
    return (this.fn.core.status & VirtioStatus.DEVICE_NEEDS_RESET) === 0;
  }
}

async function withGuest(fn: (g: FakeGuest, dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'typevisor-vsock-'));
  const g = new FakeGuest(dir);
  await g.device.listen();
  try {
    await fn(g, dir);
    assert.ok(g.healthy, `device healthy (${g.fn.core.lastError ?? ''})`);
  } finally {
    g.device.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function connectHost(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ path, allowHalfOpen: true }, () => resolve(s));
    s.once('error', reject);
  });
}

/** Reads from a socket until `n` bytes (or a line) arrived. */
function reader(s: Socket): { text: () => string; bytes: () => Buffer; ended: () => boolean; closed: () => boolean } {
  const chunks: Buffer[] = [];
  let ended = false;
  let closed = false;
  s.on('data', (c: Buffer) => chunks.push(c));
  s.on('end', () => { ended = true; });
  s.on('close', () => { closed = true; });
  return { text: () => Buffer.concat(chunks).toString(), bytes: () => Buffer.concat(chunks), ended: () => ended, closed: () => closed };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (cond()) return;
    await tick();
  }
  throw new Error(`timed out: ${what}`);
}

test('config space holds the guest cid; bad options are one-line errors', () => {
  assert.throws(() => new VirtioVsock({ guestCid: 2, udsPath: '/tmp/x' }), VsockError);
  assert.throws(() => new VirtioVsock({ guestCid: 3, udsPath: '' }), VsockError);
  const dir = mkdtempSync(join(tmpdir(), 'typevisor-vsock-'));
  try {
    const g = new FakeGuest(dir);
    assert.equal(g.driver.bar.read(VirtioPciLayout.DEVICE, 4), GUEST_CID);
    assert.equal(g.driver.bar.read(VirtioPciLayout.DEVICE + 4, 4), 0);
    assert.equal(g.fn.core.queues.length, 3);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('host → guest: CONNECT, REQUEST, RESPONSE, OK, then echo both ways', async () => {
  await withGuest(async (g) => {
    g.post(16);
    const s = await connectHost(g.device.udsPath);
    const r = reader(s);
    s.write('CONNECT 1234\nearly');
    const req = await g.waitFor((p) => p.op === VsockOp.REQUEST, 'REQUEST');
    assert.equal(req.dstPort, 1234);
    assert.equal(req.srcCid, VSOCK_HOST_CID);
    assert.equal(req.dstCid, GUEST_CID);
    assert.equal(req.bufAlloc, VSOCK_BUF_ALLOC);
    const hostPort = req.srcPort;
    g.send(VsockOp.RESPONSE, 1234, hostPort);
    await until(() => r.text() === `OK ${hostPort}\n`, 'OK line');
    // Bytes sent right after the CONNECT line are delivered after the handshake.
    const early = await g.waitFor((p) => p.op === VsockOp.RW, 'early data');
    assert.equal(Buffer.from(early.payload).toString(), 'early');
    s.write('hello');
    const rw = await g.waitFor((p) => p.op === VsockOp.RW, 'RW');
    assert.equal(Buffer.from(rw.payload).toString(), 'hello');
    g.send(VsockOp.RW, 1234, hostPort, { payload: Buffer.from('world') });
    await until(() => r.text().endsWith('world'), 'echo to host');
    // Guest shuts down both ways (close): the device answers RST and the host socket closes.
    g.send(VsockOp.SHUTDOWN, 1234, hostPort, { flags: VsockShutdown.RCV | VsockShutdown.SEND });
    await g.waitFor((p) => p.op === VsockOp.RST && p.srcPort === hostPort, 'RST after SHUTDOWN');
    await until(() => r.ended() || r.closed(), 'host socket closed');
    assert.equal(g.device.openConnections, 0);
  });
});

test('host → guest: a refusing guest (RST) closes the host connection; a bad CONNECT line is closed', async () => {
  await withGuest(async (g) => {
    g.post(8);
    const s = await connectHost(g.device.udsPath);
    const r = reader(s);
    s.write('CONNECT 77\n');
    const req = await g.waitFor((p) => p.op === VsockOp.REQUEST, 'REQUEST');
    g.send(VsockOp.RST, 77, req.srcPort);
    await until(() => r.ended() || r.closed(), 'closed after RST');
    assert.equal(r.text(), '');
    const bad = await connectHost(g.device.udsPath);
    const rb = reader(bad);
    bad.write('HELLO 1\n');
    await until(() => rb.ended() || rb.closed(), 'closed after a bad line');
    assert.equal(g.device.openConnections, 0);
  });
});

function listen(path: string, onConnection: (s: Socket) => void): Promise<Server> {
  return new Promise((resolve) => {
    const server = createServer({ allowHalfOpen: true }, onConnection);
    server.listen(path, () => resolve(server));
  });
}

test('guest → host: REQUEST reaches <uds>_<port>, echo works, shutdown both ways', async () => {
  await withGuest(async (g) => {
    const seen: Socket[] = [];
    const server = await listen(`${g.device.udsPath}_5000`, (s) => {
      seen.push(s);
      s.on('data', (d) => s.write(d)); // echo
      s.on('end', () => s.end()); // half-close back
    });
    try {
      g.post(16);
      g.send(VsockOp.REQUEST, 1000, 5000);
      const resp = await g.waitFor((p) => p.op === VsockOp.RESPONSE, 'RESPONSE');
      assert.equal(resp.dstPort, 1000);
      assert.equal(resp.srcPort, 5000);
      g.send(VsockOp.RW, 1000, 5000, { payload: Buffer.from('ping over vsock') });
      const echo = await g.waitFor((p) => p.op === VsockOp.RW, 'echo');
      assert.equal(Buffer.from(echo.payload).toString(), 'ping over vsock');
      // Guest SHUTDOWN(SEND) → the host sees EOF, ends too → the guest gets SHUTDOWN(SEND), then RST when the socket is gone.
      g.send(VsockOp.SHUTDOWN, 1000, 5000, { flags: VsockShutdown.SEND });
      const sd = await g.waitFor((p) => p.op === VsockOp.SHUTDOWN, 'SHUTDOWN from host');
      assert.equal(sd.flags & VsockShutdown.SEND, VsockShutdown.SEND);
      await g.waitFor((p) => p.op === VsockOp.RST, 'final RST');
      assert.equal(g.device.openConnections, 0);
      assert.equal(seen.length, 1);
    } finally {
      server.close();
    }
  });
});

test('guest → host: nothing listening means RST; unknown connections and wrong types get RST', async () => {
  await withGuest(async (g) => {
    g.post(16);
    g.send(VsockOp.REQUEST, 1001, 6000);
    const rst = await g.waitFor((p) => p.op === VsockOp.RST, 'RST');
    assert.equal(rst.srcPort, 6000);
    assert.equal(rst.dstPort, 1001);
    g.send(VsockOp.RW, 1002, 6001, { payload: Buffer.from('x') });
    await g.waitFor((p) => p.op === VsockOp.RST && p.dstPort === 1002, 'RST for unknown');
    g.send(VsockOp.REQUEST, 1003, 6002, { type: 2 });
    await g.waitFor((p) => p.op === VsockOp.RST && p.dstPort === 1003, 'RST for seqpacket');
    // Wrong cids are dropped silently.
    g.send(VsockOp.REQUEST, 1004, 6003, { srcCid: 7 });
    g.send(VsockOp.REQUEST, 1005, 6003, { dstCid: 9 });
    await tick(20);
    assert.equal(g.collect().length, 0);
    assert.equal(g.device.stats.malformed, 2);
  });
});

test('credit: host → guest stops at the guest buf_alloc and resumes on CREDIT_UPDATE', async () => {
  await withGuest(async (g) => {
    let server: Socket | undefined;
    const srv = await listen(`${g.device.udsPath}_7000`, (s) => { server = s; });
    try {
      g.bufAlloc = 8192;
      g.post(64);
      g.send(VsockOp.REQUEST, 1000, 7000);
      await g.waitFor((p) => p.op === VsockOp.RESPONSE, 'RESPONSE');
      await until(() => server !== undefined, 'server side');
      const big = Buffer.alloc(200 * 1024, 0x5a);
      server!.write(big);
      await tick(50);
      g.collect();
      const got = () => g.received.filter((p) => p.op === VsockOp.RW).reduce((n, p) => n + p.len, 0);
      assert.equal(got(), 8192, 'exactly the advertised buffer');
      // The device holds at most one socket chunk; the host socket is paused (its kernel buffer fills, not ours).
      await tick(30);
      g.collect();
      assert.equal(got(), 8192);
      g.fwdCnt = 8192;
      g.send(VsockOp.CREDIT_UPDATE, 1000, 7000);
      await until(() => { g.collect(); return got() === 16384; }, 'second window');
      // Let everything through with a big window and keep posting buffers.
      g.bufAlloc = 1 << 30;
      g.send(VsockOp.CREDIT_UPDATE, 1000, 7000);
      await until(() => { g.post(32); g.collect(); return got() === big.length; }, 'all data');
    } finally {
      srv.close();
    }
  });
});

test('credit: guest → host within our buf_alloc is forwarded and credited; an overrun gets RST', async () => {
  await withGuest(async (g) => {
    let received = 0;
    let server: Socket | undefined;
    const srv = await listen(`${g.device.udsPath}_7001`, (s) => { server = s; s.on('data', (d) => { received += d.length; }); });
    try {
      g.post(64);
      g.send(VsockOp.REQUEST, 1000, 7001);
      const resp = await g.waitFor((p) => p.op === VsockOp.RESPONSE, 'RESPONSE');
      assert.equal(resp.bufAlloc, VSOCK_BUF_ALLOC);
      await until(() => server !== undefined, 'server');
      const chunk = new Uint8Array(60000).fill(7);
      for (let sent = 0; sent + chunk.length <= VSOCK_BUF_ALLOC; sent += chunk.length) g.send(VsockOp.RW, 1000, 7001, { payload: chunk });
      await until(() => received === 4 * 60000, 'forwarded');
      // The device tells the guest about the space it freed (unprompted: the guest's view was below half).
      const update = await g.waitFor((p) => p.op === VsockOp.CREDIT_UPDATE, 'CREDIT_UPDATE');
      assert.ok(update.fwdCnt > 0 && update.fwdCnt <= 240000);
      g.received.length = 0;
      // CREDIT_REQUEST is answered.
      g.send(VsockOp.CREDIT_REQUEST, 1000, 7001);
      const answer = await g.waitFor((p) => p.op === VsockOp.CREDIT_UPDATE, 'answer');
      assert.equal(answer.fwdCnt, 240000);
      // Overrun: more than buf_alloc beyond what was forwarded.
      g.send(VsockOp.RW, 1000, 7001, { payload: new Uint8Array(60000) });
      g.send(VsockOp.RW, 1000, 7001, { payload: new Uint8Array(60000) });
      g.send(VsockOp.RW, 1000, 7001, { payload: new Uint8Array(60000) });
      g.send(VsockOp.RW, 1000, 7001, { payload: new Uint8Array(60000) });
      g.send(VsockOp.RW, 1000, 7001, { payload: new Uint8Array(60000) });
      g.send(VsockOp.RW, 1000, 7001, { payload: new Uint8Array(60000) });
      await g.waitFor((p) => p.op === VsockOp.RST, 'RST on overrun');
    } finally {
      srv.close();
    }
  });
});

test('host EOF reaches the guest as SHUTDOWN(SEND); the guest close then gets RST', async () => {
  await withGuest(async (g) => {
    g.post(16);
    const s = await connectHost(g.device.udsPath);
    const r = reader(s);
    s.write('CONNECT 99\n');
    const req = await g.waitFor((p) => p.op === VsockOp.REQUEST, 'REQUEST');
    g.send(VsockOp.RESPONSE, 99, req.srcPort);
    await until(() => r.text().startsWith('OK'), 'OK');
    s.end('bye');
    const rw = await g.waitFor((p) => p.op === VsockOp.RW, 'data before EOF');
    assert.equal(Buffer.from(rw.payload).toString(), 'bye');
    const sd = await g.waitFor((p) => p.op === VsockOp.SHUTDOWN, 'SHUTDOWN');
    assert.equal(sd.flags, VsockShutdown.SEND);
    // The host can still read (half-close): the guest answers, then closes.
    g.send(VsockOp.RW, 99, req.srcPort, { payload: Buffer.from('reply') });
    await until(() => r.text().endsWith('reply'), 'reply after half-close');
    g.send(VsockOp.SHUTDOWN, 99, req.srcPort, { flags: VsockShutdown.RCV | VsockShutdown.SEND });
    await g.waitFor((p) => p.op === VsockOp.RST, 'RST');
    await until(() => r.ended() || r.closed(), 'host closed');
  });
});

test('a driver reset drops every connection', async () => {
  await withGuest(async (g) => {
    g.post(8);
    const s = await connectHost(g.device.udsPath);
    const r = reader(s);
    s.write('CONNECT 5\n');
    await g.waitFor((p) => p.op === VsockOp.REQUEST, 'REQUEST');
    assert.equal(g.device.openConnections, 1);
    g.driver.setCommon(0x14, 1, 0); // device_status = 0
    assert.equal(g.device.openConnections, 0);
    await until(() => r.ended() || r.closed(), 'host socket closed on reset');
    g.driver.init();
  });
});

test('credit: a host reader that stops reading stalls the guest, and the VMM never holds more than buf_alloc', async (t) => {
  await withGuest(async (g) => {
    let server: Socket | undefined;
    let received = 0;
    const srv = await listen(`${g.device.udsPath}_7002`, (s) => {
      server = s;
      s.pause(); // a reader that does not read
    });
    try {
      g.post(200);
      g.send(VsockOp.REQUEST, 1000, 7002);
      await g.waitFor((p) => p.op === VsockOp.RESPONSE, 'RESPONSE');
      await until(() => server !== undefined, 'server');
      // The guest sends as its credit allows, learning fwd_cnt from every packet the device sends.
      const chunk = new Uint8Array(32768).fill(3);
      let sent = 0;
      let peerFwd = 0;
      let maxBacklog = 0;
      for (let round = 0; round < 400; round++) {
        const packets = g.collect();
        for (const p of packets) peerFwd = Math.max(peerFwd, p.fwdCnt);
        if (packets.length > 0) g.post(packets.length); // give the buffers back
        if (g.received.length > 100) g.received.length = 0;
        if (VSOCK_BUF_ALLOC - (sent - peerFwd) >= chunk.length) {
          g.send(VsockOp.RW, 1000, 7002, { payload: chunk });
          sent += chunk.length;
        } else {
          g.send(VsockOp.CREDIT_REQUEST, 1000, 7002);
          await tick(2);
        }
        maxBacklog = Math.max(maxBacklog, g.device.hostBacklog);
      }
      assert.ok(g.healthy, g.fn.core.lastError);
      assert.equal(g.device.openConnections, 1, 'the guest never overran its credit');
      assert.ok(maxBacklog <= VSOCK_BUF_ALLOC, `VMM-side backlog ${maxBacklog} stayed within buf_alloc`);
      const stalledAt = sent;
      t.diagnostic(`guest stalled after ${stalledAt} bytes; VMM backlog peaked at ${maxBacklog} bytes`);
      assert.ok(stalledAt < 16 * 1024 * 1024, `the guest stalled after ${stalledAt} bytes (kernel socket buffer + buf_alloc)`);
      assert.ok(sent - peerFwd > VSOCK_BUF_ALLOC - chunk.length, 'the guest is out of credit');
      // The reader starts reading: everything arrives and credit flows again.
      server!.on('data', (d: Buffer) => { received += d.length; });
      server!.resume();
      await until(() => received === stalledAt, 'all bytes delivered');
      g.send(VsockOp.CREDIT_REQUEST, 1000, 7002);
      const update = await g.waitFor((p) => p.op === VsockOp.CREDIT_UPDATE && p.fwdCnt === stalledAt, 'fwd_cnt caught up');
      assert.equal(update.bufAlloc, VSOCK_BUF_ALLOC);
    } finally {
      srv.close();
    }
  });
});
