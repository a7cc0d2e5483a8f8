/* multiboot.c - helpers for the multiboot (v1) information structure. */
#include "runtime.h"

const char *multiboot_cmdline(const struct multiboot_info *mbi) {
  if (!mbi || !(mbi->flags & (1u << 2)) || !mbi->cmdline) return "";
  return (const char *)(uptr)mbi->cmdline;
}
