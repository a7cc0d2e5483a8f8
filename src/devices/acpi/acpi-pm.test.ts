/** Tests for the ACPI PM block: S5 power-off, SCI_EN, PM timer, status/enable and the SCI. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ACPI_PM_TIMER_32BIT, ACPI_S5_SLP_TYP, AcpiPm, AcpiPmLayout, Pm1Event } from './acpi-pm.js';
import { ManualClock } from '../host-clock.js';
import { EventLog, RecordingInterruptController } from '../fakes.js';

const SCI = 9;

function makePm() {
  const clock = new ManualClock(1000);
  const pic = new RecordingInterruptController();
  const log = new EventLog();
  const pm = new AcpiPm({ sci: pic.line(SCI), onSystemEvent: log.sink, clock, timers: clock });
  return { clock, pic, log, pm };
}

void test('S5: SLP_TYP then SLP_EN (as Linux writes them) powers off; S3 does not', () => {
  const { pm, log } = makePm();
  assert.equal(pm.read(AcpiPmLayout.PM1A_CNT, 2) & 1, 1, 'SCI_EN');
  pm.write(AcpiPmLayout.PM1A_CNT, 2, (1 << 10) | 0x2000 | 1);
  assert.equal(log.events.length, 0, 'S3 request ignored');
  pm.write(AcpiPmLayout.PM1A_CNT, 2, (ACPI_S5_SLP_TYP << 10) | 1);
  assert.equal(log.events.length, 0);
  pm.write(AcpiPmLayout.PM1A_CNT, 2, (ACPI_S5_SLP_TYP << 10) | 0x2000 | 1);
  assert.deepEqual(log.events, [{ kind: 'poweroff' }]);
  assert.equal(pm.read(AcpiPmLayout.PM1A_CNT, 2) & 0x2000, 0, 'SLP_EN reads 0');
  // A byte write of the high half works too.
  pm.write(AcpiPmLayout.PM1A_CNT + 1, 1, ((ACPI_S5_SLP_TYP << 10) | 0x2000) >> 8);
  assert.equal(log.events.length, 2);
  pm.write(AcpiPmLayout.PM1A_CNT, 2, 0);
  assert.equal(pm.read(AcpiPmLayout.PM1A_CNT, 2) & 1, 1, 'SCI_EN cannot be cleared');
});

void test('PM timer counts at 3.579545 MHz, monotonic, 24 bits wide', () => {
  const { pm, clock } = makePm();
  assert.equal(ACPI_PM_TIMER_32BIT, false);
  const t0 = pm.read(AcpiPmLayout.PM_TMR, 4);
  clock.advance(1);
  const t1 = pm.read(AcpiPmLayout.PM_TMR, 4);
  assert.equal(t1 - t0, 3579);
  clock.advance(1000);
  const t2 = pm.read(AcpiPmLayout.PM_TMR, 4);
  assert.equal(t2 - t1, 3579545);
  let last = t2;
  for (let i = 0; i < 100; i++) {
    clock.advance(0.01);
    const t = pm.read(AcpiPmLayout.PM_TMR, 4);
    assert.ok(t >= last);
    last = t;
  }
  clock.advance(5000);
  assert.ok(pm.read(AcpiPmLayout.PM_TMR, 4) < 2 ** 24);
});

void test('TMR_STS sets when the top bit toggles, clears on write 1, and raises the SCI when enabled', () => {
  const { pm, clock, pic } = makePm();
  assert.equal(pm.read(AcpiPmLayout.PM1A_EVT, 2) & Pm1Event.TIMER, 0);
  pm.write(AcpiPmLayout.PM1A_EVT + 2, 2, Pm1Event.TIMER);
  assert.equal(clock.activeTimers, 1);
  clock.advance(2344); // 2^23 ticks is about 2343.5 ms
  assert.equal(pm.read(AcpiPmLayout.PM1A_EVT, 2) & Pm1Event.TIMER, Pm1Event.TIMER);
  assert.equal(pic.level(SCI), true);
  pm.write(AcpiPmLayout.PM1A_EVT, 2, Pm1Event.TIMER);
  assert.equal(pm.read(AcpiPmLayout.PM1A_EVT, 2) & Pm1Event.TIMER, 0);
  assert.equal(pic.level(SCI), false);
});

void test('power button: status without enable raises nothing; enabling raises the SCI; W1C clears', () => {
  const { pm, pic } = makePm();
  pm.pressPowerButton();
  assert.equal(pm.read(AcpiPmLayout.PM1A_EVT, 2) & Pm1Event.POWER_BUTTON, Pm1Event.POWER_BUTTON);
  assert.equal(pic.level(SCI), false);
  pm.write(AcpiPmLayout.PM1A_EVT, 4, Pm1Event.POWER_BUTTON << 16); // enable via a 32-bit write, clear nothing
  assert.equal(pm.read(AcpiPmLayout.PM1A_EVT + 2, 2), Pm1Event.POWER_BUTTON);
  assert.equal(pic.level(SCI), true);
  pm.write(AcpiPmLayout.PM1A_EVT, 2, 0); // writing 0 clears nothing
  assert.equal(pic.level(SCI), true);
  pm.write(AcpiPmLayout.PM1A_EVT, 2, Pm1Event.POWER_BUTTON);
  assert.equal(pic.level(SCI), false);
});

void test('GPE0: status W1C, enable read/write, SCI when both', () => {
  const { pm, pic } = makePm();
  pm.raiseGpe(3);
  assert.equal(pm.read(AcpiPmLayout.GPE0, 1), 0x08);
  assert.equal(pic.level(SCI), false);
  pm.write(AcpiPmLayout.GPE0 + 4, 1, 0x08);
  assert.equal(pm.read(AcpiPmLayout.GPE0 + 4, 4), 0x08);
  assert.equal(pic.level(SCI), true);
  pm.write(AcpiPmLayout.GPE0, 1, 0x08);
  assert.equal(pm.read(AcpiPmLayout.GPE0, 4), 0);
  assert.equal(pic.level(SCI), false);
  assert.equal(pm.read(0x10, 1), 0xff, 'unused offsets float');
});
