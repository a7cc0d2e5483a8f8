/**
 * Debian packages as a source of guest assets: resolves and downloads .deb
 * files with `apt-get download` (the host's own apt configuration decides
 * where from) and unpacks them with `dpkg-deb -x`. No root is needed.
 */

import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** apt or dpkg is missing or failed; the message says what to do instead. */
export class AssetsUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AssetsUnavailableError';
  }
}

export const NO_APT_HINT =
  'this host has no apt-get, so typevisor cannot fetch the default Debian guest; ' +
  'pass your own kernel and initramfs instead: typevisor run --kernel BZIMAGE --initrd INITRAMFS --append "console=ttyS0"';

async function tool(cmd: string, args: string[], cwd?: string): Promise<string> {
  try {
    const { stdout } = await run(cmd, args, { cwd, maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT') throw new AssetsUnavailableError(cmd === 'apt-get' || cmd === 'apt-cache' ? NO_APT_HINT : `${cmd} is not installed`);
    const detail = (err.stderr ?? err.message).trim().split('\n').filter((l) => !l.startsWith('W:')).pop() ?? err.message;
    throw new AssetsUnavailableError(`${cmd} ${args.join(' ')} failed: ${detail}`);
  }
}

/** True when apt-get is on PATH. */
export function hasApt(): boolean {
  return (process.env.PATH ?? '').split(':').some((d) => d !== '' && existsSync(join(d, 'apt-get')));
}

/** The first package a (meta)package depends on, e.g. linux-image-cloud-amd64 → linux-image-6.1.0-NN-cloud-amd64. */
export async function resolveDependency(pkg: string, prefix: string): Promise<string> {
  const out = await tool('apt-cache', ['depends', pkg]);
  const m = out.split('\n').map((l) => /^\s*Depends:\s*(\S+)/.exec(l)?.[1]).find((d) => d?.startsWith(prefix) === true);
  if (m === undefined) throw new AssetsUnavailableError(`apt-cache has no ${prefix}* dependency for ${pkg} (run apt-get update?)`);
  return m;
}

/** Downloads `pkg` into `dir` unless a .deb of it is already there; returns the .deb path. */
export async function downloadPackage(pkg: string, dir: string): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const find = (): string | undefined => readdirSync(dir).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
  const existing = find();
  if (existing !== undefined) return join(dir, existing);
  await tool('apt-get', ['download', '-q', pkg], dir);
  const got = find();
  if (got === undefined) throw new AssetsUnavailableError(`apt-get download ${pkg} produced no .deb`);
  return join(dir, got);
}

/** Unpacks a .deb's file tree into `dir`. */
export async function unpackPackage(deb: string, dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  await tool('dpkg-deb', ['-x', deb, dir]);
}
