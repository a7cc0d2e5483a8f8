/**
 * Integration-test harness: runs the real `typevisor` CLI as a child process,
 * feeds its stdin, collects its console output and exit status, and kills it
 * (with a clear failure) if it outlives its time limit.
 */

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const CLI = join(REPO_ROOT, 'bin', 'typevisor.js');

export interface CliResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface CliOptions {
  /** Written to stdin (then stdin is closed unless keepStdinOpen). */
  stdin?: string | Uint8Array;
  /** Send `stdin` only once stdout contains this text. */
  stdinAfter?: string;
  keepStdinOpen?: boolean;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

/** Runs `typevisor ...args` and resolves when it exits (or is killed at the time limit). */
export function runCli(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let sent = false;
    const send = (): void => {
      if (sent) return;
      sent = true;
      if (options.stdin !== undefined) child.stdin.write(options.stdin);
      if (options.keepStdinOpen !== true) child.stdin.end();
    };
    child.stdin.on('error', () => undefined);
    child.stdout.setEncoding('latin1').on('data', (d: string) => {
      stdout += d;
      if (options.stdinAfter !== undefined && stdout.includes(options.stdinAfter)) send();
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    if (options.stdinAfter === undefined) send();
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr, timedOut });
    });
  });
}

/** Why KVM tests cannot run here, or undefined when /dev/kvm is usable. */
export function kvmSkipReason(): string | undefined {
  if (!existsSync('/dev/kvm')) return '/dev/kvm does not exist on this host';
  return undefined;
}

/** Why integration tests for `engine` cannot run on this host, or undefined. */
export function engineSkipReason(engine: 'kvm' | 'soft'): string | undefined {
  if (engine === 'kvm') return kvmSkipReason();
  return undefined;
}

/**
 * A flat multiboot kernel using the a.out kludge: the 32-byte header at 1 MiB
 * followed by `code` at 0x100020 (the entry point), padded to `size` bytes.
 */
export function multibootFlatImage(code: readonly number[], size = 0x48): Uint8Array {
  const img = new Uint8Array(Math.max(size, 0x20 + code.length));
  const v = new DataView(img.buffer);
  const flags = 0x10000;
  v.setUint32(0, 0x1badb002, true);
  v.setUint32(4, flags, true);
  v.setUint32(8, (-(0x1badb002 + flags)) >>> 0, true);
  v.setUint32(12, 0x100000, true); // header_addr
  v.setUint32(16, 0x100000, true); // load_addr
  v.setUint32(20, 0, true); // load_end_addr: the whole file
  v.setUint32(24, 0, true); // bss_end_addr
  v.setUint32(28, 0x100020, true); // entry_addr
  img.set(code, 0x20);
  return img;
}
