/**
 * Conformance harness: runs batches of small x86-64 test cases on two engines
 * (normally `soft` and `kvm`) through the engine-neutral Engine/EngineVm
 * interface and compares, case by case, every GPR, RIP at the end of the
 * case, RFLAGS (minus the flags the SDM leaves undefined for the case's
 * instructions), a per-case memory window, and any exception the case raised
 * (vector, error code, saved RIP, CR2, saved RFLAGS).
 *
 * One batch is one guest program in 64-bit long mode (identity-paged first
 * GiB, a 64-bit IDT whose gates all use IST1). Each case owns a 1 KiB block:
 *
 *   0x000 input GPRs (16 x 8, by register number; the RSP and R15 slots are ignored)
 *   0x080 input RFLAGS          0x088 resume address (set by the case prologue)
 *   0x100 output GPRs           0x180 output RFLAGS
 *   0x188 fault vector (-1: none) 0x190 error code  0x198 saved RIP
 *   0x1a0 CR2                   0x1a8 saved RFLAGS
 *   0x1c0 scratch stack slot for the harness
 *   0x200 data window (256 bytes, random or given; memory operands point here)
 *   0x300 stack (RSP starts at 0x3c0; 0x3c0-0x3ff is data too)
 *
 * The case code runs with R15 = block address, RSP = block + 0x3c0, every
 * other GPR and RFLAGS loaded from the block. Case code must not write R15.
 * A fault lands in a stub that records it, restores the faulting RSP and
 * jumps to the case's resume point, which stores the registers as usual.
 * The whole batch is assembled once with GNU as, so both engines run the
 * same bytes.
 */

import { CR0_ET, CR0_NE, CR0_PE, CR0_PG, CR0_WP, CR4_PAE, EFER_LMA, EFER_LME, EFER_NXE, EFER_SCE, flatSegment, resetCpuState, type CpuState } from '../../cpu-state.js';
import type { Engine, VmExit } from '../../engine.js';
import { Ports } from '../../../machine/layout.js';
import { assemble } from '../test-support.js';

export const GPRS64 = ['rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'] as const;

/** RFLAGS bits. */
export const F = { CF: 1, PF: 4, AF: 0x10, ZF: 0x40, SF: 0x80, TF: 0x100, IF: 0x200, DF: 0x400, OF: 0x800, RF: 0x10000 } as const;
/** The six arithmetic flags. */
export const ARITH = F.CF | F.PF | F.AF | F.ZF | F.SF | F.OF;
/** Flags a case compares unless its instructions leave some undefined. */
export const COMPARED_FLAGS = ARITH | F.DF | F.IF | F.TF | 0x2;

/** Guest-physical layout of a batch. */
export const Layout = {
  idt: 0x1000,
  tss: 0x2000,
  pageTables: 0x10000, // PML4, PDPT, PD
  gdt: 0x13000,
  stubs: 0x20000,
  istTop: 0x1f0000,
  /** A read-only 2 MiB page (fault tests). */
  readOnlyPage: 0x200000,
  /** A no-execute 2 MiB page (fault tests). */
  noExecPage: 0x400000,
  code: 0x600000,
  blocks: 0x1000000,
  blockSize: 0x400,
  ramSize: 64 * 1024 * 1024,
  /** First address past the identity map: accesses there page-fault (not present). */
  unmapped: 0x40000000,
} as const;

export const Block = {
  inRegs: 0x000, inFlags: 0x080, resume: 0x088, outRegs: 0x100, outFlags: 0x180,
  vector: 0x188, error: 0x190, faultRip: 0x198, cr2: 0x1a0, faultFlags: 0x1a8,
  data: 0x200, dataSize: 0x200, stackTop: 0x3c0,
} as const;

/** Largest number of cases in one batch (blocks must stay inside RAM). */
export const MAX_CASES = Math.floor((Layout.ramSize - Layout.blocks) / Layout.blockSize);

/** Vectors that push an error code in long mode. */
const ERROR_CODE_VECTORS = new Set([8, 10, 11, 12, 13, 14, 17, 21, 29, 30]);

export interface ConformanceCase {
  /** Short name, shown in diffs. */
  name: string;
  /** Intel-syntax GNU as source of the instructions under test. Local labels: numeric (1:, 1f). `{block}` is replaced by the block address. */
  asm: string;
  /** Initial GPR values by name (others 0; RSP and R15 are set by the harness). Values are 64-bit, as bigint. */
  regs?: Partial<Record<(typeof GPRS64)[number], bigint>>;
  /** Initial RFLAGS (bit 1 is forced on). */
  flags?: number;
  /** Initial contents of the data window at block + 0x200 (up to 512 bytes, includes the stack area at 0x300). */
  data?: Uint8Array;
  /** Flags the SDM leaves undefined after these instructions: not compared. */
  undefinedFlags?: number;
  /** GPRs whose final value is architecturally undefined: not compared (say why in `why`). */
  undefinedRegs?: Array<(typeof GPRS64)[number]>;
  /** Per GPR, bits whose final value the SDM leaves undefined (and the host varies on): not compared. */
  looseRegs?: Partial<Record<(typeof GPRS64)[number], bigint>>;
  /** Expected outcome from the SDM, checked on every engine (also without kvm). */
  expect?: Expectation;
}

export interface Expectation {
  regs?: Partial<Record<(typeof GPRS64)[number], bigint>>;
  /** Flags that must be set / clear (only these bits are checked). */
  flagsSet?: number;
  flagsClear?: number;
  /** Fault: vector, error code, CR2, and whether the saved RIP is the case's first instruction (`faultAtStart`). */
  vector?: number;
  error?: number;
  cr2?: bigint;
  /** The saved RIP is the address of the label `fault_ip` inside the case (a faulting instruction marked by the case). */
  faultAtLabel?: boolean;
  /** Bits that must be set in the RFLAGS image the exception saved (e.g. RF for faults). */
  savedFlagsSet?: number;
}

/** What one case produced on one engine. */
export interface CaseResult {
  regs: bigint[];
  flags: number;
  /** -1 when no exception. */
  vector: number;
  error: number;
  faultRip: bigint;
  cr2: bigint;
  faultFlags: number;
  data: Uint8Array;
  /** Address of the `fault_ip` label of the case, when it has one. */
  faultLabel?: bigint;
}

export interface BatchResult {
  exit: VmExit;
  cases: CaseResult[];
  /** Guest instructions per batch are unknown; wall time of run() only. */
  runMs: number;
}

/** An assembled batch, ready to run on any engine. */
export interface Batch {
  cases: readonly ConformanceCase[];
  code: Uint8Array;
  /** Initial memory images (system tables, blocks). */
  memory: Array<{ address: number; bytes: Uint8Array }>;
  state: CpuState;
  /** Per case: address of its `fault_ip` label or -1. */
  faultLabels: number[];
}

export function blockAddress(index: number): number {
  return Layout.blocks + index * Layout.blockSize;
}

function u64(view: DataView, at: number, v: bigint): void {
  view.setBigUint64(at, BigInt.asUintN(64, v), true);
}

/** Page tables (first GiB identity-mapped by 2 MiB pages; one read-only page and one NX page), GDT with a 64-bit TSS, IDT with IST1 gates, TSS. */
function systemImage(stubAddrs: number[]): Array<{ address: number; bytes: Uint8Array }> {
  const pt = new Uint8Array(0x3000);
  const v = new DataView(pt.buffer);
  u64(v, 0, BigInt(Layout.pageTables + 0x1000) | 3n);
  u64(v, 0x1000, BigInt(Layout.pageTables + 0x2000) | 3n);
  for (let i = 0; i < 512; i++) {
    let e = BigInt(i * 0x200000) | 0x83n;
    if (i * 0x200000 === Layout.readOnlyPage) e &= ~2n;
    if (i * 0x200000 === Layout.noExecPage) e |= 1n << 63n;
    u64(v, 0x2000 + i * 8, e);
  }
  const gdt = new Uint8Array(0x40);
  const g = new DataView(gdt.buffer);
  u64(g, 0x08, 0x00af9a000000ffffn); // 64-bit code
  u64(g, 0x10, 0x00cf92000000ffffn); // data
  u64(g, 0x18, 0x00cf9a000000ffffn); // 32-bit code
  u64(g, 0x20, 0x00cff2000000ffffn); // user data
  // 0x28: 64-bit TSS (busy), limit 0x2f: IST1 (0x24) fits, IST2-7 do not (the #TS test).
  const tss = BigInt(Layout.tss);
  u64(g, 0x28, 0x2fn | ((tss & 0xffffffn) << 16n) | (0x8bn << 40n) | ((tss >> 24n) & 0xffn) << 56n);
  u64(g, 0x30, tss >> 32n);
  const idt = new Uint8Array(256 * 16);
  const d = new DataView(idt.buffer);
  for (let vec = 0; vec < stubAddrs.length; vec++) {
    const a = stubAddrs[vec];
    const ist = vec === 0x41 ? 7 : 1; // vector 0x41: IST7, outside the TSS limit -> #TS
    const present = vec === 0x42 ? 0 : 0x8000; // vector 0x42: a 64-bit interrupt gate with P = 0 -> #NP
    d.setUint32(vec * 16, (0x08 << 16) | (a & 0xffff), true);
    d.setUint32(vec * 16 + 4, (a & 0xffff0000) | 0x0e00 | present | ist, true);
    d.setUint32(vec * 16 + 8, 0, true);
  }
  const tssBytes = new Uint8Array(0x68);
  u64(new DataView(tssBytes.buffer), 0x24, BigInt(Layout.istTop)); // IST1
  u64(new DataView(tssBytes.buffer), 0x54, BigInt(Layout.istTop)); // IST7 (unreachable: beyond the limit)
  return [
    { address: Layout.pageTables, bytes: pt },
    { address: Layout.gdt, bytes: gdt },
    { address: Layout.idt, bytes: idt },
    { address: Layout.tss, bytes: tssBytes },
  ];
}

/** Long-mode state for a batch: CPL 0, paging on, IDT/GDT/TR from systemImage(). */
export function batchState(): CpuState {
  const s = resetCpuState();
  s.cr0 = CR0_PE | CR0_PG | CR0_ET | CR0_NE | CR0_WP;
  s.cr4 = CR4_PAE;
  s.cr3 = BigInt(Layout.pageTables);
  s.efer = EFER_LME | EFER_LMA | EFER_SCE | EFER_NXE;
  s.seg.cs = flatSegment(0x8, true, true);
  for (const n of ['ds', 'es', 'ss', 'fs', 'gs'] as const) s.seg[n] = flatSegment(0x10, false);
  s.seg.fs.base = 0x100000n; // FS/GS bases for segment-override tests (never used by the harness itself)
  s.seg.gs.base = 0x180000n;
  s.seg.tr = { ...flatSegment(0x28, false), base: BigInt(Layout.tss), type: 0xb, s: false, limit: 0x2f, g: false, db: false };
  s.gdt = { base: BigInt(Layout.gdt), limit: 0x37 };
  s.idt = { base: BigInt(Layout.idt), limit: 256 * 16 - 1 };
  s.rip = BigInt(Layout.code);
  s.gpr.rsp = BigInt(Layout.istTop);
  s.rflags = 2n;
  return s;
}

const STUB_SIZE = 64;
const STUB_VECTORS = 0x43;

function stubSource(): string {
  const lines: string[] = [];
  for (let v = 0; v < STUB_VECTORS; v++) {
    // Nothing here may change the arithmetic flags: the case's saved RFLAGS are those at the fault.
    lines.push(`.org ${v * STUB_SIZE}`, `stub_${v}:`, `mov qword ptr [r15+${Block.vector}], ${v}`);
    if (v === 14) lines.push('push rax', 'mov rax, cr2', `mov [r15+${Block.cr2}], rax`, 'pop rax');
    if (v === 7) lines.push('clts');
    if (ERROR_CODE_VECTORS.has(v)) lines.push(`pop qword ptr [r15+${Block.error}]`);
    lines.push(`pop qword ptr [r15+${Block.faultRip}]`, 'lea rsp, [rsp+8]', `pop qword ptr [r15+${Block.faultFlags}]`, 'pop rsp', `jmp qword ptr [r15+${Block.resume}]`);
  }
  return lines.join('\n');
}

const LOAD_SAVE = [
  'load_regs:',
  `push qword ptr [r15+${Block.inFlags}]`, 'popfq',
  ...GPRS64.map((r, i) => (r === 'rsp' || r === 'r15' ? '' : `mov ${r}, [r15+${i * 8}]`)).filter(Boolean),
  'ret',
  'save_regs:', // entered with RSP = block + 0x1c8 - 8 (after the call); flags are the case's
  'pushfq',
  `pop qword ptr [r15+${Block.outFlags}]`,
  ...GPRS64.map((r, i) => (r === 'rsp' ? '' : `mov [r15+${Block.outRegs + i * 8}], ${r}`)).filter(Boolean),
  'ret',
].join('\n');

/** Assembles `cases` into one batch program plus its memory image. */
export function buildBatch(cases: readonly ConformanceCase[]): Batch {
  if (cases.length > MAX_CASES) throw new RangeError(`${cases.length} cases exceed the batch limit of ${MAX_CASES}`);
  const src: string[] = ['.globl _start', '_start:'];
  cases.forEach((c, i) => {
    const blk = blockAddress(i);
    const body = c.asm.replaceAll('{block}', '0x' + blk.toString(16)).replaceAll('fault_ip', `fault_ip_${i}`);
    src.push(
      `case_${i}:`,
      `movabs r15, 0x${blk.toString(16)}`,
      `lea rsp, [r15+${0x1c8}]`,
      `lea rax, [rip+resume_${i}]`,
      `mov [r15+${Block.resume}], rax`,
      'call load_regs',
      `lea rsp, [r15+${Block.stackTop}]`,
      body,
      `resume_${i}:`,
      `mov [r15+${Block.outRegs + 4 * 8}], rsp`,
      `lea rsp, [r15+${0x1c8}]`,
      'call save_regs',
    );
  });
  src.push(`mov al, 0`, `out ${Ports.DEBUG_EXIT}, al`, 'hlt', LOAD_SAVE);
  // Labels to locate fault_ip and resume: emit a table at the end.
  src.push('.p2align 3', 'fault_labels:');
  cases.forEach((c, i) => src.push(c.asm.includes('fault_ip') ? `.quad fault_ip_${i}` : '.quad -1'));
  let code: Uint8Array;
  try {
    code = assemble(src.join('\n'), 64, Layout.code);
  } catch (e) {
    const stderr = (e as { stderr?: Buffer }).stderr?.toString() ?? String(e);
    throw new Error(`the batch does not assemble:\n${stderr.split('\n').slice(0, 10).join('\n')}`);
  }
  const stubs = assemble(stubSource(), 64, Layout.stubs);
  const stubAddrs = Array.from({ length: STUB_VECTORS }, (_, v) => Layout.stubs + v * STUB_SIZE);
  // The label table is the last 8*n bytes of the code.
  const tableView = new DataView(code.buffer, code.byteOffset + code.length - 8 * cases.length, 8 * cases.length);
  const faultLabels = cases.map((_, i) => Number(tableView.getBigInt64(i * 8, true)));
  const blocks = new Uint8Array(cases.length * Layout.blockSize);
  const bv = new DataView(blocks.buffer);
  cases.forEach((c, i) => {
    const o = i * Layout.blockSize;
    GPRS64.forEach((r, k) => u64(bv, o + k * 8, c.regs?.[r] ?? 0n));
    u64(bv, o + Block.inFlags, BigInt((c.flags ?? 0) | 2));
    u64(bv, o + Block.vector, -1n);
    if (c.data) blocks.set(c.data.subarray(0, Block.dataSize), o + Block.data);
    else for (let k = 0; k < Block.dataSize; k++) blocks[o + Block.data + k] = (k * 0x9d + 0x37 + i) & 0xff; // a fixed, varied pattern
  });
  return {
    cases, code, faultLabels, state: batchState(),
    memory: [...systemImage(stubAddrs), { address: Layout.stubs, bytes: stubs }, { address: Layout.blocks, bytes: blocks }],
  };
}

/** Runs `batch` on `engine` and reads every case's block back. */
export async function runBatch(engine: Engine, batch: Batch, timeoutMs = 60000): Promise<BatchResult> {
  const vm = await engine.createVm({ ramSize: Layout.ramSize, vcpuCount: 1 });
  try {
    vm.memory.writeBytes(Layout.code, batch.code);
    for (const m of batch.memory) vm.memory.writeBytes(m.address, m.bytes);
    vm.vcpus[0].setState(batch.state);
    const timer = setTimeout(() => vm.requestExit({ kind: 'stopped' }), timeoutMs);
    const started = performance.now();
    const exit = await vm.run({
      pioRead: () => 0xffffffff,
      pioWrite: (port, _size, value) => {
        if (port === Ports.DEBUG_EXIT) vm.requestExit({ kind: 'debug-exit', value });
      },
      mmioRead: () => 0xffffffff,
      mmioWrite: () => undefined,
    });
    const runMs = performance.now() - started;
    clearTimeout(timer);
    const mem = vm.memory.readBytes(Layout.blocks, batch.cases.length * Layout.blockSize).slice();
    const v = new DataView(mem.buffer);
    const cases = batch.cases.map((_, i): CaseResult => {
      const o = i * Layout.blockSize;
      return {
        regs: GPRS64.map((_r, k) => v.getBigUint64(o + Block.outRegs + k * 8, true)),
        flags: Number(v.getBigUint64(o + Block.outFlags, true)),
        vector: Number(v.getBigInt64(o + Block.vector, true)),
        error: Number(v.getBigUint64(o + Block.error, true)),
        faultRip: v.getBigUint64(o + Block.faultRip, true),
        cr2: v.getBigUint64(o + Block.cr2, true),
        faultFlags: Number(v.getBigUint64(o + Block.faultFlags, true)),
        data: mem.slice(o + Block.data, o + Block.data + Block.dataSize),
        faultLabel: batch.faultLabels[i] >= 0 ? BigInt(batch.faultLabels[i]) : undefined,
      };
    });
    return { exit, cases, runMs };
  } finally {
    vm.destroy();
  }
}

const hex = (v: bigint | number): string => '0x' + BigInt.asUintN(64, BigInt(v)).toString(16);

function flagNames(bits: number): string {
  return Object.entries(F).filter(([, b]) => bits & b).map(([n]) => n).join('|') || '-';
}

/** The case's inputs, in one line. */
export function describeInputs(c: ConformanceCase): string {
  const regs = Object.entries(c.regs ?? {}).map(([r, v]) => `${r}=${hex(v)}`).join(' ');
  return `flags=${hex((c.flags ?? 0) | 2)}(${flagNames(c.flags ?? 0)}) ${regs}`;
}

/** Every difference between `expected` (reference engine) and `got` for case `c`, one line each. Empty when equal. */
export function diffCase(c: ConformanceCase, expected: CaseResult, got: CaseResult): string[] {
  const out: string[] = [];
  const skip = new Set<number>((c.undefinedRegs ?? []).map((r) => GPRS64.indexOf(r)));
  for (let k = 0; k < 16; k++) {
    const loose = c.looseRegs?.[GPRS64[k]] ?? 0n;
    if (skip.has(k) || (expected.regs[k] & ~loose) === (got.regs[k] & ~loose)) continue;
    out.push(`${GPRS64[k]}: expected ${hex(expected.regs[k])} got ${hex(got.regs[k])}`);
  }
  const mask = COMPARED_FLAGS & ~(c.undefinedFlags ?? 0);
  if ((expected.flags ^ got.flags) & mask) {
    out.push(`rflags: expected ${hex(expected.flags)} got ${hex(got.flags)} (differ: ${flagNames((expected.flags ^ got.flags) & mask)}; undefined ${flagNames(c.undefinedFlags ?? 0)})`);
  }
  if (expected.vector !== got.vector) out.push(`exception: expected vector ${expected.vector} got ${got.vector}`);
  else if (expected.vector >= 0) {
    if (expected.error !== got.error) out.push(`error code: expected ${hex(expected.error)} got ${hex(got.error)}`);
    if (expected.faultRip !== got.faultRip) out.push(`saved RIP: expected ${hex(expected.faultRip)} got ${hex(got.faultRip)}`);
    if (expected.vector === 14 && expected.cr2 !== got.cr2) out.push(`CR2: expected ${hex(expected.cr2)} got ${hex(got.cr2)}`);
    if ((expected.faultFlags ^ got.faultFlags) & mask) out.push(`saved RFLAGS: expected ${hex(expected.faultFlags)} got ${hex(got.faultFlags)}`);
  }
  for (let i = 0; i < Block.dataSize; i++) {
    if (expected.data[i] !== got.data[i]) {
      const at = i & ~7;
      const q = (d: Uint8Array): string => hex(new DataView(d.buffer, d.byteOffset).getBigUint64(at, true));
      out.push(`memory block+${hex(Block.data + at)}: expected ${q(expected.data)} got ${q(got.data)}`);
      i = at + 7;
    }
  }
  return out;
}

/** Checks a case's SDM expectation against one engine's result; returns the failures. */
export function checkExpectation(c: ConformanceCase, r: CaseResult): string[] {
  const e = c.expect;
  if (!e) return [];
  const out: string[] = [];
  for (const [name, v] of Object.entries(e.regs ?? {})) {
    const k = GPRS64.indexOf(name as (typeof GPRS64)[number]);
    if (r.regs[k] !== BigInt.asUintN(64, v)) out.push(`${name}: SDM says ${hex(v)} got ${hex(r.regs[k])}`);
  }
  if (e.flagsSet !== undefined && (r.flags & e.flagsSet) !== e.flagsSet) out.push(`flags ${flagNames(e.flagsSet)} should be set: ${hex(r.flags)}`);
  if (e.flagsClear !== undefined && (r.flags & e.flagsClear) !== 0) out.push(`flags ${flagNames(e.flagsClear)} should be clear: ${hex(r.flags)}`);
  if (e.vector !== undefined && r.vector !== e.vector) out.push(`vector: SDM says ${e.vector} got ${r.vector}`);
  if (e.vector === undefined && r.vector >= 0 && (e.regs || e.flagsSet !== undefined)) out.push(`unexpected exception ${r.vector}`);
  if (e.error !== undefined && r.error !== e.error) out.push(`error code: SDM says ${hex(e.error)} got ${hex(r.error)}`);
  if (e.cr2 !== undefined && r.cr2 !== e.cr2) out.push(`CR2: SDM says ${hex(e.cr2)} got ${hex(r.cr2)}`);
  if (e.savedFlagsSet !== undefined && (r.faultFlags & e.savedFlagsSet) !== e.savedFlagsSet) out.push(`saved RFLAGS ${hex(r.faultFlags)} should have ${flagNames(e.savedFlagsSet)} set`);
  if (e.faultAtLabel && r.faultRip !== r.faultLabel) out.push(`saved RIP: should be the faulting instruction ${hex(r.faultLabel ?? -1n)} got ${hex(r.faultRip)}`);
  return out;
}

/** A failure report for case `i`: the instruction text, its inputs, and the differences. */
export function formatFailure(c: ConformanceCase, index: number, lines: string[]): string {
  return `case ${index} "${c.name}"\n  asm: ${c.asm.replaceAll('\n', '; ')}\n  in:  ${describeInputs(c)}\n  ${lines.join('\n  ')}`;
}

/**
 * Runs `cases` on `reference` and on `subject` and returns every failure
 * (differences and failed SDM expectations), formatted. `reference` may be
 * null (no kvm): then only the SDM expectations are checked on `subject`.
 */
export async function compareEngines(subject: Engine, reference: Engine | null, cases: readonly ConformanceCase[]): Promise<{ failures: string[]; subject: BatchResult; reference?: BatchResult }> {
  const batch = buildBatch(cases);
  const mine = await runBatch(subject, batch);
  const failures: string[] = [];
  const theirs = reference ? await runBatch(reference, batch) : undefined;
  if (mine.exit.kind !== 'debug-exit') failures.push(`${subject.name}: batch ended with ${JSON.stringify(mine.exit)}`);
  if (theirs && theirs.exit.kind !== 'debug-exit') failures.push(`${reference?.name}: batch ended with ${JSON.stringify(theirs.exit)}`);
  if (failures.length) return { failures, subject: mine, reference: theirs };
  cases.forEach((c, i) => {
    const lines = [...checkExpectation(c, mine.cases[i]).map((l) => `[${subject.name} vs SDM] ${l}`)];
    if (theirs) {
      lines.push(...checkExpectation(c, theirs.cases[i]).map((l) => `[${reference?.name} vs SDM] ${l}`));
      lines.push(...diffCase(c, theirs.cases[i], mine.cases[i]).map((l) => `[${reference?.name} -> ${subject.name}] ${l}`));
    }
    if (lines.length) failures.push(formatFailure(c, i, lines));
  });
  return { failures, subject: mine, reference: theirs };
}
