/** Tests for the POST port sink. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PostPort } from './post-port.js';

void test('port 0x80 drops writes (keeping the last code) and reads all ones', () => {
  const codes: number[] = [];
  const port = new PostPort((c) => codes.push(c));
  port.write(0, 1, 0x1234);
  port.write(0, 1, 0x55);
  assert.equal(port.lastCode, 0x55);
  assert.deepEqual(codes, [0x34, 0x55]);
  assert.equal(port.read(0, 1), 0xff);
  assert.equal(port.read(0, 2), 0xffff);
  assert.equal(port.read(0, 4), 0xffffffff);
});
