/* print.c - a small printf subset over the serial port. */
#include "runtime.h"

static void put_padded(const char *digits, int len, int width, char pad) {
  for (int i = len; i < width; i++) serial_putc(pad);
  for (int i = len - 1; i >= 0; i--) serial_putc(digits[i]);
}

static void put_u64(u64 v, u32 base, int width, char pad) {
  char buf[24];
  int n = 0;
  do {
    u32 d;
    if (base == 16) {
      d = (u32)(v & 15);
      v >>= 4;
    } else {
      /* Decimal of values below 2^32 only: avoids 64-bit division helpers on i386. */
      u32 x = (u32)v;
      d = x % 10;
      v = x / 10;
    }
    buf[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
  } while (v);
  put_padded(buf, n, width, pad);
}

void vprint(const char *fmt, va_list ap) {
  for (; *fmt; fmt++) {
    if (*fmt != '%') {
      serial_putc(*fmt);
      continue;
    }
    fmt++;
    char pad = ' ';
    int width = 0, is_long = 0;
    if (*fmt == '0') pad = '0', fmt++;
    while (*fmt >= '0' && *fmt <= '9') width = width * 10 + (*fmt++ - '0');
    while (*fmt == 'l') is_long = 1, fmt++;
    switch (*fmt) {
      case 's': {
        const char *s = va_arg(ap, const char *);
        serial_write(s ? s : "(null)");
        break;
      }
      case 'c': serial_putc((char)va_arg(ap, int)); break;
      case 'd': {
        i32 v = va_arg(ap, i32);
        if (v < 0) serial_putc('-'), v = -v;
        put_u64((u32)v, 10, width, pad);
        break;
      }
      case 'u': put_u64(va_arg(ap, u32), 10, width, pad); break;
      case 'x': put_u64(is_long ? va_arg(ap, u64) : va_arg(ap, u32), 16, width, pad); break;
      case 'p': serial_write("0x"), put_u64((uptr)va_arg(ap, void *), 16, width, pad); break;
      case '%': serial_putc('%'); break;
      case 0: return;
      default: serial_putc('%'), serial_putc(*fmt); break;
    }
  }
}

void print(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vprint(fmt, ap);
  va_end(ap);
}
