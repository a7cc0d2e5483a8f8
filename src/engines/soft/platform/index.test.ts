/**
 * Tests of the assembled soft platform: interrupt line to IOAPIC/PIC mapping,
 * MSI delivery, port blocks and timer aggregation.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PortBus } from '../../../machine/bus.js';
import { createSoftPlatform, SoftPlatformConfigError } from './index.js';

function setup(vcpuCount = 2) {
  const clock = { now: 0, tscHz: 1e9, nowNs(): number { return clock.now; } };
  const platform = createSoftPlatform({ vcpuCount, clock });
  const ports = new PortBus();
  for (const block of platform.ports) ports.insert(block.base, block.length, block.device, block.name);
  for (const apic of platform.lapicModels) apic.mmioWrite(0xf0, 4, 0x1ff);
  const route = (pin: number, vector: number, destination = 0): void => {
    platform.ioapic.write(0, 1, 0x11 + pin * 2);
    platform.ioapic.write(0x10, 4, destination << 24);
    platform.ioapic.write(0, 1, 0x10 + pin * 2);
    platform.ioapic.write(0x10, 4, vector);
  };
  /** Linux's 8259 initialisation. */
  const initPic = (): void => {
    ports.write(0x20, 1, 0x11);
    ports.write(0x21, 1, 0x20);
    ports.write(0x21, 1, 0x04);
    ports.write(0x21, 1, 0x01);
    ports.write(0xa0, 1, 0x11);
    ports.write(0xa1, 1, 0x28);
    ports.write(0xa1, 1, 0x02);
    ports.write(0xa1, 1, 0x01);
  };
  return { clock, platform, ports, route, initPic, bsp: platform.lapicModels[0], ap: platform.lapicModels[1] };
}

void test('port blocks: PIC, PIT, port 0x61 and ELCR', () => {
  const { platform } = setup();
  const layout = platform.ports.map((b) => [b.name, b.base, b.length]);
  assert.deepEqual(layout, [
    ['pic-master', 0x20, 2],
    ['pit', 0x40, 4],
    ['system-control-b', 0x61, 1],
    ['pic-slave', 0xa0, 2],
    ['elcr', 0x4d0, 2],
  ]);
});

void test('IRQ 0 reaches PIC input 0 and IOAPIC pin 2; line 2 does not touch the PIC cascade', () => {
  const { platform, ports, route, initPic, bsp } = setup();
  initPic();
  route(2, 0x30);
  platform.interrupts.setIrq(0, true);
  assert.equal(ports.read(0x20, 1) & 1, 1); // master IRR bit 0
  bsp.mmioWrite(0x350, 4, 0x10700); // mask LINT0: only the IOAPIC path counts
  assert.equal(bsp.pendingVector(), 0x30);
  bsp.acknowledge();
  bsp.mmioWrite(0xb0, 4, 0);
  platform.interrupts.setIrq(0, false);
  // Line 2 drives pin 2 too, but not master IR2.
  platform.interrupts.setIrq(2, true);
  assert.equal(bsp.pendingVector(), 0x30);
  assert.equal(ports.read(0x20, 1) & 4, 0);
});

void test('ISA IRQ n reaches PIC input n and IOAPIC pin n; GSIs 16-23 reach only the IOAPIC', () => {
  const { platform, ports, route, initPic, ap } = setup();
  initPic();
  route(8, 0x48, 1);
  platform.interrupts.setIrq(8, true);
  assert.equal(ap.pendingVector(), 0x48);
  ports.write(0xa0, 1, 0x0a); // OCW3: read IRR
  assert.equal(ports.read(0xa0, 1) & 1, 1);
  route(20, 0x60, 1);
  platform.interrupts.setIrq(20, true);
  assert.equal(ap.pendingVector(), 0x60);
  // Out-of-range lines are ignored.
  platform.interrupts.setIrq(24, true);
  platform.interrupts.setIrq(-1, true);
});

void test('MSI: destination ID, destination mode, vector, delivery mode', () => {
  const { platform, bsp, ap } = setup();
  platform.interrupts.signalMsi(0xfee01000, 0x0041); // physical APIC 1, fixed 0x41
  assert.equal(ap.pendingVector(), 0x41);
  assert.equal(bsp.pendingVector(), -1);
  bsp.mmioWrite(0xd0, 4, 0x01000000);
  platform.interrupts.signalMsi(0xfee01004, 0x0042); // logical mask 0x01: the BSP
  assert.equal(bsp.pendingVector(), 0x42);
  platform.interrupts.signalMsi(0xfee01000, 0x0400); // NMI to APIC 1
  assert.ok(ap.takeNmi());
  platform.interrupts.signalMsi(0xfee01000, 0x8000 | 0x4000 | 0x0051); // level-triggered
  assert.equal((ap.mmioRead(0x180 + 0x20, 4) >>> (0x51 - 64)) & 1, 1);
  platform.interrupts.signalMsi(0xfed01000, 0x0043); // outside the MSI window: dropped
  assert.equal(ap.pendingVector(), 0x51);
  platform.interrupts.signalMsi(0xfeeff000, 0x0044); // broadcast
  assert.ok(bsp.mmioRead(0x200 + 0x20, 4) & (1 << (0x44 - 64)));
});

void test('poll and nextDeadlineNs aggregate the LAPIC timers and the PIT', () => {
  const { clock, platform, ports, bsp, ap } = setup();
  assert.equal(platform.nextDeadlineNs(), Infinity);
  ap.mmioWrite(0x3e0, 4, 0xb);
  ap.mmioWrite(0x320, 4, 0x70);
  ap.mmioWrite(0x380, 4, 5000);
  assert.equal(platform.nextDeadlineNs(), 5000);
  // PIT channel 0, mode 2, count 2 (about 1676 ns).
  ports.write(0x43, 1, 0x34);
  ports.write(0x40, 1, 2);
  ports.write(0x40, 1, 0);
  const pitDeadline = platform.nextDeadlineNs();
  assert.ok(Math.abs(pitDeadline - (2 * 1e9) / 1193182) < 1e-6);
  route2(platform);
  clock.now = 5000;
  platform.poll(5000);
  assert.equal(ap.pendingVector(), 0x70);
  assert.equal(bsp.pendingVector(), 0x22);
});

/** Routes IOAPIC pin 2 (the PIT) to vector 0x22 on APIC 0. */
function route2(platform: ReturnType<typeof createSoftPlatform>): void {
  platform.ioapic.write(0, 1, 0x14);
  platform.ioapic.write(0x10, 4, 0x22);
}

void test('invalid options raise SoftPlatformConfigError', () => {
  const clock = { tscHz: 1e9, nowNs: () => 0 };
  assert.throws(() => createSoftPlatform({ vcpuCount: 0, clock }), SoftPlatformConfigError);
  assert.throws(() => createSoftPlatform({ vcpuCount: 1, clock, physAddrBits: 64 }), SoftPlatformConfigError);
  assert.throws(() => createSoftPlatform({ vcpuCount: 1, clock, activeLowPins: [30] }), SoftPlatformConfigError);
  assert.throws(() => createSoftPlatform({ vcpuCount: 1, clock: { tscHz: 0, nowNs: () => 0 } }), SoftPlatformConfigError);
});
