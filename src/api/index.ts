/**
 * typevisor's library API: create, run, drive and tear down virtual machines
 * from TypeScript. The CLI is built on exactly this surface.
 *
 * ```ts
 * import { createVirtualMachine } from 'typevisor';
 * const vm = await createVirtualMachine({
 *   kernelPath: 'bzImage', cmdline: 'console=ttyS0', memory: '256M',
 *   onConsoleOutput: (bytes) => process.stdout.write(bytes),
 * });
 * const exit = await vm.run();
 * vm.destroy();
 * ```
 */

import {
  ConfigError, parseCpuCount, parseDiskSpec, parseEngine, parseMemorySize, parseNetSpec, parseVsockSpec, validateDisks, validateMemorySize,
  validateNetworking, type DiskConfig, type EngineChoice, type NetConfig, type VsockConfig,
} from '../vmm/config.js';
import { VirtualMachine } from '../vmm/virtual-machine.js';

export { VirtualMachine, VmSetupError } from '../vmm/virtual-machine.js';
export { ConfigError, type VmConfig, type EngineChoice, type DiskConfig, type NetConfig, type VsockConfig } from '../vmm/config.js';
export { exitStatusFor, describeExit, ExitStatus } from '../vmm/exit-status.js';
export type { VmExit, EngineName } from '../engines/engine.js';

export interface CreateVirtualMachineOptions {
  kernelPath: string;
  initrdPath?: string;
  cmdline?: string;
  /** Guest RAM: bytes as a number, or a size string such as "256M" (default "256M"). */
  memory?: number | string;
  cpus?: number;
  engine?: EngineChoice;
  debugExit?: boolean;
  noReboot?: boolean;
  /** virtio-blk disks: specs such as "disk.img,ro,id=root" or objects. */
  disks?: readonly (string | DiskConfig)[];
  /** Attach a virtio-rng entropy device. */
  rng?: boolean;
  /** virtio-net devices: specs such as "tap=tap0,mac=02:00:00:00:00:01" or objects. */
  nets?: readonly (string | NetConfig)[];
  /** A virtio-vsock device: "cid=3,uds=/run/vm.sock" or an object. */
  vsock?: string | VsockConfig;
  /** Receives the guest's serial output. */
  onConsoleOutput?: (bytes: Uint8Array) => void;
  /** Receives one-line notices such as the engine choice. */
  onNotice?: (line: string) => void;
}

/**
 * Validates `options` (throwing ConfigError or VmSetupError with one clear line)
 * and builds a VM ready to `run()`.
 */
export async function createVirtualMachine(options: CreateVirtualMachineOptions): Promise<VirtualMachine> {
  const memoryBytes = typeof options.memory === 'number' ? options.memory : parseMemorySize(options.memory ?? '256M');
  validateMemorySize(memoryBytes);
  const cpus = parseCpuCount(String(options.cpus ?? 1));
  const engine = parseEngine(options.engine ?? 'auto');
  if (typeof options.kernelPath !== 'string' || options.kernelPath === '') throw new ConfigError('kernelPath is required');
  const disks = (options.disks ?? []).map((d) => (typeof d === 'string' ? parseDiskSpec(d) : d));
  validateDisks(disks);
  const nets = (options.nets ?? []).map((n) => (typeof n === 'string' ? parseNetSpec(n) : n));
  const vsock = typeof options.vsock === 'string' ? parseVsockSpec(options.vsock) : options.vsock;
  validateNetworking(nets, disks.length + nets.length + (options.rng === true ? 1 : 0) + (vsock !== undefined ? 1 : 0));
  return VirtualMachine.create({
    kernelPath: options.kernelPath,
    initrdPath: options.initrdPath,
    cmdline: options.cmdline ?? '',
    memoryBytes,
    cpus,
    engine,
    debugExit: options.debugExit ?? false,
    noReboot: options.noReboot ?? false,
    disks,
    rng: options.rng ?? false,
    nets,
    vsock,
    ...(options.onConsoleOutput ? { onConsoleOutput: options.onConsoleOutput } : {}),
    ...(options.onNotice ? { onNotice: options.onNotice } : {}),
  });
}
