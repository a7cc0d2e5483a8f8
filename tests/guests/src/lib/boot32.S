/*
 * boot32.S - multiboot (v1) header and 32-bit entry shared by the multiboot guests.
 *
 * Assembled twice: plain (the loader reads the ELF32 program headers) and with
 * -DAOUT_KLUDGE (header flag bit 16: the loader uses the addresses below and the
 * guest is shipped as a flat binary). Loads its own GDT, zeroes .bss, sets a
 * stack, installs an IDT that reports stray exceptions, then calls
 * guest_main(magic, info).
 */
#include "multiboot-entry.inc"
	xorl %ebp, %ebp
	call serial_init
	call idt_init
	pushl boot_info
	pushl boot_magic
	call guest_main
	pushl $1
	call exit_vm
2:	cli
	hlt
	jmp 2b

/* One 16-byte stub per vector; vectors with a CPU error code skip the dummy push. */
	.balign 16
	.globl isr_stubs
isr_stubs:
	.set vec, 0
	.rept 256
	.balign 16
	.if (vec == 8) || (vec == 10) || (vec == 11) || (vec == 12) || (vec == 13) || (vec == 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
	.else
	pushl $0
	.endif
	pushl $vec
	jmp isr_common
	.set vec, vec + 1
	.endr

isr_common:
	pushal
	pushl %esp          /* struct trap_frame * */
	call isr_dispatch
	addl $4, %esp
	popal
	addl $8, %esp       /* vector and error code */
	iret

	.data
	.balign 8
	.globl gdt
gdt:
	.quad 0                     /* 0x00 null */
	.quad 0x00cf9a000000ffff    /* 0x08 flat 32-bit code */
	.quad 0x00cf92000000ffff    /* 0x10 flat data */
	.quad 0x00af9a000000ffff    /* 0x18 64-bit code (for guests that enter long mode) */
gdt_end:
	.balign 4
	.word 0
	.globl gdt_descriptor
gdt_descriptor:
	.word gdt_end - gdt - 1
	.long gdt
	.globl boot_magic, boot_info
boot_magic: .long 0
boot_info: .long 0

	.bss
	.balign 16
boot_stack:
	.skip 16384
	.globl boot_stack_top
boot_stack_top:
