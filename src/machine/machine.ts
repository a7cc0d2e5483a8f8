/**
 * The machine: guest RAM, the port and MMIO buses and the interrupt router —
 * everything a guest can touch that is not the CPU. It implements `VmOps`, the
 * single door through which an engine hands over the port and MMIO accesses it
 * does not handle itself.
 */

import type { VmOps } from '../engines/engine.js';
import { Bus, PortBus, type AccessSize, type BusDevice } from './bus.js';
import { InterruptRouter } from './interrupts.js';
import type { GuestMemory } from './memory.js';

export class Machine implements VmOps {
  readonly ports = new PortBus();
  readonly mmio = new Bus();
  readonly interrupts = new InterruptRouter();

  constructor(readonly memory: GuestMemory) {}

  /** Attaches `device` to `length` I/O ports from `base`. */
  attachPorts(base: number, length: number, device: BusDevice, name: string): void {
    this.ports.insert(base, length, device, name);
  }

  /** Attaches `device` to the MMIO range [base, base+length). */
  attachMmio(base: number, length: number, device: BusDevice, name: string): void {
    this.mmio.insert(base, length, device, name);
  }

  pioRead(port: number, size: AccessSize): number {
    return this.ports.read(port, size);
  }

  pioWrite(port: number, size: AccessSize, value: number): void {
    this.ports.write(port, size, value);
  }

  mmioRead(address: number, size: AccessSize): number {
    return this.mmio.read(address, size);
  }

  mmioWrite(address: number, size: AccessSize, value: number): void {
    this.mmio.write(address, size, value);
  }
}
