/** Tests for CPUID normalisation (no /dev/kvm needed). */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpuVendor, idBits, KVM_SIGNATURE, normalizeCpuid } from './cpuid.js';
import type { CpuidEntry } from './structs.js';

const AMD_LEAF0 = { function: 0, index: 0, flags: 0, eax: 0x10, ebx: 0x68747541, edx: 0x69746e65, ecx: 0x444d4163 };
const INTEL_LEAF0 = { function: 0, index: 0, flags: 0, eax: 0x1f, ebx: 0x756e6547, edx: 0x49656e69, ecx: 0x6c65746e };

function leaf(fn: number, regs: Partial<CpuidEntry> = {}): CpuidEntry {
  return { function: fn, index: 0, flags: 0, eax: 0, ebx: 0, ecx: 0, edx: 0, ...regs };
}

function find(entries: CpuidEntry[], fn: number, index = 0): CpuidEntry {
  const e = entries.find((x) => x.function === fn && x.index === index);
  assert.ok(e, `leaf ${fn.toString(16)}.${index} present`);
  return e;
}

const supportedAmd: CpuidEntry[] = [
  AMD_LEAF0,
  leaf(1, { eax: 0x830f10, ebx: 0xff0b0800, ecx: 0x7ed8320b | (1 << 3), edx: 0x178bfbff & ~(1 << 28) }),
  leaf(5, { eax: 0x40, ebx: 0x40, ecx: 3, edx: 0x11 }),
  leaf(6, { eax: 0x7, ecx: 0x9 }),
  leaf(0xb, { flags: 1, eax: 1, ebx: 2, ecx: 0x100, edx: 99 }),
  leaf(0x40000001, { eax: 0x1000000 }),
  leaf(0x80000008, { eax: 0x3030, ecx: 0x700f }),
  leaf(0x8000001e, { eax: 5, ebx: 0x105, ecx: 0x3 }),
];

void test('vendor detection from leaf 0', () => {
  assert.equal(cpuVendor([AMD_LEAF0]), 'amd');
  assert.equal(cpuVendor([INTEL_LEAF0]), 'intel');
  assert.equal(cpuVendor([]), 'other');
});

void test('idBits is ceil(log2)', () => {
  assert.deepEqual([1, 2, 3, 4, 5, 8, 9].map(idBits), [0, 1, 2, 2, 3, 3, 4]);
});

void test('leaf 1 carries APIC ID, count, hypervisor bit; MONITOR cleared', () => {
  const out = normalizeCpuid(supportedAmd, { vcpuIndex: 2, vcpuCount: 4 });
  const l1 = find(out, 1);
  assert.equal(l1.ebx >>> 24, 2);
  assert.equal((l1.ebx >>> 16) & 0xff, 4);
  assert.equal((l1.ebx >>> 8) & 0xff, 8);
  assert.notEqual(l1.ecx & (1 << 31), 0);
  assert.equal(l1.ecx & (1 << 3), 0);
  assert.notEqual(l1.edx & (1 << 28), 0);
  assert.equal(l1.eax, 0x830f10, 'signature unchanged');
  const single = find(normalizeCpuid(supportedAmd, { vcpuIndex: 0, vcpuCount: 1 }), 1);
  assert.equal(single.edx & (1 << 28), 0, 'no HTT for one vCPU');
});

void test('power and monitor leaves are hidden except ARAT', () => {
  const out = normalizeCpuid(supportedAmd, { vcpuIndex: 0, vcpuCount: 1 });
  assert.deepEqual([find(out, 5).eax, find(out, 5).ebx, find(out, 5).ecx, find(out, 5).edx], [0, 0, 0, 0]);
  assert.equal(find(out, 6).eax, 4);
  assert.equal(find(out, 6).ecx, 0);
});

void test('extended topology leaf 0xB is rebuilt per vCPU', () => {
  const out = normalizeCpuid(supportedAmd, { vcpuIndex: 3, vcpuCount: 6 });
  const smt = find(out, 0xb, 0);
  const core = find(out, 0xb, 1);
  const end = find(out, 0xb, 2);
  assert.deepEqual([smt.eax, smt.ebx, (smt.ecx >> 8) & 0xff, smt.edx], [0, 1, 1, 3]);
  assert.deepEqual([core.eax, core.ebx, (core.ecx >> 8) & 0xff, core.edx], [3, 6, 2, 3]);
  assert.equal((end.ecx >> 8) & 0xff, 0);
  assert.equal(out.filter((e) => e.function === 0xb).length, 3, 'the host subleaf is replaced');
});

void test('AMD core count and extended APIC ID leaves', () => {
  const out = normalizeCpuid(supportedAmd, { vcpuIndex: 1, vcpuCount: 3 });
  const l8 = find(out, 0x80000008);
  assert.equal(l8.ecx & 0xff, 2);
  assert.equal((l8.ecx >> 12) & 0xf, 2);
  assert.equal(l8.eax, 0x3030);
  const l1e = find(out, 0x8000001e);
  assert.equal(l1e.eax, 1);
  assert.equal(l1e.ebx, 1);
  assert.equal(l1e.ecx, 0);
});

void test('Intel leaf 4 reports cores per package and L3 sharing', () => {
  const supported = [
    INTEL_LEAF0,
    leaf(4, { index: 0, flags: 1, eax: (1 << 5) | 1 | (7 << 26) | (1 << 14) }),
    leaf(4, { index: 3, flags: 1, eax: (3 << 5) | 3 | (7 << 26) | (15 << 14) }),
  ];
  const out = normalizeCpuid(supported, { vcpuIndex: 0, vcpuCount: 4 });
  const l1d = find(out, 4, 0);
  const l3 = find(out, 4, 3);
  assert.equal(l1d.eax >>> 26, 3);
  assert.equal((l1d.eax >>> 14) & 0xfff, 0);
  assert.equal((l3.eax >>> 14) & 0xfff, 3);
  assert.equal(l3.eax & 0x1f, 3, 'cache type kept');
});

void test('KVM signature is present even when the host omits leaf 0x40000000', () => {
  const out = normalizeCpuid(supportedAmd, { vcpuIndex: 0, vcpuCount: 1 });
  const sig = find(out, 0x40000000);
  assert.deepEqual([sig.ebx, sig.ecx, sig.edx], [KVM_SIGNATURE.ebx, KVM_SIGNATURE.ecx, KVM_SIGNATURE.edx]);
  const text = Buffer.alloc(12);
  text.writeUInt32LE(sig.ebx, 0);
  text.writeUInt32LE(sig.ecx, 4);
  text.writeUInt32LE(sig.edx, 8);
  assert.equal(text.toString('latin1'), 'KVMKVMKVM\0\0\0');
  assert.ok(sig.eax >= 0x40000001);
});

void test('input is not modified and bad topology is rejected', () => {
  const copy = structuredClone(supportedAmd);
  normalizeCpuid(supportedAmd, { vcpuIndex: 0, vcpuCount: 2 });
  assert.deepEqual(supportedAmd, copy);
  assert.throws(() => normalizeCpuid(supportedAmd, { vcpuIndex: 2, vcpuCount: 2 }), RangeError);
  assert.throws(() => normalizeCpuid(supportedAmd, { vcpuIndex: 0, vcpuCount: 0 }), RangeError);
});
