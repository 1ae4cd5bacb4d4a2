import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeFrameFile, ProtocolError } from "@zmq-patterns/core";
import { killAllProcesses, nodeCommand, startProcess } from "@zmq-patterns/core/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FileStore } from "../src/store.js";
import {
  CRASH_LINE,
  CRASH_SERVICE,
  type CrashStep,
  crashReplyBody,
  crashRequestBody,
  prng,
} from "./fixtures/crash-data.js";

const worker = join(import.meta.dirname, "fixtures/store-crash-worker.ts");
/** Override with TITANIC_CRASH_SEED to replay another schedule of kills. */
const SEED = Number(process.env.TITANIC_CRASH_SEED ?? 0x7717a41c);
const CYCLES = 20;
/** Kills land 0 to 150 ms after `ready`: during recovery, mid-write, mid-remove. */
const MAX_KILL_DELAY_MS = 150;
const ENTRY = /^([0-9A-F]{32})\.(req|rep)$/;

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "titanic-"));
});
afterEach(async () => {
  await killAllProcesses();
  await rm(dir, { recursive: true, force: true });
});

/** What the fixture said about each UUID, over all its runs. */
type Log = Map<string, Set<CrashStep>>;

function record(log: Log, lines: readonly string[]): void {
  for (const line of lines) {
    const match = CRASH_LINE.exec(line);
    if (!match) continue;
    const [, step, uuid] = match as unknown as [string, CrashStep, string];
    const steps = log.get(uuid) ?? new Set<CrashStep>();
    steps.add(step);
    log.set(uuid, steps);
  }
}

type DiskState = "absent" | "pending" | "done" | "orphan";

interface Snapshot {
  states: Map<string, DiskState>;
  /** Leftover temporary files (a kill during a write). */
  temps: number;
  /** UUIDs of the pending entries, oldest first (by the stored `storedAt`). */
  pendingOrder: string[];
}

/**
 * Reads the directory without a store and without `open()` (which would repair it): every entry
 * file must decode whole (no torn file, TI-B1) and hold exactly the frames written for its UUID.
 */
async function inspect(where: string): Promise<Snapshot> {
  const names = await readdir(where);
  const files = new Map<string, { req?: Buffer[]; rep?: Buffer[] }>();
  let temps = 0;
  for (const name of names) {
    if (name.endsWith(".tmp")) {
      temps += 1;
      continue;
    }
    const match = ENTRY.exec(name);
    expect(match, `unexpected file ${name}`).not.toBeNull();
    const [, uuid, kind] = match as unknown as [string, string, "req" | "rep"];
    let frames: Buffer[];
    try {
      frames = decodeFrameFile(await readFile(join(where, name)));
    } catch (error) {
      throw new Error(`torn or damaged file ${name}: ${(error as Error).message}`);
    }
    const entry = files.get(uuid) ?? {};
    entry[kind] = frames;
    files.set(uuid, entry);
  }
  const states = new Map<string, DiskState>();
  const pending: { uuid: string; at: number }[] = [];
  for (const [uuid, { req, rep }] of files) {
    if (req) {
      const [service, storedAt, ...body] = req;
      expect(service?.toString(), `service of ${uuid}`).toBe(CRASH_SERVICE);
      expect(same(body, crashRequestBody(uuid)), `request of ${uuid}`).toBe(true);
      if (!rep) pending.push({ uuid, at: Number(storedAt?.toString()) });
    }
    if (rep) expect(same(rep, crashReplyBody(uuid)), `reply of ${uuid}`).toBe(true);
    states.set(uuid, req ? (rep ? "done" : "pending") : "orphan");
  }
  pending.sort((a, b) => a.at - b.at || a.uuid.localeCompare(b.uuid));
  return { states, temps, pendingOrder: pending.map((p) => p.uuid) };
}

/** Frame lists compared with `Buffer.equals` (deep equality of 64 KiB frames is slow). */
function same(actual: readonly Buffer[] | undefined, expected: readonly Buffer[]): boolean {
  return (
    actual !== undefined &&
    actual.length === expected.length &&
    actual.every((frame, i) => frame.equals(expected[i] as Buffer))
  );
}

/** What a crash may leave for each UUID, given what the fixture printed before it died. */
function allowed(steps: ReadonlySet<CrashStep>): readonly DiskState[] {
  if (steps.has("removed")) return ["absent"]; // nothing removed reappears (TI-B9)
  // remove() deletes the request first, then the reply.
  if (steps.has("removing")) return ["done", "orphan", "absent"];
  if (steps.has("done")) return ["done"]; // its exact reply (checked by inspect)
  // Acknowledged (durable, TI-B1) or recovered after a restart: its reply may have landed unseen.
  if (steps.has("ack") || steps.has("recovered")) return ["pending", "done"];
  return ["absent", "pending"]; // put, not acknowledged: may or may not have landed
}

function check(log: Log, snapshot: Snapshot, when: string): void {
  for (const uuid of snapshot.states.keys()) {
    expect(log.has(uuid), `${when}: ${uuid} on disk was never put`).toBe(true);
  }
  for (const [uuid, steps] of log) {
    const state = snapshot.states.get(uuid) ?? "absent";
    expect(
      allowed(steps),
      `${when}: ${uuid} after [${[...steps].join(",")}] is ${state}`,
    ).toContain(state);
  }
}

describe("FileStore under SIGKILL (TI-B1, TI-5)", () => {
  it(`TI-B1/TI-5: ${CYCLES} kills at random moments lose no acknowledged write, tear no file and resurrect nothing (seed ${SEED})`, async () => {
    const random = prng(SEED);
    const log: Log = new Map();
    const stats = {
      temps: 0,
      orphans: new Set<string>(),
      unconfirmed: new Set<string>(),
      recovered: 0,
    };
    let expectedPending: string[] = [];

    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const when = `seed ${SEED} cycle ${cycle}`;
      const child = await startProcess({
        // Odd cycles without fsync: more writes per ms, so more kills land inside one.
        ...nodeCommand(worker, [
          dir,
          String((SEED + cycle) >>> 0),
          cycle % 2 ? "nofsync" : "fsync",
        ]),
        name: `store-crash-worker#${cycle}`,
        readyPattern: /^ready$/,
        readyTimeoutMs: 10_000,
      });
      // TI-5: after a restart, pending() is exactly what was pending on disk at the crash.
      const recovered = child.output.flatMap((line) => /^recovered (\w+)$/.exec(line)?.[1] ?? []);
      expect(recovered, `${when}: recovered after restart`).toEqual(expectedPending);
      stats.recovered += recovered.length;

      const delay = Math.floor(random() * MAX_KILL_DELAY_MS);
      await new Promise((resolve) => setTimeout(resolve, delay));
      const exit = await child.kill("SIGKILL");
      expect(exit.signal, `${when}: the worker died by itself:\n${child.output.join("\n")}`).toBe(
        "SIGKILL",
      );
      record(log, child.output);

      const snapshot = await inspect(dir);
      check(log, snapshot, when);
      stats.temps += snapshot.temps;
      for (const [uuid, state] of snapshot.states) {
        if (state === "orphan") stats.orphans.add(uuid);
        const steps = log.get(uuid);
        if (state === "done" && !steps?.has("done")) stats.unconfirmed.add(uuid);
      }
      expectedPending = snapshot.pendingOrder;
    }

    // Final recovery in-process: open() repairs, then everything is consistent.
    const store = new FileStore({ dir });
    await store.open();
    const names = await readdir(dir);
    expect(names.filter((name) => name.endsWith(".tmp"))).toEqual([]);
    for (const name of names.filter((n) => n.endsWith(".rep"))) {
      expect(names, `orphan reply ${name} survived open()`).toContain(name.replace(/rep$/, "req"));
    }
    const final = await inspect(dir);
    check(log, final, "after open()");
    expect([...final.states.values()]).not.toContain("orphan");

    const pending = (await store.pending()).map((request) => request.uuid);
    expect(pending).toEqual(final.pendingOrder);
    for (const uuid of pending) {
      const steps = log.get(uuid);
      // Pending: put (acknowledged or not) and not answered, not closed.
      expect(steps?.has("put") || steps?.has("recovered"), uuid).toBe(true);
      expect(steps?.has("done") || steps?.has("removing"), uuid).toBe(false);
    }
    let acked = 0;
    let removed = 0;
    for (const [uuid, steps] of log) {
      const state = await store.state(uuid);
      if (steps.has("ack")) acked += 1;
      if (steps.has("removed")) {
        removed += 1;
        expect(state, uuid).toBe("unknown");
        expect(await store.getRequest(uuid), uuid).toBeUndefined();
        expect(await store.getReply(uuid), uuid).toBeUndefined();
      } else if (steps.has("done") && !steps.has("removing")) {
        expect(state, uuid).toBe("done");
        expect(same(await store.getReply(uuid), crashReplyBody(uuid)), uuid).toBe(true);
        const request = await store.getRequest(uuid);
        expect(request?.service).toBe(CRASH_SERVICE);
        expect(same(request?.body, crashRequestBody(uuid)), uuid).toBe(true);
      } else if ((steps.has("ack") || steps.has("recovered")) && !steps.has("removing")) {
        // Acknowledged, answer not confirmed: pending, or answered just before the kill.
        expect(["pending", "done"], uuid).toContain(state);
        expect(state === "pending").toBe(pending.includes(uuid));
        if (state === "done") {
          expect(same(await store.getReply(uuid), crashReplyBody(uuid)), uuid).toBe(true);
        }
      }
    }
    await store.close();

    // The run must have exercised something, or the invariants above prove nothing.
    expect(acked).toBeGreaterThan(CYCLES);
    expect(removed).toBeGreaterThan(0);
    expect(stats.recovered).toBeGreaterThan(0);
    console.log(
      `store-crash seed ${SEED}: ${CYCLES} kills, ${log.size} UUIDs put, ${acked} acknowledged, ` +
        `${removed} removed, ${stats.recovered} recovered after restarts; left by kills: ` +
        `${stats.temps} temp files, ${stats.orphans.size} orphan replies, ` +
        `${stats.unconfirmed.size} replies stored but unconfirmed`,
    );
  }, 60_000);

  it("ProtocolError is what a torn file would raise, so inspect() above would have caught one", async () => {
    // Guards the checker itself: a file cut short is rejected, not decoded into fewer frames.
    const store = new FileStore({ dir });
    await store.open();
    const uuid = "0123456789ABCDEF0123456789ABCDEF";
    await store.putRequest({
      uuid,
      service: CRASH_SERVICE,
      body: crashRequestBody(uuid),
      storedAt: 1,
    });
    const file = await readFile(join(dir, `${uuid}.req`));
    for (const cut of [1, 4, 9, 13, file.byteLength >> 1, file.byteLength - 1]) {
      expect(() => decodeFrameFile(file.subarray(0, cut))).toThrow(ProtocolError);
    }
    await expect(inspect(dir)).resolves.toMatchObject({ pendingOrder: [uuid] });
  });
});
