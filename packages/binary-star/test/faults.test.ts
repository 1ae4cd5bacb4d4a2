// Binary Star under real failures: both servers are `binary-star server` child processes (from
// source), killed with SIGKILL and restarted; clients run in this process.
import {
  allocateAddress,
  killAllProcesses,
  nodeCommand,
  startProcess,
} from "@zmq-patterns/core/testing";
import { afterEach, describe, expect, it } from "vitest";
import { BinaryStarClient, decodeSequence, encodeSequence } from "../src/index.js";
import {
  CLI,
  FATAL,
  replyRuns,
  ServerProcess as Server,
  type ServerSpec,
  VoterProbe,
} from "./pair-harness.js";

/** Heartbeat and peer expiry of the servers (2 x heartbeat, as by default). */
const HEARTBEAT = 200;
const PEER_EXPIRY = 400;
/** The client's reply timeout and settle delay; the settle delay is >= the peer expiry. */
const CLIENT_TIMEOUT = 300;
const SETTLE_DELAY = 500;
/**
 * The documented failover time (spec 1.9, 1.12.11): a request sent to the dead server times out,
 * the client waits the settle delay and resends to the other server, whose peer expiry has passed
 * by then (settle delay >= peer expiry), so one cycle suffices.
 */
const FAILOVER_BOUND = CLIENT_TIMEOUT + SETTLE_DELAY;
/**
 * Slack for a loaded machine: a reconnect and a round trip. Well under the cost of a vote arriving
 * too early (a second and third cycle, 2 x FAILOVER_BOUND), which the bound exists to rule out.
 */
const TOLERANCE = 600;
/** Generous bounds where timing is not what is tested. */
const SETTLE_MS = 10_000;
const TEST_MS = 60_000;

const cleanup: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const item of cleanup.splice(0).reverse()) await item.close();
  await killAllProcesses();
});

interface Pair {
  primary: Server;
  backup: Server;
}

/** Starts both servers and waits until the pair has settled: primary active, backup passive. */
async function startPair(
  timing: { heartbeatMs: number; peerExpiryMs: number },
  extra: Partial<Record<"primary" | "backup", Partial<ServerSpec>>> = {},
): Promise<Pair> {
  const [pVoter, pState, bVoter, bState] = await Promise.all(
    Array.from({ length: 4 }, () => allocateAddress()),
  );
  const specs = {
    primary: { role: "primary", voter: pVoter!, local: pState!, remote: bState!, ...timing },
    backup: { role: "backup", voter: bVoter!, local: bState!, remote: pState!, ...timing },
  } as const;
  const [primary, backup] = await Promise.all([
    Server.start({ ...specs.primary, ...extra.primary }),
    Server.start({ ...specs.backup, ...extra.backup }),
  ]);
  await Promise.all([
    primary.waitForLine(/peer is passive, ready as active$/, SETTLE_MS, 0),
    backup.waitForLine(/peer is active, ready as passive$/, SETTLE_MS, 0),
  ]);
  return { primary, backup };
}

function expectNoFatal(...servers: Server[]): void {
  for (const server of servers) {
    expect(server.matching(FATAL), `${server.role} output:\n${server.tail()}`).toEqual([]);
  }
}

describe("Binary Star under real failures (SIGKILL)", () => {
  it(
    "1.12.6/1.12.11/1.10: the active primary killed: the next request succeeds on the backup " +
      `within timeout + settle (${FAILOVER_BOUND} ms); restarted, the primary comes back passive; ` +
      "the backup killed: the primary takes over on the next vote (manual fail-back)",
    async () => {
      const { primary, backup } = await startPair({
        heartbeatMs: HEARTBEAT,
        peerExpiryMs: PEER_EXPIRY,
      });
      const client = new BinaryStarClient({
        endpoints: [primary.spec.voter, backup.spec.voter],
        timeoutMs: CLIENT_TIMEOUT,
        settleDelayMs: SETTLE_DELAY,
        validateReply: (reply, request) => reply[0]?.equals(request[0]!) === true,
      });
      cleanup.push(client);
      const failovers: Array<{ from: string; to: string }> = [];
      client.on("failover", ({ from, to }) => failovers.push({ from, to }));
      let sequence = 0;
      const request = async (): Promise<{ from: string; elapsed: number }> => {
        sequence += 1;
        const began = performance.now();
        const reply = await client.request(encodeSequence(sequence));
        expect(decodeSequence(reply)).toBe(sequence);
        return { from: client.endpoint, elapsed: performance.now() - began };
      };

      for (let i = 0; i < 3; i++) expect((await request()).from).toBe(primary.spec.voter);
      failovers.length = 0;

      // Failover: the client's next request goes to the dead primary, times out, and is resent to
      // the backup once the settle delay (>= its peer expiry) has passed.
      const killedAt = await primary.kill();
      const first = await request();
      const failoverMs = performance.now() - killedAt;
      expect(first.from).toBe(backup.spec.voter);
      expect(failovers).toEqual([{ from: primary.spec.voter, to: backup.spec.voter }]);
      expect(failoverMs).toBeGreaterThanOrEqual(FAILOVER_BOUND);
      expect(failoverMs).toBeLessThan(FAILOVER_BOUND + TOLERANCE);
      await backup.waitForLine(/client vote, peer silent, ready as active$/, SETTLE_MS, 0);
      for (let i = 0; i < 3; i++) {
        const next = await request();
        expect(next.from).toBe(backup.spec.voter);
        expect(next.elapsed).toBeLessThan(CLIENT_TIMEOUT);
      }
      expect(failovers).toHaveLength(1);

      // Restarted, the primary hears the active backup and goes passive (1.12.7): no split brain.
      const since = primary.lines.length;
      await primary.restart();
      await primary.waitForLine(/peer is active, ready as passive$/, SETTLE_MS, since);
      expect((await request()).from).toBe(backup.spec.voter);
      expect(backup.running).toBe(true);
      expect(primary.matching(/ready as active$/).filter((line) => line.run === 2)).toEqual([]);

      // Manual fail-back: the backup killed, the client's votes make the passive primary active.
      failovers.length = 0;
      const backupKilledAt = await backup.kill();
      const back = await request();
      const failBackMs = performance.now() - backupKilledAt;
      expect(back.from).toBe(primary.spec.voter);
      expect(failovers).toEqual([{ from: backup.spec.voter, to: primary.spec.voter }]);
      expect(failBackMs).toBeGreaterThanOrEqual(FAILOVER_BOUND);
      expect(failBackMs).toBeLessThan(FAILOVER_BOUND + TOLERANCE);
      const takeover = await primary.waitForLine(
        /client vote, peer silent, ready as active$/,
        SETTLE_MS,
        since,
      );
      expect(takeover.run).toBe(2);
      expect((await request()).from).toBe(primary.spec.voter);
      expect(primary.running).toBe(true);
      expectNoFatal(primary, backup);
    },
    TEST_MS,
  );

  it(
    "1.1/1.5.3: no period with two active servers that a client can observe: a probe voting on " +
      "both servers all the time sees replies from one server at a time, across two kill and " +
      "restart cycles, and no server ever fails fatally",
    async () => {
      // A long peer expiry (5 heartbeats): the probe votes on the passive server all the time,
      // so a healthy active server stalled longer than the peer expiry by a loaded machine would
      // lose its role to a vote (and both would then abort on dual active). Being safe against
      // that is the operator's choice of peer expiry, not what this test is about.
      const peerExpiryMs = 5 * HEARTBEAT;
      const { primary, backup } = await startPair({ heartbeatMs: HEARTBEAT, peerExpiryMs });
      const probes = {
        primary: new VoterProbe("primary", primary.spec.voter),
        backup: new VoterProbe("backup", backup.spec.voter),
      };
      cleanup.push(probes.primary, probes.backup);
      const servers = { primary, backup };
      const kills: Array<{ server: "primary" | "backup"; at: number }> = [];

      await probes.primary.waitForReply(SETTLE_MS, 9);
      // Two cycles: the primary fails and the backup takes over; the primary comes back passive;
      // the backup fails and the primary takes over; the backup comes back passive.
      for (const [victim, heir] of [
        ["primary", "backup"],
        ["backup", "primary"],
      ] as const) {
        const from = probes[heir].replies.length;
        kills.push({ server: victim, at: await servers[victim].kill() });
        await probes[heir].waitForReply(SETTLE_MS, from);
        const since = servers[victim].lines.length;
        await servers[victim].restart();
        await servers[victim].waitForLine(/peer is active, ready as passive$/, SETTLE_MS, since);
        // The heir still serves once its peer is back.
        await probes[heir].waitForReply(SETTLE_MS);
      }
      probes.primary.close();
      probes.backup.close();

      const runs = replyRuns([...probes.primary.replies, ...probes.backup.replies]);
      expect(runs.map((run) => run.server)).toEqual(["primary", "backup", "primary"]);
      for (const [i, kill] of kills.entries()) {
        const before = runs[i]!;
        const after = runs[i + 1]!;
        expect(before.server).toBe(kill.server);
        // Every reply of the failed server came before the first of its heir ...
        expect(before.last).toBeLessThan(after.first);
        // ... which answered only once it had missed the peer's heartbeats for the peer expiry
        // (counted from the last heartbeat it heard: up to a heartbeat before the kill, more if
        // a loaded machine delayed that one; half the expiry leaves room for both).
        expect(after.first - kill.at).toBeGreaterThanOrEqual(peerExpiryMs / 2);
      }
      expect(primary.running && backup.running).toBe(true);
      expectNoFatal(primary, backup);
    },
    TEST_MS,
  );

  it(
    "1.9/1.12.7/1.11.11: the primary restarted while the backup is passive swaps the roles: the " +
      "backup becomes active (peer is restarting), the primary passive, and the CLI client is " +
      "served by the backup; silence alone never made the backup active",
    async () => {
      const { primary, backup } = await startPair(
        { heartbeatMs: HEARTBEAT, peerExpiryMs: PEER_EXPIRY },
        { backup: { statsIntervalMs: 100 } },
      );
      await primary.kill();
      // No client votes: the backup outlives the peer expiry and stays passive.
      const silent = await backup.waitForStats((stats) => stats.peerExpiresInMs === 0, SETTLE_MS);
      expect(silent.state).toBe("PASSIVE");

      const since = { primary: primary.lines.length, backup: backup.lines.length };
      await primary.restart();
      const [backupActive, primaryPassive] = await Promise.all([
        backup.waitForLine(/peer is restarting, ready as active$/, SETTLE_MS, since.backup),
        primary.waitForLine(/peer is active, ready as passive$/, SETTLE_MS, since.primary),
      ]);
      expect(backup.lines.slice(since.backup).filter((l) => /ready as/.test(l.text))).toEqual([
        backupActive,
      ]);
      expect(primary.lines.slice(since.primary).filter((l) => /ready as/.test(l.text))).toEqual([
        primaryPassive,
      ]);

      // The bundled client starts with the primary, which now drops its requests (it hears its
      // active peer), so it fails over to the backup and stays there.
      const client = await startProcess({
        ...nodeCommand(CLI, [
          "client",
          "--primary-server",
          primary.spec.voter,
          "--backup-server",
          backup.spec.voter,
          "--timeout",
          String(CLIENT_TIMEOUT),
          "--settle-delay",
          String(SETTLE_DELAY),
          "--interval",
          "20",
          "--requests",
          "3",
        ]),
        name: "client",
        readyPattern: /client ready:/,
        readyTimeoutMs: 20_000,
      });
      expect(await client.waitForExit(SETTLE_MS)).toEqual({ code: 0, signal: null });
      const replies = client.output.filter((line) => line.startsWith("reply "));
      expect(replies).toEqual([1, 2, 3].map((n) => `reply ${n} from ${backup.spec.voter}`));
      expect(client.output.join("\n")).toContain(
        `no reply from ${primary.spec.voter}, failing over to ${backup.spec.voter}`,
      );
      expect(primary.running && backup.running).toBe(true);
      expectNoFatal(primary, backup);
    },
    TEST_MS,
  );
});
