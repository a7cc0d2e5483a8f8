/**
 * The local APIC of one soft-engine vCPU (Intel SDM Vol. 3, ch. 11): the xAPIC
 * register page, x2APIC MSRs, IRR/ISR/TMR with TPR/PPR priority, EOI (with EOI
 * broadcast to the IOAPIC for level-triggered vectors), the ICR for IPIs
 * (INIT/SIPI/NMI/fixed/lowest priority, shorthands), the LVT, and the timer in
 * one-shot, periodic and TSC-deadline modes.
 *
 * The timer is computed lazily from the clock: the current count is derived on
 * read; expiry is reported through `nextDeadlineNs()` and fired by `poll(now)`.
 * A periodic timer that is polled late fires once and re-arms for the next
 * period boundary after `now` (missed periods are coalesced, keeping phase).
 *
 * Hot paths (`pendingVector`, `acknowledge`, `accept`) do no allocation: the
 * highest IRR and ISR vectors and the PPR are cached.
 */

import type { SoftClock, LocalInterruptSource } from '../platform-contract.js';
import { DeliveryMode, type ApicBus } from './apic-bus.js';

/** What the local APIC needs of the 8259 pair for ExtINT delivery. */
export interface ExtIntSource {
  /** The vector the next INTA would return (no side effects). */
  peekVector(): number;
  /** The interrupt-acknowledge cycle: returns the vector and updates ISR/IRR. */
  acknowledge(): number;
}

export interface LocalApicOptions {
  /** vCPU index; also the initial APIC ID. */
  readonly index: number;
  readonly bus: ApicBus;
  readonly clock: SoftClock;
  /** Frequency of the APIC timer before the divider (the "bus clock"). */
  readonly timerHz: number;
  /** MAXPHYADDR of the vCPU: IA32_APIC_BASE bits at or above it are reserved. */
  readonly physAddrBits: number;
  /** Called when an interrupt, NMI, INIT or SIPI becomes pending (wakes a halted vCPU). */
  readonly onWake?: ((index: number) => void) | undefined;
}

/** Register indices (MMIO offset >> 4, also x2APIC MSR - 0x800). */
const Reg = {
  ID: 0x02,
  VERSION: 0x03,
  TPR: 0x08,
  APR: 0x09,
  PPR: 0x0a,
  EOI: 0x0b,
  RRD: 0x0c,
  LDR: 0x0d,
  DFR: 0x0e,
  SVR: 0x0f,
  ISR0: 0x10,
  TMR0: 0x18,
  IRR0: 0x20,
  ESR: 0x28,
  ICR_LOW: 0x30,
  ICR_HIGH: 0x31,
  LVT_TIMER: 0x32,
  LVT_ERROR: 0x37,
  TIMER_INITIAL: 0x38,
  TIMER_CURRENT: 0x39,
  TIMER_DIVIDE: 0x3e,
  SELF_IPI: 0x3f,
} as const;

/** LVT slots (register index - LVT_TIMER). */
const Lvt = { TIMER: 0, THERMAL: 1, PERF: 2, LINT0: 3, LINT1: 4, ERROR: 5 } as const;
/** Writable bits of each LVT entry (delivery status and remote IRR are read-only). */
const LVT_WRITABLE = [0x000700ff, 0x000107ff, 0x000107ff, 0x0001a7ff, 0x0001a7ff, 0x000100ff] as const;
const LVT_MASKED = 0x10000;
const LVT_COUNT = 6;

/** Version register: version 0x14, max LVT entry 5 (six entries), no EOI-broadcast suppression. */
export const APIC_VERSION = 0x00050014;

/** LVT timer modes (bits 18:17); 0 is one-shot. */
const TIMER_MODE_PERIODIC = 1;
const TIMER_MODE_TSC_DEADLINE = 2;

/** Writable ICR low bits: vector, delivery mode, destination mode, level, trigger, shorthand. */
const ICR_WRITABLE = 0x000ccfff;

const SVR_ENABLE = 0x100;
/** Writable SVR bits: vector, APIC software enable, focus processor checking. */
const SVR_WRITABLE = 0x3ff;

const APIC_BASE_BSP = 0x100;
const APIC_BASE_EXTD = 0x400;
const APIC_BASE_ENABLE = 0x800;
const APIC_BASE_RESERVED_LOW = 0x2ff;
const DEFAULT_APIC_BASE = 0xfee00000;

/** ESR bits. */
export const Esr = {
  SEND_ILLEGAL_VECTOR: 0x20,
  RECEIVE_ILLEGAL_VECTOR: 0x40,
  ILLEGAL_REGISTER_ADDRESS: 0x80,
} as const;

export const MSR_APIC_BASE = 0x1b;
export const MSR_TSC_DEADLINE = 0x6e0;
export const MSR_X2APIC_FIRST = 0x800;
export const MSR_X2APIC_LAST = 0x8ff;

const TWO_32 = 4294967296;

/** Highest set bit of a 256-bit register held as 8 words, or -1. */
function highestVector(words: Uint32Array): number {
  for (let w = 7; w >= 0; w--) {
    const word = words[w];
    if (word !== 0) return w * 32 + 31 - Math.clz32(word);
  }
  return -1;
}

export class LocalApic implements LocalInterruptSource {
  readonly index: number;
  private readonly bus: ApicBus;
  private readonly clock: SoftClock;
  private readonly onWake: ((index: number) => void) | undefined;
  private readonly nsPerTimerTick: number;
  private readonly apicBaseHighLimit: number;

  // IA32_APIC_BASE, split in halves.
  private apicBaseLow = DEFAULT_APIC_BASE | APIC_BASE_ENABLE;
  private apicBaseHigh = 0;
  private enabled = true;
  private x2apic = false;

  private id = 0;
  private tpr = 0;
  private ppr = 0;
  private ldr = 0;
  private dfr = 0xffffffff;
  private svr = 0xff;
  private readonly irr = new Uint32Array(8);
  private readonly isr = new Uint32Array(8);
  private readonly tmr = new Uint32Array(8);
  private highestIrr = -1;
  private highestIsr = -1;
  private esr = 0;
  private esrPending = 0;
  private icrLow = 0;
  private icrHigh = 0;
  private readonly lvt = new Uint32Array(LVT_COUNT);

  // Timer.
  private timerInitial = 0;
  private timerDivideRegister = 0;
  private timerDivisor = 2;
  private timerStartNs = 0;
  private timerPeriodNs = 0;
  private timerDeadline = Infinity;
  private tscDeadlineLow = 0;
  private tscDeadlineHigh = 0;

  // Events for the CPU.
  private nmiPending = false;
  private initPending = false;
  private sipiVector = -1;

  // ExtINT (8259) input on LINT0, or ExtINT messages.
  private pic: ExtIntSource | undefined;
  private picOutput = false;
  private extIntMessage = false;

  constructor(options: LocalApicOptions) {
    this.index = options.index;
    this.bus = options.bus;
    this.clock = options.clock;
    this.onWake = options.onWake;
    if (!(options.timerHz > 0)) throw new RangeError('APIC timer frequency must be positive');
    this.nsPerTimerTick = 1e9 / options.timerHz;
    if (!(options.physAddrBits >= 36 && options.physAddrBits <= 52)) throw new RangeError('physAddrBits must be 36-52');
    this.apicBaseHighLimit = 2 ** (options.physAddrBits - 32);
    if (this.index === 0) this.apicBaseLow |= APIC_BASE_BSP;
    this.resetRegisters(true);
  }

  /** Connects the 8259 pair (only vCPU 0's LINT0 is wired to it). */
  connectPic(pic: ExtIntSource): void {
    this.pic = pic;
  }

  /** The 8259's INTR output, wired to LINT0. */
  setPicOutput(level: boolean): void {
    if (level === this.picOutput) return;
    this.picOutput = level;
    if (level && this.acceptsPicInterrupts()) this.wake();
  }

  // ---- LocalInterruptSource (hot) ----

  pendingVector(): number {
    if (this.picOutput && this.pic !== undefined && (this.extIntMessage || this.acceptsPicInterrupts())) {
      return this.pic.peekVector();
    }
    const vector = this.highestIrr;
    if (vector < 0 || !this.enabled) return -1;
    return (vector & 0xf0) > (this.ppr & 0xf0) ? vector : -1;
  }

  acknowledge(): number {
    if (this.pic !== undefined && this.picOutput && (this.extIntMessage || this.acceptsPicInterrupts())) {
      this.extIntMessage = false;
      return this.pic.acknowledge();
    }
    const vector = this.highestIrr;
    if (vector < 0 || !this.enabled || (vector & 0xf0) <= (this.ppr & 0xf0)) {
      // The interrupt went away between INTR and INTA: the spurious vector.
      return this.svr & 0xff;
    }
    const word = vector >>> 5;
    const bit = 1 << (vector & 31);
    this.irr[word] &= ~bit;
    this.highestIrr = highestVector(this.irr);
    this.isr[word] |= bit;
    if (vector > this.highestIsr) this.highestIsr = vector;
    this.updatePpr();
    return vector;
  }

  takeNmi(): boolean {
    if (!this.nmiPending) return false;
    this.nmiPending = false;
    return true;
  }

  /** Consumes a pending INIT and resets the APIC's registers as INIT does (ID and APIC base kept). */
  takeInit(): boolean {
    if (!this.initPending) return false;
    this.initPending = false;
    // A pending SIPI arrived after this INIT (delivering INIT clears older ones), so it survives:
    // on hardware INIT acts at once, and a SIPI sent after it must start the processor even when
    // both land before this vCPU runs again.
    this.resetRegisters(false);
    return true;
  }

  takeSipi(): number {
    const vector = this.sipiVector;
    this.sipiVector = -1;
    return vector;
  }

  baseAddress(): number {
    return ((this.apicBaseLow & 0xfffff000) >>> 0) + this.apicBaseHigh * TWO_32;
  }

  mmioEnabled(): boolean {
    return this.enabled && !this.x2apic;
  }

  hardwareEnabled(): boolean {
    return this.enabled;
  }

  softwareEnabled(): boolean {
    return this.enabled && (this.svr & SVR_ENABLE) !== 0;
  }

  x2apicMode(): boolean {
    return this.x2apic;
  }

  taskPriority(): number {
    return this.tpr;
  }

  /** MOV from CR8: TPR bits 7:4. Works in every APIC mode, even hardware-disabled. */
  readCr8(): number {
    return this.tpr >>> 4;
  }

  /** MOV to CR8: sets TPR to `value << 4` (bits 3:0 of TPR cleared). */
  writeCr8(value: number): void {
    this.tpr = (value & 0xf) << 4;
    this.updatePpr();
  }

  /** The APIC ID register's value (8-bit xAPIC ID or 32-bit x2APIC ID). */
  apicId(): number {
    return this.id;
  }

  // ---- Message acceptance (from the APIC bus) ----

  /**
   * Accepts an interrupt message. Returns false when it was dropped (APIC
   * disabled, or a fixed interrupt while software-disabled).
   */
  accept(deliveryMode: number, vector: number, levelTriggered: boolean, assert: boolean): boolean {
    if (!this.enabled) return false;
    switch (deliveryMode) {
      case DeliveryMode.FIXED:
      case DeliveryMode.LOWEST_PRIORITY:
        if ((this.svr & SVR_ENABLE) === 0) return false;
        if (vector < 16) {
          this.signalError(Esr.RECEIVE_ILLEGAL_VECTOR);
          return true;
        }
        this.setIrr(vector, levelTriggered);
        return true;
      case DeliveryMode.NMI:
        this.nmiPending = true;
        this.wake();
        return true;
      case DeliveryMode.INIT:
        if (levelTriggered && !assert) return true; // INIT level de-assert: no effect
        this.initPending = true;
        this.sipiVector = -1;
        this.wake();
        return true;
      case DeliveryMode.STARTUP:
        this.sipiVector = vector;
        this.wake();
        return true;
      case DeliveryMode.EXTINT:
        this.extIntMessage = true;
        if (this.picOutput) this.wake();
        return true;
      default:
        return false; // SMI and reserved modes are ignored
    }
  }

  /**
   * Whether this APIC is addressed by `destination`. Messages from the IOAPIC,
   * MSIs and xAPIC-mode IPIs carry an 8-bit destination; x2APIC IPIs a 32-bit one.
   */
  matchesDestination(destination: number, logical: boolean, x2apicFormat: boolean): boolean {
    if (!this.enabled) return false;
    if (this.x2apic) {
      if (!x2apicFormat) {
        if (destination === 0xff) return true;
        if (!logical) return destination === this.id;
        return this.id < 8 && (destination & (1 << this.id)) !== 0;
      }
      if (destination === -1 || destination === 0xffffffff) return true;
      if (!logical) return destination === this.id;
      return destination >>> 16 === this.ldr >>> 16 && (destination & this.ldr & 0xffff) !== 0;
    }
    const dest = x2apicFormat && (destination === -1 || destination === 0xffffffff) ? 0xff : destination & 0xff;
    if (!logical) return dest === 0xff || dest === this.id;
    const logicalId = this.ldr >>> 24;
    if (this.dfr >>> 28 === 0xf) return (dest & logicalId) !== 0; // flat model
    if (dest === 0xff) return true; // cluster model broadcast
    return dest >>> 4 === logicalId >>> 4 && (dest & logicalId & 0xf) !== 0;
  }

  // ---- Timers ----

  /** The APIC timer's next expiry in ns, or Infinity. */
  nextDeadlineNs(): number {
    return this.timerDeadline;
  }

  /** Fires the timer if it is due at `nowNs`. */
  poll(nowNs: number): void {
    if (nowNs < this.timerDeadline) return;
    const mode = this.timerMode();
    if (mode === TIMER_MODE_TSC_DEADLINE) {
      this.tscDeadlineLow = 0;
      this.tscDeadlineHigh = 0;
      this.timerDeadline = Infinity;
    } else if (mode === TIMER_MODE_PERIODIC && this.timerPeriodNs > 0) {
      const periods = Math.floor((nowNs - this.timerStartNs) / this.timerPeriodNs) + 1;
      this.timerDeadline = this.timerStartNs + periods * this.timerPeriodNs;
    } else {
      this.timerDeadline = Infinity;
    }
    this.deliverLocal(Lvt.TIMER);
  }

  // ---- xAPIC MMIO ----

  mmioRead(offset: number, size: 1 | 2 | 4): number {
    const within = offset & 0xf;
    if (within + size > 4) return 0;
    const value = this.readRegister((offset >>> 4) & 0xff);
    if (value < 0) return 0;
    if (size === 4) return value;
    return (value >>> (within * 8)) & (size === 1 ? 0xff : 0xffff);
  }

  mmioWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    // Registers are 32 bits wide at 16-byte strides; narrower writes are dropped.
    if (size !== 4 || (offset & 0xf) !== 0 || this.x2apic) return;
    const reg = (offset >>> 4) & 0xff;
    if (reg === Reg.SELF_IPI) return; // x2APIC only
    this.writeRegister(reg, value >>> 0);
  }

  // ---- MSRs ----

  readMsr(msr: number, out: Uint32Array): boolean {
    if (msr === MSR_APIC_BASE) {
      out[0] = this.apicBaseLow;
      out[1] = this.apicBaseHigh;
      return true;
    }
    if (msr === MSR_TSC_DEADLINE) {
      const live = this.timerMode() === TIMER_MODE_TSC_DEADLINE;
      out[0] = live ? this.tscDeadlineLow : 0;
      out[1] = live ? this.tscDeadlineHigh : 0;
      return true;
    }
    if (msr < MSR_X2APIC_FIRST || msr > MSR_X2APIC_LAST || !this.x2apic) return false;
    const reg = msr - MSR_X2APIC_FIRST;
    switch (reg) {
      case Reg.APR:
      case Reg.EOI:
      case Reg.RRD:
      case Reg.DFR:
      case Reg.ICR_HIGH:
      case Reg.SELF_IPI:
        return false;
      case Reg.ICR_LOW:
        out[0] = this.icrLow;
        out[1] = this.icrHigh;
        return true;
      default: {
        const value = this.readRegister(reg);
        if (value < 0) return false;
        out[0] = value;
        out[1] = 0;
        return true;
      }
    }
  }

  writeMsr(msr: number, lo: number, hi: number): boolean {
    lo >>>= 0;
    hi >>>= 0;
    if (msr === MSR_APIC_BASE) return this.writeApicBase(lo, hi);
    if (msr === MSR_TSC_DEADLINE) {
      this.writeTscDeadline(lo, hi);
      return true;
    }
    if (msr < MSR_X2APIC_FIRST || msr > MSR_X2APIC_LAST || !this.x2apic) return false;
    const reg = msr - MSR_X2APIC_FIRST;
    if (reg === Reg.ICR_LOW) {
      this.icrLow = lo & ICR_WRITABLE;
      this.icrHigh = hi;
      this.sendIcr();
      return true;
    }
    if (hi !== 0) return false;
    switch (reg) {
      case Reg.TPR:
        if ((lo & ~0xff) !== 0) return false;
        break;
      case Reg.EOI:
      case Reg.ESR:
        if (lo !== 0) return false;
        break;
      case Reg.SVR:
        if ((lo & ~SVR_WRITABLE) !== 0) return false;
        break;
      case Reg.SELF_IPI:
        if ((lo & ~0xff) !== 0) return false;
        this.selfIpi(lo);
        return true;
      case Reg.TIMER_INITIAL:
      case Reg.TIMER_DIVIDE:
        break;
      default:
        if (reg >= Reg.LVT_TIMER && reg <= Reg.LVT_ERROR) break;
        return false; // read-only, reserved or not present in x2APIC mode
    }
    this.writeRegister(reg, lo);
    return true;
  }

  // ---- Registers ----

  /** Reads register `reg`; -1 when the register does not exist. */
  private readRegister(reg: number): number {
    switch (reg) {
      case Reg.ID:
        return this.x2apic ? this.id : (this.id << 24) >>> 0;
      case Reg.VERSION:
        return APIC_VERSION;
      case Reg.TPR:
        return this.tpr;
      case Reg.APR:
        return 0;
      case Reg.PPR:
        return this.ppr;
      case Reg.EOI:
        return 0;
      case Reg.RRD:
        return 0;
      case Reg.LDR:
        return this.ldr;
      case Reg.DFR:
        return this.x2apic ? -1 : (this.dfr | 0x0fffffff) >>> 0;
      case Reg.SVR:
        return this.svr;
      case Reg.ESR:
        return this.esr;
      case Reg.ICR_LOW:
        return this.icrLow;
      case Reg.ICR_HIGH:
        return this.icrHigh;
      case Reg.TIMER_INITIAL:
        return this.timerInitial;
      case Reg.TIMER_CURRENT:
        return this.timerCurrentCount(this.clock.nowNs());
      case Reg.TIMER_DIVIDE:
        return this.timerDivideRegister;
      default:
        if (reg >= Reg.ISR0 && reg < Reg.ISR0 + 8) return this.isr[reg - Reg.ISR0];
        if (reg >= Reg.TMR0 && reg < Reg.TMR0 + 8) return this.tmr[reg - Reg.TMR0];
        if (reg >= Reg.IRR0 && reg < Reg.IRR0 + 8) return this.irr[reg - Reg.IRR0];
        if (reg >= Reg.LVT_TIMER && reg <= Reg.LVT_ERROR) return this.lvt[reg - Reg.LVT_TIMER];
        return -1;
    }
  }

  private writeRegister(reg: number, value: number): void {
    switch (reg) {
      case Reg.ID:
        if (!this.x2apic) this.id = value >>> 24;
        return;
      case Reg.TPR:
        this.tpr = value & 0xff;
        this.updatePpr();
        return;
      case Reg.EOI:
        this.endOfInterrupt();
        return;
      case Reg.LDR:
        if (!this.x2apic) this.ldr = (value & 0xff000000) >>> 0;
        return;
      case Reg.DFR:
        if (!this.x2apic) this.dfr = (value | 0x0fffffff) >>> 0;
        return;
      case Reg.SVR:
        this.writeSvr(value);
        return;
      case Reg.ESR:
        this.esr = this.esrPending;
        this.esrPending = 0;
        return;
      case Reg.ICR_LOW:
        this.icrLow = value & ICR_WRITABLE;
        this.sendIcr();
        return;
      case Reg.ICR_HIGH:
        this.icrHigh = (value & 0xff000000) >>> 0;
        return;
      case Reg.TIMER_INITIAL:
        if (this.timerMode() === TIMER_MODE_TSC_DEADLINE) return;
        this.timerInitial = value >>> 0;
        this.startTimer(this.clock.nowNs());
        return;
      case Reg.TIMER_DIVIDE:
        this.writeTimerDivide(value);
        return;
      default:
        if (reg >= Reg.LVT_TIMER && reg <= Reg.LVT_ERROR) {
          this.writeLvt(reg - Reg.LVT_TIMER, value);
          return;
        }
        if (reg === 0x00 || reg === 0x01 || (reg >= 0x04 && reg <= 0x07) || reg > Reg.SELF_IPI) {
          this.signalError(Esr.ILLEGAL_REGISTER_ADDRESS);
        }
    }
  }

  private writeSvr(value: number): void {
    this.svr = value & SVR_WRITABLE;
    if ((this.svr & SVR_ENABLE) === 0) {
      // Software disable masks every LVT entry.
      for (let i = 0; i < LVT_COUNT; i++) this.lvt[i] |= LVT_MASKED;
    }
  }

  private writeLvt(slot: number, value: number): void {
    let entry = value & LVT_WRITABLE[slot];
    if ((this.svr & SVR_ENABLE) === 0) entry |= LVT_MASKED;
    if (slot !== Lvt.TIMER) {
      this.lvt[slot] = entry;
      if (slot === Lvt.LINT0 && this.picOutput && this.acceptsPicInterrupts()) this.wake();
      return;
    }
    const oldMode = this.timerMode();
    this.lvt[slot] = entry;
    const newMode = this.timerMode();
    if (oldMode === newMode) return;
    const now = this.clock.nowNs();
    if (oldMode === TIMER_MODE_TSC_DEADLINE || newMode === TIMER_MODE_TSC_DEADLINE) {
      // Entering or leaving TSC-deadline mode stops the timer.
      this.timerInitial = 0;
      this.tscDeadlineLow = 0;
      this.tscDeadlineHigh = 0;
      this.timerDeadline = Infinity;
      return;
    }
    // One-shot <-> periodic: a running count continues from where it is (rebased to the
    // current period); an expired one-shot count stays at 0.
    if (this.timerPeriodNs > 0 && this.timerDeadline !== Infinity) {
      const periods = Math.floor((now - this.timerStartNs) / this.timerPeriodNs);
      if (periods > 0) this.timerStartNs += periods * this.timerPeriodNs;
      this.timerDeadline = this.timerStartNs + this.timerPeriodNs;
    }
  }

  private timerMode(): number {
    return (this.lvt[Lvt.TIMER] >>> 17) & 3;
  }

  private startTimer(now: number): void {
    if (this.timerInitial === 0) {
      this.timerPeriodNs = 0;
      this.timerDeadline = Infinity;
      return;
    }
    this.timerStartNs = now;
    this.timerPeriodNs = this.timerInitial * this.timerDivisor * this.nsPerTimerTick;
    this.timerDeadline = now + this.timerPeriodNs;
  }

  private timerCurrentCount(now: number): number {
    // Stopped, expired (one-shot) or in TSC-deadline mode: the count reads 0.
    if (this.timerDeadline === Infinity || this.timerPeriodNs === 0 || this.timerMode() === TIMER_MODE_TSC_DEADLINE) {
      return 0;
    }
    const elapsed = now - this.timerStartNs;
    if (elapsed < 0) return this.timerInitial;
    const ticks = Math.floor(elapsed / (this.timerDivisor * this.nsPerTimerTick) + 1e-9);
    if (this.timerMode() === TIMER_MODE_PERIODIC) return this.timerInitial - (ticks % this.timerInitial);
    return ticks >= this.timerInitial ? 0 : this.timerInitial - ticks;
  }

  private writeTimerDivide(value: number): void {
    this.timerDivideRegister = value & 0xb;
    const code = (value & 3) | ((value & 8) >>> 1);
    const divisor = code === 7 ? 1 : 2 << code;
    if (divisor === this.timerDivisor) return;
    const now = this.clock.nowNs();
    const running = this.timerDeadline !== Infinity && this.timerMode() !== TIMER_MODE_TSC_DEADLINE;
    const remaining = running ? this.timerCurrentCount(now) : 0;
    this.timerDivisor = divisor;
    if (!running) {
      if (this.timerInitial !== 0) this.timerPeriodNs = this.timerInitial * divisor * this.nsPerTimerTick;
      return;
    }
    // Keep the current count; the rest of the countdown runs at the new rate.
    const tickNs = divisor * this.nsPerTimerTick;
    this.timerPeriodNs = this.timerInitial * tickNs;
    this.timerDeadline = now + remaining * tickNs;
    this.timerStartNs = this.timerDeadline - this.timerPeriodNs;
  }

  private writeTscDeadline(lo: number, hi: number): void {
    if (this.timerMode() !== TIMER_MODE_TSC_DEADLINE) return;
    this.tscDeadlineLow = lo;
    this.tscDeadlineHigh = hi;
    if (lo === 0 && hi === 0) {
      this.timerDeadline = Infinity;
      return;
    }
    const ticks = hi * TWO_32 + lo;
    // The guest's TSC is clock.nowNs() * tscHz / 1e9: the deadline in ns is the first instant TSC >= value.
    this.timerDeadline = (ticks / this.clock.tscHz) * 1e9;
    // A deadline already reached fires before the next instruction (WRMSR of the current TSC).
    const now = this.clock.nowNs();
    if (ticks <= (now * this.clock.tscHz) / 1e9 + 1e-3) this.poll(Math.max(now, this.timerDeadline));
  }

  // ---- Interrupt state ----

  private setIrr(vector: number, levelTriggered: boolean): void {
    const word = vector >>> 5;
    const bit = 1 << (vector & 31);
    this.irr[word] |= bit;
    if (levelTriggered) this.tmr[word] |= bit;
    else this.tmr[word] &= ~bit;
    if (vector > this.highestIrr) this.highestIrr = vector;
    if ((vector & 0xf0) > (this.ppr & 0xf0)) this.wake();
  }

  private updatePpr(): void {
    const isrv = this.highestIsr < 0 ? 0 : this.highestIsr;
    this.ppr = (this.tpr & 0xf0) >= (isrv & 0xf0) ? this.tpr : isrv & 0xf0;
  }

  private endOfInterrupt(): void {
    const vector = this.highestIsr;
    if (vector < 0) return;
    const word = vector >>> 5;
    const bit = 1 << (vector & 31);
    this.isr[word] &= ~bit;
    this.highestIsr = highestVector(this.isr);
    this.updatePpr();
    if ((this.tmr[word] & bit) !== 0) this.bus.broadcastEoi(vector);
  }

  private signalError(bits: number): void {
    this.esrPending |= bits;
    const entry = this.lvt[Lvt.ERROR];
    if ((entry & LVT_MASKED) === 0 && (entry & 0xff) >= 16) this.setIrr(entry & 0xff, false);
  }

  /** Delivers a local interrupt (timer or error) through its LVT entry. */
  private deliverLocal(slot: number): void {
    const entry = this.lvt[slot];
    if ((entry & LVT_MASKED) !== 0 || (this.svr & SVR_ENABLE) === 0) return;
    const vector = entry & 0xff;
    if (vector < 16) {
      this.signalError(Esr.RECEIVE_ILLEGAL_VECTOR);
      return;
    }
    this.setIrr(vector, false);
  }

  private sendIcr(): void {
    const low = this.icrLow;
    const vector = low & 0xff;
    const deliveryMode = (low >>> 8) & 7;
    const logical = (low & 0x800) !== 0;
    const assert = (low & 0x4000) !== 0;
    const levelTriggered = (low & 0x8000) !== 0;
    const shorthand = (low >>> 18) & 3;
    if ((deliveryMode === DeliveryMode.FIXED || deliveryMode === DeliveryMode.LOWEST_PRIORITY) && vector < 16) {
      this.signalError(Esr.SEND_ILLEGAL_VECTOR);
      return;
    }
    const destination = this.x2apic ? this.icrHigh : this.icrHigh >>> 24;
    this.bus.sendIpi(this, shorthand, destination, logical, this.x2apic, deliveryMode, vector, levelTriggered, assert);
  }

  private selfIpi(vector: number): void {
    if (vector < 16) {
      this.signalError(Esr.SEND_ILLEGAL_VECTOR);
      return;
    }
    this.accept(DeliveryMode.FIXED, vector, false, true);
  }

  private acceptsPicInterrupts(): boolean {
    // A hardware-disabled APIC passes INTR straight through; otherwise LINT0 must be an unmasked ExtINT.
    return !this.enabled || (this.lvt[Lvt.LINT0] & (LVT_MASKED | 0x700)) === 0x700;
  }

  private wake(): void {
    this.onWake?.(this.index);
  }

  // ---- IA32_APIC_BASE ----

  private writeApicBase(lo: number, hi: number): boolean {
    if ((lo & APIC_BASE_RESERVED_LOW) !== 0 || hi >= this.apicBaseHighLimit) return false;
    const enable = (lo & APIC_BASE_ENABLE) !== 0;
    const extd = (lo & APIC_BASE_EXTD) !== 0;
    if (extd && !enable) return false; // invalid state
    if (this.x2apic && enable && !extd) return false; // x2APIC -> xAPIC must pass through disabled
    if (!this.enabled && extd) return false; // disabled -> x2APIC must pass through xAPIC
    const wasEnabled = this.enabled;
    const wasX2apic = this.x2apic;
    this.apicBaseLow = ((lo & ~APIC_BASE_BSP) | (this.apicBaseLow & APIC_BASE_BSP)) >>> 0;
    this.apicBaseHigh = hi;
    this.enabled = enable;
    this.x2apic = extd;
    if (wasEnabled && !enable) {
      // Hardware disable: the APIC returns to its power-up state.
      this.resetRegisters(true);
    } else if (extd && !wasX2apic) {
      this.id = this.index;
      this.ldr = (((this.index >>> 4) << 16) | (1 << (this.index & 0xf))) >>> 0;
    }
    return true;
  }

  /** Power-up (`powerUp`) or INIT reset of the registers. INIT keeps the APIC ID. */
  private resetRegisters(powerUp: boolean): void {
    if (powerUp) this.id = this.index;
    this.tpr = 0;
    this.ppr = 0;
    this.ldr = this.x2apic ? (((this.id >>> 4) << 16) | (1 << (this.id & 0xf))) >>> 0 : 0;
    this.dfr = 0xffffffff;
    this.svr = 0xff;
    this.irr.fill(0);
    this.isr.fill(0);
    this.tmr.fill(0);
    this.highestIrr = -1;
    this.highestIsr = -1;
    this.esr = 0;
    this.esrPending = 0;
    this.icrLow = 0;
    this.icrHigh = 0;
    this.lvt.fill(LVT_MASKED);
    // Firmware leaves the BSP's LINT0 in ExtINT mode so the 8259 reaches the CPU (as KVM and QEMU do).
    if (this.index === 0) this.lvt[Lvt.LINT0] = 0x700;
    this.timerInitial = 0;
    this.timerDivideRegister = 0;
    this.timerDivisor = 2;
    this.timerStartNs = 0;
    this.timerPeriodNs = 0;
    this.timerDeadline = Infinity;
    this.tscDeadlineLow = 0;
    this.tscDeadlineHigh = 0;
    this.extIntMessage = false;
  }
}
