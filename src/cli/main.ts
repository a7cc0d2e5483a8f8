/**
 * The `typevisor` command-line frontend: parses flags, builds a VirtualMachine,
 * connects the guest's serial console to the terminal (raw mode with Ctrl-A
 * escapes on a TTY, plain bytes when piped) and turns the VM's end into the
 * process exit status. Every failure is one line on stderr.
 */

import { readFileSync } from 'node:fs';
import { ConsoleEscapeFilter, ESCAPE_HELP } from './console-escape.js';
import { parseCommandLine, USAGE, UsageError } from './args.js';
import { VirtualMachine, VmSetupError } from '../vmm/virtual-machine.js';
import { describeExit, exitStatusFor, ExitStatus } from '../vmm/exit-status.js';
import type { VmConfig } from '../vmm/config.js';
import type { AssetsAction, RootfsCommand, RunCommand } from './args.js';
import { AssetsUnavailableError } from '../assets/debian-packages.js';
import { listDefaultGuests, prepareDefaultGuest, removeCachedAssets } from '../assets/default-guest.js';
import { cacheDirectory } from '../assets/cache.js';
import { READY_BANNER } from '../assets/initramfs.js';
import { buildRootfs, listRootfsImages, RootfsError } from '../assets/rootfs.js';
import { formatImageSize } from '../assets/rootfs-config.js';

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function fail(message: string, status: number = ExitStatus.BAD_INPUT): number {
  process.stderr.write(`typevisor: ${message}\n`);
  return status;
}

export async function main(argv: readonly string[]): Promise<number> {
  let command;
  try {
    command = parseCommandLine(argv);
  } catch (e) {
    if (e instanceof UsageError) return fail(e.message);
    throw e;
  }
  switch (command.kind) {
    case 'help':
      process.stdout.write(USAGE);
      return 0;
    case 'version':
      process.stdout.write(`typevisor ${version()}\n`);
      return 0;
    case 'run':
      return runCommand(command);
    case 'assets':
      return assets(command.action);
    case 'rootfs':
      return rootfs(command);
  }
}

function progress(line: string): void {
  process.stderr.write(`typevisor: ${line}\n`);
}

async function assets(action: AssetsAction): Promise<number> {
  try {
    switch (action) {
      case 'prepare': {
        const g = await prepareDefaultGuest(progress);
        process.stdout.write(`kernel  ${g.kernelPath}\ninitrd  ${g.initrdPath}\ncmdline ${g.cmdline}\n`);
        return 0;
      }
      case 'list': {
        const guests = listDefaultGuests();
        const images = listRootfsImages();
        if (guests.length === 0 && images.length === 0) process.stdout.write(`no cached guests in ${cacheDirectory()} (run: typevisor assets prepare)\n`);
        for (const g of guests) process.stdout.write(`${g.kernelRelease}  ${g.directory}\n`);
        for (const r of images) process.stdout.write(`rootfs ${formatImageSize(r.sizeBytes)} ${r.kernelRelease}  ${r.imagePath}\n`);
        return 0;
      }
      case 'remove': {
        const removed = removeCachedAssets();
        process.stdout.write(removed.length === 0 ? 'nothing cached\n' : removed.map((p) => `removed ${p}\n`).join(''));
        return 0;
      }
    }
  } catch (e) {
    if (e instanceof AssetsUnavailableError) return fail(e.message);
    throw e;
  }
}

async function rootfs(command: RootfsCommand): Promise<number> {
  try {
    const r = await buildRootfs({ sizeBytes: command.sizeBytes, outputDirectory: command.outputDirectory, extraPackages: command.extraPackages, progress });
    process.stdout.write(
      `image   ${r.imagePath}\nkernel  ${r.kernelPath}\ninitrd  ${r.initrdPath}\ncmdline ${r.cmdline}\n` +
        `boot it: typevisor run --kernel ${r.kernelPath} --initrd ${r.initrdPath} --disk ${r.imagePath} --memory 512M --append "${r.cmdline}"\n`,
    );
    return 0;
  } catch (e) {
    if (e instanceof RootfsError) return fail(e.message);
    throw e;
  }
}

/** Fills in the default guest when no kernel was given, then runs the VM. */
async function runCommand(command: RunCommand): Promise<number> {
  const c = command.config;
  if (c.kernelPath !== undefined) return runVm({ ...c, kernelPath: c.kernelPath, cmdline: c.cmdline ?? '' });
  let guest;
  try {
    guest = await prepareDefaultGuest(progress);
  } catch (e) {
    if (e instanceof AssetsUnavailableError) return fail(e.message);
    throw e;
  }
  const mib = Math.round(c.memoryBytes / (1024 * 1024));
  progress(`booting the default Debian guest (kernel ${guest.kernelRelease}, ${mib} MiB, ${c.cpus} vCPU${c.cpus === 1 ? '' : 's'})`);
  return runVm(
    { ...c, kernelPath: guest.kernelPath, initrdPath: c.initrdPath ?? guest.initrdPath, cmdline: c.cmdline ?? guest.cmdline },
    c.initrdPath === undefined ? READY_BANNER : undefined,
  );
}

async function runVm(config: VmConfig, readyMarker?: string): Promise<number> {
  let vm: VirtualMachine;
  try {
    vm = await VirtualMachine.create({
      ...config,
      onConsoleOutput: (bytes) => process.stdout.write(bytes),
      onNotice: (line) => process.stderr.write(`typevisor: ${line}\n`),
      ...(readyMarker !== undefined
        ? { readyMarker, onReady: (ms: number) => process.stderr.write(`typevisor: guest is up after ${Math.round(ms)} ms\r\n`) }
        : {}),
    });
  } catch (e) {
    if (e instanceof VmSetupError) return fail(e.message);
    throw e;
  }
  const detach = attachConsoleInput(vm);
  const onSignal = (): void => vm.stop();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const exit = await vm.run();
    const line = describeExit(exit);
    if (line !== undefined) process.stderr.write(`\ntypevisor: ${line}\n`);
    return exitStatusFor(exit);
  } catch (e) {
    if (e instanceof VmSetupError) return fail(e.message);
    return fail(`internal error: ${(e as Error).message}`, ExitStatus.INTERNAL_ERROR);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    detach();
    vm.destroy();
  }
}

/** Forwards stdin to the guest's serial port; returns a function that undoes everything. */
function attachConsoleInput(vm: VirtualMachine): () => void {
  const stdin = process.stdin;
  const tty = stdin.isTTY;
  const escapes = new ConsoleEscapeFilter();
  if (tty) {
    stdin.setRawMode(true);
    process.stderr.write('typevisor: console attached; press Ctrl-A x to quit, Ctrl-A h for help\r\n');
  }
  const onData = (chunk: Buffer): void => {
    if (!tty) {
      vm.sendConsoleInput(chunk);
      return;
    }
    const { forward, commands } = escapes.feed(chunk);
    if (forward.length > 0) vm.sendConsoleInput(forward);
    for (const c of commands) {
      if (c === 'quit') vm.stop();
      else process.stderr.write(ESCAPE_HELP);
    }
  };
  stdin.on('data', onData);
  stdin.on('error', () => undefined);
  return () => {
    stdin.off('data', onData);
    if (tty) stdin.setRawMode(false);
    stdin.pause();
    stdin.unref?.();
  };
}
