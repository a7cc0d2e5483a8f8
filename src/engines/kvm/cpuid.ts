/**
 * CPUID normalisation: turns what KVM_GET_SUPPORTED_CPUID reports into the
 * CPUID table of one vCPU, the way Firecracker does it. Each vCPU gets its own
 * APIC ID (= its index), the topology is one package of `vcpuCount` cores with
 * one thread each, the hypervisor bit is set, power-management and
 * MONITOR/MWAIT leaves are hidden, and the KVM paravirt signature is present.
 * Pure functions, no /dev/kvm.
 */

import { KVM_CPUID_FLAG_SIGNIFICANT_INDEX } from './abi.js';
import type { CpuidEntry } from './structs.js';

export type CpuVendor = 'intel' | 'amd' | 'other';

export interface CpuidTopology {
  /** This vCPU's index, used as its (x2)APIC ID. */
  vcpuIndex: number;
  /** Number of vCPUs in the VM. */
  vcpuCount: number;
}

const LEAF1_ECX_MONITOR = 1 << 3;
const LEAF1_ECX_HYPERVISOR = 1 << 31;
const LEAF1_EDX_HTT = 1 << 28;
const LEAF6_EAX_ARAT = 1 << 2;

/** "KVMKVMKVM\0\0\0" as EBX, ECX, EDX. */
export const KVM_SIGNATURE = { ebx: 0x4b4d564b, ecx: 0x564b4d56, edx: 0x0000004d } as const;

/** The vendor named by leaf 0. */
export function cpuVendor(entries: readonly CpuidEntry[]): CpuVendor {
  const leaf0 = entries.find((e) => e.function === 0);
  if (!leaf0) return 'other';
  if (leaf0.ebx === 0x68747541 && leaf0.edx === 0x69746e65 && leaf0.ecx === 0x444d4163) return 'amd';
  if (leaf0.ebx === 0x756e6547 && leaf0.edx === 0x49656e69 && leaf0.ecx === 0x6c65746e) return 'intel';
  return 'other';
}

/** Number of bits needed to hold IDs 0..count-1 (ceil(log2(count))). */
export function idBits(count: number): number {
  let bits = 0;
  while (1 << bits < count) bits++;
  return bits;
}

/** Returns the CPUID table for vCPU `topology.vcpuIndex`; `supported` is not modified. */
export function normalizeCpuid(supported: readonly CpuidEntry[], topology: CpuidTopology): CpuidEntry[] {
  const { vcpuIndex, vcpuCount } = topology;
  if (!Number.isInteger(vcpuCount) || vcpuCount < 1 || vcpuCount > 255) throw new RangeError(`vcpuCount ${vcpuCount} must be 1..255`);
  if (!Number.isInteger(vcpuIndex) || vcpuIndex < 0 || vcpuIndex >= vcpuCount) throw new RangeError(`vcpuIndex ${vcpuIndex} out of range`);
  const vendor = cpuVendor(supported);
  const apicId = vcpuIndex;
  const out: CpuidEntry[] = [];

  for (const src of supported) {
    const e: CpuidEntry = { ...src };
    switch (e.function) {
      case 0x1:
        e.ebx = ((apicId & 0xff) << 24) | ((vcpuCount & 0xff) << 16) | (8 << 8); // CLFLUSH line 8 * 8 bytes
        e.ecx = (e.ecx | LEAF1_ECX_HYPERVISOR) & ~LEAF1_ECX_MONITOR;
        e.edx = vcpuCount > 1 ? e.edx | LEAF1_EDX_HTT : e.edx & ~LEAF1_EDX_HTT;
        break;
      case 0x4: {
        if (vendor !== 'intel') break;
        const level = (e.eax >>> 5) & 7;
        const sharing = level >= 3 ? vcpuCount - 1 : 0;
        e.eax = (e.eax & 0x3fff) | ((sharing & 0xfff) << 14) | (((vcpuCount - 1) & 0x3f) << 26);
        break;
      }
      case 0x5: // MONITOR/MWAIT
        e.eax = e.ebx = e.ecx = e.edx = 0;
        break;
      case 0x6: // thermal and power management: only the always-running APIC timer
        e.eax &= LEAF6_EAX_ARAT;
        e.ebx = e.ecx = e.edx = 0;
        break;
      case 0xa: // architectural performance monitoring: no PMU
        e.eax = e.ebx = e.ecx = e.edx = 0;
        break;
      case 0xb:
      case 0x1f:
        continue; // rebuilt below
      case 0x40000000:
        e.eax = Math.max(e.eax, 0x40000001);
        e.ebx = KVM_SIGNATURE.ebx;
        e.ecx = KVM_SIGNATURE.ecx;
        e.edx = KVM_SIGNATURE.edx;
        break;
      case 0x80000008:
        if (vendor === 'amd') e.ecx = (e.ecx & ~0xf0ff) | (idBits(vcpuCount) << 12) | ((vcpuCount - 1) & 0xff);
        break;
      case 0x8000001d: {
        if (vendor !== 'amd') break;
        const level = (e.eax >>> 5) & 7;
        const sharing = level >= 3 ? vcpuCount - 1 : 0;
        e.eax = (e.eax & ~(0xfff << 14)) | ((sharing & 0xfff) << 14);
        break;
      }
      case 0x8000001e:
        if (vendor !== 'amd') break;
        e.eax = apicId;
        e.ebx = apicId & 0xff; // compute unit id; one thread per unit
        e.ecx = 0; // node 0, one node
        e.edx = 0;
        break;
    }
    out.push(e);
  }

  // Extended topology (0xB, and 0x1F when the host reports it): SMT level of
  // one thread per core, then a core level holding every vCPU.
  for (const leaf of [0xb, 0x1f]) {
    if (!supported.some((e) => e.function === leaf)) continue;
    out.push(...topologyLeaf(leaf, apicId, vcpuCount));
  }
  if (!out.some((e) => e.function === 0x40000000)) {
    out.push({ function: 0x40000000, index: 0, flags: 0, eax: 0x40000001, ...KVM_SIGNATURE });
  }
  return out;
}

function topologyLeaf(leaf: number, apicId: number, vcpuCount: number): CpuidEntry[] {
  const f = KVM_CPUID_FLAG_SIGNIFICANT_INDEX;
  return [
    { function: leaf, index: 0, flags: f, eax: 0, ebx: 1, ecx: (1 << 8) | 0, edx: apicId },
    { function: leaf, index: 1, flags: f, eax: idBits(vcpuCount), ebx: vcpuCount, ecx: (2 << 8) | 1, edx: apicId },
    { function: leaf, index: 2, flags: f, eax: 0, ebx: 0, ecx: 2, edx: apicId },
  ];
}
