/**
 * Helpers shared by the device unit tests: an interrupt controller that
 * records every level change, and a collector for system events.
 */

import { InterruptLine, type InterruptController } from '../machine/interrupts.js';
import type { SystemEvent } from './system-event.js';

/** Records the level of every GSI and counts rising edges. */
export class RecordingInterruptController implements InterruptController {
  readonly levels = new Map<number, boolean>();
  readonly risingEdges = new Map<number, number>();
  readonly msis: { address: number; data: number }[] = [];

  setIrq(gsi: number, level: boolean): void {
    if (level && !this.levels.get(gsi)) this.risingEdges.set(gsi, (this.risingEdges.get(gsi) ?? 0) + 1);
    this.levels.set(gsi, level);
  }

  signalMsi(address: number, data: number): void {
    this.msis.push({ address, data });
  }

  level(gsi: number): boolean {
    return this.levels.get(gsi) ?? false;
  }

  edges(gsi: number): number {
    return this.risingEdges.get(gsi) ?? 0;
  }

  line(gsi: number): InterruptLine {
    return new InterruptLine(this, gsi);
  }
}

/** Collects system events in order. */
export class EventLog {
  readonly events: SystemEvent[] = [];
  readonly sink = (event: SystemEvent): void => {
    this.events.push(event);
  };
}
