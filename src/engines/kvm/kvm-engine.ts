/**
 * The `kvm` engine: runs guests on Linux /dev/kvm through typevisor's native
 * syscall addon. See docs/kvm-run-model.md for the threading and run model.
 *
 * vCPU 0 runs on the thread that calls `run()` (the machine thread), so its
 * port and MMIO exits reach `VmOps` synchronously. A native watcher thread
 * kicks it out of KVM_RUN whenever the Node event loop has work, and `run()`
 * then yields to the event loop and re-enters. vCPUs 1..N-1 each run on a
 * worker thread (ap-worker.ts) and forward their accesses to the machine
 * thread through shared-memory mailboxes.
 */

import { Worker } from 'node:worker_threads';
import type { AccessSize } from '../../machine/bus.js';
import type { InterruptController } from '../../machine/interrupts.js';
import { IOAPIC_PINS, MAX_RAM_SIZE, MIN_RAM_SIZE, ramRanges, type RamRange } from '../../machine/layout.js';
import { GuestMemory, type MemoryRegion } from '../../machine/memory.js';
import type { CpuState } from '../cpu-state.js';
import {
  EngineUnavailableError, type Engine, type EngineVcpu, type EngineVm, type VmExit, type VmOps, type VmOptions,
} from '../engine.js';
import {
  Cap, ExitReason, Ioctl, IrqChip, KVM_API_VERSION, KVM_IDENTITY_MAP_ADDR, KVM_MAX_CPUID_ENTRIES, KVM_PIT_SPEAKER_DUMMY,
  KVM_SREGS_SIZE, KVM_REGS_SIZE, KVM_TSS_ADDR, Mmap, REQUIRED_CAPS,
} from './abi.js';
import { normalizeCpuid } from './cpuid.js';
import { KvmRunView } from './exits.js';
import { KvmFastNotify } from './fast-notify.js';
import { loadKvmNative, type KvmNative, type WatcherHandle } from './native.js';
import { ApState, Ctl, MAILBOX_BYTES, Mb, MbOp, MbState, controlWords, type ApWorkerData } from './shared.js';
import {
  cpuidBuffer, decodeCpuid, decodeMsrs, decodeRegs, decodeSregs, encodeCpuid, encodeIrqRouting, encodeMemoryRegion,
  encodeMsrs, encodeRegs, encodeSregs, type CpuidEntry, type IrqchipRoute, type MsrEntry,
} from './structs.js';

const EINTR = 4;
const EAGAIN = 11;
const E2BIG = 7;

/** A KVM operation failed on a host that does have a usable KVM (bad size, out of memory, ...). */
/** IA32_MTRR_DEF_TYPE, and its value with MTRRs enabled (bit 11) and write-back (6) as the default type. */
const MSR_MTRR_DEF_TYPE = 0x2ff;
const MTRR_ENABLE_WRITE_BACK = 0x806n;

export class KvmError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KvmError';
  }
}

export interface KvmEngineOptions {
  /** The KVM device; default /dev/kvm. */
  devicePath?: string;
  /**
   * Longest time (ms) vCPU 0 stays in guest code without letting the event loop
   * run, even when libuv reports nothing to do (covers timers created by device
   * code during a slice). Default 10.
   */
  maxSliceMs?: number;
  /**
   * Offer the irqfd fast path to virtio devices (EngineVm.fastNotify) when the
   * host KVM supports it. Default true.
   */
  fastNotify?: boolean;
  /**
   * Also watch virtio notify writes with KVM_IOEVENTFD. Default false: measured
   * on this host, a notify from vCPU 0 round-trips in ~14 µs as an MMIO exit
   * but ~79 µs through an eventfd, because the eventfd must end vCPU 0's slice
   * to reach the event loop (docs/virtio.md).
   */
  ioeventfd?: boolean;
}

interface ErrnoError extends Error {
  code?: string;
}

function errnoCode(err: unknown): string | undefined {
  return err instanceof Error ? (err as ErrnoError).code : undefined;
}

function openKvm(native: KvmNative, path: string): number {
  try {
    return native.open(path, native.O_RDWR);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT' || code === 'ENXIO' || code === 'ENODEV') {
      throw new EngineUnavailableError('kvm', `${path} does not exist (KVM is not enabled on this host)`);
    }
    if (code === 'EACCES' || code === 'EPERM') {
      throw new EngineUnavailableError('kvm', `permission denied opening ${path} (add your user to the 'kvm' group)`);
    }
    throw new EngineUnavailableError('kvm', `cannot open ${path}: ${(err as Error).message}`);
  }
}

/** Default GSI routing of a PC (what QEMU sets up): ISA IRQs to the PICs, GSI 0 to IOAPIC pin 2. */
export function pcIrqRouting(): IrqchipRoute[] {
  const routes: IrqchipRoute[] = [];
  for (let i = 0; i < 16; i++) {
    if (i === 2) continue;
    routes.push({ gsi: i, irqchip: i < 8 ? IrqChip.PIC_MASTER : IrqChip.PIC_SLAVE, pin: i & 7 });
  }
  for (let i = 0; i < IOAPIC_PINS; i++) {
    if (i === 2) continue;
    routes.push({ gsi: i, irqchip: IrqChip.IOAPIC, pin: i === 0 ? 2 : i });
  }
  return routes;
}

export class KvmEngine implements Engine {
  readonly prefersUnpackedKernel = false;
  readonly name = 'kvm' as const;

  constructor(private readonly options: KvmEngineOptions = {}) {}

  async createVm(options: VmOptions): Promise<KvmVm> {
    return KvmVm.create(options, this.options);
  }
}

/** One vCPU of a KvmVm; its register state is read and written through KVM ioctls. */
export class KvmVcpu implements EngineVcpu {
  constructor(
    private readonly vm: KvmVm,
    readonly index: number,
    /** The vCPU file descriptor. */
    readonly fd: number,
  ) {}

  private check(): KvmNative {
    return this.vm.nativeForStateAccess();
  }

  getState(): CpuState {
    const n = this.check();
    const regs = new Uint8Array(KVM_REGS_SIZE);
    const sregs = new Uint8Array(KVM_SREGS_SIZE);
    n.ioctlBytes(this.fd, Ioctl.GET_REGS, regs);
    n.ioctlBytes(this.fd, Ioctl.GET_SREGS, sregs);
    return { ...decodeRegs(regs), ...decodeSregs(sregs) };
  }

  setState(state: CpuState): void {
    const n = this.check();
    const current = new Uint8Array(KVM_SREGS_SIZE);
    n.ioctlBytes(this.fd, Ioctl.GET_SREGS, current);
    n.ioctlBytes(this.fd, Ioctl.SET_SREGS, encodeSregs(state, current));
    n.ioctlBytes(this.fd, Ioctl.SET_REGS, encodeRegs(state));
  }

  /** Reads model-specific registers. */
  getMsrs(indices: readonly number[]): MsrEntry[] {
    const n = this.check();
    const bytes = encodeMsrs(indices.map((index) => ({ index, value: 0n })));
    const got = n.ioctlBytes(this.fd, Ioctl.GET_MSRS, bytes);
    if (got !== indices.length) throw new KvmError(`KVM_GET_MSRS read ${got} of ${indices.length} MSRs (MSR 0x${indices[got].toString(16)} is not supported)`);
    return decodeMsrs(bytes, got);
  }

  /** Writes model-specific registers. */
  setMsrs(entries: readonly MsrEntry[]): void {
    const n = this.check();
    const set = n.ioctlBytes(this.fd, Ioctl.SET_MSRS, encodeMsrs(entries));
    if (set !== entries.length) throw new KvmError(`KVM_SET_MSRS wrote ${set} of ${entries.length} MSRs (MSR 0x${entries[set].index.toString(16)} was refused)`);
  }

  /** The KVM multiprocessing state (MpState in abi.ts); APs start UNINITIALIZED, waiting for INIT/SIPI. */
  getMpState(): number {
    const n = this.check();
    const b = new Uint32Array(1);
    n.ioctlBytes(this.fd, Ioctl.GET_MP_STATE, b);
    return b[0];
  }

  setMpState(state: number): void {
    this.check().ioctlBytes(this.fd, Ioctl.SET_MP_STATE, Uint32Array.of(state));
  }
}

/** KVM's in-kernel PIC/IOAPIC/LAPIC as the machine's InterruptController. */
class KvmInterrupts implements InterruptController {
  private readonly irqLevel = new Uint32Array(2);
  private readonly msi = new Uint32Array(8);

  constructor(
    private readonly native: KvmNative,
    private readonly vm: KvmVm,
  ) {}

  setIrq(gsi: number, level: boolean): void {
    if (!Number.isInteger(gsi) || gsi < 0 || gsi >= IOAPIC_PINS) throw new RangeError(`GSI ${gsi} is not 0..${IOAPIC_PINS - 1}`);
    if (this.vm.isDestroyed) return;
    this.irqLevel[0] = gsi;
    this.irqLevel[1] = level ? 1 : 0;
    this.native.ioctlBytes(this.vm.vmFd, Ioctl.IRQ_LINE, this.irqLevel);
  }

  signalMsi(address: number, data: number): void {
    if (this.vm.isDestroyed) return;
    this.msi[0] = address % 0x1_0000_0000;
    this.msi[1] = Math.floor(address / 0x1_0000_0000);
    this.msi[2] = data;
    this.native.ioctlBytes(this.vm.vmFd, Ioctl.SIGNAL_MSI, this.msi);
  }
}

interface ApThread {
  index: number;
  worker: Worker;
  mailbox: Int32Array;
  text: Uint8Array;
}

/** A VM on /dev/kvm. Create it with `new KvmEngine().createVm(...)`. */
export class KvmVm implements EngineVm {
  readonly engine = 'kvm' as const;
  readonly memory: GuestMemory;
  readonly interrupts: InterruptController;
  readonly vcpus: readonly KvmVcpu[];
  /** ioeventfd/irqfd for virtio devices; undefined when the host lacks them or it was turned off. */
  readonly fastNotify?: KvmFastNotify;
  /** The CPUID table KVM reports as supported on this host (before per-vCPU normalisation). */
  readonly supportedCpuid: readonly CpuidEntry[];

  private readonly run0: KvmRunView;
  private readonly vcpu0Fd: number;
  private readonly watcher: WatcherHandle;
  private readonly control: Int32Array;
  private readonly aps: ApThread[] = [];
  private readonly maxSliceMs: number;

  /** Counters for diagnostics and benchmarks: exits handled on vCPU 0 and run slices entered. */
  /** vCPU 0 exits, slices run, and EINTRs that ran ioeventfd handlers inside a slice. */
  readonly stats = { vcpu0Exits: 0, slices: 0, inSliceNotifies: 0 };

  private running = false;
  private inSlice = false;
  private destroyed = false;
  private destroyDeferred = false;
  private pendingExit: VmExit | undefined;
  private pauseRequested = false;
  private wakeRunLoop: (() => void) | undefined;
  private ops: VmOps | undefined;

  private constructor(
    private readonly native: KvmNative,
    private readonly kvmFd: number,
    readonly vmFd: number,
    private readonly ramBuffers: ArrayBuffer[],
    vcpuFds: number[],
    private readonly runBuffer0: ArrayBuffer,
    private readonly firstSlot: number,
    supportedCpuid: CpuidEntry[],
    maxSliceMs: number,
    fastNotify: boolean,
    ioeventfd: boolean,
  ) {
    const regions: MemoryRegion[] = ramPieces(ramBuffers.reduce((s, b) => s + b.byteLength, 0)).map((r, i) => ({
      ...r,
      bytes: new Uint8Array(ramBuffers[i]),
    }));
    this.memory = new GuestMemory(regions);
    this.interrupts = new KvmInterrupts(native, this);
    this.vcpus = vcpuFds.map((fd, i) => new KvmVcpu(this, i, fd));
    // What firmware leaves behind (as Firecracker sets it): MTRRs enabled with write-back as the
    // default memory type, so guest RAM is not treated as uncacheable.
    for (const vcpu of this.vcpus) vcpu.setMsrs([{ index: MSR_MTRR_DEF_TYPE, value: MTRR_ENABLE_WRITE_BACK }]);
    this.vcpu0Fd = vcpuFds[0]!;
    this.run0 = new KvmRunView(runBuffer0);
    this.watcher = native.watcherCreate();
    this.control = new Int32Array(new SharedArrayBuffer(controlWords(vcpuFds.length) * 4));
    this.supportedCpuid = supportedCpuid;
    this.maxSliceMs = maxSliceMs;
    if (fastNotify) {
      this.fastNotify = new KvmFastNotify(native, vmFd, pcIrqRouting(), ioeventfd, (fd, handler) => this.watchEventfdInSlice(fd, handler));
    }
    native.registerVcpuThread(firstSlot, runBuffer0);
  }

  /** Opens KVM, creates the VM, its RAM, irqchip, PIT and vCPUs, and starts the AP threads. */
  static async create(options: VmOptions, engineOptions: KvmEngineOptions = {}): Promise<KvmVm> {
    const { ramSize, vcpuCount } = options;
    if (!Number.isSafeInteger(ramSize) || ramSize < MIN_RAM_SIZE || ramSize > MAX_RAM_SIZE || ramSize % 4096 !== 0) {
      throw new RangeError(`RAM size ${ramSize} must be a multiple of 4 KiB between ${MIN_RAM_SIZE >> 20} MiB and ${MAX_RAM_SIZE / 2 ** 30} GiB`);
    }
    const maxSliceMs = engineOptions.maxSliceMs ?? 10;
    const native = loadKvmNative();
    const cleanup: (() => void)[] = [];
    const undo = (): void => {
      for (const f of cleanup.reverse()) {
        try {
          f();
        } catch {
          // best effort while unwinding a failed creation
        }
      }
    };
    try {
      const devicePath = engineOptions.devicePath ?? process.env.TYPEVISOR_KVM_DEVICE ?? '/dev/kvm';
      const kvmFd = openKvm(native, devicePath);
      cleanup.push(() => native.close(kvmFd));
      const api = native.ioctlInt(kvmFd, Ioctl.GET_API_VERSION, 0);
      if (api !== KVM_API_VERSION) throw new EngineUnavailableError('kvm', `KVM API version ${api}, expected ${KVM_API_VERSION}`);
      const missing = REQUIRED_CAPS.filter(([cap]) => native.ioctlInt(kvmFd, Ioctl.CHECK_EXTENSION, cap) <= 0).map(([, name]) => name);
      if (missing.length) throw new EngineUnavailableError('kvm', `host KVM lacks ${missing.join(', ')}`);
      const maxVcpus = Math.min(255, native.ioctlInt(kvmFd, Ioctl.CHECK_EXTENSION, Cap.MAX_VCPUS) || native.ioctlInt(kvmFd, Ioctl.CHECK_EXTENSION, Cap.NR_VCPUS) || 4);
      if (!Number.isInteger(vcpuCount) || vcpuCount < 1 || vcpuCount > maxVcpus) {
        throw new RangeError(`vCPU count ${vcpuCount} must be between 1 and ${maxVcpus} on this host`);
      }

      const vmFd = createVmFd(native, kvmFd);
      cleanup.push(() => native.close(vmFd));
      native.ioctlInt(vmFd, Ioctl.SET_TSS_ADDR, KVM_TSS_ADDR);
      native.ioctlBytes(vmFd, Ioctl.SET_IDENTITY_MAP_ADDR, BigUint64Array.of(BigInt(KVM_IDENTITY_MAP_ADDR)));
      native.ioctlInt(vmFd, Ioctl.CREATE_IRQCHIP, 0);
      const pitConfig = new Uint32Array(16);
      pitConfig[0] = KVM_PIT_SPEAKER_DUMMY;
      native.ioctlBytes(vmFd, Ioctl.CREATE_PIT2, pitConfig);
      native.ioctlBytes(vmFd, Ioctl.SET_GSI_ROUTING, encodeIrqRouting(pcIrqRouting()));

      // Guest RAM: one anonymous mapping, registered with KVM per RAM range and
      // exposed to TypeScript as ArrayBuffers of at most 4 GiB (Node's limit).
      const pieces = ramPieces(ramSize);
      let ramBuffers: ArrayBuffer[];
      try {
        ramBuffers = native.mmapPieces(pieces.map((p) => p.size), Mmap.PROT_READ | Mmap.PROT_WRITE, Mmap.MAP_PRIVATE | Mmap.MAP_ANONYMOUS | Mmap.MAP_NORESERVE);
      } catch (err) {
        throw new KvmError(`cannot map ${Math.round(ramSize / 2 ** 20)} MiB of guest RAM: ${(err as Error).message}`);
      }
      cleanup.push(() => ramBuffers.forEach((b) => native.munmap(b)));
      const hostBase = native.addressOf(ramBuffers[0]);
      let hostOffset = 0;
      ramRanges(ramSize).forEach((range, slot) => {
        native.ioctlBytes(vmFd, Ioctl.SET_USER_MEMORY_REGION, encodeMemoryRegion(slot, range.guestBase, range.size, hostBase + BigInt(hostOffset)));
        hostOffset += range.size;
      });

      const supported = getSupportedCpuid(native, kvmFd);
      const runSize = native.ioctlInt(kvmFd, Ioctl.GET_VCPU_MMAP_SIZE, 0);
      const vcpuFds: number[] = [];
      for (let i = 0; i < vcpuCount; i++) {
        const fd = native.ioctlInt(vmFd, Ioctl.CREATE_VCPU, i);
        cleanup.push(() => native.close(fd));
        native.ioctlBytes(fd, Ioctl.SET_CPUID2, encodeCpuid(normalizeCpuid(supported, { vcpuIndex: i, vcpuCount })));
        vcpuFds.push(fd);
      }
      const runBuffer0 = native.mmap(runSize, Mmap.PROT_READ | Mmap.PROT_WRITE, Mmap.MAP_SHARED, vcpuFds[0], 0);
      cleanup.push(() => native.munmap(runBuffer0));
      const firstSlot = native.allocSlots(vcpuCount);
      if (firstSlot < 0) throw new KvmError('too many vCPUs in this process (kick slots exhausted)');
      cleanup.push(() => native.freeSlots(firstSlot, vcpuCount));

      const fast = (engineOptions.fastNotify ?? true) &&
        native.ioctlInt(kvmFd, Ioctl.CHECK_EXTENSION, Cap.IOEVENTFD) > 0 && native.ioctlInt(kvmFd, Ioctl.CHECK_EXTENSION, Cap.IRQFD) > 0;
      const vm = new KvmVm(native, kvmFd, vmFd, ramBuffers, vcpuFds, runBuffer0, firstSlot, supported, maxSliceMs, fast, engineOptions.ioeventfd ?? false);
      cleanup.length = 0; // the VM owns everything from here; destroy() releases it
      try {
        await vm.startAps(runSize);
      } catch (err) {
        vm.destroy();
        throw err;
      }
      return vm;
    } catch (err) {
      undo();
      if (err instanceof EngineUnavailableError || err instanceof KvmError || err instanceof RangeError) throw err;
      throw new KvmError(`KVM VM setup failed: ${(err as Error).message}`);
    }
  }

  private async startAps(runSize: number): Promise<void> {
    for (let i = 1; i < this.vcpus.length; i++) {
      const mailbox = new SharedArrayBuffer(MAILBOX_BYTES);
      const data: ApWorkerData = {
        vcpuIndex: i, vcpuFd: this.vcpus[i].fd, runSize, slot: this.firstSlot + i, machineSlot: this.firstSlot,
        control: this.control.buffer as SharedArrayBuffer, mailbox,
      };
      // execArgv: [] so the parent's flags (e.g. --input-type) do not break the worker.
      const worker = new Worker(new URL('./ap-worker.js', import.meta.url), { workerData: data, execArgv: [] });
      this.aps.push({ index: i, worker, mailbox: new Int32Array(mailbox, 0, Mb.WORDS), text: new Uint8Array(mailbox, Mb.WORDS * 4) });
      await new Promise<void>((resolve, reject) => {
        worker.once('message', () => resolve());
        worker.once('error', reject);
        worker.once('exit', (code) => reject(new KvmError(`vCPU ${i} thread exited during start-up (code ${code})`)));
      });
      worker.removeAllListeners('exit');
      worker.removeAllListeners('error');
      worker.on('error', (err) => this.requestExit({ kind: 'internal-error', vcpu: i, message: `vCPU ${i} thread failed: ${err.message}` }));
      worker.unref();
    }
  }

  get isDestroyed(): boolean {
    return this.destroyed;
  }

  /** @internal Guards vCPU state access: only while no vCPU runs guest code. */
  nativeForStateAccess(): KvmNative {
    if (this.destroyed) throw new KvmError('the VM has been destroyed');
    if (this.running && !this.pauseRequested && this.pendingExit === undefined) {
      throw new KvmError('vCPU state is only accessible while the VM is not running (pause it first)');
    }
    return this.native;
  }

  async run(ops: VmOps): Promise<VmExit> {
    if (this.destroyed) throw new KvmError('the VM has been destroyed');
    if (this.running) throw new KvmError('run() is already active');
    this.running = true;
    this.ops = ops;
    this.pendingExit = undefined;
    try {
      for (;;) {
        if (this.pendingExit === undefined && this.pauseRequested) {
          this.setApState(ApState.PARK);
          await new Promise<void>((resolve) => (this.wakeRunLoop = resolve));
          this.wakeRunLoop = undefined;
          continue;
        }
        if (this.pendingExit !== undefined) break;
        this.setApState(ApState.RUN);
        this.runSlice(ops);
        if (this.pendingExit !== undefined) break;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } finally {
      this.setApState(this.destroyed ? ApState.QUIT : ApState.PARK);
      if (!this.destroyed) await this.settleAps(ops);
      this.running = false;
    }
    return this.pendingExit;
  }

  /** Handlers of eventfds the watcher polls itself (ioeventfds), by watcher index. */
  private readonly sliceEventfdHandlers: ((() => void) | undefined)[] = new Array<(() => void) | undefined>(32).fill(undefined);

  /**
   * Has the slice loop run `handler` whenever eventfd `fd` is signalled, inside
   * the slice (the watcher drains the fd and kicks vCPU 0; the slice goes on).
   * Returns the undo, or undefined when the watcher's 32 places are taken.
   */
  watchEventfdInSlice(fd: number, handler: () => void): (() => void) | undefined {
    const index = this.native.watcherAddEventfd(this.watcher, fd);
    if (index < 0) return undefined;
    this.sliceEventfdHandlers[index] = handler;
    return () => {
      this.native.watcherRemoveEventfd(this.watcher, index);
      this.sliceEventfdHandlers[index] = undefined;
    };
  }

  /** Runs the handlers of the signalled eventfds (bit i → index i). */
  private runSignalledEventfds(bits: number): void {
    const handlers = this.sliceEventfdHandlers;
    for (let i = 0; bits !== 0; i++, bits >>>= 1) {
      if ((bits & 1) !== 0) handlers[i]?.();
    }
  }

  /** Runs vCPU 0 on this thread until the event loop has work, a pause, or an exit. */
  private runSlice(ops: VmOps): void {
    const native = this.native;
    const fd = this.vcpu0Fd;
    const run = this.run0;
    const watcher = this.watcher;
    const control = this.control;
    const hasAps = this.aps.length > 0;
    native.watcherArm(watcher, this.firstSlot, this.maxSliceMs);
    this.inSlice = true;
    this.stats.slices++;
    const stats = this.stats;
    try {
      if (hasAps && Atomics.load(control, Ctl.PENDING) !== 0) this.serviceMailboxes(ops);
      // Notifies signalled between slices.
      const early = native.watcherTakeSignalled(watcher);
      if (early !== 0) this.runSignalledEventfds(early);
      for (;;) {
        if (this.pendingExit !== undefined || this.pauseRequested) return;
        const rc = native.run(fd);
        if (rc === 0) {
          stats.vcpu0Exits++;
          const reason = run.exitReason;
          let error: string | null = null;
          if (reason === ExitReason.IO) error = run.handleIo(ops);
          else if (reason === ExitReason.MMIO) error = run.handleMmio(ops);
          else if (reason === ExitReason.INTR) continue;
          else {
            this.requestExit(run.terminalExit(reason, 0));
            return;
          }
          if (error !== null) this.requestExit({ kind: 'internal-error', vcpu: 0, message: `vCPU 0: ${error}` });
        } else if (rc === -EINTR || rc === -EAGAIN) {
          run.clearImmediateExit();
          if (hasAps && Atomics.load(control, Ctl.PENDING) !== 0) this.serviceMailboxes(ops);
          const signalled = native.watcherTakeSignalled(watcher);
          if (signalled !== 0) {
            stats.inSliceNotifies++;
            this.runSignalledEventfds(signalled);
          }
          if (native.watcherTakeFired(watcher)) return;
        } else {
          this.requestExit({ kind: 'internal-error', vcpu: 0, message: `vCPU 0: KVM_RUN failed with errno ${-rc}` });
          return;
        }
      }
    } finally {
      native.watcherDisarm(watcher);
      this.inSlice = false;
      if (this.destroyDeferred) this.release();
    }
  }

  /** Answers every AP request waiting in a mailbox. */
  private serviceMailboxes(ops: VmOps | undefined): void {
    for (const ap of this.aps) {
      const mb = ap.mailbox;
      if (Atomics.load(mb, Mb.STATE) !== MbState.REQUEST) continue;
      Atomics.sub(this.control, Ctl.PENDING, 1);
      let value = 0;
      const size = mb[Mb.SIZE] as AccessSize;
      const address = (mb[Mb.B] >>> 0) * 0x1_0000_0000 + (mb[Mb.A] >>> 0);
      try {
        switch (mb[Mb.OP]) {
          case MbOp.PIO_READ:
            value = ops ? ops.pioRead(mb[Mb.A], size) : 0xffffffff;
            break;
          case MbOp.PIO_WRITE:
            ops?.pioWrite(mb[Mb.A], size, mb[Mb.VALUE] >>> 0);
            break;
          case MbOp.MMIO_READ:
            value = ops ? ops.mmioRead(address, size) : 0xffffffff;
            break;
          case MbOp.MMIO_WRITE:
            ops?.mmioWrite(address, size, mb[Mb.VALUE] >>> 0);
            break;
          case MbOp.EXIT: {
            const length = Math.min(mb[Mb.TEXT_LENGTH], ap.text.length);
            this.requestExit(JSON.parse(new TextDecoder().decode(ap.text.slice(0, length))) as VmExit);
            break;
          }
        }
      } finally {
        mb[Mb.VALUE] = value | 0;
        Atomics.store(mb, Mb.STATE, MbState.REPLY);
        Atomics.notify(mb, Mb.STATE);
      }
    }
  }

  private setApState(state: number): void {
    if (this.aps.length === 0) return;
    const previous = Atomics.exchange(this.control, Ctl.STATE, state);
    if (previous === state) return;
    Atomics.notify(this.control, Ctl.STATE);
    if (state !== ApState.RUN) for (const ap of this.aps) this.native.kick(this.firstSlot + ap.index);
  }

  private apsParked(): boolean {
    return this.aps.every((ap) => Atomics.load(this.control, Ctl.PARKED + ap.index) === 1);
  }

  /** Waits (servicing mailboxes) until every AP is parked. */
  private async settleAps(ops: VmOps | undefined): Promise<void> {
    while (!this.destroyed && !this.apsParked()) {
      this.serviceMailboxes(ops);
      await new Promise<void>((resolve) => setTimeout(resolve, 1));
    }
  }

  requestExit(exit: VmExit): void {
    if (this.pendingExit === undefined) this.pendingExit = exit;
    if (!this.destroyed) this.setApState(ApState.PARK);
    this.wakeRunLoop?.();
  }

  async pause(): Promise<void> {
    if (this.destroyed) return;
    this.pauseRequested = true;
    this.setApState(ApState.PARK);
    // vCPU 0 leaves its slice at the next loop check (a slice never spans an await).
    while (this.inSlice) await new Promise<void>((resolve) => setImmediate(resolve));
    await this.settleAps(this.ops);
  }

  resume(): void {
    if (!this.pauseRequested) return;
    this.pauseRequested = false;
    this.wakeRunLoop?.();
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    if (this.pendingExit === undefined) this.pendingExit = { kind: 'stopped' };
    this.wakeRunLoop?.();
    // Tell the AP threads to quit, wake them wherever they wait, and join them.
    if (this.aps.length > 0) {
      Atomics.store(this.control, Ctl.STATE, ApState.QUIT);
      Atomics.notify(this.control, Ctl.STATE);
      for (const ap of this.aps) {
        this.native.kick(this.firstSlot + ap.index);
        if (Atomics.load(ap.mailbox, Mb.STATE) === MbState.REQUEST) {
          Atomics.store(ap.mailbox, Mb.STATE, MbState.REPLY);
          Atomics.notify(ap.mailbox, Mb.STATE);
        }
      }
      const deadline = Date.now() + 2000;
      for (const ap of this.aps) {
        while (Atomics.load(this.control, Ctl.PARKED + ap.index) !== 2 && Date.now() < deadline) {
          Atomics.wait(this.control, Ctl.PARKED + ap.index, Atomics.load(this.control, Ctl.PARKED + ap.index), 20);
          this.native.kick(this.firstSlot + ap.index);
        }
        void ap.worker.terminate();
      }
    }
    if (this.inSlice) this.destroyDeferred = true;
    else this.release();
  }

  /** Closes descriptors and unmaps memory; runs once no vCPU code is on the stack. */
  private release(): void {
    this.destroyDeferred = false;
    const n = this.native;
    const attempt = (f: () => void): void => {
      try {
        f();
      } catch {
        // keep releasing the rest
      }
    };
    attempt(() => this.fastNotify?.dispose());
    attempt(() => n.watcherDestroy(this.watcher));
    attempt(() => n.unregisterVcpuThread(this.firstSlot));
    attempt(() => n.freeSlots(this.firstSlot, this.vcpus.length));
    attempt(() => n.munmap(this.runBuffer0));
    for (const v of this.vcpus) attempt(() => n.close(v.fd));
    for (const b of this.ramBuffers) attempt(() => n.munmap(b));
    attempt(() => n.close(this.vmFd));
    attempt(() => n.close(this.kvmFd));
  }
}

/** Largest guest RAM region exposed as one ArrayBuffer. */
const MAX_PIECE = 4 * 2 ** 30;

/** The RAM ranges of `ramSize`, split into pieces of at most 4 GiB. */
export function ramPieces(ramSize: number): RamRange[] {
  const out: RamRange[] = [];
  for (const r of ramRanges(ramSize)) {
    for (let off = 0; off < r.size; off += MAX_PIECE) out.push({ guestBase: r.guestBase + off, size: Math.min(MAX_PIECE, r.size - off) });
  }
  return out;
}

function createVmFd(native: KvmNative, kvmFd: number): number {
  for (;;) {
    try {
      return native.ioctlInt(kvmFd, Ioctl.CREATE_VM, 0);
    } catch (err) {
      if (errnoCode(err) !== 'EINTR') throw err;
    }
  }
}

function getSupportedCpuid(native: KvmNative, kvmFd: number): CpuidEntry[] {
  for (let capacity = KVM_MAX_CPUID_ENTRIES; ; capacity *= 2) {
    const buffer = cpuidBuffer(capacity);
    try {
      native.ioctlBytes(kvmFd, Ioctl.GET_SUPPORTED_CPUID, buffer);
      return decodeCpuid(buffer);
    } catch (err) {
      if ((err as { errno?: number }).errno !== E2BIG || capacity >= 4096) throw err;
    }
  }
}
