import { ProtocolError } from "@zmq-patterns/core";
import { allocateAddress, Tap } from "@zmq-patterns/core/testing";
import { afterEach, describe, expect, it } from "vitest";
import {
  decodeBackend,
  decodeFrontend,
  decodeWorkerRequest,
  encodeClientReply,
  encodeDispatch,
  encodeReady,
  encodeWorkerReply,
  SimplePirateQueue,
  SimplePirateWorker,
  WORKER_READY,
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
const ONE = Buffer.from([0x01]);

function reasonOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    if (error instanceof ProtocolError) return error.reason;
    throw error;
  }
  throw new Error("expected a ProtocolError");
}

async function queue() {
  return track(
    await SimplePirateQueue.start({
      frontend: await allocateAddress("tcp"),
      backend: await allocateAddress("tcp"),
    }),
  );
}

describe("codec", () => {
  it("3.2: WORKER_READY is the single byte 0x01", () => {
    expect(WORKER_READY).toEqual(ONE);
    expect(encodeReady()).toEqual([ONE]);
  });

  it("3.3: decodeFrontend accepts [C][''][req...] and multi-hop envelopes", () => {
    expect(decodeFrontend([b("C"), EMPTY, b("a"), b("b")])).toEqual({
      envelope: [b("C")],
      body: [b("a"), b("b")],
    });
    expect(decodeFrontend([b("P"), b("C"), EMPTY, b("a")])).toEqual({
      envelope: [b("P"), b("C")],
      body: [b("a")],
    });
    // Only the first empty frame is the delimiter: later empty frames are body.
    expect(decodeFrontend([b("C"), EMPTY, EMPTY, b("x")]).body).toEqual([EMPTY, b("x")]);
  });

  it("3.3: decodeFrontend rejects a missing delimiter or body with a reason", () => {
    expect(reasonOf(() => decodeFrontend([b("C")]))).toBe("missing frame: client delimiter");
    expect(reasonOf(() => decodeFrontend([b("C"), b("hello")]))).toBe(
      "missing frame: client delimiter",
    );
    expect(reasonOf(() => decodeFrontend([b("C"), EMPTY]))).toBe("missing frame: request body");
    expect(reasonOf(() => decodeFrontend([]))).toBe("missing frame: client identity");
  });

  it("SP-B1: decodeBackend takes exactly [W][''][0x01] as READY", () => {
    expect(decodeBackend([b("W"), EMPTY, ONE])).toEqual({ type: "ready", worker: b("W") });
  });

  it("SP-B1: a reply to a client whose identity starts with 0x01 is a reply, not READY", () => {
    const client = Buffer.from([0x01, 0xaa, 0xbb]);
    expect(decodeBackend([b("W"), EMPTY, client, EMPTY, b("rep")])).toEqual({
      type: "reply",
      worker: b("W"),
      reply: { envelope: [client], body: [b("rep")] },
    });
    // Even a client identity that is exactly 0x01, with a reply.
    expect(decodeBackend([b("W"), EMPTY, ONE, EMPTY, b("rep")])).toMatchObject({ type: "reply" });
    // A "READY" with more after it is neither READY nor a valid reply.
    expect(reasonOf(() => decodeBackend([b("W"), EMPTY, ONE, b("x")]))).toBe(
      "missing frame: client delimiter",
    );
  });

  it("3.3: decodeBackend accepts [W][''][C...][''][rep...]", () => {
    expect(decodeBackend([b("W"), EMPTY, b("P"), b("C"), EMPTY, b("r1"), b("r2")])).toEqual({
      type: "reply",
      worker: b("W"),
      reply: { envelope: [b("P"), b("C")], body: [b("r1"), b("r2")] },
    });
  });

  it("3.3: decodeBackend rejects malformed worker messages with a reason", () => {
    expect(reasonOf(() => decodeBackend([b("W")]))).toBe("missing frame: worker delimiter");
    expect(reasonOf(() => decodeBackend([b("W"), ONE]))).toBe(
      "worker delimiter frame is not empty",
    );
    expect(reasonOf(() => decodeBackend([b("W"), EMPTY]))).toBe("missing frame: client address");
    expect(reasonOf(() => decodeBackend([b("W"), EMPTY, EMPTY]))).toBe(
      "client address frame is empty",
    );
    expect(reasonOf(() => decodeBackend([b("W"), EMPTY, b("garbage")]))).toBe(
      "missing frame: client delimiter",
    );
    expect(reasonOf(() => decodeBackend([b("W"), EMPTY, b("C"), EMPTY]))).toBe(
      "missing frame: reply body",
    );
  });

  it("3.3: encoders build the queue's and the worker's frames", () => {
    const request = { envelope: [b("C")], body: [b("req")] };
    expect(encodeDispatch(b("W"), request)).toEqual([b("W"), EMPTY, b("C"), EMPTY, b("req")]);
    expect(encodeClientReply({ envelope: [b("P"), b("C")], body: [b("rep")] })).toEqual([
      b("P"),
      b("C"),
      EMPTY,
      b("rep"),
    ]);
    expect(decodeWorkerRequest([b("C"), EMPTY, b("req")])).toEqual(request);
    expect(encodeWorkerReply([b("C")], ["rep", Buffer.from([1, 2])])).toEqual([
      b("C"),
      EMPTY,
      b("rep"),
      Buffer.from([1, 2]),
    ]);
    // A message needs a frame: an empty reply is one empty frame.
    expect(encodeWorkerReply([b("C")], [])).toEqual([b("C"), EMPTY, EMPTY]);
    expect(reasonOf(() => decodeWorkerRequest([b("C"), b("req")]))).toBe(
      "missing frame: client delimiter",
    );
  });
});

describe("golden frames on the wire", () => {
  it("3.3/ENV-4: a worker's READY is [''][0x01] on the wire, [W][''][0x01] at a ROUTER", async () => {
    const backend = track(await Tap.router());
    const worker = track(
      await SimplePirateWorker.start({ endpoint: backend.endpoint, identity: "W-1" }),
    );
    expect(await backend.receive()).toEqual([b("W-1"), EMPTY, ONE]);
    expect(worker.identity).toBe("W-1");
  });

  it("3.1: a worker's default identity is random, in the Guide's %04X-%04X format", async () => {
    const backend = track(await Tap.router());
    const worker = track(await SimplePirateWorker.start({ endpoint: backend.endpoint }));
    const [identity] = await backend.receive();
    expect(String(identity)).toMatch(/^[0-9A-F]{4}-[0-9A-F]{4}$/);
    expect(String(identity)).toBe(worker.identity);
  });

  it("SP-4/3.3: the queue sends [W][''][C][''][body...] to the worker W", async () => {
    const q = await queue();
    const workerTap = track(await Tap.dealer(q.endpoints.backend, { routingId: "W" }));
    const ready = new Promise((resolve) => q.once("workerReady", resolve));
    await workerTap.send(["", WORKER_READY]);
    await ready;
    const client = track(await Tap.dealer(q.endpoints.frontend, { routingId: "C" }));
    await client.send(["", "hello", Buffer.from([0, 1])]);
    // The ROUTER used [W] to route and stripped it: the DEALER named W sees the rest.
    expect(await workerTap.receive()).toEqual([
      EMPTY,
      b("C"),
      EMPTY,
      b("hello"),
      Buffer.from([0, 1]),
    ]);
  });

  it("3.3: a worker's reply [W][''][C][''][rep] reaches the client exactly as [''][rep]", async () => {
    const q = await queue();
    const workerTap = track(await Tap.dealer(q.endpoints.backend, { routingId: "W" }));
    await workerTap.send(["", WORKER_READY]);
    const client = track(await Tap.dealer(q.endpoints.frontend, { routingId: "C" }));
    await client.send(["", "req"]);
    const [, clientId, , body] = await workerTap.receive();
    expect(body).toEqual(b("req"));
    await workerTap.send(["", clientId as Buffer, "", "rep"]);
    expect(await client.receive()).toEqual([EMPTY, b("rep")]);
  });

  it("SP-B1: a reply to a client whose identity starts with 0x01 is forwarded, not taken as READY", async () => {
    const q = await queue();
    const clientId = Buffer.from([0x01, 0x42]);
    const workerTap = track(await Tap.dealer(q.endpoints.backend, { routingId: "W" }));
    await workerTap.send(["", WORKER_READY]);
    const client = track(await Tap.dealer(q.endpoints.frontend, { routingId: clientId }));
    await client.send(["", "req"]);
    expect(await workerTap.receive()).toEqual([EMPTY, clientId, EMPTY, b("req")]);
    await workerTap.send(["", clientId, "", "rep"]);
    expect(await client.receive()).toEqual([EMPTY, b("rep")]);
    expect(q.stats()).toMatchObject({ repliesForwarded: 1, workersReady: 1, dropped: {} });
  });
});
