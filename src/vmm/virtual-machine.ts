/**
 * VirtualMachine: the VMM proper. It turns a validated VmConfig into a running
 * guest — engine selection, guest RAM, the machine's buses and devices, ACPI
 * tables, the kernel — runs it, reboots it on a guest reset (unless
 * --no-reboot), and tears everything down. Both frontends (CLI and library API)
 * drive VMs only through this class.
 */

import { readFileSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import type { EngineVm, Engine, VmExit } from '../engines/engine.js';
import { EngineUnavailableError } from '../engines/engine.js';
import { selectEngine } from '../engines/select.js';
import { Machine } from '../machine/machine.js';
import { detectKernelImage, loadKernel, LoaderError, type KernelKind } from '../loaders/index.js';
import { attachPlatform, type Platform } from './platform.js';
import { ConsoleOutputBuffer } from './console-output.js';
import type { VmConfig } from './config.js';
import { DiskError, DiskImage } from '../devices/virtio/blk.js';
import { TapBackend, TapError } from '../devices/virtio/backends/tap.js';
import { defaultMac } from '../devices/virtio/net.js';
import { VirtioVsock, VsockError } from '../devices/virtio/vsock.js';

/** A problem the user can fix (a file, a flag, the host); the message is one line. */
export class VmSetupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VmSetupError';
  }
}

export interface VirtualMachineOptions extends VmConfig {
  /** Receives the guest's serial output in chunks. */
  onConsoleOutput?: (bytes: Uint8Array) => void;
  /** Receives one-line notices (which engine was chosen and why, boot timing). */
  onNotice?: (line: string) => void;
  /**
   * Text the guest prints on its console once it is up (the default guest's
   * init prints one); when it appears, `onReady` gets the milliseconds since create().
   */
  readyMarker?: string;
  onReady?: (msSinceCreate: number) => void;
}

/** The largest kernel or initrd file typevisor will read. */
const MAX_IMAGE_BYTES = 2 * 1024 * 1024 * 1024 - 1;

/** Reads a user-supplied file, turning every failure into one clear line. */
export function readImage(path: string, what: string): Uint8Array {
  let size: number;
  try {
    const st = statSync(path);
    if (st.isDirectory()) throw new VmSetupError(`${what} "${path}" is a directory, not a file`);
    size = st.size;
  } catch (e) {
    if (e instanceof VmSetupError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (e as Error).message;
    throw new VmSetupError(`cannot read ${what} "${path}": ${why}`);
  }
  if (size === 0) throw new VmSetupError(`${what} "${path}" is empty`);
  if (size > MAX_IMAGE_BYTES) throw new VmSetupError(`${what} "${path}" is too large (${size} bytes)`);
  try {
    return readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new VmSetupError(`cannot read ${what} "${path}": ${code === 'EACCES' ? 'permission denied' : (e as Error).message}`);
  }
}

/** Opens every configured disk, closing the ones already open if one fails. */
async function openDisks(config: VmConfig): Promise<DiskImage[]> {
  const disks: DiskImage[] = [];
  try {
    for (const d of config.disks ?? []) disks.push(await DiskImage.open(d));
  } catch (e) {
    closeDisks(disks);
    if (e instanceof DiskError) throw new VmSetupError(e.message);
    throw e;
  }
  return disks;
}

function closeDisks(disks: readonly DiskImage[]): void {
  for (const d of disks) d.close().catch(() => undefined);
}

/** Host resources that outlive a guest reboot: tap devices and the vsock listener. */
interface HostNetworking {
  readonly nets: { readonly backend: TapBackend; readonly mac: Uint8Array }[];
  vsock: VirtioVsock | undefined;
}

function macBytes(text: string): Uint8Array {
  return Uint8Array.from(text.split(':'), (h) => parseInt(h, 16));
}

/** Attaches every tap and starts the vsock listener, undoing it all if one fails. */
async function openNetworking(config: VmConfig): Promise<HostNetworking> {
  const host: HostNetworking = { nets: [], vsock: undefined };
  try {
    for (const n of config.nets ?? []) {
      host.nets.push({ backend: TapBackend.open(n.tap), mac: n.mac !== undefined ? macBytes(n.mac) : defaultMac(n.tap) });
    }
    if (config.vsock !== undefined) {
      const vsock = new VirtioVsock({ guestCid: config.vsock.cid, udsPath: config.vsock.udsPath });
      await vsock.listen();
      host.vsock = vsock;
    }
  } catch (e) {
    closeNetworking(host);
    if (e instanceof TapError || e instanceof VsockError) throw new VmSetupError(e.message);
    throw e;
  }
  return host;
}

function closeNetworking(host: HostNetworking): void {
  for (const n of host.nets) n.backend.close();
  host.vsock?.close();
}

/** One boot of the guest: an engine VM with its machine and devices. */
interface Incarnation {
  vm: EngineVm;
  machine: Machine;
  platform: Platform;
}

export class VirtualMachine {
  /** Why the engine was chosen (one line). */
  readonly engineReason: string;
  readonly kernelKind: KernelKind;
  private current: Incarnation | undefined;
  private stopRequested = false;
  private destroyed = false;
  private readonly console: ConsoleOutputBuffer;
  private readonly createdAt = performance.now();
  /** How many times the guest has been rebooted. */
  reboots = 0;

  private constructor(
    private readonly config: VirtualMachineOptions,
    private readonly engine: Engine,
    engineReason: string,
    private readonly kernel: Uint8Array,
    private readonly initrd: Uint8Array | undefined,
    kernelKind: KernelKind,
    /** Disk images stay open across reboots; each boot attaches new devices to them. */
    private readonly disks: readonly DiskImage[],
    /** Taps and the vsock device stay open across reboots too. */
    private readonly networking: HostNetworking,
  ) {
    this.engineReason = engineReason;
    this.kernelKind = kernelKind;
    const sink = config.onConsoleOutput ?? (() => undefined);
    const marker = config.readyMarker;
    if (marker === undefined || marker === '') {
      this.console = new ConsoleOutputBuffer(sink);
    } else {
      // Scan each flushed chunk (not each byte), keeping a tail so a marker split across chunks is found.
      let tail = '';
      let seen = false;
      this.console = new ConsoleOutputBuffer((bytes) => {
        sink(bytes);
        if (seen) return;
        tail = (tail + Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1')).slice(-(marker.length + 4096));
        if (tail.includes(marker)) {
          seen = true;
          config.onReady?.(performance.now() - this.createdAt);
        }
      });
    }
  }

  /** Validates the inputs, chooses the engine and builds the first boot. Throws VmSetupError for bad input. */
  static async create(options: VirtualMachineOptions): Promise<VirtualMachine> {
    const kernel = readImage(options.kernelPath, 'kernel');
    let kind: KernelKind;
    try {
      kind = detectKernelImage(kernel, basename(options.kernelPath)).kind;
    } catch (e) {
      if (e instanceof LoaderError) throw new VmSetupError(e.message);
      throw e;
    }
    const initrd = options.initrdPath === undefined ? undefined : readImage(options.initrdPath, 'initrd');
    let selection;
    try {
      selection = await selectEngine(options.engine);
    } catch (e) {
      if (e instanceof EngineUnavailableError) throw new VmSetupError(e.message);
      throw e;
    }
    if (options.engine === 'auto') options.onNotice?.(`engine: ${selection.engine.name} (${selection.reason})`);
    const disks = await openDisks(options);
    let networking: HostNetworking;
    try {
      networking = await openNetworking(options);
    } catch (e) {
      closeDisks(disks);
      throw e;
    }
    const vm = new VirtualMachine(options, selection.engine, selection.reason, kernel, initrd, kind, disks, networking);
    try {
      vm.current = await vm.boot();
    } catch (e) {
      vm.destroy();
      throw e;
    }
    return vm;
  }

  get engineName(): string {
    return this.engine.name;
  }

  /** Milliseconds from VirtualMachine.create() to the guest's first serial byte, once there is one. */
  get msToFirstConsoleByte(): number | undefined {
    const t = this.console.firstByteAt;
    return t === undefined ? undefined : t - this.createdAt;
  }

  /**
   * Builds a fresh engine VM, machine and devices, and loads the kernel. After a
   * guest reset, `carryOver` is the old RAM: its contents survive, as RAM does
   * across a reset on real hardware, and the kernel and tables are loaded anew.
   */
  private async boot(carryOver?: Incarnation): Promise<Incarnation> {
    const cfg = this.config;
    let vm: EngineVm;
    try {
      vm = await this.engine.createVm({ ramSize: cfg.memoryBytes, vcpuCount: cfg.cpus });
    } catch (e) {
      if (e instanceof EngineUnavailableError) throw new VmSetupError(e.message);
      throw e;
    }
    try {
      if (carryOver !== undefined) {
        const old = carryOver.vm.memory.regions;
        vm.memory.regions.forEach((r, i) => r.bytes.set(old[i].bytes));
      }
      const machine = new Machine(vm.memory);
      machine.interrupts.attach(vm.interrupts);
      const platform = attachPlatform(machine, {
        ramSize: cfg.memoryBytes,
        cpus: cfg.cpus,
        debugExit: cfg.debugExit,
        onConsoleByte: this.console.push,
        onSystemEvent: (event) => vm.requestExit(event),
        disks: this.disks,
        rng: cfg.rng === true,
        nets: this.networking.nets,
        vsock: this.networking.vsock,
        fastNotify: vm.fastNotify,
      });
      const loaded = loadKernel(vm.memory, this.kernel, {
        cmdline: cfg.cmdline,
        ...(this.initrd !== undefined ? { initrd: this.initrd } : {}),
        acpiRsdp: platform.acpiRsdp,
        unpackBzImage: this.engine.prefersUnpackedKernel,
        kernelName: basename(cfg.kernelPath),
        ...(cfg.initrdPath !== undefined ? { initrdName: basename(cfg.initrdPath) } : {}),
      });
      vm.vcpus[0].setState(loaded.bootState);
      return { vm, machine, platform };
    } catch (e) {
      vm.destroy();
      if (e instanceof LoaderError) throw new VmSetupError(e.message);
      throw e;
    }
  }

  /** Runs the guest until it powers off, exits, fails or is stopped; reboots it on a reset unless --no-reboot. */
  async run(): Promise<VmExit> {
    if (this.destroyed) throw new Error('VirtualMachine.run() after destroy()');
    for (;;) {
      const inc = this.current ?? (this.current = await this.boot());
      const exit = this.stopRequested ? ({ kind: 'stopped' } as const) : await inc.vm.run(inc.machine);
      this.console.flush();
      if (exit.kind !== 'reset' || this.config.noReboot || this.stopRequested) return exit;
      const pendingInput = inc.platform.uart.takePendingInput();
      this.current = await this.boot(inc);
      this.current.platform.uart.receive(pendingInput);
      this.release(inc);
      this.reboots++;
    }
  }

  /** Feeds host input to the guest's serial port. */
  sendConsoleInput(bytes: Uint8Array): void {
    this.current?.platform.uart.receive(bytes);
  }

  /** Ends run() with {kind: 'stopped'}. */
  stop(): void {
    this.stopRequested = true;
    this.current?.vm.requestExit({ kind: 'stopped' });
  }

  async pause(): Promise<void> {
    await this.current?.vm.pause();
  }

  resume(): void {
    this.current?.vm.resume();
  }

  private release(inc: Incarnation): void {
    inc.platform.dispose();
    inc.machine.interrupts.detach();
    inc.vm.destroy();
  }

  /** Releases the engine VM, timers and memory. Idempotent. */
  destroy(): void {
    this.destroyed = true;
    this.console.flush();
    const inc = this.current;
    this.current = undefined;
    if (inc !== undefined) this.release(inc);
    closeDisks(this.disks);
    closeNetworking(this.networking);
  }
}
