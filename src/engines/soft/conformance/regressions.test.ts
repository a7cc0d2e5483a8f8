/**
 * Regression tests for soft-engine bugs the conformance harness found: each
 * case carries the SDM's answer (checked on the soft engine always) and, when
 * /dev/kvm exists and kvm_pvm can run it, is also compared against kvm.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { KvmEngine } from '../../kvm/kvm-engine.js';
import { SoftEngine } from '../soft-engine.js';
import { fakePlatformFactory } from '../test-support.js';
import { ARITH, F, compareEngines, type ConformanceCase } from './harness.js';

const HAVE_KVM = existsSync('/dev/kvm');
const M64 = 0xffffffffffffffffn;
void [ARITH, F, M64]; // used by some of the tests below

/** Runs `cases` on soft (SDM expectations) and, if `onKvm` and /dev/kvm exists, compares them with kvm. */
async function check(cases: ConformanceCase[], onKvm = true): Promise<void> {
  const { failures } = await compareEngines(new SoftEngine(fakePlatformFactory()), onKvm && HAVE_KVM ? new KvmEngine() : null, cases);
  assert.deepEqual(failures, []);
}
void test('#TS(TSS selector) when the IST slot of a 64-bit gate lies beyond the TSS limit', async () => {
  // kvm_pvm cannot run INT n (emulation failure), so this is checked against the SDM only.
  await check([{ name: 'int via IST7 outside a 0x2f-byte TSS', asm: 'fault_ip: int 0x41', expect: { vector: 10, error: 0x28, faultAtLabel: true } }], false);
});
