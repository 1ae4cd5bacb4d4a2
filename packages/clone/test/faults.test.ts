/**
 * Faults with real processes: a Binary Star pair of `clone server` processes, the active one
 * killed with SIGKILL while clients write, and every client converging on the survivor's map.
 */
import { join } from "node:path";
import { sleep, TimeoutError } from "@zmq-patterns/core";
import {
  allocateAddress,
  type ChildProcessHandle,
  killAllProcesses,
  nodeCommand,
  startProcess,
} from "@zmq-patterns/core/testing";
import { afterEach, describe, expect, it } from "vitest";
import { type CloneChange, CloneClient, TTL_PROPERTY } from "../src/index.js";
import {
  allocateBase,
  closeTracked,
  dump,
  dumpSnapshot,
  fetchSnapshot,
  type Snapshot,
  track,
  waitFor,
} from "./support.js";

const cli = join(import.meta.dirname, "../src/cli.ts");
const HOST = "tcp://127.0.0.1";
/** The whole scenario: two servers with their TypeScript loader, a failover, TTLs running out. */
const SCENARIO_MS = 150_000;
/** How long a process may take to say something that normally takes a second. */
const LINE_MS = 30_000;
/** Binary Star heartbeat of the pair (peer expiry twice that). */
const HEARTBEAT_MS = 200;
/**
 * Clients' silence before failing over. The bin's servers send HUGZ every 1,000 ms, so this
 * leaves a margin for a loaded machine while keeping the failover short.
 */
const SERVER_TTL_MS = 2000;
/** How long a write waits for its confirmation: long enough to span a failover. */
const CONFIRM_MS = 8000;
const WRITERS = 5;
/** Each writer's own keys (the Guide's assumption: no two clients update the same key). */
const KEYS_PER_WRITER = 12;
const SUBTREE = "/sub/";

afterEach(async () => {
  await closeTracked();
  await killAllProcesses();
});

function start(args: string[], name: string): Promise<ChildProcessHandle> {
  return startProcess({ ...nodeCommand(cli, args), name, readyTimeoutMs: LINE_MS });
}

/** What one writer did. */
interface Tally {
  confirmed: number;
  timedOut: number;
  confirmedAfterKill: number;
  /**
   * Each key's last write: the value it leaves once every ttl ran out (`undefined`: absent) and
   * whether the server confirmed it.
   */
  last: Map<string, { value: string | undefined; confirmed: boolean }>;
}

/**
 * Writes random updates to its own keys until `stop()` says so, awaiting each confirmation:
 * sets without ttl, sets with a ttl of 1 or 2 s, and deletes. Some keys live under the subtree.
 */
async function write(
  client: CloneClient,
  id: number,
  tally: Tally,
  killed: () => boolean,
  stop: () => boolean,
): Promise<void> {
  for (let n = 0; !stop(); n++) {
    const slot = Math.floor(Math.random() * KEYS_PER_WRITER);
    // A third of the keys live under the subtree.
    const key = slot % 3 === 0 ? `${SUBTREE}w${id}/${slot}` : `/w${id}/${slot}`;
    const roll = Math.random();
    // What the key holds once quiescent: nothing after a delete or an expired ttl.
    const value = roll < 0.4 ? undefined : `${id}-${n}`;
    try {
      if (roll < 0.2) await client.delete(key);
      else if (roll < 0.4)
        await client.set(key, `${id}-${n}-ttl`, { ttlMs: 1000 + 1000 * Math.round(Math.random()) });
      else await client.set(key, `${id}-${n}`);
      tally.confirmed += 1;
      if (killed()) tally.confirmedAfterKill += 1;
      tally.last.set(key, { value, confirmed: true });
    } catch (error) {
      // An update lost with the killed server, or a delete replayed by the new active (which a
      // snapshot cannot confirm): the requirement is convergence, not that every write survived.
      if (!(error instanceof TimeoutError)) throw error;
      tally.timedOut += 1;
      tally.last.set(key, { value, confirmed: false });
    }
    // About 100 writes a second per writer, so the run spans the failover and the ttls.
    await sleep(Math.random() * 20);
  }
}

/**
 * The survivor's map once quiescent: no value left with a ttl (all expired and their deletes
 * published) and every full-map client at the server's sequence.
 */
async function quiescent(snapshotEndpoint: string, clients: CloneClient[]): Promise<Snapshot> {
  const deadline = performance.now() + 30_000;
  for (;;) {
    const snapshot = await fetchSnapshot(snapshotEndpoint);
    const ttls = snapshot.entries.filter((msg) => msg.getProperty(TTL_PROPERTY) !== undefined);
    const sequence = snapshot.end.sequence;
    if (ttls.length === 0 && clients.every((c) => c.state === "active" && c.sequence === sequence))
      return snapshot;
    if (performance.now() > deadline) {
      throw new TimeoutError(
        `no quiescence within 30000 ms: ${ttls.length} values with ttl, server sequence ${sequence}, clients at ${clients.map((c) => `${c.state}/${c.sequence}`).join(" ")}`,
        30_000,
      );
    }
    // A TTL flush or a HUGZ is at most a second away.
    await sleep(250);
  }
}

describe("clone faults (real server processes)", () => {
  it(
    "3.11/3.13.8/3.13.9 the active is SIGKILLed while 5 clients write (ttl, deletes): all clients fail over and converge on the backup's map; a late joiner gets snapshot then gapless updates; a subtree client sees only its subtree",
    async () => {
      const [p, b] = [await allocateBase(), await allocateBase()];
      const [pState, bState] = [await allocateAddress(), await allocateAddress()];
      const member = (role: "primary" | "backup", port: number, peer: number) => [
        "server",
        `--${role}`,
        "--port",
        String(port),
        "--host",
        HOST,
        "--peer-snapshot",
        `${HOST}:${peer}`,
        "--peer-publisher",
        `${HOST}:${peer + 1}`,
        "--local",
        role === "primary" ? pState : bState,
        "--remote",
        role === "primary" ? bState : pState,
        "--heartbeat-interval",
        String(HEARTBEAT_MS),
      ];
      const primary = await start(member("primary", p, b), "primary");
      const backup = await start(member("backup", b, p), "backup");
      await primary.waitForLine("active (ACTIVE)", LINE_MS, { includeSeen: true });
      await backup.waitForLine("passive (PASSIVE)", LINE_MS, { includeSeen: true });
      await backup.waitForLine(/synchronised from the active/, LINE_MS, { includeSeen: true });

      const servers = [`${HOST}:${p}`, `${HOST}:${b}`];
      const options = { serverTtlMs: SERVER_TTL_MS, confirmTimeoutMs: CONFIRM_MS };
      const writers = Array.from({ length: WRITERS }, () =>
        track(new CloneClient({ servers, ...options })),
      );
      const subtree = track(new CloneClient({ servers, subtree: SUBTREE, ...options }));
      const subtreeKeys: string[] = [];
      subtree.on("change", ({ key }) => subtreeKeys.push(key));
      await Promise.all([...writers, subtree].map((c) => c.synced()));
      const failovers = [...writers, subtree].map((c) => {
        const seen: string[] = [];
        c.on("failover", ({ to }) => seen.push(to));
        return seen;
      });

      let killed = false;
      let stopped = false;
      const tallies: Tally[] = writers.map(() => ({
        confirmed: 0,
        timedOut: 0,
        confirmedAfterKill: 0,
        last: new Map(),
      }));
      const writing = Promise.all(
        writers.map((c, i) =>
          write(
            c,
            i,
            tallies[i] as Tally,
            () => killed,
            () => stopped,
          ),
        ),
      );
      const total = (field: "confirmed" | "timedOut" | "confirmedAfterKill") =>
        tallies.reduce((sum, t) => sum + t[field], 0);
      try {
        // Mid-run: after long enough for ttls to have run out and been published.
        await waitFor(() => total("confirmed") >= 1500, "1500 confirmed writes", 60_000);
        killed = true;
        await primary.kill("SIGKILL");
        await backup.waitForLine("active (ACTIVE)", LINE_MS);
        // Every client fails over to the backup and syncs from it.
        await waitFor(
          () => [...writers, subtree].every((c) => c.server === servers[1] && c.state === "active"),
          "every client active on the backup",
          30_000,
        );

        // A late joiner, while the writes go on.
        const late = track(new CloneClient({ servers: [servers[1] as string], ...options }));
        const lateChanges: CloneChange[] = [];
        const lateGaps: unknown[] = [];
        let lateSynced: { keys: number; sequence: number } | undefined;
        late.on("synced", (s) => {
          if (lateSynced === undefined) lateSynced = s;
        });
        late.on("change", (change) => {
          if (lateSynced !== undefined) lateChanges.push(change);
        });
        late.on("gap", (gap) => lateGaps.push(gap));
        await late.synced();
        const syncedAt = late.sequence;
        // Writes keep going on the new active, with the late joiner following them.
        const confirmedThen = total("confirmedAfterKill");
        await waitFor(
          () =>
            total("confirmedAfterKill") >= confirmedThen + 500 &&
            tallies.every((t) => t.confirmedAfterKill >= 50),
          "500 more writes on the backup, at least 50 by each writer",
          60_000,
        );
        stopped = true;
        await writing;

        const snapshot = await quiescent(servers[1] as string, [...writers, late]);
        const expected = dumpSnapshot(snapshot);
        console.log(
          `clone faults: ${total("confirmed")} writes confirmed (${total("confirmedAfterKill")} after the kill), ${total("timedOut")} not confirmed; survivor sequence ${snapshot.end.sequence}, ${expected.length} keys; late joiner synced at #${syncedAt} with ${confirmedThen} writes confirmed since the kill`,
        );
        for (const [i, client] of writers.entries()) {
          expect(dump(client.entries()), `writer ${i}`).toEqual(expected);
          expect(failovers[i], `writer ${i} failovers`).toContain(servers[1]);
        }
        // No stale value resurrected, no confirmed write lost (3.13.9): a key whose last write
        // was confirmed holds what that write left (its value, or nothing after a delete or an
        // expired ttl). A key whose last write timed out may hold either.
        const survivor = new Map(snapshot.entries.map((msg) => [msg.key, msg.body.toString()]));
        for (const tally of tallies) {
          for (const [key, { value, confirmed }] of tally.last) {
            if (confirmed) expect(survivor.get(key), key).toBe(value);
          }
        }
        // The late joiner: the full snapshot, then each update once, in order, without a hole.
        expect(dump(late.entries()), "late joiner").toEqual(expected);
        expect(late.sequence).toBe(snapshot.end.sequence);
        expect(lateGaps).toEqual([]);
        expect(lateSynced?.sequence).toBe(syncedAt);
        expect(lateChanges.length).toBeGreaterThan(0);
        const sequences = lateChanges.map((c) => c.sequence);
        expect(sequences[0]).toBeGreaterThan(syncedAt);
        for (let i = 1; i < sequences.length; i++) {
          expect(sequences[i], `change ${i} of the late joiner`).toBeGreaterThan(
            sequences[i - 1] as number,
          );
        }
        // The subtree client converges on the subtree, and never saw anything outside it.
        await waitFor(
          () =>
            JSON.stringify(dump(subtree.entries())) ===
            JSON.stringify(expected.filter((line) => line.startsWith(SUBTREE))),
          "the subtree client converging",
          10_000,
        ).catch(() => {});
        expect(dump(subtree.entries()), "subtree client").toEqual(
          expected.filter((line) => line.startsWith(SUBTREE)),
        );
        expect(expected.some((line) => line.startsWith(SUBTREE))).toBe(true);
        expect(subtreeKeys.length).toBeGreaterThan(0);
        expect(subtreeKeys.filter((key) => !key.startsWith(SUBTREE))).toEqual([]);
        expect(failovers[WRITERS], "subtree client failovers").toContain(servers[1]);

        expect(backup.output.join("\n")).not.toMatch(/fatal/);
      } finally {
        stopped = true;
        await writing.catch(() => {});
      }
    },
    SCENARIO_MS,
  );
});
