/**
 * `CloneServer`: the Clone server of RFC 12/CHP, standalone (the Guide's model five) or as one
 * half of a Binary Star pair (model six), with the reference's bugs fixed (spec 3.12).
 * @module
 */
import { EventEmitter } from "node:events";
import {
  BinaryStar,
  type BinaryStarFatalError,
  type BinaryStarRole,
  type BinaryStarState,
  type BinaryStarVoter,
  DEFAULT_BACKUP_ENDPOINTS,
  DEFAULT_PRIMARY_ENDPOINTS,
} from "@zmq-patterns/binary-star";
import {
  type Clock,
  type Closeable,
  CloseStack,
  Counters,
  checkDuration,
  checkEndpoint,
  checkInteger,
  closeSocket,
  createLogger,
  InvalidArgumentError,
  identityKey,
  type Logger,
  ProtocolError,
  Receiver,
  SendQueue,
  sleep,
  systemClock,
  TimeoutError,
  type TimerHandle,
} from "@zmq-patterns/core";
import { Dealer, Publisher, Router, Subscriber } from "zeromq";
import { HUGZ, KTHXBAI, KvMsg, TTL_PROPERTY } from "./kvmsg.js";
import {
  type CloneServerEndpoints,
  DEFAULT_BACKUP_PORT,
  DEFAULT_FLUSH_INTERVAL_MS,
  DEFAULT_HUGZ_INTERVAL_MS,
  DEFAULT_PRIMARY_PORT,
  decodeSnapshotRequest,
  encodeSnapshotRequest,
  hugz,
  serverEndpoints,
  snapshotEnd,
} from "./protocol.js";

/** Options of {@link CloneServer.start}. */
export interface CloneServerOptions {
  /**
   * `"primary"` or `"backup"` to run as one half of a Binary Star pair; omitted for a standalone
   * server, which is active from the start.
   */
  role?: BinaryStarRole;
  /**
   * Base port P: snapshots on P, updates published on P+1, collected on P+2. Default 5556
   * (standalone and primary) or 5566 (backup), the Guide's ports.
   */
  port?: number;
  /** Host part of the bound endpoints. Default `tcp://*`. */
  host?: string;
  /** Overrides of single bound endpoints (otherwise from `host` and `port`). */
  endpoints?: Partial<CloneServerEndpoints>;
  /**
   * Pair only: the peer's snapshot and publisher endpoints. Default `tcp://localhost` with the
   * peer's base port (5566 for the primary, 5556 for the backup); configurable so the two can
   * run on different hosts (fix B14).
   */
  peer?: { snapshot?: string; publisher?: string };
  /** Pair only: this server's Binary Star state endpoint (PUB). Default `tcp://*:5003` / `:5004`. */
  localState?: string;
  /** Pair only: the peer's Binary Star state endpoint. Default `tcp://localhost:5004` / `:5003`. */
  remoteState?: string;
  /** Pair only: Binary Star heartbeat, identical on both servers. Default 1,000 ms. */
  heartbeatIntervalMs?: number;
  /** Pair only: Binary Star peer expiry. Default 2 x heartbeat. */
  peerExpiryMs?: number;
  /** Interval of HUGZ on the publisher. Default 1,000 ms. */
  hugzIntervalMs?: number;
  /** Interval of the TTL flush. Default 1,000 ms. */
  flushIntervalMs?: number;
  /**
   * Pair only: a client update the active server has not published after this long leaves the
   * passive's pending list, so a failover long after cannot replay it over newer values (fix
   * B3). Default 10,000 ms.
   */
  pendingMaxAgeMs?: number;
  /** Pair only: entries kept on the pending list at most (oldest dropped first). Default 10,000. */
  pendingMaxSize?: number;
  /**
   * Pair only: how long the passive waits for each message of the active's snapshot before it
   * gives up and asks again (the reference waits forever, fix B7). Default 5,000 ms.
   */
  snapshotTimeoutMs?: number;
  /** Monotonic clock for timers and expiry. Default: the system clock. */
  clock?: Clock;
  /** Where to log. Default: quiet unless `ZMQ_PATTERNS_DEBUG` enables `clone:server`. */
  logger?: Logger;
}

/** What the server is doing now. */
export type CloneServerMode = "active" | "passive" | "waiting";

/** Events of {@link CloneServer}. */
export interface CloneServerEvents {
  /** An update was sequenced and published (as active). */
  update: [
    { key: string; sequence: number; deleted: boolean; reason: "set" | "expired" | "replayed" },
  ];
  /** The server became active or passive (pair), or started active (standalone). */
  mode: [{ mode: CloneServerMode; state: BinaryStarState | "STANDALONE" }];
  /** The passive loaded the active's snapshot and mirrors it from now on. */
  synced: [{ keys: number; sequence: number }];
  /** A snapshot was sent. */
  snapshot: [{ to: string; subtree: string; keys: number }];
  /** A message was dropped, with the socket it came on and why. */
  dropped: [{ reason: string; socket: "snapshot" | "collector" | "peer"; from: string }];
  /** The Binary Star pair is broken (split brain); the server has stopped. */
  fatal: [BinaryStarFatalError];
}

/** A snapshot of the server's state and counters. */
export interface CloneServerStats {
  mode: CloneServerMode;
  state: BinaryStarState | "STANDALONE";
  sequence: number;
  keys: number;
  /** Pair: whether this server's map is a faithful copy (always true when active from the start). */
  synced: boolean;
  pending: number;
  updatesPublished: number;
  snapshotsServed: number;
  expired: number;
  dropped: Record<string, number>;
}

interface Stored {
  /** The message as published (relative ttl property). */
  msg: KvMsg;
  /** When the value expires on the server's clock; 0 for never. */
  expiresAt: number;
}

interface Pending {
  msg: KvMsg;
  at: number;
}

/** How a reply leaves the snapshot socket, standalone or through the Binary Star voter. */
type SnapshotWriter = Pick<BinaryStarVoter, "write">;

const MAX_BUFFERED_UPDATES = 100_000;
const MAX_SEEN = 100_000;
/** Snapshot requests waiting to be streamed at most; more are dropped (and counted). */
const MAX_QUEUED_SNAPSHOTS = 100;

/**
 * A Clone server (spec 3.4-3.8). Clients' updates arrive on the collector (a SUB at P+2, so one
 * client PUB reaches both servers of a pair); the active server stamps each with the next
 * sequence number, publishes it on P+1 and stores it; clients fetch a snapshot (optionally a
 * subtree) from the ROUTER at P. Values with a `ttl` property expire and are published as
 * deletes; HUGZ goes out every second so clients can tell a quiet server from a dead one.
 *
 * As a pair, the snapshot ROUTER is the Binary Star voter, so a client asking the passive server
 * for a snapshot votes for failover. The passive mirrors the active (snapshot, then its
 * publications) and keeps client updates the active has not yet published on a pending list,
 * which it publishes when it takes over.
 *
 * Fixes of the reference (spec 3.12): only the active expires values and numbers updates, and
 * expiry is an internal field (B1, B6, B11); the wire `ttl` is always relative seconds (B2);
 * only client updates are replayed at failover, never the active's own publications, and the
 * pending list is bounded and cleared of what a snapshot covers (B3, B4); messages are deep
 * copies (B5); the passive's snapshot fetch is asynchronous with a timeout and retry (B7); the
 * map always exists (B8); the peer subscriber is open only while passive (B9); the state change
 * runs before the vote is served, replayed entries are published, empty subtrees answered and
 * malformed requests dropped (B10); a passive keeps no update without UUID, which it could not
 * match (B12); peer endpoints are configurable (B14).
 *
 * @example
 * ```ts
 * await using server = await CloneServer.start(); // standalone on 5556/5557/5558
 * const primary = await CloneServer.start({ role: "primary" }); // a pair with 5566 and 5003/5004
 * ```
 */
export class CloneServer extends EventEmitter<CloneServerEvents> implements Closeable {
  /** `"primary"`, `"backup"`, or `undefined` for a standalone server. */
  readonly role: BinaryStarRole | undefined;
  readonly #endpoints: CloneServerEndpoints;
  /** The endpoints as bound (real ports), kept so they stay readable after close. */
  #bound: CloneServerEndpoints | undefined;
  readonly #peer: { snapshot: string; publisher: string } | undefined;
  readonly #options: {
    hugzIntervalMs: number;
    flushIntervalMs: number;
    pendingMaxAgeMs: number;
    pendingMaxSize: number;
    snapshotTimeoutMs: number;
  };
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #stack = new CloseStack();
  readonly #publisher: Publisher;
  readonly #collector: Subscriber;
  readonly #toPublisher: SendQueue;
  readonly #dropped = new Counters();
  readonly #counts = { updatesPublished: 0, snapshotsServed: 0, expired: 0 };
  #bstar: BinaryStar | undefined;
  #snapshotRouter: Router | undefined;
  #snapshotWriter: SnapshotWriter | undefined;
  #map = new Map<string, Stored>();
  #sequence = 0;
  #mode: CloneServerMode = "waiting";
  #synced = true;
  /** Client updates the active has not been seen to publish, oldest first, by UUID (kind a). */
  #pending = new Map<string, Pending>();
  /** UUIDs the active published before their client copy arrived here (kind b), with the time. */
  #seen = new Map<string, number>();
  #peerSubscriber: Subscriber | undefined;
  /** Peer publications received before the passive's snapshot completed. */
  #buffered: KvMsg[] = [];
  #fetch: AbortController | undefined;
  /** Snapshots are streamed one after another (see `#serveSnapshot`). */
  #snapshotChain: Promise<void> = Promise.resolve();
  #snapshotsQueued = 0;
  #hugzTimer: TimerHandle | undefined;
  #flushTimer: TimerHandle | undefined;

  private constructor(options: CloneServerOptions) {
    super();
    if (options.role !== undefined && options.role !== "primary" && options.role !== "backup") {
      throw new InvalidArgumentError(
        `role must be "primary", "backup" or omitted, got ${String(options.role)}`,
      );
    }
    this.role = options.role;
    const port = checkPort(
      "port",
      options.port ?? (this.role === "backup" ? DEFAULT_BACKUP_PORT : DEFAULT_PRIMARY_PORT),
    );
    const defaults = serverEndpoints(options.host ?? "tcp://*", port);
    this.#endpoints = {
      snapshot: checkEndpoint(
        "endpoints.snapshot",
        options.endpoints?.snapshot ?? defaults.snapshot,
      ),
      publisher: checkEndpoint(
        "endpoints.publisher",
        options.endpoints?.publisher ?? defaults.publisher,
      ),
      collector: checkEndpoint(
        "endpoints.collector",
        options.endpoints?.collector ?? defaults.collector,
      ),
    };
    if (this.role !== undefined) {
      const peerPort = this.role === "primary" ? DEFAULT_BACKUP_PORT : DEFAULT_PRIMARY_PORT;
      const peer = serverEndpoints("tcp://localhost", peerPort);
      this.#peer = {
        snapshot: checkEndpoint("peer.snapshot", options.peer?.snapshot ?? peer.snapshot),
        publisher: checkEndpoint("peer.publisher", options.peer?.publisher ?? peer.publisher),
      };
    } else if (
      options.peer !== undefined ||
      options.localState !== undefined ||
      options.remoteState !== undefined
    ) {
      throw new InvalidArgumentError(
        "peer, localState and remoteState need a role (primary or backup)",
      );
    }
    this.#options = {
      hugzIntervalMs: checkDuration(
        "hugzIntervalMs",
        options.hugzIntervalMs ?? DEFAULT_HUGZ_INTERVAL_MS,
      ),
      flushIntervalMs: checkDuration(
        "flushIntervalMs",
        options.flushIntervalMs ?? DEFAULT_FLUSH_INTERVAL_MS,
      ),
      pendingMaxAgeMs: checkDuration("pendingMaxAgeMs", options.pendingMaxAgeMs ?? 10_000),
      pendingMaxSize: checkInteger("pendingMaxSize", options.pendingMaxSize ?? 10_000),
      snapshotTimeoutMs: checkDuration("snapshotTimeoutMs", options.snapshotTimeoutMs ?? 5000),
    };
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger ?? createLogger("clone:server");
    this.#publisher = this.#stack.socket(new Publisher());
    this.#collector = this.#stack.socket(new Subscriber());
    this.#toPublisher = new SendQueue(this.#publisher, { capacity: 10_000 });
    this.#stack.defer(() => {
      this.#hugzTimer?.cancel();
      this.#flushTimer?.cancel();
      this.#fetch?.abort();
      this.#closePeerSubscriber();
      this.#toPublisher.close();
    });
  }

  /**
   * Binds the sockets and starts serving: a standalone server is active at once; a pair member
   * starts its Binary Star reactor and waits for its peer (or for a client vote).
   *
   * @throws {@link @zmq-patterns/core!InvalidArgumentError | InvalidArgumentError} for bad
   * options; the socket error when an endpoint cannot be bound.
   */
  static async start(options: CloneServerOptions = {}): Promise<CloneServer> {
    const server = new CloneServer(options);
    try {
      await server.#publisher.bind(server.#endpoints.publisher);
      server.#collector.subscribe();
      await server.#collector.bind(server.#endpoints.collector);
      if (server.role === undefined) {
        await server.#startStandalone();
      } else {
        await server.#startPair(options, server.role);
      }
      server.#bound = {
        snapshot:
          server.#bstar?.endpoints.voter ??
          server.#snapshotRouter?.lastEndpoint ??
          server.#endpoints.snapshot,
        publisher: server.#publisher.lastEndpoint ?? server.#endpoints.publisher,
        collector: server.#collector.lastEndpoint ?? server.#endpoints.collector,
      };
    } catch (error) {
      await server.close();
      throw error;
    }
    void server.#serveCollector();
    server.#scheduleHugz();
    return server;
  }

  /** What the server does now: `active`, `passive`, or `waiting` for its peer. */
  get mode(): CloneServerMode {
    return this.#mode;
  }

  /** The current sequence number: the last update published (active) or mirrored (passive). */
  get sequence(): number {
    return this.#sequence;
  }

  /**
   * The bound endpoints, with real ports. Still readable once closed (for example in a
   * `'fatal'` listener), when the sockets themselves can no longer be asked.
   */
  get endpoints(): CloneServerEndpoints {
    return { ...(this.#bound ?? this.#endpoints) };
  }

  /** The stored value of `key` (a copy), or `undefined`. */
  get(key: string): KvMsg | undefined {
    return this.#map.get(key)?.msg.clone();
  }

  /** Every stored key with its value, in no particular order. */
  *entries(): IterableIterator<[string, Buffer]> {
    for (const [key, stored] of this.#map) yield [key, stored.msg.body];
  }

  /** A snapshot of state and counters. */
  stats(): CloneServerStats {
    return {
      mode: this.#mode,
      state: this.#bstar?.state ?? "STANDALONE",
      sequence: this.#sequence,
      keys: this.#map.size,
      synced: this.#synced,
      pending: this.#pending.size,
      ...this.#counts,
      dropped: this.#dropped.snapshot(),
    };
  }

  /** Stops serving and closes every socket (linger 0). Idempotent. */
  async close(): Promise<void> {
    await this.#stack.close();
    await this.#bstar?.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // --- start-up --------------------------------------------------------------------------------

  async #startStandalone(): Promise<void> {
    // Not mandatory, no high-water mark: a mandatory ROUTER signals room to write while any
    // requester has room, so one requester with a full queue would stall the others' snapshots.
    // A snapshot is thus queued whole for its requester (freed if it disconnects).
    const router = this.#stack.socket(new Router({ sendHighWaterMark: 0 }));
    this.#snapshotRouter = router;
    await router.bind(this.#endpoints.snapshot);
    const queue = new SendQueue(router, { capacity: 1000 });
    this.#stack.defer(() => queue.close());
    this.#snapshotWriter = {
      write: async (frames) => {
        try {
          await queue.send(frames);
          return true;
        } catch {
          return false;
        }
      },
    };
    this.#becomeActive("STANDALONE");
    void this.#serveStandaloneSnapshots(router);
  }

  async #startPair(options: CloneServerOptions, role: BinaryStarRole): Promise<void> {
    const defaults = role === "primary" ? DEFAULT_PRIMARY_ENDPOINTS : DEFAULT_BACKUP_ENDPOINTS;
    const bstar = await BinaryStar.start({
      role,
      voter: this.#endpoints.snapshot,
      localState: options.localState ?? defaults.localState,
      remoteState: options.remoteState ?? defaults.remoteState,
      ...(options.heartbeatIntervalMs !== undefined
        ? { heartbeatIntervalMs: options.heartbeatIntervalMs }
        : {}),
      ...(options.peerExpiryMs !== undefined ? { peerExpiryMs: options.peerExpiryMs } : {}),
      clock: this.#clock,
      logger: this.#logger,
      // Only a well-formed ICANHAZ? is a vote: garbage must not make the passive take over.
      voterQueue: { mandatory: false, sendHighWaterMark: 0 },
      validateRequest: (message) => {
        decodeSnapshotRequest(message.slice(1));
      },
      handler: (message, voter) => this.#serveSnapshot(message, voter),
    });
    this.#bstar = bstar;
    this.#snapshotWriter = undefined;
    // The Binary Star callbacks run synchronously, before the vote that caused them is served.
    bstar.on("active", () => this.#becomeActive(bstar.state));
    bstar.on("passive", () => this.#becomePassive());
    bstar.on("dropped", ({ reason, side, from }) => {
      if (side === "voter") this.#drop(reason, "snapshot", from);
    });
    bstar.on("fatal", (error) => {
      this.#logger.error(error.message);
      void this.close();
      this.emit("fatal", error);
    });
    // The primary owns the state until told otherwise; the backup has none until it syncs.
    this.#synced = role === "primary";
  }

  // --- modes -----------------------------------------------------------------------------------

  #becomeActive(state: BinaryStarState | "STANDALONE"): void {
    this.#mode = "active";
    this.#fetch?.abort();
    this.#fetch = undefined;
    this.#closePeerSubscriber();
    this.#buffered = [];
    if (!this.#synced) {
      // B8: the reference crashes here. We serve what we have, and say so.
      this.#logger.warn("active without a synchronised copy of the state: it may be incomplete");
      this.#synced = true;
    }
    // Replay client updates the old active never published, oldest first (B3: only those).
    const now = this.#clock.now();
    const replay = [...this.#pending.values()].filter(
      (entry) => now - entry.at <= this.#options.pendingMaxAgeMs,
    );
    this.#pending.clear();
    this.#seen.clear();
    for (const { msg } of replay) this.#publishUpdate(msg, "replayed");
    if (replay.length > 0) this.#logger.info("replayed pending updates", { count: replay.length });
    this.#scheduleFlush();
    this.#logger.info("active", { state, sequence: this.#sequence, keys: this.#map.size });
    this.emit("mode", { mode: "active", state });
  }

  #becomePassive(): void {
    this.#mode = "passive";
    this.#flushTimer?.cancel();
    this.#flushTimer = undefined;
    // The active's state replaces ours; it is fetched once the subscription is known to work.
    this.#map = new Map();
    this.#synced = false;
    this.#buffered = [];
    this.#openPeerSubscriber();
    this.#logger.info("passive", { peer: this.#peer?.publisher });
    this.emit("mode", { mode: "passive", state: "PASSIVE" });
  }

  // --- the active's work ---------------------------------------------------------------------------

  /** Stamps, publishes (relative ttl) and stores one update (spec 3.6, 3.7). */
  #publishUpdate(msg: KvMsg, reason: "set" | "expired" | "replayed"): void {
    msg.sequence = ++this.#sequence;
    this.#send(msg.encode());
    this.#store(msg);
    this.#counts.updatesPublished += 1;
    this.emit("update", { key: msg.key, sequence: msg.sequence, deleted: msg.isDelete, reason });
  }

  /** Stores an update as published: the expiry is kept aside, the message keeps its relative ttl. */
  #store(msg: KvMsg): void {
    if (msg.isDelete) {
      this.#map.delete(msg.key);
      return;
    }
    const ttl = ttlSeconds(msg);
    this.#map.set(msg.key, {
      msg,
      expiresAt: ttl > 0 ? this.#clock.now() + ttl * 1000 : 0,
    });
  }

  #scheduleFlush(): void {
    this.#flushTimer?.cancel();
    this.#flushTimer = this.#clock.setTimeout(() => {
      if (this.#stack.closed || this.#mode !== "active") return;
      this.#flushExpired();
      this.#scheduleFlush();
    }, this.#options.flushIntervalMs);
  }

  /** Deletes expired values, publishing each delete with a new sequence (spec 3.7; B11). */
  #flushExpired(): void {
    const now = this.#clock.now();
    const expired: Stored[] = [];
    for (const stored of this.#map.values()) {
      if (stored.expiresAt > 0 && stored.expiresAt <= now) expired.push(stored);
    }
    for (const { msg } of expired) {
      this.#counts.expired += 1;
      this.#publishUpdate(new KvMsg({ key: msg.key, uuid: msg.uuid, body: "" }), "expired");
    }
  }

  #scheduleHugz(): void {
    this.#hugzTimer = this.#clock.setTimeout(() => {
      if (this.#stack.closed) return;
      this.#send(hugz(this.#sequence).encode());
      this.#scheduleHugz();
    }, this.#options.hugzIntervalMs);
  }

  #send(frames: Buffer[]): void {
    if (this.#toPublisher.closed) return;
    if (!this.#toPublisher.trySend(frames)) this.#drop("publisher queue full", "collector", "");
  }

  // --- collector ---------------------------------------------------------------------------------

  async #serveCollector(): Promise<void> {
    for (;;) {
      let frames: Buffer[];
      try {
        frames = await this.#collector.receive();
      } catch {
        return; // closed
      }
      let msg: KvMsg;
      try {
        msg = decodeClientUpdate(frames);
      } catch (error) {
        this.#drop(reasonOf(error), "collector", "");
        continue;
      }
      if (this.#mode === "active") {
        this.#publishUpdate(msg, "set");
        continue;
      }
      // Passive or still waiting: the active publishes this; remember it until we see that.
      const uuid = msg.uuid?.toString("hex");
      if (uuid === undefined) {
        // B12: nothing tells whether the active published it, so a replay at failover could
        // apply it twice, or over a newer value. Only the active applies such updates.
        this.#drop("no uuid, not kept for failover", "collector", "");
        continue;
      }
      if (this.#seen.delete(uuid)) continue; // already published and mirrored
      this.#addPending(uuid, msg);
    }
  }

  #addPending(key: string, msg: KvMsg): void {
    const now = this.#clock.now();
    // Bounded by age and size (B3): old entries are updates the active will never publish.
    for (const [uuid, entry] of this.#pending) {
      if (now - entry.at <= this.#options.pendingMaxAgeMs) break;
      this.#pending.delete(uuid);
      this.#dropped.increment("pending update too old");
    }
    if (this.#pending.size >= this.#options.pendingMaxSize) {
      const oldest = this.#pending.keys().next().value as string;
      this.#pending.delete(oldest);
      this.#dropped.increment("pending list full");
    }
    this.#pending.set(key, { msg, at: now });
  }

  // --- snapshots -----------------------------------------------------------------------------------

  async #serveStandaloneSnapshots(router: Router): Promise<void> {
    for (;;) {
      let message: Buffer[];
      try {
        message = await router.receive();
      } catch {
        return; // closed
      }
      this.#serveSnapshot(message, this.#snapshotWriter as SnapshotWriter);
    }
  }

  /**
   * Answers `[id]["ICANHAZ?"][subtree]` with every stored entry under the subtree, then
   * KTHXBAI with the current sequence (spec 3.5). The entries are collected at once, so no
   * update falls between them, then streamed with backpressure.
   */
  #serveSnapshot(message: Buffer[], writer: SnapshotWriter): void {
    const identity = message[0] ?? Buffer.alloc(0);
    const from = identityKey(identity);
    let subtree: Buffer;
    try {
      subtree = decodeSnapshotRequest(message.slice(1));
    } catch (error) {
      this.#drop(reasonOf(error), "snapshot", from);
      return;
    }
    if (this.#snapshotsQueued >= MAX_QUEUED_SNAPSHOTS) {
      this.#drop("too many snapshot requests", "snapshot", from);
      return;
    }
    const now = this.#clock.now();
    const replies: Buffer[][] = [];
    for (const [key, stored] of this.#map) {
      if (
        subtree.byteLength > 0 &&
        !Buffer.from(key, "utf8").subarray(0, subtree.byteLength).equals(subtree)
      ) {
        continue;
      }
      replies.push([identity, ...withRemainingTtl(stored, now).encode()]);
    }
    const keys = replies.length;
    replies.push([identity, ...snapshotEnd(this.#sequence, subtree).encode()]);
    this.#counts.snapshotsServed += 1;
    this.emit("snapshot", { to: from, subtree: subtree.toString("utf8"), keys });
    // One snapshot is queued at a time, whole, so snapshots never interleave.
    this.#snapshotsQueued += 1;
    this.#snapshotChain = this.#snapshotChain.then(async () => {
      try {
        for (const reply of replies) {
          if (this.#stack.closed) return;
          if (!(await writer.write(reply))) {
            this.#drop("snapshot undeliverable", "snapshot", from);
            return;
          }
        }
      } finally {
        this.#snapshotsQueued -= 1;
      }
    });
  }

  // --- the passive's mirror ----------------------------------------------------------------------

  #openPeerSubscriber(): void {
    this.#closePeerSubscriber();
    const subscriber = new Subscriber();
    subscriber.subscribe();
    subscriber.connect((this.#peer as { publisher: string }).publisher);
    this.#peerSubscriber = subscriber;
    void this.#servePeer(subscriber);
  }

  #closePeerSubscriber(): void {
    if (this.#peerSubscriber) closeSocket(this.#peerSubscriber);
    this.#peerSubscriber = undefined;
  }

  async #servePeer(subscriber: Subscriber): Promise<void> {
    for (;;) {
      let frames: Buffer[];
      try {
        frames = await subscriber.receive();
      } catch {
        return; // closed: we became active, or the server closed
      }
      if (this.#mode !== "passive" || subscriber !== this.#peerSubscriber) return;
      let msg: KvMsg;
      try {
        msg = KvMsg.decode(frames);
      } catch (error) {
        this.#drop(reasonOf(error), "peer", "");
        continue;
      }
      // The subscription works (B15): now the snapshot cannot miss what follows it.
      if (!this.#synced && this.#fetch === undefined) void this.#fetchSnapshot();
      if (msg.key === HUGZ) continue;
      const uuid = msg.uuid?.toString("hex");
      if (uuid !== undefined && !this.#pending.delete(uuid)) this.#remember(uuid);
      if (!this.#synced) {
        if (this.#buffered.length >= MAX_BUFFERED_UPDATES) {
          this.#buffered = [];
          this.#fetch?.abort(); // too far behind: start over
          this.#dropped.increment("mirror buffer full");
        }
        this.#buffered.push(msg);
        continue;
      }
      this.#mirror(msg);
    }
  }

  /** Applies one of the active's publications, in order; never numbers anything itself (B1). */
  #mirror(msg: KvMsg): void {
    if (msg.sequence <= this.#sequence) return;
    this.#sequence = msg.sequence;
    this.#store(msg);
  }

  #remember(uuid: string): void {
    const now = this.#clock.now();
    for (const [old, at] of this.#seen) {
      if (now - at <= this.#options.pendingMaxAgeMs && this.#seen.size < MAX_SEEN) break;
      this.#seen.delete(old);
    }
    this.#seen.set(uuid, now);
  }

  /** Fetches the active's whole state on a fresh DEALER, with a timeout per message (B7). */
  async #fetchSnapshot(): Promise<void> {
    const controller = new AbortController();
    this.#fetch = controller;
    const peer = (this.#peer as { snapshot: string }).snapshot;
    while (!controller.signal.aborted && this.#mode === "passive") {
      const dealer = new Dealer({ linger: 0 });
      const receiver = new Receiver(dealer, { capacity: 1000 });
      const map = new Map<string, Stored>();
      const requestedAt = this.#clock.now();
      try {
        dealer.connect(peer);
        await dealer.send(encodeSnapshotRequest(""));
        for (;;) {
          const msg = KvMsg.decode(
            await receiver.receive({
              timeoutMs: this.#options.snapshotTimeoutMs,
              signal: controller.signal,
            }),
          );
          if (msg.key === KTHXBAI) {
            this.#installSnapshot(map, msg.sequence, requestedAt);
            return;
          }
          const ttl = ttlSeconds(msg);
          map.set(msg.key, { msg, expiresAt: ttl > 0 ? this.#clock.now() + ttl * 1000 : 0 });
        }
      } catch (error) {
        if (controller.signal.aborted) return;
        const why = error instanceof TimeoutError ? "timed out" : reasonOf(error);
        this.#logger.warn("snapshot from the active failed, asking again", { peer, reason: why });
        this.#dropped.increment(`snapshot fetch ${why}`);
        if (!(error instanceof TimeoutError)) {
          // A malformed answer would come again at once: pause before asking again.
          await sleep(this.#options.hugzIntervalMs, {
            signal: controller.signal,
            clock: this.#clock,
          }).catch(() => {});
        }
      } finally {
        receiver.close();
        closeSocket(dealer);
        if (this.#fetch === controller && (controller.signal.aborted || this.#synced))
          this.#fetch = undefined;
      }
    }
  }

  /**
   * Installs the active's snapshot, requested at `requestedAt`, then applies the publications
   * that arrived meanwhile.
   */
  #installSnapshot(map: Map<string, Stored>, sequence: number, requestedAt: number): void {
    this.#map = map;
    this.#sequence = sequence;
    this.#synced = true;
    this.#fetch = undefined;
    // B4: pending client updates the snapshot already holds were published before we listened.
    for (const stored of map.values()) {
      const uuid = stored.msg.uuid?.toString("hex");
      if (uuid !== undefined) this.#pending.delete(uuid);
    }
    // So were those collected before we asked, even when a newer value of their key replaced
    // them in the snapshot (no uuid left to match): the active, alive to answer, had them too.
    for (const [uuid, entry] of this.#pending) {
      if (entry.at <= requestedAt) this.#pending.delete(uuid);
    }
    const buffered = this.#buffered;
    this.#buffered = [];
    for (const msg of buffered) this.#mirror(msg);
    this.#logger.info("synchronised with the active", { keys: map.size, sequence: this.#sequence });
    this.emit("synced", { keys: map.size, sequence: this.#sequence });
  }

  #drop(reason: string, socket: "snapshot" | "collector" | "peer", from: string): void {
    this.#dropped.increment(reason);
    this.#logger.warn("dropped message", { reason, socket, from });
    this.emit("dropped", { reason, socket, from });
  }
}

/**
 * Decodes a client update (KVSET, spec 3.6): a five-frame kvmsg with a key that is neither
 * `HUGZ` nor `KTHXBAI` and a `ttl` property, if any, of zero or more seconds.
 *
 * @throws {@link @zmq-patterns/core!ProtocolError | ProtocolError} as {@link KvMsg.decode}, or
 * `empty key`, `reserved key`, `invalid ttl`.
 */
export function decodeClientUpdate(frames: readonly Buffer[]): KvMsg {
  const msg = KvMsg.decode(frames);
  if (msg.key === "") throw new ProtocolError("empty key");
  if (msg.key === HUGZ || msg.key === KTHXBAI) throw new ProtocolError("reserved key");
  ttlSeconds(msg);
  return msg;
}

/**
 * The `ttl` property in seconds; 0 when absent (B11). Fractions are accepted (the Guide's
 * Python servers send them).
 *
 * @throws {@link @zmq-patterns/core!ProtocolError | ProtocolError} `invalid ttl`.
 */
export function ttlSeconds(msg: KvMsg): number {
  const text = msg.getProperty(TTL_PROPERTY);
  if (text === undefined || text === "") return 0;
  if (!/^\d+(\.\d+)?$/.test(text)) throw new ProtocolError("invalid ttl");
  const seconds = Number(text);
  if (!Number.isFinite(seconds)) throw new ProtocolError("invalid ttl");
  return seconds;
}

/** A copy of a stored entry whose `ttl` says the seconds still left, rounded up (B2). */
function withRemainingTtl(stored: Stored, now: number): KvMsg {
  if (stored.expiresAt === 0) return stored.msg;
  const copy = stored.msg.clone();
  copy.setProperty(TTL_PROPERTY, String(Math.max(1, Math.ceil((stored.expiresAt - now) / 1000))));
  return copy;
}

function checkPort(name: string, port: number): number {
  if (!Number.isInteger(port) || port < 1 || port > 65533) {
    throw new InvalidArgumentError(
      `${name} must be an integer from 1 to 65533, got ${String(port)}`,
    );
  }
  return port;
}

function reasonOf(error: unknown): string {
  return error instanceof ProtocolError ? error.reason : "undecodable message";
}
