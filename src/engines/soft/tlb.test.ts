/**
 * Software TLB flushes: a CR3-style flush drops exactly the non-global
 * entries and a full flush drops all, both through the install log and after
 * it overflowed (more installs than it remembers).
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ACC_READ, CR4_PGE } from './arch.js';
import { CodeCache } from './code-cache.js';
import { Cpu } from './cpu.js';
import { GuestRam } from './guest-ram.js';
import { MonotonicClock } from './soft-engine.js';
import { identityPageTables, longModeState } from './test-support.js';

const PML4 = 0x9000;
const PD = PML4 + 0x2000;
const MB2 = 0x200000;

function setup(): { cpu: Cpu; ram: GuestRam } {
  const ram = new GuestRam(32 * 1024 * 1024);
  for (const m of identityPageTables(PML4)) ram.guestMemory.writeBytes(m.address, m.bytes);
  const cpu = new Cpu(0, ram, new CodeCache(ram.size), null, new MonotonicClock());
  const state = longModeState(0x100000, PML4);
  state.cr4 |= BigInt(CR4_PGE);
  cpu.setState(state);
  // 2 MiB page 1 is global, page 2 is not.
  mapLarge(ram, 1, 1, true);
  return { cpu, ram };
}

/** Points the 2 MiB PD entry `index` at physical 2 MiB frame `frame`. */
function mapLarge(ram: GuestRam, index: number, frame: number, global: boolean): void {
  const entry = new Uint8Array(8);
  new DataView(entry.buffer).setUint32(0, (frame * MB2) | 0x87 | (global ? 0x100 : 0), true);
  ram.guestMemory.writeBytes(PD + index * 8, entry);
}

for (const installs of [4, 5000]) {
  test(`flushTlb keeps global entries on a CR3 flush and drops them on a full flush (${installs} installs)`, () => {
    const { cpu, ram } = setup();
    const globalLin = 1 * MB2 + 0x1234;
    const localLin = 2 * MB2 + 0x5678;
    assert.equal(cpu.translate(globalLin, ACC_READ, false), globalLin);
    assert.equal(cpu.translate(localLin, ACC_READ, false), localLin);
    // Fill more of the TLB (beyond the install log when installs is large).
    // (Pages sharing a direct-mapped slot with the two under test are skipped.)
    for (let i = 0; i < installs; i++) {
      const lin = 4 * MB2 + i * 0x1000;
      const slot = (lin >>> 12) & 0xfff;
      if (slot !== (globalLin >>> 12) && slot !== (localLin >>> 12)) cpu.translate(lin, ACC_READ, false);
    }
    // Change both mappings behind the TLB's back.
    mapLarge(ram, 1, 6, true);
    mapLarge(ram, 2, 8, false);
    assert.equal(cpu.translate(localLin, ACC_READ, false), localLin, 'stale until flushed');
    cpu.flushTlb(false);
    assert.equal(cpu.translate(localLin, ACC_READ, false), 8 * MB2 + 0x5678, 'non-global entry dropped');
    assert.equal(cpu.translate(globalLin, ACC_READ, false), globalLin, 'global entry kept');
    cpu.flushTlb(false);
    assert.equal(cpu.translate(globalLin, ACC_READ, false), globalLin, 'global entry kept by a second CR3 flush');
    cpu.flushTlb(true);
    assert.equal(cpu.translate(globalLin, ACC_READ, false), 6 * MB2 + 0x1234, 'global entry dropped by a full flush');
  });
}
