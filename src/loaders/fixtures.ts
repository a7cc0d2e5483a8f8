/**
 * Synthetic kernel images for the loaders' unit tests: a minimal bzImage with a
 * configurable setup header, ELF32/ELF64 executables with optional multiboot
 * headers, and a.out-kludge multiboot images. Built byte by byte from the
 * format specifications; not used outside tests.
 */

import { MULTIBOOT_AOUT_KLUDGE, MULTIBOOT_HEADER_MAGIC } from './kernel-image.js';
import { Hdr } from './linux/setup-header.js';

export interface BzImageSpec {
  version?: number;
  loadflags?: number;
  xloadflags?: number;
  setupSects?: number;
  kernelSize?: number;
  initSize?: number;
  prefAddress?: number;
  kernelAlignment?: number;
  relocatable?: boolean;
  cmdlineSize?: number;
  initrdAddrMax?: number;
}

/** A recognisable byte pattern so tests can check what landed where. */
export function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 7 + seed) & 0xff;
  return out;
}

export function makeBzImage(spec: BzImageSpec = {}): Uint8Array {
  const setupSects = spec.setupSects ?? 4;
  const kernelSize = spec.kernelSize ?? 8192;
  const bytes = new Uint8Array((setupSects + 1) * 512 + kernelSize);
  const view = new DataView(bytes.buffer);
  view.setUint8(Hdr.SETUP_SECTS, setupSects);
  view.setUint32(Hdr.SYSSIZE, Math.ceil(kernelSize / 16), true);
  view.setUint16(Hdr.BOOT_FLAG, 0xaa55, true);
  bytes[0x200] = 0xeb; // jmp short to the end of the header
  bytes[0x201] = 0x6a;
  view.setUint32(Hdr.HEADER, 0x53726448, true);
  view.setUint16(Hdr.VERSION, spec.version ?? 0x020f, true);
  view.setUint8(Hdr.LOADFLAGS, spec.loadflags ?? 0x01);
  view.setUint32(Hdr.CODE32_START, 0x100000, true);
  view.setUint32(Hdr.INITRD_ADDR_MAX, spec.initrdAddrMax ?? 0x7fffffff, true);
  view.setUint32(Hdr.KERNEL_ALIGNMENT, spec.kernelAlignment ?? 0x200000, true);
  view.setUint8(Hdr.RELOCATABLE_KERNEL, (spec.relocatable ?? true) ? 1 : 0);
  view.setUint16(Hdr.XLOADFLAGS, spec.xloadflags ?? 0x7f, true);
  view.setUint32(Hdr.CMDLINE_SIZE, spec.cmdlineSize ?? 2047, true);
  view.setBigUint64(Hdr.PREF_ADDRESS, BigInt(spec.prefAddress ?? 0x1000000), true);
  view.setUint32(Hdr.INIT_SIZE, spec.initSize ?? 0x400000, true);
  bytes.set(pattern(kernelSize, 0x11), (setupSects + 1) * 512);
  return bytes;
}

export interface ElfSegmentSpec {
  paddr: number;
  vaddr?: bigint;
  data: Uint8Array;
  memSize?: number;
}

export interface MultibootSpec {
  flags?: number;
  /** Override the checksum (to make it wrong). */
  checksum?: number;
  /** a.out kludge fields (sets flag bit 16). */
  aout?: { headerAddr: number; loadAddr: number; loadEndAddr: number; bssEndAddr: number; entryAddr: number };
}

/** Encodes a multiboot v1 header. */
export function multibootHeader(spec: MultibootSpec): Uint8Array {
  const flags = ((spec.flags ?? 0) | (spec.aout ? MULTIBOOT_AOUT_KLUDGE : 0)) >>> 0;
  const bytes = new Uint8Array(spec.aout ? 32 : 12);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, MULTIBOOT_HEADER_MAGIC, true);
  view.setUint32(4, flags, true);
  view.setUint32(8, spec.checksum ?? (-(MULTIBOOT_HEADER_MAGIC + flags) >>> 0), true);
  if (spec.aout) {
    const a = spec.aout;
    [a.headerAddr, a.loadAddr, a.loadEndAddr, a.bssEndAddr, a.entryAddr].forEach((v, i) => view.setUint32(12 + 4 * i, v, true));
  }
  return bytes;
}

export interface ElfSpec {
  elfClass: 32 | 64;
  machine?: number;
  entry: bigint;
  segments: ElfSegmentSpec[];
  multiboot?: MultibootSpec;
}

/** Builds an ELF executable: header, program headers, optional multiboot header, segment data. */
export function makeElf(spec: ElfSpec): Uint8Array {
  const is64 = spec.elfClass === 64;
  const ehsize = is64 ? 64 : 52;
  const phentsize = is64 ? 56 : 32;
  const phoff = ehsize;
  let offset = phoff + phentsize * spec.segments.length;
  const mb = spec.multiboot ? multibootHeader(spec.multiboot) : undefined;
  const mbOffset = Math.ceil(offset / 4) * 4;
  if (mb) offset = mbOffset + mb.length;
  const dataOffsets = spec.segments.map((s) => {
    const at = Math.ceil(offset / 16) * 16;
    offset = at + s.data.length;
    return at;
  });
  const bytes = new Uint8Array(offset);
  const view = new DataView(bytes.buffer);
  bytes.set([0x7f, 0x45, 0x4c, 0x46, is64 ? 2 : 1, 1, 1]);
  view.setUint16(16, 2, true); // ET_EXEC
  view.setUint16(18, spec.machine ?? (is64 ? 62 : 3), true);
  view.setUint32(20, 1, true);
  if (is64) {
    view.setBigUint64(24, spec.entry, true);
    view.setBigUint64(32, BigInt(phoff), true);
    view.setUint16(52, ehsize, true);
    view.setUint16(54, phentsize, true);
    view.setUint16(56, spec.segments.length, true);
  } else {
    view.setUint32(24, Number(spec.entry), true);
    view.setUint32(28, phoff, true);
    view.setUint16(40, ehsize, true);
    view.setUint16(42, phentsize, true);
    view.setUint16(44, spec.segments.length, true);
  }
  spec.segments.forEach((s, i) => {
    const ph = phoff + i * phentsize;
    const vaddr = s.vaddr ?? BigInt(s.paddr);
    const memSize = s.memSize ?? s.data.length;
    view.setUint32(ph, 1, true); // PT_LOAD
    if (is64) {
      view.setUint32(ph + 4, 7, true);
      view.setBigUint64(ph + 8, BigInt(dataOffsets[i] ?? 0), true);
      view.setBigUint64(ph + 16, vaddr, true);
      view.setBigUint64(ph + 24, BigInt(s.paddr), true);
      view.setBigUint64(ph + 32, BigInt(s.data.length), true);
      view.setBigUint64(ph + 40, BigInt(memSize), true);
    } else {
      view.setUint32(ph + 4, dataOffsets[i] ?? 0, true);
      view.setUint32(ph + 8, Number(vaddr), true);
      view.setUint32(ph + 12, s.paddr, true);
      view.setUint32(ph + 16, s.data.length, true);
      view.setUint32(ph + 20, memSize, true);
    }
    bytes.set(s.data, dataOffsets[i] ?? 0);
  });
  if (mb) bytes.set(mb, mbOffset);
  return bytes;
}

/**
 * An a.out-kludge multiboot image: `text` loaded at `loadAddr`, with the
 * multiboot header at file offset `headerOffset` (inside the loaded text).
 */
export function makeAoutImage(opts: { loadAddr: number; headerOffset: number; text: Uint8Array; bss: number; entryOffset: number; loadEndZero?: boolean; flags?: number }): Uint8Array {
  const bytes = opts.text.slice();
  const loadEnd = opts.loadAddr + bytes.length;
  const header = multibootHeader({
    ...(opts.flags !== undefined ? { flags: opts.flags } : {}),
    aout: {
      headerAddr: opts.loadAddr + opts.headerOffset,
      loadAddr: opts.loadAddr,
      loadEndAddr: opts.loadEndZero ? 0 : loadEnd,
      bssEndAddr: opts.bss ? loadEnd + opts.bss : 0,
      entryAddr: opts.loadAddr + opts.entryOffset,
    },
  });
  bytes.set(header, opts.headerOffset);
  return bytes;
}
