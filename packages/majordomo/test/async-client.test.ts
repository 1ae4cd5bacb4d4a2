import { AbortedError, ClosedError, TimeoutError } from "@zmq-patterns/core";
import { allocateAddress, Tap } from "@zmq-patterns/core/testing";
import { afterEach, describe, expect, it } from "vitest";
import type { Router } from "zeromq";
import { MajordomoAsyncClient, type MajordomoAsyncClientOptions } from "../src/async-client.js";
import { MajordomoBroker } from "../src/broker.js";
import { MajordomoWorker } from "../src/worker.js";

const E = Buffer.alloc(0);
const b = (...bytes: number[]) => Buffer.from(bytes);
const t = (text: string) => Buffer.from(text);
const C01 = t("MDPC01");
const C02 = t("MDPC02");
/** Client messages after the client's identity, as the broker's ROUTER sees and sends them. */
const V01 = {
  request: (service: string, ...body: string[]) => [E, C01, t(service), ...body.map(t)],
  reply: (service: string, ...body: string[]) => [E, C01, t(service), ...body.map(t)],
};
const V02 = {
  request: (service: string, ...body: string[]) => [C02, b(1), t(service), ...body.map(t)],
  partial: (service: string, ...body: string[]) => [C02, b(2), t(service), ...body.map(t)],
  final: (service: string, ...body: string[]) => [C02, b(3), t(service), ...body.map(t)],
};

const cleanup: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const item of cleanup.splice(0).reverse()) await item.close();
});

async function fakeBroker(): Promise<Tap<Router>> {
  const broker = await Tap.router();
  cleanup.push(broker);
  return broker;
}

function client(options: MajordomoAsyncClientOptions) {
  const c = new MajordomoAsyncClient(options);
  cleanup.push(c);
  return c;
}

async function nextRequest(broker: Tap<Router>, timeoutMs = 2000) {
  const [id, ...frames] = await broker.receive(timeoutMs);
  return { id: id as Buffer, frames };
}

const text = (reply: { service: string; body: Buffer[]; final: boolean }) =>
  `${reply.service}:${reply.body.map(String).join(",")}${reply.final ? "" : " (partial)"}`;

describe("MajordomoAsyncClient on the wire (fake broker)", () => {
  it("5.9/MDA-3 golden frames: requests leave at once on one DEALER as [C][''][MDPC01][service][body]", async () => {
    const broker = await fakeBroker();
    const c = client({ broker: broker.endpoint });
    for (const body of ["a", "b", "c"]) await c.send("echo", body);
    expect(c.inFlight).toBe(3);
    const ids = new Set<string>();
    for (const body of ["a", "b", "c"]) {
      const { id, frames } = await nextRequest(broker);
      expect(frames).toEqual(V01.request("echo", body));
      ids.add(id.toString("hex"));
    }
    expect(ids.size).toBe(1);
  });

  it("MDA-1: several requests in flight; replies come in arrival order, not request order", async () => {
    const broker = await fakeBroker();
    const c = client({ broker: broker.endpoint });
    await c.send("echo", "1");
    await c.send("echo", "2");
    await c.send("upper", "3");
    const { id } = await nextRequest(broker);
    await broker.send([id, ...V01.reply("upper", "THREE")]);
    await broker.send([id, ...V01.reply("echo", "two")]);
    await broker.send([id, ...V01.reply("echo", "one")]);
    const replies = [];
    for (let i = 0; i < 3; i++) replies.push(text(await c.receive({ timeoutMs: 2000 })));
    expect(replies).toEqual(["upper:THREE", "echo:two", "echo:one"]);
    expect(c.inFlight).toBe(0);
    expect(c.stats()).toMatchObject({ sent: 3, replies: 3, partials: 0, inFlight: 0 });
  });

  it("maxInFlight: send waits while the bound is reached; each final reply frees one slot, in order", async () => {
    const broker = await fakeBroker();
    const c = client({ broker: broker.endpoint, maxInFlight: 2 });
    await c.send("echo", "1");
    await c.send("echo", "2");
    const order: string[] = [];
    const third = c.send("echo", "3").then(() => order.push("3"));
    const fourth = c.send("echo", "4").then(() => order.push("4"));
    const { id } = await nextRequest(broker);
    await nextRequest(broker);
    await broker.expectNothing(100); // 3 and 4 wait for room
    expect(order).toEqual([]);
    expect(c.inFlight).toBe(2);
    await broker.send([id, ...V01.reply("echo", "1")]);
    await third;
    expect((await nextRequest(broker)).frames).toEqual(V01.request("echo", "3"));
    expect(order).toEqual(["3"]);
    expect(c.inFlight).toBe(2);
    await broker.send([id, ...V01.reply("echo", "2")]);
    await fourth;
    expect((await nextRequest(broker)).frames).toEqual(V01.request("echo", "4"));
    expect(order).toEqual(["3", "4"]);
  });

  it("MDA-1: a receive timeout cancels nothing; the late reply comes with the next receive", async () => {
    const broker = await fakeBroker();
    const c = client({ broker: broker.endpoint });
    await c.send("echo", "slow");
    const { id } = await nextRequest(broker);
    await expect(c.receive({ timeoutMs: 100 })).rejects.toBeInstanceOf(TimeoutError);
    expect(c.inFlight).toBe(1);
    await broker.send([id, ...V01.reply("echo", "late")]);
    expect(text(await c.receive({ timeoutMs: 2000 }))).toBe("echo:late");
    expect(c.inFlight).toBe(0);
  });

  it("6.2: MDP/0.2 partials are delivered with final false and only FINAL frees the slot", async () => {
    const broker = await fakeBroker();
    const c = client({ broker: broker.endpoint, version: "0.2", maxInFlight: 1 });
    await c.send("stream", "go");
    const { id, frames } = await nextRequest(broker);
    expect(frames).toEqual(V02.request("stream", "go"));
    let sent = false;
    const next = c.send("stream", "again").then(() => (sent = true));
    await broker.send([id, ...V02.partial("stream", "1")]);
    expect(text(await c.receive({ timeoutMs: 2000 }))).toBe("stream:1 (partial)");
    expect(sent).toBe(false);
    expect(c.inFlight).toBe(1);
    await broker.send([id, ...V02.final("stream", "done")]);
    expect(text(await c.receive({ timeoutMs: 2000 }))).toBe("stream:done");
    await next;
    expect(sent).toBe(true);
    expect(c.stats()).toMatchObject({ sent: 2, replies: 1, partials: 1, inFlight: 1 });
  });

  it("MDC-3 spirit: malformed replies, the other version, and replies for nothing in flight are discarded and counted", async () => {
    const broker = await fakeBroker();
    const c = client({ broker: broker.endpoint });
    const discarded: string[] = [];
    c.on("discarded", ({ reason }) => discarded.push(reason));
    await c.send("echo", "x");
    const { id } = await nextRequest(broker);
    await broker.send([id, E, C01]); // no service
    await broker.send([id, ...V02.final("echo", "0.2")]);
    await broker.send([id, E, t("MDPC09"), t("echo"), t("?")]);
    await broker.send([id, ...V01.reply("other", "not ours")]);
    await broker.send([id, ...V01.reply("echo", "ours")]);
    expect(text(await c.receive({ timeoutMs: 2000 }))).toBe("echo:ours");
    // A second reply when nothing is in flight any more.
    await broker.send([id, ...V01.reply("echo", "duplicate")]);
    await expect(c.receive({ timeoutMs: 100 })).rejects.toBeInstanceOf(TimeoutError);
    expect(discarded).toEqual([
      "missing frame: service",
      "unexpected protocol version",
      "unexpected header",
      "no request in flight for this service",
      "no request in flight for this service",
    ]);
    expect(c.stats().discarded).toMatchObject({ "no request in flight for this service": 2 });
    expect(c.inFlight).toBe(0);
  });

  it("iterates over replies until closed", async () => {
    const broker = await fakeBroker();
    const c = client({ broker: broker.endpoint });
    for (const body of ["1", "2", "3"]) await c.send("echo", body);
    const { id } = await nextRequest(broker);
    for (const body of ["1", "2", "3"]) await broker.send([id, ...V01.reply("echo", body)]);
    const seen: string[] = [];
    for await (const reply of c) {
      seen.push(text(reply));
      if (seen.length === 3) break;
    }
    expect(seen).toEqual(["echo:1", "echo:2", "echo:3"]);
    const rest = (async () => {
      for await (const reply of c) seen.push(text(reply));
      return "ended";
    })();
    await c.close();
    expect(await rest).toBe("ended");
  });

  it("a send waiting for room can be aborted; close() rejects waiting sends and receives with ClosedError", async () => {
    const broker = await fakeBroker();
    const c = client({ broker: broker.endpoint, maxInFlight: 1 });
    await c.send("echo", "1");
    // Seen at the broker before the client closes: close() uses linger 0 and may discard it otherwise.
    const [, ...frames] = await broker.receive();
    expect(frames).toEqual(V01.request("echo", "1"));
    const controller = new AbortController();
    const aborted = c.send("echo", "2", { signal: controller.signal });
    controller.abort();
    await expect(aborted).rejects.toBeInstanceOf(AbortedError);
    const waiting = c.send("echo", "3");
    const receiving = c.receive();
    await c.close();
    await c.close();
    await expect(waiting).rejects.toBeInstanceOf(ClosedError);
    await expect(receiving).rejects.toBeInstanceOf(ClosedError);
    await expect(c.send("echo", "4")).rejects.toMatchObject({ code: "CLOSED" });
    await broker.expectNothing(100);
  });

  it("fails fast on bad options, service names and bodies", () => {
    for (const options of [
      { broker: "nowhere" },
      { maxInFlight: 0 },
      { version: "2" as "0.1" },
    ] as MajordomoAsyncClientOptions[]) {
      expect(() => new MajordomoAsyncClient(options)).toThrow(
        expect.objectContaining({ code: "INVALID_ARGUMENT" }),
      );
    }
    const c = client({ broker: "tcp://127.0.0.1:1" });
    expect(() => c.send("", "x")).toThrow(/service/);
    expect(() => c.send("echo", [])).toThrow(/frame/);
  });
});

describe("MajordomoAsyncClient with the broker and workers", () => {
  it("5.9: many requests in flight are all answered by several workers", async () => {
    const mdp = await MajordomoBroker.start({
      bind: await allocateAddress(),
      heartbeatIntervalMs: 100,
    });
    cleanup.push(mdp);
    const endpoint = mdp.endpoints[0] as string;
    let ready = 0;
    const allReady = new Promise<void>((resolve) =>
      mdp.on("workerReady", () => ++ready === 3 && resolve()),
    );
    for (let i = 0; i < 3; i++) {
      const w = await MajordomoWorker.start({
        broker: endpoint,
        service: "echo",
        heartbeatIntervalMs: 100,
        version: i === 0 ? "0.2" : "0.1",
        handler: async (body) => {
          await new Promise((resolve) => setTimeout(resolve, 5));
          return body;
        },
      });
      cleanup.push(w);
    }
    await allReady;
    const c = client({ broker: endpoint, maxInFlight: 10 });
    const count = 200;
    const sending = (async () => {
      for (let i = 0; i < count; i++) await c.send("echo", String(i));
    })();
    const got = new Set<string>();
    while (got.size < count) got.add(String((await c.receive({ timeoutMs: 5000 })).body[0]));
    await sending;
    expect(got.size).toBe(count);
    expect(c.inFlight).toBe(0);
  });
});
