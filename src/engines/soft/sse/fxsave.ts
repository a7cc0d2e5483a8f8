/**
 * FXSAVE / FXRSTOR (0F AE /0 /1) and the 512-byte FXSAVE image as a
 * cold-path snapshot of the SSE state (CpuState.fx). Layout (SDM vol. 1
 * 10.5.1): 0-23 x87 control/status (x87-bridge.ts), 24 MXCSR, 28 MXCSR_MASK,
 * 32-159 ST0-ST7, 160-415 XMM0-XMM15 (XMM0-XMM7 outside 64-bit mode), 416-511
 * reserved/available (never written).
 */

import type { Cpu } from '../cpu.js';
import { ACC_WRITE, X_GP } from '../arch.js';
import { MXCSR_MASK } from './state.js';
import { fxrstorX87, fxsaveX87 } from './x87-bridge.js';

export const FXSAVE_SIZE = 512;
const image = new Uint8Array(FXSAVE_SIZE);
const view = new DataView(image.buffer);

/** Fills `view` (512 bytes) from the vCPU's SSE and x87 state. */
export function buildImage(c: Cpu, v: DataView, rexW: boolean, xmmCount: number): void {
  fxsaveX87(c, v, rexW);
  v.setInt32(24, c.sse.mxcsr, true);
  v.setInt32(28, MXCSR_MASK, true);
  const w = c.sse.i32;
  for (let i = 0; i < xmmCount * 4; i++) v.setInt32(160 + i * 4, w[i], true);
}

/** Loads the vCPU's SSE and x87 state from a 512-byte image (MXCSR already validated). */
export function applyImage(c: Cpu, v: DataView, rexW: boolean, xmmCount: number): void {
  fxrstorX87(c, v, rexW);
  c.sse.mxcsr = v.getInt32(24, true) & MXCSR_MASK;
  const w = c.sse.i32;
  for (let i = 0; i < xmmCount * 4; i++) w[i] = v.getInt32(160 + i * 4, true);
}

export function fxsave(c: Cpu, lin: number, rexW: boolean): void {
  if ((lin & 15) !== 0) c.raise(X_GP, 0);
  const count = c.long64 ? 16 : 8;
  const end = 160 + count * 16;
  c.translate(lin, ACC_WRITE, c.cpl === 3);
  c.translate(c.linWrap(lin + end - 1), ACC_WRITE, c.cpl === 3);
  buildImage(c, view, rexW, count);
  for (let i = 0; i < end; i += 8) c.wr64(c.linWrap(lin + i), view.getInt32(i, true), view.getInt32(i + 4, true));
}

export function fxrstor(c: Cpu, lin: number, rexW: boolean): void {
  if ((lin & 15) !== 0) c.raise(X_GP, 0);
  const count = c.long64 ? 16 : 8;
  const end = 160 + count * 16;
  for (let i = 0; i < end; i += 8) {
    view.setInt32(i, c.rd64(c.linWrap(lin + i)), true);
    view.setInt32(i + 4, c.rdHi, true);
  }
  if ((view.getInt32(24, true) & ~MXCSR_MASK) !== 0) c.raise(X_GP, 0);
  applyImage(c, view, rexW, count);
}

/** The state as a fresh 512-byte image in 64-bit format (CpuState.fx). */
export function sseStateImage(c: Cpu): Uint8Array {
  const out = new Uint8Array(FXSAVE_SIZE);
  buildImage(c, new DataView(out.buffer), true, 16);
  return out;
}

/** Loads CpuState.fx. Throws on a short image or reserved MXCSR bits. */
export function loadSseStateImage(c: Cpu, fx: Uint8Array): void {
  if (fx.length < 416) throw new RangeError(`FXSAVE image too short: ${fx.length} bytes (need 512)`);
  const v = new DataView(fx.buffer, fx.byteOffset, fx.length);
  if ((v.getInt32(24, true) & ~MXCSR_MASK) !== 0) throw new RangeError('FXSAVE image: reserved MXCSR bits set');
  applyImage(c, v, true, 16);
}
