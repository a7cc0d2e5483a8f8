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
 * instruction with the state exactly as the interpreter would have it there;
 * a read-modify-write probes the write set. Memory operands may be FS/GS
 * based (the bases are in the state area, Cpu.segBase). Cases the block
 * leaves to the interpreter at run time (a shift count of zero in CL, a
 * divide that may fault or needs 128 bits) exit the same way.
 * Operand sizes are 8 (AH..BH included), 16, 32 and 64 bits, with the
 * interpreter's readReg/writeReg merging rules.
 * Flags: the lazy-flag record of the last flag-writing instruction is kept in
 * locals and stored to the state area at each exit (fields as Cpu.setLazy /
 * setResultFlags write them); flags read inside the block are computed from
 * those locals, or from RFLAGS at entry (W_FLAGS_IN) when no instruction of
 * the block wrote them yet. Rotates, which keep SF/ZF/PF/AF, leave an L_NONE
 * record: materialized arithmetic flags in the result word (jit.ts moves
 * them to and from RFLAGS).
 */

import { L_ADC, L_ADD, L_DEC, L_INC, L_LOGIC, L_NONE, L_RESULT_CFOF, L_SBB, L_SUB, TLB_MASK } from '../arch.js';
import {
  decode, D_BASE, D_DISP, D_FLAGS, D_IMM, D_IMM2, D_INDEX, D_OP, D_REG, D_RM, D_SCALE, D_STRIDE, DECODE_TOO_LONG,
  F_ASIZE_SHIFT, F_LOCK, F_MOD3, F_MODRM, F_OSIZE_MASK, F_REP, F_REPNE, F_REX, F_RIPREL, F_SEG_SHIFT, OP_MAP_0F, SEG_FLAT, SEG_FS, SEG_GS,
} from '../decoder.js';
import { CodeWriter, F64, I32, I64, Op, type FunctionSpec } from './wasm-emitter.js';
import {
  EXIT_CHAIN, EXIT_EARLY, S_HI, S_LO, S_SEG_BASE, S_TLB_OFF, S_TLB_TAG, S_WORDS, W_BUDGET, W_EXIT, W_FLAGS_IN, W_LAZY, W_RD_SET, W_RIP, W_WR_SET,
} from './state-layout.js';

/** Decoder record fields that name a GPR (registersUsed). */
const REGISTER_FIELDS = [D_REG, D_RM, D_BASE, D_INDEX] as const;

/** Most instructions per block. */
const MAX_BLOCK = 64;

/** A translated block: its function, ready to go into a module (wasm-emitter.ts emitFunctions). */
export interface BlockCode {
  fn: FunctionSpec;
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
const T_N = 34; // i64: shift count from CL
const T_FL = 35; // i32: materialized arithmetic flags (record op L_NONE, after a rotate)
const T_P = 36; // i64: scratch (wide multiply, divide)
const T_Q = 37; // i64: scratch
const LOCAL_TYPES = [
  ...new Array<number>(16).fill(I64), I64, I64, I64, I32, I32, I64, I64, I32, I32, I32, F64, I32, I32, I32, I32, I32, I32, I64, I32, I64, I64,
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

/** Operand size in bytes of a 16/32/64-bit (non-byte) form: 2, 4 or 8. */
function wordSize(f: number): number {
  return 2 << (f & F_OSIZE_MASK);
}

/** Whether register operand n of size 1 names AH, CH, DH or BH (no REX prefix, n = 4..7). */
function isHighByte(n: number, size: number, f: number): boolean {
  return size === 1 && (f & F_REX) === 0 && n >= 4 && n < 8;
}

/** The sign bit of a `size`-byte value (1, 2 or 4) as an unsigned number. */
function signBit(size: number): number {
  return size === 1 ? 0x80 : size === 2 ? 0x8000 : 0x80000000;
}

/** Hint NOPs: 0F 0D and 0F 18-1F (prefetches, multi-byte NOP, ENDBR); the memory operand is never accessed. */
function isHintNop(op: number): boolean {
  return op === (OP_MAP_0F | 0x0d) || (op >= (OP_MAP_0F | 0x18) && op <= (OP_MAP_0F | 0x1f));
}

/**
 * Which instruction classes the translator accepts, by decoded record: returns
 * 1 for ordinary, 2 for a final branch (ends the block), 0 for unsupported.
 */
function classify(r: Int32Array, b: number): number {
  const op = r[b + D_OP];
  const f = r[b + D_FLAGS];
  if ((f & F_LOCK) !== 0) return 0;
  if (isHintNop(op)) return 1; // REP prefixes are ignored (F3 0F 1E FA is ENDBR64)
  if (op === 0x90) return (f & F_REX) !== 0 && (r[b + D_REG] & 8) !== 0 ? 0 : 1; // NOP, PAUSE (F3 90); with REX.B it is XCHG r8, rAX
  if ((f & (F_REP | F_REPNE)) !== 0) return 0;
  const mod3 = (f & F_MOD3) !== 0;
  // An r/m operand the translator can reach: a register, or memory with a 64-bit address and no segment base.
  const rm = mod3 || memoryOperandOk(r, b);
  const sub = r[b + D_REG] & 7;
  if ((op >= 0x70 && op <= 0x7f) || (op >= (OP_MAP_0F | 0x80) && op <= (OP_MAP_0F | 0x8f)) || op === 0xeb || op === 0xe9) {
    return (f & F_OSIZE_MASK) === 2 ? 2 : 0; // 64-bit operand size (a 66 prefix would wrap RIP)
  }
  if (op < 0x40) { // ALU: E op= G, G op= E, accumulator op= imm (all sizes)
    const form = op & 7;
    return form <= 3 ? (rm ? 1 : 0) : form <= 5 ? 1 : 0;
  }
  if (op >= (OP_MAP_0F | 0x40) && op <= (OP_MAP_0F | 0x4f)) return rm ? 1 : 0; // CMOVcc
  if (op >= (OP_MAP_0F | 0x90) && op <= (OP_MAP_0F | 0x9f)) return rm ? 1 : 0; // SETcc
  if (op >= 0xb0 && op <= 0xbf) return 1; // MOV r, imm
  switch (op) {
    case 0x80: case 0x81: case 0x83: // group 1
    case 0x84: case 0x85: // TEST
    case 0x88: case 0x89: case 0x8a: case 0x8b: // MOV
    case 0x63: // MOVSXD
    case OP_MAP_0F | 0xb6: case OP_MAP_0F | 0xb7: case OP_MAP_0F | 0xbe: case OP_MAP_0F | 0xbf: // MOVZX/MOVSX
      return rm ? 1 : 0;
    case 0xa8: case 0xa9: return 1; // TEST acc, imm
    case 0x98: case 0x99: return 1; // CBW/CWDE/CDQE, CWD/CDQ/CQO
    case 0x90: return (f & F_REX) !== 0 && (r[b + D_REG] & 8) !== 0 ? 0 : 1; // NOP (with REX.B it is XCHG r8, rAX)
    case 0xc6: case 0xc7: return rm && sub === 0 ? 1 : 0; // MOV r/m, imm
    case 0xfe: case 0xff: return rm && sub <= 1 ? 1 : 0; // INC/DEC
    case 0xf6: return rm && sub <= 3 ? 1 : 0; // TEST imm, NOT, NEG
    case 0xf7: return rm && (sub <= 3 || opSize(f) !== 0) ? 1 : 0; // and MUL/IMUL/DIV/IDIV at 32/64 bits
    case 0xc0: case 0xc1: case 0xd0: case 0xd1: case 0xd2: case 0xd3: // ROL ROR SHL SHR SAL SAR (not RCL/RCR)
      return rm && (sub <= 1 || sub >= 4) ? 1 : 0;
    case 0x69: case 0x6b: case OP_MAP_0F | 0xaf:
      return rm && opSize(f) !== 0 ? 1 : 0;
    case 0x8d:
      return !mod3 && opSize(f) !== 0 && ((f >> F_ASIZE_SHIFT) & 3) === 2 ? 1 : 0;
    default:
      return 0;
  }
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

/** Whether instruction `op` (a stack instruction) may leave the block before it (stack access off the fast path). */
function isStackOp(op: number): boolean {
  return (op >= 0x50 && op <= 0x5f) || op === 0x68 || op === 0x6a || op === 0xc9 || op === 0xe8 || op === 0xc3;
}

/** Memory operands the translator handles: 64-bit address size, flat or FS/GS-based. */
function memoryOperandOk(r: Int32Array, b: number): boolean {
  const f = r[b + D_FLAGS];
  const seg = (f >> F_SEG_SHIFT) & 7;
  return ((f >> F_ASIZE_SHIFT) & 3) === 2 && (seg === SEG_FLAT || seg === SEG_FS || seg === SEG_GS);
}

/** Whether the instruction reads flags: conditions (Jcc, SETcc, CMOVcc), ADC/SBB, INC/DEC (they keep CF). */
function readsFlags(op: number, sub: number): boolean {
  if (op < 0x40) return (op >> 3) === 2 || (op >> 3) === 3;
  if (op >= 0x80 && op <= 0x83) return sub === 2 || sub === 3;
  return (op >= 0x70 && op <= 0x7f) || (op >= (OP_MAP_0F | 0x80) && op <= (OP_MAP_0F | 0x9f)) ||
    (op >= (OP_MAP_0F | 0x40) && op <= (OP_MAP_0F | 0x4f)) || op === 0xfe || op === 0xff;
}

/** Shift group 2 (C0/C1/D0/D1/D2/D3). */
function isShift(op: number): boolean {
  return op === 0xc0 || op === 0xc1 || (op >= 0xd0 && op <= 0xd3);
}

/** Operand size of a shift (C0-D3) and its count when constant (masked), or -1 for a count in CL. */
function shiftCount(op: number, f: number, imm: number): number {
  const size = (op & 1) === 0 ? 1 : wordSize(f);
  if (op === 0xd2 || op === 0xd3) return -1;
  return (op === 0xd0 || op === 0xd1 ? 1 : imm) & (size === 8 ? 63 : 31);
}

/**
 * Translates the block starting at wasm offset `offset` (RIP `rip`, 64-bit
 * code). Returns null when its first instruction is not in the subset.
 */
export function translateBlock(mem: Uint8Array, offset: number, rip: number): BlockCode | null {
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
    if (kind === 0) kind = classifyStack(recs, b);
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
    const looped = new BlockBuilder(recs, count, rips, branch, true).build();
    if (!looped.readsFlagsIn) return looped;
  }
  return new BlockBuilder(recs, count, rips, branch, false).build();
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
    const fn: FunctionSpec = { params: [I32], results: [I32], locals: LOCAL_TYPES, body: w };
    return {
      fn, count: this.count, selfLoop: this.selfLoop, rips: Float64Array.from(this.rips), target,
      readsFlagsIn: this.readsFlagsIn, writesFlags: this.writesFlags,
    };
  }

  /**
   * GPRs the block may read or write (a superset: every register field of
   * every instruction, RAX..RBX always (the accumulator forms, AH..BH byte
   * registers, CL shift counts, MUL/DIV, CBW..CQO), RSP of stack
   * instructions, RBP of LEAVE). Only these are loaded at entry; every
   * register an instruction writes is among them.
   */
  private registersUsed(): number {
    const r = this.r;
    let mask = 0xf;
    for (let k = 0; k < this.count; k++) {
      const b = k * D_STRIDE;
      for (const field of REGISTER_FIELDS) {
        const n = r[b + field];
        if (n >= 0) mask |= 1 << (n & 15);
      }
      const op = r[b + D_OP];
      if (isStackOp(op)) mask |= 1 << 4;
      if (op === 0xc9) mask |= 1 << 5;
    }
    return mask;
  }

  /**
   * Static pass, backwards: which flag writers are observable (read by a
   * later instruction or stored at an exit before the next writer). A rotate
   * reads the flags before it only when its own result flags are observable.
   */
  private computeLiveness(): void {
    const r = this.r;
    let needed = true; // the block's last exit stores the record
    for (let k = this.count - 1; k >= 0; k--) {
      const b = k * D_STRIDE;
      const op = r[b + D_OP];
      const sub = r[b + D_REG] & 7;
      const writes = this.writesFlagsAt(k);
      if (writes) this.live[k] = needed;
      const rotate = isShift(op) && sub <= 1;
      const reads: boolean = rotate ? writes && needed : readsFlags(op, sub);
      needed = (!writes && needed) || reads || this.mayExitAt(k);
    }
  }

  /** Whether instruction k writes the lazy record (a shift by a constant zero count does not; by CL, zero exits first). */
  private writesFlagsAt(k: number): boolean {
    const b = k * D_STRIDE;
    const r = this.r;
    const op = r[b + D_OP];
    if (op < 0x40) return true;
    switch (op) {
      case 0x80: case 0x81: case 0x83: case 0x84: case 0x85: case 0xa8: case 0xa9:
      case 0x69: case 0x6b: case OP_MAP_0F | 0xaf: case 0xfe: case 0xff: case 0xd2: case 0xd3:
        return true;
      case 0xf6: case 0xf7: { // NOT leaves flags alone, DIV/IDIV too (in the interpreter)
        const sub = r[b + D_REG] & 7;
        return sub !== 2 && sub < 6;
      }
      case 0xc0: case 0xc1: case 0xd0: case 0xd1: return shiftCount(op, r[b + D_FLAGS], r[b + D_IMM]) !== 0;
      default: return false;
    }
  }

  /** Whether instruction k may exit before itself: a memory operand or stack access (TLB probe), a shift count in CL that is zero, DIV/IDIV. */
  private mayExitAt(k: number): boolean {
    const b = k * D_STRIDE;
    const r = this.r;
    const op = r[b + D_OP];
    if (op === 0xd2 || op === 0xd3) return true;
    if (op === 0xf7 && (r[b + D_REG] & 7) >= 6) return true; // DIV/IDIV: #DE and the wide cases go to the interpreter
    if (isStackOp(op)) return true; // stack accesses probe the TLB; RET also exits on a non-canonical target
    const f = r[b + D_FLAGS];
    return (f & F_MODRM) !== 0 && (f & F_MOD3) === 0 && op !== 0x8d && !isHintNop(op);
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
    if (wr.op === L_NONE) { // materialized arithmetic flags in the result word (jit.ts puts them into RFLAGS)
      w.get(L_BASE).get(T_FL).mem(Op.i32Store, 2, word(2));
      return;
    }
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

  /** Pops an i64 into register n (the caller zero-extended 32-bit values). */
  private setReg(n: number): void {
    this.w.set(reg(n));
    this.dirty |= 1 << n;
  }

  /** Truncates the i64 on the stack to `size` bytes (zero-extended). */
  private mask(size: number): void {
    if (size === 4) this.w.i64Const(-1, 0).op(Op.i64And);
    else if (size === 2) this.w.i64Const(0xffff, 0).op(Op.i64And);
    else if (size === 1) this.w.i64Const(0xff, 0).op(Op.i64And);
  }

  /** Pushes register n at `size` bytes, zero-extended (size 1 without REX: AH..BH for n = 4..7). */
  private readReg(n: number, size: number, f: number): void {
    if (isHighByte(n, size, f)) {
      this.w.get(reg(n - 4)).i64Const(8, 0).op(Op.i64ShrU).i64Const(0xff, 0).op(Op.i64And);
      return;
    }
    this.w.get(reg(n));
    this.mask(size);
  }

  /**
   * Writes the value `push` leaves (already truncated to `size`) to register
   * n as the interpreter's writeReg: 8 bytes as is, 4 zero-extended (the
   * value is), 2 and 1 merged into the low bits (AH..BH into bits 8-15).
   */
  private writeReg(n: number, size: number, f: number, push: () => void): void {
    const w = this.w;
    if (size >= 4) { push(); this.setReg(n); return; }
    const high = isHighByte(n, size, f);
    const target = high ? n - 4 : n;
    const keep = size === 2 ? ~0xffff : high ? ~0xff00 : ~0xff;
    w.get(reg(target)).i64Const(keep, -1).op(Op.i64And);
    push();
    if (high) w.i64Const(8, 0).op(Op.i64Shl);
    w.op(Op.i64Or);
    this.setReg(target);
  }

  /** Pushes `size` bytes at T_ADDR (a probed memory operand), zero-extended. */
  private load(size: number): void {
    this.w.get(T_ADDR).mem(size === 1 ? Op.i64Load8U : size === 2 ? Op.i64Load16U : size === 4 ? Op.i64Load32U : Op.i64Load, 0, 0);
  }

  /** Stores the low `size` bytes of the value `push` leaves at T_ADDR (a memory operand probed for write). */
  private store(size: number, push: () => void): void {
    this.w.get(T_ADDR);
    push();
    this.w.mem(size === 1 ? Op.i64Store8 : size === 2 ? Op.i64Store16 : size === 4 ? Op.i64Store32 : Op.i64Store, 0, 0);
  }

  /** Pushes the r/m operand of instruction k at `size`, zero-extended (memory: the caller probed it). */
  private rmLoad(k: number, size: number): void {
    const b = k * D_STRIDE;
    const f = this.r[b + D_FLAGS];
    if ((f & F_MOD3) !== 0) this.readReg(this.r[b + D_RM], size, f); else this.load(size);
  }

  /** Writes the value `push` leaves (truncated to `size`) to the r/m operand of instruction k (memory: probed for write). */
  private rmStore(k: number, size: number, push: () => void): void {
    const b = k * D_STRIDE;
    const f = this.r[b + D_FLAGS];
    if ((f & F_MOD3) !== 0) this.writeReg(this.r[b + D_RM], size, f, push); else this.store(size, push);
  }

  /** Probes a memory r/m operand of instruction k (exits before k on a miss); nothing for a register. */
  private probeRm(k: number, size: number, write: boolean): void {
    if ((this.r[k * D_STRIDE + D_FLAGS] & F_MOD3) === 0) this.probe(k, size, write);
  }

  /** Pushes an immediate sign-extended to 64 bits and truncated to `size`. */
  private imm(v: number, size: number): void {
    this.w.i64Const(v, v >> 31);
    this.mask(size);
  }

  /**
   * Pushes the 64-bit linear address of the memory operand of instruction k:
   * the offset plus the FS/GS base (Cpu.segBase, canonical, in the state
   * area) when it names one. The sum wraps like the interpreter's exact sum
   * wherever the result can be canonical; other results miss the TLB.
   */
  private linear(k: number): void {
    this.address(k);
    const seg = (this.r[k * D_STRIDE + D_FLAGS] >> F_SEG_SHIFT) & 7;
    if (seg !== SEG_FLAT) this.w.get(L_BASE).mem(Op.f64Load, 3, S_SEG_BASE + seg * 8).op(Op.i64TruncF64S).op(Op.i64Add);
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
  private probe(k: number, size: number, write: boolean, linear: () => void = () => this.linear(k)): void {
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
    if (wr.op === L_NONE) { // materialized flags (after a rotate)
      w.get(T_FL).i32Const(bit).op(Op.i32ShrU).i32Const(1).op(Op.i32And);
      return;
    }
    const size = wr.size;
    switch (bit) {
      case 4: // AF
        switch (wr.op) {
          case L_ADD: case L_ADC: case L_SUB: case L_SBB:
            w.get(T_A).get(T_B).op(Op.i64Xor).get(T_R).op(Op.i64Xor).op(Op.i32WrapI64).i32Const(4).op(Op.i32ShrU).i32Const(1).op(Op.i32And);
            return;
          case L_INC: w.get(T_R).op(Op.i32WrapI64).i32Const(0xf).op(Op.i32And).op(Op.i32Eqz); return;
          case L_DEC: w.get(T_R).op(Op.i32WrapI64).i32Const(0xf).op(Op.i32And).i32Const(0xf).op(Op.i32Eq); return;
          default: w.i32Const(0); return;
        }
      case 6: w.get(T_R).op(Op.i64Eqz); return;
      case 7:
        w.get(T_R);
        this.signOf(size);
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
            if (size === 8) w.get(T_R).i64Const(0, 0x80000000 | 0).op(Op.i64Eq); else w.get(T_R).i64Const(signBit(size), 0).op(Op.i64Eq);
            return;
          case L_DEC: // the result is the largest positive number
            if (size === 8) w.get(T_R).i64Const(-1, 0x7fffffff).op(Op.i64Eq); else w.get(T_R).i64Const(signBit(size) - 1, 0).op(Op.i64Eq);
            return;
          default: w.get(T_OF); return;
        }
        this.signOf(size);
    }
  }

  /** Replaces the i64 on the stack by its sign bit at `size` (i32 0/1). */
  private signOf(size: number): void {
    const w = this.w;
    if (size === 8) w.i64Const(0, 0).op(Op.i64LtS);
    else if (size === 4) w.op(Op.i32WrapI64).i32Const(0).op(Op.i32LtS);
    else w.op(Op.i32WrapI64).i32Const(size * 8 - 1).op(Op.i32ShrU).i32Const(1).op(Op.i32And);
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

  /**
   * ALU kind (ADD OR ADC SBB AND SUB XOR CMP) on operands pushed by operandA
   * and operandB (zero-extended at size) into T_A/T_B; result in T_R. `store`
   * (null for CMP/TEST) writes T_R to the destination. Memory operands must
   * be probed before: nothing here can exit.
   */
  private alu(k: number, kind: number, size: number, operandA: () => void, operandB: () => void, store: (() => void) | null): void {
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
    if (kind !== 7 && store !== null) store();
  }

  private instruction(k: number): void {
    const w = this.w;
    const r = this.r;
    const b = k * D_STRIDE;
    const op = r[b + D_OP];
    const f = r[b + D_FLAGS];
    const size = opSize(f);
    const n = r[b + D_REG];
    const imm = r[b + D_IMM];
    const mod3 = (f & F_MOD3) !== 0;
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
    if (op < 0x40) { this.aluForm(k, op); return; }
    if (op >= (OP_MAP_0F | 0x90) && op <= (OP_MAP_0F | 0x9f)) { // SETcc r/m8
      this.probeRm(k, 1, true);
      this.rmStore(k, 1, () => { this.cond(op & 15); w.op(Op.i64ExtendI32U); });
      return;
    }
    if (op >= (OP_MAP_0F | 0x40) && op <= (OP_MAP_0F | 0x4f)) { // CMOVcc r, r/m: the source is read whatever the condition
      const sz = wordSize(f);
      this.probeRm(k, sz, false);
      this.writeReg(n, sz, f, () => { this.rmLoad(k, sz); this.readReg(n, sz, f); this.cond(op & 15); w.op(Op.select); });
      return;
    }
    if (isHintNop(op)) return;
    switch (op) {
      case 0x84: case 0x85: { // TEST r/m, r
        const sz = op === 0x84 ? 1 : wordSize(f);
        this.probeRm(k, sz, false);
        this.alu(k, 4, sz, () => this.rmLoad(k, sz), () => this.readReg(n, sz, f), null);
        return;
      }
      case 0xa8: case 0xa9: { // TEST acc, imm
        const sz = op === 0xa8 ? 1 : wordSize(f);
        this.alu(k, 4, sz, () => this.readReg(0, sz, f), () => this.imm(imm, sz), null);
        return;
      }
      case 0x80: case 0x81: case 0x83: { // group 1: r/m op= imm
        const sz = op === 0x80 ? 1 : wordSize(f);
        const kind = n & 7;
        this.probeRm(k, sz, kind !== 7);
        this.alu(k, kind, sz, () => this.rmLoad(k, sz), () => this.imm(imm, sz), () => this.rmStore(k, sz, () => w.get(T_R)));
        return;
      }
      case 0x88: case 0x89: { // MOV r/m, r
        const sz = op === 0x88 ? 1 : wordSize(f);
        this.probeRm(k, sz, true);
        this.rmStore(k, sz, () => this.readReg(n, sz, f));
        return;
      }
      case 0x8a: case 0x8b: { // MOV r, r/m
        const sz = op === 0x8a ? 1 : wordSize(f);
        this.probeRm(k, sz, false);
        this.writeReg(n, sz, f, () => this.rmLoad(k, sz));
        return;
      }
      case 0xc6: case 0xc7: { // MOV r/m, imm
        const sz = op === 0xc6 ? 1 : wordSize(f);
        this.probeRm(k, sz, true);
        this.rmStore(k, sz, () => this.imm(imm, sz));
        return;
      }
      case 0xb0: case 0xb1: case 0xb2: case 0xb3: case 0xb4: case 0xb5: case 0xb6: case 0xb7:
        this.writeReg(n, 1, f, () => this.imm(imm, 1));
        return;
      case 0xb8: case 0xb9: case 0xba: case 0xbb: case 0xbc: case 0xbd: case 0xbe: case 0xbf: {
        const sz = wordSize(f);
        this.writeReg(n, sz, f, () => { if (sz === 8) w.i64Const(imm, r[b + D_IMM2]); else this.imm(imm, sz); });
        return;
      }
      case 0x90: return; // NOP
      case 0x98: { // CBW/CWDE/CDQE: rAX = the sign extension of its lower half
        const sz = wordSize(f);
        const half = sz * 4;
        this.writeReg(0, sz, f, () => { w.get(reg(0)).i64Const(64 - half, 0).op(Op.i64Shl).i64Const(64 - half, 0).op(Op.i64ShrS); this.mask(sz); });
        return;
      }
      case 0x99: { // CWD/CDQ/CQO: rDX = the sign of rAX, repeated
        const sz = wordSize(f);
        this.writeReg(2, sz, f, () => { w.get(reg(0)).i64Const(64 - sz * 8, 0).op(Op.i64Shl).i64Const(63, 0).op(Op.i64ShrS); this.mask(sz); });
        return;
      }
      case 0x8d: // LEA (64-bit address size)
        this.address(k); this.mask(size);
        this.setReg(n);
        return;
      case 0x63: { // MOVSXD (without REX.W: a plain 32-bit or 16-bit move)
        const sz = wordSize(f);
        this.probeRm(k, 4, false);
        this.writeReg(n, sz, f, () => {
          this.rmLoad(k, 4);
          if (sz === 8) w.op(Op.i32WrapI64).op(Op.i64ExtendI32S); else this.mask(sz);
        });
        return;
      }
      case OP_MAP_0F | 0xb6: case OP_MAP_0F | 0xb7: case OP_MAP_0F | 0xbe: case OP_MAP_0F | 0xbf: { // MOVZX/MOVSX
        const sz = wordSize(f);
        const from = (op & 1) === 0 ? 1 : 2;
        this.probeRm(k, from, false);
        this.writeReg(n, sz, f, () => {
          this.rmLoad(k, from);
          if ((op & 8) !== 0) {
            w.i64Const(64 - from * 8, 0).op(Op.i64Shl).i64Const(64 - from * 8, 0).op(Op.i64ShrS);
            this.mask(sz);
          }
        });
        return;
      }
      case 0xfe: case 0xff: { // INC/DEC r/m: CF kept (as the record's carry-in)
        const sz = op === 0xfe ? 1 : wordSize(f);
        const dec = (n & 7) === 1;
        this.probeRm(k, sz, true);
        this.flag(0); w.set(T_C);
        this.rmLoad(k, sz); w.set(T_A);
        w.i64Const(1, 0).set(T_B);
        w.get(T_A).get(T_B).op(dec ? Op.i64Sub : Op.i64Add); this.mask(sz); w.set(T_R);
        w.get(T_C).set(T_CF);
        this.wrote(k, dec ? L_DEC : L_INC, sz);
        this.rmStore(k, sz, () => w.get(T_R));
        return;
      }
      case 0xf6: case 0xf7: { // group 3: TEST r/m, imm / NOT / NEG
        const sz = op === 0xf6 ? 1 : wordSize(f);
        const sub = n & 7;
        if (sub >= 4) { if (sub < 6) this.mulAcc(k, sz, sub === 5); else this.divAcc(k, sz, sub === 7); return; }
        this.probeRm(k, sz, sub >= 2);
        if (sub <= 1) this.alu(k, 4, sz, () => this.rmLoad(k, sz), () => this.imm(imm, sz), null);
        else if (sub === 2) this.rmStore(k, sz, () => { this.rmLoad(k, sz); w.i64Const(-1, -1).op(Op.i64Xor); this.mask(sz); });
        else this.alu(k, 5, sz, () => w.i64Const(0, 0), () => this.rmLoad(k, sz), () => this.rmStore(k, sz, () => w.get(T_R)));
        return;
      }
      case 0xc0: case 0xc1: case 0xd0: case 0xd1: case 0xd2: case 0xd3:
        this.shift(k, op, n & 7);
        return;
      case OP_MAP_0F | 0xaf:
        this.imul(k, size, n, null);
        return;
      case 0x69: case 0x6b:
        this.imul(k, size, n, imm);
        return;
      default:
        throw new Error(`translate: unexpected opcode ${op.toString(16)} (mod3 ${mod3})`);
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

  /** The ALU forms 00-3D: E op= G, G op= E, accumulator op= imm, at byte or word size. */
  private aluForm(k: number, op: number): void {
    const w = this.w;
    const b = k * D_STRIDE;
    const f = this.r[b + D_FLAGS];
    const n = this.r[b + D_REG];
    const kind = op >> 3;
    const form = op & 7;
    const size = (form & 1) === 0 ? 1 : wordSize(f);
    const toT_R = (): void => { w.get(T_R); };
    if (form >= 4) {
      this.alu(k, kind, size, () => this.readReg(0, size, f), () => this.imm(this.r[b + D_IMM], size), () => this.writeReg(0, size, f, toT_R));
    } else if (form <= 1) { // E op= G: a read-modify-write of a memory operand probes for write (unless CMP)
      this.probeRm(k, size, kind !== 7);
      this.alu(k, kind, size, () => this.rmLoad(k, size), () => this.readReg(n, size, f), () => this.rmStore(k, size, toT_R));
    } else { // G op= E
      this.probeRm(k, size, false);
      this.alu(k, kind, size, () => this.readReg(n, size, f), () => this.rmLoad(k, size), () => this.writeReg(n, size, f, toT_R));
    }
  }

  /**
   * SHL/SAL, SHR, SAR of an r/m operand by a constant or CL (C0-D3 /4-/7),
   * as the interpreter's shiftGroup: a zero count changes neither value nor
   * flags (a 32-bit register is still zero-extended, a memory operand still
   * checked); with CL a zero count exits before the instruction instead.
   */
  private shift(k: number, op: number, sub: number): void {
    const w = this.w;
    const b = k * D_STRIDE;
    const f = this.r[b + D_FLAGS];
    const size = (op & 1) === 0 ? 1 : wordSize(f);
    const bits = size * 8;
    const count = shiftCount(op, f, this.r[b + D_IMM]);
    this.probeRm(k, size, true);
    if (count === 0) {
      if (size === 4 && (f & F_MOD3) !== 0) this.rmStore(k, 4, () => this.rmLoad(k, 4));
      return;
    }
    if (count < 0) {
      w.get(reg(1)).i64Const(size === 8 ? 63 : 31, 0).op(Op.i64And).tee(T_N).op(Op.i64Eqz).if();
      this.exitAt(() => this.ripAt(k), k, true);
      w.end();
    }
    const cnt = (minus: number): void => { if (count < 0) { w.get(T_N); if (minus !== 0) w.i64Const(-minus, -1).op(Op.i64Add); } else w.i64Const(count - minus, 0); };
    const fromTop = (): void => { if (count < 0) w.i64Const(bits, 0).get(T_N).op(Op.i64Sub); else w.i64Const(bits - count, 0); };
    const bit0 = (): void => { w.op(Op.i32WrapI64).i32Const(1).op(Op.i32And); };
    const live = this.live[k] === true;
    if (sub <= 1) { this.rotate(k, sub, size, count, live); return; }
    this.rmLoad(k, size); w.set(T_X);
    if (sub === 7 && size < 8) { // SAR: sign-extend the operand to 64 bits
      w.get(T_X).i64Const(64 - bits, 0).op(Op.i64Shl).i64Const(64 - bits, 0).op(Op.i64ShrS).set(T_X);
    }
    if (sub === 5 || sub === 7) {
      const right = sub === 5 ? Op.i64ShrU : Op.i64ShrS;
      w.get(T_X); cnt(0); w.op(right); this.mask(size); w.set(T_R);
      if (live) {
        w.get(T_X); cnt(1); w.op(right); bit0(); w.set(T_CF);
        if (sub === 5) { w.get(T_X); this.signOf(size); } else w.i32Const(0);
        w.set(T_OF);
      }
    } else {
      w.get(T_X); cnt(0); w.op(Op.i64Shl); this.mask(size); w.set(T_R);
      if (live) {
        // CF: the last bit shifted out (for byte/word sizes the count may exceed the width: then 0).
        if (size === 8) { w.get(T_X); fromTop(); w.op(Op.i64ShrU); } else { w.get(T_X); cnt(0); w.op(Op.i64Shl).i64Const(bits, 0).op(Op.i64ShrU); }
        bit0(); w.set(T_CF);
        w.get(T_R); this.signOf(size); w.get(T_CF).op(Op.i32Xor).set(T_OF);
      }
    }
    this.wrote(k, L_RESULT_CFOF, size);
    this.rmStore(k, size, () => w.get(T_R));
  }

  /**
   * ROL/ROR (count nonzero; in T_N when `count` < 0), as the interpreter:
   * CF and OF from the result, the other flags kept, so the record becomes
   * materialized flags (L_NONE, T_FL) built from the flags before it.
   */
  private rotate(k: number, sub: number, size: number, count: number, live: boolean): void {
    const w = this.w;
    const bits = size * 8;
    if (live) { // PF AF ZF SF from the flags before the rotate (read before T_R is overwritten)
      this.flag(2); w.i32Const(2).op(Op.i32Shl);
      this.flag(4); w.i32Const(4).op(Op.i32Shl).op(Op.i32Or);
      this.flag(6); w.i32Const(6).op(Op.i32Shl).op(Op.i32Or);
      this.flag(7); w.i32Const(7).op(Op.i32Shl).op(Op.i32Or);
      w.set(T_C);
    }
    const left = sub === 0;
    const cnt = (): void => { if (count < 0) w.get(T_N); else w.i64Const(count, 0); };
    this.rmLoad(k, size); w.set(T_X);
    if (size === 8) {
      w.get(T_X); cnt(); w.op(left ? Op.i64Rotl : Op.i64Rotr);
    } else if (size === 4) {
      w.get(T_X).op(Op.i32WrapI64); cnt(); w.op(Op.i32WrapI64).op(left ? Op.i32Rotl : Op.i32Rotr).op(Op.i64ExtendI32U);
    } else { // the count modulo the width; a zero rotation shifts the other half out entirely
      const k8 = (): void => { if (count < 0) w.get(T_N).i64Const(bits - 1, 0).op(Op.i64And); else w.i64Const(count & (bits - 1), 0); };
      const rest = (): void => { w.i64Const(bits, 0); k8(); w.op(Op.i64Sub); };
      w.get(T_X); k8(); w.op(left ? Op.i64Shl : Op.i64ShrU);
      w.get(T_X); rest(); w.op(left ? Op.i64ShrU : Op.i64Shl);
      w.op(Op.i64Or);
      this.mask(size);
    }
    w.set(T_R);
    if (live) {
      if (left) { // CF = bit 0, OF = MSB ^ CF
        w.get(T_R).op(Op.i32WrapI64).i32Const(1).op(Op.i32And).set(T_CF);
        w.get(T_R); this.signOf(size); w.get(T_CF).op(Op.i32Xor).set(T_OF);
      } else { // CF = MSB, OF = MSB ^ the bit below it
        w.get(T_R); this.signOf(size); w.set(T_CF);
        w.get(T_R).i64Const(bits - 2, 0).op(Op.i64ShrU).op(Op.i32WrapI64).i32Const(1).op(Op.i32And).get(T_CF).op(Op.i32Xor).set(T_OF);
      }
      w.get(T_C).get(T_CF).op(Op.i32Or).get(T_OF).i32Const(11).op(Op.i32Shl).op(Op.i32Or).set(T_FL);
    }
    this.wrote(k, L_NONE, size);
    this.rmStore(k, size, () => w.get(T_R));
  }

  /**
   * MUL/IMUL r/m (F7 /4 /5, 32 or 64 bits): rDX:rAX = rAX * r/m; CF = OF =
   * the high half is significant; the record is the low half (as the
   * interpreter's setResultFlags). The 64-bit high half comes from 32-bit
   * partial products (signed: corrected by the operands' signs).
   */
  private mulAcc(k: number, size: number, signed: boolean): void {
    const w = this.w;
    const live = this.live[k] === true;
    this.probeRm(k, size, false);
    if (size === 4) {
      const ext = signed ? Op.i64ExtendI32S : Op.i64ExtendI32U;
      w.get(reg(0)).op(Op.i32WrapI64).op(ext);
      this.rmLoad(k, 4); w.op(Op.i32WrapI64).op(ext);
      w.op(Op.i64Mul).set(T_X); // the exact product
      w.get(T_X).i64Const(-1, 0).op(Op.i64And).set(T_R);
      if (live) {
        if (signed) w.get(T_X).get(T_X).op(Op.i32WrapI64).op(Op.i64ExtendI32S).op(Op.i64Ne);
        else w.get(T_X).i64Const(32, 0).op(Op.i64ShrU).op(Op.i64Eqz).i32Const(1).op(Op.i32Xor);
        w.tee(T_CF).set(T_OF);
      }
      w.get(T_R); this.setReg(0);
      w.get(T_X).i64Const(32, 0).op(Op.i64ShrU); this.setReg(2);
    } else {
      const lo32 = (local: number): void => { w.get(local).i64Const(-1, 0).op(Op.i64And); };
      const hi32 = (local: number): void => { w.get(local).i64Const(32, 0).op(Op.i64ShrU); };
      w.get(reg(0)).set(T_A);
      this.rmLoad(k, 8); w.set(T_B);
      lo32(T_A); hi32(T_B); w.op(Op.i64Mul).set(T_X); // aL * bH
      hi32(T_A); lo32(T_B); w.op(Op.i64Mul).set(T_P); // aH * bL
      lo32(T_A); lo32(T_B); w.op(Op.i64Mul).i64Const(32, 0).op(Op.i64ShrU); // carry out of aL * bL
      lo32(T_X); w.op(Op.i64Add); lo32(T_P); w.op(Op.i64Add).set(T_Q);
      hi32(T_A); hi32(T_B); w.op(Op.i64Mul);
      hi32(T_X); w.op(Op.i64Add); hi32(T_P); w.op(Op.i64Add); hi32(T_Q); w.op(Op.i64Add).set(T_Q); // unsigned high half
      if (signed) { // minus b when a < 0, minus a when b < 0
        w.get(T_Q).get(T_B).i64Const(0, 0).get(T_A).i64Const(0, 0).op(Op.i64LtS).op(Op.select).op(Op.i64Sub)
          .get(T_A).i64Const(0, 0).get(T_B).i64Const(0, 0).op(Op.i64LtS).op(Op.select).op(Op.i64Sub).set(T_Q);
      }
      w.get(T_A).get(T_B).op(Op.i64Mul).set(T_R);
      if (live) {
        if (signed) w.get(T_Q).get(T_R).i64Const(63, 0).op(Op.i64ShrS).op(Op.i64Ne);
        else w.get(T_Q).op(Op.i64Eqz).i32Const(1).op(Op.i32Xor);
        w.tee(T_CF).set(T_OF);
      }
      w.get(T_R); this.setReg(0);
      w.get(T_Q); this.setReg(2);
    }
    this.wrote(k, L_RESULT_CFOF, size);
  }

  /**
   * DIV/IDIV r/m (F7 /6 /7, 32 or 64 bits). Flags are untouched (as in the
   * interpreter). A zero divisor, a quotient that does not fit, and at 64
   * bits a dividend wider than rAX (rDX not the zero or sign extension of
   * rAX) exit before the instruction: the interpreter raises #DE or divides.
   */
  private divAcc(k: number, size: number, signed: boolean): void {
    const w = this.w;
    this.probeRm(k, size, false);
    const bail = (): void => { w.if(); this.exitAt(() => this.ripAt(k), k, true); w.end(); };
    if (size === 4) {
      // T_A = the 64-bit dividend EDX:EAX, T_B = the divisor (sign- or zero-extended).
      w.get(reg(2)).i64Const(32, 0).op(Op.i64Shl).get(reg(0)).i64Const(-1, 0).op(Op.i64And).op(Op.i64Or).set(T_P);
      this.rmLoad(k, 4); if (signed) w.op(Op.i32WrapI64).op(Op.i64ExtendI32S); w.set(T_Q);
      w.get(T_Q).op(Op.i64Eqz); bail();
      if (signed) {
        w.get(T_P).i64Const(0, 0x80000000 | 0).op(Op.i64Eq).get(T_Q).i64Const(-1, -1).op(Op.i64Eq).op(Op.i32And); bail();
        w.get(T_P).get(T_Q).op(Op.i64DivS).set(T_X);
        w.get(T_X).get(T_X).op(Op.i32WrapI64).op(Op.i64ExtendI32S).op(Op.i64Ne); bail();
        w.get(T_P).get(T_Q).op(Op.i64RemS).i64Const(-1, 0).op(Op.i64And); this.setReg(2);
      } else {
        w.get(T_P).get(T_Q).op(Op.i64DivU).set(T_X);
        w.get(T_X).i64Const(32, 0).op(Op.i64ShrU).op(Op.i64Eqz).i32Const(1).op(Op.i32Xor); bail();
        w.get(T_P).get(T_Q).op(Op.i64RemU); this.setReg(2);
      }
      w.get(T_X).i64Const(-1, 0).op(Op.i64And); this.setReg(0);
      return;
    }
    this.rmLoad(k, 8); w.set(T_Q);
    w.get(T_Q).op(Op.i64Eqz); bail();
    if (signed) {
      w.get(reg(2)).get(reg(0)).i64Const(63, 0).op(Op.i64ShrS).op(Op.i64Ne); bail();
      w.get(reg(0)).i64Const(0, 0x80000000 | 0).op(Op.i64Eq).get(T_Q).i64Const(-1, -1).op(Op.i64Eq).op(Op.i32And); bail();
      w.get(reg(0)).get(T_Q).op(Op.i64DivS).set(T_X);
      w.get(reg(0)).get(T_Q).op(Op.i64RemS); this.setReg(2);
    } else {
      w.get(reg(2)).op(Op.i64Eqz).i32Const(1).op(Op.i32Xor); bail();
      w.get(reg(0)).get(T_Q).op(Op.i64DivU).set(T_X);
      w.get(reg(0)).get(T_Q).op(Op.i64RemU); this.setReg(2);
    }
    w.get(T_X); this.setReg(0);
  }

  /** IMUL r, r/m (imm === null) or IMUL r, r/m, imm: the truncated product, CF = OF = signed overflow. */
  private imul(k: number, size: number, n: number, imm: number | null): void {
    const w = this.w;
    const live = this.live[k] === true;
    this.probeRm(k, size, false);
    if (size === 8) {
      this.rmLoad(k, 8); w.set(T_A);
      if (imm === null) w.get(reg(n)).set(T_B); else w.i64Const(imm, imm >> 31).set(T_B);
      w.get(T_A).get(T_B).op(Op.i64Mul).set(T_R);
      if (live) {
        // Overflow iff the product does not divide back (a = 0: never; a = -1: only b = MIN).
        w.get(T_A).op(Op.i64Eqz).if(I32).i32Const(0).else()
          .get(T_A).i64Const(-1, -1).op(Op.i64Eq).if(I32).get(T_B).i64Const(0, 0x80000000 | 0).op(Op.i64Eq).else()
          .get(T_R).get(T_A).op(Op.i64DivS).get(T_B).op(Op.i64Ne).end().end().tee(T_CF).set(T_OF);
      }
    } else {
      this.rmLoad(k, 4); w.op(Op.i32WrapI64).op(Op.i64ExtendI32S);
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
