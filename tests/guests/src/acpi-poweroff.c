/*
 * acpi-poweroff - powers the machine off the way an ACPI OS does: finds the
 * FADT through the RSDP, reads PM1a_CNT_BLK from it, takes the S5 sleep type
 * from the DSDT's \_S5_ package, and writes SLP_TYP | SLP_EN to PM1a_CNT.
 * The VMM must end the VM with status 0; if the guest is still running
 * afterwards it prints FAIL and exits through isa-debug-exit (status 3).
 */
#include "lib/runtime.h"

#define FADT_DSDT 40
#define FADT_PM1A_CNT_BLK 64
#define SLP_EN (1u << 13)

/* The first element of the \_S5_ package in the DSDT's AML, or -1. */
static int s5_sleep_type(uptr dsdt) {
  u32 len = mmio_read32(dsdt + 4);
  for (u32 i = 36; i + 8 < len; i++) {
    const u8 *p = (const u8 *)(dsdt + i);
    if (p[0] != '_' || p[1] != 'S' || p[2] != '5' || p[3] != '_' || p[4] != 0x12) continue;
    const u8 *q = p + 5;
    q += 1 + (q[0] >> 6); /* PkgLength: lead byte plus (bits 7:6) following bytes */
    q += 1;               /* NumElements */
    if (q[0] == 0x0a) return q[1]; /* BytePrefix */
    if (q[0] == 0x00) return 0;    /* ZeroOp */
    if (q[0] == 0x01) return 1;    /* OneOp */
    return q[0];
  }
  return -1;
}

void guest_main(u32 magic, const struct multiboot_info *mbi) {
  (void)magic;
  (void)mbi;
  report_begin("acpi-poweroff");
  uptr rsdp = acpi_find_rsdp();
  uptr fadt = rsdp ? acpi_find_table(rsdp, "FACP") : 0;
  if (!fadt) fail_now("no FADT");
  u32 pm1a_cnt = mmio_read32(fadt + FADT_PM1A_CNT_BLK);
  uptr dsdt = mmio_read32(fadt + FADT_DSDT);
  int slp_typ = dsdt ? s5_sleep_type(dsdt) : -1;
  if (pm1a_cnt == 0 || slp_typ < 0) fail_now("no PM1a control block or no \\_S5_ package");
  u16 value = (u16)(((u32)slp_typ << 10) | SLP_EN);
  print("acpi-poweroff: writing 0x%x to PM1a_CNT at port 0x%x\n", value, pm1a_cnt);
  outw((u16)pm1a_cnt, value);
  fail_now("still running after the S5 write");
}
