/**
 * Tests of the 8259 pair, programmed through its ports the way Linux's
 * init_8259A() and its interrupt handlers do.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PortBus } from '../../../machine/bus.js';
import { Pic8259Pair } from './pic-8259.js';

function setup() {
  const pic = new Pic8259Pair();
  const outputs: boolean[] = [];
  pic.onOutput = (level) => outputs.push(level);
  const ports = new PortBus();
  ports.insert(0x20, 2, pic.masterPorts, 'pic-master');
  ports.insert(0xa0, 2, pic.slavePorts, 'pic-slave');
  ports.insert(0x4d0, 2, pic.elcrPorts, 'elcr');
  const out = (port: number, value: number): void => ports.write(port, 1, value);
  const inb = (port: number): number => ports.read(port, 1);
  /** Linux's init_8259A(auto_eoi). */
  const init = (autoEoi = false): void => {
    out(0x21, 0xff);
    out(0xa1, 0xff);
    out(0x20, 0x11); // ICW1: edge, cascade, ICW4
    out(0x21, 0x20); // ICW2: vectors 0x20-0x27
    out(0x21, 0x04); // ICW3: slave on IR2
    out(0x21, autoEoi ? 0x03 : 0x01); // ICW4: 8086 mode
    out(0xa0, 0x11);
    out(0xa1, 0x28);
    out(0xa1, 0x02);
    out(0xa1, 0x01);
    out(0x21, 0xfb); // everything masked except the cascade
    out(0xa1, 0xff);
  };
  return { pic, outputs, out, inb, init };
}

void test('Linux init sequence sets the vector bases and masks; IMR reads back', () => {
  const { pic, out, inb, init } = setup();
  assert.equal(inb(0x21), 0xff); // masked at power-up
  init();
  assert.equal(inb(0x21), 0xfb);
  assert.equal(inb(0xa1), 0xff);
  out(0x21, 0xfa); // unmask IRQ0
  pic.setIrq(0, true);
  assert.ok(pic.intr);
  assert.equal(pic.peekVector(), 0x20);
  assert.equal(pic.acknowledge(), 0x20);
  assert.ok(!pic.intr);
});

void test('IRR and ISR reads through OCW3; non-specific and specific EOI', () => {
  const { pic, out, inb, init } = setup();
  init();
  out(0x21, 0x00);
  pic.setIrq(1, true);
  pic.setIrq(4, true);
  out(0x20, 0x0a); // read IRR
  assert.equal(inb(0x20), 0x12);
  assert.equal(pic.acknowledge(), 0x21); // IRQ1 has priority over IRQ4
  out(0x20, 0x0b); // read ISR
  assert.equal(inb(0x20), 0x02);
  out(0x20, 0x0a);
  assert.equal(inb(0x20), 0x10); // edge: IRR bit cleared at INTA
  // IRQ4 waits behind IRQ1 in service.
  assert.ok(!pic.intr);
  out(0x20, 0x20); // non-specific EOI
  assert.ok(pic.intr);
  assert.equal(pic.acknowledge(), 0x24);
  out(0x20, 0x60 | 4); // specific EOI for IRQ4
  out(0x20, 0x0b);
  assert.equal(inb(0x20), 0);
});

void test('higher-priority IRQ nests over a lower one in service', () => {
  const { pic, out, init } = setup();
  init();
  out(0x21, 0x00);
  pic.setIrq(5, true);
  assert.equal(pic.acknowledge(), 0x25);
  pic.setIrq(3, true);
  assert.ok(pic.intr);
  assert.equal(pic.acknowledge(), 0x23);
});

void test('cascade: a slave IRQ is delivered through master IR2 with both ISR bits set', () => {
  const { pic, out, inb, init } = setup();
  init();
  out(0xa1, 0xef); // unmask IRQ12
  pic.setIrq(12, true);
  assert.ok(pic.intr);
  assert.equal(pic.peekVector(), 0x2c);
  assert.equal(pic.acknowledge(), 0x2c);
  out(0x20, 0x0b);
  out(0xa0, 0x0b);
  assert.equal(inb(0x20), 0x04);
  assert.equal(inb(0xa0), 0x10);
  // Linux's EOI order: slave, then master.
  out(0xa0, 0x20);
  out(0x20, 0x20);
  assert.equal(inb(0x20), 0);
  assert.equal(inb(0xa0), 0);
  // A second slave request after the EOIs gives a new edge on IR2.
  pic.setIrq(12, false);
  pic.setIrq(12, true);
  assert.equal(pic.acknowledge(), 0x2c);
});

void test('spurious IRQ 7 and 15 when the request vanishes before INTA', () => {
  const { pic, out, inb, init } = setup();
  init();
  out(0x4d0, 0x08); // IRQ3 level-triggered
  out(0x21, 0x00);
  pic.setIrq(3, true);
  assert.ok(pic.intr);
  pic.setIrq(3, false); // level line drops before INTA
  assert.ok(!pic.intr);
  assert.equal(pic.acknowledge(), 0x27);
  out(0x20, 0x0b);
  assert.equal(inb(0x20), 0); // spurious: ISR untouched
  // Slave: master IR2 acknowledged, slave has nothing: IRQ15's vector.
  out(0x4d1, 0x02); // IRQ9 level
  out(0xa1, 0x00);
  pic.setIrq(9, true);
  out(0xa1, 0xff); // the request vanishes on the slave side; master IR2 stays latched
  assert.equal(pic.acknowledge(), 0x2f);
  out(0xa0, 0x0b);
  assert.equal(inb(0xa0), 0);
});

void test('level mode through the ELCR: IRR follows the line and re-asserts after EOI', () => {
  const { pic, out, inb, init } = setup();
  init();
  out(0x4d1, 0xff);
  assert.equal(inb(0x4d1), 0xde); // IRQ8 and IRQ13 cannot be level
  out(0x4d0, 0xff);
  assert.equal(inb(0x4d0), 0xf8); // IRQ0-2 cannot be level
  out(0x21, 0x00);
  pic.setIrq(10, true);
  out(0xa1, 0x00);
  assert.equal(pic.acknowledge(), 0x2a);
  out(0xa0, 0x20);
  out(0x20, 0x20);
  assert.ok(pic.intr); // still asserted
  assert.equal(pic.acknowledge(), 0x2a);
});

void test('auto-EOI leaves ISR clear', () => {
  const { pic, out, inb, init } = setup();
  init(true);
  out(0x21, 0x00);
  pic.setIrq(6, true);
  assert.equal(pic.acknowledge(), 0x26);
  out(0x20, 0x0b);
  assert.equal(inb(0x20), 0);
});

void test('masking blocks a request until unmasked; the edge is remembered in IRR', () => {
  const { pic, out, init } = setup();
  init();
  pic.setIrq(1, true);
  assert.ok(!pic.intr);
  out(0x21, 0xf9);
  assert.ok(pic.intr);
  assert.equal(pic.acknowledge(), 0x21);
});

void test('rotate on non-specific EOI makes the serviced line lowest priority', () => {
  const { pic, out, init } = setup();
  init();
  out(0x21, 0x00);
  pic.setIrq(1, true);
  assert.equal(pic.acknowledge(), 0x21);
  out(0x20, 0xa0); // rotate on non-specific EOI: IRQ1 lowest, IRQ2 highest
  pic.setIrq(1, false);
  pic.setIrq(1, true);
  pic.setIrq(5, true);
  assert.equal(pic.acknowledge(), 0x25);
  // Set priority: IRQ7 lowest again.
  out(0x20, 0xc7);
  out(0x20, 0x20);
  assert.equal(pic.acknowledge(), 0x21);
});

void test('poll command acknowledges and reports the highest request', () => {
  const { pic, out, inb, init, outputs } = setup();
  init();
  out(0x21, 0x00);
  pic.setIrq(4, true);
  assert.ok(outputs.includes(true));
  out(0x20, 0x0c); // OCW3 poll
  assert.equal(inb(0x20), 0x84);
  out(0x20, 0x0b);
  assert.equal(inb(0x20), 0x10);
  out(0x20, 0x0c);
  assert.equal(inb(0x20), 0); // nothing more pending
});
