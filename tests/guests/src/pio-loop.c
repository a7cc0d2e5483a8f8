/*
 * pio-loop - benchmark guest: count=<n> (default 100000) byte OUTs to
 * port=<p> (default 0x80, the POST port), then exits with status 1.
 */
#include "lib/runtime.h"

void guest_main(u32 magic, const struct multiboot_info *mbi) {
  (void)magic;
  report_begin("pio-loop");
  const char *cmdline = multiboot_cmdline(mbi);
  u32 count = 100000, port = 0x80;
  cmdline_u32(cmdline, "count", &count);
  cmdline_u32(cmdline, "port", &port);
  print("pio-loop: %u writes to port 0x%x\n", count, port);
  if (count) {
    u32 remaining = count;
    __asm__ volatile("1: outb %%al, %%dx\n\t"
                     "decl %%ecx\n\t"
                     "jnz 1b"
                     : "+c"(remaining)
                     : "a"(0x55), "d"(port)
                     : "memory");
  }
  print("pio-loop: done\n");
  report_end();
}
