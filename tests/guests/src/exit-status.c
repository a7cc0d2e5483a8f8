/*
 * exit-status - writes the value of code=<n> from the command line to
 * isa-debug-exit (0xf4) so the VMM exits with status (n << 1) | 1.
 * size=1|2|4 selects the width of the OUT (default 1).
 */
#include "lib/runtime.h"

void guest_main(u32 magic, const struct multiboot_info *mbi) {
  (void)magic;
  report_begin("exit-status");
  const char *cmdline = multiboot_cmdline(mbi);
  u32 code = 0, size = 1;
  if (!cmdline_u32(cmdline, "code", &code)) print("exit-status: no code=<n> on the command line, using 0\n");
  cmdline_u32(cmdline, "size", &size);
  print("exit-status: writing %u to port 0xf4 with a %u-byte OUT (expect status %u)\n", code, size,
        ((code << 1) | 1) & 0xff);
  if (size == 4) outl(PORT_DEBUG_EXIT, code);
  else if (size == 2) outw(PORT_DEBUG_EXIT, (u16)code);
  else outb(PORT_DEBUG_EXIT, (u8)code);
  print("exit-status: isa-debug-exit did not stop the VM; halting\n");
  halt_forever();
}
