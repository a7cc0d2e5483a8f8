/*
 * linux64-shim-enter.S - switches from 32-bit protected mode to long mode and
 * jumps to a Linux 64-bit entry point with %rsi = zero page.
 * C prototype: void enter_linux64(u32 pml4, u32 entry, u32 zero_page), never returns.
 * Relies on the GDT of boot32.S (selector 0x18 = 64-bit code).
 */
	.text
	.code32
	.globl enter_linux64
enter_linux64:
	cli
	movl 4(%esp), %eax
	movl %eax, %cr3
	movl 8(%esp), %edi
	movl 12(%esp), %esi
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
	ljmp $0x18, $1f
	.code64
1:	movl %esi, %esi               /* upper halves are undefined after the switch */
	movl %edi, %edi
	xorl %eax, %eax
	xorl %ebx, %ebx
	xorl %ecx, %ecx
	xorl %edx, %edx
	xorl %ebp, %ebp
	jmp *%rdi
