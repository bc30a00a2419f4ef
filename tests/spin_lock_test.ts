import { equal, ok } from "./assert.ts";
import { spinLock, spinUnlock } from "../src/spin_lock.ts";

Deno.test("a held spin lock keeps a second Worker out until it is given back", async () => {
  const sab = new SharedArrayBuffer(8);
  const s = new Int32Array(sab);
  spinLock(s, 0);
  equal(Atomics.load(s, 0), 1);
  const src = `
    import { spinLock, spinUnlock } from ${
    JSON.stringify(new URL("../src/spin_lock.ts", import.meta.url).href)
  };
    self.onmessage = (e) => {
      const s = new Int32Array(e.data);
      spinLock(s, 0);
      s[1] = 2; // written only once the lock was free
      spinUnlock(s, 0);
      self.postMessage("done");
    };`;
  const url = URL.createObjectURL(new Blob([src], { type: "text/javascript" }));
  const w = new Worker(url, { type: "module" });
  const done = new Promise((resolve) => w.onmessage = resolve);
  w.postMessage(sab);
  await new Promise((r) => setTimeout(r, 100));
  equal(s[1], 0, "the Worker got in while the lock was held");
  s[1] = 1;
  spinUnlock(s, 0);
  await done;
  w.terminate();
  equal(s[1], 2);
  ok(Atomics.load(s, 0) === 0);
});
