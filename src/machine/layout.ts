/**
 * The guest-physical memory map of typevisor's x86-64 PC-style microVM.
 *
 * Every component that places something in guest-physical space (loaders, ACPI,
 * devices, engines) takes its addresses from here, so the map lives in one place.
 */

/** 1 KiB, 1 MiB, 1 GiB and 4 GiB in bytes. */
export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

/** Start of the 32-bit MMIO hole; RAM beyond this continues at 4 GiB. */
export const MMIO_HOLE_START = 3 * GiB;
/** End of the 32-bit MMIO hole. */
export const MMIO_HOLE_END = 4 * GiB;

/** Conventional memory ends here; [EBDA_START, 1 MiB) is reported as reserved. */
export const EBDA_START = 0x9fc00;
/** Start of "high" memory where kernels are loaded. */
export const HIGH_MEMORY_START = MiB;

/** The BIOS area scanned by guests for the ACPI RSDP and the MP floating pointer. */
export const BIOS_AREA_START = 0xe0000;
export const BIOS_AREA_END = 0x100000;

/** Local APIC and IOAPIC MMIO bases (architectural defaults). */
export const LAPIC_BASE = 0xfee00000;
export const IOAPIC_BASE = 0xfec00000;

/** Where PCI device BARs (32-bit) are allocated inside the hole. */
export const PCI_MMIO_START = 0xc0000000;
export const PCI_MMIO_END = 0xfe000000;

/** The smallest and largest guest RAM sizes typevisor accepts. */
export const MIN_RAM_SIZE = 16 * MiB;
export const MAX_RAM_SIZE = 64 * GiB;

/** One guest RAM region: guest-physical base and size in bytes. */
export interface RamRange {
  readonly guestBase: number;
  readonly size: number;
}

/** Splits `ramSize` bytes of RAM around the 32-bit MMIO hole. */
export function ramRanges(ramSize: number): RamRange[] {
  if (ramSize <= MMIO_HOLE_START) return [{ guestBase: 0, size: ramSize }];
  return [
    { guestBase: 0, size: MMIO_HOLE_START },
    { guestBase: MMIO_HOLE_END, size: ramSize - MMIO_HOLE_START },
  ];
}
