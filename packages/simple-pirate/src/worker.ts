/**
 * `SimplePirateWorker`: a REQ worker that announces itself to a Simple Pirate queue and answers
 * the requests the queue hands it.
 * @module
 */
import { randomInt } from "node:crypto";
import { EventEmitter } from "node:events";
import {
  type Closeable,
  CloseStack,
  checkEndpoint,
  closeSocket,
  createLogger,
  FaultSimulator,
  type FaultSimulatorOptions,
  type FrameLike,
  InvalidArgumentError,
  type Logger,
  ProtocolError,
  sleep,
} from "@zmq-patterns/core";
import { Request } from "zeromq";
import {
  type ClientMessage,
  DEFAULT_WORKER_ENDPOINT,
  decodeWorkerRequest,
  encodeReady,
  encodeWorkerReply,
} from "./protocol.js";

/** Computes the reply frames to a request's body frames. */
export type SimplePirateHandler = (
  body: Buffer[],
) => readonly FrameLike[] | Promise<readonly FrameLike[]>;

/** Options of {@link SimplePirateWorker}. */
export interface SimplePirateWorkerOptions {
  /** The queue's backend. Default `tcp://localhost:5556`. */
  endpoint?: string;
  /** Computes replies. Default: echo the request body unchanged, as the Guide's worker. */
  handler?: SimplePirateHandler;
  /**
   * The worker's routing identity, as the queue sees it: 1 to 255 bytes, not starting with a zero
   * byte (ZeroMQ reserves those), kept across restarts. Reconnecting under the same identity
   * needs a queue whose backend allows ROUTER handover, as {@link SimplePirateQueue} does: other
   * ROUTERs ignore a connection whose identity they still hold. Default: random, `"%04X-%04X"`
   * as the Guide (`"1A2B-3C4D"`), and a new one after every restart.
   */
  identity?: string;
  /** Failure injection (crash, overload, work time); a simulator or its options. Default: none. */
  simulate?: FaultSimulator | FaultSimulatorOptions;
  /** Where to log. Default: quiet unless `ZMQ_PATTERNS_DEBUG` enables `simple-pirate:worker`. */
  logger?: Logger;
}

/** Events of {@link SimplePirateWorker}. */
export interface SimplePirateWorkerEvents {
  /** A request arrived; `kind` says what the simulator decided. */
  request: [{ cycle: number; body: Buffer[]; kind: "normal" | "slow" | "crash" }];
  /** The simulator decided to crash: the worker closed its socket without replying. */
  crash: [{ cycle: number }];
  /**
   * The worker could not answer a request (the handler failed, or the request was malformed), so
   * it dropped the request and reconnected under `identity` with a new READY.
   */
  restart: [{ reason: string; previousIdentity: string; identity: string }];
}

/** What {@link SimplePirateWorker.stats} returns. */
export interface SimplePirateWorkerStats {
  /** Requests received. */
  requests: number;
  /** Replies sent. */
  replies: number;
  /** Times the worker dropped a request and reconnected (see the `restart` event). */
  restarts: number;
}

/** A random identity in the Guide's `"%04X-%04X"` format, such as `"1A2B-3C4D"`. */
export function randomWorkerIdentity(): string {
  const half = () => randomInt(0x10000).toString(16).toUpperCase().padStart(4, "0");
  return `${half()}-${half()}`;
}

/**
 * A Simple Pirate worker: it connects a REQ socket to the queue's backend, sends READY once, then
 * answers each request through its handler (echo by default), sending the client's envelope back
 * with the reply so the queue can route it.
 *
 * A REQ socket must send before it can receive again, and a Simple Pirate reply has no way to
 * say "failed". So when the handler throws (or a request is malformed) the worker drops the
 * request, closes its socket, opens a new one (under a new random identity, unless `identity`
 * was given), sends READY again and emits `restart`. The client hears nothing and retries (a
 * `LazyPirateClient` does).
 *
 * Like the Guide's worker it can simulate crashes and overload: a simulated crash closes the
 * socket without replying and emits `crash`; a CLI exits the process there.
 *
 * @example
 * ```ts
 * await using worker = await SimplePirateWorker.start({
 *   endpoint: "tcp://localhost:5556",
 *   handler: (body) => [body.map(String).join(" ").toUpperCase()],
 * });
 * ```
 */
export class SimplePirateWorker
  extends EventEmitter<SimplePirateWorkerEvents>
  implements Closeable
{
  /** The queue backend the worker connects to. */
  readonly endpoint: string;
  readonly #handler: SimplePirateHandler;
  readonly #fixedIdentity: string | undefined;
  readonly #simulator: FaultSimulator;
  readonly #logger: Logger;
  readonly #stack = new CloseStack();
  readonly #closing = new AbortController();
  #identity: string;
  #socket: Request | undefined;
  #requests = 0;
  #replies = 0;
  #restarts = 0;

  private constructor(options: SimplePirateWorkerOptions) {
    super();
    this.endpoint = checkEndpoint("endpoint", options.endpoint ?? DEFAULT_WORKER_ENDPOINT);
    if (options.identity !== undefined) checkIdentity(options.identity);
    this.#fixedIdentity = options.identity;
    this.#identity = options.identity ?? randomWorkerIdentity();
    this.#handler = options.handler ?? ((body) => body);
    this.#simulator =
      options.simulate instanceof FaultSimulator
        ? options.simulate
        : new FaultSimulator(options.simulate);
    this.#logger = options.logger ?? createLogger("simple-pirate:worker");
    this.#stack.defer(() => {
      if (this.#socket) closeSocket(this.#socket);
    });
    this.#stack.defer(() => this.#closing.abort());
  }

  /**
   * Connects to the queue, sends READY and starts answering requests. Resolves once READY is
   * queued; ZeroMQ delivers it when the queue is reachable.
   *
   * @throws `InvalidArgumentError` for a bad option, before anything starts.
   */
  static async start(options: SimplePirateWorkerOptions = {}): Promise<SimplePirateWorker> {
    const worker = new SimplePirateWorker(options);
    try {
      await worker.#connect();
    } catch (error) {
      await worker.close();
      throw error;
    }
    void worker.#serve();
    return worker;
  }

  /** The routing identity the worker uses now (it changes on restart unless one was given). */
  get identity(): string {
    return this.#identity;
  }

  /** True once closed, by {@link SimplePirateWorker.close} or a simulated crash. */
  get closed(): boolean {
    return this.#stack.closed;
  }

  /** Counts of what the worker did so far. */
  stats(): SimplePirateWorkerStats {
    return { requests: this.#requests, replies: this.#replies, restarts: this.#restarts };
  }

  /** Stops answering and closes the socket (linger 0); a request being handled is dropped. Idempotent. */
  close(): Promise<void> {
    return this.#stack.close();
  }

  /** Closes the worker, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Opens a REQ socket under the current identity, connects it and sends READY. */
  async #connect(): Promise<void> {
    const socket = new Request({ linger: 0, routingId: this.#identity });
    this.#socket = socket;
    socket.connect(this.endpoint);
    await socket.send(encodeReady());
    this.#logger.debug("ready sent", { identity: this.#identity, endpoint: this.endpoint });
  }

  async #serve(): Promise<void> {
    while (!this.#stack.closed) {
      const socket = this.#socket as Request;
      let frames: Buffer[];
      try {
        frames = await socket.receive();
      } catch (error) {
        if (this.#stack.closed) return;
        if (!(await this.#restart("receive failed", error))) return;
        continue;
      }
      let request: ClientMessage;
      try {
        request = decodeWorkerRequest(frames);
      } catch (error) {
        const reason = error instanceof ProtocolError ? error.reason : "malformed request";
        if (!(await this.#restart(reason, error))) return;
        continue;
      }
      this.#requests += 1;
      const decision = this.#simulator.next();
      this.emit("request", { cycle: decision.cycle, body: request.body, kind: decision.kind });
      if (decision.kind === "crash") {
        this.#logger.warn("simulating a crash", { cycle: decision.cycle });
        await this.close();
        this.emit("crash", { cycle: decision.cycle });
        return;
      }
      if (decision.kind === "slow")
        this.#logger.info("simulating CPU overload", { cycle: decision.cycle });
      if (decision.delayMs > 0) {
        try {
          await sleep(decision.delayMs, { signal: this.#closing.signal });
        } catch {
          return; // closed while working
        }
      }
      let reply: Buffer[];
      try {
        reply = encodeWorkerReply(request.envelope, await this.#handler(request.body));
      } catch (error) {
        if (this.#stack.closed) return;
        if (!(await this.#restart("handler failed", error))) return;
        continue;
      }
      if (this.#stack.closed) return;
      try {
        await socket.send(reply);
        this.#replies += 1;
      } catch (error) {
        if (this.#stack.closed) return;
        if (!(await this.#restart("send failed", error))) return;
      }
    }
  }

  /**
   * Drops the request in hand: the REQ socket owes a reply it cannot give, so it is replaced by a
   * new one that sends READY. Returns false when the worker closed meanwhile or reconnecting failed.
   */
  async #restart(reason: string, error: unknown): Promise<boolean> {
    const previousIdentity = this.#identity;
    this.#logger.error("dropping the request and reconnecting", { reason, error });
    if (this.#socket) closeSocket(this.#socket);
    if (this.#stack.closed) return false;
    this.#identity = this.#fixedIdentity ?? randomWorkerIdentity();
    try {
      await this.#connect();
    } catch (connectError) {
      if (!this.#stack.closed) {
        this.#logger.error("could not reconnect", { error: connectError });
        await this.close();
      }
      return false;
    }
    this.#restarts += 1;
    this.emit("restart", { reason, previousIdentity, identity: this.#identity });
    return true;
  }
}

function checkIdentity(identity: string): void {
  const bytes = typeof identity === "string" ? Buffer.byteLength(identity) : 0;
  if (bytes < 1 || bytes > 255 || identity.startsWith("\0")) {
    throw new InvalidArgumentError(
      `identity must be 1 to 255 bytes not starting with a zero byte, got ${JSON.stringify(identity)}`,
    );
  }
}
