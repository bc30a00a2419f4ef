/**
 * Debug-exit port, after QEMU's isa-debug-exit but with a direct encoding so a guest test can
 * report any status: write byte S to port 0x501 → denovmm exits with status S.
 *
 * The range is two ports (0x501-0x502) as in QEMU, so a 16-bit `outw` lands wholly inside it;
 * a write of any width at either port ends the VM with its low byte. Reads return 0.
 *
 * @example
 * ```ts
 * bus.register(DEBUG_EXIT_PORT, DEBUG_EXIT_LENGTH, new DebugExit((s) => vm.exit(s)));
 * ```
 */
import { type BusDevice } from "../bus/device.ts";

/** Write byte S here → denovmm exits with status S. */
export const DEBUG_EXIT_PORT = 0x501;
/** Ports claimed from DEBUG_EXIT_PORT on. */
export const DEBUG_EXIT_LENGTH = 2;

export class DebugExit implements BusDevice {
  readonly #onExit: (status: number) => void;

  constructor(onExit: (status: number) => void) {
    this.#onExit = onExit;
  }

  read(_offset: number, data: Uint8Array): void {
    data.fill(0);
  }

  write(_offset: number, data: Uint8Array): void {
    // The low byte of a little-endian access is data[0]: exit status = value & 0xff.
    this.#onExit(data[0]);
  }
}
