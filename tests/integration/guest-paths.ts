/** The test guests, built on first use (shared by integration tests). */

import { buildGuests } from '../guests/build.js';

let built: Promise<Record<string, string>> | undefined;

export function guestsForCli(): Promise<Record<string, string>> {
  built ??= buildGuests();
  return built;
}
