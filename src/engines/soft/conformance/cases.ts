/**
 * Hand-written conformance cases: every integer instruction class, with the
 * inputs that matter (edge values, carries, counts 0/1/masked/>= size, DF=1,
 * prefixes, segment bases), and the fault cases. `undefinedFlags` on each case
 * is the set the SDM leaves undefined for its instructions (the comparison
 * masks exactly those). Cases with `expect` also carry the SDM's answer,
 * checked on every engine. `kvmCases` run on both engines; `softOnlyCases`
 * use what kvm_pvm cannot run here (INT n, CMPXCHG16B, x87 for #NM) and are
 * checked against the SDM only.
 */

import { ARITH, Block, F, Layout, type ConformanceCase, type Expectation } from './harness.js';

type Regs = ConformanceCase['regs'];

function c(name: string, asm: string, regs: Regs = {}, flags = 0, undefinedFlags = 0, expect?: Expectation): ConformanceCase {
  return { name, asm, regs, flags, undefinedFlags, expect };
}

/** Undefined-flag sets from the SDM, per instruction family. */
export const Undef = {
  logic: F.AF, // AND OR XOR TEST
  mul: F.SF | F.ZF | F.AF | F.PF, // MUL IMUL
  div: ARITH, // DIV IDIV
  bt: F.OF | F.SF | F.AF | F.PF, // BT BTS BTR BTC
  bsf: F.CF | F.OF | F.SF | F.AF | F.PF, // BSF BSR
  shift: F.AF, // SHL SHR SAR, count 1 (count > 1 adds OF)
  shiftN: F.AF | F.OF,
  rotateN: F.OF, // ROL ROR RCL RCR, count > 1
} as const;

const M64 = 0xffffffffffffffffn;
const EDGE = [0n, 1n, 0x7fn, 0x80n, 0xffn, 0x7fffn, 0x8000n, 0xffffn, 0x7fffffffn, 0x80000000n, 0xffffffffn, 0x7fffffffffffffffn, 0x8000000000000000n, M64, 0x0123456789abcdefn];
const CONDS = ['o', 'no', 'b', 'ae', 'e', 'ne', 'be', 'a', 's', 'ns', 'p', 'np', 'l', 'ge', 'le', 'g'];
const FLAG_INPUTS = [0, F.CF, F.ZF, F.SF, F.OF, F.PF, F.SF | F.OF, F.ZF | F.CF, ARITH];

function alu(): ConformanceCase[] {
  const out: ConformanceCase[] = [];
  const ops = ['add', 'or', 'adc', 'sbb', 'and', 'sub', 'xor', 'cmp'];
  const regsBySize: Array<[string, string]> = [['al', 'bl'], ['ah', 'bh'], ['ch', 'dl'], ['ax', 'bx'], ['eax', 'ebx'], ['rax', 'rbx'], ['sil', 'r9b'], ['r10w', 'r11w']];
  for (const op of ops) {
    const und = op === 'and' || op === 'or' || op === 'xor' ? Undef.logic : 0;
    for (const [d, s] of regsBySize) {
      for (const [a, b] of [[0x7fn, 1n], [0x80n, 0xffn], [0xffffn, 1n], [0x7fffffffn, 0x7fffffffn], [0x8000000000000000n, M64], [0x123456789abcdef0n, 0x0fedcba987654321n]]) {
        for (const cf of [0, F.CF]) {
          // ah/ch: the value sits in bits 15:8 of rax/rcx; seed every byte so writes to the wrong byte show.
          out.push(c(`${op} ${d}, ${s}`, `${op} ${d}, ${s}`, { rax: a * 0x0101n ^ 0x5a5a5a5a00000000n, rbx: b * 0x0101n, rcx: a << 8n, rdx: b, rsi: a, r9: b, r10: a, r11: b }, cf, und));
        }
      }
    }
    out.push(c(`${op} mem, imm8`, `${op} qword ptr [r15+0x208], -2`, {}, F.CF, und));
    out.push(c(`${op} mem8, reg`, `${op} byte ptr [{block}+0x209], ah`, { rax: 0xff00n }, 0, und));
    out.push(c(`${op} al, imm8 (short form)`, `${op} al, 0x81`, { rax: 0x7fn }, F.CF, und));
    out.push(c(`${op} eax, imm32 (short form)`, `${op} eax, 0x80000001`, { rax: M64 }, 0, und));
  }
  // Multi-word chains: 128-bit add and subtract through CF.
  for (const [a, b] of [[M64, 1n], [0x8000000000000000n, 0x8000000000000000n], [0n, 1n]]) {
    out.push(c('128-bit add chain', 'add rax, rcx\nadc rdx, rbx\nadc rsi, 0', { rax: a, rcx: b, rdx: a, rbx: b }));
    out.push(c('128-bit sub chain', 'sub rax, rcx\nsbb rdx, rbx\nsbb rsi, 0', { rax: b, rcx: a, rdx: b, rbx: a }));
    out.push(c('8-bit adc chain through ah', 'add al, cl\nadc ah, ch\nadc bl, 0', { rax: a, rcx: b }));
  }
  for (const op of ['inc', 'dec', 'neg', 'not']) {
    for (const v of EDGE) {
      for (const d of ['al', 'ah', 'ax', 'eax', 'rax']) out.push(c(`${op} ${d}`, `${op} ${d}`, { rax: v * 0x101n }, F.CF));
    }
  }
  return out;
}

function shifts(): ConformanceCase[] {
  const out: ConformanceCase[] = [];
  const sizes: Array<[string, number]> = [['al', 8], ['ah', 8], ['ax', 16], ['eax', 32], ['rax', 64]];
  for (const op of ['shl', 'shr', 'sar', 'rol', 'ror', 'rcl', 'rcr']) {
    for (const [d, bits] of sizes) {
      for (const count of [0, 1, 2, bits - 1, bits, bits + 1, 31, 32, 33, 63, 64, 255]) {
        for (const v of [0x8000000000000001n, 0x5a5a5a5a5a5a5a5an, 0x4000000000000040n]) {
          const masked = count & (bits === 64 ? 63 : 31);
          const rotate = op.startsWith('r');
          let und = 0;
          if (masked > 1) und = rotate ? Undef.rotateN : Undef.shiftN;
          else if (masked === 1 && !rotate) und = Undef.shift;
          // SDM: CF undefined for SHL/SHR when the count >= the operand size.
          if ((op === 'shl' || op === 'shr') && masked >= bits) und |= F.CF;
          out.push(c(`${op} ${d}, cl=${count}`, `${op} ${d}, cl`, { rax: v, rcx: BigInt(count) | 0xab00n }, F.CF | F.OF, und));
          if (count < 256) out.push(c(`${op} ${d}, ${count}`, `${op} ${d}, ${count}`, { rax: v }, F.CF | F.OF, und));
        }
      }
    }
  }
  for (const op of ['shld', 'shrd']) {
    for (const [d, s, bits] of [['ax', 'bx', 16], ['eax', 'ebx', 32], ['rax', 'rbx', 64]] as const) {
      for (const count of [0, 1, 2, 7, 15, 16, 25, 31, 32, 33, 63]) {
        const masked = count & (bits === 64 ? 63 : 31);
        if (masked > bits) continue; // result undefined
        const und = masked > 1 ? Undef.shiftN : masked === 1 ? Undef.shift : 0;
        for (const [a, b] of [[0x8123456789abcdefn, 0xfedcba9876543210n], [0x7fffffff00000001n, 0x8000000080000000n]]) {
          out.push(c(`${op} ${d}, ${s}, ${count}`, `${op} ${d}, ${s}, ${count}`, { rax: a, rbx: b }, F.CF, und));
          out.push(c(`${op} ${d}, ${s}, cl=${count}`, `${op} ${d}, ${s}, cl`, { rax: a, rbx: b, rcx: BigInt(count) }, F.CF, und));
          out.push(c(`${op} mem, ${s}, ${count}`, `${op} ${bits === 16 ? 'word' : bits === 32 ? 'dword' : 'qword'} ptr [r15+0x210], ${s}, ${count}`, { rbx: b }, F.CF, und));
        }
      }
    }
  }
  // Regression: 32-bit shifts by a masked count of 0 still write the register (upper half cleared).
  out.push(c('shl r32 by 0 clears bits 63:32', 'shl eax, 0\nror ebx, 32\nshld ecx, edx, 0\nshl esi, cl', { rax: M64, rbx: M64, rcx: 0xffffffff00000020n, rsi: M64 }, F.CF, 0,
    { regs: { rax: 0xffffffffn, rbx: 0xffffffffn, rcx: 0x20n, rsi: 0xffffffffn }, flagsSet: F.CF }));
  // Regression: SHLD/SHRD r32 with large counts were computed with doubles and lost low bits.
  out.push(c('shld r32 large count is exact', 'shld ebp, r11d, 31\nshrd ecx, edx, 29', { rbp: 0x40eefb53n, r11: 0x5b3ea5edn, rcx: 0x12345679n, rdx: 0xfedcba98n }, 0, Undef.shiftN,
    { regs: { rbp: ((0x40eefb53n << 31n) | (0x5b3ea5edn >> 1n)) & 0xffffffffn, rcx: ((0x12345679n >> 29n) | (0xfedcba98n << 3n)) & 0xffffffffn } }));
  return out;
}

function mulDiv(): ConformanceCase[] {
  const out: ConformanceCase[] = [];
  const vals = [0n, 1n, 2n, 0x7fn, 0x80n, 0xffn, 0x7fffn, 0x8000n, 0xffffn, 0x7fffffffn, 0x80000000n, 0xffffffffn, 0x7fffffffffffffffn, 0x8000000000000000n, M64, 0x0123456789abcdefn, 0xfedcba9876543210n];
  for (const a of vals) {
    for (const b of [M64, 0x8000000000000000n, 3n, 0xfedcba9876543210n, 0x80n, 0xffffn]) {
      for (const op of ['mul', 'imul']) {
        for (const src of ['bl', 'bx', 'ebx', 'rbx', 'qword ptr [r15+0x200]']) out.push(c(`${op} ${src}`, `mov [r15+0x200], rbx\n${op} ${src}`, { rax: a, rbx: b, rdx: 0x1111n }, 0, Undef.mul));
      }
      out.push(c('imul r64, r64', 'imul rax, rbx', { rax: a, rbx: b }, 0, Undef.mul));
      out.push(c('imul r32, r32, imm32', 'imul ecx, ebx, -0x12345', { rbx: a }, 0, Undef.mul));
      out.push(c('imul r16, r16, imm8', 'imul cx, bx, 0x7f', { rbx: a, rcx: b }, 0, Undef.mul));
      out.push(c('imul r64, m64, imm8', 'mov [r15+0x200], rbx\nimul rcx, qword ptr [r15+0x200], -128', { rbx: a }, 0, Undef.mul));
    }
  }
  // IMUL r64 with both factors below 2^32 (a 32×32 fast path): products with bit 63 set overflow.
  for (const [a, b] of [[0xffffffffn, 0xffffffffn], [0x80000000n, 0xffffffffn], [0x80000000n, 0x100000n], [0xb504f334n, 0xb504f334n], [0x12345678n, 0x9abcdef0n], [0n, 0xffffffffn]]) {
    out.push(c('imul r64, r64 (32-bit factors)', 'imul rax, rbx', { rax: a, rbx: b }, 0, Undef.mul));
    out.push(c('imul r64, r64, imm32 (32-bit factors)', 'imul rcx, rbx, 0x7fffffff', { rbx: b }, 0, Undef.mul));
  }
  // DIV/IDIV: ordinary quotients, and #DE (divide by zero, quotient overflow, INT_MIN / -1).
  const divs: Array<[bigint, bigint, bigint]> = [ // rdx, rax, divisor
    [0n, 100n, 7n], [0n, M64, 0xffffffffn], [1n, 0n, 2n], [0x7fffffffffffffffn, M64, 0x8000000000000000n], [M64, 0x8000000000000000n, M64],
    [0n, 0x8000n, M64], [M64, 0xfffffffffffffff9n, 2n], [0n, 5n, 0n], [2n, 0n, 2n], [0n, 0xff80n, 0xffn], [0n, 0x8000n, 0xffffn],
  ];
  for (const [hi, lo, d] of divs) {
    for (const op of ['div', 'idiv']) {
      for (const src of ['bl', 'bx', 'ebx', 'rbx']) out.push(c(`${op} ${src}`, `fault_ip: ${op} ${src}`, { rdx: hi, rax: lo, rbx: d }, 0, Undef.div));
    }
  }
  out.push(c('#DE: div by zero', 'fault_ip: div rcx', { rax: 5n }, F.CF, Undef.div, { vector: 0, faultAtLabel: true, savedFlagsSet: F.RF }));
  out.push(c('#DE: idiv INT64_MIN / -1', 'fault_ip: idiv rcx', { rax: 0x8000000000000000n, rdx: M64, rcx: M64 }, 0, Undef.div, { vector: 0, faultAtLabel: true }));
  out.push(c('#DE: div quotient overflow (8-bit)', 'fault_ip: div cl', { rax: 0x1000n, rcx: 0x10n }, 0, Undef.div, { vector: 0, faultAtLabel: true }));
  return out;
}

function bits(): ConformanceCase[] {
  const out: ConformanceCase[] = [];
  for (const op of ['bt', 'bts', 'btr', 'btc']) {
    for (const [d, s] of [['ax', 'cx'], ['eax', 'ecx'], ['rax', 'rcx']]) {
      for (const bit of [0n, 5n, 15n, 16n, 31n, 32n, 63n, 64n, 100n, 0x609e69d92d7b160bn]) {
        out.push(c(`${op} ${d}, ${s}=${bit}`, `${op} ${d}, ${s}`, { rax: 0x8000000180008001n, rcx: bit }, 0, Undef.bt));
        out.push(c(`${op} ${d}, imm ${bit & 0xffn}`, `${op} ${d}, ${bit & 0xffn}`, { rax: 0x8000000180008001n }, 0, Undef.bt));
      }
      // Memory with a register bit offset addresses outside the operand, negative offsets included.
      for (const bit of [-129n, -1n, 0n, 31n, 200n, 1000n]) {
        out.push(c(`${op} mem, ${s}=${bit}`, `${op} ${d.replace(/^(ax|eax|rax)$/, (x) => (x === 'ax' ? 'word' : x === 'eax' ? 'dword' : 'qword'))} ptr [r15+0x280], ${s}`, { rcx: BigInt.asUintN(64, bit) }, 0, Undef.bt));
      }
    }
  }
  out.push(c('bt r64 with a huge register offset', 'btr rsi, rsi', { rsi: 0x609e69d92d7b160bn }, 0, Undef.bt, { regs: { rsi: 0x609e69d92d7b160bn } }));
  for (const op of ['bsf', 'bsr']) {
    for (const v of [1n, 0x80n, 0x8000n, 0x80000000n, 0x8000000000000000n, 0x0001000000010000n, M64, 0x00f0n]) {
      for (const [d, s] of [['ax', 'bx'], ['eax', 'ebx'], ['rax', 'rbx']]) {
        const k = c(`${op} ${d}, ${s}=${v}`, `${op} ${d}, ${s}`, { rax: 0xdeadbeefcafef00dn, rbx: v }, 0, Undef.bsf);
        // Zero 32-bit source: kvm_pvm keeps or clears RAX[63:32] depending on whether it emulates (see fuzz.ts).
        if (d === 'eax' && (v & 0xffffffffn) === 0n) k.looseRegs = { rax: 0xffffffff00000000n };
        out.push(k);
      }
    }
    // Zero source: ZF=1; the destination keeps its value (16/64-bit compared with kvm).
    out.push(c(`${op} zero source r64`, `${op} rax, rbx`, { rax: 0xdeadbeefcafef00dn }, 0, Undef.bsf, { regs: { rax: 0xdeadbeefcafef00dn }, flagsSet: F.ZF }));
    out.push(c(`${op} zero source r16`, `${op} ax, bx`, { rax: 0xdeadbeefcafef00dn, rbx: 0xffff0000n }, 0, Undef.bsf, { regs: { rax: 0xdeadbeefcafef00dn }, flagsSet: F.ZF }));
  }
  for (const v of [0x0123456789abcdefn, 0x80n, M64]) {
    out.push(c('bswap r32', 'bswap eax\nbswap r9d', { rax: v, r9: v }));
    out.push(c('bswap r64', 'bswap rax\nbswap r12', { rax: v, r12: v }));
  }
  return out;
}

function exchange(): ConformanceCase[] {
  const out: ConformanceCase[] = [];
  for (const [a, m] of [[5n, 5n], [5n, 6n], [0x8000000000000000n, 0x8000000000000000n]]) {
    for (const [r, p] of [['al', 'byte'], ['ax', 'word'], ['eax', 'dword'], ['rax', 'qword']]) {
      out.push(c(`cmpxchg ${p} (${a === m ? 'equal' : 'differ'})`, `mov [r15+0x200], rbx\ncmpxchg ${p} ptr [r15+0x200], ${r.replace('a', 'c')}`, { rax: a, rbx: m, rcx: 0x1122334455667788n }));
      out.push(c(`cmpxchg reg ${r}`, `cmpxchg ${r.replace('a', 'd')}, ${r.replace('a', 'c')}`, { rax: a, rdx: m, rcx: 0x99n }));
    }
  }
  out.push(c('cmpxchg8b equal', 'mov [r15+0x200], rsi\ncmpxchg8b qword ptr [r15+0x200]', { rsi: 0x1111111122222222n, rdx: 0x11111111n, rax: 0x22222222n, rcx: 0xaaaan, rbx: 0xbbbbn }));
  out.push(c('cmpxchg8b differ', 'mov [r15+0x200], rsi\ncmpxchg8b qword ptr [r15+0x200]', { rsi: 0x1111111122222222n, rdx: 0xffffffff11111111n, rax: 0x22222223n, rcx: 0xaaaan, rbx: 0xbbbbn }));
  for (const r of ['al', 'ah', 'ax', 'eax', 'rax', 'r8b']) {
    out.push(c(`xadd ${r}, same register`, `xadd ${r}, ${r}`, { rax: 0xac72716f3d5f479en, r8: 0x81n }));
    out.push(c(`xadd mem, ${r}`, `xadd ${r.startsWith('r8') || r === 'al' || r === 'ah' ? 'byte' : r === 'ax' ? 'word' : r === 'eax' ? 'dword' : 'qword'} ptr [{block}+0x208], ${r}`, { rax: 0x8000000000000081n, r8: 0xffn }));
    out.push(c(`xchg ${r}, mem`, `xchg ${r}, ${r.startsWith('r8') || r === 'al' || r === 'ah' ? 'byte' : r === 'ax' ? 'word' : r === 'eax' ? 'dword' : 'qword'} ptr [{block}+0x210]`, { rax: 0x0102030405060708n, r8: 0x99n }));
  }
  out.push(c('xadd r16 same register (regression)', 'xadd r8w, r8w', { r8: 0xac72716f3d5f479en }, 0, 0, { regs: { r8: 0xac72716f3d5f8f3cn } }));
  out.push(c('xchg eax, eax zero-extends (87 c0)', 'xchg eax, ecx\nxchg ebx, ebx', { rax: M64, rcx: M64, rbx: M64 }));
  out.push(c('nop (90) keeps rax', 'nop', { rax: M64 }));
  return out;
}

function conditions(): ConformanceCase[] {
  const out: ConformanceCase[] = [];
  for (const cc of CONDS) {
    for (const fl of FLAG_INPUTS) {
      out.push(c(`set${cc}/cmov${cc}/j${cc}`, `set${cc} al\nset${cc} bh\ncmov${cc} rcx, rdx\ncmov${cc} esi, edi\ncmov${cc} r8w, r9w\nj${cc} 1f\nnot r10\n1:`,
        { rax: M64, rbx: M64, rcx: 1n, rdx: 2n, rsi: M64, rdi: 3n, r8: M64, r9: 0x4444n }, fl));
    }
  }
  return out;
}

function strings(): ConformanceCase[] {
  const out: ConformanceCase[] = [];
  const setup = 'lea rsi, [r15+0x240]\nlea rdi, [r15+0x2c0]\n';
  for (const df of [0, F.DF]) {
    for (const sz of ['b', 'w', 'd', 'q']) {
      for (const n of [0n, 1n, 5n]) {
        out.push(c(`rep movs${sz} n=${n} DF=${df ? 1 : 0}`, `${setup}rep movs${sz}`, { rcx: n }, df));
        out.push(c(`rep stos${sz} n=${n} DF=${df ? 1 : 0}`, `${setup}rep stos${sz}`, { rcx: n, rax: 0x1122334455667788n }, df));
        out.push(c(`lods${sz} DF=${df ? 1 : 0}`, `${setup}lods${sz}`, { rcx: n, rax: M64 }, df));
        out.push(c(`repe cmps${sz} n=${n}`, `${setup}mov rax, [rsi]\nmov [rdi], rax\nrepe cmps${sz}`, { rcx: n }, df));
        out.push(c(`repne scas${sz} n=${n}`, `${setup}repne scas${sz}`, { rcx: n, rax: 0n }, df));
        out.push(c(`scas${sz} flags`, `${setup}scas${sz}`, { rax: 0x8080808080808080n }, df));
      }
    }
  }
  // Address-size prefix: 32-bit RSI/RDI/RCX (upper halves ignored, and the 32-bit registers are updated).
  out.push(c('rep movsb with addr32', 'lea esi, [r15d+0x240]\nlea edi, [r15d+0x2c0]\nmov rcx, 0xffffffff00000004\naddr32 rep movsb', {}));
  out.push(c('rep stosd with addr32 and DF=1', 'lea edi, [r15d+0x2c0]\nmov ecx, 3\naddr32 rep stosd', { rax: 0xabcdef01n }, F.DF));
  return out;
}

function moves(): ConformanceCase[] {
  const out: ConformanceCase[] = [];
  for (const v of [0x80n, 0x7fn, 0x8000n, 0x80000000n, 0xfedcba9876543210n]) {
    out.push(c('movsx/movzx all forms', 'movsx ax, bl\nmovsx ecx, bl\nmovsx rdx, bl\nmovsx esi, bx\nmovsx rdi, bx\nmovsxd r8, ebx\nmovzx bp, bh\nmovzx r10d, bl\nmovzx r11, bx\nmovzx r12d, bx',
      { rbx: v, rax: M64, rcx: M64, rdx: M64, rsi: M64, rdi: M64, r8: M64, r9: M64, r10: M64, r11: M64, r12: M64 }));
    out.push(c('cbw cwde cdqe', 'cbw\nmov rbx, rax\nmov rax, rcx\ncwde\nmov rdx, rax\nmov rax, rcx\ncdqe', { rax: v, rcx: v }));
    out.push(c('cwd cdq cqo', 'cwd\nmov rbx, rdx\ncdq\nmov rsi, rdx\ncqo', { rax: v, rdx: 0x5555555555555555n }));
    out.push(c('16/8-bit writes keep the rest, 32-bit writes zero-extend', 'mov ax, bx\nmov cl, bl\nmov ch, bl\nmov edx, ebx\nmov sil, bl', { rax: M64, rbx: v, rcx: M64, rdx: M64, rsi: M64 }));
  }
  out.push(c('mov moffs (a0/a1/a2/a3, 64-bit absolute)', 'movabs al, [{block}+0x200]\nmovabs rbx, 0\nmovabs [{block}+0x208], ax\nmovabs eax, [{block}+0x210]', { rax: 0x1234n }));
  out.push(c('movabs r64, imm64', 'movabs r11, 0x8877665544332211'));
  out.push(c('mov r/m64, imm32 sign-extends', 'mov qword ptr [r15+0x200], -5\nmov rax, -0x80000000'));
  return out;
}

function addressing(): ConformanceCase[] {
  const out: ConformanceCase[] = [];
  const regs: Regs = { rax: 0x10n, rbx: 0x7ffffffffff0n, rcx: 0xfffffffffffffff0n, rdx: 0x8000000000000000n, rsi: 0xd80427a0b68431c1n, rdi: 3n, rbp: 0x100n, r13: 0x200n, r12: 0x1n };
  const eas = ['[rax]', '[rax+rbx]', '[rbx+rcx*8+0x7f]', '[rdx+rdx]', '[rsi+0]', '[rsi*4-1]', '[rbp+0]', '[r13+r12*2]', '[r12+rsi*8+0x12345678]', '[rdi*2-0x80000000]',
    '[eax+ebx]', '[ebx+ecx*8+0x10]', '[esi+edi*4]', '[ebp-1]', '[rip+0]', '[rip-0x12345678]', '[0x12345678]'];
  for (const ea of eas) {
    for (const d of ['rax', 'eax', 'ax']) out.push(c(`lea ${d}, ${ea}`, `lea ${d}, ${ea}`, regs));
  }
  out.push(c('lea r32 with a non-canonical 64-bit base (regression: exact low bits)', 'lea r8d, [rax*4+0]\nlea ebp, [rdx+0]', { rax: 0x7fffffffffffffffn, rdx: 0xd80427a0b68431c1n }, 0, 0,
    { regs: { r8: 0xfffffffcn, rbp: 0xb68431c1n } }));
  // Memory through every addressing form, and address-size override (upper register halves ignored).
  out.push(c('addressing forms', 'mov rax, [r15+0x208]\nmov rbx, [r15+rcx*8+0x200]\nlea rdx, [r15+0x200]\nmov esi, [rdx+rcx*4]\nmov rdi, qword ptr [rip+0x0]\nmov r8, [r15d+0x210]\nmov r9, [edx+ecx*2]',
    { rcx: 3n }));
  out.push(c('addr32 wraps the effective address', 'lea rbx, [r15+0x200]\nmov ecx, 0xffffff00\nmov rax, [ebx+ecx+0x100]', {}));
  // Segment overrides with FS/GS bases (the batch sets FS.base = 0x100000, GS.base = 0x180000).
  out.push(c('fs/gs overrides add the segment base', 'mov rax, fs:[r15+0x200-0x100000]\nmov rbx, gs:[r15+0x208-0x180000]\nmov fs:[r15+0x210-0x100000], rbx\nlea rcx, [r15]', {}));
  out.push(c('ds/es/ss overrides are ignored in 64-bit mode', 'mov rax, es:[r15+0x200]\nmov rbx, ss:[r15+0x208]\nmov rcx, cs:[r15+0x210]', {}));
  // Operand-size prefix on push/pop.
  out.push(c('push/pop 16-bit', 'push ax\npush word ptr [r15+0x200]\npop bx\npop cx\npushw 0x1234\npop dx', { rax: 0xaabbn, rbx: M64, rcx: M64, rdx: M64 }));
  return out;
}

function stack(): ConformanceCase[] {
  const out: ConformanceCase[] = [];
  out.push(c('push/pop r64, m64, imm', 'push rax\npush qword ptr [r15+0x200]\npush -3\npush 0x12345678\npop rbx\npop rcx\npop rdx\npop qword ptr [r15+0x210]', { rax: 0x1111n }));
  out.push(c('push rsp / pop rsp', 'push rsp\npop rax\npush rsp\npop rsp', {}));
  out.push(c('call/ret', 'call 2f\njmp 3f\n2: mov rax, [rsp]\nret\n3:', {}));
  out.push(c('call r/m, ret imm16', 'lea rbx, [rip+2f]\npush 7\npush 8\ncall rbx\njmp 3f\n2: ret 16\n3:', {}));
  out.push(c('call [mem]', 'lea rbx, [rip+2f]\nmov [r15+0x200], rbx\ncall qword ptr [r15+0x200]\njmp 3f\n2: pop rcx\npush rcx\nret\n3:', {}));
  // ENTER with a nesting level > 0 ends a kvm_pvm run (emulation failure): see softOnlyCases.
  for (const size of [0, 8, 0x18, 0xffff]) out.push(c(`enter ${size}, 0 / leave`, `mov rbp, rsp\nsub rbp, 0x40\nenter ${size}, 0\nmov rax, rsp\nmov rbx, rbp\nleave`, {}));
  // ENTER/LEAVE with a 66 prefix: kvm_pvm pushes/pops 8 bytes (its emulator uses the stack size, not the operand size): see softOnlyCases.
  out.push(c('pushf/popf', 'pushfq\npop rax\npush rbx\npopfq\npushfq\npop rcx\npushfw\npop dx', { rbx: BigInt(ARITH | F.DF | 2) }, F.CF | F.OF));
  for (const fl of [0, ARITH, F.SF | F.ZF, F.AF | F.PF | F.CF]) {
    out.push(c('lahf/sahf', 'lahf\nmov bl, ah\nmov ah, cl\nsahf\nlahf', { rcx: 0xd5n, rax: M64 }, fl | F.OF));
  }
  out.push(c('clc stc cmc cld std', 'stc\ncmc\nsetc al\nstc\nsetc bl\nstd\nclc\ncld', {}, F.DF));
  for (const n of [0n, 1n, 3n, 0x100000000n]) {
    out.push(c(`loop rcx=${n}`, 'xor eax, eax\n2: inc eax\ncmp eax, 10\nje 3f\nloop 2b\n3:', { rcx: n }));
    out.push(c(`loope/loopne rcx=${n}`, 'loope 2f\nnot rbx\n2: loopne 3f\nnot rdx\n3:', { rcx: n }, F.ZF));
    out.push(c(`jrcxz/jecxz rcx=${n}`, 'jrcxz 2f\nnot rbx\n2: jecxz 3f\nnot rdx\n3:', { rcx: n }));
    out.push(c(`addr32 loop rcx=${n}`, 'addr32 loop 2f\nnot rbx\n2:', { rcx: n }));
  }
  return out;
}

function faults(): ConformanceCase[] {
  const out: ConformanceCase[] = [];
  out.push(c('#UD: ud2', 'fault_ip: ud2', {}, 0, 0, { vector: 6, faultAtLabel: true }));
  out.push(c('#UD: lock on a register operand', 'fault_ip: .byte 0xf0, 0x48, 0x01, 0xd8', {}, 0, 0, { vector: 6, faultAtLabel: true }));
  out.push(c('#UD: push es is invalid in 64-bit mode', 'fault_ip: .byte 0x06', {}, 0, 0, { vector: 6, faultAtLabel: true }));
  out.push(c('#UD: mov cs, ax', 'fault_ip: .byte 0x8e, 0xc8', {}, 0, 0, { vector: 6, faultAtLabel: true }));
  out.push(c('#GP(0): non-canonical data address', 'fault_ip: mov rax, [rcx]', { rcx: 0x8000000000000000n }, 0, 0, { vector: 13, error: 0, faultAtLabel: true }));
  out.push(c('#GP(0): non-canonical write, registers unchanged', 'inc rdx\nfault_ip: mov [rcx+8], rdx', { rcx: 0x7ffffffffffcn, rdx: 1n }, 0, 0, { vector: 13, error: 0, faultAtLabel: true, regs: { rdx: 2n } }));
  out.push(c('#GP(sel): mov ds with a selector beyond the GDT limit', 'fault_ip: mov ds, ax', { rax: 0x80n }, 0, 0, { vector: 13, error: 0x80, faultAtLabel: true }));
  out.push(c('#GP(0): wrmsr to a nonexistent MSR', 'fault_ip: wrmsr', { rcx: 0x12345678n }, 0, 0, { vector: 13, error: 0, faultAtLabel: true }));
  // (mov cr4 with a reserved bit: kvm_pvm does not fault: see softOnlyCases.)
  out.push(c('#PF: read of a not-present page', 'fault_ip: mov rax, [rbx]', { rbx: BigInt(Layout.unmapped + 0x10) }, 0, 0, { vector: 14, error: 0, cr2: BigInt(Layout.unmapped + 0x10), faultAtLabel: true }));
  out.push(c('#PF: write to a not-present page', 'fault_ip: mov [rbx], eax', { rbx: BigInt(Layout.unmapped + 0x1234) }, 0, 0, { vector: 14, error: 2, cr2: BigInt(Layout.unmapped + 0x1234), faultAtLabel: true }));
  out.push(c('#PF: add to a read-only page faults before changing flags', 'fault_ip: add [rbx], eax', { rbx: BigInt(Layout.readOnlyPage + 8) }, 0, 0, { vector: 14, error: 3, cr2: BigInt(Layout.readOnlyPage + 8), faultAtLabel: true }));
  out.push(c('#PF: a qword read crossing into a not-present page', 'fault_ip: mov rax, [rbx]', { rbx: BigInt(Layout.unmapped - 4) }, 0, 0, { vector: 14, error: 0, cr2: BigInt(Layout.unmapped), faultAtLabel: true }));
  out.push(c('#PF: instruction fetch from an NX page', 'jmp rax', { rax: BigInt(Layout.noExecPage) }, 0, 0, { vector: 14, error: 0x11, cr2: BigInt(Layout.noExecPage) }));
  out.push(c('#PF: rep stosb stops at the faulting element', 'lea rdi, [rbx-3]\nfault_ip: rep stosb', { rbx: BigInt(Layout.readOnlyPage), rcx: 8n }, 0, 0, { vector: 14, error: 3, cr2: BigInt(Layout.readOnlyPage), faultAtLabel: true, regs: { rcx: 5n } }));
  out.push(c('#SS(0): push with a non-canonical RSP', 'mov rsp, rbx\nfault_ip: push rax', { rbx: 0x8000000000000010n }, 0, 0, { vector: 12, error: 0, faultAtLabel: true }));
  out.push(c('#SS(0): RBP-based access with a non-canonical address', 'fault_ip: mov rax, [rbp+8]', { rbp: 0x0000800000000000n }, 0, 0, { vector: 12, error: 0, faultAtLabel: true }));
  return out;
}

/** Cases run on soft and kvm (and checked against the SDM where they carry `expect`). */
export function kvmCases(): ConformanceCase[] {
  return [...alu(), ...shifts(), ...mulDiv(), ...bits(), ...exchange(), ...conditions(), ...strings(), ...moves(), ...addressing(), ...stack(), ...faults()];
}

/**
 * Cases kvm_pvm cannot run here (its instruction emulator handles them and
 * reports an emulation failure): INT n (used for #TS and #NP), CMPXCHG16B, and
 * the x87 instruction behind #NM. Checked against the SDM on the soft engine.
 */
export function softOnlyCases(): ConformanceCase[] {
  const data = new Uint8Array(Block.dataSize);
  new DataView(data.buffer).setBigUint64(0, 0x1111111111111111n, true);
  new DataView(data.buffer).setBigUint64(8, 0x2222222222222222n, true);
  return [
    c('#TS(TSS selector): INT n through a gate whose IST slot lies beyond the TSS limit', 'fault_ip: int 0x41', {}, 0, 0, { vector: 10, error: 0x28, faultAtLabel: true }),
    c('#NP(vector*8+2): INT n through a not-present gate', 'fault_ip: int 0x42', {}, 0, 0, { vector: 11, error: 0x42 * 8 + 2, faultAtLabel: true }),
    c('#NM: x87 instruction with CR0.TS set', 'mov rax, cr0\nor rax, 8\nmov cr0, rax\nfault_ip: fld1', {}, 0, 0, { vector: 7, faultAtLabel: true }),
    c('#GP(0): misaligned cmpxchg16b', 'fault_ip: cmpxchg16b xmmword ptr [r15+0x208]', {}, 0, 0, { vector: 13, error: 0, faultAtLabel: true }),
    { ...c('cmpxchg16b equal: stores RCX:RBX, ZF=1', 'cmpxchg16b xmmword ptr [r15+0x200]\nmov rsi, [r15+0x200]\nmov rdi, [r15+0x208]',
      { rax: 0x1111111111111111n, rdx: 0x2222222222222222n, rbx: 0xbbn, rcx: 0xccn }, 0, 0, { regs: { rsi: 0xbbn, rdi: 0xccn, rax: 0x1111111111111111n }, flagsSet: F.ZF }), data },
    { ...c('cmpxchg16b differ: loads RDX:RAX, ZF=0', 'cmpxchg16b xmmword ptr [r15+0x200]',
      { rax: 0x1111111111111111n, rdx: 5n, rbx: 0xbbn, rcx: 0xccn }, F.ZF, 0, { regs: { rax: 0x1111111111111111n, rdx: 0x2222222222222222n }, flagsClear: F.ZF }), data },
    c('enter 0x18, 2 (nesting level copies the outer frame pointer)',
      'mov rbp, rsp\nsub rbp, 0x40\nmov qword ptr [rbp-8], 0x1111\nlea r8, [rsp]\nlea rdi, [rbp]\nenter 0x18, 2\nsub r8, rsp\nlea r9, [rbp]\nsub r9, rsp\nmov r10, [rsp+32]\nmov r11, [rsp+24]\nsub r11, rsp\nmov r12, [rsp+40]\nsub r12, rdi', {}, 0, 0,
      { regs: { r8: 0x30n, r9: 0x28n, r10: 0x1111n, r11: 0x28n, r12: 0n } }),
    // kvm_pvm quirk: its ENTER/LEAVE emulation ignores the 66 prefix and moves 8 bytes; SDM: 16-bit operand size pushes/pops BP (2 bytes).
    c('enter/leave with 16-bit operand size push and pop BP only',
      'mov rbp, rsp\nsub rbp, 0x20\nlea rdx, [rsp]\nlea rsi, [rbp]\n.byte 0x66, 0xc8, 0x08, 0x00, 0x00\nsub rdx, rsp\nmov rbx, rbp\nsub rbx, rsp\n.byte 0x66, 0xc9\nsub rsi, rbp\nlea rcx, [rsp]\nsub rcx, rbp', {}, 0, 0,
      { regs: { rdx: 10n, rbx: 8n, rsi: 0n, rcx: 0x20n } }),
    // kvm_pvm quirk: MOV CR4 with bit 40 set does not fault there; SDM: CR4[63:32] are reserved, #GP(0).
    c('#GP(0): mov cr4 with a reserved bit', 'mov rax, cr4\nbts rax, 40\nfault_ip: mov cr4, rax', {}, 0, Undef.bt, { vector: 13, error: 0, faultAtLabel: true }),
    c('BSF/BSR r32 zero source: low half kept, upper half cleared (as the hardware does)', 'bsf eax, ebx\nbsr ecx, ebx', { rax: 0xdeadbeefcafef00dn, rcx: M64 }, 0, Undef.bsf,
      { regs: { rax: 0xcafef00dn, rcx: 0xffffffffn }, flagsSet: F.ZF }),
  ];
}
