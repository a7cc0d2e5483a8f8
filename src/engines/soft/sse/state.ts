/**
 * SSE register state of one soft vCPU: the 16 XMM registers and MXCSR. The
 * registers live in one ArrayBuffer seen through typed-array views of every
 * lane width, created once, so instructions never allocate. Slots 16-19 are
 * scratch registers (a memory source operand, an instruction's result before
 * it is committed, temporaries).
 */

/** MXCSR exception flag bits (IE DE ZE OE UE PE), the mask bits are these << 7. */
export const MX_IE = 1 << 0;
export const MX_DE = 1 << 1;
export const MX_ZE = 1 << 2;
export const MX_OE = 1 << 3;
export const MX_UE = 1 << 4;
export const MX_PE = 1 << 5;
export const MX_FLAGS = 0x3f;
export const MX_DAZ = 1 << 6;
export const MX_MASK_SHIFT = 7;
export const MX_RC_SHIFT = 13;
export const MX_FTZ = 1 << 15;
/** Writable MXCSR bits (MXCSR_MASK reported by FXSAVE). */
export const MXCSR_MASK = 0xffff;
export const MXCSR_RESET = 0x1f80;

/** Rounding control values. */
export const RC_NEAREST = 0;
export const RC_DOWN = 1;
export const RC_UP = 2;
export const RC_ZERO = 3;

/** Scratch slots. */
export const X_SRC = 16;
export const X_RES = 17;
export const X_TMP = 18;
/** An MMX register's value while an MMX instruction works on it (mmx.ts; low quadword). */
export const X_MMX = 19;
const SLOTS = 20;

export class SseState {
  readonly buffer = new ArrayBuffer(SLOTS * 16);
  readonly u8 = new Uint8Array(this.buffer);
  readonly i8 = new Int8Array(this.buffer);
  readonly u16 = new Uint16Array(this.buffer);
  readonly i16 = new Int16Array(this.buffer);
  readonly i32 = new Int32Array(this.buffer);
  readonly u32 = new Uint32Array(this.buffer);
  readonly f32 = new Float32Array(this.buffer);
  readonly f64 = new Float64Array(this.buffer);
  mxcsr = MXCSR_RESET;

  reset(): void {
    this.i32.fill(0);
    this.mxcsr = MXCSR_RESET;
  }

  /** Copies 16 bytes between slots. */
  copy(to: number, from: number): void {
    const a = to << 2;
    const b = from << 2;
    const w = this.i32;
    w[a] = w[b]; w[a + 1] = w[b + 1]; w[a + 2] = w[b + 2]; w[a + 3] = w[b + 3];
  }
}
