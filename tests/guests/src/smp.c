/*
 * smp - starts every application processor with INIT-SIPI-SIPI.
 *
 * Reads the CPU count from fw_cfg and cross-checks it with the ACPI MADT, puts
 * the real-mode trampoline at 0x8000, and sends INIT, SIPI, SIPI (10 ms and
 * 200 us apart, timed with the PIT) to each AP listed in the MADT, or with the
 * all-excluding-self shorthand when the command line has "broadcast". Each AP
 * enters protected mode, prints "cpu <apic id> up" under a spinlock and counts
 * itself. The BSP waits (timeout=<ms>, default 10000) and prints "all <n> cpus up".
 */
#include "lib/idt.h"

#define AP_TRAMPOLINE_ADDR 0x8000
#define MAX_CPUS 64

extern char ap_trampoline_start[], ap_trampoline_end[], ap_gdt_ptr[];
extern u8 gdt_descriptor[];

static volatile u32 cpus_up = 1;
static volatile u32 print_lock;
static volatile u8 times_seen[256];

static void lock(void) {
  while (__atomic_exchange_n(&print_lock, 1, __ATOMIC_ACQUIRE)) cpu_relax();
}
static void unlock(void) { __atomic_store_n(&print_lock, 0, __ATOMIC_RELEASE); }

void ap_main(void) {
  idt_load();
  u32 id = lapic_id();
  lock();
  print("cpu %u up\n", id);
  times_seen[id & 0xff]++;
  unlock();
  __atomic_fetch_add(&cpus_up, 1, __ATOMIC_SEQ_CST);
  halt_forever();
}

static void send_all(int broadcast, const u8 *ids, int n, u32 bsp, u32 icr) {
  if (broadcast) {
    lapic_send_ipi(0, icr | (3u << 18)); /* all excluding self */
    return;
  }
  for (int i = 0; i < n; i++)
    if (ids[i] != bsp) lapic_send_ipi(ids[i], icr);
}

void guest_main(u32 magic, const struct multiboot_info *mbi) {
  (void)magic;
  report_begin("smp");
  const char *cmdline = multiboot_cmdline(mbi);
  u32 timeout_ms = 10000;
  cmdline_u32(cmdline, "timeout", &timeout_ms);
  int broadcast = cmdline_has(cmdline, "broadcast");

  if (!fw_cfg_present()) fail_now("fw_cfg signature \"QEMU\" not found at 0x510");
  u16 fw_cpus = 0;
  fw_cfg_read(FW_CFG_NB_CPUS, &fw_cpus, 2);
  u8 ids[MAX_CPUS];
  uptr rsdp = acpi_find_rsdp();
  int madt_cpus = rsdp ? acpi_madt_cpus(rsdp, ids, MAX_CPUS) : -1;
  u32 bsp = lapic_id();
  print("smp: bsp apic id %u, fw_cfg says %u cpus, MADT lists %d\n", bsp, fw_cpus, madt_cpus);
  check(fw_cpus >= 1 && fw_cpus <= MAX_CPUS, "fw-cfg-count", "FW_CFG_NB_CPUS=%u", fw_cpus);
  check(madt_cpus == fw_cpus, "madt-count", "MADT lists %d enabled CPUs, fw_cfg %u", madt_cpus, fw_cpus);
  if (madt_cpus > MAX_CPUS) madt_cpus = MAX_CPUS;
  if (madt_cpus < 0 && !broadcast) {
    print("smp: no MADT, falling back to broadcast IPIs\n");
    broadcast = 1;
  }
  times_seen[bsp & 0xff] = 1;

  /* Trampoline at 0x8000 with the kernel's GDT pointer patched in. */
  u32 tramp_len = (u32)(ap_trampoline_end - ap_trampoline_start);
  memcpy((void *)AP_TRAMPOLINE_ADDR, ap_trampoline_start, tramp_len);
  memcpy((void *)(AP_TRAMPOLINE_ADDR + (ap_gdt_ptr - ap_trampoline_start)), gdt_descriptor, 6);

  lapic_enable();
  pit_clock_start(0);
  print("smp: INIT-SIPI-SIPI (%s), trampoline %u bytes at 0x%x\n", broadcast ? "broadcast" : "per MADT APIC ID",
        tramp_len, AP_TRAMPOLINE_ADDR);
  send_all(broadcast, ids, madt_cpus, bsp, 0x00004500); /* INIT, level assert */
  pit_delay_us(10000);
  const u32 sipi = 0x00004600 | (AP_TRAMPOLINE_ADDR >> 12);
  send_all(broadcast, ids, madt_cpus, bsp, sipi);
  pit_delay_us(200);
  send_all(broadcast, ids, madt_cpus, bsp, sipi);

  u32 start = pit_clock_us();
  while (cpus_up < fw_cpus && pit_clock_us() - start < timeout_ms * 1000) cpu_relax();
  u32 waited_ms = (pit_clock_us() - start) / 1000;
  pit_delay_us(20000); /* let any AP that started twice show up */
  lock();
  u32 up = cpus_up;
  print("smp: %u cpus counted after %u ms\n", up, waited_ms);
  unlock();
  if (check(up == fw_cpus, "all-up", "%u of %u cpus up after %u ms", up, fw_cpus, timeout_ms))
    print("all %u cpus up\n", up);
  if (madt_cpus > 0) {
    int each_once = 1;
    for (int i = 0; i < madt_cpus; i++)
      if (times_seen[ids[i]] != 1) {
        print("smp: apic id %u came up %u times\n", ids[i], times_seen[ids[i]]);
        each_once = 0;
      }
    check(each_once, "each-once", "some MADT CPU did not come up exactly once");
  }
  lock();
  report_end();
}
