/*
 * cpu-loop - benchmark guest: iters=<n> (default 10,000,000) iterations of a
 * 10-instruction ALU loop (~100M instructions), then prints a checksum that
 * any correct CPU computes identically, and exits with status 1.
 */
#include "lib/runtime.h"

void guest_main(u32 magic, const struct multiboot_info *mbi) {
  (void)magic;
  report_begin("cpu-loop");
  const char *cmdline = multiboot_cmdline(mbi);
  u32 iters = 10000000;
  cmdline_u32(cmdline, "iters", &iters);
  print("cpu-loop: %u iterations x 10 instructions\n", iters);
  u32 a = 1, b = 2, d = 3, s = 4, di = 5, c = iters;
  if (c) {
    __asm__ volatile("1: addl %%ebx, %%eax\n\t"
                     "xorl %%eax, %%edx\n\t"
                     "subl $3, %%ebx\n\t"
                     "addl %%edx, %%esi\n\t"
                     "xorl %%esi, %%ebx\n\t"
                     "incl %%edi\n\t"
                     "addl %%edi, %%eax\n\t"
                     "subl %%eax, %%esi\n\t"
                     "decl %%ecx\n\t"
                     "jnz 1b"
                     : "+a"(a), "+b"(b), "+c"(c), "+d"(d), "+S"(s), "+D"(di));
  }
  print("cpu-loop: checksum 0x%08x\n", a ^ b ^ d ^ s ^ di);
  report_end();
}
