/**
 * The platform's device set: creates the legacy devices of typevisor's PC and
 * attaches them to a machine's buses, with their interrupt lines, and writes
 * the ACPI tables that describe them: the legacy PC devices, the PCI host
 * bridge (always present, described in the DSDT as PNP0A03 with a _PRT for
 * INTx), and the virtio-pci devices (one virtio-blk per disk, one virtio-net
 * per --net, virtio-rng with --rng, then virtio-vsock with --vsock). Engine-provided hardware (the local
 * APICs, IOAPIC, PIC and PIT: KVM's in-kernel irqchip, or the soft engine's
 * models) is not here; the engine handles those accesses before `VmOps`.
 */

import type { Machine } from '../machine/machine.js';
import { Irqs, PC_TESTDEV_MMIO, Ports } from '../machine/layout.js';
import {
  ACPI_PM_BLOCK_LENGTH, AcpiPm, CMOS_RTC_PORT_COUNT, CmosRtc, DEBUG_EXIT_PORT_COUNT, DebugExit, FW_CFG_PORT_COUNT, FwCfg,
  I8042Controller, PC_TESTDEV_IRQ_PORT, PC_TESTDEV_IRQ_PORT_COUNT, PC_TESTDEV_MMIO_SIZE, PC_TESTDEV_PORT_COUNT, PcTestdev,
  PostPort, ResetControl, SYSTEM_CONTROL_PORT_A, SystemControlPortA, UART_PORT_COUNT, Uart16550, type SystemEventSink,
} from '../devices/index.js';
import { buildAcpiTables } from '../loaders/index.js';
import type { FastNotify } from '../engines/engine.js';
import { PciHost } from '../devices/pci/index.js';
import { DiskImage, VirtioBlk, VirtioNet, VirtioPciFunction, VirtioRng, VirtioVsock, type NetBackend, type VirtioDevice } from '../devices/virtio/index.js';

/** PCI CONFIG_DATA, 0xcfc-0xcff. */
const PCI_CONFIG_DATA = 0xcfc;

export interface PlatformOptions {
  ramSize: number;
  cpus: number;
  /** Attach the test-kernel devices: isa-debug-exit at port 0xf4 and pc-testdev. */
  debugExit: boolean;
  /** Receives every byte the guest writes to COM1. */
  onConsoleByte: (byte: number) => void;
  /** Receives power-off, reset and debug-exit requests. */
  onSystemEvent: SystemEventSink;
  /** Opened disks, attached as virtio-blk in this order. */
  disks?: readonly DiskImage[];
  /** Attach virtio-rng. */
  rng?: boolean;
  /** Opened host network backends, one virtio-net each (after the disks). */
  nets?: readonly { readonly backend: NetBackend; readonly mac: Uint8Array }[];
  /**
   * The virtio-vsock device (last slot). The VMM owns it across reboots,
   * since it holds the host listener; each boot attaches it to a new function.
   */
  vsock?: VirtioVsock | undefined;
  /** The engine's fast notification path (KVM ioeventfd/irqfd), if any. */
  fastNotify?: FastNotify | undefined;
}

/** The attached devices a VMM needs to reach after boot. */
export interface Platform {
  readonly uart: Uart16550;
  readonly rtc: CmosRtc;
  readonly acpiPm: AcpiPm;
  readonly fwCfg: FwCfg;
  readonly pci: PciHost;
  /** The virtio-pci functions in slot order: disks, nets, rng, vsock. */
  readonly virtio: readonly VirtioPciFunction[];
  /** Guest-physical address of the ACPI RSDP. */
  readonly acpiRsdp: number;
  /** Stops the devices' host timers. */
  dispose(): void;
}

/** Creates the platform's devices, attaches them to `machine` and writes the ACPI tables into its RAM. */
export function attachPlatform(machine: Machine, options: PlatformOptions): Platform {
  const irq = machine.interrupts;
  const events = options.onSystemEvent;

  const uart = new Uart16550({ irq: irq.line(Irqs.COM1), onTransmit: options.onConsoleByte });
  machine.attachPorts(Ports.COM1, UART_PORT_COUNT, uart, 'com1');

  const i8042 = new I8042Controller({ keyboardIrq: irq.line(Irqs.KEYBOARD), auxIrq: irq.line(Irqs.MOUSE), onSystemEvent: events });
  machine.attachPorts(Ports.I8042_DATA, 1, i8042.dataPort, 'i8042-data');
  machine.attachPorts(Ports.I8042_COMMAND, 1, i8042.commandPort, 'i8042-command');

  const rtc = new CmosRtc({ irq: irq.line(Irqs.RTC), ramSize: options.ramSize, cpuCount: options.cpus });
  machine.attachPorts(Ports.RTC, CMOS_RTC_PORT_COUNT, rtc, 'cmos-rtc');

  machine.attachPorts(Ports.POST, 1, new PostPort(), 'post');
  machine.attachPorts(SYSTEM_CONTROL_PORT_A, 1, new SystemControlPortA(events), 'port-92');
  // 0xcf8-0xcfb: dword accesses are PCI CONFIG_ADDRESS, byte accesses at 0xcf9 the reset control register.
  const resetControl = new ResetControl(events);
  const resetOffset = Ports.RESET_CONTROL - Ports.PCI_CONFIG;
  const pci = new PciHost({
    mmio: machine.mmio, ports: machine.ports, interrupts: irq,
    narrowPorts: {
      read: (offset, size) => (offset === resetOffset && size === 1 ? resetControl.read(0, 1) : size === 1 ? 0xff : 0xffff),
      write: (offset, size, value) => {
        if (offset === resetOffset && size === 1) resetControl.write(0, 1, value);
      },
    },
  });
  machine.attachPorts(Ports.PCI_CONFIG, 4, pci.addressPort, 'pci-config-address');
  machine.attachPorts(PCI_CONFIG_DATA, 4, pci.dataPort, 'pci-config-data');
  const virtio: VirtioPciFunction[] = [];
  const addVirtio = (name: string, device: VirtioDevice): void => {
    const fn = new VirtioPciFunction({ device, memory: machine.memory, interrupts: irq, fastNotify: options.fastNotify });
    pci.addDevice(fn, name);
    virtio.push(fn);
  };
  (options.disks ?? []).forEach((disk, i) => addVirtio(`virtio-blk${i}`, new VirtioBlk(disk)));
  (options.nets ?? []).forEach((net, i) => addVirtio(`virtio-net${i}`, new VirtioNet(net.backend, net.mac)));
  if (options.rng === true) addVirtio('virtio-rng', new VirtioRng());
  if (options.vsock !== undefined) addVirtio('virtio-vsock', options.vsock);

  const acpiPm = new AcpiPm({ sci: irq.line(Irqs.ACPI_SCI), onSystemEvent: events });
  machine.attachPorts(Ports.ACPI_PM, ACPI_PM_BLOCK_LENGTH, acpiPm, 'acpi-pm');

  const fwCfg = new FwCfg({ ramSize: options.ramSize, cpuCount: options.cpus, memory: () => machine.memory });
  machine.attachPorts(Ports.FW_CFG, FW_CFG_PORT_COUNT, fwCfg, 'fw-cfg');

  if (options.debugExit) {
    // Test-kernel devices (what kvm-unit-tests gets from QEMU's -device isa-debug-exit and pc-testdev).
    machine.attachPorts(Ports.DEBUG_EXIT, DEBUG_EXIT_PORT_COUNT, new DebugExit(events), 'isa-debug-exit');
    const testdev = new PcTestdev({ interrupts: irq });
    machine.attachPorts(Ports.PC_TESTDEV, PC_TESTDEV_PORT_COUNT, testdev.ioPorts, 'pc-testdev');
    machine.attachPorts(PC_TESTDEV_IRQ_PORT, PC_TESTDEV_IRQ_PORT_COUNT, testdev.irqPorts, 'pc-testdev-irq');
    machine.attachMmio(PC_TESTDEV_MMIO, PC_TESTDEV_MMIO_SIZE, testdev.iomem, 'pc-testdev-iomem');
  }

  const acpi = buildAcpiTables(machine.memory, { vcpuCount: options.cpus, pciRoot: { irqRoutes: pci.intxRoutes() } });

  return {
    uart, rtc, acpiPm, fwCfg, pci, virtio, acpiRsdp: acpi.rsdp,
    dispose: () => {
      rtc.dispose();
      acpiPm.dispose();
      for (const fn of virtio) fn.dispose();
    },
  };
}
