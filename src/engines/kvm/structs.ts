/**
 * Encoding and decoding of KVM's register structures (kvm_regs, kvm_sregs,
 * kvm_msrs, kvm_cpuid2) and other ioctl arguments to and from plain bytes.
 * Cold path only: bigint is fine here.
 */

import {
  GPR_NAMES, SEGMENT_NAMES, type CpuState, type GprName, type Segment, type SegmentName,
} from '../cpu-state.js';
import {
  KVM_CPUID_ENTRY2_SIZE, KVM_IRQ_ROUTING_ENTRY_SIZE, KVM_MSR_ENTRY_SIZE, KVM_REGS_SIZE, KVM_SEGMENT_SIZE,
  KVM_SREGS_SIZE, KVM_USERSPACE_MEMORY_REGION_SIZE,
} from './abi.js';

/** Order of the general registers in struct kvm_regs (which is not the x86 encoding order). */
const KVM_REGS_ORDER: readonly GprName[] = [
  'rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rsp', 'rbp',
  'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15',
];
const REGS_RIP = 16 * 8;
const REGS_RFLAGS = 17 * 8;

/** kvm_sregs field offsets. */
const SREGS_GDT = 8 * KVM_SEGMENT_SIZE;
const SREGS_IDT = SREGS_GDT + 16;
const SREGS_CR0 = SREGS_IDT + 16;
const SREGS_CR2 = SREGS_CR0 + 8;
const SREGS_CR3 = SREGS_CR0 + 16;
const SREGS_CR4 = SREGS_CR0 + 24;
const SREGS_CR8 = SREGS_CR0 + 32;
const SREGS_EFER = SREGS_CR0 + 40;
const SREGS_APIC_BASE = SREGS_CR0 + 48;
export const SREGS_INTERRUPT_BITMAP = SREGS_CR0 + 56;

/** The general registers, rip and rflags of a CpuState. */
export type KvmRegs = Pick<CpuState, 'gpr' | 'rip' | 'rflags'>;
/** Everything of a CpuState that lives in kvm_sregs. */
export type KvmSregs = Omit<CpuState, 'gpr' | 'rip' | 'rflags'>;

export function encodeRegs(regs: KvmRegs): Uint8Array {
  const bytes = new Uint8Array(KVM_REGS_SIZE);
  const v = new DataView(bytes.buffer);
  KVM_REGS_ORDER.forEach((name, i) => v.setBigUint64(i * 8, BigInt.asUintN(64, regs.gpr[name]), true));
  v.setBigUint64(REGS_RIP, BigInt.asUintN(64, regs.rip), true);
  v.setBigUint64(REGS_RFLAGS, BigInt.asUintN(64, regs.rflags), true);
  return bytes;
}

export function decodeRegs(bytes: Uint8Array): KvmRegs {
  const v = view(bytes, KVM_REGS_SIZE);
  const gpr = Object.fromEntries(GPR_NAMES.map((n) => [n, 0n])) as Record<GprName, bigint>;
  KVM_REGS_ORDER.forEach((name, i) => (gpr[name] = v.getBigUint64(i * 8, true)));
  return { gpr, rip: v.getBigUint64(REGS_RIP, true), rflags: v.getBigUint64(REGS_RFLAGS, true) };
}

function view(bytes: Uint8Array, minSize: number): DataView {
  if (bytes.length < minSize) throw new RangeError(`KVM structure needs ${minSize} bytes, got ${bytes.length}`);
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function encodeSegment(v: DataView, off: number, s: Segment): void {
  v.setBigUint64(off, BigInt.asUintN(64, s.base), true);
  v.setUint32(off + 8, s.limit >>> 0, true);
  v.setUint16(off + 12, s.selector & 0xffff, true);
  v.setUint8(off + 14, s.type & 0xf);
  v.setUint8(off + 15, s.present ? 1 : 0);
  v.setUint8(off + 16, s.dpl & 3);
  v.setUint8(off + 17, s.db ? 1 : 0);
  v.setUint8(off + 18, s.s ? 1 : 0);
  v.setUint8(off + 19, s.l ? 1 : 0);
  v.setUint8(off + 20, s.g ? 1 : 0);
  v.setUint8(off + 21, s.avl ? 1 : 0);
  v.setUint8(off + 22, s.unusable ? 1 : 0);
  v.setUint8(off + 23, 0);
}

function decodeSegment(v: DataView, off: number): Segment {
  return {
    base: v.getBigUint64(off, true),
    limit: v.getUint32(off + 8, true),
    selector: v.getUint16(off + 12, true),
    type: v.getUint8(off + 14),
    present: v.getUint8(off + 15) !== 0,
    dpl: v.getUint8(off + 16),
    db: v.getUint8(off + 17) !== 0,
    s: v.getUint8(off + 18) !== 0,
    l: v.getUint8(off + 19) !== 0,
    g: v.getUint8(off + 20) !== 0,
    avl: v.getUint8(off + 21) !== 0,
    unusable: v.getUint8(off + 22) !== 0,
  };
}

/**
 * Encodes kvm_sregs. `base` (the current kvm_sregs, if known) supplies the
 * pending-interrupt bitmap, which CpuState does not carry.
 */
export function encodeSregs(s: KvmSregs, base?: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(KVM_SREGS_SIZE);
  if (base) bytes.set(base.subarray(SREGS_INTERRUPT_BITMAP, KVM_SREGS_SIZE), SREGS_INTERRUPT_BITMAP);
  const v = new DataView(bytes.buffer);
  SEGMENT_NAMES.forEach((name, i) => encodeSegment(v, i * KVM_SEGMENT_SIZE, s.seg[name]));
  v.setBigUint64(SREGS_GDT, BigInt.asUintN(64, s.gdt.base), true);
  v.setUint16(SREGS_GDT + 8, s.gdt.limit & 0xffff, true);
  v.setBigUint64(SREGS_IDT, BigInt.asUintN(64, s.idt.base), true);
  v.setUint16(SREGS_IDT + 8, s.idt.limit & 0xffff, true);
  v.setBigUint64(SREGS_CR0, BigInt.asUintN(64, s.cr0), true);
  v.setBigUint64(SREGS_CR2, BigInt.asUintN(64, s.cr2), true);
  v.setBigUint64(SREGS_CR3, BigInt.asUintN(64, s.cr3), true);
  v.setBigUint64(SREGS_CR4, BigInt.asUintN(64, s.cr4), true);
  v.setBigUint64(SREGS_CR8, BigInt.asUintN(64, s.cr8), true);
  v.setBigUint64(SREGS_EFER, BigInt.asUintN(64, s.efer), true);
  v.setBigUint64(SREGS_APIC_BASE, BigInt.asUintN(64, s.apicBase), true);
  return bytes;
}

export function decodeSregs(bytes: Uint8Array): KvmSregs {
  const v = view(bytes, KVM_SREGS_SIZE);
  const seg = {} as Record<SegmentName, Segment>;
  SEGMENT_NAMES.forEach((name, i) => (seg[name] = decodeSegment(v, i * KVM_SEGMENT_SIZE)));
  return {
    seg,
    gdt: { base: v.getBigUint64(SREGS_GDT, true), limit: v.getUint16(SREGS_GDT + 8, true) },
    idt: { base: v.getBigUint64(SREGS_IDT, true), limit: v.getUint16(SREGS_IDT + 8, true) },
    cr0: v.getBigUint64(SREGS_CR0, true),
    cr2: v.getBigUint64(SREGS_CR2, true),
    cr3: v.getBigUint64(SREGS_CR3, true),
    cr4: v.getBigUint64(SREGS_CR4, true),
    cr8: v.getBigUint64(SREGS_CR8, true),
    efer: v.getBigUint64(SREGS_EFER, true),
    apicBase: v.getBigUint64(SREGS_APIC_BASE, true),
  };
}

/** One MSR: index and 64-bit value. */
export interface MsrEntry {
  index: number;
  value: bigint;
}

/** Encodes struct kvm_msrs with `entries` (values ignored for KVM_GET_MSRS). */
export function encodeMsrs(entries: readonly MsrEntry[]): Uint8Array {
  const bytes = new Uint8Array(8 + entries.length * KVM_MSR_ENTRY_SIZE);
  const v = new DataView(bytes.buffer);
  v.setUint32(0, entries.length, true);
  entries.forEach((e, i) => {
    const off = 8 + i * KVM_MSR_ENTRY_SIZE;
    v.setUint32(off, e.index >>> 0, true);
    v.setBigUint64(off + 8, BigInt.asUintN(64, e.value), true);
  });
  return bytes;
}

/** Decodes the first `count` entries of struct kvm_msrs. */
export function decodeMsrs(bytes: Uint8Array, count: number): MsrEntry[] {
  const v = view(bytes, 8 + count * KVM_MSR_ENTRY_SIZE);
  const out: MsrEntry[] = [];
  for (let i = 0; i < count; i++) {
    const off = 8 + i * KVM_MSR_ENTRY_SIZE;
    out.push({ index: v.getUint32(off, true), value: v.getBigUint64(off + 8, true) });
  }
  return out;
}

/** One CPUID leaf as KVM describes it (struct kvm_cpuid_entry2). */
export interface CpuidEntry {
  function: number;
  index: number;
  flags: number;
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

/** An empty kvm_cpuid2 with room for `capacity` entries (for KVM_GET_SUPPORTED_CPUID). */
export function cpuidBuffer(capacity: number): Uint8Array {
  const bytes = new Uint8Array(8 + capacity * KVM_CPUID_ENTRY2_SIZE);
  new DataView(bytes.buffer).setUint32(0, capacity, true);
  return bytes;
}

export function encodeCpuid(entries: readonly CpuidEntry[]): Uint8Array {
  const bytes = cpuidBuffer(entries.length);
  const v = new DataView(bytes.buffer);
  entries.forEach((e, i) => {
    const off = 8 + i * KVM_CPUID_ENTRY2_SIZE;
    v.setUint32(off, e.function >>> 0, true);
    v.setUint32(off + 4, e.index >>> 0, true);
    v.setUint32(off + 8, e.flags >>> 0, true);
    v.setUint32(off + 12, e.eax >>> 0, true);
    v.setUint32(off + 16, e.ebx >>> 0, true);
    v.setUint32(off + 20, e.ecx >>> 0, true);
    v.setUint32(off + 24, e.edx >>> 0, true);
  });
  return bytes;
}

export function decodeCpuid(bytes: Uint8Array): CpuidEntry[] {
  const v = view(bytes, 8);
  const n = v.getUint32(0, true);
  view(bytes, 8 + n * KVM_CPUID_ENTRY2_SIZE);
  const out: CpuidEntry[] = [];
  for (let i = 0; i < n; i++) {
    const off = 8 + i * KVM_CPUID_ENTRY2_SIZE;
    out.push({
      function: v.getUint32(off, true), index: v.getUint32(off + 4, true), flags: v.getUint32(off + 8, true),
      eax: v.getUint32(off + 12, true), ebx: v.getUint32(off + 16, true),
      ecx: v.getUint32(off + 20, true), edx: v.getUint32(off + 24, true),
    });
  }
  return out;
}

/** struct kvm_userspace_memory_region. */
export function encodeMemoryRegion(slot: number, guestPhysAddr: number, size: number, hostAddress: bigint): Uint8Array {
  const bytes = new Uint8Array(KVM_USERSPACE_MEMORY_REGION_SIZE);
  const v = new DataView(bytes.buffer);
  v.setUint32(0, slot, true);
  v.setUint32(4, 0, true);
  v.setBigUint64(8, BigInt(guestPhysAddr), true);
  v.setBigUint64(16, BigInt(size), true);
  v.setBigUint64(24, hostAddress, true);
  return bytes;
}

/** One route of KVM_SET_GSI_ROUTING to an irqchip pin. */
export interface IrqchipRoute {
  gsi: number;
  irqchip: number;
  pin: number;
}

export function encodeIrqRouting(routes: readonly IrqchipRoute[]): Uint8Array {
  const bytes = new Uint8Array(8 + routes.length * KVM_IRQ_ROUTING_ENTRY_SIZE);
  const v = new DataView(bytes.buffer);
  v.setUint32(0, routes.length, true);
  routes.forEach((r, i) => {
    const off = 8 + i * KVM_IRQ_ROUTING_ENTRY_SIZE;
    v.setUint32(off, r.gsi, true);
    v.setUint32(off + 4, 1 /* KVM_IRQ_ROUTING_IRQCHIP */, true);
    v.setUint32(off + 16, r.irqchip, true);
    v.setUint32(off + 20, r.pin, true);
  });
  return bytes;
}

/** One MSI route of KVM_SET_GSI_ROUTING (type KVM_IRQ_ROUTING_MSI). */
export interface MsiRouteEntry {
  gsi: number;
  address: number;
  data: number;
}

/** KVM_SET_GSI_ROUTING's table with irqchip routes followed by MSI routes. */
export function encodeGsiRouting(irqchip: readonly IrqchipRoute[], msi: readonly MsiRouteEntry[]): Uint8Array {
  const bytes = new Uint8Array(8 + (irqchip.length + msi.length) * KVM_IRQ_ROUTING_ENTRY_SIZE);
  bytes.set(encodeIrqRouting(irqchip));
  const v = new DataView(bytes.buffer);
  v.setUint32(0, irqchip.length + msi.length, true);
  msi.forEach((r, i) => {
    const off = 8 + (irqchip.length + i) * KVM_IRQ_ROUTING_ENTRY_SIZE;
    v.setUint32(off, r.gsi, true);
    v.setUint32(off + 4, 2 /* KVM_IRQ_ROUTING_MSI */, true);
    v.setUint32(off + 16, r.address % 0x1_0000_0000, true);
    v.setUint32(off + 20, Math.floor(r.address / 0x1_0000_0000), true);
    v.setUint32(off + 24, r.data, true);
  });
  return bytes;
}

/** struct kvm_ioeventfd: an MMIO (or PIO) address whose writes signal `fd`. */
export function encodeIoeventfd(address: number, length: number, fd: number, deassign: boolean): Uint8Array {
  const bytes = new Uint8Array(64);
  const v = new DataView(bytes.buffer);
  v.setBigUint64(0, 0n, true); // datamatch (unused)
  v.setUint32(8, address % 0x1_0000_0000, true);
  v.setUint32(12, Math.floor(address / 0x1_0000_0000), true);
  v.setUint32(16, length, true);
  v.setInt32(20, fd, true);
  v.setUint32(24, deassign ? 1 << 2 /* KVM_IOEVENTFD_FLAG_DEASSIGN */ : 0, true);
  return bytes;
}

/** struct kvm_irqfd: writes to `fd` raise `gsi`. */
export function encodeIrqfd(fd: number, gsi: number, deassign: boolean): Uint8Array {
  const bytes = new Uint8Array(32);
  const v = new DataView(bytes.buffer);
  v.setUint32(0, fd, true);
  v.setUint32(4, gsi, true);
  v.setUint32(8, deassign ? 1 /* KVM_IRQFD_FLAG_DEASSIGN */ : 0, true);
  return bytes;
}
