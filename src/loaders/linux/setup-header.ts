/**
 * The Linux/x86 boot protocol setup header (Documentation/arch/x86/boot.rst):
 * field offsets, flag bits, and a parser that validates a bzImage for the
 * 64-bit entry point (protocol >= 2.12 with XLF_KERNEL_64).
 */

import { LoaderError, hex } from '../errors.js';
import { isBzImage } from '../kernel-image.js';

/** Offsets of setup header fields, valid both in the bzImage file and in boot_params. */
export const Hdr = {
  START: 0x1f1,
  SETUP_SECTS: 0x1f1,
  SYSSIZE: 0x1f4,
  VID_MODE: 0x1fa,
  BOOT_FLAG: 0x1fe,
  JUMP: 0x200,
  HEADER: 0x202,
  VERSION: 0x206,
  TYPE_OF_LOADER: 0x210,
  LOADFLAGS: 0x211,
  CODE32_START: 0x214,
  RAMDISK_IMAGE: 0x218,
  RAMDISK_SIZE: 0x21c,
  HEAP_END_PTR: 0x224,
  CMD_LINE_PTR: 0x228,
  INITRD_ADDR_MAX: 0x22c,
  KERNEL_ALIGNMENT: 0x230,
  RELOCATABLE_KERNEL: 0x234,
  XLOADFLAGS: 0x236,
  CMDLINE_SIZE: 0x238,
  HARDWARE_SUBARCH: 0x23c,
  /** Offset of the compressed payload from the protected-mode kernel's start (protocol 2.08+). */
  PAYLOAD_OFFSET: 0x248,
  PAYLOAD_LENGTH: 0x24c,
  PREF_ADDRESS: 0x258,
  INIT_SIZE: 0x260,
  /** boot_params reserves up to here for the header (edd_mbr_sig_buffer follows at 0x290). */
  MAX_END: 0x290,
} as const;

export const BOOT_FLAG_MAGIC = 0xaa55;
/** "HdrS" little-endian. */
export const HDRS_MAGIC = 0x53726448;
export const LOADFLAG_LOADED_HIGH = 0x01;
export const LOADFLAG_CAN_USE_HEAP = 0x80;
export const XLF_KERNEL_64 = 0x01;
/** The oldest protocol with the 64-bit entry point and xloadflags. */
export const MIN_PROTOCOL_VERSION = 0x020c;

export interface SetupHeader {
  /** Number of 512-byte setup sectors after the boot sector (0 means 4). */
  readonly setupSects: number;
  /** Protocol version, e.g. 0x020f for 2.15. */
  readonly version: number;
  readonly loadflags: number;
  readonly xloadflags: number;
  readonly relocatable: boolean;
  readonly kernelAlignment: number;
  /** Longest command line the kernel accepts, excluding the NUL. */
  readonly cmdlineSize: number;
  /** Highest address the initrd may occupy (inclusive). */
  readonly initrdAddrMax: number;
  readonly prefAddress: number;
  /** Bytes of linear memory the kernel needs from its (aligned) load address to decompress and start. */
  readonly initSize: number;
  /** File offset of the protected-mode kernel: (setupSects + 1) * 512. */
  readonly kernelOffset: number;
  /** End (exclusive file offset) of the setup header: 0x202 + the byte at 0x201. */
  readonly headerEnd: number;
  /** File offset and length of the compressed kernel inside the bzImage. */
  readonly payloadOffset: number;
  readonly payloadLength: number;
}

export function versionString(version: number): string {
  return `${version >> 8}.${(version & 0xff).toString().padStart(2, '0')}`;
}

/** Parses and validates the setup header of a bzImage for 64-bit boot. */
export function parseSetupHeader(bytes: Uint8Array, name: string): SetupHeader {
  if (!isBzImage(bytes)) throw new LoaderError(`${name}: not a bzImage (no boot flag 0xaa55 / "HdrS" signature)`);
  if (bytes.length < Hdr.INIT_SIZE + 4) throw new LoaderError(`${name}: truncated bzImage setup header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint16(Hdr.VERSION, true);
  if (version < MIN_PROTOCOL_VERSION) {
    throw new LoaderError(`${name}: boot protocol ${versionString(version)} is too old; 64-bit boot needs protocol 2.12 or later`);
  }
  const loadflags = view.getUint8(Hdr.LOADFLAGS);
  if ((loadflags & LOADFLAG_LOADED_HIGH) === 0) throw new LoaderError(`${name}: zImage kernels (not loaded high) are not supported`);
  const xloadflags = view.getUint16(Hdr.XLOADFLAGS, true);
  if ((xloadflags & XLF_KERNEL_64) === 0) throw new LoaderError(`${name}: kernel has no 64-bit entry point (32-bit kernel?)`);
  const headerEnd = 0x202 + view.getUint8(0x201);
  if (headerEnd < Hdr.INIT_SIZE + 4 || headerEnd > Hdr.MAX_END) {
    throw new LoaderError(`${name}: setup header length ${hex(headerEnd - Hdr.START)} is invalid`);
  }
  const sects = view.getUint8(Hdr.SETUP_SECTS);
  const setupSects = sects === 0 ? 4 : sects;
  const kernelOffset = (setupSects + 1) * 512;
  const syssize = view.getUint32(Hdr.SYSSIZE, true);
  // syssize counts 16-byte paragraphs, rounded up: a file may end up to 15 bytes before syssize * 16.
  if (kernelOffset >= bytes.length || kernelOffset + syssize * 16 > bytes.length + 15) {
    throw new LoaderError(`${name}: bzImage is truncated (protected-mode kernel missing or short)`);
  }
  const kernelAlignment = view.getUint32(Hdr.KERNEL_ALIGNMENT, true);
  const relocatable = view.getUint8(Hdr.RELOCATABLE_KERNEL) !== 0;
  if (relocatable && (kernelAlignment === 0 || (kernelAlignment & (kernelAlignment - 1)) !== 0)) {
    throw new LoaderError(`${name}: kernel_alignment ${hex(kernelAlignment)} is not a power of two`);
  }
  const prefAddress = Number(view.getBigUint64(Hdr.PREF_ADDRESS, true));
  if (!Number.isSafeInteger(prefAddress)) throw new LoaderError(`${name}: pref_address is out of range`);
  return {
    setupSects,
    version,
    loadflags,
    xloadflags,
    relocatable,
    kernelAlignment,
    cmdlineSize: view.getUint32(Hdr.CMDLINE_SIZE, true),
    initrdAddrMax: view.getUint32(Hdr.INITRD_ADDR_MAX, true),
    prefAddress,
    initSize: view.getUint32(Hdr.INIT_SIZE, true),
    kernelOffset,
    headerEnd,
    payloadOffset: kernelOffset + view.getUint32(Hdr.PAYLOAD_OFFSET, true),
    payloadLength: view.getUint32(Hdr.PAYLOAD_LENGTH, true),
  };
}
