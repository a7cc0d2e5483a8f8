/**
 * The x87 part of the FXSAVE image (bytes 0-23 and 32-159: FCW, FSW, abridged
 * FTW, FOP, FIP, FDP and ST0-ST7). The soft CPU has no x87 unit yet, so this
 * writes zeros and ignores what FXRSTOR loads; when the x87 module
 * (fpu/state.ts: fxsaveX87/fxrstorX87) lands, these two functions forward to it.
 */

import type { Cpu } from '../cpu.js';

/** Writes the x87 fields of a 512-byte FXSAVE image (`rexW`: 64-bit FIP/FDP format). */
export function fxsaveX87(_c: Cpu, view: DataView, _rexW: boolean): void {
  for (let i = 0; i < 24; i += 4) view.setInt32(i, 0, true);
  for (let i = 32; i < 160; i += 4) view.setInt32(i, 0, true);
}

/** Loads the x87 fields of a 512-byte FXSAVE image. */
export function fxrstorX87(_c: Cpu, _view: DataView, _rexW: boolean): void {
  // No x87 state to restore yet.
}
