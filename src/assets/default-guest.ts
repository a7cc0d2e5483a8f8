/**
 * The ready-made default guest: the stock Debian cloud amd64 kernel and an
 * initramfs with busybox and the virtio modules, fetched with apt and built
 * by typevisor into the cache directory. `prepareDefaultGuest` is idempotent:
 * a complete cached build is reused.
 */

import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { cacheDirectory } from './cache.js';
import { AssetsUnavailableError, downloadPackage, hasApt, NO_APT_HINT, resolveDependency, unpackPackage } from './debian-packages.js';
import { buildInitramfs } from './initramfs.js';
import { loadOrder, moduleDepends, readModinfo } from './kernel-modules.js';
import { removeTreeSafely } from './rootfs.js';

export const KERNEL_METAPACKAGE = 'linux-image-cloud-amd64';
export const BUSYBOX_PACKAGE = 'busybox-static';
/** Modules the default initramfs loads (plus their dependencies). */
export const DEFAULT_MODULES = ['virtio_pci', 'virtio_blk', 'virtio_net', 'virtio_rng', 'vmw_vsock_virtio_transport'] as const;
export const DEFAULT_CMDLINE = 'console=ttyS0 quiet';

export interface DefaultGuest {
  kernelPath: string;
  initrdPath: string;
  cmdline: string;
  /** e.g. "6.1.0-56-cloud-amd64". */
  kernelRelease: string;
  directory: string;
}

interface Manifest {
  kernelPackage: string;
  kernelRelease: string;
  modules: string[];
  builtAt: string;
}

export type ProgressSink = (line: string) => void;

function guestsDirectory(): string {
  return join(cacheDirectory(), 'guests');
}

function fromManifest(dir: string): DefaultGuest | undefined {
  const file = join(dir, 'manifest.json');
  if (!existsSync(file) || !existsSync(join(dir, 'vmlinuz')) || !existsSync(join(dir, 'initramfs.cpio'))) return undefined;
  const m = JSON.parse(readFileSync(file, 'utf8')) as Manifest;
  return { kernelPath: join(dir, 'vmlinuz'), initrdPath: join(dir, 'initramfs.cpio'), cmdline: DEFAULT_CMDLINE, kernelRelease: m.kernelRelease, directory: dir };
}

/** Every default guest already built in the cache. */
export function listDefaultGuests(): DefaultGuest[] {
  const root = guestsDirectory();
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .map((d) => fromManifest(join(root, d)))
    .filter((g): g is DefaultGuest => g !== undefined);
}

/** Deletes every cached asset (downloaded packages, built guests and root filesystems); returns what was removed. */
export function removeCachedAssets(): string[] {
  const removed: string[] = [];
  for (const d of ['guests', 'debs', 'rootfs', 'debootstrap-debs']) {
    const p = join(cacheDirectory(), d);
    // removeTreeSafely unmounts what an interrupted root filesystem build may have left mounted inside.
    if (existsSync(p) && removeTreeSafely(p)) removed.push(p);
  }
  return removed;
}

/** Downloads and builds the default guest if needed; returns its files. */
export async function prepareDefaultGuest(progress: ProgressSink = () => undefined): Promise<DefaultGuest> {
  if (!hasApt()) throw new AssetsUnavailableError(NO_APT_HINT);
  progress(`resolving ${KERNEL_METAPACKAGE}`);
  const kernelPackage = await resolveDependency(KERNEL_METAPACKAGE, 'linux-image-');
  const kernelRelease = kernelPackage.replace(/^linux-image-/, '');
  const dir = join(guestsDirectory(), kernelRelease);
  const cached = fromManifest(dir);
  if (cached !== undefined) {
    progress(`using cached guest ${kernelRelease} in ${dir}`);
    return cached;
  }
  const debs = join(cacheDirectory(), 'debs');
  const packages = [kernelPackage, BUSYBOX_PACKAGE];
  const paths: string[] = [];
  for (const [i, pkg] of packages.entries()) {
    progress(`downloading ${pkg} (${i + 1}/${packages.length})`);
    paths.push(await downloadPackage(pkg, debs));
  }
  mkdirSync(guestsDirectory(), { recursive: true });
  const staging = mkdtempSync(join(guestsDirectory(), '.staging-'));
  try {
    progress('unpacking packages');
    for (const p of paths) await unpackPackage(p, join(staging, 'root'));
    const root = join(staging, 'root');
    const moduleDir = join(root, 'lib', 'modules', kernelRelease, 'kernel');
    const index = indexModules(moduleDir);
    const order = loadOrder(DEFAULT_MODULES, (name) => {
      const path = index.get(name);
      if (path === undefined) throw new AssetsUnavailableError(`${kernelPackage} has no module ${name}`);
      return moduleDepends(readModinfo(readFileSync(path), name));
    });
    progress(`building initramfs (busybox + ${order.length} modules)`);
    const initramfs = buildInitramfs({
      busybox: readFileSync(join(root, 'bin', 'busybox')),
      modules: order.map((name) => ({ name, data: readFileSync(index.get(name)!) })),
    });
    const out = join(staging, 'out');
    mkdirSync(out);
    copyFileSync(join(root, 'boot', `vmlinuz-${kernelRelease}`), join(out, 'vmlinuz'));
    writeFileSync(join(out, 'initramfs.cpio'), initramfs);
    const manifest: Manifest = { kernelPackage, kernelRelease, modules: order, builtAt: new Date().toISOString() };
    writeFileSync(join(out, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
    rmSync(dir, { recursive: true, force: true });
    renameSync(out, dir);
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  progress(`default guest ready in ${dir}`);
  return fromManifest(dir)!;
}

/** Maps canonical module names to their .ko files under `dir`. */
function indexModules(dir: string): Map<string, string> {
  const index = new Map<string, string>();
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile() && entry.name.endsWith('.ko')) index.set(entry.name.slice(0, -3).replace(/-/g, '_'), join(entry.parentPath, entry.name));
  }
  return index;
}
