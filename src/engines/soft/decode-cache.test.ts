/**
 * Decoded-instruction cache at page ends: an instruction that ends exactly at
 * the end of its page is cached and still sees self-modifying writes; one
 * that crosses into the next page is decoded each time and sees them too.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assemble, identityPageTables, longModeState, softRunner } from './test-support.js';

/** A loop whose `mov eax, imm32` starts `skip` bytes into a fresh page and is patched after the first pass. */
function patchedLoop(skip: number): Uint8Array {
  return assemble(`
    xor ecx, ecx
    xor edx, edx
    lea rbx, [rip + patch]
    jmp again
    .balign 4096
    .skip ${skip}
  again:
  patch:
    mov eax, 7
    add edx, eax
    inc ecx
    cmp ecx, 1
    jne 1f
    mov byte ptr [rbx + 1], 9
  1:
    cmp ecx, 100
    jne again
    mov eax, edx
    shr eax, 2
    out 0xf4, al
  `, 64);
}

for (const [what, skip] of [['ends at the page end', 4096 - 5], ['crosses the page end', 4096 - 3], ['last byte on the page', 4096 - 1]] as const) {
  void test(`decode cache: a patched instruction that ${what} runs its new bytes`, async () => {
    const r = await softRunner({ code: patchedLoop(skip), loadAddress: 0x100000, state: longModeState(0x100000, 0x9000), memory: identityPageTables(0x9000) });
    // 7 once, then 9 for the other 99 passes: (7 + 891) / 4 = 224.
    assert.deepEqual(r.exit, { kind: 'debug-exit', value: (7 + 99 * 9) >> 2 });
  });
}
