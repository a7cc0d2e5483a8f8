/**
 * Multiboot v1 (specification 0.6.96) loader: loads an ELF32/ELF64 kernel's
 * PT_LOAD segments at their physical addresses, or an a.out-kludge image at
 * the addresses its header gives; places the initrd as module 0 after the
 * kernel; builds the multiboot information structure (memory sizes, command
 * line, modules, memory map, boot loader name) in low memory; and returns the
 * 32-bit protected-mode entry state (EAX = 0x2BADB002, EBX = info).
 */

import type { GuestMemory } from '../../machine/memory.js';
import { EBDA_START, HIGH_MEMORY_START, KiB } from '../../machine/layout.js';
import type { CpuState } from '../../engines/cpu-state.js';
import { LoaderError, hex } from '../errors.js';
import { entryToPhysical, type ElfImage } from '../elf.js';
import { e820Map, lowRamEnd } from '../e820.js';
import { BootLayout } from '../boot-layout.js';
import { MULTIBOOT_AOUT_KLUDGE, type MultibootHeader } from '../kernel-image.js';
import { protectedModeEntryState, writeBootGdt } from '../x86-boot.js';
import { alignUp, encodeCmdline, mib, requireRam } from '../placement.js';

/** The value in EAX that tells the kernel it was booted by a multiboot loader. */
export const MULTIBOOT_BOOTLOADER_MAGIC = 0x2badb002;
export const BOOT_LOADER_NAME = 'typevisor';

/** Multiboot information flags (which fields are valid). */
export const MbiFlags = {
  MEMORY: 1 << 0,
  CMDLINE: 1 << 2,
  MODS: 1 << 3,
  MMAP: 1 << 6,
  BOOT_LOADER_NAME: 1 << 9,
} as const;

/** Offsets in the multiboot information structure. */
export const Mbi = {
  FLAGS: 0,
  MEM_LOWER: 4,
  MEM_UPPER: 8,
  CMDLINE: 16,
  MODS_COUNT: 20,
  MODS_ADDR: 24,
  MMAP_LENGTH: 44,
  MMAP_ADDR: 48,
  BOOT_LOADER_NAME: 64,
  /** Size reserved for the structure (it is 116 bytes with the framebuffer fields). */
  SIZE: 128,
} as const;

/** Header flag bits 0-15 are requirements; we honour 0 (page-align modules) and 1 (memory info). */
const SUPPORTED_REQUIRED_FLAGS = 0x3;
const PAGE = 0x1000;
/** Longest command line (including the kernel name prefix) passed to a multiboot kernel. */
export const MULTIBOOT_CMDLINE_MAX = 0x10000 - 1;
const FOUR_GIB = 0x1_0000_0000;

export interface MultibootOptions {
  cmdline?: string;
  initrd?: Uint8Array;
  name?: string;
  initrdName?: string;
}

export interface MultibootResult {
  readonly bootState: CpuState;
  readonly entry: number;
  /** Guest-physical address of the multiboot information structure. */
  readonly info: number;
  /** First byte after the kernel image including its bss. */
  readonly kernelEnd: number;
  readonly module?: { readonly address: number; readonly size: number };
}

/** One range of the kernel image to copy: `fileBytes` at `address`, zero-filled up to `memSize`. */
interface LoadRange {
  address: number;
  fileBytes: Uint8Array;
  memSize: number;
}

/** Loads a multiboot kernel whose header was found by detectKernelImage. */
export function loadMultiboot(
  memory: GuestMemory,
  bytes: Uint8Array,
  header: MultibootHeader,
  elf: ElfImage | undefined,
  options: MultibootOptions = {},
): MultibootResult {
  const name = options.name ?? 'kernel';
  const required = header.flags & 0xffff;
  if ((required & ~SUPPORTED_REQUIRED_FLAGS) !== 0) {
    throw new LoaderError(`${name}: multiboot header requires unsupported features (flags ${hex(required)}; video mode is bit 2)`);
  }
  const { ranges, entry } = (header.flags & MULTIBOOT_AOUT_KLUDGE) !== 0 ? aoutRanges(bytes, header, name) : elfRanges(bytes, elf, name);

  let kernelEnd = 0;
  for (const r of ranges) {
    const inLowWindow = r.address >= BootLayout.MULTIBOOT_LOW_KERNEL_START && r.address + r.memSize <= BootLayout.MULTIBOOT_LOW_KERNEL_END;
    if (r.address < HIGH_MEMORY_START && !inLowWindow) {
      throw new LoaderError(
        `${name}: kernel segment at ${hex(r.address)} is below 1 MiB outside [${hex(BootLayout.MULTIBOOT_LOW_KERNEL_START)}, ` +
          `${hex(BootLayout.MULTIBOOT_LOW_KERNEL_END)}), where boot data and firmware tables live`,
      );
    }
    if (r.address + r.memSize > FOUR_GIB) throw new LoaderError(`${name}: kernel segment at ${hex(r.address)} extends above 4 GiB`);
    requireRam(memory, r.address, r.memSize, `${name}: kernel segment`);
    kernelEnd = Math.max(kernelEnd, r.address + r.memSize);
  }
  if (!ranges.some((r) => entry >= r.address && entry < r.address + r.memSize)) {
    throw new LoaderError(`${name}: entry point ${hex(entry)} is not inside the loaded kernel`);
  }
  const cmdlineText = options.cmdline ? `${name} ${options.cmdline}` : name;
  const cmdline = encodeCmdline(cmdlineText, MULTIBOOT_CMDLINE_MAX, name);

  let module: { address: number; size: number } | undefined;
  if (options.initrd) {
    const initrdName = options.initrdName ?? 'initrd';
    const address = alignUp(Math.max(kernelEnd, HIGH_MEMORY_START), PAGE); // never in the low boot-data area
    const end = address + options.initrd.length;
    if (end > lowRamEnd(memory) || end > FOUR_GIB) {
      throw new LoaderError(
        `${initrdName}: ${mib(options.initrd.length)} module does not fit in guest RAM after the kernel (ends ${hex(address)}); ` +
          `give the guest at least ${mib(end + PAGE)}`,
      );
    }
    module = { address, size: options.initrd.length };
  }

  for (const r of ranges) {
    memory.writeBytes(r.address, r.fileBytes);
    memory.fill(r.address + r.fileBytes.length, r.memSize - r.fileBytes.length, 0);
  }
  if (module) memory.writeBytes(module.address, options.initrd!);
  memory.writeBytes(BootLayout.CMDLINE, cmdline);
  const info = writeMultibootInfo(memory, module, options.initrdName ?? 'initrd');
  writeBootGdt(memory);
  return {
    bootState: protectedModeEntryState(entry, MULTIBOOT_BOOTLOADER_MAGIC, info),
    entry,
    info,
    kernelEnd,
    ...(module ? { module } : {}),
  };
}

function elfRanges(bytes: Uint8Array, elf: ElfImage | undefined, name: string): { ranges: LoadRange[]; entry: number } {
  if (!elf) throw new LoaderError(`${name}: multiboot kernel is not ELF and has no a.out load addresses`);
  const ranges = elf.segments.map((s) => ({
    address: s.paddr,
    fileBytes: bytes.subarray(s.offset, s.offset + s.fileSize),
    memSize: s.memSize,
  }));
  const entry = entryToPhysical(elf);
  if (entry < 0 || entry >= FOUR_GIB) throw new LoaderError(`${name}: ELF entry point 0x${elf.entry.toString(16)} is not a 32-bit address`);
  return { ranges, entry };
}

/** Computes the load range of an a.out-kludge image from its header's address fields. */
function aoutRanges(bytes: Uint8Array, header: MultibootHeader, name: string): { ranges: LoadRange[]; entry: number } {
  const a = header.aout!;
  if (a.loadAddr > a.headerAddr) throw new LoaderError(`${name}: multiboot load_addr ${hex(a.loadAddr)} is above header_addr ${hex(a.headerAddr)}`);
  const fileOffset = header.offset - (a.headerAddr - a.loadAddr);
  if (fileOffset < 0) throw new LoaderError(`${name}: multiboot header_addr/load_addr put the image start before the file start`);
  const loadEnd = a.loadEndAddr === 0 ? a.loadAddr + (bytes.length - fileOffset) : a.loadEndAddr;
  if (loadEnd < a.loadAddr) throw new LoaderError(`${name}: multiboot load_end_addr ${hex(a.loadEndAddr)} is below load_addr`);
  const fileSize = loadEnd - a.loadAddr;
  if (fileOffset + fileSize > bytes.length) {
    throw new LoaderError(`${name}: file is shorter than multiboot load_end_addr ${hex(loadEnd)} requires (truncated?)`);
  }
  const bssEnd = a.bssEndAddr === 0 ? loadEnd : a.bssEndAddr;
  if (bssEnd < loadEnd) throw new LoaderError(`${name}: multiboot bss_end_addr ${hex(a.bssEndAddr)} is below load_end_addr`);
  return {
    ranges: [{ address: a.loadAddr, fileBytes: bytes.subarray(fileOffset, fileOffset + fileSize), memSize: bssEnd - a.loadAddr }],
    entry: a.entryAddr,
  };
}

/** Writes the multiboot information structure and what it points to; returns its address. */
function writeMultibootInfo(memory: GuestMemory, module: { address: number; size: number } | undefined, moduleName: string): number {
  const info = BootLayout.MULTIBOOT_INFO;
  memory.fill(info, BootLayout.MULTIBOOT_INFO_END - info, 0);
  let next = info + Mbi.SIZE;
  const putString = (text: string): number => {
    const encoded = new TextEncoder().encode(text);
    const at = next;
    memory.writeBytes(at, encoded);
    memory.write8(at + encoded.length, 0);
    next = alignUp(at + encoded.length + 1, 8);
    return at;
  };
  const loaderName = putString(BOOT_LOADER_NAME);
  const moduleString = putString(moduleName.slice(0, 256));

  const modsAddr = next;
  if (module) {
    memory.write32(modsAddr, module.address);
    memory.write32(modsAddr + 4, module.address + module.size);
    memory.write32(modsAddr + 8, moduleString);
    next += 16;
  }

  const mmapAddr = next;
  const map = e820Map(memory);
  for (const e of map) {
    memory.write32(next, 20);
    memory.write64(next + 4, e.address);
    memory.write64(next + 12, e.size);
    memory.write32(next + 20, e.type);
    next += 24;
  }
  if (next > BootLayout.MULTIBOOT_INFO_END) throw new LoaderError('multiboot information does not fit in its low-memory area');

  const ramEnd = lowRamEnd(memory);
  memory.write32(info + Mbi.FLAGS, MbiFlags.MEMORY | MbiFlags.CMDLINE | MbiFlags.MODS | MbiFlags.MMAP | MbiFlags.BOOT_LOADER_NAME);
  memory.write32(info + Mbi.MEM_LOWER, EBDA_START / KiB);
  memory.write32(info + Mbi.MEM_UPPER, Math.floor((ramEnd - HIGH_MEMORY_START) / KiB));
  memory.write32(info + Mbi.CMDLINE, BootLayout.CMDLINE);
  memory.write32(info + Mbi.MODS_COUNT, module ? 1 : 0);
  memory.write32(info + Mbi.MODS_ADDR, modsAddr);
  memory.write32(info + Mbi.MMAP_LENGTH, map.length * 24);
  memory.write32(info + Mbi.MMAP_ADDR, mmapAddr);
  memory.write32(info + Mbi.BOOT_LOADER_NAME, loaderName);
  return info;
}
