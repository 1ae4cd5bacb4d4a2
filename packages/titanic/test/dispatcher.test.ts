import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sleep } from "@zmq-patterns/core";
import { allocateAddress } from "@zmq-patterns/core/testing";
import {
  MajordomoBroker,
  MajordomoClient,
  type MajordomoHandler,
  MajordomoWorker,
} from "@zmq-patterns/majordomo";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { newUuid } from "../src/protocol.js";
import {
  TitanicServer,
  type TitanicServerEvents,
  type TitanicServerOptions,
} from "../src/server.js";
import { FileStore, type StoredRequest, type TitanicStore } from "../src/store.js";

const t = (text: string) => Buffer.from(text);

let dir: string;
const cleanup: Array<{ close(): unknown }> = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "titanic-dispatch-"));
});

afterEach(async () => {
  for (const item of cleanup.splice(0).reverse()) await item.close();
  await rm(dir, { recursive: true, force: true });
});

function track<T extends { close(): unknown }>(item: T): T {
  cleanup.push(item);
  return item;
}

type Seen = { event: string; payload: Record<string, unknown> };

/** Records a server's events so a test can wait for one that may already have happened. */
class Recorder {
  readonly seen: Seen[] = [];
  readonly #waiters = new Set<() => void>();

  constructor(server: TitanicServer) {
    const events: Array<keyof TitanicServerEvents> = [
      "stored",
      "closed",
      "dispatched",
      "attemptTimedOut",
      "replied",
      "unavailable",
      "unreachable",
      "storageError",
    ];
    for (const event of events) {
      server.on(event, (payload: Record<string, unknown>) => {
        this.seen.push({ event, payload });
        for (const wake of [...this.#waiters]) wake();
      });
    }
  }

  all(event: string, match: Record<string, unknown> = {}): Record<string, unknown>[] {
    return this.seen
      .filter(
        (e) => e.event === event && Object.entries(match).every(([k, v]) => e.payload[k] === v),
      )
      .map((e) => e.payload);
  }

  count(event: string, match: Record<string, unknown> = {}): number {
    return this.all(event, match).length;
  }

  async waitFor(
    event: string,
    match: Record<string, unknown> = {},
    times = 1,
    timeoutMs = 10_000,
  ): Promise<void> {
    await until(
      () => this.count(event, match) >= times,
      timeoutMs,
      this.#waiters,
      () => `${event} ${JSON.stringify(match)} x${times} (saw ${this.count(event, match)})`,
    );
  }
}

/** Waits until `ready()` holds, re-checked whenever a waiter in `wakers` is called (and every 20 ms). */
async function until(
  ready: () => boolean,
  timeoutMs: number,
  wakers?: Set<() => void>,
  what: () => string = () => "condition",
): Promise<void> {
  if (ready()) return;
  await new Promise<void>((resolve, reject) => {
    const check = () => {
      if (!ready()) return;
      clearTimeout(timer);
      clearInterval(poll);
      wakers?.delete(check);
      resolve();
    };
    const timer = setTimeout(() => {
      clearInterval(poll);
      wakers?.delete(check);
      reject(new Error(`timed out waiting for ${what()}`));
    }, timeoutMs);
    const poll = setInterval(check, 20);
    wakers?.add(check);
  });
}

interface Setup {
  endpoint: string;
  broker: MajordomoBroker;
  server: TitanicServer;
  events: Recorder;
  tsp(service: string, ...frames: string[]): Promise<string[]>;
  submit(service: string, ...body: string[]): Promise<string>;
}

async function startServer(
  broker: string,
  options: TitanicServerOptions = {},
): Promise<TitanicServer> {
  return track(
    await TitanicServer.start({
      broker,
      ...(options.store ? {} : { dir }),
      retryBackoffMs: 50,
      maxRetryBackoffMs: 200,
      ...options,
    }),
  );
}

async function setup(options: TitanicServerOptions = {}): Promise<Setup> {
  const endpoint = await allocateAddress();
  const broker = track(await MajordomoBroker.start({ bind: endpoint }));
  const server = await startServer(endpoint, options);
  const events = new Recorder(server);
  const client = track(new MajordomoClient({ broker: endpoint, timeoutMs: 3000, retries: 1 }));
  const tsp = async (service: string, ...frames: string[]) =>
    (await client.request(service, frames)).map(String);
  return {
    endpoint,
    broker,
    server,
    events,
    tsp,
    submit: async (service, ...body) => {
      const [status, uuid] = await tsp("titanic.request", service, ...body);
      expect(status).toBe("200");
      return uuid as string;
    },
  };
}

/** A worker whose executions are counted, with the number running at once (across `group`). */
async function worker(
  endpoint: string,
  service: string,
  options: { delayMs?: number; handler?: MajordomoHandler; group?: Concurrency } = {},
): Promise<{ executions: Buffer[][] }> {
  const executions: Buffer[][] = [];
  track(
    await MajordomoWorker.start({
      broker: endpoint,
      service,
      handler: async (body, context) => {
        executions.push(body);
        options.group?.enter(service);
        try {
          if (options.delayMs) await sleep(options.delayMs, { signal: context.signal });
          return options.handler ? await options.handler(body, context) : body;
        } finally {
          options.group?.leave(service);
        }
      },
    }),
  );
  return { executions };
}

/** Counts executions running at once, per service and in all, and remembers the peaks. */
class Concurrency {
  readonly running = new Map<string, number>();
  readonly peak = new Map<string, number>();
  total = 0;
  peakTotal = 0;

  enter(service: string): void {
    const now = (this.running.get(service) ?? 0) + 1;
    this.running.set(service, now);
    this.peak.set(service, Math.max(this.peak.get(service) ?? 0, now));
    this.total += 1;
    this.peakTotal = Math.max(this.peakTotal, this.total);
  }

  leave(service: string): void {
    this.running.set(service, (this.running.get(service) ?? 1) - 1);
    this.total -= 1;
  }
}

/** A FileStore whose operations can be made to fail. */
class FailingStore implements TitanicStore {
  readonly inner = new FileStore({ dir });
  readonly failing = new Set<keyof TitanicStore>();
  #check(operation: keyof TitanicStore): void {
    if (this.failing.has(operation)) throw new Error(`disk on fire (${operation})`);
  }
  open = () => this.inner.open();
  close = () => this.inner.close();
  putRequest = async (request: StoredRequest) => this.inner.putRequest(request);
  getRequest = async (uuid: string) => this.inner.getRequest(uuid);
  putReply = async (uuid: string, body: readonly Buffer[]) => {
    this.#check("putReply");
    return this.inner.putReply(uuid, body);
  };
  getReply = async (uuid: string) => this.inner.getReply(uuid);
  state = async (uuid: string) => this.inner.state(uuid);
  remove = async (uuid: string) => this.inner.remove(uuid);
  pending = async () => this.inner.pending();
  collect = async (policy: { maxAgeMs?: number; maxFinished?: number }) =>
    this.inner.collect(policy);
}

describe("Titanic dispatcher", () => {
  it("TI-B3: a service slower than the attempt timeout completes, and runs the request at most once per send", async () => {
    // Sends at 0, 150 (100 ms timeout + 50 ms back-off) and 450 ms (200 + 100); the next would be
    // at 1,050 ms. The reference resent every second with a fixed 1 s timeout: a service slower
    // than that never completed and ran the request once per pass, for ever.
    const s = await setup({ attemptTimeoutMs: 100, retryBackoffMs: 50, maxRetryBackoffMs: 1000 });
    const { executions } = await worker(s.endpoint, "slow", { delayMs: 600 });
    const uuid = await s.submit("slow", "take your time");
    await s.events.waitFor("replied", { uuid });
    const [replied] = s.events.all("replied", { uuid });
    expect(replied).toMatchObject({ attempt: 1, late: true });
    const sends = s.events.count("dispatched", { uuid });
    expect(replied?.attempts).toBe(sends);
    expect(sends).toBeGreaterThanOrEqual(2);
    expect(sends).toBeLessThanOrEqual(3);
    expect(await s.tsp("titanic.reply", uuid)).toEqual(["200", "take your time"]);
    // The copies already sent still run (MDP cannot take a request back), and that is all.
    await until(() => executions.length >= sends, 5000);
    await sleep(700);
    expect(executions.length).toBe(sends);
    expect(s.events.count("dispatched", { uuid })).toBe(sends);
    expect(s.server.stats()).toMatchObject({ pending: 0, sockets: 0, lateReplies: 1 });
    // The attempt timeout doubled with each send.
    expect(s.events.all("dispatched", { uuid }).map((e) => e.timeoutMs)).toEqual(
      [100, 200, 400].slice(0, sends),
    );
  });

  it("TI-B3: a reply that comes after its attempt timed out is used (first reply wins); the request runs once", async () => {
    const s = await setup({ attemptTimeoutMs: 150, retryBackoffMs: 2000, maxRetryBackoffMs: 2000 });
    const { executions } = await worker(s.endpoint, "sluggish", { delayMs: 400 });
    const uuid = await s.submit("sluggish", "late but fine");
    await s.events.waitFor("attemptTimedOut", { uuid });
    expect(s.events.all("attemptTimedOut", { uuid })[0]).toMatchObject({
      attempt: 1,
      timeoutMs: 150,
      retryInMs: 2000,
    });
    await s.events.waitFor("replied", { uuid });
    expect(s.events.all("replied", { uuid })[0]).toMatchObject({
      attempt: 1,
      attempts: 1,
      late: true,
    });
    expect(executions).toHaveLength(1);
    expect(s.server.stats()).toMatchObject({ attempts: 1, timeouts: 1, lateReplies: 1 });
  });

  it("TI-B3: no head-of-line blocking: a busy slow service does not hold up another service", async () => {
    const s = await setup({ concurrency: 2, perServiceConcurrency: 1 });
    await worker(s.endpoint, "slow", { delayMs: 400 });
    await worker(s.endpoint, "fast");
    const slow = [
      await s.submit("slow", "1"),
      await s.submit("slow", "2"),
      await s.submit("slow", "3"),
    ];
    const fast = await s.submit("fast", "me first");
    await s.events.waitFor("replied", { uuid: fast });
    expect(s.events.count("replied", { service: "slow" })).toBe(0);
    expect(s.server.stats().services.slow).toMatchObject({ inFlight: 1, queued: 2 });
    for (const uuid of slow) await s.events.waitFor("replied", { uuid });
    // FIFO within a service.
    expect(s.events.all("replied", { service: "slow" }).map((e) => e.uuid)).toEqual(slow);
  });

  it("TI-B3: at most perServiceConcurrency requests of a service, and concurrency in all, run at once", async () => {
    const s = await setup({ concurrency: 3, perServiceConcurrency: 2 });
    // Everything is stored before the workers come, so that the limits, not the pace of
    // submission, decide what runs at once.
    const uuids: string[] = [];
    for (let i = 0; i < 6; i++) {
      uuids.push(await s.submit("a", `a${i}`), await s.submit("b", `b${i}`));
    }
    const group = new Concurrency();
    for (const service of ["a", "b"]) {
      for (let i = 0; i < 3; i++) await worker(s.endpoint, service, { delayMs: 100, group });
    }
    for (const uuid of uuids) await s.events.waitFor("replied", { uuid });
    expect(group.peak.get("a")).toBe(2);
    expect(group.peak.get("b")).toBeLessThanOrEqual(2);
    expect(group.peakTotal).toBe(3);
    expect(s.server.stats()).toMatchObject({ completed: 12, attempts: 12, inFlight: 0 });
  });

  it("TSP-R5/TI-B8: nothing is sent while the broker says a service has no workers; it is asked again with doubling back-off", async () => {
    const s = await setup({ retryBackoffMs: 40, maxRetryBackoffMs: 160 });
    const uuid = await s.submit("absent", "hello?");
    await s.events.waitFor("unavailable", { service: "absent" }, 4);
    expect(
      s.events
        .all("unavailable", { service: "absent" })
        .map((e) => e.retryInMs)
        .slice(0, 4),
    ).toEqual([40, 80, 160, 160]);
    expect(s.events.count("dispatched")).toBe(0);
    expect(s.broker.stats().services.absent).toBeUndefined();
    await worker(s.endpoint, "absent");
    await s.events.waitFor("replied", { uuid });
    expect(s.events.all("replied", { uuid })[0]).toMatchObject({ attempts: 1, late: false });
  });

  it("mmiCheck: false sends at once and lets the broker queue the request until a worker comes", async () => {
    const s = await setup({ mmiCheck: false });
    const uuid = await s.submit("queued", "in the broker");
    await s.events.waitFor("dispatched", { uuid });
    await until(() => s.broker.stats().services.queued?.queued === 1, 5000);
    await worker(s.endpoint, "queued");
    await s.events.waitFor("replied", { uuid });
    expect(s.events.count("unavailable")).toBe(0);
  });

  it("TI-5: on start, stored requests without a reply are resumed oldest first", async () => {
    const endpoint = await allocateAddress();
    track(await MajordomoBroker.start({ bind: endpoint }));
    const store = new FileStore({ dir });
    await store.open();
    const now = Date.now();
    const requests = [
      { label: "third", storedAt: now - 1000 },
      { label: "first", storedAt: now - 3000 },
      { label: "second", storedAt: now - 2000 },
    ];
    for (const { label, storedAt } of requests) {
      await store.putRequest({ uuid: newUuid(), service: "ordered", body: [t(label)], storedAt });
    }
    const done = { uuid: newUuid(), service: "ordered", body: [t("done")], storedAt: now - 4000 };
    await store.putRequest(done);
    await store.putReply(done.uuid, [t("already")]);
    const { executions } = await worker(endpoint, "ordered");
    const server = await startServer(endpoint, { perServiceConcurrency: 1 });
    const events = new Recorder(server);
    expect(server.resumed).toBe(3);
    await events.waitFor("replied", { service: "ordered" }, 3);
    expect(executions.map(String)).toEqual(["first", "second", "third"]);
  });

  it("a reply whose storage fails is kept and stored again with back-off, not run again", async () => {
    const store = new FailingStore();
    const s = await setup({ store });
    const { executions } = await worker(s.endpoint, "echo");
    store.failing.add("putReply");
    const uuid = await s.submit("echo", "precious");
    await s.events.waitFor("storageError", { operation: "putReply", uuid }, 2);
    expect(await s.tsp("titanic.reply", uuid)).toEqual(["300"]);
    store.failing.clear();
    await s.events.waitFor("replied", { uuid });
    expect(await s.tsp("titanic.reply", uuid)).toEqual(["200", "precious"]);
    expect(executions).toHaveLength(1);
    expect(s.server.stats().storageErrors).toBeGreaterThanOrEqual(2);
  });

  it("TSP-R4: closing a request in flight stops it: its late reply is not stored", async () => {
    const s = await setup();
    const { executions } = await worker(s.endpoint, "busy", { delayMs: 300 });
    const forwarded: string[] = [];
    s.broker.on("replyForwarded", ({ service }) => forwarded.push(service));
    const uuid = await s.submit("busy", "never mind");
    await s.events.waitFor("dispatched", { uuid });
    expect(await s.tsp("titanic.close", uuid)).toEqual(["200"]);
    expect(s.events.all("closed", { uuid })).toEqual([{ uuid, wasPending: true }]);
    await until(() => forwarded.includes("busy"), 5000);
    await sleep(100);
    expect(executions).toHaveLength(1);
    expect(await readdir(dir)).toEqual([]);
    expect(await s.tsp("titanic.reply", uuid)).toEqual(["400"]);
    expect(s.server.stats()).toMatchObject({ pending: 0, completed: 0, sockets: 0 });
  });

  it("each send has its own socket, and at most maxSocketsPerRequest stay open per request", async () => {
    const s = await setup({
      attemptTimeoutMs: 30,
      maxAttemptTimeoutMs: 30,
      retryBackoffMs: 10,
      maxRetryBackoffMs: 10,
      maxSocketsPerRequest: 2,
    });
    // A worker that never answers.
    await worker(s.endpoint, "black-hole", {
      handler: (_body, { signal }) =>
        new Promise((_resolve, reject) =>
          signal.addEventListener("abort", () => reject(signal.reason)),
        ),
    });
    const uuid = await s.submit("black-hole", "anyone?");
    await s.events.waitFor("dispatched", { uuid }, 6);
    expect(s.server.stats().sockets).toBe(2);
    expect(s.server.stats()).toMatchObject({ pending: 1, inFlight: 1 });
    expect(await s.tsp("titanic.close", uuid)).toEqual(["200"]);
    expect(s.server.stats()).toMatchObject({ pending: 0, inFlight: 0, sockets: 0 });
  });

  it("a broker that does not answer pauses dispatch (nothing piles up) until it is back", async () => {
    const endpoint = await allocateAddress();
    const store = new FileStore({ dir });
    await store.open();
    const request = {
      uuid: newUuid(),
      service: "echo",
      body: [t("patience")],
      storedAt: Date.now(),
    };
    await store.putRequest(request);
    const server = await startServer(endpoint, {
      attemptTimeoutMs: 200,
      retryBackoffMs: 50,
      maxRetryBackoffMs: 100,
    });
    const events = new Recorder(server);
    await events.waitFor("unreachable", {}, 2);
    expect(events.count("dispatched")).toBe(0);
    expect(server.stats()).toMatchObject({ pending: 1, sockets: 0 });
    track(await MajordomoBroker.start({ bind: endpoint }));
    await worker(endpoint, "echo");
    await events.waitFor("replied", { uuid: request.uuid });
    expect(events.all("replied")[0]).toMatchObject({ attempts: 1 });
  });
});
