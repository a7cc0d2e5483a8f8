/**
 * MSI-X (PCI Local Bus 3.0, section 6.8.2): the capability in configuration
 * space, the vector table and the pending-bit array (PBA), which live inside a
 * BAR of the owning function. A device asks for vector `n` with `signal(n)`;
 * it is delivered as a message (address/data from the table) unless MSI-X is
 * disabled, the function is masked or the vector is masked, in which case the
 * pending bit is set and the message goes out when the mask is lifted.
 *
 * The table accepts aligned 4-byte accesses (an 8-byte access arrives as two);
 * other widths read as zero and are ignored on write, which the specification
 * allows ("software must not use other sizes").
 */

import type { PciConfigSpace } from './config-space.js';
import { PciCapabilityId } from './config-space.js';

/** Message Control bits. */
const CONTROL_ENABLE = 1 << 15;
const CONTROL_FUNCTION_MASK = 1 << 14;
/** Vector Control: per-vector mask. */
const VECTOR_MASKED = 1;
export const MSIX_ENTRY_SIZE = 16;
export const MSIX_CAPABILITY_LENGTH = 12;

/** Delivers one message; the platform's InterruptController.signalMsi, or an engine fast path. */
export type MsiDelivery = (vector: number, address: number, data: number) => void;

export interface MsixOptions {
  readonly config: PciConfigSpace;
  readonly vectors: number;
  /** BAR index and offset of the table and of the PBA (offsets 8-byte aligned). */
  readonly tableBar: number;
  readonly tableOffset: number;
  readonly pbaBar: number;
  readonly pbaOffset: number;
  readonly deliver: MsiDelivery;
}

export class Msix {
  readonly vectors: number;
  readonly capabilityOffset: number;
  private readonly table: Uint32Array;
  private readonly pending: Uint8Array;
  private readonly config: PciConfigSpace;
  private deliver: MsiDelivery;
  /** Called whenever a vector's address, data or mask may have changed (for engine routes). */
  onVectorChanged: ((vector: number) => void) | undefined;

  constructor(options: MsixOptions) {
    const { config, vectors } = options;
    if (!Number.isInteger(vectors) || vectors < 1 || vectors > 2048) throw new RangeError(`MSI-X vector count ${vectors} is not 1..2048`);
    this.vectors = vectors;
    this.config = config;
    this.deliver = options.deliver;
    this.table = new Uint32Array(vectors * 4);
    for (let v = 0; v < vectors; v++) this.table[v * 4 + 3] = VECTOR_MASKED;
    this.pending = new Uint8Array(vectors);
    const at = config.addCapability(PciCapabilityId.MSIX, MSIX_CAPABILITY_LENGTH);
    this.capabilityOffset = at;
    config.set16(at + 2, vectors - 1);
    config.setWritable(at + 2, 2, CONTROL_ENABLE | CONTROL_FUNCTION_MASK);
    config.set32(at + 4, options.tableOffset | options.tableBar);
    config.set32(at + 8, options.pbaOffset | options.pbaBar);
  }

  /** Replaces the delivery function (engine fast path attach/detach). */
  setDelivery(deliver: MsiDelivery): void {
    this.deliver = deliver;
  }

  get tableSize(): number {
    return this.vectors * MSIX_ENTRY_SIZE;
  }

  get pbaSize(): number {
    return Math.ceil(this.vectors / 64) * 8;
  }

  private get control(): number {
    return this.config.get16(this.capabilityOffset + 2);
  }

  get enabled(): boolean {
    return (this.control & CONTROL_ENABLE) !== 0;
  }

  get functionMasked(): boolean {
    return (this.control & CONTROL_FUNCTION_MASK) !== 0;
  }

  vectorMasked(vector: number): boolean {
    return (this.table[vector * 4 + 3] & VECTOR_MASKED) !== 0;
  }

  /** The message address (a number below 2^53; 0 when the high half would overflow). */
  address(vector: number): number {
    const high = this.table[vector * 4 + 1];
    return high >= 0x200000 ? 0 : high * 0x1_0000_0000 + this.table[vector * 4];
  }

  data(vector: number): number {
    return this.table[vector * 4 + 2];
  }

  isPending(vector: number): boolean {
    return this.pending[vector] !== 0;
  }

  /** Requests vector `vector`: delivered now, or left pending while masked. Ignored for out-of-range vectors. */
  signal(vector: number): void {
    if (!(vector >= 0 && vector < this.vectors)) return;
    if (!this.enabled) return;
    if (this.functionMasked || this.vectorMasked(vector)) {
      this.pending[vector] = 1;
      return;
    }
    this.deliver(vector, this.address(vector), this.data(vector));
  }

  /** Call after a config write that touched the capability: function unmask delivers pending vectors. */
  controlWritten(): void {
    this.deliverPendingUnmasked();
    for (let v = 0; v < this.vectors; v++) this.onVectorChanged?.(v);
  }

  private deliverPendingUnmasked(): void {
    if (!this.enabled || this.functionMasked) return;
    for (let v = 0; v < this.vectors; v++) {
      if (this.pending[v] !== 0 && !this.vectorMasked(v)) {
        this.pending[v] = 0;
        this.deliver(v, this.address(v), this.data(v));
      }
    }
  }

  tableRead(offset: number, size: number): number {
    if (size !== 4 || (offset & 3) !== 0 || offset < 0 || offset >= this.tableSize) return 0;
    return this.table[offset >>> 2];
  }

  tableWrite(offset: number, size: number, value: number): void {
    if (size !== 4 || (offset & 3) !== 0 || offset < 0 || offset >= this.tableSize) return;
    const word = offset >>> 2;
    const vector = word >>> 2;
    const wasMasked = this.vectorMasked(vector);
    this.table[word] = (word & 3) === 3 ? value & VECTOR_MASKED : value >>> 0;
    this.onVectorChanged?.(vector);
    if (wasMasked && !this.vectorMasked(vector) && this.pending[vector] !== 0 && this.enabled && !this.functionMasked) {
      this.pending[vector] = 0;
      this.deliver(vector, this.address(vector), this.data(vector));
    }
  }

  /** The PBA is read-only; each 32-bit word holds 32 pending bits. */
  pbaRead(offset: number, size: number): number {
    if (size !== 4 || (offset & 3) !== 0 || offset < 0 || offset >= this.pbaSize) return 0;
    let word = 0;
    const first = (offset >>> 2) * 32;
    for (let i = 0; i < 32 && first + i < this.vectors; i++) if (this.pending[first + i] !== 0) word |= 1 << i;
    return word >>> 0;
  }

  /** Back to power-on state: disabled, every vector masked, nothing pending. */
  reset(): void {
    this.table.fill(0);
    for (let v = 0; v < this.vectors; v++) this.table[v * 4 + 3] = VECTOR_MASKED;
    this.pending.fill(0);
    this.config.set16(this.capabilityOffset + 2, this.vectors - 1);
  }
}
