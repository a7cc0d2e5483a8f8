/**
 * Tests for the ACPI tables: placement in the BIOS area, checksums, the
 * pointer chain RSDP -> RSDT/XSDT -> FADT/MADT -> DSDT/FACS, the FADT and
 * MADT fields, and (when acpica-tools is installed) validation with iasl and
 * acpiexec.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GuestMemory } from '../../machine/memory.js';
import { BIOS_AREA_END, BIOS_AREA_START, IOAPIC_BASE, LAPIC_BASE, MiB, Ports } from '../../machine/layout.js';
import { LoaderError } from '../errors.js';
import { buildAcpiTables, byteSum, Fadt, FadtFlags, type AcpiOptions } from './acpi-tables.js';

function build(options: AcpiOptions) {
  const memory = GuestMemory.allocate(16 * MiB);
  return { memory, result: buildAcpiTables(memory, options) };
}

function signature(memory: GuestMemory, address: number, length = 4): string {
  return String.fromCharCode(...memory.readBytes(address, length));
}

/** Follows RSDP -> XSDT entries; returns a map signature -> address. */
function walk(memory: GuestMemory, rsdp: number): Map<string, number> {
  const found = new Map<string, number>();
  const xsdt = memory.read64(rsdp + 24);
  const n = (memory.read32(xsdt + 4) - 36) / 8;
  for (let i = 0; i < n; i++) {
    const t = memory.read64(xsdt + 36 + 8 * i);
    found.set(signature(memory, t), t);
  }
  const fadt = found.get('FACP')!;
  found.set('DSDT', memory.read64(fadt + Fadt.X_DSDT));
  found.set('FACS', memory.read32(fadt + Fadt.FIRMWARE_CTRL));
  return found;
}

void test('the RSDP is found by a 16-byte scan of 0xF0000-0xFFFFF and both its checksums hold', () => {
  const { memory, result } = build({ vcpuCount: 1 });
  let found = -1;
  for (let a = 0xf0000; a < 0x100000; a += 16) {
    if (signature(memory, a, 8) === 'RSD PTR ') {
      found = a;
      break;
    }
  }
  assert.equal(found, result.rsdp);
  assert.equal(byteSum(memory.readBytes(found, 20)), 0);
  assert.equal(byteSum(memory.readBytes(found, 36)), 0);
  assert.equal(memory.read8(found + 15), 2, 'revision 2');
  assert.equal(memory.read32(found + 20), 36);
  assert.ok(result.region.address >= BIOS_AREA_START && result.region.address + result.region.size <= BIOS_AREA_END);
});

void test('every table checksums to zero and lies in the BIOS area', () => {
  const { memory, result } = build({ vcpuCount: 8, pciRoot: {} });
  for (const t of result.tables) {
    assert.ok(t.address >= BIOS_AREA_START && t.address + t.length <= BIOS_AREA_END, t.signature);
    if (t.signature === 'FACS' || t.signature === 'RSD PTR ') continue;
    assert.equal(memory.read32(t.address + 4), t.length, `${t.signature} length`);
    assert.equal(byteSum(memory.readBytes(t.address, t.length)), 0, `${t.signature} checksum`);
  }
  const facs = result.tables.find((t) => t.signature === 'FACS')!;
  assert.equal(facs.address % 64, 0, 'FACS is 64-byte aligned');
  assert.equal(memory.read32(facs.address + 4), 64);
});

void test('RSDT and XSDT list the same FADT and MADT; the FADT points at the DSDT and FACS', () => {
  const { memory, result } = build({ vcpuCount: 2 });
  const rsdt = memory.read32(result.rsdp + 16);
  assert.equal(signature(memory, rsdt), 'RSDT');
  const rsdtEntries = [memory.read32(rsdt + 36), memory.read32(rsdt + 40)];
  const tables = walk(memory, result.rsdp);
  assert.deepEqual(rsdtEntries, [tables.get('FACP'), tables.get('APIC')]);
  assert.equal(signature(memory, tables.get('DSDT')!), 'DSDT');
  assert.equal(signature(memory, tables.get('FACS')!), 'FACS');
  assert.equal(memory.read32(tables.get('FACP')! + Fadt.DSDT), tables.get('DSDT'));
});

void test('FADT: full ACPI with the PM block, SCI 9, reset register and boot flags', () => {
  const { memory, result } = build({ vcpuCount: 1 });
  const f = walk(memory, result.rsdp).get('FACP')!;
  assert.equal(memory.read8(f + 8), 6, 'revision 6');
  assert.equal(memory.read32(f + 4), 276);
  assert.equal(memory.read16(f + Fadt.SCI_INT), 9);
  assert.equal(memory.read32(f + Fadt.SMI_CMD), 0);
  assert.equal(memory.read32(f + Fadt.PM1A_EVT_BLK), Ports.ACPI_PM);
  assert.equal(memory.read32(f + Fadt.PM1A_CNT_BLK), Ports.ACPI_PM + 4);
  assert.equal(memory.read32(f + Fadt.PM_TMR_BLK), Ports.ACPI_PM + 8);
  assert.equal(memory.read32(f + Fadt.GPE0_BLK), Ports.ACPI_PM + 0x20);
  assert.deepEqual([memory.read8(f + Fadt.PM1_EVT_LEN), memory.read8(f + Fadt.PM1_CNT_LEN), memory.read8(f + Fadt.PM_TMR_LEN), memory.read8(f + Fadt.GPE0_BLK_LEN)], [4, 2, 4, 8]);
  const flags = memory.read32(f + Fadt.FLAGS);
  assert.equal(flags & FadtFlags.HW_REDUCED_ACPI, 0);
  assert.equal(flags & FadtFlags.TMR_VAL_EXT, 0, 'the PM timer is 24 bits wide, like the device');
  assert.notEqual(flags & FadtFlags.RESET_REG_SUP, 0);
  assert.equal(flags & FadtFlags.FORCE_APIC_PHYSICAL_DESTINATION_MODE, 0);
  assert.equal(memory.read8(f + Fadt.RESET_REG), 1, 'reset register in system I/O space');
  assert.equal(memory.read64(f + Fadt.RESET_REG + 4), 0xcf9);
  assert.equal(memory.read8(f + Fadt.RESET_VALUE), 6);
  assert.equal(memory.read16(f + Fadt.IAPC_BOOT_ARCH), 0x7);
  assert.equal(memory.read8(f + Fadt.CENTURY), 0x32);
  // The 64-bit X_ blocks agree with the 32-bit ones (address and width).
  assert.equal(memory.read64(f + Fadt.X_PM1A_EVT_BLK + 4), Ports.ACPI_PM);
  assert.equal(memory.read8(f + Fadt.X_PM1A_EVT_BLK + 1), 32);
  assert.equal(memory.read64(f + Fadt.X_PM1A_CNT_BLK + 4), Ports.ACPI_PM + 4);
  assert.equal(memory.read8(f + Fadt.X_PM1A_CNT_BLK + 1), 16);
  assert.equal(memory.read64(f + Fadt.X_PM_TMR_BLK + 4), Ports.ACPI_PM + 8);
  assert.equal(memory.read64(f + Fadt.X_GPE0_BLK + 4), Ports.ACPI_PM + 0x20);
  const many = build({ vcpuCount: 9 });
  const f9 = walk(many.memory, many.result.rsdp).get('FACP')!;
  assert.notEqual(many.memory.read32(f9 + Fadt.FLAGS) & FadtFlags.FORCE_APIC_PHYSICAL_DESTINATION_MODE, 0);
});

void test('MADT: a LAPIC per vCPU, the IOAPIC, the overrides and LINT1 NMI', () => {
  const { memory, result } = build({ vcpuCount: 3 });
  const m = walk(memory, result.rsdp).get('APIC')!;
  assert.equal(memory.read32(m + 36), LAPIC_BASE);
  assert.equal(memory.read32(m + 40) & 1, 1, 'PCAT_COMPAT');
  const end = m + memory.read32(m + 4);
  const entries: number[][] = [];
  for (let at = m + 44; at < end; at += memory.read8(at + 1)) entries.push([...memory.readBytes(at, memory.read8(at + 1))]);
  const lapics = entries.filter((e) => e[0] === 0);
  assert.deepEqual(lapics.map((e) => [e[2], e[3], (e[4] ?? 0) & 1]), [[0, 0, 1], [1, 1, 1], [2, 2, 1]]);
  const ioapic = entries.find((e) => e[0] === 1)!;
  assert.equal(ioapic[2], 0, 'IOAPIC id 0');
  assert.equal(new DataView(Uint8Array.from(ioapic).buffer).getUint32(4, true), IOAPIC_BASE);
  assert.equal(new DataView(Uint8Array.from(ioapic).buffer).getUint32(8, true), 0, 'GSI base 0');
  const overrides = entries.filter((e) => e[0] === 2).map((e) => {
    const v = new DataView(Uint8Array.from(e).buffer);
    return { irq: e[3], gsi: v.getUint32(4, true), flags: v.getUint16(8, true) };
  });
  assert.deepEqual(overrides, [{ irq: 0, gsi: 2, flags: 0 }, { irq: 9, gsi: 9, flags: 0xd }]);
  assert.deepEqual(entries.find((e) => e[0] === 4), [4, 6, 0xff, 0, 0, 1]);
});

void test('DSDT contains \\_S5 and the devices; PCI root only on request', () => {
  const text = (o: AcpiOptions) => {
    const { memory, result } = build(o);
    const d = walk(memory, result.rsdp).get('DSDT')!;
    return String.fromCharCode(...memory.readBytes(d, memory.read32(d + 4)));
  };
  const plain = text({ vcpuCount: 2 });
  for (const s of ['_S5_', '_SB_', 'COM1', 'RTC_', 'KBD_', 'C000', 'C001', 'ACPI0007']) assert.ok(plain.includes(s), s);
  assert.ok(!plain.includes('C002'));
  assert.ok(!plain.includes('PCI0'));
  assert.ok(text({ vcpuCount: 1, pciRoot: {} }).includes('PCI0'));
});

void test('bad vCPU counts are rejected', () => {
  for (const n of [0, 256, 1.5]) {
    assert.throws(() => buildAcpiTables(GuestMemory.allocate(16 * MiB), { vcpuCount: n }), (e: unknown) => e instanceof LoaderError && /vCPU count/.test(e.message));
  }
  build({ vcpuCount: 255 });
});

function hasTool(name: string): boolean {
  return spawnSync(name, ['-v'], { encoding: 'utf8' }).error === undefined;
}

/** Dumps the tables as files named by signature into a temporary directory. */
function dumpTables(options: AcpiOptions): { dir: string; files: Map<string, string> } {
  const { memory, result } = build(options);
  const dir = mkdtempSync(join(tmpdir(), 'typevisor-acpi-'));
  const files = new Map<string, string>();
  for (const t of result.tables) {
    if (t.signature === 'RSD PTR ') continue;
    const file = join(dir, `${t.signature}.dat`);
    writeFileSync(file, memory.readBytes(t.address, t.length));
    files.set(t.signature, file);
  }
  return { dir, files };
}

void test('iasl disassembles every table and recompiles the DSDT without errors or warnings',
  { skip: hasTool('iasl') ? false : 'iasl is not installed (Debian package acpica-tools)' }, () => {
    const { dir, files } = dumpTables({ vcpuCount: 2, pciRoot: { irqRoutes: [{ slot: 1, pin: 0, gsi: 16 }] } });
    try {
      for (const [sig, file] of files) {
        const r = spawnSync('iasl', ['-d', file], { cwd: dir, encoding: 'utf8' });
        assert.equal(r.status, 0, `${sig}: ${r.stdout}${r.stderr}`);
        const dsl = readFileSync(file.replace(/\.dat$/, '.dsl'), 'utf8');
        assert.ok(!/Invalid|Incorrect checksum|Error/i.test(dsl.replace(/Error\w*Count/g, '')), `${sig} disassembly flags a problem`);
      }
      const dsl = readFileSync(join(dir, 'DSDT.dsl'), 'utf8');
      for (const s of ['EisaId ("PNP0501")', 'EisaId ("PNP0B00")', 'EisaId ("PNP0303")', 'EisaId ("PNP0A03")', 'IRQNoFlags ()', '_PRT']) {
        assert.ok(dsl.includes(s), s);
      }
      const r = spawnSync('iasl', ['-p', join(dir, 'recompiled'), join(dir, 'DSDT.dsl')], { cwd: dir, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stdout + r.stderr);
      assert.match(r.stdout + r.stderr, /0 Errors, 0 Warnings/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

void test('acpiexec loads the tables and evaluates \\_S5 and _CRS',
  { skip: hasTool('acpiexec') ? false : 'acpiexec is not installed (Debian package acpica-tools)' }, () => {
    const { dir, files } = dumpTables({ vcpuCount: 2 });
    try {
      const r = spawnSync('acpiexec', ['-b', 'evaluate \\_S5; evaluate \\_SB.COM1._CRS; evaluate \\_SB.KBD._STA',
        files.get('DSDT')!, files.get('FACP')!, files.get('APIC')!], { cwd: dir, encoding: 'utf8', timeout: 30000 });
      const out = r.stdout + r.stderr;
      assert.match(out, /Evaluation of \\_S5 returned object[^\n]*\n\s*\[Package\] Contains 4 Elements:\n(\s*\[Integer\] = 0{16}\n){4}/);
      assert.match(out, /\\_SB\.COM1\._CRS returned object/);
      assert.match(out, /\\_SB\.KBD\._STA returned object[^\n]*\n\s*\[Integer\] = 0{15}F/);
      assert.match(out, /Initialized GPE 00 to 1F \[_GPE\] 4 regs on interrupt 0x9 \(SCI\)/);
      assert.doesNotMatch(out, /ACPI (Error|Warning)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
