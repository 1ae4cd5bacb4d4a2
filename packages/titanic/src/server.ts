/**
 * `TitanicServer`: the three TSP services and the dispatcher, on top of a Majordomo broker.
 * @module
 */
import { EventEmitter } from "node:events";
import {
  type Clock,
  type Closeable,
  checkDuration,
  checkEndpoint,
  checkInteger,
  createLogger,
  InvalidArgumentError,
  type Logger,
  ProtocolError,
  systemClock,
  type TimerHandle,
} from "@zmq-patterns/core";
import {
  DEFAULT_BROKER_ENDPOINT,
  type MajordomoHandler,
  MajordomoWorker,
} from "@zmq-patterns/majordomo";
import {
  Dispatcher,
  type TitanicDispatcherEvents,
  type TitanicDispatcherStats,
  type TitanicDispatchOptions,
} from "./dispatcher.js";
import {
  decodeSubmission,
  decodeUuidBody,
  encodeStatusReply,
  newUuid,
  TITANIC_CLOSE,
  TITANIC_REPLY,
  TITANIC_REQUEST,
  TSP_STATUS,
} from "./protocol.js";
import { FileStore, type StoredRequest, type TitanicStore } from "./store.js";

/** Default of {@link TitanicServerOptions.dir}: the Guide's, relative to the working directory. */
export const DEFAULT_TITANIC_DIR = ".titanic";
/** Default of {@link TitanicCollectOptions.maxAgeMs}: a day. */
export const DEFAULT_COLLECT_MAX_AGE_MS = 24 * 60 * 60 * 1000;
/** Default of {@link TitanicCollectOptions.intervalMs}. */
export const DEFAULT_COLLECT_INTERVAL_MS = 60_000;

/** The name of one of the three TSP services. */
export type TitanicServiceName =
  | typeof TITANIC_REQUEST
  | typeof TITANIC_REPLY
  | typeof TITANIC_CLOSE;

/**
 * Garbage collection of finished requests whose client never closed them (TI-B9). Pending
 * requests are never collected.
 */
export interface TitanicCollectOptions {
  /** Finished entries (reply stored) older than this are removed. Default a day. */
  maxAgeMs?: number;
  /** Beyond this many finished entries, the oldest are removed. Default: no limit. */
  maxFinished?: number;
  /** How often to collect. Default 60,000 ms. */
  intervalMs?: number;
}

/** Options of {@link TitanicServer.start}. */
export interface TitanicServerOptions extends TitanicDispatchOptions {
  /** The broker, for the three services and for dispatch. Default `tcp://localhost:5555`. */
  broker?: string;
  /**
   * Where requests and replies live. Default: a {@link FileStore} in `dir`. The server opens it
   * on start and closes it on close.
   */
  store?: TitanicStore;
  /** Directory of the default store. Default `.titanic`. Not with `store`. */
  dir?: string;
  /**
   * Removal of finished requests nobody closed, or `false` to keep them until closed (as RFC 9
   * says). Default `{ maxAgeMs: a day, intervalMs: 60,000 }`.
   */
  collect?: TitanicCollectOptions | false;
  /** Heartbeat interval of the three workers, as the broker's. Default 2,500 ms. */
  heartbeatIntervalMs?: number;
  /** Silent heartbeat intervals before a worker considers the broker dead. Default 3. */
  liveness?: number;
  /** Delay before a worker registers again after losing the broker. Default 2,500 ms. */
  reconnectMs?: number;
  /** When given, that delay doubles after each failure up to this cap. */
  reconnectMaxMs?: number;
  /** Clock for dispatch timeouts, back-off and heartbeats. Default: the system clock. */
  clock?: Clock;
  /** Where to log. Default: quiet unless `ZMQ_PATTERNS_DEBUG` enables `titanic:server`. */
  logger?: Logger;
}

/** Events of {@link TitanicServer}. */
export interface TitanicServerEvents extends TitanicDispatcherEvents {
  /** A request was stored durably and acknowledged with its UUID. */
  stored: [{ uuid: string; service: string }];
  /** A malformed body was answered with `400` (`reason` says why). */
  rejected: [{ service: TitanicServiceName; reason: string }];
  /** A request was closed (`wasPending`: it had no reply yet; it will not be sent again). */
  closed: [{ uuid: string; wasPending: boolean }];
  /** Garbage collection removed finished requests. */
  collected: [{ removed: number }];
}

/** A snapshot of {@link TitanicServer}'s state and counters. */
export interface TitanicServerStats extends TitanicDispatcherStats {
  /** Requests stored and acknowledged since start. */
  stored: number;
  /** Malformed bodies answered with `400`. */
  rejected: number;
  /** `titanic.close` requests answered with `200`. */
  closed: number;
  /** Finished requests removed by garbage collection. */
  collected: number;
  /** Answers given, by TSP service and status code (`"titanic.reply 300"`). */
  answers: Record<string, number>;
}

/**
 * A Titanic server (RFC 9/TSP): disconnected, disk-backed reliable requests on top of a
 * Majordomo broker, which it uses like any worker and client, unchanged.
 *
 * Three {@link @zmq-patterns/majordomo!MajordomoWorker | MajordomoWorker}s register
 * `titanic.request`, `titanic.reply` and `titanic.close` (TSP-R1):
 *
 * - `titanic.request` `[service][body...]` stores the request durably, then answers
 *   `["200"][UUID]` (never before the request is on disk, TI-B1) and hands it to the dispatcher;
 *   a malformed body gets `["400 <reason>"]`, a storage failure `["500"]` (TI-B5).
 * - `titanic.reply` `[UUID]` answers `["200"][reply...]` once the reply is stored (the same each
 *   time: a reply is kept until the request is closed, TSP-R3), `["300"]` while pending,
 *   `["400"]` for an unknown, closed or invalid UUID (an invalid UUID never reaches the store,
 *   TI-B4), `["500"]` for a storage failure.
 * - `titanic.close` `[UUID]` forgets the request and its reply and answers `["200"]`, also for an
 *   unknown UUID (TSP-R4); `["400"]` for an invalid UUID, `["500"]` for a storage failure.
 *
 * The dispatcher runs stored requests on their services whenever they have workers (TSP-R5):
 * per-service FIFO queues with bounded concurrency, each send on its own socket, doubling attempt
 * timeouts and back-off, late replies accepted, and an optional `mmi.service` check. On start it
 * resumes every stored request without a reply, oldest first.
 *
 * **Duplicates.** A request can run more than once on its service (RFC 9 gives no exactly-once
 * guarantee; make services idempotent, Guide chapter 4):
 *
 * - if Titanic stops (crash or close) after sending a request and before storing its reply, the
 *   request is sent again when Titanic starts again;
 * - a service slower than an attempt timeout gets the request again after the timeout and the
 *   back-off; every send made before the first reply arrives can run. With the defaults, sends go
 *   out at 0, 6, 18, 42, 90 and 166 s (then every 92 s), so a service that answers within 6 s runs a
 *   request once, within 18 s at most twice, within 90 s at most four times;
 * - a client whose `titanic.request` reply is lost sends it again and gets a second UUID (TSP has
 *   no idempotency key).
 *
 * A reply is stored once: the first reply wins, the others are dropped.
 *
 * @example
 * ```ts
 * await using titanic = await TitanicServer.start({ broker: "tcp://localhost:5555", dir: ".titanic" });
 * titanic.on("replied", ({ uuid, service }) => console.log(`${service} answered ${uuid}`));
 * ```
 */
export class TitanicServer extends EventEmitter<TitanicServerEvents> implements Closeable {
  readonly broker: string;
  /** The store the server uses. */
  readonly store: TitanicStore;
  readonly #dispatcher: Dispatcher;
  readonly #collect: Required<Omit<TitanicCollectOptions, "maxFinished">> &
    Pick<TitanicCollectOptions, "maxFinished">;
  readonly #collectEnabled: boolean;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #options: TitanicServerOptions;
  readonly #workers: MajordomoWorker[] = [];
  readonly #counts = { stored: 0, rejected: 0, closed: 0, collected: 0 };
  readonly #answers = new Map<string, number>();
  readonly #inFlight = new Set<Promise<unknown>>();
  #collectTimer: TimerHandle | undefined;
  #collecting = false;
  #resumed = 0;
  #closed: Promise<void> | undefined;

  private constructor(options: TitanicServerOptions) {
    super();
    this.#options = options;
    this.broker = checkEndpoint("broker", options.broker ?? DEFAULT_BROKER_ENDPOINT);
    if (options.store && options.dir !== undefined) {
      throw new InvalidArgumentError("give either a store or a dir, not both");
    }
    this.store = options.store ?? new FileStore({ dir: options.dir ?? DEFAULT_TITANIC_DIR });
    // The workers' options, checked here so that a bad one fails before anything starts.
    if (options.heartbeatIntervalMs !== undefined) {
      checkDuration("heartbeatIntervalMs", options.heartbeatIntervalMs);
    }
    if (options.liveness !== undefined) checkInteger("liveness", options.liveness);
    if (options.reconnectMs !== undefined) checkDuration("reconnectMs", options.reconnectMs, 0);
    if (options.reconnectMaxMs !== undefined) {
      checkDuration("reconnectMaxMs", options.reconnectMaxMs, 0);
    }
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger ?? createLogger("titanic:server");
    this.#collectEnabled = options.collect !== false;
    const collect = options.collect || {};
    this.#collect = {
      maxAgeMs: checkDuration(
        "collect.maxAgeMs",
        collect.maxAgeMs ?? DEFAULT_COLLECT_MAX_AGE_MS,
        0,
      ),
      intervalMs: checkDuration(
        "collect.intervalMs",
        collect.intervalMs ?? DEFAULT_COLLECT_INTERVAL_MS,
      ),
      ...(collect.maxFinished === undefined
        ? {}
        : { maxFinished: checkInteger("collect.maxFinished", collect.maxFinished, 0) }),
    };
    this.#dispatcher = new Dispatcher({
      ...pickDispatch(options),
      broker: this.broker,
      store: this.store,
      clock: this.#clock,
      logger: this.#logger,
    });
    // The dispatcher's events are the server's.
    const source = this.#dispatcher as EventEmitter;
    const emit = this.#emit.bind(this) as (event: string, ...args: unknown[]) => void;
    for (const event of [
      "dispatched",
      "attemptTimedOut",
      "replied",
      "unavailable",
      "unreachable",
      "storageError",
    ] satisfies Array<keyof TitanicDispatcherEvents>) {
      source.on(event, (...args: unknown[]) => emit(event, ...args));
    }
  }

  /**
   * Opens the store, resumes the stored requests without a reply, and registers the three
   * services with the broker.
   *
   * @throws {@link @zmq-patterns/core!InvalidArgumentError | InvalidArgumentError} (as a rejection) on bad options;
   * what the store throws when it cannot be opened or read.
   */
  static async start(options: TitanicServerOptions = {}): Promise<TitanicServer> {
    const server = new TitanicServer(options);
    await server.#start();
    return server;
  }

  /** The directory of the default store, or `undefined` for another store. */
  get dir(): string | undefined {
    return this.store instanceof FileStore ? this.store.dir : undefined;
  }

  /** How many stored requests without a reply were resumed on start. */
  get resumed(): number {
    return this.#resumed;
  }

  /** A snapshot of the server's state and counters. */
  stats(): TitanicServerStats {
    return {
      ...this.#dispatcher.stats(),
      ...this.#counts,
      answers: Object.fromEntries(this.#answers),
    };
  }

  /**
   * Runs garbage collection now (see {@link TitanicServerOptions.collect}) and returns how many
   * finished requests were removed.
   *
   * @throws (as a rejection) what the store throws.
   */
  async collect(): Promise<number> {
    const removed = await this.store.collect({
      maxAgeMs: this.#collect.maxAgeMs,
      ...(this.#collect.maxFinished === undefined
        ? {}
        : { maxFinished: this.#collect.maxFinished }),
    });
    if (removed > 0) {
      this.#counts.collected += removed;
      this.#logger.info("finished requests collected", { removed });
      this.#emit("collected", { removed });
    }
    return removed;
  }

  /**
   * Unregisters the three services (DISCONNECT), stops dispatching, waits for storage
   * operations under way, and closes the store. Requests without a reply stay stored and are
   * resumed by the next start. Idempotent.
   */
  close(): Promise<void> {
    this.#closed ??= this.#shutdown();
    return this.#closed;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #start(): Promise<void> {
    await this.store.open();
    let resumed: number;
    try {
      resumed = await this.#dispatcher.start();
    } catch (error) {
      await this.#dispatcher.close();
      await this.store.close();
      throw error;
    }
    if (resumed > 0) this.#logger.info("pending requests resumed", { count: resumed });
    const o = this.#options;
    const common = {
      broker: this.broker,
      ...(o.heartbeatIntervalMs === undefined
        ? {}
        : { heartbeatIntervalMs: o.heartbeatIntervalMs }),
      ...(o.liveness === undefined ? {} : { liveness: o.liveness }),
      ...(o.reconnectMs === undefined ? {} : { reconnectMs: o.reconnectMs }),
      ...(o.reconnectMaxMs === undefined ? {} : { reconnectMaxMs: o.reconnectMaxMs }),
      ...(o.clock === undefined ? {} : { clock: o.clock }),
      logger: this.#logger,
    };
    const services: Array<[TitanicServiceName, (body: Buffer[]) => Promise<Buffer[]>]> = [
      [TITANIC_REQUEST, (body) => this.#request(body)],
      [TITANIC_REPLY, (body) => this.#reply(body)],
      [TITANIC_CLOSE, (body) => this.#close(body)],
    ];
    try {
      for (const [service, handle] of services) {
        const handler: MajordomoHandler = (body) => this.#track(handle(body));
        this.#workers.push(await MajordomoWorker.start({ ...common, service, handler }));
      }
    } catch (error) {
      await this.close();
      throw error;
    }
    if (this.#collectEnabled) this.#scheduleCollect();
    this.#resumed = resumed;
  }

  async #shutdown(): Promise<void> {
    this.#collectTimer?.cancel();
    await Promise.allSettled(this.#workers.map((worker) => worker.close()));
    await this.#dispatcher.close();
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
    await this.store.close();
  }

  // ------------------------------------------------------------------------------------------
  // The three services

  /** `titanic.request`: store, acknowledge, dispatch. */
  async #request(body: Buffer[]): Promise<Buffer[]> {
    let request: StoredRequest;
    try {
      const { service, body: payload } = decodeSubmission(body);
      request = { uuid: newUuid(), service, body: payload, storedAt: Date.now() };
    } catch (error) {
      const reason = error instanceof ProtocolError ? error.reason : "malformed request";
      return this.#reject(TITANIC_REQUEST, reason, reason);
    }
    try {
      await this.store.putRequest(request);
    } catch (error) {
      return this.#failed(TITANIC_REQUEST, "putRequest", error, request.uuid);
    }
    this.#counts.stored += 1;
    this.#logger.debug("request stored", { uuid: request.uuid, service: request.service });
    this.#emit("stored", { uuid: request.uuid, service: request.service });
    this.#dispatcher.submit(request);
    return this.#answer(TITANIC_REQUEST, encodeStatusReply(TSP_STATUS.ok, [request.uuid]));
  }

  /** `titanic.reply`: the stored reply, or where the request stands. */
  async #reply(body: Buffer[]): Promise<Buffer[]> {
    let uuid: string;
    try {
      uuid = decodeUuidBody(body);
    } catch (error) {
      return this.#reject(TITANIC_REPLY, reasonOf(error));
    }
    try {
      const reply = await this.store.getReply(uuid);
      if (reply) return this.#answer(TITANIC_REPLY, encodeStatusReply(TSP_STATUS.ok, reply));
      const state = await this.store.state(uuid);
      if (state === "pending") {
        return this.#answer(TITANIC_REPLY, encodeStatusReply(TSP_STATUS.pending));
      }
      if (state === "done") {
        // The reply was stored between the two reads.
        const stored = await this.store.getReply(uuid);
        if (stored) return this.#answer(TITANIC_REPLY, encodeStatusReply(TSP_STATUS.ok, stored));
      }
      return this.#answer(TITANIC_REPLY, encodeStatusReply(TSP_STATUS.unknown));
    } catch (error) {
      return this.#failed(TITANIC_REPLY, "getReply", error, uuid);
    }
  }

  /** `titanic.close`: forget the request and its reply; 200 whether it existed or not. */
  async #close(body: Buffer[]): Promise<Buffer[]> {
    let uuid: string;
    try {
      uuid = decodeUuidBody(body);
    } catch (error) {
      return this.#reject(TITANIC_CLOSE, reasonOf(error));
    }
    try {
      await this.store.remove(uuid);
    } catch (error) {
      return this.#failed(TITANIC_CLOSE, "remove", error, uuid);
    }
    // Only once the store forgot it: a failed removal leaves the request running.
    const wasPending = this.#dispatcher.forget(uuid);
    this.#counts.closed += 1;
    this.#logger.debug("request closed", { uuid, wasPending });
    this.#emit("closed", { uuid, wasPending });
    return this.#answer(TITANIC_CLOSE, encodeStatusReply(TSP_STATUS.ok));
  }

  /** `400`: the body is malformed. Only `titanic.request` says why: for the others it is the UUID. */
  #reject(service: TitanicServiceName, reason: string, text?: string): Buffer[] {
    this.#counts.rejected += 1;
    this.#logger.warn("malformed request answered with 400", { service, reason });
    this.#emit("rejected", { service, reason });
    return this.#answer(service, encodeStatusReply(TSP_STATUS.unknown, [], text));
  }

  /** `500`: the store failed (TI-B5); the client should try again later. */
  #failed(service: TitanicServiceName, operation: string, error: unknown, uuid: string): Buffer[] {
    this.#logger.error("storage failure answered with 500", { service, operation, uuid, error });
    this.#emit("storageError", { operation, uuid, error });
    return this.#answer(service, encodeStatusReply(TSP_STATUS.error));
  }

  #answer(service: TitanicServiceName, reply: Buffer[]): Buffer[] {
    const key = `${service} ${reply[0]?.toString("latin1").slice(0, 3)}`;
    this.#answers.set(key, (this.#answers.get(key) ?? 0) + 1);
    return reply;
  }

  /** Keeps a handler's promise until it settles, so close waits for storage under way. */
  #track<T>(promise: Promise<T>): Promise<T> {
    this.#inFlight.add(promise);
    void promise.finally(() => this.#inFlight.delete(promise)).catch(() => {});
    return promise;
  }

  // ------------------------------------------------------------------------------------------
  // Garbage collection

  #scheduleCollect(): void {
    this.#collectTimer = this.#clock.setTimeout(() => {
      void this.#collectNow().finally(() => {
        if (!this.#closed) this.#scheduleCollect();
      });
    }, this.#collect.intervalMs);
  }

  async #collectNow(): Promise<void> {
    if (this.#collecting || this.#closed) return;
    this.#collecting = true;
    try {
      await this.#track(this.collect());
    } catch (error) {
      this.#logger.error("garbage collection failed", { error });
      this.#emit("storageError", { operation: "collect", error });
    } finally {
      this.#collecting = false;
    }
  }

  /** Emits without letting a throwing listener break the server. */
  #emit<K extends keyof TitanicServerEvents>(event: K, ...args: TitanicServerEvents[K]): void {
    try {
      (this.emit as (event: K, ...args: TitanicServerEvents[K]) => boolean)(event, ...args);
    } catch (error) {
      this.#logger.error("event listener failed", { event, error });
    }
  }
}

function reasonOf(error: unknown): string {
  return error instanceof ProtocolError ? error.reason : "malformed request";
}

/** The dispatch options given, without `undefined` ones. */
function pickDispatch(options: TitanicServerOptions): TitanicDispatchOptions {
  const keys = [
    "attemptTimeoutMs",
    "maxAttemptTimeoutMs",
    "retryBackoffMs",
    "maxRetryBackoffMs",
    "concurrency",
    "perServiceConcurrency",
    "maxSocketsPerRequest",
    "mmiCheck",
  ] as const;
  const picked: Record<string, unknown> = {};
  for (const key of keys) if (options[key] !== undefined) picked[key] = options[key];
  return picked as TitanicDispatchOptions;
}
