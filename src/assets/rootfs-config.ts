/**
 * The pure parts of the Debian root filesystem build: which packages go in,
 * the files typevisor writes into the image (fstab, hostname, serial getty,
 * systemd-networkd, initramfs module list), the debootstrap command line, the
 * cache key, and a filter that turns debootstrap's chatter into a few progress
 * lines. Nothing here touches the host.
 */

import { createHash } from 'node:crypto';

export const ROOTFS_SUITE = 'bookworm';
export const ROOTFS_HOSTNAME = 'typevisor';
export const ROOTFS_IMAGE = 'rootfs.ext4';
export const ROOTFS_KERNEL = 'vmlinuz';
export const ROOTFS_INITRD = 'initrd.img';
export const ROOTFS_CMDLINE = 'root=/dev/vda console=ttyS0';
export const DEFAULT_ROOTFS_SIZE = '2G';
/** Bump when the generated files change, so cached images are rebuilt. */
export const ROOTFS_RECIPE_VERSION = 5;

/**
 * Added to debootstrap's minbase (Essential + required + apt, which already
 * has login and passwd): systemd as init, udev, the Debian cloud kernel (its
 * virtio drivers are modules, ext4 is built in) with initramfs-tools to boot
 * it, iproute2 and procps for a usable shell.
 */
export const BASE_PACKAGES = [
  'systemd-sysv', 'udev', 'kmod', 'initramfs-tools', 'linux-image-cloud-amd64', 'iproute2', 'procps',
] as const;

/** Modules the initramfs must carry and load so the kernel finds /dev/vda. */
export const INITRAMFS_MODULES = ['virtio_pci', 'virtio_blk', 'virtio_net', 'ext4'] as const;

export interface RootfsFile {
  /** Absolute path inside the image. */
  path: string;
  content: string;
  mode: number;
}

export interface RootfsSymlink {
  path: string;
  target: string;
}

/** Debian package names as dpkg allows them (lower case, digits, + - .). */
export function validPackageName(name: string): boolean {
  return /^[a-z0-9][a-z0-9+.-]+$/.test(name);
}

/** The full, de-duplicated package list: the base set plus `extra` in the order given. */
export function rootfsPackages(extra: readonly string[]): string[] {
  for (const p of extra) if (!validPackageName(p)) throw new Error(`invalid Debian package name "${p}"`);
  return [...new Set([...BASE_PACKAGES, ...extra])];
}

/** The files written into the root tree after debootstrap. */
export function rootfsFiles(hostname = ROOTFS_HOSTNAME): RootfsFile[] {
  return [
    {
      path: '/etc/fstab',
      content: '# typevisor: the root filesystem is the first virtio-blk disk\n/dev/vda / ext4 errors=remount-ro 0 1\n',
      mode: 0o644,
    },
    { path: '/etc/hostname', content: `${hostname}\n`, mode: 0o644 },
    { path: '/etc/hosts', content: `127.0.0.1\tlocalhost\n127.0.1.1\t${hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n`, mode: 0o644 },
    {
      // Empty: systemd generates a fresh machine id on the first boot.
      path: '/etc/machine-id', content: '', mode: 0o444,
    },
    {
      path: '/etc/systemd/system/serial-getty@ttyS0.service.d/typevisor.conf',
      content:
        '# typevisor: the stock serial getty, without clearing the boot messages\n' +
        '[Service]\nExecStart=\nExecStart=-/sbin/agetty -o \'-p -- \\\\u\' --noclear --keep-baud 115200,57600,38400,9600 - $TERM\n',
      mode: 0o644,
    },
    {
      path: '/etc/systemd/system.conf.d/typevisor.conf',
      // Under the soft engine udev takes minutes of guest time to announce /dev/ttyS0; with systemd's default 90 s
      // device timeout the serial getty fails with "Dependency failed" and no login prompt ever appears.
      content: '# typevisor: the soft engine is slow; give units and devices time to start\n[Manager]\nDefaultTimeoutStartSec=600s\nDefaultDeviceTimeoutSec=600s\n',
      mode: 0o644,
    },
    {
      path: '/etc/systemd/network/20-typevisor-virtio.network',
      content: '# typevisor: DHCP on the virtio-net interface\n[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n',
      mode: 0o644,
    },
    {
      // MODULES=list: the guest's hardware is known (virtio), so only the listed drivers go in, which keeps the
      // initramfs small (the soft engine unpacks it instruction by instruction). gzip rather than bookworm's
      // default zstd: any kernel and Node's zlib read it, so tests can list it.
      path: '/etc/initramfs-tools/conf.d/typevisor.conf',
      content: '# typevisor: only the drivers in /etc/initramfs-tools/modules, gzip-compressed\nMODULES=list\nCOMPRESS=gzip\n',
      mode: 0o644,
    },
    {
      path: '/etc/initramfs-tools/modules',
      content: `# typevisor: drivers to find the root filesystem on virtio-blk\n${INITRAMFS_MODULES.join('\n')}\n`,
      mode: 0o644,
    },
  ];
}

/** Units enabled by symlink, as `systemctl enable` would, and masked (linked to /dev/null), as `systemctl mask` would. */
export function rootfsSymlinks(): RootfsSymlink[] {
  return [
    // e2scrub_reap removes stale LVM snapshots of ext4 volumes (there is no LVM here). It runs with
    // CPUSchedulingPolicy=idle, so on a guest CPU that is never idle (the soft engine on a loaded host) it waits
    // indefinitely and `systemctl is-system-running --wait` with it: seen for 26 minutes in a soft boot.
    { path: '/etc/systemd/system/e2scrub_reap.service', target: '/dev/null' },
    { path: '/etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service', target: '/lib/systemd/system/serial-getty@.service' },
    { path: '/etc/systemd/system/multi-user.target.wants/systemd-networkd.service', target: '/lib/systemd/system/systemd-networkd.service' },
    { path: '/etc/systemd/system/sockets.target.wants/systemd-networkd.socket', target: '/lib/systemd/system/systemd-networkd.socket' },
  ];
}

/** debootstrap's arguments; without a mirror debootstrap picks its own default. */
export function debootstrapArguments(options: { target: string; packages: readonly string[]; mirror?: string | undefined; cacheDir?: string | undefined }): string[] {
  const args = ['--variant=minbase', `--include=${options.packages.join(',')}`];
  if (options.cacheDir !== undefined) args.push(`--cache-dir=${options.cacheDir}`);
  args.push(ROOTFS_SUITE, options.target);
  if (options.mirror !== undefined) args.push(options.mirror);
  return args;
}

/** The cache key of an image: same packages, size and recipe → same image. */
export function rootfsCacheKey(packages: readonly string[], sizeBytes: number): string {
  const h = createHash('sha256').update(JSON.stringify({ suite: ROOTFS_SUITE, packages: [...packages].sort(), sizeBytes, recipe: ROOTFS_RECIPE_VERSION }));
  return `${ROOTFS_SUITE}-${h.digest('hex').slice(0, 12)}`;
}

/**
 * Condenses debootstrap's "I: Retrieving foo..." lines: one line per phase
 * (Retrieving, Validating, Extracting, Unpacking, Configuring, ...) with a
 * running count at most every `intervalMs`, and every other informational or
 * warning line as is.
 */
export class DebootstrapProgress {
  private phase = '';
  private count = 0;
  private lastReport = -Infinity;

  constructor(
    private readonly report: (line: string) => void,
    private readonly now: () => number = Date.now,
    private readonly intervalMs = 5000,
  ) {}

  line(raw: string): void {
    const line = raw.trim();
    const m = /^I: (Retrieving|Validating|Extracting|Unpacking|Configuring|Installing) (\S+?)\.*(?: \d\S*)?$/.exec(line);
    if (m === null) {
      if (/^[IWE]: /.test(line)) this.report(`debootstrap: ${line.slice(3)}`);
      return;
    }
    const [, verb, pkg] = m;
    const t = this.now();
    if (verb !== this.phase) {
      this.phase = verb;
      this.count = 0;
      this.lastReport = -Infinity;
    }
    this.count++;
    if (t - this.lastReport >= this.intervalMs) {
      this.lastReport = t;
      this.report(`debootstrap: ${verb.toLowerCase()} packages (${this.count}: ${pkg})`);
    }
  }
}

const MiB = 1024 * 1024;
const SIZE_UNITS: Record<string, number> = { '': 1, k: 1024, m: MiB, g: 1024 * MiB, t: 1024 * 1024 * MiB };
/** The base system takes about 350 MiB. */
export const MIN_ROOTFS_SIZE = 512 * MiB;
export const MAX_ROOTFS_SIZE = 1024 * 1024 * MiB;

/** Parses an image size such as "2G" or "1536M": a whole number of MiB, 512M to 1T. */
export function parseImageSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(text);
  if (m === null) throw new Error(`invalid image size "${text}": use a number with an M or G suffix (e.g. 2G)`);
  const bytes = Math.floor(Number(m[1]) * SIZE_UNITS[m[2].toLowerCase()]);
  if (!Number.isSafeInteger(bytes) || bytes % MiB !== 0) throw new Error(`invalid image size "${text}": use a whole number of MiB`);
  if (bytes < MIN_ROOTFS_SIZE) throw new Error(`image size ${text} is too small: at least 512M is needed`);
  if (bytes > MAX_ROOTFS_SIZE) throw new Error(`image size ${text} is too large: at most 1T`);
  return bytes;
}

/** "2G", "1536M": the shortest exact way to write a size. */
export function formatImageSize(bytes: number): string {
  return bytes % (1024 * MiB) === 0 ? `${bytes / (1024 * MiB)}G` : `${bytes / MiB}M`;
}
