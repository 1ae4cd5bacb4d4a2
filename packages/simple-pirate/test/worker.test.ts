import { once } from "node:events";
import { sleep } from "@zmq-patterns/core";
import { Tap } from "@zmq-patterns/core/testing";
import { afterEach, describe, expect, it } from "vitest";
import {
  randomWorkerIdentity,
  SimplePirateWorker,
  type SimplePirateWorkerOptions,
} from "../src/index.js";

const cleanup: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const item of cleanup.splice(0).reverse()) await item.close();
});

function track<T extends { close(): unknown }>(item: T): T {
  cleanup.push(item);
  return item;
}

const b = (text: string) => Buffer.from(text);
const EMPTY = Buffer.alloc(0);
const READY = Buffer.from([0x01]);
const IDENTITY = /^[0-9A-F]{4}-[0-9A-F]{4}$/;

/** A ROUTER tap playing the queue's backend, and a worker connected to it that sent READY. */
async function setup(options: SimplePirateWorkerOptions = {}) {
  const backend = track(await Tap.router());
  const worker = track(await SimplePirateWorker.start({ endpoint: backend.endpoint, ...options }));
  const [identity, ...ready] = await backend.receive();
  expect(ready).toEqual([EMPTY, READY]);
  return { backend, worker, identity: identity as Buffer };
}

describe("SimplePirateWorker", () => {
  it("3.5: sends READY once, then echoes each request with its client envelope", async () => {
    const { backend, worker, identity } = await setup();
    expect(String(identity)).toBe(worker.identity);
    for (const body of ["one", "two"]) {
      await backend.send([identity, "", "C", "", body]);
      expect(await backend.receive()).toEqual([identity, EMPTY, b("C"), EMPTY, b(body)]);
    }
    // A multi-hop envelope and a multi-frame body come back as they went.
    await backend.send([identity, "", "P", "C", "", "a", Buffer.from([0, 1])]);
    expect(await backend.receive()).toEqual([
      identity,
      EMPTY,
      b("P"),
      b("C"),
      EMPTY,
      b("a"),
      Buffer.from([0, 1]),
    ]);
    await backend.expectNothing(50); // READY is never sent again
    expect(worker.stats()).toEqual({ requests: 3, replies: 3, restarts: 0 });
  });

  it("answers through a custom async handler", async () => {
    const seen: string[][] = [];
    const { backend, identity } = await setup({
      identity: "upper",
      handler: async (body) => {
        seen.push(body.map(String));
        await sleep(10);
        return body.map((frame) => String(frame).toUpperCase());
      },
    });
    expect(String(identity)).toBe("upper");
    await backend.send([identity, "", "C", "", "hello", "world"]);
    expect((await backend.receive()).map(String)).toEqual(["upper", "", "C", "", "HELLO", "WORLD"]);
    expect(seen).toEqual([["hello", "world"]]);
  });

  it("sends an empty reply as one empty frame", async () => {
    const { backend, identity } = await setup({ handler: () => [] });
    await backend.send([identity, "", "C", "", "x"]);
    expect(await backend.receive()).toEqual([identity, EMPTY, b("C"), EMPTY, EMPTY]);
  });

  it("3.2: a simulated crash closes the socket without replying and emits crash", async () => {
    const { backend, worker, identity } = await setup({
      simulate: { crashAfter: 1, crashProbability: 1 },
    });
    const kinds: string[] = [];
    worker.on("request", ({ kind }) => kinds.push(kind));
    await backend.send([identity, "", "C", "", "1"]);
    expect((await backend.receive()).map(String)).toEqual([String(identity), "", "C", "", "1"]);
    const crashed = once(worker, "crash");
    await backend.send([identity, "", "C", "", "2"]);
    expect(await crashed).toEqual([{ cycle: 2 }]);
    expect(kinds).toEqual(["normal", "crash"]);
    expect(worker.closed).toBe(true);
    await backend.expectNothing(100);
  });

  it("3.2: simulated work delays the reply", async () => {
    const { backend, identity } = await setup({ simulate: { workMs: 150 } });
    const started = performance.now();
    await backend.send([identity, "", "C", "", "1"]);
    await backend.receive();
    expect(performance.now() - started).toBeGreaterThanOrEqual(140);
  });

  it("close() during simulated work drops the request without waiting for the work", async () => {
    const { backend, worker, identity } = await setup({ simulate: { workMs: 10_000 } });
    const working = once(worker, "request");
    await backend.send([identity, "", "C", "", "1"]);
    await working;
    const closing = performance.now();
    await worker.close();
    expect(performance.now() - closing).toBeLessThan(2000);
    await backend.expectNothing(100);
    expect(worker.stats()).toEqual({ requests: 1, replies: 0, restarts: 0 });
  });

  it("drops the request, reconnects under a new identity and sends READY when the handler throws", async () => {
    let calls = 0;
    const { backend, worker, identity } = await setup({
      handler: (body) => {
        calls += 1;
        if (calls === 1) throw new Error("boom");
        return body;
      },
    });
    const restarted = once(worker, "restart");
    await backend.send([identity, "", "C", "", "1"]);
    const [fresh, ...ready] = await backend.receive();
    expect(ready).toEqual([EMPTY, READY]);
    expect(String(fresh)).toMatch(IDENTITY);
    expect(fresh).not.toEqual(identity);
    expect(await restarted).toEqual([
      { reason: "handler failed", previousIdentity: String(identity), identity: String(fresh) },
    ]);
    expect(worker.identity).toBe(String(fresh));
    await backend.send([fresh as Buffer, "", "C", "", "2"]);
    expect((await backend.receive()).map(String)).toEqual([String(fresh), "", "C", "", "2"]);
    expect(worker.stats()).toEqual({ requests: 2, replies: 1, restarts: 1 });
  });

  it("keeps a given identity across a restart caused by a malformed request", async () => {
    const { backend, worker, identity } = await setup({ identity: "fixed" });
    // The new connection reuses an identity the ROUTER may still hold: it must let it take over,
    // as SimplePirateQueue's backend does.
    backend.socket.handover = true;
    const restarted = once(worker, "restart");
    await backend.send([identity, "", "no delimiter after this"]);
    expect(await backend.receive()).toEqual([b("fixed"), EMPTY, READY]);
    expect(await restarted).toEqual([
      { reason: "missing frame: client delimiter", previousIdentity: "fixed", identity: "fixed" },
    ]);
    await backend.send([identity, "", "C", "", "ok"]);
    expect((await backend.receive()).map(String)).toEqual(["fixed", "", "C", "", "ok"]);
  });

  it("fails fast on bad options and closes idempotently", async () => {
    await expect(SimplePirateWorker.start({ endpoint: "localhost:5556" })).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
    });
    await expect(SimplePirateWorker.start({ identity: "" })).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
    });
    await expect(SimplePirateWorker.start({ identity: "\0x" })).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
    });
    await expect(SimplePirateWorker.start({ identity: "x".repeat(256) })).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
    });
    await expect(
      SimplePirateWorker.start({ simulate: { crashProbability: 2 } }),
    ).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });

    const { worker } = await setup();
    const first = worker.close();
    expect(worker.close()).toBe(first);
    await first;
    expect(worker.closed).toBe(true);
  });

  it("3.1: random identities follow the Guide's %04X-%04X format", () => {
    const identities = new Set(Array.from({ length: 50 }, () => randomWorkerIdentity()));
    for (const identity of identities) expect(identity).toMatch(IDENTITY);
    expect(identities.size).toBeGreaterThan(45);
  });
});
