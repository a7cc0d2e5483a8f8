/**
 * virtio-vsock (virtio 1.2, section 5.10) with Firecracker's host-side
 * protocol over Unix sockets.
 *
 * Queues: 0 rx (device → driver packets), 1 tx (driver → device), 2 event
 * (unused: the device never migrates, so it never posts TRANSPORT_RESET).
 * Config: guest_cid (le64). Only stream sockets; no feature bits.
 *
 * Host side:
 * - Host → guest: a host process connects to the Unix socket at `udsPath`
 *   and sends `CONNECT <port>\n`. The device picks a host port, sends the
 *   guest a REQUEST, and on the guest's RESPONSE answers `OK <host port>\n`;
 *   a RST (or no answer within 2 s) closes the host connection.
 * - Guest → host: a REQUEST to host port P makes the device connect to
 *   `<udsPath>_<P>`; RESPONSE on success, RST when nothing listens.
 *
 * Flow control is credit based both ways and nothing is buffered without
 * bound: guest → host data is accepted only within the buf_alloc the device
 * advertises (256 KiB per connection), and fwd_cnt grows only when a write has
 * been handed to the host socket, so the bytes Node holds for a connection
 * never exceed buf_alloc (a guest that overruns it gets a RST). Host → guest:
 * the device holds at most one chunk read from a host socket, pausing the
 * socket until the chunk has gone to the guest, and sends no more than the
 * guest's buf_alloc - (tx_cnt - fwd_cnt).
 *
 * Every packet from the guest is checked (chain length, len field, cids,
 * type, op); malformed packets are dropped, packets for unknown connections
 * answered with RST (bounded queue), and errors never leave `onQueueNotify`.
 */

import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { lstatSync, unlinkSync } from 'node:fs';
import { VirtioDeviceType, featureWords, type VirtioDevice, type VirtioDeviceContext } from './virtio.js';
import { DescriptorChain } from './virtqueue.js';

export const VSOCK_HOST_CID = 2;
export const VSOCK_HDR_SIZE = 44;
export const VsockOp = {
  INVALID: 0,
  REQUEST: 1,
  RESPONSE: 2,
  RST: 3,
  SHUTDOWN: 4,
  RW: 5,
  CREDIT_UPDATE: 6,
  CREDIT_REQUEST: 7,
} as const;
export const VSOCK_TYPE_STREAM = 1;
export const VsockShutdown = { RCV: 1, SEND: 2 } as const;
export const VsockQueue = { RX: 0, TX: 1, EVENT: 2 } as const;

/** Receive buffer space the device advertises per connection. */
export const VSOCK_BUF_ALLOC = 256 * 1024;
/** Largest payload in one packet either way (as Linux). */
export const VSOCK_MAX_PAYLOAD = 64 * 1024;
/** Most connections at once; further requests get RST. */
export const VSOCK_MAX_CONNECTIONS = 1024;
/** Most RSTs for unknown connections waiting for an rx buffer; more are dropped. */
const MAX_PENDING_RESETS = 256;
/** How long a host-initiated connection waits for the guest's RESPONSE. */
export const VSOCK_CONNECT_TIMEOUT_MS = 2000;
/** First host port handed out to host-initiated connections. */
const FIRST_LOCAL_PORT = 1 << 30;
const MAX_CONNECT_LINE = 64;
const QUEUE_SIZE = 256;

/** Bad `--vsock` options or an unusable socket path. */
export class VsockError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VsockError';
  }
}

export interface VsockOptions {
  /** The guest's context ID (3 .. 2^32-2). */
  readonly guestCid: number;
  /** The Unix socket path host processes connect to; guest-initiated connections go to `<udsPath>_<port>`. */
  readonly udsPath: string;
}

type ConnectionState = 'guest-connecting' | 'host-connecting' | 'established';

/** One stream connection, keyed by (host port, guest port). */
class VsockConnection {
  state: ConnectionState;
  socket: Socket | undefined;
  // guest → host
  /** Payload bytes received from the guest. */
  rxCount = 0;
  /** Of those, bytes handed to the host socket. */
  forwardCount = 0;
  /** The fwd_cnt the guest last heard. */
  advertisedForward = 0;
  // host → guest
  peerBufAlloc = 0;
  peerForwardCount = 0;
  /** Payload bytes sent to the guest (mod 2^32). */
  txCount = 0;
  /** A chunk from the host socket being delivered (the socket is paused meanwhile). */
  pending: Buffer | undefined;
  pendingOffset = 0;
  /** The host socket sent EOF. */
  hostEof = false;
  /** The host socket is gone. */
  hostClosed = false;
  /** SHUTDOWN flags sent to the guest / received from it. */
  shutdownSent = 0;
  guestShutdown = 0;
  // control packets owed to the guest
  requestOwed = false;
  responseOwed = false;
  creditUpdateOwed = false;
  resetOwed = false;
  /** In the device's ready list. */
  ready = false;
  removed = false;
  connectTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly hostPort: number,
    readonly guestPort: number,
    state: ConnectionState,
  ) {
    this.state = state;
  }

  /** Bytes the guest may still send to us. */
  get ourFree(): number {
    return VSOCK_BUF_ALLOC - (this.rxCount - this.forwardCount);
  }

  /** Bytes we may still send to the guest. */
  get peerCredit(): number {
    const inFlight = (this.txCount - this.peerForwardCount) >>> 0;
    return inFlight >= this.peerBufAlloc ? 0 : this.peerBufAlloc - inFlight;
  }
}

export interface VsockStats {
  /** Packets from the guest dropped as malformed. */
  malformed: number;
  /** RSTs sent to the guest. */
  resets: number;
  connectionsOpened: number;
}

export class VirtioVsock implements VirtioDevice {
  readonly deviceType = VirtioDeviceType.VSOCK;
  readonly name = 'virtio-vsock';
  readonly features = featureWords();
  readonly queueMaxSizes = [QUEUE_SIZE, QUEUE_SIZE, QUEUE_SIZE];
  readonly maxChainBytes = 1024 * 1024;
  readonly configSize = 8;
  readonly guestCid: number;
  readonly udsPath: string;
  readonly stats: VsockStats = { malformed: 0, resets: 0, connectionsOpened: 0 };

  private context: VirtioDeviceContext | undefined;
  private server: Server | undefined;
  /** hostPort → guestPort → connection. */
  private readonly connections = new Map<number, Map<number, VsockConnection>>();
  private connectionCount = 0;
  private readonly readyList: VsockConnection[] = [];
  private readonly resetSrcPorts = new Uint32Array(MAX_PENDING_RESETS);
  private readonly resetDstPorts = new Uint32Array(MAX_PENDING_RESETS);
  private resetHead = 0;
  private resetCount = 0;
  private nextLocalPort = FIRST_LOCAL_PORT;
  private readonly txChain = new DescriptorChain(QUEUE_SIZE);
  private readonly rxChain = new DescriptorChain(QUEUE_SIZE);
  private readonly headerIn = new Uint8Array(VSOCK_HDR_SIZE);
  private readonly headerInView = new DataView(this.headerIn.buffer);
  private readonly headerOut = new Uint8Array(VSOCK_HDR_SIZE);
  private readonly headerOutView = new DataView(this.headerOut.buffer);

  constructor(options: VsockOptions) {
    const { guestCid, udsPath } = options;
    if (!Number.isInteger(guestCid) || guestCid < 3 || guestCid > 0xfffffffe) throw new VsockError(`--vsock: cid ${guestCid} must be between 3 and 4294967294`);
    if (udsPath === '') throw new VsockError('--vsock: uds path is empty');
    this.guestCid = guestCid;
    this.udsPath = udsPath;
  }

  /** Starts listening on `udsPath` (a stale socket file there is replaced). Throws VsockError. */
  async listen(): Promise<void> {
    try {
      if (lstatSync(this.udsPath).isSocket()) unlinkSync(this.udsPath);
      else throw new VsockError(`--vsock: ${this.udsPath} exists and is not a socket`);
    } catch (e) {
      if (e instanceof VsockError) throw e;
      // ENOENT: nothing there
    }
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: false }, (socket) => this.acceptHost(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) => reject(new VsockError(`--vsock: cannot listen on ${this.udsPath}: ${e.code ?? e.message}`)));
      server.listen(this.udsPath, () => resolve());
    });
    server.on('error', () => undefined);
    server.unref();
    this.server = server;
  }

  /** Stops listening and closes every connection. */
  close(): void {
    this.dropAll();
    this.server?.close();
    this.server = undefined;
  }

  readConfig(offset: number, size: 1 | 2 | 4): number {
    let value = 0;
    for (let i = 0; i < size; i++) {
      const at = offset + i;
      const byte = at < 4 ? (this.guestCid >>> (8 * at)) & 0xff : 0;
      value |= byte << (8 * i);
    }
    return value >>> 0;
  }

  writeConfig(): void {}

  activate(context: VirtioDeviceContext): void {
    this.context = context;
  }

  reset(): void {
    this.context = undefined;
    this.dropAll();
  }

  onQueueNotify(queue: number): void {
    if (queue === VsockQueue.TX) this.guard((ctx) => this.drainTx(ctx));
    else if (queue === VsockQueue.RX) this.pump();
  }

  /** Bytes accepted from the guest that the host sockets have not yet taken (never above 256 KiB per connection). */
  get hostBacklog(): number {
    let total = 0;
    for (const inner of this.connections.values()) for (const conn of inner.values()) total += conn.rxCount - conn.forwardCount;
    return total;
  }

  /** Number of open connections (tests, diagnostics). */
  get openConnections(): number {
    return this.connectionCount;
  }

  // ---- connection table ----------------------------------------------------

  private find(hostPort: number, guestPort: number): VsockConnection | undefined {
    return this.connections.get(hostPort)?.get(guestPort);
  }

  private add(conn: VsockConnection): void {
    let inner = this.connections.get(conn.hostPort);
    if (inner === undefined) {
      inner = new Map();
      this.connections.set(conn.hostPort, inner);
    }
    inner.set(conn.guestPort, conn);
    this.connectionCount++;
    this.stats.connectionsOpened++;
  }

  private remove(conn: VsockConnection): void {
    if (conn.removed) return;
    conn.removed = true;
    if (conn.connectTimer !== undefined) clearTimeout(conn.connectTimer);
    const inner = this.connections.get(conn.hostPort);
    if (inner?.get(conn.guestPort) === conn) {
      inner.delete(conn.guestPort);
      if (inner.size === 0) this.connections.delete(conn.hostPort);
      this.connectionCount--;
    }
    const socket = conn.socket;
    conn.socket = undefined;
    conn.pending = undefined;
    socket?.destroy();
  }

  private dropAll(): void {
    for (const inner of this.connections.values()) for (const conn of inner.values()) {
      conn.removed = true;
      if (conn.connectTimer !== undefined) clearTimeout(conn.connectTimer);
      conn.socket?.destroy();
      conn.socket = undefined;
    }
    this.connections.clear();
    this.connectionCount = 0;
    this.readyList.length = 0;
    this.resetCount = 0;
  }

  private markReady(conn: VsockConnection): void {
    if (conn.ready || conn.removed) return;
    conn.ready = true;
    this.readyList.push(conn);
  }

  /** Ends a connection abruptly: RST to the guest, host socket destroyed. */
  private resetConnection(conn: VsockConnection): void {
    if (conn.removed) return;
    const socket = conn.socket;
    conn.socket = undefined;
    conn.pending = undefined;
    conn.hostClosed = true;
    socket?.destroy();
    conn.resetOwed = true;
    this.markReady(conn);
  }

  private queueReset(hostPort: number, guestPort: number): void {
    if (this.resetCount >= MAX_PENDING_RESETS) return;
    const at = (this.resetHead + this.resetCount) % MAX_PENDING_RESETS;
    this.resetSrcPorts[at] = hostPort;
    this.resetDstPorts[at] = guestPort;
    this.resetCount++;
  }

  // ---- host side -------------------------------------------------------------

  private acceptHost(socket: Socket): void {
    socket.on('error', () => undefined);
    if (this.context === undefined || this.connectionCount >= VSOCK_MAX_CONNECTIONS) {
      socket.destroy();
      return;
    }
    let line = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      line = Buffer.concat([line, chunk]);
      const nl = line.indexOf(0x0a);
      if (nl < 0) {
        if (line.length > MAX_CONNECT_LINE) socket.destroy();
        return;
      }
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.pause();
      const match = /^CONNECT ([0-9]{1,10})\r?$/.exec(line.subarray(0, nl).toString('latin1'));
      const port = match === null ? NaN : Number(match[1]);
      if (!(port >= 0 && port <= 0xffffffff) || this.context === undefined || this.connectionCount >= VSOCK_MAX_CONNECTIONS) {
        socket.destroy();
        return;
      }
      const conn = new VsockConnection(this.allocateLocalPort(port), port, 'guest-connecting');
      conn.socket = socket;
      const rest = line.subarray(nl + 1);
      if (rest.length > 0) conn.pending = Buffer.from(rest);
      this.add(conn);
      this.attachSocket(conn, socket);
      conn.requestOwed = true;
      conn.connectTimer = setTimeout(() => {
        conn.connectTimer = undefined;
        if (conn.state === 'guest-connecting') this.guardedReset(conn);
      }, VSOCK_CONNECT_TIMEOUT_MS);
      conn.connectTimer.unref();
      this.markReady(conn);
      this.pump();
    };
    const onEnd = (): void => {
      socket.destroy();
    };
    socket.on('data', onData);
    socket.on('end', onEnd);
  }

  private guardedReset(conn: VsockConnection): void {
    this.resetConnection(conn);
    this.pump();
  }

  private allocateLocalPort(guestPort: number): number {
    for (;;) {
      const port = this.nextLocalPort;
      this.nextLocalPort = this.nextLocalPort >= 0xfffffffe ? FIRST_LOCAL_PORT : this.nextLocalPort + 1;
      if (this.find(port, guestPort) === undefined) return port;
    }
  }

  /** Wires a host socket's events to the connection (data, EOF, close). */
  private attachSocket(conn: VsockConnection, socket: Socket): void {
    socket.on('data', (chunk: Buffer) => {
      if (conn.removed || conn.hostClosed) return;
      if ((conn.guestShutdown & VsockShutdown.RCV) !== 0) return; // the guest reads no more: discard
      if (conn.pending === undefined) {
        conn.pending = chunk;
        conn.pendingOffset = 0;
      } else {
        // Only if a chunk slipped out after pause(): keep it, still bounded by the stream's high-water mark.
        conn.pending = Buffer.concat([conn.pending.subarray(conn.pendingOffset), chunk]);
        conn.pendingOffset = 0;
      }
      socket.pause();
      this.markReady(conn);
      this.pump();
    });
    socket.on('end', () => {
      if (conn.removed) return;
      conn.hostEof = true;
      this.markReady(conn);
      this.pump();
    });
    socket.on('close', () => {
      if (conn.removed) return;
      conn.hostClosed = true;
      conn.socket = undefined;
      if (conn.pending === undefined) this.markReady(conn);
      this.pump();
    });
  }

  private connectToHost(conn: VsockConnection): void {
    const socket = createConnection({ path: `${this.udsPath}_${conn.hostPort}`, allowHalfOpen: true });
    conn.socket = socket;
    socket.on('error', () => {
      if (conn.removed) return;
      this.guardedReset(conn);
    });
    socket.once('connect', () => {
      if (conn.removed) return;
      conn.state = 'established';
      conn.responseOwed = true;
      this.markReady(conn);
      this.pump();
    });
    this.attachSocket(conn, socket);
  }

  // ---- guest → device --------------------------------------------------------

  private guard(body: (ctx: VirtioDeviceContext) => void): void {
    const ctx = this.context;
    if (ctx === undefined) return;
    try {
      body(ctx);
    } catch (e) {
      ctx.fail(`${this.name}: ${(e as Error).message}`);
    }
  }

  private drainTx(ctx: VirtioDeviceContext): void {
    const queue = ctx.queues[VsockQueue.TX];
    const chain = this.txChain;
    let completed = 0;
    while (queue.pop(chain)) {
      this.handlePacket(ctx, chain);
      queue.pushUsed(chain.head, 0);
      completed++;
    }
    if (completed > 0) ctx.signalUsed(VsockQueue.TX);
    this.pump();
  }

  private handlePacket(ctx: VirtioDeviceContext, chain: DescriptorChain): void {
    if (chain.readableBytes < VSOCK_HDR_SIZE) {
      this.stats.malformed++;
      return;
    }
    chain.readInto(ctx.memory, this.headerIn);
    const h = this.headerInView;
    const srcCidLow = h.getUint32(0, true);
    const srcCidHigh = h.getUint32(4, true);
    const dstCidLow = h.getUint32(8, true);
    const dstCidHigh = h.getUint32(12, true);
    const guestPort = h.getUint32(16, true);
    const hostPort = h.getUint32(20, true);
    const length = h.getUint32(24, true);
    const type = h.getUint16(28, true);
    const op = h.getUint16(30, true);
    const flags = h.getUint32(32, true);
    const bufAlloc = h.getUint32(36, true);
    const fwdCnt = h.getUint32(40, true);
    if (srcCidLow !== this.guestCid || srcCidHigh !== 0 || dstCidLow !== VSOCK_HOST_CID || dstCidHigh !== 0
      || length > VSOCK_MAX_PAYLOAD || length > chain.readableBytes - VSOCK_HDR_SIZE || op === VsockOp.INVALID || op > VsockOp.CREDIT_REQUEST) {
      this.stats.malformed++;
      return;
    }
    const conn = this.find(hostPort, guestPort);
    if (type !== VSOCK_TYPE_STREAM) {
      if (op !== VsockOp.RST) this.queueReset(hostPort, guestPort);
      return;
    }
    if (conn === undefined) {
      if (op === VsockOp.REQUEST) this.guestConnect(hostPort, guestPort, bufAlloc, fwdCnt);
      else if (op !== VsockOp.RST) this.queueReset(hostPort, guestPort);
      return;
    }
    if (conn.resetOwed) return; // already being torn down
    conn.peerBufAlloc = bufAlloc;
    conn.peerForwardCount = fwdCnt;
    switch (op) {
      case VsockOp.REQUEST:
        this.resetConnection(conn);
        return;
      case VsockOp.RESPONSE:
        if (conn.state !== 'guest-connecting') {
          this.resetConnection(conn);
          return;
        }
        conn.state = 'established';
        if (conn.connectTimer !== undefined) clearTimeout(conn.connectTimer);
        conn.connectTimer = undefined;
        conn.socket?.write(`OK ${conn.hostPort}\n`);
        if (conn.pending === undefined) conn.socket?.resume();
        this.markReady(conn);
        return;
      case VsockOp.RST:
        this.remove(conn);
        return;
      case VsockOp.SHUTDOWN:
        this.guestShutdown(conn, flags);
        return;
      case VsockOp.RW:
        this.guestData(ctx, chain, conn, length);
        return;
      case VsockOp.CREDIT_UPDATE:
        if (conn.pending !== undefined) this.markReady(conn);
        return;
      case VsockOp.CREDIT_REQUEST:
        conn.creditUpdateOwed = true;
        this.markReady(conn);
        return;
    }
  }

  private guestConnect(hostPort: number, guestPort: number, bufAlloc: number, fwdCnt: number): void {
    if (this.connectionCount >= VSOCK_MAX_CONNECTIONS) {
      this.queueReset(hostPort, guestPort);
      return;
    }
    const conn = new VsockConnection(hostPort, guestPort, 'host-connecting');
    conn.peerBufAlloc = bufAlloc;
    conn.peerForwardCount = fwdCnt;
    this.add(conn);
    this.connectToHost(conn);
  }

  private guestShutdown(conn: VsockConnection, flags: number): void {
    conn.guestShutdown |= flags & (VsockShutdown.RCV | VsockShutdown.SEND);
    if ((conn.guestShutdown & (VsockShutdown.RCV | VsockShutdown.SEND)) === (VsockShutdown.RCV | VsockShutdown.SEND)) {
      // The guest closed its socket and waits for our RST.
      this.resetConnection(conn);
      return;
    }
    if ((flags & VsockShutdown.SEND) !== 0) conn.socket?.end();
    if ((flags & VsockShutdown.RCV) !== 0 && conn.pending !== undefined) {
      conn.pending = undefined;
      conn.socket?.resume();
    }
  }

  private guestData(ctx: VirtioDeviceContext, chain: DescriptorChain, conn: VsockConnection, length: number): void {
    if (conn.state !== 'established' || (conn.guestShutdown & VsockShutdown.SEND) !== 0 || length > conn.ourFree) {
      // Data before the connection exists, after the guest's SHUTDOWN(SEND), or beyond our credit.
      this.resetConnection(conn);
      return;
    }
    if (length === 0) return;
    const socket = conn.socket;
    if (socket === undefined || conn.hostClosed || socket.writableEnded) {
      this.resetConnection(conn);
      return;
    }
    const payload = Buffer.allocUnsafe(length);
    chain.readInto(ctx.memory, payload, VSOCK_HDR_SIZE);
    conn.rxCount += length;
    socket.write(payload, (error) => {
      if (conn.removed || error !== null && error !== undefined) return;
      conn.forwardCount += length;
      // Tell the guest about freed space once it thinks less than half is left.
      if (VSOCK_BUF_ALLOC - (conn.rxCount - conn.advertisedForward) < VSOCK_BUF_ALLOC / 2) {
        conn.creditUpdateOwed = true;
        this.markReady(conn);
        this.pump();
      }
    });
  }

  // ---- device → guest ----------------------------------------------------------

  /** Sends what connections owe the guest while rx buffers last. Never throws. */
  private pump(): void {
    this.guard((ctx) => {
      const queue = ctx.queues[VsockQueue.RX];
      if (!queue.enabled || queue.broken) return;
      let sent = 0;
      for (;;) {
        if (this.resetCount === 0 && !this.pruneReady()) break;
        if (!queue.pop(this.rxChain)) break;
        const written = this.nextPacket(ctx, this.rxChain);
        queue.pushUsed(this.rxChain.head, written);
        sent++;
      }
      if (sent > 0) ctx.signalUsed(VsockQueue.RX);
    });
  }

  /** Drops ready entries that owe nothing sendable; true if one remains. */
  private pruneReady(): boolean {
    while (this.readyList.length > 0) {
      const conn = this.readyList[0];
      if (!conn.removed && this.owesMore(conn)) return true;
      this.readyList.shift();
      conn.ready = false;
    }
    return false;
  }

  private writeHeader(op: number, hostPort: number, guestPort: number, length: number, flags: number, fwdCnt: number): void {
    const h = this.headerOutView;
    h.setUint32(0, VSOCK_HOST_CID, true);
    h.setUint32(4, 0, true);
    h.setUint32(8, this.guestCid, true);
    h.setUint32(12, 0, true);
    h.setUint32(16, hostPort, true);
    h.setUint32(20, guestPort, true);
    h.setUint32(24, length, true);
    h.setUint16(28, VSOCK_TYPE_STREAM, true);
    h.setUint16(30, op, true);
    h.setUint32(32, flags, true);
    h.setUint32(36, VSOCK_BUF_ALLOC, true);
    h.setUint32(40, fwdCnt >>> 0, true);
  }

  /** Fills one rx chain with the next packet owed; returns the bytes written. */
  private nextPacket(ctx: VirtioDeviceContext, chain: DescriptorChain): number {
    const memory = ctx.memory;
    // A buffer too small for a header is returned empty (the driver's mistake).
    if (chain.writableBytes < VSOCK_HDR_SIZE) return 0;
    if (this.resetCount > 0) {
      const at = this.resetHead;
      this.resetHead = (this.resetHead + 1) % MAX_PENDING_RESETS;
      this.resetCount--;
      this.writeHeader(VsockOp.RST, this.resetSrcPorts[at], this.resetDstPorts[at], 0, 0, 0);
      this.stats.resets++;
      return chain.writeFrom(memory, this.headerOut);
    }
    const candidates = this.readyList.length;
    for (let i = 0; i < candidates; i++) {
      const conn = this.readyList.shift();
      if (conn === undefined) break;
      conn.ready = false;
      if (conn.removed) continue;
      const written = this.connectionPacket(ctx, chain, conn);
      if (!conn.removed && this.owesMore(conn)) this.markReady(conn);
      if (written > 0) return written;
    }
    return 0;
  }

  private owesMore(conn: VsockConnection): boolean {
    if (conn.resetOwed || conn.requestOwed || conn.responseOwed || conn.creditUpdateOwed) return true;
    if (conn.state !== 'established') return false;
    if (conn.pending !== undefined) return conn.peerCredit > 0;
    return (conn.hostEof && (conn.shutdownSent & VsockShutdown.SEND) === 0) || conn.hostClosed;
  }

  /** The next packet `conn` owes, written into `chain`; 0 when it owes nothing it may send now. */
  private connectionPacket(ctx: VirtioDeviceContext, chain: DescriptorChain, conn: VsockConnection): number {
    const memory = ctx.memory;
    const emit = (op: number, flags: number): number => {
      this.writeHeader(op, conn.hostPort, conn.guestPort, 0, flags, conn.forwardCount);
      conn.advertisedForward = conn.forwardCount;
      conn.creditUpdateOwed = false;
      return chain.writeFrom(memory, this.headerOut);
    };
    if (conn.resetOwed) {
      this.stats.resets++;
      const n = emit(VsockOp.RST, 0);
      this.remove(conn);
      return n;
    }
    if (conn.requestOwed) {
      conn.requestOwed = false;
      return emit(VsockOp.REQUEST, 0);
    }
    if (conn.responseOwed) {
      conn.responseOwed = false;
      return emit(VsockOp.RESPONSE, 0);
    }
    if (conn.state !== 'established') return 0;
    if (conn.pending !== undefined && (conn.guestShutdown & VsockShutdown.RCV) === 0) {
      const credit = conn.peerCredit;
      if (credit > 0) {
        const room = chain.writableBytes - VSOCK_HDR_SIZE;
        const n = Math.min(room, credit, VSOCK_MAX_PAYLOAD, conn.pending.length - conn.pendingOffset);
        if (n > 0) {
          this.writeHeader(VsockOp.RW, conn.hostPort, conn.guestPort, n, 0, conn.forwardCount);
          conn.advertisedForward = conn.forwardCount;
          conn.creditUpdateOwed = false;
          chain.writeFrom(memory, this.headerOut);
          chain.writeFrom(memory, conn.pending.subarray(conn.pendingOffset, conn.pendingOffset + n), VSOCK_HDR_SIZE);
          conn.pendingOffset += n;
          conn.txCount = (conn.txCount + n) >>> 0;
          if (conn.pendingOffset >= conn.pending.length) {
            conn.pending = undefined;
            conn.socket?.resume();
          }
          return VSOCK_HDR_SIZE + n;
        }
      }
    }
    if (conn.pending === undefined) {
      if (conn.hostEof && (conn.shutdownSent & VsockShutdown.SEND) === 0) {
        conn.shutdownSent |= VsockShutdown.SEND;
        return emit(VsockOp.SHUTDOWN, VsockShutdown.SEND);
      }
      if (conn.hostClosed) {
        // The host socket is gone and everything it sent was delivered.
        this.stats.resets++;
        const n = emit(VsockOp.RST, 0);
        this.remove(conn);
        return n;
      }
    }
    if (conn.creditUpdateOwed) return emit(VsockOp.CREDIT_UPDATE, 0);
    return 0;
  }
}
