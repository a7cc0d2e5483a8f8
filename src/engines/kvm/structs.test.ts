/** Tests for the KVM structure encoders (no /dev/kvm needed). */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { flatSegment, resetCpuState, type CpuState } from '../cpu-state.js';
import {
  cpuidBuffer, decodeCpuid, decodeMsrs, decodeRegs, decodeSregs, encodeCpuid, encodeIrqRouting, encodeMemoryRegion,
  encodeMsrs, encodeRegs, encodeSregs, SREGS_INTERRUPT_BITMAP,
} from './structs.js';
import { KVM_REGS_SIZE, KVM_SREGS_SIZE } from './abi.js';

function sampleState(): CpuState {
  const s = resetCpuState();
  s.gpr.rax = 0x1122334455667788n;
  s.gpr.rbx = 2n;
  s.gpr.rsp = 0xfffffffffffffff0n;
  s.gpr.r15 = 15n;
  s.rip = 0xffffffff81000000n;
  s.rflags = 0x202n;
  s.seg.cs = flatSegment(0x10, true, true);
  s.seg.ss = flatSegment(0x18, false);
  s.gdt = { base: 0x500n, limit: 0x27 };
  s.cr0 = 0x80050033n;
  s.cr3 = 0x9000n;
  s.cr4 = 0x20n;
  s.efer = 0x500n;
  return s;
}

void test('kvm_regs places registers in KVM order and round-trips', () => {
  const s = sampleState();
  const bytes = encodeRegs(s);
  assert.equal(bytes.length, KVM_REGS_SIZE);
  const v = new DataView(bytes.buffer);
  assert.equal(v.getBigUint64(0, true), 0x1122334455667788n); // rax first
  assert.equal(v.getBigUint64(8, true), 2n); // then rbx (not rcx)
  assert.equal(v.getBigUint64(6 * 8, true), 0xfffffffffffffff0n); // rsp is 7th
  assert.equal(v.getBigUint64(16 * 8, true), 0xffffffff81000000n); // rip
  const back = decodeRegs(bytes);
  assert.deepEqual(back.gpr, s.gpr);
  assert.equal(back.rip, s.rip);
  assert.equal(back.rflags, 0x202n);
});

void test('kvm_sregs round-trips segments, tables and control registers', () => {
  const s = sampleState();
  const bytes = encodeSregs(s);
  assert.equal(bytes.length, KVM_SREGS_SIZE);
  const v = new DataView(bytes.buffer);
  // cs is the first segment: selector at +12, l at +19.
  assert.equal(v.getUint16(12, true), 0x10);
  assert.equal(v.getUint8(19), 1);
  // efer sits at 192 + 32 + 40.
  assert.equal(v.getBigUint64(264, true), 0x500n);
  const back = decodeSregs(bytes);
  assert.deepEqual(back.seg, s.seg);
  assert.deepEqual(back.gdt, s.gdt);
  assert.equal(back.cr0, s.cr0);
  assert.equal(back.cr3, s.cr3);
  assert.equal(back.efer, s.efer);
  assert.equal(back.apicBase, s.apicBase);
});

void test('kvm_sregs keeps the pending interrupt bitmap of the base it is given', () => {
  const base = new Uint8Array(KVM_SREGS_SIZE);
  base[SREGS_INTERRUPT_BITMAP + 4] = 0x80;
  const bytes = encodeSregs(sampleState(), base);
  assert.equal(bytes[SREGS_INTERRUPT_BITMAP + 4], 0x80);
});

void test('decoders reject short buffers', () => {
  assert.throws(() => decodeRegs(new Uint8Array(10)), RangeError);
  assert.throws(() => decodeSregs(new Uint8Array(100)), RangeError);
});

void test('kvm_msrs encodes count and entries', () => {
  const bytes = encodeMsrs([{ index: 0xc0000080, value: 0x500n }, { index: 0x10, value: 1n << 40n }]);
  const v = new DataView(bytes.buffer);
  assert.equal(v.getUint32(0, true), 2);
  assert.equal(v.getUint32(8, true), 0xc0000080);
  assert.deepEqual(decodeMsrs(bytes, 2), [{ index: 0xc0000080, value: 0x500n }, { index: 0x10, value: 1n << 40n }]);
});

void test('kvm_cpuid2 round-trips', () => {
  const entries = [
    { function: 1, index: 0, flags: 0, eax: 0x800f12, ebx: 0x01020800, ecx: 0x80000000, edx: 0xffffffff },
    { function: 0xb, index: 1, flags: 1, eax: 1, ebx: 2, ecx: 0x201, edx: 7 },
  ];
  const bytes = encodeCpuid(entries);
  assert.deepEqual(decodeCpuid(bytes), entries);
  assert.equal(new DataView(cpuidBuffer(5).buffer).getUint32(0, true), 5);
});

void test('memory region and irq routing layouts', () => {
  const mr = new DataView(encodeMemoryRegion(1, 0x100000000, 0x40000000, 0x7f0000000000n).buffer);
  assert.equal(mr.getUint32(0, true), 1);
  assert.equal(mr.getBigUint64(8, true), 0x100000000n);
  assert.equal(mr.getBigUint64(16, true), 0x40000000n);
  assert.equal(mr.getBigUint64(24, true), 0x7f0000000000n);
  const rt = new DataView(encodeIrqRouting([{ gsi: 0, irqchip: 2, pin: 2 }, { gsi: 4, irqchip: 0, pin: 4 }]).buffer);
  assert.equal(rt.getUint32(0, true), 2);
  assert.equal(rt.getUint32(8 + 48 + 0, true), 4);
  assert.equal(rt.getUint32(8 + 4, true), 1);
  assert.equal(rt.getUint32(8 + 20, true), 2);
});
