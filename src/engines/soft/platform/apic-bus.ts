/**
 * The APIC bus of the soft platform: carries inter-processor interrupts,
 * IOAPIC redirection messages and MSIs to the local APICs by destination, and
 * carries EOI broadcasts from the local APICs back to the IOAPIC.
 *
 * Lowest-priority delivery is simplified: among the matching local APICs the
 * one with the lowest task priority (TPR) wins, ties broken round robin.
 */

import type { LocalApic } from './local-apic.js';

/** Delivery modes (ICR, LVT, IOAPIC redirection entry and MSI data bits 10:8). */
export const DeliveryMode = {
  FIXED: 0,
  LOWEST_PRIORITY: 1,
  SMI: 2,
  NMI: 4,
  INIT: 5,
  STARTUP: 6,
  EXTINT: 7,
} as const;

/** ICR destination shorthands (bits 19:18). */
export const Shorthand = {
  NONE: 0,
  SELF: 1,
  ALL_INCLUDING_SELF: 2,
  ALL_EXCLUDING_SELF: 3,
} as const;

/** Where EOI broadcasts for level-triggered vectors go (the IOAPIC). */
export interface EoiListener {
  eoiBroadcast(vector: number): void;
}

/** MSI address window: 0xFEEx_xxxx. */
const MSI_ADDRESS_MASK = 0xfff00000;
const MSI_ADDRESS_BASE = 0xfee00000;

export class ApicBus {
  private lapics: readonly LocalApic[] = [];
  private eoiListener: EoiListener | undefined;
  /** Rotates the starting point of lowest-priority arbitration. */
  private lowestPriorityCursor = 0;

  attachLapics(lapics: readonly LocalApic[]): void {
    this.lapics = lapics;
  }

  attachEoiListener(listener: EoiListener): void {
    this.eoiListener = listener;
  }

  /** Sent by a local APIC after an EOI for a vector whose TMR bit was set. */
  broadcastEoi(vector: number): void {
    this.eoiListener?.eoiBroadcast(vector);
  }

  /**
   * An IPI written to `source`'s ICR. `destination` is 8 bits in xAPIC format
   * and 32 bits in x2APIC format (`x2apicFormat`).
   */
  sendIpi(
    source: LocalApic,
    shorthand: number,
    destination: number,
    logical: boolean,
    x2apicFormat: boolean,
    deliveryMode: number,
    vector: number,
    levelTriggered: boolean,
    assert: boolean,
  ): void {
    const lapics = this.lapics;
    if (shorthand === Shorthand.SELF) {
      source.accept(deliveryMode, vector, levelTriggered, assert);
      return;
    }
    if (deliveryMode === DeliveryMode.LOWEST_PRIORITY) {
      const target = this.lowestPriorityTarget(source, shorthand, destination, logical, x2apicFormat);
      target?.accept(DeliveryMode.FIXED, vector, levelTriggered, assert);
      return;
    }
    for (let i = 0; i < lapics.length; i++) {
      const lapic = lapics[i];
      if (this.ipiMatches(lapic, source, shorthand, destination, logical, x2apicFormat)) {
        lapic.accept(deliveryMode, vector, levelTriggered, assert);
      }
    }
  }

  /**
   * A message from the IOAPIC (8-bit destination). Returns true when at least
   * one local APIC accepted it (the IOAPIC sets Remote IRR only then).
   */
  deliverMessage(destination: number, logical: boolean, deliveryMode: number, vector: number, levelTriggered: boolean): boolean {
    const lapics = this.lapics;
    if (deliveryMode === DeliveryMode.LOWEST_PRIORITY) {
      const target = this.lowestPriorityTarget(undefined, Shorthand.NONE, destination, logical, false);
      return target !== undefined && target.accept(DeliveryMode.FIXED, vector, levelTriggered, true);
    }
    let accepted = false;
    for (let i = 0; i < lapics.length; i++) {
      const lapic = lapics[i];
      if (lapic.matchesDestination(destination, logical, false)) {
        if (lapic.accept(deliveryMode, vector, levelTriggered, true)) accepted = true;
      }
    }
    return accepted;
  }

  /**
   * A message-signalled interrupt: address 0xFEEx_xxxx (destination ID in
   * bits 19:12, destination mode in bit 2), data (vector 7:0, delivery mode
   * 10:8, level 14, trigger mode 15). Writes outside the window are dropped.
   */
  deliverMsi(address: number, data: number): boolean {
    if (((address & MSI_ADDRESS_MASK) >>> 0) !== MSI_ADDRESS_BASE) return false;
    const destination = (address >>> 12) & 0xff;
    const logical = (address & 0x4) !== 0;
    const vector = data & 0xff;
    const deliveryMode = (data >>> 8) & 7;
    const levelTriggered = (data & 0x8000) !== 0;
    return this.deliverMessage(destination, logical, deliveryMode, vector, levelTriggered);
  }

  private ipiMatches(
    lapic: LocalApic,
    source: LocalApic,
    shorthand: number,
    destination: number,
    logical: boolean,
    x2apicFormat: boolean,
  ): boolean {
    switch (shorthand) {
      case Shorthand.ALL_INCLUDING_SELF:
        return lapic.hardwareEnabled();
      case Shorthand.ALL_EXCLUDING_SELF:
        return lapic !== source && lapic.hardwareEnabled();
      default:
        return lapic.matchesDestination(destination, logical, x2apicFormat);
    }
  }

  private lowestPriorityTarget(
    source: LocalApic | undefined,
    shorthand: number,
    destination: number,
    logical: boolean,
    x2apicFormat: boolean,
  ): LocalApic | undefined {
    const lapics = this.lapics;
    const n = lapics.length;
    let best: LocalApic | undefined;
    let bestPriority = 256;
    let bestIndex = 0;
    for (let k = 0; k < n; k++) {
      const i = (this.lowestPriorityCursor + k) % n;
      const lapic = lapics[i];
      const matches =
        source === undefined
          ? lapic.matchesDestination(destination, logical, false)
          : this.ipiMatches(lapic, source, shorthand, destination, logical, x2apicFormat);
      if (!matches || !lapic.softwareEnabled()) continue;
      const priority = lapic.taskPriority();
      if (priority < bestPriority) {
        best = lapic;
        bestPriority = priority;
        bestIndex = i;
      }
    }
    if (best !== undefined) this.lowestPriorityCursor = (bestIndex + 1) % n;
    return best;
  }
}
