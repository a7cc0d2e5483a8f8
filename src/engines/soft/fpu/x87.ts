/**
 * x87 instruction semantics for the soft CPU: opcodes D8-DF and FWAIT.
 * `executeX87` is the interpreter's single hook. It checks #NM (CR0.EM/TS)
 * and pending unmasked exceptions (#MF when CR0.NE=1), reads memory operands
 * before changing any FPU state and writes memory before committing the
 * stack, so a #PF/#GP leaves the FPU unchanged. Arithmetic goes through the
 * softfloat core; the transcendental instructions use float64 Math functions
 * rounded into the extended format (not bit-exact with any particular CPU).
 *
 * With CR0.NE=0 an unmasked exception only sets ES/B: the legacy FERR#/IRQ13
 * path is not modelled (no chipset here routes it), and the FPU does not
 * freeze waiting for IGNNE#.
 */

import type { Cpu } from '../cpu.js';
import { AF, CF, CR0_EM, CR0_MP, CR0_NE, CR0_PE, CR0_TS, CS, DS, FS, OF, PF, SF, VM, X_MF, X_NM, X_UD, ZF } from '../arch.js';
import { D_FLAGS, D_MODRM, F_MOD3, F_SEG_SHIFT, SEG_FLAT } from '../decoder.js';
import { effectiveAddress } from '../operands.js';
import {
  add, compare, div, EX_DE, EX_IE, EX_PE, EX_ZE, fromF32, fromF64, fromInt64, fromNumber, isDenormal80, isInf80, isNaN80,
  isUnsupported80, isZero80, mul, RC_DOWN, RC_UP, RC_CHOP, remainder, roundToIntegral, roundToPrecision, scale, sqrt, toFloat, toInt,
  toNumber, BIAS, type FloatEnv,
} from './softfloat.js';
import {
  envSize, loadEnv, storeEnv, SW_C0, SW_C1, SW_C2, SW_C3, SW_SF, TAG_EMPTY, X87State,
} from './state.js';

const C_ALL = SW_C0 | SW_C1 | SW_C2 | SW_C3;
const TWO32 = 0x1_0000_0000;

// Operand scratch (no allocation): A and B.
let aSe = 0; let aHi = 0; let aLo = 0;
let bSe = 0; let bHi = 0; let bLo = 0;
const envBuf = new Uint8Array(108);
const envView = new DataView(envBuf.buffer);

function prepare(x: X87State, pcApplies: boolean): FloatEnv {
  const env = x.env;
  const cw = x.cw;
  env.rc = (cw >> 10) & 3;
  const pc = (cw >> 8) & 3;
  env.prec = !pcApplies ? 64 : pc === 0 ? 24 : pc === 2 ? 53 : 64;
  env.masks = cw & 0x3f;
  env.flags = 0;
  env.roundedUp = 0;
  return env;
}

/** True when an unmasked IE/DE/ZE forbids writing the result. */
function blocked(x: X87State): boolean {
  return (x.env.flags & ~x.cw & (EX_IE | EX_DE | EX_ZE)) !== 0;
}

/** Merges the operation's flags into the status word; C1 = rounded up when inexact. */
function commitFlags(x: X87State): void {
  const env = x.env;
  x.sw = (x.sw & ~SW_C1) | ((env.flags & EX_PE) !== 0 && env.roundedUp !== 0 ? SW_C1 : 0);
  x.sw |= env.flags & 0x3f;
  if ((env.flags & ~x.cw & 0x3f) !== 0) x.updateSummary();
}

/** Stack fault: IE + SF, C1 = 1 for overflow, 0 for underflow. Returns true when masked (continue with the indefinite). */
function stackFault(x: X87State, overflow: boolean): boolean {
  x.sw = (x.sw & ~SW_C1) | SW_SF | 1 | (overflow ? SW_C1 : 0);
  x.updateSummary();
  return (x.cw & 1) !== 0;
}

function phys(x: X87State, i: number): number {
  return (x.top + i) & 7;
}
function empty(x: X87State, i: number): boolean {
  return x.tag[(x.top + i) & 7] === TAG_EMPTY;
}
function loadA(x: X87State, i: number): void {
  const p = (x.top + i) & 7;
  aSe = x.se[p]; aHi = x.hi[p]; aLo = x.lo[p];
}
function loadB(x: X87State, i: number): void {
  const p = (x.top + i) & 7;
  bSe = x.se[p]; bHi = x.hi[p]; bLo = x.lo[p];
}
function setSt(x: X87State, i: number, se: number, hi: number, lo: number): void {
  x.setPhys((x.top + i) & 7, se, hi, lo);
}
function setStIndefinite(x: X87State, i: number): void {
  setSt(x, i, 0xffff, 0xc0000000, 0);
}
function pop(x: X87State): void {
  x.tag[x.top] = TAG_EMPTY;
  x.top = (x.top + 1) & 7;
}
/** Pushes a value; on stack overflow (masked) pushes the indefinite. Returns false when an unmasked overflow blocks it. */
function push(x: X87State, se: number, hi: number, lo: number): boolean {
  const p = (x.top - 1) & 7;
  if (x.tag[p] !== TAG_EMPTY) {
    if (!stackFault(x, true)) return false;
    x.top = p;
    x.setPhys(p, 0xffff, 0xc0000000, 0);
    return false;
  }
  x.top = p;
  x.setPhys(p, se, hi, lo);
  return true;
}

/** Records FIP/FCS/FOP (and FDP/FDS for memory operands) for a non-control instruction. */
function recordPointers(c: Cpu, x: X87State, op: number, modrm: number, memLin: number, f: number, hasMem = true): void {
  x.fop = ((op & 7) << 8) | (modrm & 0xff);
  x.fip = c.rip;
  x.fcs = c.segSel[CS];
  if (hasMem) {
    const seg = (f >> F_SEG_SHIFT) & 7;
    const s = seg === SEG_FLAT ? DS : seg;
    x.fds = c.segSel[s];
    x.fdp = seg === SEG_FLAT || (c.long64 && seg < FS) ? memLin : c.long64 ? memLin - c.segBase[s] : (memLin - c.segBase[s]) >>> 0;
  }
}

/** FWAIT/WAIT: #NM when CR0.MP and CR0.TS, then pending unmasked exceptions. */
export function fwait(c: Cpu): void {
  if ((c.cr0 & (CR0_TS | CR0_MP)) === (CR0_TS | CR0_MP)) c.raise(X_NM);
  checkPending(c);
}

function checkPending(c: Cpu): void {
  if ((c.x87.sw & 0x80) !== 0 && (c.cr0 & CR0_NE) !== 0) c.raise(X_MF);
}

// ---- Memory operands ----------------------------------------------------

/** Reads a memory operand of `kind` into A (0 m32real, 1 m32int, 2 m64real, 3 m16int) through env conversions. */
function readMemOperand(c: Cpu, x: X87State, lin: number, kind: number): void {
  const env = x.env;
  switch (kind) {
    case 0: fromF32(env, c.rd32(lin)); break;
    case 1: { const v = c.rd32(lin); fromInt64(env, v, v >> 31); break; }
    case 2: { const lo = c.rd64(lin); fromF64(env, lo, c.rdHi); break; }
    default: { const v = (c.rd16(lin) << 16) >> 16; fromInt64(env, v, v >> 31); break; }
  }
  bSe = env.se; bHi = env.hi; bLo = env.lo;
}

function read80(c: Cpu, lin: number): void {
  bLo = c.rd64(lin) >>> 0;
  bHi = c.rdHi >>> 0;
  bSe = c.rd16(lin + 8);
}

function write80(c: Cpu, lin: number, se: number, hi: number, lo: number): void {
  // Probe both ends before writing either part (the 10 bytes may cross a page).
  c.wr16(lin + 8, se);
  c.wr64(lin, lo | 0, hi | 0);
}

// ---- Arithmetic ---------------------------------------------------------

/** A op B by reg-field kind (0 add, 1 mul, 4 sub, 5 subr, 6 div, 7 divr) into env. */
function arith(env: FloatEnv, kind: number): void {
  switch (kind) {
    case 0: add(env, aSe, aHi, aLo, bSe, bHi, bLo, false); break;
    case 1: mul(env, aSe, aHi, aLo, bSe, bHi, bLo); break;
    case 4: add(env, aSe, aHi, aLo, bSe, bHi, bLo, true); break;
    case 5: add(env, bSe, bHi, bLo, aSe, aHi, aLo, true); break;
    case 6: div(env, aSe, aHi, aLo, bSe, bHi, bLo); break;
    default: div(env, bSe, bHi, bLo, aSe, aHi, aLo); break;
  }
}

/** Sets C3/C2/C0 from a compare result (0 >, 1 <, 2 =, 3 unordered). */
function setCompareCodes(x: X87State, r: number): void {
  const cc = r === 0 ? 0 : r === 1 ? SW_C0 : r === 2 ? SW_C3 : SW_C0 | SW_C2 | SW_C3;
  x.sw = (x.sw & ~C_ALL) | cc;
}

function setCompareEflags(c: Cpu, r: number): void {
  const v = r === 0 ? 0 : r === 1 ? CF : r === 2 ? ZF : ZF | PF | CF;
  c.setFlags(v, CF | PF | AF | ZF | SF | OF);
}

/** FCOM-family on A vs B; `pops` 0-2; `eflags` for FCOMI. */
function doCompare(c: Cpu, x: X87State, quiet: boolean, pops: number, eflags: boolean): void {
  const env = prepare(x, false);
  const r = compare(env, aSe, aHi, aLo, bSe, bHi, bLo, quiet);
  if (blocked(x)) { x.sw |= env.flags & 0x3f; x.updateSummary(); return; }
  x.sw |= env.flags & 0x3f;
  x.updateSummary();
  if (eflags) { setCompareEflags(c, r); x.sw &= ~SW_C1; } else { setCompareCodes(x, r); }
  for (let i = 0; i < pops; i++) pop(x);
}

/** Stack underflow for compares: codes unordered (masked) and optional pops. */
function compareUnderflow(c: Cpu, x: X87State, pops: number, eflags: boolean): void {
  if (!stackFault(x, false)) return;
  if (eflags) setCompareEflags(c, 3); else { x.sw = (x.sw & ~(SW_C0 | SW_C2 | SW_C3)) | SW_C0 | SW_C2 | SW_C3; }
  for (let i = 0; i < pops; i++) pop(x);
}

/** Arithmetic with destination ST(dst); A and B loaded; pops afterwards when `popAfter`. */
function arithStore(x: X87State, kind: number, dst: number, popAfter: boolean, pcApplies = true): void {
  const env = prepare(x, pcApplies);
  arith(env, kind);
  if (blocked(x)) { commitFlags(x); return; }
  setSt(x, dst, env.se, env.hi, env.lo);
  commitFlags(x);
  if (popAfter) pop(x);
}

// ---- Constants ------------------------------------------------------------

/** Loads a constant whose 64-bit nearest value rounded up (`roundedUp`) or down; adjusts for RC. */
function pushConstant(x: X87State, se: number, hi: number, lo: number, nearestRoundedUp: boolean): void {
  const rc = (x.cw >> 10) & 3;
  if (nearestRoundedUp && (rc === RC_DOWN || rc === RC_CHOP)) {
    if (lo === 0) { lo = 0xffffffff; hi -= 1; } else lo -= 1;
  } else if (!nearestRoundedUp && rc === RC_UP) {
    lo += 1;
  }
  x.sw &= ~SW_C1;
  push(x, se, hi >>> 0, lo >>> 0);
}

// ---- Transcendentals via float64 --------------------------------------------

/** Rounds the JS number `v` into env as an extended value (inexact unless exact in float64). */
function numberResult(env: FloatEnv, v: number, exact: boolean): void {
  fromNumber(env, v);
  const se = env.se; const hi = env.hi; const lo = env.lo;
  roundToPrecision(env, se, hi, lo);
  if (!exact && v === v && Math.abs(v) !== Infinity && v !== 0) env.flags |= EX_PE;
}

// ---- BCD ------------------------------------------------------------------

function fbld(c: Cpu, x: X87State, lin: number): boolean {
  let hiDigits = 0; let loDigits = 0;
  for (let i = 8; i >= 0; i--) {
    const byte = c.rd8(lin + i);
    const d = (byte >> 4) * 10 + (byte & 15);
    if (i >= 5) hiDigits = hiDigits * 100 + d;
    else loDigits = loDigits * 100 + d;
  }
  const sign = c.rd8(lin + 9) & 0x80;
  // value = hiDigits × 10^10 + loDigits (hi: 8 digits, lo: 10 digits), built on 16-bit pieces.
  const hh = Math.floor(hiDigits / 65536); const hl = hiDigits % 65536;
  const p1 = hl * 1e10 + loDigits; // < 2^16 × 1e10 + 1e10 < 2^53
  const p2 = hh * 1e10; // × 2^16
  const p2lo = p2 % 65536; const p2hi = Math.floor(p2 / 65536);
  let lo = p2lo * 65536 + (p1 % TWO32);
  let hi = p2hi + Math.floor(p1 / TWO32);
  if (lo >= TWO32) { lo -= TWO32; hi += 1; }
  const env = prepare(x, false);
  if (sign !== 0) {
    // negate
    lo = TWO32 - lo; hi = TWO32 - 1 - hi;
    if (lo === TWO32) { lo = 0; hi += 1; }
  }
  fromInt64(env, lo | 0, hi | 0);
  if (sign !== 0 && env.hi === 0 && env.lo === 0) env.se = 0x8000;
  return push(x, env.se, env.hi, env.lo);
}

function fbstp(c: Cpu, x: X87State, lin: number): void {
  const env = prepare(x, false);
  loadA(x, 0);
  let ok = toInt(env, aSe, aHi, aLo, 64, false);
  let lo = env.iLo >>> 0; let hi = env.iHi >>> 0;
  let sign = 0;
  if (ok) {
    if (hi >= 0x80000000) { sign = 0x80; lo = TWO32 - lo; hi = TWO32 - 1 - hi; if (lo === TWO32) { lo = 0; hi += 1; } }
    if (aSe >= 0x8000) sign = 0x80;
    // |v| must be < 10^18.
    if (hi * TWO32 + lo >= 1e18 - 64 && (hi > 0x0de0b6b3 || (hi === 0x0de0b6b3 && lo >= 0xa7640000))) ok = false;
    if (!ok) env.flags |= EX_IE;
  }
  if (blocked(x)) { commitFlags(x); return; }
  if (!ok) {
    for (let i = 0; i < 7; i++) c.wr8(lin + i, 0);
    c.wr8(lin + 7, 0xc0); c.wr8(lin + 8, 0xff); c.wr8(lin + 9, 0xff);
  } else {
    // Long division by 100 on 16-bit pieces, two digits at a time.
    const limbs = bcdLimbs;
    limbs[0] = hi >>> 16; limbs[1] = hi & 0xffff; limbs[2] = lo >>> 16; limbs[3] = lo & 0xffff;
    const bytes = bcdScratch;
    for (let i = 0; i < 9; i++) {
      let rem = 0;
      for (let k = 0; k < 4; k++) {
        const cur = rem * 65536 + limbs[k];
        limbs[k] = Math.floor(cur / 100);
        rem = cur % 100;
      }
      bytes[i] = ((Math.floor(rem / 10)) << 4) | (rem % 10);
    }
    for (let i = 0; i < 9; i++) c.wr8(lin + i, bytes[i]);
    c.wr8(lin + 9, sign);
  }
  commitFlags(x);
  pop(x);
}
const bcdScratch = new Uint8Array(9);
const bcdLimbs = new Float64Array(4);

// ---- Environment / save ----------------------------------------------------

function isProtected(c: Cpu): boolean {
  return (c.cr0 & CR0_PE) !== 0 && (c.getFlags() & VM) === 0;
}

function fnstenv(c: Cpu, x: X87State, lin: number, op32: boolean): void {
  const n = envSize(op32);
  storeEnv(x, envView, op32, isProtected(c));
  // Probe the last byte first so a fault leaves memory and state unchanged.
  c.wr8(lin + n - 1, envBuf[n - 1]);
  for (let i = 0; i < n; i++) c.wr8(lin + i, envBuf[i]);
}

function fldenvFrom(c: Cpu, x: X87State, lin: number, op32: boolean): void {
  const n = envSize(op32);
  for (let i = 0; i < n; i++) envBuf[i] = c.rd8(lin + i);
  loadEnv(x, envView, op32, isProtected(c));
}

function fnsave(c: Cpu, x: X87State, lin: number, op32: boolean): void {
  const n = envSize(op32);
  c.wr8(lin + n + 79, 0); // probe the end
  fnstenv(c, x, lin, op32);
  for (let i = 0; i < 8; i++) {
    const p = phys(x, i);
    write80(c, lin + n + 10 * i, x.se[p], x.hi[p], x.lo[p]);
  }
  x.init();
}

function frstor(c: Cpu, x: X87State, lin: number, op32: boolean): void {
  const n = envSize(op32);
  const regs = frstorScratch;
  for (let i = 0; i < 80; i++) regs[i] = c.rd8(lin + n + i);
  fldenvFrom(c, x, lin, op32);
  const tags = x.fullTagWord();
  for (let i = 0; i < 8; i++) {
    const p = phys(x, i);
    const o = 10 * i;
    x.lo[p] = (regs[o] | (regs[o + 1] << 8) | (regs[o + 2] << 16) | (regs[o + 3] << 24)) >>> 0;
    x.hi[p] = (regs[o + 4] | (regs[o + 5] << 8) | (regs[o + 6] << 16) | (regs[o + 7] << 24)) >>> 0;
    x.se[p] = regs[o + 8] | (regs[o + 9] << 8);
  }
  x.setFullTagWord(tags);
}
const frstorScratch = new Uint8Array(80);

// ---- Dispatch ----------------------------------------------------------------

function ud(c: Cpu): never {
  return c.raise(X_UD);
}

/** Executes x87 opcode `op` (0xD8-0xDF) of decoded record `b`. */
export function executeX87(c: Cpu, op: number, b: number, r: Int32Array): void {
  if ((c.cr0 & (CR0_EM | CR0_TS)) !== 0) c.raise(X_NM);
  const f = r[b + D_FLAGS];
  const modrm = r[b + D_MODRM];
  const reg = (modrm >> 3) & 7;
  const x = c.x87;
  if ((f & F_MOD3) !== 0) {
    const i = modrm & 7;
    // Non-waiting control instructions: FNCLEX/FNINIT (DB E2/E3), FNSTSW AX (DF E0).
    if (op === 0xdb && reg === 4) {
      if (i === 2) { x.sw &= 0x7f00; return; } // FNCLEX
      if (i === 3) { x.init(); return; } // FNINIT
      if (i <= 4) return; // FENI/FDISI/FSETPM: no-ops on a 387+
      return ud(c);
    }
    if (op === 0xdf && reg === 4) {
      if (i !== 0) return ud(c);
      c.lo[0] = (c.lo[0] & ~0xffff) | x.statusWord();
      return;
    }
    checkPending(c);
    execRegForm(c, x, op, reg, i, modrm, f);
    return;
  }
  const lin = effectiveAddress(c, r, b);
  const op32 = (f & 3) !== 0;
  // Non-waiting memory forms: FNSTENV (D9 /6), FNSTCW (D9 /7), FNSAVE (DD /6), FNSTSW m16 (DD /7).
  if (op === 0xd9 && reg === 6) { fnstenv(c, x, lin, op32); x.cw |= 0x3f; return; }
  if (op === 0xd9 && reg === 7) { c.wr16(lin, x.cw); return; }
  if (op === 0xdd && reg === 6) { fnsave(c, x, lin, op32); return; }
  if (op === 0xdd && reg === 7) { c.wr16(lin, x.statusWord()); return; }
  checkPending(c);
  execMemForm(c, x, op, reg, lin, modrm, f, op32);
}

function execMemForm(c: Cpu, x: X87State, op: number, reg: number, lin: number, modrm: number, f: number, op32: boolean): void {
  switch (op) {
    case 0xd8: case 0xda: case 0xdc: case 0xde: {
      // Arithmetic with a memory source: m32real, m32int, m64real, m16int.
      x.env.flags = 0;
      readMemOperand(c, x, lin, (op - 0xd8) >> 1);
      const convFlags = x.env.flags;
      recordPointers(c, x, op, modrm, lin, f);
      if (empty(x, 0)) {
        if (reg === 2 || reg === 3) { compareUnderflow(c, x, reg === 3 ? 1 : 0, false); return; }
        if (stackFault(x, false)) setStIndefinite(x, 0);
        return;
      }
      loadA(x, 0);
      if (reg === 2 || reg === 3) {
        const env = prepare(x, false);
        const res = compare(env, aSe, aHi, aLo, bSe, bHi, bLo, false);
        env.flags |= convFlags;
        x.sw |= env.flags & 0x3f;
        x.updateSummary();
        if (blocked(x)) return;
        setCompareCodes(x, res);
        if (reg === 3) pop(x);
        return;
      }
      const env = prepare(x, true);
      arith(env, reg);
      env.flags |= convFlags & (EX_IE | EX_DE);
      if (blocked(x)) { commitFlags(x); return; }
      setSt(x, 0, env.se, env.hi, env.lo);
      commitFlags(x);
      return;
    }
    case 0xd9:
      switch (reg) {
        case 0: { // FLD m32
          x.env.flags = 0;
          readMemOperand(c, x, lin, 0);
          recordPointers(c, x, op, modrm, lin, f);
          loadWithFlags(x);
          return;
        }
        case 2: case 3: storeFloat(c, x, lin, 32, reg === 3, op, modrm, f); return;
        case 4: fldenvFrom(c, x, lin, op32); return;
        case 5: x.cw = (c.rd16(lin) & 0x1f7f) | 0x40; x.updateSummary(); return;
        default: return ud(c);
      }
    case 0xdb:
      switch (reg) {
        case 0: { x.env.flags = 0; readMemOperand(c, x, lin, 1); recordPointers(c, x, op, modrm, lin, f); loadWithFlags(x); return; }
        case 1: case 2: case 3: storeInt(c, x, lin, 32, reg, op, modrm, f); return;
        case 5: { // FLD m80
          read80(c, lin);
          recordPointers(c, x, op, modrm, lin, f);
          x.sw &= ~SW_C1;
          push(x, bSe, bHi, bLo);
          return;
        }
        case 7: { // FSTP m80
          if (empty(x, 0)) {
            if (!stackFault(x, false)) return;
            write80(c, lin, 0xffff, 0xc0000000, 0);
          } else {
            loadA(x, 0);
            write80(c, lin, aSe, aHi, aLo);
            x.sw &= ~SW_C1;
          }
          recordPointers(c, x, op, modrm, lin, f);
          pop(x);
          return;
        }
        default: return ud(c);
      }
    case 0xdd:
      switch (reg) {
        case 0: { x.env.flags = 0; readMemOperand(c, x, lin, 2); recordPointers(c, x, op, modrm, lin, f); loadWithFlags(x); return; }
        case 1: storeInt(c, x, lin, 64, 1, op, modrm, f); return;
        case 2: case 3: storeFloat(c, x, lin, 64, reg === 3, op, modrm, f); return;
        case 4: frstor(c, x, lin, op32); return;
        default: return ud(c);
      }
    default: // 0xdf
      switch (reg) {
        case 0: { x.env.flags = 0; readMemOperand(c, x, lin, 3); recordPointers(c, x, op, modrm, lin, f); loadWithFlags(x); return; }
        case 1: case 2: case 3: storeInt(c, x, lin, 16, reg, op, modrm, f); return;
        case 4: recordPointers(c, x, op, modrm, lin, f); x.sw &= ~SW_C1; fbld(c, x, lin); return;
        case 5: { // FILD m64
          const lo = c.rd64(lin);
          fromInt64(x.env, lo, c.rdHi);
          recordPointers(c, x, op, modrm, lin, f);
          x.sw &= ~SW_C1;
          push(x, x.env.se, x.env.hi, x.env.lo);
          return;
        }
        case 6: {
          recordPointers(c, x, op, modrm, lin, f);
          if (empty(x, 0)) {
            if (!stackFault(x, false)) return;
            setStIndefinite(x, 0);
          }
          fbstp(c, x, lin);
          return;
        }
        default: storeInt(c, x, lin, 64, 3, op, modrm, f); return; // FISTP m64
      }
  }
}

/** Pushes B (a converted memory operand) with the conversion's flags (SNaN → IE, denormal → DE). */
function loadWithFlags(x: X87State): void {
  const env = x.env;
  const flags = env.flags;
  env.masks = x.cw & 0x3f;
  if ((flags & ~x.cw & (EX_IE | EX_DE)) !== 0) { x.sw |= flags & 0x3f; x.updateSummary(); return; }
  x.sw &= ~SW_C1;
  x.sw |= flags & 0x3f;
  if ((flags & ~x.cw & 0x3f) !== 0) x.updateSummary();
  push(x, bSe, bHi, bLo);
}

function storeFloat(c: Cpu, x: X87State, lin: number, bits: number, popAfter: boolean, op: number, modrm: number, f: number): void {
  const env = prepare(x, false);
  if (empty(x, 0)) {
    if (!stackFault(x, false)) return;
    if (bits === 32) c.wr32(lin, 0xffc00000 | 0); else c.wr64(lin, 0, 0xfff80000 | 0);
    recordPointers(c, x, op, modrm, lin, f);
    if (popAfter) pop(x);
    return;
  }
  loadA(x, 0);
  toFloat(env, aSe, aHi, aLo, bits);
  // Unmasked IE/DE/OE/UE: memory is not written.
  if ((env.flags & ~x.cw & 0x1f) !== 0) { commitFlags(x); return; }
  if (bits === 32) c.wr32(lin, env.iLo); else c.wr64(lin, env.iLo, env.iHi);
  recordPointers(c, x, op, modrm, lin, f);
  commitFlags(x);
  if (popAfter) pop(x);
}

/** FIST (reg 2), FISTP (3), FISTTP (1) to a `bits`-bit integer. */
function storeInt(c: Cpu, x: X87State, lin: number, bits: number, reg: number, op: number, modrm: number, f: number): void {
  const env = prepare(x, false);
  const popAfter = reg !== 2;
  if (empty(x, 0)) {
    if (!stackFault(x, false)) return;
    env.iLo = bits === 16 ? 0x8000 : bits === 32 ? 0x80000000 | 0 : 0;
    env.iHi = bits === 64 ? 0x80000000 | 0 : 0;
  } else {
    loadA(x, 0);
    toInt(env, aSe, aHi, aLo, bits, reg === 1);
    if (blocked(x)) { commitFlags(x); return; }
  }
  if (bits === 16) c.wr16(lin, env.iLo); else if (bits === 32) c.wr32(lin, env.iLo); else c.wr64(lin, env.iLo, env.iHi);
  recordPointers(c, x, op, modrm, lin, f);
  commitFlags(x);
  if (popAfter) pop(x);
}

function execRegForm(c: Cpu, x: X87State, op: number, reg: number, i: number, modrm: number, f: number): void {
  switch (op) {
    case 0xd8: case 0xdc: case 0xde: {
      if (op === 0xde && reg === 3 && i !== 1) return ud(c);
      recordPointers(c, x, op, modrm, 0, f, false);
      if (reg === 2 || reg === 3) {
        // FCOM/FCOMP ST(i) (DC/DE forms are aliases), FCOMPP (DE D9).
        const pops = op === 0xde && reg === 3 ? 2 : reg === 3 || op === 0xde ? 1 : 0;
        if (empty(x, 0) || empty(x, i)) { compareUnderflow(c, x, pops, false); return; }
        loadA(x, 0); loadB(x, i);
        doCompare(c, x, false, pops, false);
        return;
      }
      const dst = op === 0xd8 ? 0 : i;
      if (empty(x, 0) || empty(x, i)) {
        if (stackFault(x, false)) { setStIndefinite(x, dst); if (op === 0xde) pop(x); }
        return;
      }
      if (op === 0xd8) { loadA(x, 0); loadB(x, i); arithStore(x, reg, 0, false); return; }
      loadA(x, i); loadB(x, 0);
      arithStore(x, reg >= 4 ? reg ^ 1 : reg, i, op === 0xde);
      return;
    }
    case 0xd9: execD9(c, x, reg, i, modrm, f); return;
    case 0xda: case 0xdb: {
      if (op === 0xda && reg === 5) {
        if (i !== 1) return ud(c);
        recordPointers(c, x, op, modrm, 0, f, false);
        if (empty(x, 0) || empty(x, 1)) { compareUnderflow(c, x, 2, false); return; }
        loadA(x, 0); loadB(x, 1);
        doCompare(c, x, true, 2, false);
        return;
      }
      if (reg <= 3) { // FCMOVcc
        recordPointers(c, x, op, modrm, 0, f, false);
        const cc = (reg === 3 ? 10 : 2 + 2 * reg) ^ (op === 0xdb ? 1 : 0); // B, E, BE, U (DB: negated)
        if (empty(x, 0) || empty(x, i)) { if (stackFault(x, false)) setStIndefinite(x, 0); return; }
        x.sw &= ~SW_C1;
        if (c.cond(cc)) { loadA(x, i); setSt(x, 0, aSe, aHi, aLo); }
        return;
      }
      if (op === 0xdb && (reg === 5 || reg === 6)) { // FUCOMI / FCOMI
        recordPointers(c, x, op, modrm, 0, f, false);
        if (empty(x, 0) || empty(x, i)) { compareUnderflow(c, x, 0, true); return; }
        loadA(x, 0); loadB(x, i);
        doCompare(c, x, reg === 5, 0, true);
        return;
      }
      return ud(c);
    }
    case 0xdd:
      recordPointers(c, x, op, modrm, 0, f, false);
      switch (reg) {
        case 0: x.tag[phys(x, i)] = TAG_EMPTY; return; // FFREE
        case 1: fxch(x, i); return;
        case 2: case 3: { // FST/FSTP ST(i)
          if (empty(x, 0)) { if (!stackFault(x, false)) return; setStIndefinite(x, i); }
          else { loadA(x, 0); setSt(x, i, aSe, aHi, aLo); x.sw &= ~SW_C1; }
          if (reg === 3) pop(x);
          return;
        }
        case 4: case 5: // FUCOM/FUCOMP
          if (empty(x, 0) || empty(x, i)) { compareUnderflow(c, x, reg - 4, false); return; }
          loadA(x, 0); loadB(x, i);
          doCompare(c, x, true, reg - 4, false);
          return;
        default: return ud(c);
      }
    default: // 0xdf
      recordPointers(c, x, op, modrm, 0, f, false);
      switch (reg) {
        case 0: x.tag[phys(x, i)] = TAG_EMPTY; pop(x); return; // FFREEP
        case 1: fxch(x, i); return;
        case 2: case 3: // FSTP aliases
          if (empty(x, 0)) { if (!stackFault(x, false)) return; setStIndefinite(x, i); }
          else { loadA(x, 0); setSt(x, i, aSe, aHi, aLo); }
          pop(x);
          return;
        case 5: case 6: // FUCOMIP / FCOMIP
          if (empty(x, 0) || empty(x, i)) { compareUnderflow(c, x, 1, true); return; }
          loadA(x, 0); loadB(x, i);
          doCompare(c, x, reg === 5, 1, true);
          return;
        default: return ud(c);
      }
  }
}

function fxch(x: X87State, i: number): void {
  if (empty(x, 0) || empty(x, i)) {
    if (!stackFault(x, false)) return;
    if (empty(x, 0)) setStIndefinite(x, 0);
    if (empty(x, i)) setStIndefinite(x, i);
  } else x.sw &= ~SW_C1;
  loadA(x, 0); loadB(x, i);
  setSt(x, 0, bSe, bHi, bLo);
  setSt(x, i, aSe, aHi, aLo);
}

function execD9(c: Cpu, x: X87State, reg: number, i: number, modrm: number, f: number): void {
  if (reg !== 2 || i !== 0) recordPointers(c, x, 0xd9, modrm, 0, f, false);
  switch (reg) {
    case 0: { // FLD ST(i)
      if (empty(x, i)) { if (!stackFault(x, false)) return; push(x, 0xffff, 0xc0000000, 0); return; }
      loadA(x, i);
      x.sw &= ~SW_C1;
      push(x, aSe, aHi, aLo);
      return;
    }
    case 1: fxch(x, i); return;
    case 2: if (i !== 0) ud(c); return; // FNOP
    case 3: // FSTP1 alias
      if (empty(x, 0)) { if (!stackFault(x, false)) return; setStIndefinite(x, i); }
      else { loadA(x, 0); setSt(x, i, aSe, aHi, aLo); }
      pop(x);
      return;
    case 4: {
      if (i === 2 || i === 3 || i > 5) return ud(c);
      if (i === 5) { fxam(x); return; }
      if (empty(x, 0)) {
        if (i === 4) { compareUnderflow(c, x, 0, false); return; }
        if (stackFault(x, false)) setStIndefinite(x, 0);
        return;
      }
      loadA(x, 0);
      if (i === 4) { bSe = 0; bHi = 0; bLo = 0; doCompare(c, x, false, 0, false); return; } // FTST
      x.sw &= ~SW_C1;
      setSt(x, 0, i === 0 ? aSe ^ 0x8000 : aSe & 0x7fff, aHi, aLo); // FCHS / FABS
      return;
    }
    case 5: {
      switch (i) {
        case 0: x.sw &= ~SW_C1; push(x, 0x3fff, 0x80000000, 0); return; // FLD1 (exact)
        case 1: pushConstant(x, 0x4000, 0xd49a784b, 0xcd1b8afe, false); return; // FLDL2T
        case 2: pushConstant(x, 0x3fff, 0xb8aa3b29, 0x5c17f0bc, true); return; // FLDL2E
        case 3: pushConstant(x, 0x4000, 0xc90fdaa2, 0x2168c235, true); return; // FLDPI
        case 4: pushConstant(x, 0x3ffd, 0x9a209a84, 0xfbcff799, true); return; // FLDLG2
        case 5: pushConstant(x, 0x3ffe, 0xb17217f7, 0xd1cf79ac, true); return; // FLDLN2
        case 6: x.sw &= ~SW_C1; push(x, 0, 0, 0); return; // FLDZ
        default: return ud(c);
      }
    }
    case 6: execD9F0(x, i); return;
    default: execD9F8(x, i); return;
  }
}

function fxam(x: X87State): void {
  loadA(x, 0);
  let cc: number;
  if (empty(x, 0)) cc = SW_C3 | SW_C0;
  else if (isUnsupported80(aSe, aHi)) cc = 0;
  else if (isNaN80(aSe, aHi, aLo)) cc = SW_C0;
  else if (isInf80(aSe, aHi, aLo)) cc = SW_C2 | SW_C0;
  else if (isZero80(aSe, aHi, aLo)) cc = SW_C3;
  else if (isDenormal80(aSe, aHi, aLo)) cc = SW_C3 | SW_C2;
  else cc = SW_C2;
  if ((aSe & 0x8000) !== 0) cc |= SW_C1;
  x.sw = (x.sw & ~C_ALL) | cc;
}

/** Unary result into ST0 from a JS number function (transcendental fallbacks). */
function d9F0Unary(x: X87State, fn: number): void {
  if (empty(x, 0)) { if (stackFault(x, false)) setStIndefinite(x, 0); return; }
  loadA(x, 0);
  const env = prepare(x, false);
  if (isNaN80(aSe, aHi, aLo) || isUnsupported80(aSe, aHi)) {
    add(env, aSe, aHi, aLo, aSe, aHi, aLo, false); // NaN propagation through the core
    if (!blocked(x)) setSt(x, 0, env.se, env.hi, env.lo);
    commitFlags(x);
    return;
  }
  const v = toNumber(aSe, aHi, aLo);
  if (isDenormal80(aSe, aHi, aLo)) env.flags |= EX_DE;
  let res: number;
  if (fn === 0) { // F2XM1: defined for -1 ≤ x ≤ 1
    res = Math.expm1(v * Math.LN2);
  } else if (fn === 1) { // FSIN/FCOS range rule handled by caller
    res = Math.sin(v);
  } else {
    res = Math.cos(v);
  }
  numberResult(env, res, res === 0 && v === 0);
  if (blocked(x)) { commitFlags(x); return; }
  setSt(x, 0, env.se, env.hi, env.lo);
  commitFlags(x);
}

function execD9F0(x: X87State, i: number): void {
  switch (i) {
    case 0: d9F0Unary(x, 0); x.sw &= ~SW_C2; return; // F2XM1
    case 1: case 3: case 2: twoOperandTranscendental(x, i); return; // FYL2X, FPATAN, FPTAN
    case 4: { // FXTRACT
      if (empty(x, 0)) { if (stackFault(x, false)) { setStIndefinite(x, 0); push(x, 0xffff, 0xc0000000, 0); } return; }
      if (!empty(x, 7)) { if (stackFault(x, true)) { setStIndefinite(x, 0); push(x, 0xffff, 0xc0000000, 0); } return; }
      loadA(x, 0);
      const env = prepare(x, false);
      if (isZero80(aSe, aHi, aLo)) {
        env.flags |= EX_ZE;
        if (blocked(x)) { commitFlags(x); return; }
        setSt(x, 0, 0xffff, 0x80000000, 0);
        commitFlags(x);
        push(x, aSe, 0, 0);
        return;
      }
      if (isNaN80(aSe, aHi, aLo) || isInf80(aSe, aHi, aLo) || isUnsupported80(aSe, aHi)) {
        if (isInf80(aSe, aHi, aLo)) { setSt(x, 0, 0x7fff, 0x80000000, 0); push(x, aSe, aHi, aLo); return; }
        add(env, aSe, aHi, aLo, aSe, aHi, aLo, false);
        if (blocked(x)) { commitFlags(x); return; }
        setSt(x, 0, env.se, env.hi, env.lo); commitFlags(x); push(x, env.se, env.hi, env.lo);
        return;
      }
      if (isDenormal80(aSe, aHi, aLo)) env.flags |= EX_DE;
      if (blocked(x)) { commitFlags(x); return; }
      let e = (aSe & 0x7fff) - BIAS;
      let sHi = aHi; let sLo = aLo;
      if ((aSe & 0x7fff) === 0) {
        // denormal: normalise by hand
        e = 1 - BIAS;
        while ((sHi & 0x80000000) === 0) { sHi = ((sHi << 1) | (sLo >>> 31)) >>> 0; sLo = (sLo << 1) >>> 0; e--; }
      }
      env.flags &= ~(EX_PE | 0x18);
      fromInt64(env, e, e >> 31);
      setSt(x, 0, env.se, env.hi, env.lo);
      x.sw &= ~SW_C1;
      x.sw |= env.flags & 0x3f;
      push(x, (aSe & 0x8000) | BIAS, sHi, sLo);
      return;
    }
    case 5: case 7: break;
    case 6: x.top = (x.top - 1) & 7; x.sw &= ~SW_C1; return; // FDECSTP
    default: break;
  }
  if (i === 7) { x.top = (x.top + 1) & 7; x.sw &= ~SW_C1; return; } // FINCSTP
  fprem(x, true); // FPREM1
}

function fprem(x: X87State, nearest: boolean): void {
  if (empty(x, 0) || empty(x, 1)) { if (stackFault(x, false)) setStIndefinite(x, 0); return; }
  loadA(x, 0); loadB(x, 1);
  const env = prepare(x, false);
  const q = remainder(env, aSe, aHi, aLo, bSe, bHi, bLo, nearest);
  if (blocked(x)) { commitFlags(x); return; }
  setSt(x, 0, env.se, env.hi, env.lo);
  x.sw |= env.flags & 0x3f;
  if ((env.flags & ~x.cw & 0x3f) !== 0) x.updateSummary();
  let cc = 0;
  if ((q & 8) !== 0) cc = SW_C2;
  else {
    if ((q & 4) !== 0) cc |= SW_C0;
    if ((q & 2) !== 0) cc |= SW_C3;
    if ((q & 1) !== 0) cc |= SW_C1;
  }
  x.sw = (x.sw & ~C_ALL) | cc;
}

function twoOperandTranscendental(x: X87State, i: number): void {
  if (i === 2) { // FPTAN: ST0 = tan(ST0), push 1.0
    if (empty(x, 0)) { if (stackFault(x, false)) { setStIndefinite(x, 0); push(x, 0xffff, 0xc0000000, 0); } return; }
    if (!empty(x, 7)) { if (stackFault(x, true)) { setStIndefinite(x, 0); push(x, 0xffff, 0xc0000000, 0); } return; }
    loadA(x, 0);
    if (outOfTrigRange()) { x.sw |= SW_C2; return; }
    const env = prepare(x, false);
    const v = toNumber(aSe, aHi, aLo);
    if (isNaN80(aSe, aHi, aLo) || isUnsupported80(aSe, aHi)) { d9F0Unary(x, 1); return; }
    if (isInf80(aSe, aHi, aLo)) { env.flags |= EX_IE; if (blocked(x)) { commitFlags(x); return; } setStIndefinite(x, 0); commitFlags(x); push(x, 0xffff, 0xc0000000, 0); return; }
    numberResult(env, Math.tan(v), v === 0);
    if (blocked(x)) { commitFlags(x); return; }
    setSt(x, 0, env.se, env.hi, env.lo);
    commitFlags(x);
    x.sw &= ~SW_C2;
    push(x, 0x3fff, 0x80000000, 0);
    return;
  }
  // FYL2X (i = 1): ST1 = ST1 × log2(ST0); FPATAN (i = 3): ST1 = atan2(ST1, ST0); pop.
  if (empty(x, 0) || empty(x, 1)) { if (stackFault(x, false)) { setStIndefinite(x, 1); pop(x); } return; }
  loadA(x, 0); loadB(x, 1);
  const env = prepare(x, false);
  if (isNaN80(aSe, aHi, aLo) || isNaN80(bSe, bHi, bLo) || isUnsupported80(aSe, aHi) || isUnsupported80(bSe, bHi)) {
    add(env, aSe, aHi, aLo, bSe, bHi, bLo, false);
  } else {
    const a = toNumber(aSe, aHi, aLo); const bv = toNumber(bSe, bHi, bLo);
    if (isDenormal80(aSe, aHi, aLo) || isDenormal80(bSe, bHi, bLo)) env.flags |= EX_DE;
    if (i === 3) numberResult(env, Math.atan2(bv, a), bv === 0);
    else if (a < 0 || (a === 0 && bv === 0) || (a === 1 && Math.abs(bv) === Infinity)) { env.flags |= EX_IE; fromNumber(env, NaN); env.se = 0xffff; env.hi = 0xc0000000; env.lo = 0; }
    else if (a === 0) { env.flags |= EX_ZE; numberResult(env, bv > 0 ? -Infinity : Infinity, true); }
    else {
      const l = Math.log2(a);
      numberResult(env, bv * l, l === 0 || Number.isInteger(l));
    }
  }
  if (blocked(x)) { commitFlags(x); return; }
  setSt(x, 1, env.se, env.hi, env.lo);
  commitFlags(x);
  pop(x);
}

/** |ST0| ≥ 2^63 (in A): FSIN/FCOS/FSINCOS/FPTAN leave the operand and set C2. */
function outOfTrigRange(): boolean {
  const e = aSe & 0x7fff;
  return e !== 0x7fff && e >= BIAS + 63;
}

function execD9F8(x: X87State, i: number): void {
  switch (i) {
    case 0: fprem(x, false); return; // FPREM
    case 1: { // FYL2XP1: ST1 × log2(ST0 + 1)
      if (empty(x, 0) || empty(x, 1)) { if (stackFault(x, false)) { setStIndefinite(x, 1); pop(x); } return; }
      loadA(x, 0); loadB(x, 1);
      const env = prepare(x, false);
      if (isNaN80(aSe, aHi, aLo) || isNaN80(bSe, bHi, bLo) || isUnsupported80(aSe, aHi) || isUnsupported80(bSe, bHi)) {
        add(env, aSe, aHi, aLo, bSe, bHi, bLo, false);
      } else {
        const a = toNumber(aSe, aHi, aLo); const bv = toNumber(bSe, bHi, bLo);
        if (isDenormal80(aSe, aHi, aLo) || isDenormal80(bSe, bHi, bLo)) env.flags |= EX_DE;
        numberResult(env, bv * Math.log1p(a) / Math.LN2, a === 0);
      }
      if (blocked(x)) { commitFlags(x); return; }
      setSt(x, 1, env.se, env.hi, env.lo);
      commitFlags(x);
      pop(x);
      return;
    }
    case 2: { // FSQRT
      if (empty(x, 0)) { if (stackFault(x, false)) setStIndefinite(x, 0); return; }
      loadA(x, 0);
      const env = prepare(x, true);
      sqrt(env, aSe, aHi, aLo);
      if (blocked(x)) { commitFlags(x); return; }
      setSt(x, 0, env.se, env.hi, env.lo);
      commitFlags(x);
      return;
    }
    case 3: { // FSINCOS: ST0 = sin, push cos
      if (empty(x, 0)) { if (stackFault(x, false)) { setStIndefinite(x, 0); push(x, 0xffff, 0xc0000000, 0); } return; }
      if (!empty(x, 7)) { if (stackFault(x, true)) { setStIndefinite(x, 0); push(x, 0xffff, 0xc0000000, 0); } return; }
      loadA(x, 0);
      if (outOfTrigRange()) { x.sw |= SW_C2; return; }
      const se = aSe; const hi = aHi; const lo = aLo;
      d9F0Unary(x, 2); // cos into ST0
      const cSe = x.se[x.top]; const cHi = x.hi[x.top]; const cLo = x.lo[x.top];
      const flags = x.sw;
      setSt(x, 0, se, hi, lo);
      d9F0Unary(x, 1); // sin into ST0
      x.sw |= flags & 0x3f;
      x.sw &= ~SW_C2;
      push(x, cSe, cHi, cLo);
      return;
    }
    case 4: { // FRNDINT
      if (empty(x, 0)) { if (stackFault(x, false)) setStIndefinite(x, 0); return; }
      loadA(x, 0);
      const env = prepare(x, false);
      roundToIntegral(env, aSe, aHi, aLo);
      if (blocked(x)) { commitFlags(x); return; }
      setSt(x, 0, env.se, env.hi, env.lo);
      commitFlags(x);
      return;
    }
    case 5: { // FSCALE: ST0 × 2^trunc(ST1)
      if (empty(x, 0) || empty(x, 1)) { if (stackFault(x, false)) setStIndefinite(x, 0); return; }
      loadA(x, 0); loadB(x, 1);
      const env = prepare(x, false);
      if (isNaN80(aSe, aHi, aLo) || isNaN80(bSe, bHi, bLo) || isUnsupported80(aSe, aHi) || isUnsupported80(bSe, bHi)) {
        add(env, aSe, aHi, aLo, bSe, bHi, bLo, false);
      } else if (isInf80(bSe, bHi, bLo)) {
        const negInf = (bSe & 0x8000) !== 0;
        if ((negInf && isInf80(aSe, aHi, aLo)) || (!negInf && isZero80(aSe, aHi, aLo))) { env.flags |= EX_IE; env.se = 0xffff; env.hi = 0xc0000000; env.lo = 0; }
        else if (isZero80(aSe, aHi, aLo) || isInf80(aSe, aHi, aLo)) { env.se = aSe; env.hi = aHi; env.lo = aLo; }
        else if (negInf) { env.se = aSe & 0x8000; env.hi = 0; env.lo = 0; }
        else { env.se = (aSe & 0x8000) | 0x7fff; env.hi = 0x80000000; env.lo = 0; }
      } else {
        const n = Math.trunc(toNumber(bSe, bHi, bLo));
        if (isDenormal80(bSe, bHi, bLo)) env.flags |= EX_DE;
        scale(env, aSe, aHi, aLo, n);
      }
      if (blocked(x)) { commitFlags(x); return; }
      setSt(x, 0, env.se, env.hi, env.lo);
      commitFlags(x);
      return;
    }
    default: { // FSIN (6), FCOS (7)
      if (empty(x, 0)) { if (stackFault(x, false)) setStIndefinite(x, 0); return; }
      loadA(x, 0);
      if (outOfTrigRange()) { x.sw |= SW_C2; return; }
      if (isInf80(aSe, aHi, aLo)) {
        const env = prepare(x, false);
        env.flags |= EX_IE;
        if (!blocked(x)) setStIndefinite(x, 0);
        commitFlags(x);
        return;
      }
      d9F0Unary(x, i === 6 ? 1 : 2);
      x.sw &= ~SW_C2;
      return;
    }
  }
}
