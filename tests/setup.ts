/**
 * Test-suite setup, run by `npm test` before the tests: builds the bare-metal
 * test guests and fetches/builds the default Debian guest into the shared
 * test cache (with apt-get download, as users get it). Hosts without gcc or
 * apt get a clear note here, and the tests that need them skip with a reason.
 */

import { buildGuests } from './guests/build.js';
import { buildLinuxUserProgram, LINUX_USER_PROGRAMS } from './guests/linux-user.js';
import { hasApt } from '../src/assets/debian-packages.js';
import { prepareDefaultGuest } from '../src/assets/default-guest.js';
import { testCacheDirectory } from '../src/assets/cache.js';

try {
  const guests = await buildGuests();
  console.log(`test setup: ${Object.keys(guests).length} test guests built`);
} catch (e) {
  console.log(`test setup: test guests not built (${(e as Error).message}); their tests will skip`);
}

if (hasApt()) {
  process.env.TYPEVISOR_CACHE = testCacheDirectory();
  const guest = await prepareDefaultGuest((line) => console.log(`test setup: ${line}`));
  console.log(`test setup: Debian guest ${guest.kernelRelease} ready`);
} else {
  console.log('test setup: no apt-get on this host; Debian guest tests will skip');
}

try {
  for (const name of LINUX_USER_PROGRAMS) await buildLinuxUserProgram(name);
  console.log(`test setup: ${LINUX_USER_PROGRAMS.length} Linux test programs built`);
} catch (e) {
  console.log(`test setup: Linux test programs not built (${(e as Error).message}); the vsock guest tests will skip`);
}
