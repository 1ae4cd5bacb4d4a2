/**
 * `MajordomoClient`: the synchronous Majordomo client (the Guide's mdcliapi), one request at a
 * time, with retries on a new socket.
 * @module
 */
import { EventEmitter } from "node:events";
import {
  abortReason,
  type Closeable,
  ClosedError,
  Counters,
  checkDuration,
  checkEndpoint,
  checkInteger,
  closeSocket,
  createLogger,
  EMPTY_FRAME,
  type FrameLike,
  FrameReader,
  InvalidArgumentError,
  type Logger,
  Msg,
  ProtocolError,
  Receiver,
  RequestAbandonedError,
  TimeoutError,
  toFrames,
} from "@zmq-patterns/core";
import { Dealer, Request } from "zeromq";
import { checkRequestService, checkVersion } from "./internal/options.js";
import {
  type ClientReply,
  DEFAULT_BROKER_ENDPOINT,
  DEFAULT_RETRIES,
  DEFAULT_TIMEOUT_MS,
  decodeClientReply,
  encodeClientRequest,
  type MdpVersion,
} from "./protocol.js";

/** Options of {@link MajordomoClient}. */
export interface MajordomoClientOptions {
  /** The broker. Default `tcp://localhost:5555`. */
  broker?: string;
  /** Time to wait for a reply to one send (for 0.2, between two replies). Default 2,500 ms. */
  timeoutMs?: number;
  /** Sends per request in total, as the Guide's mdcliapi (MDC-1). Default 3. */
  retries?: number;
  /**
   * Protocol version: `"0.1"` (RFC 7, default) uses a REQ socket; `"0.2"` (RFC 18) a DEALER, as
   * that version requires, and delivers partial replies.
   */
  version?: MdpVersion;
  /** Log every message sent and received at debug level, as the Guide's `-v`. Default false. */
  verbose?: boolean;
  /** Where to log. Default: quiet unless `ZMQ_PATTERNS_DEBUG` enables `majordomo:client`. */
  logger?: Logger;
}

/** What an `onPartial` callback learns besides the partial reply's body. */
export interface PartialInfo {
  /**
   * The attempt the partial belongs to. A request sent again starts its stream again, so a new
   * attempt number means the partials before it were from an abandoned attempt.
   */
  attempt: number;
}

/** Options of one {@link MajordomoClient.request}; they override the client's. */
export interface MajordomoRequestOptions {
  timeoutMs?: number;
  retries?: number;
  /** Abandons the request (rejects with `AbortedError`). */
  signal?: AbortSignal;
  /** Receives each PARTIAL reply (MDP/0.2) before the request resolves with the FINAL one. */
  onPartial?: (body: Buffer[], info: PartialInfo) => void;
}

/** Events of {@link MajordomoClient}. */
export interface MajordomoClientEvents {
  /** A request (or a resend) left. */
  sent: [{ service: string; attempt: number }];
  /** No valid reply in time: the socket is replaced and the request sent again. */
  retry: [{ service: string; attempt: number; timeoutMs: number }];
  /** A reply was malformed, from another version or for another service, and was discarded. */
  discarded: [{ reason: string; frames: Buffer[] }];
  /** Every attempt failed. */
  abandoned: [{ service: string; attempts: number }];
}

/** A snapshot of the client's counters. */
export interface MajordomoClientStats {
  requests: number;
  replies: number;
  partials: number;
  retries: number;
  abandoned: number;
  /** Replies discarded, by reason. */
  discarded: Record<string, number>;
}

/** One socket and the reader on it. */
interface Line {
  socket: Request | Dealer;
  receiver: Receiver;
}

/**
 * A synchronous Majordomo client (RFC 7/MDP, or RFC 18/MDP with `version: "0.2"`): it sends a
 * request for a named service and waits for the reply with a timeout; when none comes it closes
 * its socket (linger 0), opens a new one and sends again, `retries` times in all, then rejects
 * with a {@link @zmq-patterns/core!RequestAbandonedError | RequestAbandonedError}.
 *
 * Unlike the Guide's mdcliapi it also replaces the socket after giving up (MDC-2), so the next
 * request is really sent and never gets the late reply of an abandoned one; and a malformed reply,
 * or one from another version or for another service, is discarded instead of aborting the
 * process (MDC-3). Requests made concurrently are sent one after the other. A request may run
 * more than once on the workers (MDC-4): use it for idempotent services.
 *
 * @example
 * ```ts
 * await using client = new MajordomoClient({ broker: "tcp://localhost:5555" });
 * const reply = await client.request("echo", "Hello world");
 * ```
 */
export class MajordomoClient extends EventEmitter<MajordomoClientEvents> implements Closeable {
  readonly broker: string;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly version: MdpVersion;
  readonly #verbose: boolean;
  readonly #logger: Logger;
  readonly #discarded = new Counters();
  readonly #counts = { requests: 0, replies: 0, partials: 0, retries: 0, abandoned: 0 };
  #line: Line | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  /** @throws {@link @zmq-patterns/core!InvalidArgumentError | InvalidArgumentError} on bad options. */
  constructor(options: MajordomoClientOptions = {}) {
    super();
    this.broker = checkEndpoint("broker", options.broker ?? DEFAULT_BROKER_ENDPOINT);
    this.timeoutMs = checkDuration("timeoutMs", options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    this.retries = checkInteger("retries", options.retries ?? DEFAULT_RETRIES);
    this.version = checkVersion(options.version ?? "0.1");
    this.#verbose = options.verbose ?? false;
    this.#logger = options.logger ?? createLogger("majordomo:client");
  }

  /** A snapshot of the client's counters. */
  stats(): MajordomoClientStats {
    return { ...this.#counts, discarded: this.#discarded.snapshot() };
  }

  /**
   * Sends `body` (one frame or several) to `service` and resolves with the reply body.
   *
   * @throws {@link @zmq-patterns/core!InvalidArgumentError | InvalidArgumentError} at once for a bad service name, an empty body or bad options;
   * as rejections: {@link @zmq-patterns/core!RequestAbandonedError | RequestAbandonedError} (code `TIMEOUT`) after `retries` attempts without a valid reply,
   * `AbortedError` when `signal` aborts, {@link @zmq-patterns/core!ClosedError | ClosedError} when the client closes,
   * or what `onPartial` throws.
   */
  request(
    service: string,
    body: FrameLike | readonly FrameLike[],
    options: MajordomoRequestOptions = {},
  ): Promise<Buffer[]> {
    const frames = encodeRequest(this.version, service, body);
    const timeoutMs = checkDuration("timeoutMs", options.timeoutMs ?? this.timeoutMs);
    const retries = checkInteger("retries", options.retries ?? this.retries);
    const run = this.#queue.then(() => this.#run(service, frames, timeoutMs, retries, options));
    this.#queue = run.catch(() => {});
    return run;
  }

  /** Closes the socket (linger 0); pending and later requests reject with {@link @zmq-patterns/core!ClosedError | ClosedError}. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#discardLine();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #run(
    service: string,
    request: Buffer[],
    timeoutMs: number,
    retries: number,
    options: MajordomoRequestOptions,
  ): Promise<Buffer[]> {
    this.#counts.requests += 1;
    for (let attempt = 1; ; attempt++) {
      if (this.#closed) throw new ClosedError("client closed");
      if (options.signal?.aborted) throw abortReason(options.signal);
      let reply: Buffer[] | "retry";
      try {
        reply = await this.#attempt(service, request, timeoutMs, attempt, options);
      } catch (error) {
        // The socket may still get a reply to this attempt: it must never serve another one.
        this.#discardLine();
        if (this.#closed) throw new ClosedError("client closed");
        if (!(error instanceof TimeoutError)) throw error;
        reply = "retry";
      }
      if (reply !== "retry") return reply;
      this.#discardLine(); // also after the last attempt (fixes MDC-2)
      if (attempt >= retries) {
        this.#counts.abandoned += 1;
        this.emit("abandoned", { service, attempts: attempt });
        this.#logger.warn("permanent error, abandoning request", { service, attempts: attempt });
        throw new RequestAbandonedError(
          `no reply from service "${service}" at ${this.broker} after ${attempt} attempt(s) of ${timeoutMs} ms`,
          attempt,
          timeoutMs,
        );
      }
      this.#counts.retries += 1;
      this.emit("retry", { service, attempt, timeoutMs });
      this.#logger.info("no reply, reconnecting", { service, attempt });
    }
  }

  /**
   * One send and the wait for its final reply: the reply body, or `"retry"` when a REQ socket got
   * a reply it had to discard (it takes one reply per request, so the right one cannot come).
   *
   * @throws {@link @zmq-patterns/core!TimeoutError | TimeoutError} when no valid reply came in
   * time (a PARTIAL restarts the clock).
   */
  async #attempt(
    service: string,
    request: Buffer[],
    timeoutMs: number,
    attempt: number,
    options: MajordomoRequestOptions,
  ): Promise<Buffer[] | "retry"> {
    const { signal, onPartial } = options;
    const line = this.#connect();
    this.emit("sent", { service, attempt });
    this.#trace(`sending request to ${service} (attempt ${attempt})`, request);
    await line.socket.send(request);
    let deadline = performance.now() + timeoutMs;
    for (;;) {
      const remaining = Math.max(0, deadline - performance.now());
      const frames = await line.receiver.receive({
        timeoutMs: remaining,
        ...(signal ? { signal } : {}),
      });
      this.#trace("received reply", frames);
      const reply = this.#accept(frames, service);
      if (reply === undefined) {
        if (this.version === "0.1") return "retry";
        continue;
      }
      if (reply.final) {
        this.#counts.replies += 1;
        return reply.body;
      }
      this.#counts.partials += 1;
      onPartial?.(reply.body, { attempt });
      deadline = performance.now() + timeoutMs;
    }
  }

  /** Decodes a reply; a bad one is counted, reported and `undefined` (MDC-3). */
  #accept(frames: Buffer[], service: string): ClientReply | undefined {
    let reply: ClientReply;
    try {
      // A REQ socket took the empty delimiter off: the codec reads the frames with it.
      const received = this.version === "0.1" ? [EMPTY_FRAME, ...frames] : frames;
      reply = decodeClientReply(received, this.version);
    } catch (error) {
      return this.#discard(error instanceof ProtocolError ? error.reason : "undecodable", frames);
    }
    if (reply.service !== service) return this.#discard("unexpected service", frames);
    return reply;
  }

  #discard(reason: string, frames: Buffer[]): undefined {
    this.#discarded.increment(reason);
    this.#logger.warn("malformed reply discarded", { reason });
    this.emit("discarded", { reason, frames });
    return undefined;
  }

  #connect(): Line {
    if (this.#line) return this.#line;
    const socket = this.version === "0.1" ? new Request({ linger: 0 }) : new Dealer({ linger: 0 });
    socket.connect(this.broker);
    this.#line = { socket, receiver: new Receiver(socket, { capacity: 16 }) };
    return this.#line;
  }

  #discardLine(): void {
    if (!this.#line) return;
    this.#line.receiver.close();
    closeSocket(this.#line.socket);
    this.#line = undefined;
  }

  #trace(what: string, frames: Buffer[]): void {
    if (this.#verbose) this.#logger.debug(`${what}\n${new Msg(frames).dump()}`);
  }
}

/**
 * Encodes a request as the client's socket sends it: a DEALER's frames, or for 0.1 a REQ's, which
 * adds the empty delimiter itself.
 *
 * @throws {@link @zmq-patterns/core!InvalidArgumentError | InvalidArgumentError} for a bad service name or an empty body.
 */
function encodeRequest(
  version: MdpVersion,
  service: string,
  body: FrameLike | readonly FrameLike[],
): Buffer[] {
  checkRequestService(service);
  const frames = toFrames(typeof body === "string" || body instanceof Uint8Array ? [body] : body);
  if (frames.length === 0) throw new InvalidArgumentError("a request needs at least one frame");
  const encoded = encodeClientRequest(version, service, frames);
  if (version === "0.2") return encoded;
  const reader = new FrameReader(encoded);
  reader.empty();
  return reader.rest();
}
