import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Machine } from '../machine/machine.js';
import { GuestMemory } from '../machine/memory.js';
import { MiB } from '../machine/layout.js';
import { DiskImage } from '../devices/virtio/blk.js';
import { eisaIdValue } from '../loaders/acpi/aml.js';
import type { SystemEvent } from '../devices/system-event.js';
import { VirtioVsock } from '../devices/virtio/vsock.js';
import { attachPlatform } from './platform.js';

test('platform: PCI bus with virtio-blk per disk and virtio-rng, reset at 0xcf9 still works, DSDT has the root bridge', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'typevisor-platform-'));
  try {
    await writeFile(join(dir, 'a.img'), new Uint8Array(4096));
    const disk = await DiskImage.open({ path: join(dir, 'a.img'), readOnly: true });
    const machine = new Machine(GuestMemory.allocate(64 * MiB));
    const events: SystemEvent[] = [];
    const platform = attachPlatform(machine, {
      ramSize: 64 * MiB, cpus: 1, debugExit: false, onConsoleByte: () => undefined, onSystemEvent: (e) => void events.push(e),
      disks: [disk], rng: true,
    });
    const cfg = (slot: number, offset: number): number => {
      machine.pioWrite(0xcf8, 4, (0x80000000 | (slot << 11) | offset) >>> 0);
      return machine.pioRead(0xcfc, 4);
    };
    assert.equal(cfg(0, 0), 0x00081b36);
    assert.equal(cfg(1, 0), 0x10421af4, 'virtio-blk in slot 1');
    assert.equal(cfg(2, 0), 0x10441af4, 'virtio-rng in slot 2');
    assert.equal(cfg(3, 0), 0xffffffff);
    assert.equal(platform.virtio.length, 2);
    machine.pioWrite(0xcf9, 1, 0x06);
    assert.deepEqual(events.map((e) => e.kind), ['reset']);
    // The DSDT carries PNP0A03 (as an EISA id dword) and a _PRT.
    const mem = machine.memory.readBytes(0xf0000, 0x10000);
    const id = eisaIdValue('PNP0A03');
    const needle = Uint8Array.of(0x0c, id & 0xff, (id >>> 8) & 0xff, (id >>> 16) & 0xff, id >>> 24);
    const text = Buffer.from(mem);
    assert.ok(text.indexOf(needle) > 0, 'PNP0A03 _HID');
    assert.ok(text.indexOf('_PRT') > 0, '_PRT');
    platform.dispose();
    await disk.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('platform: virtio-net per --net after the disks, then rng, then vsock', () => {
  const machine = new Machine(GuestMemory.allocate(64 * MiB));
  const backend = { readFrame: () => 0, writeFrame: () => true, watchReadable: () => undefined, close: () => undefined };
  const vsock = new VirtioVsock({ guestCid: 3, udsPath: '/nonexistent/v.sock' });
  const platform = attachPlatform(machine, {
    ramSize: 64 * MiB, cpus: 1, debugExit: false, onConsoleByte: () => undefined, onSystemEvent: () => undefined,
    nets: [{ backend, mac: new Uint8Array([2, 0, 0, 0, 0, 1]) }, { backend, mac: new Uint8Array([2, 0, 0, 0, 0, 2]) }], rng: true, vsock,
  });
  const cfg = (slot: number, offset: number): number => {
    machine.pioWrite(0xcf8, 4, (0x80000000 | (slot << 11) | offset) >>> 0);
    return machine.pioRead(0xcfc, 4);
  };
  assert.equal(cfg(1, 0), 0x10411af4, 'virtio-net in slot 1');
  assert.equal(cfg(2, 0), 0x10411af4, 'virtio-net in slot 2');
  assert.equal(cfg(3, 0), 0x10441af4, 'virtio-rng in slot 3');
  assert.equal(cfg(4, 0), 0x10531af4, 'virtio-vsock in slot 4');
  platform.dispose();
});
