/**
 * 32-bit protected mode on the soft CPU: interrupt and trap gates through a
 * 32-bit IDT, 2-level paging with 4 MiB (PSE) pages, PAE paging, CR3 reload
 * flushing non-global TLB entries; plus self-modifying code and the routing
 * of MMIO to the local APIC and to the machine.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SoftEngine } from './soft-engine.js';
import { assemble, FakeLapic, fakePlatformFactory, flat32State, identityPageTables, longModeState, softRunner } from './test-support.js';

const GDT32 = (() => {
  const gdt = new Uint8Array(24);
  const v = new DataView(gdt.buffer);
  v.setBigUint64(8, 0x00cf9a000000ffffn, true);
  v.setBigUint64(16, 0x00cf92000000ffffn, true);
  return gdt;
})();

function state32(rip: number): ReturnType<typeof flat32State> {
  const s = flat32State(rip);
  s.gdt = { base: 0x1000n, limit: 23 };
  return s;
}

const MACROS32 = `
.macro st r
    mov [edi], \\r
    add edi, 4
.endm
.macro gate32 vec, handler, type
    mov eax, offset \\handler
    mov ebx, 0x3000 + \\vec * 8
    mov word ptr [ebx], ax
    mov word ptr [ebx+2], 8
    mov word ptr [ebx+4], \\type
    shr eax, 16
    mov word ptr [ebx+6], ax
.endm
.macro load_idt32
    sub esp, 8
    mov word ptr [esp], 0x7ff
    mov dword ptr [esp+2], 0x3000
    lidt [esp]
    add esp, 8
.endm
`;

async function run32(body: string, memory: Array<{ address: number; bytes: Uint8Array }> = []): Promise<number[]> {
  const code = assemble(MACROS32 + 'mov edi, 0x200000\n' + body, 32, 0x10000);
  const result = await softRunner({ code, loadAddress: 0x10000, state: state32(0x10000), memory: [{ address: 0x1000, bytes: GDT32 }, ...memory] });
  assert.equal(result.exit.kind, 'debug-exit', JSON.stringify(result.exit));
  const n = (Number(result.state.gpr.rdi) - 0x200000) / 4;
  const dv = new DataView(result.readMemory(0x200000, n * 4).buffer);
  return Array.from({ length: n }, (_, i) => dv.getUint32(i * 4, true));
}

void test('32-bit IDT: interrupt gate clears IF, trap gate keeps it, #GP error code pushed', async () => {
  const v = await run32(`
    gate32 0x30, int_gate, 0x8e00
    gate32 0x31, trap_gate, 0x8f00
    gate32 13, gp_handler, 0x8e00
    load_idt32
    sti
    int 0x30
    int 0x31
    mov ax, 0x40
    mov esi, offset after
    mov ds, ax
  after:
    out 0xf4, al
  int_gate:
    pushfd
    pop eax
    st eax
    iretd
  trap_gate:
    pushfd
    pop eax
    st eax
    iretd
  gp_handler:
    pop eax
    st eax
    mov [esp], esi
    iretd
  `);
  assert.equal(v[0] & 0x200, 0, 'interrupt gate cleared IF');
  assert.equal(v[1] & 0x200, 0x200, 'trap gate kept IF');
  assert.equal(v[2], 0x40, '#GP error code is the selector');
});

void test('2-level paging with a 4 MiB PSE page and a 4 KiB page; #PF error code; CR3 reload', async () => {
  // Page directory at 0x20000: PDE 0 = 4 MiB identity page, PDE 1 -> page table 0x21000
  // mapping 0x400000 -> 0x600000 (4 KiB), PDE 2 not present.
  const pd = new Uint8Array(4096);
  const pdv = new DataView(pd.buffer);
  pdv.setUint32(0, 0x00000083, true);
  pdv.setUint32(4, 0x21000 | 3, true);
  const pt = new Uint8Array(4096);
  new DataView(pt.buffer).setUint32(0, 0x600000 | 3, true);
  const v = await run32(`
    gate32 14, pf_handler, 0x8e00
    load_idt32
    mov dword ptr [0x600000], 0xcafe
    mov eax, cr4
    or eax, 0x10
    mov cr4, eax
    mov eax, 0x20000
    mov cr3, eax
    mov eax, cr0
    or eax, 0x80000000
    mov cr0, eax
    mov eax, [0x400000]
    st eax
    mov esi, offset after
    mov eax, [0x800004]
  after:
    mov eax, [0x20004]
    st eax
    out 0xf4, al
  pf_handler:
    mov eax, cr2
    st eax
    pop eax
    st eax
    mov [esp], esi
    iretd
  `, [{ address: 0x20000, bytes: pd }, { address: 0x21000, bytes: pt }]);
  assert.equal(v[0], 0xcafe, '0x400000 maps to 0x600000');
  assert.equal(v[1], 0x800004, 'CR2');
  assert.equal(v[2], 0, 'not present, read, supervisor');
  assert.equal(v[3] & 0x20, 0x20, 'accessed bit set in the PDE');
});

void test('PAE paging: 2 MiB pages, write to a read-only page with CR0.WP gives #PF(P|W)', async () => {
  // PDPT at 0x20000 -> PD at 0x21000: identity 2 MiB pages, the one at 0x400000 read-only.
  const pdpt = new Uint8Array(32);
  new DataView(pdpt.buffer).setUint32(0, 0x21000 | 1, true);
  const pd = new Uint8Array(4096);
  const pdv = new DataView(pd.buffer);
  pdv.setUint32(0, 0x83, true);
  pdv.setUint32(8, 0x200000 | 0x83, true);
  pdv.setUint32(16, 0x400000 | 0x81, true);
  const v = await run32(`
    gate32 14, pf_handler, 0x8e00
    load_idt32
    mov dword ptr [0x400010], 0x5555
    mov eax, cr4
    or eax, 0x20
    mov cr4, eax
    mov eax, 0x20000
    mov cr3, eax
    mov eax, cr0
    or eax, 0x80010000
    mov cr0, eax
    mov esi, offset after
    mov dword ptr [0x400010], 1
  after:
    mov eax, [0x400010]
    st eax
    out 0xf4, al
  pf_handler:
    mov eax, cr2
    st eax
    pop eax
    st eax
    mov [esp], esi
    iretd
  `, [{ address: 0x20000, bytes: pdpt }, { address: 0x21000, bytes: pd }]);
  assert.deepEqual(v, [0x400010, 3, 0x5555]);
});

void test('self-modifying code: a write to the next instruction takes effect', async () => {
  const code = assemble(`
    mov eax, 1
    lea rbx, [rip + patch]
    mov byte ptr [rbx + 1], 42
  patch:
    mov al, 7
    out 0xf4, al
  `, 64);
  const r = await softRunner({ code, loadAddress: 0x100000, state: longModeState(0x100000, 0x9000), memory: identityPageTables(0x9000) });
  assert.deepEqual(r.exit, { kind: 'debug-exit', value: 42 });
  // The same code runs twice: the second pass sees the patched byte in the decode cache too.
  const loop = assemble(`
    xor ecx, ecx
  again:
    lea rbx, [rip + patch]
  patch:
    mov al, 7
    inc ecx
    mov byte ptr [rbx + 1], 9
    cmp ecx, 2
    jne again
    out 0xf4, al
  `, 64);
  const r2 = await softRunner({ code: loop, loadAddress: 0x100000, state: longModeState(0x100000, 0x9000), memory: identityPageTables(0x9000) });
  assert.deepEqual(r2.exit, { kind: 'debug-exit', value: 9 });
});

void test('MMIO: the LAPIC page goes to the vCPU APIC, other addresses to the machine', async () => {
  const lapic = new FakeLapic();
  const vm = await new SoftEngine(fakePlatformFactory([lapic])).createVm({ ramSize: 16 << 20, vcpuCount: 1 });
  // Map the LAPIC page and 0xd0000000 with 2 MiB pages in the 4th GiB.
  const tables = identityPageTables(0x9000);
  const pdpt = new DataView(tables[1].bytes.buffer);
  pdpt.setUint32(3 * 8, 0xe000 | 3, true);
  const pd3 = new Uint8Array(4096);
  const pd3v = new DataView(pd3.buffer);
  pd3v.setUint32(((0xfee00000 - 0xc0000000) >>> 21) * 8, 0xfee00000 | 0x9b, true);
  pd3v.setUint32(((0xd0000000 - 0xc0000000) >>> 21) * 8, 0xd0000000 | 0x9b, true);
  for (const m of [...tables, { address: 0xe000, bytes: pd3 }]) vm.memory.writeBytes(m.address, m.bytes);
  vm.memory.writeBytes(0x100000, assemble(`
    mov eax, 0xfee00000
    mov dword ptr [rax + 0xb0], 0
    mov ebx, dword ptr [rax + 0x30]
    mov eax, 0xd0000000
    mov dword ptr [rax + 8], 0x11223344
    mov ecx, dword ptr [rax + 4]
    out 0xf4, al
  `, 64));
  vm.vcpus[0].setState(longModeState(0x100000, 0x9000));
  const mmio: Array<[string, number, number, number]> = [];
  const exit = await vm.run({
    pioRead: () => 0,
    pioWrite: (port, _s, value) => { if (port === 0xf4) vm.requestExit({ kind: 'debug-exit', value }); },
    mmioRead: (addr, size) => { mmio.push(['r', addr, size, 0]); return 0xabcd; },
    mmioWrite: (addr, size, value) => { mmio.push(['w', addr, size, value]); },
  });
  assert.equal(exit.kind, 'debug-exit');
  assert.deepEqual(lapic.mmioLog, [[0xb0, 0]]);
  const st = vm.vcpus[0].getState();
  assert.equal(st.gpr.rbx, 0x12345678n, 'LAPIC register read');
  assert.equal(st.gpr.rcx, 0xabcdn, 'machine MMIO read');
  assert.deepEqual(mmio, [['w', 0xd0000008, 4, 0x11223344], ['r', 0xd0000004, 4, 0]]);
  vm.destroy();
});

void test('SALC (undocumented D6, as QEMU and hardware run it): AL = CF ? 0xff : 0, the rest of EAX and the flags kept', async () => {
  const v = await run32(`
    mov eax, 0x12345678
    clc
    .byte 0xd6
    pushfd
    pop ebx
    st eax
    st ebx
    mov eax, 0x12345678
    stc
    .byte 0xd6
    pushfd
    pop ebx
    st eax
    st ebx
    out 0xf4, al
  `);
  assert.deepEqual(v.map((x) => x.toString(16)), ['12345600', (v[1]).toString(16), '123456ff', (v[3]).toString(16)]);
  assert.equal(v[1] & 1, 0, 'CF still clear');
  assert.equal(v[3] & 1, 1, 'CF still set');
});
