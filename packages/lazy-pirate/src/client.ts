/**
 * `LazyPirateClient`: reliable request-reply from the client side.
 * @module
 */
import { EventEmitter } from "node:events";
import {
  type Closeable,
  ClosedError,
  checkDuration,
  checkEndpoint,
  checkInteger,
  closeSocket,
  createLogger,
  type FrameLike,
  type Logger,
  ProtocolError,
  Receiver,
  RequestAbandonedError,
  TimeoutError,
  toFrames,
} from "@zmq-patterns/core";
import { Request } from "zeromq";

/** The Guide's client endpoint. */
export const DEFAULT_CLIENT_ENDPOINT = "tcp://localhost:5555";
/** The Guide's `REQUEST_TIMEOUT`. */
export const DEFAULT_TIMEOUT_MS = 2500;
/** The Guide's `REQUEST_RETRIES`: sends per request in total. */
export const DEFAULT_RETRIES = 3;

/** Options of {@link LazyPirateClient}. */
export interface LazyPirateClientOptions {
  /** Server endpoint. Default `tcp://localhost:5555`. */
  endpoint?: string;
  /** Time to wait for a reply to one send. Default 2,500 ms. */
  timeoutMs?: number;
  /**
   * Sends per request in total, as the Guide's `REQUEST_RETRIES` (default 3: the first send and
   * two resends), after which the request is abandoned.
   */
  retries?: number;
  /**
   * Checks a reply (the Guide's client checks that the server echoed its sequence number). A
   * reply that fails the check is discarded without consuming a retry: the client reconnects and
   * resends at once, up to `retries` times per request, then rejects with a {@link @zmq-patterns/core!ProtocolError | ProtocolError}.
   */
  validateReply?: (reply: Buffer[], request: Buffer[]) => boolean;
  /** Where to log. Default: quiet unless `ZMQ_PATTERNS_DEBUG` enables `lazy-pirate:client`. */
  logger?: Logger;
}

/** Options of one {@link LazyPirateClient.request}; override the client's. */
export interface RequestOptions {
  timeoutMs?: number;
  retries?: number;
  /** Abandons the request (rejects with `AbortedError`). */
  signal?: AbortSignal;
}

/** Events of {@link LazyPirateClient}. */
export interface LazyPirateClientEvents {
  /** A request (or a resend) left. */
  sent: [{ attempt: number; request: Buffer[] }];
  /** No reply in time: the socket is replaced and the request resent. */
  retry: [{ attempt: number; timeoutMs: number }];
  /** A reply failed `validateReply` and was discarded. */
  invalidReply: [{ attempt: number; reply: Buffer[] }];
  /** Every attempt timed out. */
  abandoned: [{ attempts: number }];
}

/**
 * A request-reply client that survives a server that crashes, restarts, is slow, or loses
 * messages: it waits for each reply with a timeout and, when none comes, closes its REQ socket
 * (linger 0), opens a new one and resends, up to a retry limit.
 *
 * Because a socket that timed out is discarded, a late reply to an earlier attempt can never be
 * returned as the answer to a later one. Delivery to the caller is at most once; execution on the
 * server is at least once (a resend may run again), so use it with idempotent requests.
 *
 * Requests made concurrently are sent one after the other (a REQ socket is strictly
 * send-then-receive).
 *
 * @example
 * ```ts
 * await using client = new LazyPirateClient({ endpoint: "tcp://localhost:5555" });
 * const reply = await client.request("hello");
 * ```
 */
export class LazyPirateClient extends EventEmitter<LazyPirateClientEvents> implements Closeable {
  readonly endpoint: string;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly #validateReply: ((reply: Buffer[], request: Buffer[]) => boolean) | undefined;
  readonly #logger: Logger;
  #socket: Request | undefined;
  #receiver: Receiver | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  constructor(options: LazyPirateClientOptions = {}) {
    super();
    this.endpoint = checkEndpoint("endpoint", options.endpoint ?? DEFAULT_CLIENT_ENDPOINT);
    this.timeoutMs = checkDuration("timeoutMs", options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    this.retries = checkInteger("retries", options.retries ?? DEFAULT_RETRIES);
    this.#validateReply = options.validateReply;
    this.#logger = options.logger ?? createLogger("lazy-pirate:client");
  }

  /**
   * Sends `body` (one frame or several) and resolves with the reply frames.
   *
   * @throws {@link @zmq-patterns/core!RequestAbandonedError | RequestAbandonedError} (code `TIMEOUT`) after `retries` sends without reply;
   * {@link @zmq-patterns/core!ProtocolError | ProtocolError} after `retries` invalid replies; `AbortedError` when `signal` aborts;
   * {@link @zmq-patterns/core!ClosedError | ClosedError} when the client is closed.
   */
  request(body: FrameLike | readonly FrameLike[], options: RequestOptions = {}): Promise<Buffer[]> {
    const frames = toFrames(typeof body === "string" || body instanceof Uint8Array ? [body] : body);
    const timeoutMs = checkDuration("timeoutMs", options.timeoutMs ?? this.timeoutMs);
    const retries = checkInteger("retries", options.retries ?? this.retries);
    const run = this.#queue.then(() => this.#run(frames, timeoutMs, retries, options.signal));
    this.#queue = run.catch(() => {});
    return run;
  }

  /** Closes the socket (linger 0); pending and later requests reject with {@link @zmq-patterns/core!ClosedError | ClosedError}. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#discardSocket();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #run(
    request: Buffer[],
    timeoutMs: number,
    retries: number,
    signal?: AbortSignal,
  ): Promise<Buffer[]> {
    let timeouts = 0;
    let invalid = 0;
    for (let attempt = 1; ; attempt++) {
      if (this.#closed) throw new ClosedError("client closed");
      const receiver = this.#connect();
      this.emit("sent", { attempt, request });
      this.#logger.debug("request sent", { attempt, endpoint: this.endpoint });
      let reply: Buffer[];
      try {
        await (this.#socket as Request).send(request);
        reply = await receiver.receive({ timeoutMs, ...(signal ? { signal } : {}) });
      } catch (error) {
        // The REQ socket is now waiting for a reply that may never come: it cannot be reused.
        this.#discardSocket();
        if (this.#closed) throw new ClosedError("client closed");
        if (!(error instanceof TimeoutError)) throw error;
        timeouts += 1;
        if (timeouts >= retries) {
          this.emit("abandoned", { attempts: attempt });
          this.#logger.warn("server seems to be offline, abandoning", { attempts: attempt });
          throw new RequestAbandonedError(
            `no reply from ${this.endpoint} after ${attempt} attempt(s) of ${timeoutMs} ms`,
            attempt,
            timeoutMs,
          );
        }
        this.emit("retry", { attempt, timeoutMs });
        this.#logger.info("no response from server, retrying", { attempt, timeoutMs });
        continue;
      }
      if (this.#validateReply && !this.#validateReply(reply, request)) {
        invalid += 1;
        this.emit("invalidReply", { attempt, reply });
        this.#logger.warn("malformed reply from server", { attempt });
        this.#discardSocket();
        if (invalid >= retries)
          throw new ProtocolError(`${invalid} invalid replies from ${this.endpoint}`);
        continue;
      }
      return reply;
    }
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
