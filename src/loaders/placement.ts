/**
 * Checks shared by the loaders before they write anything: that a range lies
 * in guest RAM (so a bad kernel gives a clear LoaderError rather than a
 * GuestMemoryError), alignment helpers, and command-line encoding.
 */

import type { GuestMemory } from '../machine/memory.js';
import { MiB } from '../machine/layout.js';
import { LoaderError, hex } from './errors.js';

/** Rounds up to a multiple of `alignment` (a power of two or any positive integer). */
export function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}

/** Rounds down to a multiple of `alignment`. */
export function alignDown(value: number, alignment: number): number {
  return Math.floor(value / alignment) * alignment;
}

/** Human-readable size in MiB (rounded up). */
export function mib(bytes: number): string {
  return `${Math.ceil(bytes / MiB)} MiB`;
}

/** Throws unless [address, address+size) is inside one RAM region. */
export function requireRam(memory: GuestMemory, address: number, size: number, what: string): void {
  if (!memory.contains(address, size)) {
    throw new LoaderError(
      `${what} [${hex(address)}, ${hex(address + size)}) lies outside guest RAM (${mib(memory.size)} configured)`,
    );
  }
}

/** Encodes a command line as bytes plus a terminating NUL; rejects embedded NULs and over-long lines. */
export function encodeCmdline(cmdline: string, maxLength: number, name: string): Uint8Array {
  const text = new TextEncoder().encode(cmdline);
  if (text.includes(0)) throw new LoaderError(`${name}: command line contains a NUL character`);
  if (text.length > maxLength) {
    throw new LoaderError(`${name}: command line is ${text.length} bytes; the kernel accepts at most ${maxLength}`);
  }
  const out = new Uint8Array(text.length + 1);
  out.set(text);
  return out;
}
