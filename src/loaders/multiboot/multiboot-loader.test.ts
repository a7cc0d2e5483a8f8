/**
 * Tests for the multiboot v1 loader: ELF and a.out-kludge loading, the
 * multiboot information structure read back at the offsets of the 0.6.96
 * specification (section 3.3), the module, the memory map, and the 32-bit
 * entry state; plus every rejection.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GuestMemory } from '../../machine/memory.js';
import { EBDA_START, GiB, MiB } from '../../machine/layout.js';
import { CR0_PE, CR0_PG } from '../../engines/cpu-state.js';
import { LoaderError } from '../errors.js';
import { detectKernelImage } from '../kernel-image.js';
import { makeAoutImage, makeElf, pattern } from '../fixtures.js';
import { loadMultiboot, MULTIBOOT_BOOTLOADER_MAGIC } from './multiboot-loader.js';

const loaderError = (re: RegExp) => (e: unknown) => e instanceof LoaderError && re.test(e.message);

function load(memory: GuestMemory, img: Uint8Array, options: Parameters<typeof loadMultiboot>[4] = {}) {
  const k = detectKernelImage(img, options.name ?? 'kernel');
  assert.ok(k.kind === 'multiboot');
  return loadMultiboot(memory, img, k.header, k.elf, options);
}

function cString(memory: GuestMemory, address: number): string {
  let end = address;
  while (memory.read8(end) !== 0) end++;
  return new TextDecoder().decode(memory.readBytes(address, end - address));
}

const kvmUnitTestLike = () =>
  makeElf({
    elfClass: 32,
    entry: 0x400010n,
    segments: [
      { paddr: 0x400000, data: pattern(0x2000, 1) },
      { paddr: 0x402000, data: pattern(0x100, 2), memSize: 0x1000 },
    ],
    multiboot: {},
  });

void test('ELF32 multiboot kernel: segments, info structure and entry state', () => {
  const memory = GuestMemory.allocate(64 * MiB);
  memory.fill(0x402000, 0x1000, 0xee);
  const initrd = pattern(5000, 9);
  const r = load(memory, kvmUnitTestLike(), { name: 'x86/apic.flat', cmdline: '-smp 2', initrd, initrdName: 'env' });
  assert.deepEqual(memory.readBytes(0x400000, 0x2000), pattern(0x2000, 1));
  assert.deepEqual(memory.readBytes(0x402000, 0x100), pattern(0x100, 2));
  assert.equal(memory.readBytes(0x402100, 0xf00).every((b) => b === 0), true, 'bss zeroed');
  assert.equal(r.kernelEnd, 0x403000);

  const s = r.bootState;
  assert.equal(s.rip, 0x400010n);
  assert.equal(s.gpr.rax, BigInt(MULTIBOOT_BOOTLOADER_MAGIC));
  assert.equal(s.gpr.rbx, BigInt(r.info));
  assert.equal(s.cr0 & CR0_PE, CR0_PE);
  assert.equal(s.cr0 & CR0_PG, 0n);
  assert.equal(s.efer, 0n);
  assert.equal(s.rflags & 0x200n, 0n);
  assert.equal(s.rflags & 0x20000n, 0n);
  assert.equal(s.seg.cs.db, true);
  assert.equal(s.seg.cs.limit, 0xffffffff);
  for (const seg of [s.seg.ds, s.seg.es, s.seg.fs, s.seg.gs, s.seg.ss]) {
    assert.equal(seg.base, 0n);
    assert.equal(seg.limit, 0xffffffff);
  }

  const info = r.info;
  assert.ok(info + 120 <= EBDA_START && r.info < 0x400000);
  const flags = memory.read32(info);
  assert.equal(flags & 0x24d, 0x24d, 'mem, cmdline, mods, mmap, boot_loader_name');
  assert.equal(memory.read32(info + 4), 639, 'mem_lower in KiB');
  assert.equal(memory.read32(info + 8), (64 * MiB - MiB) / 1024, 'mem_upper in KiB');
  assert.equal(cString(memory, memory.read32(info + 16)), 'x86/apic.flat -smp 2', 'cmdline starts with the kernel name');
  assert.equal(memory.read32(info + 20), 1, 'mods_count');
  const mod = memory.read32(info + 24);
  const modStart = memory.read32(mod);
  assert.equal(modStart % 4096, 0);
  assert.ok(modStart >= r.kernelEnd);
  assert.equal(memory.read32(mod + 4), modStart + initrd.length);
  assert.equal(cString(memory, memory.read32(mod + 8)), 'env');
  assert.deepEqual(memory.readBytes(modStart, initrd.length), initrd);
  assert.equal(cString(memory, memory.read32(info + 64)), 'typevisor');

  const mmapLength = memory.read32(info + 44);
  const mmapAddr = memory.read32(info + 48);
  const entries = [];
  for (let at = mmapAddr; at < mmapAddr + mmapLength; at += memory.read32(at) + 4) {
    entries.push([memory.read64(at + 4), memory.read64(at + 12), memory.read32(at + 20)]);
  }
  assert.deepEqual(entries, [
    [0, EBDA_START, 1],
    [EBDA_START, MiB - EBDA_START, 2],
    [MiB, 63 * MiB, 1],
  ]);
});

void test('without an initrd there are no modules and the command line is the kernel name', () => {
  const memory = GuestMemory.allocate(16 * MiB);
  const r = load(memory, kvmUnitTestLike(), { name: 'kernel.elf' });
  assert.equal(memory.read32(r.info + 20), 0);
  assert.equal(cString(memory, memory.read32(r.info + 16)), 'kernel.elf');
  assert.equal(r.module, undefined);
});

void test('mem_upper stops at the MMIO hole when RAM continues above 4 GiB', () => {
  const memory = GuestMemory.allocate(4 * GiB);
  const r = load(memory, kvmUnitTestLike());
  assert.equal(memory.read32(r.info + 8), (3 * GiB - MiB) / 1024);
  assert.equal(memory.read32(r.info + 44), 4 * 24, 'four mmap entries including RAM above 4 GiB');
});

void test('a.out kludge: load_addr..load_end_addr from the file, bss zeroed, entry_addr', () => {
  const memory = GuestMemory.allocate(16 * MiB);
  memory.fill(0x200000, 0x3000, 0xaa);
  const text = pattern(0x1800, 5);
  const img = makeAoutImage({ loadAddr: 0x200000, headerOffset: 0x20, text, bss: 0x800, entryOffset: 0x100 });
  const r = load(memory, img);
  assert.deepEqual(memory.readBytes(0x200000, 0x1800), img);
  assert.equal(memory.readBytes(0x201800, 0x800).every((b) => b === 0), true);
  assert.equal(memory.read8(0x202000), 0xaa, 'nothing written past bss_end_addr');
  assert.equal(r.entry, 0x200100);
  assert.equal(r.kernelEnd, 0x202000);

  // load_end_addr = 0 means "the rest of the file"; a header deeper in the file than the load start.
  const whole = makeAoutImage({ loadAddr: 0x300000, headerOffset: 0x1000, text: pattern(0x2000, 6), bss: 0, entryOffset: 0, loadEndZero: true });
  const r2 = load(GuestMemory.allocate(16 * MiB), whole);
  assert.equal(r2.kernelEnd, 0x302000);
});

void test('a.out kludge with the image starting after the file start (header_addr - load_addr < offset)', () => {
  // Header at file offset 0x40, but header_addr - load_addr = 0x20: the loaded image starts at file offset 0x20.
  const bytes = pattern(0x400, 7);
  const view = new DataView(bytes.buffer);
  const flags = 0x10000;
  [0x1badb002, flags, -(0x1badb002 + flags) >>> 0, 0x100020, 0x100000, 0x100100, 0, 0x100000].forEach((v, i) => view.setUint32(0x40 + 4 * i, v, true));
  const memory = GuestMemory.allocate(16 * MiB);
  load(memory, bytes);
  assert.deepEqual(memory.readBytes(0x100000, 0x100), bytes.subarray(0x20, 0x120));
});

void test('a multiboot kernel linked in low memory (like kvm-unit-tests realmode.flat at 0x8000) loads there; its module goes above 1 MiB', () => {
  const memory = GuestMemory.allocate(16 * MiB);
  const img = makeElf({
    elfClass: 32,
    entry: 0x8018n,
    segments: [{ paddr: 0x8000, data: pattern(0x2800, 3) }, { paddr: 0xb000, data: pattern(0x100, 4), memSize: 0x2a30 }],
    multiboot: {},
  });
  const r = load(memory, img, { initrd: pattern(100, 5) });
  assert.deepEqual(memory.readBytes(0x8000, 0x2800), pattern(0x2800, 3));
  assert.deepEqual(memory.readBytes(0xb000, 0x100), pattern(0x100, 4));
  assert.equal(r.kernelEnd, 0xda30);
  assert.equal(r.bootState.rip, 0x8018n);
  assert.equal(r.module?.address, 0x100000);
  assert.deepEqual(memory.readBytes(0x100000, 100), pattern(100, 5));
});

void test('multiboot rejections give clear errors', () => {
  const mem = () => GuestMemory.allocate(16 * MiB);
  const video = makeElf({ elfClass: 32, entry: 0x400000n, segments: [{ paddr: 0x400000, data: pattern(16, 1) }], multiboot: { flags: 0x4 } });
  assert.throws(() => load(mem(), video, { name: 'vid.elf' }), loaderError(/^vid\.elf: multiboot header requires unsupported features \(flags 0x4/));
  const outside = makeElf({ elfClass: 32, entry: 0x2000000n, segments: [{ paddr: 0x2000000, data: pattern(16, 1) }], multiboot: {} });
  assert.throws(() => load(mem(), outside), loaderError(/kernel segment \[0x2000000, 0x2000010\) lies outside guest RAM \(16 MiB configured\)/));
  const low = makeElf({ elfClass: 32, entry: 0x1000n, segments: [{ paddr: 0x1000, data: pattern(16, 1) }], multiboot: {} });
  assert.throws(() => load(mem(), low), loaderError(/below 1 MiB outside \[0x7000, 0x20000\)/));
  const intoCmdline = makeElf({ elfClass: 32, entry: 0x1f000n, segments: [{ paddr: 0x1f000, data: pattern(0x1010, 1) }], multiboot: {} });
  assert.throws(() => load(mem(), intoCmdline), loaderError(/below 1 MiB outside/));
  const badEntry = makeElf({ elfClass: 32, entry: 0x500000n, segments: [{ paddr: 0x400000, data: pattern(16, 1) }], multiboot: {} });
  assert.throws(() => load(mem(), badEntry), loaderError(/entry point 0x500000 is not inside the loaded kernel/));
  assert.throws(() => load(mem(), kvmUnitTestLike(), { initrd: new Uint8Array(13 * MiB), initrdName: 'big' }),
    loaderError(/^big: 13 MiB module does not fit in guest RAM after the kernel/));

  const img = makeAoutImage({ loadAddr: 0x200000, headerOffset: 0x20, text: pattern(0x1000, 5), bss: 0, entryOffset: 0 });
  assert.throws(() => load(mem(), img.subarray(0, 0x800)), loaderError(/shorter than multiboot load_end_addr/));
  const behind = new DataView(img.buffer.slice(0));
  behind.setUint32(0x20 + 12, 0x1fff00, true); // header_addr below load_addr
  behind.setUint32(0x20 + 8, -(0x1badb002 + 0x10000) >>> 0, true);
  assert.throws(() => load(mem(), new Uint8Array(behind.buffer)), loaderError(/load_addr 0x200000 is above header_addr 0x1fff00/));
  const beforeFile = new DataView(img.buffer.slice(0));
  beforeFile.setUint32(0x20 + 12, 0x200100, true); // header_addr - load_addr = 0x100 > offset 0x20
  assert.throws(() => load(mem(), new Uint8Array(beforeFile.buffer)), loaderError(/before the file start/));
  const bssBelow = new DataView(img.buffer.slice(0));
  bssBelow.setUint32(0x20 + 24, 0x200800, true);
  assert.throws(() => load(mem(), new Uint8Array(bssBelow.buffer)), loaderError(/bss_end_addr 0x200800 is below load_end_addr/));
});
