/**
 * Engine calibration: runs a tiny real-mode loop of known length on an engine
 * and measures nanoseconds per guest instruction. `--engine auto` uses it to
 * tell a KVM that runs guests on hardware (well under 10 ns per instruction)
 * from a nested KVM whose host emulates every instruction (about 1 µs here).
 */

import type { Engine, VmExit } from './engine.js';
import { resetCpuState, realModeSegment } from './cpu-state.js';
import { Ports } from '../machine/layout.js';

const CODE_ADDRESS = 0x1000;
const RAM = 16 * 1024 * 1024;

/** Real-mode code: mov ecx, n; l: dec ecx; jnz l; out POST, al; hlt. Runs 2n + 2 instructions. */
export function calibrationLoop(iterations: number): Uint8Array {
  const n = iterations >>> 0;
  return Uint8Array.from([
    0x66, 0xb9, n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24, // mov ecx, n
    0x66, 0x49, // dec ecx
    0x75, 0xfc, // jnz -4
    0xe6, Ports.POST, // out 0x80, al
    0xf4, // hlt
  ]);
}

/** Wall time in ns for one VM to run the loop with `iterations` until its `out`. */
async function timeLoop(engine: Engine, iterations: number): Promise<number> {
  const vm = await engine.createVm({ ramSize: RAM, vcpuCount: 1 });
  try {
    vm.memory.writeBytes(CODE_ADDRESS, calibrationLoop(iterations));
    const state = resetCpuState();
    state.seg.cs = realModeSegment(0, true);
    state.rip = BigInt(CODE_ADDRESS);
    vm.vcpus[0].setState(state);
    let end = 0n;
    const start = process.hrtime.bigint();
    const exit: VmExit = await vm.run({
      pioRead: () => 0xff,
      pioWrite: (port) => {
        if (port === Ports.POST && end === 0n) {
          end = process.hrtime.bigint();
          vm.requestExit({ kind: 'stopped' });
        }
      },
      mmioRead: () => 0xffffffff,
      mmioWrite: () => undefined,
    });
    if (end === 0n) throw new Error(`calibration guest ended without reaching its out instruction (${exit.kind})`);
    return Number(end - start);
  } finally {
    vm.destroy();
  }
}

/**
 * Nanoseconds per guest instruction on `engine`: the slope between a short and
 * a long run, so VM creation and entry costs cancel out. The long run is long
 * enough (400,000 instructions) for a software CPU to be past its JIT warm-up.
 */
export async function measureNsPerInstruction(engine: Engine, iterations = 200_000): Promise<number> {
  const short = await timeLoop(engine, 1_000);
  const long = await timeLoop(engine, 1_000 + iterations);
  return Math.max(0, long - short) / (2 * iterations);
}
