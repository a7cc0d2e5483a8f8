import { test } from 'node:test';
import assert from 'node:assert/strict';
import { missingRequirement, mountsBelow } from './rootfs.js';

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
