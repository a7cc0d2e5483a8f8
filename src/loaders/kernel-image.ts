/**
 * Recognises what kind of kernel a file holds from its bytes alone: a Linux
 * bzImage, an ELF64 vmlinux, or a multiboot v1 kernel (ELF32/ELF64 or an a.out
 * kludge image). A valid multiboot header wins over a plain ELF, because
 * kvm-unit-tests' .flat files are ELF files that carry one.
 */

import { LoaderError, hex } from './errors.js';
import { EM_X86_64, isElf, parseElf, type ElfImage } from './elf.js';

export const MULTIBOOT_HEADER_MAGIC = 0x1badb002;
/** The multiboot header must lie in the first 8 KiB, 4-byte aligned. */
export const MULTIBOOT_SEARCH_LIMIT = 8192;
/** Header flag: the a.out kludge address fields are valid. */
export const MULTIBOOT_AOUT_KLUDGE = 1 << 16;

/** The address fields of a multiboot header with the a.out kludge (flag bit 16). */
export interface MultibootAoutFields {
  readonly headerAddr: number;
  readonly loadAddr: number;
  /** 0 means "to the end of the file". */
  readonly loadEndAddr: number;
  /** 0 means "no bss". */
  readonly bssEndAddr: number;
  readonly entryAddr: number;
}

export interface MultibootHeader {
  /** Byte offset of the header (its magic) in the file. */
  readonly offset: number;
  readonly flags: number;
  readonly aout?: MultibootAoutFields;
}

export type KernelImage =
  | { readonly kind: 'bzimage' }
  | { readonly kind: 'vmlinux'; readonly elf: ElfImage }
  | { readonly kind: 'multiboot'; readonly header: MultibootHeader; readonly elf?: ElfImage };

/** True when the bytes carry the Linux boot-sector flag and the "HdrS" setup header signature. */
export function isBzImage(bytes: Uint8Array): boolean {
  if (bytes.length < 0x206) return false;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return view.getUint16(0x1fe, true) === 0xaa55 && view.getUint32(0x202, true) === 0x53726448;
}

/**
 * Finds the multiboot v1 header. Returns the header, or `badChecksumAt` when a
 * magic was found whose checksum does not add up, or nothing.
 */
export function findMultibootHeader(bytes: Uint8Array, name: string): { header?: MultibootHeader; badChecksumAt?: number } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = Math.min(bytes.length, MULTIBOOT_SEARCH_LIMIT) - 12;
  let badChecksumAt: number | undefined;
  for (let off = 0; off <= end; off += 4) {
    if (view.getUint32(off, true) !== MULTIBOOT_HEADER_MAGIC) continue;
    const flags = view.getUint32(off + 4, true);
    const checksum = view.getUint32(off + 8, true);
    if (((MULTIBOOT_HEADER_MAGIC + flags + checksum) >>> 0) !== 0) {
      badChecksumAt ??= off;
      continue;
    }
    if ((flags & MULTIBOOT_AOUT_KLUDGE) === 0) return { header: { offset: off, flags } };
    if (off + 32 > bytes.length) throw new LoaderError(`${name}: multiboot header at offset ${hex(off)} is truncated`);
    const aout: MultibootAoutFields = {
      headerAddr: view.getUint32(off + 12, true),
      loadAddr: view.getUint32(off + 16, true),
      loadEndAddr: view.getUint32(off + 20, true),
      bssEndAddr: view.getUint32(off + 24, true),
      entryAddr: view.getUint32(off + 28, true),
    };
    return { header: { offset: off, flags, aout } };
  }
  return badChecksumAt === undefined ? {} : { badChecksumAt };
}

/** Detects the kernel kind; throws LoaderError naming `name` when the file is none of them. */
export function detectKernelImage(bytes: Uint8Array, name = 'kernel'): KernelImage {
  const mb = findMultibootHeader(bytes, name);
  if (mb.header) {
    if (mb.header.aout) return { kind: 'multiboot', header: mb.header };
    if (!isElf(bytes)) {
      throw new LoaderError(`${name}: multiboot kernel is not ELF and its header has no a.out load addresses (flag bit 16)`);
    }
    return { kind: 'multiboot', header: mb.header, elf: parseElf(bytes, name) };
  }
  if (isBzImage(bytes)) return { kind: 'bzimage' };
  if (isElf(bytes) && bytes.length > 4 && bytes[4] === 2) {
    const elf = parseElf(bytes, name);
    if (elf.machine === EM_X86_64) return { kind: 'vmlinux', elf };
  }
  if (mb.badChecksumAt !== undefined) {
    throw new LoaderError(`${name}: multiboot header at offset ${hex(mb.badChecksumAt)} has a bad checksum`);
  }
  if (bytes.length === 0) throw new LoaderError(`${name}: file is empty`);
  if (isElf(bytes)) throw new LoaderError(`${name}: 32-bit ELF file without a multiboot header is not bootable`);
  throw new LoaderError(`${name}: not a bzImage, ELF or multiboot kernel`);
}
