/**
 * virtio under a real Linux guest: the stock Debian kernel, booted by the soft
 * engine, finds virtio-blk and virtio-rng through virtio-pci, and a write that
 * the guest has synced survives the VMM being killed with SIGKILL, as seen
 * from the host and from the guest after a fresh boot; and `blkdiscard` in the
 * guest punches a hole in the host image.
 */

import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, openSync, readSync, closeSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testCacheDirectory } from '../../src/assets/cache.js';
import { listDefaultGuests, type DefaultGuest } from '../../src/assets/default-guest.js';
import { READY_BANNER } from '../../src/assets/initramfs.js';
import { CLI } from './harness.js';

const BOOT_TIMEOUT_MS = 900_000;

interface Session {
  output: string;
  status: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * Boots the Debian guest under soft with `args`, types `commands` once it is up,
 * and (if `killOn` is given) SIGKILLs the VMM as soon as the console shows that text.
 */
function session(guest: DefaultGuest, args: string[], commands: string, killOn?: RegExp): Promise<Session> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'run', '--engine', 'soft', '--kernel', guest.kernelPath, '--initrd', guest.initrdPath, '--append', 'console=ttyS0', ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let output = '';
    let typed = false;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no end within ${BOOT_TIMEOUT_MS} ms; output:\n${output.slice(-3000)}`));
    }, BOOT_TIMEOUT_MS);
    child.stdin.on('error', () => undefined);
    child.stdout.on('data', (d: Buffer) => {
      output += d.toString('latin1');
      if (!typed && output.includes(READY_BANNER)) {
        typed = true;
        child.stdin.write(commands);
      }
      if (killOn !== undefined && killOn.test(output)) child.kill('SIGKILL');
    });
    child.stderr.on('data', (d: Buffer) => (output += d.toString('latin1')));
    child.on('error', reject);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ output, status, signal });
    });
  });
}

let guest: DefaultGuest | undefined;
before(() => {
  process.env.TYPEVISOR_CACHE = testCacheDirectory();
  guest = listDefaultGuests()[0];
});

describe('virtio devices under a Linux guest (soft engine)', () => {
  test('virtio-blk and virtio-rng are found; a synced write survives SIGKILL of the VMM and a reboot', { timeout: 2 * BOOT_TIMEOUT_MS }, async (t) => {
    if (guest === undefined) return t.skip('the Debian guest is not in the test cache (npm test fetches it; needs apt-get)');
    const dir = mkdtempSync(join(tmpdir(), 'tv-virtio-'));
    try {
      const disk = join(dir, 'disk.img');
      writeFileSync(disk, new Uint8Array(32 * 1024 * 1024));
      // Boot 1: write 1 MiB of random data to the raw disk, sync, print its hash; the VMM is killed right after.
      const first = await session(
        guest,
        ['--disk', `${disk},id=tv-disk-1`, '--rng'],
        'cat /proc/partitions; cat /sys/block/vda/serial; echo; cat /sys/class/misc/hw_random/rng_current\n' +
          'dd if=/dev/hwrng of=/tmp/r bs=1024 count=1024 2>/dev/null; dd if=/tmp/r of=/dev/vda bs=65536 2>/dev/null; sync\n' +
          'echo "SYNCED $(sha256sum < /tmp/r)"\n',
        /SYNCED [0-9a-f]{64}/,
      );
      assert.equal(first.signal, 'SIGKILL', 'the VMM was killed, not shut down');
      assert.match(first.output, /254\s+0\s+32768 vda/, 'virtio-blk: a 32 MiB vda');
      assert.match(first.output, /^tv-disk-1\r?$/m, 'virtio-blk serial from id=');
      assert.match(first.output, /^virtio_rng\.\d+\r?$/m, 'virtio-rng is the hwrng');
      const synced = /SYNCED ([0-9a-f]{64})/.exec(first.output)![1];
      // The host sees the acknowledged data.
      const fd = openSync(disk, 'r');
      const head = new Uint8Array(1024 * 1024);
      readSync(fd, head, 0, head.length, 0);
      closeSync(fd);
      assert.equal(createHash('sha256').update(head).digest('hex'), synced, 'every synced byte reached the image');
      // Boot 2: the guest reads the same bytes back.
      const second = await session(guest, ['--disk', disk], 'echo "READ $(dd if=/dev/vda bs=65536 count=16 2>/dev/null | sha256sum)"\npoweroff -f\n');
      assert.match(second.output, new RegExp(`READ ${synced}`));
      assert.equal(second.status, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('virtio-blk discard under a Linux guest (soft engine)', () => {
  test('blkdiscard in the guest punches a hole in the host image', { timeout: BOOT_TIMEOUT_MS }, async (t) => {
    if (guest === undefined) return t.skip('the Debian guest is not in the test cache (npm test fetches it; needs apt-get)');
    const dir = mkdtempSync(join(tmpdir(), 'tv-discard-'));
    try {
      // 32 MiB image, fully allocated with a non-zero pattern.
      const disk = join(dir, 'disk.img');
      writeFileSync(disk, new Uint8Array(32 * 1024 * 1024).fill(0xa5));
      const before = statSync(disk).blocks;
      const run = await session(
        guest,
        ['--disk', disk],
        'cat /sys/block/vda/queue/discard_max_bytes\n' +
          'blkdiscard -o 4194304 -l 16777216 /dev/vda; echo "DISCARD-STATUS $?"\n' +
          'echo "HEAD $(dd if=/dev/vda bs=4096 count=1 2>/dev/null | od -An -tx1 | head -1)"\n' +
          'echo "HOLE $(dd if=/dev/vda bs=4096 skip=2048 count=1 2>/dev/null | od -An -tx1 | head -1)"\n' +
          'poweroff -f\n',
      );
      assert.equal(run.status, 0, run.output.slice(-2000));
      assert.match(run.output, /DISCARD-STATUS 0/, 'blkdiscard succeeded');
      assert.match(run.output, /HEAD\s+a5 a5 a5/, 'data outside the range is kept');
      assert.match(run.output, /HOLE\s+00 00 00/, 'the guest reads zeros in the discarded range');
      const after = statSync(disk).blocks;
      assert.ok(before - after >= (16 * 1024 * 1024) / 512, `16 MiB of the image were deallocated (${before} → ${after} blocks)`);
      const fd = openSync(disk, 'r');
      const probe = new Uint8Array(4096);
      readSync(fd, probe, 0, probe.length, 8 * 1024 * 1024);
      closeSync(fd);
      assert.ok(probe.every((b) => b === 0), 'the host reads zeros there');
      assert.equal(statSync(disk).size, 32 * 1024 * 1024, 'the image keeps its size');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
