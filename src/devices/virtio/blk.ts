/**
 * virtio-blk (virtio 1.2, section 5.2) over a raw image file or block device.
 *
 * I/O is asynchronous (node:fs/promises FileHandle, libuv's thread pool), so
 * the machine thread never blocks on the disk. Each request's data goes
 * through a host bounce buffer rather than straight into guest RAM: guest RAM
 * may be unmapped (VM destroyed or rebooted) while a thread-pool read is still
 * writing, so the thread pool must never hold a pointer into it. OUT data is
 * copied when the request is popped; IN data and the status byte are written
 * when the I/O completes, and only then is the chain put in the used ring and
 * the interrupt raised. A reset in between drops the completion.
 *
 * Requests: IN, OUT, FLUSH (waits for the writes in flight when it arrived,
 * then fdatasync), GET_ID (the `id=` string, 20 bytes, NUL-padded), DISCARD
 * and WRITE_ZEROES (one range each; max_*_seg = 1). DISCARD, and WRITE_ZEROES
 * with the UNMAP flag, deallocate the range with fallocate(PUNCH_HOLE |
 * KEEP_SIZE) through the native addon (on the thread pool), so a sparse image
 * shrinks on the host and the range reads as zeros; where the addon is not
 * built or the file system refuses (EOPNOTSUPP), the device writes zeros
 * instead and says so in `DiskImage.deallocation`. WRITE_ZEROES without UNMAP
 * writes zeros. Read-only disks offer
 * VIRTIO_BLK_F_RO and fail OUT/DISCARD/WRITE_ZEROES with IOERR. Bad sectors,
 * lengths not a multiple of 512, missing status bytes and host I/O errors give
 * IOERR (or UNSUPP for unknown types), never an exception.
 */

import { constants as fsConstants } from 'node:fs';
import { open, readFile, stat, type FileHandle } from 'node:fs/promises';
import { loadKvmNative, type KvmNative } from '../../engines/kvm/native.js';
import { featureWords, hasFeature, VirtioDeviceType, type VirtioDevice, type VirtioDeviceContext } from './virtio.js';
import { DescriptorChain } from './virtqueue.js';

export const SECTOR_SIZE = 512;

export const VirtioBlkFeature = {
  SIZE_MAX: 1,
  SEG_MAX: 2,
  RO: 5,
  BLK_SIZE: 6,
  FLUSH: 9,
  DISCARD: 13,
  WRITE_ZEROES: 14,
} as const;

export const VirtioBlkRequest = {
  IN: 0,
  OUT: 1,
  FLUSH: 4,
  GET_ID: 8,
  DISCARD: 11,
  WRITE_ZEROES: 13,
} as const;

export const VirtioBlkStatus = {
  OK: 0,
  IOERR: 1,
  UNSUPP: 2,
} as const;

/** Offsets in struct virtio_blk_config. */
export const BlkConfig = {
  CAPACITY: 0,
  SIZE_MAX: 8,
  SEG_MAX: 12,
  BLK_SIZE: 20,
  MAX_DISCARD_SECTORS: 36,
  MAX_DISCARD_SEG: 40,
  DISCARD_SECTOR_ALIGNMENT: 44,
  MAX_WRITE_ZEROES_SECTORS: 48,
  MAX_WRITE_ZEROES_SEG: 52,
  WRITE_ZEROES_MAY_UNMAP: 56,
  SIZE: 60,
} as const;

const QUEUE_SIZE = 256;
/** Largest single segment (VIRTIO_BLK_F_SIZE_MAX) and number of data segments (SEG_MAX). */
export const BLK_SIZE_MAX = 256 * 1024;
export const BLK_SEG_MAX = QUEUE_SIZE - 2;
/** Cap on one request chain: every data segment at SIZE_MAX, plus header and status. */
const MAX_CHAIN_BYTES = BLK_SIZE_MAX * BLK_SEG_MAX + 4096;
const MAX_DISCARD_SECTORS = 0x3fffff;
const MAX_WRITE_ZEROES_SECTORS = 65536;
const ZERO_CHUNK = 1024 * 1024;
/** Bounce-buffer bytes allowed in flight; beyond it the device stops popping until requests complete. */
const IN_FLIGHT_BYTE_BUDGET = 128 * 1024 * 1024;
export const BLK_ID_BYTES = 20;

/** A problem with a --disk argument or its file; the message is one line. */
export class DiskError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DiskError';
  }
}

export interface DiskSpec {
  readonly path: string;
  readonly readOnly: boolean;
  /** Serial returned by GET_ID (at most 20 bytes of ASCII). */
  readonly id?: string | undefined;
}

/** The size in bytes of a block device, from /sys/dev/block/MAJ:MIN/size (512-byte sectors). */
async function blockDeviceSize(rdev: number): Promise<number | undefined> {
  const major = Math.floor(rdev / 256) & 0xfff;
  const minor = (rdev & 0xff) | (Math.floor(rdev / 4096) & 0xfff00);
  try {
    const text = await readFile(`/sys/dev/block/${major}:${minor}/size`, 'utf8');
    const sectors = Number(text.trim());
    return Number.isSafeInteger(sectors) ? sectors * SECTOR_SIZE : undefined;
  } catch {
    return undefined;
  }
}

/** The native fallocate, or why it is unavailable (the addon is optional: it needs a build toolchain). */
function nativeFallocate(): { native: KvmNative } | { unavailable: string } {
  try {
    return { native: loadKvmNative() };
  } catch (e) {
    return { unavailable: (e as Error).message };
  }
}

/**
 * How the image deallocates (DISCARD, WRITE_ZEROES with UNMAP): 'punch-hole'
 * once fallocate has worked, 'write-zeroes' once it could not (with the
 * reason), 'untried' before the first request.
 */
export type DeallocationMode = { mode: 'untried' } | { mode: 'punch-hole' } | { mode: 'write-zeroes'; reason: string };

/** fallocate errors that mean "this file or file system cannot punch holes", so zeros are written instead. */
const NO_PUNCH_ERRNOS = new Set([-95 /* EOPNOTSUPP */, -38 /* ENOSYS */, -22 /* EINVAL: e.g. a device without discard */, -19 /* ENODEV */]);

/** An opened disk image, shared by every boot of a VM; close it when the VM ends. */
export class DiskImage {
  /** How deallocation is done; see DeallocationMode. */
  deallocation: DeallocationMode = { mode: 'untried' };
  /** Ranges deallocated by punching a hole, and ranges zeroed because punching was not possible. */
  readonly deallocated = { punched: 0, zeroedInstead: 0 };
  /** Native fallocate calls in flight: close() waits for them, so the fd they use is never reused under them. */
  private readonly nativeInFlight = new Set<Promise<unknown>>();

  private constructor(
    readonly path: string,
    readonly handle: FileHandle,
    readonly size: number,
    readonly readOnly: boolean,
    readonly id: string,
  ) {}

  /**
   * Deallocates [offset, offset + length): punches a hole (the range then
   * reads as zeros), or writes zeros where that is impossible. Returns which
   * one happened. Throws on a host I/O error.
   */
  async deallocate(offset: number, length: number, writeZeros: (offset: number, length: number) => Promise<void>): Promise<'punched' | 'zeroed'> {
    if (this.deallocation.mode !== 'write-zeroes') {
      const found = nativeFallocate();
      if ('unavailable' in found) {
        this.deallocation = { mode: 'write-zeroes', reason: `no native addon (${found.unavailable})` };
      } else {
        const { native } = found;
        const call = native.fallocateAsync(this.handle.fd, native.FALLOC_FL_PUNCH_HOLE | native.FALLOC_FL_KEEP_SIZE, offset, length);
        this.nativeInFlight.add(call);
        let rc: number;
        try {
          rc = await call;
        } finally {
          this.nativeInFlight.delete(call);
        }
        if (rc === 0) {
          this.deallocation = { mode: 'punch-hole' };
          this.deallocated.punched++;
          return 'punched';
        }
        if (!NO_PUNCH_ERRNOS.has(rc)) throw new Error(`fallocate(PUNCH_HOLE) on ${this.path}: errno ${-rc}`);
        this.deallocation = { mode: 'write-zeroes', reason: `fallocate(PUNCH_HOLE) refused by the file system (errno ${-rc})` };
      }
    }
    await writeZeros(offset, length);
    this.deallocated.zeroedInstead++;
    return 'zeroed';
  }

  /** Opens and checks a disk; throws DiskError with one clear line. */
  static async open(spec: DiskSpec): Promise<DiskImage> {
    const { path, readOnly } = spec;
    const id = spec.id ?? '';
    if (!/^[\x20-\x7e]{0,20}$/.test(id)) throw new DiskError(`disk "${path}": id must be at most ${BLK_ID_BYTES} printable ASCII characters`);
    let st;
    try {
      st = await stat(path);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new DiskError(`cannot open disk "${path}": ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (e as Error).message}`);
    }
    if (!st.isFile() && !st.isBlockDevice()) throw new DiskError(`disk "${path}" is not a regular file or block device`);
    let handle: FileHandle;
    try {
      handle = await open(path, readOnly ? fsConstants.O_RDONLY : fsConstants.O_RDWR);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (!readOnly && (code === 'EACCES' || code === 'EROFS' || code === 'EPERM')) {
        throw new DiskError(`cannot open disk "${path}" for writing: ${code === 'EROFS' ? 'read-only file system' : 'permission denied'} (add ,ro to attach it read-only)`);
      }
      throw new DiskError(`cannot open disk "${path}": ${code === 'EACCES' ? 'permission denied' : (e as Error).message}`);
    }
    const size = st.isBlockDevice() ? await blockDeviceSize(st.rdev) : st.size;
    if (size === undefined) {
      await handle.close();
      throw new DiskError(`disk "${path}": cannot determine the block device's size`);
    }
    if (size === 0 || size % SECTOR_SIZE !== 0) {
      await handle.close();
      throw new DiskError(`disk "${path}" is ${size} bytes, which is not a non-zero multiple of ${SECTOR_SIZE}`);
    }
    return new DiskImage(path, handle, size, readOnly, id);
  }

  get sectors(): number {
    return this.size / SECTOR_SIZE;
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.nativeInFlight]);
    await this.handle.close();
  }
}

/** A request's device-writable buffers, saved when it is popped so completion can fill them. */
interface WritableTarget {
  readonly addresses: number[];
  readonly lengths: number[];
  /** Data bytes (writable bytes minus the status byte). */
  readonly dataBytes: number;
}

const zeroChunk = new Uint8Array(ZERO_CHUNK);

export class VirtioBlk implements VirtioDevice {
  readonly deviceType = VirtioDeviceType.BLOCK;
  readonly name = 'virtio-blk';
  readonly features: readonly [number, number];
  readonly queueMaxSizes = [QUEUE_SIZE];
  readonly maxChainBytes = MAX_CHAIN_BYTES;
  readonly configSize = BlkConfig.SIZE;
  private readonly configBytes = new Uint8Array(BlkConfig.SIZE);
  private readonly configView = new DataView(this.configBytes.buffer);
  private context: VirtioDeviceContext | undefined;
  private readonly chain = new DescriptorChain(QUEUE_SIZE);
  private readonly header = new Uint8Array(16);
  private readonly headerView = new DataView(this.header.buffer);
  private readonly rangeBytes = new Uint8Array(16);
  private readonly rangeView = new DataView(this.rangeBytes.buffer);
  /** Writes submitted and not yet finished (a FLUSH waits for these). */
  private readonly writesInFlight = new Set<Promise<unknown>>();
  /** Requests whose I/O has not completed yet, and their bounce-buffer bytes. */
  inFlight = 0;
  private inFlightBytes = 0;
  /** Popping stopped because the bounce-buffer budget was used up; resume on a completion. */
  private throttled = false;
  /** Completed requests by status (diagnostics and tests). */
  readonly completed = { ok: 0, ioerr: 0, unsupp: 0 };

  constructor(readonly disk: DiskImage) {
    const F = VirtioBlkFeature;
    const bits: number[] = [F.SIZE_MAX, F.SEG_MAX, F.BLK_SIZE, F.FLUSH, F.DISCARD];
    if (disk.readOnly) bits.push(F.RO);
    else bits.push(F.WRITE_ZEROES);
    this.features = featureWords(...bits);
    const v = this.configView;
    v.setUint32(BlkConfig.CAPACITY, disk.sectors % 0x1_0000_0000, true);
    v.setUint32(BlkConfig.CAPACITY + 4, Math.floor(disk.sectors / 0x1_0000_0000), true);
    v.setUint32(BlkConfig.SIZE_MAX, BLK_SIZE_MAX, true);
    v.setUint32(BlkConfig.SEG_MAX, BLK_SEG_MAX, true);
    v.setUint32(BlkConfig.BLK_SIZE, SECTOR_SIZE, true);
    v.setUint32(BlkConfig.MAX_DISCARD_SECTORS, MAX_DISCARD_SECTORS, true);
    v.setUint32(BlkConfig.MAX_DISCARD_SEG, 1, true);
    v.setUint32(BlkConfig.DISCARD_SECTOR_ALIGNMENT, 1, true);
    v.setUint32(BlkConfig.MAX_WRITE_ZEROES_SECTORS, MAX_WRITE_ZEROES_SECTORS, true);
    v.setUint32(BlkConfig.MAX_WRITE_ZEROES_SEG, 1, true);
    // Unmapping is always honoured: by punching a hole, or by writing zeros where that is impossible.
    this.configBytes[BlkConfig.WRITE_ZEROES_MAY_UNMAP] = disk.readOnly ? 0 : 1;
  }

  readConfig(offset: number, size: 1 | 2 | 4): number {
    if (offset < 0 || offset + size > BlkConfig.SIZE) return 0;
    if (size === 1) return this.configBytes[offset];
    if (size === 2) return this.configView.getUint16(offset, true);
    return this.configView.getUint32(offset, true);
  }

  /** The configuration is read-only here (no CONFIG_WCE). */
  writeConfig(): void {}

  activate(context: VirtioDeviceContext): void {
    this.context = context;
  }

  reset(): void {
    this.context = undefined;
    this.throttled = false;
  }

  /** Resolves when every request in flight has completed (tests, orderly shutdown). */
  async idle(): Promise<void> {
    while (this.inFlight > 0) await new Promise((r) => setImmediate(r));
  }

  onQueueNotify(queue: number): void {
    const ctx = this.context;
    if (ctx === undefined || queue !== 0) return;
    const q = ctx.queues[0];
    const chain = this.chain;
    let immediate = 0;
    for (;;) {
      if (this.inFlightBytes >= IN_FLIGHT_BYTE_BUDGET) {
        this.throttled = true;
        break;
      }
      if (!q.pop(chain)) break;
      if (this.submit(ctx, chain)) immediate++;
    }
    if (immediate > 0) ctx.signalUsed(0);
  }

  /** After a completion: pop what the byte budget held back. */
  private resume(ctx: VirtioDeviceContext): void {
    if (!this.throttled || this.inFlightBytes >= IN_FLIGHT_BYTE_BUDGET) return;
    this.throttled = false;
    try {
      this.onQueueNotify(0);
    } catch (e) {
      ctx.fail(`virtio-blk: ${(e as Error).message}`);
    }
  }

  /** Starts one request; returns true if it completed synchronously (used ring already updated). */
  private submit(ctx: VirtioDeviceContext, chain: DescriptorChain): boolean {
    const memory = ctx.memory;
    const head = chain.head;
    if (chain.writableBytes < 1 || chain.readableBytes < 16) {
      // No room for a status byte or no header: return the chain untouched.
      ctx.queues[0].pushUsed(head, 0);
      return true;
    }
    chain.readInto(memory, this.header);
    const type = this.headerView.getUint32(0, true);
    const sector = this.headerView.getUint32(12, true) * 0x1_0000_0000 + this.headerView.getUint32(8, true);
    const target = saveWritable(chain);
    const dataOut = chain.readableBytes - 16;
    const R = VirtioBlkRequest;
    const S = VirtioBlkStatus;
    const disk = this.disk;
    const finishNow = (status: number, written = 0): boolean => {
      this.complete(ctx, head, target, undefined, written, status);
      return true;
    };
    switch (type) {
      case R.IN: {
        const len = target.dataBytes;
        if (dataOut !== 0 || !this.inRange(sector, len)) return finishNow(S.IOERR);
        const buffer = Buffer.allocUnsafe(len);
        this.track(ctx, head, target, len, this.readFully(buffer, sector * SECTOR_SIZE).then(() => ({ status: S.OK, data: buffer })));
        return false;
      }
      case R.OUT: {
        if (disk.readOnly || target.dataBytes !== 0 || !this.inRange(sector, dataOut)) return finishNow(S.IOERR);
        const buffer = Buffer.allocUnsafe(dataOut);
        chain.readInto(memory, buffer, 16);
        const write = this.writeFully(buffer, sector * SECTOR_SIZE);
        this.trackWrite(write);
        this.track(ctx, head, target, dataOut, write.then(() => ({ status: S.OK })));
        return false;
      }
      case R.FLUSH: {
        const pending = [...this.writesInFlight];
        this.track(ctx, head, target, 0, Promise.allSettled(pending).then(() => disk.handle.datasync()).then(() => ({ status: S.OK })));
        return false;
      }
      case R.GET_ID: {
        const id = new Uint8Array(BLK_ID_BYTES);
        for (let i = 0; i < disk.id.length; i++) id[i] = disk.id.charCodeAt(i);
        const n = Math.min(BLK_ID_BYTES, target.dataBytes);
        this.complete(ctx, head, target, id.subarray(0, n), n, S.OK);
        return true;
      }
      case R.DISCARD:
      case R.WRITE_ZEROES: {
        if (dataOut !== 16) return finishNow(S.IOERR); // exactly one range (max_*_seg = 1)
        chain.readInto(memory, this.rangeBytes, 16);
        const rv = this.rangeView;
        const start = rv.getUint32(4, true) * 0x1_0000_0000 + rv.getUint32(0, true);
        const count = rv.getUint32(8, true);
        const flags = rv.getUint32(12, true);
        const isDiscard = type === R.DISCARD;
        // The unmap flag (bit 0) is defined for WRITE_ZEROES only; other bits are reserved.
        if ((flags & (isDiscard ? ~0 : ~1)) !== 0) return finishNow(S.UNSUPP);
        if (disk.readOnly) return finishNow(S.IOERR);
        const max = isDiscard ? MAX_DISCARD_SECTORS : MAX_WRITE_ZEROES_SECTORS;
        if (count > max || !this.inRange(start, count * SECTOR_SIZE)) return finishNow(S.IOERR);
        if (count === 0) return finishNow(S.OK);
        const unmap = isDiscard || (flags & 1) !== 0;
        const write = unmap
          ? disk.deallocate(start * SECTOR_SIZE, count * SECTOR_SIZE, (offset, length) => this.writeZeros(offset, length))
          : this.writeZeros(start * SECTOR_SIZE, count * SECTOR_SIZE);
        this.trackWrite(write);
        this.track(ctx, head, target, 0, write.then(() => ({ status: S.OK })));
        return false;
      }
      default:
        return finishNow(S.UNSUPP);
    }
  }

  private inRange(sector: number, bytes: number): boolean {
    return bytes % SECTOR_SIZE === 0 && Number.isSafeInteger(sector) && sector + bytes / SECTOR_SIZE <= this.disk.sectors;
  }

  private trackWrite(write: Promise<unknown>): void {
    this.writesInFlight.add(write);
    const done = (): void => void this.writesInFlight.delete(write);
    write.then(done, done);
  }

  private track(ctx: VirtioDeviceContext, head: number, target: WritableTarget, bytes: number, io: Promise<{ status: number; data?: Uint8Array }>): void {
    this.inFlight++;
    this.inFlightBytes += bytes;
    const finish = (status: number, data: Uint8Array | undefined): void => {
      this.inFlight--;
      this.inFlightBytes -= bytes;
      if (!ctx.active) return;
      this.complete(ctx, head, target, data, data?.length ?? 0, status);
      ctx.signalUsed(0);
      this.resume(ctx);
    };
    io.then((r) => finish(r.status, r.data), () => finish(VirtioBlkStatus.IOERR, undefined));
  }

  /** Writes data and the status byte into the saved buffers and puts the chain in the used ring. */
  private complete(ctx: VirtioDeviceContext, head: number, target: WritableTarget, data: Uint8Array | undefined, dataLen: number, status: number): void {
    if (status === VirtioBlkStatus.OK) this.completed.ok++;
    else if (status === VirtioBlkStatus.IOERR) this.completed.ioerr++;
    else this.completed.unsupp++;
    try {
      const memory = ctx.memory;
      let written = 0;
      if (data !== undefined && dataLen > 0) {
        let at = 0;
        for (let i = 0; i < target.addresses.length && at < dataLen; i++) {
          const n = Math.min(target.lengths[i], dataLen - at);
          memory.view(target.addresses[i], n).set(data.subarray(at, at + n));
          at += n;
        }
        written = at;
      }
      // The status byte is the last writable byte.
      const last = lastWritableByte(target);
      if (last !== undefined) memory.write8(last, status);
      ctx.queues[0].pushUsed(head, written + 1);
    } catch (e) {
      // Guest memory vanished (VM torn down) or was never valid: report it as a ring failure.
      ctx.fail(`virtio-blk: completing request: ${(e as Error).message}`);
    }
  }

  private async readFully(buffer: Buffer, position: number): Promise<void> {
    let done = 0;
    while (done < buffer.length) {
      const { bytesRead } = await this.disk.handle.read(buffer, done, buffer.length - done, position + done);
      if (bytesRead === 0) throw new Error('short read');
      done += bytesRead;
    }
  }

  private async writeFully(buffer: Uint8Array, position: number): Promise<void> {
    let done = 0;
    while (done < buffer.length) {
      const { bytesWritten } = await this.disk.handle.write(buffer, done, buffer.length - done, position + done);
      if (bytesWritten === 0) throw new Error('short write');
      done += bytesWritten;
    }
  }

  private async writeZeros(position: number, length: number): Promise<void> {
    for (let done = 0; done < length; done += ZERO_CHUNK) {
      await this.writeFully(zeroChunk.subarray(0, Math.min(ZERO_CHUNK, length - done)), position + done);
    }
  }

  /** Whether the driver negotiated `bit` (for tests). */
  negotiated(bit: number): boolean {
    return this.context !== undefined && hasFeature(this.context.features, bit);
  }
}

/** Copies the writable segments of `chain` (the data area, and the status byte at the very end). */
function saveWritable(chain: DescriptorChain): WritableTarget {
  const addresses: number[] = [];
  const lengths: number[] = [];
  for (let i = chain.readableCount; i < chain.count; i++) {
    addresses.push(chain.addresses[i]);
    lengths.push(chain.lengths[i]);
  }
  return { addresses, lengths, dataBytes: Math.max(0, chain.writableBytes - 1) };
}

function lastWritableByte(target: WritableTarget): number | undefined {
  for (let i = target.addresses.length - 1; i >= 0; i--) {
    if (target.lengths[i] > 0) return target.addresses[i] + target.lengths[i] - 1;
  }
  return undefined;
}
