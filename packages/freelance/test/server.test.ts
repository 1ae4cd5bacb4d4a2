import { InvalidArgumentError } from "@zmq-patterns/core";
import { allocateAddress, Tap } from "@zmq-patterns/core/testing";
import { afterEach, describe, expect, it } from "vitest";
import { Request } from "zeromq";
import { FreelanceServer, type FreelanceServerStats } from "../src/index.js";
import {
  CallCounter,
  closeAll,
  deferred,
  E,
  nextEvent,
  RecordingLogger,
  rejectionOf,
  startServer,
  str,
  t,
  track,
  until,
} from "./support.js";

afterEach(closeAll);

/** A REQ client connected to `endpoint`, closed after the test. */
function req(endpoint: string): Request {
  const socket = new Request({ linger: 0, receiveTimeout: 5000, sendTimeout: 5000 });
  socket.connect(endpoint);
  return track(socket);
}

async function dealer(endpoint: string) {
  return track(await Tap.dealer(endpoint));
}

async function flpClient(endpoint: string) {
  return track(await Tap.connectRouter(endpoint));
}

/** Waits until `count` drops were counted, then returns the dropped-by-reason snapshot. */
async function dropsAfter(server: FreelanceServer, count: number) {
  const total = (s: FreelanceServerStats) => Object.values(s.dropped).reduce((a, b) => a + b, 0);
  await until(server, "dropped", () => total(server.stats()) >= count);
  return server.stats().dropped;
}

describe("FreelanceServer model 1 (spec 2.2)", () => {
  it("2.2: echoes a REQ client's request unchanged, one frame or several", async () => {
    const server = await startServer({ model: 1 });
    expect(server.model).toBe(1);
    expect(server.identity).toBeUndefined();
    const client = req(server.endpoint);
    await client.send("Hello world");
    expect(str(await client.receive())).toEqual(["Hello world"]);
    await client.send([t("a"), E, t("c")]);
    expect(str(await client.receive())).toEqual(["a", "", "c"]);
    expect(server.stats()).toMatchObject({ requests: 2, pings: 0, inFlight: 0, handlerErrors: 0 });
  });

  it('2.4.5: answers a DEALER that sends [""][body], and keeps a multi-hop envelope', async () => {
    const server = await startServer({ model: 1 });
    const client = await dealer(server.endpoint);
    await client.send([E, "direct"]);
    expect(str(await client.receive())).toEqual(["", "direct"]);
    await client.send(["hop-2", "hop-1", E, "relayed", "twice"]);
    expect(str(await client.receive())).toEqual(["hop-2", "hop-1", "", "relayed", "twice"]);
  });

  it("2.6.9: drops a message without delimiter or without body, counts it, and keeps serving", async () => {
    const server = await startServer({ model: 1 });
    const client = await dealer(server.endpoint);
    const dropped = nextEvent<{ reason: string; from: string }>(server, "dropped");
    await client.send(["no delimiter"]);
    expect((await dropped).reason).toBe("no envelope delimiter");
    expect((await dropped).from).toMatch(/^[0-9a-f]+$/);
    await client.send([E]);
    expect(await dropsAfter(server, 2)).toEqual({
      "no envelope delimiter": 1,
      "missing frame: body": 1,
    });
    await client.send([E, "still here"]);
    expect(str(await client.receive())).toEqual(["", "still here"]);
    expect(server.stats().requests).toBe(1);
  });
});

describe("FreelanceServer model 2 (spec 2.3)", () => {
  it('2.7.2: replies [seq]["OK"] to [seq][body], the sequence frame unchanged', async () => {
    const server = await startServer({ model: 2 });
    const client = await dealer(server.endpoint);
    await client.send([E, "1", "random name"]);
    expect(str(await client.receive())).toEqual(["", "1", "OK"]);
    await client.send([E, "9007199254740991", "x"]);
    expect(str(await client.receive())).toEqual(["", "9007199254740991", "OK"]);
    // A REQ client is just as welcome (REP semantics on a ROUTER).
    const rq = req(server.endpoint);
    await rq.send(["7", "random name"]);
    expect(str(await rq.receive())).toEqual(["7", "OK"]);
    expect(server.stats().requests).toBe(3);
  });

  it("2.7.2: hands the handler the one body frame and sends back its reply after the sequence", async () => {
    const seen: string[][] = [];
    const server = await startServer({
      model: 2,
      handler: (body) => {
        seen.push(str(body));
        return [`name:${String(body[0])}`, "extra"];
      },
    });
    const client = await dealer(server.endpoint);
    await client.send([E, "42", "alice"]);
    expect(str(await client.receive())).toEqual(["", "42", "name:alice", "extra"]);
    expect(seen).toEqual([["alice"]]);
  });

  it("2.7.2, fix 2.6.9: drops every other shape, counts it by reason, and keeps serving", async () => {
    const server = await startServer({ model: 2 });
    const client = await dealer(server.endpoint);
    const malformed: Array<Array<string | Buffer>> = [
      ["1", "no delimiter"],
      [E],
      [E, "1"],
      [E, "1", "a", "b"],
      [E, "abc", "a"],
      [E, "12abc", "a"],
      [E, "01", "a"],
      [E, E, "a"],
    ];
    for (const frames of malformed) await client.send(frames);
    await client.send([E, "2", "good"]);
    expect(str(await client.receive())).toEqual(["", "2", "OK"]);
    // Messages from one peer are handled in order: every drop happened before the reply.
    expect(server.stats().dropped).toEqual({
      "no envelope delimiter": 1,
      "missing frame: sequence": 1,
      "missing frame: body": 1,
      "unexpected 1 extra frame(s)": 1,
      "invalid sequence": 4,
    });
    expect(server.stats()).toMatchObject({ requests: 1, handlerErrors: 0, inFlight: 0 });
    await client.expectNothing(100);
  });
});

describe("FreelanceServer model 3 (RFC 10/FLP, spec 2.4.1-2.4.2)", () => {
  it("2.7.4: the identity is the bound endpoint, and clients address the server by it", async () => {
    const server = await startServer({ model: 3 });
    expect(server.identity).toBe(server.endpoint);
    const client = await flpClient(server.endpoint);
    await client.send([server.endpoint, "PING"]);
    expect(str(await client.receive())).toEqual([server.endpoint, "PONG"]);
  });

  it("2.4.2: a wildcard bind gets the identity tcp://localhost:PORT, which clients connect to", async () => {
    const port = (await allocateAddress()).split(":").at(-1);
    const server = await startServer({ model: 3, bind: `tcp://*:${port}` });
    expect(server.identity).toBe(`tcp://localhost:${port}`);
    const client = await flpClient(`tcp://localhost:${port}`);
    await client.send([`tcp://localhost:${port}`, "1", "random name"]);
    expect(str(await client.receive())).toEqual([`tcp://localhost:${port}`, "1", "OK"]);
  });

  it("2.4.1: a configured identity (the public endpoint) is used as given", async () => {
    const bind = await allocateAddress();
    const identity = `tcp://freelance.example:${bind.split(":").at(-1)}`;
    const server = await startServer({ model: 3, bind, identity });
    expect(server.identity).toBe(identity);
    const client = await flpClient(bind);
    await client.send([identity, "PING"]);
    expect(str(await client.receive())).toEqual([identity, "PONG"]);
  });

  it('2.7.4: PING -> PONG and [ccf][body...] -> [ccf]["OK"], the CCF opaque and unchanged', async () => {
    const server = await startServer({ model: 3 });
    const id = server.endpoint;
    const client = await flpClient(id);
    const pinged = nextEvent<{ from: string }>(server, "ping");
    await client.send([id, "PING"]);
    expect(str(await client.receive())).toEqual([id, "PONG"]);
    expect((await pinged).from).toMatch(/^[0-9a-f]+$/);
    await client.send([id, "17", "random name"]);
    expect(str(await client.receive())).toEqual([id, "17", "OK"]);
    await client.send([id, Buffer.from([0, 1, 2]), "a", E, "c"]);
    const reply = await client.receive();
    expect(reply).toEqual([t(id), Buffer.from([0, 1, 2]), t("OK")]);
    expect(server.stats()).toMatchObject({ requests: 2, pings: 1 });
  });

  it("2.7.4: a custom handler's reply follows the CCF, synchronous or asynchronous", async () => {
    const server = await startServer({
      model: 3,
      handler: async (body) => {
        await new Promise((resolve) => setImmediate(resolve));
        return body.map((frame) => String(frame).toUpperCase());
      },
    });
    const id = server.endpoint;
    const client = await flpClient(id);
    await client.send([id, "5", "a", "b"]);
    expect(str(await client.receive())).toEqual([id, "5", "A", "B"]);
    const sync = await startServer({ model: 3, handler: () => "plain" });
    const client2 = await flpClient(sync.endpoint);
    await client2.send([sync.endpoint, "6", "x"]);
    expect(str(await client2.receive())).toEqual([sync.endpoint, "6", "plain"]);
  });

  it("2.7.4: malformed commands are dropped and counted, and the server keeps serving", async () => {
    const server = await startServer({ model: 3 });
    const id = server.endpoint;
    const client = await flpClient(id);
    await client.send([id, "PING", "extra"]);
    await client.send([id, "PING", E]);
    await client.send([id, "17"]);
    await client.send([id, "PING"]);
    expect(str(await client.receive())).toEqual([id, "PONG"]);
    expect(server.stats().dropped).toEqual({
      "PING with extra frames": 2,
      "missing frame: body": 1,
    });
    expect(server.stats()).toMatchObject({ requests: 0, pings: 1 });
    await client.expectNothing(100);
  });
});

describe("FreelanceServer handlers, backpressure and lifecycle", () => {
  it("counts handler errors (throw, rejection, no frame) without replying, and keeps serving", async () => {
    const logger = new RecordingLogger();
    const server = await startServer({
      model: 3,
      logger,
      handler: (body) => {
        const what = String(body[0]);
        if (what === "throw") throw new Error("boom");
        if (what === "reject") return Promise.reject(new Error("async boom"));
        if (what === "nothing") return [];
        return ["fine"];
      },
    });
    const id = server.endpoint;
    const client = await flpClient(id);
    for (const [n, what] of ["throw", "reject", "nothing"].entries()) {
      await client.send([id, String(n), what]);
    }
    await logger.waitFor("handler failed", 3);
    const errors = logger.lines.filter((l) => l.level === "error").map((l) => l.fields?.error);
    expect(errors.sort()).toEqual([
      "async boom",
      "boom",
      "protocol violation: handler returned no frame",
    ]);
    await client.send([id, "9", "ok"]);
    expect(str(await client.receive())).toEqual([id, "9", "fine"]);
    expect(server.stats()).toMatchObject({ requests: 4, handlerErrors: 3, inFlight: 0 });
    await client.expectNothing(100);
  });

  it("maxInFlight: a slow handler stops the server reading until a request finishes", async () => {
    const gates: Array<() => void> = [];
    const started: string[] = [];
    const calls = new CallCounter();
    const server = await startServer({
      model: 1,
      maxInFlight: 2,
      handler: async (body) => {
        started.push(String(body[0]));
        const gate = deferred();
        gates.push(() => gate.resolve());
        calls.hit();
        await gate.promise;
        return body;
      },
    });
    const client = await dealer(server.endpoint);
    for (let i = 1; i <= 4; i++) await client.send([E, `r${i}`]);
    // Two handlers run; the other two requests wait in ZeroMQ's queues, not in memory.
    await calls.reached(2);
    expect(server.stats()).toMatchObject({ inFlight: 2, requests: 2 });
    await client.expectNothing(150);
    expect(started).toEqual(["r1", "r2"]);
    gates[0]?.();
    expect(str(await client.receive())).toEqual(["", "r1"]);
    await calls.reached(3);
    expect(server.stats()).toMatchObject({ inFlight: 2, requests: 3 });
    expect(started).toEqual(["r1", "r2", "r3"]);
    gates[1]?.();
    await calls.reached(4);
    gates[2]?.();
    gates[3]?.();
    const rest = [await client.receive(), await client.receive(), await client.receive()];
    expect(rest.map((m) => String(m[1])).sort()).toEqual(["r2", "r3", "r4"]);
    expect(server.stats()).toMatchObject({ inFlight: 0, requests: 4 });
  });

  it("a reply finished after close is neither sent nor reported as a reply", async () => {
    const calls = new CallCounter();
    const gate = deferred();
    const server = await startServer({
      model: 3,
      handler: async () => {
        calls.hit();
        await gate.promise;
        return ["late"];
      },
    });
    const client = await flpClient(server.endpoint);
    await client.send([server.endpoint, "1", "x"]);
    await calls.reached(1);
    const replies: unknown[] = [];
    server.on("reply", (event) => replies.push(event));
    await server.close();
    gate.resolve();
    // The handler's continuation runs in microtasks: one macrotask later it has finished.
    await new Promise((resolve) => setImmediate(resolve));
    expect(replies).toEqual([]);
    expect(server.stats()).toMatchObject({ requests: 1, handlerErrors: 0, inFlight: 0 });
    await client.expectNothing(100);
  });

  it("rejects bad options with InvalidArgumentError before binding anything", async () => {
    const bind = await allocateAddress();
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ model: 4, bind }, /model must be 1, 2 or 3/],
      [{ model: 0, bind }, /model must be 1, 2 or 3/],
      [{ model: "3", bind }, /model must be 1, 2 or 3/],
      [{ model: 1, bind: "localhost:5555" }, /bind must be a ZeroMQ endpoint/],
      [{ model: 1, bind: "tcp://127.0.0.1:70000" }, /port above 65535/],
      [{ model: 1, bind, identity: bind }, /identity is only used by model 3/],
      [{ model: 2, bind, identity: bind }, /identity is only used by model 3/],
      [{ model: 3, bind, identity: "not an endpoint" }, /identity must be a ZeroMQ endpoint/],
      [
        { model: 3, bind: "tcp://127.0.0.1:*" },
        /needs an identity when the bind endpoint has no fixed port/,
      ],
      [
        { model: 3, bind: "tcp://127.0.0.1:0" },
        /needs an identity when the bind endpoint has no fixed port/,
      ],
      [{ model: 3, bind, handler: "echo" }, /handler must be a function/],
      [{ model: 3, bind, maxInFlight: 0 }, /maxInFlight must be an integer >= 1/],
      [{ model: 3, bind, maxInFlight: 1.5 }, /maxInFlight must be an integer/],
      [{ model: 3, bind, sendCapacity: 0 }, /sendCapacity must be an integer >= 1/],
    ];
    for (const [options, message] of cases) {
      const error = await rejectionOf(
        FreelanceServer.start(options as unknown as Parameters<typeof FreelanceServer.start>[0]),
      );
      expect(error, JSON.stringify(options)).toBeInstanceOf(InvalidArgumentError);
      expect((error as Error).message).toMatch(message);
    }
    // Nothing was bound: the address is still free.
    const server = await startServer({ model: 1, bind });
    expect(server.endpoint).toBe(bind);
  });

  it("fails to start when the endpoint is taken, leaving the first server serving", async () => {
    const first = await startServer({ model: 1 });
    const error = await rejectionOf(FreelanceServer.start({ model: 1, bind: first.endpoint }));
    expect(error).toBeInstanceOf(Error);
    expect((error as { code?: string }).code).toBe("EADDRINUSE");
    const client = req(first.endpoint);
    await client.send("still serving");
    expect(str(await client.receive())).toEqual(["still serving"]);
  });

  it("close is idempotent, frees the endpoint, and works with await using", async () => {
    const server = await startServer({ model: 3 });
    const endpoint = server.endpoint;
    await Promise.all([server.close(), server.close()]);
    await server.close();
    {
      await using again = await FreelanceServer.start({ model: 3, bind: endpoint });
      const client = await flpClient(endpoint);
      await client.send([endpoint, "PING"]);
      expect(str(await client.receive())).toEqual([endpoint, "PONG"]);
      expect(again.endpoint).toBe(endpoint);
    }
    const third = await startServer({ model: 3, bind: endpoint });
    expect(third.endpoint).toBe(endpoint);
  });
});
