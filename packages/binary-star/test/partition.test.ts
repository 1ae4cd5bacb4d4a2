// Binary Star across a real network partition (spec 1.5.4, 1.10), built from Linux network
// namespaces: each server runs in a namespace of its own; the two namespaces are joined by a
// dedicated veth link that carries only the servers' state PUB/SUB traffic (the "dedicated
// interconnect" the pattern asks for), and each namespace has a veth link to the root namespace,
// where the clients (this test process) run. Cutting the peer link (`ip link set ... down`) splits
// the pair while clients can still reach one or both servers.
//
// It needs root and `ip` (iproute2) with network namespace support; without them the suite is
// skipped and its title says why. Namespaces and interfaces are named `bstar<pid in base 36>-*`,
// so concurrent runs never share them, and are removed after the suite, even when it fails;
// leftovers of runs that were killed (their pid no longer exists) are removed before it starts.
import { execFileSync, spawnSync } from "node:child_process";
import { killAllProcesses } from "@zmq-patterns/core/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { FATAL, ServerProcess, VoterProbe } from "./pair-harness.js";

const PREFIX = "bstar";
const RUN = `${PREFIX}${process.pid.toString(36)}`;
/** Our names: `bstar<pid>-<suffix>`; interface names stay within Linux's 15 characters. */
const OURS = new RegExp(`^${PREFIX}([0-9a-z]+)-[a-z]+$`);
const NS = { primary: `${RUN}-p`, backup: `${RUN}-b` } as const;
const LINK = {
  /** Root end and namespace end of the client links. */
  rootPrimary: `${RUN}-rp`,
  primaryRoot: `${RUN}-pr`,
  rootBackup: `${RUN}-rb`,
  backupRoot: `${RUN}-br`,
  /** The peer link between the servers' namespaces. */
  primaryPeer: `${RUN}-pb`,
  backupPeer: `${RUN}-bp`,
} as const;
/** A private /28 per run, from the pid: three /30 links. */
const NET = `10.${(process.pid >> 8) & 0xff}.${process.pid & 0xff}`;
const ADDR = {
  rootToPrimary: `${NET}.1`,
  primary: `${NET}.2`,
  rootToBackup: `${NET}.5`,
  backup: `${NET}.6`,
  primaryPeer: `${NET}.9`,
  backupPeer: `${NET}.10`,
} as const;

const HEARTBEAT = 200;
const PEER_EXPIRY = 400;
/** How long the backup is watched while cut off from the primary in the first test. */
const SILENCE = 10 * PEER_EXPIRY;
/** Generous bounds where timing is not what is tested. */
const SETTLE_MS = 10_000;
/**
 * Time for a healed link to carry data again: TCP resends what the cut held back when its
 * retransmission timer fires, and that timer backs off while the link is down.
 */
const HEAL_MS = 15_000;
const TEST_MS = 40_000;

function ip(...args: string[]): string {
  return execFileSync("ip", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** Why the suite cannot run here, or `null` when it can. */
function unsupported(): string | null {
  if (process.platform !== "linux") return "needs Linux network namespaces";
  if (process.getuid?.() !== 0) return "needs root to create network namespaces";
  if (spawnSync("ip", ["netns", "list"]).status !== 0) {
    return "needs the ip command (iproute2) with network namespace support";
  }
  const probe = `${RUN}-t`;
  const added = spawnSync("ip", ["netns", "add", probe], { encoding: "utf8" });
  if (added.status !== 0) {
    return `cannot create network namespaces here (${added.stderr.trim() || "ip netns add failed"})`;
  }
  spawnSync("ip", ["netns", "delete", probe]);
  return null;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== "ESRCH";
  }
}

/** Deletes a namespace after killing what still runs in it (a namespace outlives its name). */
function deleteNamespace(name: string): void {
  const pids = spawnSync("ip", ["netns", "pids", name], { encoding: "utf8" }).stdout ?? "";
  for (const pid of pids.split(/\s+/).filter(Boolean)) {
    try {
      process.kill(Number(pid), "SIGKILL");
    } catch {}
  }
  // Deleting a namespace also deletes the veth pairs with an end in it.
  spawnSync("ip", ["netns", "delete", name]);
}

/** Removes our namespaces and root-namespace interfaces: this run's, or those of dead runs. */
function removeNamespaces(which: "this run" | "dead runs"): void {
  const mine = (name: string): boolean => {
    const pid = OURS.exec(name)?.[1];
    if (pid === undefined) return false;
    return which === "this run" ? name.startsWith(`${RUN}-`) : !isAlive(Number.parseInt(pid, 36));
  };
  const namespaces = (spawnSync("ip", ["netns", "list"], { encoding: "utf8" }).stdout ?? "")
    .split("\n")
    .map((line) => line.split(" ")[0] ?? "");
  for (const name of namespaces.filter(mine)) deleteNamespace(name);
  const links = (spawnSync("ip", ["-o", "link", "show"], { encoding: "utf8" }).stdout ?? "")
    .split("\n")
    .map((line) => /^\d+:\s+([^:@\s]+)/.exec(line)?.[1] ?? "");
  for (const name of links.filter(mine)) spawnSync("ip", ["link", "delete", name]);
}

/** A veth pair with an address at each end; `null` is the root namespace. */
function link(
  a: { ns: string | null; name: string; addr: string },
  b: { ns: string; name: string; addr: string },
): void {
  const inNs = (ns: string | null, ...args: string[]) =>
    ns === null ? ip(...args) : ip("-n", ns, ...args);
  ip("link", "add", a.name, "type", "veth", "peer", "name", b.name);
  if (a.ns !== null) ip("link", "set", a.name, "netns", a.ns);
  ip("link", "set", b.name, "netns", b.ns);
  for (const end of [a, b]) {
    inNs(end.ns, "addr", "add", `${end.addr}/30`, "dev", end.name);
    inNs(end.ns, "link", "set", end.name, "up");
  }
}

function buildTopology(): void {
  for (const ns of Object.values(NS)) {
    ip("netns", "add", ns);
    ip("-n", ns, "link", "set", "lo", "up");
  }
  link(
    { ns: null, name: LINK.rootPrimary, addr: ADDR.rootToPrimary },
    { ns: NS.primary, name: LINK.primaryRoot, addr: ADDR.primary },
  );
  link(
    { ns: null, name: LINK.rootBackup, addr: ADDR.rootToBackup },
    { ns: NS.backup, name: LINK.backupRoot, addr: ADDR.backup },
  );
  link(
    { ns: NS.primary, name: LINK.primaryPeer, addr: ADDR.primaryPeer },
    { ns: NS.backup, name: LINK.backupPeer, addr: ADDR.backupPeer },
  );
}

/** Cuts or restores the peer link (its primary end: both ends lose carrier). */
function peerLink(state: "down" | "up"): number {
  ip("-n", NS.primary, "link", "set", LINK.primaryPeer, state);
  return performance.now();
}

/**
 * Starts the pair in its namespaces and waits until it has settled. The ports are fixed: each
 * address belongs to a namespace of this run alone, so nothing else can hold them. `base` keeps
 * each test's ports apart (the Guide's 5001-5004 for the first).
 */
async function startPair(base: number, backupStats = 0) {
  const timing = { heartbeatMs: HEARTBEAT, peerExpiryMs: PEER_EXPIRY };
  const primaryState = `tcp://${ADDR.primaryPeer}:${base + 2}`;
  const backupState = `tcp://${ADDR.backupPeer}:${base + 3}`;
  const [primary, backup] = await Promise.all([
    ServerProcess.start({
      role: "primary",
      voter: `tcp://${ADDR.primary}:${base}`,
      local: primaryState,
      remote: backupState,
      wrap: ["ip", "netns", "exec", NS.primary],
      ...timing,
    }),
    ServerProcess.start({
      role: "backup",
      voter: `tcp://${ADDR.backup}:${base + 1}`,
      local: backupState,
      remote: primaryState,
      wrap: ["ip", "netns", "exec", NS.backup],
      ...timing,
      ...(backupStats > 0 ? { statsIntervalMs: backupStats } : {}),
    }),
  ]);
  await Promise.all([
    primary.waitForLine(/peer is passive, ready as active$/, SETTLE_MS, 0),
    backup.waitForLine(/peer is active, ready as passive$/, SETTLE_MS, 0),
  ]);
  return { primary, backup };
}

const skipReason = unsupported();
const probes: VoterProbe[] = [];

describe.skipIf(skipReason !== null)(
  `Binary Star across a network partition (Linux network namespaces)${
    skipReason === null ? "" : ` [skipped: ${skipReason}]`
  }`,
  () => {
    beforeAll(() => {
      removeNamespaces("dead runs");
      try {
        buildTopology();
      } catch (error) {
        removeNamespaces("this run");
        throw error;
      }
    });
    afterEach(async () => {
      for (const probe of probes.splice(0)) probe.close();
      await killAllProcesses();
      spawnSync("ip", ["-n", NS.primary, "link", "set", LINK.primaryPeer, "up"]);
    });
    afterAll(async () => {
      await killAllProcesses();
      removeNamespaces("this run");
    });

    it(
      `1.5.3: peer link cut, clients only at the active primary: the backup stays passive through ` +
        `${SILENCE} ms of silence (10 x the peer expiry), as no vote reaches it; the link healed, ` +
        "the pair carries on",
      async () => {
        const { primary, backup } = await startPair(5001, 100);
        const client = new VoterProbe("primary", primary.spec.voter);
        probes.push(client);
        await client.waitForReply(SETTLE_MS);

        const from = backup.lines.length;
        const cutAt = peerLink("down");
        // The backup counts the primary as gone, and stays passive all the same.
        await backup.waitForStats((s) => s.peerExpiresInMs === 0, SETTLE_MS, from);
        await backup.waitForStats((_, at) => at - cutAt >= SILENCE, SILENCE + SETTLE_MS, from);
        // The primary served all along; the backup saw nothing and never took over.
        const served = client.replies.filter((reply) => reply.at > cutAt);
        expect(served.length).toBeGreaterThan(SILENCE / 100);
        const during = backup.lines.slice(from).filter((line) => /^stats /.test(line.text));
        expect(during.length).toBeGreaterThan(SILENCE / 200);
        for (const line of during) expect(line.text).toContain('"state":"PASSIVE"');
        expect(backup.matching(/ready as active/)).toEqual([]);

        peerLink("up");
        const healed = backup.lines.length;
        const heard = await backup.waitForStats((s) => s.peerExpiresInMs > 0, HEAL_MS, healed);
        expect(heard.state).toBe("PASSIVE");
        await client.waitForReply(SETTLE_MS);
        expect(primary.running && backup.running).toBe(true);
        for (const server of [primary, backup]) expect(server.matching(FATAL)).toEqual([]);
      },
      TEST_MS,
    );

    it(
      "1.5.4/1.10: peer link cut, a client voting on the backup too: the backup becomes active " +
        "and both servers answer (dual active, split brain); the link healed, both detect " +
        "'dual active' and exit with status 3 (total outage)",
      async () => {
        const { primary, backup } = await startPair(6001);
        const client = {
          primary: new VoterProbe("primary", primary.spec.voter),
          backup: new VoterProbe("backup", backup.spec.voter),
        };
        probes.push(client.primary, client.backup);
        // While the peers hear each other, votes on the backup are dropped (1.5.3): the probes
        // send at the same pace, so 40 replies from the primary took longer than the peer expiry.
        await client.primary.waitForReply(SETTLE_MS, 39);
        expect(client.backup.sent).toBeGreaterThan(20);
        expect(client.backup.replies).toEqual([]);

        const cutAt = peerLink("down");
        const takeover = await client.backup.waitForReply(SETTLE_MS);
        expect(takeover.at).toBeGreaterThan(cutAt);
        await backup.waitForLine(/client vote, peer silent, ready as active$/, SETTLE_MS, 0);
        // Split brain, as a client sees it: both servers answer, after the takeover.
        const both = await Promise.all([
          client.primary.waitForReply(SETTLE_MS, undefined, (r) => r.at > takeover.at),
          client.backup.waitForReply(SETTLE_MS, undefined, (r) => r.at > takeover.at),
        ]);
        expect(both.map((reply) => reply.server)).toEqual(["primary", "backup"]);

        peerLink("up");
        const [primaryExit, backupExit] = await Promise.all([
          primary.waitForExit(HEAL_MS),
          backup.waitForExit(HEAL_MS),
        ]);
        expect(primaryExit).toEqual({ code: 3, signal: null });
        expect(backupExit).toEqual({ code: 3, signal: null });
        for (const server of [primary, backup]) {
          expect(server.matching(/dual active servers/), server.tail()).toHaveLength(1);
        }
      },
      TEST_MS,
    );
  },
);
