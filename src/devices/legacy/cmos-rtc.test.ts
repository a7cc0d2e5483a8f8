/** Tests for the CMOS RTC: formats, UIP timing, setting the time, register C and interrupts, CMOS memory bytes. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CmosRtc, RtcIndex, periodicIntervalMs } from './cmos-rtc.js';
import { ManualClock } from '../host-clock.js';
import { RecordingInterruptController } from '../fakes.js';
import { GiB, MiB } from '../../machine/layout.js';

const START = Date.UTC(2024, 0, 15, 13, 34, 56); // a Monday

function makeRtc(ramSize = 512 * MiB) {
  const clock = new ManualClock(START);
  const pic = new RecordingInterruptController();
  const rtc = new CmosRtc({ irq: pic.line(8), ramSize, cpuCount: 2, clock, timers: clock });
  const cmosRead = (index: number) => {
    rtc.write(0, 1, index);
    return rtc.read(1, 1);
  };
  const cmosWrite = (index: number, value: number) => {
    rtc.write(0, 1, index);
    rtc.write(1, 1, value);
  };
  return { clock, pic, rtc, cmosRead, cmosWrite };
}

void test('time registers in BCD 24-hour mode (power-on default), century at 0x32', () => {
  const { cmosRead } = makeRtc();
  assert.equal(cmosRead(RtcIndex.REG_B) & 0x06, 0x02);
  assert.equal(cmosRead(RtcIndex.SECONDS), 0x56);
  assert.equal(cmosRead(RtcIndex.MINUTES), 0x34);
  assert.equal(cmosRead(RtcIndex.HOURS), 0x13);
  assert.equal(cmosRead(RtcIndex.DAY_OF_WEEK), 2); // Monday (Sunday = 1)
  assert.equal(cmosRead(RtcIndex.DAY_OF_MONTH), 0x15);
  assert.equal(cmosRead(RtcIndex.MONTH), 0x01);
  assert.equal(cmosRead(RtcIndex.YEAR), 0x24);
  assert.equal(cmosRead(RtcIndex.CENTURY), 0x20);
  assert.equal(cmosRead(RtcIndex.REG_D), 0x80, 'VRT');
});

void test('binary mode and 12-hour mode with the PM bit', () => {
  const { cmosRead, cmosWrite } = makeRtc();
  cmosWrite(RtcIndex.REG_B, 0x06);
  assert.equal(cmosRead(RtcIndex.SECONDS), 56);
  assert.equal(cmosRead(RtcIndex.HOURS), 13);
  assert.equal(cmosRead(RtcIndex.YEAR), 24);
  cmosWrite(RtcIndex.REG_B, 0x04); // binary, 12-hour
  assert.equal(cmosRead(RtcIndex.HOURS), 0x80 | 1);
  cmosWrite(RtcIndex.REG_B, 0x00); // BCD, 12-hour
  assert.equal(cmosRead(RtcIndex.HOURS), 0x81);
});

void test('UIP is set only in the 244 µs before each second; a polling loop terminates', () => {
  const { clock, cmosRead } = makeRtc();
  clock.set(START + 500);
  assert.equal(cmosRead(RtcIndex.REG_A) & 0x80, 0);
  clock.set(START + 999.8);
  assert.equal(cmosRead(RtcIndex.REG_A) & 0x80, 0x80);
  assert.equal(cmosRead(RtcIndex.REG_A) & 0x7f, 0x26);
  let polls = 0;
  while (cmosRead(RtcIndex.REG_A) & 0x80) {
    clock.set(clock.realtimeMs() + 0.05);
    assert.ok(++polls < 100);
  }
  assert.ok(polls >= 1);
  assert.equal(cmosRead(RtcIndex.SECONDS), 0x57);
});

void test('Linux-style set time (SET, divider reset) changes the guest clock only', () => {
  const { clock, cmosRead, cmosWrite, rtc } = makeRtc();
  const b = cmosRead(RtcIndex.REG_B);
  cmosWrite(RtcIndex.REG_B, b | 0x80);
  const a = cmosRead(RtcIndex.REG_A);
  cmosWrite(RtcIndex.REG_A, a | 0x60);
  clock.advance(5000);
  assert.equal(cmosRead(RtcIndex.SECONDS), 0x56, 'frozen while SET');
  cmosWrite(RtcIndex.YEAR, 0x99);
  cmosWrite(RtcIndex.CENTURY, 0x19);
  cmosWrite(RtcIndex.MONTH, 0x12);
  cmosWrite(RtcIndex.DAY_OF_MONTH, 0x31);
  cmosWrite(RtcIndex.HOURS, 0x23);
  cmosWrite(RtcIndex.MINUTES, 0x59);
  cmosWrite(RtcIndex.SECONDS, 0x59);
  cmosWrite(RtcIndex.REG_A, a);
  cmosWrite(RtcIndex.REG_B, b);
  assert.equal(rtc.guestTimeMs(), Date.UTC(1999, 11, 31, 23, 59, 59) + 500);
  assert.equal(clock.realtimeMs(), START + 5000, 'host clock untouched');
  clock.advance(600);
  assert.equal(cmosRead(RtcIndex.SECONDS), 0x00);
  assert.equal(cmosRead(RtcIndex.YEAR), 0x00);
  assert.equal(cmosRead(RtcIndex.CENTURY), 0x20);
  assert.equal(cmosRead(RtcIndex.DAY_OF_MONTH), 0x01);
});

void test('writing one field of a running clock keeps the others', () => {
  const { cmosRead, cmosWrite } = makeRtc();
  cmosWrite(RtcIndex.MINUTES, 0x00);
  assert.equal(cmosRead(RtcIndex.MINUTES), 0x00);
  assert.equal(cmosRead(RtcIndex.HOURS), 0x13);
  assert.equal(cmosRead(RtcIndex.SECONDS), 0x56);
});

void test('update-ended interrupt on IRQ8 via the host timer; register C read clears and lowers', () => {
  const { clock, pic, cmosRead, cmosWrite } = makeRtc();
  cmosRead(RtcIndex.REG_C);
  assert.equal(clock.activeTimers, 0, 'no timer without enabled interrupts');
  cmosWrite(RtcIndex.REG_B, 0x02 | 0x10);
  assert.equal(clock.activeTimers, 1);
  clock.advance(999);
  assert.equal(pic.level(8), false);
  clock.advance(1);
  assert.equal(pic.level(8), true);
  assert.equal(clock.activeTimers, 0, 'no timer while the line is up');
  assert.equal(cmosRead(RtcIndex.REG_C) & 0xb0, 0x90, 'IRQF and UF (PF may be set too: it needs no enable)');
  assert.equal(pic.level(8), false);
  assert.equal(cmosRead(RtcIndex.REG_C) & 0x90, 0x00);
  clock.advance(1000);
  assert.equal(pic.edges(8), 2);
  cmosWrite(RtcIndex.REG_B, 0x02);
  assert.equal(cmosRead(RtcIndex.REG_C) & 0x80, 0, 'UF without UIE does not set IRQF');
});

void test('polled flags: UF after a second, PF after a period, without interrupts', () => {
  const { clock, pic, cmosRead } = makeRtc();
  cmosRead(RtcIndex.REG_C);
  clock.advance(periodicIntervalMs(6));
  assert.equal(cmosRead(RtcIndex.REG_C), 0x40);
  clock.advance(1000);
  assert.equal(cmosRead(RtcIndex.REG_C), 0x50);
  assert.equal(pic.level(8), false);
});

void test('periodic interrupt at the rate from register A', () => {
  const { clock, pic, cmosRead, cmosWrite } = makeRtc();
  cmosWrite(RtcIndex.REG_A, 0x2f); // rate 15: 500 ms
  cmosRead(RtcIndex.REG_C);
  cmosWrite(RtcIndex.REG_B, 0x02 | 0x40);
  let interrupts = 0;
  for (let t = 0; t < 2000; t += 10) {
    clock.advance(10);
    if (pic.level(8)) {
      interrupts++;
      assert.equal(cmosRead(RtcIndex.REG_C) & 0xc0, 0xc0);
    }
  }
  assert.equal(interrupts, 4);
  assert.equal(periodicIntervalMs(6), 1000 / 1024);
  assert.equal(periodicIntervalMs(1), periodicIntervalMs(8));
});

void test('alarm interrupt when the time matches, with don\'t-care bytes', () => {
  const { clock, pic, cmosRead, cmosWrite } = makeRtc();
  cmosWrite(RtcIndex.SECONDS_ALARM, 0x58);
  cmosWrite(RtcIndex.MINUTES_ALARM, 0x34);
  cmosWrite(RtcIndex.HOURS_ALARM, 0xc0);
  cmosRead(RtcIndex.REG_C);
  cmosWrite(RtcIndex.REG_B, 0x02 | 0x20);
  clock.advance(1000);
  assert.equal(pic.level(8), false);
  clock.advance(1000);
  assert.equal(pic.level(8), true);
  assert.equal(cmosRead(RtcIndex.REG_C) & 0xa0, 0xa0);
});

void test('index port: NMI-disable bit, write-only index, plain CMOS bytes', () => {
  const { rtc, cmosRead, cmosWrite } = makeRtc();
  rtc.write(0, 1, 0x80 | RtcIndex.SHUTDOWN_STATUS);
  assert.equal(rtc.nmiMasked, true);
  rtc.write(1, 1, 0x0a);
  assert.equal(cmosRead(RtcIndex.SHUTDOWN_STATUS), 0x0a);
  assert.equal(rtc.nmiMasked, false);
  assert.equal(rtc.read(0, 1), 0xff);
  cmosWrite(0x7f, 0x12);
  assert.equal(cmosRead(0x7f), 0x12);
});

void test('memory size bytes from the RAM size', () => {
  const small = makeRtc(512 * MiB);
  assert.equal(small.cmosRead(0x15) | (small.cmosRead(0x16) << 8), 640);
  assert.equal(small.cmosRead(0x17) | (small.cmosRead(0x18) << 8), 0xffff);
  assert.equal(small.cmosRead(0x30) | (small.cmosRead(0x31) << 8), 0xffff);
  assert.equal(small.cmosRead(0x34) | (small.cmosRead(0x35) << 8), (496 * MiB) / 65536);
  assert.equal(small.cmosRead(0x5b) | small.cmosRead(0x5c) | small.cmosRead(0x5d), 0);
  assert.equal(small.cmosRead(0x5f), 1, 'CPU count - 1');
  const tiny = makeRtc(16 * MiB);
  assert.equal(tiny.cmosRead(0x17) | (tiny.cmosRead(0x18) << 8), 15 * 1024);
  assert.equal(tiny.cmosRead(0x34) | tiny.cmosRead(0x35), 0);
  let sum = 0;
  for (let i = 0x10; i <= 0x2d; i++) sum += tiny.cmosRead(i);
  assert.equal((tiny.cmosRead(0x2e) << 8) | tiny.cmosRead(0x2f), sum);
  const big = makeRtc(6 * GiB);
  assert.equal(big.cmosRead(0x34) | (big.cmosRead(0x35) << 8), (3 * GiB - 16 * MiB) / 65536);
  const above4g = big.cmosRead(0x5b) | (big.cmosRead(0x5c) << 8) | (big.cmosRead(0x5d) << 16);
  assert.equal(above4g, (3 * GiB) / 65536);
});
