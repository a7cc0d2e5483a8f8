/**
 * The AML body of typevisor's DSDT: the S5 (soft-off) sleep package, one
 * ACPI0007 processor device per vCPU, the ISA devices (COM1, RTC, i8042
 * keyboard) and, optionally, the PCI host bridge with its resource windows and
 * interrupt routing table.
 *
 * \_S5 is Package {0, 0, 0, 0} as in QEMU's PIIX/Q35 DSDT: to power off, the
 * guest writes SLP_TYP = 0 with SLP_EN (bit 13) to PM1a_CNT, i.e. the value
 * 0x2000; the PM device decodes SLP_TYP as (value >> 10) & 7.
 */

import { ACPI_S5_SLP_TYP } from '../../devices/acpi/acpi-pm.js';
import { Irqs, PCI_MMIO_END, PCI_MMIO_START, Ports } from '../../machine/layout.js';
import {
  concat, device, dwordMemory, eisaId, integer, ioPort, irqNoFlags, methodReturning, name, packageOf,
  resourceTemplate, scope, string, wordBusNumber, wordIo, type Aml,
} from './aml.js';

/** The SLP_TYP value for S5 written to PM1a_CNT bits 10-12. */
export const S5_SLP_TYP = ACPI_S5_SLP_TYP;

/** One legacy PCI interrupt routing entry: device slot and pin (0 = INTA#) to an IOAPIC GSI. */
export interface PciIrqRoute {
  readonly slot: number;
  readonly pin: number;
  readonly gsi: number;
}

export interface PciRootOptions {
  /** _PRT entries (GSI routing). PCI GSIs are level-triggered, active-low. */
  readonly irqRoutes?: readonly PciIrqRoute[];
}

export interface DsdtOptions {
  readonly vcpuCount: number;
  /** Describe the PCI host bridge (PNP0A03) under \_SB. Off by default. */
  readonly pciRoot?: PciRootOptions;
}

/** _STA value: present, enabled, shown in UI, functioning. */
const STA_PRESENT = 0xf;

function processorDevice(index: number): Aml {
  return device(
    `C${index.toString(16).toUpperCase().padStart(3, '0')}`,
    name('_HID', string('ACPI0007')),
    name('_UID', integer(index)),
  );
}

function com1(): Aml {
  return device(
    'COM1',
    name('_HID', eisaId('PNP0501')),
    name('_UID', integer(1)),
    methodReturning('_STA', integer(STA_PRESENT)),
    name('_CRS', resourceTemplate(ioPort(Ports.COM1, Ports.COM1, 1, 8), irqNoFlags(Irqs.COM1))),
  );
}

function rtc(): Aml {
  return device(
    'RTC',
    name('_HID', eisaId('PNP0B00')),
    name('_CRS', resourceTemplate(ioPort(Ports.RTC, Ports.RTC, 1, 2), irqNoFlags(Irqs.RTC))),
  );
}

function keyboard(): Aml {
  return device(
    'KBD',
    name('_HID', eisaId('PNP0303')),
    methodReturning('_STA', integer(STA_PRESENT)),
    name('_CRS', resourceTemplate(
      ioPort(Ports.I8042_DATA, Ports.I8042_DATA, 1, 1),
      ioPort(Ports.I8042_COMMAND, Ports.I8042_COMMAND, 1, 1),
      irqNoFlags(Irqs.KEYBOARD),
    )),
  );
}

function pciRoot(options: PciRootOptions): Aml {
  const cfg = Ports.PCI_CONFIG;
  const body: Aml[] = [
    name('_HID', eisaId('PNP0A03')),
    name('_UID', integer(0)),
    name('_BBN', integer(0)),
    name('_SEG', integer(0)),
    name('_CRS', resourceTemplate(
      wordBusNumber(0, 0xff),
      ioPort(cfg, cfg, 1, 8),
      wordIo(0, cfg - 1),
      wordIo(0x0d00, 0xffff),
      dwordMemory(PCI_MMIO_START, PCI_MMIO_END - 1),
    )),
  ];
  if (options.irqRoutes && options.irqRoutes.length > 0) {
    const entries = options.irqRoutes.map((r) =>
      packageOf(integer(((r.slot << 16) | 0xffff) >>> 0), integer(r.pin), integer(0), integer(r.gsi)),
    );
    body.push(name('_PRT', packageOf(...entries)));
  }
  return device('PCI0', ...body);
}

/** Builds the DSDT's AML term list (without the table header). */
export function buildDsdtBody(options: DsdtOptions): Aml {
  const devices: Aml[] = [];
  for (let i = 0; i < options.vcpuCount; i++) devices.push(processorDevice(i));
  devices.push(com1(), rtc(), keyboard());
  if (options.pciRoot) devices.push(pciRoot(options.pciRoot));
  return concat(
    name('\\_S5', packageOf(integer(S5_SLP_TYP), integer(S5_SLP_TYP), integer(0), integer(0))),
    scope('\\_SB', ...devices),
  );
}
