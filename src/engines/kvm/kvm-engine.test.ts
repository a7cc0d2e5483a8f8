/**
 * Integration tests of the kvm engine on the host's /dev/kvm with tiny
 * hand-assembled guests placed straight into guest memory. Skipped (with the
 * reason) only when /dev/kvm does not exist.
 */

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { AccessSize } from '../../machine/bus.js';
import { CR0_PE, CR0_PG, CR4_PAE, EFER_LMA, EFER_LME, flatSegment, realModeSegment, resetCpuState } from '../cpu-state.js';
import { EngineUnavailableError, type VmExit, type VmOps } from '../engine.js';
import { MpState } from './abi.js';
import { loadKvmNative } from './native.js';
import { KvmEngine, KvmError, ramPieces, type KvmVm } from './kvm-engine.js';

const MiB = 1024 * 1024;
const HAVE_KVM = existsSync('/dev/kvm');
const engine = new KvmEngine();

function needKvm(t: TestContext): boolean {
  if (!HAVE_KVM) t.skip('/dev/kvm is not present on this host');
  return HAVE_KVM;
}

type Access = [kind: string, where: number, size: number, value: number];

/** VmOps that records every access and lets a test react to port writes. */
class RecordingOps implements VmOps {
  readonly log: Access[] = [];
  constructor(
    private readonly handlers: {
      pioRead?: (port: number, size: AccessSize) => number;
      pioWrite?: (port: number, size: AccessSize, value: number) => void;
      mmioRead?: (address: number, size: AccessSize) => number;
    } = {},
  ) {}
  pioRead(port: number, size: AccessSize): number {
    const v = this.handlers.pioRead?.(port, size) ?? 0xffffffff;
    this.log.push(['pio-read', port, size, v]);
    return v;
  }
  pioWrite(port: number, size: AccessSize, value: number): void {
    this.log.push(['pio-write', port, size, value]);
    this.handlers.pioWrite?.(port, size, value);
  }
  mmioRead(address: number, size: AccessSize): number {
    const v = this.handlers.mmioRead?.(address, size) ?? 0;
    this.log.push(['mmio-read', address, size, v]);
    return v;
  }
  mmioWrite(address: number, size: AccessSize, value: number): void {
    this.log.push(['mmio-write', address, size, value]);
  }
  writes(): Access[] {
    return this.log.filter((a) => a[0] === 'pio-write');
  }
}

async function withVm(vcpuCount: number, fn: (vm: KvmVm) => Promise<void>): Promise<void> {
  const vm = await engine.createVm({ ramSize: 16 * MiB, vcpuCount });
  try {
    await fn(vm);
  } finally {
    vm.destroy();
  }
}

/** Loads real-mode code at `at` and points vCPU 0 at it (CS = 0). */
function bootRealMode(vm: KvmVm, code: number[], at = 0x1000): void {
  vm.memory.writeBytes(at, Uint8Array.from(code));
  const s = resetCpuState();
  s.seg.cs = realModeSegment(0, true);
  s.rip = BigInt(at);
  vm.vcpus[0].setState(s);
}

/** Loads 32-bit code at `at` and starts vCPU 0 there in flat protected mode without paging. */
function bootProtectedMode(vm: KvmVm, code: number[], at = 0x1000): void {
  vm.memory.writeBytes(at, Uint8Array.from(code));
  const s = resetCpuState();
  s.seg.cs = flatSegment(0x08, true);
  for (const name of ['ds', 'es', 'ss', 'fs', 'gs'] as const) s.seg[name] = flatSegment(0x10, false);
  s.cr0 |= CR0_PE;
  s.rip = BigInt(at);
  vm.vcpus[0].setState(s);
}

function withTimeout(p: Promise<VmExit>, ms: number): Promise<VmExit> {
  return Promise.race([p, new Promise<VmExit>((_, reject) => setTimeout(() => reject(new Error(`run() did not end within ${ms} ms`)), ms).unref())]);
}

void test('out instructions of every size reach pioWrite with port, size and value', async (t) => {
  if (!needKvm(t)) return;
  await withVm(1, async (vm) => {
    bootRealMode(vm, [
      0xb9, 0x05, 0x00, //          mov cx, 5
      0xb8, 0x00, 0x01, //          mov ax, 0x100
      0xba, 0x00, 0x05, //          mov dx, 0x500
      0xef, //                loop: out dx, ax
      0x40, //                      inc ax
      0xe2, 0xfc, //                loop loop
      0xb0, 0xaa, 0xe6, 0xf0, //    mov al, 0xaa; out 0xf0, al
      0x66, 0xb8, 0x78, 0x56, 0x34, 0x12, // mov eax, 0x12345678
      0x66, 0xef, //                out dx, eax
      0xf4, //                      hlt
    ]);
    const ops = new RecordingOps({ pioWrite: (_p, size) => size === 4 && vm.requestExit({ kind: 'poweroff' }) });
    const exit = await withTimeout(vm.run(ops), 10000);
    assert.deepEqual(exit, { kind: 'poweroff' });
    assert.equal(vm.stats.vcpu0Exits, 7);
    assert.deepEqual(ops.writes(), [
      ...[0x100, 0x101, 0x102, 0x103, 0x104].map((v): Access => ['pio-write', 0x500, 2, v]),
      ['pio-write', 0xf0, 1, 0xaa],
      ['pio-write', 0x500, 4, 0x12345678],
    ]);
  });
});

void test('vCPU 0 stays in one slice across many exits (the event loop is not entered per exit)', async (t) => {
  if (!needKvm(t)) return;
  await withVm(1, async (vm) => {
    const exits = 20000;
    bootRealMode(vm, [
      0x66, 0xb9, exits & 0xff, exits >> 8, 0, 0, // mov ecx, exits
      0xe6, 0x10, 0x66, 0x49, 0x75, 0xfa, //        l: out 0x10, al; dec ecx; jnz l
      0xe6, 0x11, 0xf4, //                          out 0x11, al; hlt
    ]);
    let count = 0;
    const ops = new RecordingOps({ pioWrite: (port) => (port === 0x10 ? count++ : vm.requestExit({ kind: 'poweroff' })) });
    ops.log.push = () => 0; // do not keep 20000 records
    const started = Date.now();
    assert.deepEqual(await withTimeout(vm.run(ops), 60000), { kind: 'poweroff' });
    const elapsedMs = Date.now() - started;
    assert.equal(count, exits);
    // One slice per maxSliceMs (10 ms) at most, plus slack for event-loop activity.
    assert.ok(vm.stats.slices <= elapsedMs / 5 + 10, `${vm.stats.slices} slices in ${elapsedMs} ms for ${exits} exits`);
  });
});

void test('in instructions return what pioRead answers, masked to the access size', async (t) => {
  if (!needKvm(t)) return;
  await withVm(1, async (vm) => {
    bootRealMode(vm, [
      0xba, 0x10, 0x05, // mov dx, 0x510
      0xec, //             in al, dx
      0x88, 0xc3, //       mov bl, al
      0xed, //             in ax, dx
      0x89, 0xc1, //       mov cx, ax
      0x66, 0xed, //       in eax, dx
      0xba, 0x11, 0x05, // mov dx, 0x511
      0x66, 0xef, //       out dx, eax
      0x89, 0xc8, //       mov ax, cx
      0xef, //             out dx, ax
      0x88, 0xd8, //       mov al, bl
      0xee, //             out dx, al
      0xf4,
    ]);
    const answers: Record<number, number> = { 1: 0x1ab, 2: 0xbeef, 4: 0xcafef00d };
    const ops = new RecordingOps({
      pioRead: (_port, size) => answers[size],
      pioWrite: (_p, size) => size === 1 && vm.requestExit({ kind: 'poweroff' }),
    });
    assert.deepEqual(await withTimeout(vm.run(ops), 10000), { kind: 'poweroff' });
    assert.deepEqual(ops.log.filter((a) => a[0] === 'pio-read').map((a) => [a[1], a[2]]), [[0x510, 1], [0x510, 2], [0x510, 4]]);
    assert.deepEqual(ops.writes(), [
      ['pio-write', 0x511, 4, 0xcafef00d],
      ['pio-write', 0x511, 2, 0xbeef],
      ['pio-write', 0x511, 1, 0xab],
    ]);
  });
});

void test('string I/O (rep outsb / rep insw) moves every element through ops', async (t) => {
  if (!needKvm(t)) return;
  await withVm(1, async (vm) => {
    vm.memory.writeBytes(0x1200, Uint8Array.of(0x11, 0x22, 0x33, 0x44));
    bootRealMode(vm, [
      0xbe, 0x00, 0x12, // mov si, 0x1200
      0xb9, 0x04, 0x00, // mov cx, 4
      0xba, 0x20, 0x05, // mov dx, 0x520
      0xf3, 0x6e, //       rep outsb
      0xbf, 0x00, 0x13, // mov di, 0x1300
      0xb9, 0x03, 0x00, // mov cx, 3
      0xba, 0x21, 0x05, // mov dx, 0x521
      0xf3, 0x6d, //       rep insw
      0xe6, 0xf2, //       out 0xf2, al
      0xf4,
    ]);
    let next = 0x1111;
    const ops = new RecordingOps({
      pioRead: () => {
        const v = next;
        next += 0x1111;
        return v;
      },
      pioWrite: (port) => port === 0xf2 && vm.requestExit({ kind: 'poweroff' }),
    });
    assert.deepEqual(await withTimeout(vm.run(ops), 10000), { kind: 'poweroff' });
    assert.deepEqual(ops.writes().filter((a) => a[1] === 0x520).map((a) => a[3]), [0x11, 0x22, 0x33, 0x44]);
    assert.deepEqual([...vm.memory.readBytes(0x1300, 6)], [0x11, 0x11, 0x22, 0x22, 0x33, 0x33]);
  });
});

void test('MMIO reads and writes outside RAM reach ops with address, size and value', async (t) => {
  if (!needKvm(t)) return;
  await withVm(1, async (vm) => {
    bootProtectedMode(vm, [
      0xc7, 0x05, 0x00, 0x00, 0x00, 0xd0, 0x78, 0x56, 0x34, 0x12, // mov dword [0xd0000000], 0x12345678
      0xc6, 0x05, 0x08, 0x00, 0x00, 0xd0, 0xab, //                   mov byte [0xd0000008], 0xab
      0xa1, 0x04, 0x00, 0x00, 0xd0, //                               mov eax, [0xd0000004]
      0xe7, 0x10, //                                                 out 0x10, eax
      0xf4,
    ]);
    const ops = new RecordingOps({
      mmioRead: () => 0xdeadbeef,
      pioWrite: () => vm.requestExit({ kind: 'poweroff' }),
    });
    assert.deepEqual(await withTimeout(vm.run(ops), 10000), { kind: 'poweroff' });
    assert.deepEqual(ops.log, [
      ['mmio-write', 0xd0000000, 4, 0x12345678],
      ['mmio-write', 0xd0000008, 1, 0xab],
      ['mmio-read', 0xd0000004, 4, 0xdeadbeef],
      ['pio-write', 0x10, 4, 0xdeadbeef],
    ]);
  });
});

void test('hlt with interrupts disabled parks vCPU 0 in the kernel; the event loop still runs and requestExit ends run()', async (t) => {
  if (!needKvm(t)) return;
  await withVm(1, async (vm) => {
    bootRealMode(vm, [0xfa, 0xf4, 0xeb, 0xfd]); // cli; hlt; jmp hlt
    let ticks = 0;
    const interval = setInterval(() => ticks++, 5);
    setTimeout(() => vm.requestExit({ kind: 'stopped' }), 150);
    const exit = await withTimeout(vm.run(new RecordingOps()), 5000);
    clearInterval(interval);
    assert.deepEqual(exit, { kind: 'stopped' });
    assert.ok(ticks >= 5, `timers ran while the guest was halted (${ticks} ticks)`);
    // KVM keeps a halted vCPU inside KVM_RUN (no KVM_EXIT_HLT with the in-kernel irqchip).
    assert.equal(vm.vcpus[0].getMpState(), MpState.HALTED);
    assert.equal(vm.vcpus[0].getState().rip, 0x1002n);
  });
});

void test('long mode: a 64-bit guest with 2 MiB identity paging runs, and iretq returns', async (t) => {
  if (!needKvm(t)) return;
  await withVm(1, async (vm) => {
    const m = vm.memory;
    m.write32(0x3008, 0x0000ffff); // GDT 0x08: 64-bit code
    m.write32(0x300c, 0x00af9a00);
    m.write32(0x3010, 0x0000ffff); // GDT 0x10: data
    m.write32(0x3014, 0x00cf9200);
    m.write64(0x10000, 0x11000 | 3); // PML4[0] -> PDPT
    m.write64(0x11000, 0x12000 | 3); // PDPT[0] -> PD
    for (let i = 0; i < 8; i++) m.write64(0x12000 + i * 8, i * 0x200000 + 0x83); // 2 MiB pages
    m.writeBytes(0x1000, Uint8Array.of(
      0x48, 0x89, 0xe0, //             mov rax, rsp
      0x6a, 0x10, 0x50, 0x9c, //       push 0x10; push rax; pushfq
      0x6a, 0x08, //                   push 0x08
      0x68, 0x00, 0x11, 0x00, 0x00, // push 0x1100
      0x48, 0xcf, //                   iretq
    ));
    m.writeBytes(0x1100, Uint8Array.of(0x48, 0x89, 0xe0, 0xe7, 0xf8, 0xf4)); // mov rax, rsp; out 0xf8, eax; hlt
    const s = resetCpuState();
    s.seg.cs = flatSegment(0x08, true, true);
    for (const name of ['ds', 'es', 'ss'] as const) s.seg[name] = flatSegment(0x10, false);
    s.cr0 |= CR0_PE | CR0_PG;
    s.cr4 = CR4_PAE;
    s.cr3 = 0x10000n;
    s.efer = EFER_LME | EFER_LMA;
    s.gdt = { base: 0x3000n, limit: 23 };
    s.rip = 0x1000n;
    s.gpr.rsp = 0x7000n;
    vm.vcpus[0].setState(s);
    const back = vm.vcpus[0].getState();
    assert.equal(back.efer & (EFER_LME | EFER_LMA), EFER_LME | EFER_LMA);
    assert.equal(back.seg.cs.l, true);
    const ops = new RecordingOps({ pioWrite: () => vm.requestExit({ kind: 'poweroff' }) });
    assert.deepEqual(await withTimeout(vm.run(ops), 10000), { kind: 'poweroff' });
    assert.deepEqual(ops.writes(), [['pio-write', 0xf8, 4, 0x7000]], 'iretq restored the stack pointer');
  });
});

void test('a triple fault (IDT limit 0, then ud2 in protected mode) ends run() with triple-fault', async (t) => {
  if (!needKvm(t)) return;
  // Real mode is no good here: on this AMD host the IVT limit is not enforced,
  // and int3 makes KVM report an emulation failure on the nested host, so ud2.
  await withVm(1, async (vm) => {
    vm.memory.writeBytes(0x1100, new Uint8Array(6)); // IDT descriptor: limit 0, base 0
    bootProtectedMode(vm, [0x0f, 0x01, 0x1d, 0x00, 0x11, 0x00, 0x00, 0x0f, 0x0b]); // lidt [0x1100]; ud2
    assert.deepEqual(await withTimeout(vm.run(new RecordingOps()), 10000), { kind: 'triple-fault', vcpu: 0 });
  });
});

void test('an interrupt raised with setIrq reaches the guest handler through the in-kernel PIC', async (t) => {
  if (!needKvm(t)) return;
  await withVm(1, async (vm) => {
    vm.memory.writeBytes(0x1100, Uint8Array.of(
      0xb0, 0x42, 0xe6, 0xf5, // handler: mov al, 0x42; out 0xf5, al
      0xb0, 0x20, 0xe6, 0x20, //          mov al, 0x20; out 0x20, al (EOI)
      0xcf, //                            iret
    ));
    bootRealMode(vm, [
      0xc7, 0x06, 0x90, 0x00, 0x00, 0x11, // mov word [0x24*4], 0x1100
      0xc7, 0x06, 0x92, 0x00, 0x00, 0x00, // mov word [0x24*4+2], 0
      0xb0, 0x11, 0xe6, 0x20, //             ICW1
      0xb0, 0x20, 0xe6, 0x21, //             ICW2: vectors 0x20-0x27
      0xb0, 0x04, 0xe6, 0x21, //             ICW3
      0xb0, 0x01, 0xe6, 0x21, //             ICW4
      0xb0, 0xef, 0xe6, 0x21, //             mask all but IRQ 4
      0xe6, 0xf3, //                         out 0xf3, al: "ready"
      0xfb, //                               sti
      0xf4, 0xeb, 0xfd, //                   hlt; jmp hlt
    ]);
    const ops = new RecordingOps({
      pioWrite: (port, _size, value) => {
        if (port === 0xf3) vm.interrupts.setIrq(4, true);
        if (port === 0xf5 && value === 0x42) {
          vm.interrupts.setIrq(4, false);
          vm.requestExit({ kind: 'poweroff' });
        }
      },
    });
    assert.deepEqual(await withTimeout(vm.run(ops), 10000), { kind: 'poweroff' });
    assert.deepEqual(ops.writes().map((a) => a[1]), [0xf3, 0xf5]);
    assert.throws(() => vm.interrupts.setIrq(24, true), RangeError);
  });
});

/** A flat GDT (null, code 0x08, data 0x10) and an IDT whose gates point at `handlers` (vector -> address). */
function installTables(vm: KvmVm, handlers: Record<number, number>): { gdt: number; idt: number } {
  const gdt = 0x3000;
  const idt = 0x2000;
  vm.memory.write32(gdt + 8, 0x0000ffff);
  vm.memory.write32(gdt + 12, 0x00cf9a00);
  vm.memory.write32(gdt + 16, 0x0000ffff);
  vm.memory.write32(gdt + 20, 0x00cf9200);
  for (const [vector, address] of Object.entries(handlers)) {
    const at = idt + Number(vector) * 8;
    vm.memory.write32(at, (0x08 << 16) | (address & 0xffff)); // selector, offset 15:0
    vm.memory.write32(at + 4, (address & 0xffff0000) | 0x8e00); // offset 31:16, present 32-bit interrupt gate
  }
  return { gdt, idt };
}

void test('MSIs and IOAPIC interrupts reach the guest; GSI 0 is routed to IOAPIC pin 2', async (t) => {
  if (!needKvm(t)) return;
  await withVm(1, async (vm) => {
    const handler = (vector: number): number[] => [
      0xb0, vector, 0xe6, 0xf8, //                                   mov al, vector; out 0xf8, al
      0xc7, 0x05, 0xb0, 0x00, 0xe0, 0xfe, 0x00, 0x00, 0x00, 0x00, // LAPIC EOI
      // No iret: on this nested AMD host KVM intercepts a protected-mode IRET
      // and its emulator cannot handle it (emulation failure), so wait here.
      0xfb, 0xf4, 0xeb, 0xfd, //                                     sti; hlt; jmp hlt
    ];
    vm.memory.writeBytes(0x1100, Uint8Array.from(handler(0x40)));
    vm.memory.writeBytes(0x1200, Uint8Array.from(handler(0x41)));
    const tables = installTables(vm, { 0x40: 0x1100, 0x41: 0x1200 });
    bootProtectedMode(vm, [
      0xb0, 0xff, 0xe6, 0x21, 0xe6, 0xa1, //                         mask both PICs
      0xc7, 0x05, 0xf0, 0x00, 0xe0, 0xfe, 0xff, 0x01, 0x00, 0x00, // LAPIC SVR: enable
      0xc7, 0x05, 0x00, 0x00, 0xc0, 0xfe, 0x14, 0x00, 0x00, 0x00, // IOREGSEL = pin 2 low
      0xc7, 0x05, 0x10, 0x00, 0xc0, 0xfe, 0x41, 0x00, 0x00, 0x00, // IOWIN = vector 0x41, edge, unmasked
      0xc7, 0x05, 0x00, 0x00, 0xc0, 0xfe, 0x15, 0x00, 0x00, 0x00, // IOREGSEL = pin 2 high
      0xc7, 0x05, 0x10, 0x00, 0xc0, 0xfe, 0x00, 0x00, 0x00, 0x00, // IOWIN = destination APIC 0
      0xe6, 0xf3, //                                                 out 0xf3, al: "ready"
      0xfb, 0xf4, 0xeb, 0xfd, //                                     sti; hlt; jmp hlt
    ]);
    const s = vm.vcpus[0].getState();
    s.gdt = { base: BigInt(tables.gdt), limit: 23 };
    s.idt = { base: BigInt(tables.idt), limit: 256 * 8 - 1 };
    s.gpr.rsp = 0x7000n; // the interrupt frame goes on this stack
    vm.vcpus[0].setState(s);
    const ops = new RecordingOps({
      pioWrite: (port, _size, value) => {
        if (port === 0xf3) vm.interrupts.signalMsi(0xfee00000, 0x40);
        if (port === 0xf8 && value === 0x40) {
          vm.interrupts.setIrq(0, true);
          vm.interrupts.setIrq(0, false);
        }
        if (port === 0xf8 && value === 0x41) vm.requestExit({ kind: 'poweroff' });
      },
    });
    assert.deepEqual(await withTimeout(vm.run(ops), 10000), { kind: 'poweroff' });
    assert.deepEqual(ops.writes().map((a) => [a[1], a[3] & 0xff]), [[0xf3, 0xff], [0xf8, 0x40], [0xf8, 0x41]]);
  });
});

void test('SMP: the BSP starts the AP with INIT/SIPI and the AP reports its APIC ID through ops', async (t) => {
  if (!needKvm(t)) return;
  await withVm(2, async (vm) => {
    assert.equal(vm.vcpus[1].getMpState(), MpState.UNINITIALIZED, 'APs wait for INIT/SIPI');
    // AP trampoline at 0x8000 (SIPI vector 8), real mode.
    vm.memory.writeBytes(0x8000, Uint8Array.of(
      0x66, 0xb8, 0x01, 0x00, 0x00, 0x00, // mov eax, 1
      0x0f, 0xa2, //                         cpuid
      0x66, 0xc1, 0xeb, 0x18, //             shr ebx, 24 (initial APIC ID)
      0x88, 0xd8, //                         mov al, bl
      0xe6, 0xf6, //                         out 0xf6, al
      0xfa, 0xf4, //                         cli; hlt
    ));
    bootProtectedMode(vm, [
      0xc7, 0x05, 0xf0, 0x00, 0xe0, 0xfe, 0xff, 0x01, 0x00, 0x00, // SVR: enable the LAPIC
      0xc7, 0x05, 0x10, 0x03, 0xe0, 0xfe, 0x00, 0x00, 0x00, 0x01, // ICR high: APIC ID 1
      0xc7, 0x05, 0x00, 0x03, 0xe0, 0xfe, 0x00, 0x45, 0x00, 0x00, // ICR low: INIT
      0xc7, 0x05, 0x00, 0x03, 0xe0, 0xfe, 0x08, 0x46, 0x00, 0x00, // ICR low: SIPI, vector 8
      0xe6, 0xf7, //                                               out 0xf7, al: "sent"
      0xfa, 0xf4, //                                               cli; hlt
    ]);
    const ops = new RecordingOps({ pioWrite: (port) => port === 0xf6 && vm.requestExit({ kind: 'poweroff' }) });
    assert.deepEqual(await withTimeout(vm.run(ops), 10000), { kind: 'poweroff' });
    // The two vCPUs race: the AP may report before the BSP's "sent" write is seen.
    const writes = ops.writes().map((a) => a[1]);
    assert.ok(writes.every((port) => port === 0xf6 || port === 0xf7), `unexpected writes ${JSON.stringify(ops.writes())}`);
    assert.deepEqual(ops.writes().filter((a) => a[1] === 0xf6).map((a) => a[3] & 0xff), [1], 'the AP wrote APIC ID 1, once');
  });
});

void test('pause, resume and requestExit from timers while the guest spins; state is readable while paused', async (t) => {
  if (!needKvm(t)) return;
  await withVm(1, async (vm) => {
    bootRealMode(vm, [0xeb, 0xfe]); // jmp $
    // Counted in timer ticks, not milliseconds: on a loaded host a tick may come late, but it must come.
    let ticks = 0;
    let onTick: (() => void) | undefined;
    const interval = setInterval(() => {
      ticks++;
      onTick?.();
    }, 2);
    const ticksReach = (n: number): Promise<void> => new Promise((resolve) => {
      onTick = () => {
        if (ticks < n) return;
        onTick = undefined;
        resolve();
      };
    });
    const control = (async () => {
      await ticksReach(ticks + 10); // timers run while the guest spins (if not, the run below times out)
      assert.throws(() => vm.vcpus[0].getState(), KvmError, 'state is not readable while running');
      await vm.pause();
      const state = vm.vcpus[0].getState();
      assert.equal(state.rip, 0x1000n, 'paused on the spin loop');
      await ticksReach(ticks + 5); // the event loop runs while paused
      vm.resume();
      await ticksReach(ticks + 10);
      vm.requestExit({ kind: 'stopped' });
    })();
    const exit = await withTimeout(vm.run(new RecordingOps()), 10000);
    await control;
    clearInterval(interval);
    assert.deepEqual(exit, { kind: 'stopped' });
  });
});

void test('pause and resume with two vCPUs parks the AP too', async (t) => {
  if (!needKvm(t)) return;
  await withVm(2, async (vm) => {
    bootRealMode(vm, [0xeb, 0xfe]); // BSP spins; the AP stays in wait-for-SIPI
    const running = vm.run(new RecordingOps());
    await new Promise((r) => setTimeout(r, 30));
    await vm.pause();
    assert.equal(vm.vcpus[1].getMpState(), MpState.UNINITIALIZED);
    vm.resume();
    await new Promise((r) => setTimeout(r, 30));
    vm.requestExit({ kind: 'stopped' });
    assert.deepEqual(await withTimeout(running, 5000), { kind: 'stopped' });
  });
});

void test('destroy leaves no threads behind: a child process exits on its own', { timeout: 30000 }, (t) => {
  if (!needKvm(t)) return;
  const modulePath = fileURLToPath(new URL('./kvm-engine.js', import.meta.url));
  const script = `
    import { readdirSync } from 'node:fs';
    import { KvmEngine } from ${JSON.stringify(modulePath)};
    const threads = () => readdirSync('/proc/self/task').length;
    const before = threads();
    const vm = await new KvmEngine().createVm({ ramSize: 16 * 1024 * 1024, vcpuCount: 2 });
    vm.memory.writeBytes(0x1000, Uint8Array.of(0xeb, 0xfe));
    const s = vm.vcpus[0].getState();
    s.seg.cs = { ...s.seg.cs, selector: 0, base: 0n };
    s.rip = 0x1000n;
    vm.vcpus[0].setState(s);
    const during = threads();
    setTimeout(() => vm.destroy(), 50);
    const exit = await vm.run({ pioRead: () => 0, pioWrite() {}, mmioRead: () => 0, mmioWrite() {} });
    vm.destroy();
    for (let i = 0; i < 100 && threads() > before; i++) await new Promise((r) => setTimeout(r, 20));
    console.log(JSON.stringify({ before, during, after: threads(), exit }));
  `;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20000 });
  assert.equal(child.signal, null, `child was killed (${child.signal}): it did not exit by itself`);
  assert.equal(child.status, 0, child.stderr);
  const result = JSON.parse(child.stdout.trim()) as { before: number; during: number; after: number; exit: VmExit };
  assert.deepEqual(result.exit, { kind: 'stopped' });
  assert.ok(result.during > result.before, 'the VM had started threads');
  assert.equal(result.after, result.before, 'every thread the VM started is gone');
});

void test('one-line errors: missing device, bad sizes', async (t) => {
  if (!needKvm(t)) return;
  await assert.rejects(new KvmEngine({ devicePath: '/nonexistent/kvm' }).createVm({ ramSize: 16 * MiB, vcpuCount: 1 }), (err: Error) => {
    assert.ok(err instanceof EngineUnavailableError);
    assert.equal(err.message, 'kvm engine unavailable: /nonexistent/kvm does not exist (KVM is not enabled on this host)');
    return true;
  });
  await assert.rejects(engine.createVm({ ramSize: 1000, vcpuCount: 1 }), /RAM size 1000 must be/);
  assert.throws(() => loadKvmNative('/nonexistent/typevisor_kvm.node'), {
    name: 'EngineUnavailableError',
    message: 'kvm engine unavailable: native addon not built: run npm rebuild',
  });
  await assert.rejects(engine.createVm({ ramSize: 16 * MiB, vcpuCount: 0 }), /vCPU count 0 must be between 1 and/);
});

void test('a RAM size the host cannot map fails with one line', { timeout: 30000 }, (t) => {
  if (!needKvm(t)) return;
  const modulePath = fileURLToPath(new URL('./kvm-engine.js', import.meta.url));
  const script = `
    const { KvmEngine } = await import(${JSON.stringify(modulePath)});
    try { await new KvmEngine().createVm({ ramSize: 32 * 2 ** 30, vcpuCount: 1 }); console.log('created'); }
    catch (e) { console.log(e.name + ': ' + e.message); }
  `;
  // RLIMIT_AS of ~12 GB lets Node start but not map 32 GiB of guest RAM.
  const child = spawnSync('/bin/sh', ['-c', 'ulimit -v 12000000 && exec "$0" --input-type=module -e "$1"', process.execPath, script], { encoding: 'utf8', timeout: 20000 });
  assert.equal(child.stdout.trim(), 'KvmError: cannot map 32768 MiB of guest RAM: mmap: Cannot allocate memory', child.stderr);
});

void test('guest RAM above 4 GiB is split into pieces of at most 4 GiB', () => {
  assert.deepEqual(ramPieces(16 * MiB), [{ guestBase: 0, size: 16 * MiB }]);
  const g = 2 ** 30;
  assert.deepEqual(ramPieces(12 * g), [
    { guestBase: 0, size: 3 * g },
    { guestBase: 4 * g, size: 4 * g },
    { guestBase: 8 * g, size: 4 * g },
    { guestBase: 12 * g, size: 1 * g },
  ]);
});

void test('large RAM is mapped lazily and KVM CPUID carries the hypervisor bit', async (t) => {
  if (!needKvm(t)) return;
  const vm = await engine.createVm({ ramSize: 8 * 2 ** 30, vcpuCount: 1 });
  try {
    assert.equal(vm.memory.size, 8 * 2 ** 30);
    vm.memory.write32(5 * 2 ** 30, 0x12345678);
    assert.equal(vm.memory.read32(5 * 2 ** 30), 0x12345678);
    assert.ok(vm.supportedCpuid.some((e) => e.function === 1));
  } finally {
    vm.destroy();
  }
});

void test('every vCPU starts with MTRRs enabled and write-back as the default memory type', async (t) => {
  if (!needKvm(t)) return;
  await withVm(2, async (vm) => {
    for (const vcpu of vm.vcpus) assert.equal(vcpu.getMsrs([0x2ff])[0].value, 0x806n);
  });
});
