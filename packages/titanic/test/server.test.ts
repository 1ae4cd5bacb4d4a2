import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { allocateAddress } from "@zmq-patterns/core/testing";
import {
  MajordomoBroker,
  MajordomoClient,
  type MajordomoHandler,
  MajordomoWorker,
  mmiService,
} from "@zmq-patterns/majordomo";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  TitanicServer,
  type TitanicServerEvents,
  type TitanicServerOptions,
} from "../src/server.js";
import { FileStore, type StoredRequest, type TitanicStore } from "../src/store.js";

const t = (text: string) => Buffer.from(text);
const UUID = /^[0-9A-F]{32}$/;

let root: string;
let dir: string;
const cleanup: Array<{ close(): unknown }> = [];

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "titanic-server-"));
  dir = join(root, "store");
});

afterEach(async () => {
  for (const item of cleanup.splice(0).reverse()) await item.close();
  await rm(root, { recursive: true, force: true });
});

function track<T extends { close(): unknown }>(item: T): T {
  cleanup.push(item);
  return item;
}

/** Records a server's events so a test can wait for one that may already have happened. */
class Recorder {
  readonly seen: Array<{ event: string; payload: Record<string, unknown> }> = [];
  readonly #waiters = new Set<() => void>();

  constructor(server: TitanicServer) {
    const events: Array<keyof TitanicServerEvents> = [
      "stored",
      "rejected",
      "closed",
      "dispatched",
      "attemptTimedOut",
      "replied",
      "unavailable",
      "unreachable",
      "storageError",
      "collected",
    ];
    for (const event of events) {
      server.on(event, (payload: Record<string, unknown>) => {
        this.seen.push({ event, payload });
        for (const wake of [...this.#waiters]) wake();
      });
    }
  }

  count(event: string, match: Record<string, unknown> = {}): number {
    return this.seen.filter(
      (e) => e.event === event && Object.entries(match).every(([k, v]) => e.payload[k] === v),
    ).length;
  }

  /** Resolves once `event` (with fields matching `match`) was seen `times` times. */
  async waitFor(
    event: string,
    match: Record<string, unknown> = {},
    times = 1,
    timeoutMs = 8000,
  ): Promise<void> {
    if (this.count(event, match) >= times) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`timed out waiting for ${event} ${JSON.stringify(match)} x${times}`));
      }, timeoutMs);
      const check = () => {
        if (this.count(event, match) < times) return;
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve();
      };
      this.#waiters.add(check);
    });
  }
}

interface Setup {
  endpoint: string;
  broker: MajordomoBroker;
  server: TitanicServer;
  events: Recorder;
  /** Sends a raw TSP request through the broker and returns the reply body as text. */
  tsp(service: string, ...frames: Array<string | Buffer>): Promise<string[]>;
  /** Sends a raw TSP request and returns the reply body frames. */
  raw(service: string, ...frames: Array<string | Buffer>): Promise<Buffer[]>;
  /** Starts a worker for a service; counts its executions. */
  worker(service: string, handler?: MajordomoHandler): Promise<{ executions: Buffer[][] }>;
}

async function setup(options: TitanicServerOptions = {}, endpoint?: string): Promise<Setup> {
  const bind = endpoint ?? (await allocateAddress());
  const broker = track(await MajordomoBroker.start({ bind }));
  const server = await startServer(bind, options);
  const events = new Recorder(server);
  const client = track(new MajordomoClient({ broker: bind, timeoutMs: 3000, retries: 1 }));
  const raw = (service: string, ...frames: Array<string | Buffer>) =>
    client.request(service, frames);
  return {
    endpoint: bind,
    broker,
    server,
    events,
    raw,
    tsp: async (service, ...frames) => (await raw(service, ...frames)).map(String),
    worker: async (service, handler = (body) => body) => {
      const executions: Buffer[][] = [];
      track(
        await MajordomoWorker.start({
          broker: bind,
          service,
          handler: (body, context) => {
            executions.push(body);
            return handler(body, context);
          },
        }),
      );
      return { executions };
    },
  };
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

/** Submits a request through the raw TSP interface and returns its UUID. */
async function submit(s: Setup, service: string, ...body: string[]): Promise<string> {
  const [status, uuid, ...rest] = await s.tsp("titanic.request", service, ...body);
  expect({ status, rest }).toEqual({ status: "200", rest: [] });
  return uuid as string;
}

async function files(): Promise<string[]> {
  return (await readdir(dir)).sort();
}

/** A store that fails the operations a test names, and otherwise is a FileStore. */
class FailingStore implements TitanicStore {
  readonly inner = new FileStore({ dir });
  readonly failing = new Set<keyof TitanicStore>();

  #check(operation: keyof TitanicStore): void {
    if (this.failing.has(operation)) throw new Error(`disk on fire (${operation})`);
  }

  open = () => this.inner.open();
  close = () => this.inner.close();
  putRequest = async (request: StoredRequest) => {
    this.#check("putRequest");
    return this.inner.putRequest(request);
  };
  getRequest = async (uuid: string) => {
    this.#check("getRequest");
    return this.inner.getRequest(uuid);
  };
  putReply = async (uuid: string, body: readonly Buffer[]) => {
    this.#check("putReply");
    return this.inner.putReply(uuid, body);
  };
  getReply = async (uuid: string) => {
    this.#check("getReply");
    return this.inner.getReply(uuid);
  };
  state = async (uuid: string) => {
    this.#check("state");
    return this.inner.state(uuid);
  };
  remove = async (uuid: string) => {
    this.#check("remove");
    return this.inner.remove(uuid);
  };
  pending = async () => {
    this.#check("pending");
    return this.inner.pending();
  };
  collect = async (policy: { maxAgeMs?: number; maxFinished?: number }) => {
    this.#check("collect");
    return this.inner.collect(policy);
  };
}

describe("TitanicServer: the three TSP services (RFC 9, golden bodies)", () => {
  it("TSP-R1: registers titanic.request, titanic.reply and titanic.close with the broker", async () => {
    const s = await setup();
    const mmi = track(new MajordomoClient({ broker: s.endpoint, timeoutMs: 2000 }));
    for (const service of ["titanic.request", "titanic.reply", "titanic.close"]) {
      await expect.poll(() => mmiService(mmi, service), { timeout: 5000 }).toBe("200");
    }
  });

  it("TSP 7.4/TI-B1: titanic.request [service][body...] -> [200][UUID], 32 uppercase hex, on disk before the answer", async () => {
    const s = await setup();
    const body = [t("one"), Buffer.alloc(0), Buffer.from([0, 255, 10])];
    const [status, uuid, ...rest] = await s.raw("titanic.request", "nobody-home", ...body);
    expect(String(status)).toBe("200");
    expect(rest).toEqual([]);
    expect(String(uuid)).toMatch(UUID);
    const id = String(uuid);
    // The answer came after the request was stored: it is on disk now, body byte for byte.
    expect(await files()).toContain(`${id}.req`);
    const stored = await new FileStore({ dir }).getRequest(id);
    expect(stored).toMatchObject({ uuid: id, service: "nobody-home", body });
    expect(s.events.count("stored", { uuid: id, service: "nobody-home" })).toBe(1);
    // Every request gets its own UUID.
    expect(await submit(s, "nobody-home", "again")).not.toBe(id);
  });

  it("TSP-R3/7.4: titanic.reply -> [300] while pending, then [200][reply...], the same on every call", async () => {
    const s = await setup();
    const uuid = await submit(s, "echo", "Hello", "world");
    expect(await s.tsp("titanic.reply", uuid)).toEqual(["300"]);
    expect(await s.tsp("titanic.reply", uuid)).toEqual(["300"]);
    const { executions } = await s.worker("echo");
    await s.events.waitFor("replied", { uuid });
    for (let i = 0; i < 3; i++) {
      expect(await s.tsp("titanic.reply", uuid)).toEqual(["200", "Hello", "world"]);
    }
    // Delivering a reply does not delete it.
    expect(await files()).toEqual([`${uuid}.rep`, `${uuid}.req`]);
    expect(executions.map((body) => body.map(String))).toEqual([["Hello", "world"]]);
    // A lowercase UUID (as the Guide's Python Titanic writes them) names the same request.
    expect(await s.tsp("titanic.reply", uuid.toLowerCase())).toEqual(["200", "Hello", "world"]);
  });

  it("TSP-R4/7.4: titanic.close -> [200]; then titanic.reply -> [400]; closing again or an unknown UUID -> [200]", async () => {
    const s = await setup();
    await s.worker("echo");
    const uuid = await submit(s, "echo", "bye");
    await s.events.waitFor("replied", { uuid });
    expect(await s.tsp("titanic.close", uuid)).toEqual(["200"]);
    expect(await files()).toEqual([]);
    expect(await s.tsp("titanic.reply", uuid)).toEqual(["400"]);
    expect(await s.tsp("titanic.close", uuid)).toEqual(["200"]);
    expect(await s.tsp("titanic.close", "0123456789abcdef0123456789ABCDEF")).toEqual(["200"]);
    expect(await s.tsp("titanic.reply", "0123456789ABCDEF0123456789ABCDEF")).toEqual(["400"]);
    expect(s.events.count("closed", { uuid, wasPending: false })).toBe(2);
    expect(s.server.stats()).toMatchObject({
      stored: 1,
      closed: 3,
      completed: 1,
      pending: 0,
      answers: {
        "titanic.request 200": 1,
        "titanic.reply 400": 2,
        "titanic.close 200": 3,
      },
    });
  });

  it("TI-B4/TSP-R2: invalid UUIDs get [400] from titanic.reply and titanic.close, and no file is touched", async () => {
    const s = await setup();
    const uuid = await submit(s, "nobody-home", "keep me");
    // What the reference would delete with "../victim": <dir>/../victim.req and .rep.
    await writeFile(join(root, "victim.req"), "precious");
    await writeFile(join(root, "victim.rep"), "precious");
    await mkdir(join(root, "etc"));
    await writeFile(join(root, "etc", "passwd.req"), "precious");
    const snapshot = async () => {
      const out: Record<string, number> = {};
      for (const name of [`store/${uuid}.req`, "victim.req", "victim.rep", "etc/passwd.req"]) {
        out[name] = (await stat(join(root, name))).mtimeMs;
      }
      return { out, files: await files(), root: (await readdir(root)).sort() };
    };
    const before = await snapshot();
    const invalid: Buffer[][] = [
      [t("../victim")],
      [t("../etc/passwd")],
      [t("../../etc/passwd")],
      [t(`../${uuid.slice(3)}`)],
      [t(uuid.slice(1))], // 31 characters
      [t(`${uuid}0`)], // 33
      [t("G".repeat(32))], // not hex
      [t(`${uuid.slice(0, 31)}\0`)],
      [t(`${uuid.slice(0, 8)}-${uuid.slice(8, 12)}-${uuid.slice(12, 16)}-${uuid.slice(16)}`)],
      [Buffer.alloc(0)],
      [t(uuid), t(uuid)], // one frame only
    ];
    for (const body of invalid) {
      for (const service of ["titanic.reply", "titanic.close"]) {
        expect({ service, body: body.map(String), reply: await s.tsp(service, ...body) }).toEqual({
          service,
          body: body.map(String),
          reply: ["400"],
        });
      }
    }
    expect(await snapshot()).toEqual(before);
    expect(await s.tsp("titanic.reply", uuid)).toEqual(["300"]);
    expect(s.server.stats().rejected).toBe(invalid.length * 2);
  });

  it("TSP-R6/7.4: a malformed titanic.request gets [400 <reason>] and stores nothing; the server keeps serving", async () => {
    const s = await setup();
    const cases: Array<[Buffer[], string]> = [
      [[t("echo")], "400 missing frame: body"],
      [[Buffer.alloc(0), t("body")], "400 service frame is empty"],
      [[Buffer.from([0xff, 0xfe]), t("body")], "400 invalid service name"],
      [[t("x".repeat(256)), t("body")], "400 invalid service name"],
    ];
    for (const [body, expected] of cases) {
      expect(await s.tsp("titanic.request", ...body)).toEqual([expected]);
    }
    expect(await files()).toEqual([]);
    expect(s.events.count("rejected", { service: "titanic.request" })).toBe(cases.length);
    expect(s.server.stats()).toMatchObject({ stored: 0, rejected: cases.length });
    expect(await submit(s, "echo", "fine")).toMatch(UUID);
  });

  it("TI-B5: storage failures get [500] from all three services instead of a crash, and service resumes", async () => {
    const store = new FailingStore();
    const s = await setup({ store });
    const uuid = await submit(s, "nobody-home", "x");
    store.failing.add("putRequest");
    store.failing.add("getReply");
    store.failing.add("state");
    store.failing.add("remove");
    expect(await s.tsp("titanic.request", "nobody-home", "y")).toEqual(["500"]);
    expect(await s.tsp("titanic.reply", uuid)).toEqual(["500"]);
    expect(await s.tsp("titanic.close", uuid)).toEqual(["500"]);
    expect(s.events.count("storageError")).toBe(3);
    expect(s.server.stats().answers).toMatchObject({
      "titanic.request 500": 1,
      "titanic.reply 500": 1,
      "titanic.close 500": 1,
    });
    store.failing.clear();
    expect(await s.tsp("titanic.reply", uuid)).toEqual(["300"]);
    expect(await s.tsp("titanic.close", uuid)).toEqual(["200"]);
    expect(await submit(s, "nobody-home", "z")).toMatch(UUID);
  });

  it("TSP-R5: a request for a service without workers waits ([300]) and completes when a worker registers", async () => {
    const s = await setup();
    const uuid = await submit(s, "late-comer", "are you there?");
    await s.events.waitFor("unavailable", { service: "late-comer" });
    expect(await s.tsp("titanic.reply", uuid)).toEqual(["300"]);
    // The broker said 404: nothing was sent (TI-B8 fixed: no request piles up in the broker).
    expect(s.events.count("dispatched")).toBe(0);
    expect(s.server.stats().services["late-comer"]).toMatchObject({
      queued: 1,
      inFlight: 0,
      availability: "absent",
    });
    const { executions } = await s.worker("late-comer", (body) => [t("yes"), ...body]);
    await s.events.waitFor("replied", { uuid });
    expect(await s.tsp("titanic.reply", uuid)).toEqual(["200", "yes", "are you there?"]);
    expect(executions).toHaveLength(1);
  });

  it('service names are data: a request for "__proto__" is queued and served like any other', async () => {
    const s = await setup();
    const uuid = await submit(s, "__proto__", "hi");
    await s.events.waitFor("unavailable", { service: "__proto__" });
    const stats = s.server.stats();
    expect(Object.hasOwn(stats.services, "__proto__")).toBe(true);
    expect(Object.getOwnPropertyDescriptor(stats.services, "__proto__")?.value).toMatchObject({
      queued: 1,
      availability: "absent",
    });
    expect(({} as Record<string, unknown>).queued).toBeUndefined();
    await s.worker("__proto__");
    await s.events.waitFor("replied", { uuid });
    expect(await s.tsp("titanic.reply", uuid)).toEqual(["200", "hi"]);
  });

  it("7.10 close before dispatch: a closed request never runs", async () => {
    const s = await setup();
    const closed = await submit(s, "later", "never");
    await s.events.waitFor("unavailable", { service: "later" });
    expect(await s.tsp("titanic.close", closed)).toEqual(["200"]);
    expect(s.events.count("closed", { uuid: closed, wasPending: true })).toBe(1);
    const kept = await submit(s, "later", "yes");
    const { executions } = await s.worker("later");
    await s.events.waitFor("replied", { uuid: kept });
    expect(executions.map((body) => body.map(String))).toEqual([["yes"]]);
    expect(await s.tsp("titanic.reply", closed)).toEqual(["400"]);
  });

  it("TI-5/7.10 restart on the same directory: pending requests resume, stored replies are served, closed ones stay unknown", async () => {
    const s = await setup();
    await s.worker("echo");
    const done = await submit(s, "echo", "done before");
    await s.events.waitFor("replied", { uuid: done });
    const closed = await submit(s, "echo", "closed before");
    await s.events.waitFor("replied", { uuid: closed });
    expect(await s.tsp("titanic.close", closed)).toEqual(["200"]);
    const first = await submit(s, "after-restart", "first");
    await new Promise((resolve) => setTimeout(resolve, 5)); // storedAt has millisecond resolution
    const pending = [first, await submit(s, "after-restart", "second")];
    await s.server.close();

    // One at a time, so that the order of execution is the order of dispatch.
    const again = await startServer(s.endpoint, { perServiceConcurrency: 1 });
    const events = new Recorder(again);
    expect(again.resumed).toBe(2);
    expect(again.stats()).toMatchObject({ pending: 2 });
    expect(await s.tsp("titanic.reply", done)).toEqual(["200", "done before"]);
    expect(await s.tsp("titanic.reply", closed)).toEqual(["400"]);
    expect(await s.tsp("titanic.reply", pending[0] as string)).toEqual(["300"]);
    const { executions } = await s.worker("after-restart");
    await events.waitFor("replied", { service: "after-restart" }, 2);
    expect(await s.tsp("titanic.reply", pending[0] as string)).toEqual(["200", "first"]);
    expect(await s.tsp("titanic.reply", pending[1] as string)).toEqual(["200", "second"]);
    // Oldest first.
    expect(executions.map(String)).toEqual(["first", "second"]);
  });

  it("TI-B9: finished requests nobody closed are collected after collect.maxAgeMs; pending ones never are", async () => {
    const s = await setup({ collect: { maxAgeMs: 0, intervalMs: 50 } });
    await s.worker("echo");
    const finished = await submit(s, "echo", "forgotten");
    const pending = await submit(s, "nobody-home", "still waiting");
    await s.events.waitFor("collected");
    expect(await s.tsp("titanic.reply", finished)).toEqual(["400"]);
    expect(await s.tsp("titanic.reply", pending)).toEqual(["300"]);
    expect(await files()).toEqual([`${pending}.req`]);
    expect(s.server.stats().collected).toBe(1);
  });

  it("close() unregisters the services, keeps pending requests on disk, and is idempotent", async () => {
    const s = await setup();
    const uuid = await submit(s, "nobody-home", "x");
    await Promise.all([s.server.close(), s.server.close()]);
    await s.server.close();
    expect(await files()).toEqual([`${uuid}.req`]);
    const mmi = track(new MajordomoClient({ broker: s.endpoint, timeoutMs: 2000 }));
    await expect.poll(() => mmiService(mmi, "titanic.request"), { timeout: 5000 }).toBe("404");
  });

  it("start() rejects bad options and a store that cannot resume, without leaving anything running", async () => {
    const endpoint = await allocateAddress();
    await expect(TitanicServer.start({ broker: "localhost:5555", dir })).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
    });
    await expect(
      TitanicServer.start({
        broker: endpoint,
        dir,
        attemptTimeoutMs: 100,
        maxAttemptTimeoutMs: 50,
      }),
    ).rejects.toThrow(/maxAttemptTimeoutMs/);
    await expect(
      TitanicServer.start({ broker: endpoint, store: new FailingStore(), dir }),
    ).rejects.toThrow(/either a store or a dir/);
    const store = new FailingStore();
    store.failing.add("pending");
    await expect(TitanicServer.start({ broker: endpoint, store })).rejects.toThrow(/disk on fire/);
  });
});
