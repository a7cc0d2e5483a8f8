/*
 * boot64.S - multiboot (v1) header and entry of the long-mode multiboot guests.
 *
 * Assembled as an x86-64 object and linked as ELF64, then converted to ELF32
 * (QEMU refuses multiboot ELF64). The loader enters _start in 32-bit protected
 * mode; it loads the GDT, zeroes .bss, identity-maps the low 4 GiB with 2 MiB
 * pages (the top GiB, which holds the LAPIC and IOAPIC, uncached), enables
 * PAE, EFER.LME and paging, far-jumps to 64-bit code, installs a 64-bit IDT
 * (idt.c) over the stubs below, and calls guest_main(magic, info).
 * Interrupt stubs save every general register and return with iretq.
 */
#define PTE_PRESENT 0x01
#define PTE_WRITE 0x02
#define PTE_PWT 0x08
#define PTE_PCD 0x10
#define PTE_LARGE 0x80

#include "multiboot-entry.inc"

	/* PML4[0] -> PDPT; PDPT[0..3] -> the four page directories */
	movl $boot_pdpt, %eax
	orl $(PTE_PRESENT | PTE_WRITE), %eax
	movl %eax, boot_pml4
	movl $boot_pd, %eax
	orl $(PTE_PRESENT | PTE_WRITE), %eax
	xorl %ecx, %ecx
2:	movl %eax, boot_pdpt(, %ecx, 8)
	addl $4096, %eax
	incl %ecx
	cmpl $4, %ecx
	jb 2b
	/* 2048 2 MiB pages: entry i maps i * 2 MiB; the 4th GiB (MMIO) is uncached */
	xorl %ecx, %ecx
3:	movl %ecx, %eax
	shll $21, %eax
	orl $(PTE_PRESENT | PTE_WRITE | PTE_LARGE), %eax
	cmpl $1536, %ecx
	jb 4f
	orl $(PTE_PWT | PTE_PCD), %eax
4:	movl %eax, boot_pd(, %ecx, 8)
	movl $0, boot_pd + 4(, %ecx, 8)
	incl %ecx
	cmpl $2048, %ecx
	jb 3b

	movl $boot_pml4, %eax
	movl %eax, %cr3
	movl %cr4, %eax
	orl $0x20, %eax               /* PAE */
	movl %eax, %cr4
	movl $0xc0000080, %ecx
	rdmsr
	orl $0x100, %eax              /* EFER.LME */
	wrmsr
	movl %cr0, %eax
	orl $0x80000000, %eax         /* PG: long mode becomes active */
	movl %eax, %cr0
	ljmp $0x18, $long_mode

	.code64
long_mode:
	movw $0x10, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movw %ax, %fs
	movw %ax, %gs
	movl $boot_stack_top, %esp    /* zero-extends into %rsp */
	xorl %ebp, %ebp
	call serial_init
	call idt_init
	movl boot_magic, %edi
	movl boot_info, %esi
	call guest_main
	movl $1, %edi
	call exit_vm
5:	cli
	hlt
	jmp 5b

/* One 16-byte stub per vector; vectors with a CPU error code skip the dummy push. */
	.balign 16
	.globl isr_stubs
isr_stubs:
	.set vec, 0
	.rept 256
	.balign 16
	.if (vec == 8) || (vec == 10) || (vec == 11) || (vec == 12) || (vec == 13) || (vec == 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
	.else
	pushq $0
	.endif
	pushq $vec
	jmp isr_common
	.set vec, vec + 1
	.endr

/*
 * The CPU aligned %rsp to 16 before pushing its 5-quadword frame; with the
 * error code, the vector and 15 registers (22 quadwords) it is aligned again.
 */
isr_common:
	pushq %rax
	pushq %rcx
	pushq %rdx
	pushq %rbx
	pushq %rbp
	pushq %rsi
	pushq %rdi
	pushq %r8
	pushq %r9
	pushq %r10
	pushq %r11
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
	movq %rsp, %rdi     /* struct trap_frame * */
	cld
	call isr_dispatch
	popq %r15
	popq %r14
	popq %r13
	popq %r12
	popq %r11
	popq %r10
	popq %r9
	popq %r8
	popq %rdi
	popq %rsi
	popq %rbp
	popq %rbx
	popq %rdx
	popq %rcx
	popq %rax
	addq $16, %rsp      /* vector and error code */
	iretq

	.data
	.balign 8
	.globl gdt
gdt:
	.quad 0                     /* 0x00 null */
	.quad 0x00cf9a000000ffff    /* 0x08 flat 32-bit code */
	.quad 0x00cf92000000ffff    /* 0x10 flat data */
	.quad 0x00af9a000000ffff    /* 0x18 64-bit code */
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
	.balign 4096
boot_pml4:
	.skip 4096
boot_pdpt:
	.skip 4096
boot_pd:
	.skip 4 * 4096
	.balign 16
boot_stack:
	.skip 16384
	.globl boot_stack_top
boot_stack_top:
