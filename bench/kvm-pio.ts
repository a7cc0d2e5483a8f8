/**
 * Benchmark: port-I/O exits per second under the kvm engine, compared with
 * QEMU (`qemu-system-x86_64 -accel kvm`) running the same guest loop.
 *
 * The guest is a few bytes of real-mode code: `mov ecx, N; l: out 0x10, al;
 * dec ecx; jnz l`, then a final write that ends the run. Under typevisor every
 * `out` is a KVM_EXIT_IO dispatched to VmOps.pioWrite on the machine thread.
 *
 * QEMU method: the same loop as a 64 KiB `-bios` image (entered from the reset
 * vector) that ends by writing isa-debug-exit. QEMU is timed as a whole process
 * for N outs and for 0 outs; the per-exit cost is the difference divided by N.
 * Medians of several runs are reported.
 */

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { realModeSegment, resetCpuState } from '../src/engines/cpu-state.js';
import { KvmEngine } from '../src/engines/kvm/kvm-engine.js';
import { qemuAvailable } from '../tests/guests/qemu.js';
import { median } from './stats.js';

export interface PioExitMeasurement {
  exits: number;
  seconds: number;
  perExitUs: number;
}

const DEFAULT_EXITS = 100_000;
const LOOP_PORT = 0x10;
const DONE_PORT = 0x11;

/** Real-mode code: `exits` writes to LOOP_PORT, then `tail`. */
function outLoop(exits: number, tail: number[]): number[] {
  const loop = exits > 0
    ? [
      0x66, 0xb9, exits & 0xff, (exits >>> 8) & 0xff, (exits >>> 16) & 0xff, (exits >>> 24) & 0xff, // mov ecx, exits
      0xe6, LOOP_PORT, //  l: out LOOP_PORT, al
      0x66, 0x49, //          dec ecx
      0x75, 0xfa, //          jnz l
    ]
    : [];
  return [...loop, ...tail];
}

/** One timed run of the out loop under the kvm engine. */
async function kvmOnce(exits: number): Promise<number> {
  const vm = await new KvmEngine().createVm({ ramSize: 16 * 2 ** 20, vcpuCount: 1 });
  try {
    vm.memory.writeBytes(0x1000, Uint8Array.from(outLoop(exits, [0xe6, DONE_PORT, 0xf4])));
    const state = resetCpuState();
    state.seg.cs = realModeSegment(0, true);
    state.rip = 0x1000n;
    vm.vcpus[0].setState(state);
    let counted = 0;
    const ops = {
      pioRead: () => 0,
      pioWrite: (port: number) => {
        if (port === LOOP_PORT) counted++;
        else if (port === DONE_PORT) vm.requestExit({ kind: 'poweroff' });
      },
      mmioRead: () => 0,
      mmioWrite: () => undefined,
    };
    const start = process.hrtime.bigint();
    const exit = await vm.run(ops);
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    if (exit.kind !== 'poweroff' || counted !== exits) throw new Error(`benchmark guest misbehaved: ${JSON.stringify(exit)}, ${counted} exits`);
    return seconds;
  } finally {
    vm.destroy();
  }
}

/** Exits per second of the kvm engine for `exits` port writes (median of `runs`). */
export async function measureKvmPioExits(exits = DEFAULT_EXITS, runs = 5): Promise<PioExitMeasurement> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) times.push(await kvmOnce(exits));
  const seconds = median(times);
  return { exits, seconds, perExitUs: (seconds / exits) * 1e6 };
}

/** A 64 KiB BIOS image for QEMU: the out loop at F000:0000, then isa-debug-exit; the reset vector jumps there. */
function qemuBios(exits: number): Buffer {
  const image = Buffer.alloc(0x10000, 0xf4);
  Buffer.from(outLoop(exits, [0xb0, 0x00, 0xe6, 0xf4, 0xfa, 0xf4])).copy(image, 0); // mov al,0; out 0xf4,al; cli; hlt
  Buffer.from([0xea, 0x00, 0x00, 0x00, 0xf0]).copy(image, 0xfff0); // jmp far F000:0000
  return image;
}

function qemuOnce(biosPath: string): number {
  const start = process.hrtime.bigint();
  const r = spawnSync('qemu-system-x86_64', [
    '-accel', 'kvm', '-machine', 'pc', '-m', '16', '-nodefaults', '-display', 'none', '-no-reboot',
    '-bios', biosPath, '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04',
  ], { encoding: 'utf8', timeout: 120_000 });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  // isa-debug-exit: exit status (0 << 1) | 1 = 1.
  if (r.status !== 1) throw new Error(`qemu-system-x86_64 did not exit through isa-debug-exit (status ${r.status}): ${r.error?.message ?? r.stderr.trim()}`);
  return seconds;
}

/**
 * The same out loop under `qemu-system-x86_64 -accel kvm`: median process time
 * with `exits` outs minus median process time with none, divided by `exits`.
 */
export async function measureQemuPioExits(exits = DEFAULT_EXITS, runs = 5): Promise<PioExitMeasurement> {
  const dir = mkdtempSync(path.join(tmpdir(), 'typevisor-qemu-bench-'));
  try {
    const loaded = path.join(dir, 'loop.bin');
    const empty = path.join(dir, 'empty.bin');
    writeFileSync(loaded, qemuBios(exits));
    writeFileSync(empty, qemuBios(0));
    const withLoop: number[] = [];
    const baseline: number[] = [];
    for (let i = 0; i < runs; i++) {
      baseline.push(qemuOnce(empty));
      withLoop.push(qemuOnce(loaded));
    }
    const seconds = Math.max(0, median(withLoop) - median(baseline));
    return { exits, seconds, perExitUs: (seconds / exits) * 1e6 };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Measures both and returns typevisor's exit rate as a fraction of QEMU's. */
export async function compareWithQemu(exits = DEFAULT_EXITS, runs = 5): Promise<{ kvm: PioExitMeasurement; qemu: PioExitMeasurement; ratio: number }> {
  const kvm = await measureKvmPioExits(exits, runs);
  const qemu = await measureQemuPioExits(exits, runs);
  return { kvm, qemu, ratio: qemu.perExitUs / kvm.perExitUs };
}

function format(name: string, m: PioExitMeasurement): string {
  return `${name}: ${m.exits} exits in ${m.seconds.toFixed(3)} s = ${m.perExitUs.toFixed(2)} µs/exit (${Math.round(m.exits / m.seconds)} exits/s)`;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const kvm = await measureKvmPioExits();
  console.log(format('typevisor kvm', kvm));
  if (await qemuAvailable()) {
    const qemu = await measureQemuPioExits();
    console.log(format('qemu -accel kvm', qemu));
    console.log(`typevisor / qemu exit rate: ${(qemu.perExitUs / kvm.perExitUs).toFixed(2)}`);
  } else {
    console.log('qemu-system-x86_64 not found: QEMU comparison skipped');
  }
}
