import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalModuleName, loadOrder, moduleDepends, readModinfo } from './kernel-modules.js';

/** Builds a minimal ELF64 relocatable with a .modinfo section holding `strings`. */
function fakeModule(strings: string[]): Uint8Array {
  const enc = new TextEncoder();
  const modinfo = enc.encode(strings.map((s) => s + '\0').join(''));
  const shstr = enc.encode('\0.modinfo\0.shstrtab\0');
  const dataOff = 64;
  const shstrOff = dataOff + modinfo.length;
  const shoff = (shstrOff + shstr.length + 7) & ~7;
  const out = new Uint8Array(shoff + 3 * 64);
  const dv = new DataView(out.buffer);
  out.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  dv.setBigUint64(0x28, BigInt(shoff), true);
  dv.setUint16(0x3a, 64, true);
  dv.setUint16(0x3c, 3, true);
  dv.setUint16(0x3e, 2, true);
  out.set(modinfo, dataOff);
  out.set(shstr, shstrOff);
  const sh = (i: number, name: number, off: number, size: number): void => {
    dv.setUint32(shoff + i * 64, name, true);
    dv.setBigUint64(shoff + i * 64 + 0x18, BigInt(off), true);
    dv.setBigUint64(shoff + i * 64 + 0x20, BigInt(size), true);
  };
  sh(1, 1, dataOff, modinfo.length);
  sh(2, 10, shstrOff, shstr.length);
  return out;
}

test('reads depends and name from .modinfo', () => {
  const info = readModinfo(fakeModule(['license=GPL', 'depends=virtio,virtio_ring', 'name=virtio_blk']));
  assert.deepEqual(moduleDepends(info), ['virtio', 'virtio_ring']);
  assert.deepEqual(info.get('name'), ['virtio_blk']);
  assert.deepEqual(moduleDepends(readModinfo(fakeModule(['depends=']))), []);
});

test('rejects files that are not modules', () => {
  assert.throws(() => readModinfo(new Uint8Array(100), 'x.ko'), /x.ko: not a kernel module \(no ELF magic\)/);
  assert.throws(() => readModinfo(fakeModule([]).fill(0, 0x28, 0x30).fill(0xff, 0x2c, 0x30)), /bad section table/);
});

test('load order puts dependencies first, once each, and detects cycles', () => {
  const deps: Record<string, string[]> = {
    virtio_blk: ['virtio', 'virtio_ring'], virtio_pci: ['virtio_pci_modern_dev', 'virtio', 'virtio_ring'],
    virtio: [], virtio_ring: [], virtio_pci_modern_dev: [], virtio_rng: ['virtio', 'virtio_ring'],
  };
  const order = loadOrder(['virtio_pci', 'virtio_blk', 'virtio-rng'], (n) => deps[n]);
  assert.deepEqual(order, ['virtio_pci_modern_dev', 'virtio', 'virtio_ring', 'virtio_pci', 'virtio_blk', 'virtio_rng']);
  assert.throws(() => loadOrder(['a'], (n) => (n === 'a' ? ['b'] : ['a'])), /cycle: a -> b -> a/);
  assert.equal(canonicalModuleName('virtio-rng.ko'), 'virtio_rng');
});
