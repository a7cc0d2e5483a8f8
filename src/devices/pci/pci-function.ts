/**
 * A PCI function as the host bridge sees it: a configuration space with
 * base address registers (BARs) that decode guest-physical ranges, an INTx
 * pin, and hooks a device model overrides to see config writes and BAR moves.
 *
 * BAR sizing works the way hardware does it: the address bits below the BAR's
 * size are read-only zero, so a guest writing all ones reads back the size
 * mask. Where a BAR currently decodes (its address while the COMMAND register's
 * memory or I/O enable is set) is computed by `barAddress`; the host bridge
 * moves the bus ranges when it changes.
 */

import type { BusDevice } from '../../machine/bus.js';
import { PciCommand, PciConfigSpace, PciReg, PciStatus } from './config-space.js';

export type BarKind = 'mem32' | 'mem64' | 'io';

export interface BarDefinition {
  /** BAR register index 0-5; a 64-bit BAR also uses index+1. */
  readonly index: number;
  readonly kind: BarKind;
  /** Size in bytes: a power of two, at least 16 for memory and 4 for I/O. */
  readonly size: number;
  readonly prefetchable?: boolean;
  /** Handles accesses inside the BAR; offsets are relative to the BAR's base. */
  readonly device: BusDevice;
}

/** Identity registers every function sets. */
export interface PciIdentity {
  readonly vendorId: number;
  readonly deviceId: number;
  readonly classCode: number;
  readonly revision?: number;
  readonly subsystemVendorId?: number;
  readonly subsystemId?: number;
  /** Header type (0 = endpoint); bit 7 multi-function. */
  readonly headerType?: number;
}

const TWO_32 = 0x1_0000_0000;

/** Receives the level of a function's INTx pin (after INTX_DISABLE is applied). */
export type IntxSink = (asserted: boolean) => void;

export class PciFunction {
  readonly config = new PciConfigSpace();
  readonly bars: (BarDefinition | undefined)[] = [undefined, undefined, undefined, undefined, undefined, undefined];
  private intxRequested = false;
  private intxSink: IntxSink | undefined;

  constructor(identity: PciIdentity) {
    const c = this.config;
    c.set16(PciReg.VENDOR_ID, identity.vendorId);
    c.set16(PciReg.DEVICE_ID, identity.deviceId);
    c.set8(PciReg.REVISION_ID, identity.revision ?? 0);
    c.setClassCode(identity.classCode);
    c.set8(PciReg.HEADER_TYPE, identity.headerType ?? 0);
    c.set16(PciReg.SUBSYSTEM_VENDOR_ID, identity.subsystemVendorId ?? 0);
    c.set16(PciReg.SUBSYSTEM_ID, identity.subsystemId ?? 0);
  }

  /** Declares a BAR; call before the function is added to a host bridge. */
  defineBar(bar: BarDefinition): void {
    const { index, kind, size } = bar;
    const min = kind === 'io' ? 4 : 16;
    if (!Number.isInteger(index) || index < 0 || index > (kind === 'mem64' ? 4 : 5)) throw new RangeError(`bad BAR index ${index}`);
    if (!Number.isSafeInteger(size) || size < min || (size & (size - 1)) !== 0 || size > 2 ** 31) throw new RangeError(`bad BAR size ${size}`);
    const reg = PciReg.BAR0 + 4 * index;
    const typeBits = kind === 'io' ? 1 : (kind === 'mem64' ? 4 : 0) | (bar.prefetchable === true ? 8 : 0);
    this.config.set32(reg, typeBits);
    this.config.setWritable(reg, 4, ~(size - 1) & (kind === 'io' ? 0xfffffffc : 0xfffffff0));
    if (kind === 'mem64') this.config.setWritable(reg + 4, 4, 0xffffffff);
    this.bars[index] = bar;
  }

  /** Sets a BAR's address register (firmware-style assignment before the guest runs). */
  assignBar(index: number, address: number): void {
    const bar = this.bars[index];
    if (bar === undefined) throw new RangeError(`BAR ${index} is not defined`);
    const reg = PciReg.BAR0 + 4 * index;
    const low = this.config.get32(reg) & (bar.kind === 'io' ? 3 : 0xf);
    this.config.set32(reg, (address % TWO_32) | low);
    if (bar.kind === 'mem64') this.config.set32(reg + 4, Math.floor(address / TWO_32));
  }

  /**
   * The guest-physical (or port) address BAR `index` decodes, or undefined if
   * it is not defined, its decode is disabled in COMMAND, or it is not a safe integer.
   */
  barAddress(index: number): number | undefined {
    const bar = this.bars[index];
    if (bar === undefined) return undefined;
    const command = this.config.get16(PciReg.COMMAND);
    const reg = PciReg.BAR0 + 4 * index;
    if (bar.kind === 'io') {
      if ((command & PciCommand.IO_SPACE) === 0) return undefined;
      const port = (this.config.get32(reg) & 0xfffffffc) >>> 0;
      return port + bar.size <= 0x10000 ? port : undefined;
    }
    if ((command & PciCommand.MEMORY_SPACE) === 0) return undefined;
    const low = (this.config.get32(reg) & 0xfffffff0) >>> 0;
    const high = bar.kind === 'mem64' ? this.config.get32(reg + 4) : 0;
    const address = high * TWO_32 + low;
    return Number.isSafeInteger(address + bar.size) ? address : undefined;
  }

  /** Called by the host bridge for a guest config read at an aligned offset. */
  configRead(offset: number, size: 1 | 2 | 4): number {
    return this.config.read(offset, size);
  }

  /** Called by the host bridge for a guest config write at an aligned offset. */
  configWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    this.config.write(offset, size, value);
    if (offset < PciReg.COMMAND + 2 && offset + size > PciReg.COMMAND) this.updateIntx();
    this.configWritten(offset, size);
  }

  /** Hook: a guest config write just landed (after masks). */
  protected configWritten(_offset: number, _size: number): void {}

  /** Hook: BAR `index` now decodes at `address` (undefined: not decoded). */
  barMoved(_index: number, _address: number | undefined): void {}

  /** Connects the function's INTx pin to the platform (done by the host bridge). */
  connectIntx(sink: IntxSink): void {
    this.intxSink = sink;
    this.updateIntx();
  }

  /** The device model's INTx request; delivered unless COMMAND.INTX_DISABLE is set. */
  setIntx(asserted: boolean): void {
    if (asserted === this.intxRequested) return;
    this.intxRequested = asserted;
    this.updateIntx();
  }

  private updateIntx(): void {
    const c = this.config;
    const status = c.get16(PciReg.STATUS);
    c.set16(PciReg.STATUS, this.intxRequested ? status | PciStatus.INTERRUPT : status & ~PciStatus.INTERRUPT);
    const enabled = (c.get16(PciReg.COMMAND) & PciCommand.INTX_DISABLE) === 0;
    this.intxSink?.(this.intxRequested && enabled);
  }

  /** Hook: the platform is resetting the function (guest reboot is handled by rebuilding, so this is optional). */
  reset(): void {}
}
