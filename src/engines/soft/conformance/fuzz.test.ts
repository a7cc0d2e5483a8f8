/**
 * Random-instruction fuzzing, soft against kvm: seeded batches of random
 * integer-ISA cases (fuzz.ts) run on both engines and compared case by case.
 * TYPEVISOR_FUZZ_SEED and TYPEVISOR_FUZZ_CASES override the seed and the
 * number of cases per batch; a failure prints the seed, each failing case and
 * a shrunk reproducer. Skipped (with the reason) when /dev/kvm is absent.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { KvmEngine } from '../../kvm/kvm-engine.js';
import { SoftEngine } from '../soft-engine.js';
import { fakePlatformFactory } from '../test-support.js';
import { buildBatch, compareEngines, runBatch, type ConformanceCase } from './harness.js';
import { generateCases, reproducer, shrinkCase } from './fuzz.js';

const HAVE_KVM = existsSync('/dev/kvm');
const soft = (): SoftEngine => new SoftEngine(fakePlatformFactory());
const BASE_SEED = Number(process.env.TYPEVISOR_FUZZ_SEED ?? 0x5eed2026);
const CASES = Number(process.env.TYPEVISOR_FUZZ_CASES ?? 8000);
const BATCHES = process.env.TYPEVISOR_FUZZ_SEED ? 1 : 8;

void test('the generator is deterministic and every generated case assembles and runs to its end on soft', async () => {
  const a = generateCases(1234, 300);
  const b = generateCases(1234, 300);
  assert.deepEqual(a, b);
  assert.notDeepEqual(generateCases(1235, 300).map((c) => c.asm), a.map((c) => c.asm));
  const result = await runBatch(soft(), buildBatch(a));
  assert.deepEqual(result.exit, { kind: 'debug-exit', value: 0 });
  // Every case stored its registers: R15 (the block pointer) comes back in each block.
  result.cases.forEach((r, i) => assert.equal(r.regs[15], BigInt(0x1000000 + i * 0x400), `case ${i}`));
});

/** Runs `c` alone at its original block index (cases use absolute addresses inside their block), padded with NOPs. */
async function failsOnBoth(kvm: KvmEngine, c: ConformanceCase, index: number): Promise<boolean> {
  const cases: ConformanceCase[] = Array.from({ length: index }, () => ({ name: 'pad', asm: 'nop' }));
  cases.push(c);
  const { failures } = await compareEngines(soft(), kvm, cases);
  return failures.length > 0;
}

for (let batch = 0; batch < BATCHES; batch++) {
  const seed = (BASE_SEED + batch * 0x9e3779b1) >>> 0;
  void test(`random integer instructions, soft equals kvm (seed ${seed}, ${CASES} cases)`, { timeout: 120000 }, async (t) => {
    if (!HAVE_KVM) { t.skip('/dev/kvm is not present on this host: nothing to compare the soft engine against'); return; }
    const kvm = new KvmEngine();
    const started = performance.now();
    const cases = generateCases(seed, CASES);
    const generatedMs = performance.now() - started;
    const { failures, subject, reference } = await compareEngines(soft(), kvm, cases);
    const totalMs = performance.now() - started;
    t.diagnostic(`seed ${seed}: ${CASES} cases in ${totalMs.toFixed(0)} ms (${(CASES / (totalMs / 1000)).toFixed(0)} cases/s end to end; generate+assemble ${generatedMs.toFixed(0)} ms, soft run ${subject.runMs.toFixed(0)} ms, kvm run ${reference?.runMs.toFixed(0)} ms)`);
    if (failures.length === 0) return;
    const report = [`seed ${seed} (rerun with TYPEVISOR_FUZZ_SEED=${seed} TYPEVISOR_FUZZ_CASES=${CASES}): ${failures.length} failing cases`, ...failures.slice(0, 10)];
    // Shrink the first few failing cases into reproducers.
    const failing = cases.map((c, i) => [c, i] as const).filter(([c]) => failures.some((f) => f.includes(`"${c.name}"`))).slice(0, 3);
    for (const [c, i] of failing) report.push(`reproducer (block index ${i}):\n` + reproducer(await shrinkCase(c, (cand) => failsOnBoth(kvm, cand, i))));
    assert.fail(report.join('\n'));
  });
}
