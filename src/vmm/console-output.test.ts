import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { ConsoleOutputBuffer } from './console-output.js';

test('bytes are delivered in one chunk per event-loop turn, in order', async () => {
  const chunks: string[] = [];
  const out = new ConsoleOutputBuffer((b) => chunks.push(Buffer.from(b).toString()));
  for (const c of 'hello') out.push(c.charCodeAt(0));
  assert.deepEqual(chunks, []);
  await nextTurn();
  assert.deepEqual(chunks, ['hello']);
  assert.ok(out.firstByteAt !== undefined);
});

test('a full buffer is flushed immediately and nothing is lost', async () => {
  const chunks: number[][] = [];
  const out = new ConsoleOutputBuffer((b) => chunks.push([...b]), 4);
  for (let i = 0; i < 10; i++) out.push(i);
  assert.deepEqual(chunks, [[0, 1, 2, 3], [4, 5, 6, 7]]);
  out.flush();
  assert.deepEqual(chunks.flat(), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  await nextTurn();
  assert.equal(chunks.length, 3);
});
