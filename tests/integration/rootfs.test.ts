/**
 * `typevisor assets rootfs`: builds the Debian bookworm image for real
 * (debootstrap, minutes on the first run, then cached in the shared test
 * cache), checks it with e2fsprogs (e2fsck, debugfs) and typevisor's own cpio
 * reader, and boots it under QEMU (the oracle) to a serial login as root.
 * Needs root, debootstrap and e2fsprogs; skips with a reason otherwise, or when
 * TYPEVISOR_TEST_ROOTFS=0.
 */

import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { testCacheDirectory } from '../../src/assets/cache.js';
import { listCpio } from '../../src/assets/cpio.js';
import { hasCommand, missingRequirement } from '../../src/assets/rootfs.js';
import { qemuAvailable, QEMU_BINARY } from '../guests/qemu.js';
import { CLI, runCli } from './harness.js';

const env = { TYPEVISOR_CACHE: testCacheDirectory() };
const BUILD_TIMEOUT_MS = 20 * 60_000;
/** systemd under the soft engine: the interpreter runs the guest far slower than QEMU's TCG. */
const SOFT_BOOT_TIMEOUT_MS = 40 * 60_000;

function skipReason(): string | false {
  if (process.env.TYPEVISOR_TEST_ROOTFS === '0') return 'TYPEVISOR_TEST_ROOTFS=0';
  const missing = missingRequirement({ uid: process.getuid?.() ?? -1, hasCommand });
  if (missing !== undefined) return `cannot build a root filesystem here: ${missing}`;
  if (!hasCommand('debugfs') || !hasCommand('e2fsck')) return 'debugfs and e2fsck (e2fsprogs) are needed to check the image';
  return false;
}

interface Built {
  image: string;
  kernel: string;
  initrd: string;
  cmdline: string;
}

function field(stdout: string, name: string): string {
  const v = new RegExp(`^${name}\\s+(.+)$`, 'm').exec(stdout)?.[1];
  assert.ok(v !== undefined, `no "${name}" line in:\n${stdout}`);
  return v;
}

function debugfs(image: string, request: string): string {
  return execFileSync('debugfs', ['-R', request, image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
}

/** Member names of a Debian initramfs: uncompressed early parts, then a gzip-compressed main archive. */
function initramfsNames(data: Uint8Array): string[] {
  const head = listCpio(data);
  if (head.end >= data.length) return head.names;
  assert.deepEqual([...data.subarray(head.end, head.end + 2)], [0x1f, 0x8b], 'the main initramfs archive is gzip-compressed');
  return [...head.names, ...listCpio(gunzipSync(data.subarray(head.end))).names];
}

describe('typevisor assets rootfs', { skip: skipReason() }, () => {
  let built: Built;

  before(async () => {
    const started = Date.now();
    const r = await runCli(['assets', 'rootfs', '--size', '1G'], { env, timeoutMs: BUILD_TIMEOUT_MS });
    assert.equal(r.timedOut, false, 'the build finished in time');
    assert.equal(r.status, 0, r.stderr);
    built = { image: field(r.stdout, 'image'), kernel: field(r.stdout, 'kernel'), initrd: field(r.stdout, 'initrd'), cmdline: field(r.stdout, 'cmdline') };
    process.stderr.write(`# rootfs build (or cache hit) took ${Math.round((Date.now() - started) / 1000)} s\n`);
  }, { timeout: BUILD_TIMEOUT_MS });

  test('a second run reuses the cached image', async () => {
    const r = await runCli(['assets', 'rootfs', '--size', '1G'], { env, timeoutMs: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /using the root filesystem already built/);
    assert.equal(field(r.stdout, 'image'), built.image);
    assert.match(r.stdout, /^boot it: typevisor run --kernel \S+ --initrd \S+ --disk \S+ --memory 512M --append "root=\/dev\/vda console=ttyS0"$/m);
    const list = await runCli(['assets', 'list'], { env });
    assert.ok(list.stdout.includes(built.image), list.stdout);
  });

  test('the image is a clean 1 GiB ext4 filesystem (e2fsck -fn)', () => {
    execFileSync('e2fsck', ['-fn', built.image], { stdio: 'ignore' });
    assert.match(execFileSync('dumpe2fs', ['-h', built.image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }), /Block count:\s+262144\b/);
    assert.equal(built.cmdline, 'root=/dev/vda console=ttyS0');
  });

  test('fstab, hostname, getty override, enabled units and root password are in the image', () => {
    assert.match(debugfs(built.image, 'cat /etc/fstab'), /^\/dev\/vda\s+\/\s+ext4\s/m);
    assert.equal(debugfs(built.image, 'cat /etc/hostname'), 'typevisor\n');
    assert.match(debugfs(built.image, 'cat /etc/systemd/system/serial-getty@ttyS0.service.d/typevisor.conf'), /^ExecStart=-\/sbin\/agetty .*--noclear/m);
    assert.match(debugfs(built.image, 'stat /etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service'), /Type: symlink/);
    assert.match(debugfs(built.image, 'stat /etc/systemd/system/multi-user.target.wants/systemd-networkd.service'), /Type: symlink/);
    assert.match(debugfs(built.image, 'stat /etc/systemd/system/e2scrub_reap.service'), /Type: symlink/); // masked
    assert.match(debugfs(built.image, 'cat /etc/shadow'), /^root::/m, 'root has an empty password');
    assert.match(debugfs(built.image, 'stat /usr/sbin/init'), /Fast link dest: "\/lib\/systemd\/systemd"/, 'systemd is init');
    assert.match(debugfs(built.image, 'ls /lib/modules'), /cloud-amd64/);
  });

  test('the initramfs carries virtio_pci and virtio_blk (read with our cpio reader)', () => {
    const names = initramfsNames(readFileSync(built.initrd));
    for (const m of ['virtio_pci', 'virtio_blk']) assert.ok(names.some((n) => n.endsWith(`/${m}.ko`)), `${m}.ko in the initramfs`);
    assert.ok(names.includes('init'));
    // MODULES=list: only the listed drivers and their dependencies, not every storage driver.
    assert.ok(!names.some((n) => n.endsWith('/ahci.ko') || n.endsWith('/nvme.ko')), 'no unlisted storage drivers');
  });

  test('QEMU (oracle) boots it from virtio-blk to a serial login; root logs in and powers off', { timeout: 15 * 60_000 }, async (t) => {
    if (!(await qemuAvailable())) return t.skip('qemu-system-x86_64 is not installed (the oracle for this check)');
    const boot = await loginOverSerial(QEMU_BINARY, [
      '-M', 'pc', '-accel', 'tcg', '-m', '512', '-nodefaults', '-no-user-config', '-display', 'none', '-serial', 'stdio', '-no-reboot',
      '-drive', `file=${built.image},if=virtio,format=raw,snapshot=on`,
      '-kernel', built.kernel, '-initrd', built.initrd, '-append', built.cmdline,
    ], 12 * 60_000);
    process.stderr.write(`# QEMU TCG: login prompt after ${boot.loginPromptSeconds} s, powered off after ${boot.totalSeconds} s\n`);
    assertLoggedInAndPoweredOff(boot);
  });

  test('typevisor --engine soft boots it from virtio-blk to multi-user and a serial login; root logs in and powers off', { timeout: SOFT_BOOT_TIMEOUT_MS + 60_000 }, async () => {
    // The guest writes to its root filesystem: boot a sparse copy so the cached image stays pristine.
    const dir = mkdtempSync(join(tmpdir(), 'tv-rootfs-soft-'));
    try {
      const image = join(dir, 'rootfs.ext4');
      execFileSync('cp', ['--sparse=always', built.image, image]);
      const boot = await loginOverSerial(process.execPath, [
        CLI, 'run', '--engine', 'soft', '--memory', '512M', '--disk', image,
        '--kernel', built.kernel, '--initrd', built.initrd, '--append', built.cmdline,
      ], SOFT_BOOT_TIMEOUT_MS);
      process.stderr.write(`# typevisor soft: login prompt after ${boot.loginPromptSeconds} s, powered off after ${boot.totalSeconds} s\n`);
      assertLoggedInAndPoweredOff(boot);
      execFileSync('e2fsck', ['-fn', image], { stdio: 'ignore' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** A serial-console session: everything the guest printed, the exit status and when the login prompt came. */
interface SerialLogin {
  output: string;
  status: number | null;
  loginPromptSeconds: number;
  totalSeconds: number;
}

function assertLoggedInAndPoweredOff(boot: SerialLogin): void {
  assert.match(boot.output, /typevisor login:/);
  assert.match(boot.output, /root@typevisor:~#/);
  assert.match(boot.output, /MARK uid=0\(root\) \/dev\/vda on \/ type ext4 \(rw/);
  assert.match(boot.output, /Reached target.*Multi-User System|multi-user\.target/);
  assert.match(boot.output, /^running\r?$/m, 'systemctl is-system-running: every unit started');
  assert.equal(boot.status, 0);
}

/**
 * Runs a VMM whose stdio is the guest's serial console, logs in as root on
 * ttyS0, checks who and what `/` is, waits for systemd to finish starting and
 * powers off.
 */
function loginOverSerial(command: string, args: readonly string[], timeoutMs: number): Promise<SerialLogin> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    let step = 0;
    let loginPromptSeconds = -1;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} did not power off within ${timeoutMs} ms (step ${step}); output:\n${output.slice(-4000)}`));
    }, timeoutMs);
    child.stdout.setEncoding('latin1').on('data', (d: string) => {
      output += d;
      if (step === 0 && output.includes('typevisor login: ')) {
        step = 1;
        loginPromptSeconds = Math.round((Date.now() - started) / 1000);
        child.stdin.write('root\n');
      } else if (step === 1 && output.includes('root@typevisor:~#')) {
        step = 2;
        child.stdin.write('echo MARK uid=$(id -u)\\(root\\) $(mount | grep " on / "); systemctl is-system-running --wait; poweroff\n');
      }
    });
    child.stdin.on('error', () => undefined);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ output, status, loginPromptSeconds, totalSeconds: Math.round((Date.now() - started) / 1000) });
    });
  });
}

describe('typevisor assets rootfs refuses with one line', () => {
  test('a bad size is a usage error', async () => {
    const r = await runCli(['assets', 'rootfs', '--size', '10M']);
    assert.equal(r.status, 2);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, 'typevisor: image size 10M is too small: at least 512M is needed\n');
  });

  test('a user other than root is told to use sudo', { skip: process.getuid?.() === 0 && hasCommand('setpriv') ? false : 'needs root and setpriv to run the CLI as another user' }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tv-rootfs-user-'));
    try {
      const r = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve, reject) => {
        const child = spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI, 'assets', 'rootfs', '--output', join(dir, 'out')], {
          env: { ...process.env, TYPEVISOR_CACHE: dir }, stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
        child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
        child.on('error', reject);
        child.on('close', (status) => resolve({ status, stdout, stderr }));
      });
      assert.equal(r.status, 2, r.stderr);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /^typevisor: building a root filesystem needs root \(.*\): run it with sudo\n$/);
      assert.equal(existsSync(join(dir, 'out')), false, 'nothing was created');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
