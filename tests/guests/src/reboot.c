/*
 * reboot - requests a reset through the i8042 (0xFE to port 0x64).
 *
 * A marker at 15 MiB counts boots. If guest RAM survives the reset, the second
 * boot prints "reboot: boot 2 ..." and "PASS reboot" and exits with status 1.
 * If the VMM treats the reset as the end of the run (no-reboot mode) it exits
 * right after "rebooting". If it restarts with fresh RAM, "rebooting" appears
 * again on every boot and the test stops it. max-boots=<n> (default 2).
 */
#include "lib/runtime.h"

#define MARKER_ADDR 0x00f00000u
#define MARKER_MAGIC 0x7e800b00u

void guest_main(u32 magic, const struct multiboot_info *mbi) {
  (void)magic;
  report_begin("reboot");
  u32 max_boots = 2;
  cmdline_u32(multiboot_cmdline(mbi), "max-boots", &max_boots);
  volatile u32 *marker = (volatile u32 *)MARKER_ADDR;
  u32 boot;
  if (marker[0] == MARKER_MAGIC) {
    boot = ++marker[1];
    print("reboot: boot %u (memory kept across the reset)\n", boot);
  } else {
    marker[0] = MARKER_MAGIC;
    marker[1] = boot = 1;
    print("reboot: boot 1\n");
  }
  if (boot >= max_boots) {
    marker[0] = 0;
    check(boot >= 2 || max_boots <= 1, "restarted", "boot %u", boot);
    report_end();
  }
  print("rebooting\n");
  outb(PORT_I8042_CMD, 0xfe);
  pit_clock_start(0);
  pit_delay_us(1000000);
  marker[0] = 0;
  fail_now("still running 1 s after writing 0xFE to port 0x64");
}
