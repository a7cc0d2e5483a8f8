/**
 * virtio-vsock and virtio-net with a real guest: the Debian kernel and the
 * busybox initramfs under the soft engine. vsock carries an echo both ways
 * (a host client through Firecracker's UDS protocol to a guest listener, and
 * a guest client to a host listener on `<uds>_<port>`), using a small static
 * guest program (tests/guests/linux-user/vsock-echo.c) appended to the
 * initramfs. virtio-net: the guest configures eth0 on a tap whose host side
 * lives in a private network namespace, and pings the host (and is pinged).
 */

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testCacheDirectory } from '../../src/assets/cache.js';
import { listDefaultGuests, type DefaultGuest } from '../../src/assets/default-guest.js';
import { appendToInitramfs, READY_BANNER } from '../../src/assets/initramfs.js';
import { buildLinuxUserProgram } from '../guests/linux-user.js';
import { LinuxSession } from './linux-session.js';

const BOOT_TIMEOUT_MS = 900_000;
const STEP_TIMEOUT_MS = 120_000;

let guest: DefaultGuest | undefined;
let dir = '';
let initrd = '';
let setupProblem: string | undefined;

before(async () => {
  process.env.TYPEVISOR_CACHE = testCacheDirectory();
  guest = listDefaultGuests()[0];
  dir = mkdtempSync(join(tmpdir(), 'tv-vsock-net-'));
  if (guest === undefined) {
    setupProblem = 'the Debian guest is not in the test cache (npm test fetches it; needs apt-get)';
    return;
  }
  try {
    const tool = readFileSync(await buildLinuxUserProgram('vsock-echo'));
    initrd = join(dir, 'initramfs.cpio');
    writeFileSync(initrd, appendToInitramfs(readFileSync(guest.initrdPath), [{ path: 'bin/vsock-echo', data: tool }]));
  } catch (e) {
    setupProblem = `the guest vsock tool could not be built: ${(e as Error).message}`;
  }
});

after(() => {
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

function bootArgs(extra: readonly string[]): string[] {
  return ['--engine', 'soft', '--kernel', guest!.kernelPath, '--initrd', initrd, '--append', 'console=ttyS0', ...extra];
}

/** Connects to the VMM's vsock socket, does the CONNECT handshake, sends `message`, half-closes, and returns the OK line and everything read back. */
function hostToGuestEcho(uds: string, port: number, message: string): Promise<{ okLine: string; echoed: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(uds);
    let received = '';
    let okLine: string | undefined;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`host → guest echo timed out; got ${JSON.stringify(received)}`));
    }, STEP_TIMEOUT_MS);
    socket.setEncoding('latin1');
    socket.on('connect', () => socket.write(`CONNECT ${port}\n`));
    socket.on('data', (chunk: string) => {
      received += chunk;
      if (okLine === undefined) {
        const nl = received.indexOf('\n');
        if (nl < 0) return;
        okLine = received.slice(0, nl);
        received = received.slice(nl + 1);
        socket.end(message);
      }
    });
    socket.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      if (okLine === undefined) reject(new Error(`the VMM closed the connection before OK; got ${JSON.stringify(received)}`));
      else resolve({ okLine, echoed: received });
    });
  });
}

function sh(...args: string[]): string {
  return execFileSync(args[0], args.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** The host's ping command: iputils ping, else busybox's applet. */
function hostPinger(): string[] | undefined {
  for (const candidate of [['ping'], ['busybox', 'ping']]) {
    try {
      execFileSync(candidate[0], [...candidate.slice(1), '-c', '1', '-W', '1', '127.0.0.1'], { stdio: 'ignore' });
      return candidate;
    } catch {
      // not there, or no permission
    }
  }
  return undefined;
}

function netnsSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root to create a network namespace and a tap';
  try {
    sh('ip', '-V');
  } catch {
    return 'needs iproute2 (`ip`) to create a network namespace and a tap';
  }
  return undefined;
}

describe('virtio-vsock and virtio-net under a Linux guest (soft engine)', () => {
  test('vsock: host → guest and guest → host echo through the UDS', { timeout: BOOT_TIMEOUT_MS + 4 * STEP_TIMEOUT_MS }, async (t) => {
    if (setupProblem !== undefined) return t.skip(setupProblem);
    const uds = join(dir, 'v.sock');
    const hostPort = 5000;
    const received: string[] = [];
    const server: Server = createServer((socket) => {
      socket.on('data', (d) => {
        received.push(d.toString('latin1'));
        socket.write(d);
      });
      socket.on('end', () => socket.end());
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(`${uds}_${hostPort}`, resolve));
    const vm = LinuxSession.typevisor(bootArgs(['--vsock', `cid=3,uds=${uds}`]));
    try {
      await vm.waitFor(new RegExp(READY_BANNER), BOOT_TIMEOUT_MS);
      // (a) host → guest: a guest listener on port 1234 echoes what the host sends through the UDS.
      let from = vm.type('vsock-echo listen 1234 &');
      await vm.waitFor(/LISTENING 1234/, STEP_TIMEOUT_MS, from);
      const message = 'hello from the host over vsock';
      const { okLine, echoed } = await hostToGuestEcho(uds, 1234, message);
      assert.match(okLine, /^OK \d+$/, 'the handshake answers OK <host port>');
      assert.ok(Number(okLine.slice(3)) >= 2 ** 30, 'host ports are allocated from 2^30 up');
      assert.equal(echoed, message, 'the guest echoed every byte back');
      await vm.waitFor(new RegExp(`ECHOED ${message.length}`), STEP_TIMEOUT_MS, from);
      // (b) guest → host: a guest client connects to CID 2 port 5000, which the VMM forwards to `${uds}_5000`.
      from = vm.type(`vsock-echo connect 2 ${hostPort} guest-says-hello`);
      await vm.waitFor(/ECHO guest-says-hello\r?\n/, STEP_TIMEOUT_MS, from);
      assert.equal(received.join(''), 'guest-says-hello', 'the host listener got exactly what the guest sent');
      // A guest connection to a host port nobody listens on is refused (the VMM answers RST).
      from = vm.type('vsock-echo connect 2 5999 nobody-there');
      await vm.waitFor(/vsock-echo: connect: Connection (reset by peer|refused)/, STEP_TIMEOUT_MS, from);
      vm.type('poweroff -f');
      const end = await vm.end(STEP_TIMEOUT_MS);
      assert.equal(end.status, 0, 'the guest powered off cleanly');
    } finally {
      vm.kill();
      server.close();
    }
  });

  test('virtio-net: the guest pings the host side of a tap in a network namespace, and the host pings back', { timeout: BOOT_TIMEOUT_MS + 4 * STEP_TIMEOUT_MS }, async (t) => {
    if (setupProblem !== undefined) return t.skip(setupProblem);
    const netnsProblem = netnsSkipReason();
    if (netnsProblem !== undefined) return t.skip(netnsProblem);
    const ns = `tvping${process.pid}`;
    const tap = `tvp${process.pid % 100000}`;
    try {
      sh('ip', 'netns', 'add', ns);
    } catch (e) {
      return t.skip(`cannot create a network namespace here: ${(e as Error).message.split('\n')[0]}`);
    }
    let vm: LinuxSession | undefined;
    try {
      // A persistent tap inside the namespace with the host address; the VMM, run in the namespace, attaches to it.
      sh('ip', 'netns', 'exec', ns, 'ip', 'tuntap', 'add', 'dev', tap, 'mode', 'tap');
      sh('ip', 'netns', 'exec', ns, 'ip', 'addr', 'add', '10.215.0.1/24', 'dev', tap);
      sh('ip', 'netns', 'exec', ns, 'ip', 'link', 'set', tap, 'up');
      vm = LinuxSession.typevisor(bootArgs(['--net', `tap=${tap}`]), ['ip', 'netns', 'exec', ns]);
      await vm.waitFor(new RegExp(READY_BANNER), BOOT_TIMEOUT_MS);
      let from = vm.type('ip link set eth0 up && ip addr add 10.215.0.2/24 dev eth0 && ping -c 3 -W 5 10.215.0.1; echo "PING-STATUS $?"');
      const status = await vm.waitFor(/PING-STATUS (\d+)/, STEP_TIMEOUT_MS, from);
      const pingOutput = vm.output.slice(from);
      assert.match(pingOutput, /3 packets transmitted, 3 packets received, 0% packet loss/, pingOutput);
      assert.equal(status[1], '0');
      // And the other way: the host pings the guest (iputils ping, or busybox's).
      const pinger = hostPinger();
      if (pinger === undefined) t.diagnostic('no ping on the host (scripts/install-test-deps.sh installs iputils-ping): host → guest ping not checked');
      else {
        const hostPing = sh('ip', 'netns', 'exec', ns, ...pinger, '-c', '3', '-W', '5', '10.215.0.2');
        assert.match(hostPing, /3 packets transmitted, 3 (packets )?received, 0% packet loss/);
      }
      from = vm.type('cat /sys/class/net/eth0/address; ip -s link show eth0 | grep -A1 RX');
      await vm.waitFor(/RX/, STEP_TIMEOUT_MS, from);
      vm.type('poweroff -f');
      const end = await vm.end(STEP_TIMEOUT_MS);
      assert.equal(end.status, 0, 'the guest powered off cleanly');
    } finally {
      vm?.kill();
      try {
        sh('ip', 'netns', 'exec', ns, 'ip', 'link', 'del', tap);
      } catch {
        // the tap may not have been created
      }
      sh('ip', 'netns', 'del', ns);
    }
  });
});
