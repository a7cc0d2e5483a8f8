/**
 * Builds the small Linux user programs the integration tests put into a
 * guest's initramfs (tests/guests/linux-user/NAME.c → tests/guests/out/
 * linux-user/NAME), statically linked with the host's gcc and glibc so they
 * run under busybox with no shared libraries. Idempotent: an output newer
 * than its source is reused.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, renameSync, statSync } from 'node:fs';
import path from 'node:path';
import { guestPaths, GuestBuildError, GuestToolchainError } from './build.js';

function compile(source: string, output: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('gcc', ['-static', '-O2', '-Wall', '-Wextra', '-Werror', '-o', output, source], (error, stdout, stderr) => {
      if (!error) return resolve();
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return reject(new GuestToolchainError('gcc not found: the Linux test programs need gcc and a static libc (libc6-dev)'));
      reject(new GuestBuildError(`gcc -static ${source} failed (a static build needs libc6-dev's libc.a):\n${stderr}${stdout}`));
    });
  });
}

function mtime(file: string): number {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return -1;
  }
}

/** Builds (if needed) the Linux user program `name` and returns its path. */
export async function buildLinuxUserProgram(name: string): Promise<string> {
  const paths = guestPaths();
  const source = path.join(paths.root, 'linux-user', `${name}.c`);
  if (mtime(source) < 0) throw new GuestBuildError(`no Linux test program source ${source}`);
  const outDir = path.join(paths.out, 'linux-user');
  const output = path.join(outDir, name);
  if (mtime(output) >= mtime(source)) return output;
  mkdirSync(outDir, { recursive: true });
  const partial = `${output}.partial-${process.pid}`;
  await compile(source, partial);
  renameSync(partial, output);
  return output;
}

/** The Linux user programs the integration tests use. */
export const LINUX_USER_PROGRAMS = ['vsock-echo'] as const;
