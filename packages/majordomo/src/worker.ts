/**
 * `MajordomoWorker`: an MDP worker that registers a service with a broker, answers one request at
 * a time, heartbeats on its own timer and registers again on a new socket when the broker is lost.
 * @module
 */
import { EventEmitter } from "node:events";
import {
  AbortedError,
  abortReason,
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
  InvalidArgumentError,
  type Logger,
  Msg,
  ProtocolError,
  SendQueue,
  sleep,
  systemClock,
  toFrames,
} from "@zmq-patterns/core";
import { Dealer } from "zeromq";
import { checkRequestService, checkVersion } from "./internal/options.js";
import {
  DEFAULT_BROKER_ENDPOINT,
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_LIVENESS,
  DEFAULT_RECONNECT_MS,
  decodeWorkerCommand,
  encodeWorkerCommand,
  isMmiService,
  type MdpVersion,
  type WorkerCommand,
} from "./protocol.js";

/** How long `close()` waits for its DISCONNECT to leave before the socket goes. */
const GOODBYE_MS = 200;

/** What a {@link MajordomoHandler} gets besides the request body. */
export interface MajordomoRequestContext {
  /**
   * Aborted when the connection that carried the request is lost (heartbeat failure, DISCONNECT
   * from the broker) or the worker closes: a reply could no longer reach the client.
   */
  signal: AbortSignal;
  /** The service this worker registered. */
  service: string;
  /**
   * Sends a PARTIAL reply ahead of the final one (MDP/0.2 only). Resolves once the socket took it.
   *
   * @throws {@link @zmq-patterns/core!ProtocolError | ProtocolError} (as a rejection) on MDP/0.1,
   * which has no partial replies; the abort reason once `signal` aborted.
   */
  partial(frames: readonly FrameLike[]): Promise<void>;
}

/**
 * Computes the final reply (one frame or more) from the request body. A handler that throws (or
 * returns no frame) sends no reply: the worker tells the broker with DISCONNECT and registers
 * again, so the broker does not keep it busy for ever.
 */
export type MajordomoHandler = (
  body: Buffer[],
  context: MajordomoRequestContext,
) => readonly FrameLike[] | Promise<readonly FrameLike[]>;

/** A request handed out by `for await (const request of worker)` (a worker started with `iterate: true`). */
export interface MajordomoRequest extends MajordomoRequestContext {
  /** The request body. */
  readonly body: Buffer[];
  /**
   * Sends the final reply (REPLY in 0.1, FINAL in 0.2); the worker then takes the next request.
   * Every request must be answered with `reply` or {@link MajordomoRequest.fail}.
   *
   * @throws (as a rejection) the abort reason once `signal` aborted (nothing is sent);
   * {@link @zmq-patterns/core!ProtocolError | ProtocolError} when the request was already answered;
   * {@link @zmq-patterns/core!InvalidArgumentError | InvalidArgumentError} for a reply without frames.
   */
  reply(frames: readonly FrameLike[]): Promise<void>;
  /** Gives up on the request, as a failing handler does: no reply, the worker registers again. */
  fail(error?: unknown): void;
}

/** Options of {@link MajordomoWorker.start}. */
export interface MajordomoWorkerOptions {
  /** The broker. Default `tcp://localhost:5555`. */
  broker?: string;
  /** The service to register (MDP-R8: one per worker); not in the reserved `mmi.` namespace. */
  service: string;
  /** Computes replies. Default: echo the request body. Not with `iterate`. */
  handler?: MajordomoHandler;
  /**
   * Hand requests out through `for await (const request of worker)` instead of a handler.
   * Default false.
   */
  iterate?: boolean;
  /** Protocol version: `"0.1"` (RFC 7, default) or `"0.2"` (RFC 18, partial replies). */
  version?: MdpVersion;
  /** Heartbeat interval, as the broker's. Default 2,500 ms. */
  heartbeatIntervalMs?: number;
  /** Silent intervals before the broker is considered dead (fixes MDB-B11). Default 3. */
  liveness?: number;
  /** Delay before registering again after a heartbeat failure. Default 2,500 ms. */
  reconnectMs?: number;
  /**
   * When given, the reconnect delay doubles after each failed attempt from `reconnectMs` up to this
   * cap (any message from the broker resets it). Default: a fixed delay, as the Guide.
   */
  reconnectMaxMs?: number;
  /** Failure injection (crash, overload, work time); a simulator or its options. Default: none. */
  simulate?: FaultSimulator | FaultSimulatorOptions;
  /** Log every message sent and received at debug level, as the Guide's `-v`. Default false. */
  verbose?: boolean;
  /** Clock for heartbeats and reconnect delays. Default: the system clock. */
  clock?: Clock;
  /** Where to log. Default: quiet unless `ZMQ_PATTERNS_DEBUG` enables `majordomo:worker`. */
  logger?: Logger;
}

/** Why a {@link MajordomoWorker} left its connection. */
export type MajordomoDisconnectReason = "heartbeat failure" | "disconnect" | "handler failure";

/** Events of {@link MajordomoWorker}. */
export interface MajordomoWorkerEvents {
  /** A new socket connected and sent READY. */
  connected: [{ broker: string; attempt: number }];
  /** A request arrived; `kind` is the fault simulator's decision. */
  request: [{ body: Buffer[]; kind: "normal" | "slow" | "crash" }];
  /**
   * The worker left its connection and registers again after `delayMs`: the broker was silent for
   * `liveness` intervals, sent DISCONNECT, or a handler failed.
   */
  disconnected: [{ reason: MajordomoDisconnectReason; delayMs: number }];
  /** A message from the broker was invalid or unexpected and was dropped. */
  dropped: [{ reason: string }];
  /** A handler threw, or returned no frame; no reply was sent. */
  handlerFailed: [{ error: unknown }];
  /** The simulator decided to crash: the worker stopped without a word to the broker. */
  crash: [];
}

/** A snapshot of the worker's counters. */
export interface MajordomoWorkerStats {
  requests: number;
  replies: number;
  partials: number;
  reconnects: number;
  /** Messages from the broker dropped, and replies not sent, by reason. */
  dropped: Record<string, number>;
}

/** One socket's life: everything that belongs to a single registration with the broker. */
interface Connection {
  readonly socket: Dealer;
  readonly queue: SendQueue;
  readonly heartbeater: Heartbeater;
  readonly controller: AbortController;
  /** Something other than DISCONNECT arrived on this connection. */
  heard: boolean;
  /**
   * The broker spoke while this worker was busy: it heartbeats busy workers (as this package's
   * broker does), so its silence during a request means it is gone. The Guide's broker heartbeats
   * only idle workers; until a broker shows otherwise, its silence while busy is not held against it.
   */
  heardWhileBusy: boolean;
}

interface Pending {
  client: Buffer;
  body: Buffer[];
  connection: Connection;
}

/**
 * A Majordomo worker (RFC 7/MDP, or RFC 18/MDP with `version: "0.2"`). It connects a DEALER to
 * the broker and sends READY for its service, then answers requests one at a time, through a
 * handler or through `for await`. Heartbeats run on their own timer, so they keep flowing while a
 * handler awaits (the Guide's single-threaded worker stops heartbeating while it works).
 *
 * When the broker is silent for `liveness` intervals the worker aborts the running handler's
 * signal, drops its socket, waits `reconnectMs` and registers again on a new socket (MDW-1); on
 * DISCONNECT from the broker it does so at once (MDP-R11). `close()` says DISCONNECT first, so the
 * broker forgets it at once (the Guide's worker says nothing). Invalid messages from the broker
 * are counted and dropped, never fatal.
 *
 * @example
 * ```ts
 * await using worker = await MajordomoWorker.start({
 *   broker: "tcp://localhost:5555",
 *   service: "echo",
 *   handler: async (body) => body,
 * });
 * ```
 */
export class MajordomoWorker
  extends EventEmitter<MajordomoWorkerEvents>
  implements Closeable, AsyncIterable<MajordomoRequest>
{
  readonly broker: string;
  readonly service: string;
  readonly version: MdpVersion;
  readonly heartbeatIntervalMs: number;
  readonly liveness: number;
  readonly reconnectMs: number;
  readonly reconnectMaxMs: number;
  readonly #handler: MajordomoHandler | undefined;
  readonly #backoff: Backoff;
  readonly #simulator: FaultSimulator;
  readonly #verbose: boolean;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #closing = new AbortController();
  readonly #requests = new Deque<Pending>();
  readonly #offered = new Deque<MajordomoRequest>();
  readonly #takers = new Deque<(request: MajordomoRequest | undefined) => void>();
  readonly #dropped = new Counters();
  readonly #counts = { requests: 0, replies: 0, partials: 0, reconnects: 0 };
  #connection: Connection | undefined;
  #attempt = 0;
  #working = false;
  #busySince = 0;
  #closed: Promise<void> | undefined;

  private constructor(options: MajordomoWorkerOptions) {
    super();
    this.broker = checkEndpoint("broker", options.broker ?? DEFAULT_BROKER_ENDPOINT);
    this.service = checkService(options.service);
    this.version = checkVersion(options.version ?? "0.1");
    this.heartbeatIntervalMs = checkDuration(
      "heartbeatIntervalMs",
      options.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS,
    );
    this.liveness = checkInteger("liveness", options.liveness ?? DEFAULT_LIVENESS);
    this.reconnectMs = checkDuration("reconnectMs", options.reconnectMs ?? DEFAULT_RECONNECT_MS, 0);
    this.reconnectMaxMs = checkDuration(
      "reconnectMaxMs",
      options.reconnectMaxMs ?? this.reconnectMs,
      0,
    );
    if (this.reconnectMaxMs < this.reconnectMs) {
      throw new InvalidArgumentError(
        `reconnectMaxMs (${this.reconnectMaxMs}) must be >= reconnectMs (${this.reconnectMs})`,
      );
    }
    // A cap equal to the first delay is the Guide's fixed delay.
    this.#backoff = new Backoff({ initialMs: this.reconnectMs, maxMs: this.reconnectMaxMs });
    if (options.iterate && options.handler) {
      throw new InvalidArgumentError("give either a handler or iterate: true, not both");
    }
    this.#handler = options.iterate ? undefined : (options.handler ?? ((body) => body));
    this.#simulator =
      options.simulate instanceof FaultSimulator
        ? options.simulate
        : new FaultSimulator(options.simulate);
    this.#verbose = options.verbose ?? false;
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger ?? createLogger("majordomo:worker");
  }

  /**
   * Connects to the broker, sends READY and starts serving.
   *
   * @throws {@link @zmq-patterns/core!InvalidArgumentError | InvalidArgumentError} (as a rejection) on bad options.
   */
  static async start(options: MajordomoWorkerOptions): Promise<MajordomoWorker> {
    const worker = new MajordomoWorker(options);
    worker.#connect();
    return worker;
  }

  /** A snapshot of the worker's counters. */
  stats(): MajordomoWorkerStats {
    return { ...this.#counts, dropped: this.#dropped.snapshot() };
  }

  /**
   * The requests, one at a time: the next one comes once the previous one was answered. Only for
   * a worker started with `iterate: true`; ends when the worker closes. Leaving the loop does not
   * close the worker.
   *
   * @throws {@link @zmq-patterns/core!InvalidArgumentError | InvalidArgumentError} for a worker with a handler.
   */
  async *[Symbol.asyncIterator](): AsyncIterator<MajordomoRequest> {
    if (this.#handler) {
      throw new InvalidArgumentError("this worker has a handler: start it with iterate: true");
    }
    for (;;) {
      const request = await this.#take();
      if (request === undefined) return;
      if (request.signal.aborted) continue; // its connection is gone: nobody awaits the reply
      yield request;
    }
  }

  /**
   * Sends DISCONNECT (so the broker forgets this worker at once), aborts a running handler and
   * closes the socket. Idempotent.
   */
  close(): Promise<void> {
    this.#closed ??= this.#shutdown(true);
    return this.#closed;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #shutdown(goodbye: boolean): Promise<void> {
    this.#closing.abort(new AbortedError("worker closed"));
    const connection = this.#connection;
    this.#connection = undefined;
    this.#requests.drain();
    this.#offered.drain();
    for (const take of this.#takers.drain()) take(undefined);
    if (connection) await this.#retire(connection, goodbye, this.#closing.signal.reason);
  }

  // ------------------------------------------------------------------------------------------
  // Connections

  /** Opens a new socket, says READY, and starts heartbeating and reading (MDP-R8). */
  #connect(): void {
    this.#attempt += 1;
    const socket = new Dealer({ linger: 0 });
    socket.connect(this.broker);
    const queue = new SendQueue(socket, { onError: () => {} });
    const controller = new AbortController();
    const connection: Connection = {
      socket,
      queue,
      controller,
      heard: false,
      heardWhileBusy: false,
      heartbeater: new Heartbeater({
        intervalMs: this.heartbeatIntervalMs,
        liveness: this.liveness,
        clock: this.#clock,
        onBeat: () => {
          // Sent every interval, even right after a reply: skipping a tick would leave the broker
          // almost two intervals of silence, enough for a false expiry. While the broker is
          // unreachable heartbeats pile up in the socket; a full queue drops them.
          this.#send(connection, { command: "heartbeat" }, "HEARTBEAT");
        },
        onPeerDead: () => {
          if (this.#working && !connection.heardWhileBusy) {
            this.#logger.debug("broker silent while busy; it may heartbeat only idle workers");
            return; // the heartbeater starts counting again
          }
          void this.#reconnect(connection, "heartbeat failure");
        },
      }),
    };
    this.#connection = connection;
    this.#send(connection, { command: "ready", service: this.service }, "READY");
    connection.heartbeater.start();
    this.#logger.debug("connected, READY sent", {
      broker: this.broker,
      service: this.service,
      attempt: this.#attempt,
    });
    this.emit("connected", { broker: this.broker, attempt: this.#attempt });
    void this.#read(connection);
  }

  /** Stops a connection's timer, aborts its requests and closes its socket, after DISCONNECT if asked. */
  async #retire(connection: Connection, goodbye: boolean, reason: unknown): Promise<void> {
    connection.heartbeater.stop();
    connection.controller.abort(reason);
    if (goodbye && !connection.queue.closed) {
      const sent = this.#sendNow(connection, { command: "disconnect" }, "DISCONNECT").catch(
        () => {},
      );
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        sent,
        new Promise((resolve) => (timer = setTimeout(resolve, GOODBYE_MS))),
      ]);
      clearTimeout(timer);
    }
    connection.queue.close();
    // A short linger lets the DISCONNECT leave; otherwise nothing pending is worth keeping.
    closeSocket(connection.socket, goodbye ? GOODBYE_MS : 0);
  }

  /**
   * Leaves `connection` and registers again on a new socket: after `reconnectMs` on a heartbeat
   * failure (MDW-1), at once on DISCONNECT (MDP-R11) or a failed handler.
   */
  async #reconnect(connection: Connection, reason: MajordomoDisconnectReason): Promise<void> {
    if (connection !== this.#connection) return;
    this.#connection = undefined;
    // A broker that refuses READY straight away would otherwise be hammered with registrations.
    const refused = reason === "disconnect" && !connection.heard;
    const delayMs = reason === "heartbeat failure" || refused ? this.#backoff.next() : 0;
    this.#counts.reconnects += 1;
    const level = reason === "heartbeat failure" ? "warn" : "info";
    this.#logger[level](`${reason}: registering again`, { reconnectInMs: delayMs });
    this.emit("disconnected", { reason, delayMs });
    await this.#retire(
      connection,
      reason === "handler failure",
      new AbortedError(`connection to the broker lost (${reason})`),
    );
    if (delayMs > 0) {
      try {
        await sleep(delayMs, { signal: this.#closing.signal, clock: this.#clock });
      } catch {
        return; // closed
      }
    }
    if (this.#closing.signal.aborted) return;
    this.#connect();
  }

  async #read(connection: Connection): Promise<void> {
    const { socket, controller } = connection;
    while (!controller.signal.aborted) {
      let frames: Buffer[];
      try {
        frames = await socket.receive();
      } catch {
        return; // socket closed
      }
      if (controller.signal.aborted) return;
      this.#trace("received", frames);
      // MDP-R13: any message from the broker proves it alive and resets the back-off.
      connection.heartbeater.touch();
      // Half an interval into a request, a message cannot be a heartbeat sent before the dispatch.
      if (this.#working && this.#clock.now() - this.#busySince >= this.heartbeatIntervalMs / 2) {
        connection.heardWhileBusy = true;
      }
      this.#backoff.reset();
      let command: WorkerCommand;
      try {
        command = decodeWorkerCommand(frames, this.version);
      } catch (error) {
        this.#drop(error instanceof ProtocolError ? error.reason : "undecodable message");
        continue;
      }
      switch (command.command) {
        case "heartbeat":
          connection.heard = true;
          break;
        case "request":
          connection.heard = true;
          this.#requests.push({ client: command.client, body: command.body, connection });
          void this.#work();
          break;
        case "disconnect":
          void this.#reconnect(connection, "disconnect");
          return;
        default:
          this.#drop(`unexpected ${command.command.toUpperCase()} from broker`);
      }
    }
  }

  /** Queues a command without waiting; a full or closed queue drops it. */
  #send(connection: Connection, command: WorkerCommand, label: string): void {
    const frames = encodeWorkerCommand(this.version, command);
    this.#trace(`sending ${label}`, frames);
    connection.queue.trySend(frames);
  }

  /** Sends a command and resolves once the socket took it. */
  #sendNow(connection: Connection, command: WorkerCommand, label: string): Promise<void> {
    const frames = encodeWorkerCommand(this.version, command);
    this.#trace(`sending ${label}`, frames);
    return connection.queue.send(frames);
  }

  // ------------------------------------------------------------------------------------------
  // Requests

  /** Handles queued requests one at a time (MDP-R2). */
  async #work(): Promise<void> {
    if (this.#working) return;
    this.#working = true;
    try {
      for (let next = this.#requests.shift(); next; next = this.#requests.shift()) {
        if (next.connection.controller.signal.aborted) {
          this.#dropped.increment("request from a lost connection");
          continue;
        }
        await this.#handle(next);
        if (this.#closing.signal.aborted) return;
      }
    } finally {
      this.#working = false;
    }
  }

  async #handle(pending: Pending): Promise<void> {
    this.#busySince = this.#clock.now();
    this.#counts.requests += 1;
    const decision = this.#simulator.next();
    this.emit("request", { body: pending.body, kind: decision.kind });
    if (decision.kind === "crash") {
      this.#logger.warn("simulating a crash", { cycle: decision.cycle });
      this.#closed ??= this.#shutdown(false);
      await this.#closed;
      this.emit("crash");
      return;
    }
    if (decision.kind === "slow") {
      this.#logger.info("simulating CPU overload", { cycle: decision.cycle });
    }
    const { signal } = pending.connection.controller;
    let answered = false;
    const answer = async (frames: readonly FrameLike[], final: boolean): Promise<void> => {
      if (signal.aborted) throw abortReason(signal);
      if (answered) throw new ProtocolError("request already answered");
      const body = toFrames(frames);
      if (body.length === 0) {
        throw new InvalidArgumentError(`a ${final ? "reply" : "partial reply"} needs a frame`);
      }
      if (!final && this.version === "0.1") {
        throw new ProtocolError("MDP/0.1 has no partial replies");
      }
      if (final) answered = true;
      const command: WorkerCommand = { command: "reply", client: pending.client, body, final };
      try {
        await this.#sendNow(pending.connection, command, final ? "REPLY" : "PARTIAL");
      } catch (error) {
        throw signal.aborted ? abortReason(signal) : error;
      }
      if (final) this.#counts.replies += 1;
      else this.#counts.partials += 1;
    };
    const context: MajordomoRequestContext = {
      signal,
      service: this.service,
      partial: (frames) => answer(frames, false),
    };
    try {
      if (decision.delayMs > 0) await sleep(decision.delayMs, { signal, clock: this.#clock });
      if (this.#handler) {
        const reply = await this.#handler(pending.body, context);
        await answer(reply, true);
      } else {
        await this.#offer(pending.body, context, (frames) => answer(frames, true));
      }
    } catch (error) {
      if (signal.aborted) {
        // The broker that gave us this request is gone: a reply could not reach its client.
        this.#dropped.increment("request lost with its connection");
        return;
      }
      this.#dropped.increment("handler failed");
      this.#logger.error("handler failed: registering again", { error });
      this.emit("handlerFailed", { error });
      // Without a reply the broker would keep this worker busy for ever: leave and come back.
      await this.#reconnect(pending.connection, "handler failure");
    }
  }

  /** Hands a request to the iterator and resolves once it is answered; rejects if it fails. */
  #offer(
    body: Buffer[],
    context: MajordomoRequestContext,
    reply: (frames: readonly FrameLike[]) => Promise<void>,
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => reject(abortReason(context.signal));
      context.signal.addEventListener("abort", onAbort, { once: true });
      const done = () => context.signal.removeEventListener("abort", onAbort);
      const request: MajordomoRequest = {
        ...context,
        body,
        reply: async (frames) => {
          await reply(frames);
          done();
          resolve();
        },
        fail: (error) => {
          done();
          reject(error ?? new Error("request failed"));
        },
      };
      const take = this.#takers.shift();
      if (take) take(request);
      else this.#offered.push(request);
    });
  }

  #take(): Promise<MajordomoRequest | undefined> {
    const request = this.#offered.shift();
    if (request) return Promise.resolve(request);
    if (this.#closing.signal.aborted) return Promise.resolve(undefined);
    return new Promise((resolve) => this.#takers.push(resolve));
  }

  #drop(reason: string): void {
    this.#dropped.increment(reason);
    this.#logger.warn("invalid message from broker", { reason });
    this.emit("dropped", { reason });
  }

  #trace(what: string, frames: Buffer[]): void {
    if (this.#verbose) this.#logger.debug(`${what}\n${new Msg(frames).dump()}`);
  }
}

/** A service name a worker may register: what a client may address, outside `mmi.` (MMI-R1). */
function checkService(service: string): string {
  checkRequestService(service);
  if (isMmiService(service)) {
    throw new InvalidArgumentError(`service "${service}" is in the reserved mmi. namespace`);
  }
  return service;
}
