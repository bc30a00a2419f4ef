import { deepEqual } from "./assert.ts";
import { LOG_INTERVAL_MS, RateLimitedLog } from "../src/log.ts";

Deno.test("log: one line per cause per interval, with the count held back", () => {
  const lines: string[] = [];
  let t = 0;
  const log = new RateLimitedLog((l) => lines.push(l), () => t);
  for (let i = 0; i < 1000; i++) log.log("a", `a ${i}`);
  log.log("b", "b 0");
  deepEqual(lines, ["denovmm: a 0", "denovmm: b 0"]);
  t += LOG_INTERVAL_MS;
  log.log("a", "a again");
  deepEqual(lines[2], "denovmm: a again (999 more not shown)");
  log.log("a", "a hidden");
  deepEqual(lines.length, 3);
});
