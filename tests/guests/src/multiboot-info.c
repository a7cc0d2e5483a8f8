/*
 * multiboot-info - checks what a multiboot (v1) loader hands over: the magic
 * in EAX, the info flags, mem_lower/mem_upper, the command line and the memory
 * map. Built as an ELF32 kernel and (with -DAOUT_KLUDGE) as a flat a.out-kludge
 * image "multiboot-info-aout".
 */
#include "lib/runtime.h"

#ifdef AOUT_KLUDGE
#define GUEST_NAME "multiboot-info-aout"
#else
#define GUEST_NAME "multiboot-info"
#endif

extern char __image_start[], __image_end[];
/* Initialised data: proves the loader copied .data to its link address. */
static volatile u32 data_canary = 0x1234abcd;

static const char *mmap_type(u32 type) {
  switch (type) {
    case 1: return "ram";
    case 2: return "reserved";
    case 3: return "acpi";
    case 4: return "nvs";
    default: return "other";
  }
}

void guest_main(u32 magic, const struct multiboot_info *mbi) {
  report_begin(GUEST_NAME);
  check(magic == MULTIBOOT_BOOTLOADER_MAGIC, "magic", "eax=0x%08x, want 0x2badb002", magic);
  if (magic != MULTIBOOT_BOOTLOADER_MAGIC || !mbi) report_end();
  check(data_canary == 0x1234abcd, "data-loaded", ".data canary reads 0x%08x", data_canary);
  print("%s: info at %p flags=0x%08x\n", GUEST_NAME, (const void *)mbi, mbi->flags);

  u64 ram_size = 0;
  if (fw_cfg_present()) fw_cfg_read(FW_CFG_RAM_SIZE, &ram_size, 8);
  print("%s: fw_cfg ram size 0x%llx\n", GUEST_NAME, ram_size);

  if (check(mbi->flags & 1, "mem-flag", "flags bit 0 (mem_lower/mem_upper) clear")) {
    print("%s: mem_lower=%u KiB mem_upper=%u KiB\n", GUEST_NAME, mbi->mem_lower, mbi->mem_upper);
    check(mbi->mem_lower >= 512 && mbi->mem_lower <= 640, "mem-lower", "mem_lower=%u KiB, want 512..640", mbi->mem_lower);
    check(mbi->mem_upper >= 15 * 1024, "mem-upper", "mem_upper=%u KiB, want >= 15 MiB", mbi->mem_upper);
    if (ram_size)
      check((u64)(mbi->mem_upper + 1024) * 1024 <= ram_size, "mem-upper-vs-ram", "mem_upper=%u KiB exceeds RAM 0x%llx",
            mbi->mem_upper, ram_size);
  }

  if (check(mbi->flags & (1u << 2), "cmdline-flag", "flags bit 2 (cmdline) clear"))
    print("%s: cmdline: %s\n", GUEST_NAME, multiboot_cmdline(mbi));

  if (check(mbi->flags & (1u << 6), "mmap-flag", "flags bit 6 (mmap) clear")) {
    int well_formed = 1, kernel_in_ram = 0, low_ram = 0;
    u32 entries = 0;
    u64 image_lo = (uptr)__image_start, image_hi = (uptr)__image_end;
    for (u32 off = 0; off < mbi->mmap_length; entries++) {
      const struct multiboot_mmap_entry *e = (const void *)(uptr)(mbi->mmap_addr + off);
      if (e->size < 20 || entries > 128) {
        well_formed = 0;
        break;
      }
      print("%s: mmap 0x%016llx-0x%016llx %s\n", GUEST_NAME, e->addr, e->addr + e->len - 1, mmap_type(e->type));
      if (e->type == 1 && e->addr <= image_lo && e->addr + e->len >= image_hi) kernel_in_ram = 1;
      if (e->type == 1 && e->addr == 0) low_ram = 1;
      off += e->size + 4;
    }
    check(well_formed && entries > 0, "mmap-entries", "%u entries, malformed=%d", entries, !well_formed);
    check(kernel_in_ram, "mmap-kernel-ram", "no RAM entry covers the kernel at 0x%llx-0x%llx", image_lo, image_hi);
    check(low_ram, "mmap-low-ram", "no RAM entry at address 0");
  }

  if (mbi->flags & (1u << 9)) print("%s: boot loader: %s\n", GUEST_NAME, (const char *)(uptr)mbi->boot_loader_name);
  report_end();
}
