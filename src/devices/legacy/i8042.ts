/**
 * The i8042 PS/2 controller at ports 0x60 (data) and 0x64 (status/command),
 * with a minimal keyboard behind it and an empty mouse port.
 *
 * Enough for Linux's i8042 and atkbd drivers to probe and initialise it
 * without timeouts (self-test, interface tests, command byte, port
 * enable/disable, AUX loopback, keyboard reset/identify/LEDs/typematic/scan
 * set), and for guest reboots: command 0xFE (pulse output-port bit 0) and
 * writing the output port with bit 0 clear both raise a reset event.
 * IRQ1 is asserted while keyboard data waits in the output buffer and the
 * command byte enables keyboard interrupts; IRQ12 likewise for AUX data when
 * an AUX line is given.
 *
 * The mouse port is empty: bytes sent to the mouse (0xD4) are answered with
 * 0xFE plus the timeout status bit, as a controller with nothing plugged in
 * does. To make Linux skip the AUX probe entirely, the DSDT can describe only
 * the keyboard (PNP0303) and no PS/2 mouse (PNP0F13).
 */

import type { AccessSize, BusDevice } from '../../machine/bus.js';
import type { InterruptLine } from '../../machine/interrupts.js';
import { RESET_EVENT, type SystemEventSink } from '../system-event.js';

// Status register bits.
const STS_OBF = 0x01;
const STS_SYS = 0x04;
const STS_CMD = 0x08;
const STS_UNLOCKED = 0x10;
const STS_AUXDATA = 0x20;
const STS_TIMEOUT = 0x40;

// Command byte (controller RAM byte 0) bits.
const CTR_KBDINT = 0x01;
const CTR_AUXINT = 0x02;
const CTR_SYS = 0x04;
const CTR_KBDDIS = 0x10;
const CTR_AUXDIS = 0x20;
const CTR_XLATE = 0x40;

// Output port bits.
const OUT_RESET_INACTIVE = 0x01;
const OUT_A20 = 0x02;
const OUT_KBD_OBF = 0x10;
const OUT_AUX_OBF = 0x20;

// Output queue entry flags (above the data byte).
const FROM_AUX = 0x100;
const WITH_TIMEOUT = 0x200;

const KBD_ACK = 0xfa;
const KBD_RESEND = 0xfe;
const KBD_BAT_OK = 0xaa;

const QUEUE_SIZE = 32;

/** The command byte left by a BIOS: keyboard interrupt, system flag, AUX disabled, scancode translation. */
export const I8042_INITIAL_COMMAND_BYTE = CTR_KBDINT | CTR_SYS | CTR_AUXDIS | CTR_XLATE;

export interface I8042Options {
  /** IRQ1. */
  readonly keyboardIrq: InterruptLine;
  /** IRQ12, if the platform wires the mouse interrupt. */
  readonly auxIrq?: InterruptLine;
  /** Receives `reset` when the guest pulses the CPU reset line. */
  readonly onSystemEvent: SystemEventSink;
}

export class I8042Controller {
  /** Attach at `Ports.I8042_DATA` (0x60), length 1. */
  readonly dataPort: BusDevice;
  /** Attach at `Ports.I8042_COMMAND` (0x64), length 1. */
  readonly commandPort: BusDevice;

  private readonly keyboardIrq: InterruptLine;
  private readonly auxIrq: InterruptLine | undefined;
  private readonly onSystemEvent: SystemEventSink;

  /** Controller RAM; byte 0 is the command byte. */
  private readonly ram = new Uint8Array(32);
  private outputPort = OUT_RESET_INACTIVE | OUT_A20;
  private lastWriteWasCommand = false;
  /** A controller command waiting for its data byte (0 = none). */
  private pendingCommand = 0;
  /** A keyboard command waiting for its parameter byte (0 = none). */
  private pendingKeyboardCommand = 0;
  private lastData = 0;
  private readonly queue = new Uint16Array(QUEUE_SIZE);
  private queueHead = 0;
  private queueCount = 0;

  constructor(options: I8042Options) {
    this.keyboardIrq = options.keyboardIrq;
    this.auxIrq = options.auxIrq;
    this.onSystemEvent = options.onSystemEvent;
    this.ram[0] = I8042_INITIAL_COMMAND_BYTE;
    this.dataPort = {
      read: (_offset: number, _size: AccessSize) => this.readData(),
      write: (_offset: number, _size: AccessSize, value: number) => this.writeData(value & 0xff),
    };
    this.commandPort = {
      read: (_offset: number, _size: AccessSize) => this.readStatus(),
      write: (_offset: number, _size: AccessSize, value: number) => this.writeCommand(value & 0xff),
    };
  }

  /** The current command byte (for diagnostics and tests). */
  get commandByte(): number {
    return this.ram[0];
  }

  /** Whether the guest enabled the A20 gate through the output port. */
  get a20Enabled(): boolean {
    return (this.outputPort & OUT_A20) !== 0;
  }

  /** Queues scancodes as if typed on the keyboard (dropped when the buffer is full). */
  injectKeyboardBytes(bytes: Uint8Array): void {
    for (const b of bytes) this.enqueue(b);
    this.updateInterrupts();
  }

  /** Returns to the power-on state. */
  reset(): void {
    this.ram.fill(0);
    this.ram[0] = I8042_INITIAL_COMMAND_BYTE;
    this.outputPort = OUT_RESET_INACTIVE | OUT_A20;
    this.lastWriteWasCommand = false;
    this.pendingCommand = 0;
    this.pendingKeyboardCommand = 0;
    this.queueCount = 0;
    this.updateInterrupts();
  }

  private readStatus(): number {
    let status = STS_UNLOCKED | (this.lastWriteWasCommand ? STS_CMD : 0) | (this.ram[0] & CTR_SYS ? STS_SYS : 0);
    if (this.queueCount > 0) {
      const head = this.queue[this.queueHead];
      status |= STS_OBF | (head & FROM_AUX ? STS_AUXDATA : 0) | (head & WITH_TIMEOUT ? STS_TIMEOUT : 0);
    }
    return status;
  }

  private readData(): number {
    if (this.queueCount === 0) return this.lastData;
    this.lastData = this.queue[this.queueHead] & 0xff;
    this.queueHead = (this.queueHead + 1) % QUEUE_SIZE;
    this.queueCount--;
    // Drop the lines so that a following byte produces a fresh edge.
    this.keyboardIrq.lower();
    this.auxIrq?.lower();
    this.updateInterrupts();
    return this.lastData;
  }

  private writeCommand(command: number): void {
    this.lastWriteWasCommand = true;
    this.pendingCommand = 0;
    if (command >= 0x20 && command <= 0x3f) {
      this.enqueue(this.ram[command & 0x1f]);
    } else if ((command >= 0x60 && command <= 0x7f) || command === 0xd1 || command === 0xd2 || command === 0xd3 || command === 0xd4) {
      this.pendingCommand = command;
    } else if (command >= 0xf0) {
      // Pulse output-port lines whose bit is clear in the low nibble; bit 0 is CPU reset.
      if (!(command & 0x01)) this.onSystemEvent(RESET_EVENT);
    } else {
      switch (command) {
        case 0xa7:
          this.ram[0] |= CTR_AUXDIS;
          break;
        case 0xa8:
          this.ram[0] &= ~CTR_AUXDIS;
          break;
        case 0xa9: // AUX interface test: no error
        case 0xab: // keyboard interface test: no error
          this.enqueue(0x00);
          break;
        case 0xaa: // controller self-test
          this.ram[0] |= CTR_SYS;
          this.enqueue(0x55);
          break;
        case 0xad:
          this.ram[0] |= CTR_KBDDIS;
          break;
        case 0xae:
          this.ram[0] &= ~CTR_KBDDIS;
          break;
        case 0xc0: // input port: keyboard not inhibited
          this.enqueue(0x80);
          break;
        case 0xd0:
          this.enqueue(this.readOutputPort());
          break;
        case 0xdd:
          this.outputPort &= ~OUT_A20;
          break;
        case 0xdf:
          this.outputPort |= OUT_A20;
          break;
        case 0xe0: // test inputs
          this.enqueue(0x00);
          break;
        default:
          break; // unknown commands are ignored
      }
    }
    this.updateInterrupts();
  }

  private writeData(value: number): void {
    this.lastWriteWasCommand = false;
    const command = this.pendingCommand;
    if (command !== 0) {
      this.pendingCommand = 0;
      if (command >= 0x60 && command <= 0x7f) {
        this.ram[command & 0x1f] = value;
      } else if (command === 0xd1) {
        this.outputPort = value;
        if (!(value & OUT_RESET_INACTIVE)) this.onSystemEvent(RESET_EVENT);
      } else if (command === 0xd2) {
        this.enqueue(value);
      } else if (command === 0xd3) {
        this.enqueue(value | FROM_AUX);
      } else {
        // 0xD4: byte for the mouse; nothing is plugged in.
        this.enqueue(KBD_RESEND | FROM_AUX | WITH_TIMEOUT);
      }
    } else {
      // Sending to the keyboard re-enables its interface.
      this.ram[0] &= ~CTR_KBDDIS;
      this.keyboardWrite(value);
    }
    this.updateInterrupts();
  }

  private keyboardWrite(value: number): void {
    const pending = this.pendingKeyboardCommand;
    if (pending !== 0) {
      this.pendingKeyboardCommand = 0;
      this.enqueue(KBD_ACK);
      if (pending === 0xf0 && value === 0) this.enqueue(0x02); // current scan code set
      return;
    }
    switch (value) {
      case 0xff: // reset and self-test
        this.enqueue(KBD_ACK);
        this.enqueue(KBD_BAT_OK);
        break;
      case 0xf2: // identify: MF2 keyboard (0x83 is seen as 0x41 through translation)
        this.enqueue(KBD_ACK);
        this.enqueue(0xab);
        this.enqueue(this.ram[0] & CTR_XLATE ? 0x41 : 0x83);
        break;
      case 0xed: // set LEDs
      case 0xf3: // set typematic rate
      case 0xf0: // get/set scan code set
        this.enqueue(KBD_ACK);
        this.pendingKeyboardCommand = value;
        break;
      case 0xee: // echo
        this.enqueue(0xee);
        break;
      default:
        // 0xF4 enable, 0xF5 disable, 0xF6 defaults, 0xF7-0xFD typematic modes, 0xFE resend.
        this.enqueue(value >= 0xf4 ? KBD_ACK : KBD_RESEND);
        break;
    }
  }

  private readOutputPort(): number {
    let value = this.outputPort & ~(OUT_KBD_OBF | OUT_AUX_OBF);
    if (this.queueCount > 0) value |= this.queue[this.queueHead] & FROM_AUX ? OUT_AUX_OBF : OUT_KBD_OBF;
    return value;
  }

  private enqueue(entry: number): void {
    if (this.queueCount === QUEUE_SIZE) return;
    this.queue[(this.queueHead + this.queueCount) % QUEUE_SIZE] = entry;
    this.queueCount++;
  }

  private updateInterrupts(): void {
    let keyboard = false;
    let aux = false;
    if (this.queueCount > 0) {
      const ctr = this.ram[0];
      if (this.queue[this.queueHead] & FROM_AUX) aux = (ctr & CTR_AUXINT) !== 0;
      else keyboard = (ctr & CTR_KBDINT) !== 0;
    }
    this.keyboardIrq.set(keyboard);
    this.auxIrq?.set(aux);
  }
}
