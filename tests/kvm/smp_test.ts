// SMP: each vCPU on its own Worker; the MP table tells Linux about all of them, and the APs
// come up through INIT/SIPI in the in-kernel LAPIC.
import { equal, ok } from "../assert.ts";
import { runDenovmm } from "./guest_runner.ts";

Deno.test("smp: -c 4 brings 4 CPUs online and a 4-way parallel job finishes", async () => {
  const job = "x=0; while [ $x -lt 3000 ]; do x=$((x+1)); done; echo job-$i-done";
  const r = await runDenovmm({
    args: ["run", "-c", "4"],
    input: `cat /sys/devices/system/cpu/online\nnproc\n` +
      `for i in 1 2 3 4; do ( ${job} ) & done; wait; echo all-jobs-done\nexit 0\n`,
  });
  equal(r.status, 0, r.stdout + r.stderr);
  ok(/^0-3\r?$/m.test(r.stdout), `online CPUs:\n${r.stdout}`);
  ok(/^4\r?$/m.test(r.stdout), "nproc is 4");
  for (let i = 1; i <= 4; i++) ok(r.stdout.includes(`job-${i}-done`), `job ${i}`);
  ok(r.stdout.includes("all-jobs-done"));
});

// With 2 vCPUs the UART's THRE interrupt may go to the other vCPU, so the last command's output
// can still be queued when the shell exits; the exit hangs up the terminal, which discards it.
// The default guest's shell waits for the UART in its EXIT trap. Without the trap, about 1 run
// in 6 lost the tail of a dmesg here.
Deno.test("smp: with 2 vCPUs, the output of the command before `exit` arrives whole", async () => {
  const r = await runDenovmm({
    args: ["run", "-c", "2"],
    // The exit counters without --debug (README "Benchmarks"), checked below.
    env: { DENOVMM_STATS: "1" },
    input: "trap\ndmesg; echo last-line-$((6 * 7)); exit 0\n",
  });
  equal(r.status, 0, r.stdout + r.stderr);
  const stats =
    /^denovmm: exits: exits=(\d+) .* interrupted=(\d+) sliceClock=(\d+) sliceWoken=(\d+) sliceIdle=(\d+) turnUs=(\d+) turnMaxUs=(\d+)$/m
      .exec(r.stderr);
  ok(stats, `DENOVMM_STATS=1 prints the counters:\n${r.stderr}`);
  ok(Number(stats[1]) > 1000, `a Linux boot takes thousands of exits: ${stats[0]}`);
  // vCPU 0's KVM_RUN on the main thread is ended by the 20 ms tick (../../src/machine/boot_vcpu.ts)
  // throughout a boot of seconds.
  ok(Number(stats[2]) > 10, `the tick interrupted the boot vCPU: ${stats[0]}`);
  // Each slice's end gives the event loop a turn, whose time is counted; a turn takes at least
  // the timer's millisecond (../../src/machine/event_loop_turn.ts), and none is longer than all.
  const slicesEnded = Number(stats[3]) + Number(stats[4]) + Number(stats[5]);
  const [turnUs, turnMaxUs] = [Number(stats[6]), Number(stats[7])];
  ok(slicesEnded > 0, `the boot vCPU's slices ended: ${stats[0]}`);
  ok(turnUs >= 1000 * slicesEnded, `each turn took its timer's millisecond: ${stats[0]}`);
  ok(turnMaxUs > 0 && turnMaxUs <= turnUs, `the longest turn is one of them: ${stats[0]}`);
  ok(!/unclaimed|denovmm: VM built/.test(r.stderr), `none of --debug's lines:\n${r.stderr}`);
  ok(/^trap -- 'stty sane[^']*' EXIT\r?$/m.test(r.stdout), `the shell's EXIT trap:\n${r.stdout}`);
  ok(/^last-line-42\r?$/m.test(r.stdout), `the tail of the output:\n${r.stdout.slice(-2000)}`);
});

// DENOVMM_BOOT_VCPU=worker: vCPU 0 on a Worker of its own, as the APs (README "Benchmarks").
for (const cpus of [1, 2]) {
  Deno.test(`smp: DENOVMM_BOOT_VCPU=worker, -c ${cpus}: vCPU 0 runs on a Worker and the guest works`, async () => {
    const r = await runDenovmm({
      args: ["run", "--debug", "-c", `${cpus}`],
      env: { DENOVMM_BOOT_VCPU: "worker" },
      input: "nproc; echo worker-boot-$((6 * 7)); exit 3\n",
    });
    equal(r.status, 3, r.stdout + r.stderr);
    ok(/^worker-boot-42\r?$/m.test(r.stdout), r.stdout);
    ok(new RegExp(`^${cpus}\\r?$`, "m").test(r.stdout), `nproc is ${cpus}`);
    ok(/vcpu0 thread ready/.test(r.stderr), `vCPU 0's Worker reported ready:\n${r.stderr}`);
    ok(!/main thread/.test(r.stderr), "vCPU 0 did not run on the main thread");
  });
}
