/**
 * The guest's physical memory map as reported to kernels (the BIOS e820 map):
 * usable RAM, and the legacy hole [EBDA_START, 1 MiB) as reserved because it
 * holds the EBDA, the ACPI tables and the BIOS area. The MMIO hole is not
 * listed (as Firecracker does): absent from the map means "not RAM".
 */

import type { GuestMemory } from '../machine/memory.js';
import { EBDA_START, HIGH_MEMORY_START } from '../machine/layout.js';

export const E820_RAM = 1;
export const E820_RESERVED = 2;
export const E820_ACPI = 3;

export interface E820Entry {
  readonly address: number;
  readonly size: number;
  readonly type: number;
}

/** Builds the e820 map from the RAM regions of `memory`. */
export function e820Map(memory: GuestMemory): E820Entry[] {
  const map: E820Entry[] = [];
  for (const r of memory.regions) {
    const end = r.guestBase + r.size;
    if (r.guestBase === 0 && end > HIGH_MEMORY_START) {
      map.push({ address: 0, size: EBDA_START, type: E820_RAM });
      map.push({ address: EBDA_START, size: HIGH_MEMORY_START - EBDA_START, type: E820_RESERVED });
      map.push({ address: HIGH_MEMORY_START, size: end - HIGH_MEMORY_START, type: E820_RAM });
    } else {
      map.push({ address: r.guestBase, size: r.size, type: E820_RAM });
    }
  }
  return map;
}

/** The end of the RAM region that starts at 0 ("low RAM", below the MMIO hole). */
export function lowRamEnd(memory: GuestMemory): number {
  const low = memory.regions.find((r) => r.guestBase === 0);
  return low ? low.size : 0;
}
