/**
 * The I/O APIC of the soft platform (82093AA, version 0x20): IOREGSEL at 0x00,
 * IOWIN at 0x10, the EOI register at 0x40, and 24 redirection entries.
 *
 * Edge-triggered pins deliver on a rising edge of the (polarity-adjusted) input
 * while unmasked; an edge that arrives while masked is lost, as on the chip.
 * Level-triggered pins deliver while the input is active and Remote IRR is
 * clear; delivery sets Remote IRR, an EOI (broadcast by a local APIC or written
 * to the EOI register) clears it and the pin is re-delivered if still active.
 *
 * Polarity: `setInput(pin, asserted)` takes the device's view (true = the
 * device requests service). The electrical level on the wire is `asserted`
 * for active-high lines and `!asserted` for lines listed as active-low at
 * construction; the redirection entry's polarity bit (13) then says which
 * electrical level the IOAPIC treats as active. A guest that programs the
 * polarity the firmware tables declare therefore sees `asserted` unchanged.
 */

import type { BusDevice } from '../../../machine/bus.js';
import type { ApicBus, EoiListener } from './apic-bus.js';

export const IOAPIC_PIN_COUNT = 24;
/** Version register: version 0x20, maximum redirection entry 23. */
export const IOAPIC_VERSION = 0x00170020;

const Register = { ID: 0x00, VERSION: 0x01, ARBITRATION: 0x02, REDIRECTION_TABLE: 0x10 } as const;

const ENTRY_MASKED = 0x10000;
const ENTRY_LEVEL = 0x8000;
const ENTRY_REMOTE_IRR = 0x4000;
const ENTRY_ACTIVE_LOW = 0x2000;
const ENTRY_LOGICAL = 0x800;
/** Writable low-word bits: vector, delivery mode, destination mode, polarity, trigger mode, mask. */
const ENTRY_WRITABLE_LOW = 0x1afff;

export class Ioapic implements BusDevice, EoiListener {
  private registerSelect = 0;
  private id = 0;
  private readonly entryLow = new Uint32Array(IOAPIC_PIN_COUNT).fill(ENTRY_MASKED);
  private readonly entryHigh = new Uint32Array(IOAPIC_PIN_COUNT);
  /** The device-side asserted state of each pin. */
  private readonly asserted = new Uint8Array(IOAPIC_PIN_COUNT);
  /** 1 for lines that are electrically active-low. */
  private readonly wireActiveLow = new Uint8Array(IOAPIC_PIN_COUNT);

  constructor(
    private readonly bus: ApicBus,
    activeLowPins: readonly number[] = [],
  ) {
    for (const pin of activeLowPins) {
      if (!Number.isInteger(pin) || pin < 0 || pin >= IOAPIC_PIN_COUNT) throw new RangeError(`bad IOAPIC pin ${pin}`);
      this.wireActiveLow[pin] = 1;
    }
  }

  /** Drives pin `pin` (device view: true = asserted). */
  setInput(pin: number, asserted: boolean): void {
    if (pin < 0 || pin >= IOAPIC_PIN_COUNT) return;
    const wasActive = this.isActive(pin);
    this.asserted[pin] = asserted ? 1 : 0;
    const active = this.isActive(pin);
    if (!active) return;
    const low = this.entryLow[pin];
    if ((low & ENTRY_LEVEL) !== 0) this.service(pin);
    else if (!wasActive) this.service(pin);
  }

  /** The EOI broadcast from a local APIC (and the EOI register): clears Remote IRR of level pins with `vector`. */
  eoiBroadcast(vector: number): void {
    for (let pin = 0; pin < IOAPIC_PIN_COUNT; pin++) {
      const low = this.entryLow[pin];
      if ((low & 0xff) !== vector || (low & ENTRY_REMOTE_IRR) === 0) continue;
      this.entryLow[pin] = low & ~ENTRY_REMOTE_IRR;
      if ((low & ENTRY_LEVEL) !== 0 && this.isActive(pin)) this.service(pin);
    }
  }

  read(offset: number, size: 1 | 2 | 4): number {
    let value: number;
    let base: number;
    if (offset >= 0x10 && offset < 0x14) {
      value = this.readIndirect(this.registerSelect);
      base = 0x10;
    } else if (offset < 4) {
      value = this.registerSelect;
      base = 0;
    } else {
      return 0;
    }
    const shift = (offset - base) * 8;
    if (size === 4) return shift === 0 ? value : 0;
    return (value >>> shift) & (size === 1 ? 0xff : 0xffff);
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    if (offset === 0x00) {
      this.registerSelect = value & 0xff;
    } else if (offset === 0x10 && size === 4) {
      this.writeIndirect(this.registerSelect, value >>> 0);
    } else if (offset === 0x40) {
      this.eoiBroadcast(value & 0xff);
    }
  }

  /** A redirection entry's low word (for tests and diagnostics). */
  redirectionLow(pin: number): number {
    return this.entryLow[pin];
  }

  private readIndirect(register: number): number {
    switch (register) {
      case Register.ID:
      case Register.ARBITRATION:
        return (this.id << 24) >>> 0;
      case Register.VERSION:
        return IOAPIC_VERSION;
      default: {
        const index = register - Register.REDIRECTION_TABLE;
        if (index < 0 || index >= IOAPIC_PIN_COUNT * 2) return 0xffffffff;
        const pin = index >>> 1;
        return (index & 1) === 0 ? this.entryLow[pin] : this.entryHigh[pin];
      }
    }
  }

  private writeIndirect(register: number, value: number): void {
    if (register === Register.ID) {
      this.id = (value >>> 24) & 0xf;
      return;
    }
    const index = register - Register.REDIRECTION_TABLE;
    if (index < 0 || index >= IOAPIC_PIN_COUNT * 2) return;
    const pin = index >>> 1;
    if ((index & 1) === 1) {
      this.entryHigh[pin] = (value & 0xff000000) >>> 0;
      return;
    }
    let low = ((this.entryLow[pin] & ENTRY_REMOTE_IRR) | (value & ENTRY_WRITABLE_LOW)) >>> 0;
    if ((low & ENTRY_LEVEL) === 0) low &= ~ENTRY_REMOTE_IRR; // Remote IRR is meaningless for edge pins
    this.entryLow[pin] = low;
    // Unmasking (or reprogramming) a level pin whose input is active delivers it.
    if ((low & (ENTRY_LEVEL | ENTRY_MASKED)) === ENTRY_LEVEL && this.isActive(pin)) this.service(pin);
  }

  private isActive(pin: number): boolean {
    const wireHigh = (this.asserted[pin] ^ this.wireActiveLow[pin]) !== 0;
    const activeLow = (this.entryLow[pin] & ENTRY_ACTIVE_LOW) !== 0;
    return wireHigh !== activeLow;
  }

  private service(pin: number): void {
    const low = this.entryLow[pin];
    if ((low & ENTRY_MASKED) !== 0) return;
    const level = (low & ENTRY_LEVEL) !== 0;
    if (level && (low & ENTRY_REMOTE_IRR) !== 0) return;
    const delivered = this.bus.deliverMessage(
      this.entryHigh[pin] >>> 24,
      (low & ENTRY_LOGICAL) !== 0,
      (low >>> 8) & 7,
      low & 0xff,
      level,
    );
    if (level && delivered) this.entryLow[pin] |= ENTRY_REMOTE_IRR;
  }
}
