import {
  AbortedError,
  ClosedError,
  InvalidArgumentError,
  QueueFullError,
  RequestAbandonedError,
} from "@zmq-patterns/core";
import { allocateAddress, Tap } from "@zmq-patterns/core/testing";
import { afterEach, describe, expect, it } from "vitest";
import { Router } from "zeromq";
import type { FreelanceClient, FreelanceServer } from "../src/index.js";
import {
  closeAll,
  E,
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
type Dropped = { reason: string; from: string };

/** Generous upper margin for timers on a loaded machine; lower bounds stay tight. */
const SLACK = 1500;

/** Makes requests until every server has answered one: the DEALER is then connected to all. */
async function warmUp(client: FreelanceClient, servers: FreelanceServer[]): Promise<void> {
  const deadline = performance.now() + 10_000;
  while (servers.some((server) => server.stats().requests === 0)) {
    if (performance.now() > deadline) throw new Error("servers never all reached");
    await client.request("warm-up");
  }
}

function totalRequests(servers: FreelanceServer[]): number {
  return servers.reduce((sum, server) => sum + server.stats().requests, 0);
}

describe("FreelanceClient model 2 (spec 2.3)", () => {
  it("2.7.3: sends exactly N copies, one per server, returns on the first reply and drops the other N-1", async () => {
    const servers = [
      await startServer({ model: 2 }),
      await startServer({ model: 2 }),
      await startServer({ model: 2 }),
    ];
    const client = startClient({ model: 2, endpoints: servers.map((s) => s.endpoint) });
    await warmUp(client, servers);
    const before = servers.map((s) => s.stats().requests);
    const staleBefore = client.stats().dropped["stale reply"] ?? 0;
    const sent = record<Sent>(client, "sent");
    const sequence = client.stats().requests + 1;
    const allAnswered = Promise.all(
      servers.map((s, i) =>
        until(s, "reply", () => s.stats().requests === (before[i] as number) + 1),
      ),
    );
    expect(str(await client.request("random name"))).toEqual(["OK"]);
    await allAnswered;
    expect(sent).toEqual([
      { sequence, endpoint: "*", attempt: 1 },
      { sequence, endpoint: "*", attempt: 2 },
      { sequence, endpoint: "*", attempt: 3 },
    ]);
    // Round robin over three connected pipes: one copy each.
    expect(servers.map((s, i) => s.stats().requests - (before[i] as number))).toEqual([1, 1, 1]);
    await until(client, "dropped", () => client.stats().dropped["stale reply"] === staleBefore + 2);
    expect(client.stats().pending).toBe(0);
  });

  it('2.7.3: the wire is [""][seq][body] with seq from 1; mismatched and malformed replies are dropped and counted', async () => {
    const server = track(await Tap.router());
    const client = startClient({ model: 2, endpoints: [server.endpoint], timeoutMs: 10_000 });
    const dropped = record<Dropped>(client, "dropped");
    const pending = client.request("random name");
    const [peer, ...request] = await server.receive(5000);
    expect(str(request)).toEqual(["", "1", "random name"]);
    const id = peer as Buffer;
    await server.send([id, E, "999", "OK"]); // a sequence no request has
    await server.send([id, E, "PONG", "OK"]);
    await server.send([id, "x", "1", "OK"]);
    await server.send([id, E, "1"]);
    await server.send([id, E, "1", "the answer"]);
    expect(str(await pending)).toEqual(["the answer"]);
    await server.send([id, E, "1", "OK"]); // a duplicate, after the request is done
    await until(client, "dropped", () => dropped.length === 5);
    expect(client.stats().dropped).toEqual({
      "stale reply": 2,
      "invalid sequence": 1,
      "delimiter frame is not empty": 1,
      "missing frame: body": 1,
    });
    // The next request has the next sequence, and its own reply.
    const second = client.request("again");
    expect(str((await server.receive(5000)).slice(1))).toEqual(["", "2", "again"]);
    await server.send([id, E, "1", "stale"]);
    await server.send([id, E, "2", "fresh"]);
    expect(str(await second)).toEqual(["fresh"]);
  });

  it("2.7.3: with every server down the request is abandoned at timeoutMs, sending nothing", async () => {
    const endpoints = [await allocateAddress(), await allocateAddress()];
    const client = startClient({ model: 2, endpoints, timeoutMs: 400 });
    const sent = record<Sent>(client, "sent");
    const started = performance.now();
    const error = await rejectionOf(client.request("anyone?"));
    const elapsed = performance.now() - started;
    expect(error).toBeInstanceOf(RequestAbandonedError);
    expect(error).toMatchObject({ code: "TIMEOUT", timeoutMs: 400, attempts: 0 });
    expect(elapsed).toBeGreaterThanOrEqual(400 - 30);
    expect(elapsed).toBeLessThan(400 + SLACK);
    expect(sent).toEqual([]);
    expect(client.stats()).toMatchObject({ requests: 1, abandoned: 1, replies: 0, pending: 0 });
  });

  it("2.3: the default timeout is 2,500 ms, and a per-request timeoutMs overrides it", async () => {
    const client = startClient({ model: 2, endpoints: [await allocateAddress()] });
    const error = await rejectionOf(client.request("x", { timeoutMs: 100 }));
    expect(error).toMatchObject({ code: "TIMEOUT", timeoutMs: 100 });
    const started = performance.now();
    const slow = await rejectionOf(client.request("y"));
    expect(slow).toMatchObject({ code: "TIMEOUT", timeoutMs: 2500 });
    expect(performance.now() - started).toBeGreaterThanOrEqual(2500 - 30);
  });

  it("2.3: a server that comes up after the request started still answers it within the timeout", async () => {
    const endpoint = await allocateAddress();
    const client = startClient({ model: 2, endpoints: [endpoint], timeoutMs: 10_000 });
    const sent = record<Sent>(client, "sent");
    const pending = client.request("early bird");
    // No server: the copy waits for a handshake rather than being sent into the void.
    await new Promise((resolve) => setImmediate(resolve));
    expect(sent).toEqual([]);
    const server = await startServer({ model: 2, bind: endpoint });
    expect(str(await within(pending, 9000, "late server's reply"))).toEqual(["OK"]);
    expect(sent).toHaveLength(1);
    expect(server.stats().requests).toBe(1);
  });

  it("2.3: a copy waiting for a server is sent even when the first send after the handshake fails", async () => {
    // libzmq takes a new connection into the DEALER lazily (it skips command processing for
    // sends less than about a millisecond apart), so with other sends failing just before, the
    // send made on the handshake event can still find no connection. Whether it does is up to
    // the scheduling of two sockets, so the race is run many times.
    for (let round = 0; round < 60; round++) {
      // ipc: as racy as tcp, and it spares this process's share of test ports.
      const endpoint = await allocateAddress("ipc");
      const client = startClient({ model: 2, endpoints: [endpoint], timeoutMs: 5000 });
      let settled = false;
      const probe = client.request("probe").then(
        (reply) => str(reply).join(),
        (error: { code?: string }) => `${error.code}`,
      );
      void probe.finally(() => {
        settled = true;
      });
      const server = startServer({ model: 2, bind: endpoint });
      // Short-lived requests keep the DEALER sending (and failing) until the probe is answered;
      // at most 500, so that no queue reaches its high-water mark (1,000) on a slow machine.
      for (let fillers = 0; !settled && fillers < 500; fillers++) {
        client.request("filler", { timeoutMs: 2 }).catch(() => {});
        await new Promise((resolve) => setImmediate(resolve));
      }
      expect(await probe, `round ${round}`).toBe("OK");
      await client.close();
      await (await server).close();
    }
  }, 60_000);

  it("2.6.10: copies do not queue up for a dead server (immediate): it gets no burst when it comes back", async () => {
    const deadEndpoint = await allocateAddress();
    const live = await startServer({ model: 2 });
    const client = startClient({ model: 2, endpoints: [deadEndpoint, live.endpoint] });
    const started = performance.now();
    for (let i = 0; i < 10; i++) expect(str(await client.request(`r${i}`))).toEqual(["OK"]);
    // The dead server cost nothing: no request waited for a timeout.
    expect(performance.now() - started).toBeLessThan(2500);
    // Both copies of every request went to the live server (the last one may still be landing).
    await until(live, "reply", () => live.stats().requests === 20);
    // It comes back as a raw ROUTER, whose connection we can watch.
    const back = track(new Router({ linger: 0 }));
    const connected = nextEvent(back.events, "handshake", () => true, 10_000);
    await back.bind(deadEndpoint);
    await connected;
    // Without immediate, ten copies would have been queued for it and would arrive now.
    back.receiveTimeout = 200;
    expect(await rejectionOf(back.receive())).toMatchObject({ code: "EAGAIN" });
    back.receiveTimeout = 5000;
    const pending = client.request("after");
    expect(str((await back.receive()).slice(1))).toEqual(["", "11", "after"]);
    expect(str(await pending)).toEqual(["OK"]);
  });

  it("2.3: many concurrent requests each get their own reply", async () => {
    const echo = (body: Buffer[]) => body;
    const servers = [
      await startServer({ model: 2, handler: echo }),
      await startServer({ model: 2, handler: echo }),
    ];
    const client = startClient({
      model: 2,
      endpoints: servers.map((s) => s.endpoint),
      timeoutMs: 10_000,
    });
    await warmUp(client, servers);
    const replies = await Promise.all(
      Array.from({ length: 300 }, (_, i) => client.request(`request ${i}`)),
    );
    expect(replies.map((r) => str(r))).toEqual(
      Array.from({ length: 300 }, (_, i) => [`request ${i}`]),
    );
    const stats = client.stats();
    expect(stats).toMatchObject({ pending: 0, abandoned: 0, sends: 2 * stats.requests });
    // Every copy was answered (each server counts its own; either may be the last).
    await Promise.any(
      servers.map((server) => until(server, "reply", () => totalRequests(servers) === stats.sends)),
    );
  });

  it("QueueFullError past maxPending, AbortedError on abort, ClosedError on close", async () => {
    const silent = track(await Tap.router());
    const client = startClient({
      model: 2,
      endpoints: [silent.endpoint],
      maxPending: 2,
      timeoutMs: 30_000,
    });
    const controller = new AbortController();
    const aborted = rejectionOf(client.request("a", { signal: controller.signal }));
    const closed = rejectionOf(client.request("b"));
    const full = await rejectionOf(client.request("c"));
    expect(full).toBeInstanceOf(QueueFullError);
    expect(full).toMatchObject({ code: "QUEUE_FULL" });
    controller.abort();
    expect(await aborted).toBeInstanceOf(AbortedError);
    expect(client.stats().pending).toBe(1);
    const sent = nextEvent(client, "sent", () => true, 5000);
    const third = rejectionOf(client.request("d"));
    await sent;
    await client.close();
    expect(await within(closed, 2000, "closed")).toBeInstanceOf(ClosedError);
    expect(await within(third, 2000, "third")).toBeInstanceOf(ClosedError);
    expect(client.stats()).toMatchObject({ pending: 0, abandoned: 0 });
    // A reply to an aborted request, had it come, has nobody to go to.
    expect(await rejectionOf(client.request("e"))).toBeInstanceOf(ClosedError);
  });

  it("InvalidArgumentError without endpoints, and for a duplicate or invalid endpoint", async () => {
    const client = startClient({ model: 2 });
    expect(await rejectionOf(client.request("x"))).toBeInstanceOf(InvalidArgumentError);
    const endpoint = await allocateAddress();
    client.connect(endpoint);
    expect(() => client.connect(endpoint)).toThrow(InvalidArgumentError);
    expect(() => client.connect("localhost:5555")).toThrow(InvalidArgumentError);
    expect(client.endpoints).toEqual([endpoint]);
  });
});
