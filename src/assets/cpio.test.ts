import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listCpio, writeCpio } from './cpio.js';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

function hasTool(name: string): boolean {
  try {
    execFileSync(name, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

test('records are 4-byte aligned newc headers ending with TRAILER!!!', () => {
  const a = writeCpio([{ kind: 'file', path: 'init', data: text('#!/bin/sh\n'), mode: 0o755 }]);
  const s = Buffer.from(a).toString('latin1');
  assert.ok(s.startsWith('070701'));
  assert.equal(a.length % 4, 0);
  assert.ok(s.includes('TRAILER!!!'));
  // mode field (2nd field) of the first record: 0o100755
  assert.equal(parseInt(s.slice(6 + 8, 6 + 16), 16), 0o100755);
  // filesize field (7th field)
  assert.equal(parseInt(s.slice(6 + 48, 6 + 56), 16), 10);
});

test('bad paths are refused', () => {
  assert.throws(() => writeCpio([{ kind: 'dir', path: '../etc' }]), /invalid cpio path/);
  assert.throws(() => writeCpio([{ kind: 'dir', path: '/' }]), /invalid cpio path/);
});

test('GNU cpio extracts what we write, byte for byte', { skip: hasTool('cpio') ? false : 'the cpio tool is not installed (only used as an oracle)' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'tv-cpio-'));
  try {
    const blob = new Uint8Array(5000).map((_, i) => (i * 7) & 0xff);
    const archive = writeCpio([
      { kind: 'dir', path: 'bin' },
      { kind: 'file', path: '/bin/tool', data: blob, mode: 0o755 },
      { kind: 'symlink', path: 'bin/sh', target: 'tool' },
      { kind: 'file', path: './etc-motd', data: text('hi') },
    ]);
    writeFileSync(join(dir, 'a.cpio'), archive);
    execFileSync('sh', ['-c', 'mkdir out && cd out && cpio -id --quiet < ../a.cpio'], { cwd: dir });
    assert.deepEqual(new Uint8Array(readFileSync(join(dir, 'out/bin/tool'))), blob);
    assert.equal(statSync(join(dir, 'out/bin/tool')).mode & 0o777, 0o755);
    assert.equal(readlinkSync(join(dir, 'out/bin/sh')), 'tool');
    assert.equal(readFileSync(join(dir, 'out/etc-motd'), 'utf8'), 'hi');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('listCpio reads back concatenated archives and stops where a compressed tail begins', () => {
  const first = writeCpio([{ kind: 'dir', path: 'kernel' }, { kind: 'file', path: 'kernel/ucode.bin', data: text('abc') }]);
  const second = writeCpio([{ kind: 'symlink', path: 'bin', target: 'usr/bin' }, { kind: 'file', path: 'init', data: text('#!/bin/sh\n'), mode: 0o755 }]);
  const tail = new Uint8Array([0x1f, 0x8b, 8, 0]);
  const joined = new Uint8Array(first.length + 512 + second.length + tail.length);
  joined.set(first, 0);
  joined.set(second, first.length + 512);
  joined.set(tail, first.length + 512 + second.length);
  const { names, end } = listCpio(joined);
  assert.deepEqual(names, ['kernel', 'kernel/ucode.bin', 'bin', 'init']);
  assert.equal(end, joined.length - tail.length);
  assert.throws(() => listCpio(first.subarray(0, 240)), /truncated cpio header at offset 120/);
  assert.throws(() => listCpio(first.subarray(0, 250)), /truncated cpio member "kernel\/ucode.bin" at offset 120/);
});
