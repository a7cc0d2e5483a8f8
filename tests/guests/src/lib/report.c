/* report.c - the PASS/FAIL output convention and isa-debug-exit. */
#include "runtime.h"

const char *report_guest_name = "guest";
static u32 checks_run, checks_failed;

void report_begin(const char *guest) {
  report_guest_name = guest;
  checks_run = checks_failed = 0;
}

int check(int ok, const char *name, const char *why_fmt, ...) {
  checks_run++;
  if (ok) {
    print("PASS %s/%s\n", report_guest_name, name);
    return 1;
  }
  checks_failed++;
  print("FAIL %s/%s: ", report_guest_name, name);
  va_list ap;
  va_start(ap, why_fmt);
  vprint(why_fmt, ap);
  va_end(ap);
  serial_putc('\n');
  return 0;
}

void report_end(void) {
  if (checks_failed == 0) {
    print("PASS %s\n", report_guest_name);
    exit_vm(EXIT_PASS);
  }
  print("FAIL %s: %u of %u checks failed\n", report_guest_name, checks_failed, checks_run);
  exit_vm(EXIT_FAIL);
}

void fail_now(const char *fmt, ...) {
  print("FAIL %s: ", report_guest_name);
  va_list ap;
  va_start(ap, fmt);
  vprint(fmt, ap);
  va_end(ap);
  serial_putc('\n');
  exit_vm(EXIT_FAIL);
}

void halt_forever(void) {
  for (;;) __asm__ volatile("cli; hlt");
}

void exit_vm(u32 code) {
  serial_flush();
  outb(PORT_DEBUG_EXIT, (u8)code);
  print("%s: isa-debug-exit did not stop the VM (run with --debug-exit); halting\n", report_guest_name);
  halt_forever();
}
