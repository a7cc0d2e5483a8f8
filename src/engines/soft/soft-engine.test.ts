/**
 * The soft engine as an Engine: external interrupts from the local APIC
 * double (with HLT sleeping until one arrives), the STI shadow, the event
 * loop staying responsive while the guest spins, pause/resume, requestExit,
 * INIT/SIPI start-up of an application processor, and getState/setState.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { VmOps } from '../engine.js';
import { EngineUnavailableError } from '../engine.js';
import { SoftEngine } from './soft-engine.js';
import { ASM_IDT_MACROS, assemble, FakeLapic, fakePlatformFactory, identityPageTables, longModeState, realModeState } from './test-support.js';

function opsFor(onExit: (v: number) => void, writes: Array<[number, number]> = []): VmOps {
  return {
    pioRead: () => 0xffffffff,
    pioWrite: (port, _size, value) => {
      if (port === 0xf4) onExit(value);
      else writes.push([port, value]);
    },
    mmioRead: () => 0xffffffff,
    mmioWrite: () => undefined,
  };
}

void test('createVm without a platform reports the engine unavailable', async () => {
  await assert.rejects(new SoftEngine().createVm({ ramSize: 16 << 20, vcpuCount: 1 }), EngineUnavailableError);
});

void test('HLT sleeps until the APIC has a vector; the interrupt runs the IDT handler', async () => {
  const lapic = new FakeLapic();
  const vm = await new SoftEngine(fakePlatformFactory([lapic])).createVm({ ramSize: 16 << 20, vcpuCount: 1 });
  const code = assemble(`${ASM_IDT_MACROS}
    gate 0x40, handler
    load_idt
    mov r12, 0
    out 0x80, al
    sti
    hlt
    mov al, r12b
    out 0xf4, al
  handler:
    mov r12, 0x55
    iretq
  `, 64);
  vm.memory.writeBytes(0x100000, code);
  for (const m of identityPageTables(0x9000)) vm.memory.writeBytes(m.address, m.bytes);
  vm.vcpus[0].setState(longModeState(0x100000, 0x9000));
  const writes: Array<[number, number]> = [];
  let exitValue = -1;
  const running = vm.run(opsFor((v) => { exitValue = v; vm.requestExit({ kind: 'debug-exit', value: v }); }, writes));
  // Wait until the guest has reached HLT (it writes port 0x80 just before).
  while (writes.length === 0) await sleep(1);
  await sleep(20);
  assert.equal(exitValue, -1, 'the vCPU is halted, not finished');
  lapic.queue.push(0x40);
  const exit = await running;
  assert.deepEqual(exit, { kind: 'debug-exit', value: 0x55 });
  assert.equal(exitValue, 0x55);
  vm.destroy();
});

void test('the event loop stays responsive while the guest spins; requestExit and pause/resume work', async () => {
  const vm = await new SoftEngine(fakePlatformFactory()).createVm({ ramSize: 16 << 20, vcpuCount: 1 });
  vm.memory.writeBytes(0x100000, assemble('1: inc rax\n jmp 1b', 64));
  for (const m of identityPageTables(0x9000)) vm.memory.writeBytes(m.address, m.bytes);
  vm.vcpus[0].setState(longModeState(0x100000, 0x9000));
  const running = vm.run(opsFor(() => undefined));
  const t0 = performance.now();
  await sleep(30);
  // The timer fired close to on time although the guest never stops.
  assert.ok(performance.now() - t0 < 200, 'timers run during guest execution');
  await vm.pause();
  const paused = vm.vcpus[0].getState().gpr.rax;
  assert.ok(paused > 1000n, `guest made progress (${paused})`);
  await sleep(20);
  assert.equal(vm.vcpus[0].getState().gpr.rax, paused, 'no progress while paused');
  vm.resume();
  await sleep(20);
  vm.requestExit({ kind: 'stopped' });
  assert.deepEqual(await running, { kind: 'stopped' });
  assert.ok(vm.vcpus[0].getState().gpr.rax > paused);
  vm.destroy();
});

void test('an AP waits for SIPI and starts in real mode at vector << 12', async () => {
  const lapics = [new FakeLapic(), new FakeLapic()];
  const vm = await new SoftEngine(fakePlatformFactory(lapics)).createVm({ ramSize: 16 << 20, vcpuCount: 2 });
  // BSP: spin until the AP writes its marker, then exit with it.
  vm.memory.writeBytes(0x7c00, assemble(`
    1: mov al, [0x5000]
    test al, al
    jz 1b
    out 0xf4, al
  `, 16));
  // AP code at 0x12000 (SIPI vector 0x12): CS = 0x1200, IP = 0.
  vm.memory.writeBytes(0x12000, assemble(`
    mov ax, cs
    shr ax, 8
    mov byte ptr ds:[0x5000], al
    hlt
  `, 16));
  vm.vcpus[0].setState(realModeState(0x7c00));
  setTimeout(() => { lapics[1].sipi = 0x12; }, 10);
  const exit = await vm.run(opsFor((v) => vm.requestExit({ kind: 'debug-exit', value: v })));
  assert.deepEqual(exit, { kind: 'debug-exit', value: 0x12 });
  const ap = vm.vcpus[1].getState();
  assert.equal(ap.seg.cs.selector, 0x1200);
  assert.equal(ap.seg.cs.base, 0x12000n);
  vm.destroy();
});

void test('getState/setState round-trip the architectural state', async () => {
  const vm = await new SoftEngine(fakePlatformFactory()).createVm({ ramSize: 16 << 20, vcpuCount: 1 });
  const s = longModeState(0x100000, 0x9000);
  s.rip = 0xffffffff81000000n;
  s.gpr.r15 = 0xfedcba9876543210n;
  s.seg.gs.base = 0xffff888000000000n;
  s.rflags = 0x246n;
  vm.vcpus[0].setState(s);
  const back = vm.vcpus[0].getState();
  assert.equal(back.rip, s.rip);
  assert.equal(back.gpr.r15, s.gpr.r15);
  assert.equal(back.seg.gs.base, s.seg.gs.base);
  assert.equal(back.rflags, 0x246n);
  assert.deepEqual(back.seg.cs, s.seg.cs);
  assert.equal(back.efer, s.efer);
  assert.equal(back.cr3, s.cr3);
  vm.destroy();
});

void test('platform port blocks and the IOAPIC page are served by the platform, not VmOps', async () => {
  const portLog: Array<[number, number, number]> = [];
  const ioapicLog: Array<[number, number]> = [];
  const factory = fakePlatformFactory([], {
    ioapic: { read: (off) => 0x1000 + off, write: (off, _s, v) => { ioapicLog.push([off, v]); } },
    ports: [{ base: 0x40, length: 4, name: 'pit', device: { read: (off) => 0x70 + off, write: (off, s, v) => { portLog.push([off, s, v]); } } }],
  });
  const vm = await new SoftEngine(factory).createVm({ ramSize: 16 << 20, vcpuCount: 1 });
  const tables = identityPageTables(0x9000);
  const pdpt = new DataView(tables[1].bytes.buffer);
  pdpt.setUint32(3 * 8, 0xe000 | 3, true);
  const pd3 = new Uint8Array(4096);
  new DataView(pd3.buffer).setUint32(((0xfec00000 - 0xc0000000) >>> 21) * 8, 0xfec00000 | 0x9b, true);
  for (const m of [...tables, { address: 0xe000, bytes: pd3 }]) vm.memory.writeBytes(m.address, m.bytes);
  vm.memory.writeBytes(0x100000, assemble(`
    mov al, 0x34
    out 0x43, al
    in al, 0x41
    movzx ebx, al
    mov eax, 0xfec00000
    mov dword ptr [rax], 0x10
    mov ecx, dword ptr [rax + 0x10]
    in al, 0x61
    out 0xf4, al
  `, 64));
  vm.vcpus[0].setState(longModeState(0x100000, 0x9000));
  const machinePorts: number[] = [];
  const exit = await vm.run({
    pioRead: (port) => { machinePorts.push(port); return 0x5a; },
    pioWrite: (port, _s, value) => { if (port === 0xf4) vm.requestExit({ kind: 'debug-exit', value }); },
    mmioRead: () => 0xffffffff,
    mmioWrite: () => undefined,
  });
  assert.deepEqual(exit, { kind: 'debug-exit', value: 0x5a });
  assert.deepEqual(portLog, [[3, 1, 0x34]]);
  assert.deepEqual(ioapicLog, [[0, 0x10]]);
  const st = vm.vcpus[0].getState();
  assert.equal(st.gpr.rbx, 0x71n);
  assert.equal(st.gpr.rcx, 0x1010n);
  assert.deepEqual(machinePorts, [0x61]);
  vm.destroy();
});

void test('an NMI left pending while NMIs were blocked is taken right after the IRET that unblocks them (IF stays 0)', async () => {
  const lapic = new FakeLapic();
  const vm = await new SoftEngine(fakePlatformFactory([lapic])).createVm({ ramSize: 16 << 20, vcpuCount: 1 });
  // Port 0x80 raises an NMI at the fake LAPIC. The first NMI's handler raises a second one (blocked)
  // and IRETs to `after` with IF clear; the second NMI must run before `after`'s first instruction.
  const code = assemble(`${ASM_IDT_MACROS}
    gate 2, nmi
    load_idt
    xor r12, r12
    out 0x80, al
    hlt
  nmi:
    inc r12
    cmp r12, 1
    jne nested
    out 0x80, al
    lea rax, [rip + after]
    mov rbx, rsp
    mov rcx, ss
    push rcx
    push rbx
    pushfq
    push 8
    push rax
    iretq
  after:
    mov r14, r12
    nop
    nop
    mov al, r14b
    out 0xf4, al
  nested:
    iretq
  `, 64);
  vm.memory.writeBytes(0x100000, code);
  for (const m of identityPageTables(0x9000)) vm.memory.writeBytes(m.address, m.bytes);
  vm.vcpus[0].setState(longModeState(0x100000, 0x9000));
  const ops = opsFor((v) => vm.requestExit({ kind: 'debug-exit', value: v }));
  const exit = await vm.run({ ...ops, pioWrite: (port, size, value) => { if (port === 0x80) lapic.nmi = true; else ops.pioWrite(port, size, value); } });
  assert.deepEqual(exit, { kind: 'debug-exit', value: 2 }, 'the nested NMI ran before the instruction after IRET');
  vm.destroy();
});

void test('CR8 is the local APIC TPR[7:4]: MOV to CR8 sets the TPR, MOV from CR8 reads it (SDM 10.8.6.1)', async () => {
  const lapic = new FakeLapic();
  const vm = await new SoftEngine(fakePlatformFactory([lapic])).createVm({ ramSize: 16 << 20, vcpuCount: 1 });
  const code = assemble(`
    mov rax, cr8
    mov r12, rax
    mov eax, 5
    mov cr8, rax
    mov al, r12b
    out 0xf4, al
  `, 64);
  vm.memory.writeBytes(0x100000, code);
  for (const m of identityPageTables(0x9000)) vm.memory.writeBytes(m.address, m.bytes);
  const state = longModeState(0x100000, 0x9000);
  vm.vcpus[0].setState(state);
  lapic.tpr = 0x90; // after setState, which loads the state's CR8 (0) into the TPR
  const exit = await vm.run(opsFor((v) => vm.requestExit({ kind: 'debug-exit', value: v })));
  assert.deepEqual(exit, { kind: 'debug-exit', value: 9 }, 'CR8 read TPR[7:4]');
  assert.equal(lapic.tpr, 0x50, 'CR8 write set TPR to value << 4');
  assert.equal(vm.vcpus[0].getState().cr8, 5n);
  vm.destroy();
});
