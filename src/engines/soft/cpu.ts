/**
 * One soft x86-64 vCPU: the register file (64-bit registers as 32-bit halves
 * in typed arrays), lazy flags, segment and descriptor-table state, control
 * registers and MSRs, the software TLB and page walker, guest memory access,
 * exception and interrupt delivery, and the fetch/decode/execute loop.
 * Instruction semantics live in interp.ts.
 *
 * Numbers, not BigInt: linear addresses and RIP are JS numbers (in 64-bit
 * mode the signed value of a canonical address, exact below 2^53).
 */

import type { AccessSize } from '../../machine/bus.js';
import type { CpuState, Segment } from '../cpu-state.js';
import { GPR_NAMES, SEGMENT_NAMES } from '../cpu-state.js';
import type { LocalInterruptSource, SoftClock } from './platform-contract.js';
import { CodeCache, DC_MASK } from './code-cache.js';
import { decode, D_FLAGS, D_LEN, D_OP, D_SHIFT, DECODE_TOO_LONG, F_CROSSES_PAGE, OP_INVALID, type ByteSource } from './decoder.js';
import type { GuestRam } from './guest-ram.js';
import { WideMath } from './wide-math.js';
import { execute } from './interp.js';
import type { SoftTrace } from './trace.js';
import { loadSseStateImage, sseStateImage } from './sse/fxsave.js';
import { SseState } from './sse/state.js';

const TWO32 = 0x1_0000_0000;

export * from './arch.js';
import {
  X_DB, A_DB, A_DPL_SHIFT, A_G, A_L, A_P, A_S, A_UNUSABLE, ACC_EXEC, ACC_READ, ACC_WRITE, AC, ARITH_FLAGS, CF, CR0_CD, CR0_ET, CR0_NW, CR0_PE, CR0_PG, CR0_WP,
  CR4_PAE, CR4_PGE, CR4_PKE, CR4_PKS, CR4_PSE, CR4_SMAP, CR4_SMEP, CR4_SUPPORTED, CS, DS, EFER_LMA, EFER_LME, EFER_NXE, EFER_SCE, ES, FS, GS, IF, LDTR, L_ADC, L_ADD, L_DEC, L_INC, L_LOGIC,
  L_NONE, L_RESULT_CFOF, L_SBB, L_SUB, MAX_PHYS_BITS, NT, RF, SS, TF, TLB_MASK, TLB_SIZE, TR, VM, WRITABLE_FLAGS, X_DE, X_DF, X_GP, X_NMI, X_NP,
  X_PF, X_SS, X_TS, X_UD, A_AVL,
} from './arch.js';
import { X87State } from './fpu/state.js';
import { Jit } from './jit/jit.js';
import { S_HI, S_LO, S_SEG_BASE, S_TLB_OFF, S_TLB_TAG, S_WORDS, TLB_SET_CAPACITY, W_COUNT } from './jit/state-layout.js';

const PARITY = new Uint8Array(256);
for (let i = 0; i < 256; i++) {
  let p = 1;
  for (let b = i; b !== 0; b >>= 1) p ^= b & 1;
  PARITY[i] = p;
}

/** TLB installs remembered between flushes (beyond this, a flush scans every set). */
const TLB_FILL_LOG = 2048;
/**
 * TLB sets: 0-2 supervisor R/W/X, 3-5 user R/W/X, 6-7 supervisor R/W with
 * SMAP on and EFLAGS.AC=1 ("AC open"). With SMAP on, sets 0-1 never hold user
 * pages (the walk faults), sets 6-7 may; so STAC/CLAC only switch the set base.
 */
const TLB_SETS = 8;
// The TLB arrays are views of the per-vCPU state area (jit/state-layout.ts), sized for TLB_SET_CAPACITY sets.
if (TLB_SETS > TLB_SET_CAPACITY) throw new Error(`TLB_SETS (${TLB_SETS}) exceeds the state area's TLB_SET_CAPACITY (${TLB_SET_CAPACITY})`);
const SET_SUP_AC = 6;

/** Thrown (one preallocated instance) to unwind from a guest fault to the run loop. */
export class GuestFault extends Error {
  constructor() {
    super('guest fault');
    this.name = 'GuestFault';
  }
}
export const FAULT = new GuestFault();

/** Raised when the guest triple-faults; the engine ends the VM. */
export class TripleFault extends Error {
  constructor() {
    super('triple fault');
    this.name = 'TripleFault';
  }
}

/** What the vCPU needs from the VM: device buses (VmOps) and VM-level requests. */
export interface CpuHost {
  pioRead(port: number, size: AccessSize): number;
  pioWrite(port: number, size: AccessSize, value: number): void;
  mmioRead(address: number, size: AccessSize): number;
  mmioWrite(address: number, size: AccessSize, value: number): void;
}

/** Why Cpu.run() returned. */
export const RUN_BUDGET = 0;
export const RUN_HALTED = 1;
export const RUN_STOP = 2;

/** A fetch-side byte source for the decoder on cache misses. */
class FetchSource implements ByteSource {
  base = 0;
  constructor(private readonly cpu: Cpu) {}
  byte(index: number): number {
    return this.cpu.fetchByte(this.base + index);
  }
}

export class Cpu {
  // ---- Registers ----
  /** GPR halves: views of the vCPU's state area in guest-RAM memory when one is reserved (jit/state-layout.ts). */
  readonly lo: Int32Array;
  readonly hi: Int32Array;
  rip = 0;
  /** RIP of the next instruction while one executes (branches write it). */
  nextRip = 0;
  /** RFLAGS; the arithmetic bits are valid only when lazyOp === L_NONE. */
  flags = 2;
  lazyOp = L_NONE;
  lazySize = 4;
  lazyRes = 0;
  lazyResHi = 0;
  lazyA = 0;
  lazyAHi = 0;
  lazyB = 0;
  lazyBHi = 0;
  lazyCF = 0;
  lazyOF = 0;

  readonly segSel = new Int32Array(8);
  /** Segment bases: a view of the state area when there is one (translated blocks read FS/GS bases). */
  readonly segBase: Float64Array;
  readonly segLimit = new Float64Array(8);
  readonly segAttr = new Int32Array(8);
  gdtBase = 0;
  gdtLimit = 0xffff;
  idtBase = 0;
  idtLimit = 0xffff;

  cr0 = CR0_ET | CR0_CD | CR0_NW;
  cr2 = 0;
  cr3 = 0;
  cr4 = 0;
  cr8 = 0;
  efer = 0;
  readonly dr = new Float64Array(8);
  apicBase = 0xfee00900;

  // MSRs (values as numbers; 64-bit ones as signed canonical numbers or lo/hi pairs).
  star = 0;
  starHi = 0;
  lstar = 0;
  cstar = 0;
  sfmask = 0;
  kernelGsBase = 0;
  sysenterCs = 0;
  sysenterEsp = 0;
  sysenterEip = 0;
  patLo = 0x00070406;
  patHi = 0x00070406;
  mtrrDefType = 0;
  readonly mtrrs = new Map<number, [number, number]>();
  miscEnable = 1; // fast strings
  /** IA32_MISC_ENABLE bits 63:32; bit 34 (bit 2 here) is XD Bit Disable. */
  miscEnableHi = 0;
  tscOffset = 0;
  tscAux = 0;
  /** IA32_TSC_ADJUST (signed). */
  tscAdjust = 0;

  // ---- Derived mode state ----
  cpl = 0;
  /** Decode mode: 16, 32 or 64. */
  codeSize = 16;
  /** 0/1/2 for 16/32/64, part of the decode-cache tag. */
  codeSizeIndex = 0;
  /** codeSizeIndex * 2^32: added to a wasm offset to form a decode-cache tag. */
  tagBias = 0;
  /** Stack pointer width in bytes: 2, 4 or 8. */
  stackSize = 2;
  long64 = false;
  /** CS base, used for fetches outside 64-bit mode. */
  csBase = 0;

  // ---- Run state ----
  halted = false;
  /** APs wait for a start-up IPI. */
  waitForSipi = false;
  /** Interrupts are inhibited for one instruction (after STI, MOV SS, POP SS). */
  interruptShadow = false;
  /** Set by instructions that may unmask interrupts; ends the current batch. */
  eventCheck = false;
  /** NMIs are blocked until the next IRET. */
  nmiBlocked = false;
  /**
   * Set by SYSCALL/SYSRET (which also end the batch): their single-step trap
   * depends on TF after the instruction, not before (what QEMU and KVM do).
   */
  singleStepByNewTf = false;
  /** Counts retired instructions. */
  instructions = 0;
  /** Set when the engine asks the vCPU to stop at the next boundary. */
  stopRequested = false;

  // ---- Exception state ----
  excVector = 0;
  excError = -1;
  /** RF while a fault is being delivered (it goes into the saved RFLAGS image), else 0. */
  private faultRf = 0;
  /** Vector being delivered (for double-fault detection), or -1. */
  private delivering = -1;

  // ---- Memory ----
  readonly mem: Uint8Array;
  readonly dv: DataView;
  /** High half of the last rd64 result. */
  rdHi = 0;
  /** High half of the last ALU result. */
  resHi = 0;
  /** Exact 64-bit effective-address halves from operands.offset64. */
  eaLo = 0;
  eaHi = 0;
  /** Linear address of the last memory operand read by readRm (for the write-back). */
  lastLin = 0;
  /** Tags (linear page base) per TLB set (see TLB_SETS). */
  readonly tlbTag: Float64Array;
  /** Wasm offset of the page, or -1 when it is not RAM. */
  readonly tlbOff: Float64Array;
  /** Int32 words of the state area handed to translated blocks (jit/state-layout.ts), or null without one. */
  readonly jitWords: Int32Array | null;
  /** Wasm offset of the state area, or -1. */
  readonly stateOffset: number;
  /** Block translator (jit/), or null when translation is off. */
  jit: Jit | null = null;
  /** The run loop's instruction limit for the current batch (translated blocks must fit below it). */
  jitLimit = 0;
  /** This vCPU's dispatch table (jit/dispatcher.ts) and the translator that set it up, once it entered a block. */
  jitDispatch: Int32Array | null = null;
  jitDispatchOwner: Jit | null = null;
  /** Guest-physical page base. */
  readonly tlbPhys = new Float64Array(TLB_SETS * TLB_SIZE);
  readonly tlbGlobal = new Uint8Array(TLB_SETS * TLB_SIZE);
  /**
   * Indices of the TLB entries installed since the last flush, so a flush
   * (every CR3 write) clears those instead of scanning every set. A count
   * above TLB_FILL_LOG means the log overflowed: flushes scan everything.
   */
  private readonly tlbFilled = new Int32Array(TLB_FILL_LOG);
  private tlbFilledCount = 0;
  /** Protection-key rights for user pages (PKRU) and supervisor pages (IA32_PKRS): AD/WD bit pairs per key. */
  pkru = 0;
  pkrs = 0;
  /** TLB set base for explicit reads/writes at the current privilege (and SMAP/AC state). */
  rdSet = 0;
  wrSet = TLB_SIZE;
  /** Fetch window: linear page base and its wasm offset (NaN when invalid). */
  fetchPage = NaN;
  fetchOff = 0;

  readonly wide = new WideMath();
  /** x87 FPU state (fpu/); created in the FNINIT state. */
  readonly x87 = new X87State();
  readonly msrOut = new Uint32Array(2);
  /** XMM registers and MXCSR (sse/). */
  readonly sse = new SseState();
  private readonly fetchSource: FetchSource;
  host: CpuHost | null = null;
  /** Diagnostics (TYPEVISOR_SOFT_TRACE), or null: see trace.ts. */
  trace: SoftTrace | null = null;

  constructor(
    readonly index: number,
    readonly ram: GuestRam,
    readonly code: CodeCache,
    readonly lapic: LocalInterruptSource | null,
    readonly clock: SoftClock,
  ) {
    this.mem = ram.bytes;
    this.dv = ram.view;
    const area = ram.cpuAreaOffset(index);
    this.stateOffset = area;
    const buf = ram.wasmMemory.buffer;
    this.lo = area >= 0 ? new Int32Array(buf, area + S_LO, 16) : new Int32Array(16);
    this.hi = area >= 0 ? new Int32Array(buf, area + S_HI, 16) : new Int32Array(16);
    this.jitWords = area >= 0 ? new Int32Array(buf, area + S_WORDS, W_COUNT) : null;
    this.segBase = area >= 0 ? new Float64Array(buf, area + S_SEG_BASE, 8) : new Float64Array(8);
    // Sized by the area's set capacity (≥ the sets in use), so the views cover every set.
    const tlbEntries = TLB_SET_CAPACITY * TLB_SIZE;
    this.tlbTag = (area >= 0 ? new Float64Array(buf, area + S_TLB_TAG, tlbEntries) : new Float64Array(tlbEntries)).fill(NaN);
    this.tlbOff = area >= 0 ? new Float64Array(buf, area + S_TLB_OFF, tlbEntries) : new Float64Array(tlbEntries);
    if (area >= 0) this.jit = Jit.forCache(code, ram);
    this.fetchSource = new FetchSource(this);
    code.listeners.push(this);
    this.reset();
  }

  /** The architectural power-on state (SDM 10.1.1). */
  reset(): void {
    this.lo.fill(0);
    this.hi.fill(0);
    this.lo[2] = 0x00000600; // EDX: family/model/stepping
    this.rip = 0xfff0;
    this.flags = 2;
    this.lazyOp = L_NONE;
    for (let s = 0; s < 6; s++) this.setRealSegment(s, 0);
    this.segSel[CS] = 0xf000;
    this.segBase[CS] = 0xffff0000;
    this.segAttr[CS] = 0xb | A_S | A_P;
    this.segSel[LDTR] = 0; this.segBase[LDTR] = 0; this.segLimit[LDTR] = 0xffff; this.segAttr[LDTR] = 0x2 | A_P;
    this.segSel[TR] = 0; this.segBase[TR] = 0; this.segLimit[TR] = 0xffff; this.segAttr[TR] = 0xb | A_P;
    this.gdtBase = 0; this.gdtLimit = 0xffff; this.idtBase = 0; this.idtLimit = 0xffff;
    this.cr0 = CR0_ET | CR0_CD | CR0_NW;
    this.cr2 = 0; this.cr3 = 0; this.cr4 = 0; this.cr8 = 0; this.efer = 0;
    this.pkru = 0; this.pkrs = 0;
    this.dr.fill(0);
    this.dr[6] = 0xffff0ff0;
    this.dr[7] = 0x400;
    this.sse.reset();
    this.halted = false;
    this.interruptShadow = false;
    this.nmiBlocked = false;
    this.updateMode();
    this.flushTlb(true);
  }

  // =====================================================================
  // Lazy flags
  // =====================================================================

  setLazy(op: number, size: number, res: number, resHi: number, a: number, aHi: number, b: number, bHi: number): void {
    this.lazyOp = op; this.lazySize = size;
    this.lazyRes = res; this.lazyResHi = resHi;
    this.lazyA = a; this.lazyAHi = aHi;
    this.lazyB = b; this.lazyBHi = bHi;
  }

  /** Sets result-based flags with explicit CF and OF (logic ops, shifts, multiplies). */
  setResultFlags(size: number, res: number, resHi: number, cf: number, of: number): void {
    this.lazyOp = L_RESULT_CFOF; this.lazySize = size;
    this.lazyRes = res; this.lazyResHi = resHi;
    this.lazyCF = cf; this.lazyOF = of;
  }

  getCF(): number {
    const a = this.lazyA;
    const r = this.lazyRes;
    switch (this.lazyOp) {
      case L_NONE: return this.flags & CF;
      case L_ADD:
        if (this.lazySize === 8) return ult64(r, this.lazyResHi, a, this.lazyAHi);
        return (r >>> 0) < (a >>> 0) ? 1 : 0;
      case L_ADC:
        if (this.lazySize === 8) return this.lazyCF !== 0 ? 1 - ult64(a, this.lazyAHi, r, this.lazyResHi) : ult64(r, this.lazyResHi, a, this.lazyAHi);
        return this.lazyCF !== 0 ? ((r >>> 0) <= (a >>> 0) ? 1 : 0) : ((r >>> 0) < (a >>> 0) ? 1 : 0);
      case L_SUB:
        if (this.lazySize === 8) return ult64(a, this.lazyAHi, this.lazyB, this.lazyBHi);
        return (a >>> 0) < (this.lazyB >>> 0) ? 1 : 0;
      case L_SBB:
        if (this.lazySize === 8) return this.lazyCF !== 0 ? 1 - ult64(this.lazyB, this.lazyBHi, a, this.lazyAHi) : ult64(a, this.lazyAHi, this.lazyB, this.lazyBHi);
        return this.lazyCF !== 0 ? ((a >>> 0) <= (this.lazyB >>> 0) ? 1 : 0) : ((a >>> 0) < (this.lazyB >>> 0) ? 1 : 0);
      case L_LOGIC: return 0;
      default: return this.lazyCF;
    }
  }

  private signBit(): number {
    const s = this.lazySize;
    return s === 1 ? 0x80 : s === 2 ? 0x8000 : 0x80000000 | 0;
  }

  getZF(): number {
    if (this.lazyOp === L_NONE) return (this.flags >> 6) & 1;
    if (this.lazySize === 8) return (this.lazyRes | this.lazyResHi) === 0 ? 1 : 0;
    return this.lazyRes === 0 ? 1 : 0;
  }

  getSF(): number {
    if (this.lazyOp === L_NONE) return (this.flags >> 7) & 1;
    if (this.lazySize === 8) return this.lazyResHi >>> 31;
    return (this.lazyRes & this.signBit()) !== 0 ? 1 : 0;
  }

  getPF(): number {
    if (this.lazyOp === L_NONE) return (this.flags >> 2) & 1;
    return PARITY[this.lazyRes & 0xff];
  }

  getAF(): number {
    switch (this.lazyOp) {
      case L_NONE: return (this.flags >> 4) & 1;
      case L_ADD: case L_ADC: case L_SUB: case L_SBB: return ((this.lazyA ^ this.lazyB ^ this.lazyRes) >> 4) & 1;
      case L_INC: return (this.lazyRes & 0xf) === 0 ? 1 : 0;
      case L_DEC: return (this.lazyRes & 0xf) === 0xf ? 1 : 0;
      default: return 0;
    }
  }

  getOF(): number {
    const wide = this.lazySize === 8;
    const a = wide ? this.lazyAHi : this.lazyA;
    const b = wide ? this.lazyBHi : this.lazyB;
    const r = wide ? this.lazyResHi : this.lazyRes;
    const sb = wide ? 0x80000000 | 0 : this.signBit();
    switch (this.lazyOp) {
      case L_NONE: return (this.flags >> 11) & 1;
      case L_ADD: case L_ADC: return ((a ^ r) & (b ^ r) & sb) !== 0 ? 1 : 0;
      case L_SUB: case L_SBB: return ((a ^ b) & (a ^ r) & sb) !== 0 ? 1 : 0;
      case L_INC: return r === sb && (!wide || this.lazyRes === 0) ? 1 : 0;
      case L_DEC: return (r === (sb === (0x80000000 | 0) ? 0x7fffffff : sb - 1)) && (!wide || this.lazyRes === -1) ? 1 : 0;
      case L_LOGIC: return 0;
      default: return this.lazyOF;
    }
  }

  /** The full RFLAGS value. */
  getFlags(): number {
    if (this.lazyOp === L_NONE) return this.flags;
    return (this.flags & ~ARITH_FLAGS) | this.getCF() | (this.getPF() << 2) | (this.getAF() << 4) |
      (this.getZF() << 6) | (this.getSF() << 7) | (this.getOF() << 11);
  }

  /** Replaces the bits in `mask` of RFLAGS with `value`. */
  setFlags(value: number, mask: number): void {
    const cur = this.getFlags();
    const prevIf = cur & IF;
    this.flags = ((cur & ~mask) | (value & mask) | 2) & (WRITABLE_FLAGS | 2 | VM);
    this.lazyOp = L_NONE;
    if (((cur ^ this.flags) & AC) !== 0) this.updateDataSets();
    if (((this.flags & IF) !== 0 && prevIf === 0) || (this.flags & TF) !== 0) this.eventCheck = true;
  }

  /** Evaluates condition code `cc` (0-15). */
  cond(cc: number): boolean {
    let r: number;
    switch (cc >> 1) {
      case 0: r = this.getOF(); break;
      case 1: r = this.getCF(); break;
      case 2: r = this.getZF(); break;
      case 3: r = this.getCF() | this.getZF(); break;
      case 4: r = this.getSF(); break;
      case 5: r = this.getPF(); break;
      case 6: r = this.getSF() ^ this.getOF(); break;
      default: r = this.getZF() | (this.getSF() ^ this.getOF()); break;
    }
    return (r ^ (cc & 1)) !== 0;
  }

  /** Puts the current CF into lazyCF and keeps the other flags materialised (INC/DEC, ADC/SBB carry-in). */
  carryIn(): number {
    return this.getCF();
  }

  // =====================================================================
  // Register helpers
  // =====================================================================

  /** Register `r` as a signed number (exact for values within ±2^53). */
  reg64(r: number): number {
    return this.hi[r] * TWO32 + (this.lo[r] >>> 0);
  }

  /** Sets register `r` from a number in [-2^63, 2^64) that is an exact integer. */
  setReg64(r: number, v: number): void {
    this.lo[r] = v % TWO32 | 0;
    this.hi[r] = Math.floor(v / TWO32) | 0;
  }

  /** The stack pointer at the current stack width. */
  getSp(): number {
    const s = this.stackSize;
    if (s === 8) return this.reg64(4);
    if (s === 4) return this.lo[4] >>> 0;
    return this.lo[4] & 0xffff;
  }

  setSp(v: number): void {
    const s = this.stackSize;
    if (s === 8) this.setReg64(4, v);
    else if (s === 4) { this.lo[4] = v | 0; this.hi[4] = 0; }
    else this.lo[4] = (this.lo[4] & ~0xffff) | (v & 0xffff);
  }

  /** Linear address of stack offset `sp`. */
  stackLin(sp: number): number {
    if (this.stackSize === 8) return sp;
    return (this.segBase[SS] + sp) >>> 0;
  }

  private wrapSp(v: number): number {
    const s = this.stackSize;
    return s === 8 ? v : s === 4 ? v >>> 0 : v & 0xffff;
  }

  /** A non-canonical stack address in 64-bit mode is #SS(0) (not the #GP(0) the page walk would raise). */
  private checkStackCanonical(lin: number, size: number): void {
    if (this.stackSize === 8 && (lin < -0x800000000000 || lin + size > 0x800000000000)) this.raise(X_SS, 0);
  }

  /** Pushes `size` bytes (2, 4 or 8) of (hi:lo). */
  push(size: number, lo: number, hi: number): void {
    const sp = this.wrapSp(this.getSp() - size);
    const lin = this.stackLin(sp);
    this.checkStackCanonical(lin, size);
    if (size === 8) this.wr64(lin, lo, hi);
    else if (size === 4) this.wr32(lin, lo);
    else this.wr16(lin, lo);
    this.setSp(sp);
  }

  /** Pops `size` bytes; returns the low 32 bits, the high half in rdHi. */
  pop(size: number): number {
    const sp = this.getSp();
    const lin = this.stackLin(sp);
    this.checkStackCanonical(lin, size);
    let v: number;
    if (size === 8) v = this.rd64(lin);
    else if (size === 4) { v = this.rd32(lin); this.rdHi = 0; }
    else { v = this.rd16(lin); this.rdHi = 0; }
    this.setSp(this.wrapSp(sp + size));
    return v;
  }

  /** Reads the stack at offset `delta` from SP without popping. */
  peek(size: number, delta: number): number {
    const lin = this.stackLin(this.wrapSp(this.getSp() + delta));
    if (size === 8) return this.rd64(lin);
    this.rdHi = 0;
    return size === 4 ? this.rd32(lin) : this.rd16(lin);
  }

  // =====================================================================
  // Memory: TLB fast paths
  // =====================================================================

  rd8(lin: number): number {
    const idx = this.rdSet + ((lin >>> 12) & TLB_MASK);
    const off = lin & 0xfff;
    if (this.tlbTag[idx] === lin - off) {
      const o = this.tlbOff[idx];
      if (o >= 0) return this.mem[o + off];
    }
    return this.readSlow(lin, 1);
  }

  rd16(lin: number): number {
    const idx = this.rdSet + ((lin >>> 12) & TLB_MASK);
    const off = lin & 0xfff;
    if (this.tlbTag[idx] === lin - off && off <= 0xffe) {
      const o = this.tlbOff[idx];
      if (o >= 0) return this.dv.getUint16(o + off, true);
    }
    return this.readSlow(lin, 2);
  }

  rd32(lin: number): number {
    const idx = this.rdSet + ((lin >>> 12) & TLB_MASK);
    const off = lin & 0xfff;
    if (this.tlbTag[idx] === lin - off && off <= 0xffc) {
      const o = this.tlbOff[idx];
      if (o >= 0) return this.dv.getInt32(o + off, true);
    }
    return this.readSlow(lin, 4);
  }

  /** Reads 8 bytes: returns the low half, sets rdHi. */
  rd64(lin: number): number {
    const idx = this.rdSet + ((lin >>> 12) & TLB_MASK);
    const off = lin & 0xfff;
    if (this.tlbTag[idx] === lin - off && off <= 0xff8) {
      const o = this.tlbOff[idx];
      if (o >= 0) {
        this.rdHi = this.dv.getInt32(o + off + 4, true);
        return this.dv.getInt32(o + off, true);
      }
    }
    const lo = this.readSlow(lin, 4);
    this.rdHi = this.readSlow(lin + 4, 4);
    return lo;
  }

  wr8(lin: number, v: number): void {
    const idx = this.wrSet + ((lin >>> 12) & TLB_MASK);
    const off = lin & 0xfff;
    if (this.tlbTag[idx] === lin - off) {
      const o = this.tlbOff[idx];
      if (o >= 0) { this.mem[o + off] = v; return; }
    }
    this.writeSlow(lin, 1, v);
  }

  wr16(lin: number, v: number): void {
    const idx = this.wrSet + ((lin >>> 12) & TLB_MASK);
    const off = lin & 0xfff;
    if (this.tlbTag[idx] === lin - off && off <= 0xffe) {
      const o = this.tlbOff[idx];
      if (o >= 0) { this.dv.setUint16(o + off, v, true); return; }
    }
    this.writeSlow(lin, 2, v);
  }

  wr32(lin: number, v: number): void {
    const idx = this.wrSet + ((lin >>> 12) & TLB_MASK);
    const off = lin & 0xfff;
    if (this.tlbTag[idx] === lin - off && off <= 0xffc) {
      const o = this.tlbOff[idx];
      if (o >= 0) { this.dv.setInt32(o + off, v, true); return; }
    }
    this.writeSlow(lin, 4, v);
  }

  wr64(lin: number, lo: number, hi: number): void {
    const idx = this.wrSet + ((lin >>> 12) & TLB_MASK);
    const off = lin & 0xfff;
    if (this.tlbTag[idx] === lin - off && off <= 0xff8) {
      const o = this.tlbOff[idx];
      if (o >= 0) { this.dv.setInt32(o + off, lo, true); this.dv.setInt32(o + off + 4, hi, true); return; }
    }
    // Check both halves are writable before writing either.
    this.translate(lin, ACC_WRITE, this.cpl === 3);
    this.translate(lin + 7, ACC_WRITE, this.cpl === 3);
    this.writeSlow(lin, 4, lo);
    this.writeSlow(lin + 4, 4, hi);
  }

  /**
   * The wasm offset of linear `lin` when the TLB already maps its page for a
   * read (or a write) at the current privilege, else -1. No walk, no fault:
   * callers fall back to the element-by-element path.
   */
  mappedOffset(lin: number, write: boolean): number {
    const idx = (write ? this.wrSet : this.rdSet) + ((lin >>> 12) & TLB_MASK);
    const off = lin & 0xfff;
    if (this.tlbTag[idx] !== lin - off) return -1;
    const o = this.tlbOff[idx];
    return o >= 0 ? o + off : -1;
  }

  /** Checks that `size` bytes at `lin` may be written (TLB hit, or a page walk that raises the write fault). */
  probeWrite(lin: number, size: number): void {
    const idx = this.wrSet + ((lin >>> 12) & TLB_MASK);
    const off = lin & 0xfff;
    if (this.tlbTag[idx] === lin - off && off + size <= 0x1000) return;
    const user = this.cpl === 3;
    this.translate(lin, ACC_WRITE, user);
    if (off + size > 0x1000) this.translate(this.linWrap(lin + size - 1), ACC_WRITE, user);
  }

  /** Reads 1, 2 or 4 bytes (little-endian) on the slow path. */
  readSlow(lin: number, size: number): number {
    const user = this.cpl === 3;
    if (((lin & 0xfff) + size) > 0x1000) {
      let v = 0;
      for (let i = 0; i < size; i++) v |= this.physRead(this.translate(this.linWrap(lin + i), ACC_READ, user), 1) << (8 * i);
      return size === 4 ? v : v >>> 0;
    }
    const phys = this.translate(lin, ACC_READ, user);
    const v = this.physRead(phys, size as AccessSize);
    return size === 4 ? v | 0 : v;
  }

  writeSlow(lin: number, size: number, v: number): void {
    const user = this.cpl === 3;
    if (((lin & 0xfff) + size) > 0x1000) {
      const last = this.linWrap(lin + size - 1);
      this.translate(lin, ACC_WRITE, user);
      this.translate(last, ACC_WRITE, user);
      for (let i = 0; i < size; i++) this.physWrite(this.translate(this.linWrap(lin + i), ACC_WRITE, user), 1, (v >>> (8 * i)) & 0xff);
      return;
    }
    this.physWrite(this.translate(lin, ACC_WRITE, user), size as AccessSize, v);
  }

  /** Wraps a linear address computed by adding to another: 32 bits outside long mode. */
  linWrap(lin: number): number {
    return (this.efer & EFER_LMA) !== 0 ? lin : lin >>> 0;
  }

  /** Reads `size` bytes at `lin` with explicit privilege (descriptor tables, TSS, interrupt stacks). */
  sysRead(lin: number, size: 1 | 2 | 4, user = false): number {
    if (((lin & 0xfff) + size) > 0x1000) {
      let v = 0;
      for (let i = 0; i < size; i++) v |= this.physRead(this.translate(this.linWrap(lin + i), ACC_READ, user, true), 1) << (8 * i);
      return v;
    }
    return this.physRead(this.translate(lin, ACC_READ, user, true), size);
  }

  sysWrite(lin: number, size: 1 | 2 | 4, v: number, user = false): void {
    if (((lin & 0xfff) + size) > 0x1000) {
      for (let i = 0; i < size; i++) this.physWrite(this.translate(this.linWrap(lin + i), ACC_WRITE, user, true), 1, (v >>> (8 * i)) & 0xff);
      return;
    }
    this.physWrite(this.translate(lin, ACC_WRITE, user, true), size, v);
  }

  // =====================================================================
  // Physical memory
  // =====================================================================

  physRead(phys: number, size: AccessSize): number {
    const off = this.ram.offsetOf(phys);
    if (off >= 0 && off + size <= this.ram.size) {
      if (size === 1) return this.mem[off];
      if (size === 2) return this.dv.getUint16(off, true);
      return this.dv.getUint32(off, true);
    }
    const lapic = this.lapic;
    if (lapic !== null && lapic.mmioEnabled()) {
      const d = phys - lapic.baseAddress();
      if (d >= 0 && d < 4096) return lapic.mmioRead(d, size);
    }
    if (this.host === null) return size === 1 ? 0xff : size === 2 ? 0xffff : 0xffffffff;
    return this.host.mmioRead(phys, size);
  }

  physWrite(phys: number, size: AccessSize, v: number): void {
    const off = this.ram.offsetOf(phys);
    if (off >= 0 && off + size <= this.ram.size) {
      if (this.code.codePages[off >>> 12] !== 0) this.code.invalidatePage(off);
      if (size === 1) this.mem[off] = v;
      else if (size === 2) this.dv.setUint16(off, v, true);
      else this.dv.setInt32(off, v, true);
      if (size > 1 && (off & 0xfff) + size > 0x1000 && this.code.codePages[(off >>> 12) + 1] !== 0) this.code.invalidatePage(off + size);
      return;
    }
    const lapic = this.lapic;
    if (lapic !== null && lapic.mmioEnabled()) {
      const d = phys - lapic.baseAddress();
      if (d >= 0 && d < 4096) {
        lapic.mmioWrite(d, size, v >>> 0);
        this.eventCheck = true;
        return;
      }
    }
    this.host?.mmioWrite(phys, size, size === 4 ? v >>> 0 : v & (size === 1 ? 0xff : 0xffff));
  }

  /** Reads a 64-bit page-table entry at physical `phys`: low half returned, high half in rdHi. */
  private readPte(phys: number): number {
    const off = this.ram.offsetOf(phys);
    if (off < 0 || off + 8 > this.ram.size) { this.rdHi = 0; return 0; }
    this.rdHi = this.dv.getInt32(off + 4, true);
    return this.dv.getInt32(off, true);
  }

  private setPteBits(phys: number, bits: number): void {
    const off = this.ram.offsetOf(phys);
    if (off < 0) return;
    const v = this.dv.getInt32(off, true);
    if ((v & bits) !== bits) {
      this.dv.setInt32(off, v | bits, true);
      if (this.code.codePages[off >>> 12] !== 0) this.code.invalidatePage(off);
    }
  }

  // =====================================================================
  // Paging
  // =====================================================================

  /**
   * Translates linear `lin` for an access of kind `acc` at user privilege
   * `user`, raising #PF (or #GP for a non-canonical address), and fills the TLB.
   * `implicit` marks supervisor accesses the CPU makes itself (descriptor
   * tables, TSS, event-delivery stacks): SMAP checks them whatever EFLAGS.AC.
   * Returns the guest-physical address.
   */
  translate(lin: number, acc: number, user: boolean, implicit = false): number {
    const pageOff = lin & 0xfff;
    const page = lin - pageOff;
    let set = user ? 3 + acc : acc;
    if (!user && acc !== ACC_EXEC && !implicit && (this.flags & AC) !== 0 && (this.cr4 & CR4_SMAP) !== 0) set = SET_SUP_AC + acc;
    const idx = set * TLB_SIZE + ((lin >>> 12) & TLB_MASK);
    if (this.tlbTag[idx] === page) return this.tlbPhys[idx] + pageOff;
    let physPage: number;
    let global = 0;
    let writable = true;
    if ((this.cr0 & CR0_PG) === 0) {
      physPage = page;
    } else {
      physPage = this.walk(lin, acc, user, set >= SET_SUP_AC);
      global = this.walkGlobal;
      writable = this.walkWritable;
    }
    const off = this.ram.offsetOf(physPage);
    if (acc === ACC_WRITE && off >= 0 && this.code.codePages[off >>> 12] !== 0) {
      // Writes to code pages stay on the slow path so they invalidate decoded code.
      return physPage + pageOff;
    }
    if (acc === ACC_WRITE && !writable) return physPage + pageOff;
    this.tlbTag[idx] = page;
    this.tlbOff[idx] = off >= 0 && off + 4096 <= this.ram.size ? off : -1;
    this.tlbPhys[idx] = physPage;
    this.tlbGlobal[idx] = global;
    const filled = this.tlbFilledCount;
    if (filled < TLB_FILL_LOG) this.tlbFilled[filled] = idx;
    this.tlbFilledCount = filled + 1;
    return physPage + pageOff;
  }

  private walkGlobal = 0;
  /** False when a write succeeded but the mapping must not be cached for writes (D not yet settable). */
  private walkWritable = true;

  private pageFault(lin: number, acc: number, user: boolean, present: boolean, rsvd: boolean, protectionKey = false): never {
    this.cr2 = lin;
    let err = (present ? 1 : 0) | (acc === ACC_WRITE ? 2 : 0) | (user ? 4 : 0) | (rsvd ? 8 : 0) | (protectionKey ? 32 : 0);
    if (acc === ACC_EXEC && ((this.efer & EFER_NXE) !== 0 || (this.cr4 & CR4_SMEP) !== 0)) err |= 16;
    return this.raise(X_PF, err);
  }

  /**
   * Walks the page tables; returns the physical page base and sets walkGlobal.
   * `acOpen`: an explicit supervisor data access with SMAP on and EFLAGS.AC=1.
   */
  private walk(lin: number, acc: number, user: boolean, acOpen: boolean): number {
    const nxe = (this.efer & EFER_NXE) !== 0;
    const wp = (this.cr0 & CR0_WP) !== 0;
    this.walkWritable = true;
    let allowUser = true;
    let allowWrite = true;
    let nx = false;
    let phys: number;
    let pageSize: number;
    let entryAddr = 0;
    let entryLo = 0;
    let entryHi = 0;
    const rsvdHiMask = (0xfffff & ~((1 << (MAX_PHYS_BITS - 32)) - 1)) | (nxe ? 0 : 0x80000000 | 0);
    if ((this.cr4 & CR4_PAE) === 0) {
      // 32-bit paging, optional 4 MiB pages.
      const l = lin >>> 0;
      entryAddr = (this.cr3 & 0xfffff000) + ((l >>> 22) << 2);
      const pde = this.physRead(entryAddr >>> 0, 4) | 0;
      if ((pde & 1) === 0) this.pageFault(lin, acc, user, false, false);
      allowUser = (pde & 4) !== 0;
      allowWrite = (pde & 2) !== 0;
      if ((pde & 0x80) !== 0 && (this.cr4 & CR4_PSE) !== 0) {
        this.checkAccess(lin, acc, user, allowUser, allowWrite, false, wp, acOpen, -1);
        this.setPteBits(entryAddr, acc === ACC_WRITE ? 0x60 : 0x20);
        this.walkGlobal = (pde & 0x100) !== 0 && (this.cr4 & CR4_PGE) !== 0 ? 1 : 0;
        return ((pde & 0xffc00000) >>> 0) + (l & 0x3ff000);
      }
      const pteAddr = (pde & 0xfffff000) + (((l >>> 12) & 0x3ff) << 2);
      const pte = this.physRead(pteAddr >>> 0, 4) | 0;
      if ((pte & 1) === 0) this.pageFault(lin, acc, user, false, false);
      allowUser = allowUser && (pte & 4) !== 0;
      allowWrite = allowWrite && (pte & 2) !== 0;
      this.checkAccess(lin, acc, user, allowUser, allowWrite, false, wp, acOpen, -1);
      this.setPteBits(entryAddr, 0x20);
      this.setPteBits(pteAddr >>> 0, acc === ACC_WRITE ? 0x60 : 0x20);
      this.walkGlobal = (pte & 0x100) !== 0 && (this.cr4 & CR4_PGE) !== 0 ? 1 : 0;
      return (pte & 0xfffff000) >>> 0;
    }
    let levels: number;
    let tableBase: number;
    if ((this.efer & EFER_LMA) !== 0) {
      if (lin < -0x800000000000 || lin >= 0x800000000000) return this.raise(X_GP, 0);
      levels = 4;
      tableBase = this.cr3 - (this.cr3 % 4096);
    } else {
      // PAE: the PDPTE (not cached at CR3 load here; read at walk time).
      levels = 3;
      const l = lin >>> 0;
      entryAddr = (this.cr3 & 0xffffffe0) + ((l >>> 30) << 3);
      entryLo = this.readPte(entryAddr >>> 0);
      entryHi = this.rdHi;
      if ((entryLo & 1) === 0) this.pageFault(lin, acc, user, false, false);
      if ((entryHi & rsvdHiMask & 0x7fffffff) !== 0 || (entryLo & 0x1e6) !== 0) this.pageFault(lin, acc, user, true, true);
      tableBase = (entryHi & 0xfffff) * TWO32 + ((entryLo & 0xfffff000) >>> 0);
      levels = 2;
    }
    // Linear address bits for each level: shift = 12 + 9 * level.
    const addrs = this.walkAddrs;
    let n = 0;
    for (let level = levels - 1; level >= 0; level--) {
      const shift = 12 + 9 * level;
      // Bits shift..shift+8: beyond bit 31 for the PDPT (30) and PML4 (39) levels, so not with >>>.
      const indexInTable = shift + 9 > 32 ? Math.floor(lin / 2 ** shift) & 0x1ff : (lin >>> shift) & 0x1ff;
      entryAddr = tableBase + indexInTable * 8;
      entryLo = this.readPte(entryAddr);
      entryHi = this.rdHi;
      if ((entryLo & 1) === 0) this.pageFault(lin, acc, user, false, false);
      if ((entryHi & rsvdHiMask) !== 0) this.pageFault(lin, acc, user, true, true);
      allowUser = allowUser && (entryLo & 4) !== 0;
      allowWrite = allowWrite && (entryLo & 2) !== 0;
      if (entryHi < 0) nx = true;
      addrs[n++] = entryAddr;
      const frame = (entryHi & 0xfffff) * TWO32 + ((entryLo & 0xfffff000) >>> 0);
      if (level > 0 && (entryLo & 0x80) !== 0) {
        if (level === 3) this.pageFault(lin, acc, user, true, true);
        pageSize = level === 2 ? 0x40000000 : 0x200000;
        // Reserved bits between 12 and the page size (except PAT bit 12).
        if (((frame % pageSize) & ~0x1000) !== 0) this.pageFault(lin, acc, user, true, true);
        this.checkAccess(lin, acc, user, allowUser, allowWrite, nx, wp, acOpen, levels === 4 ? (entryHi >>> 27) & 15 : -1);
        for (let k = 0; k < n - 1; k++) this.setPteBits(addrs[k], 0x20);
        this.setPteBits(entryAddr, acc === ACC_WRITE ? 0x60 : 0x20);
        this.walkGlobal = (entryLo & 0x100) !== 0 && (this.cr4 & CR4_PGE) !== 0 ? 1 : 0;
        phys = frame - (frame % pageSize) + (pageSize === 0x40000000 ? (lin >>> 0) % pageSize - ((lin >>> 0) % 4096) : ((lin >>> 0) & 0x1ff000));
        return phys;
      }
      if (level === 3 && (entryLo & 0x80) !== 0) this.pageFault(lin, acc, user, true, true);
      tableBase = frame;
    }
    this.checkAccess(lin, acc, user, allowUser, allowWrite, nx, wp, acOpen, levels === 4 ? (entryHi >>> 27) & 15 : -1);
    for (let k = 0; k < n - 1; k++) this.setPteBits(addrs[k], 0x20);
    this.setPteBits(entryAddr, acc === ACC_WRITE ? 0x60 : 0x20);
    this.walkGlobal = (entryLo & 0x100) !== 0 && (this.cr4 & CR4_PGE) !== 0 ? 1 : 0;
    return tableBase;
  }

  private readonly walkAddrs = new Float64Array(4);

  /** Access rights of a translation (SDM 4.6); `pkey` is the leaf's protection key (4-level paging) or -1. */
  private checkAccess(lin: number, acc: number, user: boolean, allowUser: boolean, allowWrite: boolean, nx: boolean, wp: boolean, acOpen: boolean, pkey: number): void {
    // Protection keys (data accesses only): PKRU for user pages, IA32_PKRS for supervisor pages.
    // A key denial sets the PK bit in the error code even when another check faults too.
    // TLB entries are installed only when the rights allow, so WRPKRU and PKRS writes flush.
    let keyDenied = false;
    if (pkey >= 0 && acc !== ACC_EXEC) {
      const rights = allowUser ? ((this.cr4 & CR4_PKE) !== 0 ? this.pkru : 0) : ((this.cr4 & CR4_PKS) !== 0 && !user ? this.pkrs : 0);
      const bits = (rights >>> (2 * pkey)) & 3;
      keyDenied = (bits & 1) !== 0 || ((bits & 2) !== 0 && acc === ACC_WRITE && (user || wp));
    }
    if (user && !allowUser) this.pageFault(lin, acc, user, true, false, keyDenied);
    if (!user && allowUser) {
      // SMEP: no supervisor fetch from a user page; SMAP: no supervisor data access unless AC opens it.
      if (acc === ACC_EXEC ? (this.cr4 & CR4_SMEP) !== 0 : (this.cr4 & CR4_SMAP) !== 0 && !acOpen) this.pageFault(lin, acc, user, true, false, keyDenied);
    }
    if (acc === ACC_WRITE && !allowWrite && (user || wp)) this.pageFault(lin, acc, user, true, false, keyDenied);
    if (acc === ACC_EXEC && nx) this.pageFault(lin, acc, user, true, false);
    if (keyDenied) this.pageFault(lin, acc, user, true, false, true);
    // A supervisor write to a read-only page with WP=0 succeeds but must not be cached as writable.
    if (acc === ACC_WRITE && !allowWrite) this.walkWritable = false;
  }

  /** Flushes the TLB (all entries, or only non-global ones). */
  flushTlb(all: boolean): void {
    const g = this.tlbGlobal;
    const t = this.tlbTag;
    const log = this.tlbFilled;
    const count = this.tlbFilledCount;
    // Surviving global entries are logged again (compacted to the front).
    let kept = 0;
    if (count <= TLB_FILL_LOG) {
      for (let k = 0; k < count; k++) {
        const i = log[k];
        if (all || g[i] === 0) t[i] = NaN;
        else if (t[i] === t[i]) log[kept++] = i; // not NaN: still installed
      }
    } else if (all) t.fill(NaN);
    else {
      for (let i = 0; i < t.length; i++) {
        if (g[i] === 0) t[i] = NaN;
        else if (t[i] === t[i]) {
          if (kept < TLB_FILL_LOG) log[kept] = i;
          kept++;
        }
      }
    }
    this.tlbFilledCount = kept;
    this.fetchPage = NaN;
  }

  invlpg(lin: number): void {
    const page = lin - (lin & 0xfff);
    const i = (lin >>> 12) & TLB_MASK;
    for (let s = 0; s < TLB_SETS; s++) if (this.tlbTag[s * TLB_SIZE + i] === page) this.tlbTag[s * TLB_SIZE + i] = NaN;
    this.fetchPage = NaN;
  }

  /** CodePageListener: unmaps writes to the RAM page at wasm offset `pageOffset`. */
  dropWriteMappings(pageOffset: number): void {
    for (let set = ACC_WRITE; set < TLB_SETS; set += set === 3 + ACC_WRITE ? SET_SUP_AC - 3 : 3) {
      const base = set * TLB_SIZE;
      for (let i = 0; i < TLB_SIZE; i++) if (this.tlbOff[base + i] === pageOffset) this.tlbTag[base + i] = NaN;
    }
  }

  private updateTlbSets(): void {
    this.updateDataSets();
    this.fetchPage = NaN;
  }

  /** Picks the read/write set bases from CPL, CR4.SMAP and EFLAGS.AC (no flush: STAC/CLAC are frequent). */
  updateDataSets(): void {
    const base = this.cpl === 3 ? 3 : (this.flags & AC) !== 0 && (this.cr4 & CR4_SMAP) !== 0 ? SET_SUP_AC : 0;
    this.rdSet = (base + ACC_READ) * TLB_SIZE;
    this.wrSet = (base + ACC_WRITE) * TLB_SIZE;
  }

  // =====================================================================
  // Faults
  // =====================================================================

  /** Raises exception `vector` (error code, or -1 for none) and unwinds to the run loop. */
  raise(vector: number, error = -1): never {
    this.excVector = vector;
    this.excError = error;
    throw FAULT;
  }

  // =====================================================================
  // Fetch / decode / run
  // =====================================================================

  /** Reads instruction byte at offset `i` from the current instruction (decoder misses). */
  fetchByte(linOffset: number): number {
    const lin = this.linWrap(linOffset);
    return this.physRead(this.translate(lin, ACC_EXEC, this.cpl === 3), 1);
  }

  /**
   * Decodes the instruction at RIP if needed; returns the word index of its
   * record, or -1 when a translated block starting there ran instead.
   */
  private fetchDecode(): number {
    const rip = this.rip;
    const lin = this.long64 ? rip : (this.csBase + rip) >>> 0;
    const d = lin - this.fetchPage;
    let off: number;
    if (d >= 0 && d < 4096) off = this.fetchOff + d;
    else {
      const phys = this.translate(lin, ACC_EXEC, this.cpl === 3);
      const o = this.ram.offsetOf(phys - (phys % 4096));
      if (o >= 0) {
        this.fetchPage = lin - (lin & 0xfff);
        this.fetchOff = o;
        off = o + (lin & 0xfff);
      } else {
        this.fetchPage = NaN;
        off = -1;
      }
    }
    const code = this.code;
    if (off >= 0) {
      // Cached when the whole instruction lies in this page (its code-page
      // flag then covers every byte); one that crosses into the next page is
      // decoded again each time. The tag is cleared first so a decode that
      // faults halfway never leaves a stale tag on a rewritten record.
      const slot = off & DC_MASK;
      const b = slot << D_SHIFT;
      const tag = off + this.tagBias;
      if (code.tags[slot] !== tag) {
        code.tags[slot] = NaN;
        code.markCode(off);
        this.fetchSource.base = lin;
        const len = decode(this.fetchSource, this.codeSize, code.records, b);
        if (len === DECODE_TOO_LONG) return this.raise(X_GP, 0);
        if ((off & 0xfff) + len <= 0x1000) code.tags[slot] = tag;
        else code.records[b + D_FLAGS] |= F_CROSSES_PAGE;
      }
      // A branch into another page lands here: a translated block may start at its target too.
      const jit = this.jit;
      if (jit !== null && code.tags[slot] === tag && jit.enter(this, slot, tag, off)) return -1;
      return b;
    }
    const b = code.scratch;
    this.fetchSource.base = lin;
    const len = decode(this.fetchSource, this.codeSize, code.records, b);
    if (len === DECODE_TOO_LONG) return this.raise(X_GP, 0);
    code.records[b + D_FLAGS] |= F_CROSSES_PAGE;
    return b;
  }

  /** Executes one instruction (faults propagate as FAULT). */
  step(): void {
    // Fast path: same fetch page as before and the instruction already decoded.
    const rip = this.rip;
    const lin = this.long64 ? rip : (this.csBase + rip) >>> 0;
    const d = lin - this.fetchPage;
    const code = this.code;
    let b: number;
    if (d >= 0 && d < 4096) {
      const off = this.fetchOff + d;
      const slot = off & DC_MASK;
      const tag = off + this.tagBias;
      if (code.tags[slot] === tag) {
        // ---- jit hook: a translated block starting here runs instead (jit/jit.ts) ----
        const jit = this.jit;
        if (jit !== null && jit.enter(this, slot, tag, off)) return;
        b = slot << D_SHIFT;
      } else b = this.fetchDecode();
    } else b = this.fetchDecode();
    if (b < 0) return; // a translated block ran instead
    const recs = code.records;
    const next = rip + recs[b + D_LEN];
    const size = this.codeSize;
    this.nextRip = size === 64 ? next : size === 32 ? next >>> 0 : next & 0xffff;
    execute(this, recs[b + D_OP], b);
    this.rip = this.nextRip;
    this.instructions++;
  }

  /**
   * Runs up to `budget` instructions. Returns RUN_BUDGET, RUN_HALTED (HLT or
   * waiting for SIPI with nothing pending) or RUN_STOP (stopRequested).
   * Throws TripleFault.
   */
  run(budget: number): number {
    const start = this.instructions;
    const end = start + budget;
    while (this.instructions < end) {
      if (this.stopRequested) return RUN_STOP;
      if (!this.interruptShadow) {
        if (this.checkInterrupts()) continue;
      }
      if (this.halted || this.waitForSipi) return RUN_HALTED;
      let limit = end;
      if (this.interruptShadow) { limit = this.instructions + 1; this.interruptShadow = false; }
      const singleStep = (this.flags & TF) !== 0;
      if (singleStep) limit = this.instructions + 1;
      this.eventCheck = false;
      // Translated blocks must end within the batch; none run while tracing (the ring records single steps).
      this.jitLimit = this.trace === null ? limit : 0;
      try {
        const trace = this.trace;
        if (trace === null) {
          while (this.instructions < limit) {
            this.step();
            if (this.eventCheck) break;
          }
        } else {
          while (this.instructions < limit) {
            trace.before(this);
            this.step();
            trace.fillBytes(this);
            if (this.eventCheck) break;
          }
        }
        let trap = singleStep && this.instructions === limit;
        if (this.singleStepByNewTf) { this.singleStepByNewTf = false; trap = (this.flags & TF) !== 0; }
        if (trap) {
          // Single-step trap after the instruction (DR6.BS).
          this.dr[6] = (this.dr[6] | 0x4000) >>> 0;
          this.externalInterruptLike(X_DB);
        }
      } catch (e) {
        if (e !== FAULT) throw e;
        this.instructions++;
        if (this.trace !== null) this.traceFault();
        this.handleFault();
      }
    }
    return RUN_BUDGET;
  }

  /** Trace bookkeeping for a fault raised by an instruction (cold path, trace on only). */
  private traceFault(): void {
    const trace = this.trace;
    if (trace === null) return;
    trace.fillBytes(this);
    if (trace.wantsDump(this.excVector)) trace.dump(this, `exception ${this.excVector}${this.excVector === X_UD ? ' (#UD)' : ''} error ${this.excError}`);
  }

  /** Delivers the pending guest fault, escalating to #DF and triple fault as the SDM says. */
  handleFault(): void {
    let vector = this.excVector;
    let error = this.excError;
    for (let attempt = 0; attempt < 3; attempt++) {
      if (this.trace !== null) this.trace.fault(this, vector, error);
      const first = this.delivering;
      if (first >= 0) {
        if (first === X_DF) throw this.tripleFault();
        const contributory = (v: number): boolean => v === X_DE || (v >= X_TS && v <= X_GP);
        if ((contributory(first) && contributory(vector)) || (first === X_PF && (vector === X_PF || contributory(vector)))) {
          vector = X_DF;
          error = 0;
        }
      }
      this.delivering = vector;
      // A fault saves RFLAGS with RF set (SDM Vol. 3 "Resume Flag"), so IRET to the faulting instruction skips its instruction breakpoint.
      this.faultRf = RF;
      try {
        this.deliver(vector, error, false, this.rip);
        this.delivering = -1;
        this.faultRf = 0;
        return;
      } catch (e) {
        this.faultRf = 0;
        if (e !== FAULT) { this.delivering = -1; throw e; }
        vector = this.excVector;
        error = this.excError;
      }
    }
    this.delivering = -1;
    throw this.tripleFault();
  }

  private tripleFault(): TripleFault {
    this.trace?.dump(this, 'triple fault');
    return new TripleFault();
  }

  /** Delivers a software interrupt or trap (INT n, INT3, INTO, INT1) with the return address after it. */
  softwareInterrupt(vector: number, checkDpl: boolean): void {
    this.delivering = -1;
    try {
      this.deliver(vector, -1, checkDpl, this.nextRip);
    } catch (e) {
      if (e !== FAULT) throw e;
      // A fault while delivering: deliver that fault instead (with the INT as the faulting instruction).
      this.handleFault();
    }
    // deliver() set RIP; keep it.
    this.nextRip = this.rip;
  }

  /** Checks NMI/INIT/SIPI/maskable interrupts; returns true if one was taken. */
  private checkInterrupts(): boolean {
    const lapic = this.lapic;
    if (lapic === null) return false;
    if (lapic.takeInit()) {
      this.initReset();
      return true;
    }
    if (this.waitForSipi) {
      const v = lapic.takeSipi();
      if (v < 0) return false;
      this.waitForSipi = false;
      this.halted = false;
      this.setRealSegment(CS, v << 8);
      this.rip = 0;
      this.updateMode();
      return true;
    }
    if (!this.nmiBlocked && lapic.takeNmi()) {
      this.halted = false;
      this.nmiBlocked = true;
      this.externalInterrupt(X_NMI);
      return true;
    }
    if ((this.flags & IF) !== 0 && lapic.pendingVector() >= 0) {
      const v = lapic.acknowledge();
      if (v < 0) return false;
      this.halted = false;
      this.externalInterrupt(v);
      return true;
    }
    return false;
  }

  /** Delivers a trap-like event (single-step #DB) with the current RIP as the return address. */
  private externalInterruptLike(vector: number): void {
    this.externalInterrupt(vector);
  }

  private externalInterrupt(vector: number): void {
    this.delivering = -1;
    try {
      this.deliver(vector, -1, false, this.rip);
    } catch (e) {
      if (e !== FAULT) throw e;
      this.handleFault();
    }
  }

  /** INIT: the reset state, then wait for a start-up IPI (APs) — the BSP just resets. */
  initReset(): void {
    const apicBase = this.apicBase;
    const efer = 0;
    this.reset();
    this.apicBase = apicBase;
    this.efer = efer;
    this.waitForSipi = true;
  }

  /** The TSC before the guest's offset: clock nanoseconds scaled to tscHz. */
  rawTsc(): number {
    return Math.floor(this.clock.nowNs() * (this.clock.tscHz / 1e9));
  }

  /** The guest-visible TSC. */
  tsc(): number {
    return Math.max(0, this.rawTsc() + this.tscOffset);
  }

  // =====================================================================
  // Interrupt and exception delivery
  // =====================================================================

  /**
   * Delivers `vector` through the IDT. `error` is the error code or -1;
   * `software` enables the gate DPL check (INT n, INT3, INTO);
   * `returnRip` is pushed as the return address.
   */
  deliver(vector: number, error: number, software: boolean, returnRip: number): void {
    const flagsNow = this.getFlags() | this.faultRf;
    if ((this.cr0 & CR0_PE) === 0) {
      // Real mode: IVT entry of 4 bytes.
      if (vector * 4 + 3 > this.idtLimit) this.raise(X_GP, 0);
      const entry = this.sysRead(this.idtBase + vector * 4, 4);
      const sp = this.getSp();
      this.sysWriteStack16(sp - 2, flagsNow);
      this.sysWriteStack16(sp - 4, this.segSel[CS]);
      this.sysWriteStack16(sp - 6, returnRip);
      this.setSp((sp - 6) & 0xffff);
      this.flags = flagsNow & ~(IF | TF | AC | RF);
      this.lazyOp = L_NONE;
      this.setRealSegment(CS, entry >>> 16);
      this.rip = entry & 0xffff;
      this.updateMode();
      return;
    }
    const ext = software ? 0 : 1;
    const long = (this.efer & EFER_LMA) !== 0;
    const gateSize = long ? 16 : 8;
    if (vector * gateSize + gateSize - 1 > this.idtLimit) this.raise(X_GP, vector * 8 + 2 + ext);
    const gateLin = this.idtBase + vector * gateSize;
    const g0 = this.sysRead(gateLin, 4);
    const g1 = this.sysRead(gateLin + 4, 4);
    const type = (g1 >> 8) & 0x1f;
    const gateDpl = (g1 >> 13) & 3;
    const isTrap = (type & 1) !== 0;
    const gate32 = (type & 8) !== 0;
    if (long ? (type !== 0xe && type !== 0xf) : (type !== 0xe && type !== 0xf && type !== 0x6 && type !== 0x7)) {
      this.raise(X_GP, vector * 8 + 2 + ext);
    }
    if (software && gateDpl < this.cpl) this.raise(X_GP, vector * 8 + 2);
    if ((g1 & 0x8000) === 0) this.raise(X_NP, vector * 8 + 2 + ext);
    const sel = g0 >>> 16;
    let offset = (g0 & 0xffff) + ((g1 & 0xffff0000) >>> 0);
    let ist = 0;
    if (long) {
      const g2 = this.sysRead(gateLin + 8, 4);
      offset = (g2 | 0) * TWO32 + offset;
      ist = g1 & 7;
    }
    // Target code segment.
    if ((sel & 0xfffc) === 0) this.raise(X_GP, ext);
    if (!this.readDescriptor(sel)) this.raise(X_GP, (sel & 0xfffc) + ext);
    const dHi = this.descHi;
    const dAttr = (dHi >> 8) & 0xf0ff;
    const dDpl = (dAttr >> A_DPL_SHIFT) & 3;
    if ((dAttr & A_S) === 0 || (dAttr & 8) === 0 || dDpl > this.cpl) this.raise(X_GP, (sel & 0xfffc) + ext);
    if ((dAttr & A_P) === 0) this.raise(X_NP, (sel & 0xfffc) + ext);
    if (long && ((dAttr & A_L) === 0 || (dAttr & A_DB) !== 0)) this.raise(X_GP, (sel & 0xfffc) + ext);
    const conforming = (dAttr & 4) !== 0;
    const newCpl = conforming ? this.cpl : dDpl;
    const oldSs = this.segSel[SS];
    const oldSp = long ? this.reg64(4) : this.getSp();
    const oldSpLo = this.lo[4];
    const oldSpHi = this.hi[4];
    const oldCs = this.segSel[CS];
    const newFlags = flagsNow & ~(TF | NT | RF | VM | (isTrap ? 0 : IF));

    if (long) {
      let rsp: number;
      let newSs = oldSs;
      if (ist !== 0) rsp = this.readTss64(0x24 + 8 * (ist - 1), ext);
      else if (newCpl < this.cpl) rsp = this.readTss64(4 + 8 * newCpl, ext);
      else rsp = oldSp;
      if (newCpl < this.cpl) newSs = newCpl; // null selector with RPL = new CPL
      rsp -= rsp % 16 === 0 ? 0 : ((rsp % 16) + 16) % 16;
      if (rsp < -0x800000000000 || rsp >= 0x800000000000) this.raise(X_SS, 0);
      const frame = error >= 0 ? 6 : 5;
      let p = rsp - frame * 8;
      if (error >= 0) { this.sysWrite64(p, error); p += 8; }
      this.sysWrite64(p, returnRip);
      this.sysWrite64(p + 8, oldCs);
      this.sysWrite64(p + 16, flagsNow);
      // The old RSP from its exact halves (a non-canonical RSP does not fit a number exactly).
      this.sysWrite(p + 24, 4, oldSpLo);
      this.sysWrite(p + 28, 4, oldSpHi);
      this.sysWrite64(p + 32, oldSs);
      // Commit.
      const stackSwitch = newCpl < this.cpl;
      this.cpl = newCpl;
      this.loadCodeDescriptor(sel, newCpl);
      if (stackSwitch) {
        this.segSel[SS] = newSs;
        this.segBase[SS] = 0;
        this.segLimit[SS] = 0xffffffff;
        this.segAttr[SS] = A_UNUSABLE | (newCpl << A_DPL_SHIFT) | 0x3 | A_S | A_P | A_DB | A_G;
      }
      this.updateMode();
      this.setReg64(4, rsp - frame * 8);
      this.flags = newFlags;
      this.lazyOp = L_NONE;
      this.updateDataSets(); // EFLAGS.AC of the interrupted code carries over (SMAP set base)
      this.rip = offset;
      return;
    }

    // Legacy protected mode.
    const push4 = gate32;
    const unit = push4 ? 4 : 2;
    let ssSel = oldSs;
    let ssBase = this.segBase[SS];
    let sp = oldSp;
    let ssAttr = this.segAttr[SS];
    let ssLimit = this.segLimit[SS];
    const outer = newCpl < this.cpl;
    if (outer) {
      const trBase = this.segBase[TR];
      const tss32 = (this.segAttr[TR] & 8) !== 0;
      if (tss32) {
        sp = this.sysRead(trBase + 4 + newCpl * 8, 4) >>> 0;
        ssSel = this.sysRead(trBase + 8 + newCpl * 8, 2);
      } else {
        sp = this.sysRead(trBase + 2 + newCpl * 4, 2);
        ssSel = this.sysRead(trBase + 4 + newCpl * 4, 2);
      }
      if ((ssSel & 0xfffc) === 0 || !this.readDescriptor(ssSel)) this.raise(X_TS, (ssSel & 0xfffc) + ext);
      const sa = (this.descHi >> 8) & 0xf0ff;
      if ((sa & A_P) === 0) this.raise(X_SS, (ssSel & 0xfffc) + ext);
      ssAttr = sa;
      ssBase = this.descBase();
      ssLimit = this.descLimit();
    }
    const ss32 = (ssAttr & A_DB) !== 0;
    const spMask = ss32 ? 0xffffffff : 0xffff;
    const n = (outer ? 2 : 0) + 3 + (error >= 0 ? 1 : 0);
    let p = (sp - n * unit) & spMask;
    const newSp = p;
    if (error >= 0) { this.sysWrite((ssBase + p) >>> 0, unit, error); p = (p + unit) & spMask; }
    this.sysWrite((ssBase + p) >>> 0, unit, returnRip); p = (p + unit) & spMask;
    this.sysWrite((ssBase + p) >>> 0, unit, oldCs); p = (p + unit) & spMask;
    this.sysWrite((ssBase + p) >>> 0, unit, flagsNow); p = (p + unit) & spMask;
    if (outer) {
      this.sysWrite((ssBase + p) >>> 0, unit, oldSp); p = (p + unit) & spMask;
      this.sysWrite((ssBase + p) >>> 0, unit, oldSs);
    }
    if (outer) {
      this.segSel[SS] = (ssSel & ~3) | newCpl;
      this.segBase[SS] = ssBase;
      this.segLimit[SS] = ssLimit;
      this.segAttr[SS] = ssAttr;
    }
    this.cpl = newCpl;
    this.loadCodeDescriptor(sel, newCpl);
    this.updateMode();
    if (ss32) this.lo[4] = newSp | 0;
    else this.lo[4] = (this.lo[4] & ~0xffff) | newSp;
    this.flags = newFlags;
    this.lazyOp = L_NONE;
    this.updateDataSets();
    this.rip = push4 ? offset >>> 0 : offset & 0xffff;
  }

  /** Writes a 64-bit value given as a (signed) number at supervisor privilege. */
  private sysWrite64(lin: number, v: number): void {
    this.sysWrite(lin, 4, v % TWO32 | 0);
    this.sysWrite(lin + 4, 4, Math.floor(v / TWO32) | 0);
  }

  private sysWriteStack16(sp: number, v: number): void {
    this.sysWrite((this.segBase[SS] + (sp & 0xffff)) >>> 0, 2, v & 0xffff);
  }

  /** Reads a 64-bit stack-pointer field of the 64-bit TSS as a number; #TS(TR selector) if it lies beyond the TSS limit. */
  private readTss64(offset: number, ext: number): number {
    if (offset + 7 > this.segLimit[TR]) this.raise(X_TS, (this.segSel[TR] & 0xfffc) + ext);
    const base = this.segBase[TR];
    const lo = this.sysRead(base + offset, 4) >>> 0;
    const hi = this.sysRead(base + offset + 4, 4) | 0;
    return hi * TWO32 + lo;
  }

  // =====================================================================
  // Segments and descriptors
  // =====================================================================

  descLo = 0;
  descHi = 0;

  /** Reads the descriptor for `sel` into descLo/descHi; false if beyond the table limit. */
  readDescriptor(sel: number): boolean {
    const ldt = (sel & 4) !== 0;
    const base = ldt ? this.segBase[LDTR] : this.gdtBase;
    const limit = ldt ? this.segLimit[LDTR] : this.gdtLimit;
    if (ldt && (this.segAttr[LDTR] & A_UNUSABLE) !== 0) return false;
    const off = sel & 0xfff8;
    if (off + 7 > limit) return false;
    this.descLo = this.sysRead(this.linWrap(base + off), 4);
    this.descHi = this.sysRead(this.linWrap(base + off + 4), 4);
    return true;
  }

  /** Address of the descriptor for `sel`. */
  descriptorAddress(sel: number): number {
    const base = (sel & 4) !== 0 ? this.segBase[LDTR] : this.gdtBase;
    return this.linWrap(base + (sel & 0xfff8));
  }

  descBase(): number {
    return ((this.descLo >>> 16) | ((this.descHi & 0xff) << 16) | (this.descHi & 0xff000000)) >>> 0;
  }

  descLimit(): number {
    const raw = (this.descLo & 0xffff) | (this.descHi & 0xf0000);
    return (this.descHi & 0x800000) !== 0 ? raw * 4096 + 0xfff : raw;
  }

  /** Sets the accessed bit of the descriptor for `sel` (already read). */
  private markAccessed(sel: number): void {
    if ((this.descHi & 0x100) === 0) {
      this.descHi |= 0x100;
      this.sysWrite(this.descriptorAddress(sel) + 4, 4, this.descHi);
    }
  }

  setRealSegment(s: number, sel: number): void {
    this.segSel[s] = sel & 0xffff;
    this.segBase[s] = (sel & 0xffff) << 4;
    this.segLimit[s] = this.segLimit[s] === 0 ? 0xffff : this.segLimit[s];
    if (this.segAttr[s] === 0 || (this.segAttr[s] & A_UNUSABLE) !== 0) {
      this.segAttr[s] = (s === CS ? 0xb : 0x3) | A_S | A_P;
      this.segLimit[s] = 0xffff;
    }
  }

  /** Loads CS from the descriptor in descLo/descHi (already checked) with RPL = `rpl`. */
  loadCodeDescriptor(sel: number, rpl: number): void {
    this.markAccessed(sel);
    this.segSel[CS] = (sel & 0xfffc) | rpl;
    this.segBase[CS] = this.descBase();
    this.segLimit[CS] = this.descLimit();
    this.segAttr[CS] = (this.descHi >> 8) & 0xf0ff;
  }

  /** MOV/POP/LxS to a data segment register or SS, with the protected-mode checks. */
  loadSegment(s: number, sel: number): void {
    sel &= 0xffff;
    if ((this.cr0 & CR0_PE) === 0 || (this.flags & VM) !== 0) {
      this.setRealSegment(s, sel);
      if (s === CS) this.updateMode();
      if (s === SS) this.updateMode();
      return;
    }
    if ((sel & 0xfffc) === 0) {
      if (s === SS && (!this.long64 || this.cpl === 3 || (sel & 3) !== this.cpl)) this.raise(X_GP, 0);
      this.segSel[s] = sel;
      this.segBase[s] = 0;
      this.segLimit[s] = 0;
      this.segAttr[s] = A_UNUSABLE | (s === SS ? (this.cpl << A_DPL_SHIFT) | A_DB : 0);
      if (s === SS) this.updateMode();
      return;
    }
    if (!this.readDescriptor(sel)) this.raise(X_GP, sel & 0xfffc);
    const attr = (this.descHi >> 8) & 0xf0ff;
    const dpl = (attr >> A_DPL_SHIFT) & 3;
    const rpl = sel & 3;
    const type = attr & 0xf;
    if (s === SS) {
      if (rpl !== this.cpl || dpl !== this.cpl || (attr & A_S) === 0 || (type & 0xa) !== 0x2) this.raise(X_GP, sel & 0xfffc);
      if ((attr & A_P) === 0) this.raise(X_SS, sel & 0xfffc);
    } else {
      if ((attr & A_S) === 0 || (type & 0xa) === 0x8) this.raise(X_GP, sel & 0xfffc);
      const conformingCode = (type & 0xc) === 0xc;
      if (!conformingCode && (rpl > dpl || this.cpl > dpl)) this.raise(X_GP, sel & 0xfffc);
      if ((attr & A_P) === 0) this.raise(X_NP, sel & 0xfffc);
    }
    this.markAccessed(sel);
    this.segSel[s] = sel;
    this.segBase[s] = this.descBase();
    this.segLimit[s] = this.descLimit();
    this.segAttr[s] = (this.descHi >> 8) & 0xf0ff;
    if (s === SS) this.updateMode();
  }

  /**
   * A far JMP/CALL target in protected mode: checks the code descriptor for
   * `sel` and loads CS (same privilege only; call gates and task switches raise #GP).
   */
  loadFarCode(sel: number): void {
    sel &= 0xffff;
    if ((this.cr0 & CR0_PE) === 0 || (this.flags & VM) !== 0) {
      this.setRealSegment(CS, sel);
      this.updateMode();
      return;
    }
    if ((sel & 0xfffc) === 0) this.raise(X_GP, 0);
    if (!this.readDescriptor(sel)) this.raise(X_GP, sel & 0xfffc);
    const attr = (this.descHi >> 8) & 0xf0ff;
    const dpl = (attr >> A_DPL_SHIFT) & 3;
    if ((attr & A_S) === 0 || (attr & 8) === 0) this.raise(X_GP, sel & 0xfffc); // gates, TSS: unsupported
    if ((attr & 4) !== 0) { if (dpl > this.cpl) this.raise(X_GP, sel & 0xfffc); }
    else if ((sel & 3) > this.cpl || dpl !== this.cpl) this.raise(X_GP, sel & 0xfffc);
    if ((attr & A_P) === 0) this.raise(X_NP, sel & 0xfffc);
    this.loadCodeDescriptor(sel, this.cpl);
    this.updateMode();
  }

  /**
   * Far return / IRET to `sel` at privilege RPL(sel): checks the code
   * descriptor and loads CS and CPL. Returns the new CPL.
   */
  loadReturnCode(sel: number): number {
    sel &= 0xffff;
    if ((sel & 0xfffc) === 0) this.raise(X_GP, 0);
    if (!this.readDescriptor(sel)) this.raise(X_GP, sel & 0xfffc);
    const attr = (this.descHi >> 8) & 0xf0ff;
    const dpl = (attr >> A_DPL_SHIFT) & 3;
    const rpl = sel & 3;
    if ((attr & A_S) === 0 || (attr & 8) === 0 || rpl < this.cpl) this.raise(X_GP, sel & 0xfffc);
    if ((attr & 4) !== 0 ? dpl > rpl : dpl !== rpl) this.raise(X_GP, sel & 0xfffc);
    if ((attr & A_P) === 0) this.raise(X_NP, sel & 0xfffc);
    return rpl;
  }

  /** After returning to an outer privilege: data segments the new CPL may not use become null. */
  nullifyInaccessibleSegments(): void {
    for (const s of [ES, DS, FS, GS]) {
      const a = this.segAttr[s];
      if ((a & A_UNUSABLE) !== 0) continue;
      const dpl = (a >> A_DPL_SHIFT) & 3;
      const conformingCode = (a & 0xc) === 0xc;
      if (!conformingCode && dpl < this.cpl) {
        this.segSel[s] = 0;
        this.segAttr[s] = A_UNUSABLE;
        if (s < FS || !this.long64) this.segBase[s] = 0;
      }
    }
  }

  /** Recomputes code/stack size, CPL-dependent TLB sets and LMA after CR0/EFER/CS/SS changes. */
  updateMode(): void {
    const pe = (this.cr0 & CR0_PE) !== 0;
    const lma = (this.efer & EFER_LMA) !== 0;
    const csAttr = this.segAttr[CS];
    if (!pe) this.cpl = 0;
    else if ((this.flags & VM) !== 0) this.cpl = 3;
    this.long64 = lma && (csAttr & A_L) !== 0;
    this.codeSize = this.long64 ? 64 : (csAttr & A_DB) !== 0 ? 32 : 16;
    this.codeSizeIndex = this.long64 ? 2 : this.codeSize === 32 ? 1 : 0;
    this.tagBias = this.codeSizeIndex * TWO32;
    this.stackSize = this.long64 ? 8 : (this.segAttr[SS] & A_DB) !== 0 ? 4 : 2;
    this.csBase = this.segBase[CS];
    this.updateTlbSets();
  }

  /** Writes CR0 with the architectural checks; flushes what must be flushed. */
  writeCr0(v: number): void {
    v = (v | CR0_ET) >>> 0;
    if ((v & CR0_PG) !== 0 && (v & CR0_PE) === 0) this.raise(X_GP, 0);
    if ((v & CR0_NW) !== 0 && (v & CR0_CD) === 0) this.raise(X_GP, 0);
    const old = this.cr0 >>> 0;
    if ((v & CR0_PG) !== 0 && (old & CR0_PG) === 0 && (this.efer & EFER_LME) !== 0) {
      if ((this.cr4 & CR4_PAE) === 0) this.raise(X_GP, 0);
      this.efer |= EFER_LMA;
    }
    if ((v & CR0_PG) === 0 && (old & CR0_PG) !== 0 && (this.efer & EFER_LMA) !== 0) {
      if (this.long64) this.raise(X_GP, 0);
      this.efer &= ~EFER_LMA;
    }
    this.cr0 = v | 0;
    if (((old ^ v) & (CR0_PG | CR0_WP | CR0_PE)) !== 0) this.flushTlb(true);
    this.updateMode();
  }

  writeCr4(v: number): void {
    if ((v & ~CR4_SUPPORTED) !== 0) this.raise(X_GP, 0);
    if ((this.efer & EFER_LMA) !== 0 && (v & CR4_PAE) === 0) this.raise(X_GP, 0);
    const old = this.cr4;
    this.cr4 = v;
    if (((old ^ v) & (CR4_PAE | CR4_PGE | CR4_PSE | CR4_SMEP | CR4_SMAP | CR4_PKE | CR4_PKS)) !== 0) this.flushTlb(true);
    if (((old ^ v) & CR4_SMAP) !== 0) this.updateDataSets();
  }

  writeCr3(v: number): void {
    this.cr3 = v;
    this.flushTlb(false);
  }

  writeEfer(lo: number): void {
    const allowed = EFER_SCE | EFER_LME | EFER_NXE;
    if ((lo & ~(allowed | EFER_LMA)) !== 0) this.raise(X_GP, 0);
    if ((this.cr0 & CR0_PG) !== 0 && ((lo ^ this.efer) & EFER_LME) !== 0) this.raise(X_GP, 0);
    const old = this.efer;
    this.efer = (lo & allowed) | (this.efer & EFER_LMA);
    if (((old ^ this.efer) & EFER_NXE) !== 0) this.flushTlb(true);
  }

  // =====================================================================
  // Architectural state (cold path)
  // =====================================================================

  getState(): CpuState {
    const gpr = {} as CpuState['gpr'];
    GPR_NAMES.forEach((n, i) => { gpr[n] = (BigInt(this.hi[i] >>> 0) << 32n) | BigInt(this.lo[i] >>> 0); });
    const seg = {} as CpuState['seg'];
    SEGMENT_NAMES.forEach((n) => { seg[n] = this.segmentState(SEG_INDEX[n]); });
    return {
      gpr,
      rip: toU64(this.rip),
      rflags: BigInt(this.getFlags() >>> 0),
      seg,
      gdt: { base: toU64(this.gdtBase), limit: this.gdtLimit },
      idt: { base: toU64(this.idtBase), limit: this.idtLimit },
      cr0: BigInt(this.cr0 >>> 0), cr2: toU64(this.cr2), cr3: toU64(this.cr3), cr4: BigInt(this.cr4 >>> 0),
      cr8: BigInt(this.lapic !== null ? this.lapic.readCr8() : this.cr8), efer: BigInt(this.efer >>> 0), apicBase: BigInt(this.apicBase >>> 0),
      fx: sseStateImage(this),
    };
  }

  setState(st: CpuState): void {
    GPR_NAMES.forEach((n, i) => {
      const v = BigInt.asUintN(64, st.gpr[n]);
      this.lo[i] = Number(v & 0xffffffffn) | 0;
      this.hi[i] = Number(v >> 32n) | 0;
    });
    this.efer = Number(st.efer & 0xffffffffn);
    this.cr0 = Number(st.cr0 & 0xffffffffn) | 0;
    this.cr2 = fromU64(st.cr2);
    this.cr3 = fromU64(st.cr3);
    this.cr4 = Number(st.cr4 & 0xffffffffn);
    this.cr8 = Number(st.cr8 & 0xfn);
    this.lapic?.writeCr8(this.cr8);
    this.apicBase = Number(st.apicBase & 0xffffffffn);
    this.flags = (Number(st.rflags & 0xffffffffn) & (WRITABLE_FLAGS | VM)) | 2;
    this.lazyOp = L_NONE;
    for (const n of SEGMENT_NAMES) this.setSegmentState(SEG_INDEX[n], st.seg[n]);
    if (st.fx !== undefined) loadSseStateImage(this, st.fx);
    this.gdtBase = fromU64(st.gdt.base); this.gdtLimit = st.gdt.limit;
    this.idtBase = fromU64(st.idt.base); this.idtLimit = st.idt.limit;
    this.cpl = (this.cr0 & CR0_PE) === 0 ? 0 : (this.segAttr[SS] >> A_DPL_SHIFT) & 3;
    this.halted = false;
    this.waitForSipi = false;
    this.updateMode();
    this.rip = this.long64 ? fromU64(st.rip) : Number(st.rip & 0xffffffffn);
    this.flushTlb(true);
  }

  private segmentState(i: number): Segment {
    const a = this.segAttr[i];
    return {
      selector: this.segSel[i], base: toU64(this.segBase[i]), limit: this.segLimit[i],
      type: a & 0xf, present: (a & A_P) !== 0, dpl: (a >> A_DPL_SHIFT) & 3, db: (a & A_DB) !== 0,
      s: (a & A_S) !== 0, l: (a & A_L) !== 0, g: (a & A_G) !== 0, avl: (a & A_AVL) !== 0, unusable: (a & A_UNUSABLE) !== 0,
    };
  }

  private setSegmentState(i: number, s: Segment): void {
    this.segSel[i] = s.selector & 0xffff;
    this.segBase[i] = fromU64(s.base);
    this.segLimit[i] = s.limit >>> 0;
    this.segAttr[i] = (s.type & 0xf) | (s.s ? A_S : 0) | ((s.dpl & 3) << A_DPL_SHIFT) | (s.present ? A_P : 0) |
      (s.avl ? A_AVL : 0) | (s.l ? A_L : 0) | (s.db ? A_DB : 0) | (s.g ? A_G : 0) | (s.unusable ? A_UNUSABLE : 0);
  }
}

const SEG_INDEX: Record<string, number> = { es: ES, cs: CS, ss: SS, ds: DS, fs: FS, gs: GS, ldt: LDTR, tr: TR };

/** Unsigned 64-bit compare (hi:lo) < (hi:lo): 1 or 0. */
export function ult64(aLo: number, aHi: number, bLo: number, bHi: number): number {
  if (aHi !== bHi) return (aHi >>> 0) < (bHi >>> 0) ? 1 : 0;
  return (aLo >>> 0) < (bLo >>> 0) ? 1 : 0;
}

/** A signed canonical number → its unsigned 64-bit bigint. */
function toU64(v: number): bigint {
  return BigInt.asUintN(64, BigInt(Math.trunc(v)));
}

/** An unsigned 64-bit bigint → a number (signed when above 2^63, as canonical addresses are). */
function fromU64(v: bigint): number {
  return Number(BigInt.asIntN(64, v));
}

export { OP_INVALID };
