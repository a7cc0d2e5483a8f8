/**
 * CLI behaviour on bad input: each case must print exactly one clear line on
 * stderr, exit non-zero, and leave nothing running (the child exits by itself).
 */

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from './harness.js';

const dir = mkdtempSync(join(tmpdir(), 'tv-cli-'));
const junk = join(dir, 'junk.bin');
writeFileSync(junk, new Uint8Array(4096).map((_, i) => (i * 31) & 0xff));
const empty = join(dir, 'empty');
writeFileSync(empty, '');
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

async function expectOneLineError(args: string[], pattern: RegExp, env?: NodeJS.ProcessEnv): Promise<void> {
  const r = await runCli(args, { timeoutMs: 30_000, ...(env ? { env } : {}) });
  assert.equal(r.timedOut, false, 'the CLI must exit by itself');
  assert.notEqual(r.status, 0);
  assert.equal(r.stdout, '');
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `expected one line, got:\n${r.stderr}`);
  assert.match(lines[0], /^typevisor: /);
  assert.match(lines[0], pattern);
}

describe('typevisor run rejects bad input with one line and a non-zero status', () => {
  const soft = ['--engine', 'soft'];
  test('missing kernel file', () => expectOneLineError(['run', ...soft, '--kernel', join(dir, 'nope')], /cannot read kernel ".*nope": no such file/));
  test('kernel is a directory', () => expectOneLineError(['run', ...soft, '--kernel', dir], /is a directory/));
  test('kernel is empty', () => expectOneLineError(['run', ...soft, '--kernel', empty], /is empty/));
  test('kernel is not a kernel', () => expectOneLineError(['run', ...soft, '--kernel', junk], /junk\.bin.*not a/));
  test('missing initrd', () => expectOneLineError(['run', ...soft, '--kernel', junk, '--initrd', join(dir, 'nope')], /cannot read|not a/));
  test('memory malformed', () => expectOneLineError(['run', '--kernel', junk, '--memory', 'lots'], /invalid memory size "lots"/));
  test('memory too small', () => expectOneLineError(['run', '--kernel', junk, '--memory', '1M'], /too small/));
  test('memory too large for the host', () => expectOneLineError(['run', '--kernel', junk, '--memory', '60G'], /more than this host has|too large/));
  test('--cpus 0', () => expectOneLineError(['run', '--kernel', junk, '--cpus', '0'], /CPU count 0 is out of range/));
  test('--cpus 1000', () => expectOneLineError(['run', '--kernel', junk, '--cpus', '1000'], /CPU count 1000 is out of range/));
  test('unknown flag', () => expectOneLineError(['run', '--kernel', junk, '--frobnicate'], /frobnicate/));
});

describe('help and version', () => {
  test('--help prints usage and exits 0', async () => {
    const r = await runCli(['--help']);
    assert.equal(r.status, 0);
    assert.match(r.stdout, /typevisor run \[--kernel FILE\]/);
  });
  test('--version prints the package version', async () => {
    const r = await runCli(['--version']);
    assert.equal(r.status, 0);
    assert.match(r.stdout, /^typevisor \d+\.\d+\.\d+\n$/);
  });
});
