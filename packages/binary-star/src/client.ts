/**
 * `BinaryStarClient`: the client side of a Binary Star pair (spec 1.8).
 * @module
 */
import { EventEmitter } from "node:events";
import {
  AbortedError,
  type Closeable,
  ClosedError,
  checkDuration,
  checkEndpoint,
  closeSocket,
  createLogger,
  type FrameLike,
  InvalidArgumentError,
  type Logger,
  Receiver,
  RequestAbandonedError,
  sleep,
  TimeoutError,
  toFrames,
} from "@zmq-patterns/core";
import { Request } from "zeromq";
import {
  DEFAULT_CLIENT_ENDPOINTS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  DEFAULT_SETTLE_DELAY_MS,
} from "./protocol.js";

/** Options of {@link BinaryStarClient}. */
export interface BinaryStarClientOptions {
  /**
   * The servers, tried in order and toggled on every timeout. Default the Guide's
   * `tcp://localhost:5001` (primary) then `tcp://localhost:5002` (backup).
   */
  endpoints?: readonly string[];
  /** How long to wait for a reply before failing over. Default 1,000 ms (`REQUEST_TIMEOUT`). */
  timeoutMs?: number;
  /**
   * Pause before sending to the other server, at least the servers' peer expiry so the passive
   * one accepts the vote. Default 2,000 ms (`SETTLE_DELAY`).
   */
  settleDelayMs?: number;
  /**
   * Sends per request in total before it is abandoned. Default `Infinity`: like the Guide's
   * client, keep toggling between the servers until a reply comes, the request's signal aborts
   * or the client is closed.
   */
  maxAttempts?: number;
  /**
   * Checks a reply (the Guide's client checks that it echoes the request's sequence number). A
   * reply that fails is discarded and counts as a failed attempt: a REQ socket takes one reply
   * per request, so the client fails over at once instead of waiting out the timeout as the
   * reference does.
   */
  validateReply?: (reply: Buffer[], request: Buffer[]) => boolean;
  /** Where to log. Default: quiet unless `ZMQ_PATTERNS_DEBUG` enables `binary-star:client`. */
  logger?: Logger;
}

/** Options of one {@link BinaryStarClient.request}; override the client's. */
export interface BinaryStarRequestOptions {
  timeoutMs?: number;
  maxAttempts?: number;
  /** Abandons the request (rejects with `AbortedError`), also while it waits for its turn. */
  signal?: AbortSignal;
}

/** Events of {@link BinaryStarClient}. */
export interface BinaryStarClientEvents {
  /** A request (or a resend) left for `endpoint`. */
  sent: [{ attempt: number; endpoint: string }];
  /** A reply came from `endpoint`. */
  reply: [{ attempt: number; endpoint: string }];
  /** No reply in time: after the settle delay the request goes to `to`. */
  failover: [{ attempt: number; from: string; to: string }];
  /** A reply failed `validateReply` and was discarded. */
  invalidReply: [{ attempt: number; endpoint: string; reply: Buffer[] }];
  /** Every attempt timed out. */
  abandoned: [{ attempts: number }];
}

/**
 * A request-reply client for a Binary Star pair: it sends to the current server and, when no
 * reply comes within `timeoutMs`, closes its REQ socket (linger 0), switches to the other
 * server, waits `settleDelayMs` (so that server's peer expiry has passed and it accepts the vote)
 * and resends the same request (spec 1.8).
 *
 * Like the Guide's client it toggles on every timeout and does not prefer the primary: after a
 * failover it stays with the server that answered (fix 1.11.10 is documentation only). Delivery
 * to the caller is at most once, execution on the servers at least once: a request lost in a
 * failover is sent again, so requests should be idempotent or deduplicated.
 *
 * Requests made concurrently are sent one after the other (a REQ socket is strictly
 * send-then-receive).
 *
 * @example
 * ```ts
 * await using client = new BinaryStarClient(); // tcp://localhost:5001, then :5002
 * const reply = await client.request("1");
 * ```
 */
export class BinaryStarClient extends EventEmitter<BinaryStarClientEvents> implements Closeable {
  /** The servers, in the order they are tried. */
  readonly endpoints: readonly string[];
  /** Wait for a reply before failing over, in milliseconds. */
  readonly timeoutMs: number;
  /** Pause before trying the other server, in milliseconds. */
  readonly settleDelayMs: number;
  /** Sends per request before it is abandoned. */
  readonly maxAttempts: number;
  readonly #validateReply: ((reply: Buffer[], request: Buffer[]) => boolean) | undefined;
  readonly #logger: Logger;
  readonly #closing = new AbortController();
  #index = 0;
  #socket: Request | undefined;
  #receiver: Receiver | undefined;
  #queue: Promise<void> = Promise.resolve();

  constructor(options: BinaryStarClientOptions = {}) {
    super();
    const endpoints = options.endpoints ?? DEFAULT_CLIENT_ENDPOINTS;
    if (!Array.isArray(endpoints) || endpoints.length === 0) {
      throw new InvalidArgumentError("endpoints must be a non-empty array of endpoints");
    }
    this.endpoints = Object.freeze(
      endpoints.map((endpoint, i) => checkEndpoint(`endpoints[${i}]`, endpoint)),
    );
    this.timeoutMs = checkDuration("timeoutMs", options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS);
    this.settleDelayMs = checkDelay(options.settleDelayMs ?? DEFAULT_SETTLE_DELAY_MS);
    this.maxAttempts = checkAttempts(options.maxAttempts ?? Number.POSITIVE_INFINITY);
    this.#validateReply = options.validateReply;
    this.#logger = options.logger ?? createLogger("binary-star:client");
  }

  /** The server the next request goes to. */
  get endpoint(): string {
    return this.endpoints[this.#index] as string;
  }

  /**
   * Sends `body` (one frame or several) and resolves with the reply frames, failing over
   * between the servers as needed.
   *
   * @throws {@link @zmq-patterns/core!RequestAbandonedError | RequestAbandonedError} (code
   * `TIMEOUT`) after `maxAttempts` sends without a reply; `AbortedError` when `signal` aborts;
   * {@link @zmq-patterns/core!ClosedError | ClosedError} when the client is closed.
   */
  request(
    body: FrameLike | readonly FrameLike[],
    options: BinaryStarRequestOptions = {},
  ): Promise<Buffer[]> {
    const frames = toFrames(typeof body === "string" || body instanceof Uint8Array ? [body] : body);
    const timeoutMs = checkDuration("timeoutMs", options.timeoutMs ?? this.timeoutMs);
    const maxAttempts = checkAttempts(options.maxAttempts ?? this.maxAttempts);
    const ahead = this.#queue;
    const run = waitForTurn(ahead, options.signal).then(() =>
      this.#run(frames, timeoutMs, maxAttempts, options.signal),
    );
    // The next request waits for this one and for those ahead of it: one aborted while queued
    // must not let the next overtake a request that still owns the socket.
    this.#queue = Promise.allSettled([ahead, run]).then(() => {});
    return run;
  }

  /** Closes the socket (linger 0); pending and later requests reject with `ClosedError`. Idempotent. */
  async close(): Promise<void> {
    this.#closing.abort(new ClosedError("client closed"));
    this.#discardSocket();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #run(
    request: Buffer[],
    timeoutMs: number,
    maxAttempts: number,
    signal?: AbortSignal,
  ): Promise<Buffer[]> {
    const stop = signal ? AbortSignal.any([signal, this.#closing.signal]) : this.#closing.signal;
    for (let attempt = 1; ; attempt++) {
      this.#checkStopped(stop);
      const endpoint = this.endpoint;
      const receiver = this.#connect();
      this.emit("sent", { attempt, endpoint });
      this.#logger.debug("request sent", { attempt, endpoint });
      try {
        await (this.#socket as Request).send(request);
        const reply = await receiver.receive({ timeoutMs, signal: stop });
        if (!this.#validateReply || this.#validateReply(reply, request)) {
          this.emit("reply", { attempt, endpoint });
          return reply;
        }
        // A REQ socket takes exactly one reply per request, so no better one can follow: the
        // reference would wait out its timeout here; we fail over at once.
        this.#logger.warn("bad reply from server", { attempt, endpoint });
        this.emit("invalidReply", { attempt, endpoint, reply });
        throw new TimeoutError("invalid reply", timeoutMs);
      } catch (error) {
        // The REQ socket now waits for a reply that may never come: it cannot be reused.
        this.#discardSocket();
        this.#checkStopped(stop);
        if (!(error instanceof TimeoutError)) throw error;
      }
      if (attempt >= maxAttempts) {
        this.emit("abandoned", { attempts: attempt });
        this.#logger.warn("no reply from either server, abandoning", { attempts: attempt });
        throw new RequestAbandonedError(
          `no reply from ${this.endpoints.join(" or ")} after ${attempt} attempt(s) of ${timeoutMs} ms`,
          attempt,
          timeoutMs,
        );
      }
      const from = endpoint;
      this.#index = (this.#index + 1) % this.endpoints.length;
      const to = this.endpoint;
      this.#logger.info("server seems to be down, failing over", { attempt, from, to });
      this.emit("failover", { attempt, from, to });
      try {
        await sleep(this.settleDelayMs, { signal: stop });
      } catch {
        this.#checkStopped(stop);
      }
    }
  }

  #checkStopped(stop: AbortSignal): void {
    if (this.#closing.signal.aborted) throw new ClosedError("client closed");
    if (stop.aborted) throw new AbortedError("request aborted", { cause: stop.reason });
  }

  #connect(): Receiver {
    if (this.#socket && this.#receiver) return this.#receiver;
    const socket = new Request({ linger: 0 });
    socket.connect(this.endpoint);
    this.#socket = socket;
    this.#receiver = new Receiver(socket, { capacity: 1 });
    return this.#receiver;
  }

  #discardSocket(): void {
    this.#receiver?.close();
    if (this.#socket) closeSocket(this.#socket);
    this.#socket = undefined;
    this.#receiver = undefined;
  }
}

/**
 * Resolves once the requests ahead (`ahead`, which never rejects) are done, or rejects with
 * `AbortedError` as soon as `signal` aborts: a queued request gives up without waiting its turn.
 */
function waitForTurn(ahead: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (!signal) return ahead;
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(new AbortedError("request aborted", { cause: signal.reason }));
    if (signal.aborted) {
      onAbort();
      return;
    }
    signal.addEventListener("abort", onAbort, { once: true });
    void ahead.then(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    });
  });
}

function checkDelay(ms: number): number {
  if (!Number.isFinite(ms) || ms < 0) {
    throw new InvalidArgumentError(`settleDelayMs must be a number >= 0, got ${String(ms)}`);
  }
  return ms;
}

function checkAttempts(value: number): number {
  if (value === Number.POSITIVE_INFINITY) return value;
  if (!Number.isInteger(value) || value < 1) {
    throw new InvalidArgumentError(`maxAttempts must be an integer >= 1 or Infinity, got ${value}`);
  }
  return value;
}
