/**
 * Host time sources and timers for devices that follow the wall clock or a
 * monotonic counter (RTC, ACPI PM timer). Tests inject fakes; the defaults use
 * the process clock and unref'd timers so that a pending device timer never
 * keeps Node.js alive on its own.
 */

/** Host clocks in milliseconds (fractional: sub-millisecond resolution). */
export interface HostClock {
  /** A monotonic clock; only differences are meaningful. */
  monotonicMs(): number;
  /** Wall-clock time since the Unix epoch (UTC). */
  realtimeMs(): number;
}

/** A scheduled callback that can be cancelled. */
export interface HostTimer {
  cancel(): void;
}

/** Schedules one-shot callbacks. */
export interface HostTimers {
  /** Calls `callback` once after about `delayMs` milliseconds. */
  start(delayMs: number, callback: () => void): HostTimer;
}

/** The process clock: `performance.now()` and its wall-clock origin. */
export const systemClock: HostClock = {
  monotonicMs: () => performance.now(),
  realtimeMs: () => performance.timeOrigin + performance.now(),
};

/** Node.js timers that do not keep the event loop alive (`unref`). */
export const systemTimers: HostTimers = {
  start(delayMs: number, callback: () => void): HostTimer {
    const handle = setTimeout(callback, Math.max(0, delayMs));
    handle.unref();
    return { cancel: () => clearTimeout(handle) };
  },
};

/**
 * A hand-driven clock and timer queue for tests: time moves only when
 * `advance` is called, and due timers fire in order.
 */
export class ManualClock implements HostClock, HostTimers {
  private now: number;
  private readonly pending: { due: number; callback: () => void; cancelled: boolean }[] = [];

  constructor(startRealtimeMs = Date.UTC(2024, 0, 15, 12, 0, 0)) {
    this.now = startRealtimeMs;
  }

  monotonicMs(): number {
    return this.now;
  }

  realtimeMs(): number {
    return this.now;
  }

  start(delayMs: number, callback: () => void): HostTimer {
    const entry = { due: this.now + Math.max(0, delayMs), callback, cancelled: false };
    this.pending.push(entry);
    return { cancel: () => (entry.cancelled = true) };
  }

  /** Number of timers scheduled and neither fired nor cancelled. */
  get activeTimers(): number {
    return this.pending.filter((t) => !t.cancelled).length;
  }

  /** Moves time forward by `ms`, firing due timers at their due time. */
  advance(ms: number): void {
    const end = this.now + ms;
    for (;;) {
      let next: (typeof this.pending)[number] | undefined;
      for (const t of this.pending) if (!t.cancelled && t.due <= end && (next === undefined || t.due < next.due)) next = t;
      if (next === undefined) break;
      next.cancelled = true;
      this.now = Math.max(this.now, next.due);
      next.callback();
    }
    for (let i = this.pending.length - 1; i >= 0; i--) if (this.pending[i].cancelled) this.pending.splice(i, 1);
    this.now = end;
  }

  /** Sets the absolute time without firing timers (for sub-millisecond positioning). */
  set(ms: number): void {
    this.now = ms;
  }
}
