/** Tests for the BIOS-like interrupt state: the vector table, the handlers and the port writes of the setup routine. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GuestMemory } from '../machine/memory.js';
import { MiB } from '../machine/layout.js';
import { LoaderError } from './errors.js';
import {
  BDA_TICK_COUNT, BIOS_MASTER_MASK, BIOS_MASTER_VECTOR_BASE, BIOS_SLAVE_MASK, BIOS_SLAVE_VECTOR_BASE, LEGACY_BIOS_CODE, writeLegacyBiosState,
} from './legacy-bios-state.js';

function setUp(): { memory: GuestMemory; start: number } {
  const memory = GuestMemory.allocate(2 * MiB);
  memory.fill(0, 2 * MiB, 0xee);
  const start = writeLegacyBiosState(memory, { entry: 0x123456, eax: 0x2badb002, ebx: 0x1000 });
  return { memory, start };
}

/** The real-mode address a vector table entry points at. */
function vectorTarget(memory: GuestMemory, vector: number): number {
  return memory.read16(vector * 4 + 2) * 16 + memory.read16(vector * 4);
}

test('every vector points into the BIOS area: IRQ 0 at the tick counter, IRQ 1-7 and 8-15 at EOI handlers, the rest at IRET', () => {
  const { memory } = setUp();
  const firstByte = (v: number) => memory.read8(vectorTarget(memory, v));
  for (let v = 0; v < 256; v++) {
    const target = vectorTarget(memory, v);
    assert.ok(target >= LEGACY_BIOS_CODE && target < MiB, `vector ${v}`);
  }
  const timer = memory.readBytes(vectorTarget(memory, BIOS_MASTER_VECTOR_BASE), 18);
  assert.deepEqual([...timer.subarray(6, 11)], [0x66, 0xff, 0x06, BDA_TICK_COUNT & 0xff, BDA_TICK_COUNT >>> 8], 'inc dword [0x46c]');
  assert.equal(timer[timer.length - 1], 0xcf);
  for (let irq = 1; irq < 8; irq++) {
    const h = [...memory.readBytes(vectorTarget(memory, BIOS_MASTER_VECTOR_BASE + irq), 7)];
    assert.deepEqual(h, [0x50, 0xb0, 0x20, 0xe6, 0x20, 0x58, 0xcf], `IRQ ${irq}: EOI to the master`);
  }
  for (let irq = 8; irq < 16; irq++) {
    const h = [...memory.readBytes(vectorTarget(memory, BIOS_SLAVE_VECTOR_BASE + irq - 8), 9)];
    assert.deepEqual(h, [0x50, 0xb0, 0x20, 0xe6, 0xa0, 0xe6, 0x20, 0x58, 0xcf], `IRQ ${irq}: EOI to the slave, then the master`);
  }
  for (const v of [0, 6, 0x10, 0x13, 0x6f, 0x78, 0xff]) assert.equal(firstByte(v), 0xcf, `vector ${v}`);
  assert.equal(memory.read32(BDA_TICK_COUNT), 0);
});

test('the setup routine initialises both PICs and PIT channel 0 like a BIOS, then enters the kernel', () => {
  const { memory, start } = setUp();
  const code = memory.readBytes(start, 0x80);
  const writes: [number, number][] = [];
  let i = 0;
  for (; code[i] === 0xb0 && code[i + 2] === 0xe6; i += 4) writes.push([code[i + 3], code[i + 1]]);
  assert.deepEqual(writes, [
    [0x20, 0x11], [0xa0, 0x11],
    [0x21, BIOS_MASTER_VECTOR_BASE], [0xa1, BIOS_SLAVE_VECTOR_BASE],
    [0x21, 0x04], [0xa1, 0x02],
    [0x21, 0x01], [0xa1, 0x01],
    [0x21, BIOS_MASTER_MASK], [0xa1, BIOS_SLAVE_MASK],
    [0x43, 0x36], [0x40, 0x00], [0x40, 0x00],
  ]);
  assert.deepEqual([...code.subarray(i, i + 17)], [0xb8, 0x02, 0xb0, 0xad, 0x2b, 0xbb, 0x00, 0x10, 0, 0, 0xb9, 0x56, 0x34, 0x12, 0, 0xff, 0xe1]);
});

test('guest RAM that does not reach the BIOS area is refused with a loader error', () => {
  const memory = GuestMemory.allocate(512 * 1024);
  assert.throws(() => writeLegacyBiosState(memory, { entry: 0x8000, eax: 0, ebx: 0 }), LoaderError);
});
