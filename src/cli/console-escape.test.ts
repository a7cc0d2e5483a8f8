import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConsoleEscapeFilter } from './console-escape.js';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

test('plain input passes through', () => {
  const f = new ConsoleEscapeFilter();
  const r = f.feed(bytes('ls -l\r'));
  assert.deepEqual([...r.forward], [...bytes('ls -l\r')]);
  assert.deepEqual(r.commands, []);
});

test('Ctrl-A x quits, even when split across reads', () => {
  const f = new ConsoleEscapeFilter();
  assert.deepEqual(f.feed(bytes('a\x01')).commands, []);
  const r = f.feed(bytes('xb'));
  assert.deepEqual(r.commands, ['quit']);
  assert.deepEqual([...r.forward], [0x62]);
});

test('Ctrl-A Ctrl-A sends one Ctrl-A; Ctrl-A h asks for help; other escapes are swallowed', () => {
  const f = new ConsoleEscapeFilter();
  const r = f.feed(Uint8Array.from([1, 1, 1, 0x68, 1, 0x7a, 0x41]));
  assert.deepEqual([...r.forward], [1, 0x41]);
  assert.deepEqual(r.commands, ['help']);
});
