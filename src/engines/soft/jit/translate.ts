/**
 * Block translator: turns a straight run of 64-bit-mode instructions (decoded
 * with decoder.ts) into one WebAssembly function `run(stateOffset) -> exit`.
 *
 * State: the GPRs are read from the vCPU's state area (jit/state-layout.ts)
 * into i64 locals at entry and written back at every exit; guest memory is the
 * same wasm memory, reached through an inlined probe of the interpreter's TLB
 * (also in the state area). Exit protocol: the function returns the number
 * of instructions completed, stores in W_RIP the RIP the vCPU continues at
 * (a constant, the taken or fall-through target of a final Jcc, or the return
 * address a final RET loaded) and in W_EXIT whether the block ended normally
 * (EXIT_CHAIN) or stopped before one of its instructions (EXIT_EARLY).
 * Stack instructions (PUSH/POP r, PUSH imm, LEAVE, CALL rel32, RET; 64-bit
 * operand size) use the same TLB probe on RSP; CALL and RET end the block.
 * NOPs (90, hint NOPs 0F 0D / 0F 18-1F incl. ENDBR64) emit nothing.
 * A block whose final
 * branch jumps back to its start loops inside wasm while another full
 * iteration fits the batch budget (W_BUDGET). A memory access that misses
 * the TLB fast path (miss, non-RAM, page-crossing) exits before its
 * instruction with the state exactly as the interpreter would have it there.
 * Flags: the lazy-flag record of the last flag-writing instruction is kept in
 * locals and stored to the state area at each exit (fields as Cpu.setLazy /
 * setResultFlags write them); flags read inside the block are computed from
 * those locals, or from RFLAGS at entry (W_FLAGS_IN) when no instruction of
 * the block wrote them yet.
 */

import { L_ADC, L_ADD, L_DEC, L_INC, L_LOGIC, L_RESULT_CFOF, L_SBB, L_SUB, TLB_MASK } from '../arch.js';
import {
  decode, D_BASE, D_DISP, D_FLAGS, D_IMM, D_IMM2, D_INDEX, D_OP, D_REG, D_RM, D_SCALE, D_STRIDE, DECODE_TOO_LONG,
  F_ASIZE_SHIFT, F_LOCK, F_MOD3, F_OSIZE_MASK, F_REP, F_REPNE, F_REX, F_RIPREL, F_SEG_SHIFT, OP_MAP_0F, SEG_FLAT,
} from '../decoder.js';
import { CodeWriter, emitModule, F64, I32, I64, Op, type MemorySpec } from './wasm-emitter.js';
import {
  EXIT_CHAIN, EXIT_EARLY, S_HI, S_LO, S_TLB_OFF, S_TLB_TAG, S_WORDS, W_BUDGET, W_EXIT, W_FLAGS_IN, W_LAZY, W_RD_SET, W_RIP, W_WR_SET,
} from './state-layout.js';

/** Most instructions per block. */
const MAX_BLOCK = 64;

/** A translated block, ready to instantiate. */
export interface BlockCode {
  bytes: Uint8Array;
  /** Instructions in the block (including a final branch). */
  count: number;
  /** The final branch jumps back to the block start and the block iterates inside wasm (within W_BUDGET). */
  selfLoop: boolean;
  /** rips[k]: RIP after k instructions (rips[0] = block start). */
  rips: Float64Array;
  /** RIP of the final branch's target when taken, else NaN (also for RET). */
  target: number;
  /** The block reads flags written before it: W_FLAGS_IN must hold RFLAGS. */
  readsFlagsIn: boolean;
  /** The block writes the lazy-flag record: W_LAZY must hold Cpu's record at entry and is copied back. */
  writesFlags: boolean;
}

// Locals: 0 = state offset (param), 1..16 = GPRs (i64), then temporaries.
const L_BASE = 0;
const reg = (n: number): number => 1 + n;
const T_A = 17; // i64: lazy record operand a (zero-extended for 32-bit ops)
const T_B = 18; // i64: operand b
const T_R = 19; // i64: result (zero-extended for 32-bit ops)
const T_CF = 20; // i32: record CF (ADC/SBB carry-in, RESULT_CFOF CF)
const T_OF = 21; // i32: record OF
const T_LIN = 22; // i64: linear address
const T_X = 23; // i64: scratch
const T_ADDR = 24; // i32: wasm address of a memory operand, or -1
const T_PO = 25; // i32: page offset
const T_IDX = 26; // i32: state offset + TLB index * 8
const T_O = 27; // f64: TLB wasm offset
const T_FIN = 28; // i32: RFLAGS at entry
const T_RD = 29; // i32: read TLB set base
const T_WR = 30; // i32: write TLB set base
const T_C = 31; // i32: scratch (carry-in)
const T_DONE = 32; // i32: instructions completed in earlier iterations of a self-loop
const T_BUDGET = 33; // i32: instructions the batch still allows
const LOCAL_TYPES = [
  ...new Array<number>(16).fill(I64), I64, I64, I64, I32, I32, I64, I64, I32, I32, I32, F64, I32, I32, I32, I32, I32, I32,
];

/** The flag writer kinds the block produces (op id in the lazy record). */
interface Writer { op: number; size: number }

/** Reads instruction bytes from one guest page in wasm memory; past the page it returns 0 (length is checked). */
class PageBytes {
  constructor(private readonly mem: Uint8Array, private readonly pageBase: number, public at: number) {}
  byte(i: number): number {
    const p = this.at + i;
    return p < 4096 ? this.mem[this.pageBase + p] : 0;
  }
}

/** Operand size in bytes (4 or 8), or 0 when the translator does not handle it. */
function opSize(f: number): number {
  const o = f & F_OSIZE_MASK;
  return o === 1 ? 4 : o === 2 ? 8 : 0;
}

/** A register byte operand the translator can express (low byte of a GPR). */
function lowByteReg(n: number, f: number): boolean {
  return (f & F_REX) !== 0 || n < 4;
}

/**
 * Which instruction classes the translator accepts, by decoded record: returns
 * 1 for ordinary, 2 for a final branch (ends the block), 0 for unsupported.
 * `reads` gets the flag bits the instruction reads (1 = any).
 */
function classify(r: Int32Array, b: number): number {
  const op = r[b + D_OP];
  const f = r[b + D_FLAGS];
  if ((f & (F_LOCK | F_REP | F_REPNE)) !== 0) return 0;
  const mod3 = (f & F_MOD3) !== 0;
  const size = opSize(f);
  if ((op >= 0x70 && op <= 0x7f) || (op >= (OP_MAP_0F | 0x80) && op <= (OP_MAP_0F | 0x8f)) || op === 0xeb || op === 0xe9) {
    return (f & F_OSIZE_MASK) === 2 ? 2 : 0; // 64-bit operand size (a 66 prefix would wrap RIP)
  }
  if (size === 0) return 0;
  switch (op) {
    case 0x01: case 0x03: case 0x09: case 0x0b: case 0x11: case 0x13: case 0x19: case 0x1b:
    case 0x21: case 0x23: case 0x29: case 0x2b: case 0x31: case 0x33: case 0x39: case 0x3b: case 0x85:
      return mod3 ? 1 : 0;
    case 0x05: case 0x0d: case 0x15: case 0x1d: case 0x25: case 0x2d: case 0x35: case 0x3d:
    case 0xb8: case 0xb9: case 0xba: case 0xbb: case 0xbc: case 0xbd: case 0xbe: case 0xbf:
      return 1;
    case 0x81: case 0x83: case 0x63: case 0x69: case 0x6b:
    case OP_MAP_0F | 0xaf:
      return mod3 ? 1 : 0;
    case 0xc7: return mod3 && (r[b + D_REG] & 7) === 0 ? 1 : 0;
    case 0xff: return mod3 && (r[b + D_REG] & 7) <= 1 ? 1 : 0; // INC/DEC r
    case 0xc1: case 0xd1: {
      const sub = r[b + D_REG] & 7;
      return mod3 && (sub === 4 || sub === 5 || sub === 6) ? 1 : 0;
    }
    case 0x89: case 0x8b:
      return mod3 || memoryOperandOk(r, b) ? 1 : 0;
    case 0x8d:
      return !mod3 && ((f >> F_ASIZE_SHIFT) & 3) === 2 ? 1 : 0;
    case OP_MAP_0F | 0xb6: case OP_MAP_0F | 0xbe:
      return mod3 && lowByteReg(r[b + D_RM], f) ? 1 : 0;
    case OP_MAP_0F | 0xb7: case OP_MAP_0F | 0xbf:
      return mod3 ? 1 : 0;
    default:
      if (op >= (OP_MAP_0F | 0x40) && op <= (OP_MAP_0F | 0x4f)) return mod3 ? 1 : 0;
      return 0;
  }
}

/** SETcc r8 is classified separately: it has no operand size of its own. */
function classifySetcc(r: Int32Array, b: number): number {
  const op = r[b + D_OP];
  const f = r[b + D_FLAGS];
  if (op < (OP_MAP_0F | 0x90) || op > (OP_MAP_0F | 0x9f)) return 0;
  if ((f & (F_LOCK | F_REP | F_REPNE)) !== 0 || (f & F_MOD3) === 0) return 0;
  return lowByteReg(r[b + D_RM], f) ? 1 : 0;
}

/**
 * Stack and call instructions, 64-bit operand size only: PUSH r / POP r /
 * PUSH imm / LEAVE (1), CALL rel32 (2: a final branch with a known target),
 * RET near (3: a final branch whose target the block stores in W_RIP).
 */
function classifyStack(r: Int32Array, b: number): number {
  const op = r[b + D_OP];
  const f = r[b + D_FLAGS];
  if ((f & (F_LOCK | F_REP | F_REPNE)) !== 0 || (f & F_OSIZE_MASK) !== 2) return 0;
  if ((op >= 0x50 && op <= 0x5f) || op === 0x68 || op === 0x6a || op === 0xc9) return 1;
  if (op === 0xe8) return 2;
  if (op === 0xc3) return 3;
  return 0;
}

/**
 * NOP (90 without REX.B, which is XCHG r8,rAX; PAUSE too), the hint NOPs
 * 0F 0D and 0F 18-1F (multi-byte NOP, ENDBR64, prefetch: no access, no
 * fault): 1, else 0. Common at function entries, where chained calls land.
 */
function classifyNop(r: Int32Array, b: number): number {
  const op = r[b + D_OP];
  const f = r[b + D_FLAGS];
  if ((f & F_LOCK) !== 0) return 0;
  if (op === 0x90) return (f & F_REX) !== 0 && (r[b + D_REG] & 8) !== 0 ? 0 : 1;
  return isHintNop(op) ? 1 : 0;
}

function isHintNop(op: number): boolean {
  return op === (OP_MAP_0F | 0x0d) || (op >= (OP_MAP_0F | 0x18) && op <= (OP_MAP_0F | 0x1f));
}

/** Whether instruction `op` (a stack instruction) may leave the block before it (stack access off the fast path). */
function isStackOp(op: number): boolean {
  return (op >= 0x50 && op <= 0x5f) || op === 0x68 || op === 0x6a || op === 0xc9 || op === 0xe8 || op === 0xc3;
}

/** Memory operands the translator handles: 64-bit address size, no segment base. */
function memoryOperandOk(r: Int32Array, b: number): boolean {
  const f = r[b + D_FLAGS];
  return ((f >> F_ASIZE_SHIFT) & 3) === 2 && ((f >> F_SEG_SHIFT) & 7) === SEG_FLAT;
}

/** Whether the instruction reads flags (Jcc, SETcc, CMOVcc, ADC/SBB; group 1 is checked by its reg field). */
function isFlagReader(op: number): boolean {
  return (op >= 0x70 && op <= 0x7f) || (op >= (OP_MAP_0F | 0x80) && op <= (OP_MAP_0F | 0x9f)) ||
    (op >= (OP_MAP_0F | 0x40) && op <= (OP_MAP_0F | 0x4f)) || op === 0x11 || op === 0x13 || op === 0x19 || op === 0x1b ||
    op === 0x15 || op === 0x1d || op === 0xff; // INC/DEC keep CF
}

/**
 * Translates the block starting at wasm offset `offset` (RIP `rip`, 64-bit
 * code). Returns null when its first instruction is not in the subset.
 */
export function translateBlock(mem: Uint8Array, offset: number, rip: number, memory: MemorySpec): BlockCode | null {
  const pageBase = offset - (offset & 0xfff);
  const src = new PageBytes(mem, pageBase, offset & 0xfff);
  const recs = new Int32Array(MAX_BLOCK * D_STRIDE);
  const rips: number[] = [rip];
  let count = 0;
  let branch = false;
  let dynamic = false; // the final branch is RET
  while (count < MAX_BLOCK) {
    const b = count * D_STRIDE;
    const len = decode(src, 64, recs, b);
    if (len === DECODE_TOO_LONG || src.at + len > 4096) break;
    let kind = classify(recs, b);
    if (kind === 0) kind = classifySetcc(recs, b);
    if (kind === 0) kind = classifyStack(recs, b);
    if (kind === 0) kind = classifyNop(recs, b);
    if (kind === 0) break;
    const next = rips[count] + len;
    if (kind === 2) {
      const target = next + recs[b + D_IMM];
      if (target < -0x800000000000 || target >= 0x800000000000) break;
    }
    rips.push(next);
    src.at += len;
    count++;
    if (kind === 2) { branch = true; break; }
    if (kind === 3) { branch = true; dynamic = true; break; }
  }
  if (count === 0) return null;
  const target = branch && !dynamic ? rips[count] + recs[(count - 1) * D_STRIDE + D_IMM] : NaN;
  // A block whose final jump returns to its start iterates inside wasm, unless it
  // reads flags from before the block (later iterations would need the previous one's).
  if (target === rip && recs[(count - 1) * D_STRIDE + D_OP] !== 0xe8) {
    const looped = new BlockBuilder(recs, count, rips, branch, memory, true).build();
    if (!looped.readsFlagsIn) return looped;
  }
  return new BlockBuilder(recs, count, rips, branch, memory, false).build();
}

class BlockBuilder {
  private readonly w = new CodeWriter();
  /** Per instruction: the last flag writer before it (index), or -1. */
  private lastWriter = -1;
  private readonly writers: Array<Writer | null> = [];
  private dirty = 0;
  /** GPRs loaded at entry (registersUsed). */
  private used = 0;
  private readsFlagsIn = false;
  private writesFlags = false;
  /** Whether each writer's record is observable (an exit or a flag read before the next writer). */
  private readonly live: boolean[] = [];

  constructor(
    private readonly r: Int32Array,
    private readonly count: number,
    private readonly rips: number[],
    private readonly branch: boolean,
    private readonly memory: MemorySpec,
    private readonly selfLoop: boolean,
  ) {}

  build(): BlockCode {
    const w = this.w;
    this.computeLiveness();
    // Entry: GPRs used by the block into locals, TLB set bases, entry flags.
    const used = this.registersUsed();
    this.used = used;
    for (let n = 0; n < 16; n++) {
      if ((used & (1 << n)) === 0) continue;
      w.get(L_BASE).mem(Op.i64Load32U, 2, S_LO + n * 4)
        .get(L_BASE).mem(Op.i64Load32U, 2, S_HI + n * 4).i64Const(32, 0).op(Op.i64Shl).op(Op.i64Or).set(reg(n));
    }
    w.get(L_BASE).mem(Op.i32Load, 2, S_WORDS + W_RD_SET * 4).set(T_RD);
    w.get(L_BASE).mem(Op.i32Load, 2, S_WORDS + W_WR_SET * 4).set(T_WR);
    w.get(L_BASE).mem(Op.i32Load, 2, S_WORDS + W_FLAGS_IN * 4).set(T_FIN);
    w.get(L_BASE).mem(Op.i32Load, 2, S_WORDS + W_BUDGET * 4).set(T_BUDGET);
    if (this.selfLoop) {
      // Every exit stores all GPRs the block uses: earlier iterations may have written any of them.
      this.dirty = used;
      w.loop();
    }
    for (let k = 0; k < this.count; k++) this.instruction(k);
    const last = (this.count - 1) * D_STRIDE;
    const target = this.branch && this.r[last + D_OP] !== 0xc3 ? this.rips[this.count] + this.r[last + D_IMM] : NaN;
    if (!this.branch) this.exitAt(() => this.ripAt(this.count), this.count);
    if (this.selfLoop) w.end().op(Op.unreachable);
    const bytes = emitModule(this.memory, { params: [I32], results: [I32], locals: LOCAL_TYPES, body: w });
    return {
      bytes, count: this.count, selfLoop: this.selfLoop, rips: Float64Array.from(this.rips), target,
      readsFlagsIn: this.readsFlagsIn, writesFlags: this.writesFlags,
    };
  }

  /**
   * GPRs the block may read or write (a superset: every register field of
   * every instruction, plus RAX of the eAX,imm forms, RSP of stack
   * instructions, RBP of LEAVE). Only these are loaded at entry; every
   * register an instruction writes is among them.
   */
  private registersUsed(): number {
    const r = this.r;
    let mask = 0;
    for (let k = 0; k < this.count; k++) {
      const b = k * D_STRIDE;
      for (const field of [D_REG, D_RM, D_BASE, D_INDEX]) {
        const n = r[b + field];
        if (n >= 0) mask |= 1 << (n & 15);
      }
      const op = r[b + D_OP];
      if (op <= 0x3d && (op & 7) === 5) mask |= 1 << 0;
      if (isStackOp(op)) mask |= 1 << 4;
      if (op === 0xc9) mask |= 1 << 5;
    }
    return mask;
  }

  /** Static pass: which flag writers are observable. */
  private computeLiveness(): void {
    const r = this.r;
    let last = -1;
    for (let k = 0; k < this.count; k++) {
      const b = k * D_STRIDE;
      const op = r[b + D_OP];
      const readsFlags = isFlagReader(op) || ((op === 0x81 || op === 0x83) && ((r[b + D_REG] & 7) === 2 || (r[b + D_REG] & 7) === 3));
      const memory = ((op === 0x89 || op === 0x8b) && (r[b + D_FLAGS] & F_MOD3) === 0) || isStackOp(op);
      if ((readsFlags || memory) && last >= 0) this.live[last] = true;
      if (this.writesFlagsAt(k)) { last = k; this.live[k] = false; }
    }
    if (last >= 0) this.live[last] = true;
  }

  private writesFlagsAt(k: number): boolean {
    const b = k * D_STRIDE;
    const r = this.r;
    const op = r[b + D_OP];
    if (op === 0xc1 || op === 0xd1) {
      const size = opSize(r[b + D_FLAGS]);
      const count = (op === 0xd1 ? 1 : r[b + D_IMM]) & (size === 8 ? 63 : 31);
      return count !== 0;
    }
    return (op <= 0x3d && (op & 7) !== 6 && (op & 7) !== 7) || op === 0x81 || op === 0x83 || op === 0x85 ||
      op === 0x69 || op === 0x6b || op === (OP_MAP_0F | 0xaf) || op === 0xff;
  }

  /**
   * Stores the GPRs written so far and the lazy record of the last flag
   * writer: the interpreter's state before the instruction the exit resumes
   * at (emission is in program order, so "so far" is exactly that).
   */
  private exit(): void {
    const w = this.w;
    if (this.selfLoop) this.dirty = this.used;
    for (let n = 0; n < 16; n++) {
      if ((this.dirty & (1 << n)) === 0) continue;
      w.get(L_BASE).get(reg(n)).mem(Op.i64Store32, 2, S_LO + n * 4);
      w.get(L_BASE).get(reg(n)).i64Const(32, 0).op(Op.i64ShrU).mem(Op.i64Store32, 2, S_HI + n * 4);
    }
    this.storeRecord();
  }

  /** Stores the lazy record of the last flag writer so far (nothing when there is none). */
  private storeRecord(): void {
    const w = this.w;
    const wr = this.lastWriter >= 0 ? this.writers[this.lastWriter] : null;
    if (wr === null || wr === undefined) return;
    const word = (i: number): number => S_WORDS + (W_LAZY + i) * 4;
    w.get(L_BASE).i32Const(wr.op).mem(Op.i32Store, 2, word(0));
    w.get(L_BASE).i32Const(wr.size).mem(Op.i32Store, 2, word(1));
    const half = (local: number, at: number): void => {
      w.get(L_BASE).get(local).mem(Op.i64Store32, 2, word(at));
      w.get(L_BASE).get(local).i64Const(32, 0).op(Op.i64ShrU).mem(Op.i64Store32, 2, word(at + 1));
    };
    half(T_R, 2);
    if (wr.op === L_RESULT_CFOF) {
      w.get(L_BASE).get(T_CF).mem(Op.i32Store, 2, word(8));
      w.get(L_BASE).get(T_OF).mem(Op.i32Store, 2, word(9));
      return;
    }
    half(T_A, 4);
    half(T_B, 6);
    if (wr.op === L_ADC || wr.op === L_SBB || wr.op === L_INC || wr.op === L_DEC) w.get(L_BASE).get(T_CF).mem(Op.i32Store, 2, word(8));
  }

  /**
   * Exits: state stores, W_RIP = the RIP to continue at (an i64 pushed by
   * `nextRip`), W_EXIT = EXIT_EARLY when the exit stops before an instruction
   * of the block (else EXIT_CHAIN), and returns the instructions completed
   * (`completed` in this iteration plus earlier ones).
   */
  private exitAt(nextRip: () => void, completed: number, early = false): void {
    const w = this.w;
    this.exit();
    w.get(L_BASE); nextRip(); w.mem(Op.i64Store, 3, S_WORDS + W_RIP * 4);
    w.get(L_BASE).i32Const(early ? EXIT_EARLY : EXIT_CHAIN).mem(Op.i32Store, 2, S_WORDS + W_EXIT * 4);
    w.i32Const(completed);
    if (this.selfLoop) w.get(T_DONE).op(Op.i32Add);
    w.op(Op.return);
  }

  /** Pushes RIP `v` (a signed canonical number) as an i64. */
  private ripConst(v: number): void {
    this.w.i64Const(v % 0x1_0000_0000 | 0, Math.floor(v / 0x1_0000_0000));
  }

  /** Pushes the RIP after k instructions. */
  private ripAt(k: number): void {
    this.ripConst(this.rips[k]);
  }

  /** Pushes the taken target of the branch that is instruction k. */
  private branchTarget(k: number): void {
    this.ripConst(this.rips[k + 1] + this.r[k * D_STRIDE + D_IMM]);
  }

  // ---- operand helpers ----

  /** Pushes register n at size (4: zero-extended low half). */
  private regVal(n: number, size: number): void {
    this.w.get(reg(n));
    if (size === 4) this.w.i64Const(-1, 0).op(Op.i64And);
  }

  /** Pops an i64 into register n (the caller zero-extended 32-bit values). */
  private setReg(n: number): void {
    this.w.set(reg(n));
    this.dirty |= 1 << n;
  }

  private mask(size: number): void {
    if (size === 4) this.w.i64Const(-1, 0).op(Op.i64And);
  }

  /** Pushes the 64-bit offset of the memory operand of instruction k (base + index << scale + disp, or RIP-relative). */
  private address(k: number): void {
    const w = this.w;
    const b = k * D_STRIDE;
    const r = this.r;
    const disp = r[b + D_DISP];
    if ((r[b + D_FLAGS] & F_RIPREL) !== 0) {
      const v = this.rips[k + 1] + disp; // nextRip + disp, exact (|v| < 2^53)
      w.i64Const(v % 0x1_0000_0000 | 0, Math.floor(v / 0x1_0000_0000));
    } else w.i64Const(disp, disp >> 31);
    const base = r[b + D_BASE];
    const index = r[b + D_INDEX];
    if (base >= 0) w.get(reg(base)).op(Op.i64Add);
    if (index >= 0) {
      w.get(reg(index));
      const sc = r[b + D_SCALE];
      if (sc !== 0) w.i64Const(sc, 0).op(Op.i64Shl);
      w.op(Op.i64Add);
    }
  }

  /**
   * Probes the TLB set (read or write) for an access of `size` bytes at the
   * address of instruction k; on a miss exits before instruction k. Leaves
   * the wasm address in T_ADDR.
   */
  private probe(k: number, size: number, write: boolean, linear: () => void = () => this.address(k)): void {
    const w = this.w;
    linear();
    w.set(T_LIN);
    w.get(T_LIN).op(Op.i32WrapI64).i32Const(0xfff).op(Op.i32And).set(T_PO);
    w.get(T_LIN).op(Op.i32WrapI64).i32Const(12).op(Op.i32ShrU).i32Const(TLB_MASK).op(Op.i32And)
      .get(write ? T_WR : T_RD).op(Op.i32Add).i32Const(3).op(Op.i32Shl).get(L_BASE).op(Op.i32Add).set(T_IDX);
    w.i32Const(-1).set(T_ADDR);
    w.get(T_IDX).mem(Op.f64Load, 3, S_TLB_TAG)
      .get(T_LIN).i64Const(~0xfff, -1).op(Op.i64And).op(Op.f64ConvertI64S).op(Op.f64Eq)
      .get(T_PO).i32Const(4096 - size).op(Op.i32LeU).op(Op.i32And)
      .if()
      .get(T_IDX).mem(Op.f64Load, 3, S_TLB_OFF).set(T_O)
      .get(T_O).i64Const(0, 0).op(Op.f64ConvertI64S).op(Op.f64Ge)
      .if()
      .get(T_O).op(Op.i32TruncF64U).get(T_PO).op(Op.i32Add).set(T_ADDR)
      .end()
      .end();
    w.get(T_ADDR).i32Const(-1).op(Op.i32Eq).if();
    this.exitAt(() => this.ripAt(k), k, true);
    w.end();
  }

  // ---- flags ----

  /** Records that instruction k writes the lazy record with (op, size); the caller set T_A/T_B/T_R/T_CF/T_OF. */
  private wrote(k: number, op: number, size: number): void {
    this.writers[k] = { op, size };
    this.lastWriter = k;
    this.writesFlags = true;
  }

  /** Pushes flag `bit` (CF 0, PF 2, ZF 6, SF 7, OF 11) as i32 0/1, from the last writer or the entry RFLAGS. */
  private flag(bit: number): void {
    const w = this.w;
    const wr = this.lastWriter >= 0 ? this.writers[this.lastWriter] : null;
    if (wr === null || wr === undefined) {
      this.readsFlagsIn = true;
      w.get(T_FIN).i32Const(bit).op(Op.i32ShrU).i32Const(1).op(Op.i32And);
      return;
    }
    const size = wr.size;
    switch (bit) {
      case 6: w.get(T_R).op(Op.i64Eqz); return;
      case 7:
        if (size === 8) w.get(T_R).i64Const(0, 0).op(Op.i64LtS);
        else w.get(T_R).op(Op.i32WrapI64).i32Const(0).op(Op.i32LtS);
        return;
      case 2: w.get(T_R).op(Op.i32WrapI64).i32Const(0xff).op(Op.i32And).op(0x69 /* i32.popcnt */).i32Const(1).op(Op.i32And).i32Const(1).op(Op.i32Xor); return;
      case 0:
        switch (wr.op) {
          case L_ADD: w.get(T_R).get(T_A).op(Op.i64LtU); return;
          case L_SUB: w.get(T_A).get(T_B).op(Op.i64LtU); return;
          case L_ADC: w.get(T_R).get(T_A).op(Op.i64LeU).get(T_R).get(T_A).op(Op.i64LtU).get(T_CF).op(Op.select); return;
          case L_SBB: w.get(T_A).get(T_B).op(Op.i64LeU).get(T_A).get(T_B).op(Op.i64LtU).get(T_CF).op(Op.select); return;
          case L_LOGIC: w.i32Const(0); return;
          default: w.get(T_CF); return;
        }
      default: // OF
        switch (wr.op) {
          case L_ADD: case L_ADC:
            w.get(T_A).get(T_R).op(Op.i64Xor).get(T_B).get(T_R).op(Op.i64Xor).op(Op.i64And);
            break;
          case L_SUB: case L_SBB:
            w.get(T_A).get(T_B).op(Op.i64Xor).get(T_A).get(T_R).op(Op.i64Xor).op(Op.i64And);
            break;
          case L_LOGIC: w.i32Const(0); return;
          case L_INC: // the result is the smallest negative number
            if (size === 8) w.get(T_R).i64Const(0, 0x80000000 | 0).op(Op.i64Eq); else w.get(T_R).i64Const(0x80000000 | 0, 0).op(Op.i64Eq);
            return;
          case L_DEC: // the result is the largest positive number
            if (size === 8) w.get(T_R).i64Const(-1, 0x7fffffff).op(Op.i64Eq); else w.get(T_R).i64Const(0x7fffffff, 0).op(Op.i64Eq);
            return;
          default: w.get(T_OF); return;
        }
        if (size === 8) w.i64Const(0, 0).op(Op.i64LtS);
        else w.op(Op.i32WrapI64).i32Const(0).op(Op.i32LtS);
    }
  }

  /** Pushes condition cc (0-15) as i32 0/1. */
  private cond(cc: number): void {
    const w = this.w;
    switch (cc >> 1) {
      case 0: this.flag(11); break;
      case 1: this.flag(0); break;
      case 2: this.flag(6); break;
      case 3: this.flag(0); this.flag(6); w.op(Op.i32Or); break;
      case 4: this.flag(7); break;
      case 5: this.flag(2); break;
      case 6: this.flag(7); this.flag(11); w.op(Op.i32Xor); break;
      default: this.flag(6); this.flag(7); this.flag(11); w.op(Op.i32Xor).op(Op.i32Or); break;
    }
    if ((cc & 1) !== 0) w.i32Const(1).op(Op.i32Xor);
  }

  // ---- instructions ----

  /** ALU kind (ADD OR ADC SBB AND SUB XOR CMP) on T_A/T_B at size; result in T_R; writes dst (unless CMP or dst < 0). */
  private alu(k: number, kind: number, size: number, dst: number, operandA: () => void, operandB: () => void): void {
    const w = this.w;
    // The carry-in comes from the previous record, before T_A/T_B are overwritten.
    if (kind === 2 || kind === 3) { this.flag(0); w.set(T_C); }
    operandA(); w.set(T_A);
    operandB(); w.set(T_B);
    switch (kind) {
      case 0: w.get(T_A).get(T_B).op(Op.i64Add); break;
      case 1: w.get(T_A).get(T_B).op(Op.i64Or); break;
      case 2: w.get(T_A).get(T_B).op(Op.i64Add).get(T_C).op(Op.i64ExtendI32U).op(Op.i64Add); break;
      case 3: w.get(T_A).get(T_B).op(Op.i64Sub).get(T_C).op(Op.i64ExtendI32U).op(Op.i64Sub); break;
      case 4: w.get(T_A).get(T_B).op(Op.i64And); break;
      case 6: w.get(T_A).get(T_B).op(Op.i64Xor); break;
      default: w.get(T_A).get(T_B).op(Op.i64Sub); break;
    }
    this.mask(size);
    w.set(T_R);
    if (kind === 2 || kind === 3) w.get(T_C).set(T_CF);
    const lazy = kind === 0 ? L_ADD : kind === 2 ? L_ADC : kind === 3 ? L_SBB : kind === 5 || kind === 7 ? L_SUB : L_LOGIC;
    this.wrote(k, lazy, size);
    if (kind !== 7 && dst >= 0) { w.get(T_R); this.setReg(dst); }
  }

  private instruction(k: number): void {
    const w = this.w;
    const r = this.r;
    const b = k * D_STRIDE;
    const op = r[b + D_OP];
    const f = r[b + D_FLAGS];
    const size = opSize(f);
    const n = r[b + D_REG];
    const m = r[b + D_RM];
    const imm = r[b + D_IMM];
    const jcc = (op >= 0x70 && op <= 0x7f) || (op >= (OP_MAP_0F | 0x80) && op <= (OP_MAP_0F | 0x8f));
    if (this.selfLoop && (jcc || op === 0xeb || op === 0xe9)) {
      // Back to the start: iterate again while another full iteration fits the budget.
      if (jcc) this.cond(op & 15); else w.i32Const(1);
      w.if()
        .get(T_DONE).i32Const(2 * this.count).op(Op.i32Add).get(T_BUDGET).op(Op.i32LeS)
        .if();
      this.storeRecord(); // later iterations' exits before their first flag writer see this record
      w.get(T_DONE).i32Const(this.count).op(Op.i32Add).set(T_DONE).br(2)
        .end();
      this.exitAt(() => this.branchTarget(k), k + 1);
      w.end();
      this.exitAt(() => this.ripAt(k + 1), k + 1);
      return;
    }
    if (jcc) {
      this.exitAt(() => { this.branchTarget(k); this.ripAt(k + 1); this.cond(op & 15); w.op(Op.select); }, k + 1);
      return;
    }
    if (op === 0xeb || op === 0xe9) {
      this.exitAt(() => this.branchTarget(k), k + 1);
      return;
    }
    if (isStackOp(op)) {
      this.stackInstruction(k, op);
      return;
    }
    if (op === 0x90 || isHintNop(op)) return; // NOPs (classifyNop)
    if (op >= (OP_MAP_0F | 0x90) && op <= (OP_MAP_0F | 0x9f)) { // SETcc r8 (low byte)
      w.get(reg(m)).i64Const(~0xff, -1).op(Op.i64And);
      this.cond(op & 15);
      w.op(Op.i64ExtendI32U).op(Op.i64Or);
      this.setReg(m);
      return;
    }
    if (op >= (OP_MAP_0F | 0x40) && op <= (OP_MAP_0F | 0x4f)) { // CMOVcc r, r
      this.regVal(m, size);
      this.regVal(n, size);
      this.cond(op & 15);
      w.op(Op.select);
      this.setReg(n);
      return;
    }
    switch (op) {
      case 0x01: case 0x09: case 0x11: case 0x19: case 0x21: case 0x29: case 0x31: case 0x39: // E op= G (register)
        this.alu(k, op >> 3, size, m, () => this.regVal(m, size), () => this.regVal(n, size));
        return;
      case 0x03: case 0x0b: case 0x13: case 0x1b: case 0x23: case 0x2b: case 0x33: case 0x3b: // G op= E (register)
        this.alu(k, op >> 3, size, n, () => this.regVal(n, size), () => this.regVal(m, size));
        return;
      case 0x85: // TEST
        this.alu(k, 4, size, -1, () => this.regVal(m, size), () => this.regVal(n, size)); // no destination
        return;
      case 0x05: case 0x0d: case 0x15: case 0x1d: case 0x25: case 0x2d: case 0x35: case 0x3d: // eAX op= imm
        this.alu(k, op >> 3, size, 0, () => this.regVal(0, size), () => { w.i64Const(imm, imm >> 31); this.mask(size); });
        return;
      case 0x81: case 0x83: // group 1, register
        this.alu(k, n & 7, size, m, () => this.regVal(m, size), () => { w.i64Const(imm, imm >> 31); this.mask(size); });
        return;
      case 0x89: // MOV Ev, Gv
        if ((f & F_MOD3) !== 0) { this.regVal(n, size); this.setReg(m); return; }
        this.probe(k, size, true);
        w.get(T_ADDR).get(reg(n));
        if (size === 8) w.mem(Op.i64Store, 0, 0); else w.mem(Op.i64Store32, 0, 0);
        return;
      case 0x8b: // MOV Gv, Ev
        if ((f & F_MOD3) !== 0) { this.regVal(m, size); this.setReg(n); return; }
        this.probe(k, size, false);
        w.get(T_ADDR);
        if (size === 8) w.mem(Op.i64Load, 0, 0); else w.mem(Op.i64Load32U, 0, 0);
        this.setReg(n);
        return;
      case 0xb8: case 0xb9: case 0xba: case 0xbb: case 0xbc: case 0xbd: case 0xbe: case 0xbf:
        if (size === 8) w.i64Const(imm, r[b + D_IMM2]); else w.i64Const(imm, 0);
        this.setReg(n);
        return;
      case 0xc7:
        w.i64Const(imm, imm >> 31); this.mask(size);
        this.setReg(m);
        return;
      case 0x8d: // LEA (64-bit address size)
        this.address(k); this.mask(size);
        this.setReg(n);
        return;
      case 0x63: // MOVSXD
        if (size === 8) w.get(reg(m)).op(Op.i32WrapI64).op(Op.i64ExtendI32S);
        else this.regVal(m, 4);
        this.setReg(n);
        return;
      case OP_MAP_0F | 0xb6: case OP_MAP_0F | 0xb7: case OP_MAP_0F | 0xbe: case OP_MAP_0F | 0xbf: {
        const bits = (op & 1) === 0 ? 8 : 16;
        if ((op & 8) === 0) w.get(reg(m)).i64Const(bits === 8 ? 0xff : 0xffff, 0).op(Op.i64And);
        else {
          w.get(reg(m)).i64Const(64 - bits, 0).op(Op.i64Shl).i64Const(64 - bits, 0).op(Op.i64ShrS);
          this.mask(size);
        }
        this.setReg(n);
        return;
      }
      case 0xff: { // INC/DEC r: CF kept (as the record's carry-in)
        const dec = (n & 7) === 1;
        this.flag(0); w.set(T_C);
        this.regVal(m, size); w.set(T_A);
        w.i64Const(1, 0).set(T_B);
        w.get(T_A).get(T_B).op(dec ? Op.i64Sub : Op.i64Add); this.mask(size); w.set(T_R);
        w.get(T_C).set(T_CF);
        this.wrote(k, dec ? L_DEC : L_INC, size);
        w.get(T_R); this.setReg(m);
        return;
      }
      case 0xc1: case 0xd1:
        this.shift(k, n & 7, size, m, (op === 0xd1 ? 1 : imm) & (size === 8 ? 63 : 31));
        return;
      case OP_MAP_0F | 0xaf:
        this.imul(k, size, n, m, null);
        return;
      case 0x69: case 0x6b:
        this.imul(k, size, n, m, imm);
        return;
      default:
        throw new Error(`translate: unexpected opcode ${op.toString(16)}`);
    }
  }

  /**
   * PUSH r / POP r / PUSH imm / LEAVE / CALL rel32 / RET with 64-bit operand
   * size. In 64-bit mode the stack is flat; a TLB hit implies a canonical
   * address, so a stack access that would raise #SS or #PF misses and exits
   * before the instruction (the interpreter raises it). RSP changes only after
   * the access succeeds, as in Cpu.push/pop.
   */
  private stackInstruction(k: number, op: number): void {
    const w = this.w;
    const b = k * D_STRIDE;
    const rsp = reg(4);
    const below = (): void => { w.get(rsp).i64Const(8, 0).op(Op.i64Sub); };
    const push = (value: () => void): void => {
      this.probe(k, 8, true, below);
      w.get(T_ADDR); value(); w.mem(Op.i64Store, 0, 0);
      below(); this.setReg(4);
    };
    const pop = (): void => { // T_X = [RSP]; RSP += 8
      this.probe(k, 8, false, () => w.get(rsp));
      w.get(T_ADDR).mem(Op.i64Load, 0, 0).set(T_X);
      w.get(rsp).i64Const(8, 0).op(Op.i64Add); this.setReg(4);
    };
    if (op <= 0x57) { // PUSH r (PUSH RSP stores the old value)
      const n = this.r[b + D_REG];
      push(() => w.get(reg(n)));
      return;
    }
    if (op <= 0x5f) { // POP r (POP RSP keeps the loaded value)
      pop();
      w.get(T_X); this.setReg(this.r[b + D_REG]);
      return;
    }
    if (op === 0x68 || op === 0x6a) {
      const imm = this.r[b + D_IMM];
      push(() => w.i64Const(imm, imm >> 31));
      return;
    }
    if (op === 0xc9) { // LEAVE: RSP = RBP, then POP RBP
      this.probe(k, 8, false, () => w.get(reg(5)));
      w.get(T_ADDR).mem(Op.i64Load, 0, 0).set(T_X);
      w.get(reg(5)).i64Const(8, 0).op(Op.i64Add); this.setReg(4);
      w.get(T_X); this.setReg(5);
      return;
    }
    if (op === 0xe8) { // CALL rel32: the target was checked canonical at translation
      push(() => this.ripAt(k + 1));
      this.exitAt(() => this.branchTarget(k), k + 1);
      return;
    }
    // RET: a non-canonical return address is #GP before RSP changes; the interpreter raises it.
    this.probe(k, 8, false, () => w.get(rsp));
    w.get(T_ADDR).mem(Op.i64Load, 0, 0).set(T_X);
    w.get(T_X).i64Const(0, 0x8000).op(Op.i64Add).i64Const(0, 0x10000).op(Op.i64GeU).if();
    this.exitAt(() => this.ripAt(k), k, true);
    w.end();
    w.get(rsp).i64Const(8, 0).op(Op.i64Add); this.setReg(4);
    this.exitAt(() => w.get(T_X), k + 1);
  }

  /** SHL/SHR (and SAL) of register m by a constant count. */
  private shift(k: number, sub: number, size: number, m: number, count: number): void {
    const w = this.w;
    if (count === 0) { // value and flags unchanged; a 32-bit destination is still zero-extended
      if (size === 4) { this.regVal(m, 4); this.setReg(m); }
      return;
    }
    const live = this.live[k] === true;
    const bits = size * 8;
    this.regVal(m, size); w.set(T_X);
    if (sub === 5) {
      w.get(T_X).i64Const(count, 0).op(Op.i64ShrU).set(T_R);
      if (live) {
        w.get(T_X).i64Const(count - 1, 0).op(Op.i64ShrU).op(Op.i32WrapI64).i32Const(1).op(Op.i32And).set(T_CF);
        w.get(T_X).i64Const(bits - 1, 0).op(Op.i64ShrU).op(Op.i32WrapI64).i32Const(1).op(Op.i32And).set(T_OF);
      }
    } else {
      w.get(T_X).i64Const(count, 0).op(Op.i64Shl); this.mask(size); w.set(T_R);
      if (live) {
        w.get(T_X).i64Const(bits - count, 0).op(Op.i64ShrU).op(Op.i32WrapI64).i32Const(1).op(Op.i32And).set(T_CF);
        w.get(T_R).i64Const(bits - 1, 0).op(Op.i64ShrU).op(Op.i32WrapI64).get(T_CF).op(Op.i32Xor).set(T_OF);
      }
    }
    this.wrote(k, L_RESULT_CFOF, size);
    w.get(T_R);
    this.setReg(m);
  }

  /** IMUL r, r/m (imm === null) or IMUL r, r/m, imm: the truncated product, CF = OF = signed overflow. */
  private imul(k: number, size: number, n: number, m: number, imm: number | null): void {
    const w = this.w;
    const live = this.live[k] === true;
    if (size === 8) {
      w.get(reg(m)).set(T_A);
      if (imm === null) w.get(reg(n)).set(T_B); else w.i64Const(imm, imm >> 31).set(T_B);
      w.get(T_A).get(T_B).op(Op.i64Mul).set(T_R);
      if (live) {
        // Overflow iff the product does not divide back (a = 0: never; a = -1: only b = MIN).
        w.get(T_A).op(Op.i64Eqz).if(I32).i32Const(0).else()
          .get(T_A).i64Const(-1, -1).op(Op.i64Eq).if(I32).get(T_B).i64Const(0, 0x80000000 | 0).op(Op.i64Eq).else()
          .get(T_R).get(T_A).op(Op.i64DivS).get(T_B).op(Op.i64Ne).end().end().tee(T_CF).set(T_OF);
      }
    } else {
      w.get(reg(m)).op(Op.i32WrapI64).op(Op.i64ExtendI32S);
      if (imm === null) w.get(reg(n)).op(Op.i32WrapI64).op(Op.i64ExtendI32S); else w.i64Const(imm, imm >> 31);
      w.op(Op.i64Mul).set(T_X);
      if (live) w.get(T_X).get(T_X).op(Op.i32WrapI64).op(Op.i64ExtendI32S).op(Op.i64Ne).tee(T_CF).set(T_OF);
      w.get(T_X).i64Const(-1, 0).op(Op.i64And).set(T_R);
    }
    this.wrote(k, L_RESULT_CFOF, size);
    w.get(T_R);
    this.setReg(n);
  }
}
