/**
 * The console escape, as QEMU and kvmtool users know it: Ctrl-A x quits, Ctrl-A Ctrl-A (or
 * Ctrl-A a) sends one Ctrl-A to the guest, Ctrl-A h prints help; any other key after Ctrl-A
 * is dropped. Pure state machine so it can be tested without a terminal.
 */
export const CTRL_A = 0x01;

export type EscapeAction = "quit" | "help";

export class EscapeFilter {
  #pending = false;

  /**
   * Filter one chunk of keyboard input: returns the bytes for the guest and the action the
   * user asked for, if any (bytes after a quit are dropped).
   */
  filter(input: Uint8Array): { bytes: Uint8Array; action?: EscapeAction } {
    const out = new Uint8Array(input.length);
    let n = 0;
    for (const b of input) {
      if (this.#pending) {
        this.#pending = false;
        if (b === 0x78 /* x */) return { bytes: out.subarray(0, n), action: "quit" };
        if (b === CTRL_A || b === 0x61 /* a */) out[n++] = CTRL_A;
        else if (b === 0x68 /* h */) return { bytes: out.subarray(0, n), action: "help" };
      } else if (b === CTRL_A) {
        this.#pending = true;
      } else {
        out[n++] = b;
      }
    }
    return { bytes: out.subarray(0, n) };
  }
}

export const ESCAPE_HELP = "\r\ndenovmm console: C-a x quit, C-a C-a send C-a, C-a h this help\r\n";
