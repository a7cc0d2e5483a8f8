/**
 * Tests for the x87 state images: FXSAVE's x87 area, and the FNSTENV/FNSAVE
 * environment layouts (16/32-bit, real and protected mode), with tags.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Cpu } from '../cpu.js';
import { fxrstorX87, fxsaveX87, loadEnv, storeEnv, TAG_EMPTY, TAG_SPECIAL, TAG_VALID, TAG_ZERO, X87State } from './state.js';

function sample(): X87State {
  const x = new X87State();
  x.top = 6;
  x.setPhys(6, 0x3fff, 0x80000000, 0); // ST0 = 1.0
  x.setPhys(7, 0, 0, 0); // ST1 = +0
  x.setPhys(0, 0x7fff, 0xc0000000, 0); // ST2 = QNaN
  x.cw = 0x027b;
  x.sw = 0xc185; // B, C3, C0, ES, ZE (unmasked), IE
  x.fop = 0x5e9; x.fip = 0x123456; x.fcs = 0x10; x.fdp = 0xabcdef; x.fds = 0x18;
  return x;
}

void test('FXSAVE x87 area: layout and round trip', () => {
  const x = sample();
  const buf = new DataView(new ArrayBuffer(512));
  fxsaveX87({ x87: x } as unknown as Cpu, buf, 0);
  assert.equal(buf.getUint16(0, true), 0x027b);
  assert.equal(buf.getUint16(2, true), 0xc185 | (6 << 11));
  assert.equal(buf.getUint8(4), 0b11000001, 'abridged tag: R0, R6, R7 in use');
  assert.equal(buf.getUint16(6, true), 0x5e9);
  assert.equal(buf.getUint32(8, true), 0x123456);
  assert.equal(buf.getUint16(12, true), 0x10);
  assert.equal(buf.getUint32(16, true), 0xabcdef);
  assert.equal(buf.getUint16(20, true), 0x18);
  assert.equal(buf.getUint16(32 + 8, true), 0x3fff, 'ST0 at byte 32');
  assert.equal(buf.getUint32(32 + 4, true), 0x80000000);
  assert.equal(buf.getUint16(64 + 8, true), 0x7fff, 'ST2 at byte 64');
  const y = new X87State();
  fxrstorX87({ x87: y } as unknown as Cpu, buf, 0);
  assert.equal(y.top, 6);
  assert.equal(y.statusWord(), x.statusWord());
  assert.equal(y.cw, 0x027b);
  assert.deepEqual(Array.from(y.tag), [TAG_SPECIAL, 3, 3, 3, 3, 3, TAG_VALID, TAG_ZERO]);
  assert.equal(y.se[6], 0x3fff);
  // FXSAVE64: 64-bit FIP/FDP.
  x.fip = 0x7fff_1234_5678;
  fxsaveX87({ x87: x } as unknown as Cpu, buf, 0, true);
  assert.equal(buf.getBigUint64(8, true), 0x7fff_1234_5678n);
  fxrstorX87({ x87: y } as unknown as Cpu, buf, 0, true);
  assert.equal(y.fip, 0x7fff_1234_5678);
});

void test('FNSTENV/FLDENV images in all four layouts, with the full tag word', () => {
  for (const op32 of [false, true]) {
    for (const pm of [false, true]) {
      const x = sample();
      if (!pm) { x.fcs = 0; x.fds = 0; }
      const img = new Uint8Array(28);
      const dv = new DataView(img.buffer);
      storeEnv(x, dv, op32, pm);
      const w = op32 ? 4 : 2;
      assert.equal(dv.getUint16(0, true), 0x027b);
      const tagWord = dv.getUint16(2 * w, true);
      assert.equal(tagWord & 3, TAG_SPECIAL, 'R0: NaN is special');
      assert.equal((tagWord >> 12) & 3, TAG_VALID, 'R6 valid');
      assert.equal((tagWord >> 14) & 3, TAG_ZERO, 'R7 zero');
      assert.equal((tagWord >> 2) & 3, TAG_EMPTY, 'R1 empty');
      const y = new X87State();
      y.se.set(x.se); y.hi.set(x.hi); y.lo.set(x.lo);
      loadEnv(y, dv, op32, pm);
      assert.equal(y.cw, x.cw);
      assert.equal(y.statusWord(), x.statusWord());
      assert.deepEqual(Array.from(y.tag), Array.from(x.tag));
      const ipMask = op32 ? 0xffffffff : pm ? 0xffff : 0xfffff;
      assert.equal(y.fip, x.fip & ipMask, `FIP op32=${op32} pm=${pm}`);
      assert.equal(y.fdp, x.fdp & ipMask, `FDP op32=${op32} pm=${pm}`);
      if (op32 || !pm) assert.equal(y.fop, x.fop, 'FOP');
    }
  }
});
