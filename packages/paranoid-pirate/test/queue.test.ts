import { allocateAddress, Tap } from "@zmq-patterns/core/testing";
import { LazyPirateClient } from "@zmq-patterns/lazy-pirate";
import { afterEach, describe, expect, it } from "vitest";
import { ParanoidPirateQueue, ParanoidPirateWorker } from "../src/index.js";

const E = Buffer.alloc(0);
const cleanup: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const item of cleanup.splice(0).reverse()) await item.close();
});

function track<T extends { close(): unknown }>(item: T): T {
  cleanup.push(item);
  return item;
}

async function queue(
  options: {
    heartbeatIntervalMs?: number;
    liveness?: number;
    unknownWorkerHeartbeat?: "ignore" | "register";
  } = {},
) {
  const q = track(
    await ParanoidPirateQueue.start({
      frontend: await allocateAddress(),
      backend: await allocateAddress(),
      heartbeatIntervalMs: 100,
      // Tap workers do not heartbeat; expiry is tested in faults.test.ts, not here.
      liveness: 50,
      ...options,
    }),
  );
  return q;
}

/** A raw worker: a DEALER on the queue's backend. */
async function tapWorker(q: ParanoidPirateQueue, ready = true) {
  const worker = track(await Tap.dealer(q.endpoints.backend));
  if (ready) {
    const registered = new Promise((resolve) => q.once("workerReady", resolve));
    await worker.send([Buffer.from([1])]);
    await registered;
  }
  return worker;
}

/** Resolves with the reasons of the next `count` drops; register it before causing them. */
function nextDrops(q: ParanoidPirateQueue, count: number, timeoutMs = 5000): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const reasons: string[] = [];
    const listener = ({ reason }: { reason: string }): void => {
      reasons.push(reason);
      if (reasons.length < count) return;
      clearTimeout(timer);
      q.off("dropped", listener);
      resolve(reasons);
    };
    const timer = setTimeout(() => {
      q.off("dropped", listener);
      reject(new Error(`${reasons.length} of ${count} drops within ${timeoutMs} ms: ${reasons}`));
    }, timeoutMs);
    q.on("dropped", listener);
  });
}

/** Receives from a tap, skipping heartbeats. */
async function nextRequest(tap: Tap, timeoutMs = 10_000): Promise<Buffer[]> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const frames = await tap.receive(Math.max(1, deadline - performance.now()));
    if (!(frames.length === 1 && frames[0]?.equals(Buffer.from([2])))) return frames;
  }
}

describe("ParanoidPirateQueue", () => {
  it("PPQ-3 (conformance 2): reads no client request until a worker is ready, then serves it", async () => {
    const q = await queue();
    const client = track(await Tap.dealer(q.endpoints.frontend));
    await client.send(["", "early"]);
    const dispatched = new Promise((resolve) => q.once("requestDispatched", resolve));
    const worker = await tapWorker(q);
    await dispatched;
    const request = await nextRequest(worker);
    expect(request.slice(1)).toEqual([E, Buffer.from("early")]);
    await worker.send([request[0] as Buffer, E, "done"]);
    expect(await client.receive()).toEqual([E, Buffer.from("done")]);
  });

  it("4.4 golden frames: the worker sees [C][''][body], heartbeats [0x02]; the client gets [''][reply]", async () => {
    const q = await queue();
    const worker = await tapWorker(q);
    const heartbeat = await worker.receive();
    expect(heartbeat).toEqual([Buffer.from([2])]);
    const client = track(await Tap.dealer(q.endpoints.frontend, { routingId: "client-1" }));
    await client.send(["", "a", "b"]);
    expect(await nextRequest(worker)).toEqual([
      Buffer.from("client-1"),
      E,
      Buffer.from("a"),
      Buffer.from("b"),
    ]);
    await worker.send(["client-1", "", "r1", "r2"]);
    expect(await client.receive()).toEqual([E, Buffer.from("r1"), Buffer.from("r2")]);
  });

  it("SP-1/PPQ-1: requests go to idle workers least recently used first", async () => {
    const q = await queue();
    for (let index = 0; index < 3; index++) {
      const registered = new Promise((resolve) => q.once("workerReady", resolve));
      track(
        await ParanoidPirateWorker.start({
          endpoint: q.endpoints.backend,
          heartbeatIntervalMs: 100,
          handler: () => [String(index)],
        }),
      );
      await registered;
    }
    const client = track(
      new LazyPirateClient({ endpoint: q.endpoints.frontend, timeoutMs: 2000, retries: 1 }),
    );
    const order: string[] = [];
    for (let i = 0; i < 6; i++) order.push(String((await client.request("who?"))[0]));
    expect(order).toEqual(["0", "1", "2", "0", "1", "2"]);
  });

  it("PP-B1: a worker that heartbeats while busy is not sent a second request", async () => {
    const q = await queue();
    const worker = await tapWorker(q);
    const clientA = track(
      new LazyPirateClient({ endpoint: q.endpoints.frontend, timeoutMs: 5000, retries: 1 }),
    );
    const clientB = track(
      new LazyPirateClient({ endpoint: q.endpoints.frontend, timeoutMs: 5000, retries: 1 }),
    );
    const a = clientA.request("A");
    const requestA = await nextRequest(worker);
    const b = clientB.request("B");
    // Heartbeat through five intervals while busy: the queue must keep B waiting.
    for (let i = 0; i < 5; i++) {
      await worker.send([Buffer.from([2])]);
      const frames = await worker.receive(1000);
      expect(frames).toEqual([Buffer.from([2])]);
    }
    expect(q.stats()).toMatchObject({ workersIdle: 0, workersBusy: 1, requestsDispatched: 1 });
    await worker.send([requestA[0] as Buffer, E, "reply A"]);
    expect((await a).map(String)).toEqual(["reply A"]);
    const requestB = await nextRequest(worker);
    expect(String(requestB[2])).toBe("B");
    await worker.send([requestB[0] as Buffer, E, "reply B"]);
    expect((await b).map(String)).toEqual(["reply B"]);
  });

  it("PPP-R3/PPQ-5: ignores heartbeats from unknown workers by default; registers them when asked", async () => {
    const strict = await queue();
    const stranger = await tapWorker(strict, false);
    const dropped = new Promise((resolve) => strict.once("dropped", resolve));
    await stranger.send([Buffer.from([2])]);
    expect(await dropped).toMatchObject({ reason: "heartbeat from unknown worker" });
    expect(strict.stats().workersIdle).toBe(0);

    const lenient = await queue({ unknownWorkerHeartbeat: "register" });
    const known = await tapWorker(lenient, false);
    const ready = new Promise((resolve) => lenient.once("workerReady", resolve));
    await known.send([Buffer.from([2])]);
    await ready;
    expect(lenient.stats().workersIdle).toBe(1);
  });

  it("drops, counts and logs malformed worker and client messages, and keeps serving", async () => {
    // The tap workers never heartbeat: a long liveness keeps expiry, not tested here, out of the way.
    const q = await queue({ heartbeatIntervalMs: 1000, liveness: 60 });
    const good = await tapWorker(q);
    const bad = await tapWorker(q, false);
    const garbage: Array<Array<string | Buffer>> = [
      [""],
      [Buffer.from([7])],
      [Buffer.from([1, 1])],
      ["C", "no delimiter"],
      ["C", ""],
      ["", "no address"],
    ];
    const expected = {
      "command frame is not one byte": 2,
      "unknown command": 1,
      "reply without envelope delimiter": 1,
      "missing frame: body": 2, // [C][""] from a worker, and a client's [""] (no body)
      "reply without address": 1,
      "request without envelope delimiter": 1,
      "reply from idle worker": 1,
    };
    const drops = nextDrops(
      q,
      Object.values(expected).reduce((sum, n) => sum + n),
    );
    for (const frames of garbage) await bad.send(frames);
    const rawClient = track(await Tap.dealer(q.endpoints.frontend));
    await rawClient.send(["no delimiter"]);
    await rawClient.send([""]);
    // A reply from an idle worker is refused too (PP-B7).
    await good.send(["someone", "", "unasked"]);
    // Every drop is seen before a client request is sent. The queue reads each peer's messages in
    // turn, not in the order they were sent: were the request dispatched to `good` before the
    // unasked reply was read, `good` would be busy and that reply would answer the request.
    await drops;
    expect(q.stats().dropped).toEqual(expected);

    const client = track(
      new LazyPirateClient({ endpoint: q.endpoints.frontend, timeoutMs: 10_000, retries: 1 }),
    );
    const reply = client.request("still served?");
    const request = await nextRequest(good);
    await good.send([request[0] as Buffer, E, "yes"]);
    expect((await reply).map(String)).toEqual(["yes"]);
    expect(q.stats()).toMatchObject({
      requestsDispatched: 1,
      repliesForwarded: 1,
      dropped: expected,
    });
  });

  it("works end to end with ParanoidPirateWorker and LazyPirateClient", async () => {
    const q = await queue();
    for (let i = 0; i < 2; i++) {
      track(
        await ParanoidPirateWorker.start({
          endpoint: q.endpoints.backend,
          heartbeatIntervalMs: 100,
          handler: async ([body]) => [`echo:${body}`],
        }),
      );
    }
    const client = track(
      new LazyPirateClient({ endpoint: q.endpoints.frontend, timeoutMs: 2000, retries: 1 }),
    );
    for (let i = 0; i < 10; i++)
      expect((await client.request(String(i))).map(String)).toEqual([`echo:${i}`]);
    expect(q.stats()).toMatchObject({ requestsDispatched: 10, repliesForwarded: 10 });
  });

  it("fails fast on bad options; close() is idempotent", async () => {
    await expect(ParanoidPirateQueue.start({ frontend: "nope" })).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
    });
    await expect(ParanoidPirateQueue.start({ liveness: 0 })).rejects.toThrow(/liveness/);
    const q = await queue();
    await q.close();
    await q.close();
  });
});
