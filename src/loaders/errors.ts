/**
 * The one error type every loader throws for bad user input (a kernel, initrd,
 * command line or RAM size that cannot be booted). Its message is meant to be
 * shown to the user as-is, prefixed by the name of the offending file.
 */

export class LoaderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LoaderError';
  }
}

/** Formats a guest-physical address for messages. */
export function hex(value: number): string {
  return `0x${value.toString(16)}`;
}
