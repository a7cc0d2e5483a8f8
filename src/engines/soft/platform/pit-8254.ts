/**
 * The 8254 programmable interval timer (ports 0x40-0x43) and the port 0x61
 * system control register (channel 2 gate in bit 0, speaker data in bit 1,
 * refresh toggle in bit 4, channel 2 output in bit 5).
 *
 * The counters run at 1.193182 MHz derived from `clock.nowNs()`: the count and
 * output of a channel are computed on demand from the time its count was
 * loaded, so nothing runs per tick. Channel 0's output drives IRQ 0; every
 * rising edge of it becomes one pulse on the line. Modes 2 and 3 are periodic;
 * when the VMM polls late, the missed periods are coalesced into a single
 * interrupt and the next one is scheduled for the next period boundary (as
 * KVM does without reinjection). Modes 0, 1, 4 and 5 interrupt once, at the
 * terminal count (modes 1 and 5 are started by the count load on channel 0,
 * whose gate is tied high).
 *
 * Gate handling (channel 2 via port 0x61): in modes 0 and 4 a low gate
 * suspends counting; in modes 1, 2, 3 and 5 a rising gate edge (re)starts the
 * count; in modes 2 and 3 a low gate holds the output high.
 */

import type { BusDevice } from '../../../machine/bus.js';
import type { SoftClock } from '../platform-contract.js';

export const PIT_HZ = 1193182;
const NS_PER_TICK = 1e9 / PIT_HZ;
/** The DRAM refresh request toggles every 15.085 µs on a PC. */
const REFRESH_PERIOD_NS = 15085;

const Access = { LATCH: 0, LOW: 1, HIGH: 2, LOW_HIGH: 3 } as const;

class PitChannel {
  mode = 0;
  bcd = false;
  access: number = Access.LOW_HIGH;
  /** Reload value in binary (1-65536, or 1-10000 in BCD). */
  reload = 0x10000;
  /** Whether a count has been loaded since the last control word. */
  armed = false;
  loadTimeNs = 0;
  gate: boolean;
  /** Modes 0/4: ticks elapsed when the gate went low (counting suspended), or -1. */
  suspendedTicks = -1;
  /** Modes 1/5: triggered by a gate edge or a count load. */
  triggered = false;
  /** Write state for LOW_HIGH: waiting for the high byte. */
  writeHighNext = false;
  pendingLowByte = 0;
  /** Read state for LOW_HIGH: the high byte comes next. */
  readHighNext = false;
  countLatched = false;
  latchedCount = 0;
  latchedHighNext = false;
  statusLatched = false;
  latchedStatus = 0;
  nullCount = true;

  constructor(gate: boolean) {
    this.gate = gate;
  }

  /** Counter clocks since the count was loaded (frozen while suspended). */
  ticks(now: number): number {
    if (this.suspendedTicks >= 0) return this.suspendedTicks;
    const elapsed = now - this.loadTimeNs;
    return elapsed <= 0 ? 0 : Math.floor(elapsed / NS_PER_TICK + 1e-6);
  }

  /** The counting element's value (binary) at `now`. */
  count(now: number): number {
    if (!this.armed) return this.reload & 0xffff;
    const d = this.ticks(now);
    const n = this.reload;
    switch (this.mode) {
      case 2:
        return (n - (d % n)) & 0xffff;
      case 3:
        // Mode 3 counts down by two per clock.
        return (n - ((2 * d) % n)) & 0xffff;
      case 1:
      case 5:
        if (!this.triggered) return n & 0xffff;
        return (n - d) & 0xffff;
      default:
        return (n - d) & 0xffff;
    }
  }

  /** The OUT pin at `now`. */
  output(now: number): boolean {
    if (!this.armed) return this.mode !== 0;
    const n = this.reload;
    switch (this.mode) {
      case 0:
        return this.ticks(now) >= n;
      case 1:
        return !this.triggered || this.ticks(now) >= n;
      case 2:
        if (!this.gate) return true;
        return this.ticks(now) % n !== n - 1;
      case 3:
        if (!this.gate) return true;
        return this.ticks(now) % n < (n + 1) >>> 1;
      case 4:
        return this.ticks(now) !== n;
      default: // 5
        return !this.triggered || this.ticks(now) !== n;
    }
  }

  /** The time of the next rising edge of OUT strictly after `after` (for IRQ 0), or Infinity. */
  nextRisingEdge(after: number): number {
    if (!this.armed || !this.gate || this.suspendedTicks >= 0) return Infinity;
    const n = this.reload;
    const periodNs = n * NS_PER_TICK;
    switch (this.mode) {
      case 2:
      case 3: {
        const periods = Math.floor((after - this.loadTimeNs) / periodNs) + 1;
        return this.loadTimeNs + Math.max(1, periods) * periodNs;
      }
      default: {
        if ((this.mode === 1 || this.mode === 5) && !this.triggered) return Infinity;
        const at = this.loadTimeNs + n * NS_PER_TICK;
        return at > after ? at : Infinity;
      }
    }
  }

  status(now: number): number {
    return (
      (this.output(now) ? 0x80 : 0) |
      (this.nullCount ? 0x40 : 0) |
      (this.access << 4) |
      (this.mode << 1) |
      (this.bcd ? 1 : 0)
    );
  }
}

function toBcd(value: number): number {
  return (
    (value % 10) | (Math.floor(value / 10) % 10 << 4) | (Math.floor(value / 100) % 10 << 8) | (Math.floor(value / 1000) % 10 << 12)
  );
}

function fromBcd(value: number): number {
  return (value & 0xf) + ((value >>> 4) & 0xf) * 10 + ((value >>> 8) & 0xf) * 100 + ((value >>> 12) & 0xf) * 1000;
}

export class Pit8254 {
  private readonly channels = [new PitChannel(true), new PitChannel(true), new PitChannel(false)] as const;
  /** Next time channel 0's output rises, or Infinity. */
  private irqDeadline = Infinity;
  private speakerData = false;

  /** Ports 0x40-0x43. */
  readonly ports: BusDevice;
  /** Port 0x61. */
  readonly systemControlPort: BusDevice;

  constructor(
    private readonly clock: SoftClock,
    /** Pulses IRQ 0 once per rising edge of channel 0's output. */
    private readonly pulseIrq0: () => void,
  ) {
    this.ports = {
      read: (offset) => (offset < 3 ? this.readCounter(offset) : 0xff),
      write: (offset, _size, value) => {
        if (offset < 3) this.writeCounter(offset, value & 0xff);
        else if (offset === 3) this.writeControl(value & 0xff);
      },
    };
    this.systemControlPort = {
      read: () => this.readSystemControl(),
      write: (_offset, _size, value) => this.writeSystemControl(value),
    };
  }

  nextDeadlineNs(): number {
    return this.irqDeadline;
  }

  /** Raises IRQ 0 if channel 0's output rose by `nowNs` (once, however many periods passed). */
  poll(nowNs: number): void {
    if (nowNs < this.irqDeadline) return;
    this.irqDeadline = this.channels[0].nextRisingEdge(nowNs);
    this.pulseIrq0();
  }

  /** Channel 2's OUT (also port 0x61 bit 5). */
  channel2Output(): boolean {
    return this.channels[2].output(this.clock.nowNs());
  }

  private readSystemControl(): number {
    const now = this.clock.nowNs();
    const refresh = Math.floor(now / REFRESH_PERIOD_NS) & 1;
    return (
      (this.channels[2].gate ? 0x01 : 0) |
      (this.speakerData ? 0x02 : 0) |
      (refresh << 4) |
      (this.channels[2].output(now) ? 0x20 : 0)
    );
  }

  private writeSystemControl(value: number): void {
    this.speakerData = (value & 0x02) !== 0;
    this.setGate(2, (value & 0x01) !== 0);
  }

  private setGate(index: number, gate: boolean): void {
    const channel = this.channels[index];
    if (channel.gate === gate) return;
    const now = this.clock.nowNs();
    if (channel.mode === 0 || channel.mode === 4) {
      if (!gate) {
        channel.suspendedTicks = channel.ticks(now);
      } else if (channel.suspendedTicks >= 0) {
        channel.loadTimeNs = now - channel.suspendedTicks * NS_PER_TICK;
        channel.suspendedTicks = -1;
      }
    } else if (gate && channel.armed) {
      // Rising gate edge: modes 1 and 5 trigger, modes 2 and 3 reload.
      channel.loadTimeNs = now;
      channel.triggered = true;
    }
    channel.gate = gate;
    if (index === 0) this.rescheduleIrq(now);
  }

  private writeControl(value: number): void {
    const select = value >>> 6;
    if (select === 3) {
      this.readBack(value);
      return;
    }
    const channel = this.channels[select];
    const access = (value >>> 4) & 3;
    if (access === Access.LATCH) {
      if (!channel.countLatched) {
        const count = channel.count(this.clock.nowNs());
        channel.latchedCount = channel.bcd ? toBcd(count % 10000) : count;
        channel.countLatched = true;
        channel.latchedHighNext = false;
      }
      return;
    }
    let mode = (value >>> 1) & 7;
    if (mode > 5) mode -= 4; // 6 and 7 alias 2 and 3
    channel.mode = mode;
    channel.bcd = (value & 1) !== 0;
    channel.access = access;
    channel.armed = false; // counting stops until a new count is written
    channel.triggered = false;
    channel.suspendedTicks = -1;
    channel.nullCount = true;
    channel.writeHighNext = false;
    channel.readHighNext = false;
    channel.countLatched = false;
    channel.statusLatched = false;
    if (select === 0) this.irqDeadline = Infinity;
  }

  private readBack(value: number): void {
    const now = this.clock.nowNs();
    for (let i = 0; i < 3; i++) {
      if ((value & (2 << i)) === 0) continue;
      const channel = this.channels[i];
      if ((value & 0x20) === 0 && !channel.countLatched) {
        const count = channel.count(now);
        channel.latchedCount = channel.bcd ? toBcd(count % 10000) : count;
        channel.countLatched = true;
        channel.latchedHighNext = false;
      }
      if ((value & 0x10) === 0 && !channel.statusLatched) {
        channel.latchedStatus = channel.status(now);
        channel.statusLatched = true;
      }
    }
  }

  private writeCounter(index: number, value: number): void {
    const channel = this.channels[index];
    switch (channel.access) {
      case Access.LOW:
        this.loadCount(index, value);
        return;
      case Access.HIGH:
        this.loadCount(index, value << 8);
        return;
      default:
        if (!channel.writeHighNext) {
          channel.pendingLowByte = value;
          channel.writeHighNext = true;
          // Mode 0: writing the first byte stops the count.
          if (channel.mode === 0 && channel.armed) {
            channel.armed = false;
            if (index === 0) this.irqDeadline = Infinity;
          }
        } else {
          channel.writeHighNext = false;
          this.loadCount(index, channel.pendingLowByte | (value << 8));
        }
    }
  }

  private loadCount(index: number, raw: number): void {
    const channel = this.channels[index];
    const now = this.clock.nowNs();
    let count = channel.bcd ? fromBcd(raw) : raw;
    if (count === 0) count = channel.bcd ? 10000 : 0x10000;
    // Modes 2 and 3 need a count of at least 2; treat 1 like 2 to keep the period sane.
    if ((channel.mode === 2 || channel.mode === 3) && count < 2) count = 2;
    const wasPeriodicRunning = channel.armed && (channel.mode === 2 || channel.mode === 3);
    channel.reload = count;
    channel.nullCount = false;
    if (wasPeriodicRunning) {
      // Modes 2/3: a new count takes effect at the end of the current period.
      if (index === 0) this.rescheduleIrq(now);
      return;
    }
    channel.armed = true;
    channel.loadTimeNs = now;
    channel.suspendedTicks = (channel.mode === 0 || channel.mode === 4) && !channel.gate ? 0 : -1;
    // On channel 0 (gate tied high) a count load starts modes 1 and 5 as well.
    channel.triggered = channel.mode === 1 || channel.mode === 5 ? channel.gate : false;
    if (index === 0) this.rescheduleIrq(now);
  }

  private rescheduleIrq(now: number): void {
    this.irqDeadline = this.channels[0].nextRisingEdge(now);
  }

  private readCounter(index: number): number {
    const channel = this.channels[index];
    if (channel.statusLatched) {
      channel.statusLatched = false;
      return channel.latchedStatus;
    }
    if (channel.countLatched) {
      const value = channel.latchedCount;
      switch (channel.access) {
        case Access.LOW:
          channel.countLatched = false;
          return value & 0xff;
        case Access.HIGH:
          channel.countLatched = false;
          return (value >>> 8) & 0xff;
        default:
          if (!channel.latchedHighNext) {
            channel.latchedHighNext = true;
            return value & 0xff;
          }
          channel.latchedHighNext = false;
          channel.countLatched = false;
          return (value >>> 8) & 0xff;
      }
    }
    const binary = channel.count(this.clock.nowNs());
    const count = channel.bcd ? toBcd(binary % 10000) : binary;
    switch (channel.access) {
      case Access.LOW:
        return count & 0xff;
      case Access.HIGH:
        return (count >>> 8) & 0xff;
      default:
        channel.readHighNext = !channel.readHighNext;
        return channel.readHighNext ? count & 0xff : (count >>> 8) & 0xff;
    }
  }
}
