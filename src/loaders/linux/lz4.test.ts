import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeLz4Block, decompressLz4Legacy, LZ4_LEGACY_MAGIC } from './lz4.js';
import { LoaderError } from '../errors.js';

/** A legacy stream holding the given raw blocks. */
function stream(blocks: number[][]): Uint8Array {
  const parts: number[] = [];
  const u32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];
  parts.push(...u32(LZ4_LEGACY_MAGIC));
  for (const b of blocks) parts.push(...u32(b.length), ...b);
  return Uint8Array.from(parts);
}

const text = (s: string): number[] => [...new TextEncoder().encode(s)];

test('literals-only block', () => {
  const block = [0x50, ...text('hello')];
  assert.equal(new TextDecoder().decode(decompressLz4Legacy(stream([block]), 5)), 'hello');
});

test('a match copies earlier output, including overlapping run-length matches', () => {
  // "abc" then match offset 3 length 6 → "abcabcabc"; then literals "!"
  const block = [0x32, ...text('abc'), 3, 0, 0x10, ...text('!')];
  assert.equal(new TextDecoder().decode(decompressLz4Block(block)), 'abcabcabc!');
  // "a" then offset 1 length 19 (15+4 with extension byte 0) → 20 × "a"
  const rle = [0x1f, 0x61, 1, 0, 0];
  assert.equal(new TextDecoder().decode(decompressLz4Block(rle, 20)), 'a'.repeat(20));
});

test('long literal lengths use extension bytes', () => {
  const lit = Array.from({ length: 300 }, (_, i) => i & 0xff);
  const block = [0xf0, 255, 300 - 15 - 255, ...lit];
  assert.deepEqual([...decompressLz4Legacy(stream([block]), 300)], lit);
});

test('blocks across a stream concatenate; a second magic is skipped', () => {
  const s1 = stream([[0x30, ...text('abc')]]);
  const s2 = stream([[0x30, ...text('def')]]);
  const joined = new Uint8Array([...s1, ...s2]);
  assert.equal(new TextDecoder().decode(decompressLz4Legacy(joined, 6)), 'abcdef');
});

test('corrupt input is rejected with LoaderError, never a crash or an out-of-bounds write', () => {
  assert.throws(() => decompressLz4Legacy(new Uint8Array(16), 4), LoaderError);
  assert.throws(() => decompressLz4Block([0x30, 1], 3), /literals run past/);
  assert.throws(() => decompressLz4Block([0x10, 0x61, 5, 0, 0x00], 10), /match offset outside/);
  assert.throws(() => decompressLz4Block([0x50, ...text('hello')], 3), /output larger/);
  assert.throws(() => decompressLz4Legacy(stream([[0x30, ...text('abc')]]), 10), /produced 3 bytes, expected 10/);
  for (let seed = 1; seed <= 2000; seed++) {
    let x = seed;
    const junk = Uint8Array.from({ length: 64 }, () => ((x = (x * 1103515245 + 12345) >>> 0) >>> 24));
    try {
      decodeLz4Block(junk, new Uint8Array(256), 0);
    } catch (e) {
      assert.ok(e instanceof LoaderError);
    }
  }
});

function decompressLz4Block(block: number[], size = 64): Uint8Array {
  const out = new Uint8Array(size);
  const n = decodeLz4Block(Uint8Array.from(block), out, 0);
  return out.subarray(0, n);
}
