/**
 * Architectural constants of the soft CPU: RFLAGS, control-register and EFER
 * bits, segment indices and attribute bits, exception vectors, lazy-flag
 * operation kinds and memory-access kinds. Kept apart from cpu.ts so every
 * module can import them without an evaluation-order cycle.
 */

// RFLAGS bits.
export const CF = 1 << 0;
export const PF = 1 << 2;
export const AF = 1 << 4;
export const ZF = 1 << 6;
export const SF = 1 << 7;
export const TF = 1 << 8;
export const IF = 1 << 9;
export const DF = 1 << 10;
export const OF = 1 << 11;
export const IOPL = 3 << 12;
export const NT = 1 << 14;
export const RF = 1 << 16;
export const VM = 1 << 17;
export const AC = 1 << 18;
export const ID = 1 << 21;
export const ARITH_FLAGS = CF | PF | AF | ZF | SF | OF;
/** Bits software may change in RFLAGS (VM/VIF/VIP are not supported). */
export const WRITABLE_FLAGS = ARITH_FLAGS | TF | IF | DF | IOPL | NT | RF | AC | ID;

// Control register bits.
export const CR0_PE = 1 << 0;
export const CR0_MP = 1 << 1;
export const CR0_EM = 1 << 2;
export const CR0_TS = 1 << 3;
export const CR0_ET = 1 << 4;
export const CR0_NE = 1 << 5;
export const CR0_WP = 1 << 16;
export const CR0_AM = 1 << 18;
export const CR0_NW = 1 << 29;
export const CR0_CD = 1 << 30;
export const CR0_PG = 1 << 31;
export const CR4_VME = 1 << 0;
export const CR4_PVI = 1 << 1;
export const CR4_TSD = 1 << 2;
export const CR4_DE = 1 << 3;
export const CR4_PSE = 1 << 4;
export const CR4_PAE = 1 << 5;
export const CR4_PGE = 1 << 7;
/** Supervisor-mode execution prevention: no supervisor fetches from user pages. */
export const CR4_SMEP = 1 << 20;
/** Supervisor-mode access prevention: no supervisor data accesses to user pages unless AC=1 (explicit only). */
export const CR4_SMAP = 1 << 21;
/** Protection keys for user pages (PKRU). */
export const CR4_PKE = 1 << 22;
/** Protection keys for supervisor pages (IA32_PKRS). */
export const CR4_PKS = 1 << 24;
/** CR4 bits this CPU accepts (what CPUID advertises). */
export const CR4_SUPPORTED = CR4_TSD | CR4_DE | CR4_PSE | CR4_PAE | CR4_PGE | (1 << 6) /* MCE */ | (1 << 8) /* PCE */ |
  (1 << 9) /* OSFXSR */ | (1 << 10) /* OSXMMEXCPT */ | CR4_SMEP | CR4_SMAP |
  CR4_PKE | CR4_PKS;
export const EFER_SCE = 1 << 0;
export const EFER_LME = 1 << 8;
export const EFER_LMA = 1 << 10;
export const EFER_NXE = 1 << 11;

// Segment register indices (x86 encoding) plus LDTR and TR.
export const ES = 0;
export const CS = 1;
export const SS = 2;
export const DS = 3;
export const FS = 4;
export const GS = 5;
export const LDTR = 6;
export const TR = 7;

/** Segment attribute word (VMX access-rights layout). */
export const A_TYPE = 0xf;
export const A_S = 1 << 4;
export const A_DPL_SHIFT = 5;
export const A_P = 1 << 7;
export const A_AVL = 1 << 12;
export const A_L = 1 << 13;
export const A_DB = 1 << 14;
export const A_G = 1 << 15;
export const A_UNUSABLE = 1 << 16;

// Exception vectors.
export const X_DE = 0;
export const X_DB = 1;
export const X_NMI = 2;
export const X_BP = 3;
export const X_OF = 4;
export const X_BR = 5;
export const X_UD = 6;
export const X_NM = 7;
export const X_DF = 8;
export const X_TS = 10;
export const X_NP = 11;
export const X_SS = 12;
export const X_GP = 13;
export const X_PF = 14;
export const X_MF = 16;
export const X_AC = 17;

// Lazy flag operations.
export const L_NONE = 0;
export const L_ADD = 1;
export const L_ADC = 2;
export const L_SUB = 3;
export const L_SBB = 4;
export const L_LOGIC = 5;
export const L_INC = 6;
export const L_DEC = 7;
/** ZF/SF/PF from the result, CF/OF from lazyCF/lazyOF, AF clear. */
export const L_RESULT_CFOF = 8;

// Memory access kinds (also TLB set offsets).
export const ACC_READ = 0;
export const ACC_WRITE = 1;
export const ACC_EXEC = 2;

export const TLB_BITS = 12;
export const TLB_SIZE = 1 << TLB_BITS;
export const TLB_MASK = TLB_SIZE - 1;
/** Guest physical address width advertised in CPUID 0x80000008. */
export const MAX_PHYS_BITS = 40;

