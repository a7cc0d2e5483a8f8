/**
 * The soft engine's interrupt and timer hardware for one VM: a local APIC per
 * vCPU, the APIC bus, the IOAPIC, the 8259 pair, the 8254 PIT and port 0x61,
 * wired the way a PC wires them.
 *
 * Interrupt line numbering (what `interrupts.setIrq(line, level)` takes) is the
 * one of src/machine/layout.ts and of QEMU's PC: lines 0-15 are the ISA IRQs,
 * 16-23 the PCI GSIs. ISA IRQ n drives PIC input n and IOAPIC pin n, except
 * IRQ 0 (the PIT), which drives PIC input 0 and IOAPIC pin 2, as the MADT's
 * interrupt source override (IRQ 0 → GSI 2) tells the guest. Line 2 drives
 * IOAPIC pin 2 only: PIC input 2 is the slave cascade. Lines 16-23 reach the
 * IOAPIC only.
 */

import type { GuestMemory } from '../../../machine/memory.js';
import type { InterruptController } from '../../../machine/interrupts.js';
import { Ports, IOAPIC_PINS } from '../../../machine/layout.js';
import type { PlatformPortBlock, SoftClock, SoftPlatform } from '../platform-contract.js';
import { ApicBus } from './apic-bus.js';
import { Ioapic } from './ioapic.js';
import { LocalApic } from './local-apic.js';
import { Pic8259Pair } from './pic-8259.js';
import { Pit8254 } from './pit-8254.js';

export { ApicBus, DeliveryMode } from './apic-bus.js';
export { Ioapic, IOAPIC_VERSION } from './ioapic.js';
export { LocalApic, APIC_VERSION, MSR_APIC_BASE, MSR_TSC_DEADLINE } from './local-apic.js';
export { Pic8259Pair } from './pic-8259.js';
export { Pit8254, PIT_HZ } from './pit-8254.js';

/** Default APIC timer input clock: 1 GHz (KVM's default bus cycle of 1 ns). */
export const DEFAULT_APIC_TIMER_HZ = 1e9;

export interface SoftPlatformOptions {
  vcpuCount: number;
  clock: SoftClock;
  /** Unused; accepted so callers can pass the VM's memory uniformly. */
  memory?: GuestMemory;
  /**
   * APIC timer input frequency (before the divide configuration). Default:
   * min(1 GHz, clock.tscHz). If the CPU advertises CPUID 0x15 with a crystal
   * frequency, that frequency must equal this one (Linux then skips APIC timer
   * calibration and uses the crystal clock).
   */
  apicTimerHz?: number;
  /** The vCPUs' MAXPHYADDR (CPUID 0x80000008 EAX[7:0]); IA32_APIC_BASE bits above it are reserved. Default 40. */
  physAddrBits?: number;
  /** IOAPIC pins whose line is electrically active-low (see ioapic.ts). Default: none. */
  activeLowPins?: readonly number[];
  /** Called (synchronously, possibly from device code) when vCPU `index` gets a pending event. */
  onWake?: (index: number) => void;
}

export interface SoftPlatformModels {
  readonly lapicModels: readonly LocalApic[];
  readonly ioapicModel: Ioapic;
  readonly pic: Pic8259Pair;
  readonly pit: Pit8254;
  readonly apicBus: ApicBus;
  /** The APIC timer input frequency in use. */
  readonly apicTimerHz: number;
}

/** Raised for invalid platform options. */
export class SoftPlatformConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SoftPlatformConfigError';
  }
}

/** Maps an interrupt line to its IOAPIC pin (IRQ 0 → pin 2). */
export function ioapicPinForLine(line: number): number {
  return line === 0 ? 2 : line;
}

class PlatformInterrupts implements InterruptController {
  /** Asserted state of each interrupt line (0-23). */
  private readonly lines = new Uint8Array(IOAPIC_PINS);

  constructor(
    private readonly ioapic: Ioapic,
    private readonly pic: Pic8259Pair,
    private readonly bus: ApicBus,
  ) {}

  setIrq(line: number, level: boolean): void {
    if (!Number.isInteger(line) || line < 0 || line >= IOAPIC_PINS) return;
    this.lines[line] = level ? 1 : 0;
    if (line < 16 && line !== 2) this.pic.setIrq(line, level);
    if (line === 0 || line === 2) {
      // Pin 2 is shared by IRQ 0 (via the override) and line 2.
      this.ioapic.setInput(2, this.lines[0] !== 0 || this.lines[2] !== 0);
    } else {
      this.ioapic.setInput(line, level);
    }
  }

  signalMsi(address: number, data: number): void {
    this.bus.deliverMsi(address >>> 0, data >>> 0);
  }
}

/** Builds the interrupt and timer hardware of a soft-engine VM. */
export function createSoftPlatform(options: SoftPlatformOptions): SoftPlatform & SoftPlatformModels {
  const { vcpuCount, clock } = options;
  if (!Number.isInteger(vcpuCount) || vcpuCount < 1 || vcpuCount > 255) {
    throw new SoftPlatformConfigError(`vcpuCount must be an integer in 1-255, got ${vcpuCount}`);
  }
  if (!(clock.tscHz > 0)) throw new SoftPlatformConfigError('clock.tscHz must be positive');
  const apicTimerHz = options.apicTimerHz ?? Math.min(DEFAULT_APIC_TIMER_HZ, clock.tscHz);
  if (!(apicTimerHz > 0)) throw new SoftPlatformConfigError('apicTimerHz must be positive');
  const physAddrBits = options.physAddrBits ?? 40;
  if (!Number.isInteger(physAddrBits) || physAddrBits < 36 || physAddrBits > 52) {
    throw new SoftPlatformConfigError(`physAddrBits must be an integer in 36-52, got ${physAddrBits}`);
  }

  const apicBus = new ApicBus();
  const lapicModels: LocalApic[] = [];
  for (let index = 0; index < vcpuCount; index++) {
    lapicModels.push(
      new LocalApic({ index, bus: apicBus, clock, timerHz: apicTimerHz, physAddrBits, onWake: options.onWake }),
    );
  }
  apicBus.attachLapics(lapicModels);

  let ioapicModel: Ioapic;
  try {
    ioapicModel = new Ioapic(apicBus, options.activeLowPins ?? []);
  } catch (error) {
    throw new SoftPlatformConfigError(`activeLowPins: ${(error as Error).message}`);
  }
  apicBus.attachEoiListener(ioapicModel);

  const pic = new Pic8259Pair();
  const bsp = lapicModels[0];
  bsp.connectPic(pic);
  pic.onOutput = (level) => bsp.setPicOutput(level);

  const interrupts = new PlatformInterrupts(ioapicModel, pic, apicBus);
  const pit = new Pit8254(clock, () => {
    interrupts.setIrq(0, true);
    interrupts.setIrq(0, false);
  });

  const ports: PlatformPortBlock[] = [
    { base: Ports.PIC_MASTER, length: 2, name: 'pic-master', device: pic.masterPorts },
    { base: Ports.PIT, length: 4, name: 'pit', device: pit.ports },
    { base: Ports.SYSTEM_CONTROL_B, length: 1, name: 'system-control-b', device: pit.systemControlPort },
    { base: Ports.PIC_SLAVE, length: 2, name: 'pic-slave', device: pic.slavePorts },
    { base: Ports.ELCR, length: 2, name: 'elcr', device: pic.elcrPorts },
  ];

  return {
    interrupts,
    lapics: lapicModels,
    ioapic: ioapicModel,
    ports,
    poll(nowNs: number): void {
      for (let i = 0; i < lapicModels.length; i++) lapicModels[i].poll(nowNs);
      pit.poll(nowNs);
    },
    nextDeadlineNs(): number {
      let next = pit.nextDeadlineNs();
      for (let i = 0; i < lapicModels.length; i++) {
        const deadline = lapicModels[i].nextDeadlineNs();
        if (deadline < next) next = deadline;
      }
      return next;
    },
    lapicModels,
    ioapicModel,
    pic,
    pit,
    apicBus,
    apicTimerHz,
  };
}
