import {
  AbortedError,
  ClosedError,
  InvalidArgumentError,
  RequestAbandonedError,
} from "@zmq-patterns/core";
import { allocateAddress, Tap } from "@zmq-patterns/core/testing";
import { afterEach, describe, expect, it } from "vitest";
import {
  closeAll,
  deferred,
  nextEvent,
  record,
  rejectionOf,
  startClient,
  startServer,
  str,
  track,
  until,
  within,
} from "./support.js";

afterEach(closeAll);

type Sent = { sequence: number; endpoint: string; attempt: number };
type Failover = { sequence: number; from: string; reason: string };

/** Generous upper margin for timers on a loaded machine; lower bounds stay tight. */
const SLACK = 1500;

describe("FreelanceClient model 1 (spec 2.2)", () => {
  it("2.7.1: one dead endpoint gets exactly `retries` attempts of attemptTimeoutMs each, then RequestAbandonedError", async () => {
    const dead = await allocateAddress();
    const client = startClient({ model: 1, endpoints: [dead], attemptTimeoutMs: 250 });
    const sent = record<Sent>(client, "sent");
    const started = performance.now();
    const error = await rejectionOf(client.request("Hello world"));
    const elapsed = performance.now() - started;
    expect(error).toBeInstanceOf(RequestAbandonedError);
    expect(error).toMatchObject({ code: "TIMEOUT", attempts: 3 });
    expect(sent).toEqual([
      { sequence: 1, endpoint: dead, attempt: 1 },
      { sequence: 1, endpoint: dead, attempt: 2 },
      { sequence: 1, endpoint: dead, attempt: 3 },
    ]);
    expect(elapsed).toBeGreaterThanOrEqual(3 * 250 - 30);
    expect(elapsed).toBeLessThan(3 * 250 + SLACK);
    expect(client.stats()).toMatchObject({
      model: 1,
      requests: 1,
      replies: 0,
      abandoned: 1,
      sends: 3,
      pending: 0,
    });
  });

  it("2.7.1: each attempt uses a fresh socket (a silent server sees three different peers)", async () => {
    const silent = track(await Tap.router());
    const client = startClient({
      model: 1,
      endpoints: [silent.endpoint],
      attemptTimeoutMs: 200,
      retries: 3,
    });
    const pending = rejectionOf(client.request("anyone?"));
    const seen = [
      await silent.receive(5000),
      await silent.receive(5000),
      await silent.receive(5000),
    ];
    // [peer][""]["anyone?"]: a plain REQ envelope every time, from a new peer every time.
    for (const frames of seen) expect(str(frames.slice(1))).toEqual(["", "anyone?"]);
    expect(new Set(seen.map((frames) => frames[0]?.toString("hex"))).size).toBe(3);
    expect(await pending).toBeInstanceOf(RequestAbandonedError);
    await silent.expectNothing(100);
  });

  it("2.7.1: retries applies to a single server only; the default is 3", async () => {
    const client = startClient({
      model: 1,
      endpoints: [await allocateAddress()],
      attemptTimeoutMs: 100,
    });
    expect(await rejectionOf(client.request("x"))).toMatchObject({ attempts: 3 });
    const once = startClient({
      model: 1,
      endpoints: [await allocateAddress()],
      attemptTimeoutMs: 100,
      retries: 1,
    });
    expect(await rejectionOf(once.request("x"))).toMatchObject({ attempts: 1 });
  });

  it("2.7.1: with [dead, live] it succeeds after about one attempt timeout", async () => {
    const dead = await allocateAddress();
    const live = await startServer({ model: 1 });
    const client = startClient({
      model: 1,
      endpoints: [dead, live.endpoint],
      attemptTimeoutMs: 300,
    });
    const sent = record<Sent>(client, "sent");
    const failovers = record<Failover>(client, "failover");
    const started = performance.now();
    expect(str(await client.request("Hello world"))).toEqual(["Hello world"]);
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(300 - 30);
    expect(elapsed).toBeLessThan(300 + SLACK);
    expect(sent.map((s) => s.endpoint)).toEqual([dead, live.endpoint]);
    expect(failovers).toEqual([{ sequence: 1, from: dead, reason: "timeout" }]);
  });

  it("2.2: with several servers each is tried once, in order, with no second round", async () => {
    const endpoints = [await allocateAddress(), await allocateAddress(), await allocateAddress()];
    const client = startClient({ model: 1, endpoints, attemptTimeoutMs: 150, retries: 5 });
    const sent = record<Sent>(client, "sent");
    const error = await rejectionOf(client.request("x"));
    expect(error).toBeInstanceOf(RequestAbandonedError);
    expect(error).toMatchObject({ code: "TIMEOUT", attempts: 3 });
    expect(sent.map((s) => [s.endpoint, s.attempt])).toEqual([
      [endpoints[0], 1],
      [endpoints[1], 2],
      [endpoints[2], 3],
    ]);
  });

  it("2.2: a global timeoutMs bounds the attempts", async () => {
    const endpoints = [await allocateAddress(), await allocateAddress(), await allocateAddress()];
    const client = startClient({ model: 1, endpoints, attemptTimeoutMs: 300, timeoutMs: 450 });
    const sent = record<Sent>(client, "sent");
    const failovers = record<Failover>(client, "failover");
    const started = performance.now();
    const error = await rejectionOf(client.request("x"));
    const elapsed = performance.now() - started;
    expect(error).toMatchObject({ code: "TIMEOUT", attempts: 2, timeoutMs: 450 });
    expect(sent.map((s) => s.endpoint)).toEqual(endpoints.slice(0, 2));
    // Out of time after the second attempt: no failover announced to a third server.
    expect(failovers.map((f) => f.from)).toEqual(endpoints.slice(0, 1));
    expect(elapsed).toBeGreaterThanOrEqual(450 - 30);
    expect(elapsed).toBeLessThan(450 + SLACK);
  });

  it("2.6.2: a late reply (a slow server) is never returned for the next request", async () => {
    const firstAnswered = deferred();
    const server = await startServer({
      model: 1,
      handler: async (body) => {
        if (String(body[0]) === "first") {
          await new Promise((resolve) => setTimeout(resolve, 400));
          return body;
        }
        // The next request is answered only after the late reply to "first" went out.
        await firstAnswered.promise;
        return body;
      },
    });
    server.on("reply", () => firstAnswered.resolve());
    const client = startClient({
      model: 1,
      endpoints: [server.endpoint],
      attemptTimeoutMs: 5000,
      retries: 1,
    });
    const first = await rejectionOf(client.request("first", { timeoutMs: 150 }));
    expect(first).toBeInstanceOf(RequestAbandonedError);
    expect(str(await client.request("second"))).toEqual(["second"]);
    expect(server.stats().requests).toBe(2);
  });

  it("2.2: concurrent calls are sent one at a time, in call order, each with its own reply", async () => {
    const server = await startServer({ model: 1 });
    const client = startClient({ model: 1, endpoints: [server.endpoint] });
    const order: number[] = [];
    client.on("sent", ({ sequence }) => order.push(sequence));
    const replies = await Promise.all(
      Array.from({ length: 20 }, (_, i) => client.request(`r${i}`)),
    );
    expect(replies.map((r) => String(r[0]))).toEqual(Array.from({ length: 20 }, (_, i) => `r${i}`));
    expect(order).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(client.stats()).toMatchObject({ requests: 20, replies: 20, sends: 20, pending: 0 });
  });

  it("2.2: a queued request's timeout and abort signal count from the call, not from its turn", async () => {
    const dead = await allocateAddress();
    const client = startClient({ model: 1, endpoints: [dead], attemptTimeoutMs: 3000, retries: 1 });
    const sent = record<Sent>(client, "sent");
    const first = rejectionOf(client.request("first"));
    const controller = new AbortController();
    const started = performance.now();
    const timedOut = rejectionOf(client.request("second", { timeoutMs: 300 }));
    const aborted = rejectionOf(client.request("third", { signal: controller.signal }));
    controller.abort();
    expect(await aborted).toBeInstanceOf(AbortedError);
    expect(performance.now() - started).toBeLessThan(SLACK);
    const error = await timedOut;
    const elapsed = performance.now() - started;
    expect(error).toBeInstanceOf(RequestAbandonedError);
    expect(error).toMatchObject({ code: "TIMEOUT", timeoutMs: 300, attempts: 0 });
    expect(elapsed).toBeGreaterThanOrEqual(300 - 30);
    expect(elapsed).toBeLessThan(300 + SLACK);
    expect(client.stats().pending).toBe(1);
    // The first request is still alone on the wire: the ones that gave up never went out.
    expect(sent.map((s) => s.sequence)).toEqual([1]);
    expect(await first).toBeInstanceOf(RequestAbandonedError);
    expect(client.stats()).toMatchObject({ requests: 3, abandoned: 2, sends: 1, pending: 0 });
  });

  it("an abort signal rejects an attempt in progress with AbortedError", async () => {
    const client = startClient({
      model: 1,
      endpoints: [await allocateAddress()],
      attemptTimeoutMs: 10_000,
    });
    const controller = new AbortController();
    const sent = nextEvent(client, "sent");
    const pending = rejectionOf(client.request("x", { signal: controller.signal }));
    await sent;
    const started = performance.now();
    controller.abort();
    const error = await pending;
    expect(error).toBeInstanceOf(AbortedError);
    expect(error).toMatchObject({ code: "ABORTED" });
    expect(performance.now() - started).toBeLessThan(SLACK);
    expect(client.stats()).toMatchObject({ pending: 0, abandoned: 0 });
    expect(await rejectionOf(client.request("y", { signal: AbortSignal.abort() }))).toBeInstanceOf(
      AbortedError,
    );
  });

  it("close rejects requests in progress and queued with ClosedError", async () => {
    const client = startClient({
      model: 1,
      endpoints: [await allocateAddress()],
      attemptTimeoutMs: 10_000,
    });
    const sent = nextEvent(client, "sent");
    const first = rejectionOf(client.request("x"));
    const queued = rejectionOf(client.request("y"));
    await sent;
    await client.close();
    expect(await within(first, 3000, "first")).toBeInstanceOf(ClosedError);
    expect(await within(queued, 3000, "queued")).toBeInstanceOf(ClosedError);
    expect(await rejectionOf(client.request("z"))).toBeInstanceOf(ClosedError);
    expect(() => client.connect("tcp://127.0.0.1:1")).toThrow(ClosedError);
    await client.close();
    expect(client.stats().pending).toBe(0);
  });

  it("InvalidArgumentError without endpoints, with an empty body, or a bad timeout", async () => {
    const client = startClient({ model: 1 });
    expect(await rejectionOf(client.request("x"))).toBeInstanceOf(InvalidArgumentError);
    client.connect(await allocateAddress());
    expect(await rejectionOf(client.request([]))).toBeInstanceOf(InvalidArgumentError);
    expect(await rejectionOf(client.request("x", { timeoutMs: 0 }))).toBeInstanceOf(
      InvalidArgumentError,
    );
    expect(client.stats().requests).toBe(0);
  });

  it("a server that comes back is used again, by the next request", async () => {
    const live = await startServer({ model: 1 });
    const endpoint = live.endpoint;
    const client = startClient({
      model: 1,
      endpoints: [endpoint],
      attemptTimeoutMs: 3000,
      retries: 1,
    });
    expect(str(await client.request("a"))).toEqual(["a"]);
    await live.close();
    const down = await rejectionOf(client.request("b", { timeoutMs: 200 }));
    expect(down).toBeInstanceOf(RequestAbandonedError);
    const back = await startServer({ model: 1, bind: endpoint });
    const answered = until(back, "reply", () => back.stats().requests === 1);
    expect(str(await client.request("c"))).toEqual(["c"]);
    await answered;
  });
});
