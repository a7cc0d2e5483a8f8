/**
 * Decoder tests against GNU binutils: a broad instruction list is assembled
 * with `as` for 64-, 32- and 16-bit code, disassembled with `objdump -d`, and
 * every instruction's length (and, for the integer ISA, its mnemonic) must
 * match what the decoder says.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assemble } from './test-support.js';
import { decode, D_LEN, D_OP, D_REG, D_STRIDE, OP_INVALID, OP_MAP_0F, type ByteSource } from './decoder.js';

const COMMON = `
add eax, ebx
add byte ptr [eax], 5
adc dx, 0x1234
sbb ecx, dword ptr [ebx+esi*4+0x10]
and al, 0x7f
or word ptr [bp], ax
xor ecx, ecx
cmp dword ptr [esp+8], -1
test byte ptr [edi], 0x80
test eax, 0x100000
inc dword ptr [eax]
dec bl
neg ecx
not word ptr [ebx]
mul ecx
imul ebx
imul ecx, edx, 12
imul ecx, edx, 0x12345
imul ax, word ptr [bx+si]
div byte ptr [ecx]
idiv esi
shl eax, 1
shr ebx, cl
sar dword ptr [eax], 3
rol al, 1
ror cx, 4
rcl edx, 1
rcr bl, cl
shld eax, ebx, 4
shrd edx, ecx, cl
bt eax, 3
bts dword ptr [ebx], ecx
btr ecx, edx
btc word ptr [eax], 15
bsf eax, ebx
bsr cx, word ptr [si]
bswap edx
movzx eax, byte ptr [ebx]
movsx ecx, word ptr [edx]
movzx ax, bl
lea esi, [eax+ebx*8+0x1000]
mov eax, dword ptr ds:0x12345678
mov al, byte ptr fs:[ebx]
mov dword ptr [eax], 0x11223344
mov cr0, eax
mov eax, cr3
mov dr7, ecx
mov ds, ax
mov ax, ss
push eax
push 0x12
push 0x12345678
pop ecx
push es
pop ds
pushf
popf
lahf
sahf
cbw
cwde
cwd
cdq
xchg eax, ebx
xchg byte ptr [eax], cl
xadd dword ptr [ebx], eax
cmpxchg dword ptr [ecx], edx
cmpxchg8b qword ptr [esi]
lock add dword ptr [eax], 1
cmove eax, ebx
cmovg cx, word ptr [edx]
sete al
setnz byte ptr [ebx]
rep movsb
rep stosd
repne scasb
repe cmpsw
lodsd
insb
outsw
in al, 0x60
in eax, dx
out 0x80, al
out dx, ax
enter 16, 0
leave
clc
stc
cmc
cld
std
cli
sti
nop
pause
hlt
cpuid
rdtsc
rdtscp
rdmsr
wrmsr
sysenter
sysexit
lgdt [eax]
lidt [ebx]
sgdt [ecx]
sidt [edx]
lldt ax
ltr bx
sldt eax
str ecx
invlpg [eax]
clts
wbinvd
invd
lmsw ax
smsw eax
lar eax, bx
lsl ecx, dx
verr ax
verw word ptr [ebx]
iretd
int 0x80
int3
ud2
call eax
jmp dword ptr [ebx]
ret
ret 8
retf
lfence
mfence
sfence
clflush [eax]
nop dword ptr [eax+eax*1+0x0]
prefetcht0 [eax]
fld dword ptr [eax]
fadd st, st(1)
fnstsw ax
fwait
movaps xmm0, xmmword ptr [eax]
pxor xmm1, xmm2
pshufd xmm0, xmm1, 0x1b
pinsrw xmm0, eax, 3
cmpps xmm0, xmm1, 2
palignr xmm0, xmm1, 4
pshufb xmm0, xmm1
roundps xmm0, xmm1, 1
fxsave [eax]
ldmxcsr [ebx]
cvtsi2sd xmm0, eax
movd mm0, eax
emms
popcnt eax, ebx
tzcnt eax, ebx
movbe eax, dword ptr [ebx]
crc32 eax, byte ptr [ebx]
xlat
`;

const ONLY32 = `
pusha
popa
aaa
daa
into
les eax, [ebx]
lds si, [bx]
bound eax, qword ptr [ebx]
arpl ax, bx
jmp 0x10:0x1000
call 0x10:0x1000
inc eax
dec ecx
push cs
push ss
pop ss
aam
aad
`;

const ONLY64 = `
add rax, rbx
add r8, qword ptr [r9+r10*8+0x100]
mov r15b, sil
mov spl, 1
mov rax, 0x1122334455667788
mov eax, dword ptr [rip+0x1000]
mov rax, qword ptr gs:0x28
movabs al, ds:0x1122334455667788
movsxd rax, ecx
cdqe
cqo
push r12
pop r13
syscall
sysretq
swapgs
iretq
cmpxchg16b xmmword ptr [rdi]
lea r11, [rip+0x20]
imul r9, qword ptr [rsp+8], 100
shl r10, 63
xchg r8, rax
bswap r9
cmovb r14, qword ptr [r15]
mov cr8, rax
mov rax, cr4
jmp qword ptr [rax+8]
call qword ptr [rip+0x100]
rep movsq
lock xadd qword ptr [rdx], rcx
test r10d, 0x10
ud2
endbr64
vaddps ymm0, ymm1, ymm2
vmovdqu xmm0, xmmword ptr [rax]
vzeroupper
`;

interface ObjdumpLine {
  offset: number;
  length: number;
  mnemonic: string;
  text: string;
}

function objdump(code: Uint8Array, bits: 16 | 32 | 64): ObjdumpLine[] {
  const dir = mkdtempSync(join(tmpdir(), 'softcpu-od-'));
  try {
    const file = join(dir, 'code.bin');
    writeFileSync(file, code);
    const machine = bits === 64 ? 'i386:x86-64' : bits === 32 ? 'i386' : 'i8086';
    const out = execFileSync('objdump', ['-D', '-b', 'binary', '-m', machine, '-M', 'intel', '--insn-width=16', file], { encoding: 'utf8' });
    const lines: ObjdumpLine[] = [];
    for (const line of out.split('\n')) {
      const m = /^\s*([0-9a-f]+):\t([0-9a-f ]+?)\s*\t(.*)$/.exec(line);
      if (m === null) continue;
      const text = m[3].trim();
      let words = text.split(/\s+/);
      while (words.length > 1 && /^(lock|rep[a-z]*|data16|addr32|ds|cs|es|ss|fs|gs|notrack|bnd)$/.test(words[0])) words = words.slice(1);
      lines.push({ offset: parseInt(m[1], 16), length: m[2].split(' ').length, mnemonic: words[0], text });
    }
    return lines;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const ALU = ['add', 'or', 'adc', 'sbb', 'and', 'sub', 'xor', 'cmp'];
const CC = ['o', 'no', 'b', 'ae', 'e', 'ne', 'be', 'a', 's', 'ns', 'p', 'np', 'l', 'ge', 'le', 'g'];
const SHIFTS = ['rol', 'ror', 'rcl', 'rcr', 'shl', 'shr', 'shl', 'sar'];
const GRP3 = ['test', 'test', 'not', 'neg', 'mul', 'imul', 'div', 'idiv'];

/** The mnemonic the decoder implies for integer opcodes (undefined when the test does not check it). */
function expectedMnemonic(op: number, reg: number): string | undefined {
  if (op < 0x40 && (op & 7) < 6) return ALU[op >> 3];
  if (op >= 0x80 && op <= 0x83) return ALU[reg & 7];
  if (op >= 0x70 && op <= 0x7f) return 'j' + CC[op & 15];
  if (op >= (OP_MAP_0F | 0x80) && op <= (OP_MAP_0F | 0x8f)) return 'j' + CC[op & 15];
  if (op >= (OP_MAP_0F | 0x40) && op <= (OP_MAP_0F | 0x4f)) return 'cmov' + CC[op & 15];
  if (op >= (OP_MAP_0F | 0x90) && op <= (OP_MAP_0F | 0x9f)) return 'set' + CC[op & 15];
  if (op === 0xc0 || op === 0xc1 || (op >= 0xd0 && op <= 0xd3)) return SHIFTS[reg & 7];
  if (op === 0xf6 || op === 0xf7) return GRP3[reg & 7];
  if (op >= 0x88 && op <= 0x8c) return 'mov';
  if (op === 0x8e || (op >= 0xb0 && op <= 0xbf)) return op >= 0xb8 ? undefined : 'mov';
  if (op === 0x8d) return 'lea';
  if (op >= 0x50 && op <= 0x57) return 'push';
  if (op >= 0x58 && op <= 0x5f) return 'pop';
  if (op === 0x84 || op === 0x85 || op === 0xa8 || op === 0xa9) return 'test';
  if (op === (OP_MAP_0F | 0xa2)) return 'cpuid';
  if (op === (OP_MAP_0F | 0xc7) && (reg & 7) === 1) return undefined;
  if (op === (OP_MAP_0F | 0xbc)) return undefined; // bsf or tzcnt
  if (op === (OP_MAP_0F | 0xb6) || op === (OP_MAP_0F | 0xb7)) return 'movzx';
  if (op === (OP_MAP_0F | 0xbe) || op === (OP_MAP_0F | 0xbf)) return 'movsx';
  if (op === 0xf4) return 'hlt';
  if (op === 0xcd) return 'int';
  return undefined;
}

function check(source: string, bits: 16 | 32 | 64): number {
  const code = assemble(source, bits);
  const lines = objdump(code, bits);
  assert.ok(lines.length > 50, `objdump produced ${lines.length} lines`);
  const out = new Int32Array(D_STRIDE);
  let checkedMnemonics = 0;
  for (const line of lines) {
    const src: ByteSource = { byte: (i) => (line.offset + i < code.length ? code[line.offset + i] : 0) };
    const len = decode(src, bits, out, 0);
    if (line.mnemonic === '(bad)') continue;
    assert.equal(len, line.length, `${bits}-bit length of "${line.text}" at 0x${line.offset.toString(16)}`);
    assert.notEqual(out[D_OP], OP_INVALID, `"${line.text}" decoded as invalid`);
    assert.equal(out[D_LEN], len);
    const want = expectedMnemonic(out[D_OP], out[D_REG]);
    if (want !== undefined) {
      const got = line.mnemonic.replace(/^(sal)$/, 'shl').replace(/^(jz)$/, 'je').replace(/^(jnz)$/, 'jne');
      const norm = (m: string): string => m.replace(/^(j|cmov|set)(z|c|nae|nb|nc|nz|na|nbe|pe|po|nge|nl|ng|nle)$/, (_s, p: string, cc: string) => p + ({ z: 'e', c: 'b', nae: 'b', nb: 'ae', nc: 'ae', nz: 'ne', na: 'be', nbe: 'a', pe: 'p', po: 'np', nge: 'l', nl: 'ge', ng: 'le', nle: 'g' } as Record<string, string>)[cc]);
      assert.equal(norm(want), norm(got), `mnemonic of "${line.text}"`);
      checkedMnemonics++;
    }
  }
  return checkedMnemonics;
}

void test('decoder matches objdump lengths and mnemonics in 64-bit mode', () => {
  const invalidIn64 = /\[bp\]|\[bx|\[si\]|push (es|eax)|pop (ds|ecx)|, cr\d|cr\d, |dr7|sysexit|sbb ecx|bts dword|xadd dword|cmpxchg dword|in eax, dx|movbe|call eax|jmp dword/;
  const common64 = COMMON.split('\n').filter((l) => !invalidIn64.test(l)).join('\n');
  const n = check(common64 + ONLY64 + JCC, 64);
  assert.ok(n > 40, `${n} mnemonics checked`);
});

void test('decoder matches objdump lengths and mnemonics in 32-bit mode', () => {
  const n = check(COMMON + ONLY32 + JCC, 32);
  assert.ok(n > 40, `${n} mnemonics checked`);
});

void test('decoder matches objdump lengths in 16-bit mode', () => {
  check(COMMON + ONLY32 + JCC, 16);
});

const JCC = `
1: jo 1b
jne 1b
jg 2f
loop 1b
jecxz 1b
call 1b
jmp 2f
2: nop
`;

void test('invalid encodings decode to #UD and over-long instructions are rejected', () => {
  const out = new Int32Array(D_STRIDE);
  const bytes = (b: number[]): ByteSource => ({ byte: (i) => b[i] ?? 0x90 });
  // 0x06 (push es) is invalid in 64-bit mode.
  decode(bytes([0x06]), 64, out, 0);
  assert.equal(out[D_OP], OP_INVALID);
  decode(bytes([0x06]), 32, out, 0);
  assert.equal(out[D_OP], 0x06);
  // 15 prefixes then an opcode: too long.
  assert.equal(decode(bytes(new Array<number>(15).fill(0x66).concat([0x90])), 64, out, 0), -1);
  // 0F 04 does not exist.
  decode(bytes([0x0f, 0x04]), 64, out, 0);
  assert.equal(out[D_OP], OP_INVALID);
});
