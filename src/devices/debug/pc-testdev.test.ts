/** Tests for pc-testdev as kvm-unit-tests uses it. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PcTestdev, PC_TESTDEV_MMIO_SIZE } from './pc-testdev.js';
import { RecordingInterruptController } from '../fakes.js';

void test('scratch register at 0xe0: widths and byte offsets (emulator.c / realmode.c io tests)', () => {
  const dev = new PcTestdev({ interrupts: new RecordingInterruptController() });
  const io = dev.ioPorts;
  io.write(0, 1, 0xab);
  assert.equal(io.read(0, 1), 0xab);
  io.write(0, 2, 0x9999);
  assert.equal(io.read(0, 2), 0x9999);
  io.write(0, 4, 0x12345678);
  assert.equal(io.read(0, 4), 0x12345678);
  assert.equal(io.read(1, 1), 0x56);
  assert.equal(io.read(2, 2), 0x1234);
  io.write(3, 1, 0xff);
  assert.equal(io.read(0, 4), 0xff345678);
  assert.equal(io.read(3, 4), 0xff, 'bytes past the register are dropped');
  // 0xe8-0xeb: the same register, byte-wise.
  assert.equal(io.read(8, 4), 0xff345678);
  io.write(9, 1, 0x00);
  assert.equal(io.read(0, 4), 0xff340078);
});

void test('flush-page port forwards the page address; reads 0', () => {
  const pages: number[] = [];
  const dev = new PcTestdev({ interrupts: new RecordingInterruptController(), onFlushPage: (p) => pages.push(p) });
  dev.ioPorts.write(4, 4, 0x12345abc);
  assert.deepEqual(pages, [0x12345000]);
  assert.equal(dev.ioPorts.read(4, 4), 0);
  assert.equal(dev.ioPorts.read(0, 4), 0, 'scratch untouched');
});

void test('IRQ-line ports drive GSIs (ioapic.c set_irq_line)', () => {
  const pic = new RecordingInterruptController();
  const dev = new PcTestdev({ interrupts: pic });
  dev.irqPorts.write(0x0e, 1, 1);
  assert.equal(pic.level(0x0e), true);
  dev.irqPorts.write(0x0e, 1, 0);
  assert.equal(pic.level(0x0e), false);
  dev.irqPorts.write(23, 1, 2);
  assert.equal(pic.level(23), true);
  dev.irqPorts.write(24, 1, 1);
  assert.equal(pic.levels.has(24), false);
});

void test('iomem: little-endian scratch memory of 64 KiB', () => {
  const dev = new PcTestdev({ interrupts: new RecordingInterruptController() });
  const m = dev.iomem;
  m.write(0x100, 4, 0xdeadbeef);
  assert.equal(m.read(0x100, 1), 0xef);
  assert.equal(m.read(0x102, 2), 0xdead);
  m.write(PC_TESTDEV_MMIO_SIZE - 4, 4, 0x01020304);
  assert.equal(m.read(PC_TESTDEV_MMIO_SIZE - 4, 4), 0x01020304);
  assert.equal(m.read(PC_TESTDEV_MMIO_SIZE - 1, 2), 0xffff, 'out of range reads float');
});
