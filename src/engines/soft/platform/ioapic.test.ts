/**
 * Tests of the IOAPIC, programmed through IOREGSEL/IOWIN as Linux and
 * kvm-unit-tests' ioapic tests do, with interrupts landing in local APICs.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSoftPlatform } from './index.js';

const EDGE = 0;
const LEVEL = 0x8000;
const MASKED = 0x10000;
const ACTIVE_LOW = 0x2000;
const REMOTE_IRR = 0x4000;
const LOGICAL = 0x800;

function setup(activeLowPins: number[] = []) {
  const clock = { now: 0, tscHz: 1e9, nowNs(): number { return clock.now; } };
  const platform = createSoftPlatform({ vcpuCount: 2, clock, activeLowPins });
  const [bsp, ap] = platform.lapicModels;
  for (const apic of [bsp, ap]) apic.mmioWrite(0xf0, 4, 0x1ff);
  const io = platform.ioapic;
  const readReg = (reg: number): number => {
    io.write(0x00, 1, reg);
    return io.read(0x10, 4);
  };
  const writeReg = (reg: number, value: number): void => {
    io.write(0x00, 1, reg);
    io.write(0x10, 4, value);
  };
  const route = (pin: number, low: number, destination = 0): void => {
    writeReg(0x11 + pin * 2, destination << 24);
    writeReg(0x10 + pin * 2, low);
  };
  const eoi = (apic: typeof bsp): void => apic.mmioWrite(0xb0, 4, 0);
  return { platform, bsp: bsp, ap: ap, readReg, writeReg, route, eoi };
}

void test('ID, version and arbitration registers; entries masked at reset', () => {
  const { readReg, writeReg, platform } = setup();
  assert.equal(readReg(0x01), 0x00170020);
  assert.equal(readReg(0x00), 0);
  writeReg(0x00, 0x0a000000);
  assert.equal(readReg(0x00), 0x0a000000);
  assert.equal(readReg(0x02), 0x0a000000);
  for (let pin = 0; pin < 24; pin++) assert.equal(readReg(0x10 + pin * 2), MASKED);
  // IOREGSEL reads back; a byte read of IOWIN gives the low byte.
  platform.ioapic.write(0x00, 1, 0x01);
  assert.equal(platform.ioapic.read(0x00, 4), 0x01);
  assert.equal(platform.ioapic.read(0x10, 1), 0x20);
  assert.equal(platform.ioapic.read(0x12, 1), 0x17);
  // Read-only bits (delivery status, remote IRR) are not writable.
  writeReg(0x12, 0x1ffff);
  assert.equal(readReg(0x12), 0x1afff);
});

void test('edge-triggered pin delivers once per rising edge to the destination APIC', () => {
  const { platform, bsp, ap, route } = setup();
  route(4, EDGE | 0x34, 1);
  platform.interrupts.setIrq(4, true);
  assert.equal(ap.pendingVector(), 0x34);
  assert.equal(bsp.pendingVector(), -1);
  assert.equal(ap.acknowledge(), 0x34);
  // Holding the line high delivers nothing more; a new edge does.
  platform.interrupts.setIrq(4, true);
  assert.equal(ap.pendingVector(), -1);
  platform.interrupts.setIrq(4, false);
  platform.interrupts.setIrq(4, true);
  ap.mmioWrite(0xb0, 4, 0);
  assert.equal(ap.pendingVector(), 0x34);
});

void test('masked pins deliver nothing; an edge while masked is lost', () => {
  const { platform, bsp, route } = setup();
  route(5, MASKED | EDGE | 0x35);
  platform.interrupts.setIrq(5, true);
  assert.equal(bsp.pendingVector(), -1);
  route(5, EDGE | 0x35);
  assert.equal(bsp.pendingVector(), -1);
  platform.interrupts.setIrq(5, false);
  platform.interrupts.setIrq(5, true);
  assert.equal(bsp.pendingVector(), 0x35);
});

void test('level-triggered pin: Remote IRR, EOI broadcast from the LAPIC, re-delivery while asserted', () => {
  const { platform, bsp, readReg, route, eoi } = setup();
  route(10, LEVEL | 0x3a);
  platform.interrupts.setIrq(10, true);
  assert.equal(readReg(0x10 + 20) & REMOTE_IRR, REMOTE_IRR);
  assert.equal(bsp.acknowledge(), 0x3a);
  // The LAPIC recorded it as level-triggered (TMR).
  assert.equal((bsp.mmioRead(0x180 + 0x10, 4) >>> (0x3a - 32)) & 1, 1);
  // No re-delivery while Remote IRR is set.
  platform.interrupts.setIrq(10, true);
  assert.equal(bsp.pendingVector(), -1);
  // EOI with the line still asserted: Remote IRR clears and the pin fires again.
  eoi(bsp);
  assert.equal(bsp.pendingVector(), 0x3a);
  assert.equal(readReg(0x10 + 20) & REMOTE_IRR, REMOTE_IRR);
  bsp.acknowledge();
  // The device deasserts before the EOI: nothing more.
  platform.interrupts.setIrq(10, false);
  eoi(bsp);
  assert.equal(readReg(0x10 + 20) & REMOTE_IRR, 0);
  assert.equal(bsp.pendingVector(), -1);
});

void test('the IOAPIC EOI register clears Remote IRR for the vector', () => {
  const { platform, bsp, readReg, route } = setup();
  route(11, LEVEL | 0x3b);
  platform.interrupts.setIrq(11, true);
  bsp.acknowledge();
  // Directed EOI, as Linux does with EOI-broadcast suppression.
  platform.ioapic.write(0x40, 4, 0x3c); // another vector: no effect
  assert.equal(readReg(0x10 + 22) & REMOTE_IRR, REMOTE_IRR);
  platform.interrupts.setIrq(11, false);
  platform.ioapic.write(0x40, 4, 0x3b);
  assert.equal(readReg(0x10 + 22) & REMOTE_IRR, 0);
});

void test('unmasking an asserted level pin delivers it', () => {
  const { platform, bsp, route } = setup();
  route(9, MASKED | LEVEL | 0x39);
  platform.interrupts.setIrq(9, true);
  assert.equal(bsp.pendingVector(), -1);
  route(9, LEVEL | 0x39);
  assert.equal(bsp.pendingVector(), 0x39);
});

void test('logical destination and broadcast', () => {
  const { platform, bsp, ap, route } = setup();
  bsp.mmioWrite(0xd0, 4, 0x01000000);
  ap.mmioWrite(0xd0, 4, 0x02000000);
  route(3, LOGICAL | 0x43, 0x02);
  platform.interrupts.setIrq(3, true);
  assert.equal(ap.pendingVector(), 0x43);
  assert.equal(bsp.pendingVector(), -1);
  route(6, 0x46, 0xff); // physical broadcast
  platform.interrupts.setIrq(6, true);
  assert.equal(bsp.pendingVector(), 0x46);
  assert.equal(ap.pendingVector(), 0x46);
});

void test('polarity: active-low wire programmed active-low behaves like active-high', () => {
  const { platform, bsp, route } = setup([16]);
  route(16, ACTIVE_LOW | LEVEL | 0x50);
  assert.equal(bsp.pendingVector(), -1);
  platform.interrupts.setIrq(16, true);
  assert.equal(bsp.pendingVector(), 0x50);
  // An active-high wire programmed active-low looks asserted while idle.
  route(17, ACTIVE_LOW | LEVEL | 0x51);
  assert.ok(bsp.mmioRead(0x200 + 0x20, 4) & (1 << (0x51 - 64)));
});

void test('level entry switched to edge forgets Remote IRR', () => {
  const { platform, readReg, route } = setup();
  route(12, LEVEL | 0x3c);
  platform.interrupts.setIrq(12, true);
  assert.equal(readReg(0x10 + 24) & REMOTE_IRR, REMOTE_IRR);
  route(12, EDGE | 0x3c);
  assert.equal(readReg(0x10 + 24) & REMOTE_IRR, 0);
});

void test('kvm-unit-tests sequences: ID bits, level coalesce, retrigger with mask, self-reconfigure', () => {
  const { platform, bsp, ap, readReg, writeReg, route, eoi } = setup();
  // Only ID bits 27:24 are writable; version and arbitration are read-only.
  writeReg(0x00, 0xffffffff);
  assert.equal(readReg(0x00), 0x0f000000);
  writeReg(0x01, 0);
  assert.equal(readReg(0x01), 0x00170020);
  writeReg(0x02, 0);
  assert.equal(readReg(0x02), 0x0f000000);
  const line = (level: boolean): void => platform.interrupts.setIrq(14, level);
  // Coalesce: the line toggles while the first interrupt is in service.
  route(14, LEVEL | 0x98);
  line(true);
  assert.equal(bsp.acknowledge(), 0x98);
  line(false);
  line(true);
  line(false);
  eoi(bsp);
  assert.equal(bsp.pendingVector(), -1);
  // Retrigger with mask: the handler masks the pin, EOIs; unmasking redelivers.
  route(14, LEVEL | 0x83);
  line(true);
  assert.equal(bsp.acknowledge(), 0x83);
  route(14, MASKED | LEVEL | 0x83);
  eoi(bsp);
  assert.equal(bsp.pendingVector(), -1);
  route(14, LEVEL | 0x83);
  assert.equal(bsp.acknowledge(), 0x83);
  line(false);
  eoi(bsp);
  // Self-reconfigure: the handler lowers the line and retargets the pin before EOI.
  route(14, LEVEL | 0x84);
  line(true);
  assert.equal(bsp.acknowledge(), 0x84);
  line(false);
  writeReg(0x11 + 14 * 2, 1 << 24);
  eoi(bsp);
  assert.equal(readReg(0x10 + 14 * 2) & REMOTE_IRR, 0);
  line(true);
  assert.equal(ap.pendingVector(), 0x84);
});
