/**
 * The contract between the soft engine's CPU core and its interrupt and timer
 * models (local APIC, IOAPIC, PIC, PIT). Under `kvm` the kernel provides these;
 * under `soft` they are TypeScript objects behind these interfaces, so the CPU
 * core and the platform models can evolve independently.
 */

import type { BusDevice } from '../../machine/bus.js';
import type { InterruptController } from '../../machine/interrupts.js';

/** The time base shared by the CPU (TSC) and every timer model. */
export interface SoftClock {
  /** Monotonic guest time in nanoseconds (a float; never goes backwards). */
  nowNs(): number;
  /** TSC ticks per second advertised to the guest (CPUID 0x15/0x16). */
  readonly tscHz: number;
}

/** What one vCPU asks of its local APIC. All methods are hot: no allocation. */
export interface LocalInterruptSource {
  /** The vector of the highest-priority deliverable maskable interrupt (PPR honoured), or -1. */
  pendingVector(): number;
  /** Accepts the pending vector (IRR → ISR, or an ExtINT acknowledge to the PIC); returns it. */
  acknowledge(): number;
  /** Consumes a pending NMI. */
  takeNmi(): boolean;
  /** Consumes a pending INIT. */
  takeInit(): boolean;
  /** Consumes a pending start-up IPI; returns its vector or -1. */
  takeSipi(): number;
  /** The xAPIC register page (offset inside the 4 KiB page at the APIC base). */
  mmioRead(offset: number, size: 1 | 2 | 4): number;
  mmioWrite(offset: number, size: 1 | 2 | 4, value: number): void;
  /**
   * MSRs owned by the APIC: IA32_APIC_BASE (0x1b), x2APIC 0x800-0x8ff, IA32_TSC_DEADLINE (0x6e0).
   * `out[0]`/`out[1]` receive the low/high halves. Returns false when the access must raise #GP.
   */
  readMsr(msr: number, out: Uint32Array): boolean;
  writeMsr(msr: number, lo: number, hi: number): boolean;
  /** CR8 reads TPR[7:4] (SDM 10.8.6.1). */
  readCr8(): number;
  /** CR8 writes set TPR[7:4] and clear TPR[3:0]. */
  writeCr8(value: number): void;
  /** The current APIC base address (physical), to route MMIO accesses to this APIC. */
  baseAddress(): number;
  /** True while the APIC is hardware-enabled in xAPIC mode (MMIO page live). */
  mmioEnabled(): boolean;
}

/** A port-mapped register block of the soft platform (PIC, PIT, ELCR, port 0x61). */
export interface PlatformPortBlock {
  readonly base: number;
  readonly length: number;
  readonly name: string;
  readonly device: BusDevice;
}

/** The soft engine's interrupt and timer hardware for one VM. */
export interface SoftPlatform {
  /** Where device interrupt lines and MSIs go (GSI → IOAPIC pin and, below 16, the PIC). */
  readonly interrupts: InterruptController;
  /** One local APIC per vCPU, indexed by vCPU (APIC ID = index). */
  readonly lapics: readonly LocalInterruptSource[];
  /** The IOAPIC's MMIO page (at IOAPIC_BASE). */
  readonly ioapic: BusDevice;
  /** Port blocks to attach to the port bus. */
  readonly ports: readonly PlatformPortBlock[];
  /** Fires every timer that is due at `nowNs`. */
  poll(nowNs: number): void;
  /** The next time (ns) a timer needs `poll`, or Infinity. */
  nextDeadlineNs(): number;
}
