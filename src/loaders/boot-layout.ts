/**
 * Where the loaders put boot data in low guest memory, and the segment
 * selectors of the boot GDT. Linux (bzImage/vmlinux) and multiboot share the
 * GDT; the rest is per protocol. Everything here lies below EBDA_START (0x9fc00)
 * so it never collides with the BIOS area that holds the ACPI tables, and below
 * 1 MiB so it never collides with a kernel (kernels load at >= 1 MiB; a
 * multiboot kernel may also use [0x7000, 0x20000), which multiboot boot data
 * leaves free: kvm-unit-tests' realmode.flat links at 0x8000).
 *
 *   0x00500  GDT (4 descriptors)                 both
 *   0x00520  IDT (one empty 8-byte entry)        both
 *   0x01000  multiboot information + mmap etc.   multiboot, up to 0x7000
 *   0x07000  Linux zero page (boot_params)       linux
 *   0x08ff0  initial stack pointer (grows down)  both
 *   0x09000  PML4                                linux
 *   0x0a000  PDPT                                linux
 *   0x0b000  4 page directories (2 MiB pages, identity map of 0-4 GiB)  linux
 *   0x20000  kernel command line                 both (up to 0x9fc00)
 */

export const BootLayout = {
  GDT: 0x500,
  IDT: 0x520,
  MULTIBOOT_INFO: 0x1000,
  MULTIBOOT_INFO_END: 0x7000,
  ZERO_PAGE: 0x7000,
  STACK_TOP: 0x8ff0,
  PML4: 0x9000,
  PDPT: 0xa000,
  PD: 0xb000,
  /** Number of page directories: each maps 1 GiB with 2 MiB pages. */
  PD_COUNT: 4,
  CMDLINE: 0x20000,
  /** Low window a multiboot kernel segment may use (the Linux-only zero page, stack and page tables are unused there). */
  MULTIBOOT_LOW_KERNEL_START: 0x7000,
  MULTIBOOT_LOW_KERNEL_END: 0x20000,
} as const;

/** Boot GDT selectors: 0x08 flat 32-bit code, 0x10 64-bit code (__BOOT_CS), 0x18 flat data (__BOOT_DS). */
export const Selectors = {
  CODE32: 0x08,
  CODE64: 0x10,
  DATA: 0x18,
} as const;
