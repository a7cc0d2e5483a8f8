/**
 * Linux x86-64 boot: loads a bzImage (protected-mode part at 1 MiB, entered at
 * its 64-bit entry point startup_64 = load address + 0x200) or an ELF64
 * vmlinux (PT_LOAD segments at their physical addresses), builds the zero page
 * (struct boot_params) with the command line, initrd, e820 map and ACPI RSDP
 * address, the boot GDT and identity page tables, and returns the 64-bit entry
 * state of the boot protocol (Documentation/arch/x86/boot.rst, "64-bit Boot
 * Protocol").
 */

import type { GuestMemory } from '../../machine/memory.js';
import { EBDA_START, HIGH_MEMORY_START, MMIO_HOLE_START } from '../../machine/layout.js';
import type { CpuState } from '../../engines/cpu-state.js';
import { LoaderError, hex } from '../errors.js';
import { entryToPhysical, parseElf, type ElfImage } from '../elf.js';
import { unpackBzImage } from './payload.js';
import { e820Map, lowRamEnd, type E820Entry } from '../e820.js';
import { BootLayout } from '../boot-layout.js';
import { longModeEntryState, writeBootGdt, writeIdentityPageTables } from '../x86-boot.js';
import { alignDown, alignUp, encodeCmdline, mib, requireRam } from '../placement.js';
import {
  BOOT_FLAG_MAGIC, HDRS_MAGIC, Hdr, LOADFLAG_CAN_USE_HEAP, parseSetupHeader, type SetupHeader,
} from './setup-header.js';

/** boot_params fields outside the setup header. */
export const BootParams = {
  ACPI_RSDP_ADDR: 0x070,
  E820_ENTRIES: 0x1e8,
  E820_TABLE: 0x2d0,
  E820_MAX_ENTRIES: 128,
  E820_ENTRY_SIZE: 20,
  SIZE: 0x1000,
} as const;

/** Where the protected-mode part of a bzImage is loaded (as Firecracker and QEMU do). */
export const BZIMAGE_LOAD_ADDRESS = HIGH_MEMORY_START;
/** The 64-bit entry point's offset from the start of the protected-mode kernel. */
export const STARTUP_64_OFFSET = 0x200;
/** heap_end_ptr: end of the setup heap relative to the real-mode code, minus 0x200 (unused by 64-bit entry). */
const HEAP_END_PTR = 0xfe00;
/** type_of_loader 0xff: "undefined" boot loader. */
const LOADER_TYPE_UNDEFINED = 0xff;
/** Command-line limit assumed for a vmlinux (its header is not available): COMMAND_LINE_SIZE 2048 minus the NUL. */
const VMLINUX_CMDLINE_SIZE = 2047;
/** Highest initrd address assumed for a vmlinux: the conservative protocol default. */
const VMLINUX_INITRD_ADDR_MAX = 0x7fffffff;
/** Protocol version written into the synthesised header of a vmlinux (2.15: has acpi_rsdp_addr). */
const SYNTHESISED_VERSION = 0x020f;
const PAGE = 0x1000;

export interface LinuxBootOptions {
  cmdline?: string;
  initrd?: Uint8Array;
  /** Guest-physical address of the ACPI RSDP, written to boot_params.acpi_rsdp_addr. */
  acpiRsdp?: number;
  /** Kernel file name used in error messages. */
  name?: string;
  /** Initrd file name used in error messages. */
  initrdName?: string;
  /**
   * For a bzImage: decompress the kernel on the host and boot the vmlinux inside
   * directly (with the bzImage's real setup header), skipping the kernel's own
   * decompressor. Falls back to a normal bzImage boot for compressions we do not unpack.
   */
  unpack?: boolean;
}

export interface LinuxBootResult {
  readonly bootState: CpuState;
  /** Physical entry point. */
  readonly entry: number;
  /** Guest-physical address of boot_params. */
  readonly bootParams: number;
  /** End of the memory the kernel claims (decompression buffer or last segment). */
  readonly kernelEnd: number;
  readonly initrd?: { readonly address: number; readonly size: number };
  readonly e820: readonly E820Entry[];
}

/** What the zero-page builder needs beyond the header bytes. */
interface ZeroPageInput {
  headerBytes: Uint8Array;
  cmdlineSize: number;
  initrdAddrMax: number;
  kernelEnd: number;
}

/** Loads a bzImage for 64-bit entry. */
export function loadBzImage(memory: GuestMemory, bytes: Uint8Array, options: LinuxBootOptions = {}): LinuxBootResult {
  const name = options.name ?? 'kernel';
  const hdr = parseSetupHeader(bytes, name);
  if (options.unpack === true) {
    const vmlinux = unpackBzImage(bytes, hdr, name);
    if (vmlinux !== undefined) {
      return loadVmlinux(memory, vmlinux, parseElf(vmlinux, `${name} (unpacked vmlinux)`), options, {
        headerBytes: bytes.subarray(Hdr.START, hdr.headerEnd),
        cmdlineSize: hdr.cmdlineSize,
        initrdAddrMax: hdr.initrdAddrMax,
      });
    }
  }
  const kernel = bytes.subarray(hdr.kernelOffset);
  const loadAddress = BZIMAGE_LOAD_ADDRESS;
  const kernelEnd = Math.max(loadAddress + kernel.length, decompressionEnd(hdr, loadAddress));
  const ramEnd = lowRamEnd(memory);
  if (kernelEnd > ramEnd) {
    throw new LoaderError(
      `${name}: the kernel needs RAM up to ${hex(kernelEnd)} to decompress (init_size ${mib(hdr.initSize)}); ` +
        `guest RAM ends at ${hex(ramEnd)} (${mib(memory.size)}); give it at least ${mib(kernelEnd)}`,
    );
  }
  requireRam(memory, loadAddress, kernel.length, `${name}: kernel`);
  const entry = loadAddress + STARTUP_64_OFFSET;
  return finishLinuxBoot(memory, entry, options, () => memory.writeBytes(loadAddress, kernel), {
    headerBytes: bytes.subarray(Hdr.START, hdr.headerEnd),
    cmdlineSize: hdr.cmdlineSize,
    initrdAddrMax: hdr.initrdAddrMax,
    kernelEnd,
  });
}

/**
 * End of the buffer startup_64 decompresses into: the load address aligned up
 * to kernel_alignment but no lower than pref_address (LOAD_PHYSICAL_ADDR) when
 * relocatable, else pref_address; plus init_size.
 */
export function decompressionEnd(hdr: SetupHeader, loadAddress: number): number {
  const base = hdr.relocatable ? Math.max(alignUp(loadAddress, hdr.kernelAlignment), hdr.prefAddress) : hdr.prefAddress;
  return base + hdr.initSize;
}

/** Loads an ELF64 vmlinux for 64-bit entry at its startup_64 (physical entry). */
export function loadVmlinux(
  memory: GuestMemory,
  bytes: Uint8Array,
  elf: ElfImage,
  options: LinuxBootOptions = {},
  header: Omit<ZeroPageInput, 'kernelEnd'> = { headerBytes: synthesisedHeader(), cmdlineSize: VMLINUX_CMDLINE_SIZE, initrdAddrMax: VMLINUX_INITRD_ADDR_MAX },
): LinuxBootResult {
  const name = options.name ?? 'kernel';
  let kernelEnd = 0;
  for (const seg of elf.segments) {
    if (seg.paddr < HIGH_MEMORY_START) {
      throw new LoaderError(`${name}: ELF segment at ${hex(seg.paddr)} is below 1 MiB, where boot data and firmware tables live`);
    }
    requireRam(memory, seg.paddr, seg.memSize, `${name}: ELF segment`);
    kernelEnd = Math.max(kernelEnd, seg.paddr + seg.memSize);
  }
  const entry = entryToPhysical(elf);
  if (!elf.segments.some((s) => entry >= s.paddr && entry < s.paddr + s.memSize)) {
    throw new LoaderError(`${name}: ELF entry point 0x${elf.entry.toString(16)} is not inside a loaded segment`);
  }
  const writeKernel = (): void => {
    for (const seg of elf.segments) {
      memory.writeBytes(seg.paddr, bytes.subarray(seg.offset, seg.offset + seg.fileSize));
      memory.fill(seg.paddr + seg.fileSize, seg.memSize - seg.fileSize, 0);
    }
  };
  return finishLinuxBoot(memory, entry, options, writeKernel, { ...header, kernelEnd });
}

/** A minimal setup header for kernels without one (vmlinux), as Firecracker builds it. */
function synthesisedHeader(): Uint8Array {
  const header = new Uint8Array(Hdr.INIT_SIZE + 4 - Hdr.START);
  const view = new DataView(header.buffer);
  const at = (offset: number) => offset - Hdr.START;
  view.setUint16(at(Hdr.BOOT_FLAG), BOOT_FLAG_MAGIC, true);
  view.setUint32(at(Hdr.HEADER), HDRS_MAGIC, true);
  view.setUint16(at(Hdr.VERSION), SYNTHESISED_VERSION, true);
  view.setUint32(at(Hdr.KERNEL_ALIGNMENT), 0x0100_0000, true);
  view.setUint32(at(Hdr.INITRD_ADDR_MAX), VMLINUX_INITRD_ADDR_MAX, true);
  view.setUint32(at(Hdr.CMDLINE_SIZE), VMLINUX_CMDLINE_SIZE, true);
  return header;
}

/**
 * Validates the command line and initrd placement, then (only when all is
 * well) writes the kernel, initrd, command line, zero page, GDT and page
 * tables; returns the entry state.
 */
function finishLinuxBoot(
  memory: GuestMemory,
  entry: number,
  options: LinuxBootOptions,
  writeKernel: () => void,
  input: ZeroPageInput,
): LinuxBootResult {
  const name = options.name ?? 'kernel';
  const cmdline = encodeCmdline(options.cmdline ?? '', input.cmdlineSize, name);
  if (BootLayout.CMDLINE + cmdline.length > EBDA_START) {
    throw new LoaderError(`${name}: command line does not fit in low memory`);
  }
  const initrd = options.initrd ? placeInitrd(memory, options.initrd, input, options.initrdName ?? 'initrd') : undefined;

  writeKernel();
  const zp = BootLayout.ZERO_PAGE;
  memory.fill(zp, BootParams.SIZE, 0);
  memory.writeBytes(zp + Hdr.START, input.headerBytes);
  memory.write8(zp + Hdr.TYPE_OF_LOADER, LOADER_TYPE_UNDEFINED);
  memory.write8(zp + Hdr.LOADFLAGS, memory.read8(zp + Hdr.LOADFLAGS) | LOADFLAG_CAN_USE_HEAP);
  memory.write16(zp + Hdr.HEAP_END_PTR, HEAP_END_PTR);
  memory.write32(zp + Hdr.CMD_LINE_PTR, BootLayout.CMDLINE);
  memory.writeBytes(BootLayout.CMDLINE, cmdline);
  if (initrd) {
    memory.writeBytes(initrd.address, options.initrd!);
    memory.write32(zp + Hdr.RAMDISK_IMAGE, initrd.address);
    memory.write32(zp + Hdr.RAMDISK_SIZE, initrd.size);
  }
  const e820 = e820Map(memory);
  if (e820.length > BootParams.E820_MAX_ENTRIES) throw new LoaderError(`${name}: too many e820 entries`);
  memory.write8(zp + BootParams.E820_ENTRIES, e820.length);
  e820.forEach((e, i) => {
    const at = zp + BootParams.E820_TABLE + i * BootParams.E820_ENTRY_SIZE;
    memory.write64(at, e.address);
    memory.write64(at + 8, e.size);
    memory.write32(at + 16, e.type);
  });
  if (options.acpiRsdp !== undefined) memory.write64(zp + BootParams.ACPI_RSDP_ADDR, options.acpiRsdp);

  writeBootGdt(memory);
  const cr3 = writeIdentityPageTables(memory);
  return {
    bootState: longModeEntryState(entry, cr3, zp),
    entry,
    bootParams: zp,
    kernelEnd: input.kernelEnd,
    ...(initrd ? { initrd } : {}),
    e820,
  };
}

/**
 * Puts the initrd page-aligned as high as possible in low RAM, below the
 * kernel's initrd_addr_max and the MMIO hole, and above everything the kernel
 * claims.
 */
function placeInitrd(memory: GuestMemory, initrd: Uint8Array, input: ZeroPageInput, initrdName: string): { address: number; size: number } {
  if (initrd.length === 0) throw new LoaderError(`${initrdName}: file is empty`);
  const top = Math.min(input.initrdAddrMax + 1, lowRamEnd(memory), MMIO_HOLE_START);
  const address = alignDown(top - initrd.length, PAGE);
  const floor = alignUp(input.kernelEnd, PAGE);
  if (address < floor || !memory.contains(address, initrd.length)) {
    throw new LoaderError(
      `${initrdName}: ${mib(initrd.length)} initrd does not fit in guest RAM between the kernel (ends ${hex(floor)}) ` +
        `and ${hex(top)}; give the guest more memory (at least ${mib(floor + initrd.length + PAGE)})`,
    );
  }
  return { address, size: initrd.length };
}
