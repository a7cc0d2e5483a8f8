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
