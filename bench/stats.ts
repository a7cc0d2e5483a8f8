/**
 * Small statistics helpers for the benchmarks: medians of repeated runs, as
 * the noisy shared machines here demand.
 */

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Runs `fn` `runs` times, interleaving nothing else, and returns every sample. */
export async function sample(runs: number, fn: () => Promise<number>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < runs; i++) out.push(await fn());
  return out;
}

export function formatRatio(ours: number, reference: number): string {
  if (!Number.isFinite(ours) || !Number.isFinite(reference) || reference === 0) return 'n/a';
  return `${(ours / reference).toFixed(2)}×`;
}
