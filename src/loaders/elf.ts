/**
 * A minimal, defensive ELF reader for x86 kernels: the file header and the
 * PT_LOAD program headers, for both ELF32 (i386) and ELF64 (x86-64). It never
 * trusts a field: every offset and size is checked against the file.
 */

import { LoaderError } from './errors.js';

export const ELF_MAGIC = 0x464c457f; // "\x7fELF" read little-endian
const ELFCLASS32 = 1;
const ELFCLASS64 = 2;
const ELFDATA2LSB = 1;
const ET_EXEC = 2;
const ET_DYN = 3;
export const EM_386 = 3;
export const EM_X86_64 = 62;
const PT_LOAD = 1;

/** One loadable segment. Addresses are numbers (exact below 2^53). */
export interface ElfSegment {
  /** Physical load address (p_paddr). */
  readonly paddr: number;
  /** Virtual address (p_vaddr); bigint because kernels link at 0xffffffff8xxxxxxx. */
  readonly vaddr: bigint;
  /** Offset of the segment's bytes in the file. */
  readonly offset: number;
  /** Bytes taken from the file. */
  readonly fileSize: number;
  /** Bytes in memory; the tail beyond fileSize is zeroed (bss). */
  readonly memSize: number;
}

export interface ElfImage {
  readonly elfClass: 32 | 64;
  readonly machine: number;
  /** e_entry as found in the file (usually virtual). */
  readonly entry: bigint;
  readonly segments: readonly ElfSegment[];
}

/** True when `bytes` starts with the ELF magic. */
export function isElf(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x7f && bytes[1] === 0x45 && bytes[2] === 0x4c && bytes[3] === 0x46;
}

/** Reads a 64-bit file offset, size or physical address, which must fit a safe number. */
function u64(view: DataView, offset: number, what: string, name: string): number {
  const value = view.getBigUint64(offset, true);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new LoaderError(`${name}: ELF ${what} 0x${value.toString(16)} is out of range`);
  }
  return Number(value);
}

/**
 * The physical entry point: e_entry itself when it lies inside a segment's
 * physical range (vmlinux links its entry as a physical address), else e_entry
 * translated through the segment whose virtual range holds it (higher-half
 * kernels); -1 when neither applies and it does not fit a number.
 */
export function entryToPhysical(image: ElfImage): number {
  const entry = image.entry;
  for (const seg of image.segments) {
    if (entry >= BigInt(seg.paddr) && entry < BigInt(seg.paddr + seg.memSize)) return Number(entry);
  }
  for (const seg of image.segments) {
    if (entry >= seg.vaddr && entry < seg.vaddr + BigInt(seg.memSize)) {
      return seg.paddr + Number(entry - seg.vaddr);
    }
  }
  return entry <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(entry) : -1;
}

/** Parses an ELF file header and its PT_LOAD segments; throws LoaderError on malformed input. */
export function parseElf(bytes: Uint8Array, name: string): ElfImage {
  if (!isElf(bytes)) throw new LoaderError(`${name}: not an ELF file`);
  if (bytes.length < 52) throw new LoaderError(`${name}: truncated ELF header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const cls = bytes[4];
  if (cls !== ELFCLASS32 && cls !== ELFCLASS64) throw new LoaderError(`${name}: unknown ELF class ${cls}`);
  if (bytes[5] !== ELFDATA2LSB) throw new LoaderError(`${name}: ELF file is not little-endian`);
  const is64 = cls === ELFCLASS64;
  if (is64 && bytes.length < 64) throw new LoaderError(`${name}: truncated ELF header`);
  const type = view.getUint16(16, true);
  if (type !== ET_EXEC && type !== ET_DYN) throw new LoaderError(`${name}: ELF file is not an executable (e_type ${type})`);
  const machine = view.getUint16(18, true);
  const expected = is64 ? EM_X86_64 : EM_386;
  if (machine !== expected) {
    throw new LoaderError(`${name}: ELF${is64 ? 64 : 32} file is for machine ${machine}, not ${is64 ? 'x86-64' : 'i386'}`);
  }
  const entry = is64 ? view.getBigUint64(24, true) : BigInt(view.getUint32(24, true));
  const phoff = is64 ? u64(view, 32, 'program header offset', name) : view.getUint32(28, true);
  const phentsize = view.getUint16(is64 ? 54 : 42, true);
  const phnum = view.getUint16(is64 ? 56 : 44, true);
  const minEntSize = is64 ? 56 : 32;
  if (phnum === 0) throw new LoaderError(`${name}: ELF file has no program headers`);
  if (phentsize < minEntSize) throw new LoaderError(`${name}: ELF program header size ${phentsize} is too small`);
  if (phoff + phnum * phentsize > bytes.length) throw new LoaderError(`${name}: ELF program headers lie outside the file`);

  const segments: ElfSegment[] = [];
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (view.getUint32(ph, true) !== PT_LOAD) continue;
    const seg: ElfSegment = is64
      ? {
          offset: u64(view, ph + 8, 'segment offset', name),
          vaddr: view.getBigUint64(ph + 16, true),
          paddr: u64(view, ph + 24, 'segment physical address', name),
          fileSize: u64(view, ph + 32, 'segment size', name),
          memSize: u64(view, ph + 40, 'segment size', name),
        }
      : {
          offset: view.getUint32(ph + 4, true),
          vaddr: BigInt(view.getUint32(ph + 8, true)),
          paddr: view.getUint32(ph + 12, true),
          fileSize: view.getUint32(ph + 16, true),
          memSize: view.getUint32(ph + 20, true),
        };
    if (seg.fileSize > seg.memSize) throw new LoaderError(`${name}: ELF segment ${i} has file size larger than memory size`);
    if (seg.offset + seg.fileSize > bytes.length) throw new LoaderError(`${name}: ELF segment ${i} extends past the end of the file (truncated?)`);
    if (seg.memSize > 0) segments.push(seg);
  }
  if (segments.length === 0) throw new LoaderError(`${name}: ELF file has no loadable segments`);
  return { elfClass: is64 ? 64 : 32, machine, entry, segments };
}
