/**
 * Where typevisor keeps downloaded and built guest assets: the XDG cache
 * directory ($XDG_CACHE_HOME/typevisor, else ~/.cache/typevisor), or
 * $TYPEVISOR_CACHE when set.
 */

import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';

export function cacheDirectory(env: NodeJS.ProcessEnv = process.env): string {
  if (env.TYPEVISOR_CACHE !== undefined && env.TYPEVISOR_CACHE !== '') return env.TYPEVISOR_CACHE;
  const xdg = env.XDG_CACHE_HOME;
  const base = xdg !== undefined && xdg.startsWith('/') ? xdg : join(env.HOME ?? homedir(), '.cache');
  return join(base, 'typevisor');
}

/** The cache the test suite shares across test files (and runs), so packages are downloaded once. */
export function testCacheDirectory(): string {
  return join(tmpdir(), 'typevisor-test-cache');
}
