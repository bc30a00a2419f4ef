// virtio-net on a tap: the test is the host end, in a network namespace of its own (so the
// tap and its addresses exist only for this test), configured as the user would with ip(8).
import { equal, match, ok } from "../assert.ts";
import { runDenovmm } from "./guest_runner.ts";

const NS = `denovmm-net-${Deno.pid}`;
const TAP = "dvtap0";
const HOST_IP = "192.168.77.1";
const GUEST_IP = "192.168.77.2";
const PORT = 7777;
const MiB = 1024 * 1024;

async function sh(cmd: string): Promise<void> {
  const r = await new Deno.Command("sh", { args: ["-c", cmd], stderr: "piped" }).output();
  if (r.code !== 0) throw new Error(`${cmd}: ${new TextDecoder().decode(r.stderr)}`);
}

async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", bytes);
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("net: the guest pings the tap's host end and sends it 16 MiB over TCP intact", async () => {
  await sh(`ip netns add ${NS}`);
  try {
    const inNs = `ip netns exec ${NS}`;
    await sh(
      `${inNs} ip link set lo up && ${inNs} ip tuntap add dev ${TAP} mode tap vnet_hdr && ` +
        `${inNs} ip addr add ${HOST_IP}/24 dev ${TAP} && ${inNs} ip link set ${TAP} up`,
    );
    // The host end: busybox nc listening in the namespace, everything it receives collected.
    const listener = new Deno.Command("ip", {
      args: ["netns", "exec", NS, "busybox", "nc", "-l", "-p", `${PORT}`],
      // Held open: busybox nc stops reading the socket once its stdin reaches EOF.
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const received = listener.output();
    const script = [
      `ip addr add ${GUEST_IP}/24 dev eth0`,
      "ip link set eth0 up",
      `ping -c 3 -w 20 ${HOST_IP}`,
      "dd if=/dev/urandom of=/tmp/blob bs=1M count=16 2>/dev/null",
      "echo blob-sum $(sha256sum /tmp/blob)",
      `nc ${HOST_IP} ${PORT} < /tmp/blob && echo sent-ok`,
      "exit 0",
    ].join("\n") + "\n";
    const r = await runDenovmm({
      args: ["run", "--network", `tap=${TAP}`],
      input: script,
      wrap: ["ip", "netns", "exec", NS],
      timeoutMs: 240_000, // 16 MiB through an emulated nested guest: 1-2 min on an idle host
    });
    await listener.stdin.close();
    // A guest that died mid-transfer leaves nc waiting on a connection that never closes.
    const stuck = setTimeout(() => listener.kill("SIGKILL"), 10_000);
    const got = await received.finally(() => clearTimeout(stuck));
    equal(r.status, 0, r.stdout + r.stderr);
    match(r.stdout, /3 packets transmitted, 3 packets received, 0% packet loss/);
    ok(r.stdout.includes("sent-ok"), r.stdout);
    const guestSum = /blob-sum ([0-9a-f]{64})/.exec(r.stdout)?.[1];
    ok(guestSum, r.stdout);
    equal(
      got.stdout.length,
      16 * MiB,
      `every byte arrived (nc: ${new TextDecoder().decode(got.stderr)})`,
    );
    equal(await sha256(got.stdout), guestSum, "and unchanged");
  } finally {
    await sh(`ip netns del ${NS}`).catch(() => {});
  }
});
