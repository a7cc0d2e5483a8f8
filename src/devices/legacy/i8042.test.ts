/** Tests for the i8042 controller: Linux's probe sequence, keyboard commands, IRQ1 and the reset paths. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { I8042Controller, I8042_INITIAL_COMMAND_BYTE } from './i8042.js';
import { EventLog, RecordingInterruptController } from '../fakes.js';

function makeController(withAux = false) {
  const pic = new RecordingInterruptController();
  const log = new EventLog();
  const kbc = new I8042Controller({
    keyboardIrq: pic.line(1),
    ...(withAux ? { auxIrq: pic.line(12) } : {}),
    onSystemEvent: log.sink,
  });
  const status = () => kbc.commandPort.read(0, 1);
  const command = (v: number) => {
    assert.equal(status() & 0x02, 0, 'input buffer never busy');
    kbc.commandPort.write(0, 1, v);
  };
  const data = (v: number) => kbc.dataPort.write(0, 1, v);
  /** Reads one byte the way Linux's i8042_wait_read does: fail if none arrives. */
  const readByte = () => {
    assert.equal(status() & 0x01, 1, 'output buffer full');
    return kbc.dataPort.read(0, 1);
  };
  return { pic, log, kbc, status, command, data, readByte };
}

void test('Linux i8042 probe: flush, self-test, command byte round trip, interface tests', () => {
  const { status, command, data, readByte, kbc } = makeController();
  assert.equal(status() & 0x01, 0, 'nothing to flush');
  command(0xaa);
  assert.equal(readByte(), 0x55);
  assert.ok(status() & 0x04, 'system flag after self-test');
  command(0x20);
  const ctr = readByte();
  assert.equal(ctr, I8042_INITIAL_COMMAND_BYTE);
  command(0x60);
  data((ctr | 0x10) & ~0x01);
  command(0x20);
  assert.equal(readByte(), (ctr | 0x10) & ~0x01);
  assert.equal(kbc.commandByte, (ctr | 0x10) & ~0x01);
  command(0xab);
  assert.equal(readByte(), 0x00);
  command(0xad);
  assert.ok(kbc.commandByte & 0x10);
  command(0xae);
  assert.equal(kbc.commandByte & 0x10, 0);
});

void test('AUX loopback answers with AUXDATA; port enable bits follow 0xA7/0xA8; empty mouse NAKs with timeout', () => {
  const { status, command, data, readByte, kbc, pic } = makeController(true);
  command(0xd3);
  data(0x5a);
  assert.ok(status() & 0x20, 'AUXDATA');
  assert.equal(readByte(), 0x5a);
  command(0xa8);
  assert.equal(kbc.commandByte & 0x20, 0);
  command(0xa7);
  assert.ok(kbc.commandByte & 0x20);
  command(0x60);
  data(0x47); // both interrupts on, AUX enabled
  command(0xd3);
  data(0xa5);
  assert.equal(pic.level(12), true, 'IRQ12 for AUX data');
  assert.equal(pic.level(1), false);
  assert.equal(readByte(), 0xa5);
  assert.equal(pic.level(12), false);
  command(0xd4);
  data(0xf2);
  assert.equal(status() & 0x60, 0x60, 'AUXDATA and timeout');
  assert.equal(readByte(), 0xfe);
});

void test('keyboard commands: reset, identify with translation, LEDs, scan set, enable', () => {
  const { command, data, readByte, pic } = makeController();
  data(0xff);
  assert.equal(pic.level(1), true, 'IRQ1 while keyboard data is pending');
  assert.equal(readByte(), 0xfa);
  assert.equal(pic.level(1), true, 'next byte keeps the line up (fresh edge)');
  assert.equal(readByte(), 0xaa);
  assert.equal(pic.level(1), false);
  assert.equal(pic.edges(1), 2);
  data(0xf2);
  assert.deepEqual([readByte(), readByte(), readByte()], [0xfa, 0xab, 0x41]);
  data(0xed);
  assert.equal(readByte(), 0xfa);
  data(0x07);
  assert.equal(readByte(), 0xfa);
  data(0xf0);
  assert.equal(readByte(), 0xfa);
  data(0x00);
  assert.deepEqual([readByte(), readByte()], [0xfa, 0x02]);
  data(0xf4);
  assert.equal(readByte(), 0xfa);
  data(0xee);
  assert.equal(readByte(), 0xee);
  // With keyboard interrupts off in the command byte, IRQ1 stays low.
  command(0x60);
  data(0x44);
  data(0xf4);
  assert.equal(pic.level(1), false);
  assert.equal(readByte(), 0xfa);
});

void test('reboot=k: command 0xFE pulses reset; 0xFF pulses nothing', () => {
  const { command, log } = makeController();
  command(0xff);
  assert.equal(log.events.length, 0);
  command(0xfe);
  assert.deepEqual(log.events, [{ kind: 'reset' }]);
});

void test('kvm-unit-tests init: output port read, then write with bit 0 clear resets', () => {
  const { command, data, readByte, log, status } = makeController();
  command(0xd0);
  const port = readByte();
  assert.equal(port & 0x03, 0x03, 'reset inactive, A20 on');
  while (status() & 0x02);
  command(0xd1);
  data(port | 0x01);
  assert.equal(log.events.length, 0);
  command(0xd1);
  data(port & ~0x01);
  assert.deepEqual(log.events, [{ kind: 'reset' }]);
});

void test('reading an empty output buffer returns the last byte and changes nothing', () => {
  const { command, readByte, kbc, status } = makeController();
  command(0xaa);
  assert.equal(readByte(), 0x55);
  assert.equal(status() & 0x01, 0);
  assert.equal(kbc.dataPort.read(0, 1), 0x55);
  assert.ok(status() & 0x08, 'last write was a command');
});
