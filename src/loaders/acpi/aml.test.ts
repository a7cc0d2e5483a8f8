/** Tests for the AML encoder against encodings worked out from the ACPI 6.5 grammar (chapter 20). */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AmlError, device, eisaIdValue, integer, ioPort, irqNoFlags, methodReturning, name, nameString, packageOf,
  pkgLength, resourceTemplate, scope, string,
} from './aml.js';

const bytes = (a: Uint8Array) => [...a];

void test('PkgLength uses 1-4 bytes and counts itself', () => {
  assert.deepEqual(bytes(pkgLength(0)), [0x01]);
  assert.deepEqual(bytes(pkgLength(0x3e)), [0x3f]);
  // 0x3f body bytes + 2 length bytes = 0x41: lead byte 01xx_0001, then 0x41 >> 4 = 0x04.
  assert.deepEqual(bytes(pkgLength(0x3f)), [0x41, 0x04]);
  assert.deepEqual(bytes(pkgLength(0xffd)), [0x4f, 0xff]);
  // 0xffe + 2 = 0x1000 does not fit 12 bits; 0xffe + 3 = 0x1001 in 3 bytes.
  assert.deepEqual(bytes(pkgLength(0xffe)), [0x81, 0x00, 0x01]);
  assert.deepEqual(bytes(pkgLength(0x100000)), [0xc4, 0x00, 0x00, 0x01]);
  assert.throws(() => pkgLength(0x10000000), AmlError);
});

void test('integers use the smallest encoding', () => {
  assert.deepEqual(bytes(integer(0)), [0x00]);
  assert.deepEqual(bytes(integer(1)), [0x01]);
  assert.deepEqual(bytes(integer(2)), [0x0a, 0x02]);
  assert.deepEqual(bytes(integer(0xff)), [0x0a, 0xff]);
  assert.deepEqual(bytes(integer(0x100)), [0x0b, 0x00, 0x01]);
  assert.deepEqual(bytes(integer(0x12345678)), [0x0c, 0x78, 0x56, 0x34, 0x12]);
  assert.deepEqual(bytes(integer(0x100000000n)), [0x0e, 0, 0, 0, 0, 1, 0, 0, 0]);
  assert.throws(() => integer(-1), AmlError);
});

void test('names: single, dual, multi segment, root and parent prefixes, padding', () => {
  assert.deepEqual(bytes(nameString('_HID')), [0x5f, 0x48, 0x49, 0x44]);
  assert.deepEqual(bytes(nameString('RTC')), [0x52, 0x54, 0x43, 0x5f]);
  assert.deepEqual(bytes(nameString('\\_SB')), [0x5c, 0x5f, 0x53, 0x42, 0x5f]);
  assert.deepEqual(bytes(nameString('\\_SB.PCI0')), [0x5c, 0x2e, ...'_SB_PCI0'].map((c) => (typeof c === 'string' ? c.charCodeAt(0) : c)));
  assert.deepEqual(bytes(nameString('A.B.C')).slice(0, 2), [0x2f, 3]);
  assert.deepEqual(bytes(nameString('^FOO')), [0x5e, 0x46, 0x4f, 0x4f, 0x5f]);
  assert.deepEqual(bytes(nameString('\\')), [0x5c, 0x00]);
  assert.throws(() => nameString('toolong'), AmlError);
  assert.throws(() => nameString('1ABC'), AmlError);
});

void test('EISA ids compress to the values firmware uses', () => {
  assert.equal(eisaIdValue('PNP0A03'), 0x030ad041);
  assert.equal(eisaIdValue('PNP0501'), 0x0105d041);
  assert.equal(eisaIdValue('PNP0303'), 0x0303d041);
  assert.throws(() => eisaIdValue('pnp0501'), AmlError);
});

void test('strings, names, packages, scopes, devices and methods', () => {
  assert.deepEqual(bytes(string('AB')), [0x0d, 0x41, 0x42, 0x00]);
  assert.throws(() => string('é'), AmlError);
  assert.deepEqual(bytes(name('_UID', integer(1))), [0x08, 0x5f, 0x55, 0x49, 0x44, 0x01]);
  assert.deepEqual(bytes(packageOf(integer(0), integer(5))), [0x12, 0x05, 0x02, 0x00, 0x0a, 0x05]);
  assert.deepEqual(bytes(scope('\\_SB')), [0x10, 0x06, 0x5c, 0x5f, 0x53, 0x42, 0x5f]);
  assert.deepEqual(bytes(device('COM1')), [0x5b, 0x82, 0x05, 0x43, 0x4f, 0x4d, 0x31]);
  assert.deepEqual(bytes(methodReturning('_STA', integer(0xf))), [0x14, 0x09, 0x5f, 0x53, 0x54, 0x41, 0x00, 0xa4, 0x0a, 0x0f]);
});

void test('resource templates: IO, IRQNoFlags and the end tag inside a Buffer', () => {
  assert.deepEqual(bytes(ioPort(0x3f8, 0x3f8, 1, 8)), [0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08]);
  assert.deepEqual(bytes(irqNoFlags(4)), [0x22, 0x10, 0x00]);
  assert.deepEqual(bytes(irqNoFlags(8, 1)), [0x22, 0x02, 0x01]);
  assert.throws(() => irqNoFlags(16), AmlError);
  const rt = resourceTemplate(irqNoFlags(4));
  // BufferOp, PkgLength, BufferSize (5), descriptor (3), end tag (2).
  assert.deepEqual(bytes(rt), [0x11, 0x08, 0x0a, 0x05, 0x22, 0x10, 0x00, 0x79, 0x00]);
});
