/**
 * Guest RAM for the soft engine: one WebAssembly.Memory (shared when the host
 * allows, so vCPUs can later move to worker threads) holding every RAM range
 * from layout.ts back to back, plus the GuestMemory regions devices see.
 *
 * Guest-physical → wasm offset: the range below the MMIO hole maps 1:1, the
 * range at 4 GiB follows it directly. Offsets are what the CPU's TLB caches.
 */

import { ramRanges, MMIO_HOLE_END, MMIO_HOLE_START } from '../../machine/layout.js';
import { GuestMemory } from '../../machine/memory.js';
import { S_END } from './jit/state-layout.js';

const WASM_PAGE = 65536;

/** The part of WebAssembly.Memory used here (the project's TypeScript libs carry no wasm types). */
export interface WasmMemory {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
}
interface WasmMemoryConstructor {
  new (descriptor: { initial: number; maximum?: number; shared?: boolean }): WasmMemory;
}
const WasmMemoryClass = (globalThis as unknown as { WebAssembly: { Memory: WasmMemoryConstructor } }).WebAssembly.Memory;
/** A wasm32 memory holds at most 4 GiB. */
export const SOFT_MAX_RAM = 4 * 1024 * 1024 * 1024 - WASM_PAGE;

/**
 * Per-vCPU state area after guest RAM (never mapped to the guest), so that
 * translated code (jit/) reaches registers and TLB without copies. Layout,
 * byte offsets from the area base: see jit/state-layout.ts.
 */
export const CPU_AREA_SIZE = Math.ceil(S_END / WASM_PAGE) * WASM_PAGE;

export class GuestRam {
  readonly wasmMemory: WasmMemory;
  readonly bytes: Uint8Array;
  readonly view: DataView;
  readonly size: number;
  readonly guestMemory: GuestMemory;
  /** Size of the RAM range below the MMIO hole. */
  private readonly lowSize: number;
  /** vCPU state areas reserved after RAM (0 when they did not fit in wasm32). */
  readonly cpuAreas: number;
  /** Wasm offset of the first state area (RAM size rounded up to a wasm page). */
  private readonly cpuAreaBase: number;

  /** `cpuAreas`: how many vCPU state areas to reserve after RAM (for translated code). */
  constructor(ramSize: number, cpuAreas = 1) {
    if (!Number.isSafeInteger(ramSize) || ramSize <= 0 || ramSize % 4096 !== 0) {
      throw new RangeError(`soft engine: RAM size ${ramSize} must be a positive multiple of 4096`);
    }
    if (ramSize > SOFT_MAX_RAM) throw new RangeError(`soft engine: RAM size ${ramSize} exceeds ${SOFT_MAX_RAM} bytes`);
    const ramPages = Math.ceil(ramSize / WASM_PAGE);
    const areaPages = CPU_AREA_SIZE / WASM_PAGE;
    this.cpuAreas = (ramPages + cpuAreas * areaPages) * WASM_PAGE <= SOFT_MAX_RAM ? cpuAreas : 0;
    this.cpuAreaBase = ramPages * WASM_PAGE;
    const pages = ramPages + this.cpuAreas * areaPages;
    let memory: WasmMemory;
    try {
      memory = new WasmMemoryClass({ initial: pages, maximum: pages, shared: true });
    } catch {
      memory = new WasmMemoryClass({ initial: pages, maximum: pages });
    }
    this.wasmMemory = memory;
    this.bytes = new Uint8Array(memory.buffer, 0, ramSize);
    this.view = new DataView(memory.buffer, 0, ramSize);
    this.size = ramSize;
    this.lowSize = Math.min(ramSize, MMIO_HOLE_START);
    let offset = 0;
    const regions = ramRanges(ramSize).map((r) => {
      const bytes = new Uint8Array(memory.buffer, offset, r.size);
      offset += r.size;
      return { ...r, bytes };
    });
    this.guestMemory = new GuestMemory(regions);
  }

  /** Wasm offset of vCPU `index`'s state area, or -1 when none was reserved. */
  cpuAreaOffset(index: number): number {
    return index >= 0 && index < this.cpuAreas ? this.cpuAreaBase + index * CPU_AREA_SIZE : -1;
  }

  /** The wasm memory's size in 64 KiB pages. */
  get pages(): number {
    return this.wasmMemory.buffer.byteLength / WASM_PAGE;
  }

  /** Whether the wasm memory is shared (an imported memory must declare the same). */
  get shared(): boolean {
    return typeof SharedArrayBuffer !== 'undefined' && this.wasmMemory.buffer instanceof SharedArrayBuffer;
  }

  /** The wasm offset of guest-physical `gpa`, or -1 when it is not RAM. */
  offsetOf(gpa: number): number {
    if (gpa >= 0 && gpa < this.lowSize) return gpa;
    if (gpa >= MMIO_HOLE_END && gpa - MMIO_HOLE_END < this.size - this.lowSize) return gpa - MMIO_HOLE_END + this.lowSize;
    return -1;
  }
}
