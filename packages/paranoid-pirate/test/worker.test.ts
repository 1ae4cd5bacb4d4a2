import { AbortedError } from "@zmq-patterns/core";
import { Tap } from "@zmq-patterns/core/testing";
import { afterEach, describe, expect, it } from "vitest";
import { ParanoidPirateWorker, type ParanoidPirateWorkerOptions } from "../src/index.js";

const E = Buffer.alloc(0);
const HEARTBEAT = Buffer.from([2]);
const READY = Buffer.from([1]);
const cleanup: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const item of cleanup.splice(0).reverse()) await item.close();
});

async function fakeQueue() {
  const queue = await Tap.router();
  cleanup.push(queue);
  return queue;
}

async function worker(options: ParanoidPirateWorkerOptions) {
  const w = await ParanoidPirateWorker.start({ heartbeatIntervalMs: 100, ...options });
  cleanup.push(w);
  return w;
}

describe("ParanoidPirateWorker", () => {
  it("conformance 1: says READY first, then heartbeats about every interval", async () => {
    const queue = await fakeQueue();
    await worker({ endpoint: queue.endpoint });
    const [id, first] = await queue.receive();
    expect(first).toEqual(READY);
    const started = performance.now();
    for (let i = 0; i < 5; i++) {
      const [from, frame] = await queue.receive(1000);
      expect(from).toEqual(id);
      expect(frame).toEqual(HEARTBEAT);
      await queue.send([id as Buffer, HEARTBEAT]); // a live queue heartbeats back
    }
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThan(350);
    expect(elapsed).toBeLessThan(1500);
  });

  it("answers [C][''][body] with [C][''][reply], keeping the address stack", async () => {
    const queue = await fakeQueue();
    await worker({ endpoint: queue.endpoint, handler: async (body) => ["re", ...body] });
    const [id] = await queue.receive();
    await queue.send([id as Buffer, "hop1", "client", "", "a", "b"]);
    for (;;) {
      const [, ...frames] = await queue.receive();
      if (frames.length === 1) continue; // heartbeat
      expect(frames).toEqual([
        Buffer.from("hop1"),
        Buffer.from("client"),
        E,
        Buffer.from("re"),
        Buffer.from("a"),
        Buffer.from("b"),
      ]);
      break;
    }
  });

  it("PPW-5 fixed: heartbeats keep flowing while a handler awaits", async () => {
    const queue = await fakeQueue();
    let release!: () => void;
    const handled = new Promise<void>((resolve) => (release = resolve));
    await worker({
      endpoint: queue.endpoint,
      handler: async (body) => {
        await handled;
        return body;
      },
    });
    const [id] = await queue.receive();
    await queue.send([id as Buffer, "C", "", "work"]);
    // The handler is blocked: keep the worker alive with our heartbeats and count its own.
    let heartbeats = 0;
    while (heartbeats < 6) {
      const [, frame] = await queue.receive(1000);
      if (frame?.equals(HEARTBEAT)) heartbeats++;
      await queue.send([id as Buffer, HEARTBEAT]);
    }
    release();
    for (;;) {
      const frames = await queue.receive();
      if (frames.length > 2) {
        expect(String(frames.at(-1))).toBe("work");
        break;
      }
    }
  });

  it("PPW-1/PPW-2: reconnects with a new socket and READY after `liveness` silent intervals, with doubling delays reset by any message", async () => {
    const queue = await fakeQueue();
    const w = await worker({
      endpoint: queue.endpoint,
      liveness: 2,
      reconnectInitialMs: 50,
      reconnectMaxMs: 200,
    });
    const delays: number[] = [];
    w.on("disconnected", ({ delayMs }) => delays.push(delayMs));
    const readies: Buffer[] = [];
    while (readies.length < 5) {
      const [id, frame] = await queue.receive(3000);
      if (frame?.equals(READY)) readies.push(id as Buffer);
    }
    expect(delays.slice(0, 4)).toEqual([50, 100, 200, 200]);
    expect(new Set(readies.map((id) => id.toString("hex"))).size).toBe(5);
    // Now answer: any message resets the back-off.
    const last = readies.at(-1) as Buffer;
    await queue.send([last, HEARTBEAT]);
    const next = new Promise<number>((resolve) =>
      w.once("disconnected", ({ delayMs }) => resolve(delayMs)),
    );
    expect(await next).toBe(50);
    expect(w.stats().reconnects).toBeGreaterThanOrEqual(5);
  });

  it("aborts a running handler's signal when the queue is lost, and sends no stale reply", async () => {
    const queue = await fakeQueue();
    let aborted: unknown;
    const w = await worker({
      endpoint: queue.endpoint,
      liveness: 2,
      reconnectInitialMs: 5000,
      handler: (_body, { signal }) =>
        new Promise((_resolve, reject) => {
          signal.addEventListener("abort", () => {
            aborted = signal.reason;
            reject(signal.reason);
          });
        }),
    });
    const [id] = await queue.receive();
    await queue.send([id as Buffer, "C", "", "never answered"]);
    await new Promise((resolve) => w.once("disconnected", resolve));
    expect(aborted).toBeInstanceOf(AbortedError);
  });

  it("drops invalid messages from the queue and keeps working", async () => {
    const queue = await fakeQueue();
    const w = await worker({ endpoint: queue.endpoint });
    const [id] = await queue.receive();
    const dropped = new Promise((resolve) => w.once("dropped", resolve));
    await queue.send([id as Buffer, Buffer.from([9])]);
    expect(await dropped).toEqual({ reason: "unknown command" });
    await queue.send([id as Buffer, "C", "", "ok?"]);
    for (;;) {
      const frames = await queue.receive();
      if (frames.length > 2) {
        expect(String(frames.at(-1))).toBe("ok?");
        break;
      }
    }
  });

  it("close() is idempotent and stops heartbeats", async () => {
    const queue = await fakeQueue();
    const w = await worker({ endpoint: queue.endpoint });
    await queue.receive();
    await w.close();
    await w.close();
    // What was sent before close may still be in flight; after that, nothing more arrives.
    for (let attempt = 0; ; attempt++) {
      try {
        await queue.expectNothing(250);
        break;
      } catch (error) {
        if (attempt >= 3) throw error;
      }
    }
  });

  it("fails fast on bad options", async () => {
    await expect(ParanoidPirateWorker.start({ endpoint: "x" })).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
    });
    await expect(
      ParanoidPirateWorker.start({ reconnectInitialMs: 10, reconnectMaxMs: 5 }),
    ).rejects.toThrow(/maxMs/);
  });
});
