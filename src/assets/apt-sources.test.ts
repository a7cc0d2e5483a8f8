import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { debianMirrorFor, hostDebianMirror, parseAptSourcesFiles, parseDeb822Sources, parseSourcesList } from './apt-sources.js';

const MIRROR = 'http://mirror.example.test/debian';
const SECURITY = 'http://mirror.example.test/debian-security';

test('one-line sources: deb lines with options, comments and deb-src', () => {
  const sources = parseSourcesList(
    `# a comment\ndeb-src ${MIRROR} bookworm main\n` +
      `deb [ arch=amd64 signed-by=/usr/share/keyrings/k.gpg ] ${MIRROR}/ bookworm main contrib # trailing\n` +
      `deb ${SECURITY} bookworm-security main\n\n   \n`,
  );
  assert.deepEqual(sources, [
    { uri: `${MIRROR}/`, suites: ['bookworm'], components: ['main', 'contrib'] },
    { uri: SECURITY, suites: ['bookworm-security'], components: ['main'] },
  ]);
});

test('deb822 sources: several stanzas, continuation lines, disabled stanzas and deb-src only', () => {
  const text =
    `Types: deb\n# http://snapshot.example.test/archive\nURIs: ${MIRROR}\nSuites: bookworm bookworm-updates\nComponents: main\n  non-free-firmware\nSigned-By: /k.gpg\n\n` +
    `Types: deb\nURIs: ${SECURITY}\nSuites: bookworm-security\nComponents: main\n\n` +
    `Types: deb\nEnabled: no\nURIs: http://disabled.example.test/debian\nSuites: bookworm\nComponents: main\n\n` +
    `Types: deb-src\nURIs: http://src.example.test/debian\nSuites: bookworm\nComponents: main\n`;
  const sources = parseDeb822Sources(text);
  assert.deepEqual(sources, [
    { uri: MIRROR, suites: ['bookworm', 'bookworm-updates'], components: ['main', 'non-free-firmware'] },
    { uri: SECURITY, suites: ['bookworm-security'], components: ['main'] },
  ]);
});

test('the mirror is the first source carrying the suite itself with main, over http(s) or file', () => {
  const sources = parseAptSourcesFiles([
    { path: '/etc/apt/sources.list.d/cdrom.list', text: 'deb cdrom:[Debian]/ bookworm main\n' },
    { path: '/etc/apt/sources.list.d/sec.list', text: `deb ${SECURITY} bookworm-security main\n` },
    { path: '/etc/apt/sources.list.d/other.sources', text: 'Types: deb\nURIs: https://vendor.example.test/apt\nSuites: bookworm\nComponents: contrib\n' },
    { path: '/etc/apt/sources.list.d/x.list.disabled', text: 'deb http://ignored.example.test/debian bookworm main\n' },
    { path: '/etc/apt/sources.list.d/debian.sources', text: `Types: deb\nURIs: ${MIRROR}/\nSuites: bookworm\nComponents: main\n` },
  ]);
  assert.equal(sources.length, 4);
  assert.equal(debianMirrorFor(sources, 'bookworm'), MIRROR);
  assert.equal(debianMirrorFor(sources, 'trixie'), undefined);
  assert.equal(debianMirrorFor([], 'bookworm'), undefined);
});

test('hostDebianMirror reads sources.list and sources.list.d under the given directory', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tv-apt-'));
  try {
    assert.equal(hostDebianMirror('bookworm', dir), undefined);
    mkdirSync(join(dir, 'sources.list.d'));
    writeFileSync(join(dir, 'sources.list'), '# empty, as on deb822 hosts\n');
    writeFileSync(join(dir, 'sources.list.d', 'debian.sources'), `Types: deb\nURIs: ${MIRROR}\nSuites: bookworm\nComponents: main\n`);
    assert.equal(hostDebianMirror('bookworm', dir), MIRROR);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
