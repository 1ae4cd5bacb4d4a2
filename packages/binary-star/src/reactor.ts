/**
 * `BinaryStar`: the reactor that turns any request-reply server into one half of a primary/backup
 * pair (spec 1.6, 1.7). It owns the state publisher and subscriber between the peers, the
 * heartbeat, the state machine and the voter socket whose client traffic drives failover.
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
  closeSocket,
  createLogger,
  type FrameLike,
  InvalidArgumentError,
  identityKey,
  type Logger,
  ProtocolError,
  SendQueue,
  systemClock,
  type TimerHandle,
} from "@zmq-patterns/core";
import { Publisher, Router, Subscriber } from "zeromq";
import {
  type BinaryStarFatalReason,
  BinaryStarMachine,
  type BinaryStarRole,
  type BinaryStarState,
  initialState,
  type StepResult,
} from "./fsm.js";
import {
  type BinaryStarEndpoints,
  DEFAULT_BACKUP_ENDPOINTS,
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_PRIMARY_ENDPOINTS,
  decodeState,
  encodeState,
} from "./protocol.js";

/**
 * The pair is broken and this server stopped (spec 1.5.4): both servers active (split brain) or
 * both passive. Unlike the reference, which exits with status 0, this is a distinct error
 * (fix 1.11.6); the bundled CLI exits with status 3.
 */
export class BinaryStarFatalError extends Error {
  /** `"dual-active"` or `"dual-passive"`. */
  readonly reason: BinaryStarFatalReason;
  /** This server's state when the peer's announcement arrived. */
  readonly state: BinaryStarState;
  /** What the peer announced. */
  readonly peerState: BinaryStarState;

  constructor(reason: BinaryStarFatalReason, state: BinaryStarState, peerState: BinaryStarState) {
    super(
      reason === "dual-active"
        ? "fatal error: dual active servers (split brain), aborting"
        : "fatal error: dual passive servers (nobody would serve), aborting",
    );
    this.name = "BinaryStarFatalError";
    this.reason = reason;
    this.state = state;
    this.peerState = peerState;
  }
}

/** How the reactor answers on the voter socket: the one way back to clients. */
export interface BinaryStarVoter {
  /**
   * Queues a message on the voter ROUTER; its first frame is the routing identity of the client.
   * Returns `false` when the send queue is full (counted as a `voter queue full` drop) or the
   * reactor is closed (not counted: nothing is served any more).
   */
  send(frames: readonly FrameLike[]): boolean;
  /**
   * Queues a message, first waiting for room in the send queue: the way to stream a long answer
   * (a Clone snapshot, say) without dropping its tail. Resolves `true` once the socket took it,
   * `false` (counted as a drop) when it could not be delivered or the reactor closed.
   */
  write(frames: readonly FrameLike[]): Promise<boolean>;
}

/**
 * Handles a client request that the state machine accepted. `message` is the whole multipart
 * as the ROUTER received it, routing identity first (for a REQ client: `[identity, "", body...]`).
 * A returned promise is not awaited (requests are handled concurrently); its rejection is logged
 * and counted as `handler error`.
 */
export type BinaryStarHandler = (message: Buffer[], voter: BinaryStarVoter) => void | Promise<void>;

/** Options of {@link BinaryStar.start}. */
export interface BinaryStarOptions {
  /** Which server of the pair this is: the primary starts in `PRIMARY`, the backup in `BACKUP`. */
  role: BinaryStarRole;
  /** The application's work for an accepted request (spec 1.6). */
  handler: BinaryStarHandler;
  /**
   * Where the voter ROUTER binds: the client-facing socket whose messages are votes. Default
   * the Guide's `tcp://*:5001` (primary) or `tcp://*:5002` (backup).
   */
  voter?: string;
  /** Where this server's state PUB binds. Default `tcp://*:5003` (primary), `tcp://*:5004` (backup). */
  localState?: string;
  /**
   * Where this server's state SUB connects: the peer's publisher. Default
   * `tcp://localhost:5004` (primary), `tcp://localhost:5003` (backup).
   */
  remoteState?: string;
  /** Interval between state messages to the peer; identical on both servers. Default 1,000 ms. */
  heartbeatIntervalMs?: number;
  /**
   * Peer silence after which a client vote may make this server active (the failover timeout).
   * Identical on both servers. Default 2 x `heartbeatIntervalMs`. Must exceed the heartbeat
   * interval, or a healthy peer would look gone between two of its heartbeats.
   */
  peerExpiryMs?: number;
  /**
   * Checks a voter message before it counts as a vote; throw (a `ProtocolError` names the
   * reason) to drop it as garbage, neither voting nor reaching the handler. Default: every
   * message is a vote, as in the reference; an application that knows its request format should
   * check it here, so that junk sent to a passive server cannot make it take over.
   */
  validateRequest?: (message: Buffer[]) => void;
  /**
   * Called for each request the state machine rejected. By default a rejected request gets no
   * reply at all, as in the reference (fix 1.11.4 keeps that on the wire); an application may
   * answer here, for example with an explicit "not active" message.
   */
  onReject?: (message: Buffer[], voter: BinaryStarVoter, state: BinaryStarState) => void;
  /** Messages held for the voter socket before replies are dropped. Default 1,000. */
  sendCapacity?: number;
  /**
   * How long a reply may wait for a client that does not read (its queue at the high-water
   * mark) before it is dropped and counted, so one stuck client cannot hold up the others'
   * replies for good. Default 5,000 ms.
   */
  sendTimeoutMs?: number;
  /**
   * How the voter ROUTER queues replies. By default it is `mandatory` (a reply to a client that
   * is gone fails and is counted) with the usual high-water mark of 1,000 messages per client, a
   * reply to a client at that mark waiting up to `sendTimeoutMs`. An application that streams
   * long answers to several clients at once (Clone's snapshots) should turn `mandatory` off and
   * lift the mark (`sendHighWaterMark: 0`, no limit): a mandatory ROUTER signals room to write
   * while any client has room, so one full client would stall the others until the timeout.
   */
  voterQueue?: { mandatory?: boolean; sendHighWaterMark?: number };
  /** Monotonic clock for heartbeats and the peer expiry (fix 1.11.7). Default: the system clock. */
  clock?: Clock;
  /** Where to log. Default: quiet unless `ZMQ_PATTERNS_DEBUG` enables `binary-star:<role>`. */
  logger?: Logger;
}

/** Why this server became active or passive, in the words of the Guide's servers. */
export type BinaryStarTransitionReason =
  | "peer is passive"
  | "peer is active"
  | "peer is restarting"
  | "client vote, peer silent";

/** Events of {@link BinaryStar}. */
export interface BinaryStarEvents {
  /** The state changed. */
  state: [{ from: BinaryStarState; to: BinaryStarState; reason: BinaryStarTransitionReason }];
  /** This server became active; emitted once, before the request that caused it is handled. */
  active: [{ from: BinaryStarState; reason: BinaryStarTransitionReason }];
  /** This server became passive. */
  passive: [{ from: BinaryStarState; reason: BinaryStarTransitionReason }];
  /**
   * The peer announces the same configured role as ours (both primary or both backup, fix
   * 1.11.5): neither would ever serve. Emitted when first seen, and again only after the peer
   * said something else in between.
   */
  misconfigured: [{ state: BinaryStarState; peerState: BinaryStarState }];
  /** A client request was rejected: no reply unless `onReject` answers. */
  rejected: [{ state: BinaryStarState; from: string }];
  /** A message was dropped: a bad state message from the peer, garbage or a full queue on the voter. */
  dropped: [{ reason: string; side: "peer" | "voter"; from: string }];
  /** The pair is broken; the reactor has stopped serving and closes itself. */
  fatal: [BinaryStarFatalError];
}

/** A snapshot of the reactor's state and counters. */
export interface BinaryStarStats {
  role: BinaryStarRole;
  state: BinaryStarState;
  /** Milliseconds until the peer counts as gone (0 when it already does). */
  peerExpiresInMs: number;
  stateMessagesSent: number;
  stateMessagesReceived: number;
  requestsAccepted: number;
  requestsRejected: number;
  handlerErrors: number;
  /** Messages dropped, by reason. */
  dropped: Record<string, number>;
}

/**
 * One server of a Binary Star pair (spec section 1): at most one of the two is active and hands
 * client requests to the application; the passive one takes over only when a client asks it to
 * *and* its peer has been silent for the peer expiry (the failover rule, spec 1.5.3).
 *
 * Every `heartbeatIntervalMs` the reactor publishes its state (one frame, `"1"`..`"4"`) on its
 * PUB socket; it hears the peer on a SUB socket. Each message on the voter ROUTER is a vote:
 * the state machine ({@link step}, reactor semantics, spec 1.5.1) decides whether the
 * application's handler sees it or it is dropped without reply.
 *
 * Fixes of the reference (spec 1.11): only exactly one frame `"1"`..`"4"` is a peer state, and
 * anything else from the peer is counted and dropped without refreshing the peer's liveness
 * (the reference turned `"5"` into a client request that could end the reactor); misconfigured
 * pairs are reported; fatal conditions are a distinct {@link BinaryStarFatalError}; expiry runs
 * on a monotonic clock; the reactor reads the voter message and passes it on.
 *
 * @example
 * ```ts
 * const server = await BinaryStar.start({
 *   role: "primary",
 *   handler: (message, voter) => voter.send(message), // echo
 * });
 * server.on("active", ({ reason }) => console.log("active:", reason));
 * server.on("fatal", (error) => console.error(error.message));
 * ```
 */
export class BinaryStar extends EventEmitter<BinaryStarEvents> implements Closeable {
  /** Which server of the pair this is. */
  readonly role: BinaryStarRole;
  /** Interval between state messages to the peer, in milliseconds. */
  readonly heartbeatIntervalMs: number;
  /** Peer silence after which a vote may make this server active, in milliseconds. */
  readonly peerExpiryMs: number;
  readonly #endpoints: BinaryStarEndpoints;
  readonly #handler: BinaryStarHandler;
  readonly #validate: (message: Buffer[]) => void;
  readonly #onReject: BinaryStarOptions["onReject"];
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #stack = new CloseStack();
  readonly #voter: Router;
  readonly #publisher: Publisher;
  readonly #subscriber: Subscriber;
  readonly #toVoter: SendQueue;
  readonly #voterApi: BinaryStarVoter;
  readonly #dropped = new Counters();
  readonly #counts = {
    stateMessagesSent: 0,
    stateMessagesReceived: 0,
    requestsAccepted: 0,
    requestsRejected: 0,
    handlerErrors: 0,
  };
  #machine: BinaryStarMachine | undefined;
  /** The endpoints as bound (real ports), kept so they stay readable after close. */
  #bound: { voter: string; localState: string } | undefined;
  #heartbeat: TimerHandle | undefined;
  #misconfigured = false;
  #fatal: BinaryStarFatalError | null = null;

  private constructor(options: BinaryStarOptions) {
    super();
    // Validate the role first: the defaults depend on it.
    initialState(options.role);
    this.role = options.role;
    if (typeof options.handler !== "function") {
      throw new InvalidArgumentError("handler must be a function");
    }
    const defaults = this.role === "primary" ? DEFAULT_PRIMARY_ENDPOINTS : DEFAULT_BACKUP_ENDPOINTS;
    this.#endpoints = {
      frontend: checkEndpoint("voter", options.voter ?? defaults.frontend),
      localState: checkEndpoint("localState", options.localState ?? defaults.localState),
      remoteState: checkEndpoint("remoteState", options.remoteState ?? defaults.remoteState),
    };
    this.heartbeatIntervalMs = checkDuration(
      "heartbeatIntervalMs",
      options.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS,
    );
    this.peerExpiryMs = checkDuration(
      "peerExpiryMs",
      options.peerExpiryMs ?? 2 * this.heartbeatIntervalMs,
    );
    if (this.peerExpiryMs <= this.heartbeatIntervalMs) {
      throw new InvalidArgumentError(
        `peerExpiryMs (${this.peerExpiryMs}) must exceed heartbeatIntervalMs (${this.heartbeatIntervalMs})`,
      );
    }
    const capacity = checkInteger("sendCapacity", options.sendCapacity ?? 1000);
    this.#handler = options.handler;
    this.#validate = options.validateRequest ?? (() => {});
    this.#onReject = options.onReject;
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger ?? createLogger(`binary-star:${this.role}`);
    // Mandatory routing: a reply to a client that is gone fails (and is counted), and a client
    // at its high-water mark makes the reply wait (up to the send timeout) instead of vanishing.
    this.#voter = this.#stack.socket(
      new Router({
        mandatory: options.voterQueue?.mandatory ?? true,
        sendHighWaterMark: checkHighWaterMark(options.voterQueue?.sendHighWaterMark ?? 1000),
        sendTimeout: checkDuration("sendTimeoutMs", options.sendTimeoutMs ?? 5000),
      }),
    );
    this.#publisher = this.#stack.socket(new Publisher());
    this.#subscriber = this.#stack.socket(new Subscriber());
    this.#toVoter = new SendQueue(this.#voter, {
      capacity,
      onError: (_error, frames) =>
        this.#drop("unroutable reply", "voter", identityKey(frames[0] ?? Buffer.alloc(0))),
    });
    this.#voterApi = {
      send: (frames) => {
        if (this.#toVoter.closed) return false;
        if (this.#toVoter.trySend(frames)) return true;
        this.#drop("voter queue full", "voter", identityKey(Buffer.from(frames[0] ?? "")));
        return false;
      },
      write: async (frames) => {
        if (this.#toVoter.closed) return false;
        try {
          await this.#toVoter.send(frames);
          return true;
        } catch {
          if (!this.#toVoter.closed) {
            this.#drop("unroutable reply", "voter", identityKey(Buffer.from(frames[0] ?? "")));
          }
          return false;
        }
      },
    };
    this.#stack.defer(() => {
      this.#heartbeat?.cancel();
      this.#toVoter.close();
    });
  }

  /**
   * Binds the voter and the state publisher, connects to the peer's publisher, and starts the
   * pair's clock: the peer expiry begins now, so a primary that has not heard its backup accepts
   * no vote for `peerExpiryMs` (spec 1.5.3).
   *
   * @throws {@link @zmq-patterns/core!InvalidArgumentError | InvalidArgumentError} for bad options;
   * the socket error when an endpoint cannot be bound.
   */
  static async start(options: BinaryStarOptions): Promise<BinaryStar> {
    const server = new BinaryStar(options);
    try {
      await server.#voter.bind(server.#endpoints.frontend);
      await server.#publisher.bind(server.#endpoints.localState);
      server.#bound = {
        voter: server.#voter.lastEndpoint ?? server.#endpoints.frontend,
        localState: server.#publisher.lastEndpoint ?? server.#endpoints.localState,
      };
      server.#subscriber.subscribe();
      server.#subscriber.connect(server.#endpoints.remoteState);
    } catch (error) {
      await server.close();
      throw error;
    }
    server.#machine = new BinaryStarMachine({
      role: server.role,
      clock: server.#clock,
      peerExpiryMs: server.peerExpiryMs,
    });
    server.#logger.info("started", {
      state: server.state,
      voter: server.endpoints.voter,
      localState: server.endpoints.localState,
      remoteState: server.#endpoints.remoteState,
    });
    server.#scheduleHeartbeat();
    void server.#servePeer();
    void server.#serveVoter();
    return server;
  }

  /** The current state: `PRIMARY` or `BACKUP` until the pair has settled, then `ACTIVE` or `PASSIVE`. */
  get state(): BinaryStarState {
    return this.#machine?.state ?? initialState(this.role);
  }

  /** True while this server hands client requests to the application. */
  get isActive(): boolean {
    return this.state === "ACTIVE" && this.#fatal === null && !this.#stack.closed;
  }

  /** The fatal error that stopped this server, or `null`. */
  get fatal(): BinaryStarFatalError | null {
    return this.#fatal;
  }

  /**
   * The endpoints, with the real ports of the bound ones. Still readable once closed (for
   * example in a `'fatal'` listener), when the sockets themselves can no longer be asked.
   */
  get endpoints(): { voter: string; localState: string; remoteState: string } {
    return {
      voter: this.#bound?.voter ?? this.#endpoints.frontend,
      localState: this.#bound?.localState ?? this.#endpoints.localState,
      remoteState: this.#endpoints.remoteState,
    };
  }

  /** A snapshot of state and counters. */
  stats(): BinaryStarStats {
    const expiry = this.#machine?.peerExpiry ?? 0;
    return {
      role: this.role,
      state: this.state,
      peerExpiresInMs: Math.max(0, expiry - this.#clock.now()),
      ...this.#counts,
      dropped: this.#dropped.snapshot(),
    };
  }

  /** Stops heartbeating and serving and closes every socket (linger 0). Idempotent. */
  close(): Promise<void> {
    return this.#stack.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Publishes our state every interval, whatever we hear (spec 1.5). First beat after one interval. */
  #scheduleHeartbeat(): void {
    this.#heartbeat = this.#clock.setTimeout(() => {
      if (this.#stack.closed) return;
      // A PUB send never blocks: with no subscriber the message is simply gone (spec 1.2).
      void this.#publisher.send(encodeState(this.state)).then(
        () => {
          this.#counts.stateMessagesSent += 1;
        },
        () => {}, // closed meanwhile
      );
      this.#scheduleHeartbeat();
    }, this.heartbeatIntervalMs);
  }

  async #servePeer(): Promise<void> {
    for (;;) {
      let frames: Buffer[];
      try {
        frames = await this.#subscriber.receive();
      } catch {
        return; // closed
      }
      let peerState: BinaryStarState;
      try {
        peerState = decodeState(frames);
      } catch (error) {
        // Not a state: neither an event nor a sign of life (fix 1.11.3).
        this.#drop(reasonOf(error), "peer", "");
        continue;
      }
      this.#counts.stateMessagesReceived += 1;
      const from = this.state;
      const result = (this.#machine as BinaryStarMachine).peerState(peerState);
      if (result.type === "fatal") {
        this.#stop(new BinaryStarFatalError(result.reason, result.state, peerState));
        return;
      }
      if (result.warning === "misconfigured") {
        if (!this.#misconfigured) {
          this.#misconfigured = true;
          this.#logger.warn("misconfigured pair: the peer has the same role", {
            state: result.state,
            peerState,
          });
          this.emit("misconfigured", { state: result.state, peerState });
        }
      } else {
        this.#misconfigured = false;
      }
      this.#transition(from, result, peerState === "ACTIVE" ? "peer is active" : peerReason(from));
    }
  }

  async #serveVoter(): Promise<void> {
    for (;;) {
      let message: Buffer[];
      try {
        message = await this.#voter.receive();
      } catch {
        return; // closed
      }
      const from = identityKey(message[0] ?? Buffer.alloc(0));
      try {
        this.#validate(message);
      } catch (error) {
        // Garbage is not a vote: it must not make a passive server take over.
        this.#drop(reasonOf(error), "voter", from);
        continue;
      }
      const before = this.state;
      const result = (this.#machine as BinaryStarMachine).clientRequest();
      if (result.type === "fatal") continue; // stopped; the loop ends with the socket
      this.#transition(before, result, "client vote, peer silent");
      if (!result.accept) {
        this.#counts.requestsRejected += 1;
        this.#logger.debug("request rejected", { state: result.state, from });
        this.emit("rejected", { state: result.state, from });
        this.#guard(() => this.#onReject?.(message, this.#voterApi, result.state));
        continue;
      }
      this.#counts.requestsAccepted += 1;
      this.#guard(() => this.#handler(message, this.#voterApi));
    }
  }

  /** Runs application code so that nothing it throws or rejects can stop a receive loop. */
  #guard(run: () => void | Promise<void>): void {
    const fail = (error: unknown) => {
      this.#counts.handlerErrors += 1;
      this.#logger.error("handler failed", { error: reasonOf(error, true) });
    };
    try {
      const pending = run();
      if (pending && typeof pending.then === "function") pending.then(undefined, fail);
    } catch (error) {
      fail(error);
    }
  }

  #transition(from: BinaryStarState, result: StepResult, reason: BinaryStarTransitionReason): void {
    if (result.type !== "next" || result.entered === null) return;
    const to = result.state;
    this.#logger.info(`ready as ${to.toLowerCase()}`, { from, reason });
    this.emit("state", { from, to, reason });
    if (result.entered === "active") this.emit("active", { from, reason });
    else this.emit("passive", { from, reason });
  }

  #stop(error: BinaryStarFatalError): void {
    this.#fatal = error;
    this.#logger.error(error.message, { state: error.state, peerState: error.peerState });
    // Tell the peer our state once more, with up to one heartbeat to deliver it, so it learns of
    // the broken pair too even if we found out before our first heartbeat in this state.
    void this.#publisher.send(encodeState(error.state)).catch(() => {});
    closeSocket(this.#publisher, this.heartbeatIntervalMs);
    // Stop serving at once: nothing is answered after the pair is known to be broken.
    void this.close();
    this.emit("fatal", error);
  }

  #drop(why: string, side: "peer" | "voter", from: string): void {
    this.#dropped.increment(why);
    this.#logger.warn("dropped message", { reason: why, side, from });
    this.emit("dropped", { reason: why, side, from });
  }
}

function peerReason(from: BinaryStarState): BinaryStarTransitionReason {
  return from === "PASSIVE" ? "peer is restarting" : "peer is passive";
}

function reasonOf(error: unknown, detail = false): string {
  if (error instanceof ProtocolError) return error.reason;
  if (detail && error instanceof Error) return error.message;
  return "undecodable message";
}

function checkHighWaterMark(value: number): number {
  if (!Number.isInteger(value) || value < 0) {
    throw new InvalidArgumentError(
      `voterQueue.sendHighWaterMark must be an integer >= 0, got ${String(value)}`,
    );
  }
  return value;
}
