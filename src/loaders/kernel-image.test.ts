/** Tests for kernel kind detection and for the ELF reader it relies on. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { detectKernelImage, findMultibootHeader, isBzImage } from './kernel-image.js';
import { entryToPhysical, parseElf } from './elf.js';
import { LoaderError } from './errors.js';
import { makeAoutImage, makeBzImage, makeElf, pattern } from './fixtures.js';

const loaderError = (re: RegExp) => (e: unknown) => e instanceof LoaderError && re.test(e.message);

void test('a bzImage is recognised by boot flag and HdrS', () => {
  const img = makeBzImage();
  assert.equal(isBzImage(img), true);
  assert.equal(detectKernelImage(img).kind, 'bzimage');
  const broken = img.slice();
  broken[0x1fe] = 0;
  assert.equal(isBzImage(broken), false);
});

void test('an ELF64 x86-64 executable without a multiboot header is a vmlinux', () => {
  const img = makeElf({ elfClass: 64, entry: 0x1000000n, segments: [{ paddr: 0x1000000, data: pattern(64, 1) }] });
  const k = detectKernelImage(img);
  assert.equal(k.kind, 'vmlinux');
  assert.equal(k.kind === 'vmlinux' && k.elf.segments[0]?.paddr, 0x1000000);
});

void test('an ELF32 with a multiboot header is multiboot', () => {
  const img = makeElf({ elfClass: 32, entry: 0x400000n, segments: [{ paddr: 0x400000, data: pattern(64, 2) }], multiboot: {} });
  const k = detectKernelImage(img);
  assert.equal(k.kind, 'multiboot');
  assert.ok(k.kind === 'multiboot' && k.elf && !k.header.aout);
});

void test('a multiboot header takes priority over ELF64', () => {
  const img = makeElf({ elfClass: 64, entry: 0x400000n, segments: [{ paddr: 0x400000, data: pattern(64, 2) }], multiboot: {} });
  assert.equal(detectKernelImage(img).kind, 'multiboot');
});

void test('an a.out-kludge image is multiboot with load addresses and no ELF', () => {
  const img = makeAoutImage({ loadAddr: 0x100000, headerOffset: 0x40, text: pattern(0x1000, 3), bss: 0x100, entryOffset: 0x80 });
  const k = detectKernelImage(img);
  assert.ok(k.kind === 'multiboot');
  assert.equal(k.elf, undefined);
  assert.equal(k.header.offset, 0x40);
  assert.deepEqual(k.header.aout, { headerAddr: 0x100040, loadAddr: 0x100000, loadEndAddr: 0x101000, bssEndAddr: 0x101100, entryAddr: 0x100080 });
});

void test('the multiboot header is only searched in the first 8 KiB at 4-byte alignment', () => {
  const text = pattern(0x3000, 4);
  const late = makeAoutImage({ loadAddr: 0x100000, headerOffset: 0x2000, text, bss: 0, entryOffset: 0 });
  assert.equal(findMultibootHeader(late, 'k').header, undefined);
  const misaligned = makeAoutImage({ loadAddr: 0x100000, headerOffset: 0x42, text: pattern(0x1000, 4), bss: 0, entryOffset: 0 });
  assert.equal(findMultibootHeader(misaligned, 'k').header, undefined);
});

void test('unrecognised, empty and malformed files give one clear error', () => {
  assert.throws(() => detectKernelImage(pattern(4096, 9), 'kernel.bin'), loaderError(/^kernel\.bin: not a bzImage, ELF or multiboot kernel$/));
  assert.throws(() => detectKernelImage(new Uint8Array(0), 'k'), loaderError(/file is empty/));
  const elf32 = makeElf({ elfClass: 32, entry: 0x100000n, segments: [{ paddr: 0x100000, data: pattern(16, 1) }] });
  assert.throws(() => detectKernelImage(elf32, 'k'), loaderError(/32-bit ELF file without a multiboot header/));
  const badSum = makeElf({ elfClass: 32, entry: 0x100000n, segments: [{ paddr: 0x100000, data: pattern(16, 1) }], multiboot: { checksum: 1 } });
  assert.throws(() => detectKernelImage(badSum, 'k'), loaderError(/multiboot header at offset 0x[0-9a-f]+ has a bad checksum/));
  const noKludge = new Uint8Array(64);
  new DataView(noKludge.buffer).setUint32(8, 0x1badb002, true);
  new DataView(noKludge.buffer).setUint32(16, -0x1badb002 >>> 0, true);
  assert.throws(() => detectKernelImage(noKludge, 'k'), loaderError(/not ELF and its header has no a.out load addresses/));
  const truncatedKludge = makeAoutImage({ loadAddr: 0x100000, headerOffset: 0, text: pattern(64, 1), bss: 0, entryOffset: 0 }).subarray(0, 20);
  assert.throws(() => detectKernelImage(truncatedKludge, 'k'), loaderError(/multiboot header at offset 0x0 is truncated/));
});

void test('parseElf rejects wrong machine, truncation and inconsistent segments', () => {
  const good = { elfClass: 64 as const, entry: 0x1000000n, segments: [{ paddr: 0x1000000, data: pattern(256, 5) }] };
  assert.throws(() => parseElf(makeElf({ ...good, machine: 183 }), 'k'), loaderError(/machine 183, not x86-64/));
  assert.throws(() => parseElf(makeElf(good).subarray(0, 40), 'k'), loaderError(/truncated ELF header/));
  assert.throws(() => parseElf(makeElf(good).subarray(0, 100), 'k'), loaderError(/program headers lie outside the file/));
  const img = makeElf(good);
  assert.throws(() => parseElf(img.subarray(0, img.length - 10), 'k'), loaderError(/segment 0 extends past the end of the file/));
  assert.throws(() => parseElf(makeElf({ ...good, segments: [{ paddr: 0x1000000, data: pattern(256, 5), memSize: 16 }] }), 'k'),
    loaderError(/file size larger than memory size/));
  const bigEndian = makeElf(good);
  bigEndian[5] = 2;
  assert.throws(() => parseElf(bigEndian, 'k'), loaderError(/not little-endian/));
});

void test('entryToPhysical translates a higher-half entry through its segment', () => {
  const img = makeElf({
    elfClass: 64,
    entry: 0xffffffff81000040n,
    segments: [{ paddr: 0x1000000, vaddr: 0xffffffff81000000n, data: pattern(128, 6) }],
  });
  const elf = parseElf(img, 'k');
  assert.equal(elf.segments[0]?.vaddr, 0xffffffff81000000n);
  assert.equal(entryToPhysical(elf), 0x1000040);
});
