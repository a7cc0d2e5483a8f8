/**
 * The thread of one application processor (vCPU 1..N-1). It calls KVM_RUN
 * synchronously and forwards each port/MMIO access to the machine thread
 * through its SharedArrayBuffer mailbox: it posts the request, kicks vCPU 0 so
 * the machine thread services it, and Atomics.wait()s for the reply. Terminal
 * exits (triple fault, internal error, ...) are posted the same way as JSON.
 */

import { parentPort, workerData } from 'node:worker_threads';
import type { AccessSize } from '../../machine/bus.js';
import type { VmExit } from '../engine.js';
import { ExitReason, Mmap } from './abi.js';
import { KvmRunView, type AccessHandler } from './exits.js';
import { loadKvmNative } from './native.js';
import { ApState, Ctl, Mb, MbOp, MbState, type ApWorkerData } from './shared.js';

const EINTR = 4;
const EAGAIN = 11;

const data = workerData as ApWorkerData;
const native = loadKvmNative();
const ctl = new Int32Array(data.control);
const mb = new Int32Array(data.mailbox, 0, Mb.WORDS);
const text = new Uint8Array(data.mailbox, Mb.WORDS * 4);
const runBuffer = native.mmap(data.runSize, Mmap.PROT_READ | Mmap.PROT_WRITE, Mmap.MAP_SHARED, data.vcpuFd, 0);
const run = new KvmRunView(runBuffer);
native.registerVcpuThread(data.slot, runBuffer);

/** Posts one request and waits for the machine thread's reply; returns the reply value. */
function call(op: number, a: number, b: number, size: number, value: number): number {
  mb[Mb.OP] = op;
  mb[Mb.A] = a;
  mb[Mb.B] = b;
  mb[Mb.SIZE] = size;
  mb[Mb.VALUE] = value;
  Atomics.store(mb, Mb.STATE, MbState.REQUEST);
  Atomics.add(ctl, Ctl.PENDING, 1);
  native.kick(data.machineSlot);
  while (Atomics.load(mb, Mb.STATE) === MbState.REQUEST) {
    if (Atomics.load(ctl, Ctl.STATE) === ApState.QUIT) break; // the VM is being destroyed
    Atomics.wait(mb, Mb.STATE, MbState.REQUEST, 50);
  }
  const reply = mb[Mb.VALUE];
  Atomics.store(mb, Mb.STATE, MbState.IDLE);
  return reply;
}

const forward: AccessHandler = {
  pioRead: (port: number, size: AccessSize) => call(MbOp.PIO_READ, port, 0, size, 0),
  pioWrite: (port: number, size: AccessSize, value: number) => void call(MbOp.PIO_WRITE, port, 0, size, value),
  mmioRead: (address: number, size: AccessSize) =>
    call(MbOp.MMIO_READ, address % 0x1_0000_0000, Math.floor(address / 0x1_0000_0000), size, 0),
  mmioWrite: (address: number, size: AccessSize, value: number) =>
    void call(MbOp.MMIO_WRITE, address % 0x1_0000_0000, Math.floor(address / 0x1_0000_0000), size, value),
};

function postExit(exit: VmExit): void {
  const bytes = new TextEncoder().encode(JSON.stringify(exit)).subarray(0, text.length);
  text.set(bytes);
  mb[Mb.TEXT_LENGTH] = bytes.length;
  call(MbOp.EXIT, 0, 0, 0, 0);
}

const parkedIndex = Ctl.PARKED + data.vcpuIndex;

function loop(): void {
  for (;;) {
    const state = Atomics.load(ctl, Ctl.STATE);
    if (state === ApState.QUIT) return;
    if (state !== ApState.RUN) {
      Atomics.store(ctl, parkedIndex, 1);
      Atomics.notify(ctl, parkedIndex);
      Atomics.wait(ctl, Ctl.STATE, state);
      continue;
    }
    Atomics.store(ctl, parkedIndex, 0);
    // Re-check after announcing that we run, so a PARK set meanwhile is seen.
    if (Atomics.load(ctl, Ctl.STATE) !== ApState.RUN) continue;
    const rc = native.run(data.vcpuFd);
    if (rc < 0) {
      if (rc === -EINTR || rc === -EAGAIN) {
        run.clearImmediateExit();
        continue;
      }
      postExit({ kind: 'internal-error', vcpu: data.vcpuIndex, message: `vCPU ${data.vcpuIndex}: KVM_RUN failed with errno ${-rc}` });
      parkSelf();
      continue;
    }
    const reason = run.exitReason;
    let error: string | null = null;
    if (reason === ExitReason.IO) error = run.handleIo(forward);
    else if (reason === ExitReason.MMIO) error = run.handleMmio(forward);
    else if (reason === ExitReason.INTR) continue;
    else {
      postExit(run.terminalExit(reason, data.vcpuIndex));
      parkSelf();
      continue;
    }
    if (error !== null) {
      postExit({ kind: 'internal-error', vcpu: data.vcpuIndex, message: `vCPU ${data.vcpuIndex}: ${error}` });
      parkSelf();
    }
  }
}

/** After a terminal exit, wait until the machine thread changes the state (it parks everyone). */
function parkSelf(): void {
  while (Atomics.load(ctl, Ctl.STATE) === ApState.RUN) Atomics.wait(ctl, Ctl.STATE, ApState.RUN, 50);
}

parentPort?.postMessage('ready');
try {
  loop();
} finally {
  native.unregisterVcpuThread(data.slot);
  native.munmap(runBuffer);
  Atomics.store(ctl, parkedIndex, 2); // 2: this thread is done with KVM
  Atomics.notify(ctl, parkedIndex);
  parentPort?.close();
}
