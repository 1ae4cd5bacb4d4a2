/**
 * `MajordomoAsyncClient`: the asynchronous Majordomo client (the Guide's mdcliapi2), many requests
 * in flight on one socket.
 * @module
 */
import { EventEmitter } from "node:events";
import {
  abortReason,
  type Closeable,
  ClosedError,
  Counters,
  checkEndpoint,
  checkInteger,
  closeSocket,
  createLogger,
  type FrameLike,
  InvalidArgumentError,
  type Logger,
  Msg,
  ProtocolError,
  type ReceivableSocket,
  type ReceiveOptions,
  Receiver,
  SendQueue,
  toFrames,
} from "@zmq-patterns/core";
import { Dealer } from "zeromq";
import { checkRequestService, checkVersion } from "./internal/options.js";
import {
  type ClientReply,
  DEFAULT_BROKER_ENDPOINT,
  decodeClientReply,
  encodeClientRequest,
  type MdpVersion,
} from "./protocol.js";

/** The Guide's async client keeps no bound; this one holds at most this many requests in flight by default. */
export const DEFAULT_MAX_IN_FLIGHT = 100;

/** Options of {@link MajordomoAsyncClient}. */
export interface MajordomoAsyncClientOptions {
  /** The broker. Default `tcp://localhost:5555`. */
  broker?: string;
  /**
   * Requests sent and not yet answered by a final reply before {@link MajordomoAsyncClient.send}
   * waits. Default 100.
   */
  maxInFlight?: number;
  /** Protocol version: `"0.1"` (RFC 7, default) or `"0.2"` (RFC 18, partial replies). */
  version?: MdpVersion;
  /** Log every message sent and received at debug level, as the Guide's `-v`. Default false. */
  verbose?: boolean;
  /** Where to log. Default: quiet unless `ZMQ_PATTERNS_DEBUG` enables `majordomo:async-client`. */
  logger?: Logger;
}

/** Options of one {@link MajordomoAsyncClient.send}. */
export interface AsyncSendOptions {
  /** Stops waiting for room (rejects with `AbortedError`); nothing is sent. */
  signal?: AbortSignal;
}

/** Events of {@link MajordomoAsyncClient}. */
export interface MajordomoAsyncClientEvents {
  /** A reply was malformed, from another version or for no request in flight, and was discarded. */
  discarded: [{ reason: string; frames: Buffer[] }];
}

/** A snapshot of the async client's counters. */
export interface MajordomoAsyncClientStats {
  sent: number;
  replies: number;
  partials: number;
  inFlight: number;
  /** Replies discarded, by reason. */
  discarded: Record<string, number>;
}

interface Waiter {
  resolve(): void;
  reject(error: Error): void;
}

/**
 * An asynchronous Majordomo client (RFC 7/MDP, or RFC 18/MDP with `version: "0.2"`): requests
 * are sent without waiting for replies, on one DEALER, and replies are read as they come.
 *
 * MDP carries no request ids, so replies cannot be matched to requests: they come in arrival
 * order, which across several workers is not the order of the requests (MDA-1). A timed-out
 * {@link MajordomoAsyncClient.receive} cancels nothing; a late reply comes with a later call.
 * There are no retries and no reconnection: requests in flight when the broker restarts are lost
 * and never answered (MDA-2), so use a timeout on receive and count what came back.
 *
 * At most `maxInFlight` requests are outstanding: `send` waits for a final reply to free a slot
 * (0.2 partial replies are delivered but do not). Replies that are malformed, from the other
 * version, or for a service with nothing in flight are discarded and counted.
 *
 * @example
 * ```ts
 * await using client = new MajordomoAsyncClient({ broker: "tcp://localhost:5555" });
 * for (let i = 0; i < 10; i++) await client.send("echo", `hello ${i}`);
 * for (let i = 0; i < 10; i++) console.log((await client.receive({ timeoutMs: 2500 })).body);
 * ```
 */
export class MajordomoAsyncClient
  extends EventEmitter<MajordomoAsyncClientEvents>
  implements Closeable, AsyncIterable<ClientReply>
{
  readonly broker: string;
  readonly maxInFlight: number;
  readonly version: MdpVersion;
  readonly #verbose: boolean;
  readonly #logger: Logger;
  readonly #socket: Dealer;
  readonly #out: SendQueue;
  readonly #replies: Receiver;
  /** Requests in flight per service: a reply for a service with none is not ours. */
  readonly #outstanding = new Map<string, number>();
  readonly #waiters = new Set<Waiter>();
  readonly #discarded = new Counters();
  readonly #counts = { sent: 0, replies: 0, partials: 0 };
  #inFlight = 0;
  #closed = false;

  /** @throws {@link @zmq-patterns/core!InvalidArgumentError | InvalidArgumentError} on bad options. */
  constructor(options: MajordomoAsyncClientOptions = {}) {
    super();
    this.broker = checkEndpoint("broker", options.broker ?? DEFAULT_BROKER_ENDPOINT);
    this.maxInFlight = checkInteger("maxInFlight", options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT);
    this.version = checkVersion(options.version ?? "0.1");
    this.#verbose = options.verbose ?? false;
    this.#logger = options.logger ?? createLogger("majordomo:async-client");
    this.#socket = new Dealer({ linger: 0 });
    this.#socket.connect(this.broker);
    this.#out = new SendQueue(this.#socket);
    // Replies are accounted for as they arrive, not as the application takes them, so a slot
    // frees as soon as its final reply is in.
    const socket = this.#socket;
    const source: ReceivableSocket = {
      receive: () => this.#nextReply(),
      get closed() {
        return socket.closed;
      },
    };
    this.#replies = new Receiver(source);
  }

  /** Requests sent whose final reply has not arrived. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** A snapshot of the client's counters. */
  stats(): MajordomoAsyncClientStats {
    return { ...this.#counts, inFlight: this.#inFlight, discarded: this.#discarded.snapshot() };
  }

  /**
   * Sends a request for `service`, first waiting while `maxInFlight` requests are outstanding.
   * Resolves once the socket took it.
   *
   * @throws {@link @zmq-patterns/core!InvalidArgumentError | InvalidArgumentError} at once for a bad service name or an empty body;
   * as rejections: `AbortedError` when `signal` aborts while waiting for room,
   * {@link @zmq-patterns/core!ClosedError | ClosedError} when the client is closed.
   */
  send(
    service: string,
    body: FrameLike | readonly FrameLike[],
    options: AsyncSendOptions = {},
  ): Promise<void> {
    checkRequestService(service);
    const frames = toFrames(typeof body === "string" || body instanceof Uint8Array ? [body] : body);
    if (frames.length === 0) throw new InvalidArgumentError("a request needs at least one frame");
    const request = encodeClientRequest(this.version, service, frames);
    return this.#send(service, request, options.signal);
  }

  /**
   * The next reply, in arrival order: `final` is false for a 0.2 PARTIAL. A timeout or an abort
   * cancels no request (MDA-1): the reply comes with a later call.
   *
   * @throws {@link @zmq-patterns/core!TimeoutError | TimeoutError}, `AbortedError` or {@link @zmq-patterns/core!ClosedError | ClosedError} as a rejection.
   */
  async receive(options: ReceiveOptions = {}): Promise<ClientReply> {
    return this.#decode(await this.#replies.receive(options));
  }

  /** Iterates over replies until the client closes. */
  async *[Symbol.asyncIterator](): AsyncIterator<ClientReply> {
    for await (const frames of this.#replies) yield this.#decode(frames);
  }

  /**
   * Closes the socket (linger 0). Waiting sends and receives reject with
   * {@link @zmq-patterns/core!ClosedError | ClosedError}; requests in flight are forgotten. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const error = new ClosedError("client closed");
    for (const waiter of this.#waiters) waiter.reject(error);
    this.#waiters.clear();
    this.#replies.close();
    this.#out.close();
    closeSocket(this.#socket);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #send(service: string, request: Buffer[], signal: AbortSignal | undefined): Promise<void> {
    if (this.#closed) throw new ClosedError("client closed");
    if (this.#inFlight >= this.maxInFlight) await this.#waitForSlot(signal);
    else this.#inFlight += 1;
    this.#outstanding.set(service, (this.#outstanding.get(service) ?? 0) + 1);
    this.#trace(`sending request to ${service}`, request);
    try {
      await this.#out.send(request);
    } catch (error) {
      this.#settle(service);
      throw this.#closed ? new ClosedError("client closed") : error;
    }
    this.#counts.sent += 1;
  }

  /** Resolves once a final reply handed this caller its slot. */
  #waitForSlot(signal: AbortSignal | undefined): Promise<void> {
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        this.#waiters.delete(waiter);
        reject(abortReason(signal as AbortSignal));
      };
      const waiter: Waiter = {
        resolve: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
        reject: (error) => {
          signal?.removeEventListener("abort", onAbort);
          reject(error);
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.add(waiter);
    });
  }

  /** A request of `service` is over: its slot goes to the longest waiting sender, or is freed. */
  #settle(service: string): void {
    const left = (this.#outstanding.get(service) ?? 1) - 1;
    if (left > 0) this.#outstanding.set(service, left);
    else this.#outstanding.delete(service);
    const next = this.#waiters.values().next();
    if (next.done) {
      this.#inFlight -= 1;
      return;
    }
    this.#waiters.delete(next.value);
    next.value.resolve();
  }

  /** Reads the socket for the receiver: valid replies only, each accounted for on arrival. */
  async #nextReply(): Promise<Buffer[]> {
    for (;;) {
      const frames = await this.#socket.receive();
      this.#trace("received reply", frames);
      let reply: ClientReply;
      try {
        reply = decodeClientReply(frames, this.version);
      } catch (error) {
        this.#discard(error instanceof ProtocolError ? error.reason : "undecodable", frames);
        continue;
      }
      if (!this.#outstanding.has(reply.service)) {
        this.#discard("no request in flight for this service", frames);
        continue;
      }
      if (reply.final) {
        this.#counts.replies += 1;
        this.#settle(reply.service);
      } else {
        this.#counts.partials += 1;
      }
      return frames;
    }
  }

  /** Decodes frames that {@link MajordomoAsyncClient.#nextReply} already validated. */
  #decode(frames: Buffer[]): ClientReply {
    return decodeClientReply(frames, this.version);
  }

  #discard(reason: string, frames: Buffer[]): void {
    this.#discarded.increment(reason);
    this.#logger.warn("malformed reply discarded", { reason });
    this.emit("discarded", { reason, frames });
  }

  #trace(what: string, frames: Buffer[]): void {
    if (this.#verbose) this.#logger.debug(`${what}\n${new Msg(frames).dump()}`);
  }
}
