/**
 * How a VM's end maps to the process exit status and to the one line a user
 * reads. Statuses chosen by typevisor itself are even, because isa-debug-exit
 * statuses are always odd ((v << 1) | 1) and test runners read 1 as PASS.
 */

import type { VmExit } from '../engines/engine.js';

export const ExitStatus = {
  /** The guest powered off (or reset with --no-reboot), or the user quit. */
  OK: 0,
  /** Bad input: flags, files, configuration, or an engine that cannot run here. */
  BAD_INPUT: 2,
  /** The guest triple-faulted. */
  TRIPLE_FAULT: 4,
  /** The engine failed (e.g. KVM internal error). */
  INTERNAL_ERROR: 6,
} as const;

export function exitStatusFor(exit: VmExit): number {
  switch (exit.kind) {
    case 'poweroff':
    case 'reset':
    case 'stopped':
      return ExitStatus.OK;
    case 'debug-exit':
      return ((exit.value << 1) | 1) & 0xff;
    case 'triple-fault':
      return ExitStatus.TRIPLE_FAULT;
    case 'internal-error':
      return ExitStatus.INTERNAL_ERROR;
  }
}

/** The line to print on stderr for an abnormal end, or undefined for a normal one. */
export function describeExit(exit: VmExit): string | undefined {
  switch (exit.kind) {
    case 'triple-fault':
      return `guest triple fault on vCPU ${exit.vcpu}: the VM was stopped`;
    case 'internal-error':
      return `engine internal error${exit.vcpu === undefined ? '' : ` on vCPU ${exit.vcpu}`}: ${exit.message}`;
    default:
      return undefined;
  }
}
