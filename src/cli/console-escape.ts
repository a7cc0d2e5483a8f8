/**
 * QEMU-style console escapes for an interactive terminal: Ctrl-A x quits,
 * Ctrl-A h prints help, Ctrl-A Ctrl-A sends one Ctrl-A to the guest. Every
 * other byte passes through unchanged. Pure, so it is tested without a TTY.
 */

export const CTRL_A = 0x01;

export type ConsoleCommand = 'quit' | 'help';

export interface EscapeResult {
  /** Bytes for the guest. */
  forward: Uint8Array;
  commands: ConsoleCommand[];
}

export const ESCAPE_HELP = 'C-a x  quit typevisor\r\nC-a h  this help\r\nC-a C-a  send C-a to the guest\r\n';

export class ConsoleEscapeFilter {
  private pendingEscape = false;

  feed(input: Uint8Array): EscapeResult {
    const out: number[] = [];
    const commands: ConsoleCommand[] = [];
    for (const b of input) {
      if (this.pendingEscape) {
        this.pendingEscape = false;
        if (b === 0x78 /* x */ || b === 0x58) commands.push('quit');
        else if (b === 0x68 /* h */ || b === 0x48 || b === 0x3f) commands.push('help');
        else if (b === CTRL_A) out.push(CTRL_A);
        // Any other key after C-a is swallowed, as in QEMU.
      } else if (b === CTRL_A) {
        this.pendingEscape = true;
      } else {
        out.push(b);
      }
    }
    return { forward: Uint8Array.from(out), commands };
  }
}
