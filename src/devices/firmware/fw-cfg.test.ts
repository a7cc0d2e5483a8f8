/** Tests for fw_cfg: traditional byte reads as kvm-unit-tests does them, the file directory, and DMA. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FwCfg, FwCfgDmaControl, FwCfgError, FwCfgKey, FwCfgPort } from './fw-cfg.js';
import { GuestMemory } from '../../machine/memory.js';
import { GiB, MiB } from '../../machine/layout.js';

function swap32(v: number): number {
  return (((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24)) >>> 0;
}

function makeFwCfg(ramSize = 64 * MiB) {
  const memory = GuestMemory.allocate(64 * MiB);
  const fw = new FwCfg({ ramSize, cpuCount: 3, maxCpus: 8, memory: () => memory });
  /** kvm-unit-tests' fwcfg_get_u: outw key to 0x510, then `bytes` inb from 0x511. */
  const getU = (key: number, bytes: number) => {
    fw.write(FwCfgPort.SELECTOR, 2, key);
    let r = 0;
    for (let i = 0; i < bytes; i++) r += fw.read(FwCfgPort.DATA, 1) * 2 ** (8 * i);
    return r;
  };
  const readBytes = (key: number, n: number) => {
    fw.write(FwCfgPort.SELECTOR, 2, key);
    return Uint8Array.from({ length: n }, () => fw.read(FwCfgPort.DATA, 1));
  };
  /** Writes an FWCfgDmaAccess at `at` and starts it as Linux does (high half, then low half). */
  const dma = (at: number, control: number, length: number, address: number) => {
    memory.write32(at, swap32(control));
    memory.write32(at + 4, swap32(length));
    memory.write32(at + 8, swap32(Math.floor(address / 2 ** 32)));
    memory.write32(at + 12, swap32(address % 2 ** 32));
    fw.write(FwCfgPort.DMA_ADDRESS_HIGH, 4, swap32(Math.floor(at / 2 ** 32)));
    fw.write(FwCfgPort.DMA_ADDRESS_LOW, 4, swap32(at % 2 ** 32));
    return swap32(memory.read32(at));
  };
  return { fw, memory, getU, readBytes, dma };
}

void test('traditional interface: signature, ID, NB_CPUS, MAX_CPUS, RAM_SIZE; past the end reads 0', () => {
  const { getU, readBytes } = makeFwCfg(6 * GiB);
  assert.equal(new TextDecoder().decode(readBytes(FwCfgKey.SIGNATURE, 4)), 'QEMU');
  assert.equal(getU(FwCfgKey.ID, 4), 3, 'traditional + DMA');
  assert.equal(getU(FwCfgKey.NB_CPUS, 2), 3);
  assert.equal(getU(FwCfgKey.MAX_CPUS, 2), 8);
  assert.equal(getU(FwCfgKey.RAM_SIZE, 8), 6 * GiB);
  assert.deepEqual(readBytes(FwCfgKey.NB_CPUS, 4), Uint8Array.from([3, 0, 0, 0]));
  assert.equal(getU(0x1234, 4), 0, 'unknown key reads 0');
});

void test('DMA signature at 0x514 reads "QEMU CFG"', () => {
  const { fw } = makeFwCfg();
  const bytes = [...Array(8).keys()].map((i) => fw.read(FwCfgPort.DMA_ADDRESS_HIGH + i, 1));
  assert.equal(String.fromCharCode(...bytes), 'QEMU CFG');
  assert.equal(swap32(fw.read(FwCfgPort.DMA_ADDRESS_HIGH, 4)), 0x51454d55);
});

void test('named files get selectors from 0x20 and appear in FILE_DIR (big-endian)', () => {
  const { fw, getU, readBytes } = makeFwCfg();
  const a = fw.addFile('etc/acpi/tables', new Uint8Array([1, 2, 3]));
  const b = fw.addFile('etc/e820', new Uint8Array(40));
  assert.equal(a, 0x20);
  assert.equal(b, 0x21);
  const dir = readBytes(FwCfgKey.FILE_DIR, 4 + 2 * 64);
  const view = new DataView(dir.buffer);
  assert.equal(view.getUint32(0, false), 2);
  assert.equal(view.getUint32(4, false), 3);
  assert.equal(view.getUint16(8, false), 0x20);
  assert.equal(new TextDecoder().decode(dir.subarray(12, 12 + 15)), 'etc/acpi/tables');
  assert.equal(dir[12 + 15], 0);
  assert.equal(view.getUint32(68, false), 40);
  assert.equal(view.getUint16(72, false), 0x21);
  assert.equal(getU(0x20, 3), 0x030201);
  assert.throws(() => fw.addFile('etc/e820', new Uint8Array(1)), FwCfgError);
  assert.throws(() => fw.addFile('x'.repeat(56), new Uint8Array(1)), FwCfgError);
});

void test('DMA: select + read, skip, read past the end zero-fills', () => {
  const { fw, memory, dma } = makeFwCfg();
  fw.addFile('etc/test', Uint8Array.from({ length: 100 }, (_, i) => i + 1));
  const request = 0x1000;
  const buffer = 0x2000;
  memory.fill(buffer, 64, 0xee);
  assert.equal(dma(request, (0x20 << 16) | FwCfgDmaControl.SELECT | FwCfgDmaControl.READ, 10, buffer), 0);
  assert.deepEqual(memory.readBytes(buffer, 10), Uint8Array.from({ length: 10 }, (_, i) => i + 1));
  assert.equal(memory.read8(buffer + 10), 0xee, 'nothing beyond length');
  assert.equal(dma(request, FwCfgDmaControl.SKIP, 80, 0), 0);
  assert.equal(dma(request, FwCfgDmaControl.READ, 16, buffer), 0);
  assert.deepEqual(memory.readBytes(buffer, 16), Uint8Array.from([91, 92, 93, 94, 95, 96, 97, 98, 99, 100, 0, 0, 0, 0, 0, 0]));
  // The traditional data port continues from the DMA position.
  assert.equal(fw.read(FwCfgPort.DATA, 1), 0);
});

void test('DMA errors: buffer outside RAM, write refused; request outside RAM ignored', () => {
  const { fw, memory, dma } = makeFwCfg();
  const request = 0x1000;
  assert.equal(dma(request, (FwCfgKey.RAM_SIZE << 16) | FwCfgDmaControl.SELECT | FwCfgDmaControl.READ, 8, 0xf0000000), FwCfgDmaControl.ERROR);
  assert.equal(dma(request, FwCfgDmaControl.READ, 0x1000, 64 * MiB - 8), FwCfgDmaControl.ERROR, 'straddles the end of RAM');
  assert.equal(dma(request, FwCfgDmaControl.READ, 8, 2 ** 63), FwCfgDmaControl.ERROR, 'absurd address');
  assert.equal(dma(request, FwCfgDmaControl.WRITE, 4, 0x2000), FwCfgDmaControl.ERROR);
  // Request struct itself outside RAM: nothing happens, nothing throws.
  assert.doesNotThrow(() => {
    fw.write(FwCfgPort.DMA_ADDRESS_HIGH, 4, swap32(0x10));
    fw.write(FwCfgPort.DMA_ADDRESS_LOW, 4, 0);
    fw.write(FwCfgPort.DMA_ADDRESS_LOW, 4, swap32(64 * MiB - 4));
  });
  assert.equal(memory.read32(64 * MiB - 4), 0);
});

void test('DMA before guest memory exists is ignored', () => {
  const fw = new FwCfg({ ramSize: 16 * MiB, cpuCount: 1, memory: () => undefined });
  assert.doesNotThrow(() => fw.write(FwCfgPort.DMA_ADDRESS_LOW, 4, swap32(0x1000)));
});
