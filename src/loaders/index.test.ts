/**
 * Tests for the loaders' entry points: loadKernel dispatches on the detected
 * kind and passes the ACPI RSDP through; and a mutation test checks that
 * corrupted kernels only ever produce LoaderError (never another exception,
 * and never a write outside guest RAM).
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GuestMemory } from '../machine/memory.js';
import { MiB } from '../machine/layout.js';
import { buildAcpiTables, loadKernel, LoaderError } from './index.js';
import { makeAoutImage, makeBzImage, makeElf, pattern } from './fixtures.js';

void test('loadKernel boots each kind and returns its entry state', () => {
  const memory = GuestMemory.allocate(64 * MiB);
  const { rsdp } = buildAcpiTables(memory, { vcpuCount: 2 });
  const bz = loadKernel(memory, makeBzImage(), { cmdline: 'quiet', acpiRsdp: rsdp, initrd: pattern(4096, 1) });
  assert.equal(bz.kind, 'bzimage');
  assert.equal(bz.entry, 0x100200);
  assert.equal(bz.bootState.rip, 0x100200n);
  assert.equal(memory.read64(0x7000 + 0x70), rsdp);
  assert.ok(bz.initrd && bz.initrd.address > bz.kernelEnd);
  assert.equal(memory.read32(0xf0000), 0x20445352, 'ACPI tables survive kernel loading ("RSD ")');

  const vmlinux = loadKernel(memory, makeElf({ elfClass: 64, entry: 0x1000000n, segments: [{ paddr: 0x1000000, data: pattern(64, 2) }] }));
  assert.equal(vmlinux.kind, 'vmlinux');
  assert.equal(vmlinux.bootState.efer & 0x400n, 0x400n);

  const mb = loadKernel(memory, makeAoutImage({ loadAddr: 0x400000, headerOffset: 0, text: pattern(256, 3), bss: 0, entryOffset: 0x40 }), { kernelName: 'test.flat' });
  assert.equal(mb.kind, 'multiboot');
  assert.equal(mb.entry, 0x400040);
  assert.equal(mb.bootState.gpr.rax, 0x2badb002n);

  assert.throws(() => loadKernel(memory, pattern(1000, 4), { kernelName: 'kernel.bin' }),
    (e: unknown) => e instanceof LoaderError && e.message === 'kernel.bin: not a bzImage, ELF or multiboot kernel');
});

/** A small deterministic PRNG (xorshift32) so failures reproduce. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

void test('corrupted kernels only ever raise LoaderError', () => {
  const memory = GuestMemory.allocate(16 * MiB);
  const seeds = [
    { image: makeBzImage({ kernelSize: 2048, initSize: 0x100000 }), from: 0x1f0, to: 0x270 },
    { image: makeElf({ elfClass: 64, entry: 0x100000n, segments: [{ paddr: 0x100000, data: pattern(64, 1), memSize: 0x2000 }] }), from: 0, to: 0x80 + 56 },
    { image: makeElf({ elfClass: 32, entry: 0x100000n, segments: [{ paddr: 0x100000, data: pattern(64, 1) }], multiboot: {} }), from: 0, to: 0x60 },
    { image: makeAoutImage({ loadAddr: 0x100000, headerOffset: 0x10, text: pattern(512, 2), bss: 64, entryOffset: 0 }), from: 0x10, to: 0x30 },
  ];
  const next = rng(12345);
  let loaded = 0;
  for (const { image, from, to } of seeds) {
    for (let i = 0; i < 400; i++) {
      const mutated = image.slice();
      const flips = 1 + (next() % 4);
      for (let f = 0; f < flips; f++) {
        const at = from + (next() % (to - from));
        mutated[at] = next() & 0xff;
      }
      const cut = next() % 8 === 0 ? next() % mutated.length : mutated.length;
      try {
        loadKernel(memory, mutated.subarray(0, cut), { initrd: pattern(100, 1), cmdline: 'x' });
        loaded++;
      } catch (e) {
        assert.ok(e instanceof LoaderError, `unexpected ${String(e)}`);
      }
    }
  }
  assert.ok(loaded > 0, 'some mutations still load');
});
