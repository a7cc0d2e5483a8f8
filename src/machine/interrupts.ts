/**
 * Interrupt routing that works on either engine.
 *
 * Devices hold an `InterruptLine` (a GSI wired to the IOAPIC and, for GSIs
 * below 16, the legacy PIC) or send MSIs. Both go to the engine's
 * `InterruptController`: KVM's in-kernel irqchip under `kvm`, the TypeScript
 * APIC/IOAPIC/PIC models under `soft`. Devices never know which.
 */

/** What an engine offers for raising interrupts. */
export interface InterruptController {
  /** Drives GSI `gsi` to `level` (true = asserted). Edge-triggered sources pulse it. */
  setIrq(gsi: number, level: boolean): void;
  /** Delivers a message-signalled interrupt (address and data as written by the guest). */
  signalMsi(address: number, data: number): void;
}

/**
 * Forwards to the engine's controller once the VM exists. Devices are built
 * before the engine, so they are handed this router at construction.
 */
export class InterruptRouter implements InterruptController {
  private target: InterruptController | undefined;
  private readonly levels = new Map<number, boolean>();

  /** Connects the engine's controller and replays every asserted line. */
  attach(target: InterruptController): void {
    this.target = target;
    for (const [gsi, level] of this.levels) if (level) target.setIrq(gsi, true);
  }

  detach(): void {
    this.target = undefined;
  }

  setIrq(gsi: number, level: boolean): void {
    this.levels.set(gsi, level);
    this.target?.setIrq(gsi, level);
  }

  signalMsi(address: number, data: number): void {
    this.target?.signalMsi(address, data);
  }

  /** A line bound to one GSI. */
  line(gsi: number): InterruptLine {
    return new InterruptLine(this, gsi);
  }
}

/** One interrupt line (GSI) as a device sees it. */
export class InterruptLine {
  private level = false;

  constructor(
    private readonly controller: InterruptController,
    readonly gsi: number,
  ) {}

  /** Sets the line level; only changes are forwarded. */
  set(level: boolean): void {
    if (level === this.level) return;
    this.level = level;
    this.controller.setIrq(this.gsi, level);
  }

  raise(): void {
    this.set(true);
  }

  lower(): void {
    this.set(false);
  }

  /** Raises and lowers the line: one edge for an edge-triggered input. */
  pulse(): void {
    this.controller.setIrq(this.gsi, true);
    this.controller.setIrq(this.gsi, false);
    this.level = false;
  }

  get asserted(): boolean {
    return this.level;
  }
}
