/**
 * `ParanoidPirateWorker`: a 6/PPP worker that heartbeats, detects a dead queue and reconnects
 * with back-off.
 * @module
 */
import { EventEmitter } from "node:events";
import {
  AbortedError,
  Backoff,
  type Clock,
  type Closeable,
  Counters,
  checkDuration,
  checkEndpoint,
  checkInteger,
  closeSocket,
  createLogger,
  Deque,
  FaultSimulator,
  type FaultSimulatorOptions,
  type FrameLike,
  Heartbeater,
  type Logger,
  ProtocolError,
  SendQueue,
  sleep,
  systemClock,
  toFrames,
} from "@zmq-patterns/core";
import { Dealer } from "zeromq";
import {
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_LIVENESS,
  DEFAULT_RECONNECT_INITIAL_MS,
  DEFAULT_RECONNECT_MAX_MS,
  DEFAULT_WORKER_ENDPOINT,
  decodeQueueMessage,
  encodeHeartbeat,
  encodeReady,
  encodeRouted,
  type Routed,
} from "./protocol.js";

/** What a handler gets besides the request body. */
export interface RequestContext {
  /** Aborted when the connection to the queue is lost or the worker closes: the reply would be lost. */
  signal: AbortSignal;
}

/** Computes reply frames from request frames. */
export type ParanoidPirateHandler = (
  body: Buffer[],
  context: RequestContext,
) => readonly FrameLike[] | Promise<readonly FrameLike[]>;

/** Options of {@link ParanoidPirateWorker}. */
export interface ParanoidPirateWorkerOptions {
  /** The queue's backend. Default `tcp://localhost:5556`. */
  endpoint?: string;
  /** Computes replies. Default: echo the request. */
  handler?: ParanoidPirateHandler;
  /** Heartbeat interval, as the queue's. Default 1,000 ms. */
  heartbeatIntervalMs?: number;
  /** Silent intervals before the queue is considered dead. Default 3. */
  liveness?: number;
  /** First reconnect delay. Default 1,000 ms. */
  reconnectInitialMs?: number;
  /** Cap of the reconnect delay, doubled after each failed reconnect. Default 32,000 ms. */
  reconnectMaxMs?: number;
  /**
   * Routing identity of the worker's socket. Default: one chosen by ZeroMQ for each new socket, so
   * a reconnected worker is a new worker to the queue.
   */
  identity?: string;
  /** Failure injection (crash, overload, work time); a simulator or its options. Default: none. */
  simulate?: FaultSimulator | FaultSimulatorOptions;
  /** Clock for heartbeats and reconnect delays. Default: the system clock. */
  clock?: Clock;
  /** Where to log. Default: quiet unless `ZMQ_PATTERNS_DEBUG` enables `paranoid-pirate:worker`. */
  logger?: Logger;
}

/** Events of {@link ParanoidPirateWorker}. */
export interface ParanoidPirateWorkerEvents {
  /** A new socket connected and sent READY. */
  connected: [{ endpoint: string; attempt: number }];
  /** A request arrived. */
  request: [{ body: Buffer[]; kind: "normal" | "slow" | "crash" }];
  /** The queue was silent for `liveness` intervals; the worker reconnects after `delayMs`. */
  disconnected: [{ delayMs: number }];
  /** A message from the queue was dropped. */
  dropped: [{ reason: string }];
  /** The simulator decided to crash: the worker stopped. */
  crash: [];
}

/** A snapshot of the worker's counters. */
export interface ParanoidPirateWorkerStats {
  requests: number;
  replies: number;
  reconnects: number;
  dropped: Record<string, number>;
}

interface Pending {
  request: Routed;
  socket: Dealer;
}

/**
 * A worker for the Paranoid Pirate queue (RFC 6/PPP). It says READY, answers requests one at a
 * time through an async handler, and heartbeats on its own timer, so heartbeats keep flowing while
 * a handler awaits. When the queue is silent for `liveness` intervals it discards its socket and
 * reconnects after an exponential back-off (1 s doubling to 32 s by default), forever, saying READY
 * again; any message from the queue resets the back-off.
 *
 * @example
 * ```ts
 * await using worker = await ParanoidPirateWorker.start({
 *   endpoint: "tcp://localhost:5556",
 *   handler: async ([name]) => [`hello ${name}`],
 * });
 * ```
 */
export class ParanoidPirateWorker
  extends EventEmitter<ParanoidPirateWorkerEvents>
  implements Closeable
{
  readonly endpoint: string;
  readonly heartbeatIntervalMs: number;
  readonly liveness: number;
  readonly #handler: ParanoidPirateHandler;
  readonly #identity: string | undefined;
  readonly #backoff: Backoff;
  readonly #simulator: FaultSimulator;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #closing = new AbortController();
  readonly #requests = new Deque<Pending>();
  readonly #dropped = new Counters();
  readonly #counts = { requests: 0, replies: 0, reconnects: 0 };
  #socket: Dealer | undefined;
  #sendQueue: SendQueue | undefined;
  #heartbeater: Heartbeater | undefined;
  #connection: AbortController | undefined;
  #attempt = 0;
  #working = false;
  #closed: Promise<void> | undefined;

  private constructor(options: ParanoidPirateWorkerOptions) {
    super();
    this.endpoint = checkEndpoint("endpoint", options.endpoint ?? DEFAULT_WORKER_ENDPOINT);
    this.heartbeatIntervalMs = checkDuration(
      "heartbeatIntervalMs",
      options.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS,
    );
    this.liveness = checkInteger("liveness", options.liveness ?? DEFAULT_LIVENESS);
    this.#backoff = new Backoff({
      initialMs: options.reconnectInitialMs ?? DEFAULT_RECONNECT_INITIAL_MS,
      maxMs: options.reconnectMaxMs ?? DEFAULT_RECONNECT_MAX_MS,
    });
    this.#handler = options.handler ?? ((body) => body);
    this.#identity = options.identity;
    this.#simulator =
      options.simulate instanceof FaultSimulator
        ? options.simulate
        : new FaultSimulator(options.simulate);
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger ?? createLogger("paranoid-pirate:worker");
  }

  /** Connects to the queue, says READY and starts serving. */
  static async start(options: ParanoidPirateWorkerOptions = {}): Promise<ParanoidPirateWorker> {
    const worker = new ParanoidPirateWorker(options);
    worker.#connect();
    return worker;
  }

  /** A snapshot of the worker's counters. */
  stats(): ParanoidPirateWorkerStats {
    return { ...this.#counts, dropped: this.#dropped.snapshot() };
  }

  /** Stops: aborts a running handler, closes the socket (linger 0). Idempotent. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#closing.abort(new AbortedError("worker closed"));
      this.#disconnect();
      this.#requests.drain();
    })();
    return this.#closed;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Opens a new socket, says READY, and starts heartbeating and reading. */
  #connect(): void {
    this.#attempt += 1;
    const socket = new Dealer({
      linger: 0,
      ...(this.#identity ? { routingId: this.#identity } : {}),
    });
    socket.connect(this.endpoint);
    const sendQueue = new SendQueue(socket, { onError: () => {} });
    const connection = new AbortController();
    this.#socket = socket;
    this.#sendQueue = sendQueue;
    this.#connection = connection;
    this.#heartbeater = new Heartbeater({
      intervalMs: this.heartbeatIntervalMs,
      liveness: this.liveness,
      clock: this.#clock,
      onBeat: () => {
        // While the queue is unreachable heartbeats pile up in the socket; a full queue drops them.
        sendQueue.trySend(encodeHeartbeat());
      },
      onPeerDead: () => void this.#reconnect(),
    });
    sendQueue.trySend(encodeReady());
    this.#heartbeater.start();
    this.#logger.debug("connected, READY sent", {
      endpoint: this.endpoint,
      attempt: this.#attempt,
    });
    this.emit("connected", { endpoint: this.endpoint, attempt: this.#attempt });
    void this.#read(socket, connection.signal);
  }

  #disconnect(): void {
    this.#heartbeater?.stop();
    this.#connection?.abort(new AbortedError("connection to the queue lost"));
    this.#sendQueue?.close();
    if (this.#socket) closeSocket(this.#socket);
    this.#heartbeater = undefined;
    this.#sendQueue = undefined;
    this.#socket = undefined;
  }

  /** The queue is silent: drop the socket and everything on it (PPW-3), wait, start again. */
  async #reconnect(): Promise<void> {
    this.#disconnect();
    const delayMs = this.#backoff.next();
    this.#counts.reconnects += 1;
    this.#logger.warn("heartbeat failure, can't reach queue", { reconnectInMs: delayMs });
    this.emit("disconnected", { delayMs });
    try {
      await sleep(delayMs, { signal: this.#closing.signal, clock: this.#clock });
    } catch {
      return; // closed
    }
    this.#connect();
  }

  async #read(socket: Dealer, signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      let frames: Buffer[];
      try {
        frames = await socket.receive();
      } catch {
        return; // socket closed
      }
      if (signal.aborted) return;
      // Any message at all proves the queue alive and resets the back-off (PPW-2).
      this.#heartbeater?.touch();
      this.#backoff.reset();
      let message: ReturnType<typeof decodeQueueMessage>;
      try {
        message = decodeQueueMessage(frames);
      } catch (error) {
        const why = error instanceof ProtocolError ? error.reason : "undecodable message";
        this.#dropped.increment(why);
        this.#logger.warn("invalid message from queue", { reason: why });
        this.emit("dropped", { reason: why });
        continue;
      }
      if (message.type === "heartbeat") continue;
      this.#requests.push({ request: message, socket });
      void this.#work();
    }
  }

  /** Handles queued requests one at a time. */
  async #work(): Promise<void> {
    if (this.#working) return;
    this.#working = true;
    try {
      for (let next = this.#requests.shift(); next; next = this.#requests.shift()) {
        await this.#handle(next);
        if (this.#closing.signal.aborted) return;
      }
    } finally {
      this.#working = false;
    }
  }

  async #handle({ request, socket }: Pending): Promise<void> {
    this.#counts.requests += 1;
    const decision = this.#simulator.next();
    this.emit("request", { body: request.body, kind: decision.kind });
    if (decision.kind === "crash") {
      this.#logger.warn("simulating a crash", { cycle: decision.cycle });
      await this.close();
      this.emit("crash");
      return;
    }
    if (decision.kind === "slow")
      this.#logger.info("simulating CPU overload", { cycle: decision.cycle });
    const signal = this.#connection?.signal ?? this.#closing.signal;
    let reply: Buffer[];
    try {
      if (decision.delayMs > 0) await sleep(decision.delayMs, { signal });
      reply = toFrames(await this.#handler(request.body, { signal }));
    } catch (error) {
      if (signal.aborted) return;
      // No reply goes out: the client's retry will ask again (possibly of another worker).
      this.#dropped.increment("handler failed");
      this.#logger.error("handler failed", { error });
      return;
    }
    // A reply is only meaningful on the connection that carried the request.
    if (socket !== this.#socket || !this.#sendQueue) {
      this.#dropped.increment("reply after reconnect");
      return;
    }
    this.#sendQueue.trySend(encodeRouted({ envelope: request.envelope, body: reply }));
    this.#counts.replies += 1;
  }
}
