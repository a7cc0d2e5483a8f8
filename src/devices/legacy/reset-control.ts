/**
 * Reset registers: the PIIX/ICH reset control register at port 0xcf9 (also
 * the FADT reset register) and System Control Port A at 0x92 ("fast reset").
 *
 * 0xcf9 sits inside the PCI configuration-address dword (0xcf8-0xcfb). The
 * PCI host owns 32-bit accesses at 0xcf8; byte accesses at 0xcf9 belong here,
 * so either attach this device at 0xcf9 (length 1) or have the PCI host
 * forward them through `read`/`write` at offset 0.
 */

import type { AccessSize, BusDevice } from '../../machine/bus.js';
import { RESET_EVENT, type SystemEventSink } from '../system-event.js';

/** Port of System Control Port A (not in `Ports`: attach it if the platform wants it). */
export const SYSTEM_CONTROL_PORT_A = 0x92;

const RCR_SYS_RESET = 0x02; // full (hard) reset when RST_CPU fires
const RCR_RST_CPU = 0x04;

/** The reset control register (0xcf9): a write with bit 2 set resets the machine. */
export class ResetControl implements BusDevice {
  private value = 0;

  constructor(private readonly onSystemEvent: SystemEventSink) {}

  read(_offset: number, _size: AccessSize): number {
    return this.value;
  }

  write(_offset: number, _size: AccessSize, value: number): void {
    // Only the reset type is remembered; RST_CPU is self-clearing.
    this.value = value & RCR_SYS_RESET;
    if (value & RCR_RST_CPU) this.onSystemEvent(RESET_EVENT);
  }
}

const PORT_A_FAST_RESET = 0x01;
const PORT_A_A20 = 0x02;

/** System Control Port A (0x92): bit 1 is the A20 gate, a rising edge on bit 0 resets. */
export class SystemControlPortA implements BusDevice {
  private value = PORT_A_A20;

  constructor(private readonly onSystemEvent: SystemEventSink) {}

  read(_offset: number, _size: AccessSize): number {
    return this.value;
  }

  write(_offset: number, _size: AccessSize, value: number): void {
    const old = this.value;
    this.value = value & (PORT_A_A20 | PORT_A_FAST_RESET);
    if (value & PORT_A_FAST_RESET && !(old & PORT_A_FAST_RESET)) this.onSystemEvent(RESET_EVENT);
  }

  /** Clears the fast-reset bit, as a hard reset does. */
  reset(): void {
    this.value = PORT_A_A20;
  }
}
