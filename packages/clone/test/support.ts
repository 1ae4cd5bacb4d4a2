/**
 * What the Clone tests share: bounded event waits, servers and pairs on fresh addresses, a raw
 * updater (an XPUB that knows when the collectors have subscribed), a raw listener on a server's
 * publisher, a raw snapshot requester, and a fake server for the client tests.
 */
import type { EventEmitter } from "node:events";
import { type FrameLike, sleep, TimeoutError, toFrames } from "@zmq-patterns/core";
import { allocateAddress, allocatePort } from "@zmq-patterns/core/testing";
import { Dealer, Publisher, Router, Subscriber, XPublisher } from "zeromq";
import {
  type CloneClient,
  type CloneClientEvents,
  CloneServer,
  type CloneServerEvents,
  type CloneServerOptions,
  encodeSnapshotRequest,
  HUGZ,
  ICANHAZ,
  KTHXBAI,
  KvMsg,
  type KvMsgInit,
} from "../src/index.js";

/** How long a test waits for something that normally takes milliseconds (a loaded machine). */
export const WAIT_MS = 10_000;
/** Binary Star heartbeat of the pairs under test. */
export const HB = 150;
/** HUGZ and TTL flush interval of the servers under test. */
export const TICK = 100;
export const E = Buffer.alloc(0);
export const B = (text: string): Buffer => Buffer.from(text);

/** Eight bytes big-endian, spelled out independently of the codec. */
export function u64(value: number | bigint): Buffer {
  const frame = Buffer.alloc(8);
  frame.writeBigUInt64BE(BigInt(value));
  return frame;
}

const tracked: Array<{ close(): unknown }> = [];

/** Closes `item` after the test (call {@link closeTracked} from `afterEach`). */
export function track<T extends { close(): unknown }>(item: T): T {
  tracked.push(item);
  return item;
}

/** Closes everything {@link track}ed, last first. */
export async function closeTracked(): Promise<void> {
  for (const item of tracked.splice(0).reverse()) await item.close();
}

/** Rejects with a `TimeoutError` naming `what` unless `promise` settles within `timeoutMs`. */
export async function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new TimeoutError(`${what} did not happen within ${timeoutMs} ms`, timeoutMs)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Events of the emitters under test, by emitter type (Node's typings lose payload types). */
type EventsOf<T> = T extends CloneServer
  ? CloneServerEvents
  : T extends CloneClient
    ? CloneClientEvents
    : never;
/** The payload of `event` of emitter type `T`. */
type PayloadOf<T, K extends keyof EventsOf<T>> = EventsOf<T>[K] extends [infer P] ? P : never;

/**
 * The first argument of the next `event` of `emitter` that passes `match`. Register it before
 * causing the event.
 */
export function nextEvent<
  T extends CloneServer | CloneClient,
  K extends keyof EventsOf<T> & string,
>(
  emitter: T,
  event: K,
  match: (payload: PayloadOf<T, K>) => boolean = () => true,
  timeoutMs = WAIT_MS,
): Promise<PayloadOf<T, K>> {
  type P = PayloadOf<T, K>;
  const plain = emitter as unknown as EventEmitter;
  let listener: (payload: P) => void = () => {};
  const seen = new Promise<P>((resolve) => {
    listener = (payload) => {
      if (match(payload)) resolve(payload);
    };
    plain.on(event, listener);
  });
  return within(seen, timeoutMs, `event "${event}"`).finally(() => plain.off(event, listener));
}

/** Every first argument of `event` from now on. */
export function record<T extends CloneServer | CloneClient, K extends keyof EventsOf<T> & string>(
  emitter: T,
  event: K,
): Array<PayloadOf<T, K>> {
  const log: Array<PayloadOf<T, K>> = [];
  (emitter as unknown as EventEmitter).on(event, (payload: PayloadOf<T, K>) => log.push(payload));
  return log;
}

/** Waits until `condition()` holds, checking every 10 ms; fails after `timeoutMs`. */
export async function waitFor(
  condition: () => boolean,
  what: string,
  timeoutMs = WAIT_MS,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) {
      throw new TimeoutError(`${what} did not happen within ${timeoutMs} ms`, timeoutMs);
    }
    await sleep(10);
  }
}

/**
 * Runs `bind` until it does not fail with `EADDRINUSE`: a port closed a moment ago is released
 * by ZeroMQ's I/O thread shortly after `close()` returns.
 */
export async function retryWhileInUse<T>(bind: () => Promise<T>, timeoutMs = WAIT_MS): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      return await bind();
    } catch (error) {
      const inUse = (error as { code?: unknown } | null)?.code === "EADDRINUSE";
      if (!inUse || performance.now() > deadline) throw error;
      await sleep(20);
    }
  }
}

/** A base port P whose P, P+1 and P+2 were all free a moment ago (a server's three ports). */
export async function allocateBase(): Promise<number> {
  let run: number[] = [];
  for (let tries = 0; tries < 60; tries++) {
    const port = await allocatePort();
    run = run.length > 0 && port === (run.at(-1) as number) + 1 ? [...run, port] : [port];
    if (run.length === 3) return run[0] as number;
  }
  throw new Error("no three consecutive free ports");
}

/** The endpoints of a standalone server on fresh addresses. */
export async function serverEndpoints(): Promise<{
  snapshot: string;
  publisher: string;
  collector: string;
}> {
  return {
    snapshot: await allocateAddress(),
    publisher: await allocateAddress(),
    collector: await allocateAddress(),
  };
}

/** A standalone server on fresh endpoints, HUGZ and flush every {@link TICK} ms, closed after the test. */
export async function startStandalone(options: CloneServerOptions = {}): Promise<CloneServer> {
  return track(
    await CloneServer.start({
      endpoints: await serverEndpoints(),
      hugzIntervalMs: TICK,
      flushIntervalMs: TICK,
      ...options,
    }),
  );
}

/** Where one server of a pair binds and what it connects to. */
export interface PairMemberConfig {
  role: "primary" | "backup";
  endpoints: { snapshot: string; publisher: string; collector: string };
  peer: { snapshot: string; publisher: string };
  localState: string;
  remoteState: string;
}

/** Fresh endpoints for a pair, each server pointing at the other. */
export async function pairConfig(): Promise<{
  primary: PairMemberConfig;
  backup: PairMemberConfig;
}> {
  const p = await serverEndpoints();
  const b = await serverEndpoints();
  const pState = await allocateAddress();
  const bState = await allocateAddress();
  return {
    primary: {
      role: "primary",
      endpoints: p,
      peer: { snapshot: b.snapshot, publisher: b.publisher },
      localState: pState,
      remoteState: bState,
    },
    backup: {
      role: "backup",
      endpoints: b,
      peer: { snapshot: p.snapshot, publisher: p.publisher },
      localState: bState,
      remoteState: pState,
    },
  };
}

/** Short timers for pair members: heartbeat {@link HB}, HUGZ and flush {@link TICK}. */
export const PAIR_TIMERS = {
  heartbeatIntervalMs: HB,
  hugzIntervalMs: TICK,
  flushIntervalMs: TICK,
} as const;

/** Starts one server of a pair (binding ports its predecessor may just have closed). */
export async function startMember(
  config: PairMemberConfig,
  options: CloneServerOptions = {},
): Promise<CloneServer> {
  return track(
    await retryWhileInUse(() => CloneServer.start({ ...PAIR_TIMERS, ...config, ...options })),
  );
}

/** Starts a pair and waits until the primary is active and the backup passive and synced. */
export async function startPair(options: CloneServerOptions = {}): Promise<{
  primary: CloneServer;
  backup: CloneServer;
  config: { primary: PairMemberConfig; backup: PairMemberConfig };
}> {
  const config = await pairConfig();
  const primary = await startMember(config.primary, options);
  const backup = await startMember(config.backup, options);
  await waitFor(
    () => primary.mode === "active" && backup.mode === "passive" && backup.stats().synced,
    "the pair settling (primary active, backup passive and synced)",
  );
  return { primary, backup, config };
}

/** Options of {@link Updater.set}. */
export interface UpdateOptions {
  ttl?: string;
  uuid?: Buffer | null;
  properties?: Record<string, string>;
}

/**
 * A client's update publisher without the client: an XPUB connected to collectors that reports
 * each collector's subscription, so a test knows its updates will not be dropped by the PUB.
 */
export class Updater {
  readonly #socket: XPublisher;
  #subscriptions = 0;
  readonly #reading: Promise<void>;

  private constructor(socket: XPublisher) {
    this.#socket = socket;
    this.#reading = (async () => {
      try {
        for await (const _ of socket) this.#subscriptions += 1;
      } catch {
        // closed
      }
    })();
  }

  /** Connects to every collector and waits until each has subscribed. */
  static async connect(...collectors: string[]): Promise<Updater> {
    // Like CloneClient's publisher: nothing is queued for a collector while it is down, so a
    // restarted server never gets stale copies of updates sent during its absence.
    const socket = new XPublisher({ linger: 0, immediate: true });
    socket.verbosity = "allSubs";
    for (const collector of collectors) socket.connect(collector);
    const updater = track(new Updater(socket));
    await updater.ready(collectors.length);
    return updater;
  }

  /** Waits until `count` subscriptions arrived in all (reconnects subscribe again). */
  async ready(count: number, timeoutMs = WAIT_MS): Promise<void> {
    await waitFor(
      () => this.#subscriptions >= count,
      `${count} collector subscriptions`,
      timeoutMs,
    );
  }

  /** How many subscriptions arrived so far. */
  get subscriptions(): number {
    return this.#subscriptions;
  }

  /** Sends a KVSET (sequence 0, a fresh UUID unless given); returns the message sent. */
  async set(key: string, value: string, options: UpdateOptions = {}): Promise<KvMsg> {
    const init: KvMsgInit = {
      key,
      body: value,
      uuid: options.uuid === undefined ? "random" : options.uuid,
      properties: { ...options.properties, ...(options.ttl ? { ttl: options.ttl } : {}) },
    };
    const msg = new KvMsg(init);
    await this.#socket.send(msg.encode());
    return msg;
  }

  /** Sends a KVSET with an empty body: a delete. */
  delete(key: string, options: UpdateOptions = {}): Promise<KvMsg> {
    return this.set(key, "", options);
  }

  /** Sends raw frames. */
  async send(frames: readonly FrameLike[]): Promise<void> {
    await this.#socket.send(toFrames(frames));
  }

  async close(): Promise<void> {
    this.#socket.close();
    await this.#reading;
  }
}

/** A message and when it arrived (`performance.now()`). */
export interface Heard {
  msg: KvMsg;
  at: number;
}

/** A SUB on a server's publisher that keeps every message, decoded. */
export class Listener {
  readonly heard: Heard[] = [];
  readonly raw: Buffer[][] = [];
  readonly #socket: Subscriber;
  readonly #waiters = new Set<() => void>();
  #cursor = 0;

  private constructor(socket: Subscriber) {
    this.#socket = socket;
    void (async () => {
      try {
        for await (const frames of socket) {
          this.raw.push(frames);
          try {
            this.heard.push({ msg: KvMsg.decode(frames), at: performance.now() });
          } catch {
            // kept in raw only
          }
          for (const wake of this.#waiters) wake();
        }
      } catch {
        // closed
      }
    })();
  }

  /** Subscribes to `prefixes` (default everything) and waits for the first HUGZ. */
  static async connect(endpoint: string, ...prefixes: string[]): Promise<Listener> {
    const socket = new Subscriber({ linger: 0 });
    if (prefixes.length === 0) socket.subscribe();
    else socket.subscribe(...prefixes);
    socket.connect(endpoint);
    const listener = track(new Listener(socket));
    await listener.next((msg) => msg.key === HUGZ);
    return listener;
  }

  /** Updates heard so far (no HUGZ). */
  get updates(): KvMsg[] {
    return this.heard.map((h) => h.msg).filter((msg) => msg.key !== HUGZ);
  }

  /**
   * The next message after the last one returned that passes `match`; messages before it are
   * skipped.
   */
  async next(match: (msg: KvMsg) => boolean = () => true, timeoutMs = WAIT_MS): Promise<KvMsg> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      while (this.#cursor < this.heard.length) {
        const { msg } = this.heard[this.#cursor++] as Heard;
        if (match(msg)) return msg;
      }
      const left = deadline - performance.now();
      if (left <= 0)
        throw new TimeoutError(`no matching message within ${timeoutMs} ms`, timeoutMs);
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          this.#waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, left);
        this.#waiters.add(done);
      });
    }
  }

  /** The next update (not HUGZ) after the last message returned. */
  nextUpdate(timeoutMs = WAIT_MS): Promise<KvMsg> {
    return this.next((msg) => msg.key !== HUGZ, timeoutMs);
  }

  close(): void {
    if (!this.#socket.closed) this.#socket.close();
  }
}

/** A snapshot as a client gets it: the KVSYNC messages and the KTHXBAI. */
export interface Snapshot {
  entries: KvMsg[];
  end: KvMsg;
}

/** Reads a snapshot's messages from `dealer` up to KTHXBAI. */
export async function readSnapshot(dealer: Dealer, timeoutMs = WAIT_MS): Promise<Snapshot> {
  const entries: KvMsg[] = [];
  dealer.receiveTimeout = timeoutMs;
  for (;;) {
    let frames: Buffer[];
    try {
      frames = await dealer.receive();
    } catch (error) {
      if ((error as { code?: unknown }).code === "EAGAIN") {
        throw new TimeoutError(`snapshot incomplete after ${timeoutMs} ms`, timeoutMs);
      }
      throw error;
    }
    const msg = KvMsg.decode(frames);
    if (msg.key === KTHXBAI) return { entries, end: msg };
    entries.push(msg);
  }
}

/** A DEALER on a snapshot endpoint, closed after the test. */
export function snapshotDealer(endpoint: string): Dealer {
  const dealer = new Dealer({ linger: 0 });
  dealer.connect(endpoint);
  return track(dealer);
}

/** Asks `endpoint` for a snapshot of `subtree` on a fresh DEALER and reads it. */
export async function fetchSnapshot(
  endpoint: string,
  subtree = "",
  timeoutMs = WAIT_MS,
): Promise<Snapshot> {
  const dealer = snapshotDealer(endpoint);
  await dealer.send(encodeSnapshotRequest(subtree));
  return await readSnapshot(dealer, timeoutMs);
}

/** The server's map as sorted `key=value` lines. */
export function dump(entries: Iterable<[string, Buffer]>): string[] {
  return [...entries].map(([key, value]) => `${key}=${value.toString()}`).sort();
}

/** A snapshot's entries as sorted `key=value` lines. */
export function dumpSnapshot(snapshot: Snapshot): string[] {
  return dump(snapshot.entries.map((msg) => [msg.key, msg.body]));
}

/** A snapshot request as the fake server got it. */
export interface FakeRequest {
  id: Buffer;
  frames: Buffer[];
}

/**
 * A scripted stand-in for a Clone server, bound at a base port like a real one (ROUTER at P,
 * PUB at P+1, SUB at P+2): it publishes HUGZ with its sequence every `hugzMs` while `beating`,
 * answers each ICANHAZ? with its map while `answering` (else the test calls `answer`), and
 * publishes what the test asks. Updates arriving on its collector are kept in `collected`.
 */
export class FakeServer {
  readonly address: string;
  readonly port: number;
  readonly map = new Map<string, KvMsg>();
  sequence = 0;
  answering = true;
  beating = true;
  readonly requests: FakeRequest[] = [];
  readonly collected: KvMsg[] = [];
  readonly #router: Router;
  readonly #publisher: Publisher;
  readonly #collector: Subscriber;
  readonly #timer: NodeJS.Timeout;

  private constructor(
    port: number,
    router: Router,
    publisher: Publisher,
    collector: Subscriber,
    hugzMs: number,
  ) {
    this.port = port;
    this.address = `tcp://127.0.0.1:${port}`;
    this.#router = router;
    this.#publisher = publisher;
    this.#collector = collector;
    this.#timer = setInterval(() => {
      if (this.beating)
        void this.publishRaw(new KvMsg({ key: HUGZ, sequence: this.sequence }).encode());
    }, hugzMs);
    void this.#serveSnapshots();
    void (async () => {
      try {
        for await (const frames of collector) this.collected.push(KvMsg.decode(frames));
      } catch {
        // closed
      }
    })();
  }

  static async start(hugzMs = 50): Promise<FakeServer> {
    const port = await allocateBase();
    // Mandatory: a long snapshot waits for the client instead of being cut at the high-water mark.
    const router = new Router({ linger: 0, mandatory: true, sendTimeout: WAIT_MS });
    const publisher = new Publisher({ linger: 0 });
    const collector = new Subscriber({ linger: 0 });
    collector.subscribe();
    try {
      await router.bind(`tcp://127.0.0.1:${port}`);
      await publisher.bind(`tcp://127.0.0.1:${port + 1}`);
      await collector.bind(`tcp://127.0.0.1:${port + 2}`);
    } catch (error) {
      router.close();
      publisher.close();
      collector.close();
      throw error;
    }
    return track(new FakeServer(port, router, publisher, collector, hugzMs));
  }

  /** Stores and publishes an update with the next sequence (or the one given). */
  async publish(
    key: string,
    value: string,
    sequence = this.sequence + 1,
    uuid: Buffer | "random" = "random",
  ): Promise<KvMsg> {
    this.sequence = Math.max(this.sequence, sequence);
    const msg = new KvMsg({ key, sequence, uuid, body: value });
    if (msg.isDelete) this.map.delete(key);
    else this.map.set(key, msg);
    await this.publishRaw(msg.encode());
    return msg;
  }

  /** Sets a value in the map without publishing it (for the next snapshot). */
  put(key: string, value: string, sequence = this.sequence): void {
    this.map.set(key, new KvMsg({ key, sequence, uuid: "random", body: value }));
  }

  async publishRaw(frames: readonly FrameLike[]): Promise<void> {
    try {
      await this.#publisher.send(toFrames(frames));
    } catch {
      // closed
    }
  }

  /** Answers request `index` (default the latest): the map then KTHXBAI, or `replies` as given. */
  async answer(index = this.requests.length - 1, replies?: Buffer[][]): Promise<void> {
    const request = this.requests[index];
    if (!request) throw new Error(`no request ${index}`);
    const messages =
      replies ??
      [...this.map.values(), new KvMsg({ key: KTHXBAI, sequence: this.sequence })].map((m) =>
        m.encode(),
      );
    for (const message of messages) await this.#router.send([request.id, ...message]);
  }

  /** Waits for the `count`th snapshot request. */
  async request(count: number, timeoutMs = WAIT_MS): Promise<FakeRequest> {
    await waitFor(() => this.requests.length >= count, `snapshot request ${count}`, timeoutMs);
    return this.requests[count - 1] as FakeRequest;
  }

  async #serveSnapshots(): Promise<void> {
    try {
      for await (const [id, ...frames] of this.#router) {
        this.requests.push({ id: id as Buffer, frames });
        if (this.answering && frames[0]?.equals(B(ICANHAZ))) await this.answer().catch(() => {});
      }
    } catch {
      // closed
    }
  }

  close(): void {
    clearInterval(this.#timer);
    this.#router.close();
    this.#publisher.close();
    this.#collector.close();
  }
}

/**
 * Votes with ICANHAZ? on one DEALER, again every `everyMs` until a snapshot starts to arrive (a
 * passive server drops votes without a word while its peer is alive), then reads it. Every vote
 * before the answered one was dropped, so exactly one snapshot comes.
 */
export async function voteForSnapshot(
  endpoint: string,
  options: { subtree?: string; everyMs?: number; timeoutMs?: number } = {},
): Promise<Snapshot & { votes: number }> {
  const { subtree = "", everyMs = 100, timeoutMs = WAIT_MS } = options;
  const dealer = snapshotDealer(endpoint);
  const deadline = performance.now() + timeoutMs;
  for (let votes = 1; ; votes++) {
    if (performance.now() > deadline) {
      throw new TimeoutError(`no vote answered within ${timeoutMs} ms`, timeoutMs);
    }
    await dealer.send(encodeSnapshotRequest(subtree));
    dealer.receiveTimeout = everyMs;
    let first: Buffer[];
    try {
      first = await dealer.receive();
    } catch (error) {
      if ((error as { code?: unknown }).code === "EAGAIN") continue;
      throw error;
    }
    const msg = KvMsg.decode(first);
    if (msg.key === KTHXBAI) return { entries: [], end: msg, votes };
    const rest = await readSnapshot(dealer);
    return { entries: [msg, ...rest.entries], end: rest.end, votes };
  }
}
