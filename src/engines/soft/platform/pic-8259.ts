/**
 * The cascaded 8259A programmable interrupt controller pair of a PC (master at
 * ports 0x20/0x21, slave at 0xa0/0xa1 on the master's IR2) with the ELCR
 * edge/level control registers at 0x4d0/0x4d1.
 *
 * Supported: ICW1-ICW4, OCW1 (mask), OCW2 (non-specific/specific EOI, rotate
 * on EOI, set priority, rotate in auto-EOI mode), OCW3 (IRR/ISR read, poll,
 * special mask mode), auto-EOI, special fully nested mode, spurious IRQ 7/15
 * when the request went away before INTA. ICW1's LTIM bit is ignored, as on
 * PC chipsets where the ELCR selects level mode per line.
 *
 * The INTR output goes to vCPU 0's local APIC LINT0 via `onOutput`. At power-up
 * every line is masked (the state firmware leaves); ICW1 unmasks them, as the
 * datasheet says, and the guest's OCW1 sets the mask it wants.
 */

import type { BusDevice } from '../../../machine/bus.js';
import type { ExtIntSource } from './local-apic.js';

/** One 8259A. */
class Pic8259 {
  irr = 0;
  isr = 0;
  /** All lines masked at power-up, as firmware leaves them for a directly booted kernel. */
  imr = 0xff;
  /** Input line levels, for edge detection. */
  lineLevels = 0;
  /** The IR line with the lowest priority is (priorityBase + 7) & 7. */
  priorityBase = 0;
  vectorBase = 0;
  readIsr = false;
  pollPending = false;
  specialMask = false;
  /** 0: operational; 1-3: expecting ICW2, ICW3, ICW4. */
  initStep = 0;
  expectIcw4 = false;
  singleMode = false;
  autoEoi = false;
  rotateOnAutoEoi = false;
  specialFullyNested = false;
  elcr = 0;

  constructor(
    readonly isMaster: boolean,
    readonly elcrWritable: number,
  ) {}

  /** Priority rank (0 = highest) of the best line in `mask`, or 8 when empty. */
  private rank(mask: number): number {
    if (mask === 0) return 8;
    let rank = 0;
    while ((mask & (1 << ((rank + this.priorityBase) & 7))) === 0) rank++;
    return rank;
  }

  /** The line this chip would present at INTA, or -1. */
  highestRequest(): number {
    const requestRank = this.rank(this.irr & ~this.imr);
    if (requestRank === 8) return -1;
    let inService = this.isr;
    if (this.specialMask) inService &= ~this.imr;
    if (this.isMaster && this.specialFullyNested) inService &= ~(1 << 2);
    return requestRank < this.rank(inService) ? (requestRank + this.priorityBase) & 7 : -1;
  }

  setLine(line: number, level: boolean): void {
    const bit = 1 << line;
    if ((this.elcr & bit) !== 0) {
      if (level) this.irr |= bit;
      else this.irr &= ~bit;
    } else if (level && (this.lineLevels & bit) === 0) {
      this.irr |= bit; // rising edge
    }
    if (level) this.lineLevels |= bit;
    else this.lineLevels &= ~bit;
  }

  /** The INTA cycle for `line` on this chip. */
  acknowledge(line: number): void {
    const bit = 1 << line;
    if (this.autoEoi) {
      if (this.rotateOnAutoEoi) this.priorityBase = (line + 1) & 7;
    } else {
      this.isr |= bit;
    }
    if ((this.elcr & bit) === 0) this.irr &= ~bit;
  }

  /** The highest-priority in-service line, or -1. */
  private highestInService(): number {
    const rank = this.rank(this.isr);
    return rank === 8 ? -1 : (rank + this.priorityBase) & 7;
  }

  writeCommand(value: number): void {
    if ((value & 0x10) !== 0) {
      // ICW1: start initialisation.
      this.imr = 0;
      this.isr = 0;
      this.irr = 0;
      this.lineLevels = 0;
      this.priorityBase = 0;
      this.readIsr = false;
      this.pollPending = false;
      this.specialMask = false;
      this.autoEoi = false;
      this.rotateOnAutoEoi = false;
      this.specialFullyNested = false;
      this.expectIcw4 = (value & 1) !== 0;
      this.singleMode = (value & 2) !== 0;
      this.initStep = 1;
      return;
    }
    if ((value & 0x08) !== 0) {
      // OCW3.
      if ((value & 0x04) !== 0) this.pollPending = true;
      if ((value & 0x02) !== 0) this.readIsr = (value & 0x01) !== 0;
      if ((value & 0x40) !== 0) this.specialMask = (value & 0x20) !== 0;
      return;
    }
    // OCW2.
    const command = value >>> 5;
    switch (command) {
      case 0: // rotate in auto-EOI mode: clear
      case 4: // rotate in auto-EOI mode: set
        this.rotateOnAutoEoi = command === 4;
        break;
      case 1: // non-specific EOI
      case 5: {
        // rotate on non-specific EOI
        const line = this.highestInService();
        if (line >= 0) {
          this.isr &= ~(1 << line);
          if (command === 5) this.priorityBase = (line + 1) & 7;
        }
        break;
      }
      case 3: // specific EOI
      case 7: {
        // rotate on specific EOI
        const line = value & 7;
        this.isr &= ~(1 << line);
        if (command === 7) this.priorityBase = (line + 1) & 7;
        break;
      }
      case 6: // set priority: `line` becomes the lowest
        this.priorityBase = ((value & 7) + 1) & 7;
        break;
      default:
        break; // 2: no operation
    }
  }

  writeData(value: number): void {
    switch (this.initStep) {
      case 1: // ICW2
        this.vectorBase = value & 0xf8;
        this.initStep = this.singleMode ? (this.expectIcw4 ? 3 : 0) : 2;
        return;
      case 2: // ICW3 (cascade wiring: fixed on a PC)
        this.initStep = this.expectIcw4 ? 3 : 0;
        return;
      case 3: // ICW4
        this.autoEoi = (value & 0x02) !== 0;
        this.specialFullyNested = (value & 0x10) !== 0;
        this.initStep = 0;
        return;
      default: // OCW1
        this.imr = value & 0xff;
    }
  }

  readCommand(): number {
    return this.readIsr ? this.isr : this.irr;
  }
}

export class Pic8259Pair implements ExtIntSource {
  readonly master = new Pic8259(true, 0xf8);
  readonly slave = new Pic8259(false, 0xde);
  private output = false;

  /** Port block at 0x20 (2 ports). */
  readonly masterPorts: BusDevice;
  /** Port block at 0xa0 (2 ports). */
  readonly slavePorts: BusDevice;
  /** Port block at 0x4d0 (2 ports). */
  readonly elcrPorts: BusDevice;

  /** Receives the INTR output (wired to LINT0 of vCPU 0). */
  onOutput: (level: boolean) => void = () => {};

  constructor() {
    this.masterPorts = this.chipPorts(this.master);
    this.slavePorts = this.chipPorts(this.slave);
    this.elcrPorts = {
      read: (offset) => (offset === 0 ? this.master.elcr : offset === 1 ? this.slave.elcr : 0xff),
      write: (offset, _size, value) => {
        const chip = offset === 0 ? this.master : offset === 1 ? this.slave : undefined;
        if (chip === undefined) return;
        chip.elcr = value & chip.elcrWritable;
        this.update();
      },
    };
  }

  /** Drives ISA IRQ `irq` (0-15, not 2: that is the cascade input). */
  setIrq(irq: number, level: boolean): void {
    if (irq < 0 || irq > 15 || irq === 2) return;
    if (irq < 8) this.master.setLine(irq, level);
    else this.slave.setLine(irq - 8, level);
    this.update();
  }

  /** The INTR output level. */
  get intr(): boolean {
    return this.output;
  }

  peekVector(): number {
    const line = this.master.highestRequest();
    if (line < 0) return this.master.vectorBase + 7;
    if (line !== 2) return this.master.vectorBase + line;
    const slaveLine = this.slave.highestRequest();
    return this.slave.vectorBase + (slaveLine < 0 ? 7 : slaveLine);
  }

  acknowledge(): number {
    const line = this.master.highestRequest();
    let vector: number;
    if (line < 0) {
      vector = this.master.vectorBase + 7; // spurious IRQ 7: ISR untouched
    } else {
      this.master.acknowledge(line);
      if (line === 2) {
        const slaveLine = this.slave.highestRequest();
        if (slaveLine < 0) {
          vector = this.slave.vectorBase + 7; // spurious IRQ 15
        } else {
          this.slave.acknowledge(slaveLine);
          vector = this.slave.vectorBase + slaveLine;
        }
      } else {
        vector = this.master.vectorBase + line;
      }
    }
    this.update();
    return vector;
  }

  private chipPorts(chip: Pic8259): BusDevice {
    return {
      read: (offset) => {
        if (offset !== 0) return offset === 1 ? chip.imr : 0xff;
        if (chip.pollPending) {
          chip.pollPending = false;
          return this.pollRead(chip);
        }
        return chip.readCommand();
      },
      write: (offset, _size, value) => {
        if (offset === 0) chip.writeCommand(value & 0xff);
        else if (offset === 1) chip.writeData(value & 0xff);
        else return;
        this.update();
      },
    };
  }

  /** OCW3 poll: acknowledges the highest request of `chip` and reports it. */
  private pollRead(chip: Pic8259): number {
    const line = chip.highestRequest();
    if (line < 0) return 0;
    chip.acknowledge(line);
    if (chip === this.master && line === 2) {
      const slaveLine = this.slave.highestRequest();
      if (slaveLine >= 0) this.slave.acknowledge(slaveLine);
    }
    this.update();
    return 0x80 | line;
  }

  /** Propagates the slave's INTR to master IR2 and the master's INTR to the CPU. */
  private update(): void {
    this.master.setLine(2, this.slave.highestRequest() >= 0);
    const output = this.master.highestRequest() >= 0;
    if (output !== this.output) {
      this.output = output;
      this.onOutput(output);
    }
  }
}
