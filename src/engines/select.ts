/**
 * Engine selection. `kvm` and `soft` are loaded on demand (so a host without
 * the native addon can still run `soft`); `auto` calibrates every engine that
 * works here and picks the fastest, saying why.
 */

import type { Engine, EngineName } from './engine.js';
import { EngineUnavailableError } from './engine.js';
import { measureNsPerInstruction } from './calibrate.js';
import type { EngineChoice } from '../vmm/config.js';
import { PCI_INTX_GSI_BASE, PCI_INTX_GSI_COUNT } from '../machine/layout.js';

export interface EngineSelection {
  engine: Engine;
  /** One line saying why this engine was chosen. */
  reason: string;
}

/** Loads an engine implementation by name. */
export async function loadEngine(name: EngineName): Promise<Engine> {
  if (name === 'kvm') {
    const { KvmEngine } = await import('./kvm/kvm-engine.js');
    return new KvmEngine();
  }
  const [{ SoftEngine }, { createSoftPlatform }] = await Promise.all([import('./soft/soft-engine.js'), import('./soft/platform/index.js')]);
  // PCI INTx lines are level-triggered and active-low (the DSDT's _PRT says so), like real PCI wiring.
  const activeLowPins = Array.from({ length: PCI_INTX_GSI_COUNT }, (_, i) => PCI_INTX_GSI_BASE + i);
  return new SoftEngine((options) => createSoftPlatform({ ...options, activeLowPins }));
}

/** Above this many ns per simple instruction, a KVM is emulating rather than running guests on hardware. */
const HARDWARE_SPEED_NS = 20;

function formatNs(ns: number): string {
  return ns >= 1000 ? `${(ns / 1000).toFixed(1)} µs` : `${ns.toFixed(ns < 10 ? 2 : 0)} ns`;
}

/** Resolves a user's choice to an engine. Throws EngineUnavailableError if an explicit choice cannot run. */
export async function selectEngine(choice: EngineChoice): Promise<EngineSelection> {
  if (choice !== 'auto') return { engine: await loadEngine(choice), reason: `--engine ${choice} was requested` };
  const timings: { engine: Engine; ns: number }[] = [];
  const problems: string[] = [];
  for (const name of ['kvm', 'soft'] as const) {
    try {
      const engine = await loadEngine(name);
      timings.push({ engine, ns: await measureNsPerInstruction(engine) });
    } catch (e) {
      problems.push(e instanceof EngineUnavailableError ? e.message : `${name}: ${(e as Error).message}`);
    }
  }
  if (timings.length === 0) throw new EngineUnavailableError('soft', `no engine works here (${problems.join('; ')})`);
  timings.sort((a, b) => a.ns - b.ns);
  const best = timings[0];
  const measured = timings.map((t) => `${t.engine.name} ${formatNs(t.ns)}/instruction`).join(', ');
  const kvm = timings.find((t) => t.engine.name === 'kvm');
  const slowKvm = kvm !== undefined && kvm.ns > HARDWARE_SPEED_NS ? '; kvm is not running guests at hardware speed here (nested or emulated)' : '';
  const why = `${slowKvm}${problems.length > 0 ? `; ${problems.join('; ')}` : ''}`;
  return { engine: best.engine, reason: `auto chose ${best.engine.name}: fastest measured (${measured})${why}` };
}
