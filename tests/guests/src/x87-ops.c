/*
 * x87-ops - runs a table of x87 operations on deterministic pseudo-random and
 * special 80-bit operands under every rounding mode and precision control
 * and prints each 80-bit result and the status word on the serial port, so
 * the output of two CPUs (QEMU TCG and the soft engine) can be compared line
 * by line. Exits with EXIT_PASS through isa-debug-exit.
 */
#include "lib/runtime.h"

struct f80 { u32 lo, hi; u16 se; } __attribute__((packed));

static u32 rng = 0x2545f491u;
static u32 next(void) {
  rng ^= rng << 13; rng ^= rng >> 17; rng ^= rng << 5;
  return rng;
}

#define NSPECIAL 12
static const struct f80 specials[NSPECIAL] = {
  {0, 0, 0}, {0, 0, 0x8000},                           /* +0, -0 */
  {0, 0x80000000u, 0x7fff}, {0, 0x80000000u, 0xffff},  /* +inf, -inf */
  {0x1234, 0xc0000000u, 0x7fff}, {5, 0xa0000000u, 0xffff}, /* QNaN, SNaN */
  {0x87654321u, 0x12345678u, 0}, {1, 0, 0x8000},       /* denormals */
  {0xffffffffu, 0xffffffffu, 0x7ffe}, {0, 0x80000000u, 1}, /* max, min normal */
  {0, 0x80000000u, 0x3fff}, {0, 0xc0000000u, 0xc000}, /* 1, -3 */
};

static void random_f80(struct f80 *v, int range) {
  u32 e;
  v->hi = next() | 0x80000000u;
  v->lo = next();
  u32 k = next() % 4;
  if (k == 0) v->lo = 0;
  if (k == 1) { v->lo &= 0xfffff000u; }
  if (range == 1) e = 1 + next() % 80;                 /* near underflow */
  else if (range == 2) e = 0x7ffe - next() % 40;       /* near overflow */
  else e = 0x3fff - 40 + next() % 81;
  v->se = (u16)(e | ((next() & 1) << 15));
}

static void show(const char *op, u16 cw, const struct f80 *r, u16 sw, u32 extra) {
  print("%s %04x %04x:%08x%08x %04x %x\n", op, cw, r->se, r->hi, r->lo, sw, extra);
}

#define BINARY(name, insn)                                                                          \
  static void name(u16 cw, const struct f80 *a, const struct f80 *b, struct f80 *r, u16 *sw) {      \
    __asm__ volatile("fninit\n fldcw %[cw]\n fldt %[b]\n fldt %[a]\n " insn "\n fnstsw %[sw]\n fstpt %[r]\n fninit" \
                     : [r] "=m"(*r), [sw] "=m"(*sw) : [a] "m"(*a), [b] "m"(*b), [cw] "m"(cw) : "memory"); \
  }

BINARY(op_add, "fadd %%st(1), %%st")
BINARY(op_sub, "fsub %%st(1), %%st")
BINARY(op_subr, "fsubr %%st(1), %%st")
BINARY(op_mul, "fmul %%st(1), %%st")
BINARY(op_div, "fdiv %%st(1), %%st")
BINARY(op_divr, "fdivr %%st(1), %%st")
BINARY(op_sqrt, "fsqrt")
BINARY(op_rndint, "frndint")
BINARY(op_prem, "fprem")
BINARY(op_prem1, "fprem1")
BINARY(op_scale, "fscale")
BINARY(op_chs, "fchs")
BINARY(op_abs, "fabs")
BINARY(op_xtract, "fxtract\n fstp %%st(2)")

typedef void (*binary_fn)(u16, const struct f80 *, const struct f80 *, struct f80 *, u16 *);

static const struct { const char *name; binary_fn fn; } binaries[] = {
  {"fadd", op_add}, {"fsub", op_sub}, {"fsubr", op_subr}, {"fmul", op_mul}, {"fdiv", op_div}, {"fdivr", op_divr},
  {"fsqrt", op_sqrt}, {"frndint", op_rndint}, {"fprem", op_prem}, {"fprem1", op_prem1}, {"fchs", op_chs}, {"fabs", op_abs},
  {"fscale", op_scale}, {"fxtract", op_xtract},
};

static void conversions(u16 cw, const struct f80 *a) {
  u32 f32 = 0; u64 f64 = 0; u32 i32 = 0; u64 i64 = 0; u16 i16 = 0; u16 sw[5];
  u8 bcd[10];
  struct f80 back;
  __asm__ volatile("fninit\n fldcw %[cw]\n fldt %[a]\n fsts %[f32]\n fnstsw %[sw0]\n fninit\n fldcw %[cw]\n fldt %[a]\n fstl %[f64]\n fnstsw %[sw1]\n"
                   "fninit\n fldcw %[cw]\n fldt %[a]\n fistl %[i32]\n fnstsw %[sw2]\n fninit\n fldcw %[cw]\n fldt %[a]\n fistpll %[i64]\n fnstsw %[sw3]\n"
                   "fninit\n fldcw %[cw]\n fldt %[a]\n fists %[i16]\n fninit\n fldcw %[cw]\n fldt %[a]\n fbstp %[bcd]\n fnstsw %[sw4]\n fninit"
                   : [f32] "=m"(f32), [f64] "=m"(f64), [i32] "=m"(i32), [i64] "=m"(i64), [i16] "=m"(i16), [bcd] "=m"(bcd),
                     [sw0] "=m"(sw[0]), [sw1] "=m"(sw[1]), [sw2] "=m"(sw[2]), [sw3] "=m"(sw[3]), [sw4] "=m"(sw[4])
                   : [a] "m"(*a), [cw] "m"(cw) : "memory");
  print("cvt %04x %04x:%08x%08x -> %08x %04x %08x%08x %04x %08x %04x %08x%08x %04x %04x\n", cw, a->se, a->hi, a->lo, f32, sw[0],
        (u32)(f64 >> 32), (u32)f64, sw[1], i32, sw[2], (u32)(i64 >> 32), (u32)i64, sw[3], i16);
  print("bcd %04x %02x%02x%02x%02x%02x%02x%02x%02x%02x%02x %04x\n", cw, bcd[9], bcd[8], bcd[7], bcd[6], bcd[5], bcd[4], bcd[3], bcd[2], bcd[1], bcd[0], sw[4]);
  /* Load back from single and double. */
  u16 swl;
  __asm__ volatile("fninit\n fldcw %[cw]\n flds %[f32]\n fldl %[f64]\n faddp\n fnstsw %[sw]\n fstpt %[r]\n fninit"
                   : [r] "=m"(back), [sw] "=m"(swl) : [f32] "m"(f32), [f64] "m"(f64), [cw] "m"(cw) : "memory");
  show("ldsum", cw, &back, swl, 0);
}

/* Memory-operand forms (D8/DA/DC/DE and FICOM) with b converted to m32/m64/m32int/m16int under `cw`. */
static void memory_forms(u16 cw, const struct f80 *a, const struct f80 *b) {
  u32 f32 = 0; u64 f64 = 0; u32 i32 = 0; u16 i16 = 0;
  struct f80 r[8]; u16 sw[8];
  __asm__ volatile("fninit\n fldt %[b]\n fsts %[f32]\n fstl %[f64]\n fistl %[i32]\n fists %[i16]\n fninit"
                   : [f32] "=m"(f32), [f64] "=m"(f64), [i32] "=m"(i32), [i16] "=m"(i16) : [b] "m"(*b) : "memory");
#define MEMOP(k, insn, operand)                                                                                     \
  __asm__ volatile("fninit\n fldcw %[cw]\n fldt %[a]\n " insn " %[m]\n fnstsw %[sw]\n fstpt %[r]\n fninit"           \
                   : [r] "=m"(r[k]), [sw] "=m"(sw[k]) : [a] "m"(*a), [m] "m"(operand), [cw] "m"(cw) : "memory")
  MEMOP(0, "fadds", f32);
  MEMOP(1, "fsubrl", f64);
  MEMOP(2, "fmuls", f32);
  MEMOP(3, "fdivl", f64);
  MEMOP(4, "fiaddl", i32);
  MEMOP(5, "fisubs", i16);
  MEMOP(6, "fidivrl", i32);
  MEMOP(7, "fimuls", i16);
#undef MEMOP
  for (int k = 0; k < 8; k++) show("memop", cw, &r[k], sw[k], (u32)k);
  u16 c1, c2, c3;
  __asm__ volatile("fninit\n fldt %[a]\n fcoms %[f32]\n fnstsw %[c1]\n fcoml %[f64]\n fnstsw %[c2]\n ficoml %[i32]\n fnstsw %[c3]\n fninit"
                   : [c1] "=m"(c1), [c2] "=m"(c2), [c3] "=m"(c3) : [a] "m"(*a), [f32] "m"(f32), [f64] "m"(f64), [i32] "m"(i32) : "memory");
  print("memcmp %04x %04x %04x\n", c1, c2, c3);
}

static void compares(const struct f80 *a, const struct f80 *b) {
  u16 sw1, sw2; u32 fl1, fl2;
  __asm__ volatile("fninit\n fldt %[b]\n fldt %[a]\n fcom %%st(1)\n fnstsw %[sw1]\n fucomi %%st(1), %%st\n pushf\n pop %[fl1]\n"
                   "fcomi %%st(1), %%st\n pushf\n pop %[fl2]\n fnstsw %[sw2]\n fninit"
                   : [sw1] "=m"(sw1), [sw2] "=m"(sw2), [fl1] "=r"(fl1), [fl2] "=r"(fl2) : [a] "m"(*a), [b] "m"(*b) : "memory", "cc");
  print("cmp %04x:%08x%08x %04x:%08x%08x %04x %03x %03x %04x\n", a->se, a->hi, a->lo, b->se, b->hi, b->lo, sw1, fl1 & 0x8d5, fl2 & 0x8d5, sw2);
}

static void constants(u16 cw) {
  struct f80 c[7]; u16 sw;
  __asm__ volatile("fninit\n fldcw %[cw]\n fld1\n fldl2t\n fldl2e\n fldpi\n fldlg2\n fldln2\n fldz\n fnstsw %[sw]\n"
                   "fstpt %[c0]\n fstpt %[c1]\n fstpt %[c2]\n fstpt %[c3]\n fstpt %[c4]\n fstpt %[c5]\n fstpt %[c6]\n fninit"
                   : [c0] "=m"(c[0]), [c1] "=m"(c[1]), [c2] "=m"(c[2]), [c3] "=m"(c[3]), [c4] "=m"(c[4]), [c5] "=m"(c[5]), [c6] "=m"(c[6]), [sw] "=m"(sw)
                   : [cw] "m"(cw) : "memory");
  for (int i = 0; i < 7; i++) show("const", cw, &c[i], sw, (u32)i);
}

static void env_and_stack(void) {
  u8 save[108]; u16 sw, tw;
  struct f80 one = {0, 0x80000000u, 0x3fff};
  __asm__ volatile("fninit\n fldt %[one]\n fldt %[one]\n fld %%st(0)\n faddp\n fnsave %[s]\n frstor %[s]\n fnstsw %[sw]\n fninit"
                   : [s] "=m"(save), [sw] "=m"(sw) : [one] "m"(one) : "memory");
  tw = (u16)(save[8] | (save[9] << 8));
  struct f80 *st0 = (struct f80 *)(save + 28);
  print("fnsave cw=%02x%02x sw=%04x tw=%04x st0=%04x:%08x%08x\n", save[1], save[0], sw, tw, st0->se, st0->hi, st0->lo);
  /* Stack underflow (masked): fadd on an empty stack gives the indefinite; overflow after 9 pushes. */
  struct f80 r; u16 sw2;
  __asm__ volatile("fninit\n fadd %%st(1), %%st\n fnstsw %[sw]\n fstpt %[r]\n fninit" : [r] "=m"(r), [sw] "=m"(sw2) : : "memory");
  show("underflow", 0x37f, &r, sw2, 0);
  __asm__ volatile("fninit\n fld1\n fld1\n fld1\n fld1\n fld1\n fld1\n fld1\n fld1\n fldpi\n fnstsw %[sw]\n fstpt %[r]\n fninit" : [r] "=m"(r), [sw] "=m"(sw2) : : "memory");
  show("overflow", 0x37f, &r, sw2, 0);
}

void guest_main(u32 magic, const struct multiboot_info *mbi) {
  (void)magic; (void)mbi;
  u32 cr0;
  __asm__ volatile("mov %%cr0, %0" : "=r"(cr0));
  cr0 = (cr0 & ~0xcu) | 0x22; /* EM=0 TS=0, MP=1, NE=1 */
  __asm__ volatile("mov %0, %%cr0" : : "r"(cr0));
  print("x87-ops start\n");
  static const u16 pcs[3] = {0x000, 0x200, 0x300};
  struct f80 a, b, r; u16 sw;
  for (int n = 0; n < 40; n++) {
    if (n < NSPECIAL) a = specials[n]; else random_f80(&a, n % 10 == 0 ? 1 : n % 10 == 1 ? 2 : 0);
    for (int m = 0; m < 3; m++) {
      if (m == 0 && n < NSPECIAL) b = specials[(n * 7 + 3) % NSPECIAL];
      else random_f80(&b, n % 10 == 0 ? 1 : n % 10 == 1 ? 2 : 0);
      if (m == 2) b.se = (u16)((b.se & 0x8000) | ((a.se & 0x7fff) - 3 + next() % 7)); /* close exponents */
      print("args %04x:%08x%08x %04x:%08x%08x\n", a.se, a.hi, a.lo, b.se, b.hi, b.lo);
      for (int p = 0; p < 3; p++) {
        for (int rc = 0; rc < 4; rc++) {
          u16 cw = (u16)(0x7f | pcs[p] | (rc << 10));
          for (unsigned k = 0; k < sizeof binaries / sizeof binaries[0]; k++) {
            if (m > 0 && (binaries[k].fn == op_chs || binaries[k].fn == op_abs || binaries[k].fn == op_sqrt)) continue;
            if ((binaries[k].fn == op_prem || binaries[k].fn == op_prem1) &&
                (int)(a.se & 0x7fff) - (int)(b.se & 0x7fff) >= 63) continue; /* partial remainders differ by design */
            binaries[k].fn(cw, &a, &b, &r, &sw);
            show(binaries[k].name, cw, &r, sw, 0);
          }
        }
      }
      compares(&a, &b);
      for (int p = 0; p < 3; p++) memory_forms((u16)(0x7f | pcs[p] | ((u16)(n & 3) << 10)), &a, &b);
    }
    for (int rc = 0; rc < 4; rc++) conversions((u16)(0x37f | (rc << 10)), &a);
  }
  /* Partial remainders (exponent difference >= 64: C2 = 1, implementation-defined reduction). */
  for (int n = 0; n < 24; n++) {
    random_f80(&a, 0); random_f80(&b, 0);
    b.se = (u16)((b.se & 0x8000) | ((a.se & 0x7fff) - 64 - (u32)n * 37));
    print("args %04x:%08x%08x %04x:%08x%08x\n", a.se, a.hi, a.lo, b.se, b.hi, b.lo);
    op_prem(0x37f, &a, &b, &r, &sw);
    show("fprem-partial", 0x37f, &r, sw, 0);
    op_prem1(0x37f, &a, &b, &r, &sw);
    show("fprem1-partial", 0x37f, &r, sw, 0);
  }
  for (int rc = 0; rc < 4; rc++) constants((u16)(0x37f | (rc << 10)));
  env_and_stack();
  print("x87-ops done\n");
  exit_vm(EXIT_PASS);
}
