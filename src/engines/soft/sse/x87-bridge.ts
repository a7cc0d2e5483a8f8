/**
 * The x87 part of the FXSAVE image (bytes 0-23 and 32-159: FCW, FSW, abridged
 * FTW, FOP, FIP, FDP and ST0-ST7), forwarded to the x87 module
 * (fpu/state.ts). The image starts at byte 0 of `view`.
 */

import type { Cpu } from '../cpu.js';
import { fxrstorX87 as restoreX87Area, fxsaveX87 as saveX87Area } from '../fpu/state.js';

/** Writes the x87 fields of a 512-byte FXSAVE image (`rexW`: 64-bit FIP/FDP format). */
export function fxsaveX87(c: Cpu, view: DataView, rexW: boolean): void {
  saveX87Area(c, view, 0, rexW);
}

/** Loads the x87 fields of a 512-byte FXSAVE image. */
export function fxrstorX87(c: Cpu, view: DataView, rexW: boolean): void {
  restoreX87Area(c, view, 0, rexW);
}
