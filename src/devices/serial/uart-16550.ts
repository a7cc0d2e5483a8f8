/**
 * A 16550A UART (the PC's COM port): eight byte-wide registers at the base
 * port, 16-byte FIFOs, the full interrupt-identification priority scheme,
 * loopback mode and modem status, and the PC wiring where MCR.OUT2 gates the
 * interrupt output.
 *
 * Transmission is instantaneous: a byte written to THR is handed to
 * `onTransmit` at once, so THR/TEMT always read empty and the THR-empty
 * interrupt re-arms after every write (the behaviour Linux's 8250 driver
 * expects from an idle transmitter).
 *
 * Host input goes into an unbounded host-side queue. The receive FIFO is a
 * window onto the first 16 (or, with FIFOs disabled, 1) bytes of that queue,
 * refilled as the guest reads RBR, so input larger than the FIFO is never
 * overrun. The host side honours hardware flow control: while the guest
 * holds MCR.RTS low the window is closed, as a terminal on a flow-controlled
 * line stops sending. Drivers raise RTS only once the port is open (Linux's
 * 8250 does so after its start-up has cleared the FIFO and read RBR to discard
 * junk; kvm-unit-tests and polled guests set it at init), so input queued
 * before the guest was ready is never eaten. FIFO clears only discard loopback data; host bytes stay
 * queued. The character-timeout interrupt fires without delay whenever the
 * FIFO holds fewer bytes than the trigger level (no timer is needed).
 */

import type { AccessSize, BusDevice } from '../../machine/bus.js';
import type { InterruptLine } from '../../machine/interrupts.js';

/** Number of I/O ports the UART decodes. */
export const UART_PORT_COUNT = 8;

/** Register offsets from the base port. */
export const UartReg = {
  /** RBR (read) / THR (write); DLL when LCR.DLAB. */
  DATA: 0,
  /** IER; DLM when LCR.DLAB. */
  IER: 1,
  /** IIR (read) / FCR (write). */
  IIR_FCR: 2,
  LCR: 3,
  MCR: 4,
  LSR: 5,
  MSR: 6,
  SCR: 7,
} as const;

const IER_ERBFI = 0x01; // received data available
const IER_ETBEI = 0x02; // transmitter holding register empty
const IER_ELSI = 0x04; // receiver line status
const IER_EDSSI = 0x08; // modem status

const IIR_NONE = 0x01;
const IIR_LINE_STATUS = 0x06;
const IIR_RX_DATA = 0x04;
const IIR_CHAR_TIMEOUT = 0x0c;
const IIR_THR_EMPTY = 0x02;
const IIR_MODEM_STATUS = 0x00;
const IIR_FIFO_ENABLED = 0xc0;

const FCR_ENABLE = 0x01;
const FCR_CLEAR_RX = 0x02;

const LCR_DLAB = 0x80;

const MCR_DTR = 0x01;
const MCR_RTS = 0x02;
const MCR_OUT1 = 0x04;
const MCR_OUT2 = 0x08;
const MCR_LOOP = 0x10;

const LSR_DR = 0x01;
const LSR_OE = 0x02;
const LSR_THRE = 0x20;
const LSR_TEMT = 0x40;

const MSR_DCTS = 0x01;
const MSR_DDSR = 0x02;
const MSR_TERI = 0x04;
const MSR_DDCD = 0x08;
const MSR_CTS = 0x10;
const MSR_DSR = 0x20;
const MSR_RI = 0x40;
const MSR_DCD = 0x80;
/** Modem inputs seen when not in loopback: a connected terminal (carrier, DSR, CTS). */
const MSR_CONNECTED = MSR_DCD | MSR_DSR | MSR_CTS;

const FIFO_SIZE = 16;
/** FCR bits 7:6 → receive trigger level. */
const TRIGGER_LEVELS = [1, 4, 8, 14] as const;

export interface Uart16550Options {
  /** The interrupt line (COM1: `Irqs.COM1`). Asserted while an interrupt is pending and MCR.OUT2 is set. */
  readonly irq: InterruptLine;
  /** Called once per byte the guest transmits (not in loopback mode). Keep it cheap. */
  readonly onTransmit: (byte: number) => void;
  /**
   * Deliver host input only while the guest asserts MCR.RTS (default true),
   * like a line with hardware flow control. False delivers it at once.
   */
  readonly rtsFlowControl?: boolean;
}

export class Uart16550 implements BusDevice {
  private readonly irq: InterruptLine;
  private readonly onTransmit: (byte: number) => void;
  private readonly holdInput: boolean;

  private ier = 0;
  private lcr = 0;
  private mcr = 0;
  private scr = 0;
  private dll = 0x0c; // 9600 baud, as after a typical BIOS
  private dlm = 0;
  private fifoEnabled = false;
  private triggerLevel = 1;
  /** LSR error bits (only OE can occur here); cleared by reading LSR. */
  private lineErrors = 0;
  /** MSR delta bits (3:0); cleared by reading MSR. */
  private modemDeltas = 0;
  private thrInterruptPending = false;
  private lastReceived = 0;

  /** Host input not yet read by the guest (ring buffer, grows on demand). */
  private hostQueue = new Uint8Array(4096);
  private hostHead = 0;
  private hostCount = 0;

  /** Loopback receive FIFO: bytes the guest sent to itself. */
  private readonly loopFifo = new Uint8Array(FIFO_SIZE);
  private loopHead = 0;
  private loopCount = 0;

  constructor(options: Uart16550Options) {
    this.irq = options.irq;
    this.onTransmit = options.onTransmit;
    this.holdInput = options.rtsFlowControl ?? true;
  }

  /** Queues host bytes for the guest to receive. Nothing is ever dropped. */
  receive(bytes: Uint8Array): void {
    const n = bytes.length;
    if (n === 0) return;
    this.ensureHostCapacity(this.hostCount + n);
    const queue = this.hostQueue;
    const mask = queue.length - 1;
    let tail = (this.hostHead + this.hostCount) & mask;
    for (let i = 0; i < n; i++) {
      queue[tail] = bytes[i]!;
      tail = (tail + 1) & mask;
    }
    this.hostCount += n;
    this.updateInterrupt();
  }

  /** Host bytes queued and not yet read by the guest (for flow control by the caller). */
  get pendingInput(): number {
    return this.hostCount;
  }

  /** Removes and returns every queued host byte the guest has not read (to carry input across a reboot). */
  takePendingInput(): Uint8Array {
    const out = new Uint8Array(this.hostCount);
    const mask = this.hostQueue.length - 1;
    for (let i = 0; i < out.length; i++) out[i] = this.hostQueue[(this.hostHead + i) & mask]!;
    this.hostHead = 0;
    this.hostCount = 0;
    this.updateInterrupt();
    return out;
  }

  /** Returns the registers to their power-on state; queued host input is kept. */
  reset(): void {
    this.ier = 0;
    this.lcr = 0;
    this.mcr = 0;
    this.scr = 0;
    this.dll = 0x0c;
    this.dlm = 0;
    this.fifoEnabled = false;
    this.triggerLevel = 1;
    this.lineErrors = 0;
    this.modemDeltas = 0;
    this.thrInterruptPending = false;
    this.loopCount = 0;
    this.updateInterrupt();
  }

  read(offset: number, size: AccessSize): number {
    if (size === 1) return this.readRegister(offset);
    let value = 0;
    for (let i = 0; i < size; i++) {
      const reg = offset + i;
      value |= (reg < UART_PORT_COUNT ? this.readRegister(reg) : 0xff) << (8 * i);
    }
    return value >>> 0;
  }

  write(offset: number, size: AccessSize, value: number): void {
    if (size === 1) {
      this.writeRegister(offset, value & 0xff);
      return;
    }
    for (let i = 0; i < size; i++) {
      const reg = offset + i;
      if (reg < UART_PORT_COUNT) this.writeRegister(reg, (value >>> (8 * i)) & 0xff);
    }
  }

  private readRegister(reg: number): number {
    switch (reg) {
      case UartReg.DATA:
        return this.lcr & LCR_DLAB ? this.dll : this.readReceiveBuffer();
      case UartReg.IER:
        return this.lcr & LCR_DLAB ? this.dlm : this.ier;
      case UartReg.IIR_FCR: {
        const id = this.interruptId();
        if (id === IIR_THR_EMPTY) {
          // Reading IIR while it reports THR empty acknowledges that interrupt.
          this.thrInterruptPending = false;
          this.updateInterrupt();
        }
        return id | (this.fifoEnabled ? IIR_FIFO_ENABLED : 0);
      }
      case UartReg.LCR:
        return this.lcr;
      case UartReg.MCR:
        return this.mcr;
      case UartReg.LSR: {
        const value = (this.receiveCount() > 0 ? LSR_DR : 0) | this.lineErrors | LSR_THRE | LSR_TEMT;
        if (this.lineErrors !== 0) {
          this.lineErrors = 0;
          this.updateInterrupt();
        }
        return value;
      }
      case UartReg.MSR: {
        const value = this.modemInputs() | this.modemDeltas;
        if (this.modemDeltas !== 0) {
          this.modemDeltas = 0;
          this.updateInterrupt();
        }
        return value;
      }
      case UartReg.SCR:
        return this.scr;
      default:
        return 0xff;
    }
  }

  private writeRegister(reg: number, value: number): void {
    switch (reg) {
      case UartReg.DATA:
        if (this.lcr & LCR_DLAB) this.dll = value;
        else this.transmit(value);
        return;
      case UartReg.IER:
        if (this.lcr & LCR_DLAB) {
          this.dlm = value;
          return;
        }
        this.writeIer(value & 0x0f);
        return;
      case UartReg.IIR_FCR:
        this.writeFcr(value);
        return;
      case UartReg.LCR:
        this.lcr = value;
        return;
      case UartReg.MCR:
        this.writeMcr(value & 0x1f);
        return;
      case UartReg.LSR:
        return; // read-only (factory test register on some parts)
      case UartReg.MSR:
        return; // read-only
      case UartReg.SCR:
        this.scr = value;
        return;
    }
  }

  private transmit(byte: number): void {
    if (this.mcr & MCR_LOOP) {
      if (this.loopCount >= this.fifoCapacity()) {
        this.lineErrors |= LSR_OE;
      } else {
        this.loopFifo[(this.loopHead + this.loopCount) & (FIFO_SIZE - 1)] = byte;
        this.loopCount++;
      }
    } else {
      this.onTransmit(byte);
    }
    // The byte left THR (and the shift register) at once: THR is empty again.
    this.thrInterruptPending = true;
    this.updateInterrupt();
  }

  private writeIer(value: number): void {
    const old = this.ier;
    this.ier = value;
    // Enabling ETBEI while THR is empty raises the THR-empty interrupt again,
    // even if it was acknowledged before (Linux and Windows rely on this).
    if (value & IER_ETBEI && !(old & IER_ETBEI)) this.thrInterruptPending = true;
    this.updateInterrupt();
  }

  private writeFcr(value: number): void {
    const enable = (value & FCR_ENABLE) !== 0;
    if (enable !== this.fifoEnabled || value & FCR_CLEAR_RX) this.loopCount = 0;
    this.fifoEnabled = enable;
    if (enable) this.triggerLevel = TRIGGER_LEVELS[(value >>> 6) & 3]!;
    if (this.loopCount > this.fifoCapacity()) this.loopCount = this.fifoCapacity();
    this.updateInterrupt();
  }

  private writeMcr(value: number): void {
    const oldInputs = this.modemInputs();
    const wasLoop = (this.mcr & MCR_LOOP) !== 0;
    this.mcr = value;
    if (wasLoop && !(value & MCR_LOOP)) this.loopCount = 0;
    const newInputs = this.modemInputs();
    const changed = oldInputs ^ newInputs;
    if (changed & MSR_CTS) this.modemDeltas |= MSR_DCTS;
    if (changed & MSR_DSR) this.modemDeltas |= MSR_DDSR;
    if (changed & MSR_DCD) this.modemDeltas |= MSR_DDCD;
    if (oldInputs & MSR_RI && !(newInputs & MSR_RI)) this.modemDeltas |= MSR_TERI;
    this.updateInterrupt();
  }

  /** The modem status inputs (MSR bits 7:4): looped back from MCR, or a connected line. */
  private modemInputs(): number {
    const mcr = this.mcr;
    if (!(mcr & MCR_LOOP)) return MSR_CONNECTED;
    return (
      (mcr & MCR_RTS ? MSR_CTS : 0) |
      (mcr & MCR_DTR ? MSR_DSR : 0) |
      (mcr & MCR_OUT1 ? MSR_RI : 0) |
      (mcr & MCR_OUT2 ? MSR_DCD : 0)
    );
  }

  private fifoCapacity(): number {
    return this.fifoEnabled ? FIFO_SIZE : 1;
  }

  /** Bytes currently in the receive FIFO (or holding register). */
  private receiveCount(): number {
    if (this.mcr & MCR_LOOP) return this.loopCount;
    if (this.holdInput && !(this.mcr & MCR_RTS)) return 0;
    const capacity = this.fifoCapacity();
    return this.hostCount < capacity ? this.hostCount : capacity;
  }

  private readReceiveBuffer(): number {
    if (this.mcr & MCR_LOOP) {
      if (this.loopCount > 0) {
        this.lastReceived = this.loopFifo[this.loopHead]!;
        this.loopHead = (this.loopHead + 1) & (FIFO_SIZE - 1);
        this.loopCount--;
        this.updateInterrupt();
      }
    } else if (this.receiveCount() > 0) {
      this.lastReceived = this.hostQueue[this.hostHead]!;
      this.hostHead = (this.hostHead + 1) & (this.hostQueue.length - 1);
      this.hostCount--;
      this.updateInterrupt();
    }
    return this.lastReceived;
  }

  /** The highest-priority pending and enabled interrupt (IIR bits 3:0). */
  private interruptId(): number {
    const ier = this.ier;
    if (ier & IER_ELSI && this.lineErrors !== 0) return IIR_LINE_STATUS;
    if (ier & IER_ERBFI) {
      const count = this.receiveCount();
      if (count > 0) return this.fifoEnabled && count < this.triggerLevel ? IIR_CHAR_TIMEOUT : IIR_RX_DATA;
    }
    if (ier & IER_ETBEI && this.thrInterruptPending) return IIR_THR_EMPTY;
    if (ier & IER_EDSSI && this.modemDeltas !== 0) return IIR_MODEM_STATUS;
    return IIR_NONE;
  }

  private updateInterrupt(): void {
    // On a PC the UART's interrupt output reaches the PIC only through OUT2;
    // in loopback mode the OUT2 pin is forced inactive, so nothing is driven.
    const gated = (this.mcr & (MCR_OUT2 | MCR_LOOP)) === MCR_OUT2;
    this.irq.set(gated && this.interruptId() !== IIR_NONE);
  }

  private ensureHostCapacity(needed: number): void {
    const old = this.hostQueue;
    if (needed <= old.length) return;
    let size = old.length;
    while (size < needed) size *= 2;
    const grown = new Uint8Array(size);
    const mask = old.length - 1;
    for (let i = 0; i < this.hostCount; i++) grown[i] = old[(this.hostHead + i) & mask]!;
    this.hostQueue = grown;
    this.hostHead = 0;
  }
}
