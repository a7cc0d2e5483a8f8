/**
 * The MC146818-compatible CMOS real-time clock and its 128 bytes of CMOS RAM
 * (index port 0x70 with the NMI-disable bit 7, data port 0x71), driving IRQ8.
 *
 * Time is host wall-clock time (UTC) plus an offset: a guest that sets the
 * clock changes only the offset, never the host clock. Time registers are
 * computed on read in the format selected by register B (BCD or binary,
 * 12- or 24-hour). While register B.SET is set or the divider is held in
 * reset, the time registers freeze and take writes; releasing them restarts
 * the clock from the written values.
 *
 * Register A reports UIP during the last 244 µs before each second boundary,
 * so the "wait for UIP to fall" loops of Linux and firmware terminate. The
 * periodic (rate from register A), alarm and update-ended flags of register C
 * are computed from elapsed time; while one of them is enabled in register B
 * and IRQ8 is not already asserted, an unref'd host timer wakes at the next
 * event to raise the line. Reading register C returns and clears the flags
 * and lowers the line.
 *
 * The memory-size bytes that firmware and some test kernels read are filled
 * from the RAM size (0x15-0x18, 0x30-0x31, 0x34-0x35, 0x5b-0x5d) along with
 * the CPU count at 0x5f and the standard checksum at 0x2e-0x2f.
 */

import type { AccessSize, BusDevice } from '../../machine/bus.js';
import type { InterruptLine } from '../../machine/interrupts.js';
import { KiB, MiB, MMIO_HOLE_START } from '../../machine/layout.js';
import { systemClock, systemTimers, type HostClock, type HostTimer, type HostTimers } from '../host-clock.js';

/** Number of ports decoded: index (0x70) and data (0x71). */
export const CMOS_RTC_PORT_COUNT = 2;

/** CMOS indices of the RTC registers and fields. */
export const RtcIndex = {
  SECONDS: 0x00,
  SECONDS_ALARM: 0x01,
  MINUTES: 0x02,
  MINUTES_ALARM: 0x03,
  HOURS: 0x04,
  HOURS_ALARM: 0x05,
  DAY_OF_WEEK: 0x06,
  DAY_OF_MONTH: 0x07,
  MONTH: 0x08,
  YEAR: 0x09,
  REG_A: 0x0a,
  REG_B: 0x0b,
  REG_C: 0x0c,
  REG_D: 0x0d,
  SHUTDOWN_STATUS: 0x0f,
  /** The century byte; the FADT's CENTURY field should name it. */
  CENTURY: 0x32,
} as const;

/** The CMOS index of the century register (for the FADT). */
export const RTC_CENTURY_INDEX = RtcIndex.CENTURY;

const A_UIP = 0x80;
const B_SET = 0x80;
const B_PIE = 0x40;
const B_AIE = 0x20;
const B_UIE = 0x10;
const B_BINARY = 0x04;
const B_24H = 0x02;
const C_IRQF = 0x80;
const C_PF = 0x40;
const C_AF = 0x20;
const C_UF = 0x10;
const D_VRT = 0x80;

/** How long UIP is set before each update (ms). */
const UIP_WINDOW_MS = 0.244;
/** After the divider leaves reset, the first update comes half a second later. */
const DIVIDER_RELEASE_PHASE_MS = 500;
/** Alarm matching looks back at most this many seconds when catching up. */
const MAX_ALARM_CATCH_UP_S = 86400;

export interface CmosRtcOptions {
  /** IRQ8. */
  readonly irq: InterruptLine;
  /** Guest RAM size in bytes (for the memory-size CMOS bytes). */
  readonly ramSize: number;
  /** Number of CPUs; stored as count-1 at 0x5f like QEMU. */
  readonly cpuCount?: number;
  readonly clock?: HostClock;
  readonly timers?: HostTimers;
}

export class CmosRtc implements BusDevice {
  private readonly irq: InterruptLine;
  private readonly clock: HostClock;
  private readonly timers: HostTimers;
  private readonly cmos = new Uint8Array(128);
  private index = 0;
  private nmiDisabled = false;
  /** Guest time minus host wall-clock time, in ms. */
  private offsetMs = 0;
  private running = true;
  /** Where in the second the clock restarts: half a second after the divider leaves reset. */
  private startPhaseMs = 0;
  /** Pending PF/AF/UF flags. */
  private flags = 0;
  /** Guest time up to which the flags have been evaluated. */
  private evaluatedUntil: number;
  private timer: HostTimer | undefined;
  private readonly onTimer = (): void => {
    this.timer = undefined;
    this.evaluate();
    this.rearm();
  };

  // Scratch broken-down time (no allocation on register reads).
  private year = 1970;
  private month = 1;
  private day = 1;

  constructor(options: CmosRtcOptions) {
    this.irq = options.irq;
    this.clock = options.clock ?? systemClock;
    this.timers = options.timers ?? systemTimers;
    this.cmos[RtcIndex.REG_A] = 0x26; // 32.768 kHz divider running, 1024 Hz periodic rate
    this.cmos[RtcIndex.REG_B] = B_24H;
    this.fillMemorySize(options.ramSize, options.cpuCount);
    this.evaluatedUntil = this.guestNowMs();
  }

  /** Whether the guest set the NMI-disable bit (bit 7 of the index port). */
  get nmiMasked(): boolean {
    return this.nmiDisabled;
  }

  /** Current guest RTC time in ms since the Unix epoch. */
  guestTimeMs(): number {
    return this.guestNowMs();
  }

  /** Cancels the host timer (call when the machine is torn down). */
  dispose(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  read(offset: number, _size: AccessSize): number {
    if (offset === 0) return 0xff; // the index register is write-only
    return this.readRegister(this.index);
  }

  write(offset: number, _size: AccessSize, value: number): void {
    if (offset === 0) {
      this.index = value & 0x7f;
      this.nmiDisabled = (value & 0x80) !== 0;
      return;
    }
    this.writeRegister(this.index, value & 0xff);
  }

  private guestNowMs(): number {
    return this.clock.realtimeMs() + this.offsetMs;
  }

  private readRegister(index: number): number {
    switch (index) {
      case RtcIndex.SECONDS:
      case RtcIndex.MINUTES:
      case RtcIndex.HOURS:
      case RtcIndex.DAY_OF_WEEK:
      case RtcIndex.DAY_OF_MONTH:
      case RtcIndex.MONTH:
      case RtcIndex.YEAR:
      case RtcIndex.CENTURY:
        return this.running ? this.encodeField(index, this.guestNowMs()) : this.cmos[index];
      case RtcIndex.REG_A: {
        const a = this.cmos[RtcIndex.REG_A];
        if (!this.running) return a;
        const msIntoSecond = this.guestNowMs() % 1000;
        return msIntoSecond >= 1000 - UIP_WINDOW_MS ? a | A_UIP : a;
      }
      case RtcIndex.REG_C: {
        this.evaluate();
        const pending = this.flags;
        const value = pending | (pending & this.cmos[RtcIndex.REG_B] & (C_PF | C_AF | C_UF) ? C_IRQF : 0);
        this.flags = 0;
        this.irq.lower();
        this.rearm();
        return value;
      }
      case RtcIndex.REG_D:
        return D_VRT;
      default:
        return this.cmos[index];
    }
  }

  private writeRegister(index: number, value: number): void {
    switch (index) {
      case RtcIndex.SECONDS:
      case RtcIndex.MINUTES:
      case RtcIndex.HOURS:
      case RtcIndex.DAY_OF_WEEK:
      case RtcIndex.DAY_OF_MONTH:
      case RtcIndex.MONTH:
      case RtcIndex.YEAR:
      case RtcIndex.CENTURY:
        if (this.running) {
          // Setting one field of a running clock: keep the others and the phase.
          const now = this.guestNowMs();
          this.snapshot(now);
          this.cmos[index] = value;
          this.startFromRegisters(now - Math.floor(now / 1000) * 1000);
        } else {
          this.cmos[index] = value;
        }
        return;
      case RtcIndex.REG_A: {
        const wasDividerReset = (this.cmos[RtcIndex.REG_A] & 0x70) > 0x20;
        this.cmos[RtcIndex.REG_A] = value & 0x7f;
        if (wasDividerReset && (value & 0x70) <= 0x20) this.startPhaseMs = DIVIDER_RELEASE_PHASE_MS;
        this.updateRunning();
        return;
      }
      case RtcIndex.REG_B: {
        this.evaluate();
        // Setting SET clears UIE.
        this.cmos[RtcIndex.REG_B] = value & B_SET ? value & ~B_UIE : value;
        this.updateRunning();
        return;
      }
      case RtcIndex.REG_C:
      case RtcIndex.REG_D:
        return; // read-only
      default:
        this.cmos[index] = value;
    }
  }

  /** Applies a change of SET or the divider: freeze or restart the clock. */
  private updateRunning(): void {
    const shouldRun = !(this.cmos[RtcIndex.REG_B] & B_SET) && (this.cmos[RtcIndex.REG_A] & 0x70) <= 0x20;
    if (shouldRun !== this.running) {
      if (shouldRun) {
        this.startFromRegisters(this.startPhaseMs);
        this.startPhaseMs = 0;
      } else {
        this.evaluate();
        this.snapshot(this.guestNowMs());
        this.running = false;
      }
    }
    this.updateLine();
    this.rearm();
  }

  /** Restarts the clock from the time registers, `phaseMs` into the current second. */
  private startFromRegisters(phaseMs: number): void {
    const seconds = this.decodeRegisters();
    if (seconds !== undefined) this.offsetMs = seconds * 1000 + phaseMs - this.clock.realtimeMs();
    this.running = true;
    this.evaluatedUntil = this.guestNowMs();
    this.updateLine();
    this.rearm();
  }

  /** Stores every time field of guest time `ms` into the CMOS bytes. */
  private snapshot(ms: number): void {
    for (const index of TIME_FIELDS) this.cmos[index] = this.encodeField(index, ms);
  }

  private toRegister(value: number): number {
    return this.cmos[RtcIndex.REG_B] & B_BINARY ? value : (((value / 10) | 0) << 4) | value % 10;
  }

  private fromRegister(value: number): number {
    return this.cmos[RtcIndex.REG_B] & B_BINARY ? value : (value >> 4) * 10 + (value & 0x0f);
  }

  /** The register encoding of one time field at guest time `ms`. */
  private encodeField(index: number, ms: number): number {
    const seconds = Math.floor(ms / 1000);
    const days = Math.floor(seconds / 86400);
    const secondOfDay = seconds - days * 86400;
    switch (index) {
      case RtcIndex.SECONDS:
        return this.toRegister(secondOfDay % 60);
      case RtcIndex.MINUTES:
        return this.toRegister(Math.floor(secondOfDay / 60) % 60);
      case RtcIndex.HOURS: {
        const hour = Math.floor(secondOfDay / 3600);
        if (this.cmos[RtcIndex.REG_B] & B_24H) return this.toRegister(hour);
        const hour12 = hour % 12 === 0 ? 12 : hour % 12;
        return this.toRegister(hour12) | (hour >= 12 ? 0x80 : 0);
      }
      case RtcIndex.DAY_OF_WEEK:
        return this.toRegister((((days + 4) % 7) + 7) % 7 + 1); // 1970-01-01 was a Thursday; Sunday = 1
      default:
        break;
    }
    this.civilFromDays(days);
    switch (index) {
      case RtcIndex.DAY_OF_MONTH:
        return this.toRegister(this.day);
      case RtcIndex.MONTH:
        return this.toRegister(this.month);
      case RtcIndex.YEAR:
        return this.toRegister(this.year % 100);
      default:
        return this.toRegister(Math.floor(this.year / 100) % 100);
    }
  }

  /** Guest seconds since the epoch described by the time registers, or undefined if they make no sense. */
  private decodeRegisters(): number | undefined {
    const c = this.cmos;
    const second = this.fromRegister(c[RtcIndex.SECONDS]);
    const minute = this.fromRegister(c[RtcIndex.MINUTES]);
    const rawHour = c[RtcIndex.HOURS];
    let hour: number;
    if (c[RtcIndex.REG_B] & B_24H) {
      hour = this.fromRegister(rawHour);
    } else {
      hour = this.fromRegister(rawHour & 0x7f) % 12;
      if (rawHour & 0x80) hour += 12;
    }
    const day = this.fromRegister(c[RtcIndex.DAY_OF_MONTH]);
    const month = this.fromRegister(c[RtcIndex.MONTH]);
    const year = this.fromRegister(c[RtcIndex.CENTURY]) * 100 + this.fromRegister(c[RtcIndex.YEAR]);
    if (second > 59 || minute > 59 || hour > 23 || day < 1 || day > 31 || month < 1 || month > 12) return undefined;
    return daysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
  }

  private civilFromDays(days: number): void {
    const z = days + 719468;
    const era = Math.floor(z / 146097);
    const doe = z - era * 146097;
    const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
    const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
    const mp = Math.floor((5 * doy + 2) / 153);
    this.day = doy - Math.floor((153 * mp + 2) / 5) + 1;
    this.month = mp < 10 ? mp + 3 : mp - 9;
    this.year = yoe + era * 400 + (this.month <= 2 ? 1 : 0);
  }

  /** Accumulates the PF/AF/UF flags for the guest time elapsed since the last evaluation. */
  private evaluate(): void {
    const now = this.guestNowMs();
    const last = this.evaluatedUntil;
    this.evaluatedUntil = now;
    if (!this.running || now <= last) return;
    const rate = this.cmos[RtcIndex.REG_A] & 0x0f;
    if (rate !== 0) {
      const period = periodicIntervalMs(rate);
      if (Math.floor(now / period) > Math.floor(last / period)) this.flags |= C_PF;
    }
    const lastSecond = Math.floor(last / 1000);
    const nowSecond = Math.floor(now / 1000);
    if (nowSecond > lastSecond) {
      this.flags |= C_UF;
      if (!(this.flags & C_AF)) {
        const first = Math.max(lastSecond + 1, nowSecond - MAX_ALARM_CATCH_UP_S);
        for (let s = first; s <= nowSecond; s++) {
          if (this.alarmMatches(s * 1000)) {
            this.flags |= C_AF;
            break;
          }
        }
      }
    }
    this.updateLine();
  }

  private alarmMatches(ms: number): boolean {
    return (
      alarmFieldMatches(this.cmos[RtcIndex.SECONDS_ALARM], this.encodeField(RtcIndex.SECONDS, ms)) &&
      alarmFieldMatches(this.cmos[RtcIndex.MINUTES_ALARM], this.encodeField(RtcIndex.MINUTES, ms)) &&
      alarmFieldMatches(this.cmos[RtcIndex.HOURS_ALARM], this.encodeField(RtcIndex.HOURS, ms))
    );
  }

  private updateLine(): void {
    if (this.flags & this.cmos[RtcIndex.REG_B] & (C_PF | C_AF | C_UF)) this.irq.raise();
  }

  /** Schedules the host timer for the next enabled event, unless IRQ8 is already up. */
  private rearm(): void {
    this.timer?.cancel();
    this.timer = undefined;
    if (!this.running || this.irq.asserted) return;
    const b = this.cmos[RtcIndex.REG_B];
    const now = this.guestNowMs();
    let delay = Infinity;
    const rate = this.cmos[RtcIndex.REG_A] & 0x0f;
    if (b & B_PIE && rate !== 0) {
      const period = periodicIntervalMs(rate);
      delay = (Math.floor(now / period) + 1) * period - now;
    }
    if (b & (B_UIE | B_AIE)) delay = Math.min(delay, (Math.floor(now / 1000) + 1) * 1000 - now);
    if (delay !== Infinity) this.timer = this.timers.start(delay, this.onTimer);
  }

  private fillMemorySize(ramSize: number, cpuCount: number | undefined): void {
    const c = this.cmos;
    const below4g = Math.min(ramSize, MMIO_HOLE_START);
    const above4g = ramSize - below4g;
    const baseKiB = 640;
    c[0x15] = baseKiB & 0xff;
    c[0x16] = baseKiB >> 8;
    const extendedKiB = Math.min(Math.max(0, (below4g - MiB) / KiB), 0xffff) | 0;
    c[0x17] = c[0x30] = extendedKiB & 0xff;
    c[0x18] = c[0x31] = extendedKiB >> 8;
    const above16m = Math.min(Math.max(0, (below4g - 16 * MiB) / (64 * KiB)), 0xffff) | 0;
    c[0x34] = above16m & 0xff;
    c[0x35] = above16m >> 8;
    const above4gUnits = Math.min(Math.floor(above4g / (64 * KiB)), 0xffffff);
    c[0x5b] = above4gUnits & 0xff;
    c[0x5c] = (above4gUnits >> 8) & 0xff;
    c[0x5d] = (above4gUnits >> 16) & 0xff;
    if (cpuCount !== undefined) c[0x5f] = (cpuCount - 1) & 0xff;
    let sum = 0;
    for (let i = 0x10; i <= 0x2d; i++) sum += c[i];
    c[0x2e] = (sum >> 8) & 0xff;
    c[0x2f] = sum & 0xff;
  }
}

const TIME_FIELDS = [
  RtcIndex.SECONDS,
  RtcIndex.MINUTES,
  RtcIndex.HOURS,
  RtcIndex.DAY_OF_WEEK,
  RtcIndex.DAY_OF_MONTH,
  RtcIndex.MONTH,
  RtcIndex.YEAR,
  RtcIndex.CENTURY,
] as const;

/** An alarm byte with both top bits set matches any value. */
function alarmFieldMatches(alarm: number, current: number): boolean {
  return (alarm & 0xc0) === 0xc0 || alarm === current;
}

/** The periodic interrupt interval for rate select `rate` (1-15) of the 32.768 kHz time base. */
export function periodicIntervalMs(rate: number): number {
  const r = rate <= 2 ? rate + 7 : rate;
  return ((1 << (r - 1)) / 32768) * 1000;
}

/** Days since 1970-01-01 of a proleptic Gregorian date. */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}
