import { once } from "node:events";
import {
  AbortedError,
  ClosedError,
  InvalidArgumentError,
  RequestAbandonedError,
} from "@zmq-patterns/core";
import { afterEach, describe, expect, it } from "vitest";
import { BinaryStarClient, type BinaryStarClientOptions } from "../src/index.js";
import {
  B,
  closeTracked,
  nextEvent,
  RouterServer,
  record,
  startPair,
  texts,
  track,
  WAIT_MS,
  within,
} from "./support.js";

afterEach(closeTracked);

/** A client that would wait forever unless a test says otherwise. */
function client(options: BinaryStarClientOptions): BinaryStarClient {
  return track(new BinaryStarClient({ timeoutMs: 10_000, settleDelayMs: 0, ...options }));
}

/** Promptly: well under any timeout the test set, with slack for a loaded machine. */
const PROMPT_MS = 1500;

describe("BinaryStarClient", () => {
  it("1.8 sends to the first endpoint and stays with it while it answers", async () => {
    const [a, b] = [await RouterServer.start(), await RouterServer.start()];
    const c = client({ endpoints: [a.endpoint, b.endpoint] });
    const log = record(c, "sent", "reply", "failover");
    expect(c.endpoint).toBe(a.endpoint);
    for (const body of ["1", "2", "3"]) expect(texts(await c.request(body))).toEqual([body]);
    expect(texts(await c.request([B("multi"), B("part")]))).toEqual(["multi", "part"]);
    expect(a.requests.map(({ body }) => texts(body))).toEqual([
      ["1"],
      ["2"],
      ["3"],
      ["multi", "part"],
    ]);
    expect(b.requests).toEqual([]);
    expect(log.filter((e) => e.event === "failover")).toEqual([]);
    expect(log.filter((e) => e.event === "sent").map((e) => e.payload)).toEqual(
      Array.from({ length: 4 }, () => ({ attempt: 1, endpoint: a.endpoint })),
    );
  });

  it("1.12.11 on timeout it fails over after settleDelayMs, resends the same request, and stays with the server that answered", async () => {
    const timeoutMs = 200;
    const settleDelayMs = 300;
    const [a, b] = [await RouterServer.start("silent"), await RouterServer.start()];
    const c = client({ endpoints: [a.endpoint, b.endpoint], timeoutMs, settleDelayMs });
    const log = record(c, "sent", "reply", "failover");
    const failedOver = nextEvent(c, "failover");
    const startedAt = performance.now();
    const reply = await c.request("42");
    const elapsed = performance.now() - startedAt;
    expect(texts(reply)).toEqual(["42"]);
    expect(a.requests.map(({ body }) => texts(body))).toEqual([["42"]]);
    expect(b.requests.map(({ body }) => texts(body))).toEqual([["42"]]);
    expect(await failedOver).toEqual({ attempt: 1, from: a.endpoint, to: b.endpoint });
    const failoverAt = log.find((e) => e.event === "failover")?.at ?? Number.NaN;
    // The resend waits out the settle delay after the failover.
    // (A millisecond or two of slack: Node's timer clock is coarser than performance.now().)
    expect((b.requests[0]?.at ?? 0) - failoverAt).toBeGreaterThanOrEqual(settleDelayMs - 2);
    expect(elapsed).toBeGreaterThanOrEqual(timeoutMs + settleDelayMs - 4);
    expect(elapsed).toBeLessThan(timeoutMs + settleDelayMs + 3000);
    expect(log.map(({ event, payload }) => ({ event, payload }))).toEqual([
      { event: "sent", payload: { attempt: 1, endpoint: a.endpoint } },
      { event: "failover", payload: { attempt: 1, from: a.endpoint, to: b.endpoint } },
      { event: "sent", payload: { attempt: 2, endpoint: b.endpoint } },
      { event: "reply", payload: { attempt: 2, endpoint: b.endpoint } },
    ]);

    // It does not go back to the first server: the next request goes straight to b.
    a.behaviour = "echo";
    expect(c.endpoint).toBe(b.endpoint);
    expect(texts(await c.request("43"))).toEqual(["43"]);
    expect(a.requests).toHaveLength(1);
    expect(b.requests.map(({ body }) => texts(body))).toEqual([["42"], ["43"]]);
  });

  it("1.12.11 against a real pair: after the active primary goes away a request completes on the backup within timeout + settle delay", async () => {
    const peerExpiryMs = 500;
    const { primary, backup } = await startPair({ peerExpiryMs });
    const timeoutMs = 300;
    const settleDelayMs = peerExpiryMs + 100;
    const c = client({
      endpoints: [primary.endpoints.voter, backup.endpoints.voter],
      timeoutMs,
      settleDelayMs,
      validateReply: (reply, request) => reply[0]?.equals(request[0] ?? B("")) === true,
    });
    expect(texts(await c.request("1"))).toEqual(["1"]);
    const replies = record(c, "reply");
    const backupActive = nextEvent(backup, "active");
    await primary.close();
    const startedAt = performance.now();
    expect(texts(await c.request("2"))).toEqual(["2"]);
    const elapsed = performance.now() - startedAt;
    expect(replies.map((e) => e.payload)).toEqual([
      { attempt: 2, endpoint: backup.endpoints.voter },
    ]);
    expect(elapsed).toBeLessThan(timeoutMs + settleDelayMs + 2000);
    expect(await backupActive).toEqual({ from: "PASSIVE", reason: "client vote, peer silent" });
    expect(texts(await c.request("3"))).toEqual(["3"]);
  });

  it("a reply failing validateReply is discarded as 'invalidReply', counts as an attempt and fails over at once", async () => {
    const [a, b] = [await RouterServer.start(() => [B("wrong")]), await RouterServer.start()];
    const c = client({
      endpoints: [a.endpoint, b.endpoint],
      timeoutMs: 10_000,
      settleDelayMs: 50,
      validateReply: (reply, request) => reply[0]?.equals(request[0] ?? B("")) === true,
    });
    const log = record(c, "sent", "invalidReply", "failover", "reply");
    const startedAt = performance.now();
    expect(texts(await c.request("7"))).toEqual(["7"]);
    // Far sooner than the 10 s timeout: a REQ socket takes one reply, so no better one follows.
    expect(performance.now() - startedAt).toBeLessThan(5000);
    expect(log.map(({ event, payload }) => ({ event, payload }))).toEqual([
      { event: "sent", payload: { attempt: 1, endpoint: a.endpoint } },
      {
        event: "invalidReply",
        payload: { attempt: 1, endpoint: a.endpoint, reply: [B("wrong")] },
      },
      { event: "failover", payload: { attempt: 1, from: a.endpoint, to: b.endpoint } },
      { event: "sent", payload: { attempt: 2, endpoint: b.endpoint } },
      { event: "reply", payload: { attempt: 2, endpoint: b.endpoint } },
    ]);
    // With one attempt allowed, an invalid reply abandons the request.
    b.behaviour = () => [B("wrong")];
    await expect(c.request("8", { maxAttempts: 1 })).rejects.toMatchObject({
      name: "RequestAbandonedError",
      attempts: 1,
    });
  });

  it("maxAttempts sends in total, alternating servers, then RequestAbandonedError", async () => {
    const [a, b] = [await RouterServer.start("silent"), await RouterServer.start("silent")];
    const c = client({
      endpoints: [a.endpoint, b.endpoint],
      timeoutMs: 100,
      settleDelayMs: 20,
      maxAttempts: 3,
    });
    const log = record(c, "sent", "abandoned");
    const error = await c.request("x").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RequestAbandonedError);
    expect(error).toMatchObject({ code: "TIMEOUT", attempts: 3, timeoutMs: 100 });
    expect(log.map(({ event, payload }) => ({ event, payload }))).toEqual([
      { event: "sent", payload: { attempt: 1, endpoint: a.endpoint } },
      { event: "sent", payload: { attempt: 2, endpoint: b.endpoint } },
      { event: "sent", payload: { attempt: 3, endpoint: a.endpoint } },
      { event: "abandoned", payload: { attempts: 3 } },
    ]);
    expect(a.requests).toHaveLength(2);
    expect(b.requests).toHaveLength(1);
    // A request's own maxAttempts overrides the client's.
    await expect(c.request("y", { maxAttempts: 1, timeoutMs: 50 })).rejects.toMatchObject({
      attempts: 1,
      timeoutMs: 50,
    });
  });

  it("a server that is down (nothing listening) is failed over like a silent one", async () => {
    const down = await RouterServer.down();
    const up = await RouterServer.start();
    const c = client({ endpoints: [down, up.endpoint], timeoutMs: 100, settleDelayMs: 20 });
    expect(texts(await c.request("hello"))).toEqual(["hello"]);
    expect(c.endpoint).toBe(up.endpoint);
  });

  it("an aborted signal rejects with AbortedError, while waiting for a reply or during the settle delay; the client stays usable", async () => {
    const server = await RouterServer.start("silent");
    const c = client({ endpoints: [server.endpoint], timeoutMs: 100, settleDelayMs: 10_000 });

    // While waiting for the reply (timeout far away).
    const waiting = new AbortController();
    const sent = nextEvent(c, "sent");
    const first = c.request("1", { signal: waiting.signal, timeoutMs: 10_000 });
    await sent;
    let abortedAt = performance.now();
    waiting.abort();
    await expect(first).rejects.toBeInstanceOf(AbortedError);
    expect(performance.now() - abortedAt).toBeLessThan(PROMPT_MS);

    // During the settle delay.
    const settling = new AbortController();
    const failover = nextEvent(c, "failover");
    const second = c.request("2", { signal: settling.signal });
    await failover;
    abortedAt = performance.now();
    settling.abort(new Error("enough"));
    const error = await second.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AbortedError);
    expect(performance.now() - abortedAt).toBeLessThan(PROMPT_MS);

    // Aborted before it starts.
    await expect(c.request("3", { signal: AbortSignal.abort() })).rejects.toBeInstanceOf(
      AbortedError,
    );

    server.behaviour = "echo";
    expect(texts(await c.request("4", { timeoutMs: 5000 }))).toEqual(["4"]);
  });

  it("a queued request whose signal aborts rejects at once, without waiting for the request ahead", async () => {
    const server = await RouterServer.start("silent");
    const c = client({ endpoints: [server.endpoint], timeoutMs: 10_000 });
    const arrived = within(once(server, "request"), WAIT_MS, "the first request arriving");
    const ahead = c.request("ahead");
    const controller = new AbortController();
    const queued = c.request("queued", { signal: controller.signal });
    await arrived;
    const abortedAt = performance.now();
    controller.abort();
    await expect(
      within(queued, PROMPT_MS * 2, "the queued request rejecting"),
    ).rejects.toBeInstanceOf(AbortedError);
    expect(performance.now() - abortedAt).toBeLessThan(PROMPT_MS);
    // The request ahead is unaffected and still the only one on the wire; the aborted one never
    // is sent, and the next one goes after the one ahead.
    server.behaviour = "echo";
    const after = c.request("after");
    await c.close();
    await expect(ahead).rejects.toBeInstanceOf(ClosedError);
    await expect(after).rejects.toBeInstanceOf(ClosedError);
    expect(server.requests.map(({ body }) => texts(body))).toEqual([["ahead"]]);
  });

  it("close() rejects pending and queued requests with ClosedError, aborts the settle delay promptly, and is idempotent", async () => {
    const server = await RouterServer.start("silent");
    const c = client({ endpoints: [server.endpoint], timeoutMs: 100, settleDelayMs: 10_000 });
    const failover = nextEvent(c, "failover");
    const pending = c.request("1");
    const queued = c.request("2");
    await failover;
    const closedAt = performance.now();
    await c.close();
    await expect(pending).rejects.toBeInstanceOf(ClosedError);
    await expect(queued).rejects.toBeInstanceOf(ClosedError);
    expect(performance.now() - closedAt).toBeLessThan(PROMPT_MS);
    await c.close();
    await expect(c.request("3")).rejects.toBeInstanceOf(ClosedError);
    expect(server.requests).toHaveLength(1);
  });

  it("close() while waiting for a reply rejects at once with ClosedError", async () => {
    const server = await RouterServer.start("silent");
    const c = client({ endpoints: [server.endpoint] });
    const sent = nextEvent(c, "sent");
    const pending = c.request("1");
    await sent;
    const closedAt = performance.now();
    await c.close();
    await expect(pending).rejects.toBeInstanceOf(ClosedError);
    expect(performance.now() - closedAt).toBeLessThan(PROMPT_MS);
  });

  it("concurrent requests are sent one after the other, each getting its own reply", async () => {
    const server = await RouterServer.start();
    server.delayMs = 20;
    const c = client({ endpoints: [server.endpoint] });
    const bodies = Array.from({ length: 8 }, (_, i) => `r${i}`);
    const replies = await Promise.all(bodies.map((body) => c.request(body)));
    expect(replies.map(texts)).toEqual(bodies.map((body) => [body]));
    expect(server.requests.map(({ body }) => String(body[0]))).toEqual(bodies);
    expect(server.maxOutstanding).toBe(1);
  });

  it("rejects bad options with InvalidArgumentError", async () => {
    const endpoint = "tcp://127.0.0.1:5001";
    const bad: Array<Record<string, unknown>> = [
      { endpoints: [] },
      { endpoints: "tcp://127.0.0.1:5001" },
      { endpoints: ["nowhere"] },
      { endpoints: [endpoint, "tcp://127.0.0.1:99999"] },
      { timeoutMs: 0 },
      { timeoutMs: Number.POSITIVE_INFINITY },
      { settleDelayMs: -1 },
      { settleDelayMs: Number.NaN },
      { maxAttempts: 0 },
      { maxAttempts: 1.5 },
    ];
    for (const options of bad) {
      expect(
        () => new BinaryStarClient(options as BinaryStarClientOptions),
        JSON.stringify(options),
      ).toThrow(InvalidArgumentError);
    }
    const c = client({ endpoints: [endpoint], maxAttempts: Number.POSITIVE_INFINITY });
    expect(c.maxAttempts).toBe(Number.POSITIVE_INFINITY);
    expect(() => c.request("x", { timeoutMs: 0 })).toThrow(InvalidArgumentError);
    expect(() => c.request("x", { maxAttempts: -1 })).toThrow(InvalidArgumentError);
    const defaults = track(new BinaryStarClient());
    expect(defaults).toMatchObject({
      endpoints: ["tcp://localhost:5001", "tcp://localhost:5002"],
      timeoutMs: 1000,
      settleDelayMs: 2000,
      maxAttempts: Number.POSITIVE_INFINITY,
    });
  });
});
