/*
 * linux64-head.S - entry points of the linux64-zeropage guest (loaded at 1 MiB).
 *
 * Offset 0x000 (code32_start): the 32-bit entry. This guest supports only the
 * 64-bit boot protocol, so it reports the mistake on COM1 and exits with status 3.
 * Offset 0x200: startup_64, entered in long mode with %rsi = struct boot_params.
 */
	.section .head, "ax"
	.code32
	.globl startup_32
startup_32:
	movl $msg32, %esi
1:	movb (%esi), %al
	testb %al, %al
	jz 2f
	movw $0x3f8, %dx
	outb %al, %dx
	incl %esi
	jmp 1b
2:	movb $1, %al
	outb %al, $0xf4
3:	cli
	hlt
	jmp 3b
msg32:
	.asciz "FAIL linux64-zeropage: entered through the 32-bit entry (code32_start); want the 64-bit entry at +0x200\r\n"

	.org 0x200
	.code64
	.globl startup_64
startup_64:
	cli
	cld
	movq %rsi, %r12
	/* zero .bss (holds the stack) before using the stack */
	leaq __bss_start(%rip), %rdi
	leaq __bss_end(%rip), %rcx
	subq %rdi, %rcx
	xorl %eax, %eax
	rep stosb
	leaq stack_top(%rip), %rsp
	xorl %ebp, %ebp
	movq %r12, %rdi
	call linux64_main
4:	cli
	hlt
	jmp 4b

	.bss
	.balign 16
stack:
	.skip 16384
stack_top:
