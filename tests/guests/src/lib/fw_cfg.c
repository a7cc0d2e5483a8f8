/* fw_cfg.c - QEMU fw_cfg legacy I/O interface (selector 0x510, data 0x511). */
#include "runtime.h"

void fw_cfg_read(u16 selector, void *buf, u32 len) {
  u8 *p = buf;
  outw(PORT_FW_CFG_SEL, selector);
  for (u32 i = 0; i < len; i++) p[i] = inb(PORT_FW_CFG_DATA);
}

int fw_cfg_present(void) {
  char sig[4];
  fw_cfg_read(FW_CFG_SIGNATURE, sig, 4);
  return memcmp(sig, "QEMU", 4) == 0;
}
