/**
 * `FreelanceClient`: brokerless reliable request-reply over several servers, in the Guide's
 * three models (spec 2.2-2.4).
 * @module
 */
import { EventEmitter } from "node:events";
import {
  type Clock,
  type Closeable,
  ClosedError,
  checkDuration,
  checkEndpoint,
  checkInteger,
  createLogger,
  type FrameLike,
  InvalidArgumentError,
  type Logger,
  systemClock,
  toFrames,
} from "@zmq-patterns/core";
import { FlpAgent } from "./agent.js";
import { Model1Engine } from "./model1.js";
import { Model2Engine } from "./model2.js";
import type { FreelanceModel } from "./protocol.js";
import {
  MODEL1_ATTEMPT_TIMEOUT_MS,
  MODEL1_RETRIES,
  MODEL2_TIMEOUT_MS,
  MODEL3_TIMEOUT_MS,
  PING_INTERVAL_MS,
  SERVER_TTL_MS,
} from "./protocol.js";

/** Options of {@link FreelanceClient}. */
export interface FreelanceClientOptions {
  /** Which model to speak; servers must run the same one. */
  model: FreelanceModel;
  /** Servers to connect to now, in order of preference; more can be added with `connect`. */
  endpoints?: readonly string[];
  /**
   * The longest a request may take before it rejects with `RequestAbandonedError`. Default:
   * model one, no limit beyond its attempts (each server once, or `retries` times when there is
   * one); model two, 2,500 ms; model three, 3,000 ms (the Guide's `GLOBAL_TIMEOUT`s).
   */
  timeoutMs?: number;
  /**
   * Time one server gets to answer before the request moves on. Model one: default 1,000 ms.
   * Model three: default the request's timeout divided by the number of servers, so a dead
   * server costs one attempt and never the whole request (fix 2.6.5). Not used by model two,
   * which asks every server at once.
   */
  attemptTimeoutMs?: number;
  /** Model one with a single server: attempts per request. Default 3 (the Guide's `MAX_RETRIES`). */
  retries?: number;
  /** Model three: a server not heard from is pinged this often. Default 2,000 ms. */
  pingIntervalMs?: number;
  /** Model three: a server silent this long counts as gone. Default 6,000 ms. */
  serverTtlMs?: number;
  /**
   * Models two and three: requests outstanding at once; more reject with `QueueFullError`.
   * Default 1,000. Model one sends one request at a time (REQ) and queues the rest.
   */
  maxPending?: number;
  /** Monotonic clock for timeouts, pings and liveness. Default: the system clock. */
  clock?: Clock;
  /** Where to log. Default: quiet unless `ZMQ_PATTERNS_DEBUG` enables `freelance:client`. */
  logger?: Logger;
}

/** Options of one {@link FreelanceClient.request}. */
export interface FreelanceRequestOptions {
  /** Overrides the client's `timeoutMs` for this request. */
  timeoutMs?: number;
  /** Abandons the request (rejects with `AbortedError`). */
  signal?: AbortSignal;
}

/** Events of {@link FreelanceClient}. */
export interface FreelanceClientEvents {
  /** A request (or a copy of it, or a resend) left for `endpoint` (`"*"`: model two's copies). */
  sent: [{ sequence: number; endpoint: string; attempt: number }];
  /** A request moved on from `from` (no reply in time, or unreachable) to try another server. */
  failover: [
    { sequence: number; from: string; reason: "timeout" | "unreachable" | "disconnected" },
  ];
  /** Model three: a server answered after being unknown or gone. */
  serverUp: [{ endpoint: string }];
  /** Model three: a server was silent for the server TTL. */
  serverDown: [{ endpoint: string }];
  /**
   * A message was dropped: a malformed reply, a reply for no outstanding request (stale, late
   * or duplicate, never handed to a later request: fix 2.6.2), or an unknown server identity.
   */
  dropped: [{ reason: string; from: string }];
}

/** A snapshot of a client's counters. */
export interface FreelanceClientStats {
  model: FreelanceModel;
  /** Requests waiting for a reply. */
  pending: number;
  requests: number;
  replies: number;
  /** Requests that failed with a timeout. */
  abandoned: number;
  /** Messages sent, copies and resends included. */
  sends: number;
  /** Model three: per server, whether it is alive (heard within the TTL). */
  servers: Array<{ endpoint: string; alive: boolean }>;
  dropped: Record<string, number>;
}

/**
 * What the three engines share with the client: their settings, the event sink and the logger.
 * @internal
 */
export interface EngineContext {
  readonly timeoutMs: number | undefined;
  readonly attemptTimeoutMs: number | undefined;
  readonly retries: number;
  readonly pingIntervalMs: number;
  readonly serverTtlMs: number;
  readonly maxPending: number;
  readonly clock: Clock;
  readonly logger: Logger;
  emit<K extends keyof FreelanceClientEvents>(event: K, ...args: FreelanceClientEvents[K]): void;
}

/**
 * The part each model implements.
 * @internal
 */
export interface Engine {
  connect(endpoint: string): void;
  request(body: Buffer[], timeoutMs: number | undefined, signal?: AbortSignal): Promise<Buffer[]>;
  stats(): Omit<FreelanceClientStats, "model">;
  close(): void;
}

/**
 * A client of a pool of equivalent servers with no broker between them (spec 2.1). Requests
 * must be idempotent: every model may deliver one request more than once.
 *
 * - **Model one** (simple retry and failover): one REQ per attempt, servers tried in order, one
 *   attempt each (three on the same server when there is only one). Each dead server costs a
 *   full attempt on every request.
 * - **Model two** (the "brutal shotgun"): one DEALER connected to every server sends each request
 *   to all of them; the first reply with the request's sequence wins. The DEALER is `immediate`,
 *   so copies never queue up for a server that is down (fix 2.6.10).
 * - **Model three** (RFC 10/FLP): a ROUTER addresses servers by their identity (their endpoint),
 *   pings silent ones, sends each request to the first live server, and fails over to the next
 *   after a per-attempt timeout or at once when a server is unreachable or disconnects. Unlike
 *   the reference agent it never resends in a storm (fix 2.6.1), never returns a reply to a
 *   request that is not outstanding (2.6.2), numbers every request afresh (2.6.3), keeps each
 *   server once (2.6.4), survives unknown identities (2.6.6) and needs no sleep after connect
 *   (2.6.7).
 *
 * In every model a reply is matched to its own request (model one by a fresh socket per
 * attempt, models two and three by a sequence number), so a late reply is dropped, never
 * returned for a later request. Requests may be made concurrently.
 *
 * @example
 * ```ts
 * await using client = new FreelanceClient({
 *   model: 3,
 *   endpoints: ["tcp://localhost:5555", "tcp://localhost:5556", "tcp://localhost:5557"],
 * });
 * const reply = await client.request("random name"); // ["OK"] from the Guide's servers
 * ```
 */
export class FreelanceClient extends EventEmitter<FreelanceClientEvents> implements Closeable {
  /** The model this client speaks. */
  readonly model: FreelanceModel;
  readonly #engine: Engine;
  readonly #endpoints: string[] = [];
  #closed = false;

  constructor(options: FreelanceClientOptions) {
    super();
    if (options === null || typeof options !== "object" || ![1, 2, 3].includes(options.model)) {
      throw new InvalidArgumentError(`model must be 1, 2 or 3, got ${String(options?.model)}`);
    }
    this.model = options.model;
    const timeoutMs =
      options.timeoutMs !== undefined
        ? checkDuration("timeoutMs", options.timeoutMs)
        : this.model === 2
          ? MODEL2_TIMEOUT_MS
          : this.model === 3
            ? MODEL3_TIMEOUT_MS
            : undefined;
    const context: EngineContext = {
      timeoutMs,
      attemptTimeoutMs:
        options.attemptTimeoutMs !== undefined
          ? checkDuration("attemptTimeoutMs", options.attemptTimeoutMs)
          : this.model === 1
            ? MODEL1_ATTEMPT_TIMEOUT_MS
            : undefined,
      retries: checkInteger("retries", options.retries ?? MODEL1_RETRIES),
      pingIntervalMs: checkDuration("pingIntervalMs", options.pingIntervalMs ?? PING_INTERVAL_MS),
      serverTtlMs: checkDuration("serverTtlMs", options.serverTtlMs ?? SERVER_TTL_MS),
      maxPending: checkInteger("maxPending", options.maxPending ?? 1000),
      clock: options.clock ?? systemClock,
      logger: options.logger ?? createLogger("freelance:client"),
      emit: (event, ...args) => {
        (this.emit as (event: string, ...rest: unknown[]) => boolean)(event, ...args);
      },
    };
    if (context.serverTtlMs <= context.pingIntervalMs) {
      throw new InvalidArgumentError(
        `serverTtlMs (${context.serverTtlMs}) must exceed pingIntervalMs (${context.pingIntervalMs})`,
      );
    }
    this.#engine =
      this.model === 1
        ? new Model1Engine(context)
        : this.model === 2
          ? new Model2Engine(context)
          : new FlpAgent(context);
    try {
      for (const endpoint of options.endpoints ?? []) this.connect(endpoint);
    } catch (error) {
      // A bad endpoint must not leave the engine's socket open (it would keep the process alive).
      this.#closed = true;
      this.#engine.close();
      throw error;
    }
  }

  /** The servers connected so far, in order of preference. */
  get endpoints(): readonly string[] {
    return [...this.#endpoints];
  }

  /**
   * Adds a server. Model three addresses it by this exact string, so it must equal the server's
   * identity (its public endpoint, RFC 10/FLP). No sleep is needed before the first request.
   *
   * @throws {@link @zmq-patterns/core!InvalidArgumentError | InvalidArgumentError} for a bad or
   * duplicate endpoint; {@link @zmq-patterns/core!ClosedError | ClosedError} once closed.
   */
  connect(endpoint: string): void {
    if (this.#closed) throw new ClosedError("client closed");
    checkEndpoint("endpoint", endpoint);
    if (this.#endpoints.includes(endpoint)) {
      throw new InvalidArgumentError(`already connected to ${endpoint}`);
    }
    this.#engine.connect(endpoint);
    this.#endpoints.push(endpoint);
  }

  /**
   * Sends `body` (one frame or several) and resolves with the first good reply's body: model
   * one, the server's whole reply; models two and three, the frames after the sequence (`["OK"]`
   * from the Guide's servers).
   *
   * @throws {@link @zmq-patterns/core!RequestAbandonedError | RequestAbandonedError} (code
   * `TIMEOUT`) when no server answered in time; `AbortedError` when `signal` aborts;
   * {@link @zmq-patterns/core!ClosedError | ClosedError} when the client is closed;
   * {@link @zmq-patterns/core!InvalidArgumentError | InvalidArgumentError} with no server
   * connected or an empty body; `QueueFullError` past `maxPending`.
   */
  request(
    body: FrameLike | readonly FrameLike[],
    options: FreelanceRequestOptions = {},
  ): Promise<Buffer[]> {
    if (this.#closed) return Promise.reject(new ClosedError("client closed"));
    let frames: Buffer[];
    let timeoutMs: number | undefined;
    try {
      frames = toFrames(typeof body === "string" || body instanceof Uint8Array ? [body] : body);
      if (frames.length === 0) throw new InvalidArgumentError("body must have at least one frame");
      if (this.#endpoints.length === 0) {
        throw new InvalidArgumentError("no server endpoints: call connect() first");
      }
      timeoutMs =
        options.timeoutMs !== undefined ? checkDuration("timeoutMs", options.timeoutMs) : undefined;
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#engine.request(frames, timeoutMs, options.signal);
  }

  /** A snapshot of the counters and, for model three, of each server's liveness. */
  stats(): FreelanceClientStats {
    return { model: this.model, ...this.#engine.stats() };
  }

  /** Closes the sockets (linger 0); pending requests reject with `ClosedError`. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#engine.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
