/**
 * An interactive session with the Debian guest on the serial console: boots
 * typevisor (optionally through a wrapper command such as `ip netns exec`),
 * waits for console text, types commands, and collects the exit status.
 * Shared by the integration tests that drive a real Linux guest.
 */

import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { CLI } from './harness.js';

export interface SessionEnd {
  output: string;
  status: number | null;
  signal: NodeJS.Signals | null;
}

export class LinuxSession {
  private readonly child: ChildProcessWithoutNullStreams;
  private text = '';
  /** Output length after each chunk and when (performance.now()) it arrived: timing of console text as the host saw it. */
  private readonly chunkEnds: number[] = [];
  private readonly chunkTimes: number[] = [];
  private waiters: { pattern: RegExp; from: number; resolve: (m: RegExpExecArray) => void }[] = [];
  private readonly ended: Promise<SessionEnd>;

  private constructor(command: readonly string[]) {
    this.child = spawn(command[0], command.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stdin.on('error', () => undefined);
    const take = (d: Buffer): void => {
      this.text += d.toString('latin1');
      this.chunkEnds.push(this.text.length);
      this.chunkTimes.push(performance.now());
      this.waiters = this.waiters.filter((w) => {
        const m = w.pattern.exec(this.text.slice(w.from));
        if (m !== null) w.resolve(m);
        return m === null;
      });
    };
    this.child.stdout.on('data', take);
    this.child.stderr.on('data', take);
    this.ended = new Promise((resolve) => {
      this.child.on('error', (e) => resolve({ output: `${this.text}\n${String(e)}`, status: null, signal: null }));
      this.child.on('close', (status, signal) => resolve({ output: this.text, status, signal }));
    });
  }

  /** Starts `typevisor run` with `args`; `wrapper` (e.g. ['ip', 'netns', 'exec', 'ns']) runs it inside another command. */
  static typevisor(args: readonly string[], wrapper: readonly string[] = []): LinuxSession {
    return new LinuxSession([...wrapper, process.execPath, CLI, 'run', ...args]);
  }

  /** A session with any VMM command line whose stdio is the guest's serial console (e.g. QEMU with `-serial stdio`). */
  static command(command: readonly string[]): LinuxSession {
    return new LinuxSession(command);
  }

  /** When (performance.now()) the output byte at `offset` arrived; undefined if it has not. */
  arrivalTime(offset: number): number | undefined {
    let lo = 0;
    let hi = this.chunkEnds.length - 1;
    if (hi < 0 || offset >= this.chunkEnds[hi]) return undefined;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.chunkEnds[mid] > offset) hi = mid;
      else lo = mid + 1;
    }
    return this.chunkTimes[lo];
  }

  get output(): string {
    return this.text;
  }

  /** Resolves with the first match of `pattern` in output after offset `from` (default: all output); rejects after `timeoutMs` or when the VMM exits first. */
  waitFor(pattern: RegExp, timeoutMs: number, from = 0): Promise<RegExpExecArray> {
    const now = pattern.exec(this.text.slice(from));
    if (now !== null) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${String(pattern)} within ${timeoutMs} ms; console tail:\n${this.text.slice(-3000)}`)), timeoutMs);
      void this.ended.then(() => {
        clearTimeout(timer);
        reject(new Error(`the VMM exited before ${String(pattern)}; console tail:\n${this.text.slice(-3000)}`));
      });
      this.waiters.push({
        pattern,
        from,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
      });
    });
  }

  /** Types `line` and a newline on the guest console; returns the output offset before it, for `waitFor(…, from)`. */
  type(line: string): number {
    const at = this.text.length;
    this.child.stdin.write(line + '\n');
    return at;
  }

  /** Waits for the VMM to exit (SIGKILL after `timeoutMs`). */
  async end(timeoutMs: number): Promise<SessionEnd> {
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    try {
      return await this.ended;
    } finally {
      clearTimeout(timer);
    }
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}
