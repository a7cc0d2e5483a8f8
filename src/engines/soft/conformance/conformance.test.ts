/**
 * Instruction conformance: the hand-written cases of cases.ts (every integer
 * instruction class, and the faults) run on the soft engine and on kvm (the
 * host's x86 implementation) and must agree register for register, flag for
 * flag (minus the SDM-undefined ones), byte for byte in the data window, and
 * fault for fault. Cases with an SDM expectation are checked on soft even
 * without /dev/kvm; the comparison itself is skipped (with the reason) only
 * when /dev/kvm is absent.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { KvmEngine } from '../../kvm/kvm-engine.js';
import { SoftEngine } from '../soft-engine.js';
import { fakePlatformFactory } from '../test-support.js';
import { F, compareEngines, diffCase, type CaseResult, type ConformanceCase } from './harness.js';
import { kvmCases, softOnlyCases } from './cases.js';

const HAVE_KVM = existsSync('/dev/kvm');
const soft = (): SoftEngine => new SoftEngine(fakePlatformFactory());

void test('diffCase reports each differing register, flag, fault field and memory word, and masks undefined flags', () => {
  const base: CaseResult = {
    regs: Array.from({ length: 16 }, (_, i) => BigInt(i)), flags: 0x2 | F.CF, vector: 14, error: 2, faultRip: 0x1000n, cr2: 0x5000n, faultFlags: 0x10002, data: new Uint8Array(0x200),
  };
  const c: ConformanceCase = { name: 't', asm: 'nop', undefinedFlags: F.AF };
  assert.deepEqual(diffCase(c, base, { ...base, flags: base.flags | F.AF }), [], 'AF is undefined here');
  const other: CaseResult = { ...base, regs: [...base.regs], flags: base.flags & ~F.CF, error: 3, cr2: 0x6000n, data: new Uint8Array(0x200) };
  other.regs[3] = 99n;
  other.data[0x17] = 1;
  const lines = diffCase(c, base, other);
  assert.equal(lines.length, 5, lines.join('\n'));
  assert.match(lines[0], /^rbx: expected 0x3 got 0x63$/);
  assert.match(lines[1], /differ: CF/);
  assert.match(lines[2], /^error code: expected 0x2 got 0x3$/);
  assert.match(lines[3], /^CR2: expected 0x5000 got 0x6000$/);
  assert.match(lines[4], /^memory block\+0x210: /);
  assert.deepEqual(diffCase({ ...c, looseRegs: { rbx: 0xffn } }, base, { ...other, error: 2, cr2: 0x5000n, flags: base.flags, data: base.data }), []);
});

void test('hand-written instruction cases: soft matches the SDM expectations', async () => {
  const { failures } = await compareEngines(soft(), null, kvmCases());
  assert.deepEqual(failures, []);
});

void test('hand-written instruction and fault cases: soft equals kvm', { timeout: 120000 }, async (t) => {
  if (!HAVE_KVM) { t.skip('/dev/kvm is not present on this host: nothing to compare the soft engine against'); return; }
  const cases = kvmCases();
  const { failures, subject, reference } = await compareEngines(soft(), new KvmEngine(), cases);
  t.diagnostic(`${cases.length} cases: soft ${subject.runMs.toFixed(0)} ms, kvm ${reference?.runMs.toFixed(0)} ms`);
  assert.deepEqual(failures, []);
});

void test('cases kvm_pvm cannot run (INT n for #TS/#NP, CMPXCHG16B, x87 for #NM, ENTER nesting, 16-bit ENTER/LEAVE, CR4 reserved bits) match the SDM on soft', async () => {
  const { failures } = await compareEngines(soft(), null, softOnlyCases());
  assert.deepEqual(failures, []);
});
