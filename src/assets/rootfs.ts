/**
 * `typevisor assets rootfs`: builds a Debian bookworm root filesystem image
 * for typevisor guests. debootstrap (minbase plus systemd, udev and the Debian
 * cloud kernel) fills a staging tree from the host's own Debian mirror,
 * typevisor writes its configuration (see rootfs-config.ts), initramfs-tools
 * rebuilds the initramfs with the virtio modules, and `mkfs.ext4 -d` turns the
 * tree into an ext4 image. The image, kernel and initramfs land side by side
 * in the cache directory (or a directory of the user's choosing), and a
 * complete build with the same packages and size is reused. Needs root.
 */

import { execFile, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync,
  truncateSync, writeFileSync, closeSync, openSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { hostDebianMirror } from './apt-sources.js';
import { cacheDirectory } from './cache.js';
import {
  DebootstrapProgress, debootstrapArguments, formatImageSize, parseImageSize, rootfsCacheKey, rootfsFiles, rootfsPackages, rootfsSymlinks,
  DEFAULT_ROOTFS_SIZE, INITRAMFS_MODULES, ROOTFS_CMDLINE, ROOTFS_RECIPE_VERSION, ROOTFS_IMAGE, ROOTFS_INITRD, ROOTFS_KERNEL, ROOTFS_SUITE,
} from './rootfs-config.js';

const execFileAsync = promisify(execFile);

/** The build cannot run or failed; the message is the one line the user sees. */
export class RootfsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RootfsError';
  }
}

export const INSTALL_HINT = 'apt-get install debootstrap e2fsprogs';
const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface RootfsOptions {
  /** Image size in bytes (default 2 GiB; the file is sparse). */
  sizeBytes?: number;
  /** Where the image, kernel and initramfs go (default: the cache directory). */
  outputDirectory?: string;
  /** Debian packages installed on top of the base set. */
  extraPackages?: readonly string[];
  progress?: (line: string) => void;
}

export interface RootfsImage {
  imagePath: string;
  kernelPath: string;
  initrdPath: string;
  /** The kernel command line that boots the image. */
  cmdline: string;
  /** e.g. "6.1.0-50-cloud-amd64". */
  kernelRelease: string;
  sizeBytes: number;
  packages: string[];
  directory: string;
}

interface RootfsManifest {
  key: string;
  recipe: number;
  suite: string;
  kernelRelease: string;
  sizeBytes: number;
  packages: string[];
  mirror: string | null;
  buildSeconds: number;
  builtAt: string;
}

/** What the host lacks to build an image, as one line, or undefined when it has everything. */
export function missingRequirement(host: { uid: number; hasCommand: (name: string) => boolean }): string | undefined {
  if (host.uid !== 0) return 'building a root filesystem needs root (debootstrap, chroot and mounting /proc): run it with sudo';
  const missing = ['debootstrap', 'mkfs.ext4', 'chroot', 'mount', 'umount'].filter((c) => !host.hasCommand(c));
  if (missing.length > 0) return `${missing.join(' and ')} ${missing.length === 1 ? 'is' : 'are'} not installed: ${INSTALL_HINT}`;
  return undefined;
}

/** True when `name` is an executable on PATH or in the system sbin/bin directories. */
export function hasCommand(name: string): boolean {
  const dirs = new Set([...(process.env.PATH ?? '').split(':'), ...SYSTEM_PATH.split(':')]);
  return [...dirs].some((d) => d !== '' && existsSync(join(d, name)));
}

function readManifest(dir: string): RootfsManifest | undefined {
  const file = join(dir, 'manifest.json');
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as RootfsManifest;
  } catch {
    return undefined;
  }
}

function imageFrom(dir: string, m: RootfsManifest): RootfsImage | undefined {
  const files = [ROOTFS_IMAGE, ROOTFS_KERNEL, ROOTFS_INITRD].map((f) => join(dir, f));
  if (!files.every((f) => existsSync(f))) return undefined;
  return {
    imagePath: files[0], kernelPath: files[1], initrdPath: files[2], cmdline: ROOTFS_CMDLINE,
    kernelRelease: m.kernelRelease, sizeBytes: m.sizeBytes, packages: m.packages, directory: dir,
  };
}

function rootfsCacheRoot(): string {
  return join(cacheDirectory(), 'rootfs');
}

/** Every complete root filesystem image in the cache. */
export function listRootfsImages(): RootfsImage[] {
  const root = rootfsCacheRoot();
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .filter((d) => !d.startsWith('.'))
    .map((d) => {
      const m = readManifest(join(root, d));
      return m === undefined ? undefined : imageFrom(join(root, d), m);
    })
    .filter((i): i is RootfsImage => i !== undefined);
}

/** Deletes cached images built by an older recipe (they would never be used again), keeping `keep`. */
function pruneOutdatedImages(keep: string): void {
  const root = rootfsCacheRoot();
  for (const d of readdirSync(root)) {
    const path = join(root, d);
    if (path === keep || d.startsWith('.')) continue;
    const m = readManifest(path);
    if (m !== undefined && m.recipe !== ROOTFS_RECIPE_VERSION) removeTreeSafely(path);
  }
}

/** Builds the image unless an identical complete build is already there; returns its files. */
export async function buildRootfs(options: RootfsOptions = {}): Promise<RootfsImage> {
  const progress = options.progress ?? (() => undefined);
  let sizeBytes: number;
  let packages: string[];
  try {
    sizeBytes = options.sizeBytes ?? parseImageSize(DEFAULT_ROOTFS_SIZE);
    packages = rootfsPackages(options.extraPackages ?? []);
  } catch (e) {
    throw new RootfsError((e as Error).message);
  }
  const key = rootfsCacheKey(packages, sizeBytes);
  const dir = resolve(options.outputDirectory ?? join(rootfsCacheRoot(), key));
  const existing = readManifest(dir);
  if (existing?.key === key) {
    const cached = imageFrom(dir, existing);
    if (cached !== undefined) {
      progress(`using the root filesystem already built in ${dir}`);
      return cached;
    }
  }
  const missing = missingRequirement({ uid: process.getuid?.() ?? -1, hasCommand });
  if (missing !== undefined) throw new RootfsError(missing);

  const started = Date.now();
  mkdirSync(dir, { recursive: true });
  rmSync(join(dir, 'manifest.json'), { force: true });
  const staging = mkdtempSync(join(dir, '.staging-'));
  const root = join(staging, 'root');
  // Ctrl-C must not leave a half-built tree with /proc (or a bind-mounted /dev) inside it.
  const stopOnSignal = new SignalGuard();
  let built: RootfsImage;
  try {
    const mirror = hostDebianMirror(ROOTFS_SUITE);
    progress(
      `debootstrap ${ROOTFS_SUITE} (minbase + ${packages.length} packages) from ${mirror ?? "debootstrap's default mirror"}; this takes a few minutes`,
    );
    const debCache = join(cacheDirectory(), 'debootstrap-debs');
    mkdirSync(debCache, { recursive: true });
    const filter = new DebootstrapProgress(progress);
    try {
      await runStreaming('debootstrap', debootstrapArguments({ target: root, packages, mirror, cacheDir: debCache }), (l) => filter.line(l), stopOnSignal);
      stopOnSignal.check();
    } catch (e) {
      stopOnSignal.check();
      const log = join(root, 'debootstrap', 'debootstrap.log');
      if (existsSync(log)) {
        copyFileSync(log, join(dir, 'debootstrap-failed.log'));
        throw new RootfsError(`${(e as Error).message} (log: ${join(dir, 'debootstrap-failed.log')})`);
      }
      throw e;
    }

    progress('configuring: fstab, hostname, serial getty on ttyS0, systemd-networkd, empty root password');
    for (const f of rootfsFiles()) {
      const path = join(root, f.path);
      mkdirSync(dirname(path), { recursive: true });
      rmSync(path, { force: true });
      writeFileSync(path, f.content);
      chmodSync(path, f.mode);
    }
    for (const s of rootfsSymlinks()) {
      const path = join(root, s.path);
      mkdirSync(dirname(path), { recursive: true });
      rmSync(path, { force: true });
      symlinkSync(s.target, path);
    }
    await chroot(root, ['passwd', '--quiet', '--delete', 'root']);

    stopOnSignal.check();
    progress(`building the initramfs with ${INITRAMFS_MODULES.join(', ')}`);
    const kernelRelease = installedKernelRelease(root);
    await withProc(root, () => chroot(root, ['update-initramfs', '-u', '-k', kernelRelease]));
    const listing = await chroot(root, ['lsinitramfs', `/boot/initrd.img-${kernelRelease}`]);
    if (!/\/virtio_blk\.ko/.test(listing)) throw new RootfsError(`the rebuilt initramfs has no virtio_blk module (kernel ${kernelRelease})`);
    await chroot(root, ['apt-get', 'clean']);
    const lists = join(root, 'var', 'lib', 'apt', 'lists');
    for (const f of existsSync(lists) ? readdirSync(lists, { withFileTypes: true }) : []) {
      if (f.isFile() && f.name !== 'lock') rmSync(join(lists, f.name), { force: true });
    }

    const out = join(staging, 'out');
    mkdirSync(out);
    copyFileSync(join(root, 'boot', `vmlinuz-${kernelRelease}`), join(out, ROOTFS_KERNEL));
    copyFileSync(join(root, 'boot', `initrd.img-${kernelRelease}`), join(out, ROOTFS_INITRD));

    const used = await treeBytes(root);
    const needed = Math.ceil(used * 1.1) + 64 * 1024 * 1024;
    if (needed > sizeBytes) {
      throw new RootfsError(`image size ${formatImageSize(sizeBytes)} is too small for the ${Math.ceil(used / 2 ** 20)} MiB tree: use --size ${Math.ceil(needed / 2 ** 30)}G or more`);
    }
    stopOnSignal.check();
    progress(`writing the ${formatImageSize(sizeBytes)} ext4 image (mkfs.ext4 -d)`);
    const image = join(out, ROOTFS_IMAGE);
    closeSync(openSync(image, 'w'));
    truncateSync(image, sizeBytes);
    await tool('mkfs.ext4', ['-q', '-F', '-L', 'typevisor-root', '-d', root, image]);

    stopOnSignal.check();
    for (const f of [ROOTFS_IMAGE, ROOTFS_KERNEL, ROOTFS_INITRD]) renameSync(join(out, f), join(dir, f));
    const manifest: RootfsManifest = {
      key, recipe: ROOTFS_RECIPE_VERSION, suite: ROOTFS_SUITE, kernelRelease, sizeBytes, packages, mirror: mirror ?? null,
      buildSeconds: Math.round((Date.now() - started) / 1000), builtAt: new Date().toISOString(),
    };
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
    rmSync(join(dir, 'debootstrap-failed.log'), { force: true });
    if (options.outputDirectory === undefined) pruneOutdatedImages(dir);
    built = imageFrom(dir, manifest)!;
  } catch (e) {
    stopOnSignal.check();
    throw e;
  } finally {
    stopOnSignal.dispose();
    progress('removing the staging tree');
    removeTreeSafely(staging);
  }
  progress(`root filesystem ready in ${dir} (${Math.round((Date.now() - started) / 1000)} s)`);
  return built;
}

/** The one kernel release debootstrap installed under /boot. */
function installedKernelRelease(root: string): string {
  const kernels = readdirSync(join(root, 'boot')).filter((f) => f.startsWith('vmlinuz-')).map((f) => f.slice('vmlinuz-'.length));
  if (kernels.length !== 1) throw new RootfsError(`expected one kernel in the image's /boot, found ${kernels.length}`);
  return kernels[0];
}

async function tool(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<string> {
  try {
    const { stdout } = await execFileAsync(cmd, args, { maxBuffer: 64 * 1024 * 1024, env: env ?? { ...process.env, PATH: `${process.env.PATH ?? ''}:${SYSTEM_PATH}` } });
    return stdout;
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT') throw new RootfsError(`${cmd} is not installed: ${INSTALL_HINT}`);
    const detail = (err.stderr ?? '').trim().split('\n').pop() ?? '';
    throw new RootfsError(`${cmd} ${args.join(' ')} failed${detail === '' ? '' : `: ${detail}`}`);
  }
}

function chroot(root: string, command: string[]): Promise<string> {
  return tool('chroot', [root, ...command], { PATH: SYSTEM_PATH, LC_ALL: 'C', DEBIAN_FRONTEND: 'noninteractive', HOME: '/root' });
}

/** Runs `body` with /proc mounted in the tree (mkinitramfs reads it), unmounting afterwards. */
async function withProc<T>(root: string, body: () => Promise<T>): Promise<T> {
  const proc = join(root, 'proc');
  await tool('mount', ['-t', 'proc', 'proc', proc]);
  try {
    return await body();
  } finally {
    await tool('umount', [proc]);
  }
}

/**
 * While a build runs, SIGINT, SIGTERM and SIGHUP stop the current child
 * process and make the build fail at its next step (so the staging tree is
 * cleaned up) instead of killing Node on the spot.
 */
class SignalGuard {
  private interrupted: NodeJS.Signals | undefined;
  private child: { kill(signal: NodeJS.Signals): boolean } | undefined;
  private readonly onSignal = (signal: NodeJS.Signals): void => {
    this.interrupted = signal;
    this.child?.kill('SIGTERM');
  };

  constructor() {
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, this.onSignal);
  }

  track(child: { kill(signal: NodeJS.Signals): boolean } | undefined): void {
    this.child = child;
  }

  check(): void {
    if (this.interrupted !== undefined) throw new RootfsError(`interrupted by ${this.interrupted}; the partial build was removed`);
  }

  dispose(): void {
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(s, this.onSignal);
  }
}

/** Runs a command, handing each output line (stdout and stderr) to `onLine`; fails with its last lines. */
function runStreaming(cmd: string, args: string[], onLine: (line: string) => void, guard: SignalGuard): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PATH: `${process.env.PATH ?? ''}:${SYSTEM_PATH}`, LC_ALL: 'C' } });
    const tail: string[] = [];
    const feed = (stream: NodeJS.ReadableStream): void => {
      let buffered = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        buffered += chunk;
        const lines = buffered.split('\n');
        buffered = lines.pop() ?? '';
        for (const l of lines) {
          tail.push(l);
          if (tail.length > 5) tail.shift();
          onLine(l);
        }
      });
    };
    guard.track(child);
    feed(child.stdout);
    feed(child.stderr);
    child.on('error', (e: NodeJS.ErrnoException) => reject(new RootfsError(e.code === 'ENOENT' ? `${cmd} is not installed: ${INSTALL_HINT}` : `${cmd}: ${e.message}`)));
    child.on('close', (code) => {
      guard.track(undefined);
      if (code === 0) resolvePromise();
      else reject(new RootfsError(`${cmd} failed (exit ${code ?? 'signal'}): ${tail.filter((l) => l.trim() !== '').pop() ?? 'no output'}`));
    });
  });
}

/** Apparent size of every file in the tree, as `du -sb` counts it. */
async function treeBytes(root: string): Promise<number> {
  const out = await tool('du', ['-sb', '--one-file-system', root]);
  return Number(out.split(/\s/)[0]);
}

/** Mount points at or below `dir`, deepest first. */
export function mountsBelow(dir: string, mountsText: string): string[] {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  return mountsText
    .split('\n')
    .map((l) => l.split(' ')[1]?.replace(/\\040/g, ' '))
    .filter((m): m is string => m !== undefined && (m === dir || m.startsWith(prefix)))
    .sort((a, b) => b.length - a.length);
}

/**
 * Deletes a tree that may hold a debootstrap target, first unmounting anything
 * still mounted inside it (debootstrap mounts /proc and /sys there, and in a
 * container bind-mounts the host's /dev). Never deletes through a mount: if
 * one cannot be unmounted, nothing is deleted and false is returned.
 */
export function removeTreeSafely(tree: string): boolean {
  const mounts = (): string[] => {
    if (!existsSync(tree)) return [];
    try {
      return mountsBelow(tree, readFileSync('/proc/self/mounts', 'utf8'));
    } catch {
      return []; // no /proc: nothing can be mounted by a build here either
    }
  };
  for (const m of mounts()) {
    if (!unmount(m, [])) unmount(m, ['-l']);
  }
  const left = mounts();
  if (left.length > 0) {
    process.stderr.write(`typevisor: not deleting ${tree}: ${left[0]} is still mounted\n`);
    return false;
  }
  if (existsSync(tree) && statSync(tree).isDirectory()) rmSync(tree, { recursive: true, force: true });
  return true;
}

function unmount(path: string, flags: string[]): boolean {
  return spawnSync('umount', [...flags, path], { stdio: 'ignore', env: { PATH: SYSTEM_PATH } }).status === 0;
}
