/**
 * Tests for the test guests themselves: the build is idempotent, the image
 * headers (multiboot, a.out kludge, bzImage, ELF64) are what loaders expect,
 * and every guest passes under the QEMU oracle when QEMU is installed.
 */
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { test } from 'node:test';
import { buildGuests } from './build.js';
import { qemuAvailable, runUnderQemu } from './qemu.js';

const built = await buildGuests().catch((error: unknown) => (error instanceof Error ? error : new Error(String(error))));
const buildSkip = built instanceof Error ? built.message : false;
const guests: Record<string, string> = built instanceof Error ? {} : built;
const qemuSkip = buildSkip || ((await qemuAvailable()) ? false : 'qemu-system-x86_64 not installed');

/** Finds the multiboot v1 header in the first 8 KiB: returns its file offset and fields. */
function multibootHeader(image: Buffer): { offset: number; flags: number; fields: number[] } {
  for (let off = 0; off + 12 <= Math.min(image.length, 8192); off += 4) {
    if (image.readUInt32LE(off) !== 0x1badb002) continue;
    const flags = image.readUInt32LE(off + 4);
    const checksum = image.readUInt32LE(off + 8);
    assert.equal((0x1badb002 + flags + checksum) >>> 0, 0, 'multiboot checksum');
    const fields = [12, 16, 20, 24, 28].map((d) => (off + d + 4 <= image.length ? image.readUInt32LE(off + d) : 0));
    return { offset: off, flags, fields };
  }
  throw new Error('no multiboot header in the first 8 KiB');
}

void test('build is idempotent: a second call rebuilds nothing', { skip: buildSkip }, async () => {
  const before = (await stat(guests['smp'])).mtimeMs;
  const again = await buildGuests();
  assert.deepEqual(again, guests);
  assert.equal((await stat(guests['smp'])).mtimeMs, before);
});

void test('multiboot guests are ELF32 with a plain multiboot header', { skip: buildSkip }, async () => {
  for (const name of ['serial-echo', 'multiboot-info', 'smp', 'interrupts', 'interrupts64', 'reboot', 'exit-status', 'pio-loop', 'cpu-loop']) {
    const image = await readFile(guests[name]);
    assert.equal(image.readUInt32BE(0), 0x7f454c46, `${name} is ELF`);
    assert.equal(image[4], 1, `${name} is ELF32`);
    assert.equal(image.readUInt16LE(18), 3, `${name} is i386`);
    const header = multibootHeader(image);
    assert.equal(header.flags, 0x3, `${name} multiboot flags`);
  }
});

void test('multiboot-info-aout is a flat image whose a.out-kludge addresses are consistent', { skip: buildSkip }, async () => {
  const image = await readFile(guests['multiboot-info-aout']);
  const { offset, flags, fields } = multibootHeader(image);
  const [headerAddr, loadAddr, loadEndAddr, bssEndAddr, entryAddr] = fields;
  assert.equal(flags, 0x10003);
  assert.equal(loadAddr, 0x100000);
  assert.equal(headerAddr - loadAddr, offset, 'header_addr - load_addr equals the header file offset');
  assert.equal(loadEndAddr - loadAddr, image.length, 'load_end_addr covers exactly the file');
  assert.ok(bssEndAddr >= loadEndAddr);
  assert.ok(entryAddr >= loadAddr && entryAddr < loadEndAddr);
});

void test('linux64-zeropage bzImage has a protocol 2.15 setup header and a 64-bit entry at +0x200', { skip: buildSkip }, async () => {
  const bz = await readFile(guests['linux64-zeropage-bzimage']);
  const elf = await readFile(guests['linux64-zeropage-vmlinux']);
  assert.equal(bz.readUInt16LE(0x1fe), 0xaa55, 'boot_flag');
  assert.equal(bz.toString('latin1', 0x202, 0x206), 'HdrS');
  assert.equal(bz.readUInt16LE(0x206), 0x020f, 'version');
  assert.equal(bz[0x200], 0xeb, 'jump at 0x200');
  assert.equal(0x202 + bz[0x201], 0x26c, 'setup header ends at 0x26c');
  const setupSects = bz[0x1f1];
  const payloadOffset = (setupSects + 1) * 512;
  const payload = bz.subarray(payloadOffset);
  assert.equal(bz.readUInt32LE(0x1f4), Math.ceil(payload.length / 16), 'syssize');
  assert.equal(bz[0x211] & 0x01, 0x01, 'loadflags LOADED_HIGH');
  assert.equal(bz.readUInt16LE(0x236) & 0x01, 0x01, 'xloadflags XLF_KERNEL_64');
  assert.equal(bz.readBigUInt64LE(0x258), 0x100000n, 'pref_address');
  assert.ok(bz.readUInt32LE(0x260) >= payload.length, 'init_size covers the payload');
  assert.ok(bz.readUInt32LE(0x238) >= 255, 'cmdline_size');

  // ELF64 vmlinux: entry = 64-bit entry, loaded at physical 1 MiB, same bytes as the bzImage payload.
  assert.equal(elf[4], 2, 'ELF64');
  assert.equal(elf.readUInt16LE(18), 62, 'x86-64');
  assert.equal(elf.readBigUInt64LE(24), 0x100200n, 'e_entry = startup_64 at load address + 0x200');
  const phoff = Number(elf.readBigUInt64LE(32));
  const phentsize = elf.readUInt16LE(54);
  const loads = [];
  for (let i = 0; i < elf.readUInt16LE(56); i++) {
    const ph = phoff + i * phentsize;
    if (elf.readUInt32LE(ph) === 1) {
      loads.push({ offset: Number(elf.readBigUInt64LE(ph + 8)), paddr: Number(elf.readBigUInt64LE(ph + 24)), filesz: Number(elf.readBigUInt64LE(ph + 32)) });
    }
  }
  loads.sort((a, b) => a.paddr - b.paddr);
  assert.equal(loads[0].paddr, 0x100000, 'first PT_LOAD at physical 1 MiB');
  for (const l of loads) {
    const inPayload = payload.subarray(l.paddr - 0x100000, l.paddr - 0x100000 + l.filesz);
    assert.ok(inPayload.equals(elf.subarray(l.offset, l.offset + l.filesz)), `segment at 0x${l.paddr.toString(16)} matches the payload`);
  }
});

void test('interrupts64 is linked at 1 MiB with its 32-bit entry and the multiboot header in the first segment', { skip: buildSkip }, async () => {
  const image = await readFile(guests['interrupts64']);
  const entry = image.readUInt32LE(24);
  const phoff = image.readUInt32LE(28);
  const loads = [];
  for (let i = 0; i < image.readUInt16LE(44); i++) {
    const ph = phoff + i * image.readUInt16LE(42);
    if (image.readUInt32LE(ph) === 1) loads.push({ offset: image.readUInt32LE(ph + 4), paddr: image.readUInt32LE(ph + 12), filesz: image.readUInt32LE(ph + 16) });
  }
  loads.sort((a, b) => a.paddr - b.paddr);
  assert.equal(loads[0].paddr, 0x100000, 'first PT_LOAD at 1 MiB');
  assert.ok(entry > loads[0].paddr && entry < loads[0].paddr + loads[0].filesz, 'entry inside the first segment');
  const header = multibootHeader(image);
  assert.equal(header.offset, loads[0].offset, 'multiboot header opens the first segment');
});

/** Every sub-check of the interrupts guest; interrupts64 runs the same ones under its own prefix. */
const INTERRUPT_CHECKS = ['ioapic-pins', 'lapic-counts-down', 'lapic-oneshot', 'lapic-oneshot-stopped', 'lapic-periodic', 'pit-ioapic',
  'uart-thre', 'uart-rx', 'no-stray-interrupts'];
const interruptPasses = (guest: string, checks: readonly string[]): RegExp[] =>
  [...checks.map((c) => new RegExp(`^PASS ${guest}/${c}$`, 'm')), new RegExp(`^PASS ${guest}$`, 'm')];

interface OracleCase {
  guest: string;
  append?: string;
  smp?: number;
  stdin?: string;
  reply?: { match: string; send: string };
  noReboot?: boolean;
  /** Guest whose output path is passed as the multiboot module (-initrd). */
  module?: string;
  status: number;
  expect: (string | RegExp)[];
}

const oracleCases: OracleCase[] = [
  { guest: 'serial-echo', stdin: 'hello world\n', status: 1, expect: ['hello from serial', 'HELLO WORLD', 'got: hello world', /^PASS serial-echo$/m] },
  { guest: 'multiboot-info', append: 'mbtest=1', status: 1, expect: [/cmdline: .*mbtest=1/, /^PASS multiboot-info$/m] },
  { guest: 'multiboot-info-aout', append: 'aout=1', status: 1, expect: [/cmdline: .*aout=1/, /^PASS multiboot-info-aout$/m] },
  { guest: 'smp', smp: 1, status: 1, expect: ['all 1 cpus up', /^PASS smp$/m] },
  { guest: 'smp', smp: 2, status: 1, expect: ['cpu 1 up', 'all 2 cpus up', /^PASS smp$/m] },
  { guest: 'smp', smp: 4, status: 1, expect: ['cpu 1 up', 'cpu 2 up', 'cpu 3 up', 'all 4 cpus up', /^PASS smp$/m] },
  { guest: 'smp', smp: 4, append: 'broadcast', status: 1, expect: ['all 4 cpus up', /^PASS smp$/m] },
  { guest: 'interrupts', reply: { match: 'send a byte', send: 'x' }, status: 1, expect: [...interruptPasses('interrupts', INTERRUPT_CHECKS), 'received 0x78'] },
  { guest: 'interrupts64', reply: { match: 'send a byte', send: 'x' }, status: 1, expect: [...interruptPasses('interrupts64', INTERRUPT_CHECKS), 'interrupts64: received 0x78'] },
  {
    guest: 'interrupts64', append: 'no-rx', status: 1,
    expect: [...interruptPasses('interrupts64', INTERRUPT_CHECKS.filter((c) => c !== 'uart-rx')), 'interrupts64: uart-rx skipped (no-rx)'],
  },
  { guest: 'reboot', noReboot: true, status: 0, expect: ['reboot: boot 1', 'rebooting'] },
  { guest: 'reboot', status: 1, expect: ['reboot: boot 1', 'rebooting', 'reboot: boot 2', /^PASS reboot$/m] },
  { guest: 'exit-status', append: 'code=7', status: 15, expect: ['writing 7 to port 0xf4'] },
  { guest: 'exit-status', append: 'code=21 size=4', status: 43, expect: ['writing 21 to port 0xf4 with a 4-byte OUT'] },
  { guest: 'pio-loop', append: 'count=1000', status: 1, expect: ['1000 writes to port 0x80', /^PASS pio-loop$/m] },
  { guest: 'cpu-loop', append: 'iters=1000', status: 1, expect: ['cpu-loop: checksum 0x', /^PASS cpu-loop$/m] },
  {
    guest: 'linux64-shim', module: 'linux64-zeropage-bzimage', append: '-- console=ttyS0 answer=42', status: 1,
    expect: ['header version 0x20f', 'cmdline: console=ttyS0 answer=42', /^PASS linux64-zeropage\/cs-long$/m, /^PASS linux64-zeropage$/m],
  },
  {
    guest: 'linux64-shim', module: 'linux64-zeropage-vmlinux', append: '-- from=elf', status: 1,
    expect: ['cmdline: from=elf', /^PASS linux64-zeropage\/e820-ram-1m$/m, /^PASS linux64-zeropage$/m],
  },
];

for (const c of oracleCases) {
  const label = `${c.guest}${c.smp ? ` -smp ${c.smp}` : ''}${c.append ? ` "${c.append}"` : ''}${c.noReboot ? ' -no-reboot' : ''}${c.module ? ` -initrd ${c.module}` : ''}`;
  void test(`QEMU oracle: ${label}`, { skip: qemuSkip }, async () => {
    const result = await runUnderQemu(guests[c.guest], { append: c.append, smp: c.smp, stdin: c.stdin, reply: c.reply, noReboot: c.noReboot, timeoutMs: 60000,
      extraArgs: c.module ? ['-initrd', guests[c.module]] : undefined });
    const context = `${result.command}\n${result.output}${result.stderr}`;
    assert.equal(result.timedOut, false, `timed out:\n${context}`);
    assert.equal(result.status, c.status, `exit status:\n${context}`);
    for (const e of c.expect) {
      if (typeof e === 'string') assert.ok(result.output.includes(e), `missing ${JSON.stringify(e)}:\n${context}`);
      else assert.match(result.output, e, context);
    }
    assert.doesNotMatch(result.output, /^FAIL /m, context);
  });
}

void test('cpu-loop checksum is deterministic (same under QEMU for the same iteration count)', { skip: qemuSkip }, async () => {
  const a = await runUnderQemu(guests['cpu-loop'], { append: 'iters=12345' });
  const b = await runUnderQemu(guests['cpu-loop'], { append: 'iters=12345' });
  const checksum = (s: string) => /checksum (0x[0-9a-f]{8})/.exec(s)?.[1];
  assert.ok(checksum(a.output));
  assert.equal(checksum(a.output), checksum(b.output));
});
