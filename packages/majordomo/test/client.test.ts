import { AbortedError, ClosedError, RequestAbandonedError } from "@zmq-patterns/core";
import { allocateAddress, Tap } from "@zmq-patterns/core/testing";
import { afterEach, describe, expect, it } from "vitest";
import type { Router } from "zeromq";
import { MajordomoBroker } from "../src/broker.js";
import { MajordomoClient, type MajordomoClientOptions } from "../src/client.js";
import { mmiQuery, mmiService } from "../src/mmi.js";
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

function client(options: MajordomoClientOptions) {
  const c = new MajordomoClient(options);
  cleanup.push(c);
  return c;
}

/** A request as received: the client's identity and the frames after it. */
async function nextRequest(broker: Tap<Router>, timeoutMs = 2000) {
  const [id, ...frames] = await broker.receive(timeoutMs);
  return { id: id as Buffer, frames };
}

describe("MajordomoClient on the wire (fake broker)", () => {
  it("5.4 golden frames, MDP/0.1: a REQ request reaches the broker as [C][''][MDPC01][service][body...]", async () => {
    const broker = await fakeBroker();
    const c = client({ broker: broker.endpoint });
    const reply = c.request("echo", ["hello", b(0, 1, 2)]);
    const { id, frames } = await nextRequest(broker);
    expect(frames).toEqual([E, C01, t("echo"), t("hello"), b(0, 1, 2)]);
    await broker.send([id, ...V01.reply("echo", "world", "!")]);
    expect((await reply).map(String)).toEqual(["world", "!"]);
    expect(c.stats()).toMatchObject({ requests: 1, replies: 1, retries: 0, discarded: {} });
  });

  it("6.2 golden frames, MDP/0.2: a DEALER request [C][MDPC02][0x01][service][body]; PARTIALs go to onPartial, FINAL resolves", async () => {
    const broker = await fakeBroker();
    const c = client({ broker: broker.endpoint, version: "0.2" });
    const partials: string[] = [];
    const reply = c.request("stream", "go", {
      onPartial: (body, { attempt }) => partials.push(`${attempt}:${body.map(String).join(",")}`),
    });
    const { id, frames } = await nextRequest(broker);
    expect(frames).toEqual(V02.request("stream", "go"));
    await broker.send([id, ...V02.partial("stream", "1")]);
    await broker.send([id, ...V02.partial("stream", "2", "b")]);
    await broker.send([id, ...V02.final("stream", "done")]);
    expect((await reply).map(String)).toEqual(["done"]);
    expect(partials).toEqual(["1:1", "1:2,b"]);
    expect(c.stats()).toMatchObject({ replies: 1, partials: 2 });
  });

  it("MDC-1/conformance 5: exactly `retries` sends, each from a new socket, then RequestAbandonedError", async () => {
    const broker = await fakeBroker();
    const c = client({ broker: broker.endpoint, timeoutMs: 150, retries: 3 });
    const events: string[] = [];
    c.on("sent", ({ attempt }) => events.push(`sent ${attempt}`));
    c.on("retry", ({ attempt }) => events.push(`retry ${attempt}`));
    c.on("abandoned", ({ attempts }) => events.push(`abandoned ${attempts}`));
    const started = performance.now();
    const result = c.request("echo", "anyone?").catch((e: unknown) => e);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const { id, frames } = await nextRequest(broker);
      expect(frames).toEqual(V01.request("echo", "anyone?"));
      ids.push(id.toString("hex"));
    }
    const error = await result;
    expect(error).toBeInstanceOf(RequestAbandonedError);
    expect(error).toMatchObject({ code: "TIMEOUT", attempts: 3, timeoutMs: 150 });
    expect(performance.now() - started).toBeGreaterThanOrEqual(3 * 150 - 20);
    expect(new Set(ids).size).toBe(3);
    await broker.expectNothing(200); // no fourth send
    expect(events).toEqual(["sent 1", "retry 1", "sent 2", "retry 2", "sent 3", "abandoned 3"]);
  });

  it("MDC-1: on MDP/0.2 too, every attempt goes out on a new DEALER", async () => {
    const broker = await fakeBroker();
    const c = client({ broker: broker.endpoint, version: "0.2", timeoutMs: 100, retries: 2 });
    const result = c.request("echo", "x").catch((e: unknown) => e);
    const first = await nextRequest(broker);
    const second = await nextRequest(broker);
    expect(second.frames).toEqual(V02.request("echo", "x"));
    expect(second.id).not.toEqual(first.id);
    // The late reply to attempt 1 can no longer arrive; the reply to attempt 2 does.
    await broker.send([first.id, ...V02.final("echo", "late")]);
    await broker.send([second.id, ...V02.final("echo", "on time")]);
    expect(((await result) as Buffer[]).map(String)).toEqual(["on time"]);
  });

  it("MDC-2 fixed: after an abandoned request the next one is really sent, and the old late reply is never returned", async () => {
    const broker = await fakeBroker();
    const c = client({ broker: broker.endpoint, timeoutMs: 150, retries: 1 });
    await expect(c.request("echo", "first")).rejects.toBeInstanceOf(RequestAbandonedError);
    const abandoned = await nextRequest(broker);
    expect(abandoned.frames).toEqual(V01.request("echo", "first"));

    const second = c.request("echo", "second");
    const sent = await nextRequest(broker);
    expect(sent.frames).toEqual(V01.request("echo", "second"));
    expect(sent.id).not.toEqual(abandoned.id);
    await broker.send([abandoned.id, ...V01.reply("echo", "late reply to first")]);
    await broker.send([sent.id, ...V01.reply("echo", "reply to second")]);
    expect((await second).map(String)).toEqual(["reply to second"]);
  });

  it("MDC-3 fixed, MDP/0.1: a reply for another service is discarded, counted, and the request is sent again at once", async () => {
    const broker = await fakeBroker();
    const c = client({ broker: broker.endpoint, timeoutMs: 5000, retries: 3 });
    const discarded: string[] = [];
    c.on("discarded", ({ reason }) => discarded.push(reason));
    const reply = c.request("echo", "x");
    const first = await nextRequest(broker);
    await broker.send([first.id, ...V01.reply("other", "wrong")]);
    const second = await nextRequest(broker, 1000); // long before the 5 s timeout
    expect(second.id).not.toEqual(first.id);
    await broker.send([second.id, E, t("MDPC02"), t("echo"), t("wrong header")]);
    const third = await nextRequest(broker, 1000);
    await broker.send([third.id, E, C01]); // no service frame
    const fourth = c.request("echo", "y").catch((e: unknown) => e); // queued behind
    const error = await reply.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RequestAbandonedError);
    expect(discarded).toEqual([
      "unexpected service",
      "unexpected header",
      "missing frame: service",
    ]);
    expect(c.stats().discarded).toEqual({
      "unexpected service": 1,
      "unexpected header": 1,
      "missing frame: service": 1,
    });
    const next = await nextRequest(broker);
    await broker.send([next.id, ...V01.reply("echo", "fine")]);
    expect(((await fourth) as Buffer[]).map(String)).toEqual(["fine"]);
  });

  it("MDC-3 fixed, MDP/0.2: bad replies are discarded and the client keeps waiting on the same socket", async () => {
    const broker = await fakeBroker();
    const c = client({ broker: broker.endpoint, version: "0.2", timeoutMs: 2000 });
    const reply = c.request("echo", "x");
    const { id } = await nextRequest(broker);
    await broker.send([id, ...V02.final("other", "wrong service")]);
    await broker.send([id, ...V01.reply("echo", "0.1 reply")]);
    await broker.send([id, C02, b(9), t("echo"), t("bad command")]);
    await broker.send([id, C02, b(1), t("echo"), t("a request, not a reply")]);
    await broker.send([id, ...V02.final("echo", "right")]);
    expect((await reply).map(String)).toEqual(["right"]);
    expect(c.stats().discarded).toEqual({
      "unexpected service": 1,
      "unexpected protocol version": 1,
      "unexpected client command": 2,
    });
    await broker.expectNothing(50); // no resend
  });

  it("6.1: a PARTIAL restarts the attempt's timeout", async () => {
    const broker = await fakeBroker();
    // Gaps of a quarter of the timeout leave a loaded machine three quarters of it to stall in;
    // four of them add up to more than the timeout, which only restarts can survive.
    const c = client({ broker: broker.endpoint, version: "0.2", timeoutMs: 1600, retries: 1 });
    let partials = 0;
    const reply = c.request("slow", "x", { onPartial: () => partials++ });
    const { id } = await nextRequest(broker);
    const started = performance.now();
    for (let i = 0; i < 5; i++) {
      await new Promise((resolve) => setTimeout(resolve, 400));
      await broker.send([id, ...V02.partial("slow", String(i))]);
    }
    await broker.send([id, ...V02.final("slow", "done")]);
    expect((await reply).map(String)).toEqual(["done"]);
    expect(performance.now() - started).toBeGreaterThan(1600);
    expect(partials).toBe(5);
  });

  it("ENV-6: concurrent requests are sent one at a time", async () => {
    const broker = await fakeBroker();
    const c = client({ broker: broker.endpoint });
    const results = Promise.all(["a", "b", "c"].map((body) => c.request("echo", body)));
    for (let i = 0; i < 3; i++) {
      const { id, frames } = await nextRequest(broker);
      await broker.expectNothing(20);
      await broker.send([id, ...V01.reply("echo", `re:${frames.at(-1)}`)]);
    }
    expect((await results).map((r) => String(r[0]))).toEqual(["re:a", "re:b", "re:c"]);
  });

  it("rejects with AbortedError when its signal aborts, and the next request works on a new socket", async () => {
    const broker = await fakeBroker();
    const c = client({ broker: broker.endpoint, timeoutMs: 5000 });
    const controller = new AbortController();
    const aborted = c.request("echo", "slow", { signal: controller.signal });
    const first = await nextRequest(broker);
    controller.abort();
    await expect(aborted).rejects.toBeInstanceOf(AbortedError);
    const next = c.request("echo", "next");
    const second = await nextRequest(broker);
    expect(second.id).not.toEqual(first.id);
    await broker.send([first.id, ...V01.reply("echo", "stale")]);
    await broker.send([second.id, ...V01.reply("echo", "ok")]);
    expect((await next).map(String)).toEqual(["ok"]);
  });

  it("close() is idempotent and rejects pending and later requests with ClosedError", async () => {
    const broker = await fakeBroker();
    const c = client({ broker: broker.endpoint, timeoutMs: 5000 });
    const pending = c.request("echo", "x");
    await nextRequest(broker);
    await c.close();
    await c.close();
    await expect(pending).rejects.toBeInstanceOf(ClosedError);
    await expect(c.request("echo", "y")).rejects.toMatchObject({ code: "CLOSED" });
  });

  it("fails fast on bad options, service names and bodies", () => {
    const bad: MajordomoClientOptions[] = [
      { broker: "localhost:5555" },
      { timeoutMs: 0 },
      { retries: 0 },
      { version: "1.0" as "0.1" },
    ];
    for (const options of bad) {
      expect(() => new MajordomoClient(options)).toThrow(
        expect.objectContaining({ code: "INVALID_ARGUMENT" }),
      );
    }
    const c = client({ broker: "tcp://127.0.0.1:1" });
    expect(() => c.request("", "x")).toThrow(/service/);
    expect(() => c.request("x".repeat(256), "x")).toThrow(/service/);
    expect(() => c.request("echo", [])).toThrow(/frame/);
    expect(() => c.request("echo", "x", { retries: 0 })).toThrow(/retries/);
  });
});

describe("MMI (RFC 8) from the client (fake broker)", () => {
  it("MMI-R2: mmiService sends [MDPC01][mmi.service][name] and returns the code", async () => {
    const broker = await fakeBroker();
    const c = client({ broker: broker.endpoint });
    const code = mmiService(c, "echo");
    const { id, frames } = await nextRequest(broker);
    expect(frames).toEqual(V01.request("mmi.service", "echo"));
    await broker.send([id, ...V01.reply("mmi.service", "404")]);
    expect(await code).toBe("404");
  });

  it("MMI-R3: mmiQuery sends any mmi.* service; other names are refused at once", async () => {
    const broker = await fakeBroker();
    const c = client({ broker: broker.endpoint, version: "0.2" });
    const reply = mmiQuery(c, "mmi.stats", ["a", "b"]);
    const { id, frames } = await nextRequest(broker);
    expect(frames).toEqual(V02.request("mmi.stats", "a", "b"));
    await broker.send([id, ...V02.final("mmi.stats", "a", "501")]);
    expect((await reply).map(String)).toEqual(["a", "501"]);
    expect(() => mmiQuery(c, "echo", ["x"])).toThrow(
      expect.objectContaining({ code: "INVALID_ARGUMENT" }),
    );
  });
});

describe("MajordomoClient with the broker and workers", () => {
  async function broker() {
    const mdp = await MajordomoBroker.start({
      bind: await allocateAddress(),
      heartbeatIntervalMs: 100,
    });
    cleanup.push(mdp);
    return mdp;
  }

  async function worker(endpoint: string, options: Parameters<typeof MajordomoWorker.start>[0]) {
    const w = await MajordomoWorker.start({
      heartbeatIntervalMs: 100,
      ...options,
      broker: endpoint,
    });
    cleanup.push(w);
    return w;
  }

  it("MDB-7: a 0.1 client and a 0.2 client reach 0.1 and 0.2 workers through one broker", async () => {
    const mdp = await broker();
    const endpoint = mdp.endpoints[0] as string;
    const ready = new Promise<void>((resolve) => {
      let n = 0;
      mdp.on("workerReady", () => ++n === 2 && resolve());
    });
    await worker(endpoint, { service: "upper", handler: ([x]) => [String(x).toUpperCase()] });
    await worker(endpoint, {
      service: "count",
      version: "0.2",
      handler: async ([x], { partial }) => {
        for (let i = 1; i <= Number(x); i++) await partial([String(i)]);
        return ["done"];
      },
    });
    await ready;
    const c01 = client({ broker: endpoint });
    const c02 = client({ broker: endpoint, version: "0.2" });
    expect((await c01.request("upper", "hello")).map(String)).toEqual(["HELLO"]);
    expect((await c02.request("upper", "hello")).map(String)).toEqual(["HELLO"]);
    const partials: string[] = [];
    const final = await c02.request("count", "3", { onPartial: ([p]) => partials.push(String(p)) });
    expect(final.map(String)).toEqual(["done"]);
    expect(partials).toEqual(["1", "2", "3"]);
    // A 0.1 client only gets the final reply.
    expect((await c01.request("count", "2")).map(String)).toEqual(["done"]);
  });

  it("MMI-R2/MMI-R3 against the broker: 200 with a worker, 404 without, 501 for another mmi. service", async () => {
    const mdp = await broker();
    const endpoint = mdp.endpoints[0] as string;
    const c = client({ broker: endpoint });
    expect(await mmiService(c, "echo")).toBe("404");
    const ready = new Promise((resolve) => mdp.once("workerReady", resolve));
    await worker(endpoint, { service: "echo" });
    await ready;
    expect(await mmiService(c, "echo")).toBe("200");
    expect((await mmiQuery(c, "mmi.nothing", ["x"])).map(String)).toEqual(["501"]);
  });

  it("MDB-B10 fixed: a closed worker leaves the broker at once (DISCONNECT), MMI says 404 without waiting for expiry", async () => {
    const mdp = await broker();
    const endpoint = mdp.endpoints[0] as string;
    const ready = new Promise((resolve) => mdp.once("workerReady", resolve));
    const w = await worker(endpoint, { service: "echo" });
    await ready;
    const left = new Promise<string>((resolve) =>
      mdp.once("workerDisconnected", ({ reason }) => resolve(reason)),
    );
    await w.close();
    expect(await left).toMatch(/DISCONNECT/);
    expect(await mmiService(client({ broker: endpoint }), "echo")).toBe("404");
  });
});
