/**
 * A small encoder for ACPI Machine Language (ACPI 6.5, chapter 20 "ACPI
 * Machine Language Specification") and for the resource descriptors used in
 * _CRS buffers (chapter 6.4). It covers what typevisor's DSDT needs: names,
 * scopes, devices, packages, buffers, integers, strings, EISA IDs, simple
 * methods returning a constant, and IO/IRQ/address-space descriptors.
 *
 * Every builder returns the encoded bytes as a Uint8Array; compose them by
 * passing the results to the container builders.
 */

/** An encoded AML fragment. */
export type Aml = Uint8Array;

const ZERO_OP = 0x00;
const ONE_OP = 0x01;
const NAME_OP = 0x08;
const BYTE_PREFIX = 0x0a;
const WORD_PREFIX = 0x0b;
const DWORD_PREFIX = 0x0c;
const STRING_PREFIX = 0x0d;
const QWORD_PREFIX = 0x0e;
const SCOPE_OP = 0x10;
const BUFFER_OP = 0x11;
const PACKAGE_OP = 0x12;
const METHOD_OP = 0x14;
const DUAL_NAME_PREFIX = 0x2e;
const MULTI_NAME_PREFIX = 0x2f;
const EXT_OP_PREFIX = 0x5b;
const DEVICE_OP = 0x82;
const ROOT_CHAR = 0x5c;
const PARENT_PREFIX_CHAR = 0x5e;
const RETURN_OP = 0xa4;

/** Thrown for names or values AML cannot encode (a programming error, not guest input). */
export class AmlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AmlError';
  }
}

/** Concatenates fragments. */
export function concat(...parts: readonly Aml[]): Aml {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Encodes a 4-character NameSeg, padding short names with '_'. */
export function nameSeg(seg: string): Aml {
  if (!/^[A-Z_][A-Z0-9_]{0,3}$/.test(seg)) throw new AmlError(`invalid AML name segment "${seg}"`);
  const padded = seg.padEnd(4, '_');
  return Uint8Array.from(padded, (c) => c.charCodeAt(0));
}

/** Encodes a NameString such as "_HID", "\\_SB.PCI0" or "^FOO". */
export function nameString(path: string): Aml {
  let rest = path;
  const prefix: number[] = [];
  if (rest.startsWith('\\')) {
    prefix.push(ROOT_CHAR);
    rest = rest.slice(1);
  } else {
    while (rest.startsWith('^')) {
      prefix.push(PARENT_PREFIX_CHAR);
      rest = rest.slice(1);
    }
  }
  const segs = rest === '' ? [] : rest.split('.');
  const encoded = segs.map(nameSeg);
  let head: number[];
  if (segs.length === 0) head = [ZERO_OP]; // NullName
  else if (segs.length === 1) head = [];
  else if (segs.length === 2) head = [DUAL_NAME_PREFIX];
  else if (segs.length <= 255) head = [MULTI_NAME_PREFIX, segs.length];
  else throw new AmlError(`AML name "${path}" has too many segments`);
  return concat(Uint8Array.from(prefix), Uint8Array.from(head), ...encoded);
}

/**
 * Encodes a PkgLength for a body of `bodyLength` bytes. The encoded length
 * counts the PkgLength bytes themselves.
 */
export function pkgLength(bodyLength: number): Aml {
  for (let bytes = 1; bytes <= 4; bytes++) {
    const total = bodyLength + bytes;
    if (bytes === 1) {
      if (total <= 0x3f) return Uint8Array.of(total);
      continue;
    }
    if (total < 2 ** (4 + 8 * (bytes - 1))) {
      const out = new Uint8Array(bytes);
      out[0] = ((bytes - 1) << 6) | (total & 0xf);
      for (let i = 1; i < bytes; i++) out[i] = (total >>> (4 + 8 * (i - 1))) & 0xff;
      return out;
    }
  }
  throw new AmlError(`AML package of ${bodyLength} bytes is too long`);
}

function withPkgLength(op: readonly number[], ...body: Aml[]): Aml {
  const content = concat(...body);
  return concat(Uint8Array.from(op), pkgLength(content.length), content);
}

/** Encodes an integer constant with the smallest prefix (Zero/One/Byte/Word/DWord/QWord). */
export function integer(value: number | bigint): Aml {
  const v = BigInt(value);
  if (v < 0n || v > 0xffffffffffffffffn) throw new AmlError(`AML integer ${v} is out of range`);
  if (v === 0n) return Uint8Array.of(ZERO_OP);
  if (v === 1n) return Uint8Array.of(ONE_OP);
  const le = (n: number, op: number): Aml => {
    const out = new Uint8Array(n + 1);
    out[0] = op;
    for (let i = 0; i < n; i++) out[i + 1] = Number((v >> BigInt(8 * i)) & 0xffn);
    return out;
  };
  if (v <= 0xffn) return le(1, BYTE_PREFIX);
  if (v <= 0xffffn) return le(2, WORD_PREFIX);
  if (v <= 0xffffffffn) return le(4, DWORD_PREFIX);
  return le(8, QWORD_PREFIX);
}

/** Encodes an ASCII string constant. */
export function string(text: string): Aml {
  if (!/^[\x01-\x7f]*$/.test(text)) throw new AmlError('AML strings must be ASCII without NUL');
  return concat(Uint8Array.of(STRING_PREFIX), Uint8Array.from(text, (c) => c.charCodeAt(0)), Uint8Array.of(0));
}

/** The 32-bit compressed EISA ID of a PNP id such as "PNP0501", as an integer. */
export function eisaIdValue(id: string): number {
  if (!/^[A-Z]{3}[0-9A-F]{4}$/.test(id)) throw new AmlError(`invalid EISA id "${id}"`);
  const letters = ((id.charCodeAt(0) - 0x40) << 10) | ((id.charCodeAt(1) - 0x40) << 5) | (id.charCodeAt(2) - 0x40);
  const product = parseInt(id.slice(3), 16);
  // Stored big-endian: the letters word, then the product word.
  return ((letters >> 8) | ((letters & 0xff) << 8) | ((product >> 8) << 16) | ((product & 0xff) << 24)) >>> 0;
}

/** EISAID("PNP0501") as an AML integer. */
export function eisaId(id: string): Aml {
  return integer(eisaIdValue(id));
}

/** Name(path, data). */
export function name(path: string, data: Aml): Aml {
  return concat(Uint8Array.of(NAME_OP), nameString(path), data);
}

/** Scope(path) { body }. */
export function scope(path: string, ...body: Aml[]): Aml {
  const content = concat(nameString(path), ...body);
  return concat(Uint8Array.of(SCOPE_OP), pkgLength(content.length), content);
}

/** Device(path) { body }. */
export function device(path: string, ...body: Aml[]): Aml {
  const content = concat(nameString(path), ...body);
  return concat(Uint8Array.of(EXT_OP_PREFIX, DEVICE_OP), pkgLength(content.length), content);
}

/** Package(n) { elements } with up to 255 elements (integers, strings, packages, buffers). */
export function packageOf(...elements: Aml[]): Aml {
  if (elements.length > 255) throw new AmlError('AML Package has more than 255 elements');
  return withPkgLength([PACKAGE_OP], Uint8Array.of(elements.length), ...elements);
}

/** Buffer() { bytes }. */
export function buffer(bytes: Uint8Array): Aml {
  return withPkgLength([BUFFER_OP], integer(bytes.length), bytes);
}

/** Method(path, 0, NotSerialized) { Return(value) }: a method returning a constant. */
export function methodReturning(path: string, value: Aml): Aml {
  const flags = 0; // ArgCount 0, NotSerialized, SyncLevel 0
  return withPkgLength([METHOD_OP], nameString(path), Uint8Array.of(flags), Uint8Array.of(RETURN_OP), value);
}

// ---- Resource descriptors (for _CRS) ----

const END_TAG = 0x79;

/** ResourceTemplate() { descriptors }: a Buffer holding the descriptors and an End Tag. */
export function resourceTemplate(...descriptors: Uint8Array[]): Aml {
  // End Tag: checksum 0 means "treat as checksum OK".
  return buffer(concat(...descriptors, Uint8Array.of(END_TAG, 0)));
}

/** IO(Decode16, min, max, alignment, length): a fixed or relocatable 16-bit I/O port range. */
export function ioPort(min: number, max: number, alignment: number, length: number): Uint8Array {
  return Uint8Array.of(0x47, 0x01, min & 0xff, min >> 8, max & 0xff, max >> 8, alignment, length);
}

/** IRQNoFlags() { irqs }: ISA edge-triggered, active-high interrupts. */
export function irqNoFlags(...irqs: number[]): Uint8Array {
  let mask = 0;
  for (const irq of irqs) {
    if (irq < 0 || irq > 15) throw new AmlError(`ISA IRQ ${irq} out of range`);
    mask |= 1 << irq;
  }
  return Uint8Array.of(0x22, mask & 0xff, mask >> 8);
}

/** Address-space resource types. */
const RESOURCE_MEMORY = 0;
const RESOURCE_IO = 1;
const RESOURCE_BUS = 2;
/** General flags: MinFixed | MaxFixed, positive decode, ResourceProducer. */
const PRODUCER_FIXED = 0x0c;

function wordAddressSpace(type: number, typeFlags: number, min: number, max: number, length: number): Uint8Array {
  const out = new Uint8Array(16);
  const view = new DataView(out.buffer);
  out[0] = 0x88;
  view.setUint16(1, 13, true);
  out[3] = type;
  out[4] = PRODUCER_FIXED;
  out[5] = typeFlags;
  view.setUint16(6, 0, true); // granularity
  view.setUint16(8, min, true);
  view.setUint16(10, max, true);
  view.setUint16(12, 0, true); // translation offset
  view.setUint16(14, length, true);
  return out;
}

/** WordBusNumber(ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, min, max, 0, max-min+1). */
export function wordBusNumber(min: number, max: number): Uint8Array {
  return wordAddressSpace(RESOURCE_BUS, 0, min, max, max - min + 1);
}

/** WordIO(ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, 0, min, max, 0, max-min+1). */
export function wordIo(min: number, max: number): Uint8Array {
  const ENTIRE_RANGE = 3;
  return wordAddressSpace(RESOURCE_IO, ENTIRE_RANGE, min, max, max - min + 1);
}

/** DWordMemory(ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite, 0, min, max, 0, len). */
export function dwordMemory(min: number, max: number): Uint8Array {
  const out = new Uint8Array(26);
  const view = new DataView(out.buffer);
  out[0] = 0x87;
  view.setUint16(1, 23, true);
  out[3] = RESOURCE_MEMORY;
  out[4] = PRODUCER_FIXED;
  out[5] = 0x01; // read/write, non-cacheable
  view.setUint32(6, 0, true);
  view.setUint32(10, min >>> 0, true);
  view.setUint32(14, max >>> 0, true);
  view.setUint32(18, 0, true);
  view.setUint32(22, (max - min + 1) >>> 0, true);
  return out;
}
