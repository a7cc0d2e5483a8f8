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
  const engines = kvmSkipReason() === undefined ? (['kvm'] as const) : ([] as const);
  for (const engine of engines) {
    const ours: number[] = [];
    const theirs: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      ours.push(await typevisorFirstByte(guest, engine));
      if (hasQemu) theirs.push(await qemuFirstByte(guest, engine));
    }
    line(`typevisor --engine ${engine}`, `${median(ours).toFixed(1)} ms`);
    if (hasQemu) {
      line(`qemu-system-x86_64 -accel ${engine} (SeaBIOS)`, `${median(theirs).toFixed(1)} ms`);
      line('typevisor time / QEMU time', formatRatio(median(ours), median(theirs)));
    }
  }
}

const hasQemu = await qemuAvailable();
console.log(`typevisor benchmarks — medians of ${RUNS} runs${hasQemu ? '' : ' (QEMU not installed: no reference numbers)'}`);
const guests = await buildGuests();
await portIoExits(hasQemu);
await firstSerialByte(guests, hasQemu);
