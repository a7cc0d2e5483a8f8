/**
 * Unpacking a bzImage on the host: finds the compressed vmlinux inside the
 * protected-mode kernel (payload_offset/payload_length, protocol 2.08+),
 * decompresses it (LZ4 legacy, as Debian builds it, or gzip) and returns the
 * ELF. Booting that ELF directly skips the kernel's own decompressor, which a
 * software CPU would otherwise spend seconds on.
 */

import { gunzipSync } from 'node:zlib';
import { LoaderError } from '../errors.js';
import { decompressLz4Legacy, LZ4_LEGACY_MAGIC } from './lz4.js';
import type { SetupHeader } from './setup-header.js';

/** The largest vmlinux we will unpack. */
const MAX_VMLINUX = 512 * 1024 * 1024;

export type PayloadCompression = 'lz4' | 'gzip' | 'xz' | 'zstd' | 'bzip2' | 'lzma' | 'lzo' | 'unknown';

export function payloadCompression(payload: Uint8Array): PayloadCompression {
  const b = payload;
  if (b.length < 6) return 'unknown';
  const le32 = (b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)) >>> 0;
  if (le32 === LZ4_LEGACY_MAGIC) return 'lz4';
  if (b[0] === 0x1f && (b[1] === 0x8b || b[1] === 0x9e)) return 'gzip';
  if (b[0] === 0xfd && b[1] === 0x37 && b[2] === 0x7a && b[3] === 0x58 && b[4] === 0x5a) return 'xz';
  if (le32 === 0xfd2fb528) return 'zstd';
  if (b[0] === 0x42 && b[1] === 0x5a && b[2] === 0x68) return 'bzip2';
  if (b[0] === 0x5d && b[1] === 0x00) return 'lzma';
  if (b[0] === 0x89 && b[1] === 0x4c && b[2] === 0x5a && b[3] === 0x4f) return 'lzo';
  return 'unknown';
}

/**
 * The vmlinux ELF inside `bytes`, or undefined when the payload uses a
 * compression typevisor does not unpack (the kernel then decompresses itself).
 */
export function unpackBzImage(bytes: Uint8Array, hdr: SetupHeader, name: string): Uint8Array | undefined {
  if (hdr.version < 0x0208 || hdr.payloadLength < 8) return undefined;
  const end = hdr.payloadOffset + hdr.payloadLength;
  if (end > bytes.length) throw new LoaderError(`${name}: compressed kernel extends past the end of the file`);
  const payload = bytes.subarray(hdr.payloadOffset, end);
  const kind = payloadCompression(payload);
  // The build appends the uncompressed size (32-bit little-endian) to every payload.
  const size = new DataView(payload.buffer, payload.byteOffset, payload.byteLength).getUint32(payload.length - 4, true);
  if (size === 0 || size > MAX_VMLINUX) throw new LoaderError(`${name}: implausible uncompressed kernel size ${size}`);
  let vmlinux: Uint8Array;
  if (kind === 'lz4') vmlinux = decompressLz4Legacy(payload.subarray(0, payload.length - 4), size, name);
  else if (kind === 'gzip') {
    try {
      vmlinux = gunzipSync(payload.subarray(0, payload.length - 4), { maxOutputLength: MAX_VMLINUX });
    } catch (e) {
      throw new LoaderError(`${name}: corrupt gzip kernel payload (${(e as Error).message})`);
    }
  } else return undefined;
  if (vmlinux.length < 4 || vmlinux[0] !== 0x7f || vmlinux[1] !== 0x45 || vmlinux[2] !== 0x4c || vmlinux[3] !== 0x46) {
    throw new LoaderError(`${name}: the decompressed kernel is not an ELF file`);
  }
  return vmlinux;
}
