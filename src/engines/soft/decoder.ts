/**
 * The soft CPU's x86 instruction decoder: prefixes, REX, the one-byte, 0F,
 * 0F38 and 0F3A opcode maps, ModRM/SIB/displacement and immediates, for
 * 16-, 32- and 64-bit code. It writes one decoded instruction as a fixed
 * record of int32 fields (see the D_* offsets) into a caller's Int32Array, so
 * the CPU can cache decoded instructions without allocating objects.
 *
 * The decoder knows every map's instruction lengths, so instructions the CPU
 * does not implement decode to their true length and raise #UD at execution
 * rather than being mis-decoded.
 */

/** Field offsets inside one decoded-instruction record. */
export const D_OP = 0; // opcode id: map * 256 + opcode byte (see OP_MAP_*), or OP_INVALID
export const D_LEN = 1; // length in bytes
export const D_FLAGS = 2; // F_* bits
export const D_REG = 3; // ModRM.reg with REX.R, or the register encoded in the opcode (with REX.B)
export const D_RM = 4; // ModRM.rm with REX.B (register operand when mod == 3)
export const D_BASE = 5; // base register 0-15, or -1
export const D_INDEX = 6; // index register 0-15, or -1
export const D_SCALE = 7; // index shift 0-3
export const D_DISP = 8; // displacement (sign-extended int32)
export const D_IMM = 9; // first immediate (sign-extended to int32 except where noted)
export const D_IMM2 = 10; // high half of a 64-bit immediate/moffs, or a second immediate
export const D_MODRM = 11; // raw ModRM byte, or -1
/** Words per record (a power of two so records index with a shift). */
export const D_STRIDE = 16;
export const D_SHIFT = 4;

/** D_FLAGS bits. */
export const F_OSIZE_MASK = 3; // 0 = 16-bit, 1 = 32-bit, 2 = 64-bit operand size
export const F_ASIZE_SHIFT = 2; // 0 = 16-bit, 1 = 32-bit, 2 = 64-bit address size
export const F_SEG_SHIFT = 4; // 3 bits: segment register 0-5, or SEG_FLAT (no base, 64-bit mode)
export const F_REP = 1 << 7; // F3
export const F_REPNE = 1 << 8; // F2
export const F_LOCK = 1 << 9;
export const F_REX = 1 << 10;
export const F_MODRM = 1 << 11;
export const F_MOD3 = 1 << 12;
export const F_OPSIZE_PREFIX = 1 << 13; // 66 present
export const F_RIPREL = 1 << 14;
export const F_REXW = 1 << 15;
export const F_SEG_OVERRIDE = 1 << 16;
export const F_CROSSES_PAGE = 1 << 17; // set by the CPU, not the decoder

export const SEG_ES = 0;
export const SEG_CS = 1;
export const SEG_SS = 2;
export const SEG_DS = 3;
export const SEG_FS = 4;
export const SEG_GS = 5;
/** Segment field value meaning "no segment base" (ES/CS/SS/DS in 64-bit mode). */
export const SEG_FLAT = 7;

export const OP_MAP_0F = 0x100;
export const OP_MAP_0F38 = 0x200;
export const OP_MAP_0F3A = 0x300;
/** VEX/EVEX-encoded instructions (AVX is not advertised: always #UD). */
export const OP_VEX = 0x400;
/** An encoding that is invalid in the current mode. */
export const OP_INVALID = 0x401;

/** decode() results other than a length. */
export const DECODE_TOO_LONG = -1;

/** Where the decoder reads instruction bytes; `byte(i)` may throw (a page fault). */
export interface ByteSource {
  byte(index: number): number;
}

// Immediate kinds.
const I_NONE = 0;
const I_B = 1;
const I_W = 2;
const I_Z = 3; // 16 or 32 by operand size
const I_V = 4; // 16, 32 or 64 by operand size (B8-BF)
const I_MOFFS = 5; // address size
const I_AP = 6; // far pointer: z + 2
const I_ENTER = 7; // w + b
const I_GRP3B = 8; // F6: /0 and /1 take ib
const I_GRP3Z = 9; // F7: /0 and /1 take iz

/** Per-opcode properties: bit 0 = ModRM, bits 1-4 = immediate kind, bit 5 = invalid in 64-bit mode. */
const P_MODRM = 1;
const P_INV64 = 1 << 5;
const P_DEF64 = 1 << 6; // operand size defaults to 64 in 64-bit mode (push/pop/jmp near...)
const P_FORCE64 = 1 << 7; // operand size is always 64 in 64-bit mode (near branches)

const oneByte = new Uint8Array(256);
const twoByte = new Uint8Array(256);

function setRange(table: Uint8Array, from: number, to: number, props: number): void {
  for (let i = from; i <= to; i++) table[i] = props;
}
const imm = (k: number): number => k << 1;

(function buildOneByte(): void {
  const t = oneByte;
  for (let g = 0; g < 8; g++) {
    const b = g * 8;
    t[b] = P_MODRM; t[b + 1] = P_MODRM; t[b + 2] = P_MODRM; t[b + 3] = P_MODRM;
    t[b + 4] = imm(I_B); t[b + 5] = imm(I_Z);
  }
  for (const op of [0x06, 0x07, 0x0e, 0x16, 0x17, 0x1e, 0x1f, 0x27, 0x2f, 0x37, 0x3f]) t[op] = P_INV64;
  setRange(t, 0x50, 0x5f, P_DEF64);
  t[0x60] = P_INV64; t[0x61] = P_INV64; t[0x62] = P_MODRM | P_INV64; t[0x63] = P_MODRM;
  t[0x68] = imm(I_Z) | P_DEF64; t[0x69] = P_MODRM | imm(I_Z); t[0x6a] = imm(I_B) | P_DEF64; t[0x6b] = P_MODRM | imm(I_B);
  setRange(t, 0x70, 0x7f, imm(I_B) | P_FORCE64);
  t[0x80] = P_MODRM | imm(I_B); t[0x81] = P_MODRM | imm(I_Z); t[0x82] = P_MODRM | imm(I_B) | P_INV64; t[0x83] = P_MODRM | imm(I_B);
  setRange(t, 0x84, 0x8e, P_MODRM);
  t[0x8f] = P_MODRM | P_DEF64;
  t[0x9a] = imm(I_AP) | P_INV64; t[0x9c] = P_DEF64; t[0x9d] = P_DEF64;
  setRange(t, 0xa0, 0xa3, imm(I_MOFFS));
  t[0xa8] = imm(I_B); t[0xa9] = imm(I_Z);
  setRange(t, 0xb0, 0xb7, imm(I_B));
  setRange(t, 0xb8, 0xbf, imm(I_V));
  t[0xc0] = P_MODRM | imm(I_B); t[0xc1] = P_MODRM | imm(I_B);
  t[0xc2] = imm(I_W) | P_FORCE64; t[0xc3] = P_FORCE64;
  t[0xc4] = P_MODRM | P_INV64; t[0xc5] = P_MODRM | P_INV64;
  t[0xc6] = P_MODRM | imm(I_B); t[0xc7] = P_MODRM | imm(I_Z);
  t[0xc8] = imm(I_ENTER) | P_DEF64; t[0xc9] = P_DEF64;
  t[0xca] = imm(I_W); t[0xcd] = imm(I_B); t[0xce] = P_INV64;
  setRange(t, 0xd0, 0xd3, P_MODRM);
  t[0xd4] = imm(I_B) | P_INV64; t[0xd5] = imm(I_B) | P_INV64; t[0xd6] = P_INV64;
  setRange(t, 0xd8, 0xdf, P_MODRM);
  setRange(t, 0xe0, 0xe3, imm(I_B) | P_FORCE64);
  setRange(t, 0xe4, 0xe7, imm(I_B));
  t[0xe8] = imm(I_Z) | P_FORCE64; t[0xe9] = imm(I_Z) | P_FORCE64; t[0xea] = imm(I_AP) | P_INV64; t[0xeb] = imm(I_B) | P_FORCE64;
  t[0xf6] = P_MODRM | imm(I_GRP3B); t[0xf7] = P_MODRM | imm(I_GRP3Z);
  t[0xfe] = P_MODRM; t[0xff] = P_MODRM;
})();

(function buildTwoByte(): void {
  const t = twoByte;
  t[0x00] = P_MODRM; t[0x01] = P_MODRM; t[0x02] = P_MODRM; t[0x03] = P_MODRM;
  t[0x0d] = P_MODRM; t[0x0f] = P_MODRM | imm(I_B);
  setRange(t, 0x10, 0x1f, P_MODRM);
  setRange(t, 0x20, 0x23, P_MODRM);
  setRange(t, 0x28, 0x2f, P_MODRM);
  setRange(t, 0x40, 0x6f, P_MODRM);
  setRange(t, 0x70, 0x73, P_MODRM | imm(I_B));
  setRange(t, 0x74, 0x76, P_MODRM);
  setRange(t, 0x78, 0x7f, P_MODRM);
  setRange(t, 0x80, 0x8f, imm(I_Z) | P_FORCE64);
  setRange(t, 0x90, 0x9f, P_MODRM);
  t[0xa0] = P_DEF64; t[0xa1] = P_DEF64; t[0xa8] = P_DEF64; t[0xa9] = P_DEF64;
  t[0xa3] = P_MODRM; t[0xa4] = P_MODRM | imm(I_B); t[0xa5] = P_MODRM;
  t[0xab] = P_MODRM; t[0xac] = P_MODRM | imm(I_B); t[0xad] = P_MODRM; t[0xae] = P_MODRM; t[0xaf] = P_MODRM;
  setRange(t, 0xb0, 0xb9, P_MODRM);
  t[0xba] = P_MODRM | imm(I_B);
  setRange(t, 0xbb, 0xc1, P_MODRM);
  t[0xc2] = P_MODRM | imm(I_B); t[0xc3] = P_MODRM; t[0xc4] = P_MODRM | imm(I_B); t[0xc5] = P_MODRM | imm(I_B);
  t[0xc6] = P_MODRM | imm(I_B); t[0xc7] = P_MODRM;
  setRange(t, 0xd0, 0xff, P_MODRM);
})();

/** Opcodes (as D_OP ids) whose ModRM always names registers, whatever mod says (MOV CR/DR). */
function forcesRegisterForm(op: number): boolean {
  return op >= 0x120 && op <= 0x123;
}

/**
 * Decodes one instruction. `mode` is the code size (16, 32 or 64). Writes the
 * record at `out[at..at+D_STRIDE)` and returns its length, or DECODE_TOO_LONG
 * when it would exceed 15 bytes (#GP). Unknown or mode-invalid encodings get
 * D_OP = OP_INVALID / OP_VEX (both #UD) with a best-effort length.
 */
export function decode(src: ByteSource, mode: number, out: Int32Array, at: number): number {
  let i = 0;
  let opsize66 = false;
  let adsize67 = false;
  let flags = 0;
  let seg = -1;
  let rex = 0;
  let b = 0;
  // Prefixes.
  for (;;) {
    if (i >= 15) return DECODE_TOO_LONG;
    b = src.byte(i);
    if (b === 0x66) { opsize66 = true; rex = 0; }
    else if (b === 0x67) { adsize67 = true; rex = 0; }
    else if (b === 0xf0) { flags |= F_LOCK; rex = 0; }
    else if (b === 0xf2) { flags = (flags & ~F_REP) | F_REPNE; rex = 0; }
    else if (b === 0xf3) { flags = (flags & ~F_REPNE) | F_REP; rex = 0; }
    else if (b === 0x26 || b === 0x2e || b === 0x36 || b === 0x3e) { if (mode !== 64) seg = (b >> 3) & 3; rex = 0; }
    else if (b === 0x64 || b === 0x65) { seg = b - 0x60; rex = 0; }
    else if (mode === 64 && (b & 0xf0) === 0x40) rex = b;
    else break;
    i++;
  }
  if (opsize66) flags |= F_OPSIZE_PREFIX;
  if (rex !== 0) flags |= F_REX;
  const rexW = (rex & 8) !== 0;
  if (rexW) flags |= F_REXW;
  i++;
  let op = b;
  let props: number;
  if (b === 0x0f) {
    if (i >= 15) return DECODE_TOO_LONG;
    const b2 = src.byte(i++);
    if (b2 === 0x38 || b2 === 0x3a) {
      if (i >= 15) return DECODE_TOO_LONG;
      op = (b2 === 0x38 ? OP_MAP_0F38 : OP_MAP_0F3A) | src.byte(i++);
      props = P_MODRM | (b2 === 0x3a ? imm(I_B) : 0);
    } else {
      op = OP_MAP_0F | b2;
      props = twoByte[b2]!;
      if (props === 0 && !isKnownNoOperandTwoByte(b2)) op = OP_INVALID;
    }
  } else if ((b === 0xc4 || b === 0xc5 || b === 0x62) && (mode === 64 || (src.byte(i) & 0xc0) === 0xc0)) {
    return decodeVex(src, b, i, out, at);
  } else {
    props = oneByte[b]!;
    if (mode === 64 && (props & P_INV64) !== 0) op = OP_INVALID;
    if (mode === 64 && b === 0x63) props = P_MODRM;
  }

  // Operand and address sizes.
  let osize: number;
  let asize: number;
  if (mode === 64) {
    if (rexW || (props & P_FORCE64) !== 0) osize = 2;
    else if ((props & P_DEF64) !== 0) osize = opsize66 ? 0 : 2;
    else osize = opsize66 ? 0 : 1;
    asize = adsize67 ? 1 : 2;
  } else {
    const d = mode === 32;
    osize = d !== opsize66 ? 1 : 0;
    asize = d !== adsize67 ? 1 : 0;
  }

  let modrm = -1;
  let reg = 0;
  let rm = 0;
  let base = -1;
  let index = -1;
  let scale = 0;
  let disp = 0;
  let defaultSs = false;
  if ((props & P_MODRM) !== 0) {
    if (i >= 15) return DECODE_TOO_LONG;
    modrm = src.byte(i++);
    flags |= F_MODRM;
    const mod = modrm >> 6;
    reg = ((modrm >> 3) & 7) | ((rex & 4) << 1);
    rm = modrm & 7;
    if (mod === 3 || forcesRegisterForm(op)) {
      flags |= F_MOD3;
      rm |= (rex & 1) << 3;
    } else if (asize === 0) {
      // 16-bit addressing.
      switch (rm) {
        case 0: base = 3; index = 6; break; // bx+si
        case 1: base = 3; index = 7; break; // bx+di
        case 2: base = 5; index = 6; defaultSs = true; break; // bp+si
        case 3: base = 5; index = 7; defaultSs = true; break; // bp+di
        case 4: base = 6; break;
        case 5: base = 7; break;
        case 6: if (mod === 0) base = -1; else { base = 5; defaultSs = true; } break;
        default: base = 3; break;
      }
      if (mod === 0 && rm === 6) { disp = readImm(src, i, 2, true); i += 2; }
      else if (mod === 1) { disp = readImm(src, i, 1, true); i += 1; }
      else if (mod === 2) { disp = readImm(src, i, 2, true); i += 2; }
    } else {
      if (rm === 4) {
        if (i >= 15) return DECODE_TOO_LONG;
        const sib = src.byte(i++);
        scale = sib >> 6;
        index = ((sib >> 3) & 7) | ((rex & 2) << 2);
        if (index === 4) index = -1;
        base = (sib & 7) | ((rex & 1) << 3);
        if ((sib & 7) === 5 && mod === 0) { base = -1; disp = readImm(src, i, 4, true); i += 4; }
      } else if (rm === 5 && mod === 0) {
        if (mode === 64) flags |= F_RIPREL;
        base = -1;
        disp = readImm(src, i, 4, true);
        i += 4;
      } else {
        base = rm | ((rex & 1) << 3);
      }
      if (mod === 1) { disp = readImm(src, i, 1, true); i += 1; }
      else if (mod === 2) { disp = readImm(src, i, 4, true); i += 4; }
      if (base === 4 || base === 5) defaultSs = true;
    }
  } else if (op < 0x100) {
    // Registers encoded in the low three opcode bits.
    if ((op >= 0x40 && op <= 0x5f) || (op >= 0x90 && op <= 0x97) || op >= 0xb0 && op <= 0xbf) reg = (op & 7) | ((rex & 1) << 3);
  } else if (op >= 0x1c8 && op <= 0x1cf) {
    reg = (op & 7) | ((rex & 1) << 3);
  }

  // Immediates.
  let immediate = 0;
  let immediate2 = 0;
  const kind = (props >> 1) & 15;
  if (kind !== I_NONE) {
    let n = 0;
    switch (kind) {
      case I_B: n = 1; break;
      case I_W: n = 2; break;
      case I_Z: n = osize === 0 ? 2 : 4; break;
      case I_V: n = osize === 0 ? 2 : osize === 1 ? 4 : 8; break;
      case I_MOFFS: n = asize === 0 ? 2 : asize === 1 ? 4 : 8; break;
      case I_AP: n = osize === 0 ? 4 : 6; break;
      case I_ENTER: n = 3; break;
      case I_GRP3B: n = (reg & 6) === 0 ? 1 : 0; break;
      case I_GRP3Z: n = (reg & 6) === 0 ? (osize === 0 ? 2 : 4) : 0; break;
    }
    if (i + n > 15) return DECODE_TOO_LONG;
    if (n === 8) {
      immediate = readImm(src, i, 4, false);
      immediate2 = readImm(src, i + 4, 4, false);
    } else if (kind === I_AP) {
      immediate = readImm(src, i, n - 2, false);
      immediate2 = readImm(src, i + n - 2, 2, false);
    } else if (kind === I_ENTER) {
      immediate = readImm(src, i, 2, false);
      immediate2 = src.byte(i + 2);
    } else if (kind === I_MOFFS) {
      immediate = readImm(src, i, n, false);
    } else if (n > 0) {
      immediate = readImm(src, i, n, true);
    }
    i += n;
  }
  if (i > 15) return DECODE_TOO_LONG;

  let segField: number;
  if (seg >= 0) { segField = seg; flags |= F_SEG_OVERRIDE; }
  else if (mode === 64) segField = SEG_FLAT;
  else segField = defaultSs ? SEG_SS : SEG_DS;
  if (mode === 64 && seg >= 0 && seg < 4) segField = SEG_FLAT;
  if (mode === 64 && seg < 0) segField = SEG_FLAT;

  out[at + D_OP] = op;
  out[at + D_LEN] = i;
  out[at + D_FLAGS] = flags | osize | (asize << F_ASIZE_SHIFT) | (segField << F_SEG_SHIFT);
  out[at + D_REG] = reg;
  out[at + D_RM] = rm;
  out[at + D_BASE] = base;
  out[at + D_INDEX] = index;
  out[at + D_SCALE] = scale;
  out[at + D_DISP] = disp;
  out[at + D_IMM] = immediate;
  out[at + D_IMM2] = immediate2;
  out[at + D_MODRM] = modrm;
  return i;
}

/** 0F opcodes without ModRM or immediate that exist. */
function isKnownNoOperandTwoByte(b: number): boolean {
  return (
    b === 0x05 || b === 0x06 || b === 0x07 || b === 0x08 || b === 0x09 || b === 0x0b || b === 0x0e ||
    (b >= 0x30 && b <= 0x35) || b === 0x37 || b === 0x77 || b === 0xa0 || b === 0xa1 || b === 0xa2 ||
    b === 0xa8 || b === 0xa9 || b === 0xaa || (b >= 0xc8 && b <= 0xcf)
  );
}

function readImm(src: ByteSource, i: number, n: number, signed: boolean): number {
  switch (n) {
    case 1: { const v = src.byte(i); return signed ? (v << 24) >> 24 : v; }
    case 2: { const v = src.byte(i) | (src.byte(i + 1) << 8); return signed ? (v << 16) >> 16 : v; }
    default: return src.byte(i) | (src.byte(i + 1) << 8) | (src.byte(i + 2) << 16) | (src.byte(i + 3) << 24);
  }
}

/** Lengths of VEX (C4/C5) and EVEX (62) encodings; the instruction itself is #UD. */
function decodeVex(src: ByteSource, first: number, i: number, out: Int32Array, at: number): number {
  let map = 1;
  let opcode: number;
  if (first === 0xc5) { i += 1; opcode = src.byte(i++); }
  else if (first === 0xc4) { map = src.byte(i) & 0x1f; i += 2; opcode = src.byte(i++); }
  else { map = src.byte(i) & 3; i += 3; opcode = src.byte(i++); }
  let n = i;
  if (!(map === 1 && opcode === 0x77)) {
    const modrm = src.byte(n++);
    const mod = modrm >> 6;
    if (mod !== 3 && (modrm & 7) === 4) {
      const sib = src.byte(n++);
      if (mod === 0 && (sib & 7) === 5) n += 4;
    } else if (mod === 0 && (modrm & 7) === 5) n += 4;
    if (mod === 1) n += 1;
    else if (mod === 2) n += 4;
    if (map === 3 || (map === 1 && ((opcode >= 0x70 && opcode <= 0x73) || opcode === 0xc2 || (opcode >= 0xc4 && opcode <= 0xc6)))) n += 1;
  }
  if (n > 15) return DECODE_TOO_LONG;
  out.fill(0, at, at + D_STRIDE);
  out[at + D_OP] = OP_VEX;
  out[at + D_LEN] = n;
  out[at + D_MODRM] = -1;
  out[at + D_BASE] = -1;
  out[at + D_INDEX] = -1;
  return n;
}
