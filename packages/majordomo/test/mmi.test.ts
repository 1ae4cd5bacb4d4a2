import { identityKey } from "@zmq-patterns/core";
import { Tap } from "@zmq-patterns/core/testing";
import { afterEach, describe, expect, it } from "vitest";
import { type Dealer, Request } from "zeromq";
import type { MajordomoBroker } from "../src/broker.js";
import {
  B,
  byte,
  E,
  isHeartbeat,
  MDPC01,
  MDPC02,
  MDPW01,
  MDPW02,
  nextEvent,
  startBroker,
} from "./support.js";

const cleanup: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const item of cleanup.splice(0).reverse()) await item.close();
});

async function dealer(endpoint: string, id: string): Promise<Tap<Dealer>> {
  const tap = await Tap.dealer(endpoint, { routingId: id });
  cleanup.push(tap);
  return tap;
}

/** The next message that is not a broker HEARTBEAT. */
async function next(tap: Tap<Dealer>, timeoutMs = 2000): Promise<Buffer[]> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const frames = await tap.receive(Math.max(1, Math.round(deadline - performance.now())));
    if (!isHeartbeat(frames)) return frames;
  }
}

async function registerWorker(
  broker: MajordomoBroker,
  endpoint: string,
  id: string,
  service: string,
  version: "0.1" | "0.2" = "0.1",
): Promise<Tap<Dealer>> {
  const worker = await dealer(endpoint, id);
  const ready = nextEvent(broker, "workerReady");
  await worker.send(
    version === "0.1" ? [E, MDPW01, byte(1), B(service)] : [MDPW02, byte(1), B(service)],
  );
  expect(await ready).toMatchObject({ worker: identityKey(B(id)), service, version });
  return worker;
}

/** `mmi.service` over a 0.1 DEALER; asserts the reply layout and returns the code. */
async function lookup(client: Tap<Dealer>, name: string): Promise<string> {
  await client.send([E, MDPC01, B("mmi.service"), B(name)]);
  const reply = await next(client);
  expect(reply.slice(0, 3)).toEqual([E, MDPC01, B("mmi.service")]);
  expect(reply).toHaveLength(4);
  return (reply[3] as Buffer).toString();
}

describe("MMI over MDP/0.1 DEALER (RFC 8)", () => {
  it("MMI-R2 mmi.service -> 404 without a worker, 200 with one, 200 while it is busy", async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    const client = await dealer(endpoint, "client");
    expect(await lookup(client, "echo")).toBe("404");
    const worker = await registerWorker(broker, endpoint, "worker", "echo");
    expect(await lookup(client, "echo")).toBe("200");
    expect(await lookup(client, "other")).toBe("404");
    await client.send([E, MDPC01, B("echo"), B("work")]);
    await next(worker); // the REQUEST: the worker is busy now
    expect(broker.stats().services.echo).toMatchObject({ workersBusy: 1 });
    expect(await lookup(client, "echo")).toBe("200");
  });

  it("MMI-R2 mmi.service -> 404 after the only worker expired", async () => {
    const { broker, endpoint } = await startBroker(cleanup, {
      heartbeatIntervalMs: 100,
      liveness: 3,
    });
    const client = await dealer(endpoint, "client");
    const expired = nextEvent(broker, "workerExpired");
    await registerWorker(broker, endpoint, "silent", "echo");
    expect(await lookup(client, "echo")).toBe("200");
    await expired;
    expect(await lookup(client, "echo")).toBe("404");
  });

  it("MMI-R2 mmi.service -> 404 after the only worker sent DISCONNECT", async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    const client = await dealer(endpoint, "client");
    const worker = await registerWorker(broker, endpoint, "worker", "echo");
    expect(await lookup(client, "echo")).toBe("200");
    const gone = nextEvent(broker, "workerDisconnected");
    await worker.send([E, MDPW01, byte(5)]);
    await gone;
    expect(await lookup(client, "echo")).toBe("404");
  });

  it("MMI-R2 a service with queued requests but no worker is 404", async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    const client = await dealer(endpoint, "client");
    await client.send([E, MDPC01, B("pending"), B("x")]);
    expect(await lookup(client, "pending")).toBe("404"); // same pipe: processed after the request
    expect(broker.stats().services.pending).toEqual({ workersIdle: 0, workersBusy: 0, queued: 1 });
  });

  it("MMI-R3 any other mmi.* service -> 501", async () => {
    const { endpoint } = await startBroker(cleanup);
    const client = await dealer(endpoint, "client");
    for (const service of ["mmi.foo", "mmi.", "mmi.services", "mmi.service.x"]) {
      await client.send([E, MDPC01, B(service), B("echo")]);
      expect(await next(client)).toEqual([E, MDPC01, B(service), B("501")]);
    }
  });

  it("MMI-R1 mmi.service for a name in the mmi. namespace is 404 (no worker can register one)", async () => {
    const { endpoint } = await startBroker(cleanup);
    const client = await dealer(endpoint, "client");
    expect(await lookup(client, "mmi.service")).toBe("404");
  });

  it("5.10 reference layout: the LAST body frame is the name and is replaced by the code; earlier frames are kept", async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    await registerWorker(broker, endpoint, "worker", "echo");
    const client = await dealer(endpoint, "client");
    await client.send([E, MDPC01, B("mmi.service"), B("a"), E, B("echo")]);
    expect(await next(client)).toEqual([E, MDPC01, B("mmi.service"), B("a"), E, B("200")]);
    // The name is the last frame, not the first.
    await client.send([E, MDPC01, B("mmi.service"), B("echo"), B("nothing")]);
    expect(await next(client)).toEqual([E, MDPC01, B("mmi.service"), B("echo"), B("404")]);
    await client.send([E, MDPC01, B("mmi.foo"), B("x"), B("y")]);
    expect(await next(client)).toEqual([E, MDPC01, B("mmi.foo"), B("x"), B("501")]);
  });

  it("5.10 MMI is answered at once with no workers at all, never queued, and creates no service", async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    const client = await dealer(endpoint, "client");
    for (let i = 0; i < 5; i += 1) expect(await lookup(client, `svc-${i}`)).toBe("404");
    await client.send([E, MDPC01, B("mmi.unknown"), B("x")]);
    expect(await next(client)).toEqual([E, MDPC01, B("mmi.unknown"), B("501")]);
    const stats = broker.stats();
    expect(stats.services).toEqual({});
    expect(stats).toMatchObject({ mmiRequests: 6, requestsIn: 6, requestsDispatched: 0 });
  });

  it("MMI-R2 a 0.2 worker counts like a 0.1 worker", async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    await registerWorker(broker, endpoint, "w02", "stream", "0.2");
    const client = await dealer(endpoint, "client");
    expect(await lookup(client, "stream")).toBe("200");
  });
});

describe("MMI over a REQ client and over MDP/0.2", () => {
  it('MMI-R2/R3 a REQ client sees ["MDPC01"]["mmi.service"][code]', async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    await registerWorker(broker, endpoint, "worker", "echo");
    const req = new Request({ linger: 0, receiveTimeout: 2000 });
    cleanup.push(req);
    req.connect(endpoint);
    await req.send([MDPC01, B("mmi.service"), B("echo")]);
    expect(await req.receive()).toEqual([MDPC01, B("mmi.service"), B("200")]);
    await req.send([MDPC01, B("mmi.service"), B("nope")]);
    expect(await req.receive()).toEqual([MDPC01, B("mmi.service"), B("404")]);
    await req.send([MDPC01, B("mmi.bogus"), B("echo")]);
    expect(await req.receive()).toEqual([MDPC01, B("mmi.bogus"), B("501")]);
  });

  it('MMI-R2/R3 over 0.2 the answer is a FINAL ["MDPC02"][0x03][service][code]', async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    const client = await dealer(endpoint, "client02");
    await client.send([MDPC02, byte(1), B("mmi.service"), B("echo")]);
    expect(await next(client)).toEqual([MDPC02, byte(3), B("mmi.service"), B("404")]);
    await registerWorker(broker, endpoint, "worker", "echo", "0.1");
    await client.send([MDPC02, byte(1), B("mmi.service"), B("x"), B("echo")]);
    expect(await next(client)).toEqual([MDPC02, byte(3), B("mmi.service"), B("x"), B("200")]);
    await client.send([MDPC02, byte(1), B("mmi.what"), B("echo")]);
    expect(await next(client)).toEqual([MDPC02, byte(3), B("mmi.what"), B("501")]);
    await client.expectNothing(50);
  });
});
