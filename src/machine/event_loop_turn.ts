/**
 * The boot vCPU's turn of the main thread's event loop (./boot_vcpu.ts), its own module so that
 * the probe's test (tests/ffi/event_loop_probe_test.ts) takes the same turns a boot does.
 *
 * @module
 */

/**
 * One turn of the event loop when asked for: a timer, due at once. A timer makes the loop wait in
 * its epoll instance for it, and that wait is where tokio runs the tasks other threads woke. A
 * turn that finds its own task ready never waits, and then such a task may never run: with a
 * MessageChannel's message as the turn, a SIGTERM's listener did not run in 20 turns, nor in 12
 * a second apart (natively, the thread busy between them), nor did a read of stdin end in a
 * sandbox boot's three minutes; a timer turn served the signal at the next turn. A timer turn
 * costs 2.2-3.0 ms natively (the timer's millisecond, rounded up), a message 0.12-0.25 ms; turns
 * are few (a slice yields when the event loop has work, or once a second), so the timer's price
 * is small. node:timers' `setImmediate` costs Deno's Node layer at every start (0.14-0.28 s of
 * CPU in the sandbox). The wait also takes the loop's events, the probe's
 * (../../ffi/event_loop_probe.ts) view of what woke it since.
 */
export function eventLoopTurn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
