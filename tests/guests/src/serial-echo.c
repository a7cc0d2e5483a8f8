/*
 * serial-echo - proves serial output and polled input: prints a greeting, then
 * echoes received bytes upper-cased until a newline and prints the line.
 * Command line: timeout=<ms> (default 30000) bounds the wait for input.
 */
#include "lib/runtime.h"

void guest_main(u32 magic, const struct multiboot_info *mbi) {
  (void)magic;
  report_begin("serial-echo");
  const char *cmdline = multiboot_cmdline(mbi);
  u32 timeout_ms = 30000;
  cmdline_u32(cmdline, "timeout", &timeout_ms);
  print("hello from serial\n");
  print("serial-echo: type a line (echoed upper-cased)\n");
  char line[128];
  u32 n = 0;
  pit_clock_start(0);
  u32 last_input_us = pit_clock_us();
  for (;;) {
    int c = serial_try_getc();
    if (c < 0) {
      if (pit_clock_us() - last_input_us > timeout_ms * 1000) fail_now("no newline within %u ms (got %u bytes)", timeout_ms, n);
      cpu_relax();
      continue;
    }
    last_input_us = pit_clock_us();
    if (c == '\n' || c == '\r') break;
    char up = (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : (char)c;
    serial_putc(up);
    if (n < sizeof line - 1) line[n++] = (char)c;
  }
  line[n] = 0;
  print("\ngot: %s\n", line);
  check(n > 0, "input", "empty line");
  report_end();
}
