/**
 * The ACPI fixed-hardware register block at `Ports.ACPI_PM` (PIIX4-style
 * layout): PM1a event block (status at +0, write 1 to clear; enable at +2),
 * PM1a control at +4, the PM timer at +8 and GPE0 at +0x20 (status at +0x20,
 * enable at +0x24, four bytes each).
 *
 * ACPI is always enabled (SCI_EN reads 1; no SMI_CMD). Writing SLP_EN with
 * SLP_TYP = `ACPI_S5_SLP_TYP` powers the machine off; other sleep types are
 * ignored. The PM timer is a 24-bit counter at 3.579545 MHz derived from the
 * host monotonic clock; TMR_STS sets each time its top bit toggles. The SCI
 * line is asserted while an enabled PM1 or GPE0 event is pending.
 */

import type { AccessSize, BusDevice } from '../../machine/bus.js';
import type { InterruptLine } from '../../machine/interrupts.js';
import { systemClock, systemTimers, type HostClock, type HostTimer, type HostTimers } from '../host-clock.js';
import { POWEROFF_EVENT, type SystemEventSink } from '../system-event.js';

/** SLP_TYP value of the S5 (soft-off) state; the DSDT's \_S5 package must use it (QEMU's PIIX4 uses 0 too). */
export const ACPI_S5_SLP_TYP = 0;
/** Whether the PM timer is 32 bits wide (FADT TMR_VAL_EXT); it is 24 bits, like QEMU's. */
export const ACPI_PM_TIMER_32BIT = false;
/** The PM timer frequency. */
export const ACPI_PM_TIMER_HZ = 3579545;

/** Register offsets from the block base, and the lengths the FADT reports. */
export const AcpiPmLayout = {
  PM1A_EVT: 0x00,
  PM1_EVT_LEN: 4,
  PM1A_CNT: 0x04,
  PM1_CNT_LEN: 2,
  PM_TMR: 0x08,
  PM_TMR_LEN: 4,
  GPE0: 0x20,
  GPE0_BLK_LEN: 8,
} as const;

/** Bytes of port space the block occupies. */
export const ACPI_PM_BLOCK_LENGTH = 0x28;

/** PM1 status/enable bits. */
export const Pm1Event = {
  TIMER: 0x0001,
  BUS_MASTER: 0x0010,
  GLOBAL: 0x0020,
  POWER_BUTTON: 0x0100,
  SLEEP_BUTTON: 0x0200,
  RTC: 0x0400,
  WAKE: 0x8000,
} as const;

const PM1_STS_WRITABLE = 0x8731;
const PM1_EN_MASK = Pm1Event.TIMER | Pm1Event.GLOBAL | Pm1Event.POWER_BUTTON | Pm1Event.SLEEP_BUTTON | Pm1Event.RTC;
const CNT_SCI_EN = 0x0001;
const CNT_SLP_EN = 0x2000;
const CNT_SLP_TYP_SHIFT = 10;

const TIMER_BITS = ACPI_PM_TIMER_32BIT ? 32 : 24;
const TIMER_MODULUS = 2 ** TIMER_BITS;
const TIMER_HALF = TIMER_MODULUS / 2;
const TICKS_PER_MS = ACPI_PM_TIMER_HZ / 1000;
const SIZE_MASK = [0, 0xff, 0xffff, 0, 0xffffffff] as const;

export interface AcpiPmOptions {
  /** The SCI (`Irqs.ACPI_SCI`). */
  readonly sci: InterruptLine;
  /** Receives `poweroff` on an S5 request. */
  readonly onSystemEvent: SystemEventSink;
  readonly clock?: HostClock;
  readonly timers?: HostTimers;
}

export class AcpiPm implements BusDevice {
  private readonly sci: InterruptLine;
  private readonly onSystemEvent: SystemEventSink;
  private readonly clock: HostClock;
  private readonly timers: HostTimers;
  private readonly startMs: number;
  private pm1Status = 0;
  private pm1Enable = 0;
  private pm1Control = CNT_SCI_EN;
  private gpeStatus = 0;
  private gpeEnable = 0;
  /** Timer half-period count at which TMR_STS was last cleared. */
  private timerStatusEpoch = 0;
  private timer: HostTimer | undefined;
  private readonly onTimer = (): void => {
    this.timer = undefined;
    this.update();
  };

  constructor(options: AcpiPmOptions) {
    this.sci = options.sci;
    this.onSystemEvent = options.onSystemEvent;
    this.clock = options.clock ?? systemClock;
    this.timers = options.timers ?? systemTimers;
    this.startMs = this.clock.monotonicMs();
  }

  /** Presses the power button: sets PWRBTN_STS (an SCI if the guest enabled it; Linux then shuts down). */
  pressPowerButton(): void {
    this.pm1Status |= Pm1Event.POWER_BUTTON;
    this.update();
  }

  /** Sets GPE0 status bit `bit` (0-31), e.g. for hotplug notifications. */
  raiseGpe(bit: number): void {
    this.gpeStatus = (this.gpeStatus | (1 << (bit & 31))) >>> 0;
    this.update();
  }

  /** The current PM timer value. */
  timerValue(): number {
    return this.ticks() % TIMER_MODULUS;
  }

  /** Cancels the host timer. */
  dispose(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  read(offset: number, size: AccessSize): number {
    let register: number;
    let base: number;
    if (offset < 4) {
      register = (this.currentPm1Status() | (this.pm1Enable << 16)) >>> 0;
      base = 0;
    } else if (offset < 6) {
      register = this.pm1Control;
      base = 4;
    } else if (offset >= 8 && offset < 12) {
      register = this.timerValue();
      base = 8;
    } else if (offset >= 0x20 && offset < 0x24) {
      register = this.gpeStatus;
      base = 0x20;
    } else if (offset >= 0x24 && offset < 0x28) {
      register = this.gpeEnable;
      base = 0x24;
    } else {
      return SIZE_MASK[size];
    }
    return ((register >>> (8 * (offset - base))) & SIZE_MASK[size]) >>> 0;
  }

  write(offset: number, size: AccessSize, value: number): void {
    if (offset < 4) {
      const shift = 8 * offset;
      const mask = (SIZE_MASK[size] << shift) >>> 0;
      const bits = (value << shift) & mask;
      const clear = bits & 0xffff & PM1_STS_WRITABLE;
      if (clear & Pm1Event.TIMER) this.timerStatusEpoch = this.timerEpoch();
      this.pm1Status &= ~clear;
      const enableMask = mask >>> 16;
      this.pm1Enable = (this.pm1Enable & ~enableMask) | ((bits >>> 16) & enableMask & PM1_EN_MASK);
      this.update();
    } else if (offset < 6) {
      const shift = 8 * (offset - 4);
      const mask = (SIZE_MASK[size] << shift) & 0xffff;
      const merged = (this.pm1Control & ~mask) | ((value << shift) & mask);
      this.writeControl(merged);
    } else if (offset >= 0x20 && offset < 0x24) {
      const bits = ((value & SIZE_MASK[size]) << (8 * (offset - 0x20))) >>> 0;
      this.gpeStatus = (this.gpeStatus & ~bits) >>> 0;
      this.update();
    } else if (offset >= 0x24 && offset < 0x28) {
      const shift = 8 * (offset - 0x24);
      const mask = (SIZE_MASK[size] << shift) >>> 0;
      this.gpeEnable = ((this.gpeEnable & ~mask) | ((value << shift) & mask)) >>> 0;
      this.update();
    }
    // The PM timer and unused offsets are read-only.
  }

  private writeControl(value: number): void {
    // SCI_EN stays set (no legacy mode); SLP_EN is write-only.
    this.pm1Control = (value & ~CNT_SLP_EN) | CNT_SCI_EN;
    if (value & CNT_SLP_EN && ((value >>> CNT_SLP_TYP_SHIFT) & 7) === ACPI_S5_SLP_TYP) this.onSystemEvent(POWEROFF_EVENT);
  }

  private ticks(): number {
    return Math.floor((this.clock.monotonicMs() - this.startMs) * TICKS_PER_MS);
  }

  /** Number of times the timer's top bit has toggled since start. */
  private timerEpoch(): number {
    return Math.floor(this.ticks() / TIMER_HALF);
  }

  private currentPm1Status(): number {
    return this.timerEpoch() !== this.timerStatusEpoch ? this.pm1Status | Pm1Event.TIMER : this.pm1Status;
  }

  private update(): void {
    const pending = (this.currentPm1Status() & this.pm1Enable) !== 0 || (this.gpeStatus & this.gpeEnable) !== 0;
    this.sci.set(pending);
    this.timer?.cancel();
    this.timer = undefined;
    if (!pending && this.pm1Enable & Pm1Event.TIMER) {
      // Wake at the next toggle of the timer's top bit.
      const nextTicks = (this.timerEpoch() + 1) * TIMER_HALF;
      const delay = nextTicks / TICKS_PER_MS - (this.clock.monotonicMs() - this.startMs);
      this.timer = this.timers.start(Math.max(0, Math.ceil(delay)), this.onTimer);
    }
  }
}
