import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeExit, exitStatusFor, ExitStatus } from './exit-status.js';

test('debug-exit status is (v << 1) | 1, truncated to 8 bits like a process status', () => {
  assert.equal(exitStatusFor({ kind: 'debug-exit', value: 0 }), 1);
  assert.equal(exitStatusFor({ kind: 'debug-exit', value: 7 }), 15);
  assert.equal(exitStatusFor({ kind: 'debug-exit', value: 0x80 }), 1);
});

test('normal ends are 0, failures are distinct even statuses with a message', () => {
  assert.equal(exitStatusFor({ kind: 'poweroff' }), 0);
  assert.equal(exitStatusFor({ kind: 'stopped' }), 0);
  assert.equal(describeExit({ kind: 'poweroff' }), undefined);
  assert.equal(exitStatusFor({ kind: 'triple-fault', vcpu: 1 }), ExitStatus.TRIPLE_FAULT);
  assert.match(describeExit({ kind: 'triple-fault', vcpu: 1 })!, /triple fault on vCPU 1/);
  assert.equal(exitStatusFor({ kind: 'internal-error', message: 'x' }), ExitStatus.INTERNAL_ERROR);
  assert.match(describeExit({ kind: 'internal-error', message: 'suberror 1', vcpu: 0 })!, /vCPU 0: suberror 1/);
  for (const s of Object.values(ExitStatus)) assert.equal(s % 2, 0);
});
