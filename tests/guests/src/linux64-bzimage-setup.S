/*
 * linux64-bzimage-setup.S - the real-mode part of the linux64-zeropage bzImage:
 * a boot sector and one setup sector holding the Linux setup header (protocol
 * 2.15), followed by the protected-mode payload (the flat binary of the
 * vmlinux, .incbin'd). INIT_SIZE (bytes of memory the payload needs, .bss
 * included) is passed with --defsym. There is no real-mode code: a loader must
 * use the 64-bit entry at payload + 0x200.
 */
	.code16
	.text
start:
	/* Boot sector: a real-mode loader that jumps here gets a hang, not garbage. */
	cli
1:	hlt
	jmp 1b

	.org 0x1f1
setup_sects:	.byte 1          /* one 512-byte setup sector follows the boot sector */
root_flags:	.word 0
syssize:	.long (payload_end - payload_start + 15) / 16
ram_size:	.word 0
vid_mode:	.word 0xffff
root_dev:	.word 0
boot_flag:	.word 0xaa55
	/* 0x200 */
	.byte 0xeb                   /* jmp short past the header */
	.byte header_end - 1f
1:
	.ascii "HdrS"                /* 0x202 */
	.word 0x020f                 /* 0x206 version 2.15 */
	.long 0                      /* 0x208 realmode_swtch */
	.word 0x1000                 /* 0x20c start_sys_seg (obsolete) */
	.word 0                      /* 0x20e kernel_version: none */
	.byte 0                      /* 0x210 type_of_loader (written by the loader) */
	.byte 0x01                   /* 0x211 loadflags: LOADED_HIGH */
	.word 0                      /* 0x212 setup_move_size */
	.long 0x100000               /* 0x214 code32_start */
	.long 0                      /* 0x218 ramdisk_image */
	.long 0                      /* 0x21c ramdisk_size */
	.long 0                      /* 0x220 bootsect_kludge */
	.word 0                      /* 0x224 heap_end_ptr */
	.byte 0                      /* 0x226 ext_loader_ver */
	.byte 0                      /* 0x227 ext_loader_type */
	.long 0                      /* 0x228 cmd_line_ptr (written by the loader) */
	.long 0x7fffffff             /* 0x22c initrd_addr_max */
	.long 0x200000               /* 0x230 kernel_alignment */
	.byte 0                      /* 0x234 relocatable_kernel: no */
	.byte 21                     /* 0x235 min_alignment: 2 MiB */
	.word 0x0001                 /* 0x236 xloadflags: XLF_KERNEL_64 */
	.long 2047                   /* 0x238 cmdline_size */
	.long 0                      /* 0x23c hardware_subarch: PC */
	.quad 0                      /* 0x240 hardware_subarch_data */
	.long 0                      /* 0x248 payload_offset */
	.long 0                      /* 0x24c payload_length */
	.quad 0                      /* 0x250 setup_data */
	.quad 0x100000               /* 0x258 pref_address */
	.long INIT_SIZE              /* 0x260 init_size */
	.long 0                      /* 0x264 handover_offset */
	.long 0                      /* 0x268 kernel_info_offset */
header_end:

	.org 0x400                   /* (1 + setup_sects) * 512 */
payload_start:
	.incbin "linux64-zeropage.payload"
payload_end:
