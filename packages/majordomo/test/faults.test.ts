// Majordomo under real failures: brokers and workers as separate processes, killed with SIGKILL
// (or frozen with SIGSTOP), heartbeats at 200 ms so every failure is detected in well under a
// second. Every wait is bounded and driven by an event or a log line, never by a fixed sleep.
import { join } from "node:path";
import {
  allocateAddress,
  type ChildProcessHandle,
  killAllProcesses,
  nodeCommand,
  type OutputLine,
  startProcess,
  Tap,
} from "@zmq-patterns/core/testing";
import { afterEach, describe, expect, it } from "vitest";
import {
  MajordomoAsyncClient,
  MajordomoBroker,
  type MajordomoBrokerEvents,
  type MajordomoBrokerOptions,
  MajordomoClient,
  MDPW01,
  MDPW01_COMMANDS,
  MMI_CODES,
  mmiService,
} from "../src/index.js";

const cli = join(import.meta.dirname, "../src/cli.ts");
const INTERVAL = 200;
const LIVENESS = 3;
/** A dead worker must be gone within liveness x interval, plus one interval for the timer tick. */
const EXPIRY_BOUND_MS = (LIVENESS + 1) * INTERVAL;
/** Scheduling slack on top of a bound (timers, process signals, a loaded machine). */
const SLACK_MS = 150;

const cleanup: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const item of cleanup.splice(0).reverse()) await item.close();
  await killAllProcesses();
});

// ------------------------------------------------------------------------------------------------
// Helpers

function workerArgs(
  broker: string,
  extra: readonly string[] = [],
  intervalMs = INTERVAL,
): string[] {
  return [
    "worker",
    "--connect",
    broker,
    "--service",
    "echo",
    "--heartbeat-interval",
    String(intervalMs),
    "--liveness",
    String(LIVENESS),
    "--reconnect",
    "200",
    ...extra,
  ];
}

function startWorker(
  broker: string,
  name: string,
  extra: readonly string[] = [],
): Promise<ChildProcessHandle> {
  return startProcess({ ...nodeCommand(cli, workerArgs(broker, extra)), name });
}

async function startBroker(options: MajordomoBrokerOptions = {}): Promise<MajordomoBroker> {
  const broker = await MajordomoBroker.start({
    bind: await allocateAddress(),
    heartbeatIntervalMs: INTERVAL,
    liveness: LIVENESS,
    ...options,
  });
  cleanup.push(broker);
  return broker;
}

function endpointOf(broker: MajordomoBroker): string {
  const endpoint = broker.endpoints[0];
  if (endpoint === undefined) throw new Error("the broker has no endpoint");
  return endpoint;
}

/** The next `event` of the broker that passes `test`, rejected after `timeoutMs`. */
function nextEvent<E extends keyof MajordomoBrokerEvents>(
  broker: MajordomoBroker,
  event: E,
  test: (payload: MajordomoBrokerEvents[E][0]) => boolean = () => true,
  timeoutMs = 5000,
): Promise<MajordomoBrokerEvents[E][0] & { at: number }> {
  return new Promise((resolve, reject) => {
    const listener = (payload: MajordomoBrokerEvents[E][0]) => {
      if (!test(payload)) return;
      done();
      resolve({ ...payload, at: performance.now() });
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`no ${String(event)} event within ${timeoutMs} ms`));
    }, timeoutMs);
    const done = () => {
      clearTimeout(timer);
      // biome-ignore lint/suspicious/noExplicitAny: the listener matches the event's payload.
      broker.off(event, listener as any);
    };
    // biome-ignore lint/suspicious/noExplicitAny: the listener matches the event's payload.
    broker.on(event, listener as any);
  });
}

/** Starts a worker process and resolves with it and its identity once the broker registered it. */
async function registeredWorker(
  broker: MajordomoBroker,
  name: string,
  extra: readonly string[] = [],
): Promise<{ process: ChildProcessHandle; key: string }> {
  const ready = nextEvent(broker, "workerReady");
  const process = await startWorker(endpointOf(broker), name, extra);
  return { process, key: (await ready).worker };
}

/**
 * Counts the lines a process prints (across restarts) so a test can wait for the n-th match of a
 * pattern from a given moment on; `waitForLine` only ever sees the first.
 */
class LineCounter {
  readonly #listeners = new Set<(text: string) => void>();
  readonly onOutput = (line: OutputLine): void => {
    for (const listener of [...this.#listeners]) listener(line.text);
  };

  /** Resolves with the next `count` lines matching `pattern` printed from now on. */
  next(pattern: RegExp, count: number, timeoutMs = 5000): Promise<string[]> {
    const seen: string[] = [];
    return new Promise((resolve, reject) => {
      const listener = (text: string) => {
        if (!pattern.test(text)) return;
        seen.push(text);
        if (seen.length < count) return;
        done();
        resolve(seen);
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new Error(`${seen.length} of ${count} lines matching ${pattern} in ${timeoutMs} ms`),
        );
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.#listeners.delete(listener);
      };
      this.#listeners.add(listener);
    });
  }
}

const text = (frames: Buffer[]) => frames.map(String);

// ------------------------------------------------------------------------------------------------

describe("Majordomo under real failures", () => {
  it("MDP-R2/MDC-1: a worker SIGKILLed while busy on a non-idempotent service: the broker drops the request, removes the worker within liveness x interval (MDB-B2), and the client's retry is answered by another worker", async () => {
    const broker = await startBroker();
    const victim = await registeredWorker(broker, "victim", ["--work-ms", "10000"]);
    const client = new MajordomoClient({ broker: endpointOf(broker), timeoutMs: 1000, retries: 4 });
    cleanup.push(client);

    const dispatched = nextEvent(broker, "requestDispatched");
    const reply = client.request("echo", "survives a dead worker");
    // The request reaches the only idle worker; the survivor comes up while the victim works.
    expect((await dispatched).worker).toBe(victim.key);
    const redispatched = nextEvent(
      broker,
      "requestDispatched",
      ({ worker }) => worker !== victim.key,
    );
    const survivorReady = nextEvent(broker, "workerReady");
    const survivor = startWorker(endpointOf(broker), "survivor");

    const removed = nextEvent(broker, "workerDisconnected", ({ worker }) => worker === victim.key);
    const dropped = nextEvent(broker, "requestDropped");
    const killedAt = performance.now();
    await victim.process.kill("SIGKILL");
    const gone = await removed;
    // A send to the dead peer fails at the next heartbeat ("unroutable"); silence expires it at the latest.
    expect(["unroutable", "expired"]).toContain(gone.reason);
    expect(gone.at - killedAt).toBeLessThanOrEqual(EXPIRY_BOUND_MS + SLACK_MS);
    expect(await dropped).toMatchObject({ service: "echo", reason: "worker lost while busy" });

    await survivor;
    const survivorKey = (await survivorReady).worker;
    expect(text(await reply)).toEqual(["survives a dead worker"]);
    expect((await redispatched).worker).toBe(survivorKey);
    expect(client.stats().retries).toBeGreaterThanOrEqual(1);
    expect(broker.stats()).toMatchObject({ workers: 1, requestsRequeued: 0 });
  });

  it("MDB-B9: a worker SIGKILLed while busy on an idempotent service: the broker queues the request again and another worker answers the client's only attempt", async () => {
    const broker = await startBroker({ idempotent: (service) => service === "echo" });
    const victim = await registeredWorker(broker, "victim", ["--work-ms", "10000"]);
    // One attempt only: the answer cannot come from a client retry.
    const client = new MajordomoClient({ broker: endpointOf(broker), timeoutMs: 8000, retries: 1 });
    cleanup.push(client);

    const dispatched = nextEvent(broker, "requestDispatched");
    const reply = client.request("echo", "queued again");
    expect((await dispatched).worker).toBe(victim.key);
    const redispatched = nextEvent(
      broker,
      "requestDispatched",
      ({ worker }) => worker !== victim.key,
    );
    const survivorReady = nextEvent(broker, "workerReady");
    const survivor = startWorker(endpointOf(broker), "survivor");

    const removed = nextEvent(broker, "workerDisconnected", ({ worker }) => worker === victim.key);
    const requeued = nextEvent(broker, "requestRequeued");
    const killedAt = performance.now();
    await victim.process.kill("SIGKILL");
    const gone = await removed;
    expect(["unroutable", "expired"]).toContain(gone.reason);
    expect(gone.at - killedAt).toBeLessThanOrEqual(EXPIRY_BOUND_MS + SLACK_MS);
    expect((await requeued).service).toBe("echo");

    await survivor;
    const survivorKey = (await survivorReady).worker;
    expect(text(await reply)).toEqual(["queued again"]);
    expect((await redispatched).worker).toBe(survivorKey);
    expect(client.stats()).toMatchObject({ retries: 0, replies: 1 });
    expect(broker.stats()).toMatchObject({ requestsRequeued: 1, workers: 1 });
  });

  it("MDB-B2/MMI-B1: a busy worker frozen with SIGSTOP (connection still open) is expired by heartbeat silence, its request is queued again, and MMI no longer counts it", async () => {
    const broker = await startBroker({ idempotent: () => true });
    const victim = await registeredWorker(broker, "frozen", ["--work-ms", "10000"]);
    const client = new MajordomoClient({ broker: endpointOf(broker), timeoutMs: 1000, retries: 1 });
    cleanup.push(client);
    const async = new MajordomoAsyncClient({ broker: endpointOf(broker) });
    cleanup.push(async);

    const dispatched = nextEvent(broker, "requestDispatched");
    await async.send("echo", "frozen request");
    expect((await dispatched).worker).toBe(victim.key);
    const expired = nextEvent(broker, "workerExpired", ({ worker }) => worker === victim.key);
    const requeued = nextEvent(broker, "requestRequeued");
    const frozenAt = performance.now();
    process.kill(victim.process.pid, "SIGSTOP"); // afterEach's SIGKILL ends it
    const gone = await expired;
    // No send fails here: only the silence can tell, so this is the expiry path proper.
    expect(gone.busy).toBe(true);
    expect(gone.at - frozenAt).toBeGreaterThanOrEqual((LIVENESS - 1) * INTERVAL);
    expect(gone.at - frozenAt).toBeLessThanOrEqual(EXPIRY_BOUND_MS + SLACK_MS);
    await requeued;
    expect(await mmiService(client, "echo")).toBe(MMI_CODES.notFound);

    // A fresh worker picks the queued request up and the async client gets its reply.
    await startWorker(endpointOf(broker), "fresh");
    const answer = await async.receive({ timeoutMs: 5000 });
    expect(text(answer.body)).toEqual(["frozen request"]);
  });

  it("MDB-6/MDP-R11: the broker SIGKILLed and restarted on the same endpoint: workers register again by themselves, and sync and async clients complete", async () => {
    const endpoint = await allocateAddress();
    const brokerLines = new LineCounter();
    const brokerArgs = [
      "broker",
      "--bind",
      endpoint,
      "--heartbeat-interval",
      String(INTERVAL),
      "--liveness",
      String(LIVENESS),
    ];
    const broker = await startProcess({
      ...nodeCommand(cli, brokerArgs),
      name: "broker",
      onOutput: brokerLines.onOutput,
    });
    const registered = brokerLines.next(/ready for "echo"/, 2);
    const workers = await Promise.all([
      startWorker(endpoint, "w1", ["--work-ms", "20"]),
      startWorker(endpoint, "w2", ["--work-ms", "20"]),
    ]);
    await registered;

    const client = new MajordomoClient({ broker: endpoint, timeoutMs: 500, retries: 30 });
    cleanup.push(client);
    const async = new MajordomoAsyncClient({ broker: endpoint });
    cleanup.push(async);
    expect(text(await client.request("echo", "before"))).toEqual(["before"]);
    await async.send("echo", "async before");
    expect(text((await async.receive({ timeoutMs: 5000 })).body)).toEqual(["async before"]);

    await broker.kill("SIGKILL");
    // Either path is strict MDP: heartbeats to the new broker get DISCONNECT (MDB-6, then the
    // worker registers again at once, MDP-R11), or the worker's liveness runs out first (MDW-1).
    const leaving = workers.map((w) =>
      w.waitForLine(/(disconnect|heartbeat failure): registering again in \d+ ms/, 10_000),
    );
    // A request made while the broker is down is retried until the new one can serve it.
    const during = client.request("echo", "during the restart");
    const reregistered = brokerLines.next(/ready for "echo"/, 2, 10_000);
    await broker.restart();
    const reasons = await Promise.all(leaving);
    expect(reasons).toHaveLength(2);
    await reregistered;
    for (const worker of workers) {
      await worker.waitForLine(/registered again with/, 5000, { includeSeen: true });
    }

    expect(text(await during)).toEqual(["during the restart"]);
    expect(text(await client.request("echo", "after"))).toEqual(["after"]);
    expect(await mmiService(client, "echo")).toBe(MMI_CODES.found);
    // The async client's DEALER reconnected on its own: new requests work (in-flight ones would
    // have been lost, MDA-2). A client created after the restart works too.
    await async.send("echo", "async after");
    expect(text((await async.receive({ timeoutMs: 5000 })).body)).toEqual(["async after"]);
    const fresh = new MajordomoAsyncClient({ broker: endpoint });
    cleanup.push(fresh);
    for (let i = 0; i < 4; i++) await fresh.send("echo", `fresh ${i}`);
    const replies: string[] = [];
    for (let i = 0; i < 4; i++)
      replies.push(...text((await fresh.receive({ timeoutMs: 5000 })).body));
    // MDA-1: replies come in arrival order, which two workers may reorder.
    expect(replies.sort()).toEqual(["fresh 0", "fresh 1", "fresh 2", "fresh 3"]);
  });

  it("MDB-5/MMI-R2: idle workers SIGKILLed are removed within liveness x interval; MMI answers 200 while one is left, then 404", async () => {
    const broker = await startBroker();
    const registered = Promise.all([
      nextEvent(broker, "workerReady"),
      nextEvent(broker, "workerReady", () => broker.stats().workers === 2),
    ]);
    const [w1, w2] = await Promise.all([
      startWorker(endpointOf(broker), "w1"),
      startWorker(endpointOf(broker), "w2"),
    ]);
    await registered;
    const client = new MajordomoClient({ broker: endpointOf(broker), timeoutMs: 1000, retries: 3 });
    cleanup.push(client);
    expect(await mmiService(client, "echo")).toBe(MMI_CODES.found);

    for (const [victim, left] of [
      [w1, 1],
      [w2, 0],
    ] as const) {
      const removed = nextEvent(broker, "workerDisconnected");
      const killedAt = performance.now();
      await victim.kill("SIGKILL");
      const gone = await removed;
      expect(["unroutable", "expired"]).toContain(gone.reason);
      expect(gone.at - killedAt).toBeLessThanOrEqual(EXPIRY_BOUND_MS + SLACK_MS);
      expect(broker.stats().workers).toBe(left);
      if (left > 0) {
        expect(await mmiService(client, "echo")).toBe(MMI_CODES.found);
        expect(text(await client.request("echo", "still served"))).toEqual(["still served"]);
      }
    }
    expect(await mmiService(client, "echo")).toBe(MMI_CODES.notFound);
    // The service had no workers and no queued requests left, so the broker forgot it.
    expect(broker.stats().services).not.toHaveProperty("echo");
  });

  it("MDP-R14: worker heartbeat 300 ms against broker 200 ms x liveness 3 is within tolerance: no false expiry while requests flow", async () => {
    const broker = await startBroker();
    const removals: string[] = [];
    broker.on("workerDisconnected", ({ reason }) => removals.push(reason));
    const registered = Promise.all([
      nextEvent(broker, "workerReady"),
      nextEvent(broker, "workerReady", () => broker.stats().workers === 2),
    ]);
    const args = workerArgs(endpointOf(broker), ["--work-ms", "30"], 300);
    const workers = await Promise.all([
      startProcess({ ...nodeCommand(cli, args), name: "w1" }),
      startProcess({ ...nodeCommand(cli, args), name: "w2" }),
    ]);
    await registered;
    const served = new Set<string>();
    broker.on("requestDispatched", ({ worker }) => served.add(worker));

    // Idle first: only heartbeats, at mismatched rates, keep the workers registered.
    await new Promise((resolve) => setTimeout(resolve, 1200));
    expect(removals).toEqual([]);

    const client = new MajordomoClient({ broker: endpointOf(broker), timeoutMs: 1000, retries: 1 });
    cleanup.push(client);
    const until = performance.now() + 1500;
    let n = 0;
    while (performance.now() < until) {
      expect(text(await client.request("echo", `r${n}`))).toEqual([`r${n}`]);
      n += 1;
      // Short pauses only: see the next test for what a long one after a REPLY can do.
      if (n % 10 === 0) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(n).toBeGreaterThan(10);
    expect(removals).toEqual([]);
    expect(broker.stats()).toMatchObject({ workers: 2, workersExpired: 0 });
    expect(served.size).toBe(2);
    for (const worker of workers) expect(worker.output.join("\n")).not.toMatch(/registering again/);
  });

  // Regression: the worker used to skip a heartbeat tick when another command had left less
  // than one interval before it; with ticks on a fixed cadence, a REPLY just after a tick was
  // followed by about two intervals of silence, enough for a broker to expire a live worker.
  it("MDP-R14 regression: after a REPLY a worker is silent for at most one heartbeat interval", async () => {
    const tap = await Tap.router();
    cleanup.push(tap);
    const WORKER_INTERVAL = 300;
    await startProcess({
      ...nodeCommand(cli, workerArgs(tap.endpoint, [], WORKER_INTERVAL)),
      name: "worker",
    });
    const ready = await tap.receive(5000);
    const id = ready[0] as Buffer;
    const command = (frames: Buffer[]) => frames[3]?.[0];
    // Play the broker: heartbeat every 200 ms so the worker never reconnects.
    const beat = setInterval(() => {
      tap.send([id, "", MDPW01, Buffer.from([MDPW01_COMMANDS.heartbeat])]).catch(() => {});
    }, 200);
    cleanup.push({ close: () => clearInterval(beat) });

    let worst = 0;
    for (let round = 0; round < 2; round++) {
      // A HEARTBEAT means the worker's timer just ticked: a REQUEST now is answered at once.
      while (command(await tap.receive(2000)) !== MDPW01_COMMANDS.heartbeat);
      await tap.send([id, "", MDPW01, Buffer.from([MDPW01_COMMANDS.request]), "C", "", "x"]);
      expect(command(await tap.receive(2000))).toBe(MDPW01_COMMANDS.reply);
      const repliedAt = performance.now();
      await tap.receive(2000); // the next sign of life
      worst = Math.max(worst, performance.now() - repliedAt);
    }
    expect(worst).toBeLessThanOrEqual(WORKER_INTERVAL + 100);
  });
});
