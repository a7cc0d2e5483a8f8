/** Tests for isa-debug-exit. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DebugExit, debugExitStatus } from './debug-exit.js';
import { EventLog } from '../fakes.js';

void test('writes raise debug-exit with the value; reads return 0', () => {
  const log = new EventLog();
  const dev = new DebugExit(log.sink);
  dev.write(0, 4, 0); // kvm-unit-tests: outl(code, 0xf4)
  dev.write(0, 1, 0x1ff); // outb truncates to the access width
  dev.write(0, 4, 0xdeadbeef);
  assert.deepEqual(log.events, [
    { kind: 'debug-exit', value: 0 },
    { kind: 'debug-exit', value: 0xff },
    { kind: 'debug-exit', value: 0xdeadbeef },
  ]);
  assert.equal(dev.read(0, 4), 0);
  assert.equal(dev.read(3, 1), 0);
});

void test('QEMU-compatible process status: (v << 1) | 1, truncated to 8 bits', () => {
  assert.equal(debugExitStatus(0), 1);
  assert.equal(debugExitStatus(1), 3);
  assert.equal(debugExitStatus(0x80), 1);
});
