/**
 * CLI behaviour on bad input: each case must print exactly one clear line on
 * stderr, exit non-zero, and leave nothing running (the child exits by itself).
 */

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, multibootFlatImage, runCli } from './harness.js';

const dir = mkdtempSync(join(tmpdir(), 'tv-cli-'));
const junk = join(dir, 'junk.bin');
writeFileSync(junk, new Uint8Array(4096).map((_, i) => (i * 31) & 0xff));
const empty = join(dir, 'empty');
writeFileSync(empty, '');
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

async function expectOneLineError(args: string[], pattern: RegExp, env?: NodeJS.ProcessEnv): Promise<void> {
  const r = await runCli(args, { timeoutMs: 30_000, ...(env ? { env } : {}) });
  assert.equal(r.timedOut, false, 'the CLI must exit by itself');
  assert.notEqual(r.status, 0);
  assert.equal(r.stdout, '');
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `expected one line, got:\n${r.stderr}`);
  assert.match(lines[0], /^typevisor: /);
  assert.match(lines[0], pattern);
}

describe('typevisor run rejects bad input with one line and a non-zero status', () => {
  const soft = ['--engine', 'soft'];
  test('missing kernel file', () => expectOneLineError(['run', ...soft, '--kernel', join(dir, 'nope')], /cannot read kernel ".*nope": no such file/));
  test('kernel is a directory', () => expectOneLineError(['run', ...soft, '--kernel', dir], /is a directory/));
  test('kernel is empty', () => expectOneLineError(['run', ...soft, '--kernel', empty], /is empty/));
  test('kernel is not a kernel', () => expectOneLineError(['run', ...soft, '--kernel', junk], /junk\.bin.*not a/));
  test('missing initrd', () => expectOneLineError(['run', ...soft, '--kernel', junk, '--initrd', join(dir, 'nope')], /cannot read|not a/));
  test('memory malformed', () => expectOneLineError(['run', '--kernel', junk, '--memory', 'lots'], /invalid memory size "lots"/));
  test('memory too small', () => expectOneLineError(['run', '--kernel', junk, '--memory', '1M'], /too small/));
  test('memory too large for the host', () => expectOneLineError(['run', '--kernel', junk, '--memory', '60G'], /more than this host has|too large/));
  test('--cpus 0', () => expectOneLineError(['run', '--kernel', junk, '--cpus', '0'], /CPU count 0 is out of range/));
  test('--cpus 1000', () => expectOneLineError(['run', '--kernel', junk, '--cpus', '1000'], /CPU count 1000 is out of range/));
  test('unknown flag', () => expectOneLineError(['run', '--kernel', junk, '--frobnicate'], /frobnicate/));
});

describe('help and version', () => {
  test('--help prints usage and exits 0', async () => {
    const r = await runCli(['--help']);
    assert.equal(r.status, 0);
    assert.match(r.stdout, /typevisor run \[--kernel FILE\]/);
  });
  test('--version prints the package version', async () => {
    const r = await runCli(['--version']);
    assert.equal(r.status, 0);
    assert.match(r.stdout, /^typevisor \d+\.\d+\.\d+\n$/);
  });
});

describe('KVM availability errors are one line, non-zero, and leave nothing running', () => {
  test('no /dev/kvm', async (t) => {
    const guest = join(dir, 'mb.elf');
    writeFileSync(guest, minimalMultiboot());
    await expectOneLineError(['run', '--engine', 'kvm', '--kernel', guest], /kvm engine unavailable: \/nonexistent\/kvm does not exist/, {
      TYPEVISOR_KVM_DEVICE: '/nonexistent/kvm',
    });
    t.diagnostic('TYPEVISOR_KVM_DEVICE points the kvm engine at a device path that does not exist');
  });

  test('no permission to open /dev/kvm, or to read the kernel', { skip: permissionSkipReason() }, async () => {
    const open = mkdtempSync(join(tmpdir(), 'tv-cli-open-'));
    try {
      chmodSync(open, 0o755);
      const guest = join(open, 'mb.elf');
      writeFileSync(guest, minimalMultiboot(), { mode: 0o644 });
      const r = await runAs('nobody', ['run', '--engine', 'kvm', '--kernel', guest]);
      assert.notEqual(r.status, 0);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, /^typevisor: kvm engine unavailable: permission denied opening \/dev\/kvm/);
      // The test's private directory (mode 0700) is unreadable to nobody: an unreadable kernel.
      const hidden = join(dir, 'mb-hidden.elf');
      writeFileSync(hidden, minimalMultiboot());
      const u = await runAs('nobody', ['run', '--engine', 'soft', '--kernel', hidden]);
      assert.equal(u.status, 2);
      assert.match(u.stderr, /^typevisor: cannot read kernel ".*mb-hidden\.elf": permission denied\n$/);
    } finally {
      rmSync(open, { recursive: true, force: true });
    }
  });
});

describe('the console on a real terminal', () => {
  test('raw mode: keys reach the guest unbuffered, and Ctrl-A x quits with status 0', { skip: scriptSkipReason() }, async () => {
    const { guestsForCli } = await import('./guest-paths.js');
    const guests = await guestsForCli();
    // `script` gives the CLI a pseudo-terminal; the guest echoes keys upper-cased as they arrive.
    const r = await runInPty(`${process.execPath} ${CLI} run --engine soft --kernel ${guests['serial-echo']} --append timeout=60000`, [
      { after: 'type a line', send: 'abc' },
      { after: 'ABC', send: '\x01x' },
    ]);
    assert.equal(r.timedOut, false, r.output);
    assert.match(r.output, /console attached; press Ctrl-A x to quit/);
    assert.match(r.output, /ABC/, 'characters are delivered before any newline: raw mode');
    assert.doesNotMatch(r.output, /got: /, 'the line was never completed: Ctrl-A x ended the VM first');
    assert.equal(r.status, 0);
  });
});

/** A tiny multiboot kernel that halts (the CLI only needs to accept it). */
function minimalMultiboot(): Uint8Array {
  return multibootFlatImage([0xf4]);
}

function permissionSkipReason(): string | false {
  if (process.getuid?.() !== 0) return 'needs root to run the CLI as the unprivileged user nobody';
  if (!existsSync('/usr/sbin/runuser') && !existsSync('/sbin/runuser')) return 'runuser is not installed';
  return false;
}

function runAs(user: string, args: string[]): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('runuser', ['-u', user, '--', process.execPath, CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (status) => resolve({ status, stderr }));
  });
}

function scriptSkipReason(): string | false {
  return existsSync('/usr/bin/script') ? false : 'util-linux `script` is not installed (it provides the pseudo-terminal)';
}

/** Runs `command` on a pseudo-terminal, typing each `send` once the output contains its `after`. */
function runInPty(command: string, steps: { after: string; send: string }[], timeoutMs = 60_000): Promise<{ output: string; status: number | null; timedOut: boolean }> {
  return new Promise((resolve) => {
    const child = spawn('script', ['-q', '-e', '-c', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    let step = 0;
    let timedOut = false;
    const onData = (d: Buffer): void => {
      output += d.toString('latin1');
      while (step < steps.length && output.includes(steps[step].after)) child.stdin.write(steps[step++].send);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ output, status, timedOut });
    });
  });
}
