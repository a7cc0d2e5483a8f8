/**
 * The soft CPU's instruction semantics: one `switch` over decoded opcode ids
 * (a jump table in V8; see README for the dispatch measurements), with the
 * larger instructions in helper functions. Every guest-visible effect goes
 * through Cpu (memory, flags, faults); faults unwind with Cpu.raise before
 * any register is committed, so instructions restart cleanly.
 */

import type { Cpu } from './cpu.js';
import {
  AC, AF, ARITH_FLAGS, CF, CR0_PE, CR0_TS, CR4_PKE, CS, DF, DS, EFER_LMA, EFER_SCE, ES, FS, GS, ID, IF,
  IOPL, L_NONE, LDTR, NT, OF, PF, RF, SF, SS, TF, TR, VM, X_BP, X_DB, X_DE, X_GP, X_OF, X_UD, ZF, A_DPL_SHIFT, A_P, A_S,
  A_L, A_DB, A_G, A_UNUSABLE, L_DEC, L_INC,
} from './arch.js';
import {
  D_FLAGS, D_IMM, D_IMM2, D_MODRM, D_REG, D_RM, F_LOCK, F_MOD3, F_REP, F_REPNE, F_REX, F_REXW, F_SEG_SHIFT, OP_MAP_0F, SEG_FLAT,
} from './decoder.js';
import {
  addrSize, alu, effectiveAddress, incDec, offset64, readMem, readReg, readRm, readRmRmw, signExtend, trunc, writeMem, writeReg,
  writeRm, writeRmAfterRead,
} from './operands.js';
import { cpuid, readMsr, writeMsr } from './system.js';
import { clflush, executeGroup15Sse, executeSse } from './sse/exec.js';
import { executeMmx, isMmxForm } from './sse/mmx.js';
import { executeX87, fwait } from './fpu/x87.js';

const TWO32 = 0x1_0000_0000;

/**
 * Executes decoded record `b` (opcode id `op`). The most frequent
 * instructions are handled in this small function so V8 can inline their
 * helpers; everything else goes to executeGeneral.
 */
export function execute(c: Cpu, op: number, b: number): void {
  const r = c.code.records;
  const f = r[b + D_FLAGS];
  if ((f & F_LOCK) !== 0) {
    if (!lockable(op, f, r[b + D_REG] & 7)) return ud(c);
    return executeGeneral(c, op, b, r, f);
  }
  switch (op) {
    case 0x01: case 0x03: case 0x09: case 0x0b: case 0x21: case 0x23: case 0x29: case 0x2b:
    case 0x31: case 0x33: case 0x39: case 0x3b:
      aluOp(c, r, b, f, op);
      return;
    case 0x70: case 0x71: case 0x72: case 0x73: case 0x74: case 0x75: case 0x76: case 0x77:
    case 0x78: case 0x79: case 0x7a: case 0x7b: case 0x7c: case 0x7d: case 0x7e: case 0x7f:
    case OP_MAP_0F | 0x80: case OP_MAP_0F | 0x81: case OP_MAP_0F | 0x82: case OP_MAP_0F | 0x83:
    case OP_MAP_0F | 0x84: case OP_MAP_0F | 0x85: case OP_MAP_0F | 0x86: case OP_MAP_0F | 0x87:
    case OP_MAP_0F | 0x88: case OP_MAP_0F | 0x89: case OP_MAP_0F | 0x8a: case OP_MAP_0F | 0x8b:
    case OP_MAP_0F | 0x8c: case OP_MAP_0F | 0x8d: case OP_MAP_0F | 0x8e: case OP_MAP_0F | 0x8f:
      if (c.cond(op & 15)) branch(c, f, c.nextRip + r[b + D_IMM]);
      return;
    case 0x89: { // MOV Ev,Gv
      const size = osz(f);
      const v = readReg(c, r[b + D_REG], size, f);
      writeRm(c, r, b, size, v, c.rdHi);
      return;
    }
    case 0x8b: { // MOV Gv,Ev
      const size = osz(f);
      const v = readRm(c, r, b, size);
      writeReg(c, r[b + D_REG], size, f, v, c.rdHi);
      return;
    }
    case 0xff: group45(c, r, b, f, osz(f)); return;
    case 0x81: case 0x83: group1(c, r, b, f, op); return;
    case 0xc3: retNear(c, r, b, f, op); return;
    // The limb loops of the kernel's multi-precision code (RSA self-tests)
    // and common compiler output: ADC/SBB, MOVSXD, LEA, shifts, IMUL,
    // CMOVcc, SETcc, MOVZX/MOVSX, TEST.
    case 0x11: case 0x13: case 0x19: case 0x1b: aluOp(c, r, b, f, op); return;
    case 0x63: movsxd(c, r, b, f); return;
    case 0x8d:
      if ((f & F_MOD3) !== 0) return ud(c);
      lea(c, r, b, f);
      return;
    case 0xc1: case 0xd1: case 0xd3: shift(c, r, b, f, op); return;
    case OP_MAP_0F | 0xaf: imulReg(c, r, b, f, op); return;
    case 0x84: case 0x85: testRm(c, r, b, f, op); return;
    case OP_MAP_0F | 0x40: case OP_MAP_0F | 0x41: case OP_MAP_0F | 0x42: case OP_MAP_0F | 0x43:
    case OP_MAP_0F | 0x44: case OP_MAP_0F | 0x45: case OP_MAP_0F | 0x46: case OP_MAP_0F | 0x47:
    case OP_MAP_0F | 0x48: case OP_MAP_0F | 0x49: case OP_MAP_0F | 0x4a: case OP_MAP_0F | 0x4b:
    case OP_MAP_0F | 0x4c: case OP_MAP_0F | 0x4d: case OP_MAP_0F | 0x4e: case OP_MAP_0F | 0x4f:
      cmov(c, r, b, f, op);
      return;
    case OP_MAP_0F | 0x90: case OP_MAP_0F | 0x91: case OP_MAP_0F | 0x92: case OP_MAP_0F | 0x93:
    case OP_MAP_0F | 0x94: case OP_MAP_0F | 0x95: case OP_MAP_0F | 0x96: case OP_MAP_0F | 0x97:
    case OP_MAP_0F | 0x98: case OP_MAP_0F | 0x99: case OP_MAP_0F | 0x9a: case OP_MAP_0F | 0x9b:
    case OP_MAP_0F | 0x9c: case OP_MAP_0F | 0x9d: case OP_MAP_0F | 0x9e: case OP_MAP_0F | 0x9f: // SETcc
      writeRm(c, r, b, 1, c.cond(op & 15) ? 1 : 0, 0);
      return;
    case OP_MAP_0F | 0xb6: case OP_MAP_0F | 0xb7: case OP_MAP_0F | 0xbe: case OP_MAP_0F | 0xbf:
      movExtend(c, r, b, f, op);
      return;
    case 0xe8: callRel(c, r, b, f); return;
    case 0x50: case 0x51: case 0x52: case 0x53: case 0x54: case 0x55: case 0x56: case 0x57: {
      const n = r[b + D_REG];
      c.push(osz(f), c.lo[n], c.hi[n]);
      return;
    }
    case 0x58: case 0x59: case 0x5a: case 0x5b: case 0x5c: case 0x5d: case 0x5e: case 0x5f: {
      const size = osz(f);
      const v = c.pop(size);
      writeReg(c, r[b + D_REG], size, f, v, c.rdHi);
      return;
    }
    default: return executeGeneral(c, op, b, r, f);
  }
}

function executeGeneral(c: Cpu, op: number, b: number, r: Int32Array, f: number): void {
  // Instructions that execute() handles entirely (Jcc, PUSH/POP r, CALL rel, TEST, MOVSXD, CMOVcc, SETcc,
  // MOVZX/MOVSX) never reach this switch: its only other caller, the LOCK path, rejects them with #UD first.
  switch (op) {
    // ---- ALU Eb,Gb / Ev,Gv / Gb,Eb / Gv,Ev / AL,Ib / eAX,Iz ----
    case 0x00: case 0x01: case 0x02: case 0x03: case 0x04: case 0x05:
    case 0x08: case 0x09: case 0x0a: case 0x0b: case 0x0c: case 0x0d:
    case 0x10: case 0x11: case 0x12: case 0x13: case 0x14: case 0x15:
    case 0x18: case 0x19: case 0x1a: case 0x1b: case 0x1c: case 0x1d:
    case 0x20: case 0x21: case 0x22: case 0x23: case 0x24: case 0x25:
    case 0x28: case 0x29: case 0x2a: case 0x2b: case 0x2c: case 0x2d:
    case 0x30: case 0x31: case 0x32: case 0x33: case 0x34: case 0x35:
    case 0x38: case 0x39: case 0x3a: case 0x3b: case 0x3c: case 0x3d:
      aluOp(c, r, b, f, op);
      return;
    case 0x06: case 0x0e: case 0x16: case 0x1e: // PUSH sreg
      c.push(osz(f), c.segSel[op >> 3], 0);
      return;
    case 0x07: case 0x17: case 0x1f: { // POP sreg
      const size = osz(f);
      const sel = c.peek(size, 0);
      c.loadSegment(op >> 3, sel & 0xffff);
      c.pop(size);
      if (op === 0x17) inhibitInterrupts(c);
      return;
    }
    case 0x40: case 0x41: case 0x42: case 0x43: case 0x44: case 0x45: case 0x46: case 0x47:
    case 0x48: case 0x49: case 0x4a: case 0x4b: case 0x4c: case 0x4d: case 0x4e: case 0x4f: {
      const size = osz(f);
      const n = r[b + D_REG];
      const v = incDec(c, op >= 0x48, size, readReg(c, n, size, f), 0);
      writeReg(c, n, size, f, v, 0);
      return;
    }
    case 0x60: pusha(c, osz(f)); return;
    case 0x61: popa(c, osz(f)); return;
    case 0x68: case 0x6a: {
      const v = r[b + D_IMM];
      c.push(osz(f), v, v >> 31);
      return;
    }
    case 0x69: case 0x6b: case OP_MAP_0F | 0xaf:
      imulReg(c, r, b, f, op);
      return;
    case 0x6c: case 0x6d: case 0x6e: case 0x6f:
      stringIo(c, r, b, f, op);
      return;
    case 0x80: case 0x81: case 0x82: case 0x83: group1(c, r, b, f, op); return;
    case 0x86: case 0x87: { // XCHG (always locked)
      const size = op === 0x86 ? 1 : osz(f);
      const a = readRm(c, r, b, size);
      const aHi = c.rdHi;
      const v = readReg(c, r[b + D_REG], size, f);
      const vHi = c.rdHi;
      writeRmAfterRead(c, r, b, size, v, vHi);
      writeReg(c, r[b + D_REG], size, f, a, aHi);
      return;
    }
    case 0x88: case 0x89: { // MOV Ev,Gv
      const size = op === 0x88 ? 1 : osz(f);
      const v = readReg(c, r[b + D_REG], size, f);
      writeRm(c, r, b, size, v, c.rdHi);
      return;
    }
    case 0x8a: case 0x8b: { // MOV Gv,Ev
      const size = op === 0x8a ? 1 : osz(f);
      const v = readRm(c, r, b, size);
      writeReg(c, r[b + D_REG], size, f, v, c.rdHi);
      return;
    }
    case 0x8c: { // MOV Ev,Sreg
      const s = r[b + D_REG] & 7;
      if (s > 5) return ud(c);
      const size = (f & F_MOD3) !== 0 ? osz(f) : 2;
      writeRm(c, r, b, size, c.segSel[s], 0);
      return;
    }
    case 0x8d: // LEA
      if ((f & F_MOD3) !== 0) return ud(c);
      lea(c, r, b, f);
      return;
    case 0x8e: { // MOV Sreg,Ew
      const s = r[b + D_REG] & 7;
      if (s === CS || s > 5) return ud(c);
      const sel = readRm(c, r, b, 2);
      c.loadSegment(s, sel);
      if (s === SS) inhibitInterrupts(c);
      return;
    }
    case 0x8f: { // POP Ev
      if ((r[b + D_REG] & 7) !== 0) return ud(c);
      const size = osz(f);
      const v = c.peek(size, 0);
      const vHi = c.rdHi;
      // The address is computed with RSP already incremented.
      const sp = c.getSp();
      c.pop(size);
      try { writeRm(c, r, b, size, v, vHi); } catch (e) { c.setSp(sp); throw e; }
      return;
    }
    case 0x90: // NOP / PAUSE / XCHG r8,rAX
      if ((f & F_REX) !== 0 && (r[b + D_REG] & 8) !== 0) xchgAcc(c, r, b, f);
      return;
    case 0x91: case 0x92: case 0x93: case 0x94: case 0x95: case 0x96: case 0x97:
      xchgAcc(c, r, b, f);
      return;
    case 0x27: case 0x2f: case 0x37: case 0x3f: case 0xd4: case 0xd5: // DAA DAS AAA AAS AAM AAD (#UD in 64-bit mode: the decoder marks them)
      bcd(c, op, r[b + D_IMM] & 0xff);
      return;
    case 0x98: { // CBW/CWDE/CDQE
      const size = osz(f);
      if (size === 2) c.lo[0] = (c.lo[0] & ~0xffff) | (((c.lo[0] << 24) >> 24) & 0xffff);
      else if (size === 4) { c.lo[0] = (c.lo[0] << 16) >> 16; c.hi[0] = 0; }
      else c.hi[0] = c.lo[0] >> 31;
      return;
    }
    case 0x99: { // CWD/CDQ/CQO
      const size = osz(f);
      if (size === 2) c.lo[2] = (c.lo[2] & ~0xffff) | ((c.lo[0] << 16) >> 31 & 0xffff);
      else if (size === 4) { c.lo[2] = c.lo[0] >> 31; c.hi[2] = 0; }
      else { c.lo[2] = c.hi[0] >> 31; c.hi[2] = c.hi[0] >> 31; }
      return;
    }
    case 0x9a: farCall(c, r[b + D_IMM2], osz(f) === 2 ? r[b + D_IMM] & 0xffff : r[b + D_IMM] >>> 0, osz(f)); return;
    case 0x9b: fwait(c); return; // FWAIT (fpu/)
    case 0x9c: pushf(c, osz(f)); return;
    case 0x9d: popf(c, osz(f)); return;
    case 0x9e: // SAHF
      c.setFlags((c.lo[0] >> 8) & 0xff, CF | PF | AF | ZF | SF);
      return;
    case 0x9f: // LAHF
      c.lo[0] = (c.lo[0] & ~0xff00) | ((c.getFlags() & 0xd7 | 2) << 8);
      return;
    case 0xa0: case 0xa1: case 0xa2: case 0xa3: { // MOV moffs
      const size = op & 1 ? osz(f) : 1;
      const asz = addrSize(f);
      let off = asz === 8 ? r[b + D_IMM2] * TWO32 + (r[b + D_IMM] >>> 0) : r[b + D_IMM] >>> 0;
      if (asz === 8 && off >= 2 ** 63) off -= 2 ** 64;
      const seg = (f >> F_SEG_SHIFT) & 7;
      const lin = seg === SEG_FLAT ? off : c.long64 ? (seg >= FS ? off + c.segBase[seg] : off) : (c.segBase[seg] + off) >>> 0;
      if (op < 0xa2) { const v = readMem(c, lin, size); writeReg(c, 0, size, f, v, c.rdHi); }
      else writeMem(c, lin, size, readReg(c, 0, size, f), c.hi[0]);
      return;
    }
    case 0xa4: case 0xa5: case 0xa6: case 0xa7: case 0xaa: case 0xab: case 0xac: case 0xad: case 0xae: case 0xaf:
      stringOp(c, f, op);
      return;
    case 0xa8: case 0xa9: { // TEST acc,imm
      const size = op === 0xa8 ? 1 : osz(f);
      const a = readReg(c, 0, size, f);
      const imm = r[b + D_IMM];
      alu(c, 4, size, a, c.rdHi, trunc(imm, size), imm >> 31);
      return;
    }
    case 0xb0: case 0xb1: case 0xb2: case 0xb3: case 0xb4: case 0xb5: case 0xb6: case 0xb7:
      writeReg(c, r[b + D_REG], 1, f, r[b + D_IMM], 0);
      return;
    case 0xb8: case 0xb9: case 0xba: case 0xbb: case 0xbc: case 0xbd: case 0xbe: case 0xbf:
      writeReg(c, r[b + D_REG], osz(f), f, r[b + D_IMM], r[b + D_IMM2]);
      return;
    case 0xc0: case 0xc1: case 0xd0: case 0xd1: case 0xd2: case 0xd3: shift(c, r, b, f, op); return;
    case 0xc2: case 0xc3: retNear(c, r, b, f, op); return;
    case 0xc4: case 0xc5: { // LES/LDS (outside 64-bit mode)
      if ((f & F_MOD3) !== 0) return ud(c);
      loadFarPointer(c, r, b, f, op === 0xc4 ? ES : DS);
      return;
    }
    case 0xc6: case 0xc7: { // MOV Ev,imm
      if ((r[b + D_REG] & 7) !== 0) return ud(c);
      const size = op === 0xc6 ? 1 : osz(f);
      const imm = r[b + D_IMM];
      writeRm(c, r, b, size, trunc(imm, size), imm >> 31);
      return;
    }
    case 0xc8: enter(c, osz(f), r[b + D_IMM], r[b + D_IMM2]); return;
    case 0xc9: { // LEAVE
      const size = osz(f);
      const bp = c.stackSize === 8 ? c.reg64(5) : c.stackSize === 4 ? c.lo[5] >>> 0 : c.lo[5] & 0xffff;
      const v = size === 8 ? c.rd64(c.stackLin(bp)) : size === 4 ? c.rd32(c.stackLin(bp)) : c.rd16(c.stackLin(bp));
      const vHi = size === 8 ? c.rdHi : 0;
      c.setSp(wrapStack(c, bp + size));
      writeReg(c, 5, size, f, v, vHi);
      return;
    }
    case 0xca: case 0xcb: farReturn(c, osz(f), op === 0xca ? r[b + D_IMM] & 0xffff : 0); return;
    case 0xcc: c.softwareInterrupt(X_BP, true); return;
    case 0xcd: c.softwareInterrupt(r[b + D_IMM] & 0xff, true); return;
    case 0xce: if (c.getOF() !== 0) c.softwareInterrupt(X_OF, true); return;
    case 0xcf: iret(c, osz(f)); return;
    case 0xd6: // SALC (undocumented; #UD in 64-bit mode, the decoder marks it): AL = CF ? 0xff : 0
      c.lo[0] = (c.lo[0] & ~0xff) | (c.getCF() !== 0 ? 0xff : 0);
      return;
    case 0xd7: { // XLAT
      const asz = addrSize(f);
      const bx = asz === 8 ? c.reg64(3) : asz === 4 ? c.lo[3] >>> 0 : c.lo[3] & 0xffff;
      const off = asz === 8 ? bx + (c.lo[0] & 0xff) : asz === 4 ? (bx + (c.lo[0] & 0xff)) >>> 0 : (bx + (c.lo[0] & 0xff)) & 0xffff;
      const seg = (f >> F_SEG_SHIFT) & 7;
      const lin = seg === SEG_FLAT ? off : c.long64 ? off + (seg >= FS ? c.segBase[seg] : 0) : (c.segBase[seg] + off) >>> 0;
      writeReg(c, 0, 1, 0, c.rd8(lin), 0);
      return;
    }
    case 0xd8: case 0xd9: case 0xda: case 0xdb: case 0xdc: case 0xdd: case 0xde: case 0xdf:
      executeX87(c, op, b, r); // x87 (fpu/)
      return;
    case 0xe0: case 0xe1: case 0xe2: case 0xe3: loop(c, r, b, f, op); return;
    case 0xe4: case 0xe5: case 0xec: case 0xed: { // IN
      const size = (op & 1) === 0 ? 1 : osz(f) === 2 ? 2 : 4;
      const port = op < 0xe8 ? r[b + D_IMM] & 0xff : c.lo[2] & 0xffff;
      checkIo(c, port, size);
      const v = c.host === null ? 0xffffffff : c.host.pioRead(port, size);
      writeReg(c, 0, size, 0, v, 0);
      return;
    }
    case 0xe6: case 0xe7: case 0xee: case 0xef: { // OUT
      const size = (op & 1) === 0 ? 1 : osz(f) === 2 ? 2 : 4;
      const port = op < 0xe8 ? r[b + D_IMM] & 0xff : c.lo[2] & 0xffff;
      checkIo(c, port, size);
      const v = size === 1 ? c.lo[0] & 0xff : size === 2 ? c.lo[0] & 0xffff : c.lo[0] >>> 0;
      c.host?.pioWrite(port, size, v);
      c.eventCheck = true; // a device may have raised an interrupt
      return;
    }
    case 0xe9: case 0xeb: branch(c, f, c.nextRip + r[b + D_IMM]); return;
    case 0xea: c.loadFarCode(r[b + D_IMM2]); c.nextRip = osz(f) === 2 ? r[b + D_IMM] & 0xffff : r[b + D_IMM] >>> 0; return;
    case 0xf1: c.softwareInterrupt(X_DB, false); return;
    case 0xf4: // HLT
      if (c.cpl !== 0) c.raise(X_GP, 0);
      c.halted = true;
      c.eventCheck = true;
      return;
    case 0xf5: c.setFlags(c.getFlags() ^ CF, CF); return;
    case 0xf6: case 0xf7: group3(c, r, b, op === 0xf6 ? 1 : osz(f)); return;
    case 0xf8: c.setFlags(0, CF); return;
    case 0xf9: c.setFlags(CF, CF); return;
    case 0xfa: // CLI
      if ((c.cr0 & CR0_PE) !== 0 && c.cpl > ((c.flags & IOPL) >> 12)) c.raise(X_GP, 0);
      c.flags &= ~IF;
      return;
    case 0xfb: // STI
      if ((c.cr0 & CR0_PE) !== 0 && c.cpl > ((c.flags & IOPL) >> 12)) c.raise(X_GP, 0);
      if ((c.flags & IF) === 0) { c.flags |= IF; inhibitInterrupts(c); }
      return;
    case 0xfc: c.flags &= ~DF; return;
    case 0xfd: c.flags |= DF; return;
    case 0xfe: case 0xff: group45(c, r, b, f, op === 0xfe ? 1 : osz(f)); return;

    // ---- 0F map ----
    case OP_MAP_0F | 0x00: group6(c, r, b, f); return;
    case OP_MAP_0F | 0x01: group7(c, r, b, f); return;
    case OP_MAP_0F | 0x02: case OP_MAP_0F | 0x03: larLsl(c, r, b, f, op === (OP_MAP_0F | 0x02)); return;
    case OP_MAP_0F | 0x05: syscall(c); return;
    case OP_MAP_0F | 0x06: // CLTS
      if (c.cpl !== 0) c.raise(X_GP, 0);
      c.cr0 &= ~CR0_TS;
      return;
    case OP_MAP_0F | 0x07: sysret(c, f); return;
    case OP_MAP_0F | 0x08: case OP_MAP_0F | 0x09: // INVD, WBINVD
      if (c.cpl !== 0) c.raise(X_GP, 0);
      return;
    case OP_MAP_0F | 0x0d: case OP_MAP_0F | 0x18: case OP_MAP_0F | 0x19: case OP_MAP_0F | 0x1a: case OP_MAP_0F | 0x1b:
    case OP_MAP_0F | 0x1c: case OP_MAP_0F | 0x1d: case OP_MAP_0F | 0x1e: case OP_MAP_0F | 0x1f:
      return; // prefetch hints and multi-byte NOPs (ENDBR included)
    case OP_MAP_0F | 0x20: case OP_MAP_0F | 0x22: movCr(c, r, b, op === (OP_MAP_0F | 0x22)); return;
    case OP_MAP_0F | 0x21: case OP_MAP_0F | 0x23: movDr(c, r, b, op === (OP_MAP_0F | 0x23)); return;
    case OP_MAP_0F | 0x30: // WRMSR
      if (c.cpl !== 0) c.raise(X_GP, 0);
      if (!writeMsr(c, c.lo[1] >>> 0, c.lo[0], c.lo[2])) { c.trace?.msrFault(c, true); c.raise(X_GP, 0); }
      c.eventCheck = true;
      return;
    case OP_MAP_0F | 0x31: rdtsc(c); return;
    case OP_MAP_0F | 0x32: // RDMSR
      if (c.cpl !== 0) c.raise(X_GP, 0);
      if (!readMsr(c, c.lo[1] >>> 0)) { c.trace?.msrFault(c, false); c.raise(X_GP, 0); }
      c.lo[0] = c.msrOut[0] | 0; c.hi[0] = 0;
      c.lo[2] = c.msrOut[1] | 0; c.hi[2] = 0;
      return;
    case OP_MAP_0F | 0x34: sysenter(c); return;
    case OP_MAP_0F | 0x35: sysexit(c, f); return;
    case OP_MAP_0F | 0xa0: case OP_MAP_0F | 0xa8: c.push(osz(f), c.segSel[op === (OP_MAP_0F | 0xa0) ? FS : GS], 0); return;
    case OP_MAP_0F | 0xa1: case OP_MAP_0F | 0xa9: {
      const size = osz(f);
      const sel = c.peek(size, 0);
      c.loadSegment(op === (OP_MAP_0F | 0xa1) ? FS : GS, sel & 0xffff);
      c.pop(size);
      return;
    }
    case OP_MAP_0F | 0xa2: cpuid(c); return;
    case OP_MAP_0F | 0xa3: case OP_MAP_0F | 0xab: case OP_MAP_0F | 0xb3: case OP_MAP_0F | 0xbb:
      bitTest(c, r, b, f, (op >> 3) & 3, -1);
      return;
    case OP_MAP_0F | 0xba:
      if ((r[b + D_REG] & 7) < 4) return ud(c);
      bitTest(c, r, b, f, r[b + D_REG] & 3, r[b + D_IMM] & 0xff);
      return;
    case OP_MAP_0F | 0xa4: case OP_MAP_0F | 0xa5: case OP_MAP_0F | 0xac: case OP_MAP_0F | 0xad:
      doubleShift(c, r, b, f, (op & 8) !== 0, (op & 1) === 0 ? r[b + D_IMM] : c.lo[1]);
      return;
    case OP_MAP_0F | 0xae: group15(c, r, b, f); return;
    case OP_MAP_0F | 0xb0: case OP_MAP_0F | 0xb1: cmpxchg(c, r, b, f, op === (OP_MAP_0F | 0xb0) ? 1 : osz(f)); return;
    case OP_MAP_0F | 0xb2: case OP_MAP_0F | 0xb4: case OP_MAP_0F | 0xb5:
      if ((f & F_MOD3) !== 0) return ud(c);
      loadFarPointer(c, r, b, f, op === (OP_MAP_0F | 0xb2) ? SS : op === (OP_MAP_0F | 0xb4) ? FS : GS);
      return;
    case OP_MAP_0F | 0xbc: case OP_MAP_0F | 0xbd: bitScan(c, r, b, f, op === (OP_MAP_0F | 0xbd)); return;
    case OP_MAP_0F | 0xc0: case OP_MAP_0F | 0xc1: { // XADD
      const size = op === (OP_MAP_0F | 0xc0) ? 1 : osz(f);
      const a = readRmRmw(c, r, b, size);
      const aHi = size === 8 ? c.rdHi : 0;
      const n = r[b + D_REG];
      const v = readReg(c, n, size, f);
      const vHi = size === 8 ? c.rdHi : 0;
      const sum = alu(c, 0, size, a, aHi, v, vHi);
      const sumHi = c.resHi;
      // SRC <- DEST, then DEST <- sum (so XADD r, r with one register leaves the sum);
      // a memory destination is written first so a faulting write changes no register.
      if ((f & F_MOD3) !== 0) {
        writeReg(c, n, size, f, a, aHi);
        writeReg(c, r[b + D_RM], size, f, sum, sumHi);
      } else {
        writeRmAfterRead(c, r, b, size, sum, sumHi);
        writeReg(c, n, size, f, a, aHi);
      }
      return;
    }
    case OP_MAP_0F | 0xc7: group9(c, r, b, f); return;
    case OP_MAP_0F | 0xc8: case OP_MAP_0F | 0xc9: case OP_MAP_0F | 0xca: case OP_MAP_0F | 0xcb:
    case OP_MAP_0F | 0xcc: case OP_MAP_0F | 0xcd: case OP_MAP_0F | 0xce: case OP_MAP_0F | 0xcf: { // BSWAP
      const n = r[b + D_REG];
      const size = osz(f);
      if (size === 8) {
        const lo = bswap32(c.lo[n]);
        c.lo[n] = bswap32(c.hi[n]);
        c.hi[n] = lo;
      } else if (size === 4) { c.lo[n] = bswap32(c.lo[n]); c.hi[n] = 0; }
      else c.lo[n] &= ~0xffff; // undefined for 16-bit; real CPUs give 0
      return;
    }
    default:
      if (op >= OP_MAP_0F && op < 0x400 && isSseOpcode(op)) {
        return isMmxForm(op, f) ? executeMmx(c, op, b, r, f) : executeSse(c, op, b, r, f); // sse/mmx.ts, sse/exec.ts
      }
      return ud(c);
  }
}

/** LOCK is allowed only on read-modify-write instructions with a memory destination. */
function lockable(op: number, f: number, sub: number): boolean {
  if ((f & F_MOD3) !== 0) return false;
  if (op < 0x40) return (op & 7) < 2 && op !== 0x38 && op !== 0x39;
  if (op >= 0x80 && op <= 0x83) return sub !== 7;
  if (op === 0x86 || op === 0x87) return true;
  if (op === 0xf6 || op === 0xf7) return sub === 2 || sub === 3;
  if (op === 0xfe || op === 0xff) return sub <= 1;
  switch (op) {
    case OP_MAP_0F | 0xab: case OP_MAP_0F | 0xb3: case OP_MAP_0F | 0xbb:
    case OP_MAP_0F | 0xb0: case OP_MAP_0F | 0xb1: case OP_MAP_0F | 0xc0: case OP_MAP_0F | 0xc1:
      return true;
    case OP_MAP_0F | 0xba: return sub >= 5;
    case OP_MAP_0F | 0xc7: return sub === 1;
    default: return false;
  }
}

function group1(c: Cpu, r: Int32Array, b: number, f: number, op: number): void {
  const size = op === 0x80 || op === 0x82 ? 1 : osz(f);
  const kind = r[b + D_REG] & 7;
  const imm = r[b + D_IMM];
  if ((f & F_MOD3) !== 0 && size === 4) {
    const m = r[b + D_RM];
    const res = alu(c, kind, 4, c.lo[m], 0, imm, 0);
    if (kind !== 7) { c.lo[m] = res; c.hi[m] = 0; }
    return;
  }
  const a = (kind === 7 ? readRm(c, r, b, size) : readRmRmw(c, r, b, size));
  const aHi = c.rdHi;
  const res = alu(c, kind, size, a, size === 8 ? aHi : 0, trunc(imm, size), imm >> 31);
  if (kind !== 7) writeRmAfterRead(c, r, b, size, res, c.resHi);
}

function retNear(c: Cpu, r: Int32Array, b: number, f: number, op: number): void {
  const size = osz(f);
  const v = c.peek(size, 0);
  const target = size === 8 ? c.rdHi * TWO32 + (v >>> 0) : size === 4 ? v >>> 0 : v & 0xffff;
  checkBranchTarget(c, target);
  c.pop(size);
  if (op === 0xc2) c.setSp(wrapStack(c, c.getSp() + (r[b + D_IMM] & 0xffff)));
  c.nextRip = target;
}

function callRel(c: Cpu, r: Int32Array, b: number, f: number): void {
  const size = osz(f);
  const target = wrapIp(c.nextRip + r[b + D_IMM], size);
  const ret = c.nextRip;
  c.push(size, ret % TWO32 | 0, Math.floor(ret / TWO32) | 0);
  c.nextRip = target;
}

/** Operand size in bytes (2, 4 or 8) from decoder flags (local copy so V8 inlines it here). */
function osz(f: number): number {
  return 2 << (f & 3);
}

/** SF, ZF and PF of an 8-bit result, as RFLAGS bits. */
function szp8(v: number): number {
  let p = v ^ (v >> 4);
  p ^= p >> 2;
  p ^= p >> 1;
  return (v & 0x80) | (v === 0 ? ZF : 0) | ((~p & 1) << 2);
}

/** The BCD adjustments (SDM pseudo-code; flags the SDM leaves undefined come out as 0 here). */
function bcd(c: Cpu, op: number, imm: number): void {
  const ax = c.lo[0] & 0xffff;
  const al = ax & 0xff;
  let ah = ax >> 8;
  let res: number;
  let cf = 0;
  let af = 0;
  switch (op) {
    case 0x27: case 0x2f: { // DAA, DAS
      const sub = op === 0x2f;
      const oldCf = c.getCF();
      res = al;
      if ((al & 0xf) > 9 || c.getAF() !== 0) {
        res = sub ? al - 6 : al + 6;
        cf = oldCf | (res < 0 || res > 0xff ? 1 : 0);
        res &= 0xff;
        af = 1;
      }
      if (al > 0x99 || oldCf !== 0) { res = (sub ? res - 0x60 : res + 0x60) & 0xff; cf = 1; } else if (!sub) cf = 0;
      break;
    }
    case 0x37: case 0x3f: { // AAA, AAS
      let v = ax;
      if ((al & 0xf) > 9 || c.getAF() !== 0) {
        v = op === 0x37 ? ax + 0x106 : ((ax - 6) & 0xffff) - 0x100;
        af = 1;
        cf = 1;
      }
      v &= 0xffff;
      ah = v >> 8;
      res = v & 0x0f;
      c.lo[0] = (c.lo[0] & ~0xffff) | (ah << 8) | res;
      c.setFlags(cf | (af << 4) | szp8(res), ARITH_FLAGS);
      return;
    }
    case 0xd4: // AAM
      if (imm === 0) c.raise(X_DE);
      ah = Math.floor(al / imm);
      res = al % imm;
      break;
    default: // AAD
      res = (al + ah * imm) & 0xff;
      ah = 0;
  }
  c.lo[0] = (c.lo[0] & ~0xffff) | ((op === 0x27 || op === 0x2f ? ax >> 8 : ah) << 8) | res;
  c.setFlags(cf | (af << 4) | szp8(res), ARITH_FLAGS);
}

function ud(c: Cpu): never {
  return c.raise(X_UD);
}

function isSseOpcode(op: number): boolean {
  const o = op & 0xff;
  if (op >= 0x200) return true;
  return (o >= 0x10 && o <= 0x17) || (o >= 0x28 && o <= 0x2f) || (o >= 0x50 && o <= 0x7f) || (o >= 0xc2 && o <= 0xc6) || o >= 0xd0;
}

function inhibitInterrupts(c: Cpu): void {
  c.interruptShadow = true;
  c.eventCheck = true;
}

function wrapIp(v: number, size: number): number {
  if (size === 8) return v;
  return size === 4 ? v >>> 0 : v & 0xffff;
}

function wrapStack(c: Cpu, v: number): number {
  const s = c.stackSize;
  return s === 8 ? v : s === 4 ? v >>> 0 : v & 0xffff;
}

/** Near branch target check: canonical in 64-bit mode (CS limit checks are not modelled). */
function checkBranchTarget(c: Cpu, target: number): void {
  if (c.long64 && (target < -0x800000000000 || target >= 0x800000000000)) c.raise(X_GP, 0);
}

function branch(c: Cpu, f: number, target: number): void {
  const t = wrapIp(target, osz(f));
  checkBranchTarget(c, t);
  c.nextRip = t;
}

function aluOp(c: Cpu, r: Int32Array, b: number, f: number, op: number): void {
  const kind = op >> 3;
  const form = op & 7;
  if ((f & F_MOD3) !== 0 && (f & 3) === 1 && (form === 1 || form === 3)) {
    // Fast path: 32-bit register-register.
    const n = r[b + D_REG];
    const m = r[b + D_RM];
    const dst = form === 1 ? m : n;
    const res = alu(c, kind, 4, c.lo[dst], 0, c.lo[form === 1 ? n : m], 0);
    if (kind !== 7) { c.lo[dst] = res; c.hi[dst] = 0; }
    return;
  }
  const size = (form & 1) === 0 ? 1 : osz(f);
  if (form >= 4) {
    const a = readReg(c, 0, size, f);
    const aHi = size === 8 ? c.rdHi : 0;
    const imm = r[b + D_IMM];
    const res = alu(c, kind, size, a, aHi, trunc(imm, size), imm >> 31);
    if (kind !== 7) writeReg(c, 0, size, f, res, c.resHi);
    return;
  }
  const n = r[b + D_REG];
  if (form <= 1) {
    // E op= G
    if ((f & F_MOD3) !== 0) {
      const m = r[b + D_RM];
      if (size === 4) {
        const res = alu(c, kind, 4, c.lo[m], 0, c.lo[n], 0);
        if (kind !== 7) { c.lo[m] = res; c.hi[m] = 0; }
        return;
      }
      const a = readReg(c, m, size, f);
      const aHi = c.rdHi;
      const v = readReg(c, n, size, f);
      const res = alu(c, kind, size, a, aHi, v, c.rdHi);
      if (kind !== 7) writeReg(c, m, size, f, res, c.resHi);
      return;
    }
    const a = (kind === 7 ? readRm(c, r, b, size) : readRmRmw(c, r, b, size));
    const aHi = c.rdHi;
    const v = readReg(c, n, size, f);
    const res = alu(c, kind, size, a, aHi, v, c.rdHi);
    if (kind !== 7) writeRmAfterRead(c, r, b, size, res, c.resHi);
    return;
  }
  // G op= E
  const v = readRm(c, r, b, size);
  const vHi = c.rdHi;
  const a = readReg(c, n, size, f);
  const res = alu(c, kind, size, a, c.rdHi, v, vHi);
  if (kind !== 7) writeReg(c, n, size, f, res, c.resHi);
}

/** MOVSXD Gv,Ed (64-bit mode only; ARPL is not supported). */
function movsxd(c: Cpu, r: Int32Array, b: number, f: number): void {
  if (!c.long64) return ud(c);
  const v = readRm(c, r, b, 4);
  const size = osz(f);
  writeReg(c, r[b + D_REG], size, f, v, size === 8 ? v >> 31 : 0);
}

/** TEST Eb,Gb / Ev,Gv. */
function testRm(c: Cpu, r: Int32Array, b: number, f: number, op: number): void {
  const size = op === 0x84 ? 1 : osz(f);
  const a = readRm(c, r, b, size);
  const aHi = c.rdHi;
  const v = readReg(c, r[b + D_REG], size, f);
  alu(c, 4, size, a, aHi, v, c.rdHi);
}

/** CMOVcc Gv,Ev: the source is read (and may fault) whatever the condition. */
function cmov(c: Cpu, r: Int32Array, b: number, f: number, op: number): void {
  const size = osz(f);
  const v = readRm(c, r, b, size);
  const vHi = c.rdHi;
  const n = r[b + D_REG];
  if (c.cond(op & 15)) writeReg(c, n, size, f, v, vHi);
  else if (size === 4) c.hi[n] = 0;
}

/** MOVZX/MOVSX Gv,Eb/Ew. */
function movExtend(c: Cpu, r: Int32Array, b: number, f: number, op: number): void {
  const srcSize = (op & 1) === 0 ? 1 : 2;
  let v = readRm(c, r, b, srcSize);
  const size = osz(f);
  if ((op & 8) !== 0) v = signExtend(v, srcSize);
  writeReg(c, r[b + D_REG], size, f, v, v >> 31);
}

/** Shift group 2: C0/C1 (imm8), D0/D1 (1), D2/D3 (CL). */
function shift(c: Cpu, r: Int32Array, b: number, f: number, op: number): void {
  const size = (op & 1) === 0 ? 1 : osz(f);
  const count = op <= 0xc1 ? r[b + D_IMM] : op <= 0xd1 ? 1 : c.lo[1];
  shiftGroup(c, r, b, size, r[b + D_REG] & 7, count & (size === 8 ? 63 : 31));
}

/** LEA: the offset part of the effective address (no segment base), truncated to the operand size. */
function lea(c: Cpu, r: Int32Array, b: number, f: number): void {
  const size = osz(f);
  const asz = addrSize(f);
  let lo: number;
  let hi = 0;
  if (asz === 8) {
    offset64(c, r, b, f);
    lo = c.eaLo;
    hi = c.eaHi;
  } else {
    // 16/32-bit address size: the offset without segment base.
    const saved = f;
    r[b + D_FLAGS] = (f & ~(7 << F_SEG_SHIFT)) | (SEG_FLAT << F_SEG_SHIFT);
    try { lo = effectiveAddress(c, r, b) | 0; } finally { r[b + D_FLAGS] = saved; }
  }
  writeReg(c, r[b + D_REG], size, f, size === 2 ? lo & 0xffff : lo, hi);
}

function xchgAcc(c: Cpu, r: Int32Array, b: number, f: number): void {
  const size = osz(f);
  const n = r[b + D_REG];
  const a = readReg(c, 0, size, f);
  const aHi = c.rdHi;
  const v = readReg(c, n, size, f);
  writeReg(c, 0, size, f, v, c.rdHi);
  writeReg(c, n, size, f, a, aHi);
}

function pusha(c: Cpu, size: number): void {
  if (c.long64) return ud(c);
  const sp = c.lo[4];
  for (let i = 0; i < 8; i++) c.push(size, i === 4 ? sp : c.lo[i], 0);
}

function popa(c: Cpu, size: number): void {
  if (c.long64) return ud(c);
  for (let i = 7; i >= 0; i--) {
    const v = c.pop(size);
    if (i !== 4) writeReg(c, i, size, F_REX, v, 0);
  }
}

function imulReg(c: Cpu, r: Int32Array, b: number, f: number, op: number): void {
  const size = osz(f);
  const a = readRm(c, r, b, size);
  const aHi = c.rdHi;
  let m: number;
  let mHi: number;
  if (op === (OP_MAP_0F | 0xaf)) { m = readReg(c, r[b + D_REG], size, f); mHi = c.rdHi; }
  else { m = r[b + D_IMM]; mHi = m >> 31; }
  const n = r[b + D_REG];
  if (size === 8 && aHi === 0 && mHi === 0) {
    // Both factors in [0, 2^32) (the kernel's generic umul_ppmm): one 32×32
    // product; it overflows the signed 64-bit range iff bit 63 is set.
    const lo = c.wide.mulU32(a >>> 0, m >>> 0) | 0;
    const hi = c.wide.mulHi | 0;
    const overflow = hi < 0 ? 1 : 0;
    writeReg(c, n, 8, f, lo, hi);
    c.setResultFlags(8, lo, hi, overflow, overflow);
    return;
  }
  if (size === 8) {
    c.wide.mulS64(a, aHi, m, mHi);
    const o = c.wide.out;
    const overflow = !(o[2] === o[1] >> 31 && o[3] === o[1] >> 31);
    writeReg(c, n, 8, f, o[0], o[1]);
    c.setResultFlags(8, o[0], o[1], overflow ? 1 : 0, overflow ? 1 : 0);
    return;
  }
  const sa = signExtend(a, size);
  const sm = signExtend(m, size);
  let lo: number;
  let overflow: boolean;
  if (size === 4) {
    c.wide.mulS64(sa, sa >> 31, sm, sm >> 31);
    lo = c.wide.out[0];
    overflow = c.wide.out[1] !== lo >> 31;
  } else {
    const p = sa * sm;
    lo = p & 0xffff;
    overflow = p !== ((p << 16) >> 16);
  }
  writeReg(c, n, size, f, lo, 0);
  c.setResultFlags(size, trunc(lo, size), 0, overflow ? 1 : 0, overflow ? 1 : 0);
}

function group3(c: Cpu, r: Int32Array, b: number, size: number): void {
  const sub = r[b + D_REG] & 7;
  const a = (sub === 2 || sub === 3 ? readRmRmw(c, r, b, size) : readRm(c, r, b, size));
  const aHi = size === 8 ? c.rdHi : 0;
  switch (sub) {
    case 0: case 1: { // TEST
      const imm = r[b + D_IMM];
      alu(c, 4, size, a, aHi, trunc(imm, size), imm >> 31);
      return;
    }
    case 2: // NOT
      writeRmAfterRead(c, r, b, size, trunc(~a, size), ~aHi);
      return;
    case 3: { // NEG
      const res = alu(c, 5, size, 0, 0, a, aHi);
      writeRmAfterRead(c, r, b, size, res, c.resHi);
      return;
    }
    case 4: case 5: mulDiv(c, size, sub === 5, a, aHi, false); return;
    default: mulDiv(c, size, sub === 7, a, aHi, true); return;
  }
}

/** MUL/IMUL (one operand) and DIV/IDIV with the accumulator pair. */
function mulDiv(c: Cpu, size: number, signed: boolean, v: number, vHi: number, divide: boolean): void {
  const w = c.wide;
  const o = w.out;
  if (!divide) {
    if (size === 1) {
      const p = signed ? signExtend(c.lo[0] & 0xff, 1) * signExtend(v, 1) : (c.lo[0] & 0xff) * v;
      c.lo[0] = (c.lo[0] & ~0xffff) | (p & 0xffff);
      const of = signed ? p !== ((p << 24) >> 24) : (p & 0xff00) !== 0;
      c.setResultFlags(1, p & 0xff, 0, of ? 1 : 0, of ? 1 : 0);
      return;
    }
    if (size === 2) {
      const p = signed ? signExtend(c.lo[0], 2) * signExtend(v, 2) : (c.lo[0] & 0xffff) * v;
      c.lo[0] = (c.lo[0] & ~0xffff) | (p & 0xffff);
      c.lo[2] = (c.lo[2] & ~0xffff) | ((p >> 16) & 0xffff);
      const of = signed ? p !== ((p << 16) >> 16) : (p >>> 16) !== 0;
      c.setResultFlags(2, p & 0xffff, 0, of ? 1 : 0, of ? 1 : 0);
      return;
    }
    if (size === 4) {
      if (signed) w.mulS64(c.lo[0], c.lo[0] >> 31, v, v >> 31);
      else w.mulU64(c.lo[0], 0, v, 0);
      const lo = o[0];
      const hi = o[1];
      c.lo[0] = lo; c.hi[0] = 0; c.lo[2] = hi; c.hi[2] = 0;
      const of = signed ? hi !== lo >> 31 : hi !== 0;
      c.setResultFlags(4, lo, 0, of ? 1 : 0, of ? 1 : 0);
      return;
    }
    if (signed) w.mulS64(c.lo[0], c.hi[0], v, vHi);
    else w.mulU64(c.lo[0], c.hi[0], v, vHi);
    const of = signed ? !(o[2] === o[1] >> 31 && o[3] === o[1] >> 31) : (o[2] | o[3]) !== 0;
    c.lo[0] = o[0]; c.hi[0] = o[1]; c.lo[2] = o[2]; c.hi[2] = o[3];
    c.setResultFlags(8, o[0], o[1], of ? 1 : 0, of ? 1 : 0);
    return;
  }
  // Divide.
  if (size === 1) {
    const n = c.lo[0] & 0xffff;
    if (v === 0) c.raise(X_DE);
    let q: number;
    let rem: number;
    if (signed) {
      const sn = (n << 16) >> 16;
      const sd = signExtend(v, 1);
      q = Math.trunc(sn / sd);
      rem = sn - q * sd;
      if (q > 127 || q < -128) c.raise(X_DE);
    } else {
      q = Math.floor(n / v);
      rem = n - q * v;
      if (q > 0xff) c.raise(X_DE);
    }
    c.lo[0] = (c.lo[0] & ~0xffff) | (q & 0xff) | ((rem & 0xff) << 8);
    return;
  }
  if (size === 2) {
    const n = ((c.lo[2] & 0xffff) << 16) | (c.lo[0] & 0xffff);
    if (v === 0) c.raise(X_DE);
    let q: number;
    let rem: number;
    if (signed) {
      const sd = signExtend(v, 2);
      q = Math.trunc(n / sd);
      rem = n - q * sd;
      if (q > 32767 || q < -32768) c.raise(X_DE);
    } else {
      const un = n >>> 0;
      q = Math.floor(un / v);
      rem = un - q * v;
      if (q > 0xffff) c.raise(X_DE);
    }
    c.lo[0] = (c.lo[0] & ~0xffff) | (q & 0xffff);
    c.lo[2] = (c.lo[2] & ~0xffff) | (rem & 0xffff);
    return;
  }
  let ok: boolean;
  if (size === 4) {
    ok = signed
      ? w.divS128(c.lo[0], c.lo[2], c.lo[2] >> 31, c.lo[2] >> 31, v, v >> 31)
      : w.divU128(c.lo[0], c.lo[2], 0, 0, v, 0);
    if (ok && signed && (o[1] !== o[0] >> 31)) ok = false;
    if (ok && !signed && o[1] !== 0) ok = false;
    if (!ok) c.raise(X_DE);
    c.lo[0] = o[0]; c.hi[0] = 0; c.lo[2] = o[2]; c.hi[2] = 0;
    return;
  }
  ok = signed
    ? w.divS128(c.lo[0], c.hi[0], c.lo[2], c.hi[2], v, vHi)
    : w.divU128(c.lo[0], c.hi[0], c.lo[2], c.hi[2], v, vHi);
  if (!ok) c.raise(X_DE);
  c.lo[0] = o[0]; c.hi[0] = o[1]; c.lo[2] = o[2]; c.hi[2] = o[3];
}

function group45(c: Cpu, r: Int32Array, b: number, f: number, size: number): void {
  const sub = r[b + D_REG] & 7;
  if (sub <= 1 && size === 4 && (f & F_MOD3) !== 0) {
    // Fast path: INC/DEC r32.
    const m = r[b + D_RM];
    const cf = c.getCF();
    const a = c.lo[m];
    const res = sub === 0 ? (a + 1) | 0 : (a - 1) | 0;
    c.lo[m] = res;
    c.hi[m] = 0;
    c.setLazy(sub === 0 ? L_INC : L_DEC, 4, res, 0, a, 0, 1, 0);
    c.lazyCF = cf;
    return;
  }
  if (sub <= 1) {
    const a = readRmRmw(c, r, b, size);
    const aHi = size === 8 ? c.rdHi : 0;
    const res = incDec(c, sub === 1, size, a, aHi);
    writeRmAfterRead(c, r, b, size, res, c.resHi);
    return;
  }
  if (size === 1) return ud(c);
  switch (sub) {
    case 2: case 4: { // CALL/JMP near indirect
      const sz = c.long64 ? 8 : size;
      const v = readRm(c, r, b, sz);
      const target = sz === 8 ? c.rdHi * TWO32 + (v >>> 0) : sz === 4 ? v >>> 0 : v & 0xffff;
      checkBranchTarget(c, target);
      if (sub === 2) { const ret = c.nextRip; c.push(sz, ret % TWO32 | 0, Math.floor(ret / TWO32) | 0); }
      c.nextRip = target;
      return;
    }
    case 3: case 5: { // CALL/JMP far indirect
      if ((f & F_MOD3) !== 0) return ud(c);
      const lin = effectiveAddress(c, r, b);
      const off = size === 8 ? c.rd64(lin) : size === 4 ? c.rd32(lin) : c.rd16(lin);
      const offHi = size === 8 ? c.rdHi : 0;
      const sel = c.rd16(c.linWrap(lin + size));
      const target = size === 8 ? offHi * TWO32 + (off >>> 0) : size === 4 ? off >>> 0 : off & 0xffff;
      if (sub === 3) farCall(c, sel, target, size);
      else { c.loadFarCode(sel); c.nextRip = target; }
      return;
    }
    case 6: { // PUSH Ev
      const sz = c.long64 ? ((f & 3) === 0 ? 2 : 8) : size;
      const v = readRm(c, r, b, sz);
      c.push(sz, v, c.rdHi);
      return;
    }
    default: return ud(c);
  }
}

function farCall(c: Cpu, sel: number, offset: number, size: number): void {
  const oldCs = c.segSel[CS];
  const ret = c.nextRip;
  const sp = c.getSp();
  // Push first (may fault), then load CS; undo the pushes if the load faults.
  c.push(size, oldCs, 0);
  c.push(size, ret % TWO32 | 0, Math.floor(ret / TWO32) | 0);
  try { c.loadFarCode(sel); } catch (e) { c.setSp(sp); throw e; }
  c.nextRip = offset;
}

function farReturn(c: Cpu, size: number, extra: number): void {
  const ip = c.peek(size, 0);
  const ipHi = c.rdHi;
  const sel = c.peek(size, size) & 0xffff;
  const target = size === 8 ? ipHi * TWO32 + (ip >>> 0) : size === 4 ? ip >>> 0 : ip & 0xffff;
  if ((c.cr0 & CR0_PE) === 0 || (c.flags & VM) !== 0) {
    c.setSp(wrapStack(c, c.getSp() + 2 * size + extra));
    c.setRealSegment(CS, sel);
    c.updateMode();
    c.nextRip = target;
    return;
  }
  const rpl = c.loadReturnCode(sel);
  if (rpl === c.cpl) {
    c.setSp(wrapStack(c, c.getSp() + 2 * size + extra));
    c.loadCodeDescriptor(sel, rpl);
    c.updateMode();
    c.nextRip = target;
    return;
  }
  // Return to an outer privilege level: pop SS:SP too.
  const newSp = c.peek(size, 2 * size + extra);
  const newSpHi = c.rdHi;
  const newSs = c.peek(size, 3 * size + extra) & 0xffff;
  const descLo = c.descLo;
  const descHi = c.descHi;
  c.cpl = rpl;
  c.descLo = descLo; c.descHi = descHi;
  c.loadCodeDescriptor(sel, rpl);
  c.updateMode();
  c.loadSegment(SS, newSs);
  if (size === 8) { c.lo[4] = newSp; c.hi[4] = newSpHi; }
  else c.setSp(wrapStack(c, (size === 4 ? newSp >>> 0 : newSp & 0xffff) + extra));
  c.nullifyInaccessibleSegments();
  c.nextRip = target;
}

function iret(c: Cpu, size: number): void {
  // Unblocking NMIs ends the batch so that a pending NMI is taken right after the IRET.
  if (c.nmiBlocked) { c.nmiBlocked = false; c.eventCheck = true; }
  if ((c.cr0 & CR0_PE) === 0) {
    const ip = c.peek(size, 0) >>> 0;
    const cs = c.peek(size, size) & 0xffff;
    const fl = c.peek(size, 2 * size);
    c.setSp(wrapStack(c, c.getSp() + 3 * size));
    c.setRealSegment(CS, cs);
    c.updateMode();
    const mask = size === 2 ? 0xffff & ~0 : WRITABLE_REAL;
    c.setFlags(fl, mask & (size === 2 ? 0xffff : 0xffffffff));
    c.nextRip = size === 2 ? ip & 0xffff : ip;
    return;
  }
  if ((c.flags & NT) !== 0 && !c.long64 && (c.efer & EFER_LMA) === 0) c.raise(X_GP, 0); // task return: unsupported
  const ip = c.peek(size, 0);
  const ipHi = c.rdHi;
  const cs = c.peek(size, size) & 0xffff;
  const fl = c.peek(size, 2 * size);
  const target = size === 8 ? ipHi * TWO32 + (ip >>> 0) : size === 4 ? ip >>> 0 : ip & 0xffff;
  if ((fl & VM) !== 0 && size === 4 && c.cpl === 0 && (c.efer & EFER_LMA) === 0) c.raise(X_GP, 0); // virtual-8086: unsupported
  const rpl = c.loadReturnCode(cs);
  const oldCpl = c.cpl;
  const longMode = (c.efer & EFER_LMA) !== 0;
  const popStack = rpl !== oldCpl || c.long64;
  let newSp = 0;
  let newSpHi = 0;
  let newSs = 0;
  if (popStack) {
    newSp = c.peek(size, 3 * size);
    newSpHi = c.rdHi;
    newSs = c.peek(size, 4 * size) & 0xffff;
  }
  const descLo = c.descLo;
  const descHi = c.descHi;
  // Flags allowed to change depend on the old CPL and IOPL.
  let mask = ARITH_FLAGS | TF | DF | NT | RF | AC | ID;
  if (oldCpl === 0) mask |= IOPL | IF;
  else if (oldCpl <= ((c.flags & IOPL) >> 12)) mask |= IF;
  if (size === 2) mask &= 0xffff;
  c.descLo = descLo; c.descHi = descHi;
  c.cpl = rpl;
  c.loadCodeDescriptor(cs, rpl);
  c.updateMode();
  if (popStack) {
    if (longMode && (newSs & 0xfffc) === 0 && rpl < 3 && c.long64) {
      c.segSel[SS] = newSs;
      c.segBase[SS] = 0;
      c.segLimit[SS] = 0xffffffff;
      c.segAttr[SS] = A_UNUSABLE | (rpl << A_DPL_SHIFT) | 0x3 | A_S | A_P | A_DB | A_G;
      c.updateMode();
    } else {
      c.loadSegment(SS, newSs);
    }
    if (size === 8) { c.lo[4] = newSp; c.hi[4] = newSpHi; }
    else if (c.stackSize === 4 || size === 4) { c.lo[4] = newSp; c.hi[4] = 0; }
    else c.lo[4] = (c.lo[4] & ~0xffff) | (newSp & 0xffff);
    if (rpl !== oldCpl) c.nullifyInaccessibleSegments();
  } else {
    c.setSp(wrapStack(c, c.getSp() + 3 * size));
  }
  c.setFlags(fl, mask);
  checkBranchTarget(c, target);
  c.nextRip = target;
}

const WRITABLE_REAL = ARITH_FLAGS | TF | IF | DF | IOPL | NT | AC | ID;

function pushf(c: Cpu, size: number): void {
  if ((c.flags & VM) !== 0 && (c.flags & IOPL) !== IOPL) c.raise(X_GP, 0);
  const v = c.getFlags() & ~(RF | VM);
  c.push(size, size === 2 ? v & 0xffff : v, 0);
}

function popf(c: Cpu, size: number): void {
  if ((c.flags & VM) !== 0 && (c.flags & IOPL) !== IOPL) c.raise(X_GP, 0);
  const v = c.pop(size);
  let mask = ARITH_FLAGS | TF | DF | NT | AC | ID;
  const pe = (c.cr0 & CR0_PE) !== 0;
  if (!pe || c.cpl === 0) mask |= IOPL | IF;
  else if (c.cpl <= ((c.flags & IOPL) >> 12)) mask |= IF;
  if (size === 2) mask &= 0xffff;
  c.setFlags(v, mask);
  c.flags &= ~RF;
}

function enter(c: Cpu, size: number, allocSize: number, nesting: number): void {
  const level = nesting & 31;
  const bpSize = c.stackSize;
  const bp = bpSize === 8 ? c.reg64(5) : bpSize === 4 ? c.lo[5] >>> 0 : c.lo[5] & 0xffff;
  c.push(size, c.lo[5], c.hi[5]);
  const frame = c.getSp();
  let p = bp;
  for (let i = 1; i < level; i++) {
    p = wrapStack(c, p - size);
    const v = size === 8 ? c.rd64(c.stackLin(p)) : size === 4 ? c.rd32(c.stackLin(p)) : c.rd16(c.stackLin(p));
    c.push(size, v, size === 8 ? c.rdHi : 0);
  }
  if (level > 0) c.push(size, frame % TWO32 | 0, Math.floor(frame / TWO32) | 0);
  const newSp = wrapStack(c, c.getSp() - allocSize);
  // Touch the new top of stack so a fault happens here.
  if (allocSize > 0) c.wr8(c.stackLin(newSp), c.rd8(c.stackLin(newSp)));
  if (size === 8) c.setReg64(5, frame);
  else if (size === 4) { c.lo[5] = frame | 0; c.hi[5] = 0; }
  else c.lo[5] = (c.lo[5] & ~0xffff) | (frame & 0xffff);
  c.setSp(newSp);
}

function loop(c: Cpu, r: Int32Array, b: number, f: number, op: number): void {
  const asz = addrSize(f);
  let count: number;
  if (op === 0xe3) {
    count = asz === 8 ? c.lo[1] | c.hi[1] : asz === 4 ? c.lo[1] : c.lo[1] & 0xffff;
    if (count === 0) branch(c, f, c.nextRip + r[b + D_IMM]);
    return;
  }
  // Decrement rCX without touching flags.
  if (asz === 8) {
    const lo = (c.lo[1] - 1) | 0;
    c.hi[1] = (c.hi[1] - (c.lo[1] === 0 ? 1 : 0)) | 0;
    c.lo[1] = lo;
    count = c.lo[1] | c.hi[1];
  } else if (asz === 4) {
    c.lo[1] = (c.lo[1] - 1) | 0;
    if (c.long64) c.hi[1] = 0;
    count = c.lo[1];
  } else {
    c.lo[1] = (c.lo[1] & ~0xffff) | ((c.lo[1] - 1) & 0xffff);
    count = c.lo[1] & 0xffff;
  }
  let take = count !== 0;
  if (op === 0xe0) take = take && c.getZF() === 0;
  else if (op === 0xe1) take = take && c.getZF() !== 0;
  if (take) branch(c, f, c.nextRip + r[b + D_IMM]);
}

function shiftGroup(c: Cpu, r: Int32Array, b: number, size: number, sub: number, count: number): void {
  const a = readRmRmw(c, r, b, size);
  const aHi = size === 8 ? c.rdHi : 0;
  if (count === 0) {
    // Flags and value unchanged, but a 32-bit register destination is still written (upper half cleared).
    if (size === 4) zeroExtendRm32(c, r, b, a);
    return;
  }
  const bits = size * 8;
  let res: number;
  let resHi = 0;
  switch (sub) {
    case 0: case 1: { // ROL, ROR
      const n = count % bits;
      if (size === 8) {
        const k = sub === 0 ? n : (64 - n) % 64;
        if (k === 0) { res = a; resHi = aHi; }
        else if (k < 32) { res = (a << k) | (aHi >>> (32 - k)); resHi = (aHi << k) | (a >>> (32 - k)); }
        else if (k === 32) { res = aHi; resHi = a; }
        else { const j = k - 32; res = (aHi << j) | (a >>> (32 - j)); resHi = (a << j) | (aHi >>> (32 - j)); }
      } else {
        const k = sub === 0 ? n : (bits - n) % bits;
        const u = size === 4 ? a >>> 0 : a;
        res = k === 0 ? u : trunc((u << k) | (u >>> (bits - k)), size);
        if (size === 4) res |= 0;
      }
      const msb = size === 8 ? resHi >>> 31 : (res >>> (bits - 1)) & 1;
      let cf: number;
      let of: number;
      if (sub === 0) { cf = res & 1; of = msb ^ cf; }
      else {
        cf = msb;
        const next = size === 8 ? (resHi >>> 30) & 1 : (res >>> (bits - 2)) & 1;
        of = msb ^ next;
      }
      writeRmAfterRead(c, r, b, size, res, resHi);
      c.setFlags(cf | (of << 11), CF | OF);
      return;
    }
    case 2: case 3: { // RCL, RCR: bit by bit through CF
      const n = size <= 2 ? count % (bits + 1) : count;
      let cf = c.getCF();
      let lo = a | 0;
      let hi = aHi;
      for (let i = 0; i < n; i++) {
        if (sub === 2) {
          const out = size === 8 ? hi >>> 31 : (lo >>> (bits - 1)) & 1;
          if (size === 8) { hi = (hi << 1) | (lo >>> 31); lo = (lo << 1) | cf; }
          else lo = trunc((lo << 1) | cf, size);
          cf = out;
        } else {
          const out = lo & 1;
          if (size === 8) { lo = (lo >>> 1) | (hi << 31); hi = (hi >>> 1) | (cf << 31); }
          else lo = trunc((lo >>> 1) | (cf << (bits - 1)), size);
          cf = out;
        }
      }
      const msb = size === 8 ? hi >>> 31 : (lo >>> (bits - 1)) & 1;
      const of = sub === 2 ? msb ^ cf : msb ^ (size === 8 ? (hi >>> 30) & 1 : (lo >>> (bits - 2)) & 1);
      writeRmAfterRead(c, r, b, size, lo, hi);
      c.setFlags(cf | (of << 11), CF | OF);
      return;
    }
    case 4: case 6: { // SHL/SAL
      let cf: number;
      if (size === 8) {
        cf = bit64(a, aHi, 64 - count);
        if (count >= 32) { resHi = a << (count - 32); res = 0; }
        else { resHi = (aHi << count) | (a >>> (32 - count)); res = a << count; }
        const of = (resHi >>> 31) ^ cf;
        writeRmAfterRead(c, r, b, size, res, resHi);
        c.setResultFlags(8, res, resHi, cf, of);
        return;
      }
      const u = size === 4 ? a >>> 0 : a;
      cf = count <= bits ? Math.floor(u / 2 ** (bits - count)) & 1 : 0;
      res = count >= 32 ? 0 : trunc(u << count, size);
      const of = ((res >>> (bits - 1)) & 1) ^ cf;
      writeRmAfterRead(c, r, b, size, res, 0);
      c.setResultFlags(size, res, 0, cf, of);
      return;
    }
    case 5: { // SHR
      if (size === 8) {
        const cf = bit64(a, aHi, count - 1);
        if (count >= 32) { res = aHi >>> (count - 32); resHi = 0; }
        else { res = (a >>> count) | (count === 0 ? 0 : aHi << (32 - count)); resHi = aHi >>> count; }
        writeRmAfterRead(c, r, b, size, res | 0, resHi | 0);
        c.setResultFlags(8, res | 0, resHi | 0, cf, aHi >>> 31);
        return;
      }
      const u = size === 4 ? a >>> 0 : a;
      const cf = count <= bits ? (u >>> (count - 1)) & 1 : 0;
      res = count >= 32 ? 0 : trunc(u >>> count, size);
      writeRmAfterRead(c, r, b, size, res, 0);
      c.setResultFlags(size, res, 0, cf, (u >>> (bits - 1)) & 1);
      return;
    }
    default: { // SAR
      if (size === 8) {
        const cf = bit64(a, aHi, count - 1);
        if (count >= 32) { res = aHi >> (count - 32); resHi = aHi >> 31; }
        else { res = (a >>> count) | (aHi << (32 - count)); resHi = aHi >> count; }
        writeRmAfterRead(c, r, b, size, res | 0, resHi);
        c.setResultFlags(8, res | 0, resHi, cf, 0);
        return;
      }
      const s = signExtend(a, size);
      const k = Math.min(count, 31);
      const cf = count >= bits ? (s >>> 31) & 1 : (s >> (k - 1)) & 1;
      res = trunc(s >> k, size);
      writeRmAfterRead(c, r, b, size, res, 0);
      c.setResultFlags(size, res, 0, cf, 0);
      return;
    }
  }
}

/** Bit `pos` (0-63) of (hi:lo). */
function bit64(lo: number, hi: number, pos: number): number {
  return pos >= 32 ? (hi >>> (pos - 32)) & 1 : (lo >>> pos) & 1;
}

/** A 32-bit register r/m operand is written back unchanged, which clears its upper half (count-0 shifts). */
function zeroExtendRm32(c: Cpu, r: Int32Array, b: number, v: number): void {
  const f = r[b + D_FLAGS];
  if ((f & F_MOD3) !== 0) writeReg(c, r[b + D_RM], 4, f, v, 0);
}

function doubleShift(c: Cpu, r: Int32Array, b: number, f: number, right: boolean, countIn: number): void {
  const size = osz(f);
  const count = countIn & (size === 8 ? 63 : 31);
  const a = readRmRmw(c, r, b, size);
  const aHi = size === 8 ? c.rdHi : 0;
  const src = readReg(c, r[b + D_REG], size, f);
  const srcHi = size === 8 ? c.rdHi : 0;
  if (count === 0) {
    if (size === 4) zeroExtendRm32(c, r, b, a);
    return;
  }
  const bits = size * 8;
  let res: number;
  let resHi = 0;
  let cf: number;
  if (size === 8) {
    // Work on the 128-bit concatenation with two 64-bit shifts.
    // count is 1..63: the destination shifted by count, the source shifted
    // the other way by 64 - count, without allocating pairs.
    if (!right) {
      cf = bit64(a, aHi, 64 - count);
      if (count >= 32) {
        const k = count - 32; // high = a.lo:src.hi by k, low = src.hi:src.lo by k
        resHi = k === 0 ? a : (a << k) | (srcHi >>> (32 - k));
        res = k === 0 ? srcHi : (srcHi << k) | (src >>> (32 - k));
      } else {
        resHi = (aHi << count) | (a >>> (32 - count));
        res = (a << count) | (srcHi >>> (32 - count));
      }
    } else {
      cf = bit64(a, aHi, count - 1);
      if (count >= 32) {
        const k = count - 32; // low = a.hi:src.lo by k, high = src.lo:src.hi by k
        res = k === 0 ? aHi : (aHi >>> k) | (src << (32 - k));
        resHi = k === 0 ? src : (src >>> k) | (srcHi << (32 - k));
      } else {
        res = (a >>> count) | (aHi << (32 - count));
        resHi = (aHi >>> count) | (src << (32 - count));
      }
    }
    res |= 0;
    resHi |= 0;
    const of = ((resHi ^ aHi) >>> 31) & 1;
    writeRmAfterRead(c, r, b, size, res, resHi);
    c.setResultFlags(8, res, resHi, cf, of);
    return;
  }
  const ua = size === 4 ? a >>> 0 : a;
  const us = size === 4 ? src >>> 0 : src & 0xffff;
  if (size === 2 && count > 16) {
    // Undefined result; model as a shift of the 32-bit (a:src) pattern.
    const wide = right ? ((us << 16) | ua) >>> 0 : ((ua << 16) | us) >>> 0;
    res = right ? (wide >>> (count - 16)) & 0xffff : (wide << (count - 16)) >>> 16 & 0xffff;
    cf = 0;
  } else if (size === 4) {
    // Integer shifts (count 1..31): products of doubles lose bits beyond 2^53.
    cf = right ? (ua >>> (count - 1)) & 1 : (ua >>> (32 - count)) & 1;
    res = right ? (ua >>> count) | (us << (32 - count)) : (ua << count) | (us >>> (32 - count));
  } else {
    // 16 bits, count 1..16, on the 32-bit concatenation.
    cf = right ? (ua >>> (count - 1)) & 1 : (ua >>> (16 - count)) & 1;
    res = right ? ((((us << 16) | ua) >>> count) & 0xffff) : ((((ua << 16) | us) << count) >>> 16) & 0xffff;
  }
  const of = (((res ^ ua) >>> (bits - 1)) & 1);
  writeRmAfterRead(c, r, b, size, res, 0);
  c.setResultFlags(size, res, 0, cf, of);
}

function bitTest(c: Cpu, r: Int32Array, b: number, f: number, kind: number, immBit: number): void {
  // kind: 0 BT, 1 BTS, 2 BTR, 3 BTC
  const size = osz(f);
  const bits = size * 8;
  let bitOff: number;
  // The bit position inside the operand comes from the exact low bits (a 64-bit
  // offset as a number is rounded beyond 2^53); bitOff only selects the memory unit.
  let bitLow: number;
  if (immBit >= 0) bitOff = bitLow = immBit & (bits - 1);
  else {
    const n = r[b + D_REG];
    bitLow = c.lo[n];
    bitOff = size === 8 ? c.reg64(n) : size === 4 ? c.lo[n] : (c.lo[n] << 16) >> 16;
  }
  let a: number;
  let aHi = 0;
  let lin = 0;
  const mem = (f & F_MOD3) === 0;
  if (!mem) {
    bitOff = bitLow & (bits - 1);
    a = readReg(c, r[b + D_RM], size, f);
    aHi = c.rdHi;
  } else {
    lin = effectiveAddress(c, r, b);
    if (immBit < 0) {
      const unitIndex = Math.floor(bitOff / bits);
      lin = c.linWrap(lin + unitIndex * size);
      bitOff = bitLow & (bits - 1);
    }
    if (kind !== 0) c.probeWrite(lin, size); // BTS/BTR/BTC: fault before CF changes
    a = readMem(c, lin, size);
    aHi = c.rdHi;
  }
  const inHi = bitOff >= 32;
  const mask = 1 << (bitOff & 31);
  const word = inHi ? aHi : a;
  const cf = (word & mask) !== 0 ? 1 : 0;
  c.setFlags(cf, CF);
  if (kind === 0) return;
  const nw = kind === 1 ? word | mask : kind === 2 ? word & ~mask : word ^ mask;
  const lo = inHi ? a : trunc(nw, size);
  const hi = inHi ? nw : aHi;
  if (mem) writeMem(c, lin, size, lo, hi);
  else writeReg(c, r[b + D_RM], size, f, lo, hi);
}

function bitScan(c: Cpu, r: Int32Array, b: number, f: number, reverse: boolean): void {
  const size = osz(f);
  const v = readRm(c, r, b, size);
  const vHi = size === 8 ? c.rdHi : 0;
  const lo = size === 2 ? v & 0xffff : v;
  if ((lo | vHi) === 0) {
    // Destination value unchanged (as real CPUs do); with a 32-bit operand the
    // register is still written, so its upper half is cleared (what the host's kvm does).
    if (size === 4) writeReg(c, r[b + D_REG], 4, f, c.lo[r[b + D_REG]], 0);
    c.setFlags(ZF, ZF);
    return;
  }
  let idx: number;
  if (!reverse) idx = lo !== 0 ? 31 - Math.clz32(lo & -lo) : 32 + 31 - Math.clz32(vHi & -vHi);
  else idx = vHi !== 0 ? 63 - Math.clz32(vHi) : 31 - Math.clz32(lo);
  writeReg(c, r[b + D_REG], size, f, idx, 0);
  c.setFlags(0, ZF);
}

function cmpxchg(c: Cpu, r: Int32Array, b: number, f: number, size: number): void {
  const dst = readRmRmw(c, r, b, size);
  const dstHi = size === 8 ? c.rdHi : 0;
  const acc = readReg(c, 0, size, f);
  const accHi = size === 8 ? c.rdHi : 0;
  alu(c, 7, size, acc, accHi, dst, dstHi);
  if (c.getZF() !== 0) {
    const v = readReg(c, r[b + D_REG], size, f);
    writeRmAfterRead(c, r, b, size, v, c.rdHi);
  } else {
    // The destination is written back with its own value (locked RMW), then the accumulator loaded.
    writeRmAfterRead(c, r, b, size, dst, dstHi);
    writeReg(c, 0, size, f, dst, dstHi);
  }
}

function group9(c: Cpu, r: Int32Array, b: number, f: number): void {
  const sub = r[b + D_REG] & 7;
  if (sub !== 1 || (f & F_MOD3) !== 0) return ud(c); // RDRAND/RDSEED/VMX: not advertised
  const lin = effectiveAddress(c, r, b);
  if ((f & F_REXW) !== 0) {
    // CMPXCHG16B: 16-byte aligned.
    if ((lin & 15) !== 0) c.raise(X_GP, 0);
    const m0 = c.rd64(lin); const m1 = c.rdHi;
    const m2 = c.rd64(lin + 8); const m3 = c.rdHi;
    if (m0 === c.lo[0] && m1 === c.hi[0] && m2 === c.lo[2] && m3 === c.hi[2]) {
      c.wr64(lin, c.lo[3], c.hi[3]);
      c.wr64(lin + 8, c.lo[1], c.hi[1]);
      c.setFlags(ZF, ZF);
    } else {
      c.wr64(lin, m0, m1);
      c.wr64(lin + 8, m2, m3);
      c.lo[0] = m0; c.hi[0] = m1; c.lo[2] = m2; c.hi[2] = m3;
      c.setFlags(0, ZF);
    }
    return;
  }
  const m0 = c.rd32(lin);
  const m1 = c.rd32(c.linWrap(lin + 4));
  if (m0 === c.lo[0] && m1 === c.lo[2]) {
    c.wr64(lin, c.lo[3], c.lo[1]);
    c.setFlags(ZF, ZF);
  } else {
    c.wr64(lin, m0, m1);
    c.lo[0] = m0; c.hi[0] = 0; c.lo[2] = m1; c.hi[2] = 0;
    c.setFlags(0, ZF);
  }
}

function group15(c: Cpu, r: Int32Array, b: number, f: number): void {
  const sub = r[b + D_REG] & 7;
  if ((f & F_MOD3) !== 0) {
    if (sub >= 5 && (f & (F_REP | F_REPNE)) === 0 && (f & 0x2000) === 0) return; // LFENCE/MFENCE/SFENCE
    return ud(c);
  }
  if (sub === 7 && (f & (F_REP | F_REPNE)) === 0) {
    clflush(c, effectiveAddress(c, r, b)); // no caches to flush; faults like a read (sse/)
    return;
  }
  if (sub <= 3 && (f & (F_REP | F_REPNE)) === 0) return executeGroup15Sse(c, r, b, f, sub); // FXSAVE/FXRSTOR/LDMXCSR/STMXCSR (sse/)
  return ud(c);
}

function bswap32(v: number): number {
  return ((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24);
}

function loadFarPointer(c: Cpu, r: Int32Array, b: number, f: number, s: number): void {
  const size = osz(f);
  const lin = effectiveAddress(c, r, b);
  const off = size === 8 ? c.rd64(lin) : size === 4 ? c.rd32(lin) : c.rd16(lin);
  const offHi = size === 8 ? c.rdHi : 0;
  const sel = c.rd16(c.linWrap(lin + size));
  c.loadSegment(s, sel);
  writeReg(c, r[b + D_REG], size, f, off, offHi);
  if (s === SS) inhibitInterrupts(c);
}

// ---- String instructions ----

/** Maximum iterations of one REP instruction before it yields (it restarts at the same RIP). */
const REP_CHUNK = 4096;

function countReg(c: Cpu, asz: number): number {
  return asz === 8 ? c.reg64(1) : asz === 4 ? c.lo[1] >>> 0 : c.lo[1] & 0xffff;
}

function setIndex(c: Cpu, n: number, asz: number, v: number): void {
  if (asz === 8) c.setReg64(n, v);
  else if (asz === 4) { c.lo[n] = v | 0; c.hi[n] = 0; }
  else c.lo[n] = (c.lo[n] & ~0xffff) | (v & 0xffff);
}

function getIndex(c: Cpu, n: number, asz: number): number {
  return asz === 8 ? c.reg64(n) : asz === 4 ? c.lo[n] >>> 0 : c.lo[n] & 0xffff;
}

function wrapIndex(v: number, asz: number): number {
  if (asz === 8) return v >= 2 ** 63 ? v - 2 ** 64 : v < -(2 ** 63) ? v + 2 ** 64 : v;
  return asz === 4 ? v >>> 0 : v & 0xffff;
}

function segLin(c: Cpu, seg: number, off: number): number {
  if (seg === SEG_FLAT) return off;
  if (c.long64) return seg >= FS ? off + c.segBase[seg] : off;
  return (c.segBase[seg] + off) >>> 0;
}

/**
 * REP MOVS / REP STOS going forward (32- or 64-bit addresses), as many whole
 * elements as fit in the current page of the destination (and source) at
 * once: one copyWithin or fill instead of one access per element, with the
 * same result. Only when the TLB already maps both pages (the write set never
 * maps code pages or pages whose dirty bit is clear, so those, MMIO and
 * faults stay on the element path) and a MOVS source does not overlap the
 * destination ahead of it. Advances RSI/RDI; returns the elements done (the
 * caller updates RCX), 0 when the element path must take the next one.
 */
function bulkMovsStos(c: Cpu, kind: number, size: number, asz: number, srcSeg: number, dstSeg: number, limit: number): number {
  const di = getIndex(c, 7, asz);
  const dLin = segLin(c, dstSeg, di);
  let n = Math.min(limit, Math.floor((4096 - (dLin & 0xfff)) / size));
  let si = 0;
  let src = -1;
  if (kind === 0xa4) {
    si = getIndex(c, 6, asz);
    const sLin = segLin(c, srcSeg, si);
    n = Math.min(n, Math.floor((4096 - (sLin & 0xfff)) / size));
    if (n < 2) return 0;
    src = c.mappedOffset(sLin, false);
    if (src < 0) return 0;
  }
  if (n < 2) return 0;
  const dst = c.mappedOffset(dLin, true);
  if (dst < 0) return 0;
  const mem = c.mem;
  if (kind === 0xa4) {
    // Element by element, a destination ahead of the source inside the range would re-read copied bytes.
    if (dst > src && dst < src + n * size) n = Math.floor((dst - src) / size);
    if (n < 2) return 0;
    mem.copyWithin(dst, src, src + n * size);
    setIndex(c, 6, asz, wrapIndex(si + n * size, asz));
  } else if (size === 1) {
    mem.fill(c.lo[0] & 0xff, dst, dst + n);
  } else {
    const dv = c.dv;
    const lo = c.lo[0];
    const hi = c.hi[0];
    const end = dst + n * size;
    if (size === 2) for (let o = dst; o < end; o += 2) dv.setUint16(o, lo & 0xffff, true);
    else if (size === 4) for (let o = dst; o < end; o += 4) dv.setInt32(o, lo, true);
    else for (let o = dst; o < end; o += 8) { dv.setInt32(o, lo, true); dv.setInt32(o + 4, hi, true); }
  }
  setIndex(c, 7, asz, wrapIndex(di + n * size, asz));
  return n;
}

function stringOp(c: Cpu, f: number, op: number): void {
  const size = (op & 1) === 0 ? 1 : osz(f);
  const asz = addrSize(f);
  const rep = (f & (F_REP | F_REPNE)) !== 0;
  const srcSeg = (f >> F_SEG_SHIFT) & 7;
  const dstSeg = c.long64 ? SEG_FLAT : ES;
  const step = (c.flags & DF) !== 0 ? -size : size;
  const kind = op & 0xfe; // a4 movs, a6 cmps, aa stos, ac lods, ae scas
  let count = rep ? countReg(c, asz) : 1;
  if (count === 0) return;
  let n = 0;
  const bulk = rep && step > 0 && asz !== 2 && (kind === 0xa4 || kind === 0xaa);
  for (;;) {
    if (bulk) {
      const done = bulkMovsStos(c, kind, size, asz, srcSeg, dstSeg, Math.min(count, REP_CHUNK - n));
      if (done > 0) {
        count -= done;
        setIndex(c, 1, asz, count);
        if (count === 0) return;
        n += done;
        if (n >= REP_CHUNK) { c.nextRip = c.rip; return; }
        continue;
      }
    }
    let si = getIndex(c, 6, asz);
    let di = getIndex(c, 7, asz);
    switch (kind) {
      case 0xa4: { // MOVS
        const v = readMem(c, segLin(c, srcSeg, si), size);
        writeMem(c, segLin(c, dstSeg, di), size, v, c.rdHi);
        si = wrapIndex(si + step, asz); di = wrapIndex(di + step, asz);
        setIndex(c, 6, asz, si); setIndex(c, 7, asz, di);
        break;
      }
      case 0xaa: // STOS
        writeMem(c, segLin(c, dstSeg, di), size, readReg(c, 0, size, F_REX), c.hi[0]);
        setIndex(c, 7, asz, wrapIndex(di + step, asz));
        break;
      case 0xac: { // LODS
        const v = readMem(c, segLin(c, srcSeg, si), size);
        writeReg(c, 0, size, F_REX, v, c.rdHi);
        setIndex(c, 6, asz, wrapIndex(si + step, asz));
        break;
      }
      case 0xa6: { // CMPS
        const a = readMem(c, segLin(c, srcSeg, si), size);
        const aHi = c.rdHi;
        const v = readMem(c, segLin(c, dstSeg, di), size);
        alu(c, 7, size, a, size === 8 ? aHi : 0, v, size === 8 ? c.rdHi : 0);
        setIndex(c, 6, asz, wrapIndex(si + step, asz)); setIndex(c, 7, asz, wrapIndex(di + step, asz));
        break;
      }
      default: { // SCAS
        const v = readMem(c, segLin(c, dstSeg, di), size);
        const vHi = c.rdHi;
        const a = readReg(c, 0, size, F_REX);
        alu(c, 7, size, a, size === 8 ? c.rdHi : 0, v, size === 8 ? vHi : 0);
        setIndex(c, 7, asz, wrapIndex(di + step, asz));
        break;
      }
    }
    if (!rep) return;
    count--;
    setIndex(c, 1, asz, count);
    if (count === 0) return;
    if (kind === 0xa6 || kind === 0xae) {
      const zf = c.getZF();
      if ((f & F_REP) !== 0 ? zf === 0 : zf !== 0) return;
    }
    if (++n >= REP_CHUNK) {
      c.nextRip = c.rip; // continue later (lets interrupts in)
      return;
    }
  }
}

function stringIo(c: Cpu, r: Int32Array, b: number, f: number, op: number): void {
  void r; void b;
  const size = (op & 1) === 0 ? 1 : osz(f) === 2 ? 2 : 4;
  const asz = addrSize(f);
  const rep = (f & (F_REP | F_REPNE)) !== 0;
  const port = c.lo[2] & 0xffff;
  checkIo(c, port, size);
  const step = (c.flags & DF) !== 0 ? -size : size;
  let count = rep ? countReg(c, asz) : 1;
  if (count === 0) return;
  let n = 0;
  for (;;) {
    if (op <= 0x6d) { // INS
      const di = getIndex(c, 7, asz);
      const lin = segLin(c, c.long64 ? SEG_FLAT : ES, di);
      // Check the destination first so a fault does not lose the port read.
      c.translate(lin, 1, c.cpl === 3);
      const v = c.host === null ? 0xffffffff : c.host.pioRead(port, size);
      writeMem(c, lin, size, v, 0);
      setIndex(c, 7, asz, wrapIndex(di + step, asz));
    } else { // OUTS
      const si = getIndex(c, 6, asz);
      const v = readMem(c, segLin(c, (f >> F_SEG_SHIFT) & 7, si), size);
      c.host?.pioWrite(port, size, size === 4 ? v >>> 0 : v);
      setIndex(c, 6, asz, wrapIndex(si + step, asz));
    }
    if (!rep) return;
    count--;
    setIndex(c, 1, asz, count);
    if (count === 0) return;
    if (++n >= REP_CHUNK) { c.nextRip = c.rip; return; }
  }
}

/** I/O permission: CPL <= IOPL, else the TSS I/O bitmap. */
function checkIo(c: Cpu, port: number, size: number): void {
  if ((c.cr0 & CR0_PE) === 0) return;
  if ((c.flags & VM) === 0 && c.cpl <= ((c.flags & IOPL) >> 12)) return;
  const trAttr = c.segAttr[TR];
  if ((trAttr & 0x9) !== 0x9) c.raise(X_GP, 0); // not a 32/64-bit TSS
  const base = c.segBase[TR];
  const limit = c.segLimit[TR];
  if (limit < 0x67) c.raise(X_GP, 0);
  const mapBase = c.sysRead(c.linWrap(base + 0x66), 2);
  const byteOff = mapBase + (port >> 3);
  if (byteOff + 1 > limit) c.raise(X_GP, 0);
  const bitsWord = c.sysRead(c.linWrap(base + byteOff), 2);
  const mask = ((1 << size) - 1) << (port & 7);
  if ((bitsWord & mask) !== 0) c.raise(X_GP, 0);
}

// ---- System instructions ----

function group6(c: Cpu, r: Int32Array, b: number, f: number): void {
  const sub = r[b + D_REG] & 7;
  if ((c.cr0 & CR0_PE) === 0 || (c.flags & VM) !== 0) return ud(c);
  switch (sub) {
    case 0: case 1: { // SLDT, STR
      const sel = c.segSel[sub === 0 ? LDTR : TR];
      writeRm(c, r, b, (f & F_MOD3) !== 0 ? osz(f) : 2, sel, 0);
      return;
    }
    case 2: case 3: { // LLDT, LTR
      if (c.cpl !== 0) c.raise(X_GP, 0);
      const sel = readRm(c, r, b, 2);
      loadSystemSegment(c, sub === 2 ? LDTR : TR, sel);
      return;
    }
    case 4: case 5: { // VERR, VERW
      const sel = readRm(c, r, b, 2);
      let ok = false;
      if ((sel & 0xfffc) !== 0 && c.readDescriptor(sel)) {
        const attr = (c.descHi >> 8) & 0xff;
        const dpl = (attr >> 5) & 3;
        const code = (attr & 8) !== 0;
        const conforming = code && (attr & 4) !== 0;
        if ((attr & A_S) !== 0 && (conforming || (dpl >= c.cpl && dpl >= (sel & 3)))) {
          ok = sub === 4 ? !code || (attr & 2) !== 0 : !code && (attr & 2) !== 0;
        }
      }
      c.setFlags(ok ? ZF : 0, ZF);
      return;
    }
    default: return ud(c);
  }
}

function loadSystemSegment(c: Cpu, s: number, sel: number): void {
  if ((sel & 0xfffc) === 0) {
    if (s === TR) c.raise(X_GP, 0);
    c.segSel[s] = sel; c.segBase[s] = 0; c.segLimit[s] = 0; c.segAttr[s] = A_UNUSABLE;
    return;
  }
  if ((sel & 4) !== 0) c.raise(X_GP, sel & 0xfffc);
  if (!c.readDescriptor(sel)) c.raise(X_GP, sel & 0xfffc);
  const attr = (c.descHi >> 8) & 0xf0ff;
  const type = attr & 0xf;
  if ((attr & A_S) !== 0) c.raise(X_GP, sel & 0xfffc);
  if (s === LDTR && type !== 2) c.raise(X_GP, sel & 0xfffc);
  if (s === TR && type !== 9 && type !== 1) c.raise(X_GP, sel & 0xfffc);
  if ((attr & A_P) === 0) c.raise(X_NP, sel & 0xfffc);
  let base = c.descBase();
  const long = (c.efer & EFER_LMA) !== 0;
  if (long) {
    const addr = c.descriptorAddress(sel);
    const hi = c.sysRead(addr + 8, 4);
    base = (hi | 0) * TWO32 + base;
  }
  const limit = c.descLimit();
  if (s === TR) {
    // Mark the TSS busy.
    c.sysWrite(c.descriptorAddress(sel) + 4, 4, c.descHi | 0x200);
  }
  c.segSel[s] = sel;
  c.segBase[s] = base;
  c.segLimit[s] = limit;
  c.segAttr[s] = s === TR ? attr | 2 : attr;
}

const X_NP = 11;

function group7(c: Cpu, r: Int32Array, b: number, f: number): void {
  const sub = r[b + D_REG] & 7;
  const modrm = r[b + D_MODRM];
  if ((f & F_MOD3) !== 0) {
    switch (modrm) {
      case 0xf8: // SWAPGS
        if (!c.long64) return ud(c);
        if (c.cpl !== 0) c.raise(X_GP, 0);
        { const t = c.segBase[GS]; c.segBase[GS] = c.kernelGsBase; c.kernelGsBase = t; }
        return;
      case 0xf9: // RDTSCP
        rdtsc(c);
        c.lo[1] = c.tscAux; c.hi[1] = 0;
        return;
      case 0xee: // RDPKRU
        if ((c.cr4 & CR4_PKE) === 0) return ud(c);
        if (c.lo[1] !== 0) c.raise(X_GP, 0);
        c.lo[0] = c.pkru; c.hi[0] = 0; c.lo[2] = 0; c.hi[2] = 0;
        return;
      case 0xef: // WRPKRU: TLB entries reflect the old rights, so flush
        if ((c.cr4 & CR4_PKE) === 0) return ud(c);
        if (c.lo[1] !== 0 || c.lo[2] !== 0) c.raise(X_GP, 0);
        c.pkru = c.lo[0];
        c.flushTlb(true);
        return;
      case 0xca: case 0xcb: // CLAC, STAC (SMAP is advertised)
        if (c.cpl !== 0) return ud(c);
        c.setFlags(modrm === 0xcb ? AC : 0, AC);
        return;
      default:
        if (sub === 4) { // SMSW r
          const size = osz(f);
          writeReg(c, r[b + D_RM], size, f, size === 2 ? c.cr0 & 0xffff : c.cr0, 0);
          return;
        }
        if (sub === 6) { lmsw(c, readReg(c, r[b + D_RM], 2, f)); return; }
        return ud(c); // MONITOR/MWAIT, XGETBV, VMX: not advertised
    }
  }
  const lin = effectiveAddress(c, r, b);
  switch (sub) {
    case 0: case 1: { // SGDT, SIDT
      const limit = sub === 0 ? c.gdtLimit : c.idtLimit;
      const base = sub === 0 ? c.gdtBase : c.idtBase;
      c.wr16(lin, limit);
      if (c.long64) c.wr64(c.linWrap(lin + 2), base % TWO32 | 0, Math.floor(base / TWO32) | 0);
      else c.wr32(c.linWrap(lin + 2), base | 0);
      return;
    }
    case 2: case 3: { // LGDT, LIDT
      if (c.cpl !== 0) c.raise(X_GP, 0);
      const limit = c.rd16(lin);
      let base: number;
      if (c.long64) {
        const lo = c.rd64(c.linWrap(lin + 2));
        base = c.rdHi * TWO32 + (lo >>> 0);
      } else {
        base = c.rd32(c.linWrap(lin + 2)) >>> 0;
        if (osz(f) === 2) base &= 0xffffff;
      }
      if (sub === 2) { c.gdtBase = base; c.gdtLimit = limit; }
      else { c.idtBase = base; c.idtLimit = limit; }
      return;
    }
    case 4: c.wr16(lin, c.cr0 & 0xffff); return; // SMSW m16
    case 6: lmsw(c, c.rd16(lin)); return;
    case 7: // INVLPG
      if (c.cpl !== 0) c.raise(X_GP, 0);
      c.invlpg(lin);
      return;
    default: return ud(c);
  }
}

function lmsw(c: Cpu, v: number): void {
  if (c.cpl !== 0) c.raise(X_GP, 0);
  // LMSW can set PE but not clear it; it changes MP, EM, TS.
  const nv = (c.cr0 & ~0xe) | (v & 0xe) | (c.cr0 & CR0_PE) | (v & CR0_PE);
  c.writeCr0(nv);
}

function larLsl(c: Cpu, r: Int32Array, b: number, f: number, lar: boolean): void {
  if ((c.cr0 & CR0_PE) === 0 || (c.flags & VM) !== 0) return ud(c);
  const sel = readRm(c, r, b, 2);
  let ok = false;
  if ((sel & 0xfffc) !== 0 && c.readDescriptor(sel)) {
    const attr = (c.descHi >> 8) & 0xff;
    const dpl = (attr >> 5) & 3;
    const type = attr & 0xf;
    const conforming = (attr & A_S) !== 0 && (type & 0xc) === 0xc;
    let typeOk: boolean;
    if ((attr & A_S) !== 0) typeOk = true;
    else {
      const long = (c.efer & EFER_LMA) !== 0;
      const okTypes = lar ? (long ? [2, 9, 0xb, 0xc] : [1, 2, 3, 4, 5, 9, 0xb, 0xc]) : (long ? [2, 9, 0xb] : [1, 2, 3, 9, 0xb]);
      typeOk = okTypes.includes(type);
    }
    ok = typeOk && (conforming || (dpl >= c.cpl && dpl >= (sel & 3)));
  }
  c.setFlags(ok ? ZF : 0, ZF);
  if (!ok) return;
  const size = osz(f);
  if (lar) writeReg(c, r[b + D_REG], size, f, c.descHi & (size === 2 ? 0xff00 : 0xf0ff00), 0);
  else {
    const lim = c.descLimit();
    writeReg(c, r[b + D_REG], size, f, size === 2 ? lim & 0xffff : lim | 0, 0);
  }
}

function movCr(c: Cpu, r: Int32Array, b: number, toCr: boolean): void {
  if (c.cpl !== 0) c.raise(X_GP, 0);
  const n = r[b + D_REG];
  const gpr = r[b + D_RM];
  if (n !== 0 && n !== 2 && n !== 3 && n !== 4 && n !== 8) return ud(c);
  if (n === 8 && !c.long64) return ud(c);
  if (!toCr) {
    let v: number;
    switch (n) {
      case 0: v = c.cr0 >>> 0; break;
      case 2: v = c.cr2; break;
      case 3: v = c.cr3; break;
      case 4: v = c.cr4; break;
      default: v = c.lapic !== null ? c.lapic.readCr8() : c.cr8; break;
    }
    if (c.long64) c.setReg64(gpr, v);
    else { c.lo[gpr] = v | 0; c.hi[gpr] = 0; }
    return;
  }
  const lo = c.lo[gpr];
  const hi = c.long64 ? c.hi[gpr] : 0;
  switch (n) {
    case 0:
      if (hi !== 0) c.raise(X_GP, 0);
      c.writeCr0(lo);
      break;
    case 2: c.cr2 = c.long64 ? c.reg64(gpr) : lo >>> 0; break;
    case 3: {
      if ((hi & ~0xff) !== 0) c.raise(X_GP, 0);
      c.writeCr3(hi * TWO32 + (lo >>> 0));
      break;
    }
    case 4:
      if (hi !== 0) c.raise(X_GP, 0);
      c.writeCr4(lo);
      break;
    default:
      if ((lo & ~0xf) !== 0 || hi !== 0) c.raise(X_GP, 0);
      c.cr8 = lo;
      c.lapic?.writeCr8(lo); // CR8 is the APIC's TPR[7:4]
      c.eventCheck = true;
      break;
  }
  c.eventCheck = true;
}

function movDr(c: Cpu, r: Int32Array, b: number, toDr: boolean): void {
  if (c.cpl !== 0) c.raise(X_GP, 0);
  let n = r[b + D_REG];
  if (n > 7) return ud(c);
  if (n === 4 || n === 5) {
    if ((c.cr4 & 8) !== 0) return ud(c);
    n += 2;
  }
  const gpr = r[b + D_RM];
  if (toDr) {
    const v = c.long64 ? c.reg64(gpr) : c.lo[gpr] >>> 0;
    c.dr[n] = n === 6 ? (v & 0xf00f) | 0xffff0ff0 : n === 7 ? (v & 0xffff2bff) | 0x400 : v;
  } else {
    const v = c.dr[n];
    if (c.long64) c.setReg64(gpr, v);
    else { c.lo[gpr] = v | 0; c.hi[gpr] = 0; }
  }
}

function rdtsc(c: Cpu): void {
  if ((c.cr4 & 4) !== 0 && c.cpl !== 0 && (c.cr0 & CR0_PE) !== 0) c.raise(X_GP, 0);
  const t = c.tsc();
  c.lo[0] = t % TWO32 | 0; c.hi[0] = 0;
  c.lo[2] = Math.floor(t / TWO32) | 0; c.hi[2] = 0;
}

function flatCode(c: Cpu, sel: number, dpl: number, long: boolean): void {
  c.segSel[CS] = sel;
  c.segBase[CS] = 0;
  c.segLimit[CS] = 0xffffffff;
  c.segAttr[CS] = 0xb | A_S | (dpl << A_DPL_SHIFT) | A_P | A_G | (long ? A_L : A_DB);
}

function flatStack(c: Cpu, sel: number, dpl: number): void {
  c.segSel[SS] = sel;
  c.segBase[SS] = 0;
  c.segLimit[SS] = 0xffffffff;
  c.segAttr[SS] = 0x3 | A_S | (dpl << A_DPL_SHIFT) | A_P | A_G | A_DB;
}

function syscall(c: Cpu): void {
  if ((c.efer & EFER_SCE) === 0 || (c.efer & EFER_LMA) === 0) return ud(c); // legacy-mode SYSCALL is AMD-only
  const sel = (c.starHi & 0xffff) & 0xfffc;
  const fl = c.getFlags();
  const ret = c.nextRip;
  const target = c.long64 ? c.lstar : c.cstar; // by the mode SYSCALL runs in, before CS changes
  c.setReg64(1, ret);
  c.lo[11] = fl & ~RF; c.hi[11] = 0;
  c.cpl = 0;
  flatCode(c, sel, 0, true);
  flatStack(c, sel + 8, 0);
  c.flags = (fl & ~c.sfmask & ~RF) | 2;
  c.lazyOp = L_NONE;
  c.updateMode();
  c.nextRip = target;
  c.singleStepByNewTf = true;
  c.eventCheck = true;
}

function sysret(c: Cpu, f: number): void {
  if ((c.efer & EFER_SCE) === 0 || (c.efer & EFER_LMA) === 0) return ud(c);
  if (c.cpl !== 0 || !c.long64) c.raise(X_GP, 0);
  const base = (c.starHi >>> 16) & 0xffff;
  let target: number;
  if ((f & F_REXW) !== 0) {
    target = c.reg64(1);
    if (target < -0x800000000000 || target >= 0x800000000000) c.raise(X_GP, 0);
    flatCode(c, (base + 16) | 3, 3, true);
  } else {
    target = c.lo[1] >>> 0;
    flatCode(c, base | 3, 3, false);
  }
  c.segSel[SS] = (base + 8) | 3;
  flatStack(c, (base + 8) | 3, 3);
  c.cpl = 3;
  c.setFlags(c.lo[11], WRITABLE_REAL | RF);
  c.flags &= ~RF;
  c.updateMode();
  c.nextRip = target;
  c.singleStepByNewTf = true;
  c.eventCheck = true;
}

function sysenter(c: Cpu): void {
  if ((c.cr0 & CR0_PE) === 0) c.raise(X_GP, 0);
  const cs = c.sysenterCs & 0xfffc;
  if (cs === 0) c.raise(X_GP, 0);
  const long = (c.efer & EFER_LMA) !== 0;
  c.setFlags(0, IF | RF);
  c.flags &= ~VM;
  c.cpl = 0;
  flatCode(c, cs, 0, long);
  flatStack(c, cs + 8, 0);
  c.updateMode();
  if (long) { c.setReg64(4, c.sysenterEsp); c.nextRip = c.sysenterEip; }
  else { c.lo[4] = c.sysenterEsp | 0; c.nextRip = c.sysenterEip >>> 0; }
}

function sysexit(c: Cpu, f: number): void {
  const cs = c.sysenterCs & 0xfffc;
  if ((c.cr0 & CR0_PE) === 0 || c.cpl !== 0 || cs === 0) c.raise(X_GP, 0);
  const to64 = (f & F_REXW) !== 0;
  if (to64) {
    flatCode(c, (cs + 32) | 3, 3, true);
    flatStack(c, (cs + 40) | 3, 3);
    c.cpl = 3;
    c.updateMode();
    c.setReg64(4, c.reg64(1));
    c.nextRip = c.reg64(2);
  } else {
    flatCode(c, (cs + 16) | 3, 3, false);
    flatStack(c, (cs + 24) | 3, 3);
    c.cpl = 3;
    c.updateMode();
    c.lo[4] = c.lo[1]; c.hi[4] = 0;
    c.nextRip = c.lo[2] >>> 0;
  }
}

