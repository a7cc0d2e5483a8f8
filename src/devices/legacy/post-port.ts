/**
 * The POST diagnostic port (0x80). Guests write progress codes to it and
 * Linux uses it as an I/O delay; writes are accepted and dropped (the last
 * code is kept for diagnostics) and reads return all ones, as QEMU's
 * ioport80 does.
 */

import type { AccessSize, BusDevice } from '../../machine/bus.js';

const ALL_ONES = [0, 0xff, 0xffff, 0, 0xffffffff] as const;

export class PostPort implements BusDevice {
  private code = 0;

  /** `onPostCode`, if given, sees every byte written (for debugging firmware). */
  constructor(private readonly onPostCode?: (code: number) => void) {}

  /** The last value written. */
  get lastCode(): number {
    return this.code;
  }

  read(_offset: number, size: AccessSize): number {
    return ALL_ONES[size];
  }

  write(_offset: number, _size: AccessSize, value: number): void {
    this.code = value & 0xff;
    this.onPostCode?.(this.code);
  }
}
