/**
 * Interoperability with independent Python peers (interop/python, pyzmq) playing the roles of the
 * Guide's ppworker, ppqueue and lpclient: RFC 6/PPP on the wire, with short heartbeats.
 */
import { join } from "node:path";
import { identityKey } from "@zmq-patterns/core";
import {
  allocateAddress,
  type ChildProcessHandle,
  checkPython,
  killAllProcesses,
  nodeCommand,
  startProcess,
  startPythonPeer,
} from "@zmq-patterns/core/testing";
import { LazyPirateClient } from "@zmq-patterns/lazy-pirate";
import { afterEach, describe, expect, it } from "vitest";
import { ParanoidPirateQueue, type ParanoidPirateQueueOptions } from "../src/index.js";

const cli = join(import.meta.dirname, "../src/cli.ts");
const INTERVAL = 200;
const LIVENESS = 3;
// Needs /usr/bin/python3 with pyzmq (Debian: apt-get install python3-zmq); skipped otherwise.
const python = checkPython();
if (!python.available) console.warn(`paranoid-pirate interop tests skipped: ${python.reason}`);

const cleanup: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const item of cleanup.splice(0).reverse()) await item.close();
  await killAllProcesses();
});

function timing(interval = INTERVAL, liveness = LIVENESS): string[] {
  return ["--heartbeat-interval", String(interval), "--liveness", String(liveness)];
}

/** A Python ppworker; it does not heartbeat while it "works", so the work time stays short. */
async function pythonWorker(
  backend: string,
  workMs = 20,
  interval = INTERVAL,
  liveness = LIVENESS,
): Promise<{ handle: ChildProcessHandle; key: string }> {
  const handle = await startPythonPeer("ppworker", [
    "--connect",
    backend,
    ...timing(interval, liveness),
    "--interval-init",
    String(interval),
    "--work-ms",
    String(workMs),
  ]);
  const identity = /ready: (\S+) connected/.exec(handle.output.join("\n"))?.[1];
  expect(identity).toMatch(/^[0-9A-F]{4}-[0-9A-F]{4}$/);
  return { handle, key: identityKey(Buffer.from(identity as string)) };
}

function ourWorker(
  backend: string,
  name: string,
  extra: readonly string[] = [],
  interval = INTERVAL,
  liveness = LIVENESS,
) {
  return startProcess({
    ...nodeCommand(cli, [
      "worker",
      "--connect",
      backend,
      ...timing(interval, liveness),
      "--reconnect-initial",
      String(interval),
      ...extra,
    ]),
    name,
  });
}

async function ourQueue(
  options: Pick<
    ParanoidPirateQueueOptions,
    "unknownWorkerHeartbeat" | "heartbeatIntervalMs" | "liveness"
  > = {},
): Promise<ParanoidPirateQueue> {
  const queue = await ParanoidPirateQueue.start({
    frontend: await allocateAddress(),
    backend: await allocateAddress(),
    heartbeatIntervalMs: INTERVAL,
    liveness: LIVENESS,
    ...options,
  });
  cleanup.push(queue);
  return queue;
}

function client(endpoint: string, timeoutMs: number, retries: number): LazyPirateClient {
  const c = new LazyPirateClient({
    endpoint,
    timeoutMs,
    retries,
    validateReply: (reply, request) => reply.length === 1 && reply[0]!.equals(request[0]!),
  });
  cleanup.push(c);
  return c;
}

/**
 * Drops that timing alone explains (a worker the queue forgot heartbeats on; a worker that gave up
 * on the queue is unroutable), which a heavily loaded machine can cause. Any other drop reason is
 * a message our queue could not accept from a reference peer.
 */
const TIMING_DROPS = /^(heartbeat from unknown worker|unroutable worker)$/;

function protocolDrops(dropped: Record<string, number>): Record<string, number> {
  return Object.fromEntries(
    Object.entries(dropped).filter(([reason]) => !TIMING_DROPS.test(reason)),
  );
}

/** Records READY events from now on; `waitFor(keys)` resolves once all of `keys` were seen. */
function trackReady(queue: ParanoidPirateQueue): {
  waitFor(keys: readonly string[]): Promise<void>;
} {
  const seen = new Set<string>();
  let wake: (() => void) | undefined;
  queue.on("workerReady", ({ worker }) => {
    seen.add(worker);
    wake?.();
  });
  return {
    async waitFor(keys) {
      while (!keys.every((key) => seen.has(key))) {
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
    },
  };
}

/**
 * Resolves once `check()` holds, re-checking after every line the processes print; rejects after
 * `timeoutMs` with the last lines of each.
 */
async function untilOutput(
  handles: readonly ChildProcessHandle[],
  check: () => boolean,
  what: string,
  timeoutMs = 5000,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    const left = deadline - performance.now();
    if (left <= 0) {
      const tails = handles.map((h) => `[${h.name}]\n${h.output.slice(-15).join("\n")}`);
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${tails.join("\n")}`);
    }
    await Promise.race(handles.map((h) => h.waitForLine(/./, left).catch(() => {})));
  }
}

/** Lines of `handle` after index `from` that match `pattern`. */
function matching(handle: ChildProcessHandle, from: number, pattern: RegExp): string[] {
  return handle.output.slice(from).filter((line) => pattern.test(line));
}

/** Identities the Python ppqueue registered (printed "worker ready <id>") after line `from`. */
function registered(ppqueue: ChildProcessHandle, from: number): Set<string> {
  return new Set(
    matching(ppqueue, from, /worker ready/).map((l) => /worker ready (\S+)/.exec(l)![1]!),
  );
}

// Shows up in the report as a skipped test titled with the reason.
// Skipped only where pyzmq cannot be imported (CI installs it): the report then names the reason.
if (!python.available) it.skip(`interop with Python peers: ${python.reason}`, () => {});

describe.skipIf(!python.available)("Paranoid Pirate interop with Python peers (pyzmq)", () => {
  it("Python ppworkers serve through our ParanoidPirateQueue; a SIGKILLed one is expired and the other serves on", async () => {
    const queue = await ourQueue();
    const { backend, frontend } = queue.endpoints;
    const dispatched: string[] = [];
    queue.on("requestDispatched", ({ worker }) => dispatched.push(worker));
    // READY [0x01] registers each worker (their identities come from their ready lines).
    const ready = trackReady(queue);
    const [a, b] = await Promise.all([pythonWorker(backend), pythonWorker(backend)]);
    await ready.waitFor([a!.key, b!.key]);

    const c = client(frontend, 2500, 3);
    for (let i = 1; i <= 10; i++)
      expect((await c.request(String(i))).map(String)).toEqual([String(i)]);
    expect(new Set(dispatched)).toEqual(new Set([a!.key, b!.key]));
    // The Python workers' heartbeats, READYs and 3-frame replies all decoded: nothing dropped.
    expect(protocolDrops(queue.stats().dropped)).toEqual({});
    expect(queue.stats().repliesForwarded).toBeGreaterThanOrEqual(10);
    expect(queue.stats().repliesForwarded).toBe(queue.stats().requestsDispatched);

    const expired = new Promise<number>((resolve) =>
      queue.on("workerExpired", ({ worker }) => {
        if (worker === a!.key) resolve(performance.now());
      }),
    );
    const killedAt = performance.now();
    await a!.handle.kill("SIGKILL");
    // Within liveness x interval; sooner when a heartbeat to its closed connection fails first
    // (our backend routes with ROUTER_MANDATORY).
    expect((await expired) - killedAt).toBeLessThanOrEqual((LIVENESS + 1) * INTERVAL + 300);

    dispatched.length = 0;
    for (let i = 11; i <= 15; i++)
      expect((await c.request(String(i))).map(String)).toEqual([String(i)]);
    expect(new Set(dispatched)).toEqual(new Set([b!.key]));
    // The survivor, which never heartbeats while it works, was never expired by mistake.
    expect(b!.handle.running).toBe(true);
    expect(queue.stats().workersExpired).toBe(1);
    expect(b!.handle.output.filter((l) => /invalid message|heartbeat failure/.test(l))).toEqual([]);
  });

  it("the Python lpclient completes its requests through our queue to Python ppworkers", async () => {
    const queue = await ourQueue();
    const { backend, frontend } = queue.endpoints;
    const ready = trackReady(queue);
    const workers = await Promise.all([pythonWorker(backend), pythonWorker(backend)]);
    await ready.waitFor(workers.map((w) => w.key));
    const lpclient = await startPythonPeer("lpclient", [
      "--connect",
      frontend,
      "--count",
      "20",
      "--timeout",
      "2500",
    ]);
    expect(await lpclient.waitForExit(10_000)).toEqual({ code: 0, signal: null });
    expect(lpclient.output.join("\n")).toContain("done: 20 requests OK");
    expect(lpclient.output.filter((l) => /malformed|abandoning/.test(l))).toEqual([]);
    expect(protocolDrops(queue.stats().dropped)).toEqual({});
  });

  it("our `paranoid-pirate worker` CLIs serve through the Python ppqueue, and again after it is SIGKILLed and restarted", async () => {
    const frontend = await allocateAddress();
    const backend = await allocateAddress();
    const ppqueue = await startPythonPeer("ppqueue", [
      "--frontend",
      frontend,
      "--backend",
      backend,
      ...timing(),
    ]);
    const workers = await Promise.all([ourWorker(backend, "w1"), ourWorker(backend, "w2")]);
    await untilOutput([ppqueue], () => registered(ppqueue, 0).size >= 2, "2 workers");

    const c = client(frontend, 500, 20);
    for (let i = 1; i <= 6; i++)
      expect((await c.request(String(i))).map(String)).toEqual([String(i)]);
    // Requests reached both of our workers as [C][""][body], and the queue understood everything
    // they sent: READY, HEARTBEAT and replies.
    await untilOutput(
      workers,
      () => workers.every((w) => matching(w, 0, /normal reply/).length >= 1),
      "a reply from each worker",
    );
    expect(ppqueue.output.filter((l) => /invalid message/.test(l))).toEqual([]);

    await ppqueue.kill("SIGKILL");
    const from = ppqueue.output.length;
    await ppqueue.restart();
    // The restarted queue registers our workers, from a heartbeat or a fresh READY.
    await untilOutput(
      [ppqueue],
      () => registered(ppqueue, from).size >= 2,
      "2 workers at the restarted queue",
    );
    const served = workers.map((w) => w.output.length);
    for (let i = 7; i <= 14; i++)
      expect((await c.request(String(i))).map(String)).toEqual([String(i)]);
    const repliesAfter = (): number =>
      workers.reduce((sum, w, n) => sum + matching(w, served[n]!, /normal reply/).length, 0);
    await untilOutput(workers, () => repliesAfter() >= 8, "8 replies after the restart");
    expect(ppqueue.output.slice(from).filter((l) => /invalid message/.test(l))).toEqual([]);
    for (const w of workers) {
      expect(w.running).toBe(true);
      expect(w.output.filter((l) => /invalid message from queue/.test(l))).toEqual([]);
    }
  });

  it("Python ppworkers recover from our `paranoid-pirate queue` CLI being SIGKILLed and restarted (strict: they say READY again)", async () => {
    const frontend = await allocateAddress();
    const backend = await allocateAddress();
    const queue = await startProcess({
      ...nodeCommand(cli, ["queue", "--frontend", frontend, "--backend", backend, ...timing()]),
      name: "queue",
    });
    const workers = await Promise.all([pythonWorker(backend), pythonWorker(backend)]);
    await untilOutput([queue], () => matching(queue, 0, /worker ready/).length >= 2, "2 workers");
    const c = client(frontend, 1000, 10);
    expect((await c.request("before")).map(String)).toEqual(["before"]);

    await queue.kill("SIGKILL");
    const from = workers.map((w) => w.handle.output.length);
    await queue.restart();
    // Our strict queue never takes a heartbeat for READY and heartbeats only workers it knows, so
    // each worker, after `liveness` silent polls, opens a new socket and says READY (whether the
    // queue was back by then or not).
    await untilOutput(
      workers.map((w) => w.handle),
      () => workers.every((w, n) => matching(w.handle, from[n]!, /reconnected as/).length > 0),
      "both workers to reconnect",
    );
    for (let i = 1; i <= 4; i++)
      expect((await c.request(`after ${i}`)).map(String)).toEqual([`after ${i}`]);
    expect(
      queue.output.filter(
        (l) => /dropped message/.test(l) && !TIMING_DROPS.test(l.replace(/^.*: /, "")),
      ),
    ).toEqual([]);
  });

  // The reference worker sleeps AFTER each reply (its "work") deaf and mute, so a request that
  // arrives meanwhile waits in its socket. Work longer than liveness x interval: our queue expires
  // it while busy (the Guide's ppqueue never expires busy workers). On waking it sends HEARTBEAT
  // [0x02] first (its heartbeat is overdue), then polls and replies [C][""][body].
  // A shorter interval keeps these tests fast; a longer liveness on the side that must NOT time out
  // leaves room for scheduling delays on a loaded machine.
  const FAST = 100;
  const FAST_QUEUE = { heartbeatIntervalMs: FAST, liveness: 4 }; // expires after 400 ms
  const LONG_WORK_MS = 800;

  it("a Python ppworker expired while busy (work > liveness x interval) still answers, then rejoins with READY (strict queue)", async () => {
    const queue = await ourQueue(FAST_QUEUE);
    const ready = trackReady(queue);
    const worker = await pythonWorker(queue.endpoints.backend, LONG_WORK_MS, FAST, 4);
    await ready.waitFor([worker.key]);
    const expired: boolean[] = [];
    queue.on("workerExpired", ({ worker: key, busy }) => {
      if (key === worker.key) expired.push(busy);
    });
    const c = client(queue.endpoints.frontend, 8 * LONG_WORK_MS, 1);
    expect((await c.request("1")).map(String)).toEqual(["1"]);
    // Dispatched while the worker sleeps after reply 1: it is expired before it can answer.
    expect((await c.request("2")).map(String)).toEqual(["2"]);
    expect(expired).toEqual([true]);
    // Its HEARTBEAT, sent on waking just before the reply, came from a worker the queue forgot.
    expect(queue.stats().dropped["heartbeat from unknown worker"]).toBeGreaterThanOrEqual(1);
    // Unknown to the queue, hearing nothing, the worker gives up on it and says READY again on a
    // new socket; only then is request 3 read from the frontend and served.
    expect((await c.request("3")).map(String)).toEqual(["3"]);
    await worker.handle.waitForLine(/reconnected as .*READY sent/, 1000, { includeSeen: true });
    expect(queue.stats().dropped["reply from idle worker"]).toBeUndefined();
  });

  // Regression: a worker expired while busy used to be re-registered as IDLE by its HEARTBEAT
  // [W][0x02], so the reply [W][C][""]["2"] that follows was dropped as "reply from idle worker".
  // The queue now remembers it was busy and re-registers it busy.
  it("lenient queue: the reply of a Python ppworker re-registered by a heartbeat after a busy expiry reaches the client", async () => {
    const queue = await ourQueue({ ...FAST_QUEUE, unknownWorkerHeartbeat: "register" });
    const ready = trackReady(queue);
    const worker = await pythonWorker(queue.endpoints.backend, LONG_WORK_MS, FAST, 4);
    await ready.waitFor([worker.key]);
    const c = client(queue.endpoints.frontend, LONG_WORK_MS + 500, 1);
    expect((await c.request("1")).map(String)).toEqual(["1"]);
    const reply = c.request("2").catch((error: unknown) => error);
    try {
      expect(await reply).toEqual([Buffer.from("2")]);
    } finally {
      // Shows why it fails while the bug stands: { "reply from idle worker": 1 }.
      if (queue.stats().dropped["reply from idle worker"]) {
        console.info("known bug reproduced:", JSON.stringify(queue.stats().dropped));
      }
    }
  });

  it("our worker CLI with a handler longer than liveness x interval keeps its connection to the Python ppqueue", async () => {
    const frontend = await allocateAddress();
    const backend = await allocateAddress();
    const ppqueue = await startPythonPeer("ppqueue", [
      "--frontend",
      frontend,
      "--backend",
      backend,
      ...timing(FAST, 5),
    ]);
    // Our worker gives the queue 500 ms; its handler takes 800.
    const worker = await ourWorker(backend, "slow", ["--work-ms", String(LONG_WORK_MS)], FAST, 5);
    await untilOutput([ppqueue], () => matching(ppqueue, 0, /worker ready/).length >= 1, "worker");
    const c = client(frontend, 3 * LONG_WORK_MS, 1);
    const from = ppqueue.output.length;
    expect((await c.request("long")).map(String)).toEqual(["long"]);
    // The Guide's queue does not heartbeat a busy worker, but takes the heartbeats our worker sends
    // while its handler runs as "ready" (PP-B1) and heartbeats it again: our worker never loses it.
    await untilOutput(
      [ppqueue],
      () => matching(ppqueue, from, /reply from .* forwarded/).length >= 1,
      "the reply",
    );
    const afterDispatch = ppqueue.output.slice(from);
    const replyAt = afterDispatch.findIndex((l) => /reply from .* forwarded/.test(l));
    expect(afterDispatch.slice(0, replyAt).some((l) => /worker ready .*on HEARTBEAT/.test(l))).toBe(
      true,
    );
    expect(worker.output.filter((l) => /heartbeat failure|invalid message/.test(l))).toEqual([]);
    expect(ppqueue.output.filter((l) => /invalid message|worker expired/.test(l))).toEqual([]);
  });
});
