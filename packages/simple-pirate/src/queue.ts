/**
 * `SimplePirateQueue`: the load-balancing queue between Lazy Pirate clients and REQ workers.
 * @module
 */
import { EventEmitter } from "node:events";
import {
  type Closeable,
  CloseStack,
  Counters,
  checkEndpoint,
  createLogger,
  identityKey,
  type Logger,
  ProtocolError,
  SendQueue,
} from "@zmq-patterns/core";
import { Router } from "zeromq";
import {
  type BackendMessage,
  type ClientMessage,
  DEFAULT_BACKEND_BIND,
  DEFAULT_FRONTEND_BIND,
  decodeBackend,
  decodeFrontend,
  encodeClientReply,
  encodeDispatch,
} from "./protocol.js";

/** Options of {@link SimplePirateQueue}. */
export interface SimplePirateQueueOptions {
  /** Endpoint to bind for clients. Default `tcp://*:5555`. */
  frontend?: string;
  /** Endpoint to bind for workers. Default `tcp://*:5556`. */
  backend?: string;
  /** Where to log. Default: quiet unless `ZMQ_PATTERNS_DEBUG` enables `simple-pirate:queue`. */
  logger?: Logger;
}

/** Which socket of the queue a message came in on. */
export type QueueSide = "frontend" | "backend";

/** Events of {@link SimplePirateQueue}. */
export interface SimplePirateQueueEvents {
  /** A worker sent READY or a reply and joined the tail of the ready list. */
  workerReady: [{ worker: Buffer; workersReady: number }];
  /** A client request was handed to the least recently used ready worker. */
  requestDispatched: [{ worker: Buffer; client: Buffer[]; workersReady: number }];
  /** A worker's reply was sent on to its client. */
  replyForwarded: [{ worker: Buffer; client: Buffer[] }];
  /**
   * A message received on `side` from the peer `from` (its routing identity) was dropped;
   * `reason` is the key it is counted under in {@link SimplePirateQueue.stats}.
   */
  dropped: [{ side: QueueSide; reason: string; from: Buffer; frames: Buffer[] }];
}

/** What {@link SimplePirateQueue.stats} returns. */
export interface SimplePirateQueueStats {
  /** Workers in the ready list now. */
  workersReady: number;
  /** Client requests handed to workers so far. */
  requestsForwarded: number;
  /** Worker replies sent on to clients so far. */
  repliesForwarded: number;
  /** Messages dropped so far, by reason (`"<side>: <reason>"`, e.g. `"backend: missing frame: reply body"`). */
  dropped: Record<string, number>;
}

/** The endpoints a queue is bound to. */
export interface SimplePirateQueueEndpoints {
  /** Where clients connect, with the real port when bound to `*` or `0`. */
  frontend: string;
  /** Where workers connect, with the real port when bound to `*` or `0`. */
  backend: string;
}

/**
 * The Simple Pirate queue: a ROUTER frontend for clients and a ROUTER backend for workers, which
 * hands each request to the least recently used ready worker.
 *
 * A worker is ready once it sent READY, and again each time it sends a reply; it then joins the
 * tail of the ready list, at most once whatever it sends. The frontend is read only while a
 * worker is ready: with none, requests wait in ZeroMQ's buffers, neither read nor refused.
 * Malformed messages from either side, and replies from workers that were handed no request, are
 * dropped, counted by reason and logged, and their sender does not become ready. A worker that connects under an identity already connected takes it
 * over (ROUTER handover), so a restarted worker with a fixed identity is not ignored.
 *
 * The queue keeps no request: a request whose worker dies is lost, and the client is expected to
 * retry (a `LazyPirateClient` does). Nor does it detect dead workers: a worker that dies while
 * ready stays in the list until a request is routed to it, and that request is lost too.
 *
 * @example
 * ```ts
 * await using queue = await SimplePirateQueue.start({
 *   frontend: "tcp://*:5555",
 *   backend: "tcp://*:5556",
 * });
 * queue.on("dropped", ({ reason }) => console.warn("dropped:", reason));
 * ```
 */
export class SimplePirateQueue extends EventEmitter<SimplePirateQueueEvents> implements Closeable {
  readonly #frontend: Router;
  readonly #backend: Router;
  readonly #toClients: SendQueue;
  readonly #toWorkers: SendQueue;
  readonly #stack = new CloseStack();
  readonly #logger: Logger;
  readonly #frontendBind: string;
  readonly #backendBind: string;
  /** Ready workers by identity key, least recently used first (a `Map` keeps insertion order). */
  readonly #ready = new Map<string, Buffer>();
  readonly #dropped = new Counters();
  #requestsForwarded = 0;
  #repliesForwarded = 0;
  /** Wakes the frontend loop when a worker becomes ready or the queue closes. */
  #wake: (() => void) | undefined;

  private constructor(options: SimplePirateQueueOptions) {
    super();
    this.#frontendBind = checkEndpoint("frontend", options.frontend ?? DEFAULT_FRONTEND_BIND);
    this.#backendBind = checkEndpoint("backend", options.backend ?? DEFAULT_BACKEND_BIND);
    this.#logger = options.logger ?? createLogger("simple-pirate:queue");
    this.#frontend = this.#stack.socket(new Router({ linger: 0 }));
    // A worker that reconnects under its identity (after a restart, or from a host whose old
    // connection the queue has not seen die) takes the identity over instead of being ignored.
    this.#backend = this.#stack.socket(new Router({ linger: 0, handover: true }));
    this.#toClients = this.#stack.use(new SendQueue(this.#frontend));
    this.#toWorkers = this.#stack.use(new SendQueue(this.#backend));
    this.#stack.defer(() => {
      this.#ready.clear();
      this.#wake?.();
    });
  }

  /**
   * Binds both sockets and starts serving.
   *
   * @throws `InvalidArgumentError` for a malformed endpoint, before anything is bound; the
   * zeromq error when an endpoint cannot be bound.
   */
  static async start(options: SimplePirateQueueOptions = {}): Promise<SimplePirateQueue> {
    const queue = new SimplePirateQueue(options);
    try {
      await queue.#frontend.bind(queue.#frontendBind);
      await queue.#backend.bind(queue.#backendBind);
    } catch (error) {
      await queue.close();
      throw error;
    }
    void queue.#serveBackend();
    void queue.#serveFrontend();
    queue.#logger.info("queue started", { ...queue.endpoints });
    return queue;
  }

  /** The bound endpoints, with the real ports when bound to `*` or `0`. */
  get endpoints(): SimplePirateQueueEndpoints {
    return {
      frontend: this.#frontend.lastEndpoint ?? this.#frontendBind,
      backend: this.#backend.lastEndpoint ?? this.#backendBind,
    };
  }

  /** Counts of what the queue did so far, and the size of the ready list now. */
  stats(): SimplePirateQueueStats {
    return {
      workersReady: this.#ready.size,
      requestsForwarded: this.#requestsForwarded,
      repliesForwarded: this.#repliesForwarded,
      dropped: this.#dropped.snapshot(),
    };
  }

  /** Stops serving and closes both sockets (linger 0), dropping anything unsent. Idempotent. */
  close(): Promise<void> {
    return this.#stack.close();
  }

  /** Closes the queue, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Reads workers: READY and replies make a worker ready; replies go on to their clients. */
  async #serveBackend(): Promise<void> {
    for (;;) {
      let frames: Buffer[];
      try {
        frames = await this.#backend.receive();
      } catch {
        return; // closed
      }
      let message: BackendMessage;
      try {
        message = decodeBackend(frames);
      } catch (error) {
        this.#drop("backend", error, frames);
        continue;
      }
      if (message.type === "reply" && this.#ready.has(identityKey(message.worker))) {
        // Only a worker that was handed a request can answer one: this is a stray or a replay.
        this.#drop("backend", undefined, frames, "reply from a ready worker");
        continue;
      }
      if (message.type === "reply") {
        try {
          await this.#toClients.send(encodeClientReply(message.reply));
          this.#repliesForwarded += 1;
          this.emit("replyForwarded", { worker: message.worker, client: message.reply.envelope });
          this.#logger.debug("reply forwarded", {
            worker: message.worker,
            client: message.reply.envelope.at(-1),
          });
        } catch (error) {
          if (this.#stack.closed) return;
          this.#drop("backend", error, frames, "reply not sent");
        }
      }
      // Whether or not its reply could be sent on, the worker is free again.
      this.#workerReady(message.worker);
    }
  }

  /** Reads clients, only while a worker is ready, and hands each request to the head of the list. */
  async #serveFrontend(): Promise<void> {
    for (;;) {
      // Only this loop takes workers out of the list, so one that is ready now still is when
      // the receive below resolves.
      while (this.#ready.size === 0) {
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
        });
        this.#wake = undefined;
        if (this.#stack.closed) return;
      }
      let frames: Buffer[];
      try {
        frames = await this.#frontend.receive();
      } catch {
        return; // closed
      }
      let request: ClientMessage;
      try {
        request = decodeFrontend(frames);
      } catch (error) {
        this.#drop("frontend", error, frames);
        continue;
      }
      const worker = this.#takeWorker();
      if (worker === undefined) return; // closed while receiving
      try {
        await this.#toWorkers.send(encodeDispatch(worker, request));
      } catch (error) {
        if (this.#stack.closed) return;
        // The request is lost (its client will retry); the worker never got it, so it is free.
        this.#drop("frontend", error, frames, "request not sent");
        this.#workerReady(worker);
        continue;
      }
      this.#requestsForwarded += 1;
      const workersReady = this.#ready.size;
      this.emit("requestDispatched", { worker, client: request.envelope, workersReady });
      this.#logger.debug("request dispatched", {
        worker,
        client: request.envelope.at(-1),
        workersReady,
      });
    }
  }

  /** Moves `worker` to the tail of the ready list (adding it when absent) and wakes the frontend. */
  #workerReady(worker: Buffer): void {
    const key = identityKey(worker);
    this.#ready.delete(key);
    this.#ready.set(key, worker);
    const workersReady = this.#ready.size;
    this.emit("workerReady", { worker, workersReady });
    this.#logger.debug("worker ready", { worker, workersReady });
    this.#wake?.();
  }

  /** Removes and returns the least recently used ready worker. */
  #takeWorker(): Buffer | undefined {
    const first = this.#ready.entries().next();
    if (first.done) return undefined;
    const [key, worker] = first.value;
    this.#ready.delete(key);
    return worker;
  }

  /**
   * Counts, reports and logs a message received on `side` that goes no further: `error` is the
   * codec's `ProtocolError`, or a send failure described by `failure`.
   */
  #drop(side: QueueSide, error: unknown, frames: Buffer[], failure = "send failed"): void {
    // Reasons come from a fixed set, so they make bounded counter keys; details go to the log.
    const reason = `${side}: ${error instanceof ProtocolError ? error.reason : failure}`;
    this.#dropped.increment(reason);
    this.emit("dropped", { side, reason, from: frames[0] ?? Buffer.alloc(0), frames });
    this.#logger.warn("dropped message", {
      reason,
      frames: frames.length,
      ...(error instanceof ProtocolError ? {} : { error }),
    });
  }
}
