/**
 * A minimal WebAssembly binary emitter for the soft CPU's block translator:
 * one module with one imported memory (`env.mem`, shared or not), optionally
 * an imported function table (`env.tbl`, for call_indirect), and one
 * exported function `run`, built from i32/i64/f64 instructions, locals,
 * structured control flow, loads/stores with constant offsets and
 * call_indirect.
 * Only what the translator needs; the encoding follows the WebAssembly 1.0
 * binary format (LEB128 integers, sections 1/2/3/7/10).
 */

/** Value types. */
export const I32 = 0x7f;
export const I64 = 0x7e;
export const F64 = 0x7c;
/** Block type of a block/loop/if without results. */
export const VOID = 0x40;

/** Opcodes used by the translator. */
export const Op = {
  unreachable: 0x00, block: 0x02, loop: 0x03, if: 0x04, else: 0x05, end: 0x0b, br: 0x0c, brIf: 0x0d, return: 0x0f,
  callIndirect: 0x11, drop: 0x1a, select: 0x1b,
  localGet: 0x20, localSet: 0x21, localTee: 0x22,
  i32Load: 0x28, i64Load: 0x29, f64Load: 0x2b, i64Load8U: 0x31, i64Load16U: 0x33, i64Load32U: 0x35, i64Load32S: 0x34,
  i32Store: 0x36, i64Store: 0x37, i64Store8: 0x3c, i64Store16: 0x3d, i64Store32: 0x3e, i32Store8: 0x3a,
  i32Const: 0x41, i64Const: 0x42,
  i32Eqz: 0x45, i32Eq: 0x46, i32Ne: 0x47, i32LtS: 0x48, i32LtU: 0x49, i32GtS: 0x4a, i32GtU: 0x4b, i32LeS: 0x4c, i32LeU: 0x4d, i32GeS: 0x4e, i32GeU: 0x4f,
  i64Eqz: 0x50, i64Eq: 0x51, i64Ne: 0x52, i64LtS: 0x53, i64LtU: 0x54, i64GtS: 0x55, i64GtU: 0x56, i64LeS: 0x57, i64LeU: 0x58, i64GeS: 0x59, i64GeU: 0x5a,
  f64Eq: 0x61, f64Ne: 0x62, f64Ge: 0x66,
  i32Add: 0x6a, i32Sub: 0x6b, i32Mul: 0x6c, i32And: 0x71, i32Or: 0x72, i32Xor: 0x73, i32Shl: 0x74, i32ShrS: 0x75, i32ShrU: 0x76, i32Rotl: 0x77, i32Rotr: 0x78,
  i64Add: 0x7c, i64Sub: 0x7d, i64Mul: 0x7e, i64DivS: 0x7f, i64DivU: 0x80, i64RemS: 0x81, i64RemU: 0x82, i64And: 0x83, i64Or: 0x84, i64Xor: 0x85, i64Shl: 0x86, i64ShrS: 0x87, i64ShrU: 0x88, i64Rotl: 0x89, i64Rotr: 0x8a,
  i32Popcnt: 0x69,
  i32WrapI64: 0xa7, i32TruncF64U: 0xab, i64TruncF64S: 0xb0, i64ExtendI32S: 0xac, i64ExtendI32U: 0xad, f64ConvertI32U: 0xb8, f64ConvertI64S: 0xb9,
} as const;

/** Appends bytes of one function body: opcodes, immediates and memory arguments. */
export class CodeWriter {
  private bytes: number[] = [];

  op(code: number): this { this.bytes.push(code); return this; }
  u32(v: number): this { pushU32(this.bytes, v); return this; }
  i32Const(v: number): this { this.bytes.push(Op.i32Const); pushS64(this.bytes, v | 0, v >> 31); return this; }
  /** i64.const of the signed value hi:lo (two int32 halves). */
  i64Const(lo: number, hi: number): this {
    this.bytes.push(Op.i64Const);
    pushS64(this.bytes, lo, hi);
    return this;
  }
  get(local: number): this { return this.op(Op.localGet).u32(local); }
  set(local: number): this { return this.op(Op.localSet).u32(local); }
  tee(local: number): this { return this.op(Op.localTee).u32(local); }
  /** A load or store with alignment exponent `align` and constant offset. */
  mem(code: number, align: number, offset: number): this { return this.op(code).u32(align).u32(offset); }
  block(type = VOID): this { return this.op(Op.block).op(type); }
  loop(type = VOID): this { return this.op(Op.loop).op(type); }
  if(type = VOID): this { return this.op(Op.if).op(type); }
  else(): this { return this.op(Op.else); }
  end(): this { return this.op(Op.end); }
  br(depth: number): this { return this.op(Op.br).u32(depth); }
  brIf(depth: number): this { return this.op(Op.brIf).u32(depth); }
  /** call_indirect through table 0 with extra type `typeIndex` (see FunctionSpec.callTypes). */
  callIndirect(typeIndex: number): this { return this.op(Op.callIndirect).u32(typeIndex).u32(0); }
  toArray(): number[] { return this.bytes; }
}

/** One exported function `run` of type (params) -> results with extra locals. */
export interface FunctionSpec {
  params: number[];
  results: number[];
  /** Extra locals after the parameters, as value types in order. */
  locals: number[];
  body: CodeWriter;
  /** Signatures call_indirect uses: type index 1 + i (type 0 is the function's own). */
  callTypes?: Array<{ params: number[]; results: number[] }>;
  /** Import a function table as `env.tbl` (table 0). */
  table?: boolean;
}

/** The imported memory: size in 64 KiB pages, shared or not (shared memories need `maximum`). */
export interface MemorySpec {
  pages: number;
  shared: boolean;
}

/** Builds the module bytes: `env.mem` imported, `run` exported. */
export function emitModule(memory: MemorySpec, fn: FunctionSpec): Uint8Array {
  return emitFunctions(memory, [fn], ['run']);
}

/**
 * Builds one module of several functions of the same signature (and the same
 * call_indirect types and table import as the first): `names[i]` exports
 * `fns[i]`. Several translated blocks share one module this way.
 */
export function emitFunctions(memory: MemorySpec, fns: readonly FunctionSpec[], names: readonly string[]): Uint8Array {
  const first = fns[0];
  const out: number[] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  const types = [{ params: first.params, results: first.results }, ...(first.callTypes ?? [])];
  const type: number[] = [];
  pushU32(type, types.length);
  for (const t of types) {
    type.push(0x60);
    pushU32(type, t.params.length); type.push(...t.params);
    pushU32(type, t.results.length); type.push(...t.results);
  }
  section(out, 1, type);
  const imp: number[] = [first.table === true ? 2 : 1];
  pushName(imp, 'env'); pushName(imp, 'mem');
  imp.push(0x02, memory.shared ? 0x03 : 0x01);
  pushU32(imp, memory.pages); pushU32(imp, memory.pages);
  if (first.table === true) {
    pushName(imp, 'env'); pushName(imp, 'tbl');
    imp.push(0x01, 0x70, 0x00, 0x00); // funcref table, minimum 0, no maximum
  }
  section(out, 2, imp);
  const funcs: number[] = [];
  pushU32(funcs, fns.length);
  for (let i = 0; i < fns.length; i++) funcs.push(0);
  section(out, 3, funcs);
  const exp: number[] = [];
  pushU32(exp, fns.length);
  for (let i = 0; i < fns.length; i++) { pushName(exp, names[i]); exp.push(0x00); pushU32(exp, i); }
  section(out, 7, exp);
  const code: number[] = [];
  pushU32(code, fns.length);
  for (const fn of fns) {
    const body: number[] = [];
    // Locals, grouped by runs of the same type.
    const groups: Array<[number, number]> = [];
    for (const t of fn.locals) {
      const last = groups[groups.length - 1];
      if (last !== undefined && last[1] === t) last[0]++;
      else groups.push([1, t]);
    }
    pushU32(body, groups.length);
    for (const [n, t] of groups) { pushU32(body, n); body.push(t); }
    for (const b of fn.body.toArray()) body.push(b);
    body.push(Op.end);
    pushU32(code, body.length);
    for (const b of body) code.push(b);
  }
  section(out, 10, code);
  return Uint8Array.from(out);
}

/** The WebAssembly API parts used here (the project's TypeScript libs carry no wasm types). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Table: new (descriptor: { element: 'anyfunc'; initial: number }) => FunctionTable;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/** A WebAssembly.Table of functions (the parts used here). */
export interface FunctionTable {
  readonly length: number;
  grow(delta: number): number;
  set(index: number, value: unknown): void;
}

/** A new function table of `initial` null entries. */
export function newFunctionTable(initial: number): FunctionTable {
  return new wasm.Table({ element: 'anyfunc', initial });
}

/** Compiles and instantiates a module from emitFunctions against `memory`; returns its exports by name. */
export function instantiateFunctions(bytes: Uint8Array, memory: object): Record<string, unknown> {
  return new wasm.Instance(new wasm.Module(bytes), { env: { mem: memory } }).exports;
}

/** Compiles and instantiates a module from emitModule against `memory` (and `table`); returns its `run`. */
export function instantiate(bytes: Uint8Array, memory: object, table?: object): (...args: number[]) => number {
  const instance = new wasm.Instance(new wasm.Module(bytes), { env: { mem: memory, tbl: table } });
  return instance.exports.run as (...args: number[]) => number;
}

function section(out: number[], id: number, payload: number[]): void {
  out.push(id);
  pushU32(out, payload.length);
  for (const b of payload) out.push(b);
}

function pushName(out: number[], name: string): void {
  pushU32(out, name.length);
  for (let i = 0; i < name.length; i++) out.push(name.charCodeAt(i));
}

function pushU32(out: number[], v: number): void {
  let x = v >>> 0;
  do {
    const b = x & 0x7f;
    x >>>= 7;
    out.push(x !== 0 ? b | 0x80 : b);
  } while (x !== 0);
}

/** Signed LEB128 of the 64-bit value hi:lo (two int32 halves), without BigInt. */
function pushS64(out: number[], lo: number, hi: number): void {
  let l = lo >>> 0;
  let h = hi | 0;
  for (;;) {
    const b = l & 0x7f;
    // Arithmetic shift of hi:lo right by 7.
    l = ((l >>> 7) | (h << 25)) >>> 0;
    h >>= 7;
    const done = (h === 0 && l === 0 && (b & 0x40) === 0) || (h === -1 && l === 0xffffffff && (b & 0x40) !== 0);
    out.push(done ? b : b | 0x80);
    if (done) return;
  }
}
