/**
 * Benchmark: sequential virtio-blk throughput inside the Debian guest (stock
 * kernel, default busybox initramfs), under typevisor's soft engine and under
 * `qemu-system-x86_64 -M pc -accel tcg` with virtio-blk-pci on a same-sized
 * raw scratch image (sparse, SCRATCH_BYTES for both). One boot per VMM; the
 * guest runs `dd` with O_DIRECT (write from /dev/zero, then read to
 * /dev/null) several times, and the medians are reported. Each VMM gets a
 * transfer size that takes it a second or more (QEMU moves far more per
 * second than the interpreter), so the 10 ms timer resolution stays small. Debian's busybox-static prints no dd rate line
 * (FEATURE_DD_THIRD_STATUS_LINE is off), so each dd is timed inside the guest
 * with busybox `time` (10 ms resolution) and the rate is bytes / that time.
 */

import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QEMU_BINARY } from '../tests/guests/qemu.js';
import { LinuxSession } from '../tests/integration/linux-session.js';
import { READY_BANNER } from '../src/assets/initramfs.js';
import { median } from './stats.js';

export interface DdResult {
  /** Sequential write and read rates, MiB/s, one per repetition, timed by the guest (busybox time). */
  writeMiBs: number[];
  readMiBs: number[];
  /** The same, timed on the host between the BEGIN and END markers' arrival on the console (a check on the guest's clock). */
  hostWriteMiBs: number[];
  hostReadMiBs: number[];
  /** Set when the run did not complete. */
  failure?: string;
}

export interface DdOptions {
  /** MiB per dd run (bs=1M). */
  mib: number;
  repetitions: number;
  timeoutMs: number;
}

/** Parses busybox `time`'s "real\t0m 1.23s" into seconds. */
export function parseBusyboxReal(text: string): number | undefined {
  const m = /real\s+(?:(\d+)h\s*)?(\d+)m\s*([\d.]+)s/.exec(text);
  if (m === null) return undefined;
  return Number(m[1] ?? 0) * 3600 + Number(m[2]) * 60 + Number(m[3]);
}

/** The guest script: for each repetition, one timed write and one timed read, each result between markers. */
export function ddScript(device: string, mib: number, repetitions: number): string {
  const lines: string[] = [];
  for (let i = 0; i < repetitions; i++) {
    lines.push(`echo DD-W-${i}-BEGIN; time dd if=/dev/zero of=${device} bs=1M count=${mib} oflag=direct; echo DD-W-${i}-END`);
    lines.push(`echo DD-R-${i}-BEGIN; time dd if=${device} of=/dev/null bs=1M count=${mib} iflag=direct; echo DD-R-${i}-END`);
  }
  lines.push('echo DD-ALL-DONE');
  return lines.join('\n');
}

/** Extracts the per-repetition rates from the console output of ddScript. */
export function parseDdOutput(output: string, mib: number, repetitions: number): { writeMiBs: number[]; readMiBs: number[] } {
  const rate = (kind: 'W' | 'R', i: number): number => mib / Math.max(sectionSeconds(output, mib, kind, i), 0.01);
  const writeMiBs: number[] = [];
  const readMiBs: number[] = [];
  for (let i = 0; i < repetitions; i++) {
    writeMiBs.push(rate('W', i));
    readMiBs.push(rate('R', i));
  }
  return { writeMiBs, readMiBs };
}

/** Where one dd's console section starts and ends (the BEGIN and END marker lines' offsets in `output`). */
export function sectionBounds(output: string, kind: 'W' | 'R', i: number): { begin: number; end: number } {
  const begin = output.lastIndexOf(`\nDD-${kind}-${i}-BEGIN`);
  const end = output.indexOf(`DD-${kind}-${i}-END`, begin + 1);
  if (begin < 0 || end < 0) throw new Error(`no DD-${kind}-${i} section in the console output`);
  return { begin, end };
}

/** The guest-measured seconds of one dd; throws if it did not copy everything. */
function sectionSeconds(output: string, mib: number, kind: 'W' | 'R', i: number): number {
  const { begin, end } = sectionBounds(output, kind, i);
  const section = output.slice(begin, end);
  if (!new RegExp(`${mib}\\+0 records out`).test(section)) throw new Error(`dd ${kind === 'W' ? 'write' : 'read'} ${i} did not complete: ${section.trim().slice(0, 200)}`);
  const seconds = parseBusyboxReal(section);
  if (seconds === undefined) throw new Error(`no busybox time output for DD-${kind}-${i}`);
  return seconds;
}

async function runDd(session: LinuxSession, options: DdOptions): Promise<DdResult> {
  try {
    if (options.mib * 1024 * 1024 > SCRATCH_BYTES) throw new Error(`${options.mib} MiB does not fit the scratch image`);
    await session.waitFor(new RegExp(READY_BANNER), options.timeoutMs);
    // Console echo of the typed script would contain the markers too: the markers are matched at line starts after the echo.
    const from = session.type(ddScript('/dev/vda', options.mib, options.repetitions));
    await session.waitFor(/\nDD-ALL-DONE/, options.timeoutMs, from);
    const output = session.output.slice(from);
    const result = parseDdOutput(output, options.mib, options.repetitions);
    const hostRate = (kind: 'W' | 'R', i: number): number => {
      const { begin, end } = sectionBounds(output, kind, i);
      const seconds = (session.arrivalTime(from + end)! - session.arrivalTime(from + begin + 1)!) / 1000;
      return options.mib / Math.max(seconds, 0.001);
    };
    const hostWriteMiBs = Array.from({ length: options.repetitions }, (_, i) => hostRate('W', i));
    const hostReadMiBs = Array.from({ length: options.repetitions }, (_, i) => hostRate('R', i));
    session.type('poweroff -f');
    await session.end(30_000);
    return { ...result, hostWriteMiBs, hostReadMiBs };
  } catch (e) {
    return { writeMiBs: [], readMiBs: [], hostWriteMiBs: [], hostReadMiBs: [], failure: (e as Error).message.split('\n')[0] };
  } finally {
    session.kill();
  }
}

/** The scratch image both VMMs get: 1 GiB, sparse. */
export const SCRATCH_BYTES = 1024 * 1024 * 1024;

function withScratch<T>(bytes: number, fn: (image: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'tv-bench-dd-'));
  const image = join(dir, 'scratch.img');
  writeFileSync(image, '');
  truncateSync(image, bytes);
  return fn(image).finally(() => rmSync(dir, { recursive: true, force: true }));
}

export function ddUnderSoft(kernel: string, initrd: string, options: DdOptions): Promise<DdResult> {
  return withScratch(SCRATCH_BYTES, (image) =>
    runDd(LinuxSession.typevisor(['--engine', 'soft', '--memory', '256M', '--kernel', kernel, '--initrd', initrd, '--append', 'console=ttyS0', '--disk', image]), options));
}

export function ddUnderQemuTcg(kernel: string, initrd: string, options: DdOptions): Promise<DdResult> {
  return withScratch(SCRATCH_BYTES, (image) =>
    runDd(LinuxSession.command([
      QEMU_BINARY, '-M', 'pc', '-accel', 'tcg', '-m', '256', '-nodefaults', '-no-user-config', '-display', 'none',
      '-serial', 'stdio', '-no-reboot', '-kernel', kernel, '-initrd', initrd, '-append', 'console=ttyS0',
      '-drive', `file=${image},format=raw,if=none,id=scratch`, '-device', 'virtio-blk-pci,drive=scratch',
    ]), options));
}

export function summarise(result: DdResult): { write: number; read: number; hostWrite: number; hostRead: number } {
  return { write: median(result.writeMiBs), read: median(result.readMiBs), hostWrite: median(result.hostWriteMiBs), hostRead: median(result.hostReadMiBs) };
}
