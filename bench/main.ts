/**
 * `npm run bench`: typevisor's performance against the reference VMMs,
 * measured side by side in one run on this machine (medians, because these
 * machines are noisy). Each section prints absolute numbers and the ratio.
 */

import { compareWithQemu } from './kvm-pio.js';
import { qemuFirstByte, typevisorFirstByte } from './first-byte.js';
import { formatRatio, median } from './stats.js';
import { buildGuests } from '../tests/guests/build.js';
import { qemuAvailable } from '../tests/guests/qemu.js';
import { kvmSkipReason } from '../tests/integration/harness.js';
import { instructionsPerSecond } from './mips.js';
import { bootUnderQemuTcg, bootUnderSoft, type BootResult } from './linux-boot.js';
import { ddUnderQemuTcg, ddUnderSoft, summarise, type DdResult } from './dd.js';
import { hasApt } from '../src/assets/debian-packages.js';
import { prepareDefaultGuest } from '../src/assets/default-guest.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 5);

function line(label: string, value: string): void {
  console.log(`  ${label.padEnd(44)} ${value}`);
}

async function portIoExits(hasQemu: boolean): Promise<void> {
  console.log('\nPort-I/O exits (100,000 `out` instructions, kvm)');
  const skip = kvmSkipReason();
  if (skip !== undefined) return line('skipped', skip);
  if (!hasQemu) return line('skipped', 'qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)');
  const { kvm, qemu, ratio } = await compareWithQemu(100_000, RUNS);
  line('typevisor --engine kvm', `${kvm.perExitUs.toFixed(2)} µs/exit  (${Math.round(1e6 / kvm.perExitUs)} exits/s)`);
  line('qemu-system-x86_64 -accel kvm', `${qemu.perExitUs.toFixed(2)} µs/exit  (${Math.round(1e6 / qemu.perExitUs)} exits/s)`);
  line('typevisor exit rate / QEMU exit rate', `${ratio.toFixed(2)}  (goal ≥ 0.80)`);
}

async function firstSerialByte(guests: Record<string, string>, hasQemu: boolean): Promise<void> {
  console.log('\nProcess start to first serial byte (serial-echo guest, multiboot)');
  const guest = guests['serial-echo'];
  const engines: ('kvm' | 'soft')[] = kvmSkipReason() === undefined ? ['kvm', 'soft'] : ['soft'];
  for (const engine of engines) {
    const ours: number[] = [];
    const theirs: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      ours.push(await typevisorFirstByte(guest, engine));
      if (hasQemu) theirs.push(await qemuFirstByte(guest, engine === 'kvm' ? 'kvm' : 'tcg'));
    }
    line(`typevisor --engine ${engine}`, `${median(ours).toFixed(1)} ms`);
    if (hasQemu) {
      line(`qemu-system-x86_64 -accel ${engine === 'kvm' ? 'kvm' : 'tcg'} (SeaBIOS)`, `${median(theirs).toFixed(1)} ms`);
      line('typevisor time / QEMU time', formatRatio(median(ours), median(theirs)));
    }
  }
}

async function guestMips(guests: Record<string, string>, hasQemu: boolean): Promise<void> {
  // Each runner gets enough work to take about a second, so process start-up noise is small beside it.
  const softIterations = Number(process.env.BENCH_CPU_ITERS ?? 3_000_000);
  const qemuIterations = 200_000_000;
  console.log(`\nGuest instructions per second (cpu-loop guest: ${softIterations / 1e5} M ALU instructions under soft, ${qemuIterations / 1e5} M under QEMU)`);
  const guest = guests['cpu-loop'];
  const soft: number[] = [];
  const qemu: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    soft.push(await instructionsPerSecond('soft', guest, softIterations));
    if (hasQemu) qemu.push(await instructionsPerSecond('qemu-tcg', guest, qemuIterations));
  }
  line('typevisor --engine soft', `${(median(soft) / 1e6).toFixed(1)} M instructions/s`);
  if (hasQemu) {
    line('qemu-system-x86_64 -accel tcg', `${(median(qemu) / 1e6).toFixed(1)} M instructions/s`);
    line('soft rate / QEMU TCG rate', formatRatio(median(soft), median(qemu)));
  }
}

async function linuxBoot(hasQemu: boolean): Promise<void> {
  console.log('\nDebian cloud kernel + busybox initramfs, process start to power-off');
  if (!hasApt()) return line('skipped', 'no apt-get here to fetch the Debian guest');
  const guest = await prepareDefaultGuest();
  const timeoutMs = Number(process.env.BENCH_BOOT_TIMEOUT_MS ?? 600_000);
  const soft: BootResult[] = [];
  const qemu: BootResult[] = [];
  const qemuPc: BootResult[] = [];
  const runs = Math.min(RUNS, 3);
  for (let i = 0; i < runs; i++) {
    soft.push(await bootUnderSoft(guest.kernelPath, guest.initrdPath, timeoutMs));
    if (hasQemu) {
      qemu.push(await bootUnderQemuTcg(guest.kernelPath, guest.initrdPath, timeoutMs, 'microvm'));
      qemuPc.push(await bootUnderQemuTcg(guest.kernelPath, guest.initrdPath, timeoutMs, 'pc'));
    }
  }
  const report = (label: string, results: BootResult[]): number => {
    const done = results.filter((r) => r.completed);
    if (done.length === 0) {
      line(label, `did not power off within ${timeoutMs / 1000} s; last line: ${results.at(-1)!.lastLine.slice(0, 80)}`);
      return Number.NaN;
    }
    const m = median(done.map((r) => r.seconds));
    line(label, `${m.toFixed(2)} s${done.length < results.length ? ` (${results.length - done.length} of ${results.length} runs did not finish)` : ''}`);
    return m;
  };
  const ours = report('typevisor --engine soft', soft);
  if (hasQemu) {
    const theirs = report('qemu-system-x86_64 -M microvm -accel tcg', qemu);
    line('soft time / QEMU TCG (microvm) time', `${formatRatio(ours, theirs)}  (goal ≤ 10×)`);
    const theirsPc = report('qemu-system-x86_64 -M pc -accel tcg', qemuPc);
    line('soft time / QEMU TCG (pc) time', formatRatio(ours, theirsPc));
  }
}

async function diskThroughput(hasQemu: boolean): Promise<void> {
  // Sizes that take each VMM a second or more per dd (busybox time has 10 ms resolution).
  const softMib = Number(process.env.BENCH_DD_SOFT_MIB ?? 64);
  const qemuMib = Number(process.env.BENCH_DD_QEMU_MIB ?? 1024);
  const repetitions = Math.min(RUNS, 3);
  console.log(`\nvirtio-blk sequential throughput in the Debian guest (dd bs=1M O_DIRECT on a 1 GiB raw image: ${softMib} MiB under soft, ${qemuMib} MiB under QEMU; ${repetitions} writes + ${repetitions} reads per boot)`);
  if (!hasApt()) return line('skipped', 'no apt-get here to fetch the Debian guest');
  const guest = await prepareDefaultGuest();
  const timeoutMs = Number(process.env.BENCH_BOOT_TIMEOUT_MS ?? 600_000);
  const report = (label: string, r: DdResult): { write: number; read: number } => {
    if (r.failure !== undefined) {
      line(label, `failed: ${r.failure.slice(0, 100)}`);
      return { write: Number.NaN, read: Number.NaN };
    }
    const m = summarise(r);
    const runs = (v: number[]): string => v.map((x) => x.toFixed(1)).join(', ');
    line(`${label} write`, `${m.write.toFixed(1)} MiB/s  (runs: ${runs(r.writeMiBs)}; host-timed median ${m.hostWrite.toFixed(1)})`);
    line(`${label} read`, `${m.read.toFixed(1)} MiB/s  (runs: ${runs(r.readMiBs)}; host-timed median ${m.hostRead.toFixed(1)})`);
    return m;
  };
  const ours = report('typevisor --engine soft', await ddUnderSoft(guest.kernelPath, guest.initrdPath, { mib: softMib, repetitions, timeoutMs }));
  if (hasQemu) {
    const theirs = report('qemu -M pc -accel tcg, virtio-blk-pci', await ddUnderQemuTcg(guest.kernelPath, guest.initrdPath, { mib: qemuMib, repetitions, timeoutMs }));
    line('soft / QEMU TCG write rate', formatRatio(ours.write, theirs.write));
    line('soft / QEMU TCG read rate', formatRatio(ours.read, theirs.read));
  }
  line('kvm (typevisor and QEMU)', 'skipped: kvm here is nested (~1 µs per guest instruction), a Linux boot under it takes hours');
}

const hasQemu = await qemuAvailable();
console.log(`typevisor benchmarks — medians of ${RUNS} runs${hasQemu ? '' : ' (QEMU not installed: no reference numbers)'}`);
const guests = await buildGuests();
await portIoExits(hasQemu);
await firstSerialByte(guests, hasQemu);
await guestMips(guests, hasQemu);
await linuxBoot(hasQemu);
await diskThroughput(hasQemu);
