/**
 * QEMU's fw_cfg interface on x86 I/O ports: selector at 0x510 (16-bit write),
 * data at 0x511 (byte reads; past the end of an item reads 0), and the DMA
 * address register at 0x514 (big-endian 64-bit, written as two 32-bit halves,
 * high first; the low write starts the transfer). Reading 0x514 returns the
 * DMA signature "QEMU CFG".
 *
 * A DMA request is a big-endian FWCfgDmaAccess {control, length, address} in
 * guest RAM. SELECT, READ and SKIP are supported; WRITE is refused (no item is
 * writable) and reported with the ERROR bit. Every guest address is checked
 * through GuestMemory: a request or buffer outside RAM sets ERROR (or, if the
 * request itself is unreadable, is ignored) and never touches host memory.
 *
 * kvm-unit-tests reads FW_CFG_NB_CPUS (16-bit) and FW_CFG_RAM_SIZE (64-bit)
 * one byte at a time through 0x511 after an `outw` of the key to 0x510.
 */

import type { AccessSize, BusDevice } from '../../machine/bus.js';
import { GuestMemoryError, type GuestMemory } from '../../machine/memory.js';

/** Ports decoded from the base (0x510-0x51b). */
export const FW_CFG_PORT_COUNT = 12;

/** Offsets from the base port. */
export const FwCfgPort = { SELECTOR: 0, DATA: 1, DMA_ADDRESS_HIGH: 4, DMA_ADDRESS_LOW: 8 } as const;

/** Well-known item keys. */
export const FwCfgKey = {
  SIGNATURE: 0x0000,
  ID: 0x0001,
  UUID: 0x0002,
  RAM_SIZE: 0x0003,
  NOGRAPHIC: 0x0004,
  NB_CPUS: 0x0005,
  MACHINE_ID: 0x0006,
  KERNEL_ADDR: 0x0007,
  KERNEL_SIZE: 0x0008,
  KERNEL_CMDLINE: 0x0009,
  INITRD_ADDR: 0x000a,
  INITRD_SIZE: 0x000b,
  BOOT_DEVICE: 0x000c,
  NUMA: 0x000d,
  BOOT_MENU: 0x000e,
  MAX_CPUS: 0x000f,
  FILE_DIR: 0x0019,
  /** The first selector given to named files. */
  FILE_FIRST: 0x0020,
  /** Architecture-specific items live above this bit. */
  ARCH_LOCAL: 0x8000,
} as const;

/** FW_CFG_ID feature bits. */
export const FW_CFG_FEATURE_TRADITIONAL = 0x01;
export const FW_CFG_FEATURE_DMA = 0x02;

/** FWCfgDmaAccess control bits. */
export const FwCfgDmaControl = { ERROR: 0x01, READ: 0x02, SKIP: 0x04, SELECT: 0x08, WRITE: 0x10 } as const;

/** Longest file name, including the terminating NUL. */
export const FW_CFG_MAX_FILE_NAME = 56;
const FILE_DIR_ENTRY_SIZE = 64;
const WRITE_CHANNEL = 0x4000;
const DMA_SIGNATURE = new TextEncoder().encode('QEMU CFG');

/** Raised for bad item definitions supplied by the VMM (not by the guest). */
export class FwCfgError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FwCfgError';
  }
}

export interface FwCfgOptions {
  /** Guest RAM size in bytes (FW_CFG_RAM_SIZE). */
  readonly ramSize: number;
  /** Boot CPUs (FW_CFG_NB_CPUS). */
  readonly cpuCount: number;
  /** FW_CFG_MAX_CPUS; defaults to `cpuCount`. */
  readonly maxCpus?: number;
  /** Guest RAM for DMA; may return undefined before the engine has created it (DMA is then ignored). */
  readonly memory: () => GuestMemory | undefined;
}

export class FwCfg implements BusDevice {
  private readonly items = new Map<number, Uint8Array>();
  private readonly files: { name: string; key: number; data: Uint8Array }[] = [];
  private readonly memory: () => GuestMemory | undefined;
  private current: Uint8Array | undefined;
  private dataOffset = 0;
  private selector = 0;
  private dmaAddressHigh = 0;

  constructor(options: FwCfgOptions) {
    this.memory = options.memory;
    this.setItem(FwCfgKey.SIGNATURE, new TextEncoder().encode('QEMU'));
    this.setItem(FwCfgKey.ID, le(FW_CFG_FEATURE_TRADITIONAL | FW_CFG_FEATURE_DMA, 4));
    this.setItem(FwCfgKey.RAM_SIZE, le(options.ramSize, 8));
    this.setItem(FwCfgKey.NB_CPUS, le(options.cpuCount, 2));
    this.setItem(FwCfgKey.MAX_CPUS, le(options.maxCpus ?? options.cpuCount, 2));
    this.rebuildFileDir();
    this.select(FwCfgKey.SIGNATURE);
  }

  /** Sets (or replaces) the item at `key` (a well-known or ARCH_LOCAL key). */
  setItem(key: number, data: Uint8Array): void {
    if (!Number.isInteger(key) || key < 0 || key > 0xffff || key & WRITE_CHANNEL) throw new FwCfgError(`bad fw_cfg key 0x${key.toString(16)}`);
    this.items.set(key, data);
    if (key === (this.selector & ~WRITE_CHANNEL)) this.current = data;
  }

  /** Adds a named file (e.g. "etc/acpi/tables") and returns its selector. */
  addFile(name: string, data: Uint8Array): number {
    const encoded = new TextEncoder().encode(name);
    if (encoded.length === 0 || encoded.length >= FW_CFG_MAX_FILE_NAME) throw new FwCfgError(`fw_cfg file name must be 1-${FW_CFG_MAX_FILE_NAME - 1} bytes: "${name}"`);
    if (this.files.some((f) => f.name === name)) throw new FwCfgError(`fw_cfg file "${name}" already exists`);
    if (data.length > 0xffffffff) throw new FwCfgError(`fw_cfg file "${name}" is too large`);
    const key = FwCfgKey.FILE_FIRST + this.files.length;
    if (key >= WRITE_CHANNEL) throw new FwCfgError('too many fw_cfg files');
    this.files.push({ name, key, data });
    this.setItem(key, data);
    this.rebuildFileDir();
    return key;
  }

  read(offset: number, size: AccessSize): number {
    let value = 0;
    for (let i = 0; i < size; i++) value |= this.readByte(offset + i) << (8 * i);
    return value >>> 0;
  }

  write(offset: number, size: AccessSize, value: number): void {
    if (offset === FwCfgPort.SELECTOR) {
      this.select(size === 1 ? value & 0xff : value & 0xffff);
    } else if (offset === FwCfgPort.DMA_ADDRESS_HIGH && size === 4) {
      this.dmaAddressHigh = byteSwap32(value);
    } else if (offset === FwCfgPort.DMA_ADDRESS_LOW && size === 4) {
      const address = this.dmaAddressHigh * 0x1_0000_0000 + byteSwap32(value);
      this.dmaAddressHigh = 0;
      this.runDma(address);
    }
    // Writes to the data port are ignored (as in QEMU since 2.4).
  }

  private readByte(offset: number): number {
    if (offset === FwCfgPort.DATA) {
      const item = this.current;
      if (item === undefined || this.dataOffset >= item.length) return 0;
      return item[this.dataOffset++];
    }
    if (offset >= FwCfgPort.DMA_ADDRESS_HIGH && offset < FwCfgPort.DMA_ADDRESS_HIGH + 8) return DMA_SIGNATURE[offset - FwCfgPort.DMA_ADDRESS_HIGH];
    return 0;
  }

  private select(selector: number): void {
    this.selector = selector;
    this.current = this.items.get(selector & ~WRITE_CHANNEL);
    this.dataOffset = 0;
  }

  private runDma(address: number): void {
    const memory = this.memory();
    if (memory === undefined || !memory.contains(address, 16)) return; // nowhere to report a result
    const control = byteSwap32(memory.read32(address));
    const length = byteSwap32(memory.read32(address + 4));
    const target = byteSwap32(memory.read32(address + 8)) * 0x1_0000_0000 + byteSwap32(memory.read32(address + 12));
    if (control & FwCfgDmaControl.SELECT) this.select(control >>> 16);
    let error = false;
    if (control & FwCfgDmaControl.READ) {
      try {
        const destination = memory.view(target, length);
        const item = this.current;
        const available = item === undefined ? 0 : Math.max(0, Math.min(length, item.length - this.dataOffset));
        if (available > 0) destination.set(item!.subarray(this.dataOffset, this.dataOffset + available));
        destination.fill(0, available);
        this.dataOffset += length;
      } catch (e) {
        if (!(e instanceof GuestMemoryError)) throw e;
        error = true;
      }
    } else if (control & FwCfgDmaControl.WRITE) {
      error = true; // no writable items
    } else if (control & FwCfgDmaControl.SKIP) {
      this.dataOffset += length;
    }
    memory.write32(address, byteSwap32(error ? FwCfgDmaControl.ERROR : 0));
  }

  private rebuildFileDir(): void {
    const dir = new Uint8Array(4 + this.files.length * FILE_DIR_ENTRY_SIZE);
    const view = new DataView(dir.buffer);
    view.setUint32(0, this.files.length, false);
    const encoder = new TextEncoder();
    this.files.forEach((file, i) => {
      const base = 4 + i * FILE_DIR_ENTRY_SIZE;
      view.setUint32(base, file.data.length, false);
      view.setUint16(base + 4, file.key, false);
      dir.set(encoder.encode(file.name), base + 8);
    });
    this.setItem(FwCfgKey.FILE_DIR, dir);
  }
}

function byteSwap32(v: number): number {
  return (((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24)) >>> 0;
}

/** `value` (a non-negative safe integer) as `bytes` little-endian bytes. */
function le(value: number, bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  let v = value;
  for (let i = 0; i < bytes; i++) {
    out[i] = v % 256;
    v = Math.floor(v / 256);
  }
  return out;
}
