/* acpi.c - finds the RSDP, walks the RSDT/XSDT and counts CPUs in the MADT. */
#include "runtime.h"

static u8 sum_bytes(uptr addr, u32 len) {
  u8 s = 0;
  for (u32 i = 0; i < len; i++) s = (u8)(s + *(volatile u8 *)(addr + i));
  return s;
}

int acpi_rsdp_valid(uptr addr) {
  return addr && memcmp((const void *)addr, "RSD PTR ", 8) == 0 && sum_bytes(addr, 20) == 0;
}

uptr acpi_find_rsdp(void) {
  for (uptr a = 0xe0000; a < 0x100000; a += 16)
    if (acpi_rsdp_valid(a)) return a;
  return 0;
}

static u32 read32(uptr a) { return *(volatile u32 *)a; }

uptr acpi_find_table(uptr rsdp, const char *sig) {
  if (!acpi_rsdp_valid(rsdp)) return 0;
  u8 revision = *(u8 *)(rsdp + 15);
  uptr root = read32(rsdp + 16);
  u32 entry_size = 4;
  if (!root && revision >= 2 && sizeof(uptr) == 8) {
    root = (uptr)*(volatile u64 *)(rsdp + 24);
    entry_size = 8;
  }
  if (!root) return 0;
  u32 len = read32(root + 4);
  if (len < 36 || len > 65536) return 0;
  for (u32 off = 36; off + entry_size <= len; off += entry_size) {
    uptr t = entry_size == 4 ? read32(root + off) : (uptr)*(volatile u64 *)(root + off);
    if (t && memcmp((const void *)t, sig, 4) == 0) return t;
  }
  return 0;
}

int acpi_madt_cpus(uptr rsdp, u8 *apic_ids, int max) {
  uptr madt = acpi_find_table(rsdp, "APIC");
  if (!madt) return -1;
  u32 len = read32(madt + 4);
  int count = 0;
  for (u32 off = 44; off + 2 <= len;) {
    u8 type = *(u8 *)(madt + off), elen = *(u8 *)(madt + off + 1);
    if (elen < 2) break;
    if (type == 0 && elen >= 8 && (read32(madt + off + 4) & 1)) {
      if (count < max) apic_ids[count] = *(u8 *)(madt + off + 3);
      count++;
    }
    off += elen;
  }
  return count;
}
