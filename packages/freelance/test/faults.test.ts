import { EventEmitter } from "node:events";
import { join } from "node:path";
import { RequestAbandonedError } from "@zmq-patterns/core";
import {
  allocateAddress,
  type ChildProcessHandle,
  killAllProcesses,
  nodeCommand,
  startProcess,
} from "@zmq-patterns/core/testing";
import { afterEach, describe, expect, it } from "vitest";
import type { FreelanceClient, FreelanceModel } from "../src/index.js";
import { closeAll, nextEvent, rejectionOf, startClient, str, until } from "./support.js";

const cli = join(import.meta.dirname, "../src/cli.ts");
/** These tests start (and restart) real server processes, each paying for its loader. */
const FAULT_TEST_MS = 90_000;
/** Upper margin on a timeout that is under test, for a loaded machine. */
const TOLERANCE = 1500;

afterEach(async () => {
  await closeAll();
  await killAllProcesses();
});

type Sent = { sequence: number; endpoint: string; attempt: number };

interface CliServer {
  endpoint: string;
  handle: ChildProcessHandle;
}

/** Starts `count` `freelance server` processes on fresh endpoints, printing stats every 100 ms. */
async function startServers(
  model: FreelanceModel,
  count: number,
  extra: string[] = [],
): Promise<CliServer[]> {
  const endpoints = await Promise.all(Array.from({ length: count }, () => allocateAddress()));
  return Promise.all(
    endpoints.map(async (endpoint, i) => ({
      endpoint,
      handle: await startProcess({
        ...nodeCommand(cli, [
          "server",
          "--model",
          String(model),
          "--bind",
          endpoint,
          "--stats-interval",
          "100",
          ...extra,
        ]),
        name: `server-${"ABC"[i] ?? i}`,
      }),
    })),
  );
}

/** Resolves once a server process reports having answered at least one request. */
function answersAgain(server: CliServer, timeoutMs = 20_000): Promise<string> {
  return server.handle.waitForLine(/^stats \{"requests":[1-9]/, timeoutMs);
}

/**
 * Makes requests back to back until stopped, recording every outcome; emits `ok` after each
 * success so a test can wait for progress.
 */
class Load extends EventEmitter<{ ok: [number] }> {
  ok = 0;
  readonly failures: unknown[] = [];
  readonly done: Promise<void>;
  #stopped = false;

  constructor(client: FreelanceClient) {
    super();
    this.done = this.#run(client);
  }

  /** Resolves once `count` more requests have succeeded than now. */
  more(count: number, timeoutMs = 30_000): Promise<void> {
    const target = this.ok + count;
    return until(this, "ok", () => this.ok >= target, timeoutMs);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.done;
  }

  async #run(client: FreelanceClient): Promise<void> {
    for (let n = 1; !this.#stopped; n++) {
      try {
        const reply = await client.request(`request ${n}`);
        if (reply.length === 0) throw new Error(`empty reply to request ${n}`);
        this.ok += 1;
        this.emit("ok", this.ok);
      } catch (error) {
        this.failures.push(error);
      }
    }
  }
}

describe.each([
  { model: 1 as const, reply: (n: string) => [n] },
  { model: 2 as const, reply: () => ["OK"] },
  { model: 3 as const, reply: () => ["OK"] },
])("Freelance model $model with real server processes", ({ model, reply }) => {
  /** Client settings: short where the defaults are not what is tested. */
  const clientOptions = {
    1: { attemptTimeoutMs: 600 },
    2: { timeoutMs: 2500 },
    3: { timeoutMs: 3000, pingIntervalMs: 200, serverTtlMs: 1000 },
  }[model];

  it(
    `model ${model}: SIGKILL one of three servers mid-run loses no request, and the restarted server is used again`,
    async () => {
      const servers = await startServers(model, 3);
      const [a, b] = servers as [CliServer, CliServer, CliServer];
      const client = startClient({
        model,
        endpoints: servers.map((s) => s.endpoint),
        ...clientOptions,
      });
      const sent: Sent[] = [];
      client.on("sent", (s) => sent.push(s));
      expect(str(await client.request("first"))).toEqual(reply("first"));

      const load = new Load(client);
      await load.more(20);
      // The preferred server (models 1 and 3 send there first) dies while requests flow.
      const aDown =
        model === 3
          ? nextEvent(
              client,
              "serverDown",
              (e: { endpoint: string }) => e.endpoint === a.endpoint,
              20_000,
            )
          : undefined;
      await a.handle.kill("SIGKILL");
      const sentBeforeKill = sent.length;
      await load.more(model === 1 ? 5 : 20);
      expect(load.failures).toEqual([]);
      if (model !== 2) {
        // After the kill, requests were answered by B (A first, for model 1: its turn costs an attempt).
        const after = sent.slice(sentBeforeKill);
        expect(after.some((s) => s.endpoint === b.endpoint)).toBe(true);
      }

      // A comes back: it is used again.
      if (model === 3) {
        await aDown;
        const aUp = nextEvent(
          client,
          "serverUp",
          (e: { endpoint: string }) => e.endpoint === a.endpoint,
          20_000,
        );
        await a.handle.restart();
        await aUp;
        // Preferred again once it has answered a ping: the next requests go to A.
        const sentToA = nextEvent(client, "sent", (s: Sent) => s.endpoint === a.endpoint, 20_000);
        await sentToA;
        await answersAgain(a);
        await load.more(5);
        const last = sent.slice(-3);
        expect(last.every((s) => s.endpoint === a.endpoint)).toBe(true);
      } else {
        await a.handle.restart();
        // Model 1: A is tried first by every request, so it answers at its turn; model 2: it
        // receives a copy of every request again.
        await answersAgain(a);
        await load.more(5);
        if (model === 1) {
          const last = sent.slice(-3);
          expect(last.every((s) => s.endpoint === a.endpoint && s.attempt === 1)).toBe(true);
        }
      }
      await load.stop();
      expect(load.failures).toEqual([]);
      expect(client.stats()).toMatchObject({ abandoned: 0, pending: 0 });
    },
    FAULT_TEST_MS,
  );

  it(
    `model ${model}: with every server SIGKILLed a request fails with RequestAbandonedError (TIMEOUT) within its timeout`,
    async () => {
      const servers = await startServers(model, 3);
      const timeoutMs = 1000;
      const client = startClient({
        model,
        endpoints: servers.map((s) => s.endpoint),
        ...clientOptions,
        ...(model === 1 ? { attemptTimeoutMs: 300 } : {}),
        timeoutMs,
      });
      expect(str(await client.request("warm-up"))).toEqual(reply("warm-up"));
      await Promise.all(servers.map((s) => s.handle.kill("SIGKILL")));
      const started = performance.now();
      const error = await rejectionOf(client.request("anyone?"));
      const elapsed = performance.now() - started;
      expect(error).toBeInstanceOf(RequestAbandonedError);
      expect(error).toMatchObject({ code: "TIMEOUT" });
      // Model 1 runs out of servers after 3 x 300 ms, before its 1,000 ms limit.
      expect(elapsed).toBeGreaterThanOrEqual((model === 1 ? 900 : timeoutMs) - 30);
      expect(elapsed).toBeLessThan(timeoutMs + TOLERANCE);
      expect(client.stats()).toMatchObject({ abandoned: 1, pending: 0 });
    },
    FAULT_TEST_MS,
  );

  it(
    `model ${model}: a reply that arrives after its request timed out is not handed to the next request`,
    async () => {
      const delay = 1200;
      const [slow] = (await startServers(model, 1, ["--delay", String(delay)])) as [CliServer];
      const client = startClient({
        model,
        endpoints: [slow.endpoint],
        ...clientOptions,
        ...(model === 1 ? { attemptTimeoutMs: 10_000, retries: 1 } : { timeoutMs: 10_000 }),
      });
      const dropped: Array<{ reason: string; at: number }> = [];
      client.on("dropped", ({ reason }) => dropped.push({ reason, at: performance.now() }));
      const first = await rejectionOf(client.request("first", { timeoutMs: 400 }));
      expect(first).toBeInstanceOf(RequestAbandonedError);
      // The next request is outstanding when the late reply to the first one arrives.
      const started = performance.now();
      const second = await client.request("second");
      const resolvedAt = performance.now();
      expect(str(second)).toEqual(reply("second"));
      // Its own reply took the server's full delay; the late one came earlier and went nowhere.
      expect(resolvedAt - started).toBeGreaterThanOrEqual(delay - 30);
      if (model !== 1) {
        // Models 2 and 3 share one socket across requests: the late reply was seen and dropped.
        expect(dropped.map((d) => d.reason)).toEqual(["stale reply"]);
        expect((dropped[0]?.at as number) < resolvedAt).toBe(true);
      }
      expect(client.stats()).toMatchObject({ requests: 2, replies: 1, abandoned: 1 });
    },
    FAULT_TEST_MS,
  );
});
