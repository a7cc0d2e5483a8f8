/**
 * The default Debian guest: `typevisor assets` fetches the stock kernel and
 * busybox with apt and builds the initramfs; QEMU (the oracle) proves the
 * result boots to a shell that answers commands and powers off. Skips with a
 * reason on hosts without apt or QEMU.
 */

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hasApt } from '../../src/assets/debian-packages.js';
import { READY_BANNER } from '../../src/assets/initramfs.js';
import { testCacheDirectory } from '../../src/assets/cache.js';
import { qemuAvailable, QEMU_BINARY } from '../guests/qemu.js';
import { runCli } from './harness.js';

const TEST_CACHE = testCacheDirectory();

/** Boots kernel+initrd under QEMU TCG, types `commands` once the guest is up, resolves with output and status. */
function bootUnderQemu(kernel: string, initrd: string, commands: string, timeoutMs = 180_000): Promise<{ output: string; status: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(QEMU_BINARY, [
      // -M pc rather than microvm: on this loaded 2-core host microvm's guest often cannot calibrate its TSC
      // (no PIT/HPET reference) and stalls, while the pc machine boots reliably.
      '-M', 'pc', '-accel', 'tcg', '-m', '256', '-nodefaults', '-no-user-config', '-display', 'none',
      '-serial', 'stdio', '-no-reboot', '-kernel', kernel, '-initrd', initrd, '-append', 'console=ttyS0',
    ], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    let typed = false;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`QEMU did not power off within ${timeoutMs} ms; output:\n${output.slice(-3000)}`));
    }, timeoutMs);
    child.stdout.setEncoding('latin1').on('data', (d: string) => {
      output += d;
      if (!typed && output.includes(READY_BANNER)) {
        typed = true;
        child.stdin.write(commands);
      }
    });
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ output, status });
    });
  });
}

describe('default guest assets', { skip: hasApt() ? false : 'this host has no apt-get, so the Debian guest cannot be fetched' }, () => {
  const env = { TYPEVISOR_CACHE: TEST_CACHE };

  test('assets prepare fetches the Debian kernel and builds the initramfs; list shows it', { timeout: 600_000 }, async () => {
    const r = await runCli(['assets', 'prepare'], { env, timeoutMs: 600_000 });
    assert.equal(r.status, 0, r.stderr);
    const kernel = /^kernel\s+(\S+)$/m.exec(r.stdout)?.[1];
    const initrd = /^initrd\s+(\S+)$/m.exec(r.stdout)?.[1];
    assert.ok(kernel !== undefined && existsSync(kernel), r.stdout);
    assert.ok(initrd !== undefined && statSync(initrd).size > 1_000_000, 'the initramfs holds busybox and modules');
    assert.match(r.stderr, /resolving linux-image-cloud-amd64/);
    const list = await runCli(['assets', 'list'], { env });
    assert.match(list.stdout, /^6\.\d+\.\d+-\d+-cloud-amd64\s/m);
  });

  test('the default guest boots to a shell under QEMU (oracle): commands answered, poweroff ends it', { timeout: 600_000 }, async (t) => {
    if (!(await qemuAvailable())) return t.skip('qemu-system-x86_64 is not installed (the oracle for this check)');
    const r = await runCli(['assets', 'prepare'], { env, timeoutMs: 600_000 });
    assert.equal(r.status, 0, r.stderr);
    const kernel = /^kernel\s+(\S+)$/m.exec(r.stdout)![1];
    const initrd = /^initrd\s+(\S+)$/m.exec(r.stdout)![1];
    const boot = await bootUnderQemu(kernel, initrd, 'uname -sr\necho sum=$(echo typevisor | sha256sum)\nls /sys/bus/virtio/drivers\npoweroff\n');
    assert.match(boot.output, /Linux 6\.\d+\.\d+-\d+-cloud-amd64/);
    // sha256 of "typevisor\n", as the host computes it.
    assert.match(boot.output, /sum=8421e9eef9ae8edf2c512fa055ea936b4c44fe7ada4be06b3d9dd56354808032/);
    assert.match(boot.output, /virtio_blk/, 'the virtio modules were loaded');
    assert.match(boot.output, /reboot: Power down/);
    assert.equal(boot.status, 0);
  });

  test('without apt-get, run and assets explain how to pass --kernel and --initrd', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tv-noapt-'));
    try {
      const r = await runCli(['assets', 'prepare'], { env: { TYPEVISOR_CACHE: dir, PATH: '/nonexistent' } });
      assert.equal(r.status, 2);
      assert.match(r.stderr, /^typevisor: this host has no apt-get.*--kernel BZIMAGE --initrd INITRAMFS/);
      assert.equal(r.stderr.trim().split('\n').length, 1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
