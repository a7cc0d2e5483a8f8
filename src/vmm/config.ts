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
