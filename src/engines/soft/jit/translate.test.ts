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

const CODE = 0x100000;
const DATA = 0x200000;

/** A deterministic PRNG (xorshift32) so failures reproduce. */
function rng(seed: number): () => number {
  let s = seed | 0 || 1;
  return () => { s ^= s << 13; s ^= s >>> 17; s ^= s << 5; return s >>> 0; };
}

interface RunResult { lo: number[]; hi: number[]; rip: number; flags: number; instructions: number; data: number[]; translated: number; entries: number }

function runOnce(code: Uint8Array, init: (cpu: Cpu) => void, jit: boolean): RunResult {
  const ram = new GuestRam(8 * 1024 * 1024);
  for (const m of identityPageTables(0x9000)) ram.guestMemory.writeBytes(m.address, m.bytes);
  ram.guestMemory.writeBytes(CODE, code);
  const data = new Uint8Array(0x2000);
  for (let i = 0; i < data.length; i++) data[i] = (i * 151 + 7) & 0xff;
  ram.guestMemory.writeBytes(DATA, data);
  const cache = new CodeCache(ram.size);
  const cpu = new Cpu(0, ram, cache, null, new MonotonicClock());
  cpu.jit = jit ? new Jit(cache, ram, 0) : null; // whatever TYPEVISOR_SOFT_JIT says
  cpu.setState(longModeState(CODE, 0x9000));
  init(cpu);
  for (let i = 0; i < 1000 && cpu.run(1000) !== RUN_HALTED; i++) { /* until HLT */ }
  return {
    lo: Array.from(cpu.lo), hi: Array.from(cpu.hi), rip: cpu.rip, flags: cpu.getFlags(), instructions: cpu.instructions,
    data: Array.from(ram.bytes.subarray(DATA, DATA + 0x2000)), translated: cpu.jit?.translated ?? 0, entries: cpu.jit?.entries ?? 0,
  };
}

function compare(code: Uint8Array, init: (cpu: Cpu) => void, what: string): RunResult {
  const a = runOnce(code, init, false);
  const b = runOnce(code, init, true);
  assert.deepEqual({ ...b, translated: 0, entries: 0 }, { ...a, translated: 0, entries: 0 }, what);
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
  nop: (n) => pick(n, [0, 1, 2, 3, 4, 5, 6]) === 0 ? [0x41, 0x90] // XCHG r8d,eax: interpreted
    : [[0x90], [0x66, 0x90], [0x0f, 0x1f, 0x44, 0, 0], [0xf3, 0x0f, 0x1e, 0xfa], [0x0f, 0x1f, 0x00], [0xf3, 0x90]][n() % 6],
  frame: (n) => { // push rbp / mov rbp,rsp / push r / push imm8 / leave
    const s = anyReg(n);
    return [0x55, 0x48, 0x89, 0xe5, ...(s >= 8 ? [0x41, 0x50 + (s & 7)] : [0x50 + s]), 0x6a, n() & 0xff, 0xc9]; },
};

/** Classes that leave RSP as they found it (bodies of called functions). */
const BALANCED = Object.keys(CLASSES).filter((c) => c !== 'push' && c !== 'pop' && c !== 'pushImm');

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
      const r = compare(loopProgram(body), randomInit(next), `${name} trial ${trial}: ${body.map((b) => b.toString(16).padStart(2, '0')).join(' ')}`);
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
  const code = loopProgram(body);
  const make = (jit: boolean): Cpu => {
    const ram = new GuestRam(8 * 1024 * 1024);
    for (const m of identityPageTables(0x9000)) ram.guestMemory.writeBytes(m.address, m.bytes);
    ram.guestMemory.writeBytes(CODE, code);
    const cache = new CodeCache(ram.size);
    const cpu = new Cpu(0, ram, cache, null, new MonotonicClock());
    cpu.jit = jit ? new Jit(cache, ram, 0) : null;
    cpu.setState(longModeState(CODE, 0x9000));
    cpu.lo[3] = DATA; cpu.lo[1] = 1000; cpu.lo[2] = 3;
    return cpu;
  };
  const a = make(false);
  const b = make(true);
  for (let batch = 0; batch < 10_000; batch++) {
    const budget = 1 + ((batch * 37) % 101);
    const ra = a.run(budget);
    const rb = b.run(budget);
    assert.equal(rb, ra);
    assert.equal(b.instructions, a.instructions, `batch ${batch}`);
    assert.equal(b.rip, a.rip, `batch ${batch}`);
    assert.deepEqual(Array.from(b.lo), Array.from(a.lo), `batch ${batch}`);
    assert.deepEqual(Array.from(b.hi), Array.from(a.hi), `batch ${batch}`);
    assert.equal(b.getFlags(), a.getFlags(), `batch ${batch}`);
    if (ra === RUN_HALTED) break;
  }
  assert.equal(a.halted, true);
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

test('self-modifying code drops a block from the dispatch table too', () => {
  // loop: call f / cmp ecx,5 / jne skip / mov [rbx],sil / skip: sub ecx,1 / jnz loop / hlt ; f (next page): mov eax,1 / add edx,eax / ret
  const f = 0x1000;
  const loop = [0xe8, ...imm32(f - 5), 0x83, 0xf9, 0x05, 0x75, 0x03, 0x40, 0x88, 0x33, 0x83, 0xe9, 0x01, 0x0f, 0x85];
  const code = new Uint8Array(f + 16);
  code.set([...loop, ...imm32(-(loop.length + 4)), 0xf4]);
  code.set([0xb8, 0x01, 0x00, 0x00, 0x00, 0x01, 0xc2, 0xc3], f);
  const init = (cpu: Cpu): void => { cpu.lo[3] = CODE + f + 1; cpu.lo[6] = 7; cpu.lo[1] = 10; cpu.lo[2] = 0; };
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
