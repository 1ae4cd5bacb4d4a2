import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  AbortedError,
  ClosedError,
  InvalidArgumentError,
  ProtocolError,
  RequestAbandonedError,
  TimeoutError,
} from "@zmq-patterns/core";
import { allocateAddress, Tap } from "@zmq-patterns/core/testing";
import { MajordomoBroker, MajordomoWorker } from "@zmq-patterns/majordomo";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Router } from "zeromq";
import { TitanicClient, type TitanicClientOptions, TitanicStatusError } from "../src/client.js";
import { TitanicServer, type TitanicServerOptions } from "../src/server.js";
import { FileStore, type StoredRequest, type TitanicStore } from "../src/store.js";

const E = Buffer.alloc(0);
const t = (text: string) => Buffer.from(text);

let dir: string;
const cleanup: Array<{ close(): unknown }> = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "titanic-client-"));
});

afterEach(async () => {
  for (const item of cleanup.splice(0).reverse()) await item.close();
  await rm(dir, { recursive: true, force: true });
});

function track<T extends { close(): unknown }>(item: T): T {
  cleanup.push(item);
  return item;
}

/** A FileStore whose next calls of an operation fail. */
class FlakyStore implements TitanicStore {
  readonly inner = new FileStore({ dir });
  readonly failNext = new Map<keyof TitanicStore, number>();
  readonly failures: string[] = [];
  #check(operation: keyof TitanicStore): void {
    const left = this.failNext.get(operation) ?? 0;
    if (left <= 0) return;
    this.failNext.set(operation, left - 1);
    this.failures.push(operation);
    throw new Error(`disk on fire (${operation})`);
  }
  open = () => this.inner.open();
  close = () => this.inner.close();
  putRequest = async (request: StoredRequest) => {
    this.#check("putRequest");
    return this.inner.putRequest(request);
  };
  getRequest = async (uuid: string) => this.inner.getRequest(uuid);
  putReply = async (uuid: string, body: readonly Buffer[]) => this.inner.putReply(uuid, body);
  getReply = async (uuid: string) => {
    this.#check("getReply");
    return this.inner.getReply(uuid);
  };
  state = async (uuid: string) => this.inner.state(uuid);
  remove = async (uuid: string) => {
    this.#check("remove");
    return this.inner.remove(uuid);
  };
  pending = async () => this.inner.pending();
  collect = async (policy: { maxAgeMs?: number; maxFinished?: number }) =>
    this.inner.collect(policy);
}

async function setup(options: TitanicServerOptions = {}) {
  const endpoint = await allocateAddress();
  track(await MajordomoBroker.start({ bind: endpoint }));
  const server = track(
    await TitanicServer.start({
      broker: endpoint,
      ...(options.store ? {} : { dir }),
      retryBackoffMs: 50,
      maxRetryBackoffMs: 200,
      ...options,
    }),
  );
  const client = (more: TitanicClientOptions = {}) =>
    track(new TitanicClient({ broker: endpoint, timeoutMs: 2000, ...more }));
  const worker = async (service: string) => {
    const executions: string[] = [];
    track(
      await MajordomoWorker.start({
        broker: endpoint,
        service,
        handler: (body) => {
          executions.push(body.map(String).join(","));
          return [t("re:"), ...body];
        },
      }),
    );
    return executions;
  };
  return { endpoint, server, client, worker };
}

async function fakeBroker(): Promise<Tap<Router>> {
  return track(await Tap.router());
}

describe("TitanicClient against a Titanic server", () => {
  it("call(): submits, polls until the reply is stored, closes the request, and resolves with the reply", async () => {
    const s = await setup();
    const executions = await s.worker("echo");
    const client = s.client();
    const uuids: string[] = [];
    const reply = await client.call("echo", ["Hello", "world"], {
      pollMs: 10,
      onSubmitted: (uuid) => uuids.push(uuid),
    });
    expect(reply.map(String)).toEqual(["re:", "Hello", "world"]);
    expect(uuids).toHaveLength(1);
    expect(uuids[0]).toMatch(/^[0-9A-F]{32}$/);
    expect(executions).toEqual(["Hello,world"]);
    // Closed: nothing left on disk.
    expect(await readdir(dir)).toEqual([]);
    expect(s.server.stats()).toMatchObject({ stored: 1, closed: 1, completed: 1 });
  });

  it("submit, reply and closeRequest step by step; after close, reply is a 400 that must not be retried", async () => {
    const s = await setup();
    const client = s.client();
    const uuid = await client.submit("later", "one step at a time");
    expect(await client.reply(uuid)).toEqual({ status: "pending" });
    await s.worker("later");
    await new Promise<void>((resolve) => s.server.once("replied", () => resolve()));
    const done = await client.reply(uuid);
    expect(done.status).toBe("ok");
    expect(done.status === "ok" && done.body.map(String)).toEqual(["re:", "one step at a time"]);
    // Same answer again (TSP-R3), also for a lowercase UUID.
    expect(await client.reply(uuid.toLowerCase())).toEqual(done);
    await client.closeRequest(uuid);
    await client.closeRequest(uuid); // TSP-R4: idempotent
    const error = await client.reply(uuid).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TitanicStatusError);
    expect(error).toBeInstanceOf(ProtocolError);
    expect(error).toMatchObject({
      code: "PROTOCOL",
      reason: "unknown request",
      status: "400",
      retryable: false,
      service: "titanic.reply",
    });
  });

  it("TI-B12: call() retries 500 answers (storage failures) of titanic.request and titanic.reply", async () => {
    const store = new FlakyStore();
    const s = await setup({ store });
    await s.worker("echo");
    store.failNext.set("putRequest", 2);
    store.failNext.set("getReply", 2);
    const reply = await s.client().call("echo", "through the storm", { pollMs: 10, maxPollMs: 40 });
    expect(reply.map(String)).toEqual(["re:", "through the storm"]);
    expect(store.failures).toEqual(["putRequest", "putRequest", "getReply", "getReply"]);
    expect(s.server.stats()).toMatchObject({ stored: 1, closed: 1 });
  });

  it("call(): a 400 (the request was closed meanwhile) is fatal", async () => {
    const s = await setup();
    const other = s.client();
    const client = s.client();
    const error = await client
      .call("nobody-home", "x", {
        pollMs: 20,
        onSubmitted: (uuid) => void other.closeRequest(uuid),
      })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ status: "400", retryable: false, service: "titanic.reply" });
  });

  it("call(): gives up after timeoutMs with a TimeoutError and closes the request, so it never runs", async () => {
    const s = await setup();
    const closed = new Promise<{ uuid: string; wasPending: boolean }>((resolve) =>
      s.server.once("closed", resolve),
    );
    const client = s.client();
    const started = performance.now();
    const error = await client
      .call("too-late", "cancel me", { pollMs: 20, timeoutMs: 300 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error).toMatchObject({ code: "TIMEOUT", timeoutMs: 300 });
    expect(performance.now() - started).toBeLessThan(2000);
    expect(await closed).toMatchObject({ wasPending: true });
    const executions = await s.worker("too-late");
    expect((await client.call("too-late", "run me", { pollMs: 20 })).map(String)).toEqual([
      "re:",
      "run me",
    ]);
    expect(executions).toEqual(["run me"]);
  });

  it("call(): an AbortSignal abandons it with AbortedError; close() rejects calls with ClosedError and is idempotent", async () => {
    const s = await setup();
    const client = s.client();
    const controller = new AbortController();
    const aborted = client.call("nobody-home", "x", { pollMs: 20, signal: controller.signal });
    setTimeout(() => controller.abort(), 100);
    await expect(aborted).rejects.toBeInstanceOf(AbortedError);
    const pending = client.call("nobody-home", "y", { pollMs: 20 });
    await new Promise<void>((resolve) => s.server.once("stored", () => resolve()));
    await Promise.all([client.close(), client.close()]);
    await expect(pending).rejects.toBeInstanceOf(ClosedError);
    await expect(client.submit("echo", "z")).rejects.toBeInstanceOf(ClosedError);
  });
});

describe("TitanicClient on the wire (fake broker)", () => {
  it("7.4 golden frames; TSP-R6: only the first three characters of the status count", async () => {
    const broker = await fakeBroker();
    const client = track(new TitanicClient({ broker: broker.endpoint, timeoutMs: 2000 }));
    const lower = "0123456789abcdef0123456789abcdef";
    const upper = lower.toUpperCase();

    const submitted = client.submit("echo", ["Hello", Buffer.from([0, 1])]);
    let [id, ...frames] = await broker.receive();
    expect(frames).toEqual([
      E,
      t("MDPC01"),
      t("titanic.request"),
      t("echo"),
      t("Hello"),
      Buffer.from([0, 1]),
    ]);
    await broker.send([id as Buffer, E, t("MDPC01"), t("titanic.request"), t("200 OK"), t(lower)]);
    // The UUID is kept as the server wrote it and sent back unchanged (some Titanics are case-sensitive).
    expect(await submitted).toBe(lower);

    const polled = client.reply(lower);
    [id, ...frames] = await broker.receive();
    expect(frames).toEqual([E, t("MDPC01"), t("titanic.reply"), t(lower)]);
    await broker.send([id as Buffer, E, t("MDPC01"), t("titanic.reply"), t("300 not yet")]);
    expect(await polled).toEqual({ status: "pending" });

    const fetched = client.reply(upper);
    [id] = await broker.receive();
    await broker.send([id as Buffer, E, t("MDPC01"), t("titanic.reply"), t("200"), t("a"), E]);
    expect(await fetched).toEqual({ status: "ok", body: [t("a"), E] });

    const closing = client.closeRequest(upper);
    [id, ...frames] = await broker.receive();
    expect(frames).toEqual([E, t("MDPC01"), t("titanic.close"), t(upper)]);
    await broker.send([id as Buffer, E, t("MDPC01"), t("titanic.close"), t("200 closed")]);
    await closing;

    const failing = client.closeRequest(upper);
    [id] = await broker.receive();
    await broker.send([id as Buffer, E, t("MDPC01"), t("titanic.close"), t("500 disk full")]);
    await expect(failing).rejects.toMatchObject({
      status: "500",
      retryable: true,
      text: "disk full",
      service: "titanic.close",
    });
  });

  it("an answer that breaks TSP is a ProtocolError", async () => {
    const broker = await fakeBroker();
    const client = track(new TitanicClient({ broker: broker.endpoint, timeoutMs: 2000 }));
    const answers: Array<[() => Promise<unknown>, Buffer[], RegExp]> = [
      [() => client.submit("echo", "x"), [t("200"), t("not-a-uuid")], /invalid UUID/],
      [() => client.submit("echo", "x"), [t("300")], /unexpected 300/],
      [() => client.reply("0".repeat(32)), [t("600 what")], /unknown status/],
      [() => client.reply("0".repeat(32)), [t("200")], /unexpected 200/],
    ];
    for (const [call, answer, message] of answers) {
      const result = call();
      const [id, , , service] = await broker.receive();
      await broker.send([id as Buffer, E, t("MDPC01"), service as Buffer, ...answer]);
      const error = await result.catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ProtocolError);
      expect(String(error)).toMatch(message);
    }
  });

  it("Titanic not running: submit rejects with RequestAbandonedError after `retries` sends", async () => {
    const broker = await fakeBroker();
    const client = track(
      new TitanicClient({ broker: broker.endpoint, timeoutMs: 100, retries: 2 }),
    );
    await expect(client.submit("echo", "anyone?")).rejects.toBeInstanceOf(RequestAbandonedError);
  });

  it("bad arguments throw InvalidArgumentError at once", async () => {
    const endpoint = await allocateAddress();
    expect(() => new TitanicClient({ broker: "localhost" })).toThrow(InvalidArgumentError);
    expect(() => new TitanicClient({ broker: endpoint, retries: 0 })).toThrow(InvalidArgumentError);
    const client = track(new TitanicClient({ broker: endpoint }));
    expect(() => client.submit("", "x")).toThrow(InvalidArgumentError);
    expect(() => client.submit("x".repeat(256), "x")).toThrow(InvalidArgumentError);
    expect(() => client.submit("echo", [])).toThrow(InvalidArgumentError);
    expect(() => client.reply("../../etc/passwd")).toThrow(InvalidArgumentError);
    expect(() => client.closeRequest("0".repeat(31))).toThrow(InvalidArgumentError);
    expect(() => client.call("echo", "x", { pollMs: -1 })).toThrow(InvalidArgumentError);
    expect(() => client.call("echo", "x", { pollMs: 100, maxPollMs: 50 })).toThrow(
      InvalidArgumentError,
    );
    expect(() => client.call("echo", "x", { timeoutMs: 0 })).toThrow(InvalidArgumentError);
  });
});
