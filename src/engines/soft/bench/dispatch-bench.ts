/**
 * Micro-benchmark behind the soft CPU's dispatch choice: a `switch` on a
 * decoded opcode number against a table of handler functions, both over the
 * same register file (Int32Array) and the same synthetic instruction stream.
 * Run: node dist/src/engines/soft/bench/dispatch-bench.js
 */

const N_OPS = 48;
const PROGRAM_LENGTH = 4096;

class Machine {
  readonly regs = new Int32Array(16);
  flagsResult = 0;
  ip = 0;
}

type Handler = (m: Machine, a: number, b: number) => void;

function makeHandlers(): Handler[] {
  const handlers: Handler[] = [];
  for (let op = 0; op < N_OPS; op++) {
    const k = op;
    switch (op % 6) {
      case 0: handlers.push((m, a, b) => { m.regs[a] = (m.regs[a] + m.regs[b] + k) | 0; m.flagsResult = m.regs[a]!; }); break;
      case 1: handlers.push((m, a, b) => { m.regs[a] = (m.regs[a] - m.regs[b] - k) | 0; m.flagsResult = m.regs[a]!; }); break;
      case 2: handlers.push((m, a, b) => { m.regs[a] = m.regs[a] ^ (m.regs[b] + k); m.flagsResult = m.regs[a]!; }); break;
      case 3: handlers.push((m, a, b) => { m.regs[a] = m.regs[b] << (k & 7); }); break;
      case 4: handlers.push((m, a, _b) => { m.regs[a] = (m.regs[a] + 1) | 0; m.flagsResult = m.regs[a]!; }); break;
      default: handlers.push((m, a, b) => { m.regs[a] = m.regs[b] & (k | 0xff0); m.flagsResult = m.regs[a]!; }); break;
    }
  }
  return handlers;
}

function runTable(m: Machine, ops: Int32Array, args: Int32Array, steps: number, handlers: Handler[]): void {
  for (let i = 0; i < steps; i++) {
    const ip = i & (PROGRAM_LENGTH - 1);
    handlers[ops[ip]](m, args[ip] & 15, args[ip] >>> 4);
  }
}

function runSwitch(m: Machine, ops: Int32Array, args: Int32Array, steps: number): void {
  const r = m.regs;
  for (let i = 0; i < steps; i++) {
    const ip = i & (PROGRAM_LENGTH - 1);
    const a = args[ip] & 15;
    const b = args[ip] >>> 4;
    const op = ops[ip];
    const k = op;
    switch (op % 6) {
      case 0: r[a] = (r[a] + r[b] + k) | 0; m.flagsResult = r[a]!; break;
      case 1: r[a] = (r[a] - r[b] - k) | 0; m.flagsResult = r[a]!; break;
      case 2: r[a] = r[a] ^ (r[b] + k); m.flagsResult = r[a]!; break;
      case 3: r[a] = r[b] << (k & 7); break;
      case 4: r[a] = (r[a] + 1) | 0; m.flagsResult = r[a]!; break;
      default: r[a] = r[b] & (k | 0xff0); m.flagsResult = r[a]!; break;
    }
  }
}

/** A real 48-case switch (each case distinct code), as an interpreter would have. */
function runBigSwitch(m: Machine, ops: Int32Array, args: Int32Array, steps: number, handlers: Handler[]): void {
  const r = m.regs;
  for (let i = 0; i < steps; i++) {
    const ip = i & (PROGRAM_LENGTH - 1);
    const a = args[ip] & 15;
    const b = args[ip] >>> 4;
    switch (ops[ip]) {
      case 0: r[a] = (r[a] + r[b]) | 0; m.flagsResult = r[a]!; break;
      case 1: r[a] = (r[a] - r[b]) | 0; m.flagsResult = r[a]!; break;
      case 2: r[a] = r[a] ^ r[b]; m.flagsResult = r[a]!; break;
      case 3: r[a] = r[b] << 3; break;
      case 4: r[a] = (r[a] + 1) | 0; m.flagsResult = r[a]!; break;
      case 5: r[a] = r[b] & 0xff0; m.flagsResult = r[a]!; break;
      case 6: r[a] = (r[a] + r[b] + 6) | 0; m.flagsResult = r[a]!; break;
      case 7: r[a] = (r[a] - r[b] - 7) | 0; m.flagsResult = r[a]!; break;
      case 8: r[a] = r[a] ^ (r[b] + 8); m.flagsResult = r[a]!; break;
      case 9: r[a] = r[b] << 1; break;
      case 10: r[a] = (r[a] - 1) | 0; m.flagsResult = r[a]!; break;
      case 11: r[a] = r[b] | 0xff0; m.flagsResult = r[a]!; break;
      default: handlers[ops[ip]](m, a, b); break;
    }
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[s.length >> 1];
}

function main(): void {
  const ops = new Int32Array(PROGRAM_LENGTH);
  const args = new Int32Array(PROGRAM_LENGTH);
  let seed = 12345;
  const rnd = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
  const skew = process.argv.includes('--skewed');
  for (let i = 0; i < PROGRAM_LENGTH; i++) {
    ops[i] = skew ? (rnd() % 8 === 0 ? rnd() % N_OPS : rnd() % 12) : rnd() % N_OPS;
    args[i] = rnd() & 0xff;
  }
  const handlers = makeHandlers();
  const steps = 20_000_000;
  const results: Record<string, number[]> = { table: [], switch6: [], switch12plusTable: [] };
  for (let round = 0; round < 5; round++) {
    const m = new Machine();
    let t = performance.now();
    runTable(m, ops, args, steps, handlers);
    results.table.push(steps / (performance.now() - t) / 1000);
    t = performance.now();
    runSwitch(m, ops, args, steps);
    results.switch6.push(steps / (performance.now() - t) / 1000);
    t = performance.now();
    runBigSwitch(m, ops, args, steps, handlers);
    results.switch12plusTable.push(steps / (performance.now() - t) / 1000);
  }
  for (const [k, v] of Object.entries(results)) console.log(`${k}: median ${median(v).toFixed(0)} M dispatches/s`);
}

main();
