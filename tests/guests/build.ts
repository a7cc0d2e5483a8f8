/**
 * Builds typevisor's bare-metal test guests (tests/guests/src) with the host's
 * gcc and binutils into tests/guests/out. Idempotent: when every output is
 * newer than every source (and this script), nothing is rebuilt.
 *
 * Usage: `await buildGuests()` → { name: absolute output path }, or run
 * directly: `node dist/tests/guests/build.js [--force]`.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The host lacks gcc or binutils; the message says what to install. Tests skip with it. */
export class GuestToolchainError extends Error {
  override name = 'GuestToolchainError';
}

/** A compiler or linker step failed; the message carries the command and its output. */
export class GuestBuildError extends Error {
  override name = 'GuestBuildError';
}

type GuestKind = 'multiboot' | 'multiboot64' | 'multiboot-aout' | 'linux64';

interface GuestSpec {
  /** Key in the result of buildGuests(). */
  readonly name: string;
  readonly kind: GuestKind;
  /** Sources under src/, besides the shared runtime. */
  readonly sources: readonly string[];
  /** Output file name in out/. */
  readonly output: string;
  /** Link address of a multiboot guest (default 1 MiB). */
  readonly loadAddress?: number;
}

const MULTIBOOT_GUESTS = ['serial-echo', 'multiboot-info', 'smp', 'interrupts', 'reboot', 'exit-status', 'acpi-poweroff', 'pio-loop', 'cpu-loop', 'x87-ops'];

/** Every guest and its output file. */
export const GUESTS: readonly GuestSpec[] = [
  ...MULTIBOOT_GUESTS.map((name): GuestSpec => ({
    name,
    kind: 'multiboot',
    sources: name === 'smp' ? ['smp.c', 'lib/ap-trampoline.S'] : [`${name}.c`],
    output: `${name}.elf`,
  })),
  // Long mode: a multiboot ELF32 image whose 32-bit entry (boot64.S) switches to 64-bit code.
  { name: 'interrupts64', kind: 'multiboot64', sources: ['interrupts.c'], output: 'interrupts64.elf' },
  // A multiboot-to-Linux-64-bit boot shim, linked at 32 MiB: lets QEMU run linux64-zeropage.
  { name: 'linux64-shim', kind: 'multiboot', sources: ['linux64-shim.c', 'linux64-shim-enter.S'], output: 'linux64-shim.elf', loadAddress: 0x2000000 },
  { name: 'multiboot-info-aout', kind: 'multiboot-aout', sources: ['multiboot-info.c'], output: 'multiboot-info-aout.bin' },
  { name: 'linux64-zeropage-bzimage', kind: 'linux64', sources: [], output: 'linux64-zeropage.bzImage' },
  { name: 'linux64-zeropage-vmlinux', kind: 'linux64', sources: [], output: 'linux64-zeropage.vmlinux' },
];

const LIB_COMMON = ['string.c', 'serial.c', 'print.c', 'report.c', 'fw_cfg.c', 'acpi.c', 'apic.c', 'pit.c', 'multiboot.c'];
/** The IDT runtime, only in multiboot guests (it needs the interrupt stubs of boot32.S or boot64.S). */
const LIB_IDT = ['idt.c'];

const CFLAGS_COMMON = [
  '-std=gnu11', '-O2', '-Wall', '-Wextra', '-Werror', '-ffreestanding', '-nostdinc', '-fno-pic', '-fno-pie',
  '-fno-stack-protector', '-fno-asynchronous-unwind-tables', '-fno-omit-frame-pointer', '-mgeneral-regs-only',
  '-fcf-protection=none',
];
const CFLAGS_32 = ['-m32', '-march=i686', ...CFLAGS_COMMON];
const CFLAGS_64 = ['-m64', '-mno-red-zone', '-mcmodel=small', ...CFLAGS_COMMON];

/** Paths of the guest tree: sources, outputs. */
export interface GuestPaths {
  readonly root: string;
  readonly src: string;
  readonly out: string;
}

/** Finds tests/guests whether running from the source tree or from dist/. */
export function guestPaths(): GuestPaths {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = path.join(dir, 'tests', 'guests');
    if (existsSync(path.join(candidate, 'src', 'lib', 'runtime.h'))) {
      return { root: candidate, src: path.join(candidate, 'src'), out: path.join(candidate, 'out') };
    }
    dir = path.dirname(dir);
  }
  throw new GuestBuildError('cannot find tests/guests/src/lib/runtime.h above ' + fileURLToPath(import.meta.url));
}

function run(cmd: string, args: readonly string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (!error) {
        resolve(stdout);
        return;
      }
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new GuestToolchainError(`${cmd} not found: building the test guests needs gcc and binutils (as, ld, objcopy, nm) on PATH`));
        return;
      }
      reject(new GuestBuildError(`guest build step failed: ${cmd} ${args.join(' ')}\n${stderr}${stdout}`));
    });
  });
}

let toolchainChecked: Promise<{ ldExtra: string[] }> | undefined;

/** Verifies gcc (with -m32 support) and binutils once per process. */
function checkToolchain(scratch: string): Promise<{ ldExtra: string[] }> {
  toolchainChecked ??= (async () => {
    await run('gcc', ['--version'], scratch);
    await run('objcopy', ['--version'], scratch);
    await run('nm', ['--version'], scratch);
    const ldHelp = await run('ld', ['--help'], scratch);
    const probe = path.join(scratch, 'probe.c');
    await fs.writeFile(probe, 'int probe(int x) { return x + 1; }\n');
    try {
      await run('gcc', [...CFLAGS_32, '-c', probe, '-o', path.join(scratch, 'probe.o')], scratch);
    } catch (error) {
      throw new GuestToolchainError('gcc cannot build 32-bit code (-m32) for the test guests: ' + String(error));
    }
    return { ldExtra: ldHelp.includes('--no-warn-rwx-segments') ? ['--no-warn-rwx-segments'] : [] };
  })();
  toolchainChecked.catch(() => (toolchainChecked = undefined));
  return toolchainChecked;
}

async function newestMtime(dir: string): Promise<number> {
  let newest = 0;
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    const t = entry.isDirectory() ? await newestMtime(p) : (await fs.stat(p)).mtimeMs;
    newest = Math.max(newest, t);
  }
  return newest;
}

async function isUpToDate(paths: GuestPaths): Promise<boolean> {
  const inputs = Math.max(await newestMtime(paths.src), (await fs.stat(fileURLToPath(import.meta.url))).mtimeMs);
  for (const g of GUESTS) {
    try {
      if ((await fs.stat(path.join(paths.out, g.output))).mtimeMs < inputs) return false;
    } catch {
      return false;
    }
  }
  return true;
}

/** Runs async jobs at most `limit` at a time (the build machine is small). */
async function inParallel<T>(items: readonly T[], limit: number, job: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await job(items[next++]);
  });
  await Promise.all(workers);
}

function objName(source: string, suffix: string): string {
  return source.replace(/[/\\]/g, '_').replace(/\.[cS]$/, '') + suffix + '.o';
}

async function buildAll(paths: GuestPaths, tmp: string, ldExtra: readonly string[]): Promise<void> {
  const src = paths.src;
  const compile32 = (source: string, obj: string, defines: string[] = []) =>
    run('gcc', [...CFLAGS_32, ...defines, '-c', path.join(src, source), '-o', path.join(tmp, obj)], src);
  const compile64 = (source: string, obj: string, defines: string[] = []) =>
    run('gcc', [...CFLAGS_64, ...defines, '-c', path.join(src, source), '-o', path.join(tmp, obj)], src);

  // Objects: the runtime for both modes, the 32-bit boot stubs, each guest's own sources.
  const jobs: (() => Promise<unknown>)[] = [];
  for (const f of [...LIB_COMMON, ...LIB_IDT]) jobs.push(() => compile32(`lib/${f}`, objName(f, '.32')));
  for (const f of [...LIB_COMMON, ...LIB_IDT]) jobs.push(() => compile64(`lib/${f}`, objName(f, '.64')));
  jobs.push(() => compile32('lib/boot32.S', 'boot32.o'));
  jobs.push(() => compile32('lib/boot32.S', 'boot32-aout.o', ['-DAOUT_KLUDGE']));
  jobs.push(() => compile64('lib/boot64.S', 'boot64.o'));
  const guestObjects = new Set<string>();
  for (const g of GUESTS) {
    if (g.kind !== 'multiboot' && g.kind !== 'multiboot64') continue;
    const suffix = g.kind === 'multiboot' ? '.32' : '.64';
    for (const s of g.sources) {
      const obj = objName(s, suffix);
      if (guestObjects.has(obj)) continue;
      guestObjects.add(obj);
      jobs.push(() => (suffix === '.32' ? compile32 : compile64)(s, obj));
    }
  }
  jobs.push(() => compile32('multiboot-info.c', 'multiboot-info-aout.32.o', ['-DAOUT_KLUDGE']));
  jobs.push(() => compile64('linux64-head.S', 'linux64-head.64.o'));
  jobs.push(() => compile64('linux64-zeropage.c', 'linux64-zeropage.64.o'));
  await inParallel(jobs, 2, async (job) => {
    await job();
  });

  const lib32 = [...LIB_COMMON, ...LIB_IDT].map((f) => objName(f, '.32'));
  const lib64 = LIB_COMMON.map((f) => objName(f, '.64'));
  const lib64Idt = LIB_IDT.map((f) => objName(f, '.64'));
  const ld32 = (out: string, objs: string[], loadAddress?: number) =>
    run('ld', ['-m', 'elf_i386', '-nostdlib', '-static', ...ldExtra,
      ...(loadAddress === undefined ? [] : [`--defsym=__load_addr=0x${loadAddress.toString(16)}`]),
      '-T', path.join(src, 'lib', 'multiboot.ld'), '-o', out, ...objs], tmp);

  for (const g of GUESTS) {
    if (g.kind !== 'multiboot') continue;
    await ld32(g.output, ['boot32.o', ...g.sources.map((s) => objName(s, '.32')), ...lib32], g.loadAddress);
  }
  // Long-mode multiboot guests: link as ELF64 (1 MiB, 4 KiB pages), then rewrite
  // the container as ELF32 i386; the bytes and load addresses are unchanged.
  for (const g of GUESTS) {
    if (g.kind !== 'multiboot64') continue;
    const elf64 = g.output.replace(/\.elf$/, '.elf64');
    await run('ld', ['-m', 'elf_x86_64', '-nostdlib', '-static', '-z', 'max-page-size=0x1000', ...ldExtra,
      '-T', path.join(src, 'lib', 'multiboot64.ld'), '-o', elf64, 'boot64.o', ...g.sources.map((s) => objName(s, '.64')), ...lib64, ...lib64Idt], tmp);
    await run('objcopy', ['-O', 'elf32-i386', elf64, g.output], tmp);
  }
  // a.out kludge: the multiboot header carries the load addresses; ship a flat binary.
  await ld32('multiboot-info-aout.elf', ['boot32-aout.o', 'multiboot-info-aout.32.o', ...lib32]);
  await run('objcopy', ['-O', 'binary', 'multiboot-info-aout.elf', 'multiboot-info-aout.bin'], tmp);

  // Linux 64-bit: the ELF vmlinux, its flat payload, and the bzImage around it.
  await run('ld', ['-m', 'elf_x86_64', '-nostdlib', '-static', '-z', 'max-page-size=0x1000', ...ldExtra,
    '-T', path.join(src, 'linux64.ld'), '-o', 'linux64-zeropage.vmlinux', 'linux64-head.64.o', 'linux64-zeropage.64.o', ...lib64], tmp);
  await run('objcopy', ['-O', 'binary', 'linux64-zeropage.vmlinux', 'linux64-zeropage.payload'], tmp);
  const symbols = await run('nm', ['linux64-zeropage.vmlinux'], tmp);
  const sym = (name: string): number => {
    const m = new RegExp(`^([0-9a-fA-F]+) \\w ${name}$`, 'm').exec(symbols);
    if (!m) throw new GuestBuildError(`symbol ${name} missing from linux64-zeropage.vmlinux`);
    return parseInt(m[1], 16);
  };
  const initSize = Math.ceil((sym('__image_end') - sym('__image_start')) / 4096) * 4096;
  await run('gcc', ['-c', `-Wa,--defsym,INIT_SIZE=${initSize}`, `-Wa,-I${tmp}`, path.join(src, 'linux64-bzimage-setup.S'),
    '-o', 'linux64-bzimage-setup.o'], tmp);
  await run('objcopy', ['-O', 'binary', '-j', '.text', 'linux64-bzimage-setup.o', 'linux64-zeropage.bzImage'], tmp);
}

function resultMap(paths: GuestPaths): Record<string, string> {
  return Object.fromEntries(GUESTS.map((g) => [g.name, path.join(paths.out, g.output)]));
}

/**
 * Builds every guest if any output is missing or older than the sources.
 * Returns guest name → absolute output path. Throws GuestToolchainError when
 * gcc/binutils are missing and GuestBuildError when a step fails.
 */
export async function buildGuests(options: { force?: boolean } = {}): Promise<Record<string, string>> {
  const paths = guestPaths();
  if (!options.force && (await isUpToDate(paths))) return resultMap(paths);
  await fs.mkdir(paths.out, { recursive: true });
  // Each build works in its own scratch directory and renames finished files
  // into place, so concurrent builders never see half-written outputs.
  const tmp = await fs.mkdtemp(path.join(paths.out, '.build-'));
  try {
    const { ldExtra } = await checkToolchain(tmp);
    await buildAll(paths, tmp, ldExtra);
    for (const g of GUESTS) await fs.rename(path.join(tmp, g.output), path.join(paths.out, g.output));
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
  return resultMap(paths);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  buildGuests({ force: process.argv.includes('--force') }).then(
    (outputs) => {
      for (const [name, file] of Object.entries(outputs)) console.log(`${name}: ${file}`);
    },
    (error: unknown) => {
      console.error(error instanceof Error ? error.message : String(error));
      process.exitCode = 1;
    },
  );
}
