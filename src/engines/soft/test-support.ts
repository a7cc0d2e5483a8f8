/**
 * Test support for the soft CPU (used by the *.test.ts files, not by the
 * engine): a minimal SoftPlatform double, and runProgram(), which runs a
 * small machine-code program on an engine from a given CpuState until it
 * writes to the debug-exit port, so the same program can be checked on the
 * soft engine and (later) on kvm.
 */

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BusDevice } from '../../machine/bus.js';
import type { InterruptController } from '../../machine/interrupts.js';
import {
  CR0_ET, CR0_NE, CR0_PE, CR0_PG, CR0_WP, CR4_PAE, EFER_LMA, EFER_LME, EFER_NXE, EFER_SCE, flatSegment, realModeSegment, resetCpuState,
  type CpuState,
} from '../cpu-state.js';
import type { Engine, VmExit } from '../engine.js';
import { Ports } from '../../machine/layout.js';
import type { LocalInterruptSource, PlatformPortBlock, SoftPlatform } from './platform-contract.js';
import { SoftEngine, type SoftPlatformFactory } from './soft-engine.js';

/** A local APIC double: a queue of vectors the test injects. */
export class FakeLapic implements LocalInterruptSource {
  readonly queue: number[] = [];
  nmi = false;
  init = false;
  sipi = -1;
  base = 0xfee00000;
  /** IA32_APIC_BASE BSP (bit 8) and EN (bit 11). */
  baseFlags = 0x900;
  readonly mmioLog: Array<[number, number]> = [];
  pendingVector(): number { return this.queue.length > 0 ? this.queue[0] : -1; }
  acknowledge(): number { return this.queue.shift() ?? -1; }
  takeNmi(): boolean { const v = this.nmi; this.nmi = false; return v; }
  takeInit(): boolean { const v = this.init; this.init = false; return v; }
  takeSipi(): number { const v = this.sipi; this.sipi = -1; return v; }
  mmioRead(offset: number): number { return offset === 0x20 ? 0 : 0x12345678; }
  mmioWrite(offset: number, _size: 1 | 2 | 4, value: number): void { this.mmioLog.push([offset, value]); }
  readMsr(msr: number, out: Uint32Array): boolean {
    if (msr !== 0x1b) return false;
    out[0] = this.base | this.baseFlags; out[1] = 0;
    return true;
  }
  writeMsr(msr: number, lo: number): boolean {
    if (msr !== 0x1b) return false;
    this.base = lo & 0xfffff000;
    this.baseFlags = lo & 0x900;
    return true;
  }
  tpr = 0;
  readCr8(): number { return this.tpr >>> 4; }
  writeCr8(value: number): void { this.tpr = value << 4; }
  baseAddress(): number { return this.base; }
  mmioEnabled(): boolean { return true; }
}

/** A platform double: fake LAPICs, optional IOAPIC page and port blocks, no timers. */
export function fakePlatformFactory(
  lapics: FakeLapic[] = [],
  extra: { ioapic?: BusDevice; ports?: PlatformPortBlock[] } = {},
): SoftPlatformFactory {
  return ({ vcpuCount }) => {
    while (lapics.length < vcpuCount) lapics.push(new FakeLapic());
    const irqs: InterruptController = { setIrq: () => undefined, signalMsi: () => undefined };
    const ioapic: BusDevice = extra.ioapic ?? { read: () => 0, write: () => undefined };
    const platform: SoftPlatform = {
      interrupts: irqs, lapics, ioapic, ports: extra.ports ?? [], poll: () => undefined, nextDeadlineNs: () => Infinity,
    };
    return platform;
  };
}

export interface ProgramSpec {
  /** Machine code, loaded at `loadAddress` (guest-physical). */
  code: Uint8Array;
  loadAddress: number;
  /** Initial vCPU state (RIP must point at the code). */
  state: CpuState;
  /** Extra memory contents. */
  memory?: Array<{ address: number; bytes: Uint8Array }>;
  ramSize?: number;
  /** Give up after this many milliseconds (the result's exit is then 'stopped'). */
  timeoutMs?: number;
}

export interface ProgramResult {
  exit: VmExit;
  state: CpuState;
  /** Reads guest memory after the run. */
  readMemory(address: number, length: number): Uint8Array;
  /** Every OUT to a port other than the debug-exit port: [port, size, value]. */
  portWrites: Array<[number, number, number]>;
}

/** Something that runs a test program: the soft engine now, kvm later. */
export type ProgramRunner = (spec: ProgramSpec) => Promise<ProgramResult>;

/** Runs `spec` on `engine` (one vCPU) until a write to the debug-exit port. */
export async function runProgram(engine: Engine, spec: ProgramSpec): Promise<ProgramResult> {
  const vm = await engine.createVm({ ramSize: spec.ramSize ?? 16 * 1024 * 1024, vcpuCount: 1 });
  try {
    vm.memory.writeBytes(spec.loadAddress, spec.code);
    for (const m of spec.memory ?? []) vm.memory.writeBytes(m.address, m.bytes);
    vm.vcpus[0].setState(spec.state);
    const portWrites: Array<[number, number, number]> = [];
    const timer = setTimeout(() => vm.requestExit({ kind: 'stopped' }), spec.timeoutMs ?? 5000);
    const exit = await vm.run({
      pioRead: () => 0xffffffff,
      pioWrite: (port, size, value) => {
        if (port === Ports.DEBUG_EXIT) vm.requestExit({ kind: 'debug-exit', value });
        else portWrites.push([port, size, value]);
      },
      mmioRead: () => 0xffffffff,
      mmioWrite: () => undefined,
    });
    clearTimeout(timer);
    const state = vm.vcpus[0].getState();
    const snapshot = vm.memory;
    return { exit, state, portWrites, readMemory: (a, n) => snapshot.readBytes(a, n) };
  } finally {
    vm.destroy();
  }
}

/** The soft engine as a ProgramRunner, with the platform double. */
export const softRunner: ProgramRunner = (spec) => runProgram(new SoftEngine(fakePlatformFactory()), spec);

/**
 * Assembles GNU `as` source (Intel syntax unless it says otherwise) for
 * `bits` 16/32/64, links it at `base` and returns the raw bytes of .text. Test-only: needs binutils.
 */
export function assemble(source: string, bits: 16 | 32 | 64, base = 0, syntax: 'intel' | 'att' = 'intel'): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), 'softcpu-as-'));
  try {
    const header = (syntax === 'intel' ? '.intel_syntax noprefix\n' : '') + `.code${bits}\n`;
    writeFileSync(join(dir, 'a.s'), header + source + '\n');
    execFileSync('as', ['--64', '-o', join(dir, 'a.o'), join(dir, 'a.s')], { stdio: ['ignore', 'ignore', 'pipe'] });
    // Link at `base` so absolute label addresses are right.
    execFileSync('ld', ['-m', 'elf_x86_64', '-Ttext=0x' + base.toString(16), '-e', '0', '--oformat=binary', '-o', join(dir, 'a.bin'), join(dir, 'a.o')], { stdio: ['ignore', 'ignore', 'pipe'] });
    return new Uint8Array(readFileSync(join(dir, 'a.bin')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Page tables identity-mapping the first 1 GiB with 2 MiB pages (PML4 at `at`, PDPT at +0x1000, PD at +0x2000) and a GDT at +0x3000. */
export function identityPageTables(at: number): Array<{ address: number; bytes: Uint8Array }> {
  const pml4 = new Uint8Array(4096);
  const pdpt = new Uint8Array(4096);
  const pd = new Uint8Array(4096);
  const dv = (a: Uint8Array): DataView => new DataView(a.buffer);
  dv(pml4).setUint32(0, (at + 0x1000) | 7, true);
  dv(pdpt).setUint32(0, (at + 0x2000) | 7, true);
  for (let i = 0; i < 512; i++) dv(pd).setUint32(i * 8, (i * 0x200000) | 0x87, true);
  return [{ address: at, bytes: pml4 }, { address: at + 0x1000, bytes: pdpt }, { address: at + 0x2000, bytes: pd }, { address: at + 0x3000, bytes: testGdt() }];
}

/** Flat descriptors (base 0, limit 4 GiB) the soft CPU tests put in their GDTs. */
export const DESCRIPTOR = {
  code64: 0x00af9a000000ffffn,
  data: 0x00cf92000000ffffn,
  code32: 0x00cf9a000000ffffn,
  userCode32: 0x00cffa000000ffffn,
  userData: 0x00cff2000000ffffn,
  userCode64: 0x00affa000000ffffn,
} as const;

/**
 * A GDT of `size` bytes: each [byte offset, descriptor] of `entries`, and
 * with `tss` a 16-byte 64-bit TSS descriptor (limit 0x67, available) at
 * `tss.at` for a TSS at `tss.base`.
 */
export function buildGdt(size: number, entries: Array<[number, bigint]>, tss?: { at: number; base: number }): Uint8Array {
  const gdt = new Uint8Array(size);
  const v = new DataView(gdt.buffer);
  for (const [at, d] of entries) v.setBigUint64(at, d, true);
  if (tss !== undefined) {
    const base = BigInt(tss.base);
    v.setBigUint64(tss.at, 0x67n | ((base & 0xffffffn) << 16n) | (0x89n << 40n) | (((base >> 24n) & 0xffn) << 56n), true);
    v.setBigUint64(tss.at + 8, base >> 32n, true);
  }
  return gdt;
}

/** A 64-bit TSS (0x68 bytes, no I/O bitmap) with RSP0 and, when given, IST1. */
export function buildTss(rsp0: number, ist1?: number): Uint8Array {
  const tss = new Uint8Array(0x68);
  const v = new DataView(tss.buffer);
  v.setBigUint64(4, BigInt(rsp0), true);
  if (ist1 !== undefined) v.setBigUint64(0x24, BigInt(ist1), true);
  v.setUint16(0x66, 0x68, true);
  return tss;
}

/** The GDT longModeState() expects (at pml4 + 0x3000): 0x08 64-bit code, 0x10 data, 0x18 32-bit code, 0x20 user data. */
export function testGdt(): Uint8Array {
  return buildGdt(40, [[8, DESCRIPTOR.code64], [16, DESCRIPTOR.data], [24, DESCRIPTOR.code32], [32, DESCRIPTOR.userData]]);
}

/** A 64-bit long-mode state at CPL 0 with paging via tables at `pml4` (see identityPageTables). */
export function longModeState(rip: number, pml4: number, rsp = 0x80000): CpuState {
  const s = resetCpuState();
  s.cr0 = CR0_PE | CR0_PG | CR0_ET | CR0_NE | CR0_WP;
  s.cr4 = CR4_PAE;
  s.cr3 = BigInt(pml4);
  s.efer = EFER_LME | EFER_LMA | EFER_SCE | EFER_NXE;
  s.seg.cs = flatSegment(0x8, true, true);
  for (const n of ['ds', 'es', 'ss', 'fs', 'gs'] as const) s.seg[n] = flatSegment(0x10, false);
  s.seg.tr = { ...flatSegment(0, false), type: 0xb, s: false, limit: 0x67, g: false, db: false };
  s.gdt = { base: BigInt(pml4 + 0x3000), limit: 39 };
  s.rip = BigInt(rip);
  s.gpr.rsp = BigInt(rsp);
  s.rflags = 2n;
  return s;
}

/** A flat 32-bit protected-mode state without paging. */
export function flat32State(rip: number, esp = 0x80000): CpuState {
  const s = resetCpuState();
  s.cr0 = CR0_PE | CR0_ET;
  s.seg.cs = flatSegment(0x8, true);
  for (const n of ['ds', 'es', 'ss', 'fs', 'gs'] as const) s.seg[n] = flatSegment(0x10, false);
  s.seg.tr = { ...flatSegment(0, false), type: 0xb, s: false, limit: 0x67, g: false, db: false };
  s.rip = BigInt(rip);
  s.gpr.rsp = BigInt(esp);
  return s;
}

/** Real mode with CS = DS = ES = SS = 0 and IP = `ip`. */
export function realModeState(ip: number, sp = 0x7000): CpuState {
  const s = resetCpuState();
  s.seg.cs = realModeSegment(0, true);
  s.rip = BigInt(ip);
  s.gpr.rsp = BigInt(sp);
  return s;
}

/** GNU as macros for long-mode test programs: `gate vec, handler[, attr]` writes a 64-bit gate (default 0x8e00: present, DPL 0, interrupt gate, no IST) into the IDT at 0x300000; `load_idt` loads it. */
export const ASM_IDT_MACROS = `
.macro gate vec, handler, attr=0x8e00
    lea rax, [rip + \\handler]
    mov rbx, 0x300000 + \\vec * 16
    mov word ptr [rbx], ax
    mov word ptr [rbx+2], 8
    mov word ptr [rbx+4], \\attr
    shr rax, 16
    mov word ptr [rbx+6], ax
    shr rax, 16
    mov dword ptr [rbx+8], eax
    mov dword ptr [rbx+12], 0
.endm
.macro load_idt
    sub rsp, 16
    mov word ptr [rsp], 0xfff
    mov rax, 0x300000
    mov qword ptr [rsp+2], rax
    lidt [rsp]
    add rsp, 16
.endm
`;

/** `st reg`: appends a register to the result area that r13 walks. */
export const ASM_STORE_MACRO = `
.macro st r
  mov [r13], \\r
  add r13, 8
.endm
`;
