/*
 * linux64-shim - a minimal Linux x86-64 boot loader that runs as a multiboot
 * kernel, so QEMU (which cannot use the 64-bit entry itself) can run the
 * linux64-zeropage guest: pass the bzImage or the ELF64 vmlinux as the first
 * multiboot module (QEMU: -initrd <file>). Everything after " -- " on the
 * command line becomes the Linux command line.
 *
 * It builds a zero page at 0x7000 (setup header copied from the bzImage, or
 * synthesised for an ELF), type_of_loader 0xff, the command line at 0x6000,
 * e820 from the multiboot memory map and acpi_rsdp_addr, loads the kernel at
 * 1 MiB, identity-maps 4 GiB, enters long mode and jumps to the 64-bit entry.
 * The shim itself is linked at 32 MiB so it never overlaps the kernel.
 */
#include "lib/runtime.h"

#define ZERO_PAGE 0x7000u
#define CMDLINE_ADDR 0x6000u
#define CMDLINE_MAX 2047u
#define KERNEL_ADDR 0x100000u

void enter_linux64(u32 pml4, u32 entry, u32 zero_page) NORETURN;

struct multiboot_module {
  u32 mod_start, mod_end, string, reserved;
};

static u8 zero_page_buf[4096] __attribute__((aligned(16)));
static char cmdline_buf[CMDLINE_MAX + 1];
static u64 pml4[512] __attribute__((aligned(4096)));
static u64 pdpt[512] __attribute__((aligned(4096)));
static u64 pd[4][512] __attribute__((aligned(4096)));

static u32 load_bzimage(const u8 *img, u32 len, u8 *zp) {
  if (len < 0x400 || *(const u16 *)(img + 0x1fe) != 0xaa55 || memcmp(img + 0x202, "HdrS", 4) != 0)
    fail_now("module is neither a bzImage (no 0xAA55/HdrS) nor an ELF64");
  u16 version = *(const u16 *)(img + 0x206);
  if (version < 0x020c || !(*(const u16 *)(img + 0x236) & 1))
    fail_now("bzImage protocol 0x%x without XLF_KERNEL_64", version);
  u32 setup_sects = img[0x1f1] ? img[0x1f1] : 4;
  u32 payload_off = (setup_sects + 1) * 512, header_end = 0x202 + img[0x201];
  memcpy(zp + 0x1f1, img + 0x1f1, header_end - 0x1f1);
  memcpy((void *)KERNEL_ADDR, img + payload_off, len - payload_off);
  print("linux64-shim: bzImage protocol 0x%x, %u setup sectors, payload %u bytes at 0x%x\n", version, setup_sects,
        len - payload_off, KERNEL_ADDR);
  return KERNEL_ADDR + 0x200;
}

static u32 load_elf64(const u8 *img, u32 len, u8 *zp) {
  if (len < 64 || img[4] != 2 || *(const u16 *)(img + 18) != 62) fail_now("module is not an x86-64 ELF");
  u32 phoff = (u32) * (const u64 *)(img + 32);
  u16 phentsize = *(const u16 *)(img + 54), phnum = *(const u16 *)(img + 56);
  for (u32 i = 0; i < phnum; i++) {
    const u8 *ph = img + phoff + i * phentsize;
    if (*(const u32 *)ph != 1) continue;
    u32 off = (u32) * (const u64 *)(ph + 8), paddr = (u32) * (const u64 *)(ph + 24);
    u32 filesz = (u32) * (const u64 *)(ph + 32), memsz = (u32) * (const u64 *)(ph + 40);
    memcpy((void *)(uptr)paddr, img + off, filesz);
    memset((void *)(uptr)(paddr + filesz), 0, memsz - filesz);
    print("linux64-shim: ELF segment 0x%x: %u bytes (+%u zeroed)\n", paddr, filesz, memsz - filesz);
  }
  /* No setup header in a vmlinux: synthesise the fields a kernel checks. */
  *(u16 *)(zp + 0x1fe) = 0xaa55;
  memcpy(zp + 0x202, "HdrS", 4);
  *(u32 *)(zp + 0x238) = CMDLINE_MAX;
  return (u32) * (const u64 *)(img + 24);
}

void guest_main(u32 magic, const struct multiboot_info *mbi) {
  report_begin("linux64-shim");
  if (magic != MULTIBOOT_BOOTLOADER_MAGIC) fail_now("not booted by a multiboot loader (eax=0x%x)", magic);
  if (!(mbi->flags & (1u << 3)) || mbi->mods_count < 1) fail_now("no multiboot module: pass the kernel as module 0");
  const struct multiboot_module *mod = (const void *)(uptr)mbi->mods_addr;
  const u8 *img = (const u8 *)(uptr)mod->mod_start;
  u32 len = mod->mod_end - mod->mod_start;

  /* Built in the shim's own memory and copied down last, so the multiboot data
   * the loader left in low memory stays intact while it is being read. */
  u8 *zp = zero_page_buf;
  u32 entry = memcmp(img, "\x7f" "ELF", 4) == 0 ? load_elf64(img, len, zp) : load_bzimage(img, len, zp);

  zp[0x210] = 0xff; /* type_of_loader: undefined */
  const char *cmdline = multiboot_cmdline(mbi), *sep = cmdline;
  while (*sep && !(sep[0] == ' ' && sep[1] == '-' && sep[2] == '-' && (sep[3] == ' ' || !sep[3]))) sep++;
  const char *linux_cmdline = *sep ? (sep[3] ? sep + 4 : sep + 3) : "";
  u32 n = (u32)strlen(linux_cmdline);
  if (n > CMDLINE_MAX) n = CMDLINE_MAX;
  memcpy(cmdline_buf, linux_cmdline, n);
  cmdline_buf[n] = 0;
  *(u32 *)(zp + 0x228) = CMDLINE_ADDR;

  u32 entries = 0;
  if (mbi->flags & (1u << 6)) {
    for (u32 off = 0; off < mbi->mmap_length && entries < 128; entries++) {
      const struct multiboot_mmap_entry *e = (const void *)(uptr)(mbi->mmap_addr + off);
      u8 *out = zp + 0x2d0 + 20 * entries;
      memcpy(out, &e->addr, 8);
      memcpy(out + 8, &e->len, 8);
      memcpy(out + 16, &e->type, 4);
      off += e->size + 4;
    }
  }
  zp[0x1e8] = (u8)entries;
  u64 rsdp = acpi_find_rsdp();
  memcpy(zp + 0x070, &rsdp, 8);

  for (u32 g = 0; g < 4; g++) {
    for (u32 i = 0; i < 512; i++) pd[g][i] = ((u64)g << 30) | ((u64)i << 21) | 0x83;
    pdpt[g] = (u32)(uptr)pd[g] | 0x03;
  }
  pml4[0] = (u32)(uptr)pdpt | 0x03;
  print("linux64-shim: zero page 0x%x, %u e820 entries, rsdp 0x%x, cmdline \"%s\", entering 0x%x\n", ZERO_PAGE, entries,
        (u32)rsdp, cmdline_buf, entry);
  memcpy((void *)ZERO_PAGE, zero_page_buf, sizeof zero_page_buf);
  memcpy((void *)CMDLINE_ADDR, cmdline_buf, n + 1);
  enter_linux64((u32)(uptr)pml4, entry, ZERO_PAGE);
}
