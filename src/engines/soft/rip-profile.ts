/**
 * Guest-side profiler for the soft engine: samples the linear RIP of each vCPU
 * at the end of every full scheduler slice (a fixed number of instructions, so
 * the samples are spread evenly over executed instructions) and writes a
 * histogram when the VM stops. Enabled with TYPEVISOR_SOFT_PROFILE=<file>;
 * off by default (one null test per slice). Map the addresses to symbols with
 * bench/rip-symbols.ts and the kernel's System.map.
 */

import { writeFileSync } from 'node:fs';

export class RipProfile {
  private readonly counts = new Map<number, number>();
  private samples = 0;

  constructor(private readonly path: string) {}

  /** A profile writing to `value` when set and not empty, else null. */
  static fromEnv(value: string | undefined): RipProfile | null {
    return value !== undefined && value !== '' ? new RipProfile(value) : null;
  }

  /** Counts one sample at linear address `rip` (the signed value in 64-bit mode). */
  sample(rip: number): void {
    this.samples++;
    this.counts.set(rip, (this.counts.get(rip) ?? 0) + 1);
  }

  /** Number of samples taken so far. */
  get total(): number {
    return this.samples;
  }

  /** Sample counts by address, most frequent first. */
  entries(): [number, number][] {
    return [...this.counts.entries()].sort((a, b) => b[1] - a[1]);
  }

  /** Writes `# header` then one `hex-address count` line per sampled address. */
  write(instructions: number, wallSeconds: number): void {
    const lines = [`# samples ${this.samples} instructions ${instructions} wall ${wallSeconds.toFixed(2)} s`];
    for (const [rip, n] of this.entries()) {
      const unsigned = rip < 0 ? BigInt(rip) + (1n << 64n) : BigInt(rip);
      lines.push(`${unsigned.toString(16)} ${n}`);
    }
    writeFileSync(this.path, lines.join('\n') + '\n');
  }
}
