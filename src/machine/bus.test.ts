import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bus, BusConflictError, PortBus, type BusDevice } from './bus.js';

class Recorder implements BusDevice {
  readonly log: string[] = [];
  read(offset: number, size: number): number {
    this.log.push(`r${offset}/${size}`);
    return 0x40 + offset;
  }
  write(offset: number, size: number, value: number): void {
    this.log.push(`w${offset}/${size}=${value}`);
  }
}

test('port bus routes accesses with offsets relative to the device base', () => {
  const bus = new PortBus();
  const uart = new Recorder();
  bus.insert(0x3f8, 8, uart, 'uart');
  assert.equal(bus.read(0x3fd, 1), 0x45);
  bus.write(0x3f8, 1, 0x41);
  assert.deepEqual(uart.log, ['r5/1', 'w0/1=65']);
});

test('unclaimed ports and MMIO read as all ones and drop writes', () => {
  const ports = new PortBus();
  assert.equal(ports.read(0x1234, 1), 0xff);
  assert.equal(ports.read(0x1234, 2), 0xffff);
  assert.equal(ports.read(0x1234, 4), 0xffffffff);
  const mmio = new Bus();
  assert.equal(mmio.read(0xfed00000, 4), 0xffffffff);
  mmio.write(0xfed00000, 4, 1);
});

test('an access that runs past the end of a range is not delivered', () => {
  const bus = new PortBus();
  const dev = new Recorder();
  bus.insert(0x70, 2, dev, 'rtc');
  assert.equal(bus.read(0x71, 2), 0xffff);
  assert.deepEqual(dev.log, []);
});

test('overlapping ranges are refused', () => {
  const bus = new Bus();
  bus.insert(0x1000, 0x100, new Recorder(), 'a');
  assert.throws(() => bus.insert(0x10ff, 0x10, new Recorder(), 'b'), BusConflictError);
  bus.insert(0x1100, 0x10, new Recorder(), 'c');
});

test('MMIO bus finds ranges by binary search across many devices and supports removal', () => {
  const bus = new Bus();
  const devs = Array.from({ length: 50 }, () => new Recorder());
  devs.forEach((d, i) => bus.insert(0xd0000000 + i * 0x1000, 0x1000, d, `d${i}`));
  for (let i = 49; i >= 0; i -= 7) assert.equal(bus.read(0xd0000000 + i * 0x1000 + 4, 4), 0x44);
  assert.equal(bus.find(0xd0000000 + 0x31ff0)?.name, 'd49');
  assert.ok(bus.remove(0xd0000000));
  assert.equal(bus.find(0xd0000010), undefined);
});

test('port bus removal frees the ports', () => {
  const bus = new PortBus();
  bus.insert(0x60, 1, new Recorder(), 'kbd');
  assert.ok(bus.remove(0x60));
  assert.equal(bus.find(0x60), undefined);
  bus.insert(0x60, 1, new Recorder(), 'kbd2');
  assert.equal(bus.find(0x60)?.name, 'kbd2');
});
