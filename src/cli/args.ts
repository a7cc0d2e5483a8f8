/**
 * Command-line parsing for `typevisor`: turns argv into a validated command,
 * or a UsageError whose message is the one line the user sees.
 */

import { parseArgs } from 'node:util';
import {
  ConfigError, parseCpuCount, parseDiskSpec, parseEngine, parseMemorySize, parseNetSpec, parseVsockSpec, validateDisks,
  validateMemorySize, validateNetworking, type VmConfig,
} from '../vmm/config.js';

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export const USAGE = `Usage:
  typevisor run [--kernel FILE] [--initrd FILE] [--append "ARGS"] [--memory 256M]
                [--cpus N] [--engine kvm|soft|auto] [--disk PATH[,ro][,id=NAME]]...
                [--net tap=NAME[,mac=MAC]]... [--vsock cid=N,uds=PATH]
                [--rng] [--debug-exit] [--no-reboot]
  typevisor assets [prepare|list|remove]
  typevisor --version | --help

Options for run:
  --kernel FILE     Linux bzImage or vmlinux, or a multiboot kernel
                    (default: the Debian guest from 'typevisor assets prepare')
  --initrd FILE     initial ramdisk (Linux) or first module (multiboot)
  --append ARGS     kernel command line
  --memory SIZE     guest RAM, e.g. 256M or 2G (default 256M)
  --cpus N          number of vCPUs (default 1)
  --engine E        kvm, soft or auto (default auto)
  --disk SPEC       virtio-blk disk: PATH[,ro][,id=NAME] (raw image or block device; repeatable)
  --net SPEC        virtio-net on a host tap: tap=NAME[,mac=XX:XX:XX:XX:XX:XX]
                    (repeatable; needs CAP_NET_ADMIN or a tap owned by this user)
  --vsock SPEC      virtio-vsock: cid=N,uds=PATH (host connects to PATH and sends
                    "CONNECT <port>"; guest connections to port P reach PATH_P)
  --rng             attach a virtio-rng entropy device
  --debug-exit      attach isa-debug-exit at port 0xf4: a write of v exits with (v << 1) | 1
  --no-reboot       end the VM when the guest resets instead of rebooting it

Console: on a terminal, Ctrl-A x quits and Ctrl-A h shows help.
Exit status: 0 on guest power-off, the debug-exit status, or non-zero on an error.
`;

/** A run command; without `config.kernelPath` the default guest supplies kernel, initrd and command line. */
export interface RunCommand {
  kind: 'run';
  config: Omit<VmConfig, 'kernelPath' | 'cmdline'> & { kernelPath?: string | undefined; cmdline?: string | undefined };
}

export type AssetsAction = 'prepare' | 'list' | 'remove';

export type Command = { kind: 'help' } | { kind: 'version' } | RunCommand | { kind: 'assets'; action: AssetsAction };

const DEFAULT_MEMORY = '256M';

export function parseCommandLine(argv: readonly string[]): Command {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') return { kind: 'help' };
  if (argv[0] === '--version' || argv[0] === '-V') return { kind: 'version' };
  const [sub, ...rest] = argv;
  if (sub === 'assets') return parseAssets(rest);
  if (sub !== 'run') throw new UsageError(`unknown command "${sub}" (try: typevisor run --help)`);
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      strict: true,
      allowPositionals: false,
      options: {
        kernel: { type: 'string' },
        initrd: { type: 'string' },
        append: { type: 'string' },
        memory: { type: 'string', short: 'm' },
        cpus: { type: 'string' },
        engine: { type: 'string' },
        disk: { type: 'string', multiple: true },
        rng: { type: 'boolean' },
        net: { type: 'string', multiple: true },
        vsock: { type: 'string' },
        'debug-exit': { type: 'boolean' },
        'no-reboot': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    // node:util errors are one sentence; keep only the first line.
    throw new UsageError((e as Error).message.split('\n')[0]);
  }
  const v = parsed.values;
  if (v.help === true) return { kind: 'help' };
  try {
    const memoryBytes = parseMemorySize(v.memory ?? DEFAULT_MEMORY);
    validateMemorySize(memoryBytes);
    const disks = (v.disk ?? []).map(parseDiskSpec);
    validateDisks(disks);
    const nets = (v.net ?? []).map(parseNetSpec);
    const vsock = v.vsock === undefined ? undefined : parseVsockSpec(v.vsock);
    validateNetworking(nets, disks.length + nets.length + (v.rng === true ? 1 : 0) + (vsock !== undefined ? 1 : 0));
    return {
      kind: 'run',
      config: {
        kernelPath: v.kernel,
        initrdPath: v.initrd,
        cmdline: v.append,
        memoryBytes,
        cpus: parseCpuCount(v.cpus ?? '1'),
        engine: parseEngine(v.engine ?? 'auto'),
        debugExit: v['debug-exit'] === true,
        noReboot: v['no-reboot'] === true,
        disks,
        rng: v.rng === true,
        nets,
        vsock,
      },
    };
  } catch (e) {
    if (e instanceof ConfigError) throw new UsageError(e.message);
    throw e;
  }
}

function parseAssets(rest: readonly string[]): Command {
  const [action = 'list', ...extra] = rest;
  if (action !== 'prepare' && action !== 'list' && action !== 'remove') {
    throw new UsageError(`unknown assets action "${action}": use prepare, list or remove`);
  }
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}" after "assets ${action}"`);
  return { kind: 'assets', action };
}
