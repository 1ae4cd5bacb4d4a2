/**
 * `CloneClient`: a local, always up-to-date copy of a Clone key-value store (spec 3.9), with
 * failover between the servers of a pair.
 * @module
 */
import { EventEmitter } from "node:events";
import {
  type Clock,
  type Closeable,
  ClosedError,
  Counters,
  checkDuration,
  checkEndpoint,
  closeSocket,
  createLogger,
  type FrameLike,
  InvalidArgumentError,
  type Logger,
  ProtocolError,
  QueueFullError,
  SendQueue,
  systemClock,
  TimeoutError,
  type TimerHandle,
  toFrame,
} from "@zmq-patterns/core";
import { Dealer, Publisher, Subscriber } from "zeromq";
import { HUGZ, KTHXBAI, KvMsg, TTL_PROPERTY } from "./kvmsg.js";
import {
  type CloneServerEndpoints,
  clientEndpoints,
  DEFAULT_BACKUP_PORT,
  DEFAULT_PRIMARY_PORT,
  DEFAULT_SERVER_TTL_MS,
  encodeSnapshotRequest,
} from "./protocol.js";

/** The Guide's pair, as clonecli6 connects to it. */
export const DEFAULT_SERVERS: readonly string[] = Object.freeze([
  `tcp://localhost:${DEFAULT_PRIMARY_PORT}`,
  `tcp://localhost:${DEFAULT_BACKUP_PORT}`,
]);

/** Options of {@link CloneClient}. */
export interface CloneClientOptions {
  /**
   * The servers, each as `tcp://host:P` with its base port (snapshot P, updates P+1, collector
   * P+2), tried in order. One for a standalone server, two for a pair. Default the Guide's pair,
   * `tcp://localhost:5556` and `tcp://localhost:5566`.
   */
  servers?: readonly string[];
  /**
   * Only keys starting with this prefix are fetched and followed (by convention `/a/b/`).
   * Default `""`: everything.
   */
  subtree?: string;
  /**
   * Silence from the current server before failing over: no HUGZ or update while following it,
   * no snapshot message while waiting for one. Default 5,000 ms.
   */
  serverTtlMs?: number;
  /**
   * Longest wait, after connecting, for the first message from a server's publisher (a HUGZ
   * arrives every second) before asking for the snapshot anyway (fix B15). Default 2,000 ms.
   */
  subscribeWaitMs?: number;
  /** How long `set` and `delete` wait for the server to confirm. Default 10,000 ms. */
  confirmTimeoutMs?: number;
  /**
   * What to do when updates are found missing (only detectable without a subtree): `"resync"`
   * (default) fetches a fresh snapshot; `"ignore"` carries on as the reference does.
   */
  onGap?: "resync" | "ignore";
  /** Monotonic clock. Default: the system clock. */
  clock?: Clock;
  /** Where to log. Default: quiet unless `ZMQ_PATTERNS_DEBUG` enables `clone:client`. */
  logger?: Logger;
}

/** Options of {@link CloneClient.set}. */
export interface CloneSetOptions {
  /**
   * Lifetime of the value; the server deletes it after this long. Sent as whole seconds
   * (rounded up), the `ttl` property of 12/CHP. Default: no expiry.
   */
  ttlMs?: number;
}

/** A change to the local copy of the map. */
export interface CloneChange {
  key: string;
  /** The new value, or `undefined` when the key was deleted. */
  value: Buffer | undefined;
  /** The server's sequence number of the change (a snapshot's for changes a snapshot made). */
  sequence: number;
}

/** The client's state (spec 3.9.3). */
export type CloneClientState = "initial" | "syncing" | "active";

/** Events of {@link CloneClient}. */
export interface CloneClientEvents {
  /** A key changed in the local copy. */
  change: [CloneChange];
  /** A snapshot was loaded from `server`; the map now mirrors that server. */
  synced: [{ server: string; keys: number; sequence: number }];
  /**
   * The current server was silent for the server TTL (`reason` says whether the client was
   * following it or waiting for its snapshot): the client moves to `to`.
   */
  failover: [{ from: string; to: string; reason: string }];
  /**
   * Updates were missed (a hole in the sequence): `expected` is the sequence the client waited
   * for, `got` that of the update or HUGZ that revealed the hole. A resync follows unless `onGap`
   * is `"ignore"`.
   */
  gap: [{ expected: number; got: number }];
  /** A message from a server was dropped. */
  dropped: [{ reason: string; server: string }];
}

interface Confirmation {
  resolve(): void;
  reject(error: unknown): void;
  timer: TimerHandle;
}

interface Connection {
  readonly server: CloneServerEndpoints;
  readonly address: string;
  readonly subscriber: Subscriber;
  readonly dealer: Dealer;
  /** Publications read before the snapshot ended, applied after it. */
  buffered: KvMsg[];
  snapshot: Map<string, KvMsg>;
  heard: boolean;
}

const MAX_BUFFERED = 100_000;
const MAX_CHANGE_BACKLOG = 10_000;

/**
 * A client of a Clone server or server pair: it fetches a snapshot of the map (or of a subtree),
 * then applies the server's updates in sequence order, so its local copy converges with the
 * server's. Updates go out on a PUB connected to every server's collector, so both servers of a
 * pair see them.
 *
 * It watches the current server: while following it, every message (a HUGZ arrives each
 * second) proves it alive; while waiting for a snapshot, only the snapshot does, since a passive
 * server publishes HUGZ but ignores the request while its peer is alive. After `serverTtlMs` of
 * silence the client moves to the next server and asks it for a snapshot, which is also its vote
 * for that server to take over.
 *
 * Fixes of the reference agent (spec 3.12): every sync builds a fresh map and then reports what
 * changed, so keys deleted during a failover disappear (C1); every sync uses a fresh DEALER, so a
 * late snapshot can never be installed (C2) and no request cap can stall (C3); HUGZ is never
 * stored (C4); only the subtree is subscribed (C5); writes are not applied locally but confirmed
 * by the server's publication (C6); `get` returns `undefined` for absent keys (C7); changes are
 * events and an async iterator (C8); snapshot waits time out (C9). The snapshot is requested only
 * once the subscription is known to work, so no update falls between the two (B15).
 *
 * @example
 * ```ts
 * const map = new CloneClient({ subtree: "/config/" });
 * await map.synced();
 * map.on("change", ({ key, value }) => console.log(key, value?.toString()));
 * await map.set("/config/answer", "42", { ttlMs: 30_000 });
 * console.log(map.getText("/config/answer"));
 * ```
 */
export class CloneClient extends EventEmitter<CloneClientEvents> implements Closeable {
  /** The servers, as given. */
  readonly servers: readonly string[];
  /** The subtree this client follows. */
  readonly subtree: string;
  readonly #endpoints: CloneServerEndpoints[];
  readonly #subtreeBytes: Buffer;
  readonly #options: {
    serverTtlMs: number;
    subscribeWaitMs: number;
    confirmTimeoutMs: number;
    onGap: "resync" | "ignore";
  };
  readonly #clock: Clock;
  readonly #logger: Logger;
  /** Updates to every server's collector. */
  readonly #publisher: Publisher;
  readonly #toPublisher: SendQueue;
  readonly #dropped = new Counters();
  readonly #confirmations = new Map<string, Confirmation>();
  readonly #iterators = new Set<ChangeQueue>();
  #map = new Map<string, KvMsg>();
  #sequence = 0;
  #state: CloneClientState = "initial";
  #index = 0;
  #connection: Connection | undefined;
  #expiry: TimerHandle | undefined;
  #waitTimer: TimerHandle | undefined;
  #everSynced = false;
  #syncWaiters: Array<{ resolve(): void; reject(error: unknown): void }> = [];
  #writesWaiting: Array<() => void> = [];
  #closed = false;

  constructor(options: CloneClientOptions = {}) {
    super();
    const servers = options.servers ?? DEFAULT_SERVERS;
    if (!Array.isArray(servers) || servers.length === 0) {
      throw new InvalidArgumentError("servers must be a non-empty array of tcp://host:port");
    }
    this.servers = Object.freeze([...servers]);
    this.#endpoints = servers.map((address, i) => {
      checkEndpoint(`servers[${i}]`, address);
      try {
        return clientEndpoints(address);
      } catch (error) {
        throw new InvalidArgumentError((error as Error).message);
      }
    });
    this.subtree = options.subtree ?? "";
    if (typeof this.subtree !== "string" || Buffer.byteLength(this.subtree) > 255) {
      throw new InvalidArgumentError("subtree must be a string of at most 255 bytes");
    }
    this.#subtreeBytes = Buffer.from(this.subtree, "utf8");
    this.#options = {
      serverTtlMs: checkDuration("serverTtlMs", options.serverTtlMs ?? DEFAULT_SERVER_TTL_MS),
      subscribeWaitMs: checkDuration("subscribeWaitMs", options.subscribeWaitMs ?? 2000),
      confirmTimeoutMs: checkDuration("confirmTimeoutMs", options.confirmTimeoutMs ?? 10_000),
      onGap: options.onGap ?? "resync",
    };
    if (this.#options.onGap !== "resync" && this.#options.onGap !== "ignore") {
      throw new InvalidArgumentError(
        `onGap must be "resync" or "ignore", got ${String(options.onGap)}`,
      );
    }
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger ?? createLogger("clone:client");
    // Sockets only once the options are known good, so a bad option leaves none behind.
    // `immediate`: nothing is queued for a server while its connection is down, so a server that
    // restarts is not fed stale copies of updates its peer handled meanwhile (it would take them
    // for new ones and could replay them over newer values at the next failover).
    this.#publisher = new Publisher({ linger: 0, immediate: true });
    this.#toPublisher = new SendQueue(this.#publisher, { capacity: 10_000 });
    for (const server of this.#endpoints) this.#publisher.connect(server.collector);
    this.#connect();
  }

  /** `initial`, `syncing` (fetching a snapshot) or `active` (following updates). */
  get state(): CloneClientState {
    return this.#state;
  }

  /** The server currently followed (or being synced from). */
  get server(): string {
    return this.servers[this.#index] as string;
  }

  /** The sequence number of the last update applied. */
  get sequence(): number {
    return this.#sequence;
  }

  /** Number of keys in the local copy. */
  get size(): number {
    return this.#map.size;
  }

  /**
   * Resolves once the client has loaded its first snapshot (at once if it has).
   *
   * @throws {@link @zmq-patterns/core!ClosedError | ClosedError} when closed first.
   */
  synced(): Promise<void> {
    if (this.#everSynced) return Promise.resolve();
    if (this.#closed) return Promise.reject(new ClosedError("client closed"));
    return new Promise((resolve, reject) => this.#syncWaiters.push({ resolve, reject }));
  }

  /** The value of `key`, or `undefined` when absent (never an empty value: empty means deleted). */
  get(key: string): Buffer | undefined {
    return this.#map.get(key)?.body;
  }

  /** The value of `key` as UTF-8 text, or `undefined`. */
  getText(key: string): string | undefined {
    return this.get(key)?.toString("utf8");
  }

  /**
   * The value of `key` parsed as JSON, or `undefined` when absent.
   *
   * @throws SyntaxError when the value is not JSON.
   */
  getJson<T = unknown>(key: string): T | undefined {
    const text = this.getText(key);
    return text === undefined ? undefined : (JSON.parse(text) as T);
  }

  /** True when `key` has a value. */
  has(key: string): boolean {
    return this.#map.has(key);
  }

  /** Every key with its value. */
  *entries(): IterableIterator<[string, Buffer]> {
    for (const [key, msg] of this.#map) yield [key, msg.body];
  }

  /** Every key. */
  keys(): IterableIterator<string> {
    return this.#map.keys();
  }

  /**
   * Sets `key` to `value` on the servers (empty value: see {@link CloneClient.delete}). The
   * local copy changes when the server publishes the update, and the promise resolves then;
   * for a key outside this client's subtree, which it never sees published, once it is sent.
   * Writes wait for the first snapshot, when the connections to the servers are up.
   *
   * @throws {@link @zmq-patterns/core!TimeoutError | TimeoutError} when the server did not
   * confirm within `confirmTimeoutMs` (the update may still arrive);
   * {@link @zmq-patterns/core!InvalidArgumentError | InvalidArgumentError} for a bad key or
   * ttl; {@link @zmq-patterns/core!ClosedError | ClosedError} when closed.
   */
  set(key: string, value: FrameLike | object, options: CloneSetOptions = {}): Promise<void> {
    let msg: KvMsg;
    try {
      const body =
        typeof value === "string" || value instanceof Uint8Array
          ? toFrame(value)
          : Buffer.from(JSON.stringify(value), "utf8");
      msg = this.#update(key, body, options.ttlMs);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#write(msg);
  }

  /** Deletes `key` on the servers; resolves as {@link CloneClient.set} does. */
  delete(key: string): Promise<void> {
    let msg: KvMsg;
    try {
      msg = this.#update(key, Buffer.alloc(0), undefined);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#write(msg);
  }

  /**
   * The changes from now on, as an async iterator. A consumer that falls more than 10,000
   * changes behind gets a `QueueFullError` instead of unbounded memory; breaking out of the
   * loop stops the iterator.
   */
  changes(): AsyncIterableIterator<CloneChange> {
    const queue = new ChangeQueue(() => this.#iterators.delete(queue));
    if (this.#closed) queue.end();
    else this.#iterators.add(queue);
    return queue;
  }

  /** A snapshot of counters. */
  stats(): {
    state: CloneClientState;
    server: string;
    sequence: number;
    keys: number;
    dropped: Record<string, number>;
  } {
    return {
      state: this.#state,
      server: this.server,
      sequence: this.#sequence,
      keys: this.#map.size,
      dropped: this.#dropped.snapshot(),
    };
  }

  /** Closes every socket (linger 0); pending writes reject with `ClosedError`. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#expiry?.cancel();
    this.#waitTimer?.cancel();
    this.#disconnect();
    this.#toPublisher.close();
    closeSocket(this.#publisher);
    const closed = new ClosedError("client closed");
    for (const [uuid, confirmation] of this.#confirmations) {
      confirmation.timer.cancel();
      this.#confirmations.delete(uuid);
      confirmation.reject(closed);
    }
    for (const waiter of this.#syncWaiters.splice(0)) waiter.reject(closed);
    for (const wake of this.#writesWaiting.splice(0)) wake();
    for (const queue of this.#iterators) queue.end();
    this.#iterators.clear();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // --- writes --------------------------------------------------------------------------------------

  #update(key: string, body: Buffer, ttlMs: number | undefined): KvMsg {
    if (typeof key !== "string" || key === "" || key === HUGZ || key === KTHXBAI) {
      throw new InvalidArgumentError(`invalid key ${JSON.stringify(key)}`);
    }
    const msg = new KvMsg({ key, uuid: "random", body });
    if (ttlMs !== undefined && ttlMs !== 0) {
      checkDuration("ttlMs", ttlMs);
      msg.setProperty(TTL_PROPERTY, String(Math.ceil(ttlMs / 1000)));
    }
    return msg;
  }

  async #write(msg: KvMsg): Promise<void> {
    if (this.#closed) throw new ClosedError("client closed");
    if (!this.#everSynced) await new Promise<void>((resolve) => this.#writesWaiting.push(resolve));
    if (this.#closed) throw new ClosedError("client closed");
    const inSubtree = Buffer.from(msg.key, "utf8")
      .subarray(0, this.#subtreeBytes.byteLength)
      .equals(this.#subtreeBytes);
    const uuid = (msg.uuid as Buffer).toString("hex");
    const confirmed = inSubtree
      ? new Promise<void>((resolve, reject) => {
          const timer = this.#clock.setTimeout(() => {
            this.#confirmations.delete(uuid);
            reject(
              new TimeoutError(
                `update of ${msg.key} not confirmed by the server`,
                this.#options.confirmTimeoutMs,
              ),
            );
          }, this.#options.confirmTimeoutMs);
          this.#confirmations.set(uuid, { resolve, reject, timer });
        })
      : undefined;
    // Settled below in any case; until then a rejection (close, timeout) must not go unhandled.
    confirmed?.catch(() => {});
    // PUB never blocks: with no collector connected the update is gone, and the confirmation
    // times out. Sends are queued, since a socket takes one send at a time.
    try {
      await this.#toPublisher.send(msg.encode());
    } catch (error) {
      if (this.#closed) throw new ClosedError("client closed");
      throw error;
    }
    await confirmed;
  }

  #confirm(uuid: Buffer | null): void {
    if (uuid === null || this.#confirmations.size === 0) return;
    const key = uuid.toString("hex");
    const confirmation = this.#confirmations.get(key);
    if (!confirmation) return;
    this.#confirmations.delete(key);
    confirmation.timer.cancel();
    confirmation.resolve();
  }

  // --- the agent -------------------------------------------------------------------------------------

  /** INITIAL: a fresh subscriber and snapshot socket on the current server (C2, B15). */
  #connect(): void {
    if (this.#closed) return;
    this.#state = "initial";
    const address = this.server;
    const server = this.#endpoints[this.#index] as CloneServerEndpoints;
    const subscriber = new Subscriber({ linger: 0 });
    // The subtree, and HUGZ so a quiet subtree does not look like a dead server; never "" as
    // well, which would defeat the filter (C5).
    subscriber.subscribe(this.subtree);
    if (this.subtree !== "" && !HUGZ.startsWith(this.subtree)) subscriber.subscribe(HUGZ);
    subscriber.connect(server.publisher);
    const dealer = new Dealer({ linger: 0 });
    dealer.connect(server.snapshot);
    const connection: Connection = {
      server,
      address,
      subscriber,
      dealer,
      buffered: [],
      snapshot: new Map(),
      heard: false,
    };
    this.#connection = connection;
    this.#armExpiry();
    this.#waitTimer = this.#clock.setTimeout(
      () => this.#requestSnapshot(connection),
      this.#options.subscribeWaitMs,
    );
    void this.#readSubscriber(connection);
  }

  #disconnect(): void {
    const connection = this.#connection;
    this.#connection = undefined;
    this.#waitTimer?.cancel();
    if (!connection) return;
    closeSocket(connection.subscriber);
    closeSocket(connection.dealer);
  }

  /** SYNCING: ask for the snapshot once the subscription is live (or waited long enough). */
  #requestSnapshot(connection: Connection): void {
    if (this.#closed || this.#connection !== connection || this.#state !== "initial") return;
    this.#waitTimer?.cancel();
    this.#state = "syncing";
    this.#logger.debug("asking for a snapshot", {
      server: connection.address,
      subtree: this.subtree,
    });
    connection.dealer.send(encodeSnapshotRequest(this.subtree)).catch(() => {});
    // From now on only the snapshot proves the server alive (a passive one would not answer).
    this.#armExpiry();
    void this.#readSnapshot(connection);
  }

  async #readSnapshot(connection: Connection): Promise<void> {
    for (;;) {
      let frames: Buffer[];
      try {
        frames = await connection.dealer.receive();
      } catch {
        return; // closed: failover or close
      }
      if (this.#connection !== connection) return;
      let msg: KvMsg;
      try {
        msg = KvMsg.decode(frames);
      } catch (error) {
        this.#drop(
          error instanceof ProtocolError ? error.reason : "undecodable message",
          connection.address,
        );
        continue;
      }
      this.#armExpiry();
      if (msg.key === KTHXBAI) {
        this.#install(connection, msg.sequence);
        closeSocket(connection.dealer); // one snapshot per socket (C2)
        return;
      }
      if (msg.key === HUGZ) continue;
      if (!msg.isDelete) connection.snapshot.set(msg.key, msg);
    }
  }

  /** Swaps in the snapshot, reporting every difference (C1), then applies what was buffered. */
  #install(connection: Connection, sequence: number): void {
    const previous = this.#map;
    const next = connection.snapshot;
    this.#map = next;
    this.#sequence = sequence;
    this.#state = "active";
    for (const [key, msg] of next) {
      const before = previous.get(key);
      this.#confirm(msg.uuid);
      if (!before?.body.equals(msg.body)) this.#changed(key, msg.body, sequence);
    }
    for (const key of previous.keys()) {
      if (!next.has(key)) this.#changed(key, undefined, sequence);
    }
    const buffered = connection.buffered;
    connection.buffered = [];
    this.#logger.info("synchronised", { server: connection.address, keys: next.size, sequence });
    this.emit("synced", { server: connection.address, keys: next.size, sequence });
    for (const msg of buffered) this.#apply(connection, msg);
    if (!this.#everSynced) {
      this.#everSynced = true;
      for (const waiter of this.#syncWaiters.splice(0)) waiter.resolve();
      for (const wake of this.#writesWaiting.splice(0)) wake();
    }
  }

  async #readSubscriber(connection: Connection): Promise<void> {
    for (;;) {
      let frames: Buffer[];
      try {
        frames = await connection.subscriber.receive();
      } catch {
        return; // closed
      }
      if (this.#connection !== connection) return;
      let msg: KvMsg;
      try {
        msg = KvMsg.decode(frames);
      } catch (error) {
        this.#drop(
          error instanceof ProtocolError ? error.reason : "undecodable message",
          connection.address,
        );
        continue;
      }
      if (!connection.heard) {
        connection.heard = true;
        this.#requestSnapshot(connection);
      }
      if (this.#state !== "active") {
        if (connection.buffered.length >= MAX_BUFFERED) {
          this.#drop("update buffer full", connection.address);
          this.#failover("update buffer overflowed while syncing");
          return;
        }
        connection.buffered.push(msg);
        continue;
      }
      // Anything the server publishes proves it alive once it has served us a snapshot.
      this.#armExpiry();
      this.#apply(connection, msg);
    }
  }

  /** ACTIVE: applies an update whose sequence is new; HUGZ only proves liveness (C4). */
  #apply(connection: Connection, msg: KvMsg): void {
    // A gap found in what was buffered during the snapshot started a new sync: drop the rest.
    if (this.#connection !== connection) return;
    if (msg.key === HUGZ) {
      if (this.subtree === "" && msg.sequence > this.#sequence)
        this.#gap(connection, this.#sequence + 1, msg.sequence);
      return;
    }
    if (msg.sequence <= this.#sequence) return; // already in the snapshot, or a duplicate
    if (this.subtree === "" && msg.sequence > this.#sequence + 1) {
      if (this.#gap(connection, this.#sequence + 1, msg.sequence)) return;
    }
    this.#sequence = msg.sequence;
    this.#confirm(msg.uuid);
    if (msg.isDelete) {
      if (this.#map.delete(msg.key)) this.#changed(msg.key, undefined, msg.sequence);
    } else {
      this.#map.set(msg.key, msg);
      this.#changed(msg.key, msg.body, msg.sequence);
    }
  }

  /** A hole in the sequence: reports it and, by default, resyncs. True when resyncing. */
  #gap(connection: Connection, expected: number, got: number): boolean {
    this.#logger.warn("updates missed", { server: connection.address, expected, got });
    this.emit("gap", { expected, got });
    if (this.#options.onGap === "ignore") return false;
    this.#disconnect();
    this.#connect();
    return true;
  }

  #armExpiry(): void {
    this.#expiry?.cancel();
    this.#expiry = this.#clock.setTimeout(
      () =>
        this.#failover(
          this.#state === "active" ? "no HUGZ from the server" : "no snapshot from the server",
        ),
      this.#options.serverTtlMs,
    );
  }

  #failover(reason: string): void {
    if (this.#closed) return;
    const from = this.server;
    this.#disconnect();
    this.#index = (this.#index + 1) % this.servers.length;
    const to = this.server;
    this.#logger.warn(`${reason}, failing over`, { from, to });
    this.emit("failover", { from, to, reason });
    this.#connect();
  }

  #changed(key: string, value: Buffer | undefined, sequence: number): void {
    const change: CloneChange = { key, value, sequence };
    this.emit("change", change);
    for (const queue of this.#iterators) queue.push(change);
  }

  #drop(reason: string, server: string): void {
    this.#dropped.increment(reason);
    this.#logger.warn("dropped message", { reason, server });
    this.emit("dropped", { reason, server });
  }
}

/** The async iterator behind {@link CloneClient.changes}: a bounded queue of changes. */
class ChangeQueue implements AsyncIterableIterator<CloneChange> {
  readonly #items: CloneChange[] = [];
  readonly #onEnd: () => void;
  #waiter:
    | { resolve(result: IteratorResult<CloneChange>): void; reject(error: unknown): void }
    | undefined;
  #ended = false;
  #error: unknown;

  constructor(onEnd: () => void) {
    this.#onEnd = onEnd;
  }

  push(change: CloneChange): void {
    if (this.#ended) return;
    if (this.#waiter) {
      const waiter = this.#waiter;
      this.#waiter = undefined;
      waiter.resolve({ value: change, done: false });
      return;
    }
    if (this.#items.length >= MAX_CHANGE_BACKLOG) {
      this.#error = new QueueFullError(
        `changes consumer fell ${MAX_CHANGE_BACKLOG} changes behind`,
      );
      this.end();
      return;
    }
    this.#items.push(change);
  }

  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#onEnd();
    const waiter = this.#waiter;
    this.#waiter = undefined;
    if (waiter) {
      if (this.#error !== undefined) waiter.reject(this.#error);
      else waiter.resolve({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<CloneChange>> {
    const item = this.#items.shift();
    if (item !== undefined) return Promise.resolve({ value: item, done: false });
    if (this.#ended) {
      const error = this.#error;
      this.#error = undefined;
      return error !== undefined
        ? Promise.reject(error)
        : Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<CloneChange>> {
    this.#items.length = 0;
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<CloneChange> {
    return this;
  }
}
