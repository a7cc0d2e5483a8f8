/* idt.h - 32-bit IDT with per-vector C handlers (multiboot guests only). */
#ifndef GUEST_IDT_H
#define GUEST_IDT_H
#include "runtime.h"

/* Register state pushed by the stubs in boot32.S (pushal order, then vector, error code, CPU frame). */
struct trap_frame {
  u32 edi, esi, ebp, esp_at_pushal, ebx, edx, ecx, eax;
  u32 vector, error_code;
  u32 eip, cs, eflags;
};

typedef void (*isr_handler)(struct trap_frame *frame);
void idt_init(void);
/* Loads the already-built IDT on this CPU (for application processors). */
void idt_load(void);
/* Installs `handler` for `vector`; NULL restores the default (exceptions are fatal, others counted). */
void idt_set_handler(u32 vector, isr_handler handler);
/* Interrupts (vector >= 32) that arrived with no handler installed. */
extern volatile u32 idt_unexpected_interrupts;
#endif
