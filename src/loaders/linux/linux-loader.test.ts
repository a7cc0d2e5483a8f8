/**
 * Tests for the Linux 64-bit boot path: zero page fields read back at the
 * offsets of Documentation/arch/x86/boot.rst and zero-page.rst, the e820 map,
 * initrd placement, the identity page tables (walked like the MMU would), the
 * boot GDT and the entry CpuState; plus every rejection. If a real bzImage is
 * available (TYPEVISOR_TEST_BZIMAGE, or /boot/vmlinuz-*), it is parsed and
 * loaded too.
 */

import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { testCacheDirectory } from '../../assets/cache.js';
import { GuestMemory } from '../../machine/memory.js';
import { EBDA_START, GiB, MiB } from '../../machine/layout.js';
import { CR0_PE, CR0_PG, CR4_PAE, EFER_LMA, EFER_LME } from '../../engines/cpu-state.js';
import { LoaderError } from '../errors.js';
import { detectKernelImage } from '../kernel-image.js';
import { BootLayout, Selectors } from '../boot-layout.js';
import { makeBzImage, makeElf, pattern } from '../fixtures.js';
import { BootParams, loadBzImage, loadVmlinux } from './linux-loader.js';
import { unpackBzImage } from './payload.js';
import { Hdr, parseSetupHeader, XLF_KERNEL_64 } from './setup-header.js';

const loaderError = (re: RegExp) => (e: unknown) => e instanceof LoaderError && re.test(e.message);
const ZP = BootLayout.ZERO_PAGE;

/** Walks the 4-level page tables from CR3 like the MMU; returns the physical address or -1. */
function translate(memory: GuestMemory, cr3: number, va: number): number {
  const pml4e = memory.read64(cr3 + Math.floor(va / 2 ** 39) % 512 * 8);
  if ((pml4e & 1) === 0) return -1;
  const pdpt = pml4e - (pml4e % 0x1000);
  const pdpte = memory.read64(pdpt + (Math.floor(va / 2 ** 30) % 512) * 8);
  if ((pdpte & 1) === 0 || (pdpte & 0x80) !== 0) return -1;
  const pd = pdpte - (pdpte % 0x1000);
  const pde = memory.read64(pd + (Math.floor(va / 2 ** 21) % 512) * 8);
  if ((pde & 1) === 0 || (pde & 0x80) === 0 || (pde & 2) === 0) return -1;
  return pde - (pde % 0x200000) + (va % 0x200000);
}

/** Decodes an 8-byte GDT descriptor. */
function descriptor(memory: GuestMemory, selector: number) {
  const low = memory.read32(BootLayout.GDT + selector);
  const high = memory.read32(BootLayout.GDT + selector + 4);
  return {
    base: ((low >>> 16) | ((high & 0xff) << 16) | (high & 0xff000000)) >>> 0,
    limit: (low & 0xffff) | (high & 0xf0000),
    type: (high >>> 8) & 0xf,
    s: ((high >>> 12) & 1) === 1,
    present: ((high >>> 15) & 1) === 1,
    l: ((high >>> 21) & 1) === 1,
    db: ((high >>> 22) & 1) === 1,
    g: ((high >>> 23) & 1) === 1,
  };
}

void test('bzImage: kernel at 1 MiB, zero page fields, command line and entry state', () => {
  const memory = GuestMemory.allocate(64 * MiB);
  const img = makeBzImage({ kernelSize: 10000 });
  const r = loadBzImage(memory, img, { cmdline: 'console=ttyS0 panic=-1', acpiRsdp: 0xf0000 });
  assert.equal(r.entry, 0x100200);
  assert.deepEqual(memory.readBytes(0x100000, 10000), img.subarray(5 * 512));
  // The setup header is copied verbatim except for the fields the loader fills.
  assert.equal(memory.read16(ZP + Hdr.BOOT_FLAG), 0xaa55);
  assert.equal(memory.read32(ZP + Hdr.HEADER), 0x53726448);
  assert.equal(memory.read16(ZP + Hdr.VERSION), 0x020f);
  assert.equal(memory.read32(ZP + Hdr.INIT_SIZE), 0x400000);
  assert.equal(memory.read8(ZP + 0x210), 0xff, 'type_of_loader');
  assert.equal(memory.read8(ZP + 0x211) & 0x81, 0x81, 'loadflags: LOADED_HIGH | CAN_USE_HEAP');
  assert.equal(memory.read16(ZP + 0x224), 0xfe00, 'heap_end_ptr');
  assert.equal(memory.read32(ZP + 0x228), 0x20000, 'cmd_line_ptr');
  assert.equal(new TextDecoder().decode(memory.readBytes(0x20000, 22)), 'console=ttyS0 panic=-1');
  assert.equal(memory.read8(0x20000 + 22), 0);
  assert.equal(memory.read64(ZP + 0x070), 0xf0000, 'acpi_rsdp_addr');
  assert.equal(memory.read32(ZP + 0x218), 0, 'no ramdisk_image');
  // 64-bit entry state (boot.rst, "64-bit Boot Protocol").
  const s = r.bootState;
  assert.equal(s.rip, 0x100200n);
  assert.equal(s.gpr.rsi, BigInt(ZP));
  assert.equal(s.seg.cs.selector, 0x10);
  assert.equal(s.seg.cs.l, true);
  assert.equal(s.seg.cs.db, false);
  for (const seg of [s.seg.ds, s.seg.es, s.seg.ss]) assert.equal(seg.selector, 0x18);
  assert.equal(s.cr0 & (CR0_PE | CR0_PG), CR0_PE | CR0_PG);
  assert.equal(s.cr4 & CR4_PAE, CR4_PAE);
  assert.equal(s.efer, EFER_LME | EFER_LMA);
  assert.equal(s.rflags & 0x200n, 0n, 'interrupts off');
  assert.equal(s.gdt.base, 0x500n);
  assert.ok(s.gpr.rsp > 0n && s.gpr.rsp < BigInt(ZP + 0x2000) && s.gpr.rsp > BigInt(ZP + 0x1000));
});

void test('the e820 map: RAM below the EBDA, reserved to 1 MiB, RAM above, RAM from 4 GiB', () => {
  const memory = GuestMemory.allocate(4 * GiB);
  loadBzImage(memory, makeBzImage());
  const n = memory.read8(ZP + 0x1e8);
  const entries = [];
  for (let i = 0; i < n; i++) {
    const at = ZP + 0x2d0 + 20 * i;
    entries.push([memory.read64(at), memory.read64(at + 8), memory.read32(at + 16)]);
  }
  assert.deepEqual(entries, [
    [0, EBDA_START, 1],
    [EBDA_START, MiB - EBDA_START, 2],
    [MiB, 3 * GiB - MiB, 1],
    [4 * GiB, 1 * GiB, 1],
  ]);
});

void test('page tables identity-map 0-4 GiB with writable 2 MiB pages', () => {
  const memory = GuestMemory.allocate(32 * MiB);
  const r = loadBzImage(memory, makeBzImage());
  const cr3 = Number(r.bootState.cr3);
  assert.equal(cr3, 0x9000);
  for (const va of [0, 0x7000, 0x100200, 0x1fffff, 0x200000, 0x3fffffff, 0x40000000, 0xbfffffff, 0xfee00000, 0xffffffff]) {
    assert.equal(translate(memory, cr3, va), va, `identity at 0x${va.toString(16)}`);
  }
  assert.equal(translate(memory, cr3, 4 * GiB), -1, 'nothing above 4 GiB');
});

void test('the boot GDT matches the segment state: 0x10 64-bit code, 0x18 flat data, 0x08 32-bit code', () => {
  const memory = GuestMemory.allocate(32 * MiB);
  const s = loadBzImage(memory, makeBzImage()).bootState;
  const cs = descriptor(memory, Selectors.CODE64);
  assert.deepEqual(cs, { base: 0, limit: 0xfffff, type: 0xb, s: true, present: true, l: true, db: false, g: true });
  assert.equal(cs.type, s.seg.cs.type);
  const ds = descriptor(memory, Selectors.DATA);
  assert.deepEqual(ds, { base: 0, limit: 0xfffff, type: 0x3, s: true, present: true, l: false, db: true, g: true });
  assert.equal(ds.type, s.seg.ds.type);
  assert.equal(descriptor(memory, Selectors.CODE32).db, true);
  assert.ok(s.gdt.limit >= Selectors.DATA + 7);
});

void test('initrd goes page-aligned to the top of low RAM, below initrd_addr_max', () => {
  const memory = GuestMemory.allocate(64 * MiB);
  const initrd = pattern(3 * 4096 + 123, 7);
  const r = loadBzImage(memory, makeBzImage(), { initrd });
  const address = memory.read32(ZP + 0x218);
  assert.equal(memory.read32(ZP + 0x21c), initrd.length);
  assert.equal(address % 4096, 0);
  assert.ok(address + initrd.length <= 64 * MiB && address + initrd.length > 64 * MiB - 4096);
  assert.deepEqual(memory.readBytes(address, initrd.length), initrd);
  assert.deepEqual(r.initrd, { address, size: initrd.length });

  const capped = GuestMemory.allocate(64 * MiB);
  loadBzImage(capped, makeBzImage({ initrdAddrMax: 32 * MiB - 1 }), { initrd });
  const cappedAddress = capped.read32(ZP + 0x218);
  assert.ok(cappedAddress + initrd.length <= 32 * MiB);
});

void test('initrd with RAM above 4 GiB still lands below the MMIO hole', () => {
  const memory = GuestMemory.allocate(4 * GiB);
  const initrd = pattern(8192, 1);
  loadBzImage(memory, makeBzImage({ initrdAddrMax: 0xffffffff }), { initrd });
  const address = memory.read32(ZP + 0x218);
  assert.ok(address + initrd.length <= 3 * GiB);
});

void test('bzImage rejections: protocol, 64-bit support, truncation, RAM, command line, initrd', () => {
  const mem = () => GuestMemory.allocate(32 * MiB);
  assert.throws(() => loadBzImage(mem(), makeBzImage({ version: 0x020b }), { name: 'old' }), loaderError(/^old: boot protocol 2\.11 is too old; 64-bit boot needs protocol 2\.12/));
  assert.throws(() => loadBzImage(mem(), makeBzImage({ xloadflags: 0 })), loaderError(/no 64-bit entry point/));
  assert.throws(() => loadBzImage(mem(), makeBzImage({ loadflags: 0 })), loaderError(/zImage/));
  const img = makeBzImage({ kernelSize: 8192 });
  assert.throws(() => loadBzImage(mem(), img.subarray(0, img.length - 100)), loaderError(/bzImage is truncated/));
  assert.throws(() => loadBzImage(mem(), img.subarray(0, img.length - 16)), loaderError(/bzImage is truncated/));
  // syssize is rounded up to whole paragraphs: a file up to 15 bytes shorter is complete.
  assert.doesNotThrow(() => loadBzImage(mem(), img.subarray(0, img.length - 15)));
  assert.throws(() => loadBzImage(mem(), img.subarray(0, 0x230)), loaderError(/truncated bzImage setup header/));
  assert.throws(() => loadBzImage(mem(), makeBzImage({ initSize: 40 * MiB }), { name: 'vmlinuz' }),
    loaderError(/^vmlinuz: the kernel needs RAM up to 0x3800000 to decompress \(init_size 40 MiB\).*give it at least 56 MiB/));
  assert.throws(() => loadBzImage(mem(), makeBzImage({ cmdlineSize: 10 }), { cmdline: 'console=ttyS0' }),
    loaderError(/command line is 13 bytes; the kernel accepts at most 10/));
  assert.throws(() => loadBzImage(mem(), makeBzImage(), { cmdline: 'a\0b' }), loaderError(/NUL/));
  assert.throws(() => loadBzImage(mem(), makeBzImage(), { initrd: new Uint8Array(20 * MiB), initrdName: 'big.img' }),
    loaderError(/^big\.img: 20 MiB initrd does not fit in guest RAM/));
});

void test('a failed load leaves guest memory untouched', () => {
  const memory = GuestMemory.allocate(32 * MiB);
  assert.throws(() => loadBzImage(memory, makeBzImage(), { initrd: new Uint8Array(30 * MiB) }));
  assert.equal(memory.readBytes(0, 32 * MiB).some((b) => b !== 0), false);
});

void test('decompression room follows the relocatable/alignment rules', () => {
  // Relocatable, aligned load at 1 MiB rounds up to 2 MiB, but not below pref_address (16 MiB).
  const memory = GuestMemory.allocate(32 * MiB);
  assert.equal(loadBzImage(memory, makeBzImage({ initSize: 8 * MiB })).kernelEnd, 24 * MiB);
  // A 1 MiB pref_address with 4 MiB alignment: the buffer starts at 4 MiB.
  assert.equal(loadBzImage(memory, makeBzImage({ initSize: 8 * MiB, prefAddress: MiB, kernelAlignment: 4 * MiB })).kernelEnd, 12 * MiB);
  // Not relocatable: exactly pref_address.
  assert.equal(loadBzImage(memory, makeBzImage({ initSize: 8 * MiB, prefAddress: 2 * MiB, relocatable: false })).kernelEnd, 10 * MiB);
});

void test('vmlinux: segments at p_paddr, bss zeroed, higher-half entry translated, header synthesised', () => {
  const memory = GuestMemory.allocate(64 * MiB);
  memory.fill(0x1000000, 0x3000, 0xcc);
  const text = pattern(0x1000, 3);
  const img = makeElf({
    elfClass: 64,
    entry: 0xffffffff81000000n,
    segments: [
      { paddr: 0x1000000, vaddr: 0xffffffff81000000n, data: text, memSize: 0x3000 },
      { paddr: 0x2000000, vaddr: 0xffffffff82000000n, data: pattern(100, 4) },
    ],
  });
  const k = detectKernelImage(img);
  assert.ok(k.kind === 'vmlinux');
  const r = loadVmlinux(memory, img, k.elf, { cmdline: 'root=/dev/vda' });
  assert.equal(r.entry, 0x1000000);
  assert.equal(r.bootState.rip, 0x1000000n);
  assert.deepEqual(memory.readBytes(0x1000000, 0x1000), text);
  assert.equal(memory.readBytes(0x1001000, 0x2000).every((b) => b === 0), true, 'bss zeroed');
  assert.deepEqual(memory.readBytes(0x2000000, 100), pattern(100, 4));
  assert.equal(r.kernelEnd, 0x2000000 + 100);
  assert.equal(memory.read16(ZP + Hdr.BOOT_FLAG), 0xaa55);
  assert.equal(memory.read32(ZP + Hdr.HEADER), 0x53726448);
  assert.equal(memory.read8(ZP + Hdr.TYPE_OF_LOADER), 0xff);
  assert.equal(memory.read32(ZP + Hdr.CMD_LINE_PTR), 0x20000);
  assert.ok(memory.read8(ZP + BootParams.E820_ENTRIES) >= 3);
});

void test('vmlinux rejections: segment outside RAM, below 1 MiB, entry outside segments', () => {
  const memory = GuestMemory.allocate(32 * MiB);
  const load = (img: Uint8Array) => {
    const k = detectKernelImage(img, 'vmlinux');
    assert.ok(k.kind === 'vmlinux');
    return loadVmlinux(memory, img, k.elf, { name: 'vmlinux' });
  };
  assert.throws(() => load(makeElf({ elfClass: 64, entry: 0x4000000n, segments: [{ paddr: 0x4000000, data: pattern(16, 1) }] })),
    loaderError(/^vmlinux: ELF segment \[0x4000000, 0x4000010\) lies outside guest RAM \(32 MiB configured\)/));
  assert.throws(() => load(makeElf({ elfClass: 64, entry: 0x8000n, segments: [{ paddr: 0x8000, data: pattern(16, 1) }] })),
    loaderError(/below 1 MiB/));
  assert.throws(() => load(makeElf({ elfClass: 64, entry: 0x900000n, segments: [{ paddr: 0x1000000, data: pattern(16, 1) }] })),
    loaderError(/entry point 0x900000 is not inside a loaded segment/));
});

/** A real vmlinux: from TYPEVISOR_TEST_VMLINUX, or unpacked from the real bzImage the test setup fetched. */
function realVmlinuxBytes(): Uint8Array | undefined {
  const fromEnv = process.env['TYPEVISOR_TEST_VMLINUX'];
  if (fromEnv !== undefined && existsSync(fromEnv)) return new Uint8Array(readFileSync(fromEnv));
  const bz = findRealBzImage();
  if (bz === undefined) return undefined;
  const bytes = new Uint8Array(readFileSync(bz));
  return unpackBzImage(bytes, parseSetupHeader(bytes, 'vmlinuz'), 'vmlinuz');
}

const realVmlinux = realVmlinuxBytes();
void test('a real vmlinux loads at its physical addresses', { skip: realVmlinux ? false : 'no real vmlinux (npm test unpacks the fetched bzImage; or set TYPEVISOR_TEST_VMLINUX)' }, () => {
  const bytes = realVmlinux!;
  const k = detectKernelImage(bytes, 'vmlinux');
  assert.ok(k.kind === 'vmlinux');
  const memory = GuestMemory.allocate(256 * MiB);
  const r = loadVmlinux(memory, bytes, k.elf, { cmdline: 'console=ttyS0' });
  // x86-64 vmlinux: linked at 0xffffffff81000000, loaded at 16 MiB, entered at startup_64's physical address.
  const first = k.elf.segments[0];
  assert.ok(first);
  assert.equal(r.entry, Number(k.elf.entry));
  assert.ok(r.entry >= first.paddr && r.entry < first.paddr + first.memSize);
  assert.deepEqual(memory.readBytes(first.paddr, 4096), bytes.subarray(first.offset, first.offset + 4096));
  assert.ok(r.kernelEnd > first.paddr + first.memSize);
});

/** A real Linux bzImage to check the parser against, if one is available. */
function findRealBzImage(): string | undefined {
  const fromEnv = process.env['TYPEVISOR_TEST_BZIMAGE'];
  if (fromEnv) return existsSync(fromEnv) ? fromEnv : undefined;
  // The Debian kernel that `npm test`'s setup fetched into the test cache.
  const cached = join(testCacheDirectory(), 'guests');
  if (existsSync(cached)) {
    for (const release of readdirSync(cached)) if (existsSync(join(cached, release, 'vmlinuz'))) return join(cached, release, 'vmlinuz');
  }
  if (!existsSync('/boot')) return undefined;
  const found = readdirSync('/boot').find((f) => f.startsWith('vmlinuz-'));
  return found ? `/boot/${found}` : undefined;
}

const realKernel = findRealBzImage();
void test('a real bzImage parses and loads', { skip: realKernel ? false : 'no real bzImage (npm test fetches one; or set TYPEVISOR_TEST_BZIMAGE=/path/to/vmlinuz)' }, () => {
  const bytes = new Uint8Array(readFileSync(realKernel!));
  assert.equal(detectKernelImage(bytes).kind, 'bzimage');
  const hdr = parseSetupHeader(bytes, 'vmlinuz');
  assert.ok(hdr.version >= 0x020c);
  assert.ok((hdr.xloadflags & XLF_KERNEL_64) !== 0);
  assert.ok(hdr.initSize > 0 && hdr.cmdlineSize >= 255);
  const needed = Math.max(MiB + bytes.length, Math.max(hdr.prefAddress, 2 * MiB) + hdr.initSize);
  const small = GuestMemory.allocate(Math.max(16 * MiB, Math.floor(needed / MiB) * MiB - 4 * MiB));
  assert.throws(() => loadBzImage(small, bytes, { name: 'vmlinuz' }), loaderError(/needs RAM up to .* to decompress/));
  const memory = GuestMemory.allocate(256 * MiB);
  const r = loadBzImage(memory, bytes, { cmdline: 'console=ttyS0', initrd: pattern(1 * MiB, 1) });
  assert.equal(r.entry, 0x100200);
  // The setup header is copied verbatim, except type_of_loader..cmd_line_ptr (0x210-0x22b) which the loader fills.
  for (let off = Hdr.START; off < hdr.headerEnd; off++) {
    if (off >= Hdr.TYPE_OF_LOADER && off < Hdr.INITRD_ADDR_MAX) continue;
    assert.equal(memory.read8(ZP + off), bytes[off], `header byte 0x${off.toString(16)}`);
  }
  assert.equal(memory.read32(ZP + Hdr.RAMDISK_IMAGE), r.initrd!.address);
  assert.deepEqual(memory.readBytes(MiB, 4096), bytes.subarray(hdr.kernelOffset, hdr.kernelOffset + 4096));
  assert.ok(r.initrd!.address >= r.kernelEnd);
});

/** A bzImage whose payload is `elf`, gzip-compressed with the uncompressed size appended, as the kernel build lays it out. */
function bzImageWithPayload(elf: Uint8Array): Uint8Array {
  const compressed = gzipSync(elf);
  const payload = new Uint8Array(compressed.length + 4);
  payload.set(compressed);
  new DataView(payload.buffer).setUint32(compressed.length, elf.length, true);
  const payloadOffsetInKernel = 0x100;
  const image = makeBzImage({ kernelSize: payloadOffsetInKernel + payload.length + 64 });
  const hdr = parseSetupHeader(image, 'k');
  const view = new DataView(image.buffer);
  view.setUint32(Hdr.PAYLOAD_OFFSET, payloadOffsetInKernel, true);
  view.setUint32(Hdr.PAYLOAD_LENGTH, payload.length, true);
  image.set(payload, hdr.kernelOffset + payloadOffsetInKernel);
  return image;
}

void test('unpack: a bzImage is decompressed on the host and its vmlinux entered directly, with the real setup header', () => {
  const code = pattern(4096, 3);
  const elf = makeElf({ elfClass: 64, entry: 0xffffffff81000000n, segments: [{ paddr: 0x1000000, vaddr: 0xffffffff81000000n, data: code, memSize: 8192 }] });
  const image = bzImageWithPayload(elf);
  const memory = GuestMemory.allocate(64 * MiB);
  const r = loadBzImage(memory, image, { cmdline: 'console=ttyS0', unpack: true });
  assert.equal(r.entry, 0x1000000, 'the ELF entry, converted to physical');
  assert.deepEqual(memory.readBytes(0x1000000, 4096), code);
  assert.equal(memory.read32(0x1000000 + 4096), 0, 'bss zeroed');
  assert.equal(memory.read16(ZP + Hdr.CMDLINE_SIZE), 2047);
  assert.equal(memory.read32(ZP + Hdr.PAYLOAD_LENGTH), new DataView(image.buffer).getUint32(Hdr.PAYLOAD_LENGTH, true), 'the real header is copied');
  assert.equal(r.bootState.gpr.rsi, BigInt(ZP));
  // Without unpack, the same image boots through the compressed kernel's 64-bit entry.
  assert.equal(loadBzImage(GuestMemory.allocate(64 * MiB), image, {}).entry, 0x100200);
});

void test('unpack rejects a corrupt payload with one clear error', () => {
  const image = bzImageWithPayload(makeElf({ elfClass: 64, entry: 0x1000000n, segments: [{ paddr: 0x1000000, data: pattern(64, 1) }] }));
  const hdr = parseSetupHeader(image, 'k');
  image.fill(0x55, hdr.payloadOffset + 12, hdr.payloadOffset + 40);
  assert.throws(() => loadBzImage(GuestMemory.allocate(64 * MiB), image, { name: 'vmlinuz', unpack: true }), loaderError(/^vmlinuz: corrupt gzip kernel payload/));
});

void test('a real LZ4-compressed bzImage unpacks to its vmlinux', { skip: realKernel ? false : 'no real bzImage (npm test fetches one)' }, () => {
  const bytes = new Uint8Array(readFileSync(realKernel!));
  const memory = GuestMemory.allocate(256 * MiB);
  const r = loadBzImage(memory, bytes, { cmdline: 'console=ttyS0', unpack: true });
  assert.equal(r.entry, 0x1000000, 'Debian kernels start at CONFIG_PHYSICAL_START');
  assert.equal(memory.read32(ZP + Hdr.HEADER), 0x53726448);
});
