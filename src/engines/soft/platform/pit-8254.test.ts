/**
 * Tests of the 8254 PIT and port 0x61, driven the way Linux's i8253
 * clockevent, PIT calibration loops and kvm-unit-tests drive them, with a
 * fake clock.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PortBus } from '../../../machine/bus.js';
import { Pit8254, PIT_HZ } from './pit-8254.js';

const TICK_NS = 1e9 / PIT_HZ;

function setup() {
  const clock = { now: 0, tscHz: 1e9, nowNs(): number { return clock.now; } };
  let pulses = 0;
  const pit = new Pit8254(clock, () => pulses++);
  const ports = new PortBus();
  ports.insert(0x40, 4, pit.ports, 'pit');
  ports.insert(0x61, 1, pit.systemControlPort, 'port61');
  const out = (port: number, value: number): void => ports.write(port, 1, value);
  const inb = (port: number): number => ports.read(port, 1);
  /** Advances the clock to `ns` and polls, as the engine does. */
  const advance = (ns: number): void => {
    clock.now = ns;
    pit.poll(ns);
  };
  return { clock, pit, out, inb, advance, pulses: () => pulses };
}

/** At `ticks` PIT clocks, plus half a tick to stay clear of rounding at edges. */
const at = (ticks: number): number => (ticks + 0.5) * TICK_NS;

void test('mode 2 (Linux periodic clockevent): one IRQ per period, count reloads', () => {
  const { pit, out, inb, advance, pulses } = setup();
  out(0x43, 0x34); // channel 0, lobyte/hibyte, mode 2
  out(0x40, 1193 & 0xff);
  out(0x40, 1193 >> 8);
  assert.ok(Math.abs(pit.nextDeadlineNs() - 1193 * TICK_NS) < 1e-6);
  advance(at(100));
  assert.equal(pulses(), 0);
  out(0x43, 0x00); // latch channel 0
  assert.equal(inb(0x40) | (inb(0x40) << 8), 1093);
  advance(1193 * TICK_NS);
  assert.equal(pulses(), 1);
  advance(at(1193 + 10));
  assert.equal(pulses(), 1);
  out(0x43, 0x00);
  assert.equal(inb(0x40) | (inb(0x40) << 8), 1193 - 10);
  advance(2 * 1193 * TICK_NS);
  assert.equal(pulses(), 2);
});

void test('missed periods are coalesced into one interrupt', () => {
  const { pit, out, advance, pulses } = setup();
  out(0x43, 0x34);
  out(0x40, 100);
  out(0x40, 0);
  advance(at(100 * 50 + 30)); // 50 periods late
  assert.equal(pulses(), 1);
  const next = pit.nextDeadlineNs();
  assert.ok(Math.abs(next - 100 * 51 * TICK_NS) < 1e-6);
  advance(next);
  assert.equal(pulses(), 2);
});

void test('mode 0 one-shot fires once at terminal count; the control word stops counting', () => {
  const { pit, out, inb, advance, pulses } = setup();
  out(0x43, 0x30); // channel 0, lohi, mode 0
  assert.equal(pit.nextDeadlineNs(), Infinity);
  out(0x40, 200);
  out(0x40, 0);
  advance(at(150));
  assert.equal(pulses(), 0);
  assert.equal(inb(0x40) | (inb(0x40) << 8), 50); // live read, lo then hi
  advance(at(200));
  assert.equal(pulses(), 1);
  advance(at(100000));
  assert.equal(pulses(), 1);
  assert.equal(pit.nextDeadlineNs(), Infinity);
  // Count 0 means 65536.
  out(0x43, 0x30);
  out(0x40, 0);
  out(0x40, 0);
  assert.ok(Math.abs(pit.nextDeadlineNs() - (at(100000) + 65536 * TICK_NS)) < 1e-3);
});

void test('mode 4 (Linux one-shot clockevent) fires once', () => {
  const { out, advance, pulses } = setup();
  out(0x43, 0x38);
  out(0x40, 10);
  out(0x40, 0);
  advance(at(10));
  advance(at(30));
  assert.equal(pulses(), 1);
});

void test('counter latch holds the value until read; lobyte-only access', () => {
  const { out, inb, clock } = setup();
  out(0x43, 0x34);
  out(0x40, 0x00);
  out(0x40, 0x10); // 4096
  clock.now = at(96);
  out(0x43, 0x00);
  clock.now = at(500);
  // Latched at 96 ticks: 4000 = 0x0fa0, although 500 ticks have passed.
  assert.equal(inb(0x40), 0xa0);
  assert.equal(inb(0x40), 0x0f);
  out(0x43, 0x00);
  assert.equal(inb(0x40), (4096 - 500) & 0xff);
  assert.equal(inb(0x40), (4096 - 500) >> 8);
  // Lobyte-only channel 1, mode 2.
  out(0x43, 0x54);
  out(0x41, 50);
  clock.now = at(500 + 5);
  assert.equal(inb(0x41), 45);
});

void test('read-back command latches status then count', () => {
  const { out, inb, clock } = setup();
  out(0x43, 0xb0); // channel 2, lohi, mode 0
  out(0x43, 0xe8); // read-back status only, channel 2
  assert.equal(inb(0x42), 0x40 | 0x30 | 0x00); // null count, lohi, mode 0, OUT low
  out(0x42, 0x00);
  out(0x42, 0x01); // 256; gate is low so counting has not started
  out(0x61, 0x01); // gate high
  clock.now = at(16);
  out(0x43, 0xc8); // read-back count and status, channel 2
  assert.equal(inb(0x42), 0x30); // status first: count loaded, OUT still low
  assert.equal(inb(0x42) | (inb(0x42) << 8), 240);
  clock.now = at(300);
  out(0x43, 0xe8);
  assert.equal(inb(0x42) & 0x80, 0x80); // OUT high after terminal count
});

void test('channel 2 gate and OUT through port 0x61, as Linux PIT calibration polls them', () => {
  const { out, inb, clock } = setup();
  // pit_calibrate_tsc(): gate on, speaker off, mode 0, count, then poll bit 5.
  out(0x61, (inb(0x61) & ~0x02) | 0x01);
  assert.equal(inb(0x61) & 0x01, 0x01);
  out(0x43, 0xb0);
  out(0x42, 1000 & 0xff);
  out(0x42, 1000 >> 8);
  clock.now = at(999);
  assert.equal(inb(0x61) & 0x20, 0);
  clock.now = at(1000);
  assert.equal(inb(0x61) & 0x20, 0x20);
  // A low gate suspends counting in mode 0.
  out(0x43, 0xb0);
  out(0x42, 0x00);
  out(0x42, 0x02); // 512
  clock.now = at(1000) + 100 * TICK_NS;
  out(0x61, 0x00); // gate off after 100 ticks
  clock.now += 1000 * TICK_NS;
  out(0x43, 0x80);
  assert.equal(inb(0x42) | (inb(0x42) << 8), 412);
  out(0x61, 0x01);
  clock.now += 12 * TICK_NS;
  out(0x43, 0x80);
  assert.equal(inb(0x42) | (inb(0x42) << 8), 400);
});

void test('quick_pit_calibrate: the MSB of a free-running channel 2 counts down', () => {
  const { out, inb, clock } = setup();
  out(0x61, (inb(0x61) & ~0x02) | 0x01);
  out(0x43, 0xb0);
  out(0x42, 0xff);
  out(0x42, 0xff);
  inb(0x42);
  inb(0x42);
  const msbAt = (ticks: number): number => {
    clock.now = at(ticks);
    inb(0x42); // LSB, discarded
    return inb(0x42);
  };
  assert.equal(msbAt(1), 0xff);
  assert.equal(msbAt(255), 0xff); // 0xff00
  assert.equal(msbAt(257), 0xfe); // 0xfefe
  assert.equal(msbAt(256 * 10 + 2), 0xf5);
});

void test('mode 3 square wave: counts by two, OUT high for the first half', () => {
  const { out, inb, pit, clock, advance, pulses } = setup();
  out(0x43, 0xb6); // channel 2, lohi, mode 3
  out(0x42, 100);
  out(0x42, 0);
  out(0x61, 0x01);
  clock.now = at(10);
  out(0x43, 0x80);
  assert.equal(inb(0x42) | (inb(0x42) << 8), 80);
  assert.ok(pit.channel2Output());
  clock.now = at(60);
  assert.ok(!pit.channel2Output());
  clock.now = at(110);
  assert.ok(pit.channel2Output());
  // Channel 0 mode 3: one IRQ per period.
  out(0x43, 0x36);
  out(0x40, 100);
  out(0x40, 0);
  advance(clock.now + 100 * TICK_NS);
  assert.equal(pulses(), 1);
});

void test('BCD counting', () => {
  const { out, inb, clock } = setup();
  out(0x43, 0x31); // channel 0, lohi, mode 0, BCD
  out(0x40, 0x99);
  out(0x40, 0x00); // 99
  clock.now = at(10);
  out(0x43, 0x00);
  assert.equal(inb(0x40), 0x89);
  assert.equal(inb(0x40), 0x00);
});

void test('port 0x61: speaker data bit and the refresh toggle', () => {
  const { out, inb, clock } = setup();
  out(0x61, 0x03);
  assert.equal(inb(0x61) & 0x03, 0x03);
  clock.now = 0;
  const first = inb(0x61) & 0x10;
  clock.now = 15085 + 1;
  assert.notEqual(inb(0x61) & 0x10, first);
});
