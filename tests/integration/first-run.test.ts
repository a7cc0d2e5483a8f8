/**
 * First run, as a new user does it: `typevisor run` with no arguments and
 * piped stdin. The default Debian guest (fetched by the test setup into the
 * test cache) must boot on the engine `auto` picks — soft on this machine,
 * whose KVM is nested and emulated — answer a command typed into stdin, and
 * power off with `poweroff` (through busybox init), ending with status 0.
 */

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { testCacheDirectory } from '../../src/assets/cache.js';
import { hasApt } from '../../src/assets/debian-packages.js';
import { READY_BANNER } from '../../src/assets/initramfs.js';
import { runCli } from './harness.js';

describe('first run: typevisor run with no arguments', { skip: hasApt() ? false : 'this host has no apt-get to fetch the default guest' }, () => {
  test('boots the default guest, answers piped commands, and poweroff ends it with status 0', { timeout: 1_000_000 }, async () => {
    const r = await runCli(['run'], {
      env: { TYPEVISOR_CACHE: testCacheDirectory() },
      stdinAfter: READY_BANNER,
      stdin: 'echo first-run-$((40 + 2))\npoweroff\n',
      timeoutMs: 900_000,
    });
    assert.equal(r.timedOut, false, `no power-off within the time limit; last output:\n${r.stdout.slice(-2000)}\n${r.stderr}`);
    assert.match(r.stderr, /typevisor: booting the default Debian guest \(kernel 6\.1\.\d+-\d+-cloud-amd64, 256 MiB, 1 vCPU\)/);
    assert.match(r.stderr, /typevisor: engine: (soft|kvm) \(auto chose (soft|kvm): fastest measured \(.*\)/);
    assert.match(r.stderr, /fastest measured \(.*soft [\d.]+ (ns|µs)\/instruction/);
    const kvm = /kvm ([\d.]+) (ns|µs)\/instruction/.exec(r.stderr);
    if (kvm !== null && Number(kvm[1]) * (kvm[2] === 'µs' ? 1000 : 1) > 20) {
      assert.match(r.stderr, /auto chose soft: .*kvm is not running guests at hardware speed here/, 'an emulated KVM must lose to soft');
    }
    assert.match(r.stderr, /typevisor: guest is up after \d+ ms/);
    assert.match(r.stdout, /^first-run-42\r?$/m, 'the shell evaluated the piped command');
    assert.match(r.stdout, /reboot: Power down/);
    assert.equal(r.status, 0, r.stderr);
  });
});
