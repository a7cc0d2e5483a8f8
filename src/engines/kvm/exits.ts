/**
 * Decoding of KVM exits from a vCPU's `kvm_run` page, shared by the machine
 * thread (vCPU 0) and the AP worker threads. `KvmRunView` holds the views made
 * once per vCPU; the port-I/O and MMIO paths allocate nothing per exit.
 */

import type { AccessSize } from '../../machine/bus.js';
import type { VmExit } from '../engine.js';
import {
  ExitReason, InternalErrorSuberror, KVM_EXIT_IO_OUT, RunOffset, SystemEvent,
} from './abi.js';

/** Port/MMIO callbacks, the subset of VmOps the decoder dispatches to. */
export interface AccessHandler {
  pioRead(port: number, size: AccessSize): number;
  pioWrite(port: number, size: AccessSize, value: number): void;
  mmioRead(address: number, size: AccessSize): number;
  mmioWrite(address: number, size: AccessSize, value: number): void;
}

const TWO_32 = 0x1_0000_0000;
const SIZE_MASK = [0, 0xff, 0xffff, 0, 0xffffffff] as const;

/** Precomputed views over one kvm_run mapping. */
export class KvmRunView {
  readonly bytes: Uint8Array;
  readonly data: DataView;
  readonly size: number;

  constructor(readonly buffer: ArrayBuffer) {
    this.bytes = new Uint8Array(buffer);
    this.data = new DataView(buffer);
    this.size = buffer.byteLength;
  }

  get exitReason(): number {
    return this.data.getUint32(RunOffset.EXIT_REASON, true);
  }

  clearImmediateExit(): void {
    this.bytes[RunOffset.IMMEDIATE_EXIT] = 0;
  }

  /**
   * Handles a KVM_EXIT_IO (including string I/O with count > 1). Returns null
   * on success or an error message if KVM reported something malformed.
   */
  handleIo(h: AccessHandler): string | null {
    const d = this.data;
    const out = this.bytes[RunOffset.IO_DIRECTION] === KVM_EXIT_IO_OUT;
    const size = this.bytes[RunOffset.IO_SIZE];
    const port = d.getUint16(RunOffset.IO_PORT, true);
    const count = d.getUint32(RunOffset.IO_COUNT, true);
    const offset = d.getUint32(RunOffset.IO_DATA_OFFSET, true);
    if ((size !== 1 && size !== 2 && size !== 4) || offset + size * count > this.size) {
      return `malformed KVM_EXIT_IO (port 0x${port.toString(16)}, size ${size}, count ${count})`;
    }
    const s = size;
    for (let i = 0, at = offset; i < count; i++, at += size) {
      if (out) {
        const value = size === 1 ? this.bytes[at] : size === 2 ? d.getUint16(at, true) : d.getUint32(at, true);
        h.pioWrite(port, s, value);
      } else {
        const value = h.pioRead(port, s) & SIZE_MASK[size];
        if (size === 1) this.bytes[at] = value;
        else if (size === 2) d.setUint16(at, value, true);
        else d.setUint32(at, value >>> 0, true);
      }
    }
    return null;
  }

  /** Handles a KVM_EXIT_MMIO; 8-byte accesses are split into two 4-byte accesses. */
  handleMmio(h: AccessHandler): string | null {
    const d = this.data;
    const address = d.getUint32(RunOffset.MMIO_PHYS_ADDR + 4, true) * TWO_32 + d.getUint32(RunOffset.MMIO_PHYS_ADDR, true);
    const len = d.getUint32(RunOffset.MMIO_LEN, true);
    const write = this.bytes[RunOffset.MMIO_IS_WRITE] !== 0;
    const at = RunOffset.MMIO_DATA;
    if (len === 1 || len === 2 || len === 4) {
      if (write) {
        const value = len === 1 ? this.bytes[at] : len === 2 ? d.getUint16(at, true) : d.getUint32(at, true);
        h.mmioWrite(address, len, value);
      } else {
        const value = h.mmioRead(address, len) & SIZE_MASK[len];
        if (len === 1) this.bytes[at] = value;
        else if (len === 2) d.setUint16(at, value, true);
        else d.setUint32(at, value >>> 0, true);
      }
      return null;
    }
    if (len === 8) {
      if (write) {
        h.mmioWrite(address, 4, d.getUint32(at, true));
        h.mmioWrite(address + 4, 4, d.getUint32(at + 4, true));
      } else {
        d.setUint32(at, h.mmioRead(address, 4) >>> 0, true);
        d.setUint32(at + 4, h.mmioRead(address + 4, 4) >>> 0, true);
      }
      return null;
    }
    return `malformed KVM_EXIT_MMIO (address 0x${address.toString(16)}, length ${len})`;
  }

  /** The VmExit for an exit reason that ends the run (anything but IO, MMIO and INTR). */
  terminalExit(reason: number, vcpu: number): VmExit {
    const d = this.data;
    switch (reason) {
      case ExitReason.SHUTDOWN:
        return { kind: 'triple-fault', vcpu };
      case ExitReason.SYSTEM_EVENT: {
        const type = d.getUint32(RunOffset.SYSTEM_EVENT_TYPE, true);
        if (type === SystemEvent.SHUTDOWN) return { kind: 'poweroff' };
        if (type === SystemEvent.RESET) return { kind: 'reset' };
        return { kind: 'internal-error', vcpu, message: `vCPU ${vcpu}: KVM system event ${type === SystemEvent.CRASH ? 'crash' : type}` };
      }
      case ExitReason.INTERNAL_ERROR: {
        const sub = d.getUint32(RunOffset.INTERNAL_SUBERROR, true);
        const ndata = Math.min(d.getUint32(RunOffset.INTERNAL_NDATA, true), 16);
        const words: string[] = [];
        for (let i = 0; i < ndata; i++) {
          const off = RunOffset.INTERNAL_DATA + i * 8;
          const hi = d.getUint32(off + 4, true);
          const lo = d.getUint32(off, true);
          words.push('0x' + (hi ? hi.toString(16) + lo.toString(16).padStart(8, '0') : lo.toString(16)));
        }
        const what = InternalErrorSuberror[sub] ?? `suberror ${sub}`;
        const tail = words.length ? ` [${words.join(' ')}]` : '';
        return { kind: 'internal-error', vcpu, message: `vCPU ${vcpu}: KVM internal error: ${what} (suberror ${sub})${tail}` };
      }
      case ExitReason.FAIL_ENTRY: {
        const lo = d.getUint32(RunOffset.FAIL_ENTRY_REASON, true);
        const hi = d.getUint32(RunOffset.FAIL_ENTRY_REASON + 4, true);
        const hw = (hi * TWO_32 + lo).toString(16);
        return { kind: 'internal-error', vcpu, message: `vCPU ${vcpu}: VM entry failed (hardware reason 0x${hw})` };
      }
      case ExitReason.HLT:
        return { kind: 'internal-error', vcpu, message: `vCPU ${vcpu}: unexpected KVM_EXIT_HLT (the in-kernel irqchip should handle HLT)` };
      default:
        return { kind: 'internal-error', vcpu, message: `vCPU ${vcpu}: unexpected KVM exit reason ${reason}` };
    }
  }
}
