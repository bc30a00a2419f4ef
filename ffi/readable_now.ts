/**
 * Whether a descriptor has something for a read now (data, its end, an error, a descriptor not
 * open), asked with `poll(2)` without waiting and without taking anything.
 *
 * @module
 */
import { libc, POLLIN } from "./libc.ts";
import { PollFds } from "./pollfd.ts";

/** A check of `fd` to call as often as needed (one pollfd, made once; a failing poll says yes). */
export function readableNow(fd: number): () => boolean {
  const set = new PollFds([fd], POLLIN);
  return () => libc.poll(set.bytes, set.nfds, 0) !== 0;
}
