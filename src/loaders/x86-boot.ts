/**
 * The x86 machine state the loaders hand to a kernel: a flat boot GDT in guest
 * memory, the identity-mapped long-mode page tables, and the matching CpuState
 * for 64-bit (Linux) and 32-bit protected-mode (multiboot) entry.
 */

import type { GuestMemory } from '../machine/memory.js';
import {
  CR0_ET, CR0_NE, CR0_PE, CR0_PG, CR4_PAE, EFER_LMA, EFER_LME,
  flatSegment, resetCpuState, type CpuState,
} from '../engines/cpu-state.js';
import { BootLayout, Selectors } from './boot-layout.js';

/** Encodes one 8-byte segment descriptor as [low, high] 32-bit words. */
export function segmentDescriptor(base: number, limit: number, access: number, flags: number): [number, number] {
  const low = ((limit & 0xffff) | ((base & 0xffff) << 16)) >>> 0;
  const high = (((base >>> 16) & 0xff) | (access << 8) | (((limit >>> 16) & 0xf) << 16) | ((flags & 0xf) << 20) | (base & 0xff000000)) >>> 0;
  return [low, high];
}

/** Access byte 0x9b: present, DPL0, code, execute/read, accessed. 0x93: data, read/write, accessed. */
const CODE_ACCESS = 0x9b;
const DATA_ACCESS = 0x93;
/** Flags nibble: G (4 KiB granularity) | D (32-bit), or G | L (64-bit code). */
const FLAGS_32 = 0xc;
const FLAGS_64 = 0xa;

/** Descriptors in the boot GDT: null, code32, code64, data. */
const GDT_ENTRIES = 4;

/** Writes the boot GDT at BootLayout.GDT and an empty IDT at BootLayout.IDT. */
export function writeBootGdt(memory: GuestMemory): void {
  const entries: [number, number][] = [
    [0, 0],
    segmentDescriptor(0, 0xfffff, CODE_ACCESS, FLAGS_32),
    segmentDescriptor(0, 0xfffff, CODE_ACCESS, FLAGS_64),
    segmentDescriptor(0, 0xfffff, DATA_ACCESS, FLAGS_32),
  ];
  entries.forEach(([low, high], i) => {
    memory.write32(BootLayout.GDT + i * 8, low);
    memory.write32(BootLayout.GDT + i * 8 + 4, high);
  });
  memory.fill(BootLayout.IDT, 8, 0);
}

const PTE_PRESENT = 0x1;
const PTE_WRITABLE = 0x2;
const PTE_LARGE = 0x80;

/**
 * Writes identity-mapped 4-level page tables for [0, 4 GiB) with 2 MiB pages:
 * PML4[0] -> PDPT, PDPT[0..3] -> 4 page directories. Returns the CR3 value.
 */
export function writeIdentityPageTables(memory: GuestMemory): number {
  memory.fill(BootLayout.PML4, 0x1000, 0);
  memory.fill(BootLayout.PDPT, 0x1000, 0);
  memory.write64(BootLayout.PML4, BootLayout.PDPT | PTE_PRESENT | PTE_WRITABLE);
  for (let d = 0; d < BootLayout.PD_COUNT; d++) {
    const pd = BootLayout.PD + d * 0x1000;
    memory.write64(BootLayout.PDPT + d * 8, pd | PTE_PRESENT | PTE_WRITABLE);
    for (let e = 0; e < 512; e++) {
      const physical = d * 0x4000_0000 + e * 0x20_0000;
      memory.write64(pd + e * 8, physical + (PTE_PRESENT | PTE_WRITABLE | PTE_LARGE));
    }
  }
  return BootLayout.PML4;
}

/** Loads the boot GDT/IDT registers and flat data segments into `state`. */
function flatProtectedMode(state: CpuState): void {
  state.gdt = { base: BigInt(BootLayout.GDT), limit: GDT_ENTRIES * 8 - 1 };
  state.idt = { base: BigInt(BootLayout.IDT), limit: 7 };
  for (const s of ['ds', 'es', 'fs', 'gs', 'ss'] as const) state.seg[s] = flatSegment(Selectors.DATA, false);
  state.rflags = 0x2n;
}

/**
 * CPU state for the Linux 64-bit boot protocol: long mode, paging on with the
 * identity map at `cr3`, CS = __BOOT_CS (0x10), DS/ES/SS = __BOOT_DS (0x18),
 * interrupts off, RSI = boot_params, RIP = entry.
 */
export function longModeEntryState(entry: number, cr3: number, bootParams: number): CpuState {
  const state = resetCpuState();
  flatProtectedMode(state);
  state.seg.cs = flatSegment(Selectors.CODE64, true, true);
  state.cr0 = CR0_PE | CR0_ET | CR0_NE | CR0_PG;
  state.cr3 = BigInt(cr3);
  state.cr4 = CR4_PAE;
  state.efer = EFER_LME | EFER_LMA;
  state.rip = BigInt(entry);
  state.gpr.rsi = BigInt(bootParams);
  state.gpr.rsp = BigInt(BootLayout.STACK_TOP);
  state.gpr.rbp = BigInt(BootLayout.STACK_TOP);
  return state;
}

/**
 * CPU state for multiboot v1 entry: 32-bit protected mode, paging off, flat
 * 4 GiB CS (0x08) and data segments (0x18), interrupts off, EAX = magic,
 * EBX = multiboot information address.
 */
export function protectedModeEntryState(entry: number, eax: number, ebx: number): CpuState {
  const state = resetCpuState();
  flatProtectedMode(state);
  state.seg.cs = flatSegment(Selectors.CODE32, true);
  state.cr0 = CR0_PE | CR0_ET;
  state.rip = BigInt(entry);
  state.gpr.rax = BigInt(eax >>> 0);
  state.gpr.rbx = BigInt(ebx >>> 0);
  state.gpr.rsp = BigInt(BootLayout.STACK_TOP);
  return state;
}
