import { once } from "node:events";
import type { FrameLike } from "@zmq-patterns/core";
import { allocateAddress, killAllProcesses, Tap } from "@zmq-patterns/core/testing";
import { LazyPirateClient } from "@zmq-patterns/lazy-pirate";
import { afterEach, describe, expect, it } from "vitest";
import {
  SimplePirateQueue,
  type SimplePirateQueueEvents,
  SimplePirateWorker,
  WORKER_READY,
} from "../src/index.js";

const cleanup: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const item of cleanup.splice(0).reverse()) await item.close();
  await killAllProcesses();
});

function track<T extends { close(): unknown }>(item: T): T {
  cleanup.push(item);
  return item;
}

const b = (text: string) => Buffer.from(text);
const EMPTY = Buffer.alloc(0);

async function startQueue() {
  return track(
    await SimplePirateQueue.start({
      frontend: await allocateAddress("tcp"),
      backend: await allocateAddress("tcp"),
    }),
  );
}

/** Resolves with the next `count` payloads of `event`. */
function next<K extends keyof SimplePirateQueueEvents>(
  queue: SimplePirateQueue,
  event: K,
  count = 1,
): Promise<SimplePirateQueueEvents[K][0][]> {
  return new Promise((resolve) => {
    const seen: SimplePirateQueueEvents[K][0][] = [];
    const listener = (payload: SimplePirateQueueEvents[K][0]) => {
      seen.push(payload);
      if (seen.length < count) return;
      queue.off(event, listener as never);
      resolve(seen);
    };
    queue.on(event, listener as never);
  });
}

/** A DEALER posing as a REQ worker with a known identity, made ready before it returns. */
async function workerTap(queue: SimplePirateQueue, identity: string) {
  const tap = track(await Tap.dealer(queue.endpoints.backend, { routingId: identity }));
  const ready = next(queue, "workerReady");
  await tap.send(["", WORKER_READY]);
  const [event] = await ready;
  expect(String(event?.worker)).toBe(identity);
  return tap;
}

/** Resolves when `identity` becomes ready. */
function readyOf(queue: SimplePirateQueue, identity: string): Promise<void> {
  return new Promise((resolve) => {
    const listener: (event: SimplePirateQueueEvents["workerReady"][0]) => void = ({ worker }) => {
      if (String(worker) !== identity) return;
      queue.off("workerReady", listener);
      resolve();
    };
    queue.on("workerReady", listener);
  });
}

/** A real worker whose replies name it, made ready before it returns. */
async function namedWorker(queue: SimplePirateQueue, name: string) {
  const ready = readyOf(queue, name);
  const worker = track(
    await SimplePirateWorker.start({
      endpoint: queue.endpoints.backend,
      identity: name,
      handler: (body) => [name, ...body],
    }),
  );
  await ready;
  return worker;
}

function client(queue: SimplePirateQueue, timeoutMs = 2000) {
  return track(new LazyPirateClient({ endpoint: queue.endpoints.frontend, timeoutMs, retries: 3 }));
}

describe("SimplePirateQueue", () => {
  it("SP-1/SP-4: hands requests to ready workers least recently used first", async () => {
    const queue = await startQueue();
    const w1 = await workerTap(queue, "W1");
    const w2 = await workerTap(queue, "W2");
    const w3 = await workerTap(queue, "W3");
    expect(queue.stats().workersReady).toBe(3);

    const c = track(await Tap.dealer(queue.endpoints.frontend, { routingId: "C" }));
    const dispatched = next(queue, "requestDispatched", 3);
    for (const body of ["r1", "r2", "r3"]) await c.send(["", body]);
    expect((await w1.receive()).map(String)).toEqual(["", "C", "", "r1"]);
    expect((await w2.receive()).map(String)).toEqual(["", "C", "", "r2"]);
    expect((await w3.receive()).map(String)).toEqual(["", "C", "", "r3"]);
    expect((await dispatched).map((e) => [String(e.worker), e.workersReady])).toEqual([
      ["W1", 2],
      ["W2", 1],
      ["W3", 0],
    ]);

    // W2 answers first, then W1: W2 is now the least recently used.
    const forwarded = next(queue, "replyForwarded", 2);
    await w2.send(["", "C", "", "a2"]);
    expect((await c.receive()).map(String)).toEqual(["", "a2"]);
    await w1.send(["", "C", "", "a1"]);
    expect((await c.receive()).map(String)).toEqual(["", "a1"]);
    expect((await forwarded).map((e) => String(e.worker))).toEqual(["W2", "W1"]);
    await c.send(["", "r4"]);
    await c.send(["", "r5"]);
    expect((await w2.receive()).map(String)).toEqual(["", "C", "", "r4"]);
    expect((await w1.receive()).map(String)).toEqual(["", "C", "", "r5"]);
    await w3.expectNothing(50);
  });

  it("SP-5: a duplicate READY moves the worker to the tail, it is never listed twice", async () => {
    const queue = await startQueue();
    const w1 = await workerTap(queue, "W1");
    const w2 = await workerTap(queue, "W2");
    const again = next(queue, "workerReady");
    await w1.send(["", WORKER_READY]);
    expect(await again).toEqual([{ worker: b("W1"), workersReady: 2 }]);
    expect(queue.stats().workersReady).toBe(2);

    const c = track(await Tap.dealer(queue.endpoints.frontend, { routingId: "C" }));
    await c.send(["", "first"]);
    await c.send(["", "second"]);
    expect((await w2.receive()).map(String)).toEqual(["", "C", "", "first"]);
    expect((await w1.receive()).map(String)).toEqual(["", "C", "", "second"]);
    expect(queue.stats().workersReady).toBe(0);
    // With no worker ready, a third request waits: W1 is not handed it a second time.
    await c.send(["", "third"]);
    await w1.expectNothing(50);
  });

  it("SP-2: with no worker ready the frontend is not read; a worker that joins is handed the waiting request", async () => {
    const queue = await startQueue();
    const dropped: string[] = [];
    queue.on("dropped", ({ reason }) => dropped.push(reason));
    const c = track(await Tap.dealer(queue.endpoints.frontend, { routingId: "C" }));
    // A malformed message first: it would be dropped and counted at once if the frontend were read.
    await c.send(["no delimiter"]);
    await c.send(["", "waiting"]);
    await c.expectNothing(150);
    expect(dropped).toEqual([]);
    expect(queue.stats()).toEqual({
      workersReady: 0,
      requestsForwarded: 0,
      repliesForwarded: 0,
      dropped: {},
    });

    await namedWorker(queue, "late");
    expect((await c.receive()).map(String)).toEqual(["", "late", "waiting"]);
    expect(dropped).toEqual(["frontend: missing frame: client delimiter"]);
  });

  it("SP-2/3.6: a client started before any worker is served once one starts", async () => {
    const queue = await startQueue();
    const c = client(queue, 5000);
    const reply = c.request("early");
    const sent = await once(c, "sent");
    expect(sent).toHaveLength(1);
    const worker = namedWorker(queue, "W");
    expect((await reply).map(String)).toEqual(["W", "early"]);
    await worker;
  });

  it("3.6: a worker joining late is handed work in its turn", async () => {
    const queue = await startQueue();
    const c = client(queue);
    await namedWorker(queue, "A");
    const served: string[] = [];
    served.push(String((await c.request("1"))[0]));
    await namedWorker(queue, "B");
    for (const body of ["2", "3", "4"]) served.push(String((await c.request(body))[0]));
    // B joined behind A: A takes request 2, then they alternate.
    expect(served).toEqual(["A", "A", "B", "A"]);
  });

  it("drops malformed worker messages by reason, never makes their sender ready, and keeps serving", async () => {
    const queue = await startQueue();
    const bad = track(await Tap.dealer(queue.endpoints.backend, { routingId: "BAD" }));
    const drops = next(queue, "dropped", 4);
    await bad.send([WORKER_READY]); // READY without the delimiter a REQ would add
    await bad.send([""]); // empty: a delimiter and nothing after it
    await bad.send(["", "garbage"]);
    await bad.send(["", "C", ""]); // a reply without a body
    expect((await drops).map((e) => String(e.from))).toEqual(["BAD", "BAD", "BAD", "BAD"]);
    expect((await drops).map((e) => [e.side, e.reason])).toEqual([
      ["backend", "backend: worker delimiter frame is not empty"],
      ["backend", "backend: missing frame: client address"],
      ["backend", "backend: missing frame: client delimiter"],
      ["backend", "backend: missing frame: reply body"],
    ]);
    expect(queue.stats().workersReady).toBe(0);

    await namedWorker(queue, "GOOD");
    const c = client(queue);
    for (const body of ["1", "2", "3"]) {
      expect((await c.request(body)).map(String)).toEqual(["GOOD", body]);
    }
    await bad.expectNothing(50);
    expect(queue.stats()).toEqual({
      workersReady: 1,
      requestsForwarded: 3,
      repliesForwarded: 3,
      dropped: {
        "backend: worker delimiter frame is not empty": 1,
        "backend: missing frame: client address": 1,
        "backend: missing frame: client delimiter": 1,
        "backend: missing frame: reply body": 1,
      },
    });
  });

  it("drops a reply from a worker that was handed no request", async () => {
    const queue = await startQueue();
    const w1 = await workerTap(queue, "W1");
    const w2 = await workerTap(queue, "W2");
    const c = track(await Tap.dealer(queue.endpoints.frontend, { routingId: "C" }));
    await c.send(["", "hello"]); // reaches the queue, so that "C" is routable
    expect((await w1.receive()).map(String)).toEqual(["", "C", "", "hello"]);
    const dropped = next(queue, "dropped");
    await w2.send(["", "C", "", "stray"]); // W2 is ready: it was handed nothing
    expect((await dropped).map((e) => [e.side, e.reason, String(e.from)])).toEqual([
      ["backend", "backend: reply from a ready worker", "W2"],
    ]);
    await c.expectNothing(50);
    // W2 is still ready, and W1's genuine reply gets through.
    expect(queue.stats().workersReady).toBe(1);
    await w1.send(["", "C", "", "answer"]);
    expect((await c.receive()).map(String)).toEqual(["", "answer"]);
    expect(queue.stats()).toMatchObject({ workersReady: 2, repliesForwarded: 1 });
  });

  it("drops malformed client messages by reason without using up a worker, and keeps serving", async () => {
    const queue = await startQueue();
    await namedWorker(queue, "W");
    const bad = track(await Tap.dealer(queue.endpoints.frontend, { routingId: "BAD" }));
    const drops = next(queue, "dropped", 2);
    await bad.send(["no delimiter"]);
    await bad.send([""]); // a delimiter and no body
    expect((await drops).map((e) => [e.side, e.reason])).toEqual([
      ["frontend", "frontend: missing frame: client delimiter"],
      ["frontend", "frontend: missing frame: request body"],
    ]);
    expect(queue.stats().workersReady).toBe(1);
    const c = client(queue);
    expect((await c.request("ok")).map(String)).toEqual(["W", "ok"]);
    await bad.expectNothing(50);
    expect(queue.stats()).toEqual({
      workersReady: 1,
      requestsForwarded: 1,
      repliesForwarded: 1,
      dropped: {
        "frontend: missing frame: client delimiter": 1,
        "frontend: missing frame: request body": 1,
      },
    });
  });

  it("a worker that restarts under its fixed identity (handover) is handed work again", async () => {
    const queue = await startQueue();
    let calls = 0;
    const ready = readyOf(queue, "fixed");
    const worker = track(
      await SimplePirateWorker.start({
        endpoint: queue.endpoints.backend,
        identity: "fixed",
        handler: (body) => {
          calls += 1;
          if (calls === 1) throw new Error("boom");
          return body;
        },
      }),
    );
    await ready;
    const restarted = once(worker, "restart");
    const c = client(queue, 300);
    // The first attempt is dropped by the failing handler; the retry reaches the same worker.
    expect((await c.request("x")).map(String)).toEqual(["x"]);
    await restarted;
    expect(worker.identity).toBe("fixed");
    expect(worker.stats()).toMatchObject({ restarts: 1, replies: 1 });
  });

  it("3.3: multi-frame requests and replies pass through unchanged", async () => {
    const queue = await startQueue();
    const ready = next(queue, "workerReady");
    track(await SimplePirateWorker.start({ endpoint: queue.endpoints.backend }));
    await ready;
    const c = client(queue);
    const body: FrameLike[] = ["a", Buffer.from([0, 1, 2]), ""];
    expect(await c.request(body)).toEqual([b("a"), Buffer.from([0, 1, 2]), EMPTY]);
  });

  it("reports its real endpoints, fails fast on bad options, and closes idempotently", async () => {
    await expect(SimplePirateQueue.start({ frontend: "localhost:5555" })).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
    });
    await expect(SimplePirateQueue.start({ backend: "tcp://*:99999" })).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
    });

    const queue = await SimplePirateQueue.start({
      frontend: "tcp://127.0.0.1:*",
      backend: "tcp://127.0.0.1:*",
    });
    const { frontend, backend } = queue.endpoints;
    expect(frontend).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);
    expect(backend).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);
    expect(frontend).not.toBe(backend);
    const first = queue.close();
    expect(queue.close()).toBe(first);
    await first;
    await queue[Symbol.asyncDispose]();
    expect(queue.stats().workersReady).toBe(0);
  });

  it("a second queue cannot bind the same endpoint and cleans up after itself", async () => {
    const queue = await startQueue();
    await expect(
      SimplePirateQueue.start({
        frontend: await allocateAddress("tcp"),
        backend: queue.endpoints.backend,
      }),
    ).rejects.toBeDefined();
  });
});
