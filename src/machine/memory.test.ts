import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GuestMemory, GuestMemoryError } from './memory.js';
import { GiB, MiB } from './layout.js';

test('small RAM is one region starting at 0', () => {
  const mem = GuestMemory.allocate(64 * MiB);
  assert.equal(mem.regions.length, 1);
  assert.equal(mem.size, 64 * MiB);
});

test('reads and writes are little-endian and round-trip', () => {
  const mem = GuestMemory.allocate(16 * MiB);
  mem.write32(0x1000, 0xdeadbeef);
  assert.equal(mem.read8(0x1000), 0xef);
  assert.equal(mem.read16(0x1002), 0xdead);
  assert.equal(mem.read32(0x1000), 0xdeadbeef);
  mem.write64(0x2000, 0x1234_5678_9abc);
  assert.throws(() => mem.write64(0x2000, 2 ** 60), RangeError);
  assert.equal(mem.read64(0x2000), 0x1234_5678_9abc);
  assert.equal(mem.read32(0x2004), 0x1234);
});

test('views are zero-copy windows on guest RAM', () => {
  const mem = GuestMemory.allocate(16 * MiB);
  const v = mem.view(0x3000, 4);
  v[0] = 0x7f;
  assert.equal(mem.read8(0x3000), 0x7f);
  const copy = mem.readBytes(0x3000, 4);
  copy[0] = 0;
  assert.equal(mem.read8(0x3000), 0x7f);
});

test('every access outside RAM throws GuestMemoryError, including wrap-around and huge lengths', () => {
  const mem = GuestMemory.allocate(16 * MiB);
  assert.throws(() => mem.read8(16 * MiB), GuestMemoryError);
  assert.throws(() => mem.read32(16 * MiB - 2), GuestMemoryError);
  assert.throws(() => mem.view(0x1000, 2 ** 40), GuestMemoryError);
  assert.throws(() => mem.view(-1, 4), GuestMemoryError);
  assert.throws(() => mem.view(2 ** 64, 4), GuestMemoryError);
  assert.throws(() => mem.view(0.5, 4), GuestMemoryError);
  assert.equal(mem.contains(16 * MiB - 4, 4), true);
  assert.equal(mem.contains(16 * MiB - 3, 4), false);
});

test('RAM above 3 GiB continues at 4 GiB and the hole is not RAM', () => {
  const mem = new GuestMemory([
    { guestBase: 0, size: 4096, bytes: new Uint8Array(4096) },
    { guestBase: 4 * GiB, size: 4096, bytes: new Uint8Array(4096) },
  ]);
  mem.write32(4 * GiB + 8, 7);
  assert.equal(mem.read32(4 * GiB + 8), 7);
  assert.throws(() => mem.read8(3 * GiB), GuestMemoryError);
  assert.throws(() => mem.view(4090, 16), GuestMemoryError);
});

test('ramRanges splits large RAM around the MMIO hole', async () => {
  const { ramRanges } = await import('./layout.js');
  assert.deepEqual(ramRanges(4 * GiB), [
    { guestBase: 0, size: 3 * GiB },
    { guestBase: 4 * GiB, size: 1 * GiB },
  ]);
  assert.deepEqual(ramRanges(256 * MiB), [{ guestBase: 0, size: 256 * MiB }]);
});
