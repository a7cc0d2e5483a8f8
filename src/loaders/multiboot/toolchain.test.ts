/**
 * Cross-checks the multiboot path against kernels produced by a real
 * toolchain (nasm + GNU ld), rather than by our own fixtures: an ELF32 linked
 * at 4 MiB like kvm-unit-tests' .flat files (with the extra program headers a
 * linker emits) and a flat a.out-kludge binary. Skips when the tools are absent.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GuestMemory } from '../../machine/memory.js';
import { MiB } from '../../machine/layout.js';
import { loadKernel } from '../index.js';

function hasTool(name: string, arg: string): boolean {
  return spawnSync(name, [arg], { encoding: 'utf8' }).error === undefined;
}
const tools = hasTool('nasm', '-v') && hasTool('ld', '-v');

function run(cmd: string, args: string[], cwd: string): void {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8' });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')}: ${r.stdout}${r.stderr}`);
}

const ELF_SOURCE = `
bits 32
section .text
align 4
mb_header:
  dd 0x1BADB002, 0x00000003, -(0x1BADB002 + 0x00000003)
global start
start:
  mov [magic], eax
  mov [info], ebx
  hlt
section .data
magic: dd 0
section .bss
info: resd 1
buffer: resb 8192
`;

void test('an ELF32 multiboot kernel linked by GNU ld at 4 MiB loads like kvm-unit-tests', { skip: tools ? false : 'nasm or ld not installed' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'typevisor-mb-'));
  try {
    writeFileSync(join(dir, 'k.asm'), ELF_SOURCE);
    run('nasm', ['-f', 'elf32', '-o', 'k.o', 'k.asm'], dir);
    run('ld', ['-m', 'elf_i386', '-Ttext', '0x400000', '-e', 'start', '-o', 'k.elf', 'k.o'], dir);
    const bytes = new Uint8Array(readFileSync(join(dir, 'k.elf')));
    const memory = GuestMemory.allocate(32 * MiB);
    const r = loadKernel(memory, bytes, { kernelName: 'k.elf', cmdline: 'a b', initrd: new Uint8Array([1, 2, 3]) });
    assert.equal(r.kind, 'multiboot');
    assert.equal(r.entry, 0x40000c, 'start follows the 12-byte header');
    assert.equal(memory.read32(0x400000), 0x1badb002);
    assert.equal(memory.read8(0x40000c), 0xa3, 'mov [moffs32], eax');
    assert.ok(r.kernelEnd >= 0x400000 + 8192, 'bss included');
    assert.ok(r.initrd && r.initrd.address >= r.kernelEnd);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const AOUT_SOURCE = `
bits 32
org 0x200000
load_start:
  jmp start
align 4
mb_header:
  dd 0x1BADB002, 0x00010000, -(0x1BADB002 + 0x00010000)
  dd mb_header, load_start, load_end, bss_end, start
start:
  hlt
  times 100 db 0x90
load_end:
bss_end equ load_end + 4096
`;

void test('a flat a.out-kludge binary assembled by nasm loads at its header addresses', { skip: tools ? false : 'nasm not installed' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'typevisor-mb-'));
  try {
    writeFileSync(join(dir, 'k.asm'), AOUT_SOURCE);
    run('nasm', ['-f', 'bin', '-o', 'k.bin', 'k.asm'], dir);
    const bytes = new Uint8Array(readFileSync(join(dir, 'k.bin')));
    const memory = GuestMemory.allocate(32 * MiB);
    memory.fill(0x200000, 0x2000, 0xff);
    const r = loadKernel(memory, bytes, { kernelName: 'k.bin' });
    assert.equal(r.kind, 'multiboot');
    assert.deepEqual(memory.readBytes(0x200000, bytes.length), bytes);
    assert.equal(memory.read8(r.entry), 0xf4, 'hlt at entry');
    assert.equal(r.kernelEnd, 0x200000 + bytes.length + 4096);
    assert.equal(memory.readBytes(0x200000 + bytes.length, 4096).every((b) => b === 0), true, 'bss zeroed');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
