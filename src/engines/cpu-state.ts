/**
 * Architectural vCPU state shared by every engine: the general registers, the
 * segment and descriptor-table state, and the control registers, shaped after
 * KVM's kvm_regs/kvm_sregs so both engines map onto it directly.
 *
 * 64-bit values are bigint: this is a cold-path API (boot setup, tests,
 * snapshots), never used per instruction or per exit.
 */

export interface Segment {
  selector: number;
  base: bigint;
  /** Limit in bytes (already scaled by granularity). */
  limit: number;
  /** The 4-bit descriptor type field. */
  type: number;
  present: boolean;
  dpl: number;
  /** D/B: default operation size 32 bits. */
  db: boolean;
  /** S: code/data (true) or system (false) descriptor. */
  s: boolean;
  /** L: 64-bit code segment. */
  l: boolean;
  /** G: granularity 4 KiB. */
  g: boolean;
  avl: boolean;
  /** True for an unusable (null-loaded) segment. */
  unusable: boolean;
}

export interface DescriptorTable {
  base: bigint;
  limit: number;
}

export const GPR_NAMES = [
  'rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi',
  'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15',
] as const;
export type GprName = (typeof GPR_NAMES)[number];

export type SegmentName = 'cs' | 'ds' | 'es' | 'fs' | 'gs' | 'ss' | 'tr' | 'ldt';
export const SEGMENT_NAMES: readonly SegmentName[] = ['cs', 'ds', 'es', 'fs', 'gs', 'ss', 'tr', 'ldt'];

export interface CpuState {
  gpr: Record<GprName, bigint>;
  rip: bigint;
  rflags: bigint;
  seg: Record<SegmentName, Segment>;
  gdt: DescriptorTable;
  idt: DescriptorTable;
  cr0: bigint;
  cr2: bigint;
  cr3: bigint;
  cr4: bigint;
  cr8: bigint;
  efer: bigint;
  apicBase: bigint;
  /**
   * Optional x87/SSE state as a 512-byte FXSAVE image (64-bit layout: MXCSR at
   * 24, XMM0-15 at 160). Engines that model it fill it in getState and load it
   * in setState when present.
   */
  fx?: Uint8Array;
}

export const EFER_SCE = 1n << 0n;
export const EFER_LME = 1n << 8n;
export const EFER_LMA = 1n << 10n;
export const EFER_NXE = 1n << 11n;
export const CR0_PE = 1n << 0n;
export const CR0_MP = 1n << 1n;
export const CR0_ET = 1n << 4n;
export const CR0_NE = 1n << 5n;
export const CR0_WP = 1n << 16n;
export const CR0_PG = 1n << 31n;
export const CR4_PAE = 1n << 5n;
export const CR4_PGE = 1n << 7n;

/** A segment in the state real mode starts with (base = selector << 4, 64 KiB limit). */
export function realModeSegment(selector: number, code = false): Segment {
  return {
    selector, base: BigInt(selector << 4), limit: 0xffff, type: code ? 0xb : 0x3, present: true, dpl: 0,
    db: false, s: true, l: false, g: false, avl: false, unusable: false,
  };
}

/** A flat 4 GiB segment: 32-bit (or 64-bit when `long`), code or data. */
export function flatSegment(selector: number, code: boolean, long = false): Segment {
  return {
    selector, base: 0n, limit: 0xffffffff, type: code ? 0xb : 0x3, present: true, dpl: 0,
    db: !long, s: true, l: long && code, g: true, avl: false, unusable: false,
  };
}

/** The x86 reset state (Intel SDM Vol. 3, 10.1.1), as used for a BSP at power-on. */
export function resetCpuState(): CpuState {
  const gpr = Object.fromEntries(GPR_NAMES.map((n) => [n, 0n])) as Record<GprName, bigint>;
  const tr: Segment = { ...realModeSegment(0), type: 0xb, s: false };
  const ldt: Segment = { ...realModeSegment(0), type: 0x2, s: false };
  const cs = { ...realModeSegment(0xf000, true), base: 0xffff0000n };
  return {
    gpr, rip: 0xfff0n, rflags: 0x2n,
    seg: { cs, ds: realModeSegment(0), es: realModeSegment(0), fs: realModeSegment(0), gs: realModeSegment(0), ss: realModeSegment(0), tr, ldt },
    gdt: { base: 0n, limit: 0xffff }, idt: { base: 0n, limit: 0xffff },
    cr0: CR0_ET | (1n << 29n) | (1n << 30n), cr2: 0n, cr3: 0n, cr4: 0n, cr8: 0n, efer: 0n,
    apicBase: 0xfee00000n | (1n << 11n) | (1n << 8n),
  };
}
