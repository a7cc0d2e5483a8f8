import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ddScript, parseBusyboxReal, parseDdOutput } from './dd.js';

test('busybox time output is parsed into seconds', () => {
  assert.equal(parseBusyboxReal('real\t0m 1.25s\nuser\t0m 0.00s\n'), 1.25);
  assert.equal(parseBusyboxReal('real\t2m 3.50s'), 123.5);
  assert.equal(parseBusyboxReal('real\t1h 0m 1.00s'), 3601);
  assert.equal(parseBusyboxReal('no timing here'), undefined);
});

test('dd sections are parsed per repetition from a console transcript, typed echo ignored', () => {
  const script = ddScript('/dev/vda', 8, 2);
  assert.equal(script.split('\n').length, 5);
  assert.match(script, /time dd if=\/dev\/zero of=\/dev\/vda bs=1M count=8 oflag=direct/);
  assert.match(script, /time dd if=\/dev\/vda of=\/dev\/null bs=1M count=8 iflag=direct/);
  const section = (kind: string, i: number, seconds: string): string =>
    `\r\nDD-${kind}-${i}-BEGIN\r\n8+0 records in\r\n8+0 records out\r\nreal\t0m ${seconds}s\r\nuser\t0m 0.00s\r\nsys\t0m 0.10s\r\nDD-${kind}-${i}-END`;
  // The console first echoes the typed script (its markers follow "echo "), then the real output.
  const transcript = script.replace(/\n/g, '\r\n') + section('W', 0, '2.00') + section('R', 0, '1.00') + section('W', 1, '4.00') + section('R', 1, '0.50') + '\r\nDD-ALL-DONE\r\n';
  const { writeMiBs, readMiBs } = parseDdOutput(transcript, 8, 2);
  assert.deepEqual(writeMiBs, [4, 2]);
  assert.deepEqual(readMiBs, [8, 16]);
  assert.throws(() => parseDdOutput(transcript.replace('8+0 records out\r\nreal\t0m 4.00s', 'dd: /dev/vda: I/O error\r\nreal\t0m 4.00s'), 8, 2), /write 1 did not complete/);
});
