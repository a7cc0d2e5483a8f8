/** Tests for the 0xcf9 reset control register and System Control Port A. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ResetControl, SystemControlPortA } from './reset-control.js';
import { EventLog } from '../fakes.js';

void test('0xcf9: bit 2 resets (0x06 and 0x0e, and kvm-unit-tests 0 then 4); other writes do not', () => {
  const log = new EventLog();
  const rcr = new ResetControl(log.sink);
  rcr.write(0, 1, 0x02);
  assert.equal(rcr.read(0, 1), 0x02);
  assert.equal(log.events.length, 0);
  rcr.write(0, 1, 0x06);
  rcr.write(0, 1, 0x0e);
  rcr.write(0, 1, 0x00);
  rcr.write(0, 1, 0x04);
  assert.deepEqual(log.events, [{ kind: 'reset' }, { kind: 'reset' }, { kind: 'reset' }]);
  assert.equal(rcr.read(0, 1) & 0x04, 0, 'RST_CPU is not latched');
});

void test('port 0x92: rising edge of bit 0 resets; A20 bit reads back', () => {
  const log = new EventLog();
  const portA = new SystemControlPortA(log.sink);
  assert.equal(portA.read(0, 1) & 0x02, 0x02);
  portA.write(0, 1, 0x02);
  portA.write(0, 1, 0x03);
  portA.write(0, 1, 0x03);
  assert.deepEqual(log.events, [{ kind: 'reset' }]);
  assert.equal(portA.read(0, 1) & 0x01, 1, 'bit 0 stays set across a soft reset');
  portA.reset();
  assert.equal(portA.read(0, 1), 0x02);
});
