/**
 * Privilege transitions of the soft CPU in long mode: IRETQ to ring 3,
 * INT n from ring 3 through a DPL-3 gate with the stack switch to TSS.RSP0,
 * IST stacks, SYSCALL/SYSRET, and #GP for privileged instructions in ring 3.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ASM_IDT_MACROS, ASM_STORE_MACRO, assemble, buildGdt, buildTss, DESCRIPTOR, identityPageTables, longModeState, softRunner,
} from './test-support.js';

/** GDT: 0x08 kernel code64, 0x10 kernel data, 0x18 user code32, 0x20 user data, 0x28 user code64, 0x30 TSS (16 bytes). */
function gdtWithTss(tssBase: number): Uint8Array {
  return buildGdt(0x40, [
    [0x08, DESCRIPTOR.code64], [0x10, DESCRIPTOR.data], [0x18, DESCRIPTOR.userCode32], [0x20, DESCRIPTOR.userData], [0x28, DESCRIPTOR.userCode64],
  ], { at: 0x30, base: tssBase });
}

void test('ring 3 round trips: IRETQ, INT through a DPL-3 gate with RSP0, IST, SYSCALL/SYSRET, #GP for CLI', async () => {
  const tss = buildTss(0x90000, 0xa0000);
  const code = assemble(`${ASM_STORE_MACRO}${ASM_IDT_MACROS}
    mov r13, 0x200000
    gate 0x80, int80, 0xee00
    gate 0x81, int81, 0xee01
    gate 0x82, int82, 0xee00
    gate 13, gp, 0x8e00
    sub rsp, 16
    mov word ptr [rsp], 0xfff
    mov rax, 0x300000
    mov qword ptr [rsp+2], rax
    lidt [rsp]
    add rsp, 16
    mov ax, 0x30
    ltr ax
    mov ecx, 0xc0000081
    mov eax, 0
    mov edx, 0x00180008
    wrmsr
    mov ecx, 0xc0000082
    lea rax, [rip + syscall_entry]
    mov rdx, rax
    shr rdx, 32
    wrmsr
    mov ecx, 0xc0000084
    mov eax, 0x200
    xor edx, edx
    wrmsr
    push 0x23
    push 0x70000
    push 0x2
    push 0x2b
    lea rax, [rip + user]
    push rax
    iretq
user:
    mov ax, cs
    movzx rax, ax
    st rax
    int 0x80
    int 0x81
    mov r11, 0
    syscall
after_syscall:
    mov ax, cs
    movzx rax, ax
    st rax
    st rsp
    lea r15, [rip + after_cli]
    cli
after_cli:
    int 0x82
int80:
    mov rax, [rsp + 8]
    st rax
    mov rax, [rsp + 32]
    st rax
    mov rax, rsp
    st rax
    iretq
int81:
    mov rax, rsp
    st rax
    iretq
syscall_entry:
    st rcx
    st r11
    mov ax, cs
    movzx rax, ax
    st rax
    sysretq
gp:
    pop rax
    st rax
    mov rax, [rsp + 8]
    st rax
    mov [rsp], r15
    iretq
int82:
    out 0xf4, al
  `, 64);
  const tables = identityPageTables(0x9000);
  const state = longModeState(0x100000, 0x9000);
  state.gdt = { base: 0x310000n, limit: 0x3f };
  const result = await softRunner({
    code, loadAddress: 0x100000, state,
    memory: [...tables, { address: 0x310000, bytes: gdtWithTss(0x320000) }, { address: 0x320000, bytes: tss }],
  });
  assert.equal(result.exit.kind, 'debug-exit', JSON.stringify(result.exit));
  const n = (Number(result.state.gpr.r13) - 0x200000) / 8;
  const dv = new DataView(result.readMemory(0x200000, n * 8).buffer);
  const v = Array.from({ length: n }, (_, i) => dv.getBigUint64(i * 8, true));
  assert.equal(v[0], 0x2bn, 'user CS after IRETQ');
  assert.equal(v[1], 0x2bn, 'INT frame: CS');
  assert.equal(v[2], 0x23n, 'INT frame: SS');
  assert.equal(v[3], 0x90000n - 40n, 'INT switched to TSS.RSP0');
  assert.equal(v[4], 0xa0000n - 40n, 'IST1 stack');
  // SYSCALL: RCX = return address, R11 = RFLAGS, CS = 0x08.
  assert.equal(v[7], 0x8n);
  assert.equal(v[6] & 0x2n, 0x2n);
  assert.equal(v[8], 0x2bn, 'SYSRET back to user CS');
  assert.equal(v[9], 0x70000n, 'user RSP preserved');
  // CLI at CPL 3 with IOPL 0: #GP(0) from user CS.
  assert.equal(v[10], 0n);
  assert.equal(v[11], 0x2bn);
  assert.equal(result.state.seg.cs.selector, 0x8, 'INT 0x82 handler runs in ring 0');
});

void test('SYSCALL from compatibility mode enters at CSTAR, from 64-bit mode at LSTAR (SDM SYSCALL)', async () => {
  const code = assemble(`
    mov r13, 0x200000
    mov ecx, 0xc0000081
    mov eax, 0
    mov edx, 0x00180008
    wrmsr
    mov ecx, 0xc0000082
    lea rax, [rip + lstar_entry]
    xor edx, edx
    wrmsr
    mov ecx, 0xc0000083
    lea rax, [rip + cstar_entry]
    xor edx, edx
    wrmsr
    push 0x23
    push 0x70000
    push 0x2
    push 0x1b
    lea rax, [rip + user32]
    push rax
    iretq
lstar_entry:
    mov qword ptr [r13], 1
    out 0xf4, al
cstar_entry:
    mov qword ptr [r13], 2
    mov [r13 + 8], rcx
    out 0xf4, al
.code32
user32:
    syscall
after_syscall32:
.code64
  `, 64);
  const tables = identityPageTables(0x9000);
  const state = longModeState(0x100000, 0x9000);
  state.gdt = { base: 0x310000n, limit: 0x3f };
  const result = await softRunner({
    code, loadAddress: 0x100000, state,
    memory: [...tables, { address: 0x310000, bytes: gdtWithTss(0x320000) }],
  });
  assert.equal(result.exit.kind, 'debug-exit', JSON.stringify(result.exit));
  const dv = new DataView(result.readMemory(0x200000, 16).buffer);
  assert.equal(dv.getBigUint64(0, true), 2n, 'compatibility-mode SYSCALL goes to CSTAR');
  assert.equal(dv.getBigUint64(8, true), BigInt(0x100000 + code.length), 'RCX = address after SYSCALL (the last instruction)');
  assert.equal(result.state.seg.cs.selector, 0x8);
});

void test('SYSCALL/SYSRET single-step by TF after the instruction: no #DB after a SYSCALL that masks TF, #DB after a SYSRET that sets it', async () => {
  const tss = buildTss(0x90000);
  const code = assemble(`${ASM_IDT_MACROS}${ASM_STORE_MACRO}
    mov r13, 0x200000
    gate 1, db
    load_idt
    mov ax, 0x30
    ltr ax
    mov ecx, 0xc0000081
    mov eax, 0
    mov edx, 0x00180008
    wrmsr
    mov ecx, 0xc0000082
    lea rax, [rip + syscall_entry]
    xor edx, edx
    wrmsr
    mov ecx, 0xc0000084
    mov eax, 0x100
    wrmsr
    mov r11, 0x102
    lea rcx, [rip + user]
    st rcx
    mov rsp, 0x70000
    sysretq
user:
    mov r12, 1
    syscall
syscall_entry:
    mov rax, 0x5c
    st rax
    out 0xf4, al
db:
    mov rax, [rsp]
    st rax
    mov rax, [rsp + 8]
    st rax
    and qword ptr [rsp + 16], ~0x100
    iretq
  `, 64);
  const tables = identityPageTables(0x9000);
  const state = longModeState(0x100000, 0x9000);
  state.gdt = { base: 0x310000n, limit: 0x3f };
  const result = await softRunner({
    code, loadAddress: 0x100000, state,
    memory: [...tables, { address: 0x310000, bytes: gdtWithTss(0x320000) }, { address: 0x320000, bytes: tss }],
  });
  assert.equal(result.exit.kind, 'debug-exit', JSON.stringify(result.exit));
  const n = (Number(result.state.gpr.r13) - 0x200000) / 8;
  const dv = new DataView(result.readMemory(0x200000, n * 8).buffer);
  const v = Array.from({ length: n }, (_, i) => dv.getBigUint64(i * 8, true));
  assert.equal(v.length, 4, `one #DB then the SYSCALL entry: ${v.map((x) => x.toString(16)).join(' ')}`);
  assert.equal(v[1], v[0], '#DB right after SYSRET, before the first user instruction');
  assert.equal(v[2], 0x2bn, '#DB after SYSRET is taken in user mode');
  assert.equal(v[3], 0x5cn, 'no #DB after SYSCALL (TF masked by IA32_FMASK)');
});
