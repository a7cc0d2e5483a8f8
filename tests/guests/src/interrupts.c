/*
 * interrupts, interrupts64 - IDT, LAPIC timer, IOAPIC routing, PIT and UART interrupts.
 *
 * Compiled twice: for 32-bit protected mode as "interrupts" (boot32.S, 32-bit
 * gates, handlers return with iret) and for 64-bit long mode as "interrupts64"
 * (boot64.S, identity-mapped paging, 64-bit gates, handlers return with iretq).
 * The checks and their names are the same in both; only the prefix differs.
 *
 * Sub-tests (each prints PASS/FAIL <guest>/<name>):
 *   lapic-oneshot   LAPIC timer one-shot, divide by 16: exactly one interrupt
 *   lapic-periodic  LAPIC timer periodic, divide by 2: at least 5 interrupts
 *   pit-ioapic      PIT channel 0 at 100 Hz through IOAPIC pin 2: 10 ticks
 *   uart-thre       COM1 THR-empty interrupt through IOAPIC pin 4 (IER bit 1, MCR.OUT2)
 *   uart-rx         COM1 received-data interrupt: prints "send a byte" and waits
 *                   rx-timeout=<ms> (default 10000); "no-rx" on the command line skips it
 * Timeouts use the PIT as a polled clock.
 */
#include "lib/idt.h"

#ifdef __x86_64__
#define GUEST "interrupts64"
#else
#define GUEST "interrupts"
#endif

#define VEC_LAPIC_TIMER 0x40
#define VEC_PIT 0x41
#define VEC_COM1 0x42
#define PIT_PIN 2
#define COM1_PIN 4

static volatile u32 lapic_ticks, pit_ticks, thre_irqs, rx_irqs, com1_irqs;
static volatile u8 rx_byte;

static void on_lapic_timer(struct trap_frame *f) {
  (void)f;
  lapic_ticks++;
  lapic_eoi();
}

static void on_pit(struct trap_frame *f) {
  (void)f;
  pit_ticks++;
  lapic_eoi();
}

static void on_com1(struct trap_frame *f) {
  (void)f;
  com1_irqs++;
  for (int i = 0; i < 16; i++) {
    u8 iir = inb(PORT_COM1 + 2);
    if (iir & 1) break;
    switch (iir & 0x0e) {
      case 0x02: thre_irqs++; break; /* reading IIR cleared it */
      case 0x04:
      case 0x0c:
        while (inb(PORT_COM1 + 5) & 1) {
          rx_byte = inb(PORT_COM1);
          rx_irqs++;
        }
        break;
      case 0x06: inb(PORT_COM1 + 5); break;
      default: inb(PORT_COM1 + 6); break;
    }
  }
  lapic_eoi();
}

/* Waits until *counter >= target; 0 on timeout. Fails fast if the PIT clock is stuck. */
static int wait_for(volatile u32 *counter, u32 target, u32 timeout_us) {
  u32 start = pit_clock_us(), last = start, stuck = 0;
  while (*counter < target) {
    u32 now = pit_clock_us();
    if (now - start > timeout_us) return 0;
    if (now == last && ++stuck > 5000000) fail_now("the PIT counter does not move (channel 0 latch reads)");
    if (now != last) stuck = 0, last = now;
    cpu_relax();
  }
  return 1;
}

static void lapic_timer_tests(void) {
  /* one-shot, divide by 16 */
  lapic_write(LAPIC_TIMER_DIVIDE, 0x3);
  lapic_write(LAPIC_LVT_TIMER, VEC_LAPIC_TIMER);
  u32 t0 = pit_clock_us();
  lapic_write(LAPIC_TIMER_INITIAL, 100000);
  u32 current = lapic_read(LAPIC_TIMER_CURRENT);
  check(current <= 100000 && (current > 0 || lapic_ticks > 0), "lapic-counts-down", "current count %u after initial 100000",
        current);
  int fired = wait_for(&lapic_ticks, 1, 2000000);
  u32 took = pit_clock_us() - t0;
  pit_delay_us(30000);
  check(fired && lapic_ticks == 1, "lapic-oneshot", "%u interrupts (want exactly 1) in %u us", lapic_ticks, took);
  print(GUEST ": one-shot 100000 x 16 fired after %u us\n", took);
  check(lapic_read(LAPIC_TIMER_CURRENT) == 0, "lapic-oneshot-stopped", "current count %u after expiry",
        lapic_read(LAPIC_TIMER_CURRENT));

  /* periodic, divide by 2 */
  lapic_ticks = 0;
  lapic_write(LAPIC_TIMER_DIVIDE, 0x0);
  lapic_write(LAPIC_LVT_TIMER, VEC_LAPIC_TIMER | (1u << 17));
  t0 = pit_clock_us();
  lapic_write(LAPIC_TIMER_INITIAL, 500000);
  fired = wait_for(&lapic_ticks, 5, 5000000);
  took = pit_clock_us() - t0;
  lapic_write(LAPIC_LVT_TIMER, VEC_LAPIC_TIMER | (1u << 16)); /* mask */
  lapic_write(LAPIC_TIMER_INITIAL, 0);                        /* stop */
  check(fired, "lapic-periodic", "%u of 5 interrupts in %u us", lapic_ticks, took);
  print(GUEST ": periodic 500000 x 2: %u ticks in %u us\n", lapic_ticks, took);
}

static void pit_test(u32 bsp) {
  pit_clock_start(11932); /* 100 Hz */
  ioapic_route(PIT_PIN, VEC_PIT, bsp);
  u32 t0 = pit_clock_us();
  int fired = wait_for(&pit_ticks, 10, 3000000);
  u32 took = pit_clock_us() - t0;
  ioapic_mask(PIT_PIN);
  check(fired, "pit-ioapic", "%u of 10 PIT ticks via IOAPIC pin %u in %u us", pit_ticks, PIT_PIN, took);
  print(GUEST ": 10 PIT ticks at 100 Hz took %u us\n", took);
  pit_clock_start(0);
}

static void uart_tests(u32 bsp, const char *cmdline) {
  ioapic_route(COM1_PIN, VEC_COM1, bsp);
  outb(PORT_COM1 + 4, 0x0b); /* DTR, RTS, OUT2 (gates the IRQ line) */
  outb(PORT_COM1 + 1, 0x02); /* IER: THR empty */
  int armed = wait_for(&thre_irqs, 1, 1000000);
  u32 before = thre_irqs;
  print(GUEST ": THRE armed\n");
  int after_write = wait_for(&thre_irqs, before + 1, 1000000);
  outb(PORT_COM1 + 1, 0x00);
  check(armed && after_write, "uart-thre", "THRE interrupts: %u on enable, %u after writing", before,
        thre_irqs - before);

  if (cmdline_has(cmdline, "no-rx")) {
    print(GUEST ": uart-rx skipped (no-rx)\n");
  } else {
    u32 timeout_ms = 10000;
    cmdline_u32(cmdline, "rx-timeout", &timeout_ms);
    outb(PORT_COM1 + 1, 0x01); /* IER: received data available */
    print("send a byte\n");
    int got = wait_for(&rx_irqs, 1, timeout_ms * 1000);
    outb(PORT_COM1 + 1, 0x00);
    if (check(got, "uart-rx", "no receive interrupt within %u ms", timeout_ms))
      print(GUEST ": received 0x%02x\n", rx_byte);
  }
  outb(PORT_COM1 + 4, 0x03);
  ioapic_mask(COM1_PIN);
}

void guest_main(u32 magic, const struct multiboot_info *mbi) {
  (void)magic;
  report_begin(GUEST);
  const char *cmdline = multiboot_cmdline(mbi);
  u32 bsp = lapic_id();
  pic_disable();
  u32 pins = ((ioapic_read(1) >> 16) & 0xff) + 1;
  print(GUEST ": lapic id %u version 0x%x, ioapic %u pins\n", bsp, lapic_read(LAPIC_VERSION), pins);
  check(pins >= 24, "ioapic-pins", "IOAPIC reports %u redirection entries, want >= 24", pins);
  for (u32 pin = 0; pin < pins && pin < 24; pin++) ioapic_mask(pin);
  idt_set_handler(VEC_LAPIC_TIMER, on_lapic_timer);
  idt_set_handler(VEC_PIT, on_pit);
  idt_set_handler(VEC_COM1, on_com1);
  lapic_enable();
  pit_clock_start(0);
  irq_enable();

  lapic_timer_tests();
  pit_test(bsp);
  uart_tests(bsp, cmdline);

  irq_disable();
  check(idt_unexpected_interrupts == 0, "no-stray-interrupts", "%u interrupts without a handler",
        idt_unexpected_interrupts);
  report_end();
}
