/**
 * `ParanoidPirateQueue`: the 6/PPP queue between Lazy Pirate clients and heartbeating workers.
 * @module
 */
import { EventEmitter } from "node:events";
import {
  type Clock,
  type Closeable,
  CloseStack,
  Counters,
  checkDuration,
  checkEndpoint,
  checkInteger,
  createLogger,
  ExpiryList,
  InvalidArgumentError,
  identityKey,
  type Logger,
  ProtocolError,
  SendQueue,
  systemClock,
  type TimerHandle,
} from "@zmq-patterns/core";
import { Router } from "zeromq";
import {
  DEFAULT_BACKEND,
  DEFAULT_FRONTEND,
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_LIVENESS,
  decodeClientRequest,
  decodeWorkerMessage,
  encodeHeartbeat,
  encodeRequest,
  encodeRouted,
  type Routed,
} from "./protocol.js";

/** Options of {@link ParanoidPirateQueue}. */
export interface ParanoidPirateQueueOptions {
  /** Endpoint for clients. Default `tcp://*:5555`. */
  frontend?: string;
  /** Endpoint for workers. Default `tcp://*:5556`. */
  backend?: string;
  /** Heartbeat interval, which workers must share. Default 1,000 ms. */
  heartbeatIntervalMs?: number;
  /** Silent intervals before a worker is expired. Default 3. */
  liveness?: number;
  /**
   * What to do with a heartbeat from a worker that never said READY (for example after the queue
   * restarted). `"ignore"` (default) follows RFC 6, whose conversations start with READY: the
   * worker, hearing no heartbeats back, reconnects and says READY within its liveness. `"register"`
   * takes the heartbeat as READY, as the Guide's ppqueue does, for a faster recovery.
   */
  unknownWorkerHeartbeat?: "ignore" | "register";
  /** Messages held per socket before sends wait or are dropped. Default 1,000. */
  sendCapacity?: number;
  /** Clock for heartbeats and expiry. Default: the system clock. */
  clock?: Clock;
  /** Where to log. Default: quiet unless `ZMQ_PATTERNS_DEBUG` enables `paranoid-pirate:queue`. */
  logger?: Logger;
}

/** A snapshot of the queue's state and counters. */
export interface ParanoidPirateQueueStats {
  /** Workers waiting for a request. */
  workersIdle: number;
  /** Workers handling a request. */
  workersBusy: number;
  requestsDispatched: number;
  repliesForwarded: number;
  workersExpired: number;
  /** Messages dropped, by reason. */
  dropped: Record<string, number>;
}

/** Events of {@link ParanoidPirateQueue}. */
export interface ParanoidPirateQueueEvents {
  workerReady: [{ worker: string }];
  workerExpired: [{ worker: string; busy: boolean }];
  requestDispatched: [{ worker: string }];
  replyForwarded: [{ worker: string }];
  /** A message was dropped; `from` is the peer's identity in hex. */
  dropped: [{ reason: string; side: "frontend" | "backend"; from: string }];
}

interface WorkerRecord {
  identity: Buffer;
  busy: boolean;
}

/**
 * A queue that speaks RFC 6/PPP with its workers: READY (`0x01`) registers a worker, requests go
 * to the least recently used idle worker, HEARTBEAT (`0x02`) flows both ways every interval, and a
 * worker silent for `liveness` intervals is expired and sent nothing more.
 *
 * Fixes of the Guide's ppqueue: a heartbeat only proves a worker alive, it never makes a busy
 * worker look ready (so no worker gets a second request while it works); busy workers are
 * heartbeated and expired too; malformed messages are counted and dropped, and a reply from an
 * idle worker is refused.
 *
 * @example
 * ```ts
 * await using queue = await ParanoidPirateQueue.start();
 * queue.on("workerExpired", ({ worker }) => console.log("expired", worker));
 * ```
 */
export class ParanoidPirateQueue
  extends EventEmitter<ParanoidPirateQueueEvents>
  implements Closeable
{
  readonly heartbeatIntervalMs: number;
  readonly liveness: number;
  readonly #options: { frontend: string; backend: string; registerUnknown: boolean };
  readonly #stack = new CloseStack();
  readonly #frontend: Router;
  readonly #backend: Router;
  readonly #toFrontend: SendQueue;
  readonly #toBackend: SendQueue;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #workers = new Map<string, WorkerRecord>();
  /** Idle workers, least recently used first (Map keeps insertion order). */
  readonly #idle = new Map<string, Buffer>();
  readonly #expiry: ExpiryList<string>;
  /** Workers expired while busy, most recent last, so a late sign of life can be judged. Bounded. */
  readonly #expiredBusy = new Map<string, true>();
  readonly #dropped = new Counters();
  readonly #counts = { requestsDispatched: 0, repliesForwarded: 0, workersExpired: 0 };
  #workerAvailable: (() => void) | undefined;
  #heartbeat: TimerHandle | undefined;

  private constructor(options: ParanoidPirateQueueOptions) {
    super();
    this.#options = {
      frontend: checkEndpoint("frontend", options.frontend ?? DEFAULT_FRONTEND),
      backend: checkEndpoint("backend", options.backend ?? DEFAULT_BACKEND),
      registerUnknown: (options.unknownWorkerHeartbeat ?? "ignore") === "register",
    };
    if (
      options.unknownWorkerHeartbeat !== undefined &&
      !["ignore", "register"].includes(options.unknownWorkerHeartbeat)
    ) {
      throw new InvalidArgumentError(
        `unknownWorkerHeartbeat must be "ignore" or "register", got ${String(options.unknownWorkerHeartbeat)}`,
      );
    }
    this.heartbeatIntervalMs = checkDuration(
      "heartbeatIntervalMs",
      options.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS,
    );
    this.liveness = checkInteger("liveness", options.liveness ?? DEFAULT_LIVENESS);
    const capacity = checkInteger("sendCapacity", options.sendCapacity ?? 1000);
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger ?? createLogger("paranoid-pirate:queue");
    // Mandatory routing: a send to a worker that is gone fails instead of vanishing silently.
    this.#frontend = this.#stack.socket(new Router());
    this.#backend = this.#stack.socket(new Router({ mandatory: true }));
    this.#toFrontend = new SendQueue(this.#frontend, {
      capacity,
      onError: () => this.#drop("unroutable reply", "frontend", ""),
    });
    this.#toBackend = new SendQueue(this.#backend, {
      capacity,
      // ROUTER_MANDATORY reports a worker whose connection is gone: it is dead, whatever its expiry
      // says. A request sent to it is lost; the client's retry brings it back.
      onError: (_error, frames) => {
        const key = identityKey(frames[0] ?? Buffer.alloc(0));
        this.#drop("unroutable worker", "backend", key);
        this.#expiry.delete(key);
        this.#expire(key);
      },
    });
    this.#expiry = new ExpiryList<string>({
      ttlMs: this.heartbeatIntervalMs * this.liveness,
      clock: this.#clock,
      onExpire: (key) => this.#expire(key),
    });
    this.#stack.defer(() => {
      this.#heartbeat?.cancel();
      this.#expiry.stop();
      this.#toFrontend.close();
      this.#toBackend.close();
      this.#workerAvailable?.();
    });
  }

  /** Binds both endpoints and starts serving. */
  static async start(options: ParanoidPirateQueueOptions = {}): Promise<ParanoidPirateQueue> {
    const queue = new ParanoidPirateQueue(options);
    try {
      await queue.#frontend.bind(queue.#options.frontend);
      await queue.#backend.bind(queue.#options.backend);
    } catch (error) {
      await queue.close();
      throw error;
    }
    queue.#expiry.start();
    queue.#scheduleHeartbeat();
    void queue.#serveBackend();
    void queue.#serveFrontend();
    return queue;
  }

  /** The bound endpoints, with real ports. */
  get endpoints(): { frontend: string; backend: string } {
    return {
      frontend: this.#frontend.lastEndpoint ?? this.#options.frontend,
      backend: this.#backend.lastEndpoint ?? this.#options.backend,
    };
  }

  /** A snapshot of workers and counters. */
  stats(): ParanoidPirateQueueStats {
    return {
      workersIdle: this.#idle.size,
      workersBusy: this.#workers.size - this.#idle.size,
      ...this.#counts,
      dropped: this.#dropped.snapshot(),
    };
  }

  /** Stops serving and closes both sockets (linger 0). Idempotent. */
  close(): Promise<void> {
    return this.#stack.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Reads clients only while a worker is idle (PPQ-3): otherwise requests wait in ZeroMQ. */
  async #serveFrontend(): Promise<void> {
    while (!this.#stack.closed) {
      await this.#idleWorker();
      let frames: Buffer[];
      try {
        frames = await this.#frontend.receive();
      } catch {
        return; // closed
      }
      let request: Routed;
      try {
        request = decodeClientRequest(frames);
      } catch (error) {
        this.#drop(reason(error), "frontend", identityKey(frames[0] ?? Buffer.alloc(0)));
        continue;
      }
      // The worker we saw may have expired while we waited for the request.
      await this.#idleWorker();
      if (this.#stack.closed) return;
      this.#dispatch(request);
    }
  }

  async #serveBackend(): Promise<void> {
    for (;;) {
      let frames: Buffer[];
      try {
        frames = await this.#backend.receive();
      } catch {
        return; // closed
      }
      const [identity, ...rest] = frames as [Buffer, ...Buffer[]];
      const key = identityKey(identity);
      let message: ReturnType<typeof decodeWorkerMessage>;
      try {
        message = decodeWorkerMessage(rest);
      } catch (error) {
        this.#drop(reason(error), "backend", key);
        continue;
      }
      const worker = this.#workers.get(key);
      switch (message.type) {
        case "ready":
          // A READY from a known worker starts a new conversation: whatever it was doing is gone.
          this.#expiredBusy.delete(key);
          this.#workers.set(key, { identity, busy: false });
          this.#setIdle(key, identity);
          this.#expiry.touch(key);
          this.#logger.debug("worker ready", { worker: key });
          this.emit("workerReady", { worker: key });
          break;
        case "heartbeat":
          if (worker) {
            this.#expiry.touch(key); // proof of life only: never makes a busy worker idle
          } else if (this.#options.registerUnknown) {
            // A worker expired while busy is still working: it comes back busy, and its reply
            // then makes it idle. Any other unknown worker comes back idle, as in the Guide.
            const busy = this.#expiredBusy.delete(key);
            this.#workers.set(key, { identity, busy });
            if (!busy) this.#setIdle(key, identity);
            this.#expiry.touch(key);
            this.emit("workerReady", { worker: key });
          } else {
            this.#drop("heartbeat from unknown worker", "backend", key);
          }
          break;
        case "reply":
          if (worker && !worker.busy) {
            this.#drop("reply from idle worker", "backend", key);
            break;
          }
          // A reply from a worker we expired while it worked still answers a client.
          this.#toFrontend.trySend(encodeRouted(message)) ||
            this.#drop("frontend queue full", "frontend", key);
          this.#counts.repliesForwarded += 1;
          this.emit("replyForwarded", { worker: key });
          if (worker) {
            worker.busy = false;
            this.#setIdle(key, identity);
            this.#expiry.touch(key);
          } else {
            this.#expiredBusy.delete(key); // its work is done: a later heartbeat finds it idle
            this.#logger.info(
              "reply from an expired worker forwarded; it must say READY to get work",
              { worker: key },
            );
          }
          break;
      }
    }
  }

  #dispatch(request: Routed): void {
    const next = this.#idle.entries().next();
    if (next.done) return;
    const [key, identity] = next.value;
    this.#idle.delete(key);
    const worker = this.#workers.get(key) as WorkerRecord;
    worker.busy = true;
    if (!this.#toBackend.trySend(encodeRequest(identity, request))) {
      this.#drop("backend queue full", "backend", key);
      return;
    }
    this.#counts.requestsDispatched += 1;
    this.#logger.debug("request dispatched", { worker: key });
    this.emit("requestDispatched", { worker: key });
  }

  #setIdle(key: string, identity: Buffer): void {
    this.#idle.delete(key);
    this.#idle.set(key, identity);
    const wake = this.#workerAvailable;
    this.#workerAvailable = undefined;
    wake?.();
  }

  #idleWorker(): Promise<void> {
    if (this.#idle.size > 0 || this.#stack.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.#workerAvailable = resolve;
    });
  }

  #expire(key: string): void {
    const worker = this.#workers.get(key);
    if (!worker) return;
    this.#workers.delete(key);
    this.#idle.delete(key);
    this.#counts.workersExpired += 1;
    if (worker.busy) {
      this.#expiredBusy.set(key, true);
      if (this.#expiredBusy.size > 1024)
        this.#expiredBusy.delete(this.#expiredBusy.keys().next().value as string);
    }
    this.#logger.info("worker expired", { worker: key, busy: worker.busy });
    this.emit("workerExpired", { worker: key, busy: worker.busy });
  }

  /** Heartbeats every known worker, idle or busy, once per interval. */
  #scheduleHeartbeat(): void {
    this.#heartbeat = this.#clock.setTimeout(() => {
      if (this.#stack.closed) return;
      for (const worker of this.#workers.values()) {
        if (!this.#toBackend.trySend([worker.identity, ...encodeHeartbeat()])) {
          this.#drop("backend queue full", "backend", identityKey(worker.identity));
        }
      }
      this.#scheduleHeartbeat();
    }, this.heartbeatIntervalMs);
  }

  #drop(why: string, side: "frontend" | "backend", from: string): void {
    this.#dropped.increment(why);
    this.#logger.warn("dropped message", { reason: why, side, from });
    this.emit("dropped", { reason: why, side, from });
  }
}

function reason(error: unknown): string {
  return error instanceof ProtocolError ? error.reason : "undecodable message";
}
