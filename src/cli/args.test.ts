import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCommandLine, UsageError } from './args.js';

test('run with every option', () => {
  const cmd = parseCommandLine(['run', '--kernel', 'k', '--initrd', 'i', '--append', 'console=ttyS0 quiet', '--memory', '512M', '--cpus', '2', '--engine', 'kvm', '--debug-exit', '--no-reboot',
    '--disk', 'a.img', '--disk', 'b.img,ro,id=data-1', '--rng', '--net', 'tap=tap0', '--net', 'tap=tap1,mac=02:AA:bb:cc:dd:ee',
    '--vsock', 'cid=3,uds=/tmp/v.sock']);
  assert.equal(cmd.kind, 'run');
  assert.ok(cmd.kind === 'run');
  assert.deepEqual(cmd.config, {
    kernelPath: 'k', initrdPath: 'i', cmdline: 'console=ttyS0 quiet', memoryBytes: 512 * 1024 * 1024,
    cpus: 2, engine: 'kvm', debugExit: true, noReboot: true,
    disks: [{ path: 'a.img', readOnly: false }, { path: 'b.img', readOnly: true, id: 'data-1' }], rng: true,
    nets: [{ tap: 'tap0' }, { tap: 'tap1', mac: '02:aa:bb:cc:dd:ee' }], vsock: { cid: 3, udsPath: '/tmp/v.sock' },
  });
});

test('defaults: 256M, 1 CPU, auto engine', () => {
  const cmd = parseCommandLine(['run', '--kernel=k']);
  assert.ok(cmd.kind === 'run');
  assert.equal(cmd.config.memoryBytes, 256 * 1024 * 1024);
  assert.equal(cmd.config.cpus, 1);
  assert.equal(cmd.config.engine, 'auto');
  assert.equal(cmd.config.cmdline, undefined);
});

test('run without --kernel means the default guest', () => {
  const cmd = parseCommandLine(['run']);
  assert.ok(cmd.kind === 'run');
  assert.equal(cmd.config.kernelPath, undefined);
});

test('assets actions', () => {
  assert.deepEqual(parseCommandLine(['assets', 'prepare']), { kind: 'assets', action: 'prepare' });
  assert.deepEqual(parseCommandLine(['assets']), { kind: 'assets', action: 'list' });
  assert.throws(() => parseCommandLine(['assets', 'nuke']), /unknown assets action "nuke"/);
  assert.throws(() => parseCommandLine(['assets', 'list', 'x']), /unexpected argument "x"/);
});

test('bad input gives one-line usage errors', () => {
  const cases: [string[], RegExp][] = [
    [['run', '--kernel', 'k', '--cpus', '0'], /out of range/],
    [['run', '--kernel', 'k', '--cpus', '1000'], /out of range/],
    [['run', '--kernel', 'k', '--memory', 'big'], /invalid memory size/],
    [['run', '--kernel', 'k', '--memory', '1M'], /too small/],
    [['run', '--kernel', 'k', '--memory', '100T'], /too large/],
    [['run', '--kernel', 'k', '--engine', 'tcg'], /unknown engine/],
    [['run', '--kernel', 'k', '--bogus'], /bogus/],
    [['launch'], /unknown command/],
    [['run', '--kernel', 'k', '--disk', 'a.img,rw'], /^--disk: unknown option 'rw'/],
    [['run', '--kernel', 'k', '--disk', ',ro'], /--disk: missing file path/],
    [['run', '--kernel', 'k', '--disk', 'a,id=' + 'x'.repeat(21)], /--disk: id/],
    [['run', '--kernel', 'k', '--disk', 'a,id=x', '--disk', 'b,id=x'], /used twice/],
    [['run', '--kernel', 'k', '--net', 'tap0'], /^--net: unknown option 'tap0'/],
    [['run', '--kernel', 'k', '--net', 'mac=02:00:00:00:00:01'], /^--net: missing tap=NAME/],
    [['run', '--kernel', 'k', '--net', 'tap=a-very-long-tap-name'], /^--net: tap name/],
    [['run', '--kernel', 'k', '--net', 'tap=t0,mac=01:00:00:00:00:01'], /multicast/],
    [['run', '--kernel', 'k', '--net', 'tap=t0,mac=zz'], /is not XX:XX/],
    [['run', '--kernel', 'k', '--net', 'tap=t0', '--net', 'tap=t0'], /tap 't0' is used twice/],
    [['run', '--kernel', 'k', '--vsock', 'cid=2,uds=/tmp/x'], /^--vsock: cid '2'/],
    [['run', '--kernel', 'k', '--vsock', 'cid=3'], /needs both/],
    [['run', '--kernel', 'k', '--vsock', 'cid=3,uds=/tmp/x,foo'], /unknown option 'foo'/],
    [['run', '--kernel', 'k', '--vsock', `cid=3,uds=/${'x'.repeat(100)}`], /too long/],
  ];
  for (const [argv, re] of cases) {
    assert.throws(() => parseCommandLine(argv), (e: Error) => e instanceof UsageError && re.test(e.message) && !e.message.includes('\n'), argv.join(' '));
  }
});

test('help and version', () => {
  assert.equal(parseCommandLine([]).kind, 'help');
  assert.equal(parseCommandLine(['--version']).kind, 'version');
  assert.equal(parseCommandLine(['run', '--help']).kind, 'help');
});
