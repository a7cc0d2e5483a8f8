/**
 * Reads the host's apt configuration (one-line `sources.list` files and
 * deb822 `.sources` files) to find the Debian mirror the host already uses,
 * so `typevisor assets rootfs` hands debootstrap that mirror instead of one
 * written into the project.
 */

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** One `deb` source: a repository URI, its suites and components. */
export interface AptSource {
  uri: string;
  suites: string[];
  components: string[];
}

export interface AptSourcesFile {
  path: string;
  text: string;
}

/** Parses a one-line-style sources.list ("deb [opts] URI SUITE COMPONENT..."); deb-src and comments are skipped. */
export function parseSourcesList(text: string): AptSource[] {
  const out: AptSource[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    if (line === '') continue;
    // Options in square brackets may contain spaces ("[ arch=amd64 ]"); drop them.
    const words = line.replace(/\[[^\]]*\]/, ' ').split(/\s+/).filter((w) => w !== '');
    if (words[0] !== 'deb' || words.length < 3) continue;
    out.push({ uri: words[1], suites: [words[2]], components: words.slice(3) });
  }
  return out;
}

/** Parses a deb822 `.sources` file; stanzas with `Enabled: no` or without Types: deb are skipped. */
export function parseDeb822Sources(text: string): AptSource[] {
  const out: AptSource[] = [];
  const stanzas = text.split(/\n\s*\n/);
  for (const stanza of stanzas) {
    const fields = new Map<string, string>();
    let current: string | undefined;
    for (const raw of stanza.split('\n')) {
      if (raw.startsWith('#')) continue;
      if (/^\s/.test(raw) && current !== undefined) {
        fields.set(current, `${fields.get(current) ?? ''} ${raw.trim()}`);
        continue;
      }
      const m = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(raw);
      if (m === null) continue;
      current = m[1].toLowerCase();
      fields.set(current, m[2].trim());
    }
    const list = (key: string): string[] => (fields.get(key) ?? '').split(/\s+/).filter((w) => w !== '');
    if (!list('types').includes('deb')) continue;
    if ((fields.get('enabled') ?? 'yes').toLowerCase() === 'no') continue;
    for (const uri of list('uris')) out.push({ uri, suites: list('suites'), components: list('components') });
  }
  return out;
}

/** The sources of every file apt itself would read (`*.list` and `*.sources`). */
export function parseAptSourcesFiles(files: readonly AptSourcesFile[]): AptSource[] {
  return files.flatMap((f) => (f.path.endsWith('.sources') ? parseDeb822Sources(f.text) : f.path.endsWith('.list') ? parseSourcesList(f.text) : []));
}

/**
 * The URI of the first source that carries `suite` itself (not -updates or
 * -security) with the `main` component over http, https or file: the mirror
 * debootstrap should use. Undefined when the host has none.
 */
export function debianMirrorFor(sources: readonly AptSource[], suite: string): string | undefined {
  const found = sources.find(
    (s) => s.suites.includes(suite) && s.components.includes('main') && /^(https?|file):/.test(s.uri),
  );
  return found?.uri.replace(/\/+$/, '');
}

/** Reads /etc/apt/sources.list and /etc/apt/sources.list.d/ (or another root, for tests). */
export function readHostAptSources(etcApt = '/etc/apt'): AptSourcesFile[] {
  const files: AptSourcesFile[] = [];
  const main = join(etcApt, 'sources.list');
  if (existsSync(main)) files.push({ path: main, text: readFileSync(main, 'utf8') });
  const dir = join(etcApt, 'sources.list.d');
  if (existsSync(dir)) {
    for (const name of readdirSync(dir).sort()) {
      if (name.endsWith('.list') || name.endsWith('.sources')) files.push({ path: join(dir, name), text: readFileSync(join(dir, name), 'utf8') });
    }
  }
  return files;
}

/** The host's Debian mirror for `suite`, or undefined (debootstrap then uses its own default). */
export function hostDebianMirror(suite: string, etcApt = '/etc/apt'): string | undefined {
  return debianMirrorFor(parseAptSourcesFiles(readHostAptSources(etcApt)), suite);
}
