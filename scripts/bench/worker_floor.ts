/**
 * What an empty Worker adds to a Deno process's resident memory: the floor under what each
 * application processor's vCPU Worker costs (src/machine/vcpu_thread.ts), since every thread
 * that runs JavaScript needs an isolate of its own. Starts N Workers that do nothing but say
 * they are up, one after the other, and prints the resident set (VmRSS, KiB) before and after
 * each:
 *
 *   deno run -A scripts/bench/worker_floor.ts [N]   →   WORKER_FLOOR rss_kib=A,B,C
 *
 * @module
 */
const n = Number(Deno.args[0] ?? 2);
if (!Number.isInteger(n) || n < 0 || n > 64) {
  console.error("usage: worker_floor.ts [N]");
  Deno.exit(2);
}
const rssKiB = () =>
  Number(/VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync("/proc/self/status"))?.[1] ?? NaN);
// Settled: the Worker's start-up garbage left to the isolate's own timers, as a vCPU's would be.
const settle = () => new Promise((resolve) => setTimeout(resolve, 200));
const workers: Worker[] = [];
const rss = [rssKiB()];
for (let i = 0; i < n; i++) {
  const w = new Worker("data:application/javascript,self.postMessage(0)", { type: "module" });
  await new Promise((resolve) => (w.onmessage = resolve));
  workers.push(w);
  await settle();
  rss.push(rssKiB());
}
console.log(`WORKER_FLOOR rss_kib=${rss.join(",")}`);
for (const w of workers) w.terminate();
