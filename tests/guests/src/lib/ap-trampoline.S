/*
 * ap-trampoline.S - real-mode start-up code for application processors.
 *
 * The bytes between ap_trampoline_start and ap_trampoline_end are copied by the
 * BSP to AP_TRAMPOLINE_ADDR (a 4 KiB-aligned page below 1 MiB; the SIPI vector
 * is AP_TRAMPOLINE_ADDR >> 12). The BSP also fills ap_gdt_ptr in the copy. An AP
 * starting there loads the GDT, enters protected mode, jumps to ap_entry32 in
 * the kernel image, takes a 4 KiB stack and calls ap_main().
 */
#define AP_TRAMPOLINE_ADDR 0x8000
#define AP_MAX_STACKS 64

	.text
	.code16
	.globl ap_trampoline_start, ap_trampoline_end, ap_gdt_ptr
ap_trampoline_start:
	cli
	cld
	xorw %ax, %ax
	movw %ax, %ds
	lgdtl AP_TRAMPOLINE_ADDR + (ap_gdt_ptr - ap_trampoline_start)
	movl %cr0, %eax
	orl $1, %eax
	movl %eax, %cr0
	ljmpl $0x08, $ap_entry32
	.balign 4
	.word 0
ap_gdt_ptr:
	.word 0      /* limit, patched by the BSP */
	.long 0      /* base, patched by the BSP */
ap_trampoline_end:

	.code32
ap_entry32:
	movw $0x10, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movw %ax, %fs
	movw %ax, %gs
	movl $1, %eax
	lock xaddl %eax, ap_stacks_used
	cmpl $AP_MAX_STACKS, %eax
	jae 1f
	incl %eax
	shll $12, %eax
	addl $ap_stacks, %eax
	movl %eax, %esp
	xorl %ebp, %ebp
	call ap_main
1:	cli
	hlt
	jmp 1b

	.data
	.balign 4
	.globl ap_stacks_used
ap_stacks_used:
	.long 0

	.bss
	.balign 4096
ap_stacks:
	.skip 4096 * AP_MAX_STACKS
