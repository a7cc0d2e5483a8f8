/*
 * runtime.h - the tiny freestanding runtime shared by typevisor's test guests.
 *
 * Built twice: for 32-bit protected mode (multiboot guests) and for 64-bit
 * long mode (the Linux 64-bit boot protocol guest). No host headers are used.
 */
#ifndef GUEST_RUNTIME_H
#define GUEST_RUNTIME_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef signed int i32;
typedef __SIZE_TYPE__ usize;
typedef __UINTPTR_TYPE__ uptr;
typedef __builtin_va_list va_list;
#define va_start(ap, last) __builtin_va_start(ap, last)
#define va_arg(ap, type) __builtin_va_arg(ap, type)
#define va_end(ap) __builtin_va_end(ap)

#define NULL ((void *)0)
#define NORETURN __attribute__((noreturn))
#define PRINTF(a, b) __attribute__((format(printf, a, b)))

/* ---- Platform constants (see src/machine/layout.ts) ---- */
#define PORT_PIT_CH0 0x40
#define PORT_PIT_CMD 0x43
#define PORT_I8042_CMD 0x64
#define PORT_POST 0x80
#define PORT_DEBUG_EXIT 0xf4
#define PORT_COM1 0x3f8
#define PORT_FW_CFG_SEL 0x510
#define PORT_FW_CFG_DATA 0x511
#define LAPIC_BASE 0xfee00000u
#define IOAPIC_BASE 0xfec00000u

/* Exit codes written to isa-debug-exit; the VMM exits with (code << 1) | 1. */
#define EXIT_PASS 0      /* process status 1 */
#define EXIT_FAIL 1      /* process status 3 */
#define EXIT_EXCEPTION 2 /* process status 5: unexpected CPU exception */

/* ---- Port and MMIO access ---- */
static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outw(u16 port, u16 v) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(u16 port, u32 v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) {
  u8 v;
  __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
static inline u16 inw(u16 port) {
  u16 v;
  __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
static inline u32 inl(u16 port) {
  u32 v;
  __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
static inline u32 mmio_read32(uptr addr) { return *(volatile u32 *)addr; }
static inline void mmio_write32(uptr addr, u32 v) { *(volatile u32 *)addr = v; }
static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }
static inline void irq_enable(void) { __asm__ volatile("sti" ::: "memory"); }
static inline void irq_disable(void) { __asm__ volatile("cli" ::: "memory"); }
static inline void barrier(void) { __asm__ volatile("" ::: "memory"); }
static inline u64 rdmsr(u32 msr) {
  u32 lo, hi;
  __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
  return ((u64)hi << 32) | lo;
}
static inline u64 rdtsc(void) {
  u32 lo, hi;
  __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return ((u64)hi << 32) | lo;
}

/* ---- string.c ---- */
void *memset(void *dst, int c, usize n);
void *memcpy(void *dst, const void *src, usize n);
int memcmp(const void *a, const void *b, usize n);
usize strlen(const char *s);
int strcmp(const char *a, const char *b);
/* Finds `key=` as a whitespace-separated token; parses a decimal or 0x-hex value. Returns 1 if found. */
int cmdline_u32(const char *cmdline, const char *key, u32 *out);
/* Returns 1 if `word` is a whitespace-separated token of `cmdline`. */
int cmdline_has(const char *cmdline, const char *word);

/* ---- serial.c: 16550 UART at COM1, polled ---- */
void serial_init(void);
void serial_putc(char c);
void serial_write(const char *s);
void serial_flush(void);
/* Returns the next received byte, or -1 if none is waiting (LSR.DR clear). */
int serial_try_getc(void);

/* ---- print.c: printf subset: %s %c %d %u %x %llx (u64) %p, with optional 0 and width ---- */
void print(const char *fmt, ...) PRINTF(1, 2);
void vprint(const char *fmt, va_list ap);

/* ---- report.c: the PASS/FAIL convention ---- */
void report_begin(const char *guest);
/* Prints "PASS <guest>/<name>" or "FAIL <guest>/<name>: <why...>"; returns ok. */
int check(int ok, const char *name, const char *why_fmt, ...) PRINTF(3, 4);
/* Prints "PASS <guest>" (exit 0) or "FAIL <guest>: <n> check(s) failed" (exit 1). */
NORETURN void report_end(void);
/* Prints "FAIL <guest>: <why...>" and exits with EXIT_FAIL. */
NORETURN void fail_now(const char *fmt, ...) PRINTF(1, 2);
/* Writes `code` to isa-debug-exit (1 byte); if the VM is still running, says so and halts. */
NORETURN void exit_vm(u32 code);
NORETURN void halt_forever(void);
extern const char *report_guest_name;

/* ---- fw_cfg.c ---- */
#define FW_CFG_SIGNATURE 0x00
#define FW_CFG_RAM_SIZE 0x03
#define FW_CFG_NB_CPUS 0x05
void fw_cfg_read(u16 selector, void *buf, u32 len);
/* 1 if selector 0 reads "QEMU". */
int fw_cfg_present(void);

/* ---- acpi.c ---- */
/* Scans 0xE0000-0xFFFFF for a checksummed RSDP; returns its address or 0. */
uptr acpi_find_rsdp(void);
/* 1 if `addr` holds "RSD PTR " with a valid 20-byte checksum. */
int acpi_rsdp_valid(uptr addr);
/* Finds a table by signature through the RSDT (or XSDT); returns its address or 0. */
uptr acpi_find_table(uptr rsdp, const char *sig);
/* Counts enabled Processor Local APIC entries in the MADT; fills up to max APIC IDs. -1 if no MADT. */
int acpi_madt_cpus(uptr rsdp, u8 *apic_ids, int max);

/* ---- apic.c: LAPIC (xAPIC MMIO), IOAPIC ---- */
#define LAPIC_ID 0x020
#define LAPIC_VERSION 0x030
#define LAPIC_EOI 0x0b0
#define LAPIC_SVR 0x0f0
#define LAPIC_ICR_LOW 0x300
#define LAPIC_ICR_HIGH 0x310
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_LVT_LINT0 0x350
#define LAPIC_LVT_LINT1 0x360
#define LAPIC_TIMER_INITIAL 0x380
#define LAPIC_TIMER_CURRENT 0x390
#define LAPIC_TIMER_DIVIDE 0x3e0
static inline u32 lapic_read(u32 reg) { return mmio_read32(LAPIC_BASE + reg); }
static inline void lapic_write(u32 reg, u32 v) { mmio_write32(LAPIC_BASE + reg, v); }
static inline u32 lapic_id(void) { return lapic_read(LAPIC_ID) >> 24; }
/* Software-enables the LAPIC with spurious vector 0xff. */
void lapic_enable(void);
void lapic_eoi(void);
/* Writes the ICR (destination first) and waits for the delivery-status bit to clear. */
void lapic_send_ipi(u32 dest_apic_id, u32 icr_low);
u32 ioapic_read(u32 reg);
void ioapic_write(u32 reg, u32 v);
/* Routes IOAPIC `pin` to `vector` on `dest_apic_id` (fixed, physical, edge, active high, unmasked). */
void ioapic_route(u32 pin, u32 vector, u32 dest_apic_id);
void ioapic_mask(u32 pin);
/* Remaps the 8259 PICs to vectors 0x70-0x7f and masks every line (we use the IOAPIC). */
void pic_disable(void);

/* ---- pit.c: a monotonic microsecond clock from PIT channel 0 (counter latch reads) ---- */
/* Programs channel 0 as a rate generator with `reload` (0 = 65536) and starts the clock. */
void pit_clock_start(u32 reload);
/* Microseconds since pit_clock_start; must be called at least once per PIT period. */
u32 pit_clock_us(void);
void pit_delay_us(u32 us);

/* ---- multiboot.h-like definitions ---- */
#define MULTIBOOT_BOOTLOADER_MAGIC 0x2BADB002u
struct multiboot_info {
  u32 flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr;
  u32 syms[4];
  u32 mmap_length, mmap_addr, drives_length, drives_addr, config_table, boot_loader_name;
} __attribute__((packed));
struct multiboot_mmap_entry {
  u32 size;
  u64 addr, len;
  u32 type;
} __attribute__((packed));
/* The multiboot command line, or "" when absent. */
const char *multiboot_cmdline(const struct multiboot_info *mbi);

#endif
