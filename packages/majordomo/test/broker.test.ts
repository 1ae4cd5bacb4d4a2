/**
 * Wire conformance of `MajordomoBroker` (section 10 item 3 of the spec) and of the fixes it makes
 * to the reference broker (MDB-B1..B9), driven by raw DEALER/REQ sockets on loopback.
 */
import type { EventEmitter } from "node:events";
import { InvalidArgumentError, identityKey } from "@zmq-patterns/core";
import { ManualClock, Tap } from "@zmq-patterns/core/testing";
import { afterEach, describe, expect, it } from "vitest";
import { type Dealer, Request } from "zeromq";
import {
  MajordomoBroker,
  type MajordomoBrokerEvents,
  type MajordomoBrokerOptions,
} from "../src/broker.js";
import {
  B,
  byte,
  DISCONNECT,
  E,
  HEARTBEAT,
  isHeartbeat,
  MDPC01,
  MDPC02,
  MDPW01,
  MDPW02,
  nextEvent,
  READY,
  REPLY01,
  REQUEST01,
  startBroker,
  type Version,
} from "./support.js";

const cleanup: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const item of cleanup.splice(0).reverse()) await item.close();
});

/** A raw DEALER peer (client or worker) whose sends are serialised and that can heartbeat. */
class Peer {
  readonly id: Buffer;
  readonly key: string;
  readonly tap: Tap<Dealer>;
  #chain: Promise<void> = Promise.resolve();
  #heartbeat: NodeJS.Timeout | undefined;

  private constructor(tap: Tap<Dealer>, id: Buffer) {
    this.tap = tap;
    this.id = id;
    this.key = identityKey(id);
  }

  static async connect(endpoint: string, id: string | Buffer): Promise<Peer> {
    const bytes = typeof id === "string" ? B(id) : id;
    const peer = new Peer(await Tap.dealer(endpoint, { routingId: bytes }), bytes);
    cleanup.push(peer);
    return peer;
  }

  send(frames: readonly (string | Buffer)[]): Promise<void> {
    const sent = this.#chain.then(() => this.tap.send(frames));
    this.#chain = sent.catch(() => {});
    return sent;
  }

  /** The next message that is not a broker HEARTBEAT. */
  async next(timeoutMs = 2000): Promise<Buffer[]> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const frames = await this.tap.receive(Math.max(1, Math.round(deadline - performance.now())));
      if (!isHeartbeat(frames)) return frames;
    }
  }

  /** Resolves when nothing but heartbeats arrives within `ms`. */
  async expectOnlyHeartbeats(ms: number): Promise<void> {
    const deadline = performance.now() + ms;
    for (;;) {
      const left = Math.round(deadline - performance.now());
      if (left <= 0) return;
      let frames: Buffer[];
      try {
        frames = await this.tap.receive(left);
      } catch {
        return;
      }
      if (!isHeartbeat(frames)) {
        throw new Error(`unexpected message: ${frames.map((f) => f.toString("hex")).join(" | ")}`);
      }
    }
  }

  /** Takes whatever arrives within `ms`. */
  async drain(ms: number): Promise<Buffer[][]> {
    const got: Buffer[][] = [];
    const deadline = performance.now() + ms;
    for (;;) {
      const left = Math.round(deadline - performance.now());
      if (left <= 0) return got;
      try {
        got.push(await this.tap.receive(left));
      } catch {
        return got;
      }
    }
  }

  heartbeatEvery(ms: number, version: Version = "0.1"): void {
    this.#heartbeat = setInterval(() => {
      this.send(HEARTBEAT(version)).catch(() => {});
    }, ms);
  }

  stopHeartbeats(): void {
    clearInterval(this.#heartbeat);
  }

  close(): void {
    this.stopHeartbeats();
    this.tap.close();
  }
}

type Events = MajordomoBrokerEvents;

/** Every `event` from now on. */
function record<K extends keyof Events>(broker: MajordomoBroker, event: K): Array<Events[K][0]> {
  const seen: Array<Events[K][0]> = [];
  (broker as unknown as EventEmitter).on(event, (payload: Events[K][0]) => seen.push(payload));
  return seen;
}

/** Polls a condition on broker state that no event announces; bounded. */
async function until(condition: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function registerWorker(
  broker: MajordomoBroker,
  endpoint: string,
  id: string,
  service: string,
  version: Version = "0.1",
): Promise<Peer> {
  const worker = await Peer.connect(endpoint, id);
  const ready = nextEvent(broker, "workerReady", (e) => e.worker === worker.key);
  await worker.send(READY(version, service));
  await ready;
  return worker;
}

async function mmiLookup(client: Peer, name: string): Promise<string> {
  await client.send(REQUEST01("mmi.service", B(name)));
  const reply = await client.next();
  expect(reply.slice(0, 3)).toEqual([E, MDPC01, B("mmi.service")]);
  expect(reply).toHaveLength(4);
  return (reply[3] as Buffer).toString();
}

/** Receives the REQUEST a 0.1 worker got and returns its client address and body. */
async function takeRequest(worker: Peer): Promise<{ client: Buffer; body: Buffer[] }> {
  const frames = await worker.next();
  expect(frames.slice(0, 3)).toEqual([E, MDPW01, byte(2)]);
  expect(frames[4]).toEqual(E);
  return { client: frames[3] as Buffer, body: frames.slice(5) };
}

describe("MDP/0.1 registration and routing (section 10 item 3)", () => {
  it("MDP-R8 READY registers the worker: MMI 200 and a request is served", async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    const client = await Peer.connect(endpoint, "client");
    expect(await mmiLookup(client, "echo")).toBe("404");
    const worker = await registerWorker(broker, endpoint, "worker", "echo");
    expect(await mmiLookup(client, "echo")).toBe("200");
    expect(broker.stats().services.echo).toEqual({ workersIdle: 1, workersBusy: 0, queued: 0 });
    await client.send(REQUEST01("echo", B("ping")));
    const request = await takeRequest(worker);
    expect(request.client).toEqual(B("client"));
    await worker.send(REPLY01(request.client, B("pong")));
    expect(await client.next()).toEqual([E, MDPC01, B("echo"), B("pong")]);
  });

  it('MDB-6 duplicate READY -> DISCONNECT [""]["MDPW01"][0x05] and the worker is removed', async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    const worker = await registerWorker(broker, endpoint, "dup", "echo");
    const gone = nextEvent(broker, "workerDisconnected", (e) => e.worker === worker.key);
    await worker.send(READY("0.1", "echo"));
    expect(await worker.next()).toEqual([E, MDPW01, byte(5)]);
    expect((await gone).reason).toBe("duplicate READY");
    expect(broker.stats().workers).toBe(0);
    const client = await Peer.connect(endpoint, "client");
    expect(await mmiLookup(client, "echo")).toBe("404");
    expect(broker.stats().dropped["duplicate READY"]).toBe(1);
  });

  it("MDB-6 HEARTBEAT from an unknown worker -> DISCONNECT (0.1 and 0.2 formats)", async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    const w1 = await Peer.connect(endpoint, "ghost-1");
    await w1.send(HEARTBEAT("0.1"));
    expect(await w1.next()).toEqual([E, MDPW01, byte(5)]);
    const w2 = await Peer.connect(endpoint, "ghost-2");
    await w2.send(HEARTBEAT("0.2"));
    expect(await w2.next()).toEqual([MDPW02, byte(6)]);
    expect(broker.stats().dropped["HEARTBEAT from unknown worker"]).toBe(2);
    expect(broker.stats().workers).toBe(0);
  });

  it("MDB-6 REPLY from an unknown worker -> DISCONNECT, nothing reaches the client", async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    const client = await Peer.connect(endpoint, "client");
    await client.send(REQUEST01("mmi.service", B("x"))); // the broker now knows the client
    await client.next();
    const ghost = await Peer.connect(endpoint, "ghost");
    await ghost.send(REPLY01(B("client"), B("forged")));
    expect(await ghost.next()).toEqual([E, MDPW01, byte(5)]);
    await client.expectOnlyHeartbeats(100);
    expect(broker.stats().dropped["REPLY from unknown worker"]).toBe(1);
  });

  it('MDP-R12 REQUEST to the worker is exactly [""]["MDPW01"][0x02][<C>][""][body...]', async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    const worker = await registerWorker(broker, endpoint, "worker", "echo");
    const client = await Peer.connect(endpoint, Buffer.from([0x00, 0xc1, 0x1e, 0x47, 0x01]));
    await client.send(REQUEST01("echo", B("a"), E, B("c")));
    expect(await worker.next()).toEqual([
      E,
      MDPW01,
      byte(2),
      Buffer.from([0x00, 0xc1, 0x1e, 0x47, 0x01]),
      E,
      B("a"),
      E,
      B("c"),
    ]);
  });

  it('MDB-7 reply to a DEALER client is exactly [""]["MDPC01"][service][body...]', async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    const worker = await registerWorker(broker, endpoint, "worker", "echo");
    const client = await Peer.connect(endpoint, "client");
    await client.send(REQUEST01("echo", B("x")));
    const { client: address } = await takeRequest(worker);
    await worker.send(REPLY01(address, B("r1"), E, B("r3")));
    expect(await client.next()).toEqual([E, MDPC01, B("echo"), B("r1"), E, B("r3")]);
  });

  it('MDP-R5 a REQ client sees ["MDPC01"][service][body...]', async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    const worker = await registerWorker(broker, endpoint, "worker", "echo");
    const req = new Request({ linger: 0, receiveTimeout: 2000 });
    cleanup.push(req);
    req.connect(endpoint);
    await req.send([MDPC01, B("echo"), B("hello")]);
    const request = await takeRequest(worker);
    expect(request.body).toEqual([B("hello")]);
    await worker.send(REPLY01(request.client, B("world"), B("!")));
    expect(await req.receive()).toEqual([MDPC01, B("echo"), B("world"), B("!")]);
  });

  it("MDB-8/ENV-8 a request of a client that went away is still dispatched; the reply is dropped", async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    const client = await Peer.connect(endpoint, "leaver");
    await client.send(REQUEST01("late", B("x")));
    await until(() => broker.stats().services.late?.queued === 1);
    client.close();
    const worker = await registerWorker(broker, endpoint, "worker", "late");
    const { client: address } = await takeRequest(worker);
    expect(address).toEqual(B("leaver"));
    await worker.send(REPLY01(address, B("lost")));
    await until(() => broker.stats().dropped["unroutable client"] === 1);
    expect(broker.stats().services.late).toEqual({ workersIdle: 1, workersBusy: 0, queued: 0 });
  });

  it("MDP-R8 a worker that sent DISCONNECT can register again with the same identity", async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    const worker = await registerWorker(broker, endpoint, "again", "echo");
    const gone = nextEvent(broker, "workerDisconnected");
    await worker.send(DISCONNECT("0.1"));
    await gone;
    const ready = nextEvent(broker, "workerReady");
    await worker.send(READY("0.1", "echo"));
    expect(await ready).toMatchObject({ worker: worker.key, service: "echo", version: "0.1" });
  });
});

describe("MDP/0.1 heartbeating and expiry (MDP-R13, MDP-R14)", () => {
  it('MDB-4 (fixes MDB-B2) heartbeats [""]["MDPW01"][0x04] reach idle AND busy workers about every interval', async () => {
    const { broker, endpoint } = await startBroker(cleanup, {
      heartbeatIntervalMs: 100,
      liveness: 20,
    });
    const idle = await registerWorker(broker, endpoint, "idle", "fast");
    const busy = await registerWorker(broker, endpoint, "busy", "slow");
    const client = await Peer.connect(endpoint, "client");
    await client.send(REQUEST01("slow", B("work")));
    await takeRequest(busy);
    expect(broker.stats().services.slow).toMatchObject({ workersBusy: 1 });

    const collect = async (worker: Peer): Promise<number[]> => {
      const times: number[] = [];
      const end = performance.now() + 1000;
      for (;;) {
        const left = Math.round(end - performance.now());
        if (left <= 0) return times;
        const frames = await worker.tap.receive(left).catch(() => undefined);
        if (!frames) return times;
        expect(frames).toEqual([E, MDPW01, byte(4)]);
        times.push(performance.now());
      }
    };
    const [idleTimes, busyTimes] = await Promise.all([collect(idle), collect(busy)]);
    for (const times of [idleTimes, busyTimes]) {
      expect(times.length).toBeGreaterThanOrEqual(7);
      expect(times.length).toBeLessThanOrEqual(12);
      const gaps = times.slice(1).map((t, i) => t - (times[i] as number));
      expect(Math.max(...gaps)).toBeLessThan(250);
    }
  });

  it("MDP-R14/MDB-5 an idle silent worker expires within liveness x interval (+1 interval); then MMI 404 and no more heartbeats", async () => {
    const { broker, endpoint } = await startBroker(cleanup, {
      heartbeatIntervalMs: 100,
      liveness: 3,
    });
    const expired = nextEvent(broker, "workerExpired");
    const start = performance.now();
    const worker = await registerWorker(broker, endpoint, "silent", "echo");
    const event = await expired;
    const elapsed = performance.now() - start;
    expect(event).toEqual({ worker: worker.key, service: "echo", busy: false });
    expect(elapsed).toBeGreaterThanOrEqual(280);
    expect(elapsed).toBeLessThan(300 + 100 + 250);
    const client = await Peer.connect(endpoint, "client");
    expect(await mmiLookup(client, "echo")).toBe("404");
    expect(broker.stats().workersExpired).toBe(1);
    expect(broker.stats().services.echo).toBeUndefined();
    // MDP-R14: the broker stops sending to it
    await worker.drain(30);
    await worker.tap.expectNothing(300);
  });

  it("MDP-R14 (fixes MDB-B2) a busy silent worker expires too and its request is dropped", async () => {
    const { broker, endpoint } = await startBroker(cleanup, {
      heartbeatIntervalMs: 100,
      liveness: 3,
    });
    const worker = await registerWorker(broker, endpoint, "stuck", "echo");
    const client = await Peer.connect(endpoint, "client");
    const expired = nextEvent(broker, "workerExpired");
    const dropped = nextEvent(broker, "requestDropped");
    await client.send(REQUEST01("echo", B("x")));
    await takeRequest(worker);
    expect(await expired).toEqual({ worker: worker.key, service: "echo", busy: true });
    expect(await dropped).toEqual({
      service: "echo",
      client: identityKey(B("client")),
      reason: "worker lost while busy",
    });
    expect(broker.stats().dropped["worker lost while busy"]).toBe(1);
    expect(broker.stats().workers).toBe(0);
    expect(await mmiLookup(client, "echo")).toBe("404");
  });

  it("MDP-R2/MDB-B2 with idempotent(service) the request of an expired busy worker is re-queued and served by another worker", async () => {
    const { broker, endpoint } = await startBroker(cleanup, {
      heartbeatIntervalMs: 100,
      liveness: 3,
      idempotent: (service) => service === "echo",
    });
    const stuck = await registerWorker(broker, endpoint, "stuck", "echo");
    const good = await registerWorker(broker, endpoint, "good", "echo");
    good.heartbeatEvery(50);
    const client = await Peer.connect(endpoint, "client");
    const first = nextEvent(broker, "requestDispatched");
    const requeued = nextEvent(broker, "requestRequeued");
    const second = nextEvent(broker, "requestDispatched", (e) => e.worker === good.key);
    await client.send(REQUEST01("echo", B("again")));
    expect((await first).worker).toBe(stuck.key); // LRU: registered first
    await takeRequest(stuck);
    expect(await requeued).toEqual({ service: "echo", client: identityKey(B("client")) });
    await second;
    const request = await takeRequest(good);
    expect(request.body).toEqual([B("again")]);
    await good.send(REPLY01(request.client, B("done")));
    expect(await client.next()).toEqual([E, MDPC01, B("echo"), B("done")]);
    expect(broker.stats()).toMatchObject({ requestsRequeued: 1, workersExpired: 1, repliesOut: 1 });
  });

  it("MDP-R14 (fixes MDB-B3) a live worker ahead in the idle list does not shield a dead one behind it", async () => {
    const { broker, endpoint } = await startBroker(cleanup, {
      heartbeatIntervalMs: 100,
      liveness: 3,
    });
    const live = await registerWorker(broker, endpoint, "live", "echo");
    live.heartbeatEvery(50);
    const expired = nextEvent(broker, "workerExpired");
    const start = performance.now();
    const dead = await registerWorker(broker, endpoint, "dead", "echo");
    expect((await expired).worker).toBe(dead.key);
    expect(performance.now() - start).toBeLessThan(300 + 100 + 250);
    expect(broker.stats().services.echo).toEqual({ workersIdle: 1, workersBusy: 0, queued: 0 });
    // and requests now go to the live worker only
    const client = await Peer.connect(endpoint, "client");
    await client.send(REQUEST01("echo", B("x")));
    const request = await takeRequest(live);
    await live.send(REPLY01(request.client, B("y")));
    expect(await client.next()).toEqual([E, MDPC01, B("echo"), B("y")]);
  });

  it("MDP-R14 heartbeat mismatch within tolerance: broker 100 ms x 5, worker every 250 ms for 2 s, never expired", async () => {
    // The worker beats at 2.5 broker intervals, half the broker's 500 ms liveness window: a stall
    // of this process at a beat (the test and the broker share one event loop, and after a stall
    // the expiry timer runs before the waiting beat is read) must stay well inside the window.
    const { broker, endpoint } = await startBroker(cleanup, {
      heartbeatIntervalMs: 100,
      liveness: 5,
    });
    const worker = await registerWorker(broker, endpoint, "slowbeat", "echo");
    const expired = record(broker, "workerExpired");
    const disconnected = record(broker, "workerDisconnected");
    // Deadline-based schedule so timer drift does not accumulate.
    const start = performance.now();
    for (let k = 1; k <= 8; k += 1) {
      await new Promise((resolve) =>
        setTimeout(resolve, Math.max(0, start + k * 250 - performance.now())),
      );
      await worker.send(HEARTBEAT("0.1"));
    }
    expect(expired).toEqual([]);
    expect(disconnected).toEqual([]);
    const client = await Peer.connect(endpoint, "client");
    expect(await mmiLookup(client, "echo")).toBe("200");
    expect(broker.stats().workersExpired).toBe(0);
  });
});

describe("request queues (MDB-1, MDB-3, MDP-R7)", () => {
  it("MDB-1 a request for an unregistered service is queued and served when a worker registers", async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    const client = await Peer.connect(endpoint, "client");
    await client.send(REQUEST01("later", B("wait")));
    await until(() => broker.stats().services.later?.queued === 1);
    const worker = await registerWorker(broker, endpoint, "worker", "later");
    const request = await takeRequest(worker);
    expect(request.body).toEqual([B("wait")]);
    await worker.send(REPLY01(request.client, B("served")));
    expect(await client.next()).toEqual([E, MDPC01, B("later"), B("served")]);
  });

  it("MDP-R7 (fixes MDB-B6) a queued request expires after requestTtlMs and is never dispatched", async () => {
    const { broker, endpoint } = await startBroker(cleanup, {
      heartbeatIntervalMs: 100,
      requestTtlMs: 200,
    });
    const client = await Peer.connect(endpoint, "client");
    const expired = nextEvent(broker, "requestExpired");
    const start = performance.now();
    await client.send(REQUEST01("nobody", B("x")));
    expect(await expired).toEqual({ service: "nobody", client: identityKey(B("client")) });
    const elapsed = performance.now() - start;
    expect(elapsed).toBeGreaterThanOrEqual(190);
    expect(elapsed).toBeLessThan(200 + 100 + 250);
    expect(broker.stats().requestsExpired).toBe(1);
    expect(broker.stats().services.nobody).toBeUndefined(); // MDB-2 fixed: collected
    const worker = await registerWorker(broker, endpoint, "worker", "nobody");
    await worker.expectOnlyHeartbeats(150);
    expect(broker.stats().requestsDispatched).toBe(0);
    await client.expectOnlyHeartbeats(10);
  });

  it("MDP-R7 a request that expired while queued is not dispatched to a worker registering later (ManualClock)", async () => {
    const clock = new ManualClock();
    const { broker, endpoint } = await startBroker(cleanup, {
      clock,
      heartbeatIntervalMs: 10_000,
      requestTtlMs: 100,
    });
    const client = await Peer.connect(endpoint, "client");
    await client.send(REQUEST01("svc", B("stale")));
    await until(() => broker.stats().services.svc?.queued === 1);
    clock.advance(150); // no heartbeat tick yet: only the dispatch-time check can expire it
    const expired = nextEvent(broker, "requestExpired");
    const worker = await registerWorker(broker, endpoint, "worker", "svc");
    await expired;
    await worker.expectOnlyHeartbeats(100);
    expect(broker.stats()).toMatchObject({ requestsExpired: 1, requestsDispatched: 0 });
    expect(broker.stats().services.svc).toEqual({ workersIdle: 1, workersBusy: 0, queued: 0 });
  });

  it("MDB-B6 a per-service queue bound drops extra requests ('service queue full')", async () => {
    const { broker, endpoint } = await startBroker(cleanup, { maxQueuedPerService: 2 });
    const client = await Peer.connect(endpoint, "client");
    const dropped = nextEvent(broker, "requestDropped");
    for (const body of ["r1", "r2", "r3"]) await client.send(REQUEST01("q", B(body)));
    expect(await dropped).toEqual({
      service: "q",
      client: identityKey(B("client")),
      reason: "service queue full",
    });
    expect(broker.stats().dropped["service queue full"]).toBe(1);
    expect(broker.stats().services.q?.queued).toBe(2);
    const worker = await registerWorker(broker, endpoint, "worker", "q");
    for (const body of ["r1", "r2"]) {
      const request = await takeRequest(worker);
      expect(request.body).toEqual([B(body)]);
      await worker.send(REPLY01(request.client, B(body)));
      expect(await client.next()).toEqual([E, MDPC01, B("q"), B(body)]);
    }
    await worker.expectOnlyHeartbeats(100);
  });

  it("MDB-B6 maxWorkers and maxServices bound what peers can make the broker store", async () => {
    const { broker, endpoint } = await startBroker(cleanup, {
      maxWorkers: 1,
      maxServices: 2,
    });
    await registerWorker(broker, endpoint, "w1", "a");
    const w2 = await Peer.connect(endpoint, "w2");
    await w2.send(READY("0.1", "a"));
    expect(await w2.next()).toEqual([E, MDPW01, byte(5)]);
    expect(broker.stats().dropped["too many workers"]).toBe(1);
    const client = await Peer.connect(endpoint, "client");
    await client.send(REQUEST01("b", B("1"))); // second service: queued
    const dropped = nextEvent(broker, "requestDropped");
    await client.send(REQUEST01("c", B("2"))); // third: refused
    expect(await dropped).toMatchObject({ service: "c", reason: "too many services" });
    expect(Object.keys(broker.stats().services).sort()).toEqual(["a", "b"]);
    // MMI does not create services and still answers
    expect(await mmiLookup(client, "d")).toBe("404");
    expect(broker.stats().workers).toBe(1);
  });

  it("MDP-R3/MDB-3 workers of a service are used least-recently-used first", async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    const workers = [
      await registerWorker(broker, endpoint, "w1", "lru"),
      await registerWorker(broker, endpoint, "w2", "lru"),
      await registerWorker(broker, endpoint, "w3", "lru"),
    ] as const;
    const [w1, w2, w3] = workers;
    const client = await Peer.connect(endpoint, "client");
    const dispatched = record(broker, "requestDispatched");
    for (const body of ["a", "b", "c"]) await client.send(REQUEST01("lru", B(body)));
    await until(() => dispatched.length === 3);
    expect(dispatched.map((d) => d.worker)).toEqual([w1.key, w2.key, w3.key]);
    // Replies in the order w2, w3, w1 make that the new LRU order.
    for (const worker of [w2, w3, w1]) {
      const request = await takeRequest(worker);
      await worker.send(REPLY01(request.client, B("ok")));
      await client.next();
    }
    for (const body of ["d", "e", "f"]) await client.send(REQUEST01("lru", B(body)));
    await until(() => dispatched.length === 6);
    expect(dispatched.slice(3).map((d) => d.worker)).toEqual([w2.key, w3.key, w1.key]);
  });

  it("MDP-R3/MDB-3 requests of a service are dispatched first in, first out", async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    const client = await Peer.connect(endpoint, "client");
    const bodies = ["1", "2", "3", "4", "5"];
    for (const body of bodies) await client.send(REQUEST01("fifo", B(body)));
    await until(() => broker.stats().services.fifo?.queued === 5);
    const worker = await registerWorker(broker, endpoint, "worker", "fifo");
    for (const body of bodies) {
      const request = await takeRequest(worker);
      expect(request.body).toEqual([B(body)]);
      await worker.send(REPLY01(request.client, B(body)));
      expect(await client.next()).toEqual([E, MDPC01, B("fifo"), B(body)]);
    }
  });
});

describe("fixes of the reference broker's bugs (section 5.12)", () => {
  it("MMI-R1 (fixes MDB-B1) READY for mmi.x -> DISCONNECT although the identity does not start with mmi.", async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    const w1 = await Peer.connect(endpoint, "plain-worker");
    await w1.send(READY("0.1", "mmi.x"));
    expect(await w1.next()).toEqual([E, MDPW01, byte(5)]);
    const w2 = await Peer.connect(endpoint, "plain-worker-2");
    await w2.send(READY("0.2", "mmi.service"));
    expect(await w2.next()).toEqual([MDPW02, byte(6)]);
    expect(broker.stats().workers).toBe(0);
    expect(broker.stats().dropped["READY for a reserved mmi. service"]).toBe(2);
    const client = await Peer.connect(endpoint, "client");
    expect(await mmiLookup(client, "mmi.x")).toBe("404");
  });

  it("MMI-R1 (fixes MDB-B1) a worker whose identity starts with mmi. may register an ordinary service", async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    const worker = await registerWorker(broker, endpoint, "mmi.worker", "echo");
    const client = await Peer.connect(endpoint, "client");
    expect(await mmiLookup(client, "echo")).toBe("200");
    await client.send(REQUEST01("echo", B("x")));
    const request = await takeRequest(worker);
    await worker.send(REPLY01(request.client, B("y")));
    expect(await client.next()).toEqual([E, MDPC01, B("echo"), B("y")]);
  });

  it("MDP-R10 (fixes MDB-B4) REPLY from an idle worker -> DISCONNECT", async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    const client = await Peer.connect(endpoint, "client");
    const worker = await registerWorker(broker, endpoint, "idle", "echo");
    const gone = nextEvent(broker, "workerDisconnected");
    await worker.send(REPLY01(B("client"), B("unasked")));
    expect(await worker.next()).toEqual([E, MDPW01, byte(5)]);
    expect((await gone).reason).toBe("REPLY from idle worker");
    await client.expectOnlyHeartbeats(100);
    expect(await mmiLookup(client, "echo")).toBe("404");
  });

  it("MDP-R10 (fixes MDB-B4) a second REPLY to one request -> DISCONNECT; the client gets one reply", async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    const worker = await registerWorker(broker, endpoint, "twice", "echo");
    const client = await Peer.connect(endpoint, "client");
    await client.send(REQUEST01("echo", B("x")));
    const request = await takeRequest(worker);
    await worker.send(REPLY01(request.client, B("one")));
    await worker.send(REPLY01(request.client, B("two")));
    expect(await client.next()).toEqual([E, MDPC01, B("echo"), B("one")]);
    expect(await worker.next()).toEqual([E, MDPW01, byte(5)]);
    await client.expectOnlyHeartbeats(100);
    expect(broker.stats()).toMatchObject({ workers: 0, repliesOut: 1 });
  });

  it("MDP-R12 (fixes MDB-B5) REPLY naming another client -> DISCONNECT; no client gets it", async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    const worker = await registerWorker(broker, endpoint, "liar", "echo");
    const victim = await Peer.connect(endpoint, "victim");
    await victim.send(REQUEST01("mmi.service", B("echo"))); // connected and known to the ROUTER
    await victim.next();
    const client = await Peer.connect(endpoint, "client");
    const dropped = nextEvent(broker, "requestDropped");
    const gone = nextEvent(broker, "workerDisconnected");
    await client.send(REQUEST01("echo", B("x")));
    await takeRequest(worker);
    await worker.send(REPLY01(B("victim"), B("misrouted")));
    expect(await worker.next()).toEqual([E, MDPW01, byte(5)]);
    expect((await gone).reason).toBe("REPLY for another client");
    expect((await dropped).reason).toBe("worker lost while busy");
    await victim.expectOnlyHeartbeats(100);
    await client.expectOnlyHeartbeats(10);
  });

  it("MDP-R9 (fixes MDB-B9) DISCONNECT from a busy worker: its request is dropped, not lost silently", async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    const worker = await registerWorker(broker, endpoint, "quitter", "echo");
    const client = await Peer.connect(endpoint, "client");
    const dropped = nextEvent(broker, "requestDropped");
    await client.send(REQUEST01("echo", B("x")));
    await takeRequest(worker);
    await worker.send(DISCONNECT("0.1"));
    expect(await dropped).toEqual({
      service: "echo",
      client: identityKey(B("client")),
      reason: "worker lost while busy",
    });
    expect(broker.stats().workers).toBe(0);
  });

  it("MDB-B9 DISCONNECT from a busy worker of an idempotent service: re-queued and served by another", async () => {
    const { broker, endpoint } = await startBroker(cleanup, { idempotent: () => true });
    const quitter = await registerWorker(broker, endpoint, "quitter", "echo");
    const client = await Peer.connect(endpoint, "client");
    await client.send(REQUEST01("echo", B("job")));
    await takeRequest(quitter);
    const other = await registerWorker(broker, endpoint, "other", "echo");
    const requeued = nextEvent(broker, "requestRequeued");
    await quitter.send(DISCONNECT("0.1"));
    await requeued;
    const request = await takeRequest(other);
    expect(request.body).toEqual([B("job")]);
    await other.send(REPLY01(request.client, B("done")));
    expect(await client.next()).toEqual([E, MDPC01, B("echo"), B("done")]);
  });

  it("MDP-R9 a worker's DISCONNECT removes it (MMI 404) and the broker sends it nothing more", async () => {
    const { broker, endpoint } = await startBroker(cleanup, { heartbeatIntervalMs: 100 });
    const worker = await registerWorker(broker, endpoint, "leaving", "echo");
    const gone = nextEvent(broker, "workerDisconnected");
    await worker.send(DISCONNECT("0.1"));
    expect(await gone).toMatchObject({ worker: worker.key, reason: "DISCONNECT from worker" });
    const client = await Peer.connect(endpoint, "client");
    expect(await mmiLookup(client, "echo")).toBe("404");
    await worker.drain(30);
    await worker.tap.expectNothing(300); // no DISCONNECT back, no heartbeats
  });

  it("MDP-R9 a DISCONNECT from a peer that never registered is ignored, with no answer", async () => {
    const { broker, endpoint } = await startBroker(cleanup, { heartbeatIntervalMs: 100 });
    const peer = await Peer.connect(endpoint, "stranger");
    await peer.send(DISCONNECT("0.1"));
    await peer.send(DISCONNECT("0.2"));
    await peer.tap.expectNothing(250);
    expect(broker.stats().workers).toBe(0);
  });

  it("MDP-R10 a REQUEST command sent by a registered worker -> DISCONNECT", async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    const worker = await registerWorker(broker, endpoint, "confused", "echo");
    await worker.send([E, MDPW01, byte(2), B("client"), E, B("x")]);
    expect(await worker.next()).toEqual([E, MDPW01, byte(5)]);
    expect(broker.stats().workers).toBe(0);
  });

  it("MDP-R10 a registered worker that sends an invalid message is treated as invalid: DISCONNECT", async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    const worker = await registerWorker(broker, endpoint, "garbler", "echo");
    await worker.send([E, MDPW01, byte(9)]);
    expect(await worker.next()).toEqual([E, MDPW01, byte(5)]);
    expect(broker.stats().workers).toBe(0);
    expect(broker.stats().dropped["unknown command"]).toBe(1);
  });

  it("MDB-B7 malformed messages are dropped and counted; the broker keeps serving", async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    const peer = await Peer.connect(endpoint, "junk");
    const garbage: Buffer[][] = [
      [B("x")],
      [E],
      [E, MDPC01],
      [E, MDPC01, B("echo")],
      [E, MDPW01],
      [E, MDPW01, byte(1)],
      [MDPC02, byte(2), B("echo"), B("x")],
      [E, MDPC01, Buffer.alloc(300, 0x61), B("x")],
    ];
    const dropped = record(broker, "dropped");
    for (const frames of garbage) await peer.send(frames);
    const client = await Peer.connect(endpoint, "client");
    expect(await mmiLookup(client, "echo")).toBe("404");
    await until(() => dropped.length === garbage.length);
    expect(dropped.map((d) => d.reason)).toEqual([
      "unknown protocol header",
      "missing frame: header",
      "missing frame: service",
      "missing frame: body",
      "missing frame: command",
      "missing frame: service",
      "unexpected client command",
      "service frame is longer than 255 bytes",
    ]);
    await peer.tap.expectNothing(50);
  });
});

describe("shutdown, stats and options", () => {
  it("MDP-R9/R11 close() sends DISCONNECT to every registered worker, in its version", async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    const w1 = await registerWorker(broker, endpoint, "w1", "a", "0.1");
    const w2 = await registerWorker(broker, endpoint, "w2", "b", "0.2");
    const client = await Peer.connect(endpoint, "client");
    await client.send(REQUEST01("a", B("busy")));
    await takeRequest(w1); // a busy worker is told too
    await broker.close();
    expect(await w1.next()).toEqual([E, MDPW01, byte(5)]);
    expect(await w2.next()).toEqual([MDPW02, byte(6)]);
  });

  it("MDB-B6/B8 stats() reports services, workers, counters and drops by reason", async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    const worker = await registerWorker(broker, endpoint, "worker", "echo");
    const client = await Peer.connect(endpoint, "client");
    for (const body of ["1", "2"]) {
      await client.send(REQUEST01("echo", B(body)));
      const request = await takeRequest(worker);
      await worker.send(REPLY01(request.client, B(body)));
      await client.next();
    }
    expect(await mmiLookup(client, "echo")).toBe("200");
    await client.send(REQUEST01("other", B("waits")));
    await client.send([B("junk")]);
    await until(() => broker.stats().dropped["unknown protocol header"] === 1);
    expect(broker.stats()).toEqual({
      services: {
        echo: { workersIdle: 1, workersBusy: 0, queued: 0 },
        other: { workersIdle: 0, workersBusy: 0, queued: 1 },
      },
      workers: 1,
      requestsIn: 4,
      requestsDispatched: 2,
      repliesOut: 2,
      requestsExpired: 0,
      requestsRequeued: 0,
      workersExpired: 0,
      mmiRequests: 1,
      dropped: { "unknown protocol header": 1 },
    });
    await client.send(REQUEST01("echo", B("3")));
    await takeRequest(worker);
    expect(broker.stats().services.echo).toEqual({ workersIdle: 0, workersBusy: 1, queued: 0 });
  });

  it("5.1 bind: start() rejects with EADDRINUSE when the endpoint is already bound", async () => {
    const { endpoint } = await startBroker(cleanup);
    await expect(MajordomoBroker.start({ bind: endpoint })).rejects.toMatchObject({
      code: "EADDRINUSE",
    });
  });

  const bad: Array<[string, MajordomoBrokerOptions]> = [
    ["heartbeatIntervalMs 0", { heartbeatIntervalMs: 0 }],
    ["heartbeatIntervalMs NaN", { heartbeatIntervalMs: Number.NaN }],
    ["heartbeatIntervalMs Infinity", { heartbeatIntervalMs: Number.POSITIVE_INFINITY }],
    ["liveness 0", { liveness: 0 }],
    ["liveness 2.5", { liveness: 2.5 }],
    ["requestTtlMs -1", { requestTtlMs: -1 }],
    ["maxQueuedPerService 0", { maxQueuedPerService: 0 }],
    ["maxServices 0", { maxServices: 0 }],
    ["maxWorkers -5", { maxWorkers: -5 }],
    ["bind not an endpoint", { bind: "localhost:5555" }],
    ["bind empty list", { bind: [] }],
    ["bind port above 65535", { bind: "tcp://127.0.0.1:70000" }],
  ];
  for (const [name, options] of bad) {
    it(`INVALID_ARGUMENT: ${name} fails fast`, async () => {
      const started = MajordomoBroker.start({ bind: "tcp://127.0.0.1:*", ...options });
      await expect(started).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(started).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    });
  }
});

describe("robustness fixes (regression tests)", () => {
  /** Runs `fn` with unhandled rejections captured instead of failing the whole run. */
  async function capturingUnhandled(fn: (errors: unknown[]) => Promise<void>): Promise<void> {
    const saved = process.listeners("unhandledRejection");
    process.removeAllListeners("unhandledRejection");
    const errors: unknown[] = [];
    const capture = (reason: unknown): void => {
      errors.push(reason);
    };
    process.on("unhandledRejection", capture);
    try {
      await fn(errors);
    } finally {
      await new Promise((resolve) => setTimeout(resolve, 20));
      process.off("unhandledRejection", capture);
      for (const listener of saved) process.on("unhandledRejection", listener);
    }
  }

  // Regression (formerly: broker.ts #serve + protocol.ts readService/checkedService): a service frame of <= 255
  // bytes that is not valid UTF-8 is decoded lossily (each invalid byte -> U+FFFD, 3 bytes), so
  // "mmi." + 100 x 0xFF (104 bytes) becomes a 304-byte name; #mmi -> #sendClient ->
  // encodeClientReply throws ProtocolError("service frame is longer than 255 bytes") inside the
  // receive loop, which is not guarded: #serve's promise rejects (unhandled rejection: Node exits
  // by default) and the broker stops receiving. Any client can kill the broker with one message.
  // The same throw happens on a worker REPLY for a service registered with such a name.
  it("MDB-B7 fixed: a non-UTF-8 service name must not kill the broker's receive loop", async () => {
    await capturingUnhandled(async (errors) => {
      const { endpoint } = await startBroker(cleanup);
      const attacker = await Peer.connect(endpoint, "attacker");
      await attacker.send(REQUEST01(Buffer.concat([B("mmi."), Buffer.alloc(100, 0xff)]), B("x")));
      const client = await Peer.connect(endpoint, "client");
      await client.send(REQUEST01("mmi.service", B("echo")));
      const reply = await client.next(1000).catch(() => undefined);
      expect(errors).toEqual([]);
      expect(reply).toEqual([E, MDPC01, B("mmi.service"), B("404")]);
    });
  });

  // Regression (formerly: protocol.ts readService): the reply's service frame is not the frame the client sent
  // when that frame is not valid UTF-8 ("mmi.\xff" comes back as "mmi.\xef\xbf\xbd"). RFC 7 makes
  // the service name a printable string, so refusing it would be fine; mangling it is not
  // (a reference mdcliapi asserts the reply's service frame equals the request's).
  it("MDB-7 fixed: a reply carries the service frame byte for byte, or the request is refused", async () => {
    const { endpoint } = await startBroker(cleanup);
    const client = await Peer.connect(endpoint, "client");
    const service = Buffer.concat([B("mmi."), byte(0xff)]);
    await client.send(REQUEST01(service, B("x")));
    const reply = await client.next(300).catch(() => undefined);
    if (reply === undefined) return; // refused: fine
    expect(reply[2]?.toString("hex")).toBe(service.toString("hex"));
  });

  // Regression (formerly: protocol.ts readRouted: body may be empty): RFC 7 REPLY is "6 or more frames"
  // ([""]["MDPW01"][0x03][<C>][""][body...]); a body-less REPLY is accepted and forwarded to the
  // client as the 3-frame [""]["MDPC01"]["echo"], which breaks RFC 7's client REPLY (4+ frames;
  // a reference mdcliapi asserts >= 3 frames after REQ strips the delimiter and would abort).
  it("RFC 7 5.4 fixed: a body-less worker REPLY is not forwarded as a 3-frame client REPLY", async () => {
    const { broker, endpoint } = await startBroker(cleanup);
    const worker = await registerWorker(broker, endpoint, "worker", "echo");
    const client = await Peer.connect(endpoint, "client");
    await client.send(REQUEST01("echo", B("x")));
    const request = await takeRequest(worker);
    await worker.send([E, MDPW01, byte(3), request.client, E]);
    const reply = await client.next(300).catch(() => undefined);
    if (reply !== undefined) expect(reply.length).toBeGreaterThanOrEqual(4);
  });
});
