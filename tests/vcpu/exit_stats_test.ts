import { equal, throws } from "../assert.ts";
import { createStats, ExitStats, STAT } from "../../src/vcpu/exit_stats.ts";

Deno.test("exit stats: each vCPU bumps its own row; readers see the sum of all rows", () => {
  const sab = createStats();
  const cpu0 = new ExitStats(sab, 0);
  const cpu7 = new ExitStats(sab, 7);
  for (let i = 0; i < 5; i++) cpu0.bump(STAT.exits);
  for (let i = 0; i < 3; i++) cpu7.bump(STAT.exits);
  cpu7.bump(STAT.mmioWriteUnclaimed);
  const reader = new ExitStats(sab);
  equal(reader.get(STAT.exits), 8);
  equal(reader.get(STAT.mmioWriteUnclaimed), 1);
  equal(reader.get(STAT.pio), 0);
  equal(reader.summary().split(" ")[0], "exits=8");
});

Deno.test("exit stats: rows exist for vCPU ids 0..255 and no further", () => {
  const sab = createStats();
  new ExitStats(sab, 255).bump(STAT.pio);
  equal(new ExitStats(sab).get(STAT.pio), 1);
  throws(() => new ExitStats(sab, 256), /row 256/);
  throws(() => new ExitStats(sab, -1), /row -1/);
});

Deno.test("exit stats: the boot vCPU's turn time adds up, and its longest turn is kept", () => {
  const sab = createStats();
  const cpu0 = new ExitStats(sab, 0);
  for (const us of [120, 4500, 300]) {
    cpu0.add(STAT.turnUs, us);
    cpu0.max(STAT.turnMaxUs, us);
  }
  const reader = new ExitStats(sab);
  equal(reader.get(STAT.turnUs), 4920);
  equal(reader.get(STAT.turnMaxUs), 4500);
  equal(reader.get(STAT.interrupted), 0, "other counters untouched");
});
