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
/** Where PCI I/O BARs are allocated (inside the host bridge's I/O window 0x0d00-0xffff). */
export const PCI_IO_START = 0xc000;
export const PCI_IO_END = 0x10000;

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

/**
 * Legacy I/O ports and ISA interrupt lines (GSIs) of the platform. The values
 * match a QEMU PC so that test kernels written for QEMU run unchanged.
 */
export const Ports = {
  PIC_MASTER: 0x20,
  PIT: 0x40,
  I8042_DATA: 0x60,
  /** Port 0x61: PIT channel 2 gate and speaker. */
  SYSTEM_CONTROL_B: 0x61,
  I8042_COMMAND: 0x64,
  RTC: 0x70,
  /** POST diagnostic port; writes are accepted and dropped. */
  POST: 0x80,
  PIC_SLAVE: 0xa0,
  /** pc-testdev: 0xe0-0xe7. */
  PC_TESTDEV: 0xe0,
  /** isa-debug-exit (only with --debug-exit). */
  DEBUG_EXIT: 0xf4,
  COM1: 0x3f8,
  /** ELCR: edge/level control for the PIC, 0x4d0-0x4d1. */
  ELCR: 0x4d0,
  /** fw_cfg selector (16-bit) at 0x510, data at 0x511, DMA address at 0x514. */
  FW_CFG: 0x510,
  /** ACPI PM block: PM1a_EVT at +0 (4 bytes), PM1a_CNT at +4 (2 bytes), PM_TMR at +8 (4 bytes), GPE0 at +0x20. */
  ACPI_PM: 0x600,
  /** PCI configuration mechanism #1 (0xcf8 address, 0xcfc data). */
  PCI_CONFIG: 0xcf8,
  /** The reset control register; writing 0x06 (or 0x0e) resets the machine. Also the FADT reset register. */
  RESET_CONTROL: 0xcf9,
} as const;

/** ISA interrupt lines (GSIs, identity-mapped to IOAPIC pins except IRQ0 → pin 2). */
export const Irqs = {
  PIT: 0,
  KEYBOARD: 1,
  COM1: 4,
  RTC: 8,
  /** The ACPI system control interrupt. */
  ACPI_SCI: 9,
  MOUSE: 12,
} as const;

/** Number of IOAPIC pins (GSIs 0-23). */
export const IOAPIC_PINS = 24;
/**
 * IOAPIC pins 16-23 carry the PCI INTx lines (slot s, INTA# → GSI 16 + s % 8).
 * ACPI describes them in the _PRT as GSIs, which makes them level-triggered and
 * active-low: an engine with its own IOAPIC model must treat these wires as
 * electrically active-low (the soft platform's `activeLowPins`); KVM's in-kernel
 * IOAPIC takes KVM_IRQ_LINE level 1 as asserted whatever the polarity.
 */
export const PCI_INTX_GSI_BASE = 16;
export const PCI_INTX_GSI_COUNT = 8;
/** MMIO page of the pc-testdev ("iomem") used by kvm-unit-tests' emulator tests. */
export const PC_TESTDEV_MMIO = 0xff000000;
