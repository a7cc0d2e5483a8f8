import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bus, PortBus } from '../../machine/bus.js';
import { GuestMemory } from '../../machine/memory.js';
import { MiB } from '../../machine/layout.js';
import { RecordingInterruptController } from '../fakes.js';
import { PciCapabilityId, PciCommand, PciReg } from '../pci/config-space.js';
import { PciHost } from '../pci/pci-host.js';
import { VirtioRng } from './rng.js';
import { TestVirtioDriver, ringBase } from './test-driver.js';
import { CommonCfg, VirtioPciCap, VirtioPciFunction, VirtioPciLayout } from './virtio-pci.js';
import { VIRTIO_MSI_NO_VECTOR, VirtioFeature, VirtioStatus, featureWords } from './virtio.js';
import { VIRTQ_DESC_F_NEXT } from './virtqueue.js';

function setup() {
  const memory = GuestMemory.allocate(16 * MiB);
  const irq = new RecordingInterruptController();
  const rng = new VirtioRng();
  const fn = new VirtioPciFunction({ device: rng, memory, interrupts: irq });
  const mmio = new Bus();
  const ports = new PortBus();
  const host = new PciHost({ mmio, ports, interrupts: irq });
  ports.insert(0xcf8, 4, host.addressPort, 'pci-address');
  ports.insert(0xcfc, 4, host.dataPort, 'pci-data');
  const slot = host.addDevice(fn, 'virtio-rng');
  const cfg = (offset: number, size: 1 | 2 | 4): number => {
    ports.write(0xcf8, 4, (0x80000000 | (slot << 11) | (offset & 0xfc)) >>> 0);
    return ports.read(0xcfc + (offset & 3), size);
  };
  const setCfg = (offset: number, size: 1 | 2 | 4, value: number): void => {
    ports.write(0xcf8, 4, (0x80000000 | (slot << 11) | (offset & 0xfc)) >>> 0);
    ports.write(0xcfc + (offset & 3), size, value);
  };
  return { memory, irq, rng, fn, mmio, host, slot, cfg, setCfg, driver: new TestVirtioDriver(fn, memory) };
}

test('Linux virtio_pci_modern_probe view: IDs, and the vendor capabilities found by walking the list', () => {
  const { cfg, setCfg, mmio } = setup();
  assert.equal(cfg(PciReg.VENDOR_ID, 2), 0x1af4);
  assert.equal(cfg(PciReg.DEVICE_ID, 2), 0x1044); // 0x1040 + entropy
  assert.equal(cfg(PciReg.REVISION_ID, 1), 1);
  assert.equal(cfg(PciReg.SUBSYSTEM_VENDOR_ID, 2), 0x1af4);
  const caps = new Map<number, { bar: number; offset: number; length: number; at: number }>();
  let msix = 0;
  for (let at = cfg(PciReg.CAPABILITIES_POINTER, 1), n = 0; at !== 0 && n < 48; at = cfg(at + 1, 1), n++) {
    const id = cfg(at, 1);
    if (id === PciCapabilityId.MSIX) msix = at;
    if (id !== PciCapabilityId.VENDOR_SPECIFIC) continue;
    caps.set(cfg(at + 3, 1), { bar: cfg(at + 4, 1), offset: cfg(at + 8, 4), length: cfg(at + 12, 4), at });
  }
  assert.deepEqual([...caps.keys()].sort(), [VirtioPciCap.COMMON, VirtioPciCap.NOTIFY, VirtioPciCap.ISR, VirtioPciCap.PCI_CFG].sort());
  assert.ok(caps.get(VirtioPciCap.COMMON)!.length >= 56);
  const notify = caps.get(VirtioPciCap.NOTIFY)!;
  assert.equal(cfg(notify.at + 2, 1), 20); // cap_len includes notify_off_multiplier
  assert.equal(cfg(notify.at + 16, 4), VirtioPciLayout.NOTIFY_MULTIPLIER);
  assert.ok(msix > 0);
  assert.equal(cfg(msix + 2, 2) & 0x7ff, 1); // 2 vectors: config + one queue
  // Enable decoding and reach the common config through the MMIO bus at BAR 0.
  const bar = (cfg(0x10, 4) & ~0xf) >>> 0;
  setCfg(PciReg.COMMAND, 2, PciCommand.MEMORY_SPACE | PciCommand.BUS_MASTER);
  assert.equal(mmio.read(bar + caps.get(VirtioPciCap.COMMON)!.offset + CommonCfg.NUM_QUEUES, 2), 1);
  // VIRTIO_PCI_CAP_PCI_CFG: bar/offset/length then pci_cfg_data reads that register.
  const pc = caps.get(VirtioPciCap.PCI_CFG)!.at;
  setCfg(pc + 4, 1, 0);
  setCfg(pc + 8, 4, CommonCfg.NUM_QUEUES);
  setCfg(pc + 12, 4, 2);
  assert.equal(cfg(pc + 16, 4) & 0xffff, 1);
});

test('feature negotiation: FEATURES_OK is refused without VERSION_1 or with unoffered bits; ACCESS_PLATFORM never offered', () => {
  const { driver } = setup();
  const offered = driver.deviceFeatures();
  assert.equal((offered[1] >>> 0) & 1, 1, 'VERSION_1 offered');
  assert.equal((offered[1] >>> 1) & 1, 0, 'ACCESS_PLATFORM not offered');
  assert.ok(offered[0] & (1 << VirtioFeature.RING_EVENT_IDX));
  assert.ok(offered[0] & (1 << VirtioFeature.INDIRECT_DESC));
  let status = driver.init({ accept: featureWords(VirtioFeature.RING_EVENT_IDX) });
  assert.equal(status & VirtioStatus.FEATURES_OK, 0);
  // Bits the device did not offer: written directly, bypassing the driver's masking.
  driver.setCommon(CommonCfg.DEVICE_STATUS, 1, 0);
  driver.setCommon(CommonCfg.DEVICE_STATUS, 1, 3);
  driver.setCommon(CommonCfg.DRIVER_FEATURE_SELECT, 4, 1);
  driver.setCommon(CommonCfg.DRIVER_FEATURE, 4, 0b11);
  driver.setCommon(CommonCfg.DEVICE_STATUS, 1, 3 | VirtioStatus.FEATURES_OK);
  assert.equal(driver.status & VirtioStatus.FEATURES_OK, 0);
  status = driver.init();
  assert.equal(status, VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER | VirtioStatus.FEATURES_OK | VirtioStatus.DRIVER_OK);
  // Feature writes after FEATURES_OK are ignored.
  driver.setCommon(CommonCfg.DRIVER_FEATURE_SELECT, 4, 0);
  const before = driver.common(CommonCfg.DRIVER_FEATURE, 4);
  driver.setCommon(CommonCfg.DRIVER_FEATURE, 4, 0);
  assert.equal(driver.common(CommonCfg.DRIVER_FEATURE, 4), before);
});

test('queue registers: size, addresses as 32-bit halves, MSI-X vector validity, and reset clears them', () => {
  const { driver } = setup();
  driver.init({ enableQueues: false });
  driver.setCommon(CommonCfg.QUEUE_SELECT, 2, 0);
  assert.equal(driver.common(CommonCfg.QUEUE_SIZE, 2), 64);
  driver.setCommon(CommonCfg.QUEUE_DESC_HI, 4, 1);
  assert.equal(driver.common(CommonCfg.QUEUE_DESC_HI, 4), 1);
  assert.equal(driver.common(CommonCfg.QUEUE_DESC_LO, 4), ringBase(0));
  driver.setCommon(CommonCfg.QUEUE_MSIX_VECTOR, 2, 1);
  assert.equal(driver.common(CommonCfg.QUEUE_MSIX_VECTOR, 2), 1);
  driver.setCommon(CommonCfg.QUEUE_MSIX_VECTOR, 2, 2); // only vectors 0 and 1 exist
  assert.equal(driver.common(CommonCfg.QUEUE_MSIX_VECTOR, 2), VIRTIO_MSI_NO_VECTOR);
  driver.setCommon(CommonCfg.QUEUE_SELECT, 2, 5);
  assert.equal(driver.common(CommonCfg.QUEUE_SIZE, 2), 0, 'no queue 5');
  driver.setCommon(CommonCfg.DEVICE_STATUS, 1, 0);
  assert.equal(driver.status, 0);
  driver.setCommon(CommonCfg.QUEUE_SELECT, 2, 0);
  assert.equal(driver.common(CommonCfg.QUEUE_DESC_HI, 4), 0);
  assert.equal(driver.common(CommonCfg.QUEUE_MSIX_VECTOR, 2), VIRTIO_MSI_NO_VECTOR);
});

test('virtio-rng fills the buffer; INTx with ISR (read clears and lowers the line)', () => {
  const { driver, memory, irq, slot, rng } = setup();
  driver.init();
  const gsi = PciHost.intxGsi(slot);
  driver.add(0, [{ address: 0x100000, length: 4096, writable: true }]);
  driver.kick(0);
  const used = driver.takeUsed(0);
  assert.deepEqual(used, [{ id: 0, len: 4096 }]);
  const bytes = memory.view(0x100000, 4096);
  assert.ok(bytes.some((b) => b !== 0));
  assert.equal(rng.bytesServed, 4096);
  assert.equal(irq.level(gsi), true);
  assert.equal(driver.readIsr(), 1);
  assert.equal(irq.level(gsi), false);
  assert.equal(driver.readIsr(), 0);
});

test('MSI-X: queue vector delivers the programmed message; NO_VECTOR sends nothing', () => {
  const { driver, irq, fn, setCfg } = setup();
  driver.init({ msix: true });
  const cap = fn.msix.capabilityOffset;
  setCfg(cap + 2, 2, 0x8000);
  driver.bar.write(VirtioPciLayout.MSIX_TABLE + 16, 4, 0xfee00000);
  driver.bar.write(VirtioPciLayout.MSIX_TABLE + 24, 4, 0x31);
  driver.bar.write(VirtioPciLayout.MSIX_TABLE + 28, 4, 0);
  driver.add(0, [{ address: 0x100000, length: 16, writable: true }]);
  driver.kick(0);
  assert.deepEqual(irq.msis, [{ address: 0xfee00000, data: 0x31 }]);
  driver.setCommon(CommonCfg.QUEUE_SELECT, 2, 0);
  assert.equal(driver.common(CommonCfg.QUEUE_MSIX_VECTOR, 2), 1);
});

test('a malformed ring sets DEVICE_NEEDS_RESET and raises the config interrupt; the device then ignores the queue until reset', () => {
  const { driver, fn, memory, irq, slot } = setup();
  driver.init();
  const table = ringBase(0);
  driver.writeDescriptor(table, 0, 0x100000, 16, VIRTQ_DESC_F_NEXT, 0); // loop
  driver.publish(0, 0);
  driver.kick(0);
  assert.ok(driver.status & VirtioStatus.DEVICE_NEEDS_RESET);
  assert.match(fn.core.lastError ?? '', /loop|longer/);
  assert.equal(driver.readIsr() & 2, 2);
  assert.equal(irq.level(PciHost.intxGsi(slot)), false);
  assert.deepEqual(driver.takeUsed(0), []);
  driver.add(0, [{ address: 0x100000, length: 16, writable: true }]);
  driver.kick(0);
  assert.deepEqual(driver.takeUsed(0), []);
  // Reset and re-initialise: works again.
  memory.fill(table, 0x8000, 0);
  driver.init();
  driver.add(0, [{ address: 0x100000, length: 16, writable: true }]);
  driver.kick(0);
  assert.deepEqual(driver.takeUsed(0), [{ id: 0, len: 16 }]);
});

test('a bad queue configuration at enable time makes the device need a reset', () => {
  const { driver } = setup();
  const status = driver.init({ queueSize: 48 });
  assert.ok(status & VirtioStatus.DEVICE_NEEDS_RESET);
});

test('fast path: notify watches follow BAR 0, MSI-X vectors get engine routes that fire instead of signalMsi', () => {
  const memory = GuestMemory.allocate(16 * MiB);
  const irq = new RecordingInterruptController();
  const watches = new Map<number, () => void>();
  const fired: number[] = [];
  const messages: string[] = [];
  let routes = 0;
  const fn = new VirtioPciFunction({
    device: new VirtioRng(), memory, interrupts: irq,
    fastNotify: {
      watchMmioWrite: (address, length, handler) => {
        assert.equal(length, 2);
        watches.set(address, handler);
        return () => void watches.delete(address);
      },
      createMsiRoute: () => {
        const id = routes++;
        return { update: (a, d) => void messages.push(`${id}:${a.toString(16)}/${d}`), fire: () => void fired.push(id), dispose: () => undefined };
      },
    },
  });
  const ports = new PortBus();
  const host = new PciHost({ mmio: new Bus(), ports, interrupts: irq });
  ports.insert(0xcf8, 4, host.addressPort, 'pci-address');
  ports.insert(0xcfc, 4, host.dataPort, 'pci-data');
  const slot = host.addDevice(fn, 'rng');
  assert.equal(watches.size, 0, 'no watch while decoding is off');
  ports.write(0xcf8, 4, (0x80000000 | (slot << 11) | PciReg.COMMAND) >>> 0);
  ports.write(0xcfc, 2, PciCommand.MEMORY_SPACE);
  const bar = fn.barAddress(0)!;
  assert.deepEqual([...watches.keys()], [bar + VirtioPciLayout.NOTIFY]);
  const driver = new TestVirtioDriver(fn, memory);
  driver.init({ msix: true });
  fn.configWrite(fn.msix.capabilityOffset + 2, 2, 0x8000);
  driver.bar.write(VirtioPciLayout.MSIX_TABLE + 16, 4, 0xfee00000);
  driver.bar.write(VirtioPciLayout.MSIX_TABLE + 24, 4, 0x52);
  driver.bar.write(VirtioPciLayout.MSIX_TABLE + 28, 4, 0);
  assert.ok(messages.some((m) => m.endsWith('fee00000/82')));
  driver.add(0, [{ address: 0x100000, length: 8, writable: true }]);
  watches.get(bar + VirtioPciLayout.NOTIFY)!(); // the engine saw the notify write
  assert.deepEqual(driver.takeUsed(0), [{ id: 0, len: 8 }]);
  assert.equal(fired.length, 1);
  assert.equal(irq.msis.length, 0, 'delivered through the route, not signalMsi');
  ports.write(0xcfc, 2, 0); // decoding off: the watches go
  assert.equal(watches.size, 0);
});
