/**
 * QEMU's pc-testdev, used by kvm-unit-tests' x86 tests (emulator, realmode,
 * eventinj, ioapic, ...). Three register blocks:
 *
 * - I/O ports 0xe0-0xeb (`ioPorts`, attach at `Ports.PC_TESTDEV`, length
 *   `PC_TESTDEV_PORT_COUNT`): 0xe0-0xe3 is a 32-bit scratch register reachable
 *   with any access width and byte offset; 0xe4-0xe7 is the "flush page" port
 *   (a 32-bit write of a guest-physical address asks the VMM to invalidate that
 *   page's mappings, forwarded to `onFlushPage`); 0xe8-0xeb is the same
 *   scratch register accessed byte by byte.
 * - I/O ports 0x2000-0x2017 (`irqPorts`, attach at `PC_TESTDEV_IRQ_PORT`,
 *   length `PC_TESTDEV_IRQ_PORT_COUNT`): writing v to 0x2000+n drives GSI n to
 *   level v != 0 (kvm-unit-tests' `set_irq_line`). Every write is forwarded,
 *   even if the level does not change.
 * - MMIO page(s) at `PC_TESTDEV_MMIO` (`iomem`, length `PC_TESTDEV_MMIO_SIZE`):
 *   64 KiB of plain memory behind MMIO exits, for instruction-emulation tests.
 */

import type { AccessSize, BusDevice } from '../../machine/bus.js';
import type { InterruptController } from '../../machine/interrupts.js';
import { IOAPIC_PINS } from '../../machine/layout.js';

/** Ports decoded at `Ports.PC_TESTDEV` (0xe0-0xeb). */
export const PC_TESTDEV_PORT_COUNT = 12;
/** Base of the IRQ-line ports. */
export const PC_TESTDEV_IRQ_PORT = 0x2000;
/** One port per GSI. */
export const PC_TESTDEV_IRQ_PORT_COUNT = IOAPIC_PINS;
/** Size of the MMIO scratch region at `PC_TESTDEV_MMIO`. */
export const PC_TESTDEV_MMIO_SIZE = 0x10000;

const SIZE_MASK = [0, 0xff, 0xffff, 0, 0xffffffff] as const;
const FLUSH_PORT_OFFSET = 4;

export interface PcTestdevOptions {
  /** Where IRQ-line writes go (the machine's InterruptRouter). */
  readonly interrupts: InterruptController;
  /** Called with the page-aligned guest-physical address written to the flush port. */
  readonly onFlushPage?: (gpa: number) => void;
}

export class PcTestdev {
  readonly ioPorts: BusDevice;
  readonly irqPorts: BusDevice;
  readonly iomem: BusDevice;

  private scratch = 0;
  private readonly memory = new Uint8Array(PC_TESTDEV_MMIO_SIZE);
  private readonly memoryView = new DataView(this.memory.buffer);

  constructor(options: PcTestdevOptions) {
    const interrupts = options.interrupts;
    const onFlushPage = options.onFlushPage;
    this.ioPorts = {
      read: (offset: number, size: AccessSize) => (offset >= FLUSH_PORT_OFFSET && offset < FLUSH_PORT_OFFSET + 4 ? 0 : this.readScratch(offset, size)),
      write: (offset: number, size: AccessSize, value: number) => {
        if (offset >= FLUSH_PORT_OFFSET && offset < FLUSH_PORT_OFFSET + 4) {
          onFlushPage?.((value & ~0xfff) >>> 0);
        } else {
          this.writeScratch(offset, size, value);
        }
      },
    };
    this.irqPorts = {
      read: () => 0,
      write: (offset: number, _size: AccessSize, value: number) => {
        if (offset < PC_TESTDEV_IRQ_PORT_COUNT) interrupts.setIrq(offset, (value & 0xff) !== 0);
      },
    };
    this.iomem = {
      read: (offset: number, size: AccessSize) => {
        if (offset + size > PC_TESTDEV_MMIO_SIZE) return SIZE_MASK[size];
        if (size === 1) return this.memory[offset];
        return size === 2 ? this.memoryView.getUint16(offset, true) : this.memoryView.getUint32(offset, true);
      },
      write: (offset: number, size: AccessSize, value: number) => {
        if (offset + size > PC_TESTDEV_MMIO_SIZE) return;
        if (size === 1) this.memory[offset] = value;
        else if (size === 2) this.memoryView.setUint16(offset, value, true);
        else this.memoryView.setUint32(offset, value >>> 0, true);
      },
    };
  }

  /** Bytes starting `offset & 3` into the 32-bit scratch register; bytes past its end are dropped. */
  private readScratch(offset: number, size: AccessSize): number {
    const shift = 8 * (offset & 3);
    return ((this.scratch >>> shift) & SIZE_MASK[size]) >>> 0;
  }

  private writeScratch(offset: number, size: AccessSize, value: number): void {
    const shift = 8 * (offset & 3);
    const mask = (SIZE_MASK[size] << shift) >>> 0;
    this.scratch = ((this.scratch & ~mask) | ((value << shift) & mask)) >>> 0;
  }
}
