import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, parseCpuCount, parseEngine, parseMemorySize, validateMemorySize } from './config.js';

test('parseMemorySize understands suffixes and bare MiB numbers', () => {
  assert.equal(parseMemorySize('256M'), 256 * 1024 * 1024);
  assert.equal(parseMemorySize('1G'), 1024 ** 3);
  assert.equal(parseMemorySize('1.5G'), 1.5 * 1024 ** 3);
  assert.equal(parseMemorySize('512'), 512 * 1024 * 1024);
  assert.equal(parseMemorySize('65536K'), 64 * 1024 * 1024);
  assert.equal(parseMemorySize('2GiB'), 2 * 1024 ** 3);
});

test('parseMemorySize rejects malformed sizes with one line', () => {
  for (const bad of ['', 'lots', '12Q', '-5M', '1e9', '0x100M']) {
    assert.throws(() => parseMemorySize(bad), (e: Error) => e instanceof ConfigError && !e.message.includes('\n'));
  }
});

test('validateMemorySize enforces minimum, page multiple, maximum and host size', () => {
  assert.throws(() => validateMemorySize(1024 * 1024), /too small/);
  assert.throws(() => validateMemorySize(64 * 1024 * 1024 + 1), /multiple of 4 KiB/);
  assert.throws(() => validateMemorySize(128 * 1024 ** 3, 256 * 1024 ** 3), /too large/);
  assert.throws(() => validateMemorySize(8 * 1024 **3, 4 * 1024 ** 3), /more than this host has/);
  assert.doesNotThrow(() => validateMemorySize(256 * 1024 * 1024, 4 * 1024 ** 3));
});

test('parseCpuCount accepts 1..254 and rejects 0, 1000 and junk', () => {
  assert.equal(parseCpuCount('1'), 1);
  assert.equal(parseCpuCount('4'), 4);
  assert.throws(() => parseCpuCount('0'), /out of range/);
  assert.throws(() => parseCpuCount('1000'), /out of range/);
  assert.throws(() => parseCpuCount('two'), /invalid CPU count/);
});

test('parseEngine accepts the three engines only', () => {
  assert.equal(parseEngine('soft'), 'soft');
  assert.throws(() => parseEngine('tcg'), /unknown engine "tcg"/);
});
