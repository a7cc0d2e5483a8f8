/**
 * The interrupt hardware state a PC BIOS leaves behind, for kernels booted
 * the way GRUB boots them (multiboot). typevisor has no BIOS, so without this
 * a multiboot kernel would find the 8259 PICs at their power-up state (no
 * vector base, every line masked) and the PIT stopped, where on a PC (and
 * under QEMU with SeaBIOS) IRQ 0-7 arrive at vectors 0x08-0x0f, IRQ 8-15 at
 * 0x70-0x77, and the timer ticks at 18.2 Hz into the BIOS tick count.
 *
 * It is done the way firmware does it: by guest code. A short 32-bit routine
 * in the BIOS area programs the PICs (ICW1-ICW4, timer and cascade unmasked)
 * and PIT channel 0 (mode 3, divisor 65536), then loads the multiboot
 * registers and jumps to the kernel. Real-mode interrupt handlers there
 * acknowledge the PIC (IRQ 0 also counts ticks at 0040:006C), and the
 * interrupt vector table at 0 points every vector at them or at a bare IRET.
 * Running as guest code, it behaves the same under every engine: the devices
 * see ordinary port writes.
 */

import type { GuestMemory } from '../machine/memory.js';
import { LoaderError, hex } from './errors.js';

/** Where the routine and handlers go: the last page below 1 MiB (F000:F000), inside the reserved BIOS area. */
export const LEGACY_BIOS_CODE = 0xff000;
const LEGACY_BIOS_SEGMENT = 0xf000;
/** The BIOS data area's timer tick count (dword at 0040:006C). */
export const BDA_TICK_COUNT = 0x46c;
/** Vector bases a PC BIOS programs: IRQ 0-7 at 0x08, IRQ 8-15 at 0x70. */
export const BIOS_MASTER_VECTOR_BASE = 0x08;
export const BIOS_SLAVE_VECTOR_BASE = 0x70;
/** OCW1 masks left by the routine: IRQ 0 (timer) and IRQ 2 (cascade) open on the master, the slave closed. */
export const BIOS_MASTER_MASK = 0xfa;
export const BIOS_SLAVE_MASK = 0xff;

const IVT_ENTRIES = 256;

/** Real-mode handler: IRET only (unused vectors). */
const IRET_HANDLER = [0xcf];
/** Real-mode IRQ 0 handler: push ds; push ax; xor ax,ax; mov ds,ax; inc dword [0x46c]; EOI master; pop ax; pop ds; iret. */
const TIMER_HANDLER = [
  0x1e, 0x50, 0x31, 0xc0, 0x8e, 0xd8,
  0x66, 0xff, 0x06, BDA_TICK_COUNT & 0xff, BDA_TICK_COUNT >>> 8,
  0xb0, 0x20, 0xe6, 0x20,
  0x58, 0x1f, 0xcf,
];
/** Real-mode IRQ 1-7 handler: push ax; EOI master; pop ax; iret. */
const MASTER_IRQ_HANDLER = [0x50, 0xb0, 0x20, 0xe6, 0x20, 0x58, 0xcf];
/** Real-mode IRQ 8-15 handler: push ax; EOI slave, then master; pop ax; iret. */
const SLAVE_IRQ_HANDLER = [0x50, 0xb0, 0x20, 0xe6, 0xa0, 0xe6, 0x20, 0x58, 0xcf];

/** `mov al, imm8; out imm8, al` for each [port, value]. */
function outputs(writes: readonly (readonly [number, number])[]): number[] {
  return writes.flatMap(([port, value]) => [0xb0, value, 0xe6, port]);
}

function le32(v: number): number[] {
  return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
}

/** The 32-bit routine: program PICs and PIT, then EAX/EBX and jump to `entry` (through ECX). */
function setupRoutine(entry: number, eax: number, ebx: number): number[] {
  return [
    ...outputs([
      [0x20, 0x11], [0xa0, 0x11], // ICW1: edge, cascade, ICW4 follows
      [0x21, BIOS_MASTER_VECTOR_BASE], [0xa1, BIOS_SLAVE_VECTOR_BASE], // ICW2: vector bases
      [0x21, 0x04], [0xa1, 0x02], // ICW3: slave on IR2; slave identity 2
      [0x21, 0x01], [0xa1, 0x01], // ICW4: 8086 mode
      [0x21, BIOS_MASTER_MASK], [0xa1, BIOS_SLAVE_MASK], // OCW1
      [0x43, 0x36], [0x40, 0x00], [0x40, 0x00], // PIT channel 0: lobyte/hibyte, mode 3, count 65536 (18.2 Hz)
    ]),
    0xb8, ...le32(eax), // mov eax, imm32
    0xbb, ...le32(ebx), // mov ebx, imm32
    0xb9, ...le32(entry), // mov ecx, imm32
    0xff, 0xe1, // jmp ecx
  ];
}

/**
 * Writes the handlers, the interrupt vector table, a zero tick count and the
 * setup routine; returns the routine's address, where the vCPU should start
 * (32-bit protected mode, flat segments, interrupts off) instead of `entry`.
 */
export function writeLegacyBiosState(memory: GuestMemory, handoff: { entry: number; eax: number; ebx: number }): number {
  const code: number[] = [];
  const place = (bytes: readonly number[]): number => {
    const offset = (LEGACY_BIOS_CODE - LEGACY_BIOS_SEGMENT * 16) + code.length;
    code.push(...bytes);
    return offset;
  };
  const iret = place(IRET_HANDLER);
  const timer = place(TIMER_HANDLER);
  const master = place(MASTER_IRQ_HANDLER);
  const slave = place(SLAVE_IRQ_HANDLER);
  const routine = LEGACY_BIOS_CODE + code.length;
  code.push(...setupRoutine(handoff.entry, handoff.eax, handoff.ebx));
  if (!memory.contains(0, IVT_ENTRIES * 4) || !memory.contains(LEGACY_BIOS_CODE, code.length)) {
    throw new LoaderError(`guest RAM does not cover the interrupt vector table and the BIOS area at ${hex(LEGACY_BIOS_CODE)}`);
  }

  const ivt = new Uint8Array(IVT_ENTRIES * 4);
  const view = new DataView(ivt.buffer);
  for (let vector = 0; vector < IVT_ENTRIES; vector++) {
    let offset = iret;
    if (vector === BIOS_MASTER_VECTOR_BASE) offset = timer;
    else if (vector > BIOS_MASTER_VECTOR_BASE && vector < BIOS_MASTER_VECTOR_BASE + 8) offset = master;
    else if (vector >= BIOS_SLAVE_VECTOR_BASE && vector < BIOS_SLAVE_VECTOR_BASE + 8) offset = slave;
    view.setUint16(vector * 4, offset, true);
    view.setUint16(vector * 4 + 2, LEGACY_BIOS_SEGMENT, true);
  }
  memory.writeBytes(0, ivt);
  memory.write32(BDA_TICK_COUNT, 0);
  memory.writeBytes(LEGACY_BIOS_CODE, Uint8Array.from(code));
  return routine;
}
