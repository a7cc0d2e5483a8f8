/**
 * Linux kernel modules for the default initramfs: reads a module's `.modinfo`
 * ELF section (name, depends) and orders a set of modules so each one is
 * loaded after its dependencies, as `modprobe` would with modules.dep.
 */

/** The `.modinfo` key=value strings of a kernel module (an ELF64 relocatable). */
export function readModinfo(ko: Uint8Array, name = 'module'): Map<string, string[]> {
  const dv = new DataView(ko.buffer, ko.byteOffset, ko.byteLength);
  const bad = (why: string): Error => new Error(`${name}: not a kernel module (${why})`);
  if (ko.length < 64 || dv.getUint32(0, false) !== 0x7f454c46) throw bad('no ELF magic');
  if (ko[4] !== 2 || ko[5] !== 1) throw bad('not a little-endian ELF64 file');
  const shoff = Number(dv.getBigUint64(0x28, true));
  const shentsize = dv.getUint16(0x3a, true);
  const shnum = dv.getUint16(0x3c, true);
  const shstrndx = dv.getUint16(0x3e, true);
  if (shentsize < 64 || shoff + shnum * shentsize > ko.length || shstrndx >= shnum) throw bad('bad section table');
  const section = (i: number): { name: number; offset: number; size: number } => {
    const base = shoff + i * shentsize;
    return { name: dv.getUint32(base, true), offset: Number(dv.getBigUint64(base + 0x18, true)), size: Number(dv.getBigUint64(base + 0x20, true)) };
  };
  const strtab = section(shstrndx);
  const decoder = new TextDecoder();
  const cstring = (at: number): string => {
    let end = at;
    while (end < ko.length && ko[end] !== 0) end++;
    return decoder.decode(ko.subarray(at, end));
  };
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    if (cstring(strtab.offset + s.name) !== '.modinfo') continue;
    if (s.offset + s.size > ko.length) throw bad('.modinfo out of range');
    const info = new Map<string, string[]>();
    for (const entry of decoder.decode(ko.subarray(s.offset, s.offset + s.size)).split('\0')) {
      const eq = entry.indexOf('=');
      if (eq <= 0) continue;
      const key = entry.slice(0, eq);
      info.set(key, [...(info.get(key) ?? []), entry.slice(eq + 1)]);
    }
    return info;
  }
  throw bad('no .modinfo section');
}

/** A module's dependencies (module names, '-' and '_' equivalent). */
export function moduleDepends(info: Map<string, string[]>): string[] {
  return (info.get('depends') ?? []).flatMap((d) => d.split(',')).filter((d) => d !== '').map(canonicalModuleName);
}

export function canonicalModuleName(name: string): string {
  return name.replace(/\.ko$/, '').replace(/-/g, '_');
}

/**
 * Orders `wanted` plus everything they depend on so dependencies come first.
 * `depsOf` returns a module's direct dependencies; unknown modules throw.
 */
export function loadOrder(wanted: readonly string[], depsOf: (name: string) => string[]): string[] {
  const order: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (raw: string, chain: string[]): void => {
    const name = canonicalModuleName(raw);
    const s = state.get(name);
    if (s === 'done') return;
    if (s === 'visiting') throw new Error(`module dependency cycle: ${[...chain, name].join(' -> ')}`);
    state.set(name, 'visiting');
    for (const d of depsOf(name)) visit(d, [...chain, name]);
    state.set(name, 'done');
    order.push(name);
  };
  for (const w of wanted) visit(w, []);
  return order;
}
