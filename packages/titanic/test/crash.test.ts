import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeFrameFile, isZmqPatternsError } from "@zmq-patterns/core";
import {
  allocateAddress,
  type ChildProcessHandle,
  killAllProcesses,
  nodeCommand,
  startProcess,
} from "@zmq-patterns/core/testing";
import { MajordomoBroker, MajordomoWorker } from "@zmq-patterns/majordomo";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { TitanicClient } from "../src/client.js";
import { FileStore } from "../src/store.js";
import { prng } from "./fixtures/crash-data.js";

/**
 * System-level crash consistency of Titanic (spec 7.8, TI-B1, TI-B6, TI-B10; duplicates per
 * spec 8): a real Titanic process is SIGKILLed at random moments while a client stores requests
 * through it, and restarted on the same directory each time.
 */

const cli = join(import.meta.dirname, "../src/cli.ts");
/** Override with TITANIC_CRASH_SEED to replay another schedule of kills. */
const SEED = Number(process.env.TITANIC_CRASH_SEED ?? 0x71ca1c);
const REQUESTS = 1000;
const KILLS = 6;
/** Submissions in flight at once. */
const PIPELINE = 8;
const SERVICE = "echo";
/** Heartbeats of broker, Titanic and worker: a dead Titanic is noticed within 3 × 200 ms. */
const HEARTBEAT_MS = 200;
const ENTRY = /^([0-9A-F]{32})\.(req|rep)$/;

let dir: string;
const cleanup: Array<() => Promise<unknown>> = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "titanic-crash-"));
});

afterEach(async () => {
  await killAllProcesses();
  for (const close of cleanup.splice(0).reverse()) await close();
  await rm(dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What the directory holds, read without a store (no repair), every file decoded whole. */
async function snapshot(where: string): Promise<{
  requests: Map<string, string>;
  replies: Map<string, string>;
  temps: number;
  others: string[];
}> {
  const requests = new Map<string, string>();
  const replies = new Map<string, string>();
  const others: string[] = [];
  let temps = 0;
  for (const name of await readdir(where)) {
    if (name.endsWith(".tmp")) {
      temps += 1;
      continue;
    }
    const match = ENTRY.exec(name);
    if (!match) {
      others.push(name);
      continue;
    }
    const [, uuid, kind] = match as unknown as [string, string, "req" | "rep"];
    let frames: Buffer[];
    try {
      frames = decodeFrameFile(await readFile(join(where, name)));
    } catch (error) {
      // A file can vanish between readdir and read only through Titanic, which is dead here.
      throw new Error(`torn or damaged file ${name}: ${(error as Error).message}`);
    }
    if (kind === "req") {
      // [service][stored at][body]
      expect(frames[0]?.toString(), `service of ${name}`).toBe(SERVICE);
      expect(frames.length, `frames of ${name}`).toBe(3);
      requests.set(uuid, frames[2]?.toString() ?? "");
    } else {
      expect(frames.length, `frames of ${name}`).toBe(1);
      replies.set(uuid, frames[0]?.toString() ?? "");
    }
  }
  return { requests, replies, temps, others };
}

describe("Titanic process under SIGKILL (spec 7.8, TI-B1, spec 8)", () => {
  it(`TI-B1/7.8: ${KILLS} kills during ${REQUESTS} requests lose no acknowledged request, tear no file, and duplicate only requests in flight at a kill (seed ${SEED})`, async () => {
    const random = prng(SEED);
    const started = performance.now();
    const endpoint = await allocateAddress("tcp");
    const broker = await MajordomoBroker.start({
      bind: endpoint,
      heartbeatIntervalMs: HEARTBEAT_MS,
    });
    cleanup.push(() => broker.close());

    /** Execution times (performance.now()) of each request body on the echo service. */
    const executions = new Map<string, number[]>();
    const worker = await MajordomoWorker.start({
      broker: endpoint,
      service: SERVICE,
      heartbeatIntervalMs: HEARTBEAT_MS,
      reconnectMs: 100,
      handler: (body) => {
        const key = body.map((frame) => frame.toString()).join("|");
        const times = executions.get(key) ?? [];
        times.push(performance.now());
        executions.set(key, times);
        return body;
      },
    });
    cleanup.push(() => worker.close());

    const client = new TitanicClient({ broker: endpoint, timeoutMs: 600, retries: 4 });
    cleanup.push(() => client.close());

    const titanic: ChildProcessHandle = await startProcess({
      ...nodeCommand(cli, [
        "server",
        "--broker",
        endpoint,
        "--dir",
        dir,
        "--heartbeat-interval",
        String(HEARTBEAT_MS),
        // Far above the echo's time, so no send is ever repeated within one life of Titanic:
        // every duplicate below comes from a kill (README "When a request runs more than once", 1).
        "--attempt-timeout",
        "60000",
        "--retry-backoff",
        "50",
        "--max-retry-backoff",
        "200",
        "--no-collect",
      ]),
      name: "titanic",
      readyPattern: /Titanic serves/,
      readyTimeoutMs: 15_000,
    });

    // Kill when so many requests are acknowledged (progress, not wall time, so a slow machine
    // gets the same kind of schedule), plus a random 0-40 ms, and restart at once.
    const thresholds = Array.from({ length: KILLS }, () =>
      Math.floor(60 + random() * (REQUESTS - 120)),
    ).sort((a, b) => a - b);
    const delays = thresholds.map(() => Math.floor(random() * 40));
    const kills: Array<{ at: number; done: Set<string>; resumed: number }> = [];
    let temps = 0;

    /** Submit time of each body; the UUID that acknowledged it. */
    const submittedAt = new Map<string, number>();
    const acked = new Map<string, string>();
    let submitRetries = 0;
    let next = 0;

    const submitter = async () => {
      while (next < REQUESTS) {
        const body = `req-${String(next++).padStart(4, "0")}-${Math.floor(random() * 1e9)}`;
        submittedAt.set(body, performance.now());
        for (;;) {
          try {
            acked.set(body, await client.submit(SERVICE, body));
            break;
          } catch (error) {
            // Titanic is down or restarting: not acknowledged, so try again (same body; a
            // second UUID for it is TI-B2, accounted for below).
            if (!isZmqPatternsError(error, "TIMEOUT")) throw error;
            submitRetries += 1;
          }
        }
      }
    };

    const killer = async () => {
      for (const [index, threshold] of thresholds.entries()) {
        while (acked.size < threshold) await sleep(5);
        await sleep(delays[index] ?? 0);
        const at = performance.now();
        const exit = await titanic.kill("SIGKILL");
        expect(exit.signal, `titanic died by itself:\n${titanic.output.join("\n")}`).toBe(
          "SIGKILL",
        );
        // The directory as the kill left it: no torn file (TI-B1), only entries and temps.
        const state = await snapshot(dir);
        expect(state.others, "unexpected files after a kill").toEqual([]);
        temps += state.temps;
        const done = new Set<string>();
        for (const uuid of state.replies.keys()) {
          const body = state.requests.get(uuid);
          if (body !== undefined) done.add(body);
        }
        const pendingOnDisk = [...state.requests.keys()].filter(
          (uuid) => !state.replies.has(uuid),
        ).length;
        await titanic.restart();
        const ready = titanic.output.findLast((line) => /Titanic serves/.test(line)) ?? "";
        const resumed = Number(/\((\d+) pending resumed\)/.exec(ready)?.[1]);
        // Restart resumes exactly the stored requests without a reply (spec 7.10).
        expect(resumed, ready).toBe(pendingOnDisk);
        kills.push({ at, done, resumed });
      }
    };

    await Promise.all([...Array.from({ length: PIPELINE }, submitter), killer()]);
    const submittedMs = performance.now() - started;
    expect(acked.size).toBe(REQUESTS);
    expect(kills).toHaveLength(KILLS);

    // Every acknowledged request is answered, exactly as the echo service replies.
    const answers = new Map<string, string>();
    const poll = async (uuid: string): Promise<string> => {
      let waitMs = 20;
      const deadline = performance.now() + 20_000;
      for (;;) {
        if (performance.now() > deadline) throw new Error(`${uuid} still unanswered after 20 s`);
        try {
          const answer = await client.reply(uuid);
          if (answer.status === "ok") return answer.body.map((f) => f.toString()).join("|");
        } catch (error) {
          if (!isZmqPatternsError(error, "TIMEOUT")) throw error;
        }
        await sleep(waitMs);
        waitMs = Math.min(waitMs * 2, 500);
      }
    };
    const queue = [...acked];
    await Promise.all(
      Array.from({ length: PIPELINE }, async () => {
        for (let item = queue.pop(); item; item = queue.pop()) {
          const [body, uuid] = item;
          answers.set(body, await poll(uuid));
        }
      }),
    );
    for (const [body, uuid] of acked) {
      expect(answers.get(body), `reply of ${uuid}`).toBe(body);
    }

    // Requests stored twice (TI-B2: a lost titanic.request answer, or one queued in the broker
    // while Titanic was down) are answered too, so that the store ends with nothing pending.
    for (let pass = 0; pass < 50; pass++) {
      const state = await snapshot(dir);
      const unanswered = [...state.requests.keys()].filter((uuid) => !state.replies.has(uuid));
      const queued = Object.values(broker.stats().services).some((s) => s.queued > 0);
      if (unanswered.length === 0 && !queued) break;
      for (const uuid of unanswered) await poll(uuid);
      await sleep(50);
    }
    const exit = await titanic.stop(10_000);
    expect(exit.code, titanic.output.slice(-20).join("\n")).toBe(0);

    // The directory: nothing torn, no temp file left, no orphan, nothing pending (TI-B1, TI-B6).
    const store = new FileStore({ dir });
    await store.open();
    const final = await snapshot(dir);
    expect(final.temps, "temp files after a clean stop").toBe(0);
    expect(final.others).toEqual([]);
    for (const uuid of final.replies.keys()) {
      expect(final.requests.has(uuid), `orphan reply ${uuid}`).toBe(true);
    }
    expect(await store.pending()).toEqual([]);
    for (const [body, uuid] of acked) {
      expect(await store.state(uuid), uuid).toBe("done");
      expect(
        (await store.getReply(uuid))?.map((f) => f.toString()),
        uuid,
      ).toEqual([body]);
    }
    const uuidsOf = new Map<string, string[]>();
    for (const [uuid, body] of final.requests) {
      expect(submittedAt.has(body), `${uuid} holds a body nobody sent: ${body}`).toBe(true);
      expect(final.replies.get(uuid), `reply of ${uuid}`).toBe(body);
      uuidsOf.set(body, [...(uuidsOf.get(body) ?? []), uuid]);
    }
    await store.close();

    // Executions. Within one life Titanic sends a request once (attempt timeout far away), so a
    // request runs at most once per life of Titanic that sent it: once, plus once per kill
    // between its submission and its last run (spec 8; README "When a request runs more than
    // once", 1). Bodies stored under several UUIDs (TI-B2) run once per UUID and kill.
    let duplicated = 0;
    let extraRuns = 0;
    let storedTwice = 0;
    for (const body of acked.keys()) {
      const times = executions.get(body) ?? [];
      const uuids = uuidsOf.get(body) ?? [];
      expect(times.length, `${body} never ran`).toBeGreaterThanOrEqual(1);
      const first = submittedAt.get(body) ?? 0;
      const last = Math.max(...times);
      const between = kills.filter((kill) => kill.at > first && kill.at < last).length;
      if (uuids.length > 1) storedTwice += 1;
      expect(times.length, `${body}: ${times.length} runs, ${between} kills`).toBeLessThanOrEqual(
        uuids.length * (1 + between),
      );
      if (times.length > 1) {
        duplicated += 1;
        extraRuns += times.length - 1;
      }
      // Never again once its reply was on disk at a kill: a completed request is not resent.
      if (uuids.length === 1) {
        for (const kill of kills) {
          if (!kill.done.has(body)) continue;
          expect(
            times.filter((t) => t > kill.at),
            `${body} ran after a kill that found its reply stored`,
          ).toEqual([]);
        }
      }
    }
    for (const body of executions.keys()) {
      expect(submittedAt.has(body), `the service ran a body nobody sent: ${body}`).toBe(true);
    }

    // The run must have exercised recovery, or the checks above prove little.
    const resumed = kills.reduce((sum, kill) => sum + kill.resumed, 0);
    expect(resumed).toBeGreaterThan(0);
    console.log(
      `titanic crash seed ${SEED}: ${REQUESTS} requests, ${KILLS} kills at ${thresholds.join(",")} acks; ` +
        `${resumed} resumed after restarts, ${submitRetries} submits timed out, ` +
        `${storedTwice} bodies stored twice (TI-B2), ${duplicated} requests ran more than once ` +
        `(${extraRuns} extra runs), ${temps} temp files left by kills; ` +
        `submitted in ${Math.round(submittedMs)} ms, all in ${Math.round(performance.now() - started)} ms`,
    );
  }, 90_000);
});
