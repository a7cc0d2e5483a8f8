/**
 * Regression tests for soft-engine bugs the conformance harness found: each
 * case carries the SDM's answer (checked on the soft engine always) and, when
 * /dev/kvm exists and kvm_pvm can run it, is also compared against kvm.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { KvmEngine } from '../../kvm/kvm-engine.js';
import { SoftEngine } from '../soft-engine.js';
import { fakePlatformFactory } from '../test-support.js';
import { ARITH, F, compareEngines, type ConformanceCase } from './harness.js';

const HAVE_KVM = existsSync('/dev/kvm');
const M64 = 0xffffffffffffffffn;
void [ARITH, F, M64]; // used by some of the tests below

/** Runs `cases` on soft (SDM expectations) and, if `onKvm` and /dev/kvm exists, compares them with kvm. */
async function check(cases: ConformanceCase[], onKvm = true): Promise<void> {
  const { failures } = await compareEngines(new SoftEngine(fakePlatformFactory()), onKvm && HAVE_KVM ? new KvmEngine() : null, cases);
  assert.deepEqual(failures, []);
}
void test('#TS(TSS selector) when the IST slot of a 64-bit gate lies beyond the TSS limit', async () => {
  // kvm_pvm cannot run INT n (emulation failure), so this is checked against the SDM only.
  await check([{ name: 'int via IST7 outside a 0x2f-byte TSS', asm: 'fault_ip: int 0x41', expect: { vector: 10, error: 0x28, faultAtLabel: true } }], false);
});
void test('effective addresses and LEA are exact with 64-bit registers beyond 2^53', async () => {
  await check([
    { name: 'lea r32 of non-canonical sums', asm: 'lea r8d, [rax*4+0]\nlea ebp, [rdx+0]\nlea r12w, [rdx+r8*4-128]', regs: { rax: 0x7fffffffffffffffn, rdx: 0xd80427a0b68431c1n },
      expect: { regs: { r8: 0xfffffffcn, rbp: 0xb68431c1n, r12: (0xb68431c1n + 0xfffffffcn * 4n - 128n) & 0xffffn } } },
    { name: 'lea r64 wraps modulo 2^64', asm: 'lea rax, [rbx+rcx*8+0x10]', regs: { rbx: 0x8000000000000001n, rcx: 0x1000000000000001n },
      expect: { regs: { rax: (0x8000000000000001n + 0x8000000000000008n + 0x10n) & M64 } } },
    { name: 'a memory operand whose non-canonical parts sum to a canonical address',
      asm: 'mov qword ptr [r15+0x200], 0x1234\nlea rbx, [r15+0x200]\nbtc rbx, 63\nmov rax, [rbx+rcx]', regs: { rcx: 0x8000000000000000n }, undefinedFlags: F.OF | F.SF | F.AF | F.PF | F.CF,
      expect: { regs: { rax: 0x1234n } } },
  ]);
});
void test('BT/BTS/BTR/BTC with a 64-bit register bit offset use its exact low bits', async () => {
  await check([{ name: 'btr rsi, rsi', asm: 'btr rsi, rsi\nbts rax, rcx', regs: { rsi: 0x609e69d92d7b160bn, rcx: 0x7fffffffffffff3fn }, undefinedFlags: F.OF | F.SF | F.AF | F.PF,
    expect: { regs: { rsi: 0x609e69d92d7b160bn, rax: 0x8000000000000000n } } }]);
});
void test('XADD with the same register as both operands leaves the sum', async () => {
  await check([{ name: 'xadd r8w, r8w', asm: 'xadd r8w, r8w\nxadd eax, eax', regs: { r8: 0xac72716f3d5f479en, rax: 0x1234567880000001n },
    expect: { regs: { r8: 0xac72716f3d5f8f3cn, rax: 2n } } }]);
});
void test('32-bit shifts by a masked count of 0 clear bits 63:32; SHLD/SHRD r32 with large counts are exact', async () => {
  await check([
    { name: 'count 0', asm: 'shl eax, 0\nror ebx, 32\nshld ecx, edx, 0\nshl esi, cl\nrcl edi, 0', regs: { rax: M64, rbx: M64, rcx: 0xffffffff00000020n, rsi: M64, rdi: M64 }, flags: F.CF | F.OF,
      expect: { regs: { rax: 0xffffffffn, rbx: 0xffffffffn, rcx: 0x20n, rsi: 0xffffffffn, rdi: 0xffffffffn }, flagsSet: F.CF | F.OF } },
    { name: 'shld/shrd 32-bit, counts 25-31', asm: 'shld ebp, r11d, 31\nshrd ecx, edx, 29\nshld dword ptr [r15+0x200], r8d, 25', undefinedFlags: F.AF | F.OF,
      regs: { rbp: 0x40eefb53n, r11: 0x5b3ea5edn, rcx: 0x12345679n, rdx: 0xfedcba98n, r8: 0xffffffffn },
      expect: { regs: { rbp: ((0x40eefb53n << 31n) | (0x5b3ea5edn >> 1n)) & 0xffffffffn, rcx: ((0x12345679n >> 29n) | (0xfedcba98n << 3n)) & 0xffffffffn } } },
  ]);
});
void test('BSF/BSR r32 with a zero source keep the low half and clear the upper half (as the hardware does)', async () => {
  // kvm_pvm's instruction emulator keeps the upper half instead, and whether a case is emulated varies: SDM-only.
  await check([{ name: 'bsf/bsr zero', asm: 'bsf eax, ebx\nbsr ecx, ebx', regs: { rax: 0xdeadbeefcafef00dn, rcx: M64 }, undefinedFlags: F.CF | F.OF | F.SF | F.AF | F.PF,
    expect: { regs: { rax: 0xcafef00dn, rcx: 0xffffffffn }, flagsSet: F.ZF } }], false);
});
void test('a fault saves RFLAGS with RF set', async () => {
  await check([
    { name: '#DE', asm: 'fault_ip: div rcx', regs: { rax: 5n }, flags: F.CF, undefinedFlags: ARITH, expect: { vector: 0, faultAtLabel: true, savedFlagsSet: F.RF | F.CF } },
    { name: '#PF', asm: 'fault_ip: mov rax, [rbx]', regs: { rbx: 0x40000000n }, expect: { vector: 14, error: 0, cr2: 0x40000000n, faultAtLabel: true, savedFlagsSet: F.RF } },
  ]);
});
void test('read-modify-write instructions raise a write fault before changing flags', async () => {
  const ro = 0x200008n; // the batch's read-only 2 MiB page
  const cases: ConformanceCase[] = ['add dword ptr [rbx], eax', 'inc qword ptr [rbx]', 'neg byte ptr [rbx]', 'shl word ptr [rbx], 3', 'bts dword ptr [rbx], 3', 'xadd [rbx], eax', 'shld [rbx], eax, 4', 'sbb byte ptr [rbx], 1'].map((asm) => ({
    name: asm, asm: `fault_ip: ${asm}`, regs: { rbx: ro, rax: 0x80000000n }, flags: F.PF,
    expect: { vector: 14, error: 3, cr2: ro, faultAtLabel: true, flagsSet: F.PF, flagsClear: ARITH & ~F.PF },
  }));
  await check(cases);
});
void test('a non-canonical stack reference raises #SS(0), not #GP(0); LEA never faults', async () => {
  await check([
    { name: 'push', asm: 'mov rsp, rbx\nfault_ip: push rax', regs: { rbx: 0x0000800000000010n }, expect: { vector: 12, error: 0, faultAtLabel: true } },
    { name: 'pop', asm: 'mov rsp, rbx\nfault_ip: pop rax', regs: { rbx: 0x0000800000000000n }, expect: { vector: 12, error: 0, faultAtLabel: true } },
    { name: 'rbp base', asm: 'fault_ip: mov rax, [rbp+8]', regs: { rbp: 0x0000800000000000n }, expect: { vector: 12, error: 0, faultAtLabel: true } },
    { name: 'rsp base', asm: 'mov rsp, rbx\nfault_ip: mov rax, [rsp]', regs: { rbx: 0x0000800000000000n }, expect: { vector: 12, error: 0, faultAtLabel: true } },
    { name: 'other base stays #GP', asm: 'fault_ip: mov rax, [rsi+8]', regs: { rsi: 0x0000800000000000n }, expect: { vector: 13, error: 0, faultAtLabel: true } },
    { name: 'lea', asm: 'lea rax, [rbp+8]', regs: { rbp: 0x0000800000000000n }, expect: { regs: { rax: 0x0000800000000008n } } },
  ]);
});
void test('the exception frame holds the exact non-canonical RSP', async () => {
  // The stub reloads RSP from the frame, so the case's final RSP is the saved one.
  await check([{ name: 'push at 0x8000000000000010', asm: 'mov rsp, rbx\nfault_ip: push rax', regs: { rbx: 0x8000000000000010n },
    expect: { vector: 12, error: 0, faultAtLabel: true, regs: { rsp: 0x8000000000000010n } } }]);
});

void test('4-level paging indexes the PDPT with linear-address bits 38:30, not 31:30', async () => {
  // The batch maps only PDPT[0] (the first GiB): 0x4d3f67370f (PDPT index 308) and the
  // kernel-style 0xffffffff81000000 (index 510) are not present; 0xc0000000 (index 3) neither.
  const pf = (asm: string, at: bigint, error: number): ConformanceCase => ({ name: asm, asm: `fault_ip: ${asm}`, regs: { rdi: at, rcx: 9n, rax: 0x1234n },
    expect: { vector: 14, error, cr2: at, faultAtLabel: true, regs: { rcx: 9n, rdi: at } } });
  await check([
    pf('mov [rdi], eax', 0x4d3f67370fn, 2),
    pf('rep stosd', 0x4d3f67370fn, 2),
    pf('mov eax, [rdi]', 0xffffffff81000000n, 0),
    pf('mov eax, [rdi]', 0xc0000000n, 0),
  ]);
});
