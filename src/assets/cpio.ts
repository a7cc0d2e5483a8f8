/**
 * A writer for "newc" cpio archives (the format the Linux kernel unpacks as an
 * initramfs), so typevisor builds initramfs images without the `cpio` tool.
 */

export type CpioEntry =
  | { kind: 'file'; path: string; data: Uint8Array; mode?: number }
  | { kind: 'dir'; path: string; mode?: number }
  | { kind: 'symlink'; path: string; target: string }
  | { kind: 'chardev'; path: string; major: number; minor: number; mode?: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const encoder = new TextEncoder();

function hex8(n: number): string {
  return (n >>> 0).toString(16).padStart(8, '0');
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

/** Normalises an archive path: no leading "/" or "./", no empty, "." or ".." components. */
function archivePath(path: string): string {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.length === 0 || parts.includes('..')) throw new Error(`invalid cpio path "${path}"`);
  return parts.join('/');
}

/** Encodes `entries` (in order) as one newc archive ending with the TRAILER!!! record. */
export function writeCpio(entries: readonly CpioEntry[], mtime = 0): Uint8Array {
  const chunks: Uint8Array[] = [];
  let ino = 1;
  const push = (name: string, mode: number, data: Uint8Array, rdevMajor = 0, rdevMinor = 0, nlink = 1): void => {
    const nameBytes = encoder.encode(name);
    const namesize = nameBytes.length + 1;
    const header =
      '070701' +
      [ino++, mode, 0, 0, nlink, mtime, data.length, 0, 0, rdevMajor, rdevMinor, namesize, 0].map(hex8).join('');
    chunks.push(encoder.encode(header), nameBytes, new Uint8Array(1 + pad4(110 + namesize)), data, new Uint8Array(pad4(data.length)));
  };
  for (const e of entries) {
    const path = archivePath(e.path);
    switch (e.kind) {
      case 'file':
        push(path, S_IFREG | (e.mode ?? 0o644), e.data);
        break;
      case 'dir':
        push(path, S_IFDIR | (e.mode ?? 0o755), new Uint8Array(0), 0, 0, 2);
        break;
      case 'symlink':
        push(path, S_IFLNK | 0o777, encoder.encode(e.target));
        break;
      case 'chardev':
        push(path, S_IFCHR | (e.mode ?? 0o600), new Uint8Array(0), e.major, e.minor);
        break;
    }
  }
  ino = 0;
  push('TRAILER!!!', 0, new Uint8Array(0), 0, 0, 1);
  const total = chunks.reduce((n, c) => n + c.length, 0);
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

/**
 * The member names of a newc archive, or of several concatenated ones (as in
 * an initramfs with an early microcode part), skipping the zero padding
 * between them. Stops at the first byte that does not start a newc header and
 * returns the offset there, so a compressed tail can be handed on.
 */
export function listCpio(archive: Uint8Array): { names: string[]; end: number } {
  const names: string[] = [];
  const decoder = new TextDecoder();
  const field = (off: number, i: number): number => parseInt(decoder.decode(archive.subarray(off + 6 + i * 8, off + 14 + i * 8)), 16);
  let off = 0;
  for (;;) {
    while (off < archive.length && archive[off] === 0) off++;
    if (off + 110 > archive.length || decoder.decode(archive.subarray(off, off + 6)) !== '070701') return { names, end: off };
    const size = field(off, 6);
    const namesize = field(off, 11);
    if (!Number.isFinite(size) || !Number.isFinite(namesize) || namesize < 1) throw new Error(`corrupt cpio header at offset ${off}`);
    if (off + 110 + namesize > archive.length) throw new Error(`truncated cpio header at offset ${off}`);
    const name = decoder.decode(archive.subarray(off + 110, off + 110 + namesize - 1));
    const next = off + ((110 + namesize + 3) & ~3) + ((size + 3) & ~3);
    if (next > archive.length) throw new Error(`truncated cpio member "${name}" at offset ${off}`);
    off = next;
    if (name !== 'TRAILER!!!') names.push(name);
  }
}
