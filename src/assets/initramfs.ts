/**
 * The default guest's initramfs: busybox as init and shell, the virtio driver
 * modules (Debian builds them as modules) loaded at boot in dependency order,
 * and a shell on the serial console. `poweroff` and `reboot` go through
 * busybox init, so they shut the guest down cleanly.
 */

import { writeCpio, type CpioEntry } from './cpio.js';

export interface InitramfsModule {
  /** Canonical module name, e.g. "virtio_blk". */
  name: string;
  data: Uint8Array;
}

export interface InitramfsOptions {
  /** A statically linked busybox for the guest's architecture. */
  busybox: Uint8Array;
  /** Modules in load order (dependencies first). */
  modules: readonly InitramfsModule[];
  /** Printed by the guest once it is up, before the shell starts. */
  readyBanner?: string;
}

export const READY_BANNER = 'typevisor: guest is up';

const INITTAB = `::sysinit:/etc/rc
::respawn:-/bin/cttyhack /bin/sh
::ctrlaltdel:/bin/reboot
::shutdown:/bin/umount -a -r
`;

function rcScript(modules: readonly InitramfsModule[], banner: string): string {
  return `#!/bin/sh
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /tmp /run
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
hostname typevisor
for m in ${modules.map((m) => m.name).join(' ')}; do
  insmod /lib/modules/$m.ko 2>/dev/null || echo "typevisor: could not load module $m"
done
echo "${banner}"
`;
}

/** Builds the initramfs as a newc cpio archive (uncompressed: the kernel unpacks it directly). */
export function buildInitramfs(options: InitramfsOptions): Uint8Array {
  const enc = new TextEncoder();
  const entries: CpioEntry[] = [
    ...['bin', 'sbin', 'usr', 'usr/bin', 'usr/sbin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'run', 'root', 'lib', 'lib/modules'].map(
      (path): CpioEntry => ({ kind: 'dir', path }),
    ),
    { kind: 'chardev', path: 'dev/console', major: 5, minor: 1 },
    { kind: 'chardev', path: 'dev/null', major: 1, minor: 3, mode: 0o666 },
    { kind: 'file', path: 'bin/busybox', data: options.busybox, mode: 0o755 },
    { kind: 'symlink', path: 'bin/sh', target: 'busybox' },
    { kind: 'symlink', path: 'init', target: 'bin/busybox' },
    { kind: 'file', path: 'etc/inittab', data: enc.encode(INITTAB) },
    { kind: 'file', path: 'etc/rc', data: enc.encode(rcScript(options.modules, options.readyBanner ?? READY_BANNER)), mode: 0o755 },
    { kind: 'file', path: 'etc/passwd', data: enc.encode('root:x:0:0:root:/root:/bin/sh\n') },
    { kind: 'file', path: 'etc/group', data: enc.encode('root:x:0:\n') },
    ...options.modules.map((m): CpioEntry => ({ kind: 'file', path: `lib/modules/${m.name}.ko`, data: m.data })),
  ];
  return writeCpio(entries);
}

/**
 * Adds files to an existing uncompressed initramfs by appending a second newc
 * archive: the kernel unpacks concatenated archives in order, later members
 * replacing earlier ones of the same name. Used to put extra programs (a test
 * tool, a user's own binary) into the default guest without rebuilding it.
 */
export function appendToInitramfs(initramfs: Uint8Array, files: readonly { path: string; data: Uint8Array; mode?: number }[]): Uint8Array {
  const extra = writeCpio(files.map((f): CpioEntry => ({ kind: 'file', path: f.path, data: f.data, mode: f.mode ?? 0o755 })));
  // Each archive starts 4-byte aligned; writeCpio's output is a multiple of 4, pad the base in case it is not.
  const padding = (4 - (initramfs.length % 4)) % 4;
  const out = new Uint8Array(initramfs.length + padding + extra.length);
  out.set(initramfs, 0);
  out.set(extra, initramfs.length + padding);
  return out;
}
