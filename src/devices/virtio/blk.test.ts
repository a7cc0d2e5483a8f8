import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, open, readFile, rm, truncate, writeFile, chmod } from 'node:fs/promises';
import { statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GuestMemory } from '../../machine/memory.js';
import { MiB } from '../../machine/layout.js';
import { RecordingInterruptController } from '../fakes.js';
import { BlkConfig, DiskError, DiskImage, VirtioBlk, VirtioBlkFeature, VirtioBlkRequest, VirtioBlkStatus } from './blk.js';
import { TestVirtioDriver } from './test-driver.js';
import { VirtioPciFunction } from './virtio-pci.js';
import { VirtioPciLayout } from './virtio-pci.js';

const HDR = 0x100000;
const DATA = 0x200000;
const STATUS = 0x300000;

async function withDisk(size: number, fn: (path: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'typevisor-blk-'));
  try {
    const path = join(dir, 'disk.img');
    const bytes = new Uint8Array(size);
    for (let i = 0; i < size; i++) bytes[i] = (i * 7 + (i >> 9)) & 0xff;
    await writeFile(path, bytes);
    await fn(path);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function attach(path: string, readOnly = false, id?: string) {
  const disk = await DiskImage.open({ path, readOnly, id });
  const memory = GuestMemory.allocate(16 * MiB);
  const irq = new RecordingInterruptController();
  const blk = new VirtioBlk(disk);
  const fn = new VirtioPciFunction({ device: blk, memory, interrupts: irq });
  const driver = new TestVirtioDriver(fn, memory);
  driver.init();
  let next = 0;
  /** Submits one request and waits for its completion; returns status and used length. */
  const request = async (type: number, sector: number, data: { out?: Uint8Array; inLength?: number }) => {
    const slot = next++ % 8;
    const hdr = HDR + slot * 64;
    const status = STATUS + slot;
    memory.write32(hdr, type);
    memory.write32(hdr + 4, 0);
    memory.write64(hdr + 8, sector);
    memory.write8(status, 0xaa);
    const segs = [{ address: hdr, length: 16, writable: false }];
    if (data.out !== undefined) {
      memory.writeBytes(DATA + slot * 0x10000, data.out);
      segs.push({ address: DATA + slot * 0x10000, length: data.out.length, writable: false });
    }
    if (data.inLength !== undefined) segs.push({ address: DATA + slot * 0x10000, length: data.inLength, writable: true });
    segs.push({ address: status, length: 1, writable: true });
    const head = driver.add(0, segs);
    driver.kick(0);
    for (let i = 0; i < 1000; i++) {
      const used = driver.takeUsed(0);
      if (used.length > 0) {
        assert.equal(used[0].id, head);
        return { status: memory.read8(status), len: used[0].len, data: memory.readBytes(DATA + slot * 0x10000, data.inLength ?? 0) };
      }
      await blk.idle();
      await new Promise((r) => setImmediate(r));
    }
    throw new Error('request never completed');
  };
  return { disk, blk, fn, driver, memory, irq, request };
}

test('config space: capacity, size/seg max, block size, discard limits; features for rw and ro disks', async () => {
  await withDisk(8 * 512, async (path) => {
    const { blk, disk, driver } = await attach(path);
    assert.equal(blk.readConfig(BlkConfig.CAPACITY, 4), 8);
    assert.equal(blk.readConfig(BlkConfig.CAPACITY + 4, 4), 0);
    assert.equal(driver.bar.read(VirtioPciLayout.DEVICE + BlkConfig.BLK_SIZE, 4), 512);
    assert.ok(blk.readConfig(BlkConfig.SEG_MAX, 4) > 0);
    assert.equal(blk.readConfig(BlkConfig.MAX_DISCARD_SEG, 4), 1);
    const [low] = driver.deviceFeatures();
    assert.ok(low & (1 << VirtioBlkFeature.FLUSH));
    assert.ok(low & (1 << VirtioBlkFeature.WRITE_ZEROES));
    assert.equal(low & (1 << VirtioBlkFeature.RO), 0);
    assert.ok(blk.negotiated(VirtioBlkFeature.FLUSH));
    await disk.close();
    const ro = await attach(path, true);
    assert.ok(ro.driver.deviceFeatures()[0] & (1 << VirtioBlkFeature.RO));
    await ro.disk.close();
  });
});

test('read, write, flush, get-id, discard and write-zeroes against a temp file', async () => {
  await withDisk(64 * 512, async (path) => {
    const { disk, request, fn } = await attach(path, false, 'serial-123');
    const original = await readFile(path);
    const r = await request(VirtioBlkRequest.IN, 3, { inLength: 1024 });
    assert.equal(r.status, VirtioBlkStatus.OK);
    assert.equal(r.len, 1025);
    assert.deepEqual(r.data, new Uint8Array(original.subarray(3 * 512, 5 * 512)));
    assert.equal(fn.core.isr & 1, 1, 'queue interrupt raised after completion');

    const payload = Uint8Array.from({ length: 512 }, (_, i) => 255 - (i & 0xff));
    const w = await request(VirtioBlkRequest.OUT, 10, { out: payload });
    assert.equal(w.status, VirtioBlkStatus.OK);
    assert.equal(w.len, 1);
    const f = await request(VirtioBlkRequest.FLUSH, 0, {});
    assert.equal(f.status, VirtioBlkStatus.OK);
    assert.deepEqual(new Uint8Array((await readFile(path)).subarray(10 * 512, 11 * 512)), payload);

    const id = await request(VirtioBlkRequest.GET_ID, 0, { inLength: 20 });
    assert.equal(id.status, VirtioBlkStatus.OK);
    assert.equal(Buffer.from(id.data).toString('latin1'), 'serial-123' + '\0'.repeat(10));

    // WRITE_ZEROES over sectors 20-21, then read them back.
    const range = new Uint8Array(16);
    const rv = new DataView(range.buffer);
    rv.setUint32(0, 20, true);
    rv.setUint32(8, 2, true);
    assert.equal((await request(VirtioBlkRequest.WRITE_ZEROES, 0, { out: range })).status, VirtioBlkStatus.OK);
    const z = await request(VirtioBlkRequest.IN, 20, { inLength: 1024 });
    assert.ok(z.data.every((b) => b === 0));
    // DISCARD: accepted in range, IOERR past the end, UNSUPP with the unmap flag.
    assert.equal((await request(VirtioBlkRequest.DISCARD, 0, { out: range })).status, VirtioBlkStatus.OK);
    rv.setUint32(0, 63, true);
    assert.equal((await request(VirtioBlkRequest.DISCARD, 0, { out: range })).status, VirtioBlkStatus.IOERR);
    rv.setUint32(0, 0, true);
    rv.setUint32(12, 1, true);
    assert.equal((await request(VirtioBlkRequest.DISCARD, 0, { out: range })).status, VirtioBlkStatus.UNSUPP);
    await disk.close();
  });
});

test('bad requests get IOERR or UNSUPP, never an exception; read-only disks refuse writes', async () => {
  await withDisk(16 * 512, async (path) => {
    const { disk, request, blk, driver } = await attach(path);
    assert.equal((await request(VirtioBlkRequest.IN, 15, { inLength: 1024 })).status, VirtioBlkStatus.IOERR, 'past the end');
    assert.equal((await request(VirtioBlkRequest.IN, 2 ** 52, { inLength: 512 })).status, VirtioBlkStatus.IOERR, 'huge sector');
    assert.equal((await request(VirtioBlkRequest.IN, 0, { inLength: 100 })).status, VirtioBlkStatus.IOERR, 'not a sector multiple');
    assert.equal((await request(VirtioBlkRequest.OUT, 0, { out: new Uint8Array(100) })).status, VirtioBlkStatus.IOERR);
    assert.equal((await request(99, 0, {})).status, VirtioBlkStatus.UNSUPP);
    assert.equal(blk.completed.ioerr, 4);
    // A chain without a status byte is returned with length 0.
    driver.memory.write32(HDR, VirtioBlkRequest.IN);
    driver.add(0, [{ address: HDR, length: 16, writable: false }]);
    driver.kick(0);
    assert.deepEqual(driver.takeUsed(0).map((u) => u.len), [0]);
    await disk.close();

    const ro = await attach(path, true);
    const before = await readFile(path);
    assert.equal((await ro.request(VirtioBlkRequest.OUT, 0, { out: new Uint8Array(512) })).status, VirtioBlkStatus.IOERR);
    assert.equal((await ro.request(VirtioBlkRequest.FLUSH, 0, {})).status, VirtioBlkStatus.OK);
    assert.equal((await ro.request(VirtioBlkRequest.IN, 1, { inLength: 512 })).status, VirtioBlkStatus.OK);
    assert.deepEqual(await readFile(path), before);
    await ro.disk.close();
  });
});

test('a reset while I/O is in flight drops the completion instead of writing a stale used ring', async () => {
  await withDisk(16 * 512, async (path) => {
    const { disk, driver, memory, blk } = await attach(path);
    memory.write32(HDR, VirtioBlkRequest.IN);
    memory.write64(HDR + 8, 0);
    driver.add(0, [
      { address: HDR, length: 16, writable: false },
      { address: DATA, length: 512, writable: true },
      { address: STATUS, length: 1, writable: true },
    ]);
    memory.write8(STATUS, 0xaa);
    driver.kick(0);
    assert.equal(blk.inFlight, 1);
    driver.setCommon(20, 1, 0); // device_status = 0
    await blk.idle();
    assert.equal(memory.read8(STATUS), 0xaa);
    assert.equal(memory.read16(0x20000 + 0x3000 + 2), 0);
    await disk.close();
  });
});

test('disk files are checked: missing, not regular, bad size, unwritable without ro', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'typevisor-blk-'));
  try {
    const expectError = async (spec: { path: string; readOnly: boolean; id?: string }, re: RegExp): Promise<void> => {
      await assert.rejects(DiskImage.open(spec), (e: Error) => e instanceof DiskError && re.test(e.message) && !e.message.includes('\n'));
    };
    await expectError({ path: join(dir, 'nope.img'), readOnly: false }, /no such file/);
    await expectError({ path: dir, readOnly: false }, /not a regular file or block device/);
    const odd = join(dir, 'odd.img');
    await writeFile(odd, new Uint8Array(1000));
    await expectError({ path: odd, readOnly: false }, /not a non-zero multiple of 512/);
    const empty = join(dir, 'empty.img');
    await writeFile(empty, new Uint8Array(0));
    await expectError({ path: empty, readOnly: false }, /not a non-zero multiple of 512/);
    await expectError({ path: odd, readOnly: false, id: 'x'.repeat(21) }, /id must be/);
    const locked = join(dir, 'locked.img');
    await writeFile(locked, new Uint8Array(512));
    await truncate(locked, 4096);
    await chmod(locked, 0o444);
    if (process.getuid?.() !== 0) {
      await expectError({ path: locked, readOnly: false }, /for writing: permission denied \(add ,ro/);
      const d = await DiskImage.open({ path: locked, readOnly: true });
      assert.equal(d.sectors, 8);
      await d.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/** A sparse file of `size` bytes with `dataBytes` of non-zero data written (and synced) at `dataAt`. */
async function withSparseDisk(size: number, dataAt: number, dataBytes: number, fn: (path: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'typevisor-blk-sparse-'));
  try {
    const path = join(dir, 'sparse.img');
    const handle = await open(path, 'w');
    await handle.truncate(size);
    await handle.write(new Uint8Array(dataBytes).fill(0x5a), 0, dataBytes, dataAt);
    await handle.sync();
    await handle.close();
    await fn(path);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function rangeOf(sector: number, count: number, flags = 0): Uint8Array {
  const range = new Uint8Array(16);
  const rv = new DataView(range.buffer);
  rv.setUint32(0, sector, true);
  rv.setUint32(8, count, true);
  rv.setUint32(12, flags, true);
  return range;
}

const SPARSE_SIZE = 16 * MiB;
const DATA_AT = 4 * MiB;
const DATA_BYTES = 4 * MiB;

test('DISCARD punches a hole: the image\'s allocated blocks drop and the range reads as zeros', async () => {
  await withSparseDisk(SPARSE_SIZE, DATA_AT, DATA_BYTES, async (path) => {
    const { disk, blk, request } = await attach(path);
    assert.equal(blk.readConfig(BlkConfig.WRITE_ZEROES_MAY_UNMAP, 1), 1, 'unmap is offered on a writable disk');
    const before = statSync(path).blocks;
    assert.ok(before * 512 >= DATA_BYTES, `the data is allocated (${before} blocks)`);
    // Discard the middle 2 MiB of the data.
    const r = await request(VirtioBlkRequest.DISCARD, 0, { out: rangeOf((DATA_AT + MiB) / 512, (2 * MiB) / 512) });
    assert.equal(r.status, VirtioBlkStatus.OK);
    assert.deepEqual(disk.deallocation, { mode: 'punch-hole' });
    assert.deepEqual(disk.deallocated, { punched: 1, zeroedInstead: 0 });
    const after = statSync(path).blocks;
    assert.ok(before - after >= (2 * MiB) / 512, `2 MiB deallocated: ${before} → ${after} blocks`);
    assert.equal(statSync(path).size, SPARSE_SIZE, 'the image keeps its size');
    const image = await readFile(path);
    assert.ok(image.subarray(DATA_AT + MiB, DATA_AT + 3 * MiB).every((b) => b === 0), 'the discarded range reads as zeros on the host');
    assert.ok(image.subarray(DATA_AT, DATA_AT + MiB).every((b) => b === 0x5a), 'data before the range is kept');
    assert.ok(image.subarray(DATA_AT + 3 * MiB, DATA_AT + DATA_BYTES).every((b) => b === 0x5a), 'data after the range is kept');
    const guestView = await request(VirtioBlkRequest.IN, (DATA_AT + MiB) / 512, { inLength: 64 * 1024 });
    assert.ok(guestView.data.every((b) => b === 0), 'and in the guest');
    await disk.close();
  });
});

test('WRITE_ZEROES with UNMAP punches a hole; without UNMAP it writes (allocated) zeros', async () => {
  await withSparseDisk(SPARSE_SIZE, DATA_AT, DATA_BYTES, async (path) => {
    const { disk, request } = await attach(path);
    const before = statSync(path).blocks;
    assert.equal((await request(VirtioBlkRequest.WRITE_ZEROES, 0, { out: rangeOf(DATA_AT / 512, MiB / 512, 1) })).status, VirtioBlkStatus.OK);
    const afterUnmap = statSync(path).blocks;
    assert.ok(before - afterUnmap >= MiB / 512, `unmap deallocated 1 MiB: ${before} → ${afterUnmap}`);
    assert.deepEqual(disk.deallocated, { punched: 1, zeroedInstead: 0 });
    // Without UNMAP over a hole: zeros are written, so blocks are allocated again.
    assert.equal((await request(VirtioBlkRequest.WRITE_ZEROES, 0, { out: rangeOf(DATA_AT / 512, MiB / 512, 0) })).status, VirtioBlkStatus.OK);
    await request(VirtioBlkRequest.FLUSH, 0, {});
    assert.ok(statSync(path).blocks - afterUnmap >= MiB / 512, 'plain WRITE_ZEROES allocates');
    assert.deepEqual(disk.deallocated, { punched: 1, zeroedInstead: 0 }, 'plain WRITE_ZEROES is not a deallocation');
    const image = await readFile(path);
    assert.ok(image.subarray(DATA_AT, DATA_AT + MiB).every((b) => b === 0));
    assert.ok(image.subarray(DATA_AT + MiB, DATA_AT + DATA_BYTES).every((b) => b === 0x5a));
    await disk.close();
  });
});

test('where holes cannot be punched, DISCARD writes zeros and the disk reports it', async () => {
  await withSparseDisk(SPARSE_SIZE, DATA_AT, DATA_BYTES, async (path) => {
    const { disk, request } = await attach(path);
    // As after a refusal by the file system (or with no addon): the mode is sticky.
    disk.deallocation = { mode: 'write-zeroes', reason: 'fallocate(PUNCH_HOLE) refused by the file system (errno 95)' };
    const before = statSync(path).blocks;
    assert.equal((await request(VirtioBlkRequest.DISCARD, 0, { out: rangeOf(DATA_AT / 512, MiB / 512) })).status, VirtioBlkStatus.OK);
    assert.deepEqual(disk.deallocated, { punched: 0, zeroedInstead: 1 });
    assert.ok(statSync(path).blocks >= before, 'nothing was deallocated');
    const image = await readFile(path);
    assert.ok(image.subarray(DATA_AT, DATA_AT + MiB).every((b) => b === 0), 'but the range reads as zeros');
    // A zero-length discard completes without touching anything.
    assert.equal((await request(VirtioBlkRequest.DISCARD, 0, { out: rangeOf(0, 0) })).status, VirtioBlkStatus.OK);
    assert.deepEqual(disk.deallocated, { punched: 0, zeroedInstead: 1 });
    await disk.close();
  });
});
