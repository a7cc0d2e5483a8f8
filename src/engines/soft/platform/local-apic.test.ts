/**
 * Tests of the local APIC, driven through its register page and MSRs the way
 * Linux and kvm-unit-tests' apic tests drive the hardware.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSoftPlatform } from './index.js';

const APIC_ID = 0x20;
const APIC_LVR = 0x30;
const APIC_TASKPRI = 0x80;
const APIC_PROCPRI = 0xa0;
const APIC_EOI = 0xb0;
const APIC_LDR = 0xd0;
const APIC_DFR = 0xe0;
const APIC_SPIV = 0xf0;
const APIC_ISR = 0x100;
const APIC_TMR = 0x180;
const APIC_IRR = 0x200;
const APIC_ESR = 0x280;
const APIC_ICR = 0x300;
const APIC_ICR2 = 0x310;
const APIC_LVTT = 0x320;
const APIC_LVT0 = 0x350;
const APIC_LVTERR = 0x370;
const APIC_TMICT = 0x380;
const APIC_TMCCT = 0x390;
const APIC_TDCR = 0x3e0;

const LVT_MASKED = 0x10000;
const TIMER_PERIODIC = 0x20000;
const TIMER_TSC_DEADLINE = 0x40000;

function setup(vcpuCount = 2, tscHz = 2e9) {
  const clock = { now: 0, tscHz, nowNs(): number { return clock.now; } };
  const woken: number[] = [];
  const platform = createSoftPlatform({ vcpuCount, clock, onWake: (i) => woken.push(i) });
  const [bsp, ap] = platform.lapicModels;
  return { clock, platform, bsp: bsp, ap: ap, woken };
}

type Apic = ReturnType<typeof setup>['bsp'];

function rd(apic: Apic, offset: number): number {
  return apic.mmioRead(offset, 4);
}
function wr(apic: Apic, offset: number, value: number): void {
  apic.mmioWrite(offset, 4, value);
}
function enable(apic: Apic, spurious = 0xff): void {
  wr(apic, APIC_SPIV, 0x100 | spurious);
}
/** A fixed self-IPI through the ICR (xAPIC). */
function selfIpi(apic: Apic, vector: number, level = false): void {
  wr(apic, APIC_ICR, (1 << 18) | 0x4000 | (level ? 0x8000 : 0) | vector);
}
function bitSet(apic: Apic, base: number, vector: number): boolean {
  return ((rd(apic, base + (vector >>> 5) * 0x10) >>> (vector & 31)) & 1) === 1;
}
function msr(apic: Apic, index: number): [ok: boolean, lo: number, hi: number] {
  const out = new Uint32Array(2);
  const ok = apic.readMsr(index, out);
  return [ok, out[0], out[1]];
}

void test('power-up state: version, IDs, APIC base, masked LVTs, BSP LINT0 in ExtINT', () => {
  const { bsp, ap } = setup();
  assert.equal(rd(bsp, APIC_LVR), 0x00050014);
  assert.equal(rd(bsp, APIC_ID), 0);
  assert.equal(rd(ap, APIC_ID), 1 << 24);
  assert.equal(rd(bsp, APIC_SPIV), 0xff);
  assert.equal(rd(bsp, APIC_DFR), 0xffffffff);
  assert.equal(rd(bsp, APIC_LVTT), LVT_MASKED);
  assert.equal(rd(bsp, APIC_LVT0), 0x700);
  assert.equal(rd(ap, APIC_LVT0), LVT_MASKED);
  assert.deepEqual(msr(bsp, 0x1b), [true, 0xfee00900, 0]);
  assert.deepEqual(msr(ap, 0x1b), [true, 0xfee00800, 0]);
  assert.equal(bsp.baseAddress(), 0xfee00000);
  assert.ok(bsp.mmioEnabled());
  // Byte reads see the register's bytes.
  assert.equal(bsp.mmioRead(APIC_LVR, 1), 0x14);
  assert.equal(bsp.mmioRead(APIC_LVR + 2, 1), 0x05);
});

void test('fixed interrupts are dropped while the APIC is software-disabled', () => {
  const { bsp } = setup();
  selfIpi(bsp, 0x40);
  assert.equal(bsp.pendingVector(), -1);
  enable(bsp);
  selfIpi(bsp, 0x40);
  assert.equal(bsp.pendingVector(), 0x40);
  // Software disable masks the LVT entries, and they cannot be unmasked while disabled.
  wr(bsp, APIC_LVTT, 0x30);
  assert.equal(rd(bsp, APIC_LVTT), 0x30);
  wr(bsp, APIC_SPIV, 0xff);
  assert.equal(rd(bsp, APIC_LVTT), 0x30 | LVT_MASKED);
  wr(bsp, APIC_LVTT, 0x30);
  assert.equal(rd(bsp, APIC_LVTT), 0x30 | LVT_MASKED);
});

void test('TPR masks lower priority classes and PPR follows TPR and ISR', () => {
  const { bsp } = setup();
  enable(bsp);
  selfIpi(bsp, 0x45);
  wr(bsp, APIC_TASKPRI, 0x50);
  assert.equal(rd(bsp, APIC_PROCPRI), 0x50);
  assert.equal(bsp.pendingVector(), -1);
  wr(bsp, APIC_TASKPRI, 0x4f); // same class as the vector: still blocked
  assert.equal(bsp.pendingVector(), -1);
  wr(bsp, APIC_TASKPRI, 0x3f);
  assert.equal(bsp.pendingVector(), 0x45);
  assert.equal(bsp.acknowledge(), 0x45);
  assert.equal(rd(bsp, APIC_PROCPRI), 0x40); // ISR class wins over TPR 0x3f
  wr(bsp, APIC_EOI, 0);
  assert.equal(rd(bsp, APIC_PROCPRI), 0x3f);
});

void test('IRR -> ISR -> EOI with nested priorities', () => {
  const { bsp } = setup();
  enable(bsp);
  selfIpi(bsp, 0x31);
  assert.ok(bitSet(bsp, APIC_IRR, 0x31));
  assert.equal(bsp.acknowledge(), 0x31);
  assert.ok(!bitSet(bsp, APIC_IRR, 0x31));
  assert.ok(bitSet(bsp, APIC_ISR, 0x31));
  // A higher class nests; the same class waits.
  selfIpi(bsp, 0x61);
  selfIpi(bsp, 0x35);
  assert.equal(bsp.pendingVector(), 0x61);
  assert.equal(bsp.acknowledge(), 0x61);
  assert.equal(bsp.pendingVector(), -1);
  assert.equal(rd(bsp, APIC_PROCPRI), 0x60);
  wr(bsp, APIC_EOI, 0); // ends 0x61
  assert.ok(!bitSet(bsp, APIC_ISR, 0x61));
  assert.ok(bitSet(bsp, APIC_ISR, 0x31));
  assert.equal(bsp.pendingVector(), -1); // 0x35 is in 0x31's class
  wr(bsp, APIC_EOI, 0); // ends 0x31
  assert.equal(bsp.pendingVector(), 0x35);
  assert.equal(bsp.acknowledge(), 0x35);
  wr(bsp, APIC_EOI, 0);
  assert.equal(rd(bsp, APIC_ISR + 0x10), 0);
  assert.equal(bsp.pendingVector(), -1);
  // Acknowledging with nothing deliverable yields the spurious vector.
  assert.equal(bsp.acknowledge(), 0xff);
});

void test('level-triggered vectors set TMR; edge ones clear it', () => {
  const { bsp } = setup();
  enable(bsp);
  selfIpi(bsp, 0x50, true);
  assert.ok(bitSet(bsp, APIC_TMR, 0x50));
  bsp.acknowledge();
  wr(bsp, APIC_EOI, 0);
  selfIpi(bsp, 0x50, false);
  assert.ok(!bitSet(bsp, APIC_TMR, 0x50));
});

void test('one-shot timer fires exactly when due; current count decrements with the divider', () => {
  const { bsp, clock, platform, woken } = setup();
  enable(bsp);
  wr(bsp, APIC_TDCR, 0xb); // divide by 1
  wr(bsp, APIC_LVTT, 0x30);
  clock.now = 5000;
  wr(bsp, APIC_TMICT, 1000); // 1 GHz: 1000 ns
  assert.equal(platform.nextDeadlineNs(), 6000);
  clock.now = 5250;
  assert.equal(rd(bsp, APIC_TMCCT), 750);
  platform.poll(5999);
  assert.equal(bsp.pendingVector(), -1);
  clock.now = 6000;
  platform.poll(6000);
  assert.equal(bsp.pendingVector(), 0x30);
  assert.ok(woken.includes(0));
  assert.equal(rd(bsp, APIC_TMCCT), 0);
  assert.equal(platform.nextDeadlineNs(), Infinity);
  // Divide by 16: 100 counts take 1600 ns.
  wr(bsp, APIC_TDCR, 0x3);
  wr(bsp, APIC_TMICT, 100);
  clock.now = 6000 + 160;
  assert.equal(rd(bsp, APIC_TMCCT), 90);
  assert.equal(platform.nextDeadlineNs(), 7600);
  // Changing the divider mid-count keeps the current count and rescales the rest.
  wr(bsp, APIC_TDCR, 0xb);
  assert.equal(rd(bsp, APIC_TMCCT), 90);
  assert.equal(platform.nextDeadlineNs(), 6160 + 90);
  // Writing 0 stops it.
  wr(bsp, APIC_TMICT, 0);
  assert.equal(platform.nextDeadlineNs(), Infinity);
});

void test('a masked timer expires without an interrupt', () => {
  const { bsp, clock, platform } = setup();
  enable(bsp);
  wr(bsp, APIC_LVTT, 0x30 | LVT_MASKED);
  wr(bsp, APIC_TMICT, 10);
  clock.now = 20;
  platform.poll(20);
  assert.equal(bsp.pendingVector(), -1);
  assert.equal(rd(bsp, APIC_TMCCT), 0);
});

void test('periodic timer reloads and coalesces missed periods', () => {
  const { bsp, clock, platform } = setup();
  enable(bsp);
  wr(bsp, APIC_TDCR, 0xb);
  wr(bsp, APIC_LVTT, TIMER_PERIODIC | 0x40);
  wr(bsp, APIC_TMICT, 100);
  clock.now = 100;
  platform.poll(100);
  assert.equal(bsp.acknowledge(), 0x40);
  wr(bsp, APIC_EOI, 0);
  assert.equal(platform.nextDeadlineNs(), 200);
  clock.now = 130;
  assert.equal(rd(bsp, APIC_TMCCT), 70);
  // A stall of ten periods: one interrupt, phase kept.
  clock.now = 1050;
  platform.poll(1050);
  assert.equal(bsp.acknowledge(), 0x40);
  wr(bsp, APIC_EOI, 0);
  assert.equal(bsp.pendingVector(), -1);
  assert.equal(platform.nextDeadlineNs(), 1100);
  assert.equal(rd(bsp, APIC_TMCCT), 50);
});

void test('switching periodic to one-shot lets the count run down to 0 and stay', () => {
  const { bsp, clock, platform } = setup();
  enable(bsp);
  wr(bsp, APIC_TDCR, 0xb);
  wr(bsp, APIC_LVTT, TIMER_PERIODIC | 0x40);
  wr(bsp, APIC_TMICT, 100);
  clock.now = 250;
  platform.poll(250);
  assert.equal(rd(bsp, APIC_TMCCT), 50);
  wr(bsp, APIC_LVTT, 0x40); // one-shot
  assert.equal(rd(bsp, APIC_TMICT), 100);
  assert.equal(rd(bsp, APIC_TMCCT), 50);
  clock.now = 300;
  platform.poll(300);
  assert.equal(rd(bsp, APIC_TMCCT), 0);
  clock.now = 1000;
  platform.poll(1000);
  assert.equal(rd(bsp, APIC_TMCCT), 0);
  assert.equal(platform.nextDeadlineNs(), Infinity);
  // An expired count switched back to periodic stays at 0 (kvm-unit-tests apic_change_mode).
  wr(bsp, APIC_LVTT, TIMER_PERIODIC | 0x40);
  assert.equal(rd(bsp, APIC_TMCCT), 0);
  assert.equal(platform.nextDeadlineNs(), Infinity);
  // A one-shot count switched to periodic while running keeps counting, then wraps.
  wr(bsp, APIC_LVTT, 0x40);
  wr(bsp, APIC_TMICT, 100);
  clock.now = 1060;
  wr(bsp, APIC_LVTT, TIMER_PERIODIC | 0x40);
  assert.equal(rd(bsp, APIC_TMCCT), 40);
  clock.now = 1110;
  platform.poll(1110);
  assert.equal(rd(bsp, APIC_TMCCT), 90);
});

void test('TSC-deadline timer: fires at the TSC value, reads back 0 afterwards, ignores TMICT', () => {
  const { bsp, clock, platform } = setup(1, 2e9);
  enable(bsp);
  // Not in TSC-deadline mode: writes are ignored and the MSR reads 0.
  assert.ok(bsp.writeMsr(0x6e0, 1000, 0));
  assert.deepEqual(msr(bsp, 0x6e0), [true, 0, 0]);
  wr(bsp, APIC_LVTT, TIMER_TSC_DEADLINE | 0x50);
  wr(bsp, APIC_TMICT, 5);
  assert.equal(rd(bsp, APIC_TMICT), 0);
  assert.ok(bsp.writeMsr(0x6e0, 4000, 0)); // 4000 ticks at 2 GHz = 2000 ns
  assert.deepEqual(msr(bsp, 0x6e0), [true, 4000, 0]);
  assert.equal(platform.nextDeadlineNs(), 2000);
  clock.now = 1999;
  platform.poll(1999);
  assert.equal(bsp.pendingVector(), -1);
  clock.now = 2000;
  platform.poll(2000);
  assert.equal(bsp.pendingVector(), 0x50);
  assert.deepEqual(msr(bsp, 0x6e0), [true, 0, 0]);
  // A deadline already in the past fires at once (kvm-unit-tests writes the current TSC).
  bsp.acknowledge();
  wr(bsp, APIC_EOI, 0);
  clock.now = 3000;
  assert.ok(bsp.writeMsr(0x6e0, 6000, 0)); // TSC now is exactly 6000
  assert.equal(bsp.pendingVector(), 0x50);
  assert.deepEqual(msr(bsp, 0x6e0), [true, 0, 0]);
  assert.equal(platform.nextDeadlineNs(), Infinity);
  // A deadline beyond 2^32 ticks uses the high half.
  assert.ok(bsp.writeMsr(0x6e0, 0, 1));
  assert.equal(platform.nextDeadlineNs(), (2 ** 32 / 2e9) * 1e9);
  // Leaving TSC-deadline mode disarms it.
  wr(bsp, APIC_LVTT, 0x50);
  assert.equal(platform.nextDeadlineNs(), Infinity);
});

void test('x2APIC: enable through IA32_APIC_BASE, MSR registers, and #GP cases', () => {
  const { bsp, ap } = setup();
  const out = new Uint32Array(2);
  // x2APIC MSRs #GP in xAPIC mode.
  assert.equal(ap.readMsr(0x802, out), false);
  // EXTD without EN, reserved bits: #GP.
  assert.equal(ap.writeMsr(0x1b, 0xfee00400, 0), false);
  assert.equal(ap.writeMsr(0x1b, 0xfee00a00, 0), false);
  assert.equal(ap.writeMsr(0x1b, 0xfee00801, 0), false);
  assert.equal(ap.writeMsr(0x1b, 0xfee00800, 0x100), false); // above MAXPHYADDR 40
  assert.ok(ap.writeMsr(0x1b, 0xfee00c00, 0));
  assert.ok(ap.x2apicMode());
  assert.ok(!ap.mmioEnabled());
  assert.deepEqual(msr(ap, 0x802), [true, 1, 0]); // 32-bit ID
  assert.deepEqual(msr(ap, 0x803), [true, 0x00050014, 0]);
  assert.deepEqual(msr(ap, 0x80d), [true, (0 << 16) | (1 << 1), 0]); // derived LDR
  assert.equal(ap.readMsr(0x80e, out), false); // no DFR
  assert.equal(ap.readMsr(0x80b, out), false); // EOI is write-only
  assert.equal(ap.readMsr(0x83f, out), false); // SELF_IPI is write-only
  assert.equal(ap.readMsr(0x831, out), false); // no ICR high half
  assert.equal(ap.readMsr(0x801, out), false);
  assert.equal(ap.writeMsr(0x802, 5, 0), false); // ID is read-only
  assert.equal(ap.writeMsr(0x80d, 5, 0), false); // LDR is read-only
  assert.equal(ap.writeMsr(0x839, 5, 0), false); // current count is read-only
  assert.equal(ap.writeMsr(0x80b, 1, 0), false); // non-zero EOI
  assert.equal(ap.writeMsr(0x828, 1, 0), false); // non-zero ESR
  assert.equal(ap.writeMsr(0x808, 0x100, 0), false); // TPR reserved bits
  assert.equal(ap.writeMsr(0x808, 0x10, 1), false); // high half must be zero
  assert.ok(ap.writeMsr(0x80f, 0x1ff, 0));
  assert.ok(ap.writeMsr(0x83f, 0x66, 0)); // SELF_IPI
  assert.equal(ap.pendingVector(), 0x66);
  assert.equal(ap.acknowledge(), 0x66);
  assert.deepEqual(msr(ap, 0x813), [true, 1 << (0x66 - 0x60), 0]); // ISR word 3
  assert.ok(ap.writeMsr(0x80b, 0, 0));
  assert.deepEqual(msr(ap, 0x813), [true, 0, 0]);
  // x2APIC -> xAPIC directly is refused; via disabled it works and resets the state.
  assert.equal(ap.writeMsr(0x1b, 0xfee00800, 0), false);
  assert.ok(ap.writeMsr(0x1b, 0xfee00000, 0));
  assert.ok(!ap.hardwareEnabled());
  assert.equal(ap.writeMsr(0x1b, 0xfee00c00, 0), false); // disabled -> x2APIC refused
  assert.ok(ap.writeMsr(0x1b, 0xfee00800, 0));
  assert.equal(rd(ap, APIC_SPIV), 0xff);
  // The BSP flag is read-only.
  assert.ok(bsp.writeMsr(0x1b, 0xfee00800, 0));
  assert.deepEqual(msr(bsp, 0x1b), [true, 0xfee00900, 0]);
});

void test('xAPIC IPIs between two APICs: physical, logical flat and cluster, broadcast shorthands', () => {
  const { bsp, ap } = setup();
  enable(bsp);
  enable(ap);
  // Physical destination 1.
  wr(bsp, APIC_ICR2, 1 << 24);
  wr(bsp, APIC_ICR, 0x4000 | 0x41);
  assert.equal(ap.pendingVector(), 0x41);
  assert.equal(bsp.pendingVector(), -1);
  assert.equal(rd(bsp, APIC_ICR) & 0x1000, 0); // delivery status idle
  ap.acknowledge();
  wr(ap, APIC_EOI, 0);
  // Logical flat: LDR bit 1 on the AP, bit 0 on the BSP.
  wr(bsp, APIC_LDR, 0x01000000);
  wr(ap, APIC_LDR, 0x02000000);
  wr(bsp, APIC_ICR2, 0x02000000);
  wr(bsp, APIC_ICR, 0x800 | 0x4000 | 0x42);
  assert.equal(ap.pendingVector(), 0x42);
  assert.equal(bsp.pendingVector(), -1);
  ap.acknowledge();
  wr(ap, APIC_EOI, 0);
  // Logical cluster: cluster 1, member bit 0 on the AP (the BSP, flat with LDR 0, never matches).
  wr(bsp, APIC_LDR, 0);
  wr(ap, APIC_DFR, 0x0fffffff);
  wr(ap, APIC_LDR, 0x11000000);
  assert.equal(rd(ap, APIC_DFR), 0x0fffffff);
  wr(bsp, APIC_ICR2, 0x21000000); // cluster 2: no match
  wr(bsp, APIC_ICR, 0x800 | 0x4000 | 0x43);
  assert.equal(ap.pendingVector(), -1);
  wr(bsp, APIC_ICR2, 0x13000000);
  wr(bsp, APIC_ICR, 0x800 | 0x4000 | 0x43);
  assert.equal(ap.pendingVector(), 0x43);
  ap.acknowledge();
  wr(ap, APIC_EOI, 0);
  // All excluding self.
  wr(bsp, APIC_ICR, (3 << 18) | 0x4000 | 0x44);
  assert.equal(ap.pendingVector(), 0x44);
  assert.equal(bsp.pendingVector(), -1);
  ap.acknowledge();
  wr(ap, APIC_EOI, 0);
  // All including self.
  wr(bsp, APIC_ICR, (2 << 18) | 0x4000 | 0x45);
  assert.equal(ap.pendingVector(), 0x45);
  assert.equal(bsp.pendingVector(), 0x45);
  // Physical broadcast 0xff.
  wr(ap, APIC_ICR2, 0xff000000);
  wr(ap, APIC_ICR, 0x4000 | 0x55);
  assert.equal(bsp.pendingVector(), 0x55);
  assert.equal(ap.pendingVector(), 0x55);
});

void test('INIT, INIT de-assert and SIPI to an AP; NMI', () => {
  const { bsp, ap, woken } = setup();
  enable(bsp);
  enable(ap);
  wr(ap, APIC_TASKPRI, 0x20);
  wr(bsp, APIC_ICR2, 1 << 24);
  wr(bsp, APIC_ICR, 0x4000 | 0x500); // INIT assert
  assert.ok(woken.includes(1));
  wr(bsp, APIC_ICR, 0x8000 | 0x500); // INIT level de-assert: no effect
  assert.equal(ap.takeSipi(), -1);
  assert.ok(ap.takeInit());
  assert.ok(!ap.takeInit());
  // INIT reset the AP's registers but kept its ID.
  assert.equal(rd(ap, APIC_TASKPRI), 0);
  assert.equal(rd(ap, APIC_SPIV), 0xff);
  assert.equal(rd(ap, APIC_ID), 1 << 24);
  wr(bsp, APIC_ICR, 0x4000 | 0x600 | 0x9a); // SIPI vector 0x9a
  assert.equal(ap.takeSipi(), 0x9a);
  assert.equal(ap.takeSipi(), -1);
  // A stale second SIPI is discarded by the next INIT.
  wr(bsp, APIC_ICR, 0x4000 | 0x600 | 0x9a);
  wr(bsp, APIC_ICR, 0x4000 | 0x500);
  assert.ok(ap.takeInit());
  assert.equal(ap.takeSipi(), -1);
  // INIT and SIPI both delivered before the AP runs (one BSP slice on a busy host): the SIPI survives INIT.
  wr(bsp, APIC_ICR, 0x4000 | 0x500);
  wr(bsp, APIC_ICR, 0x4000 | 0x600 | 0x08);
  assert.ok(ap.takeInit());
  assert.equal(ap.takeSipi(), 0x08);
  // NMI.
  wr(bsp, APIC_ICR, 0x4000 | 0x400);
  assert.ok(ap.takeNmi());
  assert.ok(!ap.takeNmi());
  assert.ok(!bsp.takeNmi());
});

void test('x2APIC IPIs through the 64-bit ICR MSR', () => {
  const { bsp, ap } = setup();
  for (const apic of [bsp, ap]) {
    assert.ok(apic.writeMsr(0x1b, 0xfee00c00 | (apic === bsp ? 0x100 : 0), 0));
    assert.ok(apic.writeMsr(0x80f, 0x1ff, 0));
  }
  assert.ok(bsp.writeMsr(0x830, 0x4000 | 0x61, 1));
  assert.equal(ap.pendingVector(), 0x61);
  assert.deepEqual(msr(bsp, 0x830), [true, 0x4000 | 0x61, 1]);
  // Logical: cluster 0, bit 1 is APIC 1.
  assert.ok(bsp.writeMsr(0x830, 0x800 | 0x4000 | 0x62, 0x00000002));
  assert.equal(ap.acknowledge(), 0x62);
  // Broadcast 0xffffffff.
  assert.ok(bsp.writeMsr(0x830, 0x4000 | 0x63, 0xffffffff));
  assert.equal(bsp.pendingVector(), 0x63);
  // The AP has 0x62 in service; 0x61 and 0x63 wait in IRR word 3.
  assert.deepEqual(msr(ap, 0x823), [true, (1 << 1) | (1 << 3), 0]);
  assert.equal(ap.pendingVector(), -1);
});

void test('lowest-priority IPIs go to the APIC with the lowest TPR', () => {
  const { bsp, ap } = setup();
  enable(bsp);
  enable(ap);
  wr(bsp, APIC_LDR, 0x01000000);
  wr(ap, APIC_LDR, 0x02000000);
  wr(bsp, APIC_TASKPRI, 0x10);
  wr(bsp, APIC_ICR2, 0x03000000);
  wr(bsp, APIC_ICR, 0x800 | 0x4000 | 0x100 | 0x70);
  assert.equal(ap.pendingVector(), 0x70);
  assert.equal(bsp.pendingVector(), -1);
});

void test('illegal vectors set ESR bits, latched by an ESR write, and raise the error LVT', () => {
  const { bsp } = setup();
  enable(bsp);
  wr(bsp, APIC_LVTERR, 0xfe);
  selfIpi(bsp, 0x05);
  assert.equal(rd(bsp, APIC_ESR), 0); // not latched yet
  wr(bsp, APIC_ESR, 0);
  assert.equal(rd(bsp, APIC_ESR), 0x20);
  assert.equal(bsp.pendingVector(), 0xfe);
  wr(bsp, APIC_ESR, 0);
  assert.equal(rd(bsp, APIC_ESR), 0);
});

void test('ExtINT on LINT0 delivers the PIC vector and acknowledges the PIC', () => {
  const { platform, bsp, ap } = setup();
  const master = platform.pic.masterPorts;
  master.write(0, 1, 0x11);
  master.write(1, 1, 0x30);
  master.write(1, 1, 0x04);
  master.write(1, 1, 0x01);
  master.write(1, 1, 0x00); // unmask all
  platform.interrupts.setIrq(1, true);
  // The BSP's LINT0 is ExtINT at reset, even before the APIC is software-enabled.
  assert.equal(bsp.pendingVector(), 0x31);
  assert.equal(ap.pendingVector(), -1);
  assert.equal(bsp.acknowledge(), 0x31);
  assert.equal(bsp.pendingVector(), -1);
  master.write(0, 1, 0x20);
  // Masking LINT0 stops it.
  platform.interrupts.setIrq(1, false);
  platform.interrupts.setIrq(1, true);
  enable(bsp);
  wr(bsp, APIC_LVT0, 0x700 | LVT_MASKED);
  assert.equal(bsp.pendingVector(), -1);
  wr(bsp, APIC_LVT0, 0x700);
  assert.equal(bsp.pendingVector(), 0x31);
  // A hardware-disabled APIC passes INTR straight through.
  wr(bsp, APIC_LVT0, 0x700 | LVT_MASKED);
  assert.ok(bsp.writeMsr(0x1b, 0xfee00000, 0));
  assert.equal(bsp.pendingVector(), 0x31);
});

void test('CR8 is TPR bits 7:4, also while the APIC is hardware-disabled', () => {
  const { bsp } = setup();
  enable(bsp);
  bsp.writeCr8(0x5);
  assert.equal(rd(bsp, APIC_TASKPRI), 0x50);
  assert.equal(rd(bsp, APIC_PROCPRI), 0x50);
  selfIpi(bsp, 0x55);
  assert.equal(bsp.pendingVector(), -1);
  wr(bsp, APIC_TASKPRI, 0x3f);
  assert.equal(bsp.readCr8(), 0x3);
  assert.equal(bsp.pendingVector(), 0x55);
  assert.ok(bsp.writeMsr(0x1b, 0xfee00000, 0));
  bsp.writeCr8(0xf);
  assert.equal(bsp.readCr8(), 0xf);
  bsp.writeCr8(0);
});
