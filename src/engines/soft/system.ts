/**
 * CPUID and MSRs of the soft CPU. CPUID advertises only what the interpreter
 * implements (x87, MMX, SSE/SSE2/SSE3 and FXSR; none of AMD's MMX/3DNow! extensions in 0x80000001), plus the hypervisor bit, the TSC frequency in
 * leaves 0x15/0x16 and 0x40000010, and a hypervisor vendor leaf.
 */

import type { Cpu } from './cpu.js';
import {
  CR4_PKE, EFER_LMA, EFER_NXE, FS, GS,
} from './arch.js';

const TWO32 = 0x1_0000_0000;

/** Packs four ASCII characters little-endian into a register value. */
function ascii4(s: string, at: number): number {
  let v = 0;
  for (let i = 3; i >= 0; i--) v = (v << 8) | (s.charCodeAt(at + i) & 0xff);
  return v;
}

const VENDOR = 'GenuineIntel';
const HV_VENDOR = 'TypeVisorCPU';
const BRAND = 'typevisor soft x86-64 interpreter'.padEnd(48, '\0');

// CPUID.1:EDX feature bits implemented by the interpreter.
const F1_EDX =
  (1 << 0) | // FPU (x87, fpu/)
  (1 << 3) | // PSE
  (1 << 4) | // TSC
  (1 << 5) | // MSR
  (1 << 6) | // PAE
  (1 << 8) | // CX8
  (1 << 11) | // SEP
  (1 << 12) | // MTRR
  (1 << 13) | // PGE
  (1 << 15) | // CMOV
  (1 << 16) | // PAT
  (1 << 19) | // CLFSH
  (1 << 23) | // MMX (sse/mmx.ts)
  (1 << 24) | // FXSR (sse/fxsave.ts)
  (1 << 25) | // SSE (sse/)
  (1 << 26); // SSE2 (sse/)
const F1_EDX_APIC = 1 << 9;
const APIC_BASE_ENABLE = 1 << 11;
const APIC_BASE_EXTD = 1 << 10;
// CPUID.1:ECX.TSC-Deadline: the local APIC timer's TSC-deadline mode (platform/local-apic.ts).
const F1_ECX_TSC_DEADLINE = 1 << 24;
// CPUID.1:ECX.x2APIC: the local APIC's x2APIC mode (platform/local-apic.ts; enabled through IA32_APIC_BASE.EXTD).
const F1_ECX_X2APIC = 1 << 21;
// CPUID.1:ECX: CX16 and the hypervisor bit.
const F1_ECX = (1 << 0) /* SSE3 (sse/) */ | (1 << 13) | (1 << 31);
// CPUID.7.0:EBX: IA32_TSC_ADJUST.
const F7_EBX = (1 << 1) | (1 << 7) /* SMEP */ | (1 << 20) /* SMAP */;
const F7_ECX = (1 << 3) /* PKU */ | (1 << 31) /* PKS */;
/** CPUID.7.0:ECX.OSPKE mirrors CR4.PKE. */
const F7_ECX_OSPKE = 1 << 4;
// CPUID.80000007:EDX: invariant TSC (the TSC follows the host's monotonic clock at a fixed rate).
const F87_EDX = 1 << 8;
// CPUID.80000001: LAHF/SAHF in 64-bit mode; SYSCALL, NX, RDTSCP, LM.
const F81_ECX = 1 << 0;
const F81_EDX_NX = 1 << 20;
const F81_EDX = (1 << 11) | F81_EDX_NX | (1 << 27) | (1 << 29);
// IA32_MISC_ENABLE bit 34 (XD Bit Disable), in the high half.
const MISC_HI_XD_DISABLE = 1 << 2;

/** CPUID.1:EDX.APIC follows IA32_APIC_BASE.EN (SDM 10.4.3: a globally disabled APIC is reported absent). */
function apicHardwareEnabled(c: Cpu): boolean {
  return c.lapic !== null && c.lapic.readMsr(0x1b, c.msrOut) && (c.msrOut[0] & APIC_BASE_ENABLE) !== 0;
}

/** Executes CPUID for leaf EAX / subleaf ECX. */
export function cpuid(c: Cpu): void {
  const leaf = c.lo[0] >>> 0;
  let a = 0;
  let b = 0;
  let cc = 0;
  let d = 0;
  const tscHz = c.clock.tscHz;
  switch (leaf) {
    case 0: a = 0x16; b = ascii4(VENDOR, 0); d = ascii4(VENDOR, 4); cc = ascii4(VENDOR, 8); break;
    case 1:
      a = 0x000306a9; // family 6, model 0x3a, stepping 9
      b = (c.index << 24) | (1 << 16) | (8 << 8);
      cc = F1_ECX | (c.lapic !== null ? F1_ECX_TSC_DEADLINE | F1_ECX_X2APIC : 0);
      d = F1_EDX | (apicHardwareEnabled(c) ? F1_EDX_APIC : 0);
      break;
    case 7:
      if ((c.lo[1] >>> 0) === 0) { b = F7_EBX; cc = F7_ECX | ((c.cr4 & CR4_PKE) !== 0 ? F7_ECX_OSPKE : 0); }
      break;
    case 0x15: a = 1; b = 1; cc = tscHz | 0; break;
    case 0x16: a = Math.round(tscHz / 1e6); b = a; cc = 100; break;
    case 0x40000000: a = 0x40000010; b = ascii4(HV_VENDOR, 0); cc = ascii4(HV_VENDOR, 4); d = ascii4(HV_VENDOR, 8); break;
    case 0x40000010: a = Math.round(tscHz / 1000); break;
    case 0x80000000: a = 0x80000008; break;
    case 0x80000007: d = F87_EDX; break;
    case 0x80000001: cc = F81_ECX; d = (c.miscEnableHi & MISC_HI_XD_DISABLE) !== 0 ? F81_EDX & ~F81_EDX_NX : F81_EDX; break;
    case 0x80000002: case 0x80000003: case 0x80000004: {
      const at = (leaf - 0x80000002) * 16;
      a = ascii4(BRAND, at); b = ascii4(BRAND, at + 4); cc = ascii4(BRAND, at + 8); d = ascii4(BRAND, at + 12);
      break;
    }
    case 0x80000008: a = 0x3028; break; // 40 physical, 48 linear address bits
    default: break;
  }
  c.lo[0] = a; c.hi[0] = 0;
  c.lo[3] = b; c.hi[3] = 0;
  c.lo[1] = cc; c.hi[1] = 0;
  c.lo[2] = d; c.hi[2] = 0;
}

/** Sets msrOut from a signed canonical number. */
function out64(c: Cpu, v: number): void {
  // Uint32Array stores wrap modulo 2^32, so the signed halves are exact (v + 2^64 would not be).
  c.msrOut[0] = v % TWO32;
  c.msrOut[1] = Math.floor(v / TWO32);
}

function isCanonical(v: number): boolean {
  return v >= -0x800000000000 && v < 0x800000000000;
}

/** RDMSR: fills c.msrOut; false means #GP. */
export function readMsr(c: Cpu, msr: number): boolean {
  const o = c.msrOut;
  o[0] = 0; o[1] = 0;
  switch (msr) {
    case 0x10: out64(c, c.tsc()); return true;
    case 0x1b: case 0x6e0:
      if (c.lapic !== null) return c.lapic.readMsr(msr, o);
      if (msr === 0x1b) { o[0] = c.apicBase; return true; }
      return false;
    case 0x3a: o[0] = 1; return true; // IA32_FEATURE_CONTROL: locked, VMX off
    case 0x3b: out64(c, c.tscAdjust); return true; // IA32_TSC_ADJUST
    case 0x6e1: o[0] = c.pkrs; return true; // IA32_PKRS
    case 0x8b: return true; // microcode revision
    case 0xfe: o[0] = 0x508; return true; // MTRRCAP: 8 variable ranges, fixed ranges, WC
    case 0x174: o[0] = c.sysenterCs; return true;
    case 0x175: out64(c, c.sysenterEsp); return true;
    case 0x176: out64(c, c.sysenterEip); return true;
    case 0x179: return true; // IA32_MCG_CAP: no machine-check banks
    case 0x17a: return true; // IA32_MCG_STATUS
    case 0x1a0: o[0] = c.miscEnable; o[1] = c.miscEnableHi; return true;
    case 0x1d9: return true; // IA32_DEBUGCTL: no LBR/BTF
    case 0x277: o[0] = c.patLo; o[1] = c.patHi; return true;
    case 0x2ff: o[0] = c.mtrrDefType; return true;
    case 0xc0000080: o[0] = c.efer; return true;
    case 0xc0000081: o[0] = c.star; o[1] = c.starHi; return true;
    case 0xc0000082: out64(c, c.lstar); return true;
    case 0xc0000083: out64(c, c.cstar); return true;
    case 0xc0000084: o[0] = c.sfmask; return true;
    case 0xc0000100: out64(c, c.segBase[FS]); return true;
    case 0xc0000101: out64(c, c.segBase[GS]); return true;
    case 0xc0000102: out64(c, c.kernelGsBase); return true;
    case 0xc0000103: o[0] = c.tscAux; return true;
    default:
      if (isMtrr(msr)) {
        const v = c.mtrrs.get(msr);
        if (v !== undefined) { o[0] = v[0]; o[1] = v[1]; }
        return true;
      }
      if (msr >= 0x800 && msr <= 0x8ff && c.lapic !== null) return c.lapic.readMsr(msr, o);
      return false;
  }
}

function isMtrr(msr: number): boolean {
  return (msr >= 0x200 && msr <= 0x20f) || msr === 0x250 || msr === 0x258 || msr === 0x259 || (msr >= 0x268 && msr <= 0x26f);
}

/** WRMSR of (hi:lo); false means #GP. */
export function writeMsr(c: Cpu, msr: number, lo: number, hi: number): boolean {
  const v = (hi | 0) * TWO32 + (lo >>> 0);
  switch (msr) {
    case 0x10: { // IA32_TSC: TSC_ADJUST moves by the same amount as the TSC (SDM 17.17.3)
      const before = c.tsc();
      c.tscOffset = (hi >>> 0) * TWO32 + (lo >>> 0) - c.rawTsc();
      c.tscAdjust += c.tsc() - before;
      return true;
    }
    case 0x3b: // IA32_TSC_ADJUST: the TSC moves by the change
      c.tscOffset += v - c.tscAdjust;
      c.tscAdjust = v;
      return true;
    case 0x6e1: // IA32_PKRS: 32 bits of AD/WD pairs; the TLB caches the old rights
      if (hi !== 0) return false;
      c.pkrs = lo | 0;
      c.flushTlb(true);
      return true;
    case 0x1b: case 0x6e0:
      // IA32_APIC_BASE.EXTD (x2APIC mode) exists only with a local APIC (CPUID.1:ECX.x2APIC is set with it).
      if (msr === 0x1b && (lo & APIC_BASE_EXTD) !== 0 && c.lapic === null) return false;
      if (c.lapic !== null) return c.lapic.writeMsr(msr, lo >>> 0, hi >>> 0);
      if (msr === 0x1b) { c.apicBase = lo >>> 0; return true; }
      return false;
    case 0x8b: return true;
    case 0x174: c.sysenterCs = lo & 0xffff; return true;
    case 0x175: if (!isCanonical(v)) return false; c.sysenterEsp = v; return true;
    case 0x176: if (!isCanonical(v)) return false; c.sysenterEip = v; return true;
    case 0x17a: return lo === 0 && hi === 0; // IA32_MCG_STATUS: nothing to clear
    case 0x1a0:
      // XD Bit Disable (bit 34) hides NX, so it cannot be set while EFER.NXE is on.
      if ((hi & MISC_HI_XD_DISABLE) !== 0 && (c.efer & EFER_NXE) !== 0) return false;
      c.miscEnable = lo >>> 0; c.miscEnableHi = hi & MISC_HI_XD_DISABLE;
      return true;
    case 0x1d9: return lo === 0 && hi === 0; // IA32_DEBUGCTL: only 0 is supported
    case 0x277: {
      // Each PAT entry must be a valid memory type (0, 1, 4, 5, 6, 7).
      for (let i = 0; i < 8; i++) {
        const t = ((i < 4 ? lo : hi) >>> ((i & 3) * 8)) & 0xff;
        if (t === 2 || t === 3 || t > 7) return false;
      }
      c.patLo = lo >>> 0; c.patHi = hi >>> 0;
      return true;
    }
    case 0x2ff: c.mtrrDefType = lo & 0xcff; return true;
    case 0xc0000080:
      if ((lo & EFER_NXE) !== 0 && (c.miscEnableHi & MISC_HI_XD_DISABLE) !== 0) return false; // NX is hidden
      c.writeEfer(lo & ~EFER_LMA | (c.efer & EFER_LMA));
      return true;
    case 0xc0000081: c.star = lo >>> 0; c.starHi = hi >>> 0; return true;
    case 0xc0000082: if (!isCanonical(v)) return false; c.lstar = v; return true;
    case 0xc0000083: if (!isCanonical(v)) return false; c.cstar = v; return true;
    case 0xc0000084: c.sfmask = lo >>> 0; return true;
    case 0xc0000100: if (!isCanonical(v)) return false; c.segBase[FS] = v; return true;
    case 0xc0000101: if (!isCanonical(v)) return false; c.segBase[GS] = v; return true;
    case 0xc0000102: if (!isCanonical(v)) return false; c.kernelGsBase = v; return true;
    case 0xc0000103: c.tscAux = lo >>> 0; return true;
    default:
      if (isMtrr(msr)) { c.mtrrs.set(msr, [lo >>> 0, hi >>> 0]); return true; }
      if (msr >= 0x800 && msr <= 0x8ff && c.lapic !== null) return c.lapic.writeMsr(msr, lo >>> 0, hi >>> 0);
      return false;
  }
}
