/* apic.c - local APIC (xAPIC MMIO), IOAPIC and legacy 8259 masking. */
#include "runtime.h"

void lapic_enable(void) { lapic_write(LAPIC_SVR, 0x100 | 0xff); }

void lapic_eoi(void) { lapic_write(LAPIC_EOI, 0); }

void lapic_send_ipi(u32 dest_apic_id, u32 icr_low) {
  lapic_write(LAPIC_ICR_HIGH, dest_apic_id << 24);
  lapic_write(LAPIC_ICR_LOW, icr_low);
  for (u32 spins = 0; (lapic_read(LAPIC_ICR_LOW) & (1u << 12)) && spins < 1000000; spins++) cpu_relax();
}

u32 ioapic_read(u32 reg) {
  mmio_write32(IOAPIC_BASE, reg);
  return mmio_read32(IOAPIC_BASE + 0x10);
}

void ioapic_write(u32 reg, u32 v) {
  mmio_write32(IOAPIC_BASE, reg);
  mmio_write32(IOAPIC_BASE + 0x10, v);
}

void ioapic_route(u32 pin, u32 vector, u32 dest_apic_id) {
  ioapic_write(0x10 + 2 * pin + 1, dest_apic_id << 24);
  ioapic_write(0x10 + 2 * pin, vector & 0xff);
}

void ioapic_mask(u32 pin) { ioapic_write(0x10 + 2 * pin, 1u << 16); }

void pic_disable(void) {
  outb(0x20, 0x11);
  outb(0xa0, 0x11);
  outb(0x21, 0x70);
  outb(0xa1, 0x78);
  outb(0x21, 0x04);
  outb(0xa1, 0x02);
  outb(0x21, 0x01);
  outb(0xa1, 0x01);
  outb(0x21, 0xff);
  outb(0xa1, 0xff);
}
