/*
 * idt.h - IDT with per-vector C handlers (multiboot guests only).
 *
 * Built for both modes: 32-bit protected mode (stubs in boot32.S, 8-byte
 * interrupt gates, handlers return with iret) and 64-bit long mode (stubs in
 * boot64.S, 16-byte interrupt gates, handlers return with iretq).
 */
#ifndef GUEST_IDT_H
#define GUEST_IDT_H
#include "runtime.h"

#ifdef __x86_64__
/* Register state pushed by the stubs in boot64.S (last pushed first), then vector, error code, CPU frame. */
struct trap_frame {
  u64 r15, r14, r13, r12, r11, r10, r9, r8, rdi, rsi, rbp, rbx, rdx, rcx, rax;
  u64 vector, error_code;
  u64 rip, cs, rflags, rsp, ss;
};
#define TRAP_FRAME_IP(f) ((f)->rip)
#define TRAP_FRAME_IP_NAME "rip"
#else
/* Register state pushed by the stubs in boot32.S (pushal order, then vector, error code, CPU frame). */
struct trap_frame {
  u32 edi, esi, ebp, esp_at_pushal, ebx, edx, ecx, eax;
  u32 vector, error_code;
  u32 eip, cs, eflags;
};
#define TRAP_FRAME_IP(f) ((f)->eip)
#define TRAP_FRAME_IP_NAME "eip"
#endif

typedef void (*isr_handler)(struct trap_frame *frame);
void idt_init(void);
/* Loads the already-built IDT on this CPU (for application processors). */
void idt_load(void);
/* Installs `handler` for `vector`; NULL restores the default (exceptions are fatal, others counted). */
void idt_set_handler(u32 vector, isr_handler handler);
/* Interrupts (vector >= 32) that arrived with no handler installed. */
extern volatile u32 idt_unexpected_interrupts;
#endif
