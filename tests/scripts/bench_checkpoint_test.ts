// scripts/bench/checkpoint.ts: a retry of the same bench run keeps the sections its first try
// finished; any other run measures everything again.
import { deepEqual, equal } from "../assert.ts";
import { Checkpoint } from "../../scripts/bench/checkpoint.ts";

type Row = { figure: string; denovmm: number[] };
const boot = { rows: [{ figure: "boot", denovmm: [5.1, 5.3] }], failures: ["one boot timed out"] };

function withDir(body: (path: string) => void): void {
  const dir = Deno.makeTempDirSync();
  try {
    body(`${dir}/checkpoint.json`);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("bench checkpoint: a retry of the same run gets the finished sections back, whole", () => {
  withDir((path) => {
    const first = new Checkpoint<Row>(path, "run-1");
    equal(first.restore("boot"), undefined, "nothing before the first save");
    first.save("boot", boot);
    // The kernel died in the next section: the retry is a new process with the same id.
    const retry = new Checkpoint<Row>(path, "run-1");
    deepEqual(retry.restore("boot"), boot);
    equal(retry.restore("exits"), undefined, "an unfinished section runs again");
    retry.save("exits", { rows: [], failures: [] });
    deepEqual(new Checkpoint<Row>(path, "run-1").restore("boot"), boot, "kept across saves");
    retry.clear();
    equal(exists(path), false, "a reported run leaves nothing to resume");
  });
});

Deno.test("bench checkpoint: another run, no run id or an unreadable file keep nothing", () => {
  withDir((path) => {
    new Checkpoint<Row>(path, "run-1").save("boot", boot);
    const later = new Checkpoint<Row>(path, "run-2");
    equal(later.restore("boot"), undefined, "a later run measures again");
    later.save("exits", { rows: [], failures: [] });
    equal(new Checkpoint<Row>(path, "run-1").restore("boot"), undefined, "run-2 replaced it");

    const none = new Checkpoint<Row>(`${path}.none`, undefined);
    none.save("boot", boot);
    equal(none.restore("boot"), undefined);
    equal(exists(`${path}.none`), false, "no id: nothing written");

    Deno.writeTextFileSync(path, "{ not json");
    const torn = new Checkpoint<Row>(path, "run-1");
    equal(torn.restore("boot"), undefined);
    torn.save("boot", boot);
    deepEqual(new Checkpoint<Row>(path, "run-1").restore("boot"), boot, "rewritten whole");
  });
});
