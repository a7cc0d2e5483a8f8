/*
 * idt.c - builds the IDT over the stubs in boot32.S (32-bit gates) or boot64.S
 * (64-bit gates) and dispatches to per-vector C handlers.
 */
#include "idt.h"

extern char isr_stubs[];
#ifdef __x86_64__
/* 16-byte gates: two quadwords per vector. */
static u64 idt[256 * 2] __attribute__((aligned(16)));
#else
static u64 idt[256] __attribute__((aligned(16)));
#endif
static isr_handler handlers[256];
volatile u32 idt_unexpected_interrupts;

static const char *const exception_names[32] = {
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#09", "#TS", "#NP", "#SS", "#GP", "#PF", "#15",
    "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "#22", "#23", "#24", "#25", "#26", "#27", "#HV", "#VC", "#SX", "#31"};

void idt_init(void) {
  for (u32 v = 0; v < 256; v++) {
    uptr addr = (uptr)isr_stubs + v * 16;
    /* interrupt gate (32-bit: type 0xe, 64-bit: type 0xe in long mode), DPL 0, present, selector: the code segment */
#ifdef __x86_64__
    idt[2 * v] = (u64)(addr & 0xffff) | ((u64)0x18 << 16) | ((u64)0x8e00 << 32) | ((u64)((addr >> 16) & 0xffff) << 48);
    idt[2 * v + 1] = (u64)addr >> 32;
#else
    idt[v] = (u64)(addr & 0xffff) | ((u64)0x08 << 16) | ((u64)0x8e00 << 32) | ((u64)(addr >> 16) << 48);
#endif
  }
  idt_load();
}

void idt_load(void) {
  struct {
    u16 limit;
    uptr base;
  } __attribute__((packed)) desc = {sizeof idt - 1, (uptr)idt};
  __asm__ volatile("lidt %0" : : "m"(desc));
}

void idt_set_handler(u32 vector, isr_handler handler) { handlers[vector & 0xff] = handler; }

void isr_dispatch(struct trap_frame *f) {
  isr_handler h = handlers[f->vector & 0xff];
  if (h) {
    h(f);
    return;
  }
  if (f->vector < 32) {
    uptr cr2;
    __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
    print("FAIL %s: unexpected exception %u %s at " TRAP_FRAME_IP_NAME "=0x%08llx error=0x%x cr2=0x%llx\n", report_guest_name,
          (u32)f->vector, exception_names[f->vector], (u64)TRAP_FRAME_IP(f), (u32)f->error_code, (u64)cr2);
    exit_vm(EXIT_EXCEPTION);
  }
  idt_unexpected_interrupts++;
  if (f->vector != 0xff) lapic_eoi();
}
