import { AbortedError, ProtocolError } from "@zmq-patterns/core";
import { Tap } from "@zmq-patterns/core/testing";
import { afterEach, describe, expect, it } from "vitest";
import type { Router } from "zeromq";
import { MajordomoWorker, type MajordomoWorkerOptions } from "../src/worker.js";

const E = Buffer.alloc(0);
const b = (...bytes: number[]) => Buffer.from(bytes);
const t = (text: string) => Buffer.from(text);
const W01 = t("MDPW01");
const W02 = t("MDPW02");
/** Worker commands as the broker's ROUTER sees them, after the worker's identity. */
const V01 = {
  ready: (service: string) => [E, W01, b(1), t(service)],
  request: (client: string, ...body: string[]) => [E, W01, b(2), t(client), E, ...body.map(t)],
  reply: (client: string, ...body: string[]) => [E, W01, b(3), t(client), E, ...body.map(t)],
  heartbeat: [E, W01, b(4)],
  disconnect: [E, W01, b(5)],
};
const V02 = {
  ready: (service: string) => [W02, b(1), t(service)],
  request: (client: string, ...body: string[]) => [W02, b(2), t(client), E, ...body.map(t)],
  partial: (client: string, ...body: string[]) => [W02, b(3), t(client), E, ...body.map(t)],
  final: (client: string, ...body: string[]) => [W02, b(4), t(client), E, ...body.map(t)],
  heartbeat: [W02, b(5)],
  disconnect: [W02, b(6)],
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

async function worker(options: Partial<MajordomoWorkerOptions> & { broker: string }) {
  const w = await MajordomoWorker.start({
    service: "echo",
    heartbeatIntervalMs: 100,
    ...options,
  });
  cleanup.push(w);
  return w;
}

function isHeartbeat(frames: Buffer[]): boolean {
  const [, ...rest] = frames;
  return same(rest, V01.heartbeat) || same(rest, V02.heartbeat);
}

function same(a: readonly Buffer[], b: readonly Buffer[]): boolean {
  return a.length === b.length && a.every((frame, i) => frame.equals(b[i] as Buffer));
}

/** The next message that is not a heartbeat, as `[identity, ...frames]`. */
async function nextCommand(broker: Tap<Router>, timeoutMs = 2000): Promise<Buffer[]> {
  for (;;) {
    const frames = await broker.receive(timeoutMs);
    if (!isHeartbeat(frames)) return frames;
  }
}

/** Waits for READY and returns the worker's identity. */
async function expectReady(broker: Tap<Router>, ready: Buffer[], timeoutMs = 2000) {
  const [id, ...frames] = await nextCommand(broker, timeoutMs);
  expect(frames).toEqual(ready);
  return id as Buffer;
}

describe("MajordomoWorker on the wire (fake broker)", () => {
  it("MDP-R8, 5.4 golden frames: 0.1 READY [''][MDPW01][0x01][service], HEARTBEAT, and REPLY to a REQUEST", async () => {
    const broker = await fakeBroker();
    await worker({ broker: broker.endpoint, handler: (body) => ["re", ...body] });
    const id = await expectReady(broker, V01.ready("echo"));
    const [from, ...heartbeat] = await broker.receive(1000);
    expect(from).toEqual(id);
    expect(heartbeat).toEqual(V01.heartbeat);
    await broker.send([id, ...V01.request("client-1", "a", "b")]);
    const [replyFrom, ...reply] = await nextCommand(broker);
    expect(replyFrom).toEqual(id);
    expect(reply).toEqual(V01.reply("client-1", "re", "a", "b"));
  });

  it("6.2 golden frames: 0.2 READY [MDPW02][0x01][service], HEARTBEAT [MDPW02][0x05], PARTIAL then FINAL", async () => {
    const broker = await fakeBroker();
    await worker({
      broker: broker.endpoint,
      version: "0.2",
      handler: async (body, { partial }) => {
        await partial(["1/2", ...body]);
        await partial(["2/2", ...body]);
        return ["done"];
      },
    });
    const id = await expectReady(broker, V02.ready("echo"));
    const [, ...heartbeat] = await broker.receive(1000);
    expect(heartbeat).toEqual(V02.heartbeat);
    await broker.send([id, ...V02.request("C", "x")]);
    expect((await nextCommand(broker)).slice(1)).toEqual(V02.partial("C", "1/2", "x"));
    expect((await nextCommand(broker)).slice(1)).toEqual(V02.partial("C", "2/2", "x"));
    expect((await nextCommand(broker)).slice(1)).toEqual(V02.final("C", "done"));
  });

  it("6.1: partial() rejects with ProtocolError on MDP/0.1, and the request is not answered twice", async () => {
    const broker = await fakeBroker();
    let partialError: unknown;
    await worker({
      broker: broker.endpoint,
      handler: async (body, { partial }) => {
        partialError = await partial(body).catch((e: unknown) => e);
        return body;
      },
    });
    const id = await expectReady(broker, V01.ready("echo"));
    await broker.send([id, ...V01.request("C", "x")]);
    expect((await nextCommand(broker)).slice(1)).toEqual(V01.reply("C", "x"));
    expect(partialError).toBeInstanceOf(ProtocolError);
  });

  it("MDW-2/MDB-B12 fixed: heartbeats keep flowing, on their own timer, while a handler awaits", async () => {
    const broker = await fakeBroker();
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    await worker({
      broker: broker.endpoint,
      handler: async (body) => {
        await released;
        return body;
      },
    });
    const id = await expectReady(broker, V01.ready("echo"));
    await broker.send([id, ...V01.request("C", "slow")]);
    const started = performance.now();
    let heartbeats = 0;
    while (heartbeats < 5) {
      const frames = await broker.receive(1000);
      expect(isHeartbeat(frames)).toBe(true);
      heartbeats++;
      await broker.send([id, ...V01.heartbeat]); // a live broker heartbeats back
    }
    // Five intervals of 100 ms: never the reference's gaps of up to two intervals.
    expect(performance.now() - started).toBeLessThan(5 * 100 + 400);
    release();
    expect((await nextCommand(broker)).slice(1)).toEqual(V01.reply("C", "slow"));
  });

  it("MDP-R13: any message from the broker keeps the worker connected", async () => {
    const broker = await fakeBroker();
    const w = await worker({ broker: broker.endpoint, liveness: 2 });
    const disconnects: unknown[] = [];
    w.on("disconnected", (event) => disconnects.push(event));
    const id = await expectReady(broker, V01.ready("echo"));
    // Requests only, no heartbeats, for well over liveness x interval.
    for (let i = 0; i < 8; i++) {
      await broker.send([id, ...V01.request("C", String(i))]);
      expect((await nextCommand(broker)).slice(1)).toEqual(V01.reply("C", String(i)));
      await new Promise((resolve) => setTimeout(resolve, 60));
    }
    expect(disconnects).toEqual([]);
  });

  it("MDW-1/MDP-R11/MDB-B11: after `liveness` silent intervals it waits reconnectMs and sends READY from a new socket", async () => {
    const broker = await fakeBroker();
    const w = await worker({ broker: broker.endpoint, liveness: 2, reconnectMs: 300 });
    const first = await expectReady(broker, V01.ready("echo"));
    const readyAt = performance.now();
    const disconnected = new Promise<{ reason: string; delayMs: number; at: number }>((resolve) =>
      w.once("disconnected", (event) => resolve({ ...event, at: performance.now() })),
    );
    const second = await expectReady(broker, V01.ready("echo"), 3000);
    const again = performance.now();
    const event = await disconnected;
    expect(event).toMatchObject({ reason: "heartbeat failure", delayMs: 300 });
    // Declared dead between liveness and liveness + 1 intervals of silence (configurable: MDB-B11).
    expect(event.at - readyAt).toBeGreaterThanOrEqual(2 * 100 - 20);
    expect(event.at - readyAt).toBeLessThan(3 * 100 + 150);
    expect(again - event.at).toBeGreaterThanOrEqual(300 - 20);
    expect(second).not.toEqual(first);
    expect(w.stats().reconnects).toBe(1);
  });

  it("reconnectMaxMs: the reconnect delay doubles up to the cap and any message resets it", async () => {
    const broker = await fakeBroker();
    const w = await worker({
      broker: broker.endpoint,
      heartbeatIntervalMs: 50,
      liveness: 1,
      reconnectMs: 40,
      reconnectMaxMs: 100,
    });
    const delays: number[] = [];
    w.on("disconnected", ({ delayMs }) => delays.push(delayMs));
    let id = await expectReady(broker, V01.ready("echo"));
    for (let i = 0; i < 4; i++) id = await expectReady(broker, V01.ready("echo"), 3000);
    expect(delays.slice(0, 4)).toEqual([40, 80, 100, 100]);
    await broker.send([id, ...V01.heartbeat]);
    const next = new Promise<number>((resolve) =>
      w.once("disconnected", ({ delayMs }) => resolve(delayMs)),
    );
    expect(await next).toBe(40);
  });

  it("conformance 4/MDP-R11: on DISCONNECT it registers again at once, on a new socket", async () => {
    const broker = await fakeBroker();
    const w = await worker({ broker: broker.endpoint, reconnectMs: 10_000 });
    const first = await expectReady(broker, V01.ready("echo"));
    await broker.send([first, ...V01.heartbeat]);
    await broker.receive(); // the worker's own heartbeat: ours has arrived by now
    const reasons: string[] = [];
    w.on("disconnected", ({ reason, delayMs }) => reasons.push(`${reason} ${delayMs}`));
    await broker.send([first, ...V01.disconnect]);
    const second = await expectReady(broker, V01.ready("echo"), 1000);
    expect(second).not.toEqual(first);
    expect(reasons).toEqual(["disconnect 0"]);
  });

  it("a DISCONNECT in answer to READY waits reconnectMs, so a refusing broker is not flooded", async () => {
    const broker = await fakeBroker();
    const w = await worker({
      broker: broker.endpoint,
      heartbeatIntervalMs: 1000,
      reconnectMs: 200,
    });
    const first = await expectReady(broker, V01.ready("echo"));
    const delay = new Promise<number>((resolve) =>
      w.once("disconnected", ({ delayMs }) => resolve(delayMs)),
    );
    const sentAt = performance.now();
    await broker.send([first, ...V01.disconnect]);
    await expectReady(broker, V01.ready("echo"), 2000);
    expect(await delay).toBe(200);
    expect(performance.now() - sentAt).toBeGreaterThanOrEqual(200 - 20);
  });

  it("MDB-B10 fixed: close() sends DISCONNECT, then nothing more; close() is idempotent", async () => {
    const broker = await fakeBroker();
    const w = await worker({ broker: broker.endpoint });
    const id = await expectReady(broker, V01.ready("echo"));
    await w.close();
    await w.close();
    const [from, ...frames] = await nextCommand(broker);
    expect(from).toEqual(id);
    expect(frames).toEqual(V01.disconnect);
    await broker.expectNothing(250);
  });

  it("MDB-B10 fixed on 0.2: close() sends [MDPW02][0x06]", async () => {
    const broker = await fakeBroker();
    const w = await worker({ broker: broker.endpoint, version: "0.2" });
    await expectReady(broker, V02.ready("echo"));
    await w.close();
    expect((await nextCommand(broker)).slice(1)).toEqual(V02.disconnect);
  });

  it("MDW-4: invalid or unexpected messages from the broker are dropped and counted, never fatal", async () => {
    const broker = await fakeBroker();
    const w = await worker({ broker: broker.endpoint });
    const dropped: string[] = [];
    w.on("dropped", ({ reason }) => dropped.push(reason));
    const id = await expectReady(broker, V01.ready("echo"));
    const junk: Buffer[][] = [
      [t("garbage")],
      [E, t("MDPW99"), b(4)],
      [E, W01, b(9)],
      [E, W01],
      [E, W01, b(2), t("C")], // REQUEST without delimiter (MDP-R12)
      V02.heartbeat, // the other version
      V01.ready("echo"), // a command only workers send
      V01.reply("C", "x"),
    ];
    for (const frames of junk) await broker.send([id, ...frames]);
    await broker.send([id, ...V01.request("C", "still alive?")]);
    expect((await nextCommand(broker)).slice(1)).toEqual(V01.reply("C", "still alive?"));
    expect(dropped).toHaveLength(junk.length);
    expect(dropped).toContain("unexpected protocol version");
    expect(dropped).toContain("unknown command");
    expect(dropped).toContain("unexpected READY from broker");
    const stats = w.stats();
    expect(Object.values(stats.dropped).reduce((a, n) => a + n, 0)).toBe(junk.length);
    expect(stats).toMatchObject({ requests: 1, replies: 1, reconnects: 0 });
  });

  it("aborts the running handler's signal on heartbeat failure, and never replies on the new connection", async () => {
    const broker = await fakeBroker();
    let aborted: unknown;
    let finish!: () => void;
    const finished = new Promise<void>((resolve) => (finish = resolve));
    const w = await worker({
      broker: broker.endpoint,
      liveness: 2,
      reconnectMs: 10,
      handler: async (body, { signal }) => {
        await new Promise((resolve) => signal.addEventListener("abort", resolve));
        aborted = signal.reason;
        // A handler that ignores its signal and answers anyway.
        setTimeout(finish, 100);
        await finished;
        return body;
      },
    });
    const first = await expectReady(broker, V01.ready("echo"));
    await broker.send([first, ...V01.request("C", "lost")]);
    // The broker heartbeats its busy worker once (so it is one that does), then falls silent: the
    // worker's second heartbeat comes at least an interval into the request.
    await broker.receive();
    await broker.receive();
    await broker.send([first, ...V01.heartbeat]);
    const second = await expectReady(broker, V01.ready("echo"), 3000);
    expect(second).not.toEqual(first);
    expect(aborted).toBeInstanceOf(AbortedError);
    await finished;
    await broker.send([second, ...V01.heartbeat]);
    // Heartbeats, READYs, no REPLY: the reply belonged to the lost connection.
    const until = performance.now() + 300;
    while (performance.now() < until) {
      let frames: Buffer[];
      try {
        frames = await broker.receive(until - performance.now());
      } catch {
        break;
      }
      expect(frames.slice(1, 4)).not.toEqual([E, W01, b(3)]); // no REPLY
    }
    expect(w.stats().dropped["request lost with its connection"]).toBe(1);
  });

  it("a failing handler sends no reply: DISCONNECT, then READY on a new socket at once", async () => {
    const broker = await fakeBroker();
    const w = await worker({
      broker: broker.endpoint,
      reconnectMs: 10_000,
      handler: () => {
        throw new Error("boom");
      },
    });
    const failures: unknown[] = [];
    w.on("handlerFailed", ({ error }) => failures.push(error));
    const first = await expectReady(broker, V01.ready("echo"));
    await broker.send([first, ...V01.request("C", "x")]);
    const [from, ...frames] = await nextCommand(broker);
    expect(from).toEqual(first);
    expect(frames).toEqual(V01.disconnect);
    const second = await expectReady(broker, V01.ready("echo"), 1000);
    expect(second).not.toEqual(first);
    expect(failures).toHaveLength(1);
  });

  it("iterate: requests come one at a time through for await, answered with reply()", async () => {
    const broker = await fakeBroker();
    const w = await worker({ broker: broker.endpoint, iterate: true, version: "0.2" });
    const id = await expectReady(broker, V02.ready("echo"));
    const served = (async () => {
      const seen: string[] = [];
      for await (const request of w) {
        seen.push(String(request.body[0]));
        await request.partial(["working"]);
        await request.reply([`re:${request.body[0]}`]);
        await expect(request.reply(["twice"])).rejects.toBeInstanceOf(ProtocolError);
        if (seen.length === 2) break;
      }
      return seen;
    })();
    await broker.send([id, ...V02.request("A", "one")]);
    expect((await nextCommand(broker)).slice(1)).toEqual(V02.partial("A", "working"));
    expect((await nextCommand(broker)).slice(1)).toEqual(V02.final("A", "re:one"));
    await broker.send([id, ...V02.request("B", "two")]);
    expect((await nextCommand(broker)).slice(1)).toEqual(V02.partial("B", "working"));
    expect((await nextCommand(broker)).slice(1)).toEqual(V02.final("B", "re:two"));
    expect(await served).toEqual(["one", "two"]);
  });

  it("iterate: the iteration ends when the worker closes", async () => {
    const broker = await fakeBroker();
    const w = await worker({ broker: broker.endpoint, iterate: true });
    await expectReady(broker, V01.ready("echo"));
    const iteration = (async () => {
      for await (const _ of w) return "got a request";
      return "ended";
    })();
    await w.close();
    expect(await iteration).toBe("ended");
  });

  it("a simulated crash stops the worker without a DISCONNECT", async () => {
    const broker = await fakeBroker();
    const w = await worker({ broker: broker.endpoint, simulate: { crashProbability: 1 } });
    const crashed = new Promise<void>((resolve) => w.once("crash", () => resolve()));
    const id = await expectReady(broker, V01.ready("echo"));
    await broker.send([id, ...V01.request("C", "x")]);
    await crashed;
    for (;;) {
      try {
        await broker.expectNothing(250);
        break;
      } catch (error) {
        // A heartbeat sent before the crash may still be on its way.
        expect(isHeartbeat((error as { frames: Buffer[] }).frames)).toBe(true);
      }
    }
  });

  it("fails fast on bad options", async () => {
    const bad: Array<Partial<MajordomoWorkerOptions>> = [
      { broker: "localhost:5555" },
      { service: "" },
      { service: "mmi.service" }, // MMI-R1: the broker would refuse it
      { service: "x".repeat(256) },
      { version: "0.3" as "0.1" },
      { liveness: 0 },
      { heartbeatIntervalMs: 0 },
      { reconnectMs: 100, reconnectMaxMs: 50 },
      { iterate: true, handler: (body) => body },
    ];
    for (const options of bad) {
      await expect(MajordomoWorker.start({ service: "echo", ...options })).rejects.toMatchObject({
        code: "INVALID_ARGUMENT",
      });
    }
    const w = await worker({ broker: "tcp://127.0.0.1:1" });
    await expect(w[Symbol.asyncIterator]().next()).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
    });
  });
});
