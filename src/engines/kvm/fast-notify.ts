/**
 * The kvm engine's `FastNotify`: virtio queue notifications through
 * KVM_IOEVENTFD and MSI-X interrupts through KVM_IRQFD on MSI routes.
 *
 * ioeventfd: KVM completes a matching guest MMIO write inside the kernel and
 * signals an eventfd, so the writing vCPU does not exit to user space (an AP
 * avoids its mailbox round trip to the machine thread). The run-model watcher
 * thread polls the eventfd itself (up to 32 per VM): when it is signalled the
 * watcher drains it and kicks vCPU 0, and the slice loop runs the handler on
 * EINTR and re-enters KVM_RUN, without ending the slice. Beyond 32 watches the
 * eventfd is watched by a uv_poll_t on the event loop instead (the slice ends
 * and the handler runs in the next loop turn).
 *
 * Measured on this host (fast-notify.test.ts): see docs/virtio.md. The
 * uv_poll path cost ~79 µs per notify against ~14 µs for an MMIO exit; the
 * engine enables ioeventfd only on request
 * (KvmEngineOptions.ioeventfd) and `watchMmioWrite` otherwise throws, which
 * devices treat as "keep the ordinary exit".
 *
 * irqfd: each MSI route is a GSI (from 24, above the IOAPIC pins) with a
 * KVM_IRQ_ROUTING_MSI entry holding the guest's address/data; writing 1 to its
 * eventfd injects the interrupt. KVM_SET_GSI_ROUTING replaces the whole table,
 * so this class owns it: the PC routes (pcIrqRouting) followed by the MSI ones.
 */

import type { FastMsiRoute, FastNotify } from '../engine.js';
import { IOAPIC_PINS } from '../../machine/layout.js';
import { Ioctl } from './abi.js';
import type { KvmNative } from './native.js';
import { encodeGsiRouting, encodeIoeventfd, encodeIrqfd, type IrqchipRoute, type MsiRouteEntry } from './structs.js';

/** GSIs available for MSI routes. */
const FIRST_MSI_GSI = IOAPIC_PINS;
const LAST_MSI_GSI = 1023;

export class KvmFastNotify implements FastNotify {
  private readonly msiRoutes = new Map<number, MsiRouteEntry>();
  private readonly undo = new Set<() => void>();
  private disposed = false;
  /** Counters: notifications delivered through ioeventfd, interrupts fired through irqfd, routing table updates. */
  readonly stats = { ioeventfdSignals: 0, irqfdFires: 0, routingUpdates: 0, inSliceWatches: 0 };

  constructor(
    private readonly native: KvmNative,
    private readonly vmFd: number,
    private readonly baseRoutes: readonly IrqchipRoute[],
    /** Whether watchMmioWrite uses KVM_IOEVENTFD; when false it throws and callers keep ordinary exits. */
    private readonly ioeventfd = true,
    /**
     * Has the VM's slice loop run a handler when an eventfd is signalled, without
     * ending vCPU 0's slice (KvmVm.watchEventfdInSlice); undefined → it is full,
     * and the eventfd is watched on the event loop instead.
     */
    private readonly watchInSlice?: (fd: number, handler: () => void) => (() => void) | undefined,
  ) {}

  watchMmioWrite(address: number, length: 1 | 2 | 4 | 8, handler: () => void): () => void {
    if (this.disposed) throw new Error('fast notify disposed');
    if (!this.ioeventfd) throw new Error('ioeventfd is turned off for this VM');
    const n = this.native;
    const fd = n.eventfdCreate();
    try {
      n.ioctlBytes(this.vmFd, Ioctl.IOEVENTFD, encodeIoeventfd(address, length, fd, false));
    } catch (e) {
      n.close(fd);
      throw e;
    }
    const counted = (): void => {
      this.stats.ioeventfdSignals++;
      handler();
    };
    const inSlice = this.watchInSlice?.(fd, counted);
    const poll = inSlice === undefined ? n.pollEventfd(fd, counted) : undefined;
    if (inSlice !== undefined) this.stats.inSliceWatches++;
    let done = false;
    const undo = (): void => {
      if (done) return;
      done = true;
      this.undo.delete(undo);
      try {
        n.ioctlBytes(this.vmFd, Ioctl.IOEVENTFD, encodeIoeventfd(address, length, fd, true));
      } catch {
        // the VM may already be gone
      }
      if (poll !== undefined) n.pollClose(poll);
      inSlice?.();
      n.close(fd);
    };
    this.undo.add(undo);
    return undo;
  }

  createMsiRoute(): FastMsiRoute {
    if (this.disposed) throw new Error('fast notify disposed');
    let gsi = FIRST_MSI_GSI;
    while (this.msiRoutes.has(gsi)) gsi++;
    if (gsi > LAST_MSI_GSI) throw new Error('no free GSI for an MSI route');
    const n = this.native;
    const entry: MsiRouteEntry = { gsi, address: 0xfee00000, data: 0 };
    this.msiRoutes.set(gsi, entry);
    const fd = n.eventfdCreate();
    try {
      this.applyRouting();
      n.ioctlBytes(this.vmFd, Ioctl.IRQFD, encodeIrqfd(fd, gsi, false));
    } catch (e) {
      this.msiRoutes.delete(gsi);
      n.close(fd);
      throw e;
    }
    let active = true;
    const dispose = (): void => {
      if (!active) return;
      active = false;
      this.undo.delete(dispose);
      try {
        n.ioctlBytes(this.vmFd, Ioctl.IRQFD, encodeIrqfd(fd, gsi, true));
      } catch {
        // the VM may already be gone
      }
      n.close(fd);
      this.msiRoutes.delete(gsi);
      if (!this.disposed) this.tryApplyRouting();
    };
    this.undo.add(dispose);
    return {
      update: (address, data) => {
        if (!active || (entry.address === address && entry.data === data)) return;
        entry.address = address;
        entry.data = data >>> 0;
        this.tryApplyRouting();
      },
      fire: () => {
        if (!active) return;
        this.stats.irqfdFires++;
        n.eventfdSignal(fd);
      },
      dispose,
    };
  }

  private applyRouting(): void {
    this.stats.routingUpdates++;
    this.native.ioctlBytes(this.vmFd, Ioctl.SET_GSI_ROUTING, encodeGsiRouting(this.baseRoutes, [...this.msiRoutes.values()]));
  }

  private tryApplyRouting(): void {
    try {
      this.applyRouting();
    } catch {
      // a guest-chosen MSI address KVM rejects: the route keeps its old message
    }
  }

  /** Removes every watch and route. Idempotent. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const undo of [...this.undo]) undo();
    this.msiRoutes.clear();
  }
}
