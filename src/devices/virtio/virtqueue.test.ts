import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GuestMemory } from '../../machine/memory.js';
import { MiB } from '../../machine/layout.js';
import {
  DescriptorChain, VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, Virtqueue, VirtqueueError,
} from './virtqueue.js';

const DESC = 0x10000;
const AVAIL = 0x11000;
const USED = 0x12000;

function setup(size = 8, options: { eventIndex?: boolean; maxChainBytes?: number } = {}) {
  const memory = GuestMemory.allocate(16 * MiB);
  const q = new Virtqueue(memory, 0, { maxSize: 16, ...(options.maxChainBytes !== undefined ? { maxChainBytes: options.maxChainBytes } : {}) });
  q.size = size;
  q.descAddress = DESC;
  q.driverAddress = AVAIL;
  q.deviceAddress = USED;
  q.enabled = true;
  q.activate(options.eventIndex ?? false);
  let availIdx = 0;
  const desc = (i: number, address: number, length: number, flags: number, next = 0, table = DESC): void => {
    memory.write64(table + 16 * i, address);
    memory.write32(table + 16 * i + 8, length);
    memory.write16(table + 16 * i + 12, flags);
    memory.write16(table + 16 * i + 14, next);
  };
  const publish = (head: number): void => {
    memory.write16(AVAIL + 4 + 2 * (availIdx % size), head);
    availIdx = (availIdx + 1) & 0xffff;
    memory.write16(AVAIL + 2, availIdx);
  };
  return { memory, q, desc, publish, chain: new DescriptorChain(16) };
}

test('a direct chain is walked into readable then writable segments; used ring and idx are written', () => {
  const { memory, q, desc, publish, chain } = setup();
  desc(3, 0x100000, 16, VIRTQ_DESC_F_NEXT, 5);
  desc(5, 0x101000, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 6);
  desc(6, 0x102000, 1, VIRTQ_DESC_F_WRITE);
  publish(3);
  assert.equal(q.pending(), 1);
  assert.equal(q.pop(chain), true);
  assert.equal(chain.head, 3);
  assert.equal(chain.count, 3);
  assert.equal(chain.readableCount, 1);
  assert.equal(chain.readableBytes, 16);
  assert.equal(chain.writableBytes, 513);
  assert.deepEqual([...chain.addresses.subarray(0, 3)], [0x100000, 0x101000, 0x102000]);
  assert.equal(q.pop(chain), false);
  memory.write32(0x100000, 0x11223344);
  const hdr = new Uint8Array(4);
  assert.equal(chain.readInto(memory, hdr), 4);
  assert.deepEqual([...hdr], [0x44, 0x33, 0x22, 0x11]);
  assert.equal(chain.writeFrom(memory, Uint8Array.of(9, 8), 511), 2);
  assert.equal(memory.read8(0x101000 + 511), 9);
  assert.equal(memory.read8(0x102000), 8);
  q.pushUsed(3, 513);
  assert.equal(memory.read16(USED + 2), 1);
  assert.equal(memory.read32(USED + 4), 3);
  assert.equal(memory.read32(USED + 8), 513);
  assert.equal(q.needsInterrupt(), true);
  assert.equal(q.needsInterrupt(), false); // nothing new since
});

test('indirect tables are followed; nested, NEXT-flagged, empty, odd-sized and out-of-RAM tables are fatal', () => {
  const { q, desc, publish, chain } = setup();
  const T = 0x200000;
  desc(0, 0x100000, 16, VIRTQ_DESC_F_NEXT, 1, T);
  desc(1, 0x101000, 100, VIRTQ_DESC_F_WRITE, 0, T);
  desc(0, T, 32, VIRTQ_DESC_F_INDIRECT);
  publish(0);
  assert.equal(q.pop(chain), true);
  assert.equal(chain.count, 2);
  assert.equal(chain.writableBytes, 100);
  // Each fatal case on a fresh queue.
  const cases: [string, (s: ReturnType<typeof setup>) => void][] = [
    ['nested', (s) => { s.desc(0, 0x300000, 16, VIRTQ_DESC_F_INDIRECT, 0, T); s.desc(1, T, 16, VIRTQ_DESC_F_INDIRECT); }],
    ['indirect with NEXT', (s) => s.desc(1, T, 32, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 2)],
    ['empty', (s) => s.desc(1, T, 0, VIRTQ_DESC_F_INDIRECT)],
    ['odd size', (s) => s.desc(1, T, 24, VIRTQ_DESC_F_INDIRECT)],
    ['outside RAM', (s) => s.desc(1, 16 * MiB - 16, 32, VIRTQ_DESC_F_INDIRECT)],
    ['too many entries', (s) => s.desc(1, T, 16 * 64, VIRTQ_DESC_F_INDIRECT)],
  ];
  for (const [what, arrange] of cases) {
    const s = setup();
    arrange(s);
    s.publish(1);
    assert.throws(() => s.q.pop(s.chain), VirtqueueError, what);
    assert.equal(s.q.broken, true, what);
    assert.equal(s.q.pop(s.chain), false, `${what}: a broken queue yields nothing`);
  }
});

test('loops, bad indices, wild buffers, wrong order, huge chains and runaway avail idx are fatal', () => {
  const cases: [string, (s: ReturnType<typeof setup>) => void][] = [
    ['self loop', (s) => { s.desc(0, 0x100000, 1, VIRTQ_DESC_F_NEXT, 0); s.publish(0); }],
    ['two-cycle', (s) => { s.desc(0, 0x100000, 1, VIRTQ_DESC_F_NEXT, 1); s.desc(1, 0x100000, 1, VIRTQ_DESC_F_NEXT, 0); s.publish(0); }],
    ['head out of range', (s) => s.publish(9)],
    ['next out of range', (s) => { s.desc(0, 0x100000, 1, VIRTQ_DESC_F_NEXT, 8); s.publish(0); }],
    ['buffer past RAM', (s) => { s.desc(0, 16 * MiB - 4, 8, 0); s.publish(0); }],
    ['buffer in MMIO hole', (s) => { s.desc(0, 0xfee00000, 4, 0); s.publish(0); }],
    ['address above 2^53', (s) => { s.memory.write32(DESC + 4, 0xffffffff); s.memory.write32(DESC + 8, 4); s.publish(0); }],
    ['readable after writable', (s) => { s.desc(0, 0x100000, 1, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1); s.desc(1, 0x100000, 1, 0); s.publish(0); }],
    ['avail idx jumps', (s) => s.memory.write16(AVAIL + 2, 100)],
  ];
  for (const [what, arrange] of cases) {
    const s = setup();
    arrange(s);
    assert.throws(() => s.q.pop(s.chain), VirtqueueError, what);
  }
  const s = setup(8, { maxChainBytes: 4096 });
  s.desc(0, 0x100000, 4096, VIRTQ_DESC_F_NEXT, 1);
  s.desc(1, 0x200000, 1, VIRTQ_DESC_F_WRITE);
  s.publish(0);
  assert.throws(() => s.q.pop(s.chain), /exceeds 4096 bytes/);
});

test('ring configuration is validated: size power of two within max, areas aligned and inside RAM', () => {
  const memory = GuestMemory.allocate(16 * MiB);
  const q = new Virtqueue(memory, 2, { maxSize: 256 });
  q.descAddress = DESC;
  q.driverAddress = AVAIL;
  q.deviceAddress = USED;
  assert.equal(q.validate(), undefined);
  for (const size of [0, 3, 100, 512]) {
    q.size = size;
    assert.match(q.validate() ?? '', /not a power of two/);
  }
  q.size = 256;
  q.descAddress = DESC + 8;
  assert.match(q.validate() ?? '', /descriptor table/);
  q.descAddress = 16 * MiB - 16;
  assert.match(q.validate() ?? '', /descriptor table/);
  q.descAddress = DESC;
  q.deviceAddress = USED + 2;
  assert.match(q.validate() ?? '', /used ring/);
  q.deviceAddress = USED;
  q.enabled = true;
  q.driverAddress = 0xfffffff0;
  assert.throws(() => q.activate(false), VirtqueueError);
  assert.throws(() => new Virtqueue(memory, 0, { maxSize: 100 }), RangeError);
});

test('interrupt suppression: NO_INTERRUPT flag, and used_event with EVENT_IDX; avail_event is published', () => {
  const plain = setup();
  plain.desc(0, 0x100000, 1, VIRTQ_DESC_F_WRITE);
  plain.memory.write16(AVAIL, VIRTQ_AVAIL_F_NO_INTERRUPT);
  plain.publish(0);
  assert.ok(plain.q.pop(plain.chain));
  plain.q.pushUsed(0, 1);
  assert.equal(plain.q.needsInterrupt(), false);

  const s = setup(8, { eventIndex: true });
  const usedEvent = AVAIL + 4 + 2 * 8;
  const availEvent = USED + 4 + 8 * 8;
  for (let i = 0; i < 4; i++) s.desc(i, 0x100000 + i * 0x1000, 1, VIRTQ_DESC_F_WRITE);
  s.memory.write16(usedEvent, 1); // interrupt when used idx passes 1 (i.e. reaches 2)
  s.publish(0);
  s.publish(1);
  s.publish(2);
  assert.ok(s.q.pop(s.chain));
  s.q.pushUsed(s.chain.head, 1);
  assert.equal(s.q.needsInterrupt(), false, 'used idx 1 does not pass used_event 1');
  assert.ok(s.q.pop(s.chain));
  s.q.pushUsed(s.chain.head, 1);
  assert.equal(s.q.needsInterrupt(), true, 'used idx 2 passes used_event 1');
  assert.ok(s.q.pop(s.chain));
  assert.equal(s.q.pop(s.chain), false);
  assert.equal(s.memory.read16(availEvent), 3, 'device asks to be notified at avail idx 3');
});
