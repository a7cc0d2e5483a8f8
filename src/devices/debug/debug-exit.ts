/**
 * isa-debug-exit (port 0xf4, 4 ports wide): test kernels such as
 * kvm-unit-tests end the VM by writing a status value. Any write of `v`
 * raises `{ kind: 'debug-exit', value: v }`; reads return 0, as in QEMU.
 * QEMU then exits the process with status `(v << 1) | 1` (see
 * `debugExitStatus`). Attached only when the user asks for it.
 */

import type { AccessSize, BusDevice } from '../../machine/bus.js';
import type { SystemEventSink } from '../system-event.js';

/** Number of ports the device decodes (QEMU's iosize=4). */
export const DEBUG_EXIT_PORT_COUNT = 4;

/** The process exit status QEMU produces for a debug-exit write of `value`. */
export function debugExitStatus(value: number): number {
  return ((value << 1) | 1) & 0xff;
}

const SIZE_MASK = [0, 0xff, 0xffff, 0, 0xffffffff] as const;

export class DebugExit implements BusDevice {
  constructor(private readonly onSystemEvent: SystemEventSink) {}

  read(_offset: number, _size: AccessSize): number {
    return 0;
  }

  write(_offset: number, size: AccessSize, value: number): void {
    this.onSystemEvent({ kind: 'debug-exit', value: (value & SIZE_MASK[size]) >>> 0 });
  }
}
