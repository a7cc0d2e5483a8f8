/**
 * A PCI function's 256-byte configuration space (PCI Local Bus 3.0, chapter 6):
 * the bytes, a per-byte mask of bits the guest may write, a mask of
 * write-one-to-clear bits, and the capability list. Device code initialises
 * registers with the `set*` methods (which ignore the masks); guest writes go
 * through `write`, which honours them. Register offsets and bits are below.
 */

/** Offsets in the type-0 (endpoint) and common header. */
export const PciReg = {
  VENDOR_ID: 0x00,
  DEVICE_ID: 0x02,
  COMMAND: 0x04,
  STATUS: 0x06,
  REVISION_ID: 0x08,
  /** Programming interface (0x09), subclass (0x0a), class (0x0b). */
  CLASS_PROG: 0x09,
  CACHE_LINE_SIZE: 0x0c,
  LATENCY_TIMER: 0x0d,
  HEADER_TYPE: 0x0e,
  BAR0: 0x10,
  SUBSYSTEM_VENDOR_ID: 0x2c,
  SUBSYSTEM_ID: 0x2e,
  EXPANSION_ROM: 0x30,
  CAPABILITIES_POINTER: 0x34,
  INTERRUPT_LINE: 0x3c,
  INTERRUPT_PIN: 0x3d,
} as const;

export const PciCommand = {
  IO_SPACE: 1 << 0,
  MEMORY_SPACE: 1 << 1,
  BUS_MASTER: 1 << 2,
  SERR: 1 << 8,
  INTX_DISABLE: 1 << 10,
} as const;

export const PciStatus = {
  /** INTx is asserted by this function (read-only). */
  INTERRUPT: 1 << 3,
  CAPABILITIES_LIST: 1 << 4,
} as const;

export const PciCapabilityId = {
  MSI: 0x05,
  VENDOR_SPECIFIC: 0x09,
  MSIX: 0x11,
} as const;

/** The first byte after the standard header, where capabilities start. */
export const PCI_CAPABILITIES_START = 0x40;
export const PCI_CONFIG_SPACE_SIZE = 256;

/** Raised when a capability does not fit (a programming error in a device model). */
export class PciConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PciConfigError';
  }
}

export class PciConfigSpace {
  readonly bytes = new Uint8Array(PCI_CONFIG_SPACE_SIZE);
  private readonly view = new DataView(this.bytes.buffer);
  /** Bits the guest may change, per byte. */
  private readonly writable = new Uint8Array(PCI_CONFIG_SPACE_SIZE);
  /** Bits a guest write of 1 clears (RW1C), per byte. */
  private readonly clearOnWrite = new Uint8Array(PCI_CONFIG_SPACE_SIZE);
  private lastCapability = 0;
  private nextCapabilityOffset = PCI_CAPABILITIES_START;

  constructor() {
    // The guest owns COMMAND's enables, INTERRUPT_LINE and the cache line / latency registers.
    this.setWritable(PciReg.COMMAND, 2,
      PciCommand.IO_SPACE | PciCommand.MEMORY_SPACE | PciCommand.BUS_MASTER | PciCommand.SERR | PciCommand.INTX_DISABLE);
    this.setWritable(PciReg.CACHE_LINE_SIZE, 1, 0xff);
    this.setWritable(PciReg.LATENCY_TIMER, 1, 0xff);
    this.setWritable(PciReg.INTERRUPT_LINE, 1, 0xff);
  }

  /** Reads an aligned 1-, 2- or 4-byte register; misaligned or out-of-range reads give all ones. */
  read(offset: number, size: 1 | 2 | 4): number {
    if (offset < 0 || offset + size > PCI_CONFIG_SPACE_SIZE || (offset & (size - 1)) !== 0) return size === 4 ? 0xffffffff : (1 << (size * 8)) - 1;
    if (size === 1) return this.bytes[offset];
    if (size === 2) return this.view.getUint16(offset, true);
    return this.view.getUint32(offset, true);
  }

  /** A guest write: only writable bits change, and RW1C bits written as 1 are cleared. */
  write(offset: number, size: 1 | 2 | 4, value: number): void {
    if (offset < 0 || offset + size > PCI_CONFIG_SPACE_SIZE || (offset & (size - 1)) !== 0) return;
    for (let i = 0; i < size; i++) {
      const at = offset + i;
      const v = (value >>> (8 * i)) & 0xff;
      const mask = this.writable[at];
      let b = (this.bytes[at] & ~mask) | (v & mask);
      b &= ~(v & this.clearOnWrite[at]);
      this.bytes[at] = b & 0xff;
    }
  }

  /** Makes `mask` (applied to each of `length` bytes little-endian, as an integer) guest-writable. */
  setWritable(offset: number, length: number, mask: number): void {
    for (let i = 0; i < length; i++) this.writable[offset + i] = i < 4 ? (mask >>> (8 * i)) & 0xff : 0;
  }

  setClearOnWrite(offset: number, length: number, mask: number): void {
    for (let i = 0; i < length; i++) this.clearOnWrite[offset + i] = (mask >>> (8 * i)) & 0xff;
  }

  get8(offset: number): number {
    return this.bytes[offset];
  }
  get16(offset: number): number {
    return this.view.getUint16(offset, true);
  }
  get32(offset: number): number {
    return this.view.getUint32(offset, true);
  }
  set8(offset: number, value: number): void {
    this.bytes[offset] = value;
  }
  set16(offset: number, value: number): void {
    this.view.setUint16(offset, value, true);
  }
  set32(offset: number, value: number): void {
    this.view.setUint32(offset, value >>> 0, true);
  }

  /** Sets the 24-bit class code (class << 16 | subclass << 8 | prog-if). */
  setClassCode(code: number): void {
    this.bytes[PciReg.CLASS_PROG] = code & 0xff;
    this.bytes[PciReg.CLASS_PROG + 1] = (code >>> 8) & 0xff;
    this.bytes[PciReg.CLASS_PROG + 2] = (code >>> 16) & 0xff;
  }

  /**
   * Appends a capability of `length` bytes (including the 2-byte id/next
   * header) to the capability list and returns its offset. Capabilities are
   * placed 4-byte aligned from 0x40 in the order they are added.
   */
  addCapability(id: number, length: number): number {
    const offset = this.nextCapabilityOffset;
    if (length < 2 || offset + length > PCI_CONFIG_SPACE_SIZE) throw new PciConfigError(`capability 0x${id.toString(16)} does not fit in config space`);
    this.bytes[offset] = id;
    this.bytes[offset + 1] = 0;
    if (this.lastCapability === 0) this.bytes[PciReg.CAPABILITIES_POINTER] = offset;
    else this.bytes[this.lastCapability + 1] = offset;
    this.lastCapability = offset;
    this.nextCapabilityOffset = (offset + length + 3) & ~3;
    this.set16(PciReg.STATUS, this.get16(PciReg.STATUS) | PciStatus.CAPABILITIES_LIST);
    return offset;
  }
}
