/**
 * Random-instruction fuzzing for the conformance harness: a seeded generator
 * of integer-ISA instruction sequences (GNU as Intel syntax) with random
 * register, flag and memory inputs. Each case is 1-4 instructions; the
 * generator tracks which arithmetic flags the SDM leaves undefined so far,
 * never lets a later instruction read one, and masks the rest out of the
 * comparison. Memory operands point into the case's data window (absolute,
 * R15-relative or RIP-relative). Privileged, I/O, x87/SSE, POPCNT/LZCNT/TZCNT
 * and anything whose result is undefined are excluded.
 */

import { ARITH, Block, blockAddress, F, Layout, type ConformanceCase } from './harness.js';

/** A small seeded PRNG (xorshift128+ on BigInt would be slow; mulberry32 is enough). */
export class Rng {
  private s: number;
  constructor(seed: number) { this.s = seed >>> 0; }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0);
  }
  int(n: number): number { return this.next() % n; }
  pick<T>(a: readonly T[]): T { return a[this.int(a.length)]; }
  chance(p: number): boolean { return this.next() / 2 ** 32 < p; }
  u64(): bigint { return (BigInt(this.next()) << 32n) | BigInt(this.next()); }
  /** A 64-bit value biased toward edge cases. */
  value(): bigint {
    switch (this.int(8)) {
      case 0: return this.pick([0n, 1n, 2n, 0xffffffffffffffffn, 0x8000000000000000n, 0x7fffffffffffffffn, 0x80000000n, 0x7fffffffn, 0xffffffffn, 0x8000n, 0x7fffn, 0x80n, 0x7fn, 0xffn]);
      case 1: return BigInt(this.int(70));
      case 2: return BigInt.asUintN(64, -BigInt(this.int(70)));
      case 3: return BigInt(this.next());
      case 4: return (this.u64() & 0xffffffff00000000n) | BigInt(this.pick([0, 1, 0x80, 0xff, 0x8000, 0xffff, 0x80000000, 0xffffffff]));
      default: return this.u64();
    }
  }
}

type Size = 8 | 16 | 32 | 64;
const R64 = ['rax', 'rcx', 'rdx', 'rbx', 'rbp', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14'];
const R32 = ['eax', 'ecx', 'edx', 'ebx', 'ebp', 'esi', 'edi', 'r8d', 'r9d', 'r10d', 'r11d', 'r12d', 'r13d', 'r14d'];
const R16 = ['ax', 'cx', 'dx', 'bx', 'bp', 'si', 'di', 'r8w', 'r9w', 'r10w', 'r11w', 'r12w', 'r13w', 'r14w'];
const R8REX = ['al', 'cl', 'dl', 'bl', 'bpl', 'sil', 'dil', 'r8b', 'r9b', 'r10b', 'r11b', 'r12b', 'r13b', 'r14b'];
const R8LEGACY = ['al', 'cl', 'dl', 'bl', 'ah', 'ch', 'dh', 'bh'];
const PTR: Record<Size, string> = { 8: 'byte', 16: 'word', 32: 'dword', 64: 'qword' };
const CONDS = ['o', 'no', 'b', 'ae', 'e', 'ne', 'be', 'a', 's', 'ns', 'p', 'np', 'l', 'ge', 'le', 'g'];
/** Flags each condition reads. */
const COND_READS: Record<string, number> = {
  o: F.OF, no: F.OF, b: F.CF, ae: F.CF, e: F.ZF, ne: F.ZF, be: F.CF | F.ZF, a: F.CF | F.ZF,
  s: F.SF, ns: F.SF, p: F.PF, np: F.PF, l: F.SF | F.OF, ge: F.SF | F.OF, le: F.ZF | F.SF | F.OF, g: F.ZF | F.SF | F.OF,
};

/** One generated instruction: its text, the flags it reads, defines and leaves undefined. */
interface Insn {
  text: string;
  reads: number;
  defines: number;
  undefines: number;
  /** Must be the only instruction of its case (it constrains inputs). */
  alone?: (regs: Record<string, bigint>, rng: Rng) => void;
  /** Must be the last instruction of its case (it may fault, so later flags masks would not apply). */
  last?: boolean;
  /** Bits of a destination register that are not compared (see BSF/BSR). */
  looseReg?: [string, bigint];
}

class Gen {
  constructor(private readonly rng: Rng, private readonly block: number) {}

  size(): Size { return this.rng.pick([8, 16, 32, 64] as const); }

  /** A register of `size`; 8-bit ones come from the legacy set (AH..BH) when `legacy8`. */
  reg(size: Size, legacy8 = false): string {
    const r = this.rng;
    if (size === 8) return legacy8 ? r.pick(R8LEGACY) : r.pick(R8REX);
    return r.pick(size === 16 ? R16 : size === 32 ? R32 : R64);
  }

  /** A memory operand of `size` inside the data window. */
  mem(size: Size, align = 1): string {
    const off = Block.data + (this.rng.int(0x1f0 / align) * align);
    const p = `${PTR[size]} ptr`;
    switch (this.rng.int(3)) {
      case 0: return `${p} [0x${(this.block + off).toString(16)}]`;
      case 1: return `${p} [r15+0x${off.toString(16)}]`;
      default: return `${p} [rip+blk${this.block.toString(16)}+0x${off.toString(16)}]`;
    }
  }

  imm(size: Size): string {
    const v = this.rng.value();
    const bits = size === 64 ? 32 : size;
    const x = BigInt.asIntN(bits, v);
    return x.toString();
  }

  /** Two operands of the same size: reg/reg, reg/mem, mem/reg, reg/imm, mem/imm. */
  operands(size: Size, allowImm = true): [string, string] {
    const legacy = size === 8 && this.rng.chance(0.3);
    const form = this.rng.int(allowImm ? 5 : 3);
    // High-byte registers cannot be combined with REX; the absolute and RIP forms need none, R15 does.
    const m = (): string => (legacy ? this.memNoRex(size) : this.mem(size));
    switch (form) {
      case 0: return [this.reg(size, legacy), this.reg(size, legacy)];
      case 1: return [this.reg(size, legacy), m()];
      case 2: return [m(), this.reg(size, legacy)];
      case 3: return [this.reg(size, legacy), this.imm(size)];
      default: return [m(), this.imm(size)];
    }
  }

  memNoRex(size: Size): string {
    const off = Block.data + this.rng.int(0x1f0);
    return `${PTR[size]} ptr [0x${(this.block + off).toString(16)}]`;
  }

  /** A register or memory operand; `legacy8` allows AH..BH (only where no other operand needs REX). */
  rm(size: Size, legacy8 = true): string {
    return this.rng.chance(0.6) ? this.reg(size, legacy8 && size === 8 && this.rng.chance(0.3)) : this.mem(size);
  }

  insn(): Insn {
    const r = this.rng;
    const s = this.size();
    const all = ARITH;
    switch (r.int(24)) {
      case 0: case 1: case 2: { // ALU
        const op = r.pick(['add', 'or', 'adc', 'sbb', 'and', 'sub', 'xor', 'cmp']);
        const [a, b] = this.operands(s);
        const logic = op === 'and' || op === 'or' || op === 'xor';
        return { text: `${op} ${a}, ${b}`, reads: op === 'adc' || op === 'sbb' ? F.CF : 0, defines: logic ? all & ~F.AF : all, undefines: logic ? F.AF : 0 };
      }
      case 3: { // TEST
        const [a, b] = this.operands(s);
        const [x, y] = a.includes('ptr') ? [a, b] : b.includes('ptr') ? [b, a] : [a, b];
        return { text: `test ${x}, ${y}`, reads: 0, defines: all & ~F.AF, undefines: F.AF };
      }
      case 4: { // INC/DEC/NEG/NOT
        const op = r.pick(['inc', 'dec', 'neg', 'not']);
        const d = this.rm(s);
        return { text: `${op} ${d}`, reads: 0, defines: op === 'not' ? 0 : op === 'neg' ? all : all & ~F.CF, undefines: 0 };
      }
      case 5: case 6: { // shifts and rotates
        const op = r.pick(['shl', 'shr', 'sar', 'rol', 'ror', 'rcl', 'rcr', 'sal']);
        const d = this.rm(s);
        const rotate = op.startsWith('r');
        const reads = op === 'rcl' || op === 'rcr' ? F.CF : 0;
        const form = r.int(3);
        // SHL/SHR: CF is undefined when the count is >= the operand size (possible for 8/16 bits).
        const cfUndef = (op === 'shl' || op === 'sal' || op === 'shr') ? F.CF : 0;
        if (form === 2) return { text: `${op} ${d}, cl`, reads, defines: 0, undefines: rotate ? F.OF : F.OF | F.AF | (s < 32 ? cfUndef : 0) };
        const count = form === 0 ? 1 : r.pick([0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, r.int(256)]);
        const masked = count & (s === 64 ? 63 : 31);
        const text = form === 0 ? `${op} ${d}, 1` : `${op} ${d}, ${count}`;
        if (masked === 0) return { text, reads: 0, defines: 0, undefines: 0 };
        if (rotate) return { text, reads, defines: masked === 1 ? F.CF | F.OF : F.CF, undefines: masked === 1 ? 0 : F.OF };
        const cf = masked >= s ? cfUndef : 0;
        return { text, reads, defines: (masked === 1 ? all & ~F.AF : all & ~(F.AF | F.OF)) & ~cf, undefines: (masked === 1 ? F.AF : F.AF | F.OF) | cf };
      }
      case 7: { // SHLD/SHRD
        const ss = r.pick([16, 32, 64] as const);
        const op = r.pick(['shld', 'shrd']);
        const d = this.rm(ss);
        const src = this.reg(ss);
        if (r.chance(0.5)) {
          const count = r.int(ss === 64 ? 64 : 32);
          if (ss === 16 && count > 16) return this.insn(); // result undefined
          const text = `${op} ${d}, ${src}, ${count}`;
          if (count === 0) return { text, reads: 0, defines: 0, undefines: 0 };
          return { text, reads: 0, defines: count === 1 ? all & ~F.AF : all & ~(F.AF | F.OF), undefines: count === 1 ? F.AF : F.AF | F.OF };
        }
        return {
          text: `${op} ${d}, ${src}, cl`, reads: 0, defines: 0, undefines: F.AF | F.OF,
          alone: ss === 16 ? (regs, g) => { regs.rcx = (regs.rcx & ~0xffn) | BigInt(g.int(17)); } : undefined,
        };
      }
      case 8: { // MUL/IMUL one operand
        const op = r.pick(['mul', 'imul']);
        return { text: `${op} ${this.rm(s)}`, reads: 0, defines: F.CF | F.OF, undefines: F.SF | F.ZF | F.AF | F.PF };
      }
      case 9: { // IMUL two/three operand
        const ss = r.pick([16, 32, 64] as const);
        const d = this.reg(ss);
        const text = r.chance(0.5) ? `imul ${d}, ${this.rm(ss)}` : `imul ${d}, ${this.rm(ss)}, ${this.imm(ss === 64 ? 32 : ss)}`;
        return { text, reads: 0, defines: F.CF | F.OF, undefines: F.SF | F.ZF | F.AF | F.PF };
      }
      case 10: { // DIV/IDIV (faults with #DE land in the stub and are compared too)
        const op = r.pick(['div', 'idiv']);
        return { text: `${op} ${this.rm(s)}`, reads: 0, defines: 0, undefines: all, last: true };
      }
      case 11: { // BT*
        const op = r.pick(['bt', 'bts', 'btr', 'btc']);
        const ss = r.pick([16, 32, 64] as const);
        const d = this.rm(ss);
        const defs = { reads: 0, defines: F.CF, undefines: F.OF | F.SF | F.AF | F.PF };
        if (r.chance(0.5) || d.includes('ptr')) {
          if (d.includes('ptr') && r.chance(0.5)) {
            // Register bit offset into memory: keep the bit string inside the window.
            const src = this.reg(ss);
            return { text: `${op} ${d}, ${src}`, ...defs, alone: (regs, g) => { regs[toR64(src)] = BigInt.asUintN(64, BigInt(g.int(512) - 128)); } };
          }
          return { text: `${op} ${d}, ${r.int(256)}`, ...defs };
        }
        return { text: `${op} ${d}, ${this.reg(ss)}`, ...defs };
      }
      case 12: { // BSF/BSR
        const ss = r.pick([16, 32, 64] as const);
        const d = this.reg(ss);
        const text = `${r.pick(['bsf', 'bsr'])} ${d}, ${this.rm(ss)}`;
        // kvm_pvm quirk: with a zero source and a 32-bit destination, the upper half
        // of the destination is cleared when the host runs the instruction natively
        // but kept when KVM's instruction emulator runs it (em_bsf_c skips the
        // write-back), so which one a case sees varies. The SDM leaves the
        // destination undefined; the soft engine clears it like the hardware.
        // Those 32 bits are not compared, and the instruction ends its case so
        // no later instruction consumes them.
        if (ss === 32) return { text, reads: 0, defines: F.ZF, undefines: all & ~F.ZF, last: true, looseReg: [toR64(d), 0xffffffff00000000n] };
        return { text, reads: 0, defines: F.ZF, undefines: all & ~F.ZF };
      }
      case 13: { // BSWAP, XCHG, MOVSX/MOVZX/MOVSXD, CBW..CQO
        switch (r.int(5)) {
          case 0: return { text: `bswap ${this.reg(r.pick([32, 64] as const))}`, reads: 0, defines: 0, undefines: 0 };
          case 1: { const [a, b] = this.operands(s, false); return { text: `xchg ${a}, ${b}`, reads: 0, defines: 0, undefines: 0 }; }
          case 2: {
            const from = r.pick([8, 16] as const);
            const to = r.pick(from === 8 ? [16, 32, 64] as const : [32, 64] as const);
            return { text: `${r.pick(['movsx', 'movzx'])} ${this.reg(to)}, ${this.rm(from, false)}`, reads: 0, defines: 0, undefines: 0 };
          }
          case 3: return { text: `movsxd ${this.reg(64)}, ${this.rm(32)}`, reads: 0, defines: 0, undefines: 0 };
          default: return { text: r.pick(['cbw', 'cwde', 'cdqe', 'cwd', 'cdq', 'cqo']), reads: 0, defines: 0, undefines: 0 };
        }
      }
      case 14: { // XADD / CMPXCHG
        const [a, b] = this.operands(s, false);
        const dst = a.includes('ptr') || r.chance(0.5) ? a : b;
        const src = dst === a ? b : a;
        if (src.includes('ptr')) return this.insn();
        const op = r.pick(['xadd', 'cmpxchg']);
        return { text: `${op} ${dst}, ${src}`, reads: 0, defines: all, undefines: 0 };
      }
      case 15: // CMPXCHG8B. (CMPXCHG16B ends a kvm_pvm run with an emulation failure, so it is in the hand-written SDM tests only.)
        return { text: `cmpxchg8b ${this.mem(64)}`, reads: 0, defines: F.ZF, undefines: 0 };
      case 16: { // CMOVcc / SETcc
        const c = r.pick(CONDS);
        if (r.chance(0.5)) {
          const ss = r.pick([16, 32, 64] as const);
          return { text: `cmov${c} ${this.reg(ss)}, ${this.rm(ss)}`, reads: COND_READS[c], defines: 0, undefines: 0 };
        }
        return { text: `set${c} ${this.rm(8)}`, reads: COND_READS[c], defines: 0, undefines: 0 };
      }
      case 17: { // Jcc over an instruction
        const c = r.pick(CONDS);
        return { text: `j${c} 1f\nnot ${this.reg(64)}\n1:`, reads: COND_READS[c], defines: 0, undefines: 0 };
      }
      case 18: { // LEA with random base/index (no memory access), all address and operand sizes
        const ss = r.pick([16, 32, 64] as const);
        const a32 = r.chance(0.3);
        const base = a32 ? r.pick(R32) : r.pick(R64);
        const index = a32 ? r.pick(R32) : r.pick(R64);
        const disp = r.pick([0, 1, -1, 0x7f, -0x80, 0x12345678, -0x7fffffff, r.int(1000)]);
        const sc = r.pick([1, 2, 4, 8]);
        const form = r.int(3);
        const ea = form === 0 ? `[${base}+${disp}]` : form === 1 ? `[${base}+${index}*${sc}+${disp}]` : `[${index}*${sc}+${disp}]`;
        return { text: `lea ${this.reg(ss)}, ${ea}`, reads: 0, defines: 0, undefines: 0 };
      }
      case 19: { // flag ops, LAHF/SAHF, PUSHF/POP
        const op = r.pick(['clc', 'stc', 'cmc', 'cld', 'std', 'lahf', 'sahf', 'pushfq\npop rax', 'pushfw\npop ax']);
        const reads = op === 'cmc' ? F.CF : op === 'lahf' ? F.SF | F.ZF | F.AF | F.PF | F.CF : op.startsWith('pushf') ? ARITH : 0;
        const defines = op === 'clc' || op === 'stc' || op === 'cmc' ? F.CF : op === 'sahf' ? F.SF | F.ZF | F.AF | F.PF | F.CF : 0;
        return { text: op, reads, defines, undefines: 0 };
      }
      case 20: { // PUSH/POP (stack in the block)
        const ss = r.pick([16, 64] as const);
        const form = r.int(4);
        if (form === 0) return { text: `push ${this.reg(ss)}`, reads: 0, defines: 0, undefines: 0 };
        if (form === 1) return { text: `pop ${this.reg(ss)}`, reads: 0, defines: 0, undefines: 0 };
        if (form === 2) return { text: `push ${this.mem(ss)}`, reads: 0, defines: 0, undefines: 0 };
        return { text: `push ${r.pick([0, -1, 0x7f, -0x80, 0x12345678, -0x12345678])}`, reads: 0, defines: 0, undefines: 0 };
      }
      case 21: { // string instructions with REP, both directions
        const sz = r.pick(['b', 'w', 'd', 'q']);
        const op = r.pick(['movs', 'stos', 'lods', 'cmps', 'scas']);
        const rep = op === 'cmps' || op === 'scas' ? r.pick(['', 'repe ', 'repne ']) : op === 'lods' ? r.pick(['', 'rep ']) : r.pick(['', 'rep ']);
        const compares = op === 'cmps' || op === 'scas';
        return {
          text: `${rep}${op}${sz}`, reads: 0, defines: compares ? all : 0, undefines: 0,
          alone: (regs, g) => {
            regs.rsi = BigInt(this.block + Block.data + 0x80 + g.int(0x40));
            regs.rdi = BigInt(this.block + Block.data + 0x100 + g.int(0x40));
            regs.rcx = BigInt(g.int(12));
          },
        };
      }
      case 22: { // LOOP / JRCXZ
        const op = r.pick(['loop', 'loope', 'loopne', 'jrcxz', 'jecxz']);
        return { text: `${op} 1f\nnot rbx\n1:`, reads: op === 'loope' || op === 'loopne' ? F.ZF : 0, defines: 0, undefines: 0 };
      }
      default: { // MOV forms incl. high-byte registers and 64-bit immediates
        const [a, b] = this.operands(s);
        if (s === 64 && !a.includes('ptr') && r.chance(0.3)) return { text: `movabs ${a}, ${BigInt.asIntN(64, r.value())}`, reads: 0, defines: 0, undefines: 0 };
        return { text: `mov ${a}, ${b}`, reads: 0, defines: 0, undefines: 0 };
      }
    }
  }
}

function toR64(reg: string): 'rax' {
  const i = [R64, R32, R16, R8REX].findIndex((t) => t.includes(reg));
  const table = [R64, R32, R16, R8REX][i];
  return R64[table.indexOf(reg)] as 'rax';
}

/** Generates `count` random cases from `seed`, case i using block i + `firstBlock`. */
export function generateCases(seed: number, count: number, firstBlock = 0): ConformanceCase[] {
  const rng = new Rng(seed);
  const cases: ConformanceCase[] = [];
  for (let i = 0; i < count; i++) {
    const block = blockAddress(firstBlock + i);
    const gen = new Gen(rng, block);
    const regs: Record<string, bigint> = {};
    for (const name of R64) regs[name] = rng.value();
    const n = 1 + rng.int(4);
    const texts: string[] = [];
    let undef = 0;
    const loose: Record<string, bigint> = {};
    for (let k = 0; k < n; k++) {
      let ins = gen.insn();
      for (let tries = 0; tries < 20 && ((ins.reads & undef) !== 0 || (ins.alone && k > 0)); tries++) ins = gen.insn();
      if ((ins.reads & undef) !== 0 || (ins.alone && k > 0)) break;
      texts.push(ins.text);
      undef = (undef & ~ins.defines) | ins.undefines;
      if (ins.looseReg) loose[ins.looseReg[0]] = ins.looseReg[1];
      if (ins.alone) { ins.alone(regs, rng); break; }
      if (ins.last) break;
    }
    const data = new Uint8Array(Block.dataSize);
    for (let j = 0; j < data.length; j += 4) new DataView(data.buffer).setUint32(j, rng.next(), true);
    const flags = rng.next() & (ARITH | F.DF);
    cases.push({
      name: `seed ${seed} case ${i}`,
      // The block symbol is defined relative to _start (linked at Layout.code) so that GNU as resolves
      // [rip+blk...] itself; an absolute symbol there is off by the link address.
      asm: `.set blk${block.toString(16)}, _start + 0x${(block - Layout.code).toString(16)}\n` + texts.join('\n'),
      regs, flags, data, undefinedFlags: undef, looseRegs: loose,
    });
  }
  return cases;
}

const hex = (v: bigint): string => '0x' + BigInt.asUintN(64, v).toString(16);

/** `case` as TypeScript source for a ConformanceCase literal (to paste into cases.ts as a regression). */
export function reproducer(c: ConformanceCase): string {
  const regs = Object.entries(c.regs ?? {}).filter(([, v]) => v !== 0n).map(([r, v]) => `${r}: ${hex(v)}n`).join(', ');
  const data = c.data ? `\n  // data window (block+0x200): ${Buffer.from(c.data).toString('hex')}` : '';
  return `{ name: ${JSON.stringify(c.name)}, asm: ${JSON.stringify(c.asm.split('\n').filter((l) => !l.startsWith('.set ')).join('\n'))},\n  regs: { ${regs} }, flags: 0x${(c.flags ?? 0).toString(16)}, undefinedFlags: 0x${(c.undefinedFlags ?? 0).toString(16)} }${data}`;
}

/**
 * Shrinks a failing case: drops instructions and zeroes input registers one at
 * a time while `fails` (which runs the candidate on both engines) still says it
 * fails. Candidates that no longer assemble count as passing.
 */
export async function shrinkCase(c: ConformanceCase, fails: (c: ConformanceCase) => Promise<boolean>): Promise<ConformanceCase> {
  let best = c;
  const header = c.asm.split('\n').filter((l) => l.startsWith('.set '));
  let body = c.asm.split('\n').filter((l) => !l.startsWith('.set '));
  const tryCase = async (cand: ConformanceCase): Promise<boolean> => {
    try { return await fails(cand); } catch { return false; }
  };
  for (let i = body.length - 1; i >= 0 && body.length > 1; i--) {
    const fewer = body.filter((_, k) => k !== i);
    const cand = { ...best, asm: [...header, ...fewer].join('\n') };
    if (await tryCase(cand)) { best = cand; body = fewer; }
  }
  for (const r of Object.keys(best.regs ?? {}) as Array<keyof NonNullable<ConformanceCase['regs']>>) {
    if ((best.regs?.[r] ?? 0n) === 0n) continue;
    const cand = { ...best, regs: { ...best.regs, [r]: 0n } };
    if (await tryCase(cand)) best = cand;
  }
  if (best.flags) {
    const cand = { ...best, flags: 0 };
    if (await tryCase(cand)) best = cand;
  }
  return best;
}
