import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BASE_PACKAGES, DebootstrapProgress, debootstrapArguments, formatImageSize, parseImageSize, rootfsCacheKey, rootfsFiles, rootfsPackages,
  rootfsSymlinks, validPackageName,
} from './rootfs-config.js';

test('fstab mounts /dev/vda as ext4 root; hostname, hosts and an empty machine-id are written', () => {
  const files = new Map(rootfsFiles('guest1').map((f) => [f.path, f]));
  const fstab = files.get('/etc/fstab')!.content.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
  assert.deepEqual(fstab.map((l) => l.split(/\s+/)), [['/dev/vda', '/', 'ext4', 'errors=remount-ro', '0', '1']]);
  assert.equal(files.get('/etc/hostname')!.content, 'guest1\n');
  assert.match(files.get('/etc/hosts')!.content, /^127\.0\.1\.1\tguest1$/m);
  assert.equal(files.get('/etc/machine-id')!.content, '');
  for (const f of files.values()) assert.ok(f.path.startsWith('/etc/'), f.path);
});

test('the serial getty override resets ExecStart and runs agetty on the unit tty without clearing it', () => {
  const getty = rootfsFiles().find((f) => f.path === '/etc/systemd/system/serial-getty@ttyS0.service.d/typevisor.conf')!;
  const lines = getty.content.split('\n');
  const reset = lines.indexOf('ExecStart=');
  assert.ok(reset > lines.indexOf('[Service]') && lines.indexOf('[Service]') >= 0);
  const exec = lines[reset + 1];
  assert.match(exec, /^ExecStart=-\/sbin\/agetty /);
  assert.ok(exec.includes('--noclear'));
  // systemd unit syntax: "\\u" in the file becomes "\u" for agetty (login's user name escape).
  assert.ok(exec.includes(String.raw`'-p -- \\u'`));
});

test('systemd-networkd gets DHCP on virtio-net names, and the getty and networkd are enabled', () => {
  const net = rootfsFiles().find((f) => f.path.startsWith('/etc/systemd/network/'))!;
  assert.match(net.content, /^\[Match\]\nName=en\* eth\*$/m);
  assert.match(net.content, /^DHCP=yes$/m);
  const links = rootfsSymlinks();
  assert.ok(links.some((l) => l.path.endsWith('getty.target.wants/serial-getty@ttyS0.service') && l.target.endsWith('/serial-getty@.service')));
  assert.ok(links.some((l) => l.path.includes('multi-user.target.wants/systemd-networkd.service')));
});

test('e2scrub_reap (an idle-priority LVM snapshot reaper) is masked', () => {
  const mask = rootfsSymlinks().find((l) => l.path === '/etc/systemd/system/e2scrub_reap.service');
  assert.equal(mask?.target, '/dev/null');
});

test('systemd waits 10 minutes for units and devices (the soft engine needs minutes before udev announces ttyS0)', () => {
  const conf = rootfsFiles().find((f) => f.path === '/etc/systemd/system.conf.d/typevisor.conf')!;
  const lines = conf.content.split('\n');
  assert.ok(lines.indexOf('[Manager]') >= 0);
  for (const key of ['DefaultTimeoutStartSec', 'DefaultDeviceTimeoutSec']) {
    const line = lines.find((l) => l.startsWith(`${key}=`));
    assert.equal(line, `${key}=600s`, key);
    assert.ok(lines.indexOf(line) > lines.indexOf('[Manager]'), `${key} is in the [Manager] section`);
  }
});

test('the initramfs module list carries the virtio block and PCI drivers', () => {
  const modules = rootfsFiles().find((f) => f.path === '/etc/initramfs-tools/modules')!;
  const names = modules.content.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
  for (const m of ['virtio_pci', 'virtio_blk', 'ext4']) assert.ok(names.includes(m), m);
});

test('packages: base set first, extras de-duplicated, bad names refused', () => {
  assert.deepEqual(rootfsPackages([]), [...BASE_PACKAGES]);
  const p = rootfsPackages(['vim-tiny', 'udev', 'g++', 'vim-tiny']);
  assert.deepEqual(p.slice(BASE_PACKAGES.length), ['vim-tiny', 'g++']);
  assert.ok(p.includes('linux-image-cloud-amd64') && p.includes('systemd-sysv'));
  assert.throws(() => rootfsPackages(['ok', '--force']), /invalid Debian package name "--force"/);
  assert.equal(validPackageName('Foo'), false);
  assert.equal(validPackageName('a'), false);
  assert.equal(validPackageName('libc6'), true);
});

test('debootstrap arguments: minbase, includes, suite, target, then the mirror when known', () => {
  assert.deepEqual(debootstrapArguments({ target: '/t', packages: ['a', 'b'], mirror: 'http://m.example.test/debian', cacheDir: '/c' }), [
    '--variant=minbase', '--include=a,b', '--cache-dir=/c', 'bookworm', '/t', 'http://m.example.test/debian',
  ]);
  assert.deepEqual(debootstrapArguments({ target: '/t', packages: ['a'] }), ['--variant=minbase', '--include=a', 'bookworm', '/t']);
});

test('image sizes: whole MiB from 512M to 1T', () => {
  assert.equal(parseImageSize('2G'), 2 * 2 ** 30);
  assert.equal(parseImageSize('1536M'), 1536 * 2 ** 20);
  assert.equal(parseImageSize('1.5GiB'), 1536 * 2 ** 20);
  assert.throws(() => parseImageSize('big'), /invalid image size "big"/);
  assert.throws(() => parseImageSize('1000000'), /whole number of MiB/);
  assert.throws(() => parseImageSize('300M'), /too small: at least 512M/);
  assert.equal(parseImageSize('512M'), 512 * 2 ** 20);
  assert.throws(() => parseImageSize('2T'), /too large/);
  assert.equal(formatImageSize(2 * 2 ** 30), '2G');
  assert.equal(formatImageSize(1536 * 2 ** 20), '1536M');
});

test('cache key: independent of package order, changes with packages and size', () => {
  const a = rootfsCacheKey(['x', 'y'], 2 ** 31);
  assert.match(a, /^bookworm-[0-9a-f]{12}$/);
  assert.equal(rootfsCacheKey(['y', 'x'], 2 ** 31), a);
  assert.notEqual(rootfsCacheKey(['x', 'y', 'z'], 2 ** 31), a);
  assert.notEqual(rootfsCacheKey(['x', 'y'], 2 ** 30), a);
});

test('debootstrap progress: one line per phase, counts at most every interval, other I:/W: lines as is', () => {
  const out: string[] = [];
  let now = 0;
  const p = new DebootstrapProgress((l) => out.push(l), () => now, 1000);
  p.line('I: Retrieving InRelease ');
  p.line('I: Retrieving libc6 ');
  now = 500;
  p.line('I: Retrieving bash ');
  now = 1500;
  p.line('I: Retrieving dash ');
  p.line('I: Validating libc6 1.0');
  p.line('I: Resolving dependencies of required packages...');
  p.line('I: Installing core packages...');
  p.line('W: something odd');
  p.line('dpkg: noise');
  p.line('I: Configuring linux-image-cloud-amd64...');
  assert.deepEqual(out, [
    'debootstrap: retrieving packages (1: InRelease)',
    'debootstrap: retrieving packages (4: dash)',
    'debootstrap: validating packages (1: libc6)',
    'debootstrap: Resolving dependencies of required packages...',
    'debootstrap: Installing core packages...',
    'debootstrap: something odd',
    'debootstrap: configuring packages (1: linux-image-cloud-amd64)',
  ]);
});

test('initramfs-tools takes only the listed modules and compresses with gzip', () => {
  const conf = rootfsFiles().find((f) => f.path === '/etc/initramfs-tools/conf.d/typevisor.conf')!;
  assert.match(conf.content, /^MODULES=list$/m);
  assert.match(conf.content, /^COMPRESS=gzip$/m);
});
