// Fault injection: ordinary host states and events that must neither end the VM nor lose what
// the guest was told is written. A tap that goes down and is deleted while the guest sends; the
// disk image on a full file system; SIGKILL right after the guest's fsync; SIGTERM.
//
// "In the image" is checked against a power cut, not just the page cache: for the signal tests
// the image lives on a small minix file system on a loop device whose backing file is the
// "disk". Periodic writeback is turned off while they run, and a copy of the backing file taken
// after denovmm has ended holds exactly what a flush put there. Each of those tests also writes
// a block it never flushes and checks that the copy lacks it, which shows the copy would catch a
// missing flush. Needs root (a sandbox is root), and the loop and minix modules: loaded from the
// default guest's kernel package (.cache/kernel), which is the sandbox's kernel.
import { equal, match, ok } from "../assert.ts";
import { REPO, threadStates } from "./guest_runner.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const encoder = new TextEncoder();

async function sh(cmd: string): Promise<string> {
  const r = await new Deno.Command("sh", { args: ["-c", cmd], stdout: "piped", stderr: "piped" })
    .output();
  if (r.code !== 0) throw new Error(`${cmd}: ${new TextDecoder().decode(r.stderr)}`);
  return new TextDecoder().decode(r.stdout).trim();
}

async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", bytes);
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * denovmm with the default guest, driven step by step: commands go to its console as they are
 * sent, and the test waits for what the guest prints (markers are written `"a""-b"` in the
 * commands, so the console's echo of a command never matches them).
 */
class Guest {
  readonly child: Deno.ChildProcess;
  stdout = "";
  stderr = "";
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #reading: Promise<unknown>;
  readonly #timer: ReturnType<typeof setTimeout>;
  #waiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];
  #exited = false;

  constructor(
    args: string[],
    opts: { wrap?: string[]; timeoutMs?: number; env?: Record<string, string> } = {},
  ) {
    let [cmd, argv] = [Deno.execPath(), ["run", "-A", `${REPO}main.ts`, ...args]];
    if (opts.wrap) [cmd, argv] = [opts.wrap[0], [...opts.wrap.slice(1), cmd, ...argv]];
    this.child = new Deno.Command(cmd, {
      args: argv,
      cwd: REPO,
      env: opts.env,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#writer = this.child.stdin.getWriter();
    const collect = async (s: ReadableStream<Uint8Array>, out: "stdout" | "stderr") => {
      const d = new TextDecoder();
      for await (const chunk of s) {
        this[out] += d.decode(chunk, { stream: true });
        if (out === "stdout") this.#wake();
      }
    };
    this.#reading = Promise.all([
      collect(this.child.stdout, "stdout"),
      collect(this.child.stderr, "stderr"),
    ]).finally(() => {
      this.#exited = true;
      this.#wake();
    });
    this.#timer = setTimeout(() => {
      this.stderr += threadStates(this.child.pid);
      this.child.kill("SIGKILL");
    }, opts.timeoutMs ?? 300_000);
  }

  #wake(): void {
    this.#waiters = this.#waiters.filter((w) => {
      const m = this.stdout.match(w.re);
      if (m) w.resolve(m);
      return !m;
    });
  }

  /** Type `text` on the guest's console. */
  async send(text: string): Promise<void> {
    try {
      await this.#writer.write(encoder.encode(text));
    } catch (e) {
      await this.#reading; // denovmm has ended: the rest of its output
      throw new Error(`cannot type on the console (${(e as Error).message})\n${this.output}`);
    }
  }

  /** Wait for the guest to print something matching `re`; fails if it ends or times out. */
  waitFor(re: RegExp, timeoutMs = 180_000): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => fail(`not seen in ${timeoutMs} ms`), timeoutMs);
      const fail = (why: string) => {
        clearTimeout(timer);
        reject(new Error(`${re} ${why}\n--- stdout:\n${this.stdout}\n--- stderr:\n${this.stderr}`));
      };
      this.#waiters.push({
        re,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
      });
      this.#wake();
      const poll = setInterval(() => {
        if (!this.#waiters.some((w) => w.re === re)) clearInterval(poll);
        else if (this.#exited) {
          clearInterval(poll);
          this.#waiters = this.#waiters.filter((w) => w.re !== re);
          fail("before denovmm ended");
        }
      }, 100);
    });
  }

  /** Close the console (EOF) and wait for denovmm to end. */
  async finish(): Promise<Deno.CommandStatus> {
    await this.#writer.close().catch(() => {});
    const status = await this.child.status;
    await this.#reading;
    clearTimeout(this.#timer);
    return status;
  }

  /** End denovmm if it still runs (a test that failed half-way), and wait for it. */
  async stop(): Promise<void> {
    if (!this.#exited) {
      try {
        this.child.kill("SIGKILL");
      } catch {
        // it has just ended
      }
    }
    await this.finish();
  }

  get output(): string {
    return `--- stdout:\n${this.stdout}\n--- stderr:\n${this.stderr}`;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** CPU time a process has used, all its threads, user and system (/proc/PID/stat, 100 Hz). */
function cpuSeconds(pid: number): number {
  const fields = Deno.readTextFileSync(`/proc/${pid}/stat`).replace(/^.*\) /, "").split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** denovmm's share of a CPU over 1.5 s, from 0.3 s after the guest's last command. */
async function idleCpu(g: Guest): Promise<number> {
  await sleep(300);
  const t0 = cpuSeconds(g.child.pid);
  await sleep(1500);
  return (cpuSeconds(g.child.pid) - t0) / 1.5;
}

const pct = (share: number) => `${Math.round(share * 100)}%`;

// --- the tap -----------------------------------------------------------------------------------

const NS = `denovmm-fault-${Deno.pid}`;
const TAP = "dvfault0";
const HOST_IP = "192.168.78.1";
const GUEST_IP = "192.168.78.2";

Deno.test("fault: the tap goes down, then is deleted, while the guest sends: the VM goes on", async () => {
  const inNs = `ip netns exec ${NS}`;
  await sh(`ip netns add ${NS}`);
  try {
    await sh(
      `${inNs} ip link set lo up && ${inNs} ip tuntap add dev ${TAP} mode tap vnet_hdr && ` +
        `${inNs} ip addr add ${HOST_IP}/24 dev ${TAP} && ${inNs} ip link set ${TAP} up`,
    );
    const g = new Guest(["run", "--network", `tap=${TAP}`], { wrap: ["ip", "netns", "exec", NS] });
    const tx = async (step: string) => {
      await g.send(`echo "tx""-${step}" $(cat /sys/class/net/eth0/statistics/tx_packets)\n`);
      // Up to the line's end: the console's bytes come a few at a time, and "tx-up 7" is a
      // prefix of "tx-up 72".
      return Number((await g.waitFor(new RegExp(`tx-${step} (\\d+)\\r?\\n`)))[1]);
    };
    try {
      await g.send(
        `ip addr add ${GUEST_IP}/24 dev eth0; ip link set eth0 up\n` +
          `ping -c 1 -W 10 ${HOST_IP} >/dev/null && echo "net""-up"\n`,
      );
      await g.waitFor(/net-up/);
      const idleUp = await idleCpu(g);
      // Frames go out all the time from here: two streams of 20 pings a second, one of them
      // 8000 bytes (six fragments).
      await g.send(
        `ping -i 0.05 -s 1400 ${HOST_IP} >/dev/null 2>&1 &\n` +
          `ping -i 0.05 -s 8000 ${HOST_IP} >/dev/null 2>&1 &\n`,
      );
      const before = await tx("up");
      await sh(`${inNs} ip link set ${TAP} down`); // writes to the tap now fail with EIO
      await sleep(1500);
      const down = await tx("down");
      await sh(`${inNs} ip link del ${TAP}`); // and now with EBADFD; reads too
      await sleep(1500);
      const deleted = await tx("deleted");
      await g.send(`kill %1 %2; echo "still""-alive"\n`);
      await g.waitFor(/still-alive/);
      // The guest is idle again: so should denovmm be, with nothing behind its tap fd.
      const idleDeleted = await idleCpu(g);
      await g.send("exit 0\n");
      const status = await g.finish();
      console.log(
        `denovmm's CPU, guest idle: ${pct(idleUp)} (tap up), ${pct(idleDeleted)} (deleted)`,
      );
      equal(status.code, 0, g.output);
      // The guest really sent while the tap was down and after it was gone.
      ok(down - before >= 10, `frames sent while the tap was down: ${down - before}\n${g.output}`);
      ok(deleted - down >= 10, `frames sent after it was deleted: ${deleted - down}\n${g.output}`);
      match(g.stderr, /dropped/, "denovmm dropped the frames the tap refused");
      ok(
        idleDeleted < 0.25,
        `denovmm spins once the tap is deleted: ${pct(idleDeleted)} of a CPU with the guest ` +
          `idle (${pct(idleUp)} with the tap up)\n${g.output}`,
      );
      ok(!/I\/O worker/.test(g.stderr), g.output);
    } finally {
      await g.stop();
    }
  } finally {
    await sh(`ip netns del ${NS}`).catch(() => {});
  }
});

// --- a full file system ------------------------------------------------------------------------

const IMAGE_BYTES = 4 * MiB;

Deno.test("fault: the image on a full file system: the guest sees I/O errors, the VM goes on, acknowledged writes are all there", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denovmm-full-" });
  await sh(`mount -t tmpfs -o size=2m denovmm-full ${dir}`);
  try {
    // A sparse 4 MiB image on a 2 MiB file system: writes past about half of it find no room.
    const image = `${dir}/disk.img`;
    const file = await Deno.create(image);
    await file.truncate(IMAGE_BYTES);
    file.close();
    const chunks = 12;
    const chunk = 256 * KiB;
    const g = new Guest(["run", "--disk", image]);
    try {
      // Each 256 KiB chunk: fresh random bytes, written and fsynced; its sum is printed only
      // when dd (and so the fsync) succeeded.
      await g.send(
        `for i in $(seq 0 ${chunks - 1}); do head -c ${chunk} /dev/urandom >/tmp/c; ` +
          `set -- $(sha256sum /tmp/c); ` +
          `if dd if=/tmp/c of=/dev/vda bs=${chunk} seek=$i count=1 conv=notrunc,fsync ` +
          `2>/dev/null; then echo "chunk $i ""ok $1"; else echo "chunk $i ""failed"; fi; done\n` +
          // Chunk 0 again, after the errors: its blocks are already allocated, so this works.
          `head -c ${chunk} /dev/urandom >/tmp/c; set -- $(sha256sum /tmp/c); ` +
          `dd if=/tmp/c of=/dev/vda bs=${chunk} count=1 conv=notrunc,fsync 2>/dev/null && ` +
          `echo "rewrite ""ok $1"\n` +
          `echo "io-errors"" $(dmesg | grep -c 'I/O error')"\n`,
      );
      const errors = Number((await g.waitFor(/io-errors (\d+)\r?\n/))[1]);
      await g.send(`echo "still""-alive"\nexit 0\n`);
      await g.waitFor(/still-alive/);
      const status = await g.finish();
      equal(status.code, 0, g.output);
      const acked = new Map<number, string>();
      for (const m of g.stdout.matchAll(/^chunk (\d+) ok ([0-9a-f]{64})/gm)) {
        acked.set(Number(m[1]), m[2]);
      }
      const failed = [...g.stdout.matchAll(/^chunk (\d+) failed/gm)].map((m) => Number(m[1]));
      equal(acked.size + failed.length, chunks, g.output);
      ok(acked.size >= 2 && failed.length >= 2, `acked ${[...acked.keys()]}, failed ${failed}`);
      ok(errors > 0, `the guest's kernel logged no I/O error\n${g.output}`);
      const rewrite = /^rewrite ok ([0-9a-f]{64})/m.exec(g.stdout)?.[1];
      ok(rewrite, `the rewrite of chunk 0 after the errors failed\n${g.output}`);
      acked.set(0, rewrite);
      const bytes = await Deno.readFile(image);
      equal(bytes.length, IMAGE_BYTES, "the image kept its size");
      for (const [i, sum] of acked) {
        equal(
          await sha256(bytes.slice(i * chunk, (i + 1) * chunk)),
          sum,
          `chunk ${i} in the image`,
        );
      }
    } finally {
      await g.stop();
    }
  } finally {
    await sh(`umount ${dir}`).catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

// --- signals, against a power cut ---------------------------------------------------------------

/** Loads a module from the guest kernel's package unless it is there (or built in) already. */
async function ensureModule(name: string, relPath: string): Promise<void> {
  try {
    await Deno.stat(`/sys/module/${name}`);
    return;
  } catch {
    // not loaded
  }
  const release = (await Deno.readTextFile("/proc/sys/kernel/osrelease")).trim();
  for (const root of ["lib", "usr/lib"]) {
    for (const [suffix, unpack] of [["", "cat"], [".xz", "xz -dc"], [".zst", "zstd -dc"]]) {
      const path = `${REPO}.cache/kernel/${root}/modules/${release}/kernel/${relPath}${suffix}`;
      try {
        await Deno.stat(path);
      } catch {
        continue;
      }
      const plain = await Deno.makeTempFile({ suffix: ".ko" });
      try {
        await sh(`${unpack} '${path}' >${plain} && busybox insmod ${plain}`);
      } finally {
        await Deno.remove(plain);
      }
      return;
    }
  }
  await sh(`modprobe ${name}`); // a host with KVM of its own
}

const DISK_BYTES = 4 * MiB;
const BLOCK = 64 * KiB;

/**
 * A 4 MiB random image on minix on a loop device, periodic writeback off. `afterCrash` gives
 * the image as a power cut right now would leave it: read from a copy of the loop device's
 * backing file, mounted on its own.
 */
async function withCrashableImage(
  fn: (image: string, original: Uint8Array, afterCrash: () => Promise<Uint8Array>) => Promise<void>,
): Promise<void> {
  await ensureModule("loop", "drivers/block/loop.ko");
  await ensureModule("minix", "fs/minix/minix.ko");
  const dir = await Deno.makeTempDir({ prefix: "denovmm-crash-" });
  const vm = "/proc/sys/vm";
  const saved = await Promise.all(
    ["dirty_writeback_centisecs", "dirty_expire_centisecs"].map((f) =>
      Deno.readTextFile(`${vm}/${f}`)
    ),
  );
  let loop = "";
  try {
    await Deno.mkdir(`${dir}/live`);
    await Deno.mkdir(`${dir}/copy`);
    await Deno.writeFile(`${dir}/backing.img`, new Uint8Array(16 * MiB));
    await sh(`mkfs.minix -3 ${dir}/backing.img >/dev/null`);
    loop = await sh(`losetup -f --show ${dir}/backing.img`);
    await sh(`mount -t minix ${loop} ${dir}/live`);
    const original = new Uint8Array(DISK_BYTES);
    for (let i = 0; i < DISK_BYTES; i += 65536) {
      crypto.getRandomValues(original.subarray(i, i + 65536));
    }
    const image = `${dir}/live/disk.img`;
    await Deno.writeFile(image, original);
    await sh("sync");
    await Deno.writeTextFile(`${vm}/dirty_writeback_centisecs`, "0");
    await Deno.writeTextFile(`${vm}/dirty_expire_centisecs`, "360000");
    await fn(image, original, async () => {
      await Deno.copyFile(`${dir}/backing.img`, `${dir}/copy.img`);
      await sh(`mount -t minix -o loop,ro ${dir}/copy.img ${dir}/copy`);
      try {
        return await Deno.readFile(`${dir}/copy/disk.img`);
      } finally {
        await sh(`umount ${dir}/copy`);
      }
    });
  } finally {
    await Deno.writeTextFile(`${vm}/dirty_writeback_centisecs`, saved[0]).catch(() => {});
    await Deno.writeTextFile(`${vm}/dirty_expire_centisecs`, saved[1]).catch(() => {});
    if (loop) {
      await sh(`umount ${dir}/live`).catch(() => {});
      await sh(`losetup -d ${loop}`).catch(() => {});
    }
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Commands that write 64 KiB of random bytes at block `block` and print their sum. */
function writeBlock(name: string, block: number, dd: string): string {
  return `head -c ${BLOCK} /dev/urandom >/tmp/${name}; set -- $(sha256sum /tmp/${name}); ` +
    `echo "sum-${name}"" $1"; ` +
    `dd if=/tmp/${name} of=/dev/vda bs=${BLOCK} seek=${block} count=1 ${dd} 2>/dev/null && ` +
    `echo "${name}""-written"\n`;
}

function blockAt(bytes: Uint8Array, block: number): Uint8Array<ArrayBuffer> {
  return bytes.slice(block * BLOCK, (block + 1) * BLOCK);
}

Deno.test("fault: SIGKILL right after the guest's fsync: the data is in the image, even after a power cut", async () => {
  await withCrashableImage(async (image, original, afterCrash) => {
    const g = new Guest(["run", "--disk", image]);
    try {
      // A: written and fsynced (a FLUSH, so fdatasync in denovmm). B, after it: O_DIRECT, so
      // acknowledged by denovmm once in the host's page cache, but never flushed.
      await g.send(writeBlock("a", 7, "conv=notrunc,fsync"));
      await g.waitFor(/a-written/);
      await g.send(writeBlock("b", 9, "oflag=direct conv=notrunc"));
      await g.waitFor(/b-written/);
      g.child.kill("SIGKILL");
      const status = await g.finish();
      equal(status.signal, "SIGKILL", g.output);
    } finally {
      await g.stop();
    }
    const sumA = /sum-a ([0-9a-f]{64})/.exec(g.stdout)![1];
    const sumB = /sum-b ([0-9a-f]{64})/.exec(g.stdout)![1];
    const disk = await afterCrash();
    equal(await sha256(blockAt(disk, 7)), sumA, "the fsynced block survives the power cut");
    ok(
      await sha256(blockAt(disk, 9)) !== sumB,
      "the unflushed block survived the power cut too: this test cannot see a missing flush",
    );
    equal(await sha256(blockAt(disk, 9)), await sha256(blockAt(original, 9)));
  });
});

// vCPU 0 runs on the main thread in slices, and a guest busy with exits keeps its slice through
// the tick (../../src/machine/boot_vcpu.ts); a stop signal must still end it within a tick, because
// the slice asks the event loop between exits (ffi/event_loop_probe.ts) rather than at the
// busy slice's end. sliceWoken counts the slices that ended for that.
Deno.test("fault: SIGTERM while the guest floods the console ends vCPU 0's busy slice for it", async () => {
  const g = new Guest(["run"], { env: { DENOVMM_STATS: "1" } });
  try {
    // About 20 exits a line of 16 characters: far more than a slice needs to count as busy.
    // $((6 * 7)): the typed line's echo is not the command's output.
    await g.send(
      "echo flood-start-$((6 * 7)); head -c 400000 /dev/zero | tr '\\0' .; echo flood-end-$((6 * 7))\n",
    );
    await g.waitFor(/flood-start-42/);
    await sleep(1000);
    g.child.kill("SIGTERM");
    const status = await g.finish();
    equal(status.code, 143, g.output);
  } finally {
    await g.stop();
  }
  ok(!g.stdout.includes("flood-end-42"), "the guest was still busy when the signal came");
  const stats = /^denovmm: exits: .* sliceWoken=(\d+) sliceIdle=\d+ turnUs=/m.exec(g.stderr);
  ok(stats, `DENOVMM_STATS=1 prints the counters:\n${g.stderr}`);
  ok(Number(stats[1]) >= 1, `a busy slice ended for the signal: ${stats[0]}`);
});

Deno.test("fault: SIGTERM stops the VM, flushes the disk, exits 143 with one line", async () => {
  await withCrashableImage(async (image, original, afterCrash) => {
    const g = new Guest(["run", "--disk", image]);
    try {
      // O_DIRECT and no fsync: only denovmm's own flush on SIGTERM makes this durable.
      await g.send(writeBlock("c", 5, "oflag=direct conv=notrunc"));
      await g.waitFor(/c-written/);
      g.child.kill("SIGTERM");
      const status = await g.finish();
      equal(status.code, 143, g.output);
    } finally {
      await g.stop();
    }
    match(
      g.stderr,
      /^denovmm: SIGTERM: vCPUs stopped, 1 writable disk flushed; exit status 143\n$/,
      "exactly one line on stderr",
    );
    const sumC = /sum-c ([0-9a-f]{64})/.exec(g.stdout)![1];
    const disk = await afterCrash();
    equal(await sha256(blockAt(disk, 5)), sumC, "the block written before SIGTERM is on disk");
    equal(
      await sha256(disk.slice(0, 5 * BLOCK)),
      await sha256(original.slice(0, 5 * BLOCK)),
      "and nothing before it changed",
    );
  });
});
