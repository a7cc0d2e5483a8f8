/**
 * The engine contract: what the `kvm` and `soft` engines provide to the machine.
 *
 * Modelled on Cloud Hypervisor's `Hypervisor`/`Vm`/`Vcpu` traits. The engine owns
 * guest RAM and the vCPUs and runs them; the machine hands it a `VmOps`, through
 * which every port and MMIO access the engine cannot handle itself reaches the
 * device buses. Devices therefore never see the engine.
 */

import type { AccessSize } from '../machine/bus.js';
import type { InterruptController } from '../machine/interrupts.js';
import type { GuestMemory } from '../machine/memory.js';
import type { CpuState } from './cpu-state.js';

export type EngineName = 'kvm' | 'soft';

/** Why a VM's run ended. */
export type VmExit =
  | { readonly kind: 'poweroff' }
  | { readonly kind: 'reset' }
  /** The guest wrote `value` to isa-debug-exit; the VMM exits with `(value << 1) | 1`. */
  | { readonly kind: 'debug-exit'; readonly value: number }
  | { readonly kind: 'triple-fault'; readonly vcpu: number }
  | { readonly kind: 'internal-error'; readonly message: string; readonly vcpu?: number }
  /** The host asked the VM to stop (Ctrl-A x, a signal, an API call). */
  | { readonly kind: 'stopped' };

/** Callbacks from the engine into the machine (Cloud Hypervisor's VmOps). */
export interface VmOps {
  pioRead(port: number, size: AccessSize): number;
  pioWrite(port: number, size: AccessSize, value: number): void;
  mmioRead(address: number, size: AccessSize): number;
  mmioWrite(address: number, size: AccessSize, value: number): void;
}

export interface VmOptions {
  /** Guest RAM in bytes. */
  ramSize: number;
  /** Number of vCPUs; vCPU 0 is the bootstrap processor. */
  vcpuCount: number;
}

/** Raised when an engine cannot run on this host; `message` says why in one line. */
export class EngineUnavailableError extends Error {
  constructor(
    readonly engine: EngineName,
    reason: string,
  ) {
    super(`${engine} engine unavailable: ${reason}`);
    this.name = 'EngineUnavailableError';
  }
}

/** One MSI message the engine can deliver cheaply (KVM: a GSI with an MSI route, fired through an irqfd). */
export interface FastMsiRoute {
  /** Points the route at a new message (the guest reprogrammed the MSI-X entry). */
  update(address: number, data: number): void;
  /** Delivers the message. */
  fire(): void;
  /** Releases the route. */
  dispose(): void;
}

/**
 * An engine's optional fast path for paravirtual devices, engine-neutral: KVM
 * implements it with ioeventfd and irqfd; engines without one leave
 * `EngineVm.fastNotify` undefined and devices use `VmOps` and
 * `InterruptController` as usual.
 */
export interface FastNotify {
  /**
   * From now on, a guest write of exactly `length` bytes at MMIO `address`
   * calls `handler` on the machine thread (soon after, not inside the write)
   * instead of reaching `VmOps.mmioWrite`. Writes of other sizes still reach
   * `VmOps`. Returns a function that removes the watch. Throws if the engine
   * cannot watch this address.
   */
  watchMmioWrite(address: number, length: 1 | 2 | 4 | 8, handler: () => void): () => void;
  /** A new MSI route; throws when the engine has no more. */
  createMsiRoute(): FastMsiRoute;
}

/** One virtual CPU. */
export interface EngineVcpu {
  readonly index: number;
  /** Reads the architectural state; valid while the VM is not running (before run, paused or ended). */
  getState(): CpuState;
  /** Replaces the architectural state; valid while the VM is not running. */
  setState(state: CpuState): void;
}

export interface EngineVm {
  readonly engine: EngineName;
  /** Guest RAM, owned by the engine, visible without copies. */
  readonly memory: GuestMemory;
  /** Where devices' interrupt lines and MSIs go. */
  readonly interrupts: InterruptController;
  /** The engine's fast notification path for virtio devices, if it has one. */
  readonly fastNotify?: FastNotify;
  readonly vcpus: readonly EngineVcpu[];
  /**
   * Runs every vCPU until the VM ends and resolves with the reason. The host's
   * event loop keeps running meanwhile (timers, stdin, disk I/O).
   */
  run(ops: VmOps): Promise<VmExit>;
  /** Ends `run()` with `exit`, kicking every vCPU out of guest code. Safe to call from device code. */
  requestExit(exit: VmExit): void;
  /** Stops every vCPU at an instruction boundary; resolves once none runs guest code. */
  pause(): Promise<void>;
  /** Continues after `pause()`. */
  resume(): void;
  /** Releases every resource (threads, file descriptors, memory). Idempotent. */
  destroy(): void;
}

export interface Engine {
  readonly name: EngineName;
  /**
   * True when running a kernel's own decompressor costs this engine real time
   * (a software CPU): the loader then unpacks a bzImage on the host instead.
   */
  readonly prefersUnpackedKernel: boolean;
  /** Creates a VM; throws EngineUnavailableError if this engine cannot run here. */
  createVm(options: VmOptions): Promise<EngineVm>;
}
