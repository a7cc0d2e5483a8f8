/**
 * ALU semantics of the soft CPU against a BigInt reference model: hundreds
 * of (operation, size, operands, carry-in) cases are assembled into one
 * 64-bit program that stores each result and RFLAGS, and every stored value
 * must match the architecturally defined bits of the reference.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assemble, identityPageTables, longModeState, softRunner } from './test-support.js';

const CF = 1n;
const PF = 4n;
const AF = 16n;
const ZF = 64n;
const SF = 128n;
const OF = 2048n;
const ALL = CF | PF | AF | ZF | SF | OF;

interface Case {
  asm: string;
  /** Expected RAX (all 64 bits) and the flags, compared under `mask`. */
  rax: bigint;
  flags: bigint;
  mask: bigint;
}

const REGS: Record<number, [string, string]> = { 8: ['al', 'bl'], 16: ['ax', 'bx'], 32: ['eax', 'ebx'], 64: ['rax', 'rbx'] };

function parity(v: bigint): bigint {
  let p = 1n;
  for (let i = 0n; i < 8n; i++) p ^= (v >> i) & 1n;
  return p;
}

function szp(res: bigint, bits: bigint): bigint {
  return (res === 0n ? ZF : 0n) | (((res >> (bits - 1n)) & 1n) !== 0n ? SF : 0n) | (parity(res & 0xffn) !== 0n ? PF : 0n);
}

/** Puts a `bits`-wide result into a 64-bit RAX the way x86 does (32-bit writes zero-extend). */
function merge(rax: bigint, res: bigint, bits: bigint): bigint {
  if (bits === 32n) return res;
  if (bits === 64n) return res;
  const mask = (1n << bits) - 1n;
  return (rax & ~mask) | res;
}

function signed(v: bigint, bits: bigint): bigint {
  return BigInt.asIntN(Number(bits), v);
}

function reference(op: string, bits: bigint, a64: bigint, b64: bigint, cin: bigint, count: bigint): Case | undefined {
  const m = (1n << bits) - 1n;
  const a = a64 & m;
  const b = b64 & m;
  const sign = 1n << (bits - 1n);
  const [ra, rb] = REGS[Number(bits)];
  let res: bigint;
  let flags = 0n;
  let mask = ALL;
  let asm = `${op} ${ra}, ${rb}`;
  switch (op) {
    case 'add': case 'adc': {
      const c = op === 'adc' ? cin : 0n;
      const full = a + b + c;
      res = full & m;
      flags = (full > m ? CF : 0n) | (((a ^ res) & (b ^ res) & sign) !== 0n ? OF : 0n) | ((a ^ b ^ res) & 16n ? AF : 0n);
      break;
    }
    case 'sub': case 'sbb': case 'cmp': {
      const c = op === 'sbb' ? cin : 0n;
      res = (a - b - c) & m;
      flags = (a < b + c ? CF : 0n) | (((a ^ b) & (a ^ res) & sign) !== 0n ? OF : 0n) | ((a ^ b ^ res) & 16n ? AF : 0n);
      if (op === 'cmp') {
        flags |= szp(res, bits);
        return { asm, rax: a64, flags, mask };
      }
      break;
    }
    case 'and': res = a & b; mask = ALL & ~AF; break;
    case 'or': res = a | b; mask = ALL & ~AF; break;
    case 'xor': res = a ^ b; mask = ALL & ~AF; break;
    case 'test':
      res = a & b;
      return { asm, rax: a64, flags: szp(res, bits), mask: ALL & ~AF };
    case 'inc': case 'dec':
      asm = `${op} ${ra}`;
      res = (op === 'inc' ? a + 1n : a - 1n) & m;
      flags = cin | ((op === 'inc' ? res === sign : a === sign) ? OF : 0n) | ((a ^ 1n ^ res) & 16n ? AF : 0n);
      break;
    case 'neg':
      asm = `neg ${ra}`;
      res = (0n - a) & m;
      flags = (a !== 0n ? CF : 0n) | (a === sign ? OF : 0n) | ((a ^ res) & 16n ? AF : 0n);
      break;
    case 'not':
      asm = `not ${ra}`;
      return { asm, rax: merge(a64, ~a & m, bits), flags: cin, mask: CF };
    case 'shl': case 'shr': case 'sar': {
      asm = `${op} ${ra}, ${count}`;
      if (count === 0n) return undefined;
      if (op === 'shl') {
        res = (a << count) & m;
        const cf = count <= bits ? (a >> (bits - count)) & 1n : 0n;
        flags = cf | ((((res >> (bits - 1n)) & 1n) ^ cf) !== 0n ? OF : 0n);
      } else if (op === 'shr') {
        res = a >> count;
        flags = ((a >> (count - 1n)) & 1n) | ((a & sign) !== 0n ? OF : 0n);
      } else {
        const sa = signed(a, bits);
        res = (sa >> count) & m;
        flags = (sa >> (count - 1n)) & 1n;
      }
      mask = ALL & ~AF;
      if (count !== 1n) mask &= ~OF;
      if (count >= bits) mask &= ~CF;
      break;
    }
    case 'rol': case 'ror': {
      asm = `${op} ${ra}, ${count}`;
      const n = count % bits;
      if (count === 0n) return undefined;
      res = op === 'rol' ? ((a << n) | (a >> (bits - n))) & m : ((a >> n) | (a << (bits - n))) & m;
      const msb = (res >> (bits - 1n)) & 1n;
      const cf = op === 'rol' ? res & 1n : msb;
      const of = op === 'rol' ? msb ^ cf : msb ^ ((res >> (bits - 2n)) & 1n);
      return { asm, rax: merge(a64, res, bits), flags: cf | (of ? OF : 0n), mask: count === 1n ? CF | OF : CF };
    }
    case 'imul2': {
      if (bits === 8n) return undefined;
      asm = `imul ${ra}, ${rb}`;
      const p = signed(a, bits) * signed(b, bits);
      res = p & m;
      const over = signed(res, bits) !== p;
      return { asm, rax: merge(a64, res, bits), flags: over ? CF | OF : 0n, mask: CF | OF };
    }
    default: return undefined;
  }
  return { asm, rax: merge(a64, res, bits), flags: flags | szp(res, bits), mask };
}

function lcg(seed: number): () => bigint {
  let s = BigInt(seed);
  return () => {
    s = (s * 6364136223846793005n + 1442695040888963407n) & 0xffffffffffffffffn;
    return s;
  };
}

const OPS = ['add', 'adc', 'sub', 'sbb', 'cmp', 'and', 'or', 'xor', 'test', 'inc', 'dec', 'neg', 'not', 'shl', 'shr', 'sar', 'rol', 'ror', 'imul2'];
const EDGES = [0n, 1n, 0x7fn, 0x80n, 0xffn, 0x7fffn, 0x8000n, 0xffffn, 0x7fffffffn, 0x80000000n, 0xffffffffn,
  0x7fffffffffffffffn, 0x8000000000000000n, 0xffffffffffffffffn, 0x0fn, 0x10n];

function buildCases(): Array<Case & { a: bigint; b: bigint; cin: bigint }> {
  const rnd = lcg(42);
  const cases: Array<Case & { a: bigint; b: bigint; cin: bigint }> = [];
  for (const op of OPS) {
    for (const bits of [8n, 16n, 32n, 64n]) {
      for (let k = 0; k < 14; k++) {
        const a = k < 6 ? EDGES[(k * 3) % EDGES.length] : rnd();
        const b = k < 6 ? EDGES[(k * 5 + 2) % EDGES.length] : k % 3 === 0 ? EDGES[k % EDGES.length] : rnd();
        const cin = BigInt(k & 1);
        const count = BigInt(1 + (k * 7) % Number(bits === 64n ? 63n : 31n));
        const c = reference(op, bits, a, b, cin, k % 4 === 0 ? 1n : count);
        if (c !== undefined) cases.push({ ...c, a, b, cin });
      }
    }
  }
  return cases;
}

void test('integer ALU results and flags match the reference model for 8/16/32/64-bit operands', async () => {
  const cases = buildCases();
  const lines: string[] = ['mov rdi, 0x200000'];
  for (const c of cases) {
    lines.push(`mov rax, ${c.a}`, `mov rbx, ${c.b}`, `push ${c.cin === 1n ? 0x3 : 0x2}`, 'popfq', c.asm, 'pushfq', 'pop rcx',
      'mov [rdi], rax', 'mov [rdi+8], rcx', 'add rdi, 16');
  }
  lines.push('out 0xf4, al');
  const code = assemble(lines.join('\n'), 64);
  const result = await softRunner({
    code, loadAddress: 0x100000, state: longModeState(0x100000, 0x9000), memory: identityPageTables(0x9000),
  });
  assert.equal(result.exit.kind, 'debug-exit');
  const out = result.readMemory(0x200000, cases.length * 16);
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  let failures = 0;
  const messages: string[] = [];
  cases.forEach((c, i) => {
    const rax = dv.getBigUint64(i * 16, true);
    const flags = dv.getBigUint64(i * 16 + 8, true);
    if (rax !== c.rax || (flags & c.mask) !== (c.flags & c.mask)) {
      failures++;
      if (messages.length < 10) {
        messages.push(`${c.asm} a=0x${c.a.toString(16)} b=0x${c.b.toString(16)} cf=${c.cin}: rax 0x${rax.toString(16)} want 0x${c.rax.toString(16)}, flags 0x${(flags & c.mask).toString(16)} want 0x${(c.flags & c.mask).toString(16)}`);
      }
    }
  });
  assert.equal(failures, 0, `${failures}/${cases.length} cases differ:\n${messages.join('\n')}`);
  assert.ok(cases.length > 800);
});
