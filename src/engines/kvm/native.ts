/**
 * Loads typevisor's native kvm addon (native/kvm_addon.cc) and describes its
 * functions. The addon is only the syscall boundary; everything KVM-specific
 * lives in TypeScript.
 */

import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { EngineUnavailableError } from '../engine.js';

/** An opaque handle to a uv_poll_t watching an eventfd. */
export type EventfdPollHandle = { readonly __eventfdPoll: unique symbol };

/** An opaque handle to a native event-loop watcher thread. */
export type WatcherHandle = { readonly __watcher: unique symbol };

export interface KvmNative {
  /** open(2) with O_CLOEXEC added; throws an Error with `code` (e.g. 'ENOENT'). */
  open(path: string, flags: number): number;
  close(fd: number): void;
  /** ioctl with an integer argument; returns the result, throws on failure. */
  ioctlInt(fd: number, request: number, arg: number): number;
  /** ioctl with a pointer to `bytes`; returns the result, throws on failure. */
  ioctlBytes(fd: number, request: number, bytes: ArrayBufferView | ArrayBuffer): number;
  /** KVM_RUN on a vCPU fd: 0 or -errno (never throws). */
  run(vcpuFd: number): number;
  /** mmap(2) returning an external ArrayBuffer over the mapping. */
  mmap(length: number, prot: number, flags: number, fd: number, offset: number): ArrayBuffer;
  /** One anonymous mapping tiled by consecutive ArrayBuffers of the given sizes. */
  mmapPieces(pieceSizes: readonly number[], prot: number, flags: number): ArrayBuffer[];
  /** Detaches the buffer and unmaps it. */
  munmap(buffer: ArrayBuffer): void;
  /** The host address of the buffer's bytes. */
  addressOf(buffer: ArrayBuffer): bigint;
  gettid(): number;
  /** Reserves `count` consecutive kick slots; returns the first or -1. */
  allocSlots(count: number): number;
  freeSlots(first: number, count: number): void;
  /** Declares that the calling thread runs the vCPU whose kvm_run is `kvmRun`. */
  registerVcpuThread(slot: number, kvmRun: ArrayBuffer): void;
  unregisterVcpuThread(slot: number): void;
  /** Sets immediate_exit in the slot's kvm_run and signals its thread. */
  kick(slot: number): void;
  watcherCreate(): WatcherHandle;
  /**
   * Arms the watcher for the calling thread's event loop: it kicks `slot` when
   * the loop's backend fd has events, its next timer is due, or after maxMs.
   * Returns the timeout it uses (ms).
   */
  watcherArm(watcher: WatcherHandle, slot: number, maxMs: number): number;
  watcherDisarm(watcher: WatcherHandle): void;
  watcherTakeFired(watcher: WatcherHandle): boolean;
  watcherDestroy(watcher: WatcherHandle): void;
  /**
   * Has the watcher poll an eventfd (an ioeventfd) itself while armed: when it
   * is signalled the watcher drains it, sets bit `index` and kicks the slot
   * without ending the slice. Returns the index (0-31) or -1 when all are used.
   */
  watcherAddEventfd(watcher: WatcherHandle, fd: number): number;
  /** Stops polling that eventfd; afterwards the watcher never reads it again (the caller may close it). */
  watcherRemoveEventfd(watcher: WatcherHandle, index: number): void;
  /** The bits of the eventfds signalled since the last call (cleared). */
  watcherTakeSignalled(watcher: WatcherHandle): number;
  /** eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK). */
  eventfdCreate(): number;
  /** Adds 1 to an eventfd (fires a KVM irqfd). */
  eventfdSignal(fd: number): void;
  /** Calls `onSignal` on this thread's event loop each time the eventfd is signalled (drained first). Unref'd. */
  pollEventfd(fd: number, onSignal: () => void): EventfdPollHandle;
  /** Stops a pollEventfd or pollFd watch (the fd stays open). */
  pollClose(handle: EventfdPollHandle): void;
  /**
   * Watches a non-blocking fd for `events` (1 readable, 2 writable) without
   * reading it: `onEvents(events)` runs on this thread's loop (-1 on a poll
   * error). Level-triggered; unref'd.
   */
  pollFd(fd: number, events: number, onEvents: (events: number) => void): EventfdPollHandle;
  /** Changes a pollFd watch's events; 0 pauses it. */
  pollFdUpdate(handle: EventfdPollHandle, events: number): void;
  /**
   * fallocate(2) on libuv's thread pool: resolves with 0 or -errno (never
   * rejects). The fd must stay open until it settles.
   */
  fallocateAsync(fd: number, mode: number, offset: number, length: number): Promise<number>;
  readonly O_RDWR: number;
  readonly FALLOC_FL_KEEP_SIZE: number;
  readonly FALLOC_FL_PUNCH_HOLE: number;
}

/** Where node-gyp puts the addon, relative to the package root. */
const ADDON_RELATIVE = 'build/Release/typevisor_kvm.node';

function packageRoot(): string {
  // This file is dist/src/engines/kvm/native.js (or src/... under a TS runner).
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    dir = path.dirname(dir);
  }
  throw new EngineUnavailableError('kvm', 'cannot locate the typevisor package root');
}

let cached: KvmNative | undefined;

/**
 * The addon, loaded once; throws EngineUnavailableError when it is not built
 * or this is not Linux. `addonFile` overrides where it is looked for (tests).
 */
export function loadKvmNative(addonFile?: string): KvmNative {
  if (cached && addonFile === undefined) return cached;
  if (process.platform !== 'linux') throw new EngineUnavailableError('kvm', `KVM needs Linux (this is ${process.platform})`);
  const file = addonFile ?? path.join(packageRoot(), ADDON_RELATIVE);
  if (!existsSync(file)) throw new EngineUnavailableError('kvm', 'native addon not built: run npm rebuild');
  const require = createRequire(import.meta.url);
  let loaded: KvmNative;
  try {
    loaded = require(file) as KvmNative;
  } catch (err) {
    throw new EngineUnavailableError('kvm', `native addon failed to load (${(err as Error).message.split('\n')[0]}): run npm rebuild`);
  }
  const missing = REQUIRED_FUNCTIONS.filter((f) => typeof (loaded as unknown as Record<string, unknown>)[f] !== 'function');
  if (missing.length > 0) throw new EngineUnavailableError('kvm', `native addon is out of date (no ${missing.join(', ')}): run npm rebuild`);
  if (addonFile === undefined) cached = loaded;
  return loaded;
}

/** Every function the TypeScript side calls; an addon built from older sources lacks some. */
const REQUIRED_FUNCTIONS: readonly (keyof KvmNative)[] = [
  'open', 'close', 'ioctlInt', 'ioctlBytes', 'run', 'mmap', 'mmapPieces', 'munmap', 'addressOf', 'gettid',
  'allocSlots', 'freeSlots', 'registerVcpuThread', 'unregisterVcpuThread', 'kick', 'watcherCreate', 'watcherArm',
  'watcherDisarm', 'watcherTakeFired', 'watcherDestroy', 'eventfdCreate', 'eventfdSignal', 'pollEventfd', 'pollClose',
  'pollFd', 'pollFdUpdate', 'fallocateAsync', 'watcherAddEventfd', 'watcherRemoveEventfd', 'watcherTakeSignalled',
];
