/**
 * Builds the ACPI tables of typevisor's PC (full ACPI, not hardware-reduced)
 * into the BIOS area: RSDP (revision 2) at 0xF0000, where both Linux (which
 * scans 0xE0000-0xFFFFF) and kvm-unit-tests (which scans only 0xF0000-0xFFFFF)
 * find it, followed by the FACS, DSDT, FADT, MADT, XSDT and RSDT.
 *
 * FADT choices: the PM1a event, PM1a control, PM timer and GPE0 blocks are
 * where the ACPI PM device (src/devices/acpi/acpi-pm.ts) puts them, with its
 * lengths and timer width (TMR_VAL_EXT follows ACPI_PM_TIMER_32BIT),
 * SCI on IRQ 9, SMI_CMD = 0 (ACPI is always enabled: PM1_CNT.SCI_EN must read
 * as 1), RESET_REG = I/O port 0xcf9 value 0x06, century CMOS index 0x32,
 * IA-PC boot flags: legacy devices, 8042, no VGA.
 *
 * MADT: one enabled local APIC per vCPU (processor UID = APIC ID = index),
 * IOAPIC id 0 at IOAPIC_BASE with GSI base 0, overrides IRQ0 -> GSI2
 * (conforming) and IRQ9 -> GSI9 level/active-high (as QEMU does for the SCI),
 * and local APIC NMI on LINT1 for all processors.
 */

import { ACPI_PM_TIMER_32BIT, AcpiPmLayout } from '../../devices/acpi/acpi-pm.js';
import type { GuestMemory } from '../../machine/memory.js';
import { BIOS_AREA_END, IOAPIC_BASE, Irqs, LAPIC_BASE, Ports } from '../../machine/layout.js';
import { LEGACY_BIOS_CODE } from '../legacy-bios-state.js';
import { LoaderError, hex } from '../errors.js';
import { buildDsdtBody, type PciRootOptions } from './dsdt.js';

export const ACPI_OEM_ID = 'TYPVSR';
export const ACPI_OEM_TABLE_ID = 'TYPEVISR';
export const ACPI_CREATOR_ID = 'TVSR';
/** Where the RSDP goes: the start of the upper BIOS area scanned by every guest. */
export const RSDP_ADDRESS = 0xf0000;
/** The largest number of vCPUs the xAPIC MADT can describe (APIC IDs 0..254; 255 is broadcast). */
export const MAX_ACPI_VCPUS = 255;

export interface AcpiOptions {
  /** Number of vCPUs (1..255); APIC IDs are 0..vcpuCount-1. */
  vcpuCount: number;
  /** Describe a PCI host bridge in the DSDT (with optional _PRT routes). */
  pciRoot?: PciRootOptions;
}

export interface AcpiTableInfo {
  readonly signature: string;
  readonly address: number;
  readonly length: number;
}

export interface AcpiTablesResult {
  /** Guest-physical RSDP address (for boot_params.acpi_rsdp_addr). */
  readonly rsdp: number;
  /** Every table written, RSDP first. */
  readonly tables: readonly AcpiTableInfo[];
  /** The guest-physical range holding all tables; lies in the e820-reserved [EBDA_START, 1 MiB). */
  readonly region: { readonly address: number; readonly size: number };
}

/** FADT flag bits. */
export const FadtFlags = {
  WBINVD: 1 << 0,
  PROC_C1: 1 << 2,
  SLP_BUTTON: 1 << 5,
  FIX_RTC: 1 << 6,
  TMR_VAL_EXT: 1 << 8,
  RESET_REG_SUP: 1 << 10,
  USE_PLATFORM_CLOCK: 1 << 15,
  FORCE_APIC_PHYSICAL_DESTINATION_MODE: 1 << 19,
  HW_REDUCED_ACPI: 1 << 20,
} as const;

/** IA-PC boot architecture flags. */
export const IapcBootArch = {
  LEGACY_DEVICES: 1 << 0,
  I8042: 1 << 1,
  VGA_NOT_PRESENT: 1 << 2,
} as const;

/** Offsets of FADT fields used by tests and by device code that wants to cross-check. */
export const Fadt = {
  FIRMWARE_CTRL: 36,
  DSDT: 40,
  SCI_INT: 46,
  SMI_CMD: 48,
  PM1A_EVT_BLK: 56,
  PM1A_CNT_BLK: 64,
  PM_TMR_BLK: 76,
  GPE0_BLK: 80,
  PM1_EVT_LEN: 88,
  PM1_CNT_LEN: 89,
  PM_TMR_LEN: 91,
  GPE0_BLK_LEN: 92,
  P_LVL2_LAT: 96,
  P_LVL3_LAT: 98,
  CENTURY: 108,
  IAPC_BOOT_ARCH: 109,
  FLAGS: 112,
  RESET_REG: 116,
  RESET_VALUE: 128,
  MINOR_VERSION: 131,
  X_FIRMWARE_CTRL: 132,
  X_DSDT: 140,
  X_PM1A_EVT_BLK: 148,
  X_PM1A_CNT_BLK: 172,
  X_PM_TMR_BLK: 208,
  X_GPE0_BLK: 220,
  LENGTH: 276,
} as const;

const HEADER_SIZE = 36;
const GAS_SYSTEM_IO = 1;
const CMOS_CENTURY_INDEX = 0x32;
const RESET_VALUE = 0x06;

/** Sum of bytes mod 256. */
export function byteSum(bytes: Uint8Array): number {
  let sum = 0;
  for (const b of bytes) sum = (sum + b) & 0xff;
  return sum;
}

function ascii(view: Uint8Array, offset: number, text: string, width: number): void {
  for (let i = 0; i < width; i++) view[offset + i] = i < text.length ? text.charCodeAt(i) : 0x20;
}

/** A table of `length` bytes with its standard header filled in (checksum fixed by `seal`). */
function newTable(signature: string, length: number, revision: number): { bytes: Uint8Array; view: DataView } {
  const bytes = new Uint8Array(length);
  const view = new DataView(bytes.buffer);
  ascii(bytes, 0, signature, 4);
  view.setUint32(4, length, true);
  bytes[8] = revision;
  ascii(bytes, 10, ACPI_OEM_ID, 6);
  ascii(bytes, 16, ACPI_OEM_TABLE_ID, 8);
  view.setUint32(24, 1, true);
  ascii(bytes, 28, ACPI_CREATOR_ID, 4);
  view.setUint32(32, 1, true);
  return { bytes, view };
}

/** Sets byte `at` so that the bytes of [start, end) sum to 0 mod 256. */
function seal(bytes: Uint8Array, at = 9, start = 0, end = bytes.length): Uint8Array {
  bytes[at] = 0;
  bytes[at] = (256 - byteSum(bytes.subarray(start, end))) & 0xff;
  return bytes;
}

/** Writes a Generic Address Structure for a system I/O register block. */
function ioGas(view: DataView, offset: number, port: number, bitWidth: number, accessSize: number): void {
  view.setUint8(offset, GAS_SYSTEM_IO);
  view.setUint8(offset + 1, bitWidth);
  view.setUint8(offset + 2, 0);
  view.setUint8(offset + 3, accessSize);
  view.setBigUint64(offset + 4, BigInt(port), true);
}

export function buildDsdt(options: AcpiOptions): Uint8Array {
  const body = buildDsdtBody({ vcpuCount: options.vcpuCount, ...(options.pciRoot ? { pciRoot: options.pciRoot } : {}) });
  const { bytes } = newTable('DSDT', HEADER_SIZE + body.length, 2);
  bytes.set(body, HEADER_SIZE);
  return seal(bytes);
}

export function buildFacs(): Uint8Array {
  const bytes = new Uint8Array(64);
  const view = new DataView(bytes.buffer);
  ascii(bytes, 0, 'FACS', 4);
  view.setUint32(4, 64, true);
  bytes[32] = 2; // version
  return bytes;
}

export function buildFadt(options: AcpiOptions, facs: number, dsdt: number): Uint8Array {
  const { bytes, view } = newTable('FACP', Fadt.LENGTH, 6);
  const pm = Ports.ACPI_PM;
  const L = AcpiPmLayout;
  view.setUint32(Fadt.FIRMWARE_CTRL, facs, true);
  view.setUint32(Fadt.DSDT, dsdt, true);
  view.setUint16(Fadt.SCI_INT, Irqs.ACPI_SCI, true);
  view.setUint32(Fadt.SMI_CMD, 0, true);
  view.setUint32(Fadt.PM1A_EVT_BLK, pm + L.PM1A_EVT, true);
  view.setUint32(Fadt.PM1A_CNT_BLK, pm + L.PM1A_CNT, true);
  view.setUint32(Fadt.PM_TMR_BLK, pm + L.PM_TMR, true);
  view.setUint32(Fadt.GPE0_BLK, pm + L.GPE0, true);
  bytes[Fadt.PM1_EVT_LEN] = L.PM1_EVT_LEN;
  bytes[Fadt.PM1_CNT_LEN] = L.PM1_CNT_LEN;
  bytes[Fadt.PM_TMR_LEN] = L.PM_TMR_LEN;
  bytes[Fadt.GPE0_BLK_LEN] = L.GPE0_BLK_LEN;
  view.setUint16(Fadt.P_LVL2_LAT, 0x0fff, true); // > 100: C2 not supported
  view.setUint16(Fadt.P_LVL3_LAT, 0x0fff, true); // > 1000: C3 not supported
  bytes[Fadt.CENTURY] = CMOS_CENTURY_INDEX;
  view.setUint16(Fadt.IAPC_BOOT_ARCH, IapcBootArch.LEGACY_DEVICES | IapcBootArch.I8042 | IapcBootArch.VGA_NOT_PRESENT, true);
  let flags = FadtFlags.WBINVD | FadtFlags.PROC_C1 | FadtFlags.SLP_BUTTON | FadtFlags.FIX_RTC |
    (ACPI_PM_TIMER_32BIT ? FadtFlags.TMR_VAL_EXT : 0) | FadtFlags.RESET_REG_SUP | FadtFlags.USE_PLATFORM_CLOCK;
  // Flat logical APIC destination mode addresses at most 8 CPUs.
  if (options.vcpuCount > 8) flags |= FadtFlags.FORCE_APIC_PHYSICAL_DESTINATION_MODE;
  view.setUint32(Fadt.FLAGS, flags >>> 0, true);
  ioGas(view, Fadt.RESET_REG, Ports.RESET_CONTROL, 8, 1);
  bytes[Fadt.RESET_VALUE] = RESET_VALUE;
  bytes[Fadt.MINOR_VERSION] = 0;
  view.setBigUint64(Fadt.X_FIRMWARE_CTRL, 0n, true); // FIRMWARE_CTRL (32-bit) is used instead
  view.setBigUint64(Fadt.X_DSDT, BigInt(dsdt), true);
  ioGas(view, Fadt.X_PM1A_EVT_BLK, pm + L.PM1A_EVT, L.PM1_EVT_LEN * 8, 0);
  ioGas(view, Fadt.X_PM1A_CNT_BLK, pm + L.PM1A_CNT, L.PM1_CNT_LEN * 8, 0);
  ioGas(view, Fadt.X_PM_TMR_BLK, pm + L.PM_TMR, L.PM_TMR_LEN * 8, 0);
  ioGas(view, Fadt.X_GPE0_BLK, pm + L.GPE0, L.GPE0_BLK_LEN * 8, 0);
  return seal(bytes);
}

/** MADT entry types. */
const MADT_LOCAL_APIC = 0;
const MADT_IO_APIC = 1;
const MADT_INTERRUPT_OVERRIDE = 2;
const MADT_LOCAL_APIC_NMI = 4;
/** MPS INTI flags: active high (01) + level triggered (11 << 2). */
const INTI_LEVEL_ACTIVE_HIGH = 0x000d;
const INTI_CONFORMING = 0;

export function buildMadt(options: AcpiOptions): Uint8Array {
  const n = options.vcpuCount;
  const length = 44 + n * 8 + 12 + 2 * 10 + 6;
  const { bytes, view } = newTable('APIC', length, 3);
  view.setUint32(36, LAPIC_BASE, true);
  view.setUint32(40, 1, true); // PCAT_COMPAT: dual 8259 PICs present
  let at = 44;
  for (let i = 0; i < n; i++) {
    bytes.set([MADT_LOCAL_APIC, 8, i, i], at);
    view.setUint32(at + 4, 1, true); // enabled
    at += 8;
  }
  bytes.set([MADT_IO_APIC, 12, 0, 0], at);
  view.setUint32(at + 4, IOAPIC_BASE, true);
  view.setUint32(at + 8, 0, true);
  at += 12;
  const override = (source: number, gsi: number, flags: number): void => {
    bytes.set([MADT_INTERRUPT_OVERRIDE, 10, 0, source], at);
    view.setUint32(at + 4, gsi, true);
    view.setUint16(at + 8, flags, true);
    at += 10;
  };
  override(Irqs.PIT, 2, INTI_CONFORMING);
  override(Irqs.ACPI_SCI, Irqs.ACPI_SCI, INTI_LEVEL_ACTIVE_HIGH);
  bytes.set([MADT_LOCAL_APIC_NMI, 6, 0xff, 0, 0, 1], at); // all processors, conforming, LINT1
  at += 6;
  return seal(bytes);
}

function buildXsdt(entries: readonly number[]): Uint8Array {
  const { bytes, view } = newTable('XSDT', HEADER_SIZE + 8 * entries.length, 1);
  entries.forEach((a, i) => view.setBigUint64(HEADER_SIZE + 8 * i, BigInt(a), true));
  return seal(bytes);
}

function buildRsdt(entries: readonly number[]): Uint8Array {
  const { bytes, view } = newTable('RSDT', HEADER_SIZE + 4 * entries.length, 1);
  entries.forEach((a, i) => view.setUint32(HEADER_SIZE + 4 * i, a, true));
  return seal(bytes);
}

export function buildRsdp(rsdt: number, xsdt: number): Uint8Array {
  const bytes = new Uint8Array(36);
  const view = new DataView(bytes.buffer);
  ascii(bytes, 0, 'RSD PTR ', 8);
  ascii(bytes, 9, ACPI_OEM_ID, 6);
  bytes[15] = 2;
  view.setUint32(16, rsdt, true);
  view.setUint32(20, 36, true);
  view.setBigUint64(24, BigInt(xsdt), true);
  seal(bytes, 8, 0, 20);
  return seal(bytes, 32, 0, 36);
}

/** Writes all ACPI tables into the BIOS area; returns the RSDP address and the table list. */
export function buildAcpiTables(memory: GuestMemory, options: AcpiOptions): AcpiTablesResult {
  const n = options.vcpuCount;
  if (!Number.isInteger(n) || n < 1 || n > MAX_ACPI_VCPUS) {
    throw new LoaderError(`ACPI: vCPU count ${n} is out of range (1-${MAX_ACPI_VCPUS})`);
  }
  const tables: AcpiTableInfo[] = [];
  const pieces: { address: number; bytes: Uint8Array }[] = [];
  let next = RSDP_ADDRESS + 64; // the RSDP (36 bytes) is written last, at RSDP_ADDRESS
  const place = (signature: string, bytes: Uint8Array, alignment = 16): number => {
    const address = Math.ceil(next / alignment) * alignment;
    next = address + bytes.length;
    pieces.push({ address, bytes });
    tables.push({ signature, address, length: bytes.length });
    return address;
  };
  const facs = place('FACS', buildFacs(), 64);
  const dsdt = place('DSDT', buildDsdt(options));
  const fadt = place('FACP', buildFadt(options, facs, dsdt));
  const madt = place('APIC', buildMadt(options));
  const xsdt = place('XSDT', buildXsdt([fadt, madt]));
  const rsdt = place('RSDT', buildRsdt([fadt, madt]));
  const rsdp = buildRsdp(rsdt, xsdt);
  pieces.unshift({ address: RSDP_ADDRESS, bytes: rsdp });
  tables.unshift({ signature: 'RSD PTR ', address: RSDP_ADDRESS, length: rsdp.length });
  if (next > BIOS_AREA_END) throw new LoaderError(`ACPI: tables end at ${hex(next)}, beyond the BIOS area`);
  if (next > LEGACY_BIOS_CODE) throw new LoaderError(`ACPI: tables end at ${hex(next)}, over the BIOS-state routine at ${hex(LEGACY_BIOS_CODE)}`);
  if (!memory.contains(RSDP_ADDRESS, next - RSDP_ADDRESS)) throw new LoaderError('ACPI: guest RAM does not cover the BIOS area');
  memory.fill(RSDP_ADDRESS, next - RSDP_ADDRESS, 0);
  for (const p of pieces) memory.writeBytes(p.address, p.bytes);
  return { rsdp: RSDP_ADDRESS, tables, region: { address: RSDP_ADDRESS, size: next - RSDP_ADDRESS } };
}
