/**
 * The virtio-over-PCI modern transport (virtio 1.2, section 4.1), non-transitional:
 * vendor 0x1af4, device 0x1040 + device type, revision 1, with the device's
 * registers in one 64-bit memory BAR (BAR 0, 32 KiB):
 *
 * | BAR 0 offset | structure | capability |
 * |---|---|---|
 * | 0x0000 | common configuration (0x40 bytes) | VIRTIO_PCI_CAP_COMMON_CFG |
 * | 0x1000 | ISR status (read clears, lowers INTx) | VIRTIO_PCI_CAP_ISR_CFG |
 * | 0x2000 | device-specific configuration | VIRTIO_PCI_CAP_DEVICE_CFG |
 * | 0x3000 | notify: queue q at 0x3000 + 4·q (notify_off_multiplier 4) | VIRTIO_PCI_CAP_NOTIFY_CFG |
 * | 0x4000 | MSI-X table (queues + 1 vectors) | MSI-X |
 * | 0x5000 | MSI-X PBA | MSI-X |
 *
 * plus the VIRTIO_PCI_CAP_PCI_CFG window in config space. Interrupts use
 * MSI-X when the driver enables it, otherwise INTA# with the ISR. When the
 * engine offers a fast path (`FastNotify`), queue notify writes are watched by
 * the engine (KVM ioeventfd) and MSI-X vectors are fired through engine routes
 * (KVM irqfd); the BAR handlers below stay correct either way.
 */

import type { FastMsiRoute, FastNotify } from '../../engines/engine.js';
import type { BusDevice } from '../../machine/bus.js';
import type { InterruptController } from '../../machine/interrupts.js';
import type { GuestMemory } from '../../machine/memory.js';
import { PciCapabilityId } from '../pci/config-space.js';
import { Msix } from '../pci/msix.js';
import { PciFunction } from '../pci/pci-function.js';
import { VIRTIO_MSI_NO_VECTOR, VirtioCore, type VirtioDevice } from './virtio.js';

export const VIRTIO_PCI_VENDOR = 0x1af4;
export const VIRTIO_PCI_DEVICE_BASE = 0x1040;
/** Subsystem ID QEMU uses for modern-only virtio devices; Linux does not look at it for 0x1040+ IDs. */
export const VIRTIO_PCI_SUBSYSTEM_ID = 0x1100;

/** virtio_pci_cap.cfg_type values. */
export const VirtioPciCap = {
  COMMON: 1,
  NOTIFY: 2,
  ISR: 3,
  DEVICE: 4,
  PCI_CFG: 5,
} as const;

export const VirtioPciLayout = {
  BAR: 0,
  BAR_SIZE: 0x8000,
  COMMON: 0x0000,
  COMMON_SIZE: 0x40,
  ISR: 0x1000,
  ISR_SIZE: 4,
  DEVICE: 0x2000,
  DEVICE_MAX: 0x1000,
  NOTIFY: 0x3000,
  NOTIFY_MULTIPLIER: 4,
  MSIX_TABLE: 0x4000,
  MSIX_PBA: 0x5000,
} as const;

/** Offsets in struct virtio_pci_common_cfg. */
export const CommonCfg = {
  DEVICE_FEATURE_SELECT: 0,
  DEVICE_FEATURE: 4,
  DRIVER_FEATURE_SELECT: 8,
  DRIVER_FEATURE: 12,
  CONFIG_MSIX_VECTOR: 16,
  NUM_QUEUES: 18,
  DEVICE_STATUS: 20,
  CONFIG_GENERATION: 21,
  QUEUE_SELECT: 22,
  QUEUE_SIZE: 24,
  QUEUE_MSIX_VECTOR: 26,
  QUEUE_ENABLE: 28,
  QUEUE_NOTIFY_OFF: 30,
  QUEUE_DESC_LO: 32,
  QUEUE_DESC_HI: 36,
  QUEUE_DRIVER_LO: 40,
  QUEUE_DRIVER_HI: 44,
  QUEUE_DEVICE_LO: 48,
  QUEUE_DEVICE_HI: 52,
} as const;

/** Class codes for the device types typevisor models (QEMU's choices). */
const CLASS_BY_TYPE: Record<number, number> = { 1: 0x020000, 2: 0x010000, 4: 0xff0000, 19: 0xff0000 };

const TWO_32 = 0x1_0000_0000;

export interface VirtioPciOptions {
  readonly device: VirtioDevice;
  readonly memory: GuestMemory;
  readonly interrupts: InterruptController;
  /** The engine's fast notification path, if it has one. */
  readonly fastNotify?: FastNotify | undefined;
}

function setHalf(old: number, value: number, high: boolean): number {
  const lo = old % TWO_32;
  const hi = Math.floor(old / TWO_32);
  const next = high ? value * TWO_32 + lo : hi * TWO_32 + (value >>> 0);
  // Addresses at or above 2^53 are unusable; keep them as an out-of-range sentinel.
  return Number.isSafeInteger(next) ? next : Number.MAX_SAFE_INTEGER;
}

export class VirtioPciFunction extends PciFunction {
  readonly core: VirtioCore;
  readonly msix: Msix;
  private readonly device: VirtioDevice;
  private readonly interrupts: InterruptController;
  private readonly fast: FastNotify | undefined;
  private readonly pciCfgCap: number;
  private notifyWatches: (() => void)[] = [];
  private readonly routes: (FastMsiRoute | undefined)[];

  constructor(options: VirtioPciOptions) {
    const { device } = options;
    super({
      vendorId: VIRTIO_PCI_VENDOR,
      deviceId: VIRTIO_PCI_DEVICE_BASE + device.deviceType,
      classCode: CLASS_BY_TYPE[device.deviceType] ?? 0xff0000,
      revision: 1,
      subsystemVendorId: VIRTIO_PCI_VENDOR,
      subsystemId: VIRTIO_PCI_SUBSYSTEM_ID,
    });
    if (device.configSize > VirtioPciLayout.DEVICE_MAX) throw new RangeError(`${device.name}: device config too large`);
    if (device.queueMaxSizes.length > 1024) throw new RangeError(`${device.name}: too many queues`);
    this.device = device;
    this.interrupts = options.interrupts;
    this.fast = options.fastNotify;
    this.core = new VirtioCore(device, options.memory);
    const L = VirtioPciLayout;
    this.defineBar({ index: L.BAR, kind: 'mem64', size: L.BAR_SIZE, device: this.barDevice() });
    const queues = device.queueMaxSizes.length;
    this.addVirtioCap(VirtioPciCap.COMMON, L.COMMON, L.COMMON_SIZE);
    this.addVirtioCap(VirtioPciCap.ISR, L.ISR, L.ISR_SIZE);
    if (device.configSize > 0) this.addVirtioCap(VirtioPciCap.DEVICE, L.DEVICE, device.configSize);
    const notify = this.addVirtioCap(VirtioPciCap.NOTIFY, L.NOTIFY, Math.max(1, queues) * L.NOTIFY_MULTIPLIER, 4);
    this.config.set32(notify + 16, L.NOTIFY_MULTIPLIER);
    this.pciCfgCap = this.addVirtioCap(VirtioPciCap.PCI_CFG, 0, 0, 4);
    // pci_cfg: bar (byte 4), offset and length, and the data window are guest-writable.
    this.config.setWritable(this.pciCfgCap + 4, 1, 0xff);
    this.config.setWritable(this.pciCfgCap + 8, 4, 0xffffffff);
    this.config.setWritable(this.pciCfgCap + 12, 4, 0xffffffff);
    this.config.setWritable(this.pciCfgCap + 16, 4, 0xffffffff);
    const vectors = queues + 1;
    this.routes = new Array<FastMsiRoute | undefined>(vectors).fill(undefined);
    this.msix = new Msix({
      config: this.config, vectors,
      tableBar: L.BAR, tableOffset: L.MSIX_TABLE, pbaBar: L.BAR, pbaOffset: L.MSIX_PBA,
      deliver: (vector, address, data) => this.deliverMsi(vector, address, data),
    });
    if (this.fast !== undefined) this.msix.onVectorChanged = (v) => this.updateRoute(v);
    this.core.setInterrupts({
      queue: (_q, vector) => this.raise(vector),
      config: (vector) => this.raise(vector),
    });
  }

  /** Adds a virtio_pci_cap (16 bytes, + `extra`) pointing at [offset, offset+length) of BAR 0. */
  private addVirtioCap(type: number, offset: number, length: number, extra = 0): number {
    const at = this.config.addCapability(PciCapabilityId.VENDOR_SPECIFIC, 16 + extra);
    this.config.set8(at + 2, 16 + extra);
    this.config.set8(at + 3, type);
    this.config.set8(at + 4, VirtioPciLayout.BAR);
    this.config.set32(at + 8, offset);
    this.config.set32(at + 12, length);
    return at;
  }

  private raise(vector: number): void {
    if (this.msix.enabled) {
      if (vector !== VIRTIO_MSI_NO_VECTOR) this.msix.signal(vector);
      return;
    }
    this.setIntx(this.core.isr !== 0);
  }

  private deliverMsi(vector: number, address: number, data: number): void {
    const route = this.routes[vector];
    if (route !== undefined) route.fire();
    else this.interrupts.signalMsi(address, data);
  }

  private updateRoute(vector: number): void {
    const fast = this.fast;
    if (fast === undefined) return;
    let route = this.routes[vector];
    if (route === undefined) {
      try {
        route = fast.createMsiRoute();
      } catch {
        return; // no more routes: this vector keeps the ordinary path
      }
      this.routes[vector] = route;
    }
    route.update(this.msix.address(vector), this.msix.data(vector));
  }

  override barMoved(index: number, address: number | undefined): void {
    if (index !== VirtioPciLayout.BAR || this.fast === undefined) return;
    for (const undo of this.notifyWatches) undo();
    this.notifyWatches = [];
    if (address === undefined) return;
    const fast = this.fast;
    for (let q = 0; q < this.device.queueMaxSizes.length; q++) {
      try {
        this.notifyWatches.push(fast.watchMmioWrite(address + VirtioPciLayout.NOTIFY + q * VirtioPciLayout.NOTIFY_MULTIPLIER, 2, () => this.core.notify(q)));
      } catch {
        // the write still reaches the BAR handler through an ordinary exit
      }
    }
  }

  /** Releases engine routes and notify watches. */
  dispose(): void {
    for (const undo of this.notifyWatches) undo();
    this.notifyWatches = [];
    for (const r of this.routes) r?.dispose();
    this.routes.fill(undefined);
    this.core.reset();
  }

  protected override configWritten(offset: number, size: number): void {
    const cap = this.msix.capabilityOffset;
    if (offset < cap + 4 && offset + size > cap + 2) {
      this.msix.controlWritten();
      if (!this.msix.enabled) this.setIntx(this.core.isr !== 0);
      else this.setIntx(false);
    }
    const data = this.pciCfgCap + 16;
    if (offset >= data && offset < data + 4) this.pciCfgAccess(true);
  }

  override configRead(offset: number, size: 1 | 2 | 4): number {
    const data = this.pciCfgCap + 16;
    if (offset >= data && offset < data + 4) this.pciCfgAccess(false);
    return super.configRead(offset, size);
  }

  /** VIRTIO_PCI_CAP_PCI_CFG: an access to pci_cfg_data is an access to BAR `bar` at `offset`, `length` bytes. */
  private pciCfgAccess(write: boolean): void {
    const c = this.config;
    const at = this.pciCfgCap;
    const bar = c.get8(at + 4);
    const offset = c.get32(at + 8);
    const length = c.get32(at + 12);
    if (bar !== VirtioPciLayout.BAR || (length !== 1 && length !== 2 && length !== 4) || offset % length !== 0 || offset + length > VirtioPciLayout.BAR_SIZE) return;
    const dev = this.bars[VirtioPciLayout.BAR]!.device;
    if (write) dev.write(offset, length, c.get32(at + 16));
    else c.set32(at + 16, dev.read(offset, length));
  }

  private barDevice(): BusDevice {
    const L = VirtioPciLayout;
    return {
      read: (offset, size) => {
        if (offset < L.COMMON + L.COMMON_SIZE) return this.commonRead(offset, size);
        if (offset >= L.ISR && offset < L.ISR + L.ISR_SIZE) {
          if (offset !== L.ISR) return 0;
          const v = this.core.takeIsr();
          if (!this.msix.enabled) this.setIntx(false);
          return v;
        }
        if (offset >= L.DEVICE && offset < L.DEVICE + this.device.configSize) {
          if (offset + size > L.DEVICE + this.device.configSize) return 0;
          return this.device.readConfig(offset - L.DEVICE, size);
        }
        if (offset >= L.MSIX_TABLE && offset < L.MSIX_TABLE + this.msix.tableSize) return this.msix.tableRead(offset - L.MSIX_TABLE, size);
        if (offset >= L.MSIX_PBA && offset < L.MSIX_PBA + this.msix.pbaSize) return this.msix.pbaRead(offset - L.MSIX_PBA, size);
        return 0;
      },
      write: (offset, size, value) => {
        if (offset < L.COMMON + L.COMMON_SIZE) this.commonWrite(offset, size, value);
        else if (offset >= L.DEVICE && offset < L.DEVICE + this.device.configSize) {
          if (offset + size <= L.DEVICE + this.device.configSize) this.device.writeConfig(offset - L.DEVICE, size, value);
        } else if (offset >= L.NOTIFY && offset < L.NOTIFY + this.device.queueMaxSizes.length * L.NOTIFY_MULTIPLIER) {
          if ((offset - L.NOTIFY) % L.NOTIFY_MULTIPLIER === 0) this.core.notify((offset - L.NOTIFY) / L.NOTIFY_MULTIPLIER);
        } else if (offset >= L.MSIX_TABLE && offset < L.MSIX_TABLE + this.msix.tableSize) this.msix.tableWrite(offset - L.MSIX_TABLE, size, value);
      },
    };
  }

  private commonRead(offset: number, size: number): number {
    const core = this.core;
    const q = core.selectedQueue;
    const C = CommonCfg;
    switch (size) {
      case 4:
        switch (offset) {
          case C.DEVICE_FEATURE_SELECT: return core.deviceFeatureSelect;
          case C.DEVICE_FEATURE: return core.deviceFeatureWord();
          case C.DRIVER_FEATURE_SELECT: return core.driverFeatureSelect;
          case C.DRIVER_FEATURE: return core.driverFeatureWord();
          case C.QUEUE_DESC_LO: return q === undefined ? 0 : q.descAddress % TWO_32;
          case C.QUEUE_DESC_HI: return q === undefined ? 0 : Math.floor(q.descAddress / TWO_32);
          case C.QUEUE_DRIVER_LO: return q === undefined ? 0 : q.driverAddress % TWO_32;
          case C.QUEUE_DRIVER_HI: return q === undefined ? 0 : Math.floor(q.driverAddress / TWO_32);
          case C.QUEUE_DEVICE_LO: return q === undefined ? 0 : q.deviceAddress % TWO_32;
          case C.QUEUE_DEVICE_HI: return q === undefined ? 0 : Math.floor(q.deviceAddress / TWO_32);
          default: return 0;
        }
      case 2:
        switch (offset) {
          case C.CONFIG_MSIX_VECTOR: return core.configVector;
          case C.NUM_QUEUES: return core.queues.length;
          case C.QUEUE_SELECT: return core.queueSelect;
          case C.QUEUE_SIZE: return q === undefined ? 0 : q.size;
          case C.QUEUE_MSIX_VECTOR: return q === undefined ? VIRTIO_MSI_NO_VECTOR : q.msixVector;
          case C.QUEUE_ENABLE: return q?.enabled === true ? 1 : 0;
          case C.QUEUE_NOTIFY_OFF: return q === undefined ? 0 : q.index;
          default: return 0;
        }
      case 1:
        if (offset === C.DEVICE_STATUS) return core.status;
        if (offset === C.CONFIG_GENERATION) return core.configGeneration;
        return 0;
      default:
        return 0;
    }
  }

  private commonWrite(offset: number, size: number, value: number): void {
    const core = this.core;
    const q = core.selectedQueue;
    const C = CommonCfg;
    const queueWritable = q !== undefined && !q.enabled;
    if (size === 4) {
      switch (offset) {
        case C.DEVICE_FEATURE_SELECT: core.deviceFeatureSelect = value >>> 0; return;
        case C.DRIVER_FEATURE_SELECT: core.driverFeatureSelect = value >>> 0; return;
        case C.DRIVER_FEATURE: core.setDriverFeatureWord(value); return;
        case C.QUEUE_DESC_LO: case C.QUEUE_DESC_HI:
          if (queueWritable) q.descAddress = setHalf(q.descAddress, value >>> 0, offset === C.QUEUE_DESC_HI);
          return;
        case C.QUEUE_DRIVER_LO: case C.QUEUE_DRIVER_HI:
          if (queueWritable) q.driverAddress = setHalf(q.driverAddress, value >>> 0, offset === C.QUEUE_DRIVER_HI);
          return;
        case C.QUEUE_DEVICE_LO: case C.QUEUE_DEVICE_HI:
          if (queueWritable) q.deviceAddress = setHalf(q.deviceAddress, value >>> 0, offset === C.QUEUE_DEVICE_HI);
          return;
        default: return;
      }
    }
    if (size === 2) {
      switch (offset) {
        case C.CONFIG_MSIX_VECTOR: core.configVector = this.validVector(value); return;
        case C.QUEUE_SELECT: core.queueSelect = value & 0xffff; return;
        case C.QUEUE_SIZE: if (queueWritable) q.size = value & 0xffff; return;
        case C.QUEUE_MSIX_VECTOR: if (q !== undefined) q.msixVector = this.validVector(value); return;
        case C.QUEUE_ENABLE:
          if (q !== undefined && (value & 0xffff) === 1 && core.featuresOk) core.enableQueue(q);
          return;
        default: return;
      }
    }
    if (size === 1 && offset === C.DEVICE_STATUS) {
      const wasReset = (value & 0xff) === 0;
      core.writeStatus(value);
      if (wasReset) {
        this.setIntx(false);
        this.msix.controlWritten(); // nothing changes in the table, but routes stay in sync
      }
    }
  }

  /** A vector the device can use, or NO_VECTOR (which the driver reads back as a failure). */
  private validVector(value: number): number {
    const v = value & 0xffff;
    return v < this.msix.vectors ? v : VIRTIO_MSI_NO_VECTOR;
  }
}
