/**
 * The `soft` engine: guest RAM in a WebAssembly.Memory, vCPUs interpreted by
 * the TypeScript CPU core, interrupt and timer hardware from a SoftPlatform.
 *
 * One JS thread runs every vCPU round-robin in slices of a few thousand
 * instructions. run() works in bursts of a few milliseconds and yields with
 * setImmediate so the host's event loop stays responsive; when every vCPU is
 * halted it sleeps until the platform's next timer deadline, or until a device
 * raises an interrupt line (which wakes it at once).
 */

import type { AccessSize } from '../../machine/bus.js';
import type { InterruptController } from '../../machine/interrupts.js';
import { IOAPIC_BASE } from '../../machine/layout.js';
import type { GuestMemory } from '../../machine/memory.js';
import type { CpuState } from '../cpu-state.js';
import {
  EngineUnavailableError, type Engine, type EngineName, type EngineVcpu, type EngineVm, type VmExit, type VmOps, type VmOptions,
} from '../engine.js';
import { CodeCache } from './code-cache.js';
import { Cpu, type CpuHost, RUN_HALTED, TripleFault } from './cpu.js';
import { GuestRam } from './guest-ram.js';
import type { PlatformPortBlock, SoftClock, SoftPlatform } from './platform-contract.js';
import { RipProfile } from './rip-profile.js';
import { SoftTrace, traceDepthFromEnv, traceVectorsFromEnv } from './trace.js';

/** Builds the interrupt/timer hardware of one VM (createSoftPlatform once merged). */
export type SoftPlatformFactory = (options: { vcpuCount: number; memory: GuestMemory; clock: SoftClock }) => SoftPlatform;

/** Instructions per vCPU per round-robin turn. */
const VCPU_SLICE = 8192;
/** Milliseconds of guest execution between yields to the event loop. */
const BURST_MS = 4;
/** Longest sleep while every vCPU is halted and no timer is due. */
const MAX_IDLE_MS = 50;
const IOAPIC_PAGE = 0x1000;

/** Guest time from the host's monotonic clock; the TSC ticks at 1 GHz. */
export class MonotonicClock implements SoftClock {
  readonly tscHz = 1_000_000_000;
  private readonly origin = performance.now();
  nowNs(): number {
    return (performance.now() - this.origin) * 1e6;
  }
}

/** Debug options of the soft engine. */
export interface SoftEngineOptions {
  /**
   * Instructions kept in the trace ring (0 = off). Defaults to the
   * TYPEVISOR_SOFT_TRACE environment variable (see trace.ts and README).
   */
  traceDepth?: number;
  /** Bit mask of exception vectors that dump the trace (default: TYPEVISOR_SOFT_TRACE_VECTORS, else #UD). */
  traceVectors?: number;
  /** Where trace dumps and the run summary go (default: stderr). */
  traceOutput?: (text: string) => void;
}

export class SoftEngine implements Engine {
  readonly prefersUnpackedKernel = true;
  readonly name: EngineName = 'soft';

  constructor(
    private readonly platformFactory?: SoftPlatformFactory,
    private readonly options: SoftEngineOptions = {},
  ) {}

  async createVm(options: VmOptions): Promise<EngineVm> {
    if (this.platformFactory === undefined) {
      throw new EngineUnavailableError('soft', 'no interrupt/timer platform is wired in (pass a SoftPlatformFactory)');
    }
    return new SoftVm(options, this.platformFactory, this.options);
  }
}

class SoftVcpu implements EngineVcpu {
  constructor(
    private readonly vm: SoftVm,
    readonly cpu: Cpu,
  ) {}
  get index(): number {
    return this.cpu.index;
  }
  getState(): CpuState {
    this.vm.checkNotRunning();
    return this.cpu.getState();
  }
  setState(state: CpuState): void {
    this.vm.checkNotRunning();
    this.cpu.setState(state);
  }
}

export class SoftVm implements EngineVm {
  readonly engine: EngineName = 'soft';
  readonly memory: GuestMemory;
  readonly interrupts: InterruptController;
  readonly vcpus: readonly SoftVcpu[];
  readonly ram: GuestRam;
  readonly clock = new MonotonicClock();
  readonly platform: SoftPlatform;
  private readonly cpus: Cpu[];
  private readonly portBlocks: (PlatformPortBlock | undefined)[] = new Array<PlatformPortBlock | undefined>(0x10000).fill(undefined);
  private exitReason: VmExit | null = null;
  private resolveRun: ((exit: VmExit) => void) | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private immediate: ReturnType<typeof setImmediate> | null = null;
  private paused = false;
  private destroyed = false;
  private inTick = false;
  private readonly traceOutput: ((text: string) => void) | null = null;
  private dumpOnSignal: (() => void) | null = null;
  private readonly startMs = performance.now();
  private readonly startCpuUs = process.cpuUsage().user;
  /** Guest RIP sampler (TYPEVISOR_SOFT_PROFILE), null when off. */
  private readonly profile: RipProfile | null = RipProfile.fromEnv(process.env.TYPEVISOR_SOFT_PROFILE);

  constructor(options: VmOptions, platformFactory: SoftPlatformFactory, debug: SoftEngineOptions = {}) {
    if (!Number.isInteger(options.vcpuCount) || options.vcpuCount < 1 || options.vcpuCount > 255) {
      throw new RangeError(`soft engine: vcpuCount ${options.vcpuCount} must be 1..255`);
    }
    this.ram = new GuestRam(options.ramSize, options.vcpuCount);
    this.memory = this.ram.guestMemory;
    this.platform = platformFactory({ vcpuCount: options.vcpuCount, memory: this.memory, clock: this.clock });
    const code = new CodeCache(options.ramSize);
    this.cpus = [];
    for (let i = 0; i < options.vcpuCount; i++) {
      const cpu = new Cpu(i, this.ram, code, this.platform.lapics[i] ?? null, this.clock);
      if (i > 0) cpu.waitForSipi = true;
      this.cpus.push(cpu);
    }
    this.vcpus = this.cpus.map((c) => new SoftVcpu(this, c));
    const depth = debug.traceDepth ?? traceDepthFromEnv(process.env.TYPEVISOR_SOFT_TRACE);
    if (depth > 0) {
      const out = debug.traceOutput ?? ((t: string): void => { process.stderr.write(t); });
      this.traceOutput = out;
      const vectors = debug.traceVectors ?? traceVectorsFromEnv(process.env.TYPEVISOR_SOFT_TRACE_VECTORS);
      for (const cpu of this.cpus) {
        cpu.trace = new SoftTrace(depth, out);
        cpu.trace.dumpVectors = vectors;
      }
      // SIGUSR2 dumps every vCPU's trace: for a guest that hangs instead of faulting.
      this.dumpOnSignal = (): void => { for (const cpu of this.cpus) cpu.trace?.dump(cpu, 'SIGUSR2'); };
      process.on('SIGUSR2', this.dumpOnSignal);
    }
    for (const block of this.platform.ports) {
      for (let p = block.base; p < block.base + block.length && p < 0x10000; p++) this.portBlocks[p] = block;
    }
    const platformIrqs = this.platform.interrupts;
    this.interrupts = {
      setIrq: (gsi: number, level: boolean): void => {
        platformIrqs.setIrq(gsi, level);
        this.wake();
      },
      signalMsi: (address: number, data: number): void => {
        platformIrqs.signalMsi(address, data);
        this.wake();
      },
    };
  }

  /** Throws if called while a vCPU executes guest code (only possible from device callbacks). */
  checkNotRunning(): void {
    if (this.inTick) throw new Error('soft engine: vCPU state accessed while the vCPU runs');
  }

  run(ops: VmOps): Promise<VmExit> {
    if (this.destroyed) return Promise.reject(new Error('soft engine: VM destroyed'));
    if (this.resolveRun !== null) return Promise.reject(new Error('soft engine: VM already running'));
    this.exitReason = null;
    const host = this.makeHost(ops);
    for (const cpu of this.cpus) {
      cpu.host = host;
      cpu.stopRequested = false;
    }
    return new Promise<VmExit>((resolve) => {
      this.resolveRun = resolve;
      this.schedule(0);
    });
  }

  private makeHost(ops: VmOps): CpuHost {
    const blocks = this.portBlocks;
    const ioapic = this.platform.ioapic;
    return {
      pioRead(port: number, size: AccessSize): number {
        const b = blocks[port];
        return b !== undefined ? b.device.read(port - b.base, size) : ops.pioRead(port, size);
      },
      pioWrite(port: number, size: AccessSize, value: number): void {
        const b = blocks[port];
        if (b !== undefined) b.device.write(port - b.base, size, value);
        else ops.pioWrite(port, size, value);
      },
      mmioRead(address: number, size: AccessSize): number {
        const d = address - IOAPIC_BASE;
        return d >= 0 && d < IOAPIC_PAGE ? ioapic.read(d, size) : ops.mmioRead(address, size);
      },
      mmioWrite(address: number, size: AccessSize, value: number): void {
        const d = address - IOAPIC_BASE;
        if (d >= 0 && d < IOAPIC_PAGE) ioapic.write(d, size, value);
        else ops.mmioWrite(address, size, value);
      },
    };
  }

  requestExit(exit: VmExit): void {
    if (this.exitReason === null) this.exitReason = exit;
    for (const cpu of this.cpus) {
      cpu.stopRequested = true;
      cpu.eventCheck = true;
    }
    if (!this.inTick) this.schedule(0);
  }

  async pause(): Promise<void> {
    // Single-threaded: once this runs, no vCPU is inside guest code.
    this.paused = true;
    this.clearTimers();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    if (this.resolveRun !== null) this.schedule(0);
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.clearTimers();
    if (this.resolveRun !== null) this.finish({ kind: 'stopped' });
  }

  /** A device raised a line: run now if idle. */
  private wake(): void {
    if (this.timer !== null && !this.paused) {
      clearTimeout(this.timer);
      this.timer = null;
      this.schedule(0);
    }
  }

  private clearTimers(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.immediate !== null) clearImmediate(this.immediate);
    this.timer = null;
    this.immediate = null;
  }

  private schedule(delayMs: number): void {
    if (this.destroyed || this.paused || this.resolveRun === null) return;
    if (this.immediate !== null || this.timer !== null) return;
    if (delayMs <= 0) {
      this.immediate = setImmediate(() => {
        this.immediate = null;
        this.tick();
      });
    } else {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.tick();
      }, delayMs);
    }
  }

  private finish(exit: VmExit): void {
    if (this.traceOutput !== null) {
      const seconds = (performance.now() - this.startMs) / 1000;
      const total = this.cpus.reduce((n, c) => n + c.instructions, 0);
      const cpuSeconds = (process.cpuUsage().user - this.startCpuUs) / 1e6;
      this.traceOutput(`soft trace: ${exit.kind}: ${total} instructions in ${seconds.toFixed(2)} s wall, ${cpuSeconds.toFixed(2)} s CPU (${(total / cpuSeconds / 1e6).toFixed(1)} MIPS per CPU-second)\n`);
    }
    this.profile?.write(this.cpus.reduce((n, c) => n + c.instructions, 0), (performance.now() - this.startMs) / 1000);
    if (this.dumpOnSignal !== null) process.off('SIGUSR2', this.dumpOnSignal);
    this.dumpOnSignal = null;
    const resolve = this.resolveRun;
    this.resolveRun = null;
    this.clearTimers();
    for (const cpu of this.cpus) cpu.stopRequested = false;
    resolve?.(exit);
  }

  /** One burst: round-robin vCPU slices for a few milliseconds, then yield or sleep. */
  private tick(): void {
    if (this.paused || this.destroyed || this.resolveRun === null) return;
    const burstEnd = performance.now() + BURST_MS;
    let anyRunnable = true;
    let running = 0;
    this.inTick = true;
    try {
      while (this.exitReason === null) {
        this.platform.poll(this.clock.nowNs());
        anyRunnable = false;
        const profile = this.profile;
        for (running = 0; running < this.cpus.length; running++) {
          const cpu = this.cpus[running];
          if (cpu.run(VCPU_SLICE) !== RUN_HALTED) {
            anyRunnable = true;
            if (profile !== null) profile.sample(cpu.long64 ? cpu.rip : (cpu.csBase + cpu.rip) >>> 0);
          }
          if (this.exitReason !== null) break;
        }
        if (!anyRunnable || performance.now() >= burstEnd) break;
      }
    } catch (e) {
      if (e instanceof TripleFault) {
        this.requestExit({ kind: 'triple-fault', vcpu: running });
      } else {
        const message = e instanceof Error ? e.message : String(e);
        this.requestExit({ kind: 'internal-error', message });
      }
    } finally {
      this.inTick = false;
    }
    if (this.exitReason !== null) {
      this.finish(this.exitReason);
      return;
    }
    if (anyRunnable) {
      this.schedule(0);
      return;
    }
    const deadline = this.platform.nextDeadlineNs();
    const waitMs = Number.isFinite(deadline) ? Math.max(0, (deadline - this.clock.nowNs()) / 1e6) : MAX_IDLE_MS;
    this.schedule(Math.min(MAX_IDLE_MS, Math.max(waitMs, 0.001)));
  }

  /** The vCPU cores (tests and the debugger). */
  cpuCores(): readonly Cpu[] {
    return this.cpus;
  }
}
