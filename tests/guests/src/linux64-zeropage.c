/*
 * linux64-zeropage - a kernel for the Linux x86-64 boot protocol's 64-bit entry.
 *
 * Built as a bzImage (linux64-zeropage.bzImage) and as an ELF64 vmlinux
 * (linux64-zeropage.vmlinux). Entered in long mode with %rsi = the zero page
 * (struct boot_params); checks from inside the guest what the loader filled in.
 */
#include "lib/runtime.h"

extern char __image_start[], __image_end[];

/* struct boot_params offsets (Documentation/arch/x86/zero-page.rst, boot.rst). */
#define BP_ACPI_RSDP_ADDR 0x070
#define BP_EXT_CMD_LINE_PTR 0x0c8
#define BP_E820_ENTRIES 0x1e8
#define BP_SETUP_SECTS 0x1f1
#define BP_BOOT_FLAG 0x1fe
#define BP_HEADER 0x202
#define BP_VERSION 0x206
#define BP_TYPE_OF_LOADER 0x210
#define BP_CMD_LINE_PTR 0x228
#define BP_CMDLINE_SIZE 0x238
#define BP_E820_TABLE 0x2d0

#define RD8(o) (*(volatile u8 *)(bp + (o)))
#define RD16(o) (*(volatile u16 *)(bp + (o)))
#define RD32(o) (*(volatile u32 *)(bp + (o)))
#define RD64(o) (*(volatile u64 *)(bp + (o)))

/* Our own identity map of the low 4 GiB (2 MiB pages), so the BIOS area and
 * the APIC pages are reachable whatever the loader mapped. */
static u64 pml4[512] __attribute__((aligned(4096)));
static u64 pdpt[512] __attribute__((aligned(4096)));
static u64 pd[4][512] __attribute__((aligned(4096)));

static void identity_map_4g(void) {
  for (u64 g = 0; g < 4; g++) {
    for (u64 i = 0; i < 512; i++) pd[g][i] = (g << 30) | (i << 21) | 0x83; /* present, writable, 2 MiB */
    pdpt[g] = (u64)(uptr)pd[g] | 0x03;
  }
  pml4[0] = (u64)(uptr)pdpt | 0x03;
  __asm__ volatile("mov %0, %%cr3" : : "r"((u64)(uptr)pml4) : "memory");
}

static const char *e820_type(u32 type) {
  switch (type) {
    case 1: return "ram";
    case 2: return "reserved";
    case 3: return "acpi";
    case 4: return "nvs";
    default: return "other";
  }
}

void linux64_main(uptr bp) {
  report_begin("linux64-zeropage");
  serial_init();
  u64 cr3, rflags;
  __asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
  __asm__ volatile("pushfq; popq %0" : "=r"(rflags));
  print("linux64-zeropage: entered at 64-bit entry, boot_params at 0x%llx, cr3 0x%llx\n", (u64)bp, cr3);

  /* Running in 64-bit mode: EFER.LMA and the L bit of the current code segment. */
  u64 efer = rdmsr(0xc0000080);
  check((efer & (1u << 10)) && (efer & (1u << 8)), "efer-lma", "EFER=0x%llx, want LME and LMA", efer);
  u16 cs;
  struct {
    u16 limit;
    u64 base;
  } __attribute__((packed)) gdtr;
  __asm__ volatile("mov %%cs, %0" : "=r"(cs));
  __asm__ volatile("sgdt %0" : "=m"(gdtr));
  if ((u32)(cs & ~7u) + 7 <= gdtr.limit && !(cs & 4)) {
    u64 desc = *(volatile u64 *)(uptr)(gdtr.base + (cs & ~7u));
    check((desc >> 53 & 1) && !(desc >> 54 & 1), "cs-long", "CS=0x%x descriptor 0x%llx has L=%u D=%u", cs, desc,
          (u32)(desc >> 53 & 1), (u32)(desc >> 54 & 1));
  } else {
    check(0, "cs-long", "CS=0x%x outside GDT (limit 0x%x)", cs, gdtr.limit);
  }
  check(!(rflags & (1u << 9)), "interrupts-off", "RFLAGS=0x%llx has IF set", rflags);

  identity_map_4g();

  /* The setup header copied into the zero page. */
  check(RD16(BP_BOOT_FLAG) == 0xaa55, "boot-flag", "boot_flag=0x%x", RD16(BP_BOOT_FLAG));
  check(RD32(BP_HEADER) == 0x53726448, "hdrs-magic", "header=0x%08x, want \"HdrS\"", RD32(BP_HEADER));
  /* Informational: a loader that copied our bzImage header shows 0x20f and 1;
   * one that booted the ELF vmlinux synthesises the header and may leave them 0. */
  print("linux64-zeropage: header version 0x%x, setup_sects %u\n", RD16(BP_VERSION), RD8(BP_SETUP_SECTS));
  check(RD8(BP_TYPE_OF_LOADER) == 0xff, "type-of-loader", "type_of_loader=0x%x, want 0xff", RD8(BP_TYPE_OF_LOADER));

  /* The command line. */
  u64 cmd = RD32(BP_CMD_LINE_PTR) | ((u64)RD32(BP_EXT_CMD_LINE_PTR) << 32);
  if (check(cmd != 0 && cmd < 0x100000000ull, "cmdline-ptr", "cmd_line_ptr=0x%llx", cmd)) {
    const char *s = (const char *)(uptr)cmd;
    u32 len = 0;
    while (len < 4096 && s[len]) len++;
    check(len < 4096, "cmdline-terminated", "no NUL within 4096 bytes");
    print("linux64-zeropage: cmdline: %s\n", len < 4096 ? s : "(unterminated)");
  }

  /* The e820 memory map. */
  u32 n = RD8(BP_E820_ENTRIES);
  u64 lo = (uptr)__image_start, hi = (uptr)__image_end;
  int kernel_in_ram = 0;
  if (check(n > 0 && n <= 128, "e820-entries", "e820_entries=%u", n)) {
    for (u32 i = 0; i < n; i++) {
      uptr e = bp + BP_E820_TABLE + 20 * i;
      u64 addr = *(volatile u64 *)e, size = *(volatile u64 *)(e + 8);
      u32 type = *(volatile u32 *)(e + 16);
      print("linux64-zeropage: e820 0x%016llx-0x%016llx %s\n", addr, addr + size - 1, e820_type(type));
      if (type == 1 && addr <= 0x100000 && addr + size >= hi) kernel_in_ram = 1;
    }
    check(kernel_in_ram, "e820-ram-1m", "no RAM entry covers 1 MiB and the kernel (0x%llx-0x%llx)", lo, hi);
  }

  /* The ACPI RSDP. */
  u64 rsdp = RD64(BP_ACPI_RSDP_ADDR);
  print("linux64-zeropage: acpi_rsdp_addr 0x%llx\n", rsdp);
  if (check(rsdp != 0 && rsdp < 0x100000000ull, "acpi-rsdp-addr", "acpi_rsdp_addr=0x%llx", rsdp))
    check(acpi_rsdp_valid((uptr)rsdp), "acpi-rsdp-valid", "no checksummed \"RSD PTR \" at 0x%llx", rsdp);

  report_end();
}
