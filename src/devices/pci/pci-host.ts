/**
 * The PCI host bridge of typevisor's PC: bus 0 reached through configuration
 * mechanism #1 (PCI Local Bus 3.0, 3.2.2.3.2) — a 32-bit address register at
 * port 0xcf8 and a data window at 0xcfc-0xcff — with the host bridge itself at
 * 00:00.0 and up to 31 single-function devices in slots 1-31.
 *
 * Like firmware, the host assigns every BAR an address when the device is
 * added (memory BARs naturally aligned in [PCI_MMIO_START, PCI_MMIO_END), I/O
 * BARs in [PCI_IO_START, PCI_IO_END)); Linux keeps those assignments because
 * they lie inside the windows the DSDT's _CRS declares. When the guest moves
 * a BAR or toggles decoding in COMMAND, the host moves the device's range on
 * the MMIO or port bus.
 *
 * Port 0xcf9 (reset control) sits inside the 0xcf8-0xcfb block on a PC, and
 * the bus gives one range one device. So, as on a PIIX, the block is decoded
 * by width: `addressPort` (0xcf8, 4 ports) takes dword accesses at 0xcf8 as
 * CONFIG_ADDRESS and hands narrower accesses to the `narrowPorts` device given
 * at construction (the platform passes the reset-control register at offset 1).
 *
 * Host bridge IDs: vendor 0x1b36, device 0x0008 (the generic "PCIe host bridge"
 * ID QEMU uses for its gpex/microvm machines). Linux needs only the class code
 * 0x0600 (host bridge) at 00:00.0 to trust mechanism #1 (pci_sanity_check),
 * and no Linux quirk binds to this ID.
 */

import { BusConflictError, type Bus, type BusDevice, type PortBus } from '../../machine/bus.js';
import type { InterruptController } from '../../machine/interrupts.js';
import { PCI_INTX_GSI_BASE, PCI_INTX_GSI_COUNT, PCI_IO_END, PCI_IO_START, PCI_MMIO_END, PCI_MMIO_START } from '../../machine/layout.js';
import { PciReg } from './config-space.js';
import { PciFunction } from './pci-function.js';

export const PCI_HOST_BRIDGE_VENDOR = 0x1b36;
export const PCI_HOST_BRIDGE_DEVICE = 0x0008;
export const PCI_CLASS_HOST_BRIDGE = 0x060000;
export const PCI_SLOTS = 32;

/** Raised when devices do not fit (no free slot, BAR window exhausted): a configuration problem. */
export class PciHostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PciHostError';
  }
}

/** One _PRT entry: slot and pin (0 = INTA#) to a GSI. */
export interface PciIntxRoute {
  readonly slot: number;
  readonly pin: number;
  readonly gsi: number;
}

export interface PciHostOptions {
  readonly mmio: Bus;
  readonly ports: PortBus;
  readonly interrupts: InterruptController;
  /** Receives the byte/word accesses to 0xcf8-0xcfb (offsets relative to 0xcf8). */
  readonly narrowPorts?: BusDevice;
}

const ADDRESS_ENABLE = 0x80000000;
const ALL_ONES = [0, 0xff, 0xffff, 0, 0xffffffff] as const;

interface Slot {
  readonly fn: PciFunction;
  readonly name: string;
  /** Where each BAR is currently attached (undefined: not attached). */
  readonly mapped: (number | undefined)[];
}

export class PciHost {
  /** Port 0xcf8: the CONFIG_ADDRESS register (dword accesses only). */
  readonly addressPort: BusDevice;
  /** Ports 0xcfc-0xcff: the CONFIG_DATA window. */
  readonly dataPort: BusDevice;
  private configAddress = 0;
  private readonly slots: (Slot | undefined)[] = new Array<Slot | undefined>(PCI_SLOTS).fill(undefined);
  private nextMmio = PCI_MMIO_START;
  private nextIo = PCI_IO_START;
  private readonly intxAsserted = new Uint8Array(PCI_SLOTS);
  private readonly mmio: Bus;
  private readonly ports: PortBus;
  private readonly interrupts: InterruptController;

  constructor(options: PciHostOptions) {
    this.mmio = options.mmio;
    this.ports = options.ports;
    this.interrupts = options.interrupts;
    const narrow = options.narrowPorts;
    this.addressPort = {
      read: (offset, size) => {
        if (size === 4) return offset === 0 ? this.configAddress : ALL_ONES[size];
        return narrow !== undefined ? narrow.read(offset, size) : ALL_ONES[size];
      },
      write: (offset, size, value) => {
        if (size === 4) {
          if (offset === 0) this.configAddress = (value & 0x80fffffc) >>> 0;
        } else {
          narrow?.write(offset, size, value);
        }
      },
    };
    this.dataPort = {
      read: (offset, size) => this.configDataRead(offset, size),
      write: (offset, size, value) => this.configDataWrite(offset, size, value),
    };
    const bridge = new PciFunction({ vendorId: PCI_HOST_BRIDGE_VENDOR, deviceId: PCI_HOST_BRIDGE_DEVICE, classCode: PCI_CLASS_HOST_BRIDGE });
    this.slots[0] = { fn: bridge, name: 'host-bridge', mapped: [] };
  }

  /** The GSI that slot `slot`'s INTA# drives (INTB-D rotate like a standard swizzle). */
  static intxGsi(slot: number, pin = 0): number {
    return PCI_INTX_GSI_BASE + ((slot + pin) % PCI_INTX_GSI_COUNT);
  }

  /** Adds a function in the first free slot (or `slot`), assigns its BARs and wires INTA#; returns the slot. */
  addDevice(fn: PciFunction, name: string, slot?: number): number {
    const s = slot ?? this.slots.findIndex((x) => x === undefined);
    if (s < 1 || s >= PCI_SLOTS || this.slots[s] !== undefined) throw new PciHostError(`no free PCI slot for ${name}`);
    for (let i = 0; i < 6; i++) {
      const bar = fn.bars[i];
      if (bar === undefined) continue;
      if (bar.kind === 'io') {
        const at = Math.ceil(this.nextIo / bar.size) * bar.size;
        if (at + bar.size > PCI_IO_END) throw new PciHostError(`PCI I/O window exhausted by ${name}`);
        fn.assignBar(i, at);
        this.nextIo = at + bar.size;
      } else {
        const at = Math.ceil(this.nextMmio / bar.size) * bar.size;
        if (at + bar.size > PCI_MMIO_END) throw new PciHostError(`PCI MMIO window exhausted by ${name}`);
        fn.assignBar(i, at);
        this.nextMmio = at + bar.size;
      }
    }
    const gsi = PciHost.intxGsi(s);
    fn.config.set8(PciReg.INTERRUPT_PIN, 1);
    fn.config.set8(PciReg.INTERRUPT_LINE, gsi);
    this.slots[s] = { fn, name, mapped: [undefined, undefined, undefined, undefined, undefined, undefined] };
    fn.connectIntx((asserted) => this.setIntx(s, asserted));
    this.remap(s);
    return s;
  }

  /** The function in `slot`, if any. */
  device(slot: number): PciFunction | undefined {
    return this.slots[slot]?.fn;
  }

  /** _PRT entries for every occupied slot's INTA#. */
  intxRoutes(): PciIntxRoute[] {
    const routes: PciIntxRoute[] = [];
    for (let s = 1; s < PCI_SLOTS; s++) {
      if (this.slots[s] === undefined) continue;
      for (let pin = 0; pin < 4; pin++) routes.push({ slot: s, pin, gsi: PciHost.intxGsi(s, pin) });
    }
    return routes;
  }

  /** The selected function and register offset, or undefined when nothing answers. */
  private selected(portOffset: number, size: number): { slot: Slot; offset: number } | undefined {
    const a = this.configAddress;
    if ((a & ADDRESS_ENABLE) === 0) return undefined;
    if (((a >>> 16) & 0xff) !== 0 || ((a >>> 8) & 7) !== 0) return undefined; // bus 0, function 0 only
    if (portOffset + size > 4) return undefined;
    const slot = this.slots[(a >>> 11) & 0x1f];
    if (slot === undefined) return undefined;
    const offset = (a & 0xfc) + portOffset;
    if ((offset & (size - 1)) !== 0) return undefined;
    return { slot, offset };
  }

  private configDataRead(portOffset: number, size: 1 | 2 | 4): number {
    const sel = this.selected(portOffset, size);
    if (sel === undefined) return ALL_ONES[size];
    return sel.slot.fn.configRead(sel.offset, size);
  }

  private configDataWrite(portOffset: number, size: 1 | 2 | 4, value: number): void {
    const sel = this.selected(portOffset, size);
    if (sel === undefined) return;
    sel.slot.fn.configWrite(sel.offset, size, value);
    const s = (this.configAddress >>> 11) & 0x1f;
    if (sel.offset < PciReg.COMMAND + 2 || (sel.offset >= PciReg.BAR0 && sel.offset < PciReg.BAR0 + 24)) this.remap(s);
  }

  /** Moves each BAR's bus range to where the function now decodes it. */
  private remap(s: number): void {
    const slot = this.slots[s];
    if (slot === undefined) return;
    const fn = slot.fn;
    for (let i = 0; i < 6; i++) {
      const bar = fn.bars[i];
      if (bar === undefined) continue;
      let want = fn.barAddress(i);
      const have = slot.mapped[i];
      if (want === have) continue;
      const bus = bar.kind === 'io' ? this.ports : this.mmio;
      if (have !== undefined) bus.remove(have);
      if (want !== undefined) {
        try {
          bus.insert(want, bar.size, bar.device, `${slot.name}-bar${i}`);
        } catch (e) {
          // A guest placing a BAR over another device's range: leave it undecoded.
          if (!(e instanceof BusConflictError) && !(e instanceof RangeError)) throw e;
          want = undefined;
        }
      }
      slot.mapped[i] = want;
      fn.barMoved(i, want);
    }
  }

  private setIntx(slot: number, asserted: boolean): void {
    const level = asserted ? 1 : 0;
    if (this.intxAsserted[slot] === level) return;
    this.intxAsserted[slot] = level;
    const gsi = PciHost.intxGsi(slot);
    let any = false;
    for (let s = 1; s < PCI_SLOTS; s++) if (this.intxAsserted[s] !== 0 && PciHost.intxGsi(s) === gsi) any = true;
    this.interrupts.setIrq(gsi, any);
  }
}
