/**
 * Integration tests: the project's bare-metal guests booted by the real
 * `typevisor run` CLI on each engine, checking console output and exit status.
 */

import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildGuests } from '../guests/build.js';
import { runCli, engineSkipReason, multibootFlatImage, type CliResult } from './harness.js';

let guests: Record<string, string> = {};
let buildProblem: string | undefined;

before(async () => {
  try {
    guests = await buildGuests();
  } catch (e) {
    buildProblem = (e as Error).message;
  }
});

function expectPass(r: CliResult, name: string): void {
  assert.equal(r.timedOut, false, `${name} timed out; output:\n${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, new RegExp(`^PASS ${name}$`, 'm'), r.stdout + r.stderr);
  assert.doesNotMatch(r.stdout, /^FAIL /m);
  assert.equal(r.status, 1, `status ${r.status}; stderr: ${r.stderr}`);
}

/**
 * A multiboot (a.out kludge) kernel that loads an IDT with limit 0 and executes ud2 in protected mode:
 * #UD cannot be delivered, nor can #GP or #DF, so the CPU shuts down.
 */
function tripleFaultKernel(): string {
  const path = join(mkdtempSync(join(tmpdir(), 'tv-triple-')), 'triple.bin');
  // lidt [0x100040]; ud2 — and at 0x100040 the IDT descriptor: limit 0, base 0 (zero padding).
  writeFileSync(path, multibootFlatImage([0x0f, 0x01, 0x1d, 0x40, 0x00, 0x10, 0x00, 0x0f, 0x0b]));
  return path;
}

/**
 * A multiboot kernel that checks the interrupt hardware as a PC BIOS leaves it: master PIC mask 0xfa (timer and
 * cascade open), slave 0xff, and PIT channel 0 counting (two latched reads some time apart differ). It writes 0 to
 * the debug-exit port when all hold (status 1), 1 otherwise (status 3).
 */
function biosStateKernel(): string {
  const path = join(mkdtempSync(join(tmpdir(), 'tv-bios-state-')), 'bios-state.bin');
  writeFileSync(path, multibootFlatImage([
    0xe4, 0x21, 0x3c, 0xfa, 0x75, 0x2f, //             in al,0x21; cmp al,0xfa; jne fail
    0xe4, 0xa1, 0x3c, 0xff, 0x75, 0x29, //             in al,0xa1; cmp al,0xff; jne fail
    0xb0, 0x00, 0xe6, 0x43, 0xe4, 0x40, 0x88, 0xc3, 0xe4, 0x40, 0x88, 0xc7, // latch channel 0; bx = count
    0xb9, 0xa0, 0x86, 0x01, 0x00, 0xe2, 0xfe, //       mov ecx,100000; loop $
    0xb0, 0x00, 0xe6, 0x43, 0xe4, 0x40, 0x88, 0xc2, 0xe4, 0x40, 0x88, 0xc6, // latch again; dx = count
    0x66, 0x39, 0xd3, 0x74, 0x05, //                   cmp bx,dx; je fail
    0xb0, 0x00, 0xe6, 0xf4, 0xf4, //                   pass: debug-exit 0; hlt
    0xb0, 0x01, 0xe6, 0xf4, 0xf4, //                   fail: debug-exit 1; hlt
  ], 0x80));
  return path;
}

for (const engine of ['kvm', 'soft'] as const) {
  describe(`test guests under --engine ${engine}`, { skip: engineSkipReason(engine) }, () => {
    const run = (guest: string, extra: string[] = [], options: Parameters<typeof runCli>[1] = {}): Promise<CliResult> => {
      if (buildProblem !== undefined) throw new Error(`test guests could not be built: ${buildProblem}`);
      return runCli(['run', '--engine', engine, '--debug-exit', '--memory', '128M', '--kernel', guests[guest], ...extra], { timeoutMs: 120_000, ...options });
    };

    test('serial output and input: the guest echoes a piped line', async () => {
      const r = await run('serial-echo', [], { stdin: 'hello world\n' });
      assert.match(r.stdout, /hello from serial/);
      assert.match(r.stdout, /HELLO WORLD/);
      assert.match(r.stdout, /got: hello world/);
      expectPass(r, 'serial-echo');
    });

    for (const kind of ['bzimage', 'vmlinux'] as const) {
      test(`Linux 64-bit entry (${kind}): the guest checks its zero page`, async () => {
        const r = await run(`linux64-zeropage-${kind}`, ['--append', 'console=ttyS0 hello=1']);
        assert.match(r.stdout, /cmdline: console=ttyS0 hello=1$/m);
        for (const check of ['efer-lma', 'cs-long', 'hdrs-magic', 'type-of-loader', 'e820-ram-1m', 'acpi-rsdp-valid']) {
          assert.match(r.stdout, new RegExp(`^PASS linux64-zeropage/${check}$`, 'm'), check);
        }
        expectPass(r, 'linux64-zeropage');
      });
    }

    test('multiboot entry (ELF32): magic, memory info, command line, memory map', async () => {
      const r = await run('multiboot-info', ['--append', 'hello=world']);
      assert.match(r.stdout, /cmdline: .*hello=world/);
      expectPass(r, 'multiboot-info');
    });

    test('a multiboot kernel finds the PICs and PIT as a PC BIOS leaves them', async () => {
      const r = await runCli(['run', '--engine', engine, '--debug-exit', '--memory', '128M', '--kernel', biosStateKernel()], { timeoutMs: 120_000 });
      assert.equal(r.timedOut, false);
      assert.equal(r.status, 1, `status ${r.status} (3: a mask or the PIT count was wrong); stderr: ${r.stderr}`);
    });

    test('multiboot entry (a.out kludge)', async () => {
      const r = await run('multiboot-info-aout', ['--append', 'aout']);
      expectPass(r, 'multiboot-info-aout');
    });

    for (const cpus of [1, 2, 4]) {
      test(`SMP: ${cpus} vCPU(s) started through INIT/SIPI, each printing its APIC ID`, async () => {
        const r = await run('smp', ['--cpus', String(cpus)]);
        for (let id = 1; id < cpus; id++) assert.match(r.stdout, new RegExp(`^cpu ${id} up$`, 'm'));
        assert.match(r.stdout, new RegExp(`^all ${cpus} cpus up$`, 'm'));
        expectPass(r, 'smp');
      });
    }

    // Both modes where the engine can run them: this host's nested KVM (kvm_pvm) cannot emulate a 32-bit
    // protected-mode iret, so under kvm only the long-mode variant proves interrupt delivery here.
    for (const guest of engine === 'kvm' ? ['interrupts64'] : ['interrupts', 'interrupts64']) {
      test(`${guest}: timer interrupts (LAPIC one-shot/periodic, PIT via IOAPIC) and UART interrupts (THRE, RX) are delivered`, async () => {
        const r = await run(guest, [], { stdin: 'x', stdinAfter: 'send a byte' });
        for (const check of ['lapic-oneshot', 'lapic-periodic', 'pit-ioapic', 'uart-thre', 'uart-rx', 'no-stray-interrupts']) {
          assert.match(r.stdout, new RegExp(`^PASS ${guest}/${check}$`, 'm'), check);
        }
        assert.match(r.stdout, /received 0x78/);
        expectPass(r, guest);
      });
    }

    test('reboot through the i8042 restarts the guest with its RAM kept', async () => {
      const r = await run('reboot');
      assert.match(r.stdout, /rebooting/);
      assert.match(r.stdout, /boot 2 \(memory kept across the reset\)/);
      expectPass(r, 'reboot');
    });

    test('reboot with --no-reboot ends the VM with status 0', async () => {
      const r = await run('reboot', ['--no-reboot']);
      assert.match(r.stdout, /rebooting/);
      assert.doesNotMatch(r.stdout, /boot 2/);
      assert.equal(r.status, 0, r.stderr);
    });

    test('ACPI power-off (SLP_TYP from \\_S5_ written to PM1a_CNT, as an OS does) ends the VM with status 0', async () => {
      const r = await run('acpi-poweroff');
      assert.match(r.stdout, /writing 0x2000 to PM1a_CNT at port 0x604/);
      assert.doesNotMatch(r.stdout, /FAIL/);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stderr, '');
    });

    test('a triple fault ends the VM with status 4 and one line on stderr', async () => {
      const r = await runCli(['run', '--engine', engine, '--kernel', tripleFaultKernel()], { timeoutMs: 60_000 });
      assert.equal(r.status, 4);
      assert.match(r.stderr, /^\ntypevisor: guest triple fault on vCPU 0: the VM was stopped\n$/);
    });

    test('debug-exit status is (v << 1) | 1 for 1-, 2- and 4-byte writes', async () => {
      assert.equal((await run('exit-status', ['--append', 'code=7'])).status, 15);
      assert.equal((await run('exit-status', ['--append', 'code=21 size=4'])).status, 43);
      assert.equal((await run('exit-status', ['--append', 'code=0x40 size=2'])).status, 129);
    });
  });
}
