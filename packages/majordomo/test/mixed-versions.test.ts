import { identityKey } from "@zmq-patterns/core";
import { Tap } from "@zmq-patterns/core/testing";
import { afterEach, describe, expect, it } from "vitest";
import { type Dealer, Request } from "zeromq";
import type { MajordomoBroker } from "../src/broker.js";
import {
  B,
  byte,
  DISCONNECT,
  E,
  FINAL02,
  HEARTBEAT,
  isHeartbeat,
  MDPC01,
  MDPC02,
  MDPW01,
  MDPW02,
  nextEvent,
  PARTIAL02,
  READY,
  REPLY01,
  REQUEST,
  startBroker,
  type Version,
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

/** Resolves when nothing but heartbeats arrives within `ms`. */
async function expectOnlyHeartbeats(tap: Tap<Dealer>, ms: number): Promise<void> {
  const deadline = performance.now() + ms;
  for (;;) {
    const left = Math.round(deadline - performance.now());
    if (left <= 0) return;
    const frames = await tap.receive(left).catch(() => undefined);
    if (frames === undefined) return;
    if (!isHeartbeat(frames))
      throw new Error(`unexpected message: ${frames.map((f) => f.toString("hex")).join(" | ")}`);
  }
}

async function registerWorker(
  broker: MajordomoBroker,
  endpoint: string,
  id: string,
  service: string,
  version: Version,
): Promise<Tap<Dealer>> {
  const worker = await dealer(endpoint, id);
  const ready = nextEvent(broker, "workerReady", (e) => e.worker === identityKey(B(id)));
  await worker.send(READY(version, service));
  expect(await ready).toMatchObject({ service, version });
  return worker;
}

/** Takes a REQUEST in the worker's version, checking its exact layout. */
async function takeRequest(
  worker: Tap<Dealer>,
  version: Version,
): Promise<{ client: Buffer; body: Buffer[] }> {
  const frames = await next(worker);
  if (version === "0.1") {
    expect(frames.slice(0, 3)).toEqual([E, MDPW01, byte(2)]);
    expect(frames[4]).toEqual(E);
    return { client: frames[3] as Buffer, body: frames.slice(5) };
  }
  expect(frames.slice(0, 2)).toEqual([MDPW02, byte(2)]);
  expect(frames[3]).toEqual(E);
  return { client: frames[2] as Buffer, body: frames.slice(4) };
}

describe("MDP/0.1 and MDP/0.2 peers on one broker (section 6)", () => {
  it("RFC 18/RFC 7 a 0.1 DEALER client served by a 0.2 worker: partials are not forwarded, FINAL arrives as REPLY", async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    const worker = await registerWorker(broker, endpoint, "w02", "stream", "0.2");
    const client = await dealer(endpoint, "c01");
    await client.send(REQUEST("0.1", "stream", B("q")));
    const request = await takeRequest(worker, "0.2");
    expect(request).toEqual({ client: B("c01"), body: [B("q")] });
    await worker.send(PARTIAL02(request.client, B("p1")));
    await worker.send(PARTIAL02(request.client, B("p2")));
    await worker.send(FINAL02(request.client, B("f"), B("g")));
    expect(await next(client)).toEqual([E, MDPC01, B("stream"), B("f"), B("g")]);
    await client.expectNothing(100);
    expect(broker.stats()).toMatchObject({ repliesOut: 1 });
  });

  it("RFC 18/RFC 7 a 0.1 REQ client served by a 0.2 worker gets exactly one reply", async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    const worker = await registerWorker(broker, endpoint, "w02", "stream", "0.2");
    const req = new Request({ linger: 0, receiveTimeout: 2000 });
    cleanup.push(req);
    req.connect(endpoint);
    for (const round of ["1", "2"]) {
      await req.send([MDPC01, B("stream"), B(round)]);
      const request = await takeRequest(worker, "0.2");
      await worker.send(PARTIAL02(request.client, B(`partial ${round}`)));
      await worker.send(FINAL02(request.client, B(`final ${round}`)));
      expect(await req.receive()).toEqual([MDPC01, B("stream"), B(`final ${round}`)]);
    }
  });

  it("RFC 18/RFC 7 a 0.2 client served by a 0.1 worker: REQUEST in the 0.1 layout, REPLY arrives as FINAL", async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    const worker = await registerWorker(broker, endpoint, "w01", "classic", "0.1");
    const client = await dealer(endpoint, "c02");
    await client.send(REQUEST("0.2", "classic", B("a"), B("b")));
    const request = await takeRequest(worker, "0.1");
    expect(request).toEqual({ client: B("c02"), body: [B("a"), B("b")] });
    await worker.send(REPLY01(request.client, B("done")));
    expect(await next(client)).toEqual([MDPC02, byte(3), B("classic"), B("done")]);
    await client.expectNothing(50);
  });

  it("RFC 18 a 0.2 client served by a 0.2 worker gets PARTIAL, PARTIAL, FINAL, in order", async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    const worker = await registerWorker(broker, endpoint, "w02", "stream", "0.2");
    const client = await dealer(endpoint, "c02");
    await client.send(REQUEST("0.2", "stream", B("go")));
    const request = await takeRequest(worker, "0.2");
    const parts = Array.from({ length: 20 }, (_, i) => B(`part-${i}`));
    for (const part of parts) await worker.send(PARTIAL02(request.client, part));
    await worker.send(FINAL02(request.client, B("end"), E, B("x")));
    for (const part of parts)
      expect(await next(client)).toEqual([MDPC02, byte(2), B("stream"), part]);
    expect(await next(client)).toEqual([MDPC02, byte(3), B("stream"), B("end"), E, B("x")]);
    await client.expectNothing(50);
    expect(broker.stats()).toMatchObject({ repliesOut: 1, requestsDispatched: 1 });
  });

  it("RFC 18 a 0.2 worker becomes idle after FINAL only: the next queued request waits for it", async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    const worker = await registerWorker(broker, endpoint, "w02", "stream", "0.2");
    const client = await dealer(endpoint, "c02");
    await client.send(REQUEST("0.2", "stream", B("r1")));
    await client.send(REQUEST("0.2", "stream", B("r2")));
    const first = await takeRequest(worker, "0.2");
    expect(first.body).toEqual([B("r1")]);
    await worker.send(PARTIAL02(first.client, B("half")));
    expect(await next(client)).toEqual([MDPC02, byte(2), B("stream"), B("half")]);
    await expectOnlyHeartbeats(worker, 100);
    expect(broker.stats().services.stream).toEqual({ workersIdle: 0, workersBusy: 1, queued: 1 });
    await worker.send(FINAL02(first.client, B("whole")));
    expect(await next(client)).toEqual([MDPC02, byte(3), B("stream"), B("whole")]);
    const second = await takeRequest(worker, "0.2");
    expect(second.body).toEqual([B("r2")]);
  });

  it("RFC 18 after FINAL the broker sends nothing more for that request: a PARTIAL after FINAL -> DISCONNECT", async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    const worker = await registerWorker(broker, endpoint, "w02", "stream", "0.2");
    const client = await dealer(endpoint, "c02");
    await client.send(REQUEST("0.2", "stream", B("q")));
    const request = await takeRequest(worker, "0.2");
    await worker.send(FINAL02(request.client, B("final")));
    await worker.send(PARTIAL02(request.client, B("late")));
    expect(await next(client)).toEqual([MDPC02, byte(3), B("stream"), B("final")]);
    expect(await next(worker)).toEqual([MDPW02, byte(6)]);
    await client.expectNothing(100);
    expect(broker.stats().workers).toBe(0);
  });

  it("RFC 7 + RFC 18 one service with a 0.1 and a 0.2 worker, 0.1 and 0.2 clients at once: everyone in their own version", async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    const w01 = await registerWorker(broker, endpoint, "w01", "mixed", "0.1");
    const w02 = await registerWorker(broker, endpoint, "w02", "mixed", "0.2");
    const c01 = await dealer(endpoint, "c01");
    const c02 = await dealer(endpoint, "c02");
    const rounds = 6;
    const served = { w01: 0, w02: 0 };
    const serve = async (worker: Tap<Dealer>, version: Version, name: "w01" | "w02") => {
      for (;;) {
        const frames = await next(worker, 500).catch(() => undefined);
        if (!frames) return;
        const { client, body } =
          version === "0.1"
            ? { client: frames[3] as Buffer, body: frames.slice(5) }
            : { client: frames[2] as Buffer, body: frames.slice(4) };
        served[name] += 1;
        const echo = Buffer.concat([B(`${name}:`), ...body]);
        if (version === "0.1") await worker.send(REPLY01(client, echo));
        else {
          await worker.send(PARTIAL02(client, B(`${name} working`)));
          await worker.send(FINAL02(client, echo));
        }
      }
    };
    const client = async (tap: Tap<Dealer>, version: Version): Promise<string[]> => {
      const got: string[] = [];
      for (let i = 0; i < rounds; i += 1) {
        await tap.send(REQUEST(version, "mixed", B(`${version}-${i}`)));
        for (;;) {
          const reply = await next(tap);
          if (version === "0.1") {
            expect(reply.slice(0, 3)).toEqual([E, MDPC01, B("mixed")]);
            got.push((reply[3] as Buffer).toString());
            break;
          }
          expect(reply.slice(0, 1)).toEqual([MDPC02]);
          expect(reply[2]).toEqual(B("mixed"));
          if ((reply[1] as Buffer).equals(byte(3))) {
            got.push((reply[3] as Buffer).toString());
            break;
          }
          expect(reply[1]).toEqual(byte(2));
          expect(reply[3]?.toString()).toBe("w02 working");
        }
      }
      return got;
    };
    const workers = Promise.all([serve(w01, "0.1", "w01"), serve(w02, "0.2", "w02")]);
    const [got01, got02] = await Promise.all([client(c01, "0.1"), client(c02, "0.2")]);
    await workers;
    for (const [got, version] of [
      [got01, "0.1"],
      [got02, "0.2"],
    ] as const) {
      expect(got).toHaveLength(rounds);
      got.forEach((reply, i) => {
        expect(reply).toMatch(new RegExp(`^w0[12]:${version.replace(".", "\\.")}-${i}$`));
      });
    }
    expect(served.w01 + served.w02).toBe(2 * rounds);
    expect(served.w01).toBeGreaterThan(0);
    expect(served.w02).toBeGreaterThan(0);
    expect(broker.stats()).toMatchObject({ repliesOut: 2 * rounds, workers: 2 });
  });

  it("MDP-R13 any command counts as a heartbeat: a 0.2 worker streaming PARTIALs and no HEARTBEAT stays alive", async () => {
    const { broker, endpoint } = await startBroker(cleanup, {
      heartbeatIntervalMs: 100,
      liveness: 3,
    });
    const worker = await registerWorker(broker, endpoint, "streamer", "stream", "0.2");
    const client = await dealer(endpoint, "c02");
    const lost: string[] = [];
    broker.on("workerExpired", (e) => lost.push(e.worker));
    await client.send(REQUEST("0.2", "stream", B("long")));
    const request = await takeRequest(worker, "0.2");
    const start = performance.now();
    for (let k = 1; k <= 8; k += 1) {
      await new Promise((resolve) =>
        setTimeout(resolve, Math.max(0, start + k * 100 - performance.now())),
      );
      await worker.send(PARTIAL02(request.client, B(`chunk ${k}`)));
    }
    await worker.send(FINAL02(request.client, B("end")));
    for (let k = 1; k <= 8; k += 1)
      expect(await next(client)).toEqual([MDPC02, byte(2), B("stream"), B(`chunk ${k}`)]);
    expect(await next(client)).toEqual([MDPC02, byte(3), B("stream"), B("end")]);
    expect(lost).toEqual([]);
    expect(broker.stats().workersExpired).toBe(0);
  });

  it("MDP-R13 heartbeats go out in each worker's version", async () => {
    const { broker, endpoint } = await startBroker(cleanup, {
      heartbeatIntervalMs: 100,
      liveness: 10,
    });
    const w01 = await registerWorker(broker, endpoint, "w01", "a", "0.1");
    const w02 = await registerWorker(broker, endpoint, "w02", "b", "0.2");
    expect(await w01.receive(500)).toEqual([E, MDPW01, byte(4)]);
    expect(await w02.receive(500)).toEqual([MDPW02, byte(5)]);
    expect(broker.stats().workers).toBe(2);
  });

  it("MDP-R15 a 0.1 worker that switches to 0.2 mid-conversation is disconnected (in its own version)", async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    const worker = await registerWorker(broker, endpoint, "switcher", "svc", "0.1");
    const gone = nextEvent(broker, "workerDisconnected");
    await worker.send(HEARTBEAT("0.2"));
    expect(await next(worker)).toEqual([E, MDPW01, byte(5)]);
    expect((await gone).reason).toBe("protocol version changed");
    expect(broker.stats().workers).toBe(0);
    expect(broker.stats().dropped["protocol version changed"]).toBe(1);
  });

  it("MDP-R15 a busy 0.2 worker that answers with a 0.1 REPLY is disconnected; the request is dropped", async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    const worker = await registerWorker(broker, endpoint, "switcher", "svc", "0.2");
    const client = await dealer(endpoint, "c02");
    await client.send(REQUEST("0.2", "svc", B("x")));
    const request = await takeRequest(worker, "0.2");
    const dropped = nextEvent(broker, "requestDropped");
    await worker.send(REPLY01(request.client, B("wrong version")));
    expect(await next(worker)).toEqual([MDPW02, byte(6)]);
    expect((await dropped).reason).toBe("worker lost while busy");
    await client.expectNothing(100);
  });

  it("MDB-6/MDP-R15 READY in 0.2 from an identity registered in 0.1 -> DISCONNECT, not a second registration", async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    const worker = await registerWorker(broker, endpoint, "twice", "svc", "0.1");
    await worker.send(READY("0.2", "svc"));
    expect(await next(worker)).toEqual([E, MDPW01, byte(5)]);
    expect(broker.stats().workers).toBe(0);
    // after that, a proper new registration in 0.2 is accepted
    const ready = nextEvent(broker, "workerReady");
    await worker.send(READY("0.2", "svc"));
    expect(await ready).toMatchObject({ version: "0.2" });
    await worker.send(DISCONNECT("0.2"));
  });
});
