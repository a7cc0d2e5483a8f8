/**
 * Translated blocks against the interpreter: random instruction sequences of
 * each translated class (and mixes of them) run once on the interpreter and
 * once with translation forced at the first entry; registers, RFLAGS (from the
 * lazy record), RIP, instruction count and memory must be identical. Also
 * checks that blocks really ran, that TLB misses hand back exactly, and that
 * self-modifying code drops translated blocks.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CodeCache } from '../code-cache.js';
import { Cpu, RUN_HALTED } from '../cpu.js';
import { GuestRam } from '../guest-ram.js';
import { MonotonicClock } from '../soft-engine.js';
import { identityPageTables, longModeState } from '../test-support.js';
import { Jit } from './jit.js';
import { translateBlock } from './translate.js';
import { decode, D_STRIDE } from '../decoder.js';

const CODE = 0x100000;
const DATA = 0x200000;

/** A deterministic PRNG (xorshift32) so failures reproduce. */
function rng(seed: number): () => number {
  let s = seed | 0 || 1;
  return () => { s ^= s << 13; s ^= s >>> 17; s ^= s << 5; return s >>> 0; };
}

interface RunResult { modules: number; lo: number[]; hi: number[]; rip: number; flags: number; instructions: number; data: number[]; translated: number; entries: number; fault: string; readOnly: number }

/** The 2 MiB page at READ_ONLY is mapped without write permission (CR0.WP is set). */
const READ_ONLY = 0x400000;

/** How the translated run translates: at the first entry, one block per module (the default), or after `threshold` entries in batches. */
interface Batching { threshold: number; batch: number }

function runOnce(code: Uint8Array, init: (cpu: Cpu) => void, jit: boolean, batching: Batching = { threshold: 0, batch: 1 }): RunResult {
  const ram = new GuestRam(8 * 1024 * 1024);
  for (const m of identityPageTables(0x9000)) ram.guestMemory.writeBytes(m.address, m.bytes);
  ram.guestMemory.writeBytes(0x9000 + 0x2000 + (READ_ONLY >> 21) * 8, Uint8Array.from([0x85, 0, READ_ONLY >> 16, 0]));
  ram.guestMemory.writeBytes(CODE, code);
  const data = new Uint8Array(0x2000);
  for (let i = 0; i < data.length; i++) data[i] = (i * 151 + 7) & 0xff;
  ram.guestMemory.writeBytes(DATA, data);
  const cache = new CodeCache(ram.size);
  const cpu = new Cpu(0, ram, cache, null, new MonotonicClock());
  cpu.jit = jit ? new Jit(cache, ram, batching.threshold, batching.batch) : null; // whatever TYPEVISOR_SOFT_JIT says
  cpu.setState(longModeState(CODE, 0x9000));
  init(cpu);
  let fault = '';
  try {
    for (let i = 0; i < 1000 && cpu.run(1000) !== RUN_HALTED; i++) { /* until HLT */ }
  } catch (e) {
    fault = String(e); // no IDT: a fault ends in a triple fault
  }
  return {
    fault, readOnly: new DataView(ram.bytes.buffer, ram.bytes.byteOffset + READ_ONLY, 4).getInt32(0, true),
    lo: Array.from(cpu.lo), hi: Array.from(cpu.hi), rip: cpu.rip, flags: cpu.getFlags(), instructions: cpu.instructions,
    data: Array.from(ram.bytes.subarray(DATA, DATA + 0x2000)), translated: cpu.jit?.translated ?? 0, entries: cpu.jit?.entries ?? 0, modules: cpu.jit?.modules ?? 0,
  };
}

function compare(code: Uint8Array, init: (cpu: Cpu) => void, what: string, batching?: Batching): RunResult {
  const a = runOnce(code, init, false);
  const b = runOnce(code, init, true, batching);
  assert.deepEqual({ ...b, translated: 0, entries: 0, modules: 0 }, { ...a, translated: 0, entries: 0, modules: 0 }, what);
  return b;
}

// ---- encoders (64-bit mode) ----
const rex = (w: boolean, r: number, x: number, b: number): number => 0x40 | (w ? 8 : 0) | ((r >> 3) << 2) | ((x >> 3) << 1) | (b >> 3);
const modrm = (mod: number, reg: number, rm: number): number => (mod << 6) | ((reg & 7) << 3) | (rm & 7);
const imm32 = (v: number): number[] => [v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff];

/** Registers random instructions may write: not RBX (data pointer), RCX (loop counter) or RSP. */
const FREE = [0, 2, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

type Gen = (next: () => number) => number[];
const pick = (next: () => number, a: number[]): number => a[next() % a.length];
const anyReg = (next: () => number): number => next() % 16;

const CLASSES: Record<string, Gen> = {
  aluRR: (n) => { const w = (n() & 1) === 0; const d = pick(n, FREE); const s = anyReg(n); const k = n() % 8; const dir = n() & 2;
    return [rex(w, dir ? d : s, 0, dir ? s : d), (k << 3) | 1 | dir, dir ? modrm(3, d, s) : modrm(3, s, d)]; },
  aluImm: (n) => { const w = (n() & 1) === 0; const d = pick(n, FREE); const k = n() % 8;
    return (n() & 1) === 0 ? [rex(w, 0, 0, d), 0x83, modrm(3, k, d), n() & 0xff] : [rex(w, 0, 0, d), 0x81, modrm(3, k, d), ...imm32(n())]; },
  aluEax: (n) => [(n() & 1) === 0 ? 0x48 : 0x40, ((n() % 8) << 3) | 5, ...imm32(n())],
  adcSbb: (n) => { const w = (n() & 1) === 0; const d = pick(n, FREE); const s = anyReg(n); return [rex(w, s, 0, d), (n() & 1) === 0 ? 0x11 : 0x19, modrm(3, s, d)]; },
  test: (n) => { const w = (n() & 1) === 0; const d = anyReg(n); const s = anyReg(n); return [rex(w, s, 0, d), 0x85, modrm(3, s, d)]; },
  movRR: (n) => { const w = (n() & 1) === 0; const d = pick(n, FREE); const s = anyReg(n); return [rex(w, s, 0, d), 0x89, modrm(3, s, d)]; },
  movImm: (n) => { const d = pick(n, FREE);
    if ((n() % 3) === 0) return [rex(true, 0, 0, d), 0xb8 + (d & 7), ...imm32(n()), ...imm32(n())];
    if ((n() & 1) === 0) return [rex(false, 0, 0, d), 0xb8 + (d & 7), ...imm32(n())];
    return [rex((n() & 1) === 0, 0, 0, d), 0xc7, modrm(3, 0, d), ...imm32(n())]; },
  imul: (n) => { const w = (n() & 1) === 0; const d = pick(n, FREE); const s = anyReg(n); const f = n() % 3;
    if (f === 0) return [rex(w, d, 0, s), 0x0f, 0xaf, modrm(3, d, s)];
    if (f === 1) return [rex(w, d, 0, s), 0x6b, modrm(3, d, s), n() & 0xff];
    return [rex(w, d, 0, s), 0x69, modrm(3, d, s), ...imm32(n())]; },
  shift: (n) => { const w = (n() & 1) === 0; const d = pick(n, FREE); const sub = pick(n, [4, 5, 6]);
    return (n() & 3) === 0 ? [rex(w, 0, 0, d), 0xd1, modrm(3, sub, d)] : [rex(w, 0, 0, d), 0xc1, modrm(3, sub, d), n() & 0xff]; },
  lea: (n) => { const w = (n() & 1) === 0; const d = pick(n, FREE); const base = anyReg(n); const idx = pick(n, [0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
    return [rex(w, d, idx, base), 0x8d, modrm(2, d, 4), ((n() & 3) << 6) | ((idx & 7) << 3) | (base & 7), ...imm32(n())]; },
  movsxd: (n) => { const d = pick(n, FREE); const s = anyReg(n); return [rex((n() & 1) === 0, d, 0, s), 0x63, modrm(3, d, s)]; },
  cmov: (n) => { const d = pick(n, FREE); const s = anyReg(n); return [rex((n() & 1) === 0, d, 0, s), 0x0f, 0x40 | (n() & 15), modrm(3, d, s)]; },
  setcc: (n) => { const d = pick(n, FREE); return [rex(false, 0, 0, d), 0x0f, 0x90 | (n() & 15), modrm(3, 0, d)]; },
  movzx: (n) => { const d = pick(n, FREE); const s = anyReg(n); return [rex((n() & 1) === 0, d, 0, s), 0x0f, pick(n, [0xb6, 0xb7, 0xbe, 0xbf]), modrm(3, d, s)]; },
  incDec: (n) => { const d = pick(n, FREE); return [rex((n() & 1) === 0, 0, 0, d), 0xff, modrm(3, n() & 1, d)]; },
  load: (n) => { const d = pick(n, FREE); const disp = (n() % 0x1ff0) & ~((n() & 1) === 0 ? 7 : 0); // some unaligned, some page-crossing
    return [rex((n() & 1) === 0, d, 0, 3), 0x8b, modrm(2, d, 3), ...imm32(disp)]; },
  store: (n) => { const s = anyReg(n); const disp = n() % 0x1ff0;
    return [rex((n() & 1) === 0, s, 0, 3), 0x89, modrm(2, s, 3), ...imm32(disp)]; },
  push: (n) => { const s = anyReg(n); return s >= 8 ? [0x41, 0x50 + (s & 7)] : [0x50 + s]; },
  pop: (n) => { const d = pick(n, FREE); return d >= 8 ? [0x41, 0x58 + (d & 7)] : [0x58 + d]; },
  pushImm: (n) => (n() & 1) === 0 ? [0x6a, n() & 0xff] : [0x68, ...imm32(n())],
  nop: (n) => [[0x90], [0x66, 0x90], [0x0f, 0x1f, 0x44, 0, 0], [0xf3, 0x0f, 0x1e, 0xfa], [0x0f, 0x1f, 0x00], [0xf3, 0x90]][n() % 6],
  frame: (n) => { // push rbp / mov rbp,rsp / push r / push imm8 / leave
    const s = anyReg(n);
    return [0x55, 0x48, 0x89, 0xe5, ...(s >= 8 ? [0x41, 0x50 + (s & 7)] : [0x50 + s]), 0x6a, n() & 0xff, 0xc9]; },
};

/** Classes that leave RSP as they found it (bodies of called functions). */
const BALANCED = Object.keys(CLASSES).filter((c) => c !== 'push' && c !== 'pop' && c !== 'pushImm');

// ---- data-operation forms: memory operands, byte/word sizes, high-byte registers ----

/** A random operand size: 1 (byte opcode), 2 (66 prefix), 4, or 8 (REX.W). */
const anySize = (n: () => number): number => pick(n, [1, 2, 4, 8]);

/** Registers of an instruction at `size`: a writable destination and any source; byte forms without REX may name AH/DH (not CH/BH: RCX/RBX are reserved). */
function operands(n: () => number, size: number): { useRex: boolean; dst: number; src: number } {
  if (size === 1 && (n() & 1) === 0) return { useRex: false, dst: pick(n, [0, 2, 4, 6]), src: n() % 8 };
  return { useRex: true, dst: pick(n, FREE), src: anyReg(n) };
}

/** A displacement off RBX inside the two DATA pages (some unaligned, some crossing the page boundary). */
const dataDisp = (n: () => number, size: number): number => (n() % (0x2000 - size)) & ~((n() & 1) === 0 ? size - 1 : 0);

/**
 * Encodes opcode bytes with ModRM: reg field `regField`, r/m a register
 * (rm >= 0) or [rbx + disp32] (rm < 0), then the immediate bytes.
 */
function encode(size: number, useRex: boolean, opcode: number[], regField: number, rm: number, disp: number, imm: number[]): number[] {
  const out: number[] = [];
  if (size === 2) out.push(0x66);
  const rmReg = rm >= 0 ? rm : 3;
  if (useRex || size === 8 || regField >= 8 || rmReg >= 8) out.push(rex(size === 8, regField, 0, rmReg));
  out.push(...opcode);
  if (rm >= 0) out.push(modrm(3, regField, rm)); else out.push(modrm(2, regField, 3), ...imm32(disp));
  out.push(...imm);
  return out;
}

/** Immediate bytes of a `size` operand (imm8 for byte, imm16 for word, else imm32). */
const immOf = (n: () => number, size: number): number[] => {
  const v = n();
  return size === 1 ? [v & 0xff] : size === 2 ? [v & 0xff, (v >> 8) & 0xff] : imm32(v);
};
/** Opcode of a byte/word pair: the byte form is `op`, the word form `op + 1`. */
const sized = (op: number, size: number): number => (size === 1 ? op : op + 1);

/** NOP, multi-byte NOPs (with a memory operand that is never accessed), ENDBR64, 66 NOP. */
const NOPS = [[0x90], [0x0f, 0x1f, 0x00], [0x0f, 0x1f, 0x44, 0x00, 0x00], [0x66, 0x0f, 0x1f, 0x84, 0x00, 0, 0, 0, 0], [0xf3, 0x0f, 0x1e, 0xfa], [0x66, 0x90]];

/** CWDE, CDQE, CBW, CWD. */
const SIGN_EXTENDS = [[0x98], [0x48, 0x98], [0x66, 0x98], [0x66, 0x99]];

const DATA_CLASSES: Record<string, Gen> = {
  aluMem: (n) => { const size = anySize(n); const o = operands(n, size); const k = n() % 8; const toReg = (n() & 1) === 0;
    return encode(size, o.useRex, [sized((k << 3) | (toReg ? 2 : 0), size)], toReg ? o.dst : o.src, -1, dataDisp(n, size), []); },
  aluNarrow: (n) => { const size = pick(n, [1, 2]); const o = operands(n, size); const k = n() % 8; const toReg = (n() & 1) === 0;
    if (n() % 4 === 0) return [...(size === 2 ? [0x66] : []), sized((k << 3) | 4, size), ...immOf(n, size)]; // AL/AX op= imm
    return toReg ? encode(size, o.useRex, [sized((k << 3) | 2, size)], o.dst, o.src, 0, []) : encode(size, o.useRex, [sized(k << 3, size)], o.src, o.dst, 0, []); },
  group1: (n) => { const size = anySize(n); const o = operands(n, size); const k = n() % 8; const mem = (n() & 1) === 0;
    const rm = mem ? -1 : o.dst; const disp = dataDisp(n, size);
    if (size === 1) return encode(1, o.useRex, [0x80], k, rm, disp, immOf(n, 1));
    return (n() & 1) === 0 ? encode(size, o.useRex, [0x83], k, rm, disp, [n() & 0xff]) : encode(size, o.useRex, [0x81], k, rm, disp, immOf(n, size)); },
  testAll: (n) => { const size = anySize(n); const o = operands(n, size); const f = n() % 3; const rm = (n() & 1) === 0 ? -1 : o.dst; const disp = dataDisp(n, size);
    if (f === 0) return encode(size, o.useRex, [sized(0x84, size)], o.src, rm, disp, []);
    if (f === 1) return encode(size, o.useRex, [sized(0xf6, size)], 0, rm, disp, immOf(n, size));
    return [...(size === 2 ? [0x66] : []), ...(size === 8 ? [0x48] : []), sized(0xa8, size), ...immOf(n, size)]; },
  movAll: (n) => { const size = anySize(n); const o = operands(n, size); const f = n() % 4; const rm = (n() & 1) === 0 ? -1 : o.dst; const disp = dataDisp(n, size);
    if (f === 0) return encode(size, o.useRex, [sized(0x88, size)], o.src, rm, disp, []);
    if (f === 1) return encode(size, o.useRex, [sized(0x8a, size)], o.dst, (n() & 1) === 0 ? -1 : o.src, disp, []);
    if (f === 2) return encode(size, o.useRex, [sized(0xc6, size)], 0, rm, disp, immOf(n, size));
    if (size === 1) return [...(o.useRex ? [rex(false, 0, 0, o.dst)] : []), 0xb0 + (o.dst & 7), n() & 0xff];
    return size === 2 ? [0x66, rex(false, 0, 0, o.dst), 0xb8 + (o.dst & 7), ...immOf(n, 2)] : [rex(size === 8, 0, 0, o.dst), 0xc7, modrm(3, 0, o.dst), ...imm32(n())]; },
  incDecNotNeg: (n) => { const size = anySize(n); const o = operands(n, size); const rm = (n() & 1) === 0 ? -1 : o.dst; const disp = dataDisp(n, size);
    return (n() & 1) === 0 ? encode(size, o.useRex, [size === 1 ? 0xfe : 0xff], n() & 1, rm, disp, []) : encode(size, o.useRex, [sized(0xf6, size)], 2 + (n() & 1), rm, disp, []); },
  extend: (n) => { const size = pick(n, [2, 4, 8]); const useRex = size === 8 || (n() & 1) === 0; const dst = useRex ? pick(n, FREE) : pick(n, [0, 2, 5, 6, 7]);
    const src = useRex ? anyReg(n) : n() % 8; const op = pick(n, [0xb6, 0xb7, 0xbe, 0xbf, 0x63]); const rm = (n() & 1) === 0 ? -1 : src;
    return encode(size, useRex, op === 0x63 ? [0x63] : [0x0f, op], dst, rm, dataDisp(n, 4), []); },
  shiftAll: (n) => { const size = anySize(n); const o = operands(n, size); const sub = pick(n, [0, 1, 4, 5, 6, 7]); const rm = (n() & 1) === 0 ? -1 : o.dst; const disp = dataDisp(n, size);
    const f = n() % 3;
    if (f === 0) return encode(size, o.useRex, [sized(0xc0, size)], sub, rm, disp, [n() & 0xff]);
    return encode(size, o.useRex, [sized(f === 1 ? 0xd0 : 0xd2, size)], sub, rm, disp, []); },
  rotateFlags: (n) => { const size = anySize(n); const o = operands(n, size); const rm = (n() & 3) === 0 ? -1 : o.dst; const disp = dataDisp(n, size);
    const f = n() % 4; const sub = n() & 1;
    if (f === 0) return encode(size, o.useRex, [sized(0xc0, size)], sub, rm, disp, [n() & 0xff]);
    if (f === 1) return encode(size, o.useRex, [sized(0xd0, size)], sub, rm, disp, []);
    if (f === 2) return encode(size, o.useRex, [sized(0xd2, size)], sub, rm, disp, []);
    if ((n() & 1) === 0) return CLASSES.aluRR(n); // a writer whose AF, ZF, SF, PF a rotate keeps
    return [0x0f, 0x90 | (n() & 15), modrm(3, 0, pick(n, [0, 2]))]; }, // SETcc AL/DL reads the flags a rotate kept
  condMem: (n) => { const cc = n() & 15;
    if ((n() & 1) === 0) return [0x0f, 0x90 | cc, modrm(2, 0, 3), ...imm32(dataDisp(n, 1))];
    const size = pick(n, [2, 4, 8]); return encode(size, true, [0x0f, 0x40 | cc], pick(n, FREE), (n() & 1) === 0 ? -1 : anyReg(n), dataDisp(n, size), []); },
  nops: (n) => NOPS[n() % NOPS.length],
  // MUL/IMUL/DIV/IDIV r/m at 32/64 bits; CQO/CDQ or XOR EDX,EDX before some divides so most do not fault.
  mulDiv: (n) => { const size = pick(n, [4, 8]); const sub = 4 + (n() & 3); const src = pick(n, [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
    const rm = (n() & 1) === 0 ? -1 : src; const disp = dataDisp(n, size);
    const prep = sub < 6 || (n() & 3) === 0 ? [] : sub === 7 ? [...(size === 8 ? [0x48] : []), 0x99] : [0x31, 0xd2];
    if ((n() & 7) === 0) prep.unshift(...SIGN_EXTENDS[n() % SIGN_EXTENDS.length]);
    return [...prep, ...encode(size, true, [0xf7], sub, rm, disp, [])]; },
  imulMem: (n) => { const size = pick(n, [4, 8]); const d = pick(n, FREE); const disp = dataDisp(n, size); const f = n() % 3;
    if (f === 0) return encode(size, true, [0x0f, 0xaf], d, -1, disp, []);
    return f === 1 ? encode(size, true, [0x6b], d, -1, disp, [n() & 0xff]) : encode(size, true, [0x69], d, -1, disp, imm32(n())); },
  // FS/GS-based operands (bases set by randomInit); LEA ignores the segment.
  segMem: (n) => {
    const gens: Gen[] = [DATA_CLASSES.aluMem, DATA_CLASSES.movAll, DATA_CLASSES.group1, DATA_CLASSES.shiftAll, CLASSES.lea];
    return [pick(n, [0x64, 0x65]), ...gens[n() % gens.length](n)];
  },
};
Object.assign(CLASSES, DATA_CLASSES);

/** body / LOOP body / hlt (RCX counts; LOOP leaves the flags alone and is not translated). */
function loopInstructionProgram(body: number[]): Uint8Array {
  return Uint8Array.from([...body, 0xe2, (-(body.length + 2)) & 0xff, 0xf4]);
}

/** Instructions in `code` (64-bit decoding). */
function instructionCount(code: number[]): number {
  const rec = new Int32Array(D_STRIDE);
  let at = 0;
  let count = 0;
  while (at < code.length) { at += decode({ byte: (i) => code[at + i] ?? 0 }, 64, rec, 0); count++; }
  return count;
}

/** Instructions the translator takes into the block at the start of `code`. */
function translatedCount(code: Uint8Array): number {
  const mem = new Uint8Array(65536);
  mem.set(code);
  return translateBlock(mem, 0, CODE)?.count ?? 0;
}

/** body (random instructions) / sub ecx,1 / jnz body / hlt */
function loopProgram(body: number[]): Uint8Array {
  const jnz = [0x0f, 0x85, ...imm32(-(body.length + 3 + 6))];
  return Uint8Array.from([...body, 0x83, 0xe9, 0x01, ...jnz, 0xf4]);
}

function randomInit(next: () => number): (cpu: Cpu) => void {
  const values = Array.from({ length: 32 }, () => next() | 0);
  const flagOp = next() & 3;
  return (cpu) => {
    for (let i = 0; i < 16; i++) { cpu.lo[i] = values[i]; cpu.hi[i] = values[16 + i]; }
    cpu.lo[3] = DATA; cpu.hi[3] = 0;
    cpu.lo[1] = 3; cpu.hi[1] = 0;
    cpu.lo[4] = DATA + 0x1000; cpu.hi[4] = 0; // the stack is in the compared data
    cpu.segBase[4] = 0x100; cpu.segBase[5] = -0x100; // FS, GS
    cpu.setFlags(values[5] & 0x8d5, 0x8d5); // random arithmetic flags on entry (no lazy record)
    if (flagOp === 1) cpu.setLazy(1, 8, values[6], values[7], values[8], values[9], values[10], values[11]); // an ADD record
  };
}

for (const name of Object.keys(CLASSES)) {
  test(`translated ${name} matches the interpreter on random operands`, () => {
    const next = rng(0x9e3779b9 ^ name.length * 7919 ^ name.charCodeAt(0));
    let entries = 0;
    for (let trial = 0; trial < 40; trial++) {
      const body: number[] = [];
      for (let i = 0; i < 6; i++) body.push(...CLASSES[name](next));
      // Odd trials end the body with LOOP (not translated, flags untouched): the block exits before it, so the
      // final RFLAGS are the body's (the record stored at an exit); even trials loop inside wasm with SUB/JNZ.
      const viaLoop = (trial & 1) === 1;
      const program = viaLoop ? loopInstructionProgram(body) : loopProgram(body);
      const r = compare(program, randomInit(next), `${name} trial ${trial}${viaLoop ? ' (LOOP)' : ''}: ${body.map((b) => b.toString(16).padStart(2, '0')).join(' ')}`);
      const inBody = instructionCount(body);
      assert.equal(translatedCount(program), viaLoop ? inBody : inBody + 2, `${name} trial ${trial}: the whole body is one block`);
      entries += r.entries;
    }
    assert.ok(entries > 0, 'blocks ran');
  });
}

test('mixed random blocks of every class match the interpreter', () => {
  const next = rng(12345);
  const names = Object.keys(CLASSES);
  for (let trial = 0; trial < 300; trial++) {
    const body: number[] = [];
    const len = 1 + (next() % 30);
    for (let i = 0; i < len; i++) body.push(...CLASSES[names[next() % names.length]](next));
    compare(loopProgram(body), randomInit(next), `mixed trial ${trial}: ${body.map((b) => b.toString(16).padStart(2, '0')).join(' ')}`);
  }
});

test('a store that misses the TLB exits before it with exact state, then the block runs from the fast path', () => {
  // mov rax,[rbx]; add rax,rcx; mov [rbx+8],rax; sub ecx,1; jnz; hlt — the first pass misses (TLB cold).
  const body = [0x48, 0x8b, 0x03, 0x48, 0x01, 0xc8, 0x48, 0x89, 0x43, 0x08];
  const r = compare(loopProgram(body), (cpu) => { cpu.lo[3] = DATA; cpu.lo[1] = 5; }, 'tlb');
  assert.ok(r.entries >= 1, `entries ${r.entries}`);
});

/** body / sub r8d,1 / jnz body / hlt: a loop that leaves RCX to the body. */
function loopR8(body: number[]): Uint8Array {
  return Uint8Array.from([...body, 0x41, 0x83, 0xe8, 0x01, 0x0f, 0x85, ...imm32(-(body.length + 4 + 6)), 0xf4]);
}

test('a shift by CL with a zero count exits to the interpreter: value and flags unchanged', () => {
  // add eax, edx / shl rsi, cl / sar edi, cl / setc al / seto ah / shr byte [rbx+1], cl / shl word [rbx+2], cl, with CL 0, 5, 32, 64.
  const body = [0x01, 0xd0, 0x48, 0xd3, 0xe6, 0xd3, 0xff, 0x0f, 0x92, 0xc0, 0x0f, 0x90, 0xc4, 0xd2, 0x6b, 0x01, 0x66, 0xd3, 0x63, 0x02];
  for (const cl of [0, 5, 32, 0x40]) {
    const r = compare(loopR8(body), (cpu) => {
      cpu.lo[0] = 0x7fffffff; cpu.lo[2] = 1; cpu.lo[6] = 0x12345678; cpu.hi[6] = -1; cpu.lo[7] = -8; cpu.hi[7] = 5;
      cpu.lo[1] = cl; cpu.lo[3] = DATA; cpu.lo[8] = 4;
    }, `cl ${cl}`);
    assert.ok(r.entries >= 1, `cl ${cl}: blocks ran`);
  }
});

test('a read-modify-write of a read-only page exits to the interpreter (write probe), which faults', () => {
  // add [rsi], eax / mov rsi, rbx / mov eax, [rbx] / loop: the second pass (translated) adds to the
  // read-only page, whose read TLB entry the load filled.
  const body = [0x01, 0x06, 0x48, 0x89, 0xde, 0x8b, 0x03];
  const init = (cpu: Cpu): void => { cpu.lo[6] = DATA; cpu.lo[3] = READ_ONLY; cpu.lo[8] = 3; };
  const a = runOnce(loopR8(body), init, false);
  const b = runOnce(loopR8(body), init, true);
  assert.match(a.fault, /triple|fault/i);
  assert.equal(b.readOnly, a.readOnly, 'the read-only page is unchanged');
  assert.deepEqual({ ...b, translated: 0, entries: 0, modules: 0 }, { ...a, translated: 0, entries: 0, modules: 0 });
  assert.ok(b.translated >= 1);
});

test('materialized flags (after a rotate) survive a block that exits before writing flags', () => {
  // mov edx, 5 / mov eax, [rbx+0xffe] (crosses a page: always exits) / setc dl / seto dh / setp sil / sets dil /
  // add eax, edx / rol eax, 3 / loop. From the second pass the block at the start enters with the rotate's
  // materialized flags and exits after one instruction; the next block reads them.
  const body = [0xba, 5, 0, 0, 0, 0x8b, 0x83, ...imm32(0xffe), 0x0f, 0x92, 0xc2, 0x0f, 0x90, 0xc6, 0x40, 0x0f, 0x9a, 0xc6, 0x40, 0x0f, 0x98, 0xc7,
    0x01, 0xd0, 0xc1, 0xc0, 0x03];
  for (const disp of [0xffe, 0x1ffd, 0xfff, 0x1ffe]) {
    const code = loopInstructionProgram(body);
    code.set(imm32(disp), 7);
    // Two passes: the second (translated) one's SETcc results are the final register values.
    const r = compare(code, (cpu) => { cpu.lo[3] = DATA; cpu.lo[1] = 2; }, `disp ${disp}`);
    assert.ok(r.entries >= 2);
  }
});

test('self-modifying code drops the translated block', () => {
  // 1: mov eax, 1 ; add edx, eax ; mov byte [rip + (imm of the first mov)], 7 ... via rbx: mov [rbx], sil
  // Code at CODE: b8 01 00 00 00 (mov eax,1) / 01 c2 (add edx,eax) / 40 88 33 (mov [rbx],sil) / 83 e9 01 / 0f 85 .. / f4
  const code = Uint8Array.from([0xb8, 0x01, 0x00, 0x00, 0x00, 0x01, 0xc2, 0x40, 0x88, 0x33, 0x83, 0xe9, 0x01, 0x0f, 0x85, ...imm32(-19), 0xf4]);
  const init = (cpu: Cpu): void => { cpu.lo[3] = CODE + 1; cpu.lo[6] = 7; cpu.lo[1] = 3; cpu.lo[2] = 0; };
  const r = compare(code, init, 'smc');
  assert.equal(r.lo[2], 1 + 7 + 7, 'edx: first pass adds 1, later passes see the rewritten immediate 7');
});

test('a block reached at another linear address (aliased mapping) is not run with the old RIPs', () => {
  // Code at CODE, also reached at CODE + 1 GiB through a second PDPT entry: lea rax,[rip+0] / hlt, twice.
  const code = Uint8Array.from([0x48, 0x8d, 0x05, 0, 0, 0, 0, 0x48, 0x89, 0xc2, 0xf4]);
  const ram = new GuestRam(8 * 1024 * 1024);
  const tables = identityPageTables(0x9000);
  for (const m of tables) ram.guestMemory.writeBytes(m.address, m.bytes);
  ram.guestMemory.writeBytes(0xa000 + 8, Uint8Array.from([0x07, 0xe0, 0, 0, 0, 0, 0, 0])); // PDPT[1] -> a copy of the PD at 0xe000
  ram.guestMemory.writeBytes(0xe000, ram.bytes.slice(0xb000, 0xc000));
  ram.guestMemory.writeBytes(CODE, code);
  const cache = new CodeCache(ram.size);
  const cpu = new Cpu(0, ram, cache, null, new MonotonicClock());
  cpu.jit = new Jit(cache, ram, 0);
  cpu.setState(longModeState(CODE, 0x9000));
  while (cpu.run(100) !== RUN_HALTED) { /* until HLT */ }
  assert.equal(cpu.lo[0], CODE + 7);
  cpu.halted = false;
  cpu.rip = CODE + 0x4000_0000;
  while (cpu.run(100) !== RUN_HALTED) { /* until HLT */ }
  assert.equal(cpu.lo[0], (CODE + 0x4000_0000 + 7) | 0);
  assert.equal(cpu.rip, CODE + 0x4000_0000 + code.length);
});

test('a self-looping block stops exactly at the batch limit (lockstep with the interpreter, odd batch sizes)', () => {
  // mov rax,[rbx] / add rax,rcx / mov [rbx+8],rax / imul rdx,rax / sub ecx,1 / jnz — 1000 iterations.
  const body = [0x48, 0x8b, 0x03, 0x48, 0x01, 0xc8, 0x48, 0x89, 0x43, 0x08, 0x48, 0x0f, 0xaf, 0xd0];
  const b = lockstep(loopProgram(body), (cpu) => { cpu.lo[3] = DATA; cpu.lo[1] = 1000; cpu.lo[2] = 3; }, 'self loop');
  assert.ok((b.jit?.entries ?? 0) > 0);
});

/**
 * loop: main / call f / sub ecx,1 / jnz loop / hlt; f: fBody / call g / fTail / ret; g: gBody / ret.
 */
function callProgram(main: number[], fBody: number[], fTail: number[], gBody: number[]): Uint8Array {
  const callAt = main.length;
  const loopLen = callAt + 5 + 3 + 6;
  const f = loopLen + 1;
  const fCall = f + fBody.length;
  const g = fCall + 5 + fTail.length + 1;
  return Uint8Array.from([
    ...main, 0xe8, ...imm32(f - (callAt + 5)), 0x83, 0xe9, 0x01, 0x0f, 0x85, ...imm32(-loopLen), 0xf4,
    ...fBody, 0xe8, ...imm32(g - (fCall + 5)), ...fTail, 0xc3,
    ...gBody, 0xc3,
  ]);
}

test('nested CALL/RET with random bodies (stack in the compared data) match the interpreter', () => {
  const next = rng(0x5eed);
  const names = Object.keys(CLASSES);
  let entries = 0;
  const body = (len: number, from: string[]): number[] => {
    const out: number[] = [];
    for (let i = 0; i < len; i++) out.push(...CLASSES[from[next() % from.length]](next));
    return out;
  };
  for (let trial = 0; trial < 150; trial++) {
    const code = callProgram(body(next() % 8, names), body(next() % 6, BALANCED), body(next() % 6, BALANCED), body(next() % 6, BALANCED));
    const r = compare(code, randomInit(next), `call trial ${trial}: ${Array.from(code, (b) => b.toString(16).padStart(2, '0')).join(' ')}`);
    entries += r.entries;
  }
  assert.ok(entries > 0, 'blocks ran');
});

test('stack accesses off the fast path (page-crossing, untouched page) exit before the instruction', () => {
  // push rax / push rdx / pop rsi / call f / sub ecx,1 / jnz / hlt ; f: push rdi / pop rdi / ret
  const main = [0x50, 0x52, 0x5e];
  const code = callProgram(main, [0x57, 0x5f], [], []);
  for (const sp of [DATA + 0x1004, DATA + 0x100c, DATA + 0x1010, 0x7f0008]) {
    const r = compare(code, (cpu) => { cpu.lo[1] = 4; cpu.lo[4] = sp; cpu.lo[0] = 0x1234; cpu.lo[2] = -7; }, `rsp ${sp.toString(16)}`);
    assert.ok(r.entries > 0, `entries at rsp ${sp.toString(16)}`);
  }
});

test('RET to an address computed at run time, POP RSP and PUSH RSP match the interpreter', () => {
  // lea rax,[rip+after] ... : push rsp / pop rsp / lea rax,[rip+2] / push rax / ret / (after:) add edx,1 / sub ecx,1 / jnz / hlt
  const code = Uint8Array.from([
    0x54, 0x5c, 0x54, 0x58, // push rsp / pop rsp / push rsp / pop rax
    0x48, 0x8d, 0x05, ...imm32(4), 0x50, 0xc3, // lea rax,[rip+4] / push rax / ret -> after
    0x90, 0x90,
    0x83, 0xc2, 0x01, 0x83, 0xe9, 0x01, 0x0f, 0x85, ...imm32(-(4 + 7 + 2 + 2 + 3 + 3 + 6)), 0xf4,
  ]);
  // The ret skips the two NOPs: lea's target is 4 bytes after its end (past push, ret and the NOPs).
  const r = compare(code, (cpu) => { cpu.lo[1] = 5; cpu.lo[4] = DATA + 0x800; }, 'ret');
  assert.equal(r.lo[2], 5);
  assert.ok(r.entries > 0);
});

/** Runs `code` in lockstep on the interpreter and with translation, batch by batch with odd budgets. */
function lockstep(code: Uint8Array, init: (cpu: Cpu) => void, what: string): Cpu {
  const make = (jit: boolean): Cpu => {
    const ram = new GuestRam(8 * 1024 * 1024);
    for (const m of identityPageTables(0x9000)) ram.guestMemory.writeBytes(m.address, m.bytes);
    ram.guestMemory.writeBytes(CODE, code);
    const cache = new CodeCache(ram.size);
    const cpu = new Cpu(0, ram, cache, null, new MonotonicClock());
    cpu.jit = jit ? new Jit(cache, ram, 0) : null;
    cpu.setState(longModeState(CODE, 0x9000));
    init(cpu);
    return cpu;
  };
  const a = make(false);
  const b = make(true);
  for (let batch = 0; batch < 20_000; batch++) {
    const budget = 1 + ((batch * 37) % 101);
    const ra = a.run(budget);
    const rb = b.run(budget);
    assert.equal(rb, ra);
    assert.equal(b.instructions, a.instructions, `${what} batch ${batch}`);
    assert.equal(b.rip, a.rip, `${what} batch ${batch}`);
    assert.deepEqual(Array.from(b.lo), Array.from(a.lo), `${what} batch ${batch}`);
    assert.deepEqual(Array.from(b.hi), Array.from(a.hi), `${what} batch ${batch}`);
    assert.equal(b.getFlags(), a.getFlags(), `${what} batch ${batch}`);
    if (ra === RUN_HALTED) break;
  }
  assert.equal(a.halted, true, `${what}: halted`);
  return b;
}

test('chained blocks (calls, returns, loops) stop exactly at the batch limit and really chain', () => {
  const next = rng(0xc4a1);
  let chained = 0;
  for (let trial = 0; trial < 20; trial++) {
    const body = (len: number): number[] => {
      const out: number[] = [];
      for (let i = 0; i < len; i++) out.push(...CLASSES[BALANCED[next() % BALANCED.length]](next));
      return out;
    };
    const code = callProgram(body(1 + next() % 5), body(next() % 5), body(next() % 5), body(next() % 5));
    const initValues = randomInit(next);
    const b = lockstep(code, (cpu) => { initValues(cpu); cpu.lo[1] = 200; }, `lockstep trial ${trial}`);
    const jit = b.jit as Jit;
    chained += jit.blocksRun - jit.entries;
  }
  assert.ok(chained > 1000, `blocks run without returning to JavaScript: ${chained}`);
});

/** add al,bl / sub al,bl / and al,bl / cmp al,bl / inc al / add ax,bx / sub ax,bx. */
const NARROW_ALU = [[0x00, 0xd8], [0x28, 0xd8], [0x20, 0xd8], [0x38, 0xd8], [0xfe, 0xc0], [0x66, 0x01, 0xd8], [0x66, 0x29, 0xd8]];

test('flags handed from block to block (and from 8-bit interpreted operations) match the interpreter', () => {
  const next = rng(0xf1a6);
  const names = Object.keys(CLASSES);
  for (let trial = 0; trial < 300; trial++) {
    const body: number[] = [];
    const len = 1 + (next() % 20);
    for (let i = 0; i < len; i++) {
      const roll = next() % 8;
      if (roll === 0) body.push(0xe9, 0, 0, 0, 0); // jmp to the next instruction: ends the block
      else if (roll === 1) body.push(...NARROW_ALU[next() % NARROW_ALU.length]); // interpreted: an 8- or 16-bit record
      else body.push(...CLASSES[names[next() % names.length]](next));
    }
    compare(loopProgram(body), randomInit(next), `flags trial ${trial}: ${body.map((b) => b.toString(16).padStart(2, '0')).join(' ')}`);
  }
});

test('blocks compiled in batches (several blocks per module, after a threshold) match the interpreter', () => {
  const next = rng(0xba7c);
  const names = Object.keys(CLASSES);
  const body = (len: number, from: string[]): number[] => {
    const out: number[] = [];
    for (let i = 0; i < len; i++) out.push(...CLASSES[from[next() % from.length]](next));
    return out;
  };
  let translated = 0;
  let modules = 0;
  for (let trial = 0; trial < 60; trial++) {
    const code = callProgram(body(next() % 8, names), body(next() % 6, BALANCED), body(next() % 6, BALANCED), body(next() % 6, BALANCED));
    const init = randomInit(next);
    const r = compare(code, (cpu) => { init(cpu); cpu.lo[1] = 40; }, `batch trial ${trial}`, { threshold: 2, batch: 4 });
    translated += r.translated;
    modules += r.modules;
  }
  assert.ok(translated > 60 && translated > 2 * modules, `batches were compiled and put in service (${translated} blocks in ${modules} modules)`);
});

/**
 * loop: call f / cmp ecx,5 / jne skip / mov [rbx],sil / skip: sub ecx,1 / jnz loop / hlt ; f (next page): mov eax,1 /
 * add edx,eax / ret. The store at ecx = 5 rewrites f's immediate to 7: EDX ends at 6 * 1 + 4 * 7.
 */
function smcCallProgram(): { code: Uint8Array; init: (cpu: Cpu) => void } {
  const f = 0x1000;
  const loop = [0xe8, ...imm32(f - 5), 0x83, 0xf9, 0x05, 0x75, 0x03, 0x40, 0x88, 0x33, 0x83, 0xe9, 0x01, 0x0f, 0x85];
  const code = new Uint8Array(f + 16);
  code.set([...loop, ...imm32(-(loop.length + 4)), 0xf4]);
  code.set([0xb8, 0x01, 0x00, 0x00, 0x00, 0x01, 0xc2, 0xc3], f);
  return { code, init: (cpu) => { cpu.lo[3] = CODE + f + 1; cpu.lo[6] = 7; cpu.lo[1] = 10; cpu.lo[2] = 0; } };
}

test('a block queued for its batch whose code is rewritten before the batch compiles is dropped, not run', () => {
  // Translation after a few entries and a batch larger than the program: blocks wait in the queue until entered
  // again, and the store rewrites f's page while its block may still be queued.
  const { code, init } = smcCallProgram();
  for (const threshold of [1, 2, 3, 4]) {
    const r = compare(code, init, `smc batched, threshold ${threshold}`, { threshold, batch: 64 });
    assert.equal(r.lo[2], 6 * 1 + 4 * 7, 'edx: f adds 1 until the store at ecx = 5, then 7');
  }
});

test('self-modifying code drops a block from the dispatch table too', () => {
  const { code, init } = smcCallProgram();
  const r = compare(code, init, 'smc chained');
  assert.equal(r.lo[2], 6 * 1 + 4 * 7, 'edx: f adds 1 until the store at ecx = 5, then 7');
  lockstep(code, init, 'smc chained lockstep');
});

test('a chained call to a linear page remapped to other code runs the new code', () => {
  // L1: call f / sub ecx,1 / jnz L1 / mov [rdi],r8 (PD entry) / mov rax,cr3 / mov cr3,rax / mov ecx,5 /
  // L2: call g / call f / sub ecx,1 / jnz L2 / hlt. g (same linear page as f, only in the new mapping) refills the
  // exec TLB entry of f's page first, so only the code-page check keeps the dispatcher from the old f.
  const F = 0x400800; // not at a multiple of the decode cache size from CODE (that slot would be shared)
  const call = (at: number, to: number): number[] => [0xe8, ...imm32(to - (CODE + at + 5))];
  const l1 = [...call(0, F), 0x83, 0xe9, 0x01, 0x0f, 0x85, ...imm32(-14)];
  const mid = [0x4c, 0x89, 0x07, 0x0f, 0x20, 0xd8, 0x0f, 0x22, 0xd8, 0xb9, 0x05, 0, 0, 0];
  const at2 = l1.length + mid.length;
  const code = Uint8Array.from([...l1, ...mid, ...call(at2, F + 0x100), ...call(at2 + 5, F), 0x83, 0xe9, 0x01, 0x0f, 0x85, ...imm32(-19), 0xf4]);
  const init = (cpu: Cpu): void => {
    cpu.ram.guestMemory.writeBytes(F, Uint8Array.from([0x83, 0xc2, 0x01, 0xc3])); // add edx,1 / ret
    cpu.ram.guestMemory.writeBytes(0x600800, Uint8Array.from([0x83, 0xc2, 0x64, 0xc3])); // add edx,100 / ret
    cpu.ram.guestMemory.writeBytes(0x600900, Uint8Array.from([0x81, 0xc2, ...imm32(1000), 0xc3])); // add edx,1000 / ret
    cpu.lo[1] = 5; cpu.lo[2] = 0; cpu.lo[7] = 0x9000 + 0x2000 + 2 * 8; cpu.lo[8] = 0x600087;
  };
  const r = compare(code, init, 'remap');
  assert.equal(r.lo[2], 5 + 5 * 1100);
  lockstep(code, init, 'remap lockstep');
});

test('a loop reached at two linear addresses of one page runs with the right RIPs at each', () => {
  // At CODE and at CODE + 1 GiB: loop: call f / lea rax,[rip] / add rdx,rax / sub ecx,1 / jnz loop / hlt ; f: add edx,1 / ret
  const body = [0xe8, ...imm32(0), 0x48, 0x8d, 0x05, 0, 0, 0, 0, 0x48, 0x01, 0xc2, 0x83, 0xe9, 0x01, 0x0f, 0x85];
  const fAt = body.length + 4 + 1;
  body.splice(1, 4, ...imm32(fAt - 5));
  const code = Uint8Array.from([...body, ...imm32(-(body.length + 4)), 0xf4, 0x83, 0xc2, 0x01, 0xc3]);
  const run = (jit: boolean): Cpu => {
    const ram = new GuestRam(8 * 1024 * 1024);
    for (const m of identityPageTables(0x9000)) ram.guestMemory.writeBytes(m.address, m.bytes);
    ram.guestMemory.writeBytes(0xa000 + 8, Uint8Array.from([0x07, 0xe0, 0, 0, 0, 0, 0, 0])); // PDPT[1] -> a copy of the PD
    ram.guestMemory.writeBytes(0xe000, ram.bytes.slice(0xb000, 0xc000));
    ram.guestMemory.writeBytes(CODE, code);
    const cache = new CodeCache(ram.size);
    const cpu = new Cpu(0, ram, cache, null, new MonotonicClock());
    cpu.jit = jit ? new Jit(cache, ram, 0) : null;
    cpu.setState(longModeState(CODE, 0x9000));
    for (let pass = 0; pass < 4; pass++) {
      cpu.halted = false;
      cpu.rip = CODE + (pass & 1) * 0x4000_0000;
      cpu.lo[1] = 20;
      while (cpu.run(97) !== RUN_HALTED) { /* until HLT */ }
    }
    return cpu;
  };
  const a = run(false);
  const b = run(true);
  assert.deepEqual(Array.from(b.lo), Array.from(a.lo));
  assert.deepEqual(Array.from(b.hi), Array.from(a.hi));
  assert.equal(b.rip, a.rip);
  assert.equal(b.instructions, a.instructions);
  assert.ok((b.jit as Jit).blocksRun > (b.jit as Jit).entries, 'chained');
});

test('90 with REX.B is XCHG r8, rAX (not a NOP): the translator leaves it to the interpreter', () => {
  assert.equal(translatedCount(Uint8Array.from([0x41, 0x90, 0xf4])), 0);
  assert.equal(translatedCount(Uint8Array.from([0xf3, 0x90, 0x90, 0x41, 0x90])), 2); // PAUSE, NOP, then the XCHG ends the block
});
