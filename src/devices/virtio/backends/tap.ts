/**
 * Host network backend for virtio-net: a Linux tap device. The tap is opened
 * through /dev/net/tun with TUNSETIFF (IFF_TAP | IFF_NO_PI, no vnet header:
 * the device offers no checksum or segmentation offloads) in non-blocking
 * mode. Readiness comes from a libuv poll on the fd (the native addon's
 * `pollFd`), so the event loop never blocks and, under kvm, a frame arriving
 * kicks vCPU 0 out of its slice like any other loop event. Frames are read
 * and written with fs.readSync/writeSync on the non-blocking fd: one frame per
 * call, EAGAIN means "nothing waiting" (read) or "tap queue full" (write,
 * the frame is dropped, as a full NIC queue would).
 */

import { closeSync, constants as fsConstants, readSync, writeSync } from 'node:fs';
import { loadKvmNative, type EventfdPollHandle, type KvmNative } from '../../../engines/kvm/native.js';

/** What virtio-net needs from a host network backend. */
export interface NetBackend {
  /** Reads one waiting frame into `buffer`; returns its length, 0 when none is waiting. */
  readFrame(buffer: Uint8Array): number;
  /** Sends one frame; false when the host dropped it. */
  writeFrame(frame: Uint8Array): boolean;
  /** `handler` runs whenever a frame is waiting; undefined stops the watch (backpressure). */
  watchReadable(handler: (() => void) | undefined): void;
  close(): void;
}

/** The tap could not be opened; the message is one line for the user. */
export class TapError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TapError';
  }
}

/** _IOW('T', 202, int) */
const TUNSETIFF = 0x400454ca;
const IFF_TAP = 0x0002;
const IFF_NO_PI = 0x1000;
/** IFNAMSIZ: interface names are at most 15 bytes plus NUL. */
export const IFNAMSIZ = 16;
/** Largest frame a tap hands over without offloads (64 KiB MTU plus the Ethernet header). */
export const TAP_MAX_FRAME = 65536 + 14;

function errnoCode(e: unknown): string {
  const code = (e as { code?: unknown }).code;
  return typeof code === 'string' ? code : (e as Error).message;
}

export class TapBackend implements NetBackend {
  private poll: EventfdPollHandle | undefined;
  private pollActive = false;
  private handler: (() => void) | undefined;
  private closed = false;
  /** Frames the host refused (tap queue full or error). */
  droppedTx = 0;

  private constructor(
    private readonly native: KvmNative,
    readonly fd: number,
    readonly name: string,
  ) {}

  /** Attaches to tap `name` (creating it if this process may). Throws TapError with one line. */
  static open(name: string): TapBackend {
    if (Buffer.byteLength(name) >= IFNAMSIZ || name.length === 0 || name.includes('/')) {
      throw new TapError(`--net: tap name '${name}' must be 1 to ${IFNAMSIZ - 1} bytes without '/'`);
    }
    let native: KvmNative;
    try {
      native = loadKvmNative();
    } catch (e) {
      throw new TapError(`--net: tap needs typevisor's native addon: ${(e as Error).message}`);
    }
    if (typeof native.pollFd !== 'function') throw new TapError('--net: native addon is out of date (no pollFd): run npm rebuild');
    let fd: number;
    try {
      fd = native.open('/dev/net/tun', native.O_RDWR | fsConstants.O_NONBLOCK);
    } catch (e) {
      const code = errnoCode(e);
      if (code === 'ENOENT' || code === 'ENODEV') throw new TapError('--net: /dev/net/tun does not exist (load the tun module)');
      if (code === 'EACCES' || code === 'EPERM') throw new TapError('--net: no permission to open /dev/net/tun');
      throw new TapError(`--net: cannot open /dev/net/tun: ${code}`);
    }
    const ifreq = new Uint8Array(40);
    Buffer.from(ifreq.buffer).write(name, 0, 'utf8');
    new DataView(ifreq.buffer).setUint16(IFNAMSIZ, IFF_TAP | IFF_NO_PI, true);
    try {
      native.ioctlBytes(fd, TUNSETIFF, ifreq);
    } catch (e) {
      native.close(fd);
      const code = errnoCode(e);
      if (code === 'EPERM' || code === 'EACCES') throw new TapError(`--net: not allowed to attach tap '${name}' (needs CAP_NET_ADMIN, or a persistent tap owned by this user)`);
      if (code === 'EBUSY') throw new TapError(`--net: tap '${name}' is busy (attached to another process)`);
      if (code === 'EINVAL') throw new TapError(`--net: '${name}' exists but is not a tap device with these flags`);
      throw new TapError(`--net: cannot attach tap '${name}': ${code}`);
    }
    return new TapBackend(native, fd, name);
  }

  readFrame(buffer: Uint8Array): number {
    if (this.closed) return 0;
    try {
      return readSync(this.fd, buffer, 0, buffer.length, null);
    } catch (e) {
      // EAGAIN: nothing waiting. Anything else (the tap went away): treat as empty.
      if (errnoCode(e) !== 'EAGAIN') this.watchReadable(undefined);
      return 0;
    }
  }

  writeFrame(frame: Uint8Array): boolean {
    if (this.closed) return false;
    try {
      writeSync(this.fd, frame);
      return true;
    } catch {
      this.droppedTx++;
      return false;
    }
  }

  watchReadable(handler: (() => void) | undefined): void {
    if (this.closed) return;
    this.handler = handler;
    const want = handler !== undefined;
    if (want === this.pollActive) return;
    if (this.poll === undefined) {
      this.poll = this.native.pollFd(this.fd, 1, (events) => {
        if (events < 0) {
          this.watchReadable(undefined);
          return;
        }
        this.handler?.();
      });
    } else {
      this.native.pollFdUpdate(this.poll, want ? 1 : 0);
    }
    this.pollActive = want;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.poll !== undefined) this.native.pollClose(this.poll);
    this.poll = undefined;
    closeSync(this.fd);
  }
}
