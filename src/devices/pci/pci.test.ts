import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bus, PortBus, type BusDevice } from '../../machine/bus.js';
import { PCI_MMIO_START } from '../../machine/layout.js';
import { RecordingInterruptController } from '../fakes.js';
import { PciCapabilityId, PciCommand, PciReg, PciStatus } from './config-space.js';
import { Msix } from './msix.js';
import { PciFunction } from './pci-function.js';
import { PciHost } from './pci-host.js';

class Region implements BusDevice {
  readonly words = new Map<number, number>();
  read(offset: number): number {
    return this.words.get(offset) ?? 0x5a5a5a5a;
  }
  write(offset: number, _size: number, value: number): void {
    this.words.set(offset, value);
  }
}

function setup() {
  const mmio = new Bus();
  const ports = new PortBus();
  const irq = new RecordingInterruptController();
  const narrow: string[] = [];
  const host = new PciHost({
    mmio, ports, interrupts: irq,
    narrowPorts: { read: (o) => (o === 1 ? 0x02 : 0xff), write: (o, _s, v) => void narrow.push(`${o}=${v}`) },
  });
  ports.insert(0xcf8, 4, host.addressPort, 'pci-address');
  ports.insert(0xcfc, 4, host.dataPort, 'pci-data');
  const cfg = {
    read(slot: number, offset: number, size: 1 | 2 | 4): number {
      ports.write(0xcf8, 4, (0x80000000 | (slot << 11) | (offset & 0xfc)) >>> 0);
      return ports.read(0xcfc + (offset & 3), size);
    },
    write(slot: number, offset: number, size: 1 | 2 | 4, value: number): void {
      ports.write(0xcf8, 4, (0x80000000 | (slot << 11) | (offset & 0xfc)) >>> 0);
      ports.write(0xcfc + (offset & 3), size, value);
    },
  };
  return { mmio, ports, irq, host, cfg, narrow };
}

function testFunction() {
  const fn = new PciFunction({ vendorId: 0x1af4, deviceId: 0x1042, classCode: 0x010000, revision: 1, subsystemVendorId: 0x1af4, subsystemId: 0x1100 });
  const bar0 = new Region();
  const bar2 = new Region();
  fn.defineBar({ index: 0, kind: 'mem64', size: 0x8000, device: bar0 });
  fn.defineBar({ index: 2, kind: 'mem32', size: 0x1000, device: bar2 });
  return { fn, bar0, bar2 };
}

test('mechanism #1 as Linux probes it: 0xcf8 dword round-trips, narrow accesses go to the reset register, host bridge class', () => {
  const { ports, cfg, narrow } = setup();
  ports.write(0xcfb, 1, 0x01); // pci_check_type1's outb(0x01, 0xCFB)
  ports.write(0xcf8, 4, 0x80000000);
  assert.equal(ports.read(0xcf8, 4), 0x80000000);
  assert.equal(ports.read(0xcf9, 1), 0x02);
  ports.write(0xcf9, 1, 0x06);
  assert.deepEqual(narrow, ['3=1', '1=6']);
  assert.equal(cfg.read(0, PciReg.VENDOR_ID, 2), 0x1b36);
  assert.equal(cfg.read(0, 0x08, 4) >>> 16, 0x0600); // class: host bridge
  // Empty slots, other functions and other buses read as all ones.
  assert.equal(cfg.read(5, 0, 4), 0xffffffff);
  ports.write(0xcf8, 4, 0x80000100); // 00:00.1
  assert.equal(ports.read(0xcfc, 4), 0xffffffff);
  ports.write(0xcf8, 4, 0x80010000); // bus 1
  assert.equal(ports.read(0xcfc, 2), 0xffff);
  ports.write(0xcf8, 4, 0x00000000); // enable bit clear
  assert.equal(ports.read(0xcfc, 4), 0xffffffff);
});

test('byte and word accesses to the data window select the right register bytes', () => {
  const { host, cfg } = setup();
  const { fn } = testFunction();
  const slot = host.addDevice(fn, 'dev');
  assert.equal(cfg.read(slot, 0x00, 4), 0x10421af4);
  assert.equal(cfg.read(slot, 0x02, 2), 0x1042);
  assert.equal(cfg.read(slot, 0x03, 1), 0x10);
  assert.equal(cfg.read(slot, 0x08, 1), 1); // revision
  assert.equal(cfg.read(slot, PciReg.SUBSYSTEM_ID, 2), 0x1100);
  cfg.write(slot, PciReg.INTERRUPT_LINE, 1, 0x0b);
  assert.equal(cfg.read(slot, PciReg.INTERRUPT_LINE, 1), 0x0b);
  assert.equal(cfg.read(slot, PciReg.INTERRUPT_PIN, 1), 1);
  cfg.write(slot, PciReg.VENDOR_ID, 2, 0x1234); // read-only
  assert.equal(cfg.read(slot, PciReg.VENDOR_ID, 2), 0x1af4);
});

test('BAR sizing: all ones reads back the size mask with type bits; 64-bit upper half; restore maps again', () => {
  const { host, cfg, mmio } = setup();
  const { fn, bar0, bar2 } = testFunction();
  const slot = host.addDevice(fn, 'dev');
  const bar0Address = (cfg.read(slot, 0x10, 4) & ~0xf) >>> 0;
  assert.equal(bar0Address % 0x8000, 0);
  assert.ok(bar0Address >= PCI_MMIO_START);
  assert.equal(cfg.read(slot, 0x10, 4) & 0xf, 0x4); // 64-bit, non-prefetchable
  assert.equal(cfg.read(slot, 0x18, 4) & 0xf, 0x0); // 32-bit
  // Decoding is off until the guest sets COMMAND.MEMORY.
  assert.equal(mmio.find(bar0Address), undefined);
  cfg.write(slot, PciReg.COMMAND, 2, PciCommand.MEMORY_SPACE);
  assert.equal(mmio.find(bar0Address)?.device, bar0);
  // Linux's __pci_read_base: decode off, write ~0, read, restore.
  cfg.write(slot, PciReg.COMMAND, 2, 0);
  const saved = cfg.read(slot, 0x10, 4);
  const savedHigh = cfg.read(slot, 0x14, 4);
  cfg.write(slot, 0x10, 4, 0xffffffff);
  cfg.write(slot, 0x14, 4, 0xffffffff);
  assert.equal(cfg.read(slot, 0x10, 4), (0xffff8000 | 0x4) >>> 0);
  assert.equal(cfg.read(slot, 0x14, 4), 0xffffffff);
  cfg.write(slot, 0x18, 4, 0xffffffff);
  assert.equal(cfg.read(slot, 0x18, 4), 0xfffff000);
  cfg.write(slot, 0x10, 4, saved);
  cfg.write(slot, 0x14, 4, savedHigh);
  cfg.write(slot, 0x18, 4, 0xd0000000);
  // Undefined BARs read as zero and stay zero.
  cfg.write(slot, 0x20, 4, 0xffffffff);
  assert.equal(cfg.read(slot, 0x20, 4), 0);
  cfg.write(slot, PciReg.COMMAND, 2, PciCommand.MEMORY_SPACE);
  assert.equal(mmio.find(bar0Address)?.device, bar0);
  assert.equal(mmio.find(0xd0000000)?.device, bar2);
  assert.equal(mmio.read(0xd0000004, 4), 0x5a5a5a5a);
});

test('the guest moving a BAR moves the bus range and tells the function; overlapping BARs stay undecoded', () => {
  const { host, cfg, mmio } = setup();
  const a = testFunction();
  const b = testFunction();
  const moves: string[] = [];
  a.fn.barMoved = (i, addr) => void moves.push(`${i}@${addr?.toString(16)}`);
  const sa = host.addDevice(a.fn, 'a');
  const sb = host.addDevice(b.fn, 'b');
  cfg.write(sa, PciReg.COMMAND, 2, PciCommand.MEMORY_SPACE);
  cfg.write(sb, PciReg.COMMAND, 2, PciCommand.MEMORY_SPACE);
  const old = (cfg.read(sa, 0x10, 4) & ~0xf) >>> 0;
  cfg.write(sa, 0x10, 4, 0xe0000000);
  assert.equal(mmio.find(old), undefined);
  assert.equal(mmio.find(0xe0000010)?.device, a.bar0);
  assert.ok(moves.includes('0@e0000000'));
  // b's BAR 0 onto a's: refused, b's BAR 0 no longer decodes.
  cfg.write(sb, 0x10, 4, 0xe0000000);
  assert.equal(mmio.find(0xe0000010)?.device, a.bar0);
  // A 64-bit BAR above 2^53 cannot be decoded.
  cfg.write(sa, 0x14, 4, 0xffffffff);
  assert.equal(mmio.find(0xe0000010), undefined);
  cfg.write(sa, 0x14, 4, 0);
  assert.equal(mmio.find(0xe0000010)?.device, a.bar0);
});

test('INTx: pin A routed by slot, INTX_DISABLE gates it, status bit 3 follows, shared GSIs are ORed', () => {
  const { host, cfg, irq } = setup();
  const a = testFunction();
  const slot = host.addDevice(a.fn, 'a');
  const gsi = PciHost.intxGsi(slot);
  assert.equal(gsi, 16 + slot);
  assert.deepEqual(host.intxRoutes().filter((r) => r.pin === 0), [{ slot, pin: 0, gsi }]);
  a.fn.setIntx(true);
  assert.equal(irq.level(gsi), true);
  assert.ok(cfg.read(slot, PciReg.STATUS, 2) & PciStatus.INTERRUPT);
  cfg.write(slot, PciReg.COMMAND, 2, PciCommand.INTX_DISABLE);
  assert.equal(irq.level(gsi), false);
  assert.ok(cfg.read(slot, PciReg.STATUS, 2) & PciStatus.INTERRUPT);
  cfg.write(slot, PciReg.COMMAND, 2, 0);
  assert.equal(irq.level(gsi), true);
  a.fn.setIntx(false);
  assert.equal(irq.level(gsi), false);
  // Two devices on the same GSI (slots s and s+8).
  const b = testFunction();
  const c = testFunction();
  const sb = host.addDevice(b.fn, 'b', 9);
  const sc = host.addDevice(c.fn, 'c', 17);
  assert.equal(PciHost.intxGsi(sb), PciHost.intxGsi(sc));
  b.fn.setIntx(true);
  c.fn.setIntx(true);
  b.fn.setIntx(false);
  assert.equal(irq.level(PciHost.intxGsi(sb)), true);
  c.fn.setIntx(false);
  assert.equal(irq.level(PciHost.intxGsi(sb)), false);
});

test('capability list walk as pci_find_capability does it, and MSI-X masking and pending bits', () => {
  const { host, cfg, irq } = setup();
  const { fn } = testFunction();
  const vendor = fn.config.addCapability(PciCapabilityId.VENDOR_SPECIFIC, 16);
  const msix = new Msix({ config: fn.config, vectors: 3, tableBar: 0, tableOffset: 0x4000, pbaBar: 0, pbaOffset: 0x5000, deliver: (_v, a, d) => irq.signalMsi(a, d) });
  const slot = host.addDevice(fn, 'dev');
  assert.ok(cfg.read(slot, PciReg.STATUS, 2) & PciStatus.CAPABILITIES_LIST);
  const found: number[] = [];
  let at = cfg.read(slot, PciReg.CAPABILITIES_POINTER, 1) & ~3;
  for (let guard = 0; at !== 0 && guard < 48; guard++) {
    found.push(cfg.read(slot, at, 1));
    at = cfg.read(slot, at + 1, 1) & ~3;
  }
  assert.deepEqual(found, [PciCapabilityId.VENDOR_SPECIFIC, PciCapabilityId.MSIX]);
  const cap = msix.capabilityOffset;
  assert.ok(cap > vendor);
  assert.equal(cfg.read(slot, cap + 2, 2) & 0x7ff, 2); // table size - 1
  assert.equal(cfg.read(slot, cap + 4, 4), 0x4000);
  assert.equal(cfg.read(slot, cap + 8, 4), 0x5000);
  // Program vector 1 while masked: signalling leaves it pending.
  msix.tableWrite(16, 4, 0xfee00000);
  msix.tableWrite(20, 4, 0);
  msix.tableWrite(24, 4, 0x4041);
  cfg.write(slot, cap + 2, 2, 0x8000); // enable
  msix.controlWritten();
  msix.signal(1);
  assert.equal(irq.msis.length, 0);
  assert.equal(msix.pbaRead(0, 4), 2);
  msix.tableWrite(28, 4, 0); // unmask → delivered
  assert.deepEqual(irq.msis, [{ address: 0xfee00000, data: 0x4041 }]);
  assert.equal(msix.pbaRead(0, 4), 0);
  // Function mask holds it pending; clearing the function mask delivers it.
  cfg.write(slot, cap + 2, 2, 0xc000);
  msix.controlWritten();
  msix.signal(1);
  assert.equal(irq.msis.length, 1);
  cfg.write(slot, cap + 2, 2, 0x8000);
  msix.controlWritten();
  assert.equal(irq.msis.length, 2);
  // Disabled: nothing is delivered; out-of-range vectors are ignored; odd widths read as zero.
  cfg.write(slot, cap + 2, 2, 0);
  msix.signal(1);
  msix.signal(7);
  assert.equal(irq.msis.length, 2);
  assert.equal(msix.tableRead(16, 2), 0);
  assert.equal(msix.tableRead(24, 4), 0x4041);
  assert.equal(msix.tableRead(0x1000, 4), 0);
});
