/* idt.c - builds the 32-bit IDT over the stubs in boot32.S and dispatches to C handlers. */
#include "idt.h"

extern char isr_stubs[];
static u64 idt[256] __attribute__((aligned(16)));
static isr_handler handlers[256];
volatile u32 idt_unexpected_interrupts;

static const char *const exception_names[32] = {
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#09", "#TS", "#NP", "#SS", "#GP", "#PF", "#15",
    "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "#22", "#23", "#24", "#25", "#26", "#27", "#HV", "#VC", "#SX", "#31"};

void idt_init(void) {
  for (u32 v = 0; v < 256; v++) {
    u32 addr = (u32)(uptr)isr_stubs + v * 16;
    /* 32-bit interrupt gate, DPL 0, present, selector 0x08 */
    idt[v] = (u64)(addr & 0xffff) | ((u64)0x08 << 16) | ((u64)0x8e00 << 32) | ((u64)(addr >> 16) << 48);
  }
  idt_load();
}

void idt_load(void) {
  struct {
    u16 limit;
    u32 base;
  } __attribute__((packed)) desc = {sizeof idt - 1, (u32)(uptr)idt};
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
    u32 cr2;
    __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
    print("FAIL %s: unexpected exception %u %s at eip=0x%08x error=0x%x cr2=0x%x\n", report_guest_name, f->vector,
          exception_names[f->vector], f->eip, f->error_code, cr2);
    exit_vm(EXIT_EXCEPTION);
  }
  idt_unexpected_interrupts++;
  if (f->vector != 0xff) lapic_eoi();
}
