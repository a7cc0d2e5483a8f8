/**
 * The shared-memory protocol between the machine thread and the AP worker
 * threads: one control block for the whole VM and one mailbox per AP, both
 * Int32Arrays over SharedArrayBuffers driven with Atomics.
 */

/** Control block words. */
export const Ctl = {
  /** Desired state of the APs: one of ApState. */
  STATE: 0,
  /** Number of mailboxes holding a request (a hint for the machine thread). */
  PENDING: 1,
  /** First of one word per vCPU: 1 while that AP is parked (not in KVM_RUN). */
  PARKED: 2,
} as const;

export const ApState = { PARK: 0, RUN: 1, QUIT: 2 } as const;

export function controlWords(vcpuCount: number): number {
  return Ctl.PARKED + vcpuCount;
}

/** Mailbox words. */
export const Mb = {
  STATE: 0,
  OP: 1,
  /** Port, or the low 32 bits of an MMIO address. */
  A: 2,
  /** High bits of an MMIO address. */
  B: 3,
  SIZE: 4,
  VALUE: 5,
  /** Length of the JSON text of an EXIT message in the text area. */
  TEXT_LENGTH: 6,
  WORDS: 8,
} as const;

export const MbState = { IDLE: 0, REQUEST: 1, REPLY: 2 } as const;
export const MbOp = { PIO_READ: 1, PIO_WRITE: 2, MMIO_READ: 3, MMIO_WRITE: 4, EXIT: 5 } as const;

/** Bytes of a mailbox: the words, then a text area for exit messages. */
export const MAILBOX_TEXT_BYTES = 1024;
export const MAILBOX_BYTES = Mb.WORDS * 4 + MAILBOX_TEXT_BYTES;

/** What the machine thread hands each AP worker. */
export interface ApWorkerData {
  vcpuIndex: number;
  vcpuFd: number;
  runSize: number;
  /** Kick slot of this AP. */
  slot: number;
  /** Kick slot of vCPU 0 (the machine thread). */
  machineSlot: number;
  control: SharedArrayBuffer;
  mailbox: SharedArrayBuffer;
}
