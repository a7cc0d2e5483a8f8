/** Tests for kvm_run exit decoding on synthetic kvm_run pages (no /dev/kvm needed). */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AccessSize } from '../../machine/bus.js';
import { ExitReason, RunOffset, SystemEvent } from './abi.js';
import { KvmRunView, type AccessHandler } from './exits.js';

function page(): KvmRunView {
  return new KvmRunView(new ArrayBuffer(8192));
}

class Log implements AccessHandler {
  readonly calls: (string | number)[][] = [];
  constructor(private readonly readValue = 0) {}
  pioRead(port: number, size: AccessSize): number {
    this.calls.push(['pioRead', port, size]);
    return this.readValue;
  }
  pioWrite(port: number, size: AccessSize, value: number): void {
    this.calls.push(['pioWrite', port, size, value]);
  }
  mmioRead(address: number, size: AccessSize): number {
    this.calls.push(['mmioRead', address, size]);
    return this.readValue;
  }
  mmioWrite(address: number, size: AccessSize, value: number): void {
    this.calls.push(['mmioWrite', address, size, value]);
  }
}

function setIo(run: KvmRunView, out: boolean, size: number, port: number, count: number, dataOffset: number): void {
  run.bytes[RunOffset.IO_DIRECTION] = out ? 1 : 0;
  run.bytes[RunOffset.IO_SIZE] = size;
  run.data.setUint16(RunOffset.IO_PORT, port, true);
  run.data.setUint32(RunOffset.IO_COUNT, count, true);
  run.data.setUint32(RunOffset.IO_DATA_OFFSET, dataOffset, true);
}

void test('string OUT dispatches every element', () => {
  const run = page();
  setIo(run, true, 2, 0x3f8, 3, 4096);
  run.data.setUint16(4096, 0x1111, true);
  run.data.setUint16(4098, 0x2222, true);
  run.data.setUint16(4100, 0x3333, true);
  const log = new Log();
  assert.equal(run.handleIo(log), null);
  assert.deepEqual(log.calls, [['pioWrite', 0x3f8, 2, 0x1111], ['pioWrite', 0x3f8, 2, 0x2222], ['pioWrite', 0x3f8, 2, 0x3333]]);
});

void test('IN stores the masked answer in the data area', () => {
  const run = page();
  setIo(run, false, 1, 0x60, 2, 4096);
  const log = new Log(0x1234);
  assert.equal(run.handleIo(log), null);
  assert.deepEqual([run.bytes[4096], run.bytes[4097]], [0x34, 0x34]);
});

void test('IO data outside the kvm_run mapping is rejected, not accessed', () => {
  const run = page();
  setIo(run, true, 4, 0x80, 1000, 8000);
  const log = new Log();
  assert.match(run.handleIo(log) ?? '', /malformed KVM_EXIT_IO/);
  assert.equal(log.calls.length, 0);
  setIo(run, true, 3, 0x80, 1, 4096);
  assert.match(run.handleIo(log) ?? '', /size 3/);
});

void test('MMIO: address above 4 GiB, 8-byte accesses split in two', () => {
  const run = page();
  run.data.setUint32(RunOffset.MMIO_PHYS_ADDR, 0x1000, true);
  run.data.setUint32(RunOffset.MMIO_PHYS_ADDR + 4, 0x1, true);
  run.data.setUint32(RunOffset.MMIO_LEN, 8, true);
  run.bytes[RunOffset.MMIO_IS_WRITE] = 1;
  run.data.setUint32(RunOffset.MMIO_DATA, 0xaabbccdd, true);
  run.data.setUint32(RunOffset.MMIO_DATA + 4, 0x11223344, true);
  const log = new Log(0x55667788);
  assert.equal(run.handleMmio(log), null);
  assert.deepEqual(log.calls, [['mmioWrite', 0x100001000, 4, 0xaabbccdd], ['mmioWrite', 0x100001004, 4, 0x11223344]]);
  run.bytes[RunOffset.MMIO_IS_WRITE] = 0;
  run.data.setUint32(RunOffset.MMIO_LEN, 2, true);
  assert.equal(run.handleMmio(log), null);
  assert.equal(run.data.getUint16(RunOffset.MMIO_DATA, true), 0x7788);
});

void test('terminal exits map to VmExit', () => {
  const run = page();
  assert.deepEqual(run.terminalExit(ExitReason.SHUTDOWN, 1), { kind: 'triple-fault', vcpu: 1 });
  run.data.setUint32(RunOffset.SYSTEM_EVENT_TYPE, SystemEvent.RESET, true);
  assert.deepEqual(run.terminalExit(ExitReason.SYSTEM_EVENT, 0), { kind: 'reset' });
  run.data.setUint32(RunOffset.SYSTEM_EVENT_TYPE, SystemEvent.SHUTDOWN, true);
  assert.deepEqual(run.terminalExit(ExitReason.SYSTEM_EVENT, 0), { kind: 'poweroff' });
  run.data.setUint32(RunOffset.INTERNAL_SUBERROR, 1, true);
  run.data.setUint32(RunOffset.INTERNAL_NDATA, 2, true);
  run.data.setUint32(RunOffset.INTERNAL_DATA, 0x10, true);
  run.data.setUint32(RunOffset.INTERNAL_DATA + 8, 0x20, true);
  run.data.setUint32(RunOffset.INTERNAL_DATA + 12, 0x1, true);
  assert.deepEqual(run.terminalExit(ExitReason.INTERNAL_ERROR, 0), {
    kind: 'internal-error', vcpu: 0, message: 'vCPU 0: KVM internal error: emulation failure (suberror 1) [0x10 0x100000020]',
  });
  run.bytes.fill(0, 32, 256); // the exit union is shared: start the next case clean
  run.data.setUint32(RunOffset.FAIL_ENTRY_REASON, 0x21, true);
  assert.deepEqual(run.terminalExit(ExitReason.FAIL_ENTRY, 2), {
    kind: 'internal-error', vcpu: 2, message: 'vCPU 2: VM entry failed (hardware reason 0x21)',
  });
  assert.equal(run.terminalExit(ExitReason.HLT, 0).kind, 'internal-error');
  assert.match((run.terminalExit(99, 0) as { message: string }).message, /unexpected KVM exit reason 99/);
});
