/**
 * The applet names of a busybox binary that this machine may not be able to run (another
 * architecture's): read from the binary's applet_names table (applets/applet_tables.c), a run
 * of NUL-terminated names in strcmp order that starts with "[" and "[[".
 */

/** The applets `binary` offers, as `busybox --list` would print them; throws if none found. */
export function busyboxApplets(binary: Uint8Array, what: string): string[] {
  const decoder = new TextDecoder("latin1");
  const start = new TextEncoder().encode("[\0[[\0");
  let best: string[] = [];
  // The pattern also occurs by chance in machine code: take the longest sorted run of names.
  for (let i = binary.indexOf(start[0]); i >= 0; i = binary.indexOf(start[0], i + 1)) {
    if (!start.every((b, k) => binary[i + k] === b)) continue;
    const names: string[] = [];
    for (let at = i;;) {
      const end = binary.indexOf(0, at);
      const name = decoder.decode(binary.subarray(at, end));
      if (!/^[\[a-z0-9_.-]+$/.test(name) || (names.length && name <= names.at(-1)!)) break;
      names.push(name);
      at = end + 1;
    }
    if (names.length > best.length) best = names;
  }
  for (const needed of ["sh", "mount", "insmod", "poweroff", "chroot", "setsid"]) {
    if (!best.includes(needed)) throw new Error(`${what}: no '${needed}' among its applets`);
  }
  return best;
}
