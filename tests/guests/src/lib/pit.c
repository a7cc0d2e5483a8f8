/* pit.c - a microsecond clock from PIT channel 0 counter-latch reads (no interrupts needed). */
#include "runtime.h"

#define PIT_NS_PER_TICK_X1000 838 /* 1 / 1.193182 MHz = 838.095 ns */

static u32 clock_reload, clock_last, clock_us, clock_frac;

static u32 pit_read_ch0(void) {
  outb(PORT_PIT_CMD, 0x00); /* latch channel 0 */
  u32 lo = inb(PORT_PIT_CH0);
  u32 hi = inb(PORT_PIT_CH0);
  return (hi << 8) | lo;
}

void pit_clock_start(u32 reload) {
  clock_reload = reload ? reload : 65536;
  outb(PORT_PIT_CMD, 0x34); /* channel 0, lo/hi, mode 2 (rate generator), binary */
  outb(PORT_PIT_CH0, (u8)(reload & 0xff));
  outb(PORT_PIT_CH0, (u8)((reload >> 8) & 0xff));
  clock_last = pit_read_ch0();
  clock_us = clock_frac = 0;
}

u32 pit_clock_us(void) {
  u32 now = pit_read_ch0();
  if (now == 0) now = clock_reload; /* a 65536 reload reads back as 0 */
  u32 delta = clock_last >= now ? clock_last - now : clock_last + clock_reload - now;
  clock_last = now;
  clock_frac += delta * PIT_NS_PER_TICK_X1000;
  clock_us += clock_frac / 1000;
  clock_frac %= 1000;
  return clock_us;
}

void pit_delay_us(u32 us) {
  u32 start = pit_clock_us();
  while (pit_clock_us() - start < us) cpu_relax();
}
