/** Tests for the 16550A UART, driven the way Linux's 8250 driver and kvm-unit-tests drive it. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Uart16550, UartReg } from './uart-16550.js';
import { RecordingInterruptController } from '../fakes.js';

const IRQ = 4;

function makeUart(options: { hold?: boolean } = {}) {
  const pic = new RecordingInterruptController();
  const sent: number[] = [];
  const uart = new Uart16550({
    irq: pic.line(IRQ),
    onTransmit: (b) => sent.push(b),
    rtsFlowControl: options.hold ?? true,
  });
  const out = (reg: number, v: number) => uart.write(reg, 1, v);
  const inb = (reg: number) => uart.read(reg, 1);
  return { pic, sent, uart, out, inb };
}

void test('Linux autoconfig: scratch, IER, loopback MSR probe and 16550A FIFO detection', () => {
  const { out, inb } = makeUart();
  out(UartReg.SCR, 0xa5);
  assert.equal(inb(UartReg.SCR), 0xa5);
  out(UartReg.IER, 0);
  assert.equal(inb(UartReg.IER) & 0x0f, 0);
  out(UartReg.IER, 0x0f);
  assert.equal(inb(UartReg.IER) & 0x0f, 0x0f);
  out(UartReg.IER, 0);
  // Loopback: RTS→CTS, OUT2→DCD.
  out(UartReg.MCR, 0x10 | 0x0a);
  assert.equal(inb(UartReg.MSR) & 0xf0, 0x90);
  out(UartReg.MCR, 0);
  // FIFO probe: IIR bits 7:6 == 3 identify a 16550A.
  out(UartReg.IIR_FCR, 0x01);
  assert.equal(inb(UartReg.IIR_FCR) >> 6, 3);
  out(UartReg.IIR_FCR, 0x00);
  assert.equal(inb(UartReg.IIR_FCR) >> 6, 0);
  assert.equal(inb(UartReg.IIR_FCR), 0x01); // no interrupt pending
});

void test('kvm-unit-tests serial init and polled output', () => {
  const { out, inb, sent } = makeUart();
  out(UartReg.LCR, inb(UartReg.LCR) | 0x80);
  out(UartReg.DATA, 0x01);
  out(UartReg.IER, 0x00);
  assert.equal(inb(UartReg.DATA), 0x01, 'DLL readable with DLAB');
  out(UartReg.LCR, inb(UartReg.LCR) & ~0x80);
  out(UartReg.IER, 0x00);
  out(UartReg.LCR, 0x03);
  out(UartReg.IIR_FCR, 0x00);
  out(UartReg.MCR, 0x03);
  for (const ch of 'ok\n') {
    while (!(inb(UartReg.LSR) & 0x20));
    out(UartReg.DATA, ch.charCodeAt(0));
  }
  assert.deepEqual(sent, [0x6f, 0x6b, 0x0a]);
  assert.equal(inb(UartReg.LSR) & 0x60, 0x60, 'THRE and TEMT stay set');
});

void test('THR-empty interrupt: raised on enable, acknowledged by IIR read, re-armed by THR write', () => {
  const { out, inb, pic } = makeUart();
  out(UartReg.MCR, 0x0b); // DTR RTS OUT2
  out(UartReg.IIR_FCR, 0xc7);
  out(UartReg.IER, 0x02);
  assert.equal(pic.level(IRQ), true);
  assert.equal(inb(UartReg.IIR_FCR), 0xc2);
  assert.equal(pic.level(IRQ), false, 'IIR read acknowledges THRE');
  assert.equal(inb(UartReg.IIR_FCR), 0xc1);
  out(UartReg.DATA, 0x41);
  assert.equal(pic.level(IRQ), true, 'THR empties at once and interrupts again');
  assert.equal(pic.edges(IRQ), 2);
  // Linux's UART_BUG_THRE probe: toggling ETBEI re-raises THRE while idle.
  inb(UartReg.IIR_FCR);
  out(UartReg.IER, 0);
  out(UartReg.IER, 0x02);
  assert.equal(inb(UartReg.IIR_FCR) & 0x0f, 0x02);
});

void test('OUT2 gates the interrupt line; loopback mode drives nothing', () => {
  const { out, inb, pic } = makeUart();
  out(UartReg.IER, 0x02);
  assert.equal(pic.level(IRQ), false, 'pending but OUT2 clear');
  assert.equal(inb(UartReg.IIR_FCR) & 0x0f, 0x02, 'still reported in IIR');
  out(UartReg.IER, 0);
  out(UartReg.IER, 0x02);
  out(UartReg.MCR, 0x08);
  assert.equal(pic.level(IRQ), true);
  out(UartReg.MCR, 0x18);
  assert.equal(pic.level(IRQ), false);
  out(UartReg.MCR, 0x00);
  assert.equal(pic.level(IRQ), false);
});

void test('RX interrupt follows the FIFO trigger level (character timeout below it)', () => {
  const { out, inb, pic, uart } = makeUart();
  out(UartReg.IIR_FCR, 0x81); // FIFO on, trigger 8
  out(UartReg.MCR, 0x0a); // RTS, OUT2
  out(UartReg.IER, 0x01);
  assert.equal(pic.level(IRQ), false);
  uart.receive(new Uint8Array([1, 2, 3, 4, 5]));
  assert.equal(pic.level(IRQ), true);
  assert.equal(inb(UartReg.IIR_FCR), 0xcc, 'character timeout below trigger');
  uart.receive(new Uint8Array([6, 7, 8]));
  assert.equal(inb(UartReg.IIR_FCR), 0xc4, 'data available at trigger');
  const got: number[] = [];
  while (inb(UartReg.LSR) & 0x01) got.push(inb(UartReg.DATA));
  assert.deepEqual(got, [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.equal(pic.level(IRQ), false);
  assert.equal(inb(UartReg.IIR_FCR), 0xc1);
  out(UartReg.IIR_FCR, 0xc1); // trigger 14
  uart.receive(new Uint8Array(14));
  assert.equal(inb(UartReg.IIR_FCR), 0xc4);
});

void test('input larger than the FIFO is delivered completely and in order', () => {
  const { out, inb, uart } = makeUart();
  out(UartReg.IIR_FCR, 0x81);
  out(UartReg.MCR, 0x03);
  const input = new Uint8Array(10000);
  for (let i = 0; i < input.length; i++) input[i] = (i * 7 + 3) & 0xff;
  uart.receive(input.subarray(0, 3000));
  uart.receive(input.subarray(3000));
  assert.equal(uart.pendingInput, 10000);
  const got: number[] = [];
  while (inb(UartReg.LSR) & 0x01) got.push(inb(UartReg.DATA));
  assert.deepEqual(Uint8Array.from(got), input);
  assert.equal(uart.pendingInput, 0);
  assert.equal(inb(UartReg.LSR) & 0x02, 0, 'no overrun');
});

void test('input queued before the driver is ready survives FIFO clears and discard reads', () => {
  const { out, inb, uart } = makeUart();
  uart.receive(new TextEncoder().encode('echo hi\n'));
  // Driver start-up: clear FIFOs, read LSR/RBR/IIR/MSR to clear state.
  out(UartReg.IIR_FCR, 0x07);
  out(UartReg.IIR_FCR, 0x00);
  assert.equal(inb(UartReg.LSR) & 0x01, 0);
  inb(UartReg.DATA);
  inb(UartReg.IIR_FCR);
  inb(UartReg.MSR);
  out(UartReg.IIR_FCR, 0x81);
  out(UartReg.IER, 0x05);
  assert.equal(inb(UartReg.LSR) & 0x01, 0, 'held while RTS is low');
  out(UartReg.MCR, 0x0b); // the tty opens: DTR, RTS, OUT2
  let s = '';
  while (inb(UartReg.LSR) & 0x01) s += String.fromCharCode(inb(UartReg.DATA));
  assert.equal(s, 'echo hi\n');
});

void test('without flow control, input is delivered at once', () => {
  const { inb, uart } = makeUart({ hold: false });
  uart.receive(new Uint8Array([0x61]));
  assert.equal(inb(UartReg.LSR) & 0x01, 1);
  assert.equal(inb(UartReg.DATA), 0x61);
  assert.equal(inb(UartReg.LSR) & 0x01, 0);
});

void test('loopback returns transmitted bytes; overrun sets OE and a line-status interrupt', () => {
  const { out, inb, sent } = makeUart();
  out(UartReg.MCR, 0x10);
  out(UartReg.DATA, 0x55);
  assert.deepEqual(sent, [], 'nothing leaves the UART in loopback');
  assert.equal(inb(UartReg.LSR) & 0x01, 1);
  assert.equal(inb(UartReg.DATA), 0x55);
  // FIFOs off: a second byte before reading overruns the holding register.
  out(UartReg.IER, 0x04);
  out(UartReg.DATA, 1);
  out(UartReg.DATA, 2);
  assert.equal(inb(UartReg.IIR_FCR), 0x06);
  assert.equal(inb(UartReg.LSR) & 0x03, 0x03);
  assert.equal(inb(UartReg.LSR) & 0x02, 0, 'OE clears on read');
  assert.equal(inb(UartReg.DATA), 1);
  // With FIFOs on, 16 bytes fit.
  out(UartReg.IIR_FCR, 0x01);
  for (let i = 0; i < 16; i++) out(UartReg.DATA, i);
  assert.equal(inb(UartReg.LSR) & 0x02, 0);
  const got: number[] = [];
  while (inb(UartReg.LSR) & 0x01) got.push(inb(UartReg.DATA));
  assert.equal(got.length, 16);
  out(UartReg.MCR, 0);
  assert.deepEqual(sent, []);
});

void test('modem status deltas in loopback raise the modem-status interrupt and clear on MSR read', () => {
  const { out, inb, pic } = makeUart();
  out(UartReg.MCR, 0x10);
  inb(UartReg.MSR);
  out(UartReg.IER, 0x08);
  out(UartReg.MCR, 0x10 | 0x01 | 0x04); // DTR→DSR, OUT1→RI
  assert.equal(inb(UartReg.IIR_FCR), 0x00);
  assert.equal(inb(UartReg.MSR), 0x20 | 0x40 | 0x02);
  out(UartReg.MCR, 0x10 | 0x01); // RI falls: trailing edge
  assert.equal(inb(UartReg.MSR), 0x20 | 0x04);
  assert.equal(inb(UartReg.IIR_FCR), 0x01);
  out(UartReg.MCR, 0x08);
  assert.equal(inb(UartReg.MSR) & 0xf0, 0xb0, 'connected line outside loopback');
  assert.equal(pic.level(IRQ), false);
});

void test('interrupt priority: line status > received data > THR empty', () => {
  const { out, inb, uart } = makeUart();
  out(UartReg.MCR, 0x02);
  out(UartReg.IER, 0x07);
  uart.receive(new Uint8Array([9]));
  assert.equal(inb(UartReg.IIR_FCR), 0x04);
  inb(UartReg.DATA);
  assert.equal(inb(UartReg.IIR_FCR), 0x02);
});

void test('wide accesses split into byte registers', () => {
  const { uart } = makeUart();
  uart.write(UartReg.LCR, 2, 0x0b03); // LCR=3, MCR=0x0b
  assert.equal(uart.read(UartReg.LCR, 2), 0x0b03);
});

void test('takePendingInput hands back unread host bytes in order and empties the queue', () => {
  const { out, inb, uart } = makeUart();
  out(UartReg.MCR, 0x02);
  uart.receive(new TextEncoder().encode('abcdef'));
  assert.equal(inb(UartReg.DATA), 0x61);
  assert.deepEqual([...uart.takePendingInput()], [0x62, 0x63, 0x64, 0x65, 0x66]);
  assert.equal(uart.pendingInput, 0);
  assert.equal(inb(UartReg.LSR) & 0x01, 0);
});
