import { spawn } from "node:child_process";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import {
  AbortedError,
  ClosedError,
  InvalidArgumentError,
  QueueFullError,
  RequestAbandonedError,
} from "@zmq-patterns/core";
import { allocateAddress, nodeCommand, Tap } from "@zmq-patterns/core/testing";
import { afterEach, describe, expect, it } from "vitest";
import { FreelanceClient, type FreelanceClientOptions } from "../src/index.js";
import {
  closeAll,
  deferred,
  nextEvent,
  RawFlpServer,
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
type Dropped = { reason: string; from: string };

/** Generous upper margin for timers on a loaded machine; lower bounds stay tight. */
const SLACK = 1500;

/** A model-3 client whose servers have all answered a ping (serverUp) before it is returned. */
async function liveClient(
  endpoints: string[],
  options: Omit<FreelanceClientOptions, "model" | "endpoints"> = {},
): Promise<FreelanceClient> {
  const client = startClient({ model: 3, ...options });
  const up = new Set<string>();
  client.on("serverUp", ({ endpoint }) => up.add(endpoint));
  const allUp = until(
    client,
    "serverUp",
    () => endpoints.every((endpoint) => up.has(endpoint)),
    10_000,
  );
  for (const endpoint of endpoints) client.connect(endpoint);
  await allUp;
  return client;
}

describe("FreelanceClient model 3: liveness (spec 2.4.4, 2.7.5)", () => {
  it("2.7.5: pings a server on connect, then every pingIntervalMs while it is silent", async () => {
    const server = await RawFlpServer.start();
    const started = performance.now();
    const client = startClient({
      model: 3,
      endpoints: [server.endpoint],
      pingIntervalMs: 150,
      serverTtlMs: 5000,
    });
    const up = nextEvent(client, "serverUp");
    await until(server, "ping", () => server.pings.length >= 4);
    expect(await up).toEqual({ endpoint: server.endpoint });
    const [first, ...rest] = server.pings.map((ping) => ping.at);
    expect((first as number) - started).toBeLessThan(SLACK);
    let previous = first as number;
    for (const at of rest) {
      expect(at - previous).toBeGreaterThanOrEqual(150 - 20);
      expect(at - previous).toBeLessThan(150 + SLACK);
      previous = at;
    }
    // The wire: one frame, PING, from one anonymous client.
    expect(server.pings.every((ping) => str(ping.frames).join() === "PING")).toBe(true);
    expect(new Set(server.pings.map((ping) => ping.client.toString("hex"))).size).toBe(1);
    expect(client.stats().servers).toEqual([{ endpoint: server.endpoint, alive: true }]);
  });

  it("2.7.5: a server is not pinged while it keeps talking (replies count as signs of life)", async () => {
    const server = await RawFlpServer.start({ answerRequests: true });
    const client = await liveClient([server.endpoint], {
      pingIntervalMs: 1000,
      serverTtlMs: 5000,
    });
    const pingsBefore = server.pings.length;
    const started = performance.now();
    let count = 0;
    // Requests answered back to back for a little over half a ping interval.
    while (performance.now() - started < 600) {
      expect(str(await client.request(`r${count}`))).toEqual(["OK"]);
      count += 1;
    }
    const lastReply = performance.now();
    expect(count).toBeGreaterThan(2);
    const nextPing = await nextEvent<{ at: number }>(server, "ping", () => true, 5000);
    // The first ping after the traffic comes one interval after the last sign of life.
    expect(nextPing.at - lastReply).toBeGreaterThanOrEqual(1000 - 30);
    expect(server.pings.length).toBe(pingsBefore + 1);
  });

  it("2.7.5: a server silent for serverTtlMs is marked gone (serverDown), and up again when it answers", async () => {
    const server = await RawFlpServer.start();
    const client = await liveClient([server.endpoint], { pingIntervalMs: 100, serverTtlMs: 500 });
    server.answerPings = false;
    const silentFrom = performance.now();
    // The last PONG went out for the last ping that arrived before the switch.
    const lastPong = server.pings.filter((ping) => ping.at <= silentFrom).at(-1)?.at as number;
    const down = await nextEvent<{ endpoint: string }>(client, "serverDown", () => true, 5000);
    const downAt = performance.now();
    expect(down).toEqual({ endpoint: server.endpoint });
    expect(downAt - lastPong).toBeGreaterThanOrEqual(500 - 30);
    expect(downAt - silentFrom).toBeLessThan(500 + SLACK);
    expect(client.stats().servers).toEqual([{ endpoint: server.endpoint, alive: false }]);
    // Pings go on while it is gone (2.6.8), so it is noticed when it answers again.
    const pingsWhileDown = server.pings.length;
    await until(server, "ping", () => server.pings.length >= pingsWhileDown + 2);
    const up = nextEvent(client, "serverUp", () => true, 5000);
    server.answerPings = true;
    expect(await up).toEqual({ endpoint: server.endpoint });
    expect(client.stats().servers).toEqual([{ endpoint: server.endpoint, alive: true }]);
  });

  it("2.7.5: a request with no live server fails after its timeout (default 3,000 ms)", async () => {
    const client = startClient({ model: 3, endpoints: [await allocateAddress()] });
    const sent = record<Sent>(client, "sent");
    const started = performance.now();
    const short = await rejectionOf(client.request("anyone?", { timeoutMs: 400 }));
    const elapsed = performance.now() - started;
    expect(short).toBeInstanceOf(RequestAbandonedError);
    expect(short).toMatchObject({ code: "TIMEOUT", timeoutMs: 400, attempts: 0 });
    expect(elapsed).toBeGreaterThanOrEqual(400 - 30);
    expect(elapsed).toBeLessThan(400 + SLACK);
    const startedDefault = performance.now();
    const byDefault = await rejectionOf(client.request("anyone?"));
    expect(byDefault).toMatchObject({ code: "TIMEOUT", timeoutMs: 3000, attempts: 0 });
    expect(performance.now() - startedDefault).toBeGreaterThanOrEqual(3000 - 30);
    expect(sent).toEqual([]);
    expect(client.stats()).toMatchObject({ requests: 2, abandoned: 2, replies: 0, pending: 0 });
  });

  it("2.6.7: no sleep after connect: a request made at once waits for the handshake and is sent once", async () => {
    const server = await startServer({ model: 3 });
    const client = startClient({ model: 3, endpoints: [server.endpoint] });
    const sent = record<Sent>(client, "sent");
    expect(str(await client.request("random name"))).toEqual(["OK"]);
    expect(sent).toEqual([{ sequence: 1, endpoint: server.endpoint, attempt: 1 }]);
    expect(server.stats().requests).toBe(1);
  });
});

describe("FreelanceClient model 3: connections (spec 2.6.7, 4.7)", () => {
  it("2.6.7: servers that connect at the same instant are all reached, though a send right after a handshake can fail", async () => {
    // libzmq takes a new connection into the ROUTER lazily, so a PING sent right after the
    // handshake event may fail with EHOSTUNREACH; the agent must probe again, not give up.
    for (let round = 0; round < 25; round++) {
      // ipc: as racy as tcp, and it spares this process's share of test ports.
      const servers = [
        await RawFlpServer.start({ endpoint: await allocateAddress("ipc") }),
        await RawFlpServer.start({ endpoint: await allocateAddress("ipc") }),
      ];
      const client = await liveClient(
        servers.map((server) => server.endpoint),
        { pingIntervalMs: 5000, serverTtlMs: 20_000 },
      );
      for (const server of servers) server.answerRequests = true;
      const replies = await Promise.all([client.request("a"), client.request("b")]);
      expect(replies.map(str)).toEqual([["OK"], ["OK"]]);
      await client.close();
      for (const server of servers) server.close();
    }
  });

  it("4.1: ipc endpoints (a non-ASCII path too) and inproc endpoints work, the identity being the endpoint", async () => {
    const ipc = (await allocateAddress("ipc")).replace(/\.sock$/, "-été.sock");
    const inproc = await allocateAddress("inproc");
    const ipcServer = await startServer({ model: 3, bind: ipc, handler: () => ["ipc"] });
    await startServer({ model: 3, bind: inproc, handler: () => ["inproc"] });
    expect(ipcServer.identity).toBe(ipc);
    for (const [endpoint, answer] of [
      [ipc, "ipc"],
      [inproc, "inproc"],
    ] as const) {
      const client = startClient({ model: 3, endpoints: [endpoint], timeoutMs: 5000 });
      expect(str(await client.request("x"))).toEqual([answer]);
      expect(client.stats().dropped).toEqual({});
    }
  });

  it("4.1: an inproc server bound after the client connected is found by the next ping", async () => {
    const inproc = await allocateAddress("inproc");
    const client = startClient({
      model: 3,
      endpoints: [inproc],
      timeoutMs: 10_000,
      pingIntervalMs: 100,
      serverTtlMs: 5000,
    });
    const pending = client.request("early");
    const up = nextEvent(client, "serverUp", () => true, 5000);
    await startServer({ model: 3, bind: inproc });
    await up;
    expect(str(await pending)).toEqual(["OK"]);
  });

  it("a constructor that throws on a bad endpoint leaves no socket open (the process can exit)", async () => {
    const [loader, ...flags] = nodeCommand("x.ts").args.slice(0, -1);
    const index = pathToFileURL(join(import.meta.dirname, "../src/index.ts")).href;
    const script = [
      `const { FreelanceClient } = await import(${JSON.stringify(index)});`,
      "for (const model of [1, 2, 3]) {",
      '  try { new FreelanceClient({ model, endpoints: ["tcp://127.0.0.1:1", "nope"] }); }',
      "  catch (error) { console.log(model, error.code); }",
      "}",
    ].join("\n");
    const outcome = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const child = spawn(
        process.execPath,
        [loader as string, ...flags, "--input-type=module", "-e", script],
        {
          stdio: ["ignore", "pipe", "inherit"],
        },
      );
      let stdout = "";
      child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
      const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
      child.on("close", (code) => {
        clearTimeout(timer);
        resolve({ code, stdout });
      });
    });
    expect(outcome).toEqual({
      code: 0,
      stdout: "1 INVALID_ARGUMENT\n2 INVALID_ARGUMENT\n3 INVALID_ARGUMENT\n",
    });
  }, 30_000);
});

describe("FreelanceClient model 3: replies (spec 2.4.4, 2.6.2, 2.6.3)", () => {
  it("2.4.5: the wire is [endpoint][seq][body...] with seq from 1, and the reply body follows the CCF", async () => {
    const server = await RawFlpServer.start();
    const client = await liveClient([server.endpoint]);
    const pending = client.request(["a", "b"]);
    const request = await nextEvent<{ client: Buffer; frames: Buffer[] }>(server, "request");
    expect(str(request.frames)).toEqual(["1", "a", "b"]);
    await server.send(request.client, ["1", "x", "y"]);
    expect(str(await pending)).toEqual(["x", "y"]);
  });

  it("2.7.5, 2.6.2: duplicate and late replies are dropped and counted, and each request gets its own", async () => {
    const server = await RawFlpServer.start();
    const client = await liveClient([server.endpoint], { timeoutMs: 10_000 });
    const dropped = record<Dropped>(client, "dropped");
    // Request 1 is answered twice.
    const one = client.request("one");
    const r1 = await nextEvent<{ client: Buffer; frames: Buffer[] }>(server, "request");
    expect(str(r1.frames)).toEqual(["1", "one"]);
    await server.send(r1.client, ["1", "first"]);
    await server.send(r1.client, ["1", "first again"]);
    expect(str(await one)).toEqual(["first"]);
    await until(client, "dropped", () => dropped.length === 1);
    // Request 2 times out; its reply comes later and goes nowhere.
    const requested = nextEvent<{ client: Buffer; frames: Buffer[] }>(server, "request");
    const two = await rejectionOf(client.request("two", { timeoutMs: 200 }));
    expect(two).toBeInstanceOf(RequestAbandonedError);
    expect(str((await requested).frames)).toEqual(["2", "two"]);
    await server.send(r1.client, ["2", "second, too late"]);
    await until(client, "dropped", () => dropped.length === 2);
    // Request 3 is outstanding while stale replies to 1 and 2 arrive: it takes only its own.
    const three = client.request("three");
    const r3 = await nextEvent<{ client: Buffer; frames: Buffer[] }>(server, "request");
    expect(str(r3.frames)).toEqual(["3", "three"]);
    await server.send(r3.client, ["2", "second, even later"]);
    await server.send(r3.client, ["1", "first, once more"]);
    await until(client, "dropped", () => dropped.length === 4);
    await server.send(r3.client, ["3", "third"]);
    expect(str(await three)).toEqual(["third"]);
    expect(dropped.every((d) => d.reason === "stale reply" && d.from === server.endpoint)).toBe(
      true,
    );
    expect(client.stats()).toMatchObject({
      requests: 3,
      replies: 2,
      abandoned: 1,
      pending: 0,
      dropped: { "stale reply": 4 },
    });
  });

  it("2.6.3: malformed server messages are dropped and counted, and the client keeps working", async () => {
    const server = await RawFlpServer.start();
    const client = await liveClient([server.endpoint]);
    const peer = server.pings[0]?.client as Buffer;
    const dropped = record<Dropped>(client, "dropped");
    await server.send(peer, ["PONG", "extra"]);
    await server.send(peer, ["17"]);
    await server.send(peer, ["abc", "OK"]);
    await server.send(peer, ["01", "OK"]);
    await server.send(peer, ["PING"]);
    await until(client, "dropped", () => dropped.length === 5);
    expect(client.stats().dropped).toEqual({
      "PONG with extra frames": 1,
      "missing frame: body": 2,
      "invalid control frame": 2,
    });
    server.answerRequests = true;
    expect(str(await client.request("still fine"))).toEqual(["OK"]);
  });

  it("2.6.6: a server whose identity is not the endpoint is dropped and counted, never a crash", async () => {
    // A bound DEALER announcing itself as tcp://localhost:PORT while the client dials 127.0.0.1.
    const bind = await allocateAddress();
    const wrongId = bind.replace("127.0.0.1", "localhost");
    const impostor = track(await Tap.bindDealer({ bind, routingId: wrongId }));
    const release = deferred();
    const good = await startServer({
      model: 3,
      handler: async () => {
        await release.promise;
        return ["real"];
      },
    });
    const client = startClient({ model: 3, endpoints: [bind, good.endpoint], timeoutMs: 10_000 });
    const dropped = record<Dropped>(client, "dropped");
    await impostor.send(["PONG"], 5000);
    await until(client, "dropped", () => dropped.length === 1);
    expect(dropped[0]).toEqual({ reason: "unknown server identity", from: wrongId });
    // A "reply" from it while request 1 is outstanding is not taken for the real one.
    const pending = client.request("who?");
    await impostor.send(["1", "fake"], 5000);
    await until(client, "dropped", () => dropped.length === 2);
    release.resolve();
    expect(str(await pending)).toEqual(["real"]);
    expect(client.stats().dropped).toEqual({ "unknown server identity": 2 });
    expect(client.stats().servers.map((s) => s.endpoint)).toEqual([bind, good.endpoint]);
  });

  it("2.6.6: a ROUTER server with the wrong identity is never reached; requests fail in time, no crash", async () => {
    const bind = await allocateAddress();
    const server = await RawFlpServer.start({
      endpoint: bind,
      identity: bind.replace("127.0.0.1", "localhost"),
      answerRequests: true,
    });
    const client = startClient({ model: 3, endpoints: [bind] });
    const error = await rejectionOf(client.request("x", { timeoutMs: 400 }));
    expect(error).toBeInstanceOf(RequestAbandonedError);
    expect(server.pings).toEqual([]);
    expect(server.requests).toEqual([]);
    expect(client.stats().servers).toEqual([{ endpoint: bind, alive: false }]);
  });

  it("2.4.4: many concurrent requests each get their own reply", async () => {
    const echo = (body: Buffer[]) => body;
    const a = await startServer({ model: 3, handler: echo });
    const b = await startServer({ model: 3, handler: echo });
    const client = await liveClient([a.endpoint, b.endpoint], { timeoutMs: 10_000 });
    const replies = await Promise.all(
      Array.from({ length: 300 }, (_, i) => client.request(`request ${i}`)),
    );
    expect(replies.map((r) => str(r))).toEqual(
      Array.from({ length: 300 }, (_, i) => [`request ${i}`]),
    );
    expect(client.stats()).toMatchObject({ requests: 300, replies: 300, sends: 300, pending: 0 });
  });
});

describe("FreelanceClient model 3: routing and failover (spec 2.6.1, 2.6.5, 2.7.6)", () => {
  it("2.7.6, 2.6.4: with A and B alive every request goes to A, and each server is listed once", async () => {
    const a = await startServer({ model: 3 });
    const b = await startServer({ model: 3 });
    const client = await liveClient([a.endpoint, b.endpoint]);
    const sent = record<Sent>(client, "sent");
    for (let i = 0; i < 20; i++) expect(str(await client.request(`r${i}`))).toEqual(["OK"]);
    expect(new Set(sent.map((s) => s.endpoint))).toEqual(new Set([a.endpoint]));
    expect(sent).toHaveLength(20);
    expect(a.stats().requests).toBe(20);
    expect(b.stats().requests).toBe(0);
    expect(client.stats().servers).toEqual([
      { endpoint: a.endpoint, alive: true },
      { endpoint: b.endpoint, alive: true },
    ]);
  });

  it("2.7.6: A dies mid-request -> the request and the next ones move to B at once; A back -> used again after it answers a ping", async () => {
    const handled = deferred();
    const a = await startServer({
      model: 3,
      handler: (body) => {
        if (String(body[0]) === "hang") {
          handled.resolve();
          return new Promise<never>(() => {});
        }
        return ["from A"];
      },
    });
    const aEndpoint = a.endpoint;
    const b = await startServer({ model: 3, handler: () => ["from B"] });
    const client = await liveClient([aEndpoint, b.endpoint], {
      timeoutMs: 20_000,
      attemptTimeoutMs: 10_000,
      pingIntervalMs: 150,
      serverTtlMs: 1000,
    });
    const failovers = record<Failover>(client, "failover");
    expect(str(await client.request("hello"))).toEqual(["from A"]);
    const pending = client.request("hang");
    await handled.promise;
    const down = nextEvent(
      client,
      "serverDown",
      ({ endpoint }: { endpoint: string }) => endpoint === aEndpoint,
      10_000,
    );
    const killedAt = performance.now();
    await a.close();
    // The connection drop moves it on, long before its 10 s attempt timeout.
    expect(str(await pending)).toEqual(["from B"]);
    expect(performance.now() - killedAt).toBeLessThan(SLACK);
    expect(failovers).toEqual([{ sequence: 2, from: aEndpoint, reason: "disconnected" }]);
    const sent = record<Sent>(client, "sent");
    for (let i = 0; i < 5; i++) expect(str(await client.request(`r${i}`))).toEqual(["from B"]);
    expect(sent.map((s) => s.endpoint)).toEqual(Array(5).fill(b.endpoint));
    await down;
    // A comes back on the same endpoint: once it answers a ping, it is preferred again.
    const up = nextEvent(
      client,
      "serverUp",
      ({ endpoint }: { endpoint: string }) => endpoint === aEndpoint,
      10_000,
    );
    const back = await startServer({ model: 3, bind: aEndpoint, handler: () => ["A again"] });
    await up;
    expect(str(await client.request("again"))).toEqual(["A again"]);
    expect(sent.at(-1)?.endpoint).toBe(aEndpoint);
    expect(back.stats().pings).toBeGreaterThanOrEqual(1);
  });

  it("2.6.5: a silent head server costs one attempt (attemptTimeoutMs), not the whole request", async () => {
    const silent = await RawFlpServer.start({ answerRequests: false });
    const live = await startServer({ model: 3 });
    const client = await liveClient([silent.endpoint, live.endpoint], {
      attemptTimeoutMs: 300,
      timeoutMs: 10_000,
    });
    const sent = record<Sent>(client, "sent");
    const failovers = record<Failover>(client, "failover");
    const started = performance.now();
    expect(str(await client.request("x"))).toEqual(["OK"]);
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(300 - 30);
    expect(elapsed).toBeLessThan(300 + SLACK);
    expect(sent.map((s) => [s.endpoint, s.attempt])).toEqual([
      [silent.endpoint, 1],
      [live.endpoint, 2],
    ]);
    expect(failovers).toEqual([{ sequence: 1, from: silent.endpoint, reason: "timeout" }]);
  });

  it("2.6.5: by default an attempt gets the request timeout divided by the number of servers", async () => {
    const silent = await RawFlpServer.start({ answerRequests: false });
    const live = await startServer({ model: 3 });
    const client = await liveClient([silent.endpoint, live.endpoint], { timeoutMs: 1200 });
    const started = performance.now();
    expect(str(await client.request("x"))).toEqual(["OK"]);
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(600 - 30);
    expect(elapsed).toBeLessThan(1200);
  });

  it("2.6.1: no resend storm: a server answering pings but not requests gets each request once per attempt", async () => {
    const server = await RawFlpServer.start({ answerRequests: false });
    const client = await liveClient([server.endpoint], {
      attemptTimeoutMs: 250,
      timeoutMs: 1000,
      pingIntervalMs: 20,
      serverTtlMs: 5000,
    });
    const pingsBefore = server.pings.length;
    const error = await rejectionOf(client.request("x"));
    expect(error).toBeInstanceOf(RequestAbandonedError);
    // Dozens of pongs woke the agent (the reference resent on every one of them)...
    expect(server.pings.length - pingsBefore).toBeGreaterThanOrEqual(10);
    // ...but the request left once per 250 ms attempt: at most 4 times in 1,000 ms.
    const copies = server.copiesOf("1");
    expect(copies.length).toBeGreaterThanOrEqual(1);
    expect(copies.length).toBeLessThanOrEqual(4);
    for (let i = 1; i < copies.length; i++) {
      expect((copies[i]?.at as number) - (copies[i - 1]?.at as number)).toBeGreaterThanOrEqual(
        250 * 0.8,
      );
    }
    expect((error as RequestAbandonedError).attempts).toBe(copies.length);
  });

  it("2.6.1: with two such servers the request alternates, each server once per round", async () => {
    const a = await RawFlpServer.start({ answerRequests: false });
    const b = await RawFlpServer.start({ answerRequests: false });
    const client = await liveClient([a.endpoint, b.endpoint], {
      attemptTimeoutMs: 200,
      timeoutMs: 1000,
      pingIntervalMs: 20,
      serverTtlMs: 5000,
    });
    const sent = record<Sent>(client, "sent");
    expect(await rejectionOf(client.request("x"))).toBeInstanceOf(RequestAbandonedError);
    expect(sent.length).toBeLessThanOrEqual(5);
    expect(sent.map((s) => s.endpoint)).toEqual(
      sent.map((_, i) => (i % 2 === 0 ? a.endpoint : b.endpoint)),
    );
    for (const server of [a, b]) {
      const copies = server.copiesOf("1");
      for (let i = 1; i < copies.length; i++) {
        expect((copies[i]?.at as number) - (copies[i - 1]?.at as number)).toBeGreaterThanOrEqual(
          2 * 200 * 0.8,
        );
      }
    }
  });
});

describe("FreelanceClient model 3: API", () => {
  it("QueueFullError at maxPending, AbortedError on abort, ClosedError on close", async () => {
    const server = await RawFlpServer.start({ answerRequests: false });
    const client = await liveClient([server.endpoint], { maxPending: 2, timeoutMs: 30_000 });
    const controller = new AbortController();
    const aborted = rejectionOf(client.request("a", { signal: controller.signal }));
    const closed = rejectionOf(client.request("b"));
    const full = await rejectionOf(client.request("c"));
    expect(full).toBeInstanceOf(QueueFullError);
    expect(full).toMatchObject({ code: "QUEUE_FULL" });
    controller.abort(new Error("changed my mind"));
    const abortError = await aborted;
    expect(abortError).toBeInstanceOf(AbortedError);
    expect(abortError).toMatchObject({ code: "ABORTED" });
    expect(client.stats().pending).toBe(1);
    expect(await rejectionOf(client.request("d", { signal: AbortSignal.abort() }))).toBeInstanceOf(
      AbortedError,
    );
    await client.close();
    expect(await within(closed, 2000, "closed")).toBeInstanceOf(ClosedError);
    expect(await rejectionOf(client.request("e"))).toBeInstanceOf(ClosedError);
    expect(() => client.connect(server.endpoint)).toThrow(ClosedError);
    await client.close();
    expect(client.stats()).toMatchObject({ pending: 0, abandoned: 0 });
  });

  it("connect rejects duplicate and invalid endpoints; request needs an endpoint and a body", async () => {
    const client = startClient({ model: 3 });
    expect(await rejectionOf(client.request("x"))).toBeInstanceOf(InvalidArgumentError);
    const endpoint = await allocateAddress();
    client.connect(endpoint);
    expect(() => client.connect(endpoint)).toThrow(/already connected/);
    expect(() => client.connect(endpoint)).toThrow(InvalidArgumentError);
    for (const bad of ["localhost:5555", "", "tcp://nohost", "tcp://127.0.0.1:99999"]) {
      expect(() => client.connect(bad), bad).toThrow(InvalidArgumentError);
    }
    expect(client.endpoints).toEqual([endpoint]);
    expect(await rejectionOf(client.request([]))).toBeInstanceOf(InvalidArgumentError);
    expect(await rejectionOf(client.request("x", { timeoutMs: -1 }))).toBeInstanceOf(
      InvalidArgumentError,
    );
    expect(client.stats()).toMatchObject({ model: 3, requests: 0 });
  });

  it("rejects bad options with InvalidArgumentError", () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ model: 4 }, /model must be 1, 2 or 3/],
      [{ model: 3, timeoutMs: 0 }, /timeoutMs must be/],
      [{ model: 3, attemptTimeoutMs: Number.NaN }, /attemptTimeoutMs must be/],
      [{ model: 3, pingIntervalMs: 0 }, /pingIntervalMs must be/],
      [{ model: 3, pingIntervalMs: 1000, serverTtlMs: 1000 }, /serverTtlMs \(1000\) must exceed/],
      [{ model: 3, maxPending: 0 }, /maxPending must be an integer/],
      [{ model: 1, retries: 0 }, /retries must be an integer/],
      [{ model: 3, endpoints: ["nope"] }, /endpoint must be a ZeroMQ endpoint/],
    ];
    for (const [options, message] of cases) {
      expect(
        () => new FreelanceClient(options as unknown as FreelanceClientOptions),
        JSON.stringify(options),
      ).toThrow(message);
    }
    expect(() => new FreelanceClient(undefined as unknown as FreelanceClientOptions)).toThrow(
      InvalidArgumentError,
    );
  });
});
