/**
 * Real-mode conformance: BCD arithmetic, 16-bit addressing forms, operand-
 * and address-size prefixes in 16-bit code, segment moves, XLAT and LDS/LES,
 * compared between soft and kvm (skipped with the reason without /dev/kvm);
 * DAA/AAA/AAS (which kvm_pvm cannot run) and the AL-based AAM/AAD flags are
 * checked against the SDM on soft.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { KvmEngine } from '../../kvm/kvm-engine.js';
import { SoftEngine } from '../soft-engine.js';
import { fakePlatformFactory } from '../test-support.js';
import { checkRealMode, compareRealMode, realModeCases, realModeSdmCases } from './real-mode.js';

const soft = (): SoftEngine => new SoftEngine(fakePlatformFactory());

void test('real mode: BCD adjustments match the SDM examples on soft', async () => {
  assert.deepEqual(await checkRealMode(soft(), realModeSdmCases()), []);
});

void test('real mode: soft equals kvm (DAS/AAM/AAD, 16-bit addressing, prefixes, segments, XLAT, LDS/LES)', async (t) => {
  if (!existsSync('/dev/kvm')) { t.skip('/dev/kvm is not present on this host: nothing to compare the soft engine against'); return; }
  assert.deepEqual(await compareRealMode(soft(), new KvmEngine(), realModeCases()), []);
});
