/**
 * Robustness of `MajordomoBroker` (MDB-B7, MDB-B8, MDP-R10, MDB-B6): two rounds of 10,000
 * seeded random malformed or unexpected messages from raw DEALER peers, on the client side and
 * the worker side, while a well-behaved 0.1 client talks to a well-behaved echo worker.
 *
 * Asserted: no well-behaved request is lost or answered wrongly; the broker never throws; every
 * undecodable message is counted under its reason in `stats().dropped`; services, workers and
 * queues stay within their bounds during the rounds and return to the same baseline after each.
 */
import type { EventEmitter } from "node:events";
import { identityKey, ProtocolError } from "@zmq-patterns/core";
import { allocateAddress, Tap } from "@zmq-patterns/core/testing";
import { afterEach, describe, expect, it } from "vitest";
import type { Dealer } from "zeromq";
import { MajordomoBroker, type MajordomoBrokerEvents } from "../src/broker.js";
import { decodeBrokerInbound } from "../src/protocol.js";

const E = Buffer.alloc(0);
const B = (text: string): Buffer => Buffer.from(text);
const byte = (value: number): Buffer => Buffer.from([value]);
const MDPC01 = B("MDPC01");
const MDPW01 = B("MDPW01");
const MDPC02 = B("MDPC02");
const MDPW02 = B("MDPW02");
type Version = "0.1" | "0.2";

const MESSAGES_PER_ROUND = 10_000;
const GOOD_REQUESTS_PER_ROUND = 150;
const GOOD_WINDOW = 8;
const LIMITS = { maxServices: 40, maxQueuedPerService: 10, maxWorkers: 4 } as const;
const HEARTBEAT_MS = 200;
const LIVENESS = 3;
const REQUEST_TTL_MS = 1000;

/** mulberry32: a tiny seeded PRNG, so every run sends the very same garbage. */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Garbage {
  readonly #rand: () => number;
  /** Client addresses a forged REPLY may name. */
  readonly clients: Buffer[];

  constructor(seed: number, clients: Buffer[]) {
    this.#rand = mulberry32(seed);
    this.clients = clients;
  }

  int(lo: number, hi: number): number {
    return lo + Math.floor(this.#rand() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return this.#rand() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length - 1)] as T;
  }

  bytes(length: number): Buffer {
    const out = Buffer.alloc(length);
    for (let i = 0; i < length; i += 1) out[i] = this.int(0, 255);
    return out;
  }

  printable(length: number): Buffer {
    const out = Buffer.alloc(length);
    for (let i = 0; i < length; i += 1) out[i] = this.int(0x21, 0x7e);
    return out;
  }

  /** Short random frames (never long enough to matter for service-name re-encoding). */
  frame(): Buffer {
    return this.chance(0.15) ? E : this.bytes(this.int(1, this.chance(0.9) ? 16 : 64));
  }

  body(): Buffer[] {
    return Array.from({ length: this.int(1, 3) }, () => this.frame());
  }

  version(): Version {
    return this.chance(0.5) ? "0.1" : "0.2";
  }

  /**
   * Fuzz service names: never "echo" (the well-behaved service); mostly from a pool larger than
   * maxServices, so the bound is hit, and sometimes raw bytes that are not valid UTF-8 (refused).
   */
  service(): Buffer {
    if (this.chance(0.1)) return Buffer.concat([B("fz-"), this.bytes(this.int(1, 120))]);
    return B(`fz-${this.int(0, 59)}`);
  }

  client(): Buffer {
    return this.chance(0.2) ? this.bytes(this.int(1, 8)) : this.pick(this.clients);
  }

  /** A well-formed message of any kind, from either side, in either version. */
  valid(): Buffer[] {
    const v = this.version();
    const w = v === "0.1" ? [E, MDPW01] : [MDPW02];
    switch (this.int(0, 9)) {
      case 0:
        return [...w, byte(1), this.chance(0.1) ? B(`mmi.${this.int(0, 9)}`) : this.service()];
      case 1:
        return [...w, byte(v === "0.1" ? 4 : 5)];
      case 2:
        return [...w, byte(v === "0.1" ? 5 : 6)];
      case 3: {
        const code = v === "0.1" ? 3 : this.pick([3, 4]);
        return [...w, byte(code), this.client(), E, ...this.body()];
      }
      case 4:
        return [...w, byte(2), this.client(), E, ...this.body()];
      case 5:
      case 6:
        return v === "0.1"
          ? [E, MDPC01, this.service(), ...this.body()]
          : [MDPC02, byte(1), this.service(), ...this.body()];
      case 7: {
        const name = this.chance(0.5) ? B("mmi.service") : B(`mmi.${this.printable(6)}`);
        const lookup = this.chance(0.5) ? this.service() : this.printable(this.int(1, 10));
        return v === "0.1"
          ? [E, MDPC01, name, lookup]
          : [MDPC02, byte(1), name, this.frame(), lookup];
      }
      case 8:
        return [E, MDPC01, this.service(), ...this.body()];
      default:
        return [...w, byte(v === "0.1" ? 4 : 5)];
    }
  }

  /** One message to send: mostly malformed, some well-formed but unexpected. */
  message(): Buffer[] {
    const kind = this.int(0, 99);
    if (kind < 15) {
      // random frames: 1..8 (ZeroMQ cannot send zero frames), random lengths and bytes
      return Array.from({ length: this.int(1, 8) }, () =>
        this.chance(0.05) ? this.bytes(this.int(65, 2000)) : this.frame(),
      );
    }
    if (kind < 30) {
      // a valid header with a wrong, unknown or malformed command
      const head = this.pick([[E, MDPW01], [MDPW02], [E, MDPC01], [MDPC02]]);
      const command = this.chance(0.8) ? byte(this.int(0, 255)) : this.bytes(this.int(0, 3));
      return [...head, command, ...Array.from({ length: this.int(0, 4) }, () => this.frame())];
    }
    if (kind < 45) {
      // a valid message cut short
      const message = this.valid();
      return message.slice(0, Math.max(1, this.int(1, message.length - 1)));
    }
    if (kind < 60) {
      // a valid message with one frame replaced, added or removed
      const message = this.valid();
      const at = this.int(0, message.length - 1);
      const op = this.int(0, 2);
      if (op === 0) message[at] = this.frame();
      else if (op === 1) message.splice(at, 0, this.frame());
      else if (message.length > 1) message.splice(at, 1);
      return message;
    }
    if (kind < 65) {
      // a huge service name
      const huge = this.printable(this.int(256, 4096));
      return this.pick([
        [E, MDPW01, byte(1), huge],
        [MDPW02, byte(1), huge],
        [E, MDPC01, huge, this.frame()],
        [MDPC02, byte(1), huge, this.frame()],
      ]);
    }
    if (kind < 75) {
      // READY for a random service (or an mmi. one), random version
      const v = this.version();
      const service = this.chance(0.1) ? B(`mmi.${this.int(0, 99)}`) : this.service();
      return v === "0.1" ? [E, MDPW01, byte(1), service] : [MDPW02, byte(1), service];
    }
    if (kind < 95) return this.valid();
    return Array.from({ length: this.int(1, 8) }, () => E);
  }
}

function isHeartbeat(frames: readonly Buffer[]): boolean {
  const [a, b, c] = frames;
  return (
    frames.length === 3 &&
    a?.byteLength === 0 &&
    b?.equals(MDPW01) === true &&
    c?.equals(byte(4)) === true
  );
}

const cleanup: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const item of cleanup.splice(0).reverse()) await item.close();
});

/** A fuzz peer: drains what the broker sends, and can probe that its messages were processed. */
class FuzzPeer {
  readonly id: Buffer;
  readonly key: string;
  readonly tap: Tap<Dealer>;
  received = 0;
  #probe = 0;
  readonly #waiting = new Map<string, () => void>();

  private constructor(tap: Tap<Dealer>, id: Buffer) {
    this.tap = tap;
    this.id = id;
    this.key = identityKey(id);
    tap.socket.receiveTimeout = -1;
    void this.#drain();
  }

  /**
   * Connects with `id` and waits until the broker answers an MMI probe: a ROUTER refuses a second
   * peer with an identity still in use, so a recycled identity may need a few attempts.
   */
  static async connect(endpoint: string, id: Buffer): Promise<FuzzPeer> {
    for (let attempt = 0; attempt < 20; attempt += 1) {
      const peer = new FuzzPeer(await Tap.dealer(endpoint, { routingId: id }), id);
      if (
        await peer.barrier(300).then(
          () => true,
          () => false,
        )
      ) {
        cleanup.push(peer);
        return peer;
      }
      peer.close();
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`peer ${id.toString("hex")} could not connect`);
  }

  /** Resolves once the broker processed everything this peer sent before (per-pipe order). */
  async barrier(timeoutMs = 3000): Promise<void> {
    this.#probe += 1;
    const service = `mmi.probe-${this.#probe}`;
    const answered = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(service);
        reject(new Error(`no answer to ${service} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiting.set(service, () => {
        clearTimeout(timer);
        resolve();
      });
    });
    await this.tap.send([E, MDPC01, B(service), B("x")]);
    return answered;
  }

  async #drain(): Promise<void> {
    for (;;) {
      let frames: Buffer[];
      try {
        frames = await this.tap.socket.receive();
      } catch {
        return;
      }
      const service = frames[2]?.toString() ?? "";
      const waiter =
        frames.length === 4 && frames[1]?.equals(MDPC01) ? this.#waiting.get(service) : undefined;
      if (waiter) {
        this.#waiting.delete(service);
        waiter();
      } else this.received += 1;
    }
  }

  close(): void {
    this.tap.close();
  }
}

/** The well-behaved 0.1 echo worker, heartbeating on its own timer. */
class EchoWorker {
  readonly tap: Tap<Dealer>;
  readonly problems: string[] = [];
  served = 0;
  #chain: Promise<void> = Promise.resolve();
  readonly #timer: NodeJS.Timeout;

  private constructor(tap: Tap<Dealer>) {
    this.tap = tap;
    tap.socket.receiveTimeout = -1;
    this.#timer = setInterval(() => this.#send([E, MDPW01, byte(4)]), HEARTBEAT_MS / 2);
    void this.#serve();
  }

  static async start(broker: MajordomoBroker, endpoint: string): Promise<EchoWorker> {
    const tap = await Tap.dealer(endpoint, { routingId: "echo-worker" });
    const ready = new Promise((resolve) => broker.once("workerReady", resolve));
    await tap.send([E, MDPW01, byte(1), B("echo")]);
    await ready;
    const worker = new EchoWorker(tap);
    cleanup.push(worker);
    return worker;
  }

  #send(frames: Buffer[]): void {
    this.#chain = this.#chain.then(() => this.tap.send(frames)).catch(() => {});
  }

  async #serve(): Promise<void> {
    for (;;) {
      let frames: Buffer[];
      try {
        frames = await this.tap.socket.receive();
      } catch {
        return;
      }
      if (isHeartbeat(frames)) continue;
      const [f0, f1, f2, client, delimiter, ...body] = frames;
      if (
        f0?.byteLength !== 0 ||
        !f1?.equals(MDPW01) ||
        !f2?.equals(byte(2)) ||
        client === undefined ||
        delimiter?.byteLength !== 0
      ) {
        this.problems.push(frames.map((f) => f.toString("hex")).join("|"));
        continue;
      }
      this.served += 1;
      this.#send([E, MDPW01, byte(3), client, E, ...body]);
    }
  }

  close(): void {
    clearInterval(this.#timer);
    this.tap.close();
  }
}

/** The well-behaved 0.1 DEALER client: `count` echo requests with a window, every reply checked. */
async function goodClient(client: Tap<Dealer>, round: number, count: number): Promise<void> {
  const rand = mulberry32(1000 + round);
  const bodies: Buffer[][] = [];
  let sent = 0;
  let received = 0;
  while (received < count) {
    while (sent < count && sent - received < GOOD_WINDOW) {
      const noise = Buffer.alloc(Math.floor(rand() * 64));
      for (let i = 0; i < noise.length; i += 1) noise[i] = Math.floor(rand() * 256);
      const body = [B(`round-${round}-request-${sent}`), noise];
      bodies.push(body);
      await client.send([E, MDPC01, B("echo"), ...body]);
      sent += 1;
    }
    const reply = await client.receive(5000);
    // One echo worker and FIFO queues: replies come back in request order.
    expect(reply).toEqual([E, MDPC01, B("echo"), ...(bodies[received] as Buffer[])]);
    received += 1;
  }
  await client.expectNothing(20);
}

async function until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe("MajordomoBroker under seeded garbage (MDB-B7, MDB-B8, MDP-R10, MDB-B6)", () => {
  it("MDB-B7 2 x 10,000 malformed messages: no good request lost, no crash, drops counted, memory bounded", async () => {
    const crashes: unknown[] = [];
    const onCrash = (error: unknown): void => {
      crashes.push(error);
    };
    process.on("uncaughtException", onCrash);
    process.on("unhandledRejection", onCrash);
    cleanup.push({
      close: () => {
        process.off("uncaughtException", onCrash);
        process.off("unhandledRejection", onCrash);
      },
    });

    const broker = await MajordomoBroker.start({
      bind: await allocateAddress(),
      heartbeatIntervalMs: HEARTBEAT_MS,
      liveness: LIVENESS,
      requestTtlMs: REQUEST_TTL_MS,
      ...LIMITS,
    });
    cleanup.push(broker);
    const endpoint = broker.endpoints[0] as string;
    const echo = await EchoWorker.start(broker, endpoint);
    const client = await Tap.dealer(endpoint, { routingId: "good-client" });
    cleanup.push(client);
    const goodKeys = new Set([identityKey(B("echo-worker")), identityKey(B("good-client"))]);

    // Broker events that would mean the well-behaved pair was harmed, and every drop by reason.
    const harmed: string[] = [];
    const emitter = broker as unknown as EventEmitter;
    const dropsByReason = new Map<string, number>();
    emitter.on("dropped", (e: MajordomoBrokerEvents["dropped"][0]) => {
      if (goodKeys.has(e.from)) harmed.push(`dropped ${e.reason} from ${e.from}`);
      dropsByReason.set(e.reason, (dropsByReason.get(e.reason) ?? 0) + 1);
    });
    for (const event of ["workerExpired", "workerDisconnected"] as const) {
      emitter.on(event, (e: { worker: string }) => {
        if (goodKeys.has(e.worker)) harmed.push(`${event} ${e.worker}`);
      });
    }
    for (const event of ["requestDropped", "requestExpired"] as const) {
      emitter.on(event, (e: { client: string; service: string }) => {
        if (goodKeys.has(e.client)) harmed.push(`${event} ${e.service} for ${e.client}`);
      });
    }

    // Identities that registered as workers before the fuzz peers take them over.
    const ghostIds = [B("ghost-worker-1"), B("ghost-worker-2")];
    for (const id of ghostIds) {
      const ghost = await Tap.dealer(endpoint, { routingId: id });
      const ready = new Promise((resolve) => broker.once("workerReady", resolve));
      await ghost.send([E, MDPW01, byte(1), B("ghost-service")]);
      await ready;
      ghost.close();
    }

    // Bounds, sampled while the garbage flows.
    const peak = { services: 0, workers: 0, queued: 0 };
    const sample = (): void => {
      const stats = broker.stats();
      const services = Object.values(stats.services);
      peak.services = Math.max(peak.services, services.length);
      peak.workers = Math.max(peak.workers, stats.workers);
      peak.queued = Math.max(
        peak.queued,
        services.reduce((sum, s) => sum + s.queued, 0),
      );
      for (const service of services)
        expect(service.queued).toBeLessThanOrEqual(LIMITS.maxQueuedPerService);
    };
    const sampler = setInterval(sample, 20);
    cleanup.push({ close: () => clearInterval(sampler) });

    const idRand = mulberry32(4242);
    const freshId = (): Buffer => {
      const id = Buffer.alloc(1 + Math.floor(idRand() * 16));
      for (let i = 0; i < id.length; i += 1) id[i] = 1 + Math.floor(idRand() * 255); // no leading 0x00 (reserved)
      return id;
    };
    const retired: Buffer[] = []; // identities of closed fuzz peers, some of them registered workers
    const peers: FuzzPeer[] = [];
    for (const id of [
      ...ghostIds,
      B("fuzz-a"),
      B("fuzz-b"),
      B("fuzz-c"),
      freshId(),
      freshId(),
      freshId(),
    ])
      peers.push(await FuzzPeer.connect(endpoint, id));

    const baselines: Array<ReturnType<MajordomoBroker["stats"]>> = [];
    for (const round of [1, 2]) {
      const garbage = new Garbage(0x5eed + round, [
        ...peers.map((p) => p.id),
        B("good-client"),
        ...ghostIds,
      ]);
      const expectedInvalid = new Map<string, number>();
      const dropsBefore = new Map(dropsByReason);
      const statsBefore = broker.stats();

      const fuzz = async (): Promise<void> => {
        // Every peer first registers a worker: more than maxWorkers, so that bound is hit.
        for (const [n, peer] of peers.entries())
          await peer.tap.send([E, MDPW01, byte(1), B(`fz-fill-${n}`)]);
        for (let i = 0; i < MESSAGES_PER_ROUND; i += 1) {
          if (i > 0 && i % 2500 === 0) {
            // Retire a peer (after its messages were processed) and bring in another identity:
            // a fresh one or one a retired peer used (possibly a registered worker).
            const index = garbage.int(0, peers.length - 1);
            const old = peers[index] as FuzzPeer;
            await old.barrier();
            old.close();
            retired.push(old.id);
            const reuse = retired.filter((id) => !peers.some((p) => p.id.equals(id)));
            const id = garbage.chance(0.5) && reuse.length > 0 ? garbage.pick(reuse) : freshId();
            peers[index] = await FuzzPeer.connect(endpoint, id);
            garbage.clients.push(id);
          }
          const peer = garbage.pick(peers);
          const message = garbage.message();
          try {
            decodeBrokerInbound(message);
          } catch (error) {
            const reason = (error as ProtocolError).reason;
            expect(error).toBeInstanceOf(ProtocolError);
            expectedInvalid.set(reason, (expectedInvalid.get(reason) ?? 0) + 1);
          }
          await peer.tap.send(message);
        }
        for (const peer of peers) await peer.barrier();
      };

      await Promise.all([fuzz(), goodClient(client, round, GOOD_REQUESTS_PER_ROUND)]);

      // Every undecodable message was dropped and counted under its own reason, exactly once.
      let invalid = 0;
      for (const [reason, count] of expectedInvalid) {
        invalid += count;
        expect({
          reason,
          dropped: (dropsByReason.get(reason) ?? 0) - (dropsBefore.get(reason) ?? 0),
        }).toEqual({ reason, dropped: count });
      }
      expect(invalid).toBeGreaterThan(MESSAGES_PER_ROUND / 2);
      const statsAfter = broker.stats();
      const sum = (d: Record<string, number>): number =>
        Object.values(d).reduce((a, b) => a + b, 0);
      expect(sum(statsAfter.dropped) - sum(statsBefore.dropped)).toBeGreaterThanOrEqual(invalid);
      for (const [reason, count] of expectedInvalid) {
        expect((statsAfter.dropped[reason] ?? 0) - (statsBefore.dropped[reason] ?? 0)).toBe(count);
      }

      // The broker still serves, and after the TTLs it is back to its baseline: nothing leaked.
      sample();
      await until(
        () => {
          const s = broker.stats();
          return s.workers === 1 && Object.keys(s.services).join() === "echo";
        },
        LIVENESS * HEARTBEAT_MS + REQUEST_TTL_MS + 2000,
        `round ${round}: fuzz workers expired and fuzz queues emptied`,
      );
      const baseline = broker.stats();
      expect(baseline.services).toEqual({ echo: { workersIdle: 1, workersBusy: 0, queued: 0 } });
      expect(Object.keys(baseline.dropped).length).toBeLessThanOrEqual(257);
      baselines.push(baseline);
    }

    clearInterval(sampler);
    expect(crashes).toEqual([]);
    expect(harmed).toEqual([]);
    expect(echo.problems).toEqual([]);
    expect(echo.served).toBeGreaterThanOrEqual(2 * GOOD_REQUESTS_PER_ROUND);
    expect(peak.services).toBeLessThanOrEqual(LIMITS.maxServices);
    expect(peak.workers).toBeLessThanOrEqual(LIMITS.maxWorkers);
    expect(peak.queued).toBeLessThanOrEqual(LIMITS.maxServices * LIMITS.maxQueuedPerService);
    // The limits were actually exercised.
    const [first, second] = baselines as [
      ReturnType<MajordomoBroker["stats"]>,
      ReturnType<MajordomoBroker["stats"]>,
    ];
    expect(first.dropped["too many services"] ?? 0).toBeGreaterThan(0);
    expect(first.dropped["too many workers"] ?? 0).toBeGreaterThan(0);
    expect(first.dropped["service queue full"] ?? 0).toBeGreaterThan(0);
    // No growth trend: the second round ends exactly where the first did.
    for (const stats of [first, second]) {
      expect({ workers: stats.workers, services: stats.services }).toEqual({
        workers: 1,
        services: { echo: { workersIdle: 1, workersBusy: 0, queued: 0 } },
      });
    }
    const client2 = await Tap.dealer(endpoint, { routingId: "late-client" });
    cleanup.push(client2);
    await client2.send([E, MDPC01, B("mmi.service"), B("echo")]);
    expect(await client2.receive()).toEqual([E, MDPC01, B("mmi.service"), B("200")]);
  });
});
