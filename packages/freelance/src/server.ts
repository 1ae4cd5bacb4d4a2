/**
 * `FreelanceServer`: the server side of all three Freelance models (spec 2.2-2.4).
 * @module
 */
import { EventEmitter } from "node:events";
import {
  type Closeable,
  CloseStack,
  Counters,
  checkEndpoint,
  checkInteger,
  createLogger,
  type FrameLike,
  InvalidArgumentError,
  identityKey,
  joinEnvelope,
  type Logger,
  ProtocolError,
  SendQueue,
  splitEnvelope,
  toFrame,
} from "@zmq-patterns/core";
import { Router } from "zeromq";
import {
  DEFAULT_SERVER_ENDPOINT,
  decodeFlpCommand,
  decodeModel2Request,
  encodeFlpReply,
  encodeModel2Reply,
  encodePong,
  type FreelanceModel,
  identityForEndpoint,
  OK_FRAME,
} from "./protocol.js";

/**
 * The application's work: receives the request body and returns the reply body. Model one's
 * default echoes the body; models two and three answer `["OK"]` as the Guide's servers do. For
 * model two the body is the single request frame after the sequence.
 */
export type FreelanceHandler = (
  body: Buffer[],
) => FrameLike | readonly FrameLike[] | Promise<FrameLike | readonly FrameLike[]>;

/** Options of {@link FreelanceServer.start}. */
export interface FreelanceServerOptions {
  /** Which model's clients this server answers (spec 2.4.5). */
  model: FreelanceModel;
  /** Where to bind. Default `tcp://*:5555`. */
  bind?: string;
  /**
   * Model three: the server's routing identity, which must be exactly the endpoint clients
   * connect to (RFC 10/FLP). Default: the bind endpoint with a wildcard host read as `localhost`
   * (`tcp://*:5555` -> `tcp://localhost:5555`, as the Guide's flserver3).
   */
  identity?: string;
  /** The work; see {@link FreelanceHandler}. */
  handler?: FreelanceHandler;
  /**
   * Requests handled at once; when reached, the server stops reading until one finishes, so a
   * slow handler pushes back through ZeroMQ instead of growing memory. Default 1,000.
   */
  maxInFlight?: number;
  /** Replies held for the socket before they are dropped. Default 1,000. */
  sendCapacity?: number;
  /** Where to log. Default: quiet unless `ZMQ_PATTERNS_DEBUG` enables `freelance:server`. */
  logger?: Logger;
}

/** Events of {@link FreelanceServer}. */
export interface FreelanceServerEvents {
  /** A request was answered (its reply queued for the socket). */
  reply: [{ from: string }];
  /** A 10/FLP PING was answered with PONG. */
  ping: [{ from: string }];
  /** A message was dropped; `from` is the client's routing identity in hex. */
  dropped: [{ reason: string; from: string }];
}

/** A snapshot of a server's counters. */
export interface FreelanceServerStats {
  requests: number;
  pings: number;
  inFlight: number;
  handlerErrors: number;
  dropped: Record<string, number>;
}

const echo: FreelanceHandler = (body) => body;
const ok: FreelanceHandler = () => [OK_FRAME];

/**
 * A Freelance server for model one, two or three.
 *
 * - Model one (flserver1): answers REQ clients with the handler's reply (an echo by default).
 * - Model two (flserver2): requests are exactly `[sequence][body]`; the reply is
 *   `[sequence][reply...]` (`["OK"]` by default). The reference asserts on anything else and
 *   crashes; we count and drop it (fix 2.6.9).
 * - Model three (flserver3, RFC 10/FLP): a ROUTER whose identity is its public endpoint;
 *   `PING` gets `PONG`, `[control][body...]` gets `[control][reply...]`.
 *
 * Models one and two speak REP's envelope from a ROUTER, so they are wire-compatible with REQ
 * and DEALER clients while serving requests concurrently and dropping malformed ones (a REP
 * socket can neither). The endpoint is configurable for every model (the Guide's flserver3
 * hard-codes 5555).
 *
 * @example
 * ```ts
 * await using server = await FreelanceServer.start({ model: 3, bind: "tcp://*:5555" });
 * // clients connect to "tcp://localhost:5555", the server's identity
 * ```
 */
export class FreelanceServer extends EventEmitter<FreelanceServerEvents> implements Closeable {
  /** The model this server speaks. */
  readonly model: FreelanceModel;
  /** Model three: the routing identity clients address; `undefined` for models one and two. */
  readonly identity: string | undefined;
  readonly #bind: string;
  readonly #handler: FreelanceHandler;
  readonly #maxInFlight: number;
  readonly #logger: Logger;
  readonly #stack = new CloseStack();
  readonly #socket: Router;
  readonly #out: SendQueue;
  readonly #dropped = new Counters();
  readonly #counts = { requests: 0, pings: 0, handlerErrors: 0 };
  #inFlight = 0;
  #slotFree: (() => void) | undefined;

  private constructor(options: FreelanceServerOptions) {
    super();
    if (![1, 2, 3].includes(options.model)) {
      throw new InvalidArgumentError(`model must be 1, 2 or 3, got ${String(options.model)}`);
    }
    this.model = options.model;
    this.#bind = checkEndpoint("bind", options.bind ?? DEFAULT_SERVER_ENDPOINT);
    if (this.model === 3) {
      if (options.identity === undefined && /:(\*|0)$/.test(this.#bind)) {
        // The port is only known once bound, but the identity must be set before binding.
        throw new InvalidArgumentError(
          `model 3 needs an identity when the bind endpoint has no fixed port (${this.#bind}): give the endpoint clients will connect to`,
        );
      }
      this.identity = checkEndpoint(
        "identity",
        options.identity ?? identityForEndpoint(this.#bind),
      );
    } else if (options.identity !== undefined) {
      throw new InvalidArgumentError("identity is only used by model 3");
    } else {
      this.identity = undefined;
    }
    if (options.handler !== undefined && typeof options.handler !== "function") {
      throw new InvalidArgumentError("handler must be a function");
    }
    this.#handler = options.handler ?? (this.model === 1 ? echo : ok);
    this.#maxInFlight = checkInteger("maxInFlight", options.maxInFlight ?? 1000);
    const capacity = checkInteger("sendCapacity", options.sendCapacity ?? 1000);
    this.#logger = options.logger ?? createLogger("freelance:server");
    this.#socket = this.#stack.socket(
      new Router(this.identity === undefined ? {} : { routingId: this.identity }),
    );
    this.#out = new SendQueue(this.#socket, {
      capacity,
      onError: (_error, frames) =>
        this.#drop("unroutable reply", identityKey(frames[0] ?? Buffer.alloc(0))),
    });
    this.#stack.defer(() => {
      this.#out.close();
      this.#slotFree?.();
    });
  }

  /**
   * Binds and starts serving.
   *
   * @throws {@link @zmq-patterns/core!InvalidArgumentError | InvalidArgumentError} for bad
   * options; the socket error when the endpoint cannot be bound.
   */
  static async start(options: FreelanceServerOptions): Promise<FreelanceServer> {
    const server = new FreelanceServer(options);
    try {
      await server.#socket.bind(server.#bind);
    } catch (error) {
      await server.close();
      throw error;
    }
    server.#logger.info("serving", { model: server.model, endpoint: server.endpoint });
    void server.#serve();
    return server;
  }

  /** The bound endpoint, with the real port. */
  get endpoint(): string {
    return this.#socket.lastEndpoint ?? this.#bind;
  }

  /** A snapshot of the counters. */
  stats(): FreelanceServerStats {
    return { ...this.#counts, inFlight: this.#inFlight, dropped: this.#dropped.snapshot() };
  }

  /** Stops serving and closes the socket (linger 0): replies still queued are discarded. Idempotent. */
  close(): Promise<void> {
    return this.#stack.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #serve(): Promise<void> {
    for (;;) {
      if (this.#inFlight >= this.#maxInFlight) {
        await new Promise<void>((resolve) => {
          this.#slotFree = resolve;
        });
      }
      let message: Buffer[];
      try {
        message = await this.#socket.receive();
      } catch {
        return; // closed
      }
      const [identity, ...rest] = message as [Buffer, ...Buffer[]];
      try {
        this.#dispatch(identity, rest);
      } catch (error) {
        this.#drop(
          error instanceof ProtocolError ? error.reason : "undecodable message",
          identityKey(identity),
        );
      }
    }
  }

  /** Decodes one message and answers it; throws a ProtocolError for the caller to drop it. */
  #dispatch(identity: Buffer, message: Buffer[]): void {
    if (this.model === 3) {
      const command = decodeFlpCommand(message);
      if (command.type === "ping") {
        this.#counts.pings += 1;
        if (this.#send([identity, ...encodePong()]))
          this.emit("ping", { from: identityKey(identity) });
        return;
      }
      this.#run(identity, command.body, (reply) => [
        identity,
        ...encodeFlpReply(command.control, reply),
      ]);
      return;
    }
    // Models one and two: REP semantics, [routing...][""][body...].
    const { envelope, body } = splitEnvelope([identity, ...message]);
    if (this.model === 1) {
      if (body.length === 0) throw new ProtocolError("missing frame: body");
      this.#run(identity, body, (reply) => joinEnvelope(envelope, reply));
      return;
    }
    const request = decodeModel2Request(body);
    this.#run(identity, [request.body], (reply) =>
      joinEnvelope(envelope, encodeModel2Reply(request.sequence, reply)),
    );
  }

  #run(identity: Buffer, body: Buffer[], frame: (reply: Buffer[]) => Buffer[]): void {
    this.#counts.requests += 1;
    this.#inFlight += 1;
    const from = identityKey(identity);
    const finish = () => {
      this.#inFlight -= 1;
      const wake = this.#slotFree;
      this.#slotFree = undefined;
      wake?.();
    };
    const answer = (reply: FrameLike | readonly FrameLike[]) => {
      const frames =
        typeof reply === "string" || reply instanceof Uint8Array
          ? [toFrame(reply)]
          : reply.map(toFrame);
      if (frames.length === 0) throw new ProtocolError("handler returned no frame");
      if (this.#send(frame(frames))) this.emit("reply", { from });
    };
    const fail = (error: unknown) => {
      this.#counts.handlerErrors += 1;
      this.#logger.error("handler failed", {
        error: error instanceof Error ? error.message : String(error),
      });
    };
    try {
      const result = this.#handler(body);
      if (result && typeof (result as Promise<unknown>).then === "function") {
        (result as Promise<FrameLike | readonly FrameLike[]>)
          .then(answer)
          .catch(fail)
          .finally(finish);
        return;
      }
      answer(result as FrameLike | readonly FrameLike[]);
    } catch (error) {
      fail(error);
    }
    finish();
  }

  /** Queues `frames` for the socket; false when closed or when the queue is full (dropped). */
  #send(frames: Buffer[]): boolean {
    if (this.#out.closed) return false;
    if (this.#out.trySend(frames)) return true;
    this.#drop("send queue full", identityKey(frames[0] ?? Buffer.alloc(0)));
    return false;
  }

  #drop(reason: string, from: string): void {
    this.#dropped.increment(reason);
    this.#logger.warn("dropped message", { reason, from });
    this.emit("dropped", { reason, from });
  }
}
