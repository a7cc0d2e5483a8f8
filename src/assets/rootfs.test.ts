import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { missingRequirement, mountsBelow, removeTreeSafely } from './rootfs.js';

test('one clear line when not root or when tools are missing', () => {
  const all = (): boolean => true;
  assert.equal(missingRequirement({ uid: 0, hasCommand: all }), undefined);
  assert.match(missingRequirement({ uid: 1000, hasCommand: all })!, /needs root .*sudo/);
  const noDebootstrap = missingRequirement({ uid: 0, hasCommand: (c) => c !== 'debootstrap' })!;
  assert.equal(noDebootstrap, 'debootstrap is not installed: apt-get install debootstrap e2fsprogs');
  assert.match(missingRequirement({ uid: 0, hasCommand: (c) => c !== 'debootstrap' && c !== 'mkfs.ext4' })!, /^debootstrap and mkfs\.ext4 are not installed: apt-get install/);
});

test('mounts below the staging tree are found deepest first, others ignored', () => {
  const mounts = [
    'proc /proc proc rw 0 0',
    'proc /cache/.staging-a/root/proc proc rw 0 0',
    'sysfs /cache/.staging-a/root/sys sysfs rw 0 0',
    'binfmt /cache/.staging-a/root/proc/sys/fs/binfmt_misc binfmt_misc rw 0 0',
    'tmpfs /cache/.staging-ab tmpfs rw 0 0',
    'tmpfs /cache/.staging-a/with\\040space tmpfs rw 0 0',
    '',
  ].join('\n');
  assert.deepEqual(mountsBelow('/cache/.staging-a', mounts), [
    '/cache/.staging-a/root/proc/sys/fs/binfmt_misc', '/cache/.staging-a/with space', '/cache/.staging-a/root/proc', '/cache/.staging-a/root/sys',
  ]);
  assert.deepEqual(mountsBelow('/elsewhere', mounts), []);
});

test('removeTreeSafely unmounts what is mounted inside before deleting', { skip: process.getuid?.() === 0 ? false : 'mounting a tmpfs needs root' }, () => {
  const tree = mkdtempSync(join(tmpdir(), 'tv-rootfs-rm-'));
  const mnt = join(tree, 'root', 'proc');
  mkdirSync(mnt, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', mnt]);
  try {
    writeFileSync(join(mnt, 'inside-the-mount'), 'x');
    assert.deepEqual(mountsBelow(tree, readFileSync('/proc/self/mounts', 'utf8')), [mnt]);
    assert.equal(removeTreeSafely(tree), true);
    assert.equal(existsSync(tree), false);
    assert.deepEqual(mountsBelow(tree, readFileSync('/proc/self/mounts', 'utf8')), []);
  } finally {
    if (mountsBelow(tree, readFileSync('/proc/self/mounts', 'utf8')).length > 0) execFileSync('umount', ['-l', mnt]);
    rmSync(tree, { recursive: true, force: true });
  }
  assert.equal(removeTreeSafely(join(tmpdir(), 'tv-rootfs-does-not-exist')), true);
});
