/**
 * Maps a soft-engine guest RIP profile (written when TYPEVISOR_SOFT_PROFILE
 * is set, see rip-profile.ts) to kernel symbols and prints the functions with
 * the most samples: node dist/src/engines/soft/bench/rip-symbols.js <profile>
 * <System.map or /proc/kallsyms copy> [top]. Addresses below the kernel half
 * are grouped by 4 KiB page.
 */

import { readFileSync } from 'node:fs';

interface KernelSymbol { address: bigint; name: string }

function loadSymbols(path: string): KernelSymbol[] {
  return readFileSync(path, 'utf8').split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f.length >= 3 && /^[0-9a-f]{16}$/.test(f[0]) && /^[tTwW]$/.test(f[1]))
    .map((f) => ({ address: BigInt('0x' + f[0]), name: f[2] }))
    .sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
}

function symbolOf(symbols: readonly KernelSymbol[], address: bigint): string {
  if (symbols.length === 0 || address < symbols[0].address) return '?';
  let lo = 0;
  let hi = symbols.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (symbols[mid].address <= address) lo = mid; else hi = mid - 1;
  }
  return symbols[lo].name;
}

function main(): void {
  const [profilePath, mapPath, topArg] = process.argv.slice(2);
  if (profilePath === undefined || mapPath === undefined) {
    console.error('usage: rip-symbols.js <profile> <System.map> [top]');
    process.exitCode = 2;
    return;
  }
  const symbols = loadSymbols(mapPath);
  const lines = readFileSync(profilePath, 'utf8').split('\n');
  const byName = new Map<string, number>();
  let total = 0;
  for (const line of lines) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const [hex, countText] = line.split(' ');
    const address = BigInt('0x' + hex);
    const count = Number(countText);
    const name = address < 0xffff800000000000n ? `page ${(address & ~0xfffn).toString(16)}` : symbolOf(symbols, address);
    byName.set(name, (byName.get(name) ?? 0) + count);
    total += count;
  }
  console.log(lines[0]);
  const top = [...byName.entries()].sort((a, b) => b[1] - a[1]).slice(0, Number(topArg ?? 40));
  for (const [name, n] of top) console.log(`${(100 * n / total).toFixed(1).padStart(5)}%  ${String(n).padStart(7)}  ${name}`);
}

main();
