/* serial.c - polled 16550 UART driver for COM1 (0x3f8). */
#include "runtime.h"

#define UART_THR 0
#define UART_RBR 0
#define UART_IER 1
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define LSR_DR 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

void serial_init(void) {
  /* 115200 8N1. The FIFO control register is left alone on purpose: toggling
   * the FIFO enable clears the receive FIFO, which would drop input that the
   * host has already queued (for example piped stdin). */
  outb(PORT_COM1 + UART_IER, 0x00);
  outb(PORT_COM1 + UART_LCR, 0x80);
  outb(PORT_COM1 + 0, 0x01);
  outb(PORT_COM1 + 1, 0x00);
  outb(PORT_COM1 + UART_LCR, 0x03);
  outb(PORT_COM1 + UART_MCR, 0x03);
}

void serial_putc(char c) {
  if (c == '\n') serial_putc('\r');
  for (u32 spins = 0; !(inb(PORT_COM1 + UART_LSR) & LSR_THRE) && spins < 1000000; spins++) cpu_relax();
  outb(PORT_COM1 + UART_THR, (u8)c);
}

/* Waits (bounded) until the transmitter is empty: a VMM may still hold the last
 * bytes when THRE is set, and they are lost if the VM stops before they leave. */
void serial_flush(void) {
  for (u32 spins = 0; !(inb(PORT_COM1 + UART_LSR) & LSR_TEMT) && spins < 10000000; spins++) cpu_relax();
}

void serial_write(const char *s) {
  while (*s) serial_putc(*s++);
}

int serial_try_getc(void) {
  if (!(inb(PORT_COM1 + UART_LSR) & LSR_DR)) return -1;
  return inb(PORT_COM1 + UART_RBR);
}
