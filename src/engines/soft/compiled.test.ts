/**
 * Compiler-generated code on the soft CPU, checked against the host CPU: one
 * freestanding C program (sorting, CRC-32, 64-bit multiply/divide mixes,
 * shifts, bit tricks, memcpy/memset,
 * recursion, bitfields, linked lists, memmove, 128-bit division in libgcc)
 * is built twice with gcc at -O2, -Os and -O0 — once as a host executable, once linked at 1 MiB for the guest — and the checksums
 * both print must be identical. Skipped when gcc is not installed.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { identityPageTables, longModeState, softRunner } from './test-support.js';

const PROGRAM = String.raw`
typedef unsigned long u64; typedef long i64; typedef unsigned int u32; typedef unsigned char u8;
static u64 seed = 0x123456789abcdefULL;
static u64 rnd(void) { seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17; return seed; }
static u32 crc32(const u8 *p, u64 n) {
  u32 c = 0xffffffffu;
  for (u64 i = 0; i < n; i++) { c ^= p[i]; for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & -(c & 1)); }
  return ~c;
}
static void sort(i64 *a, int n) {
  for (int i = 1; i < n; i++) { i64 v = a[i]; int j = i - 1; while (j >= 0 && a[j] > v) { a[j + 1] = a[j]; j--; } a[j + 1] = v; }
}
static i64 arr[300]; static u8 buf[4096]; static u8 buf2[4096];
static u64 ack(u64 m, u64 n) { if (m == 0) return n + 1; if (n == 0) return ack(m - 1, 1); return ack(m - 1, ack(m, n - 1)); }
static u64 fib(int n) { return n < 2 ? (u64)n : fib(n - 1) + fib(n - 2); }
struct bits { unsigned a : 5; unsigned b : 13; int c : 9; unsigned long d : 37; };
struct node { u64 key; struct node *next; }; static struct node nodes[1000]; static struct node *heads[64];
u64 compute(int which) {
  u64 h = 0;
  switch (which) {
  case 0: for (int i = 0; i < 300; i++) arr[i] = (i64)rnd(); sort(arr, 300);
    for (int i = 0; i < 300; i++) h = h * 31 + (u64)arr[i]; return h;
  case 1: for (int i = 0; i < 4096; i++) buf[i] = (u8)rnd(); return crc32(buf, 4096);
  case 2: for (int i = 0; i < 2000; i++) { u64 a = rnd(), b = rnd() | 1; i64 sa = (i64)a, sb = (i64)(b >> (i & 15));
      h += a / b + a % b + (u64)(sa / (sb ? sb : 3)) + (u64)(sa % (sb ? sb : 7)) + (u64)(((unsigned __int128)a * b) >> 64)
         + (u64)(((__int128)sa * sb) >> 64) + (a >> (i & 63)) + (u64)(sa >> (i & 63)) + (a << (i & 63)); } return h;
  case 3: for (int i = 0; i < 3000; i++) { u64 a = rnd(); h += (u64)__builtin_popcountll(a) + (u64)__builtin_ctzll(a | 1) + (u64)__builtin_clzll(a | 1)
      + __builtin_bswap64(a) + (u64)(u32)(a >> 32) * (u32)a + (u64)(unsigned short)a / ((unsigned char)(a >> 8) | 1) + ((a >> 3) & 0x1f ? 7 : 9); } return h;
  case 4: for (int i = 0; i < 4096; i++) buf[i] = (u8)(i * 7); __builtin_memcpy(buf2 + 3, buf + 5, 3000);
    __builtin_memset(buf2 + 100, 0xa5, 77); return crc32(buf2, 4096);
  case 5: { u32 x = 0; for (int i = 0; i < 5000; i++) { int s = (int)rnd(); x += (u32)(s / 7) ^ (u32)(s % 13) ^ (u32)((short)s * (short)(s >> 16)) ^ (u32)((signed char)s >> 3); } return x; }
  case 6: return ack(2, 300) + fib(18);
  case 7: { struct bits b = {0}; for (int i = 0; i < 3000; i++) { u64 r = rnd(); b.a += (unsigned)r; b.b ^= (unsigned)(r >> 7); b.c = (int)(b.c - (int)(r >> 40)); b.d += b.a;
      h = h * 1000003u + b.a + b.b + (u64)(i64)b.c + b.d; } return h; }
  case 8: { for (int i = 0; i < 64; i++) heads[i] = 0; for (int i = 0; i < 1000; i++) { u64 k = rnd() % 5000; struct node *n = &nodes[i]; n->key = k; n->next = heads[k % 64]; heads[k % 64] = n; }
      for (int i = 0; i < 64; i++) for (struct node *n = heads[i]; n; n = n->next) h = (h ^ n->key) * 0x100000001b3ULL; return h; }
  case 9: { for (int i = 0; i < 4096; i++) buf[i] = (u8)(rnd() % 200 + 1); buf[4000] = 0; __builtin_memmove(buf + 10, buf, 3000); __builtin_memmove(buf, buf + 7, 2000);
      u64 n = 0; while (buf[n]) n++; int c = 0; for (int i = 0; i + 1 < 4096; i++) c += buf[i] < buf[i + 1]; return (n << 32) + (u64)c + crc32(buf, 4096); }
  case 10: { unsigned __int128 acc = 1; for (int i = 0; i < 300; i++) { unsigned __int128 x = ((unsigned __int128)rnd() << 64) | rnd(); u64 d = rnd() | 1;
      acc = acc * 6364136223846793005ULL + x / d + x % ((unsigned __int128)d << 17 | 5); } return (u64)(acc >> 64) ^ (u64)acc; }
  }
  return 0;
}
`;

const GUEST_MAIN = String.raw`
/* The freestanding runtime: string moves with REP MOVSB/STOSB (backwards with STD for overlaps). */
void *memcpy(void *d, const void *s, unsigned long n) { void *r = d; __asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) :: "memory"); return r; }
void *memset(void *d, int c, unsigned long n) { void *r = d; __asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory"); return r; }
void *memmove(void *d, const void *s, unsigned long n) {
  if ((unsigned long)d <= (unsigned long)s || (unsigned long)d >= (unsigned long)s + n) return memcpy(d, s, n);
  void *r = d; const char *se = (const char *)s + n - 1; char *de = (char *)d + n - 1;
  __asm__ volatile("std; rep movsb; cld" : "+D"(de), "+S"(se), "+c"(n) :: "memory"); return r;
}
static void out8(unsigned short port, unsigned char v) { __asm__ volatile("outb %0, %1" :: "a"(v), "Nd"(port)); }
void _start(void) {
  for (int w = 0; w < 11; w++) { u64 v = compute(w); for (int i = 0; i < 8; i++) out8(0xe9, (unsigned char)(v >> (8 * i))); }
  out8(0xf4, 1);
  for (;;) __asm__ volatile("hlt");
}
`;

const HOST_MAIN = String.raw`
#include <stdio.h>
int main(void) { for (int w = 0; w < 11; w++) printf("%016lx\n", compute(w)); return 0; }
`;

function hasGcc(): boolean {
  try {
    execFileSync('gcc', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

for (const opt of ['-O2', '-Os', '-O0']) {
  void test(`gcc ${opt} freestanding code gives the same results on the soft CPU as on the host`, { skip: !hasGcc() }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'softcpu-cc-'));
    try {
      writeFileSync(join(dir, 'guest.c'), PROGRAM + GUEST_MAIN);
      writeFileSync(join(dir, 'host.c'), PROGRAM + HOST_MAIN);
      // No SSE/x87 in the guest build: the soft CPU does not implement them yet.
      execFileSync('gcc', [opt, '-ffreestanding', '-fno-pic', '-fno-stack-protector', '-mgeneral-regs-only', '-mno-red-zone', '-fcf-protection=none',
        '-nostdlib', '-static', '-Wl,-Ttext=0x100000', '-Wl,--build-id=none', '-o', join(dir, 'guest.elf'), join(dir, 'guest.c'), '-lgcc'], { stdio: ['ignore', 'ignore', 'pipe'] });
      execFileSync('objcopy', ['-O', 'binary', join(dir, 'guest.elf'), join(dir, 'guest.bin')]);
      execFileSync('gcc', [opt, '-o', join(dir, 'host'), join(dir, 'host.c')], { stdio: ['ignore', 'ignore', 'pipe'] });
      const expected = execFileSync(join(dir, 'host'), { encoding: 'utf8' }).trim().split('\n');
      const code = new Uint8Array(readFileSync(join(dir, 'guest.bin')));
      // The binary starts at the lowest section (0x100000); the entry point comes from the ELF header.
      const entry = Number(readFileSync(join(dir, 'guest.elf')).readBigUInt64LE(24));
      const result = await softRunner({
        code, loadAddress: 0x100000, state: longModeState(entry, 0x9000, 0x800000), memory: identityPageTables(0x9000), timeoutMs: 20000,
      });
      assert.deepEqual(result.exit, { kind: 'debug-exit', value: 1 });
      const bytes = result.portWrites.filter(([port]) => port === 0xe9).map(([, , v]) => v);
      const got: string[] = [];
      for (let w = 0; w < 11; w++) {
        let v = 0n;
        for (let i = 7; i >= 0; i--) v = (v << 8n) | BigInt(bytes[w * 8 + i]);
        got.push(v.toString(16).padStart(16, '0'));
      }
      assert.deepEqual(got, expected);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
