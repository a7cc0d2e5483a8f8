/**
 * LZ4 decompression for the "legacy" frame format that the Linux build uses to
 * compress bzImage payloads (magic 0x184C2102, then blocks of up to 8 MiB,
 * each prefixed with its compressed size). Used to unpack a kernel on the
 * host, so a slow engine need not run the kernel's own decompressor.
 */

import { LoaderError } from '../errors.js';

export const LZ4_LEGACY_MAGIC = 0x184c2102;
const LEGACY_BLOCK_SIZE = 8 * 1024 * 1024;

/** Decodes one LZ4 block from `src` into `dst` at `dstPos`; returns the new output position. */
export function decodeLz4Block(src: Uint8Array, dst: Uint8Array, dstPos: number, name = 'lz4'): number {
  let s = 0;
  let d = dstPos;
  const bad = (why: string): LoaderError => new LoaderError(`${name}: corrupt LZ4 data (${why})`);
  while (s < src.length) {
    const token = src[s++];
    let literals = token >>> 4;
    if (literals === 15) {
      let b;
      do {
        if (s >= src.length) throw bad('literal length runs past the block');
        b = src[s++]!;
        literals += b;
      } while (b === 255);
    }
    if (s + literals > src.length) throw bad('literals run past the block');
    if (d + literals > dst.length) throw bad('output larger than expected');
    dst.set(src.subarray(s, s + literals), d);
    s += literals;
    d += literals;
    if (s === src.length) break; // the last sequence has literals only
    if (s + 2 > src.length) throw bad('truncated match offset');
    const offset = src[s] | (src[s + 1] << 8);
    s += 2;
    if (offset === 0 || offset > d - dstPos) throw bad('match offset outside the output');
    let length = (token & 15) + 4;
    if ((token & 15) === 15) {
      let b;
      do {
        if (s >= src.length) throw bad('match length runs past the block');
        b = src[s++]!;
        length += b;
      } while (b === 255);
    }
    if (d + length > dst.length) throw bad('output larger than expected');
    let from = d - offset;
    if (offset >= length) {
      dst.copyWithin(d, from, from + length);
      d += length;
    } else {
      // Overlapping match: copy byte by byte (the pattern repeats).
      for (let i = 0; i < length; i++) dst[d++] = dst[from++]!;
    }
  }
  return d;
}

/**
 * Decompresses a legacy LZ4 stream whose uncompressed size is known (the
 * kernel appends it after the compressed data). Trailing bytes after the last
 * block are ignored, as the kernel's own unlz4 does.
 */
export function decompressLz4Legacy(input: Uint8Array, outputSize: number, name = 'lz4'): Uint8Array {
  const view = new DataView(input.buffer, input.byteOffset, input.byteLength);
  if (input.length < 8 || view.getUint32(0, true) !== LZ4_LEGACY_MAGIC) throw new LoaderError(`${name}: not an LZ4 legacy stream`);
  const out = new Uint8Array(outputSize);
  let s = 4;
  let d = 0;
  while (d < outputSize && s + 4 <= input.length) {
    const size = view.getUint32(s, true);
    s += 4;
    if (size === LZ4_LEGACY_MAGIC) continue; // a concatenated stream starts
    if (size > input.length - s || size > LEGACY_BLOCK_SIZE * 2) throw new LoaderError(`${name}: corrupt LZ4 data (block size ${size})`);
    d = decodeLz4Block(input.subarray(s, s + size), out, d, name);
    s += size;
  }
  if (d !== outputSize) throw new LoaderError(`${name}: LZ4 stream produced ${d} bytes, expected ${outputSize}`);
  return out;
}
