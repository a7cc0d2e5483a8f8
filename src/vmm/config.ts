/**
 * VM configuration: the validated, engine-independent description of a VM that
 * the CLI and the library API both produce. Every check that can reject user
 * input lives here, so both frontends give the same one-line errors.
 */

import { totalmem } from 'node:os';
import { MAX_RAM_SIZE, MIN_RAM_SIZE, MiB } from '../machine/layout.js';

export type EngineChoice = 'kvm' | 'soft' | 'auto';
export const ENGINE_CHOICES: readonly EngineChoice[] = ['kvm', 'soft', 'auto'];

/** The most vCPUs a VM may have (APIC IDs must fit the xAPIC's 8 bits, 0xff is broadcast). */
export const MAX_VCPUS = 254;

export interface VmConfig {
  /** Path of the kernel image (bzImage, vmlinux ELF or multiboot ELF/a.out-kludge). */
  kernelPath: string;
  initrdPath?: string | undefined;
  cmdline: string;
  /** Guest RAM in bytes. */
  memoryBytes: number;
  cpus: number;
  engine: EngineChoice;
  /** Attach isa-debug-exit at port 0xf4. */
  debugExit: boolean;
  /** On a guest reset, end the VM instead of rebooting it. */
  noReboot: boolean;
  /** virtio-blk disks, in PCI slot order. */
  disks?: readonly DiskConfig[] | undefined;
  /** Attach a virtio-rng entropy device. */
  rng?: boolean | undefined;
  /** virtio-net devices backed by host tap devices, in PCI slot order (after the disks). */
  nets?: readonly NetConfig[] | undefined;
  /** A virtio-vsock device with Firecracker's Unix-socket host side. */
  vsock?: VsockConfig | undefined;
}

/** One `--net tap=NAME[,mac=XX:XX:XX:XX:XX:XX]`. */
export interface NetConfig {
  readonly tap: string;
  /** "xx:xx:xx:xx:xx:xx"; absent: derived from the tap name (locally administered). */
  readonly mac?: string | undefined;
}

/** `--vsock cid=N,uds=PATH`. */
export interface VsockConfig {
  readonly cid: number;
  readonly udsPath: string;
}

/** One `--disk PATH[,ro][,id=NAME]`. */
export interface DiskConfig {
  readonly path: string;
  readonly readOnly: boolean;
  /** The serial the guest reads with GET_ID (/sys/block/vdX/serial), at most 20 characters. */
  readonly id?: string | undefined;
}

/** A problem with user-supplied configuration; the message is one line. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

const SIZE_UNITS: Record<string, number> = { '': MiB, b: 1, k: 1024, m: MiB, g: 1024 * MiB, t: 1024 * 1024 * MiB };

/**
 * Parses a memory size such as "256M", "1G", "1536" (MiB, as QEMU reads a bare number) or "512K".
 * Throws ConfigError for anything malformed.
 */
export function parseMemorySize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)(?:i?b)?\s*$/i.exec(text);
  if (m === null) throw new ConfigError(`invalid memory size "${text}": use a number with an optional K, M or G suffix (e.g. 256M)`);
  const bytes = Math.floor(Number(m[1]) * SIZE_UNITS[m[2].toLowerCase()]);
  if (!Number.isSafeInteger(bytes)) throw new ConfigError(`invalid memory size "${text}"`);
  return bytes;
}

/** Checks a RAM size against typevisor's limits and the host's memory. */
export function validateMemorySize(bytes: number, hostBytes = totalmem()): void {
  const show = (b: number): string => (b % (1024 * MiB) === 0 ? `${b / (1024 * MiB)}G` : `${Math.round(b / MiB)}M`);
  if (bytes < MIN_RAM_SIZE) throw new ConfigError(`memory size ${show(bytes)} is too small: at least ${show(MIN_RAM_SIZE)} is needed`);
  if (bytes % 4096 !== 0) throw new ConfigError(`memory size ${bytes} bytes is not a multiple of 4 KiB`);
  if (bytes > MAX_RAM_SIZE) throw new ConfigError(`memory size ${show(bytes)} is too large: typevisor supports at most ${show(MAX_RAM_SIZE)}`);
  if (bytes > hostBytes) throw new ConfigError(`memory size ${show(bytes)} is more than this host has (${show(hostBytes)})`);
}

/** Parses and checks a vCPU count. */
export function parseCpuCount(text: string): number {
  if (!/^\d+$/.test(text.trim())) throw new ConfigError(`invalid CPU count "${text}": use a whole number from 1 to ${MAX_VCPUS}`);
  const n = Number(text);
  if (n < 1 || n > MAX_VCPUS) throw new ConfigError(`CPU count ${n} is out of range: use 1 to ${MAX_VCPUS}`);
  return n;
}

export function parseEngine(text: string): EngineChoice {
  if (!(ENGINE_CHOICES as readonly string[]).includes(text)) throw new ConfigError(`unknown engine "${text}": use kvm, soft or auto`);
  return text as EngineChoice;
}

/** The most disks a VM may have (PCI slots 1-31, one kept for virtio-rng). */
export const MAX_DISKS = 30;

/**
 * Parses `PATH[,ro][,id=NAME]`. The path may not contain a comma. Throws
 * ConfigError such as "--disk: unknown option 'rw'".
 */
export function parseDiskSpec(text: string): DiskConfig {
  const [path, ...options] = text.split(',');
  if (path === undefined || path.trim() === '') throw new ConfigError(`--disk: missing file path in "${text}" (use --disk PATH[,ro][,id=NAME])`);
  let readOnly = false;
  let id: string | undefined;
  for (const option of options) {
    if (option === 'ro') readOnly = true;
    else if (option.startsWith('id=')) {
      id = option.slice(3);
      if (!/^[\x20-\x7e]{1,20}$/.test(id)) throw new ConfigError(`--disk: id '${id}' must be 1 to 20 printable ASCII characters`);
    } else throw new ConfigError(`--disk: unknown option '${option}' (use ro or id=NAME)`);
  }
  return { path, readOnly, ...(id !== undefined ? { id } : {}) };
}

/** Checks a list of disks: count and distinct ids. */
export function validateDisks(disks: readonly DiskConfig[]): void {
  if (disks.length > MAX_DISKS) throw new ConfigError(`too many disks (${disks.length}): at most ${MAX_DISKS}`);
  const ids = new Set<string>();
  for (const d of disks) {
    if (d.id === undefined) continue;
    if (ids.has(d.id)) throw new ConfigError(`--disk: id '${d.id}' is used twice`);
    ids.add(d.id);
  }
}

/** Parses `tap=NAME[,mac=XX:XX:XX:XX:XX:XX]`. Throws ConfigError. */
export function parseNetSpec(text: string): NetConfig {
  let tap: string | undefined;
  let mac: string | undefined;
  for (const option of text.split(',')) {
    const eq = option.indexOf('=');
    const key = eq < 0 ? option : option.slice(0, eq);
    const value = eq < 0 ? '' : option.slice(eq + 1);
    if (key === 'tap') {
      if (!/^[A-Za-z0-9_.:-]{1,15}$/.test(value)) throw new ConfigError(`--net: tap name '${value}' must be 1 to 15 letters, digits or _.:-`);
      tap = value;
    } else if (key === 'mac') {
      if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(value)) throw new ConfigError(`--net: mac '${value}' is not XX:XX:XX:XX:XX:XX`);
      if ((parseInt(value.slice(0, 2), 16) & 1) !== 0) throw new ConfigError(`--net: mac '${value}' is a multicast address`);
      mac = value.toLowerCase();
    } else throw new ConfigError(`--net: unknown option '${option}' (use tap=NAME[,mac=XX:XX:XX:XX:XX:XX])`);
  }
  if (tap === undefined) throw new ConfigError(`--net: missing tap=NAME in "${text}"`);
  return { tap, ...(mac !== undefined ? { mac } : {}) };
}

/** Parses `cid=N,uds=PATH` (the path may not contain a comma). Throws ConfigError. */
export function parseVsockSpec(text: string): VsockConfig {
  let cid: number | undefined;
  let udsPath: string | undefined;
  for (const option of text.split(',')) {
    if (option.startsWith('cid=')) {
      const v = option.slice(4);
      if (!/^\d{1,10}$/.test(v) || Number(v) < 3 || Number(v) > 0xfffffffe) throw new ConfigError(`--vsock: cid '${v}' must be a number from 3 to 4294967294`);
      cid = Number(v);
    } else if (option.startsWith('uds=')) {
      udsPath = option.slice(4);
      if (udsPath === '') throw new ConfigError('--vsock: uds= needs a path');
      // sun_path holds 108 bytes; guest-initiated connections add "_<port>" (up to 11 more).
      if (Buffer.byteLength(udsPath) > 107 - 11) throw new ConfigError(`--vsock: uds path is too long for a Unix socket (at most ${107 - 11} bytes)`);
    } else throw new ConfigError(`--vsock: unknown option '${option}' (use cid=N,uds=PATH)`);
  }
  if (cid === undefined || udsPath === undefined) throw new ConfigError(`--vsock: "${text}" needs both cid=N and uds=PATH`);
  return { cid, udsPath };
}

/** PCI slots 1-31 hold every virtio device. */
export const MAX_PCI_DEVICES = 31;

/** Checks the network devices and the total PCI device count. */
export function validateNetworking(nets: readonly NetConfig[], deviceCount: number): void {
  const taps = new Set<string>();
  const macs = new Set<string>();
  for (const n of nets) {
    if (taps.has(n.tap)) throw new ConfigError(`--net: tap '${n.tap}' is used twice`);
    taps.add(n.tap);
    if (n.mac !== undefined) {
      if (macs.has(n.mac)) throw new ConfigError(`--net: mac ${n.mac} is used twice`);
      macs.add(n.mac);
    }
  }
  if (deviceCount > MAX_PCI_DEVICES) throw new ConfigError(`too many PCI devices (${deviceCount}): disks, nets, rng and vsock share ${MAX_PCI_DEVICES} slots`);
}
