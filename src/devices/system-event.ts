/**
 * Machine-level requests raised by devices: power off, reset, or the
 * isa-debug-exit "exit with status" used by test kernels.
 *
 * Devices receive a `SystemEventSink` at construction and call it; the machine
 * maps each event onto the engine (e.g. `EngineVm.requestExit`). Devices never
 * stop the VM themselves.
 */

/** A request from the guest to end or restart the machine. */
export type SystemEvent =
  | { readonly kind: 'poweroff' }
  | { readonly kind: 'reset' }
  /** `value` is what the guest wrote to isa-debug-exit (QEMU exits with `(value << 1) | 1`). */
  | { readonly kind: 'debug-exit'; readonly value: number };

/** Receives system events; called synchronously from the device access that caused them. */
export type SystemEventSink = (event: SystemEvent) => void;

/** Shared immutable event objects, so raising them allocates nothing. */
export const POWEROFF_EVENT: SystemEvent = Object.freeze({ kind: 'poweroff' });
export const RESET_EVENT: SystemEvent = Object.freeze({ kind: 'reset' });
