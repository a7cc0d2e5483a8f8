/* string.c - memory/string helpers and command-line token parsing for the test guests. */
#include "runtime.h"

void *memset(void *dst, int c, usize n) {
  u8 *d = dst;
  while (n--) *d++ = (u8)c;
  return dst;
}

void *memcpy(void *dst, const void *src, usize n) {
  u8 *d = dst;
  const u8 *s = src;
  while (n--) *d++ = *s++;
  return dst;
}

int memcmp(const void *a, const void *b, usize n) {
  const u8 *x = a, *y = b;
  for (usize i = 0; i < n; i++)
    if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
  return 0;
}

usize strlen(const char *s) {
  usize n = 0;
  while (s[n]) n++;
  return n;
}

int strcmp(const char *a, const char *b) {
  while (*a && *a == *b) a++, b++;
  return (u8)*a - (u8)*b;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Returns a pointer just past `prefix` at the start of a token, or NULL. */
static const char *find_token(const char *s, const char *prefix, int whole) {
  usize n = strlen(prefix);
  while (*s) {
    while (is_space(*s)) s++;
    if (!*s) break;
    const char *start = s;
    while (*s && !is_space(*s)) s++;
    usize len = (usize)(s - start);
    if (whole ? (len == n && memcmp(start, prefix, n) == 0) : (len >= n && memcmp(start, prefix, n) == 0))
      return start + n;
  }
  return NULL;
}

int cmdline_has(const char *cmdline, const char *word) { return find_token(cmdline, word, 1) != NULL; }

int cmdline_u32(const char *cmdline, const char *key, u32 *out) {
  char prefix[32];
  usize n = strlen(key);
  if (n + 2 > sizeof prefix) return 0;
  memcpy(prefix, key, n);
  prefix[n] = '=';
  prefix[n + 1] = 0;
  const char *p = find_token(cmdline, prefix, 0);
  if (!p) return 0;
  u32 v = 0, base = 10;
  if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) base = 16, p += 2;
  int digits = 0;
  for (;; p++, digits++) {
    char c = *p;
    u32 d;
    if (c >= '0' && c <= '9') d = (u32)(c - '0');
    else if (base == 16 && c >= 'a' && c <= 'f') d = (u32)(c - 'a' + 10);
    else if (base == 16 && c >= 'A' && c <= 'F') d = (u32)(c - 'A' + 10);
    else break;
    v = v * base + d;
  }
  if (!digits) return 0;
  *out = v;
  return 1;
}
