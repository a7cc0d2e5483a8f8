/**
 * Diagnostics for the soft CPU (`TYPEVISOR_SOFT_TRACE`): a ring of the last
 * N executed instructions (RIP, raw bytes, opcode id), a ring of the last
 * exceptions delivered (vector, error code, CR2, RIP), and a dump of both
 * plus the register state to stderr on a triple fault or an invalid-opcode
 * exception. Off by default; when off the CPU pays one null test per batch.
 */

import type { Cpu } from './cpu.js';
import { CS, DS, ES, FS, GS, SS, TR } from './arch.js';
import {
  D_LEN, D_MODRM, D_OP, D_STRIDE, decode, OP_INVALID, OP_MAP_0F, OP_MAP_0F38, OP_MAP_0F3A, OP_VEX, type ByteSource,
} from './decoder.js';

/** Longest x86 instruction. */
const MAX_BYTES = 15;
const FAULT_RING = 16;
/** At most this many exception dumps per vCPU (Linux uses UD2 for WARN()). */
const MAX_UD_DUMPS = 8;

const GPR = ['rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'];
const VECTOR_NAMES = ['#DE', '#DB', 'NMI', '#BP', '#OF', '#BR', '#UD', '#NM', '#DF', '#MF', '#TS', '#NP', '#SS', '#GP', '#PF', '#15', '#MF', '#AC', '#MC', '#XM', '#VE'];

/**
 * Parses TYPEVISOR_SOFT_TRACE_VECTORS: a comma-separated list of exception
 * vectors to dump on (default "6", #UD). Returns a 32-bit mask.
 */
export function traceVectorsFromEnv(value: string | undefined): number {
  if (value === undefined || value.trim() === '') return 1 << 6;
  let mask = 0;
  for (const part of value.split(',')) {
    const v = Number.parseInt(part.trim(), 10);
    if (Number.isInteger(v) && v >= 0 && v < 32) mask |= 1 << v;
  }
  return mask;
}

/** Parses TYPEVISOR_SOFT_TRACE: unset/"0"/"" → 0 (off), "1" → 64 entries, N > 1 → N entries. */
export function traceDepthFromEnv(value: string | undefined): number {
  if (value === undefined || value === '' || value === '0') return 0;
  const n = Number.parseInt(value, 10);
  if (!Number.isFinite(n) || n <= 1) return 64;
  return Math.min(n, 1 << 20);
}

class ArraySource implements ByteSource {
  bytes = new Uint8Array(MAX_BYTES);
  count = 0;
  byte(index: number): number {
    return index < this.count ? this.bytes[index] : 0;
  }
}

/** Formats a 64-bit signed-canonical number (or unsigned 32-bit value) as hex. */
function hex64(v: number): string {
  const u = v < 0 ? BigInt(v) + (1n << 64n) : BigInt(v);
  return u.toString(16).padStart(16, '0');
}

function hexHalves(lo: number, hi: number): string {
  return (hi >>> 0).toString(16).padStart(8, '0') + (lo >>> 0).toString(16).padStart(8, '0');
}

/** A short name for an opcode id: map and opcode byte, plus ModRM.reg for groups. */
export function opcodeName(op: number, modrm: number): string {
  if (op === OP_INVALID) return 'invalid';
  if (op === OP_VEX) return 'vex';
  const map = op & 0xf00;
  const byte = (op & 0xff).toString(16).padStart(2, '0');
  const prefix = map === OP_MAP_0F ? '0f ' : map === OP_MAP_0F38 ? '0f38 ' : map === OP_MAP_0F3A ? '0f3a ' : '';
  const reg = modrm >= 0 ? ` /${(modrm >> 3) & 7}` : '';
  return prefix + byte + reg;
}

export class SoftTrace {
  /** RIP of each traced instruction. */
  readonly rips: Float64Array;
  readonly codeSizes: Uint8Array;
  /** Bytes copied from the fetch window, MAX_BYTES per entry. */
  readonly bytes: Uint8Array;
  readonly byteCounts: Uint8Array;
  /** Next slot; total entries recorded. */
  next = 0;
  total = 0;
  readonly faultVector = new Int32Array(FAULT_RING);
  readonly faultError = new Int32Array(FAULT_RING);
  readonly faultCr2 = new Float64Array(FAULT_RING);
  readonly faultRip = new Float64Array(FAULT_RING);
  readonly faultInstr = new Float64Array(FAULT_RING);
  faultNext = 0;
  faultTotal = 0;
  udDumps = 0;
  /** Exception vectors that trigger a dump (bit per vector). */
  dumpVectors = 1 << 6;
  private readonly source = new ArraySource();
  private readonly record = new Int32Array(D_STRIDE);

  constructor(
    readonly depth: number,
    private readonly write: (text: string) => void = (t) => process.stderr.write(t),
  ) {
    this.rips = new Float64Array(depth);
    this.codeSizes = new Uint8Array(depth);
    this.bytes = new Uint8Array(depth * MAX_BYTES);
    this.byteCounts = new Uint8Array(depth);
  }

  /** Records the instruction at the CPU's RIP (called before it executes). */
  before(c: Cpu): void {
    const i = this.next;
    this.rips[i] = c.rip;
    this.codeSizes[i] = c.codeSize;
    this.byteCounts[i] = 0;
    this.next = i + 1 === this.depth ? 0 : i + 1;
    this.total++;
    this.copyBytes(c, i);
  }

  /** Copies the bytes of the last entry if before() could not (a new fetch page); call after the fetch succeeded. */
  fillBytes(c: Cpu): void {
    const i = this.next === 0 ? this.depth - 1 : this.next - 1;
    if (this.byteCounts[i] === 0) this.copyBytes(c, i);
  }

  private copyBytes(c: Cpu, i: number): void {
    const rip = this.rips[i];
    const lin = c.long64 ? rip : (c.csBase + rip) >>> 0;
    const d = lin - c.fetchPage;
    if (!(d >= 0 && d < 4096)) return;
    const off = c.fetchOff + d;
    const n = Math.min(MAX_BYTES, 4096 - d);
    const mem = c.mem;
    const bytes = this.bytes;
    const at = i * MAX_BYTES;
    for (let k = 0; k < n; k++) bytes[at + k] = mem[off + k];
    this.byteCounts[i] = n;
  }

  /** Records an exception about to be delivered. */
  fault(c: Cpu, vector: number, error: number): void {
    const i = this.faultNext;
    this.faultVector[i] = vector;
    this.faultError[i] = error;
    this.faultCr2[i] = c.cr2;
    this.faultRip[i] = c.rip;
    this.faultInstr[i] = c.instructions;
    this.faultNext = (i + 1) % FAULT_RING;
    this.faultTotal++;
  }

  /** Reports an RDMSR/WRMSR that raised #GP (each MSR and direction once). */
  msrFault(c: Cpu, write: boolean): void {
    const msr = c.lo[1] >>> 0;
    const key = (write ? 'wrmsr ' : 'rdmsr ') + msr.toString(16);
    if (this.msrsReported.has(key)) return;
    this.msrsReported.add(key);
    const value = write ? ` value=${hexHalves(c.lo[0], c.lo[2])}` : '';
    this.write(`soft trace: ${key}${value} at rip=${hex64(c.rip)}: #GP (not implemented)\n`);
  }

  private readonly msrsReported = new Set<string>();

  /** Whether an exception `vector` raised by an instruction deserves a dump (bounded). */
  wantsDump(vector: number): boolean {
    return vector < 32 && (this.dumpVectors & (1 << vector)) !== 0 && this.udDumps++ < MAX_UD_DUMPS;
  }

  /** Writes the instruction ring, the exception ring and the registers. */
  dump(c: Cpu, reason: string): void {
    const lines: string[] = [];
    lines.push(`soft trace: ${reason} on vCPU ${c.index} after ${c.instructions} instructions`);
    const count = Math.min(this.total, this.depth);
    lines.push(`  last ${count} instructions (oldest first):`);
    for (let k = count; k > 0; k--) {
      const i = (this.next - k + this.depth) % this.depth;
      lines.push('    ' + this.formatEntry(i));
    }
    const faults = Math.min(this.faultTotal, FAULT_RING);
    if (faults > 0) {
      lines.push(`  last ${faults} exceptions (oldest first):`);
      for (let k = faults; k > 0; k--) {
        const i = (this.faultNext - k + FAULT_RING) % FAULT_RING;
        const v = this.faultVector[i];
        const name = VECTOR_NAMES[v] ?? `vector ${v}`;
        const err = this.faultError[i] >= 0 ? ` err=${this.faultError[i].toString(16)}` : '';
        lines.push(`    ${name}${err} rip=${hex64(this.faultRip[i])} cr2=${hex64(this.faultCr2[i])} at #${this.faultInstr[i]}`);
      }
    }
    lines.push(...registerDump(c));
    lines.push(...pageWalkDump(c, c.cr2, 'cr2'));
    if (c.rip !== c.cr2) lines.push(...pageWalkDump(c, c.rip, 'rip'));
    this.write(lines.join('\n') + '\n');
  }

  private formatEntry(i: number): string {
    const n = this.byteCounts[i];
    let bytes = '';
    let name = '?';
    if (n > 0) {
      const src = this.source;
      src.bytes.set(this.bytes.subarray(i * MAX_BYTES, i * MAX_BYTES + n));
      src.count = n;
      const len = decode(src, this.codeSizes[i], this.record, 0);
      const shown = Math.min(n, len > 0 ? len : n);
      for (let k = 0; k < shown; k++) bytes += src.bytes[k].toString(16).padStart(2, '0') + ' ';
      name = opcodeName(this.record[D_OP], this.record[D_MODRM]);
      if (this.record[D_LEN] !== len && len > 0) name += ` len=${len}`;
    }
    return `${hex64(this.rips[i])}  ${bytes.padEnd(46)} ${name}`;
  }
}

/** Register state as text lines. */
export function registerDump(c: Cpu): string[] {
  const lines: string[] = [];
  for (let r = 0; r < 16; r += 4) {
    let line = '  ';
    for (let k = r; k < r + 4; k++) line += `${GPR[k].padStart(3)}=${hexHalves(c.lo[k], c.hi[k])} `;
    lines.push(line);
  }
  lines.push(`  rip=${hex64(c.rip)} rflags=${(c.getFlags() >>> 0).toString(16)} cpl=${c.cpl} mode=${c.codeSize}-bit`);
  lines.push(`  cr0=${(c.cr0 >>> 0).toString(16)} cr2=${hex64(c.cr2)} cr3=${hex64(c.cr3)} cr4=${(c.cr4 >>> 0).toString(16)} efer=${(c.efer >>> 0).toString(16)}`);
  const segs: [string, number][] = [['es', ES], ['cs', CS], ['ss', SS], ['ds', DS], ['fs', FS], ['gs', GS], ['tr', TR]];
  let line = ' ';
  for (const [name, s] of segs) line += ` ${name}=${(c.segSel[s] & 0xffff).toString(16)}@${hex64(c.segBase[s])}`;
  lines.push(line);
  lines.push(`  gdt=${hex64(c.gdtBase)}/${c.gdtLimit.toString(16)} idt=${hex64(c.idtBase)}/${c.idtLimit.toString(16)}`);
  return lines;
}

/** The 4-level page walk of linear address `lin` (long mode only), read from RAM without side effects. */
export function pageWalkDump(c: Cpu, lin: number, what: string): string[] {
  if ((c.cr0 & 0x80000000) === 0 || (c.efer & 0x400) === 0) return [];
  const lines = [`  page walk of ${what}=${hex64(lin)}:`];
  const low48 = ((lin % 2 ** 48) + 2 ** 48) % 2 ** 48; // exact: |lin| < 2^53
  let table = Math.floor(c.cr3 / 4096) * 4096;
  const names = ['PML4E', 'PDPTE', 'PDE', 'PTE'];
  for (let level = 0; level < 4; level++) {
    const index = Math.floor(low48 / 2 ** (39 - 9 * level)) % 512;
    const at = table + index * 8;
    const off = c.ram.offsetOf(at);
    if (off < 0) {
      lines.push(`    ${names[level]}[${index}] @${at.toString(16)}: not RAM`);
      break;
    }
    const lo = c.dv.getUint32(off, true);
    const hi = c.dv.getUint32(off + 4, true);
    lines.push(`    ${names[level]}[${index}] @${at.toString(16)} = ${hexHalves(lo, hi)}`);
    if ((lo & 1) === 0 || (level > 0 && (lo & 0x80) !== 0)) break;
    table = (hi & 0xfffff) * 2 ** 32 + ((lo & 0xfffff000) >>> 0);
  }
  return lines;
}
