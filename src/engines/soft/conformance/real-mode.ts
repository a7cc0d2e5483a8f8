/**
 * Real-mode conformance harness: for what 64-bit mode cannot reach (BCD
 * arithmetic, 16-bit addressing forms with their DS/SS defaults, operand- and
 * address-size prefixes in 16-bit code, segment-register moves, XLAT, LDS/LES).
 * One batch is one 16-bit program; case i gets segment 0x1000 + i * 0x20
 * (a 512-byte block): DS = ES = SS = that segment, SP = 0x1f0.
 *
 *   0x000 input EAX..EDI (8 x 4; the ESP slot is ignored)  0x020 input EFLAGS
 *   0x040 output EAX..EDI                                   0x060 output EFLAGS, 0x064 DS, 0x066 ES
 *   0x100 data window (224 bytes; 0x1e0-0x1ff is the stack)
 *
 * No exception handling: cases must not fault (so AAM 0's #DE is not tested here).
 */

import { CR0_ET, realModeSegment, resetCpuState, type CpuState } from '../../cpu-state.js';
import type { Engine } from '../../engine.js';
import { Ports } from '../../../machine/layout.js';
import { assemble } from '../test-support.js';
import { COMPARED_FLAGS, F } from './harness.js';

export const GPRS32 = ['eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi'] as const;
const CODE = 0x1000;
const FIRST_SEG = 0x1000;
const BLOCK = 0x200;
const MAX_REAL_CASES = 0x6000 / (BLOCK >> 4);

export interface RealCase {
  name: string;
  /** GNU as Intel-syntax 16-bit code; numeric local labels only. */
  asm: string;
  regs?: Partial<Record<(typeof GPRS32)[number], number>>;
  flags?: number;
  /** Flags the SDM leaves undefined for these instructions. */
  undefinedFlags?: number;
  /** Initial data window (block + 0x100); a fixed pattern otherwise. */
  data?: Uint8Array;
  /** The SDM's answer (checked by checkRealMode): register values (masked to 32 bits) and flags that must be set/clear. */
  expect?: { regs?: Partial<Record<(typeof GPRS32)[number], number>>; flagsSet?: number; flagsClear?: number };
}

export interface RealResult { regs: number[]; flags: number; ds: number; es: number; data: Uint8Array }

function buildReal(cases: readonly RealCase[]): { code: Uint8Array; blocks: Uint8Array; state: CpuState } {
  if (cases.length > MAX_REAL_CASES) throw new RangeError(`at most ${MAX_REAL_CASES} real-mode cases per batch`);
  const src: string[] = ['.globl _start', '_start:'];
  cases.forEach((c, i) => {
    const seg = FIRST_SEG + i * (BLOCK >> 4);
    src.push(`mov ax, 0x${seg.toString(16)}`, 'mov ds, ax', 'mov es, ax', 'mov ss, ax', 'mov sp, 0x1f0', 'push dword ptr [0x20]', 'popfd');
    GPRS32.forEach((r, k) => { if (r !== 'esp') src.push(`mov ${r}, [${k * 4}]`); });
    src.push(c.asm);
    // Save through CS-independent segment: the case may have changed DS/ES, so use SS (kept) for the stores.
    GPRS32.forEach((r, k) => src.push(`mov ss:[${0x40 + k * 4}], ${r}`));
    src.push('mov ss:[0x64], ds', 'mov ss:[0x66], es', 'mov sp, 0x1f0', 'pushfd', 'pop dword ptr ss:[0x60]');
  });
  src.push(`mov al, 0`, `out ${Ports.DEBUG_EXIT}, al`, 'hlt');
  const code = assemble(src.join('\n'), 16, CODE);
  if (CODE + code.length > FIRST_SEG * 16) throw new RangeError('real-mode batch code overlaps the blocks');
  const blocks = new Uint8Array(cases.length * BLOCK);
  const v = new DataView(blocks.buffer);
  cases.forEach((c, i) => {
    const o = i * BLOCK;
    GPRS32.forEach((r, k) => v.setUint32(o + k * 4, (c.regs?.[r] ?? 0) >>> 0, true));
    v.setUint32(o + 0x20, ((c.flags ?? 0) | 2) >>> 0, true);
    if (c.data) blocks.set(c.data.subarray(0, 0xe0), o + 0x100);
    else for (let k = 0; k < 0x100; k++) blocks[o + 0x100 + k] = (k * 0x3b + 0x11 + i) & 0xff;
  });
  const s = resetCpuState();
  s.seg.cs = realModeSegment(0, true);
  s.cr0 = CR0_ET;
  s.rip = BigInt(CODE);
  return { code, blocks, state: s };
}

async function runReal(engine: Engine, b: ReturnType<typeof buildReal>, n: number): Promise<{ exit: string; results: RealResult[] }> {
  const vm = await engine.createVm({ ramSize: 16 * 1024 * 1024, vcpuCount: 1 });
  try {
    vm.memory.writeBytes(CODE, b.code);
    vm.memory.writeBytes(FIRST_SEG * 16, b.blocks);
    vm.vcpus[0].setState(b.state);
    const timer = setTimeout(() => vm.requestExit({ kind: 'stopped' }), 3000);
    const exit = await vm.run({
      pioRead: () => 0xffffffff,
      pioWrite: (port, _s, value) => { if (port === Ports.DEBUG_EXIT) vm.requestExit({ kind: 'debug-exit', value }); },
      mmioRead: () => 0xffffffff,
      mmioWrite: () => undefined,
    });
    clearTimeout(timer);
    const mem = vm.memory.readBytes(FIRST_SEG * 16, n * BLOCK).slice();
    const v = new DataView(mem.buffer);
    const results = Array.from({ length: n }, (_, i): RealResult => {
      const o = i * BLOCK;
      return {
        regs: GPRS32.map((_r, k) => v.getUint32(o + 0x40 + k * 4, true)), flags: v.getUint32(o + 0x60, true),
        // The data window without the stack slots the harness itself writes (0x1e0-0x1ef).
        ds: v.getUint16(o + 0x64, true), es: v.getUint16(o + 0x66, true), data: mem.slice(o + 0x100, o + 0x1e0),
      };
    });
    return { exit: exit.kind, results };
  } finally {
    vm.destroy();
  }
}

const h = (v: number): string => '0x' + (v >>> 0).toString(16);

/** Runs `cases` in real mode on both engines; returns one formatted failure per differing case. */
export async function compareRealMode(subject: Engine, reference: Engine, cases: readonly RealCase[]): Promise<string[]> {
  const b = buildReal(cases);
  const mine = await runReal(subject, b, cases.length);
  const theirs = await runReal(reference, b, cases.length);
  if (mine.exit !== 'debug-exit' || theirs.exit !== 'debug-exit') return [`batch ended: ${subject.name} ${mine.exit}, ${reference.name} ${theirs.exit}`];
  const failures: string[] = [];
  cases.forEach((c, i) => {
    const e = theirs.results[i];
    const g = mine.results[i];
    const lines: string[] = [];
    GPRS32.forEach((r, k) => { if (e.regs[k] !== g.regs[k]) lines.push(`${r}: expected ${h(e.regs[k])} got ${h(g.regs[k])}`); });
    const mask = COMPARED_FLAGS & ~(c.undefinedFlags ?? 0);
    if ((e.flags ^ g.flags) & mask) lines.push(`eflags: expected ${h(e.flags)} got ${h(g.flags)} (undefined ${h(c.undefinedFlags ?? 0)})`);
    if (e.ds !== g.ds || e.es !== g.es) lines.push(`ds/es: expected ${h(e.ds)}/${h(e.es)} got ${h(g.ds)}/${h(g.es)}`);
    for (let k = 0; k < e.data.length; k++) if (e.data[k] !== g.data[k]) { lines.push(`data +${h(0x100 + k)}: expected ${h(e.data[k])} got ${h(g.data[k])}`); break; }
    if (lines.length) {
      const regs = Object.entries(c.regs ?? {}).map(([r, v]) => `${r}=${h(v)}`).join(' ');
      failures.push(`real-mode case ${i} "${c.name}"\n  asm: ${c.asm.replaceAll('\n', '; ')}\n  in:  flags=${h((c.flags ?? 0) | 2)} ${regs}\n  ${lines.join('\n  ')}`);
    }
  });
  return failures;
}

/** Runs `cases` in real mode on `engine` alone and checks each case's SDM expectation; returns the failures. */
export async function checkRealMode(engine: Engine, cases: readonly RealCase[]): Promise<string[]> {
  const run = await runReal(engine, buildReal(cases), cases.length);
  if (run.exit !== 'debug-exit') return [`batch ended: ${engine.name} ${run.exit}`];
  const failures: string[] = [];
  cases.forEach((c, i) => {
    const r = run.results[i];
    const lines: string[] = [];
    for (const [name, v] of Object.entries(c.expect?.regs ?? {})) {
      const k = GPRS32.indexOf(name as (typeof GPRS32)[number]);
      if (r.regs[k] !== v >>> 0) lines.push(`${name}: SDM says ${h(v)} got ${h(r.regs[k])}`);
    }
    const set = c.expect?.flagsSet ?? 0;
    const clear = c.expect?.flagsClear ?? 0;
    if ((r.flags & set) !== set || (r.flags & clear) !== 0) lines.push(`eflags ${h(r.flags)}: want set ${h(set)}, clear ${h(clear)}`);
    if (lines.length) failures.push(`real-mode case ${i} "${c.name}": ${lines.join('; ')}`);
  });
  return failures;
}

/**
 * BCD instructions kvm_pvm cannot run (its instruction emulator has no DAA, AAA
 * or AAS: emulation failure), checked against the SDM's worked examples.
 */
export function realModeSdmCases(): RealCase[] {
  return [
    { name: 'add + daa: 79 + 35 = 114', asm: 'add al, bl\ndaa', regs: { eax: 0x79, ebx: 0x35 }, expect: { regs: { eax: 0x14 }, flagsSet: F.CF | F.AF } },
    { name: 'sub + das: 35 - 47 = -12 (88 borrow)', asm: 'sub al, bl\ndas', regs: { eax: 0x35, ebx: 0x47 }, expect: { regs: { eax: 0x88 }, flagsSet: F.CF | F.AF } },
    { name: 'daa no adjustment', asm: 'daa', regs: { eax: 0x42 }, expect: { regs: { eax: 0x42 }, flagsClear: F.CF | F.AF | F.ZF } },
    { name: 'add + aaa: 8 + 9 = 17', asm: 'add al, bl\naaa', regs: { eax: 0x08, ebx: 0x09 }, expect: { regs: { eax: 0x0107 }, flagsSet: F.CF | F.AF } },
    { name: 'aaa carries from AL into AH (AX + 106h)', asm: 'aaa', regs: { eax: 0x00fa }, expect: { regs: { eax: 0x0200 }, flagsSet: F.CF | F.AF } },
    { name: 'sub + aas: 8 - 9', asm: 'sub al, bl\naas', regs: { eax: 0x08, ebx: 0x09 }, expect: { regs: { eax: 0xff09 }, flagsSet: F.CF | F.AF } },
    { name: 'aas no adjustment', asm: 'aas', regs: { eax: 0x1234 }, expect: { regs: { eax: 0x1204 }, flagsClear: F.CF | F.AF } },
    { name: 'aam: 7 * 9 = 63 -> 0603', asm: 'mov al, 7\nmov bl, 9\nmul bl\naam', regs: {}, expect: { regs: { eax: 0x0603 } } },
    { name: 'aad: 0603 -> 63', asm: 'aad', regs: { eax: 0x0603 }, expect: { regs: { eax: 0x003f }, flagsClear: F.ZF | F.SF } },
    { name: 'aam: ZF from AL (AL = 0, AH = 1)', asm: 'aam 10', regs: { eax: 0xab0a }, expect: { regs: { eax: 0x0100 }, flagsSet: F.ZF | F.PF, flagsClear: F.SF } },
    { name: 'aad: SF from AL (AL = 99h)', asm: 'aad 16', regs: { eax: 0x0909 }, expect: { regs: { eax: 0x0099 }, flagsSet: F.SF | F.PF, flagsClear: F.ZF } },
  ];
}

/** The real-mode case table: BCD, 16-bit addressing, prefixes, segment moves, XLAT, LDS/LES. */
export function realModeCases(): RealCase[] {
  const out: RealCase[] = [];
  // BCD: DAS (OF undefined), AAM/AAD (OF AF CF undefined).
  const als = [0x00, 0x09, 0x0a, 0x0f, 0x10, 0x19, 0x1a, 0x5f, 0x99, 0x9a, 0x9f, 0xa0, 0xf9, 0xfa, 0xff];
  for (const al of als) {
    for (const fl of [0, F.CF, F.AF, F.CF | F.AF]) {
      // DAA, AAA and AAS end a kvm_pvm run (its emulator lacks them): realModeSdmCases checks them against the SDM.
      out.push({ name: `das al=${h(al)}`, asm: 'das', regs: { eax: 0x1200 | al }, flags: fl, undefinedFlags: F.OF });
    }
    // kvm_pvm quirk: its AAM/AAD emulation sets SF and ZF from AX instead of AL (SDM: "according to the
    // resulting binary value in the AL register"), so SF and ZF are masked here and checked in realModeSdmCases.
    for (const base of [10, 16, 7]) {
      out.push({ name: `aam ${base} al=${h(al)}`, asm: `aam ${base}`, regs: { eax: 0xab00 | al }, undefinedFlags: F.OF | F.AF | F.CF | F.SF | F.ZF });
      out.push({ name: `aad ${base} ax=${h(al * 0x101)}`, asm: `aad ${base}`, regs: { eax: al * 0x101 }, undefinedFlags: F.OF | F.AF | F.CF | F.SF | F.ZF });
    }
  }
  // 16-bit addressing: every r/m form (BP forms default to SS; SS = DS here, so also check with DS moved).
  const forms = ['[bx+si]', '[bx+di]', '[bp+si]', '[bp+di]', '[si]', '[di]', '[0x150]', '[bx]', '[bx+si+0x10]', '[bp+di-2]', '[bp+0x20]', '[si+0x7f]', '[di-0x80]', '[bx+0x1234]'];
  for (const f of forms) {
    out.push({ name: `mov ax, ${f}`, asm: `mov ax, ${f}\nlea cx, ${f}\nmov word ptr ${f}, 0x5aa5`, regs: { ebx: 0x100, esi: 0x20, edi: 0x31, ebp: 0x140 } });
    out.push({ name: `wrap ${f}`, asm: `lea cx, ${f}\nlea edx, ${f}`, regs: { ebx: 0xfff0, esi: 0x20, edi: 0xfffe, ebp: 0xffff } });
    out.push({ name: `ds moved ${f}`, asm: `mov ax, ds\ninc ax\nmov ds, ax\nmov dx, ${f}`, regs: { ebx: 0x100, esi: 0x20, edi: 0x31, ebp: 0x140 } });
  }
  // Operand- and address-size prefixes in 16-bit code.
  out.push({ name: 'addr32 in real mode', asm: 'mov eax, [ebx+ecx*4+0x10]\nlea edx, [ebx+ecx*8]\nmov dword ptr [esi], 0x11223344', regs: { ebx: 0x100, ecx: 3, esi: 0x180 } });
  out.push({ name: 'operand-size 32 arithmetic', asm: 'add eax, ebx\nadc edx, ecx\nimul esi, edi\nshld eax, edx, 7', regs: { eax: 0xffffffff, ebx: 1, edx: 0x7fffffff, ecx: 0, esi: 0x12345, edi: 0x6789 }, undefinedFlags: F.AF | F.OF });
  out.push({ name: 'push/pop 16 and 32', asm: 'push eax\npush bx\npop ecx\npop dx\npushw 0x1234\npushd 0x56789abc\npop esi\npop di', regs: { eax: 0x11112222, ebx: 0x3333 } });
  out.push({ name: 'pusha/popa', asm: 'pusha\nmov ax, sp\nmov bp, [esp+4]\npopa\npushad\npopad', regs: { eax: 1, ebx: 2, ecx: 3, edx: 4, esi: 5, edi: 6, ebp: 7 } });
  out.push({ name: 'segment moves', asm: 'mov ax, ds\nadd ax, 1\nmov es, ax\npush es\npop ds\nmov bx, es', regs: {} });
  out.push({ name: 'xlat', asm: 'xlat\nmov cl, al\nmov al, 0x7\nxlat', regs: { ebx: 0x120, eax: 0x13 } });
  out.push({ name: 'lds/les', asm: 'mov word ptr [0x100], 0x1234\nmov ax, ds\nmov word ptr [0x102], ax\nlds si, [0x100]\nles di, [0x100]', regs: {} });
  out.push({ name: 'rep movsw/stosb with DF', asm: 'mov si, 0x140\nmov di, 0x180\nmov cx, 5\nstd\nrep movsw\ncld\nmov cx, 3\nrep stosb', regs: { eax: 0x77 } });
  out.push({ name: 'loop with cx / ecx (addr32)', asm: 'mov ecx, 0x10003\n1: inc ax\nloop 1b\nmov ecx, 0x10003\n2: inc bx\naddr32 loop 2b', regs: {} });
  out.push({ name: 'jcxz/jecxz', asm: 'mov ecx, 0x10000\njcxz 1f\nnot ax\n1: jecxz 2f\nnot bx\n2:', regs: {} });
  out.push({ name: 'cbw cwd cwde cdq', asm: 'cbw\nmov bx, ax\ncwd\nmov cx, dx\ncwde\ncdq', regs: { eax: 0x1280 } });
  out.push({ name: 'enter/leave 16', asm: 'mov bp, sp\nsub bp, 0x20\nenter 6, 0\nmov ax, sp\nmov bx, bp\nleave', regs: {} });
  out.push({ name: 'lahf/sahf/pushf/popf', asm: 'lahf\nmov bl, ah\nmov ah, 0xd5\nsahf\npushf\npop cx\nmov dx, 0x0cd5\npush dx\npopf', regs: {}, flags: F.OF | F.CF });
  out.push({ name: 'salc-free setcc, bsf/bsr 16', asm: 'bsf ax, bx\nbsr cx, bx\nsetnz dl\nbt bx, 3\nsetc dh', regs: { ebx: 0x0908 }, undefinedFlags: F.OF | F.SF | F.AF | F.PF | F.CF });
  out.push({ name: 'mul/div 16 and 8', asm: 'mul bx\nmov si, dx\nmov di, ax\nmov ax, 0x1234\nmov cl, 0x56\ndiv cl\nmov bp, ax\nmov ax, 0x7fff\ncwd\nmov cx, -3\nidiv cx', regs: { eax: 0xfedc, ebx: 0xba98 }, undefinedFlags: F.SF | F.ZF | F.AF | F.PF | F.CF | F.OF });
  return out;
}
