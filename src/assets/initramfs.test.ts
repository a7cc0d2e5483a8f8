import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendToInitramfs, buildInitramfs, READY_BANNER } from './initramfs.js';
import { listCpio } from './cpio.js';

/** Lists the file names in a newc archive. */
function names(archive: Uint8Array): string[] {
  const s = Buffer.from(archive).toString('latin1');
  const out: string[] = [];
  let off = 0;
  while (off < s.length) {
    assert.equal(s.slice(off, off + 6), '070701');
    const field = (i: number): number => parseInt(s.slice(off + 6 + i * 8, off + 14 + i * 8), 16);
    const size = field(6);
    const namesize = field(11);
    const name = s.slice(off + 110, off + 110 + namesize - 1);
    out.push(name);
    if (name === 'TRAILER!!!') break;
    off += (110 + namesize + 3) & ~3;
    off += (size + 3) & ~3;
  }
  return out;
}

test('the initramfs carries busybox as init, the rc script, inittab and every module in order', () => {
  const archive = buildInitramfs({
    busybox: new Uint8Array([0x7f, 0x45, 0x4c, 0x46]),
    modules: [{ name: 'virtio', data: new Uint8Array(8) }, { name: 'virtio_blk', data: new Uint8Array(8) }],
  });
  const list = names(archive);
  for (const n of ['init', 'bin/busybox', 'bin/sh', 'etc/inittab', 'etc/rc', 'dev/console', 'lib/modules/virtio.ko', 'lib/modules/virtio_blk.ko']) {
    assert.ok(list.includes(n), n);
  }
  const text = Buffer.from(archive).toString('latin1');
  assert.match(text, /for m in virtio virtio_blk; do/);
  assert.ok(text.includes(READY_BANNER));
  assert.ok(text.includes('::respawn:-/bin/cttyhack /bin/sh'));
});

test('appendToInitramfs adds a second archive whose members follow the original ones', () => {
  const base = buildInitramfs({ busybox: new Uint8Array([0x7f, 0x45, 0x4c, 0x46]), modules: [] });
  const tool = new Uint8Array([1, 2, 3, 4, 5]);
  const combined = appendToInitramfs(base, [{ path: 'bin/vsock-echo', data: tool }]);
  assert.deepEqual(combined.subarray(0, base.length), base, 'the original archive is unchanged at the start');
  const { names: members, end } = listCpio(combined);
  assert.equal(end, combined.length, 'both archives parse to the end');
  assert.deepEqual(members.slice(0, names(base).length - 1), names(base).filter((n) => n !== 'TRAILER!!!'));
  assert.equal(members.at(-1), 'bin/vsock-echo');
  // The appended member carries its data and an executable regular-file mode.
  const text = Buffer.from(combined.subarray(base.length)).toString('latin1');
  assert.equal(parseInt(text.slice(14, 22), 16), 0o100755);
  const dataAt = base.length + ((110 + 'bin/vsock-echo'.length + 1 + 3) & ~3);
  assert.deepEqual(combined.subarray(dataAt, dataAt + tool.length), tool);
});
