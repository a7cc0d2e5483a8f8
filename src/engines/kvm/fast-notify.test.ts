/**
 * The kvm fast path on the host's /dev/kvm: an ioeventfd-watched MMIO write
 * never reaches VmOps yet runs its handler on the machine thread, an irqfd MSI
 * route interrupts the guest, and both are measured against the ordinary
 * paths (MMIO exit, KVM_SIGNAL_MSI). Skipped when /dev/kvm is absent.
 */

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { CR0_PE, flatSegment, resetCpuState } from '../cpu-state.js';
import type { VmExit, VmOps } from '../engine.js';
import { KvmEngine, type KvmVm } from './kvm-engine.js';

const MiB = 1024 * 1024;
const HAVE_KVM = existsSync('/dev/kvm');
const NOTIFY = 0xd0000000;
const FLAG = 0x5000;

function needKvm(t: TestContext): boolean {
  if (!HAVE_KVM) t.skip('/dev/kvm is not present on this host');
  return HAVE_KVM;
}

function bootProtectedMode(vm: KvmVm, code: number[], at = 0x1000): void {
  vm.memory.writeBytes(at, Uint8Array.from(code));
  const s = resetCpuState();
  s.seg.cs = flatSegment(0x08, true);
  for (const name of ['ds', 'es', 'ss', 'fs', 'gs'] as const) s.seg[name] = flatSegment(0x10, false);
  s.cr0 |= CR0_PE;
  s.rip = BigInt(at);
  s.gpr.rsp = 0x7000n;
  vm.vcpus[0].setState(s);
}

function withTimeout(p: Promise<VmExit>, ms: number): Promise<VmExit> {
  return Promise.race([p, new Promise<VmExit>((_, reject) => setTimeout(() => reject(new Error(`run() did not end within ${ms} ms`)), ms).unref())]);
}

/** `rounds` times: clear FLAG, write a 16-bit notify at NOTIFY, spin until the device sets FLAG; then `out 0xf3`. */
function pingPongGuest(rounds: number): number[] {
  return [
    0xb9, rounds & 0xff, (rounds >> 8) & 0xff, 0, 0, //        mov ecx, rounds
    0xc6, 0x05, 0x00, 0x50, 0x00, 0x00, 0x00, //                loop: mov byte [FLAG], 0
    0x66, 0x89, 0x0d, 0x00, 0x00, 0x00, 0xd0, //                mov [NOTIFY], cx
    0x80, 0x3d, 0x00, 0x50, 0x00, 0x00, 0x00, //                wait: cmp byte [FLAG], 0
    0x74, 0xf7, //                                              je wait
    0x49, //                                                    dec ecx
    0x75, 0xe6, //                                              jnz loop
    0xe6, 0xf3, //                                              out 0xf3, al
    0xfa, 0xf4, //                                              cli; hlt
  ];
}

class Ops implements VmOps {
  notifyExits = 0;
  constructor(
    private readonly vm: KvmVm,
    private readonly onNotify: () => void,
  ) {}
  pioRead(): number {
    return 0xff;
  }
  pioWrite(port: number): void {
    if (port === 0xf3) this.vm.requestExit({ kind: 'poweroff' });
    if (port === 0xf8) this.vm.requestExit({ kind: 'debug-exit', value: 1 });
  }
  mmioRead(): number {
    return 0;
  }
  mmioWrite(address: number): void {
    if (address === NOTIFY) {
      this.notifyExits++;
      this.onNotify();
    }
  }
}

async function pingPong(t: TestContext, useIoeventfd: boolean, rounds: number): Promise<{ usPerRound: number; exits: number; signals: number; slices: number; inSliceNotifies: number; inSliceWatches: number }> {
  const vm = await new KvmEngine({ ioeventfd: true }).createVm({ ramSize: 16 * MiB, vcpuCount: 1 });
  try {
    const fast = vm.fastNotify;
    assert.ok(fast !== undefined, 'this host KVM offers ioeventfd and irqfd');
    let handled = 0;
    const device = (): void => {
      handled++;
      vm.memory.write8(FLAG, 1);
    };
    const ops = new Ops(vm, device);
    const undo = useIoeventfd ? fast.watchMmioWrite(NOTIFY, 2, device) : undefined;
    bootProtectedMode(vm, pingPongGuest(rounds));
    const started = performance.now();
    assert.deepEqual(await withTimeout(vm.run(ops), 60000), { kind: 'poweroff' });
    const usPerRound = ((performance.now() - started) * 1000) / rounds;
    undo?.();
    assert.equal(handled, rounds);
    t.diagnostic(`${useIoeventfd ? 'ioeventfd' : 'MMIO exit'}: ${rounds} notify round trips, ${usPerRound.toFixed(1)} µs each, ${ops.notifyExits} notify exits, ${vm.stats.slices} slices, ${vm.stats.inSliceNotifies} handled in-slice`);
    return { usPerRound, exits: ops.notifyExits, signals: fast.stats.ioeventfdSignals, slices: vm.stats.slices, inSliceNotifies: vm.stats.inSliceNotifies, inSliceWatches: fast.stats.inSliceWatches };
  } finally {
    vm.destroy();
  }
}

void test('ioeventfd: watched notify writes run the handler on the machine thread without an MMIO exit (measured against exits)', async (t) => {
  if (!needKvm(t)) return;
  const rounds = 2000;
  const viaExit = await pingPong(t, false, rounds);
  assert.equal(viaExit.exits, rounds);
  const viaEventfd = await pingPong(t, true, rounds);
  assert.equal(viaEventfd.exits, 0, 'no notify write reached VmOps');
  assert.equal(viaEventfd.signals, rounds);
  // The watcher polls the ioeventfd itself, so notifies are handled inside vCPU 0's slice instead of ending it.
  assert.equal(viaEventfd.inSliceWatches, 1);
  assert.ok(viaEventfd.inSliceNotifies >= rounds / 2, `most notifies were handled in-slice (${viaEventfd.inSliceNotifies})`);
  assert.ok(viaEventfd.slices < rounds / 4, `slices did not end per notify (${viaEventfd.slices} slices for ${rounds} notifies)`);
  t.diagnostic(`ioeventfd in-slice / MMIO exit time per notify: ${(viaEventfd.usPerRound / viaExit.usPerRound).toFixed(2)}`);
});

void test('without the ioeventfd option, watchMmioWrite refuses and irqfd routes still work', async (t) => {
  if (!needKvm(t)) return;
  const vm = await new KvmEngine().createVm({ ramSize: 16 * MiB, vcpuCount: 1 });
  try {
    assert.throws(() => vm.fastNotify!.watchMmioWrite(NOTIFY, 2, () => undefined), /turned off/);
    const route = vm.fastNotify!.createMsiRoute();
    route.update(0xfee00000, 0x30);
    route.fire();
    route.dispose();
  } finally {
    vm.destroy();
  }
});

void test('irqfd: an MSI route fires the guest interrupt; route updates follow the message; cost against KVM_SIGNAL_MSI', async (t) => {
  if (!needKvm(t)) return;
  const vm = await new KvmEngine({ ioeventfd: true }).createVm({ ramSize: 16 * MiB, vcpuCount: 1 });
  try {
    const fast = vm.fastNotify!;
    // IDT at 0x2000 with vector 0x41 → 0x1100 (handler: out 0xf8), GDT at 0x3000.
    vm.memory.write32(0x3008, 0x0000ffff);
    vm.memory.write32(0x300c, 0x00cf9a00);
    vm.memory.write32(0x3010, 0x0000ffff);
    vm.memory.write32(0x3014, 0x00cf9200);
    vm.memory.write32(0x2000 + 0x41 * 8, (0x08 << 16) | 0x1100);
    vm.memory.write32(0x2000 + 0x41 * 8 + 4, 0x8e00);
    vm.memory.writeBytes(0x1100, Uint8Array.of(0xe6, 0xf8, 0xfa, 0xf4));
    const route = fast.createMsiRoute();
    route.update(0xfee00000, 0x40);
    route.update(0xfee00000, 0x41); // the guest reprogrammed the vector
    const routingUpdates = fast.stats.routingUpdates;
    route.update(0xfee00000, 0x41); // unchanged: no ioctl
    assert.equal(fast.stats.routingUpdates, routingUpdates);
    bootProtectedMode(vm, [
      0xc7, 0x05, 0xf0, 0x00, 0xe0, 0xfe, 0xff, 0x01, 0x00, 0x00, // LAPIC SVR: enable
      0x66, 0x89, 0x0d, 0x00, 0x00, 0x00, 0xd0, //                   mov [NOTIFY], cx
      0xfb, 0xf4, 0xeb, 0xfd, //                                     sti; hlt; jmp hlt
    ]);
    const s = vm.vcpus[0].getState();
    s.gdt = { base: 0x3000n, limit: 23 };
    s.idt = { base: 0x2000n, limit: 256 * 8 - 1 };
    vm.vcpus[0].setState(s);
    const undo = fast.watchMmioWrite(NOTIFY, 2, () => route.fire());
    const exit = await withTimeout(vm.run(new Ops(vm, () => assert.fail('notify reached VmOps'))), 20000);
    assert.deepEqual(exit, { kind: 'debug-exit', value: 1 });
    assert.equal(fast.stats.irqfdFires, 1);
    undo();
    // Cost of one injection from the machine thread: irqfd write versus KVM_SIGNAL_MSI ioctl.
    const n = 20000;
    let t0 = performance.now();
    for (let i = 0; i < n; i++) route.fire();
    const irqfdUs = ((performance.now() - t0) * 1000) / n;
    t0 = performance.now();
    for (let i = 0; i < n; i++) vm.interrupts.signalMsi(0xfee00000, 0x41);
    const signalMsiUs = ((performance.now() - t0) * 1000) / n;
    t.diagnostic(`MSI injection from the machine thread: irqfd ${irqfdUs.toFixed(2)} µs, KVM_SIGNAL_MSI ${signalMsiUs.toFixed(2)} µs`);
    route.dispose();
  } finally {
    vm.destroy();
  }
});
