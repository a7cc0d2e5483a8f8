/**
 * The loaders' entry points for the machine: `loadKernel` recognises a kernel
 * file (bzImage, ELF64 vmlinux, multiboot) and boots it into guest memory,
 * returning the bootstrap vCPU's initial state; `buildAcpiTables` writes the
 * firmware tables into the BIOS area. Both throw LoaderError for bad input and
 * never write outside guest RAM.
 */

import type { GuestMemory } from '../machine/memory.js';
import type { CpuState } from '../engines/cpu-state.js';
import { detectKernelImage } from './kernel-image.js';
import { loadBzImage, loadVmlinux } from './linux/linux-loader.js';
import { loadMultiboot } from './multiboot/multiboot-loader.js';

export { LoaderError } from './errors.js';
export { detectKernelImage, type KernelImage } from './kernel-image.js';
export { buildAcpiTables, RSDP_ADDRESS, MAX_ACPI_VCPUS, type AcpiOptions, type AcpiTablesResult } from './acpi/acpi-tables.js';
export { S5_SLP_TYP, type PciIrqRoute, type PciRootOptions } from './acpi/dsdt.js';
export { BootLayout, Selectors } from './boot-layout.js';
export { e820Map, type E820Entry } from './e820.js';

export type KernelKind = 'bzimage' | 'vmlinux' | 'multiboot';

export interface LoadKernelOptions {
  /** Kernel command line (for multiboot the kernel name is prepended, as GRUB and QEMU do). */
  cmdline?: string;
  /** Initial ramdisk (Linux) or module 0 (multiboot). */
  initrd?: Uint8Array;
  /** Guest-physical RSDP address for Linux's boot_params.acpi_rsdp_addr (from buildAcpiTables). */
  acpiRsdp?: number;
  /** Decompress a bzImage on the host and boot its vmlinux directly (for slow engines). */
  unpackBzImage?: boolean;
  /** File names for error messages (default "kernel" and "initrd"). */
  kernelName?: string;
  initrdName?: string;
}

export interface LoadedKernel {
  /** Initial state of the bootstrap vCPU. */
  readonly bootState: CpuState;
  readonly kind: KernelKind;
  /** Physical entry point. */
  readonly entry: number;
  /** First byte after everything the kernel claims (image, bss, decompression buffer). */
  readonly kernelEnd: number;
  /** Where the initrd/module went, if one was given. */
  readonly initrd?: { readonly address: number; readonly size: number };
}

/** Detects the kind of `kernel` and loads it with its initrd and command line. */
export function loadKernel(memory: GuestMemory, kernel: Uint8Array, options: LoadKernelOptions = {}): LoadedKernel {
  const name = options.kernelName ?? 'kernel';
  const image = detectKernelImage(kernel, name);
  const common = {
    name,
    ...(options.cmdline !== undefined ? { cmdline: options.cmdline } : {}),
    ...(options.initrd ? { initrd: options.initrd } : {}),
    ...(options.initrdName !== undefined ? { initrdName: options.initrdName } : {}),
  };
  const linuxOptions = {
    ...common,
    ...(options.acpiRsdp !== undefined ? { acpiRsdp: options.acpiRsdp } : {}),
    ...(options.unpackBzImage === true ? { unpack: true } : {}),
  };
  switch (image.kind) {
    case 'bzimage': {
      const r = loadBzImage(memory, kernel, linuxOptions);
      return { bootState: r.bootState, kind: 'bzimage', entry: r.entry, kernelEnd: r.kernelEnd, ...(r.initrd ? { initrd: r.initrd } : {}) };
    }
    case 'vmlinux': {
      const r = loadVmlinux(memory, kernel, image.elf, linuxOptions);
      return { bootState: r.bootState, kind: 'vmlinux', entry: r.entry, kernelEnd: r.kernelEnd, ...(r.initrd ? { initrd: r.initrd } : {}) };
    }
    case 'multiboot': {
      const r = loadMultiboot(memory, kernel, image.header, image.elf, common);
      return { bootState: r.bootState, kind: 'multiboot', entry: r.entry, kernelEnd: r.kernelEnd, ...(r.module ? { initrd: r.module } : {}) };
    }
  }
}
