/**
 * The Binary Star finite state machine (spec 1.5), as a pure {@link step} function plus a small
 * {@link BinaryStarMachine} that keeps the peer-expiry bookkeeping on an injectable clock.
 * No sockets, no timers: the server role feeds it decoded peer states and client votes.
 *
 * The semantics are the reactor's (spec 1.5.1 [DECISION]), not the proof of concept's, so a
 * primary that has not heard its backup never serves before the peer expiry passes (fix 1.11.2).
 * @module
 */
import { type Clock, checkDuration, InvalidArgumentError } from "@zmq-patterns/core";

/**
 * A server's own state (spec 1.5): `PRIMARY` and `BACKUP` wait for the peer; `ACTIVE` serves
 * clients; `PASSIVE` only watches the peer and would take over.
 */
export type BinaryStarState = "PRIMARY" | "BACKUP" | "ACTIVE" | "PASSIVE";

/** How a server is configured: the primary is normally active, the backup normally passive. */
export type BinaryStarRole = "primary" | "backup";

/**
 * What the machine reacts to (spec 1.5): `PEER_<STATE>` when the peer announced `<STATE>`, and
 * `CLIENT_REQUEST` when a message arrived on the voter socket (a client's "vote").
 */
export type BinaryStarEvent =
  | "PEER_PRIMARY"
  | "PEER_BACKUP"
  | "PEER_ACTIVE"
  | "PEER_PASSIVE"
  | "CLIENT_REQUEST";

/**
 * Why the pair cannot go on (spec 1.5.4): both servers active (split brain) or both passive
 * (nobody would ever serve).
 */
export type BinaryStarFatalReason = "dual-active" | "dual-passive";

/** The times {@link step} needs, in milliseconds on one monotonic clock (fix 1.11.7). */
export interface StepContext {
  /** The current time. */
  readonly now: number;
  /**
   * When the peer counts as gone: the time of the last valid peer state message (or of the
   * start) plus the peer expiry, 2 x heartbeat by default ({@link peerExpiryAfter}).
   */
  readonly peerExpiry: number;
}

/** The machine carries on, possibly in a new state. */
export interface StepNext {
  /** Discriminant. */
  readonly type: "next";
  /** The state after the event (the same state when the event is ignored). */
  readonly state: BinaryStarState;
  /**
   * `"active"` or `"passive"` exactly when this step entered that state, so a caller fires its
   * callback once per transition and before handling the triggering request (spec 1.5.1).
   */
  readonly entered: "active" | "passive" | null;
  /**
   * For `CLIENT_REQUEST`: `true` to hand the request to the application, `false` to drop it
   * without a reply (spec 1.3). `null` for peer events, which are not votes.
   */
  readonly accept: boolean | null;
  /**
   * `"misconfigured"` when the peer announces the same configured role (both primary or both
   * backup): the reference ignores this silently; we surface it (fix 1.11.5) but keep waiting,
   * since an operator can still fix the peer.
   */
  readonly warning: "misconfigured" | null;
}

/** The pair is broken and this server must stop (a distinct error, not exit code 0: fix 1.11.6). */
export interface StepFatal {
  /** Discriminant. */
  readonly type: "fatal";
  /** The state the server was in when the fatal event arrived. */
  readonly state: BinaryStarState;
  /** What went wrong. */
  readonly reason: BinaryStarFatalReason;
}

/** The outcome of one {@link step}. */
export type StepResult = StepNext | StepFatal;

const STATES: readonly BinaryStarState[] = ["PRIMARY", "BACKUP", "ACTIVE", "PASSIVE"];
const EVENTS: readonly BinaryStarEvent[] = [
  "PEER_PRIMARY",
  "PEER_BACKUP",
  "PEER_ACTIVE",
  "PEER_PASSIVE",
  "CLIENT_REQUEST",
];

/** Every state, in wire-code order (1..4). */
export const BINARY_STAR_STATES: readonly BinaryStarState[] = STATES;
/** Every event, in the reference's numeric order (1..5). */
export const BINARY_STAR_EVENTS: readonly BinaryStarEvent[] = EVENTS;

/** The state a server starts in: `PRIMARY` for the primary, `BACKUP` for the backup (spec 1.5). */
export function initialState(role: BinaryStarRole): BinaryStarState {
  if (role === "primary") return "PRIMARY";
  if (role === "backup") return "BACKUP";
  throw new InvalidArgumentError(`role must be "primary" or "backup", got ${String(role)}`);
}

/**
 * The event a peer state announcement raises. Only the four states map to events, so nothing a
 * peer sends can ever become `CLIENT_REQUEST` (the reference's `"5"` bug, fix 1.11.3).
 */
export function peerEvent(peerState: BinaryStarState): BinaryStarEvent {
  if (!STATES.includes(peerState)) {
    throw new InvalidArgumentError(`not a Binary Star state: ${String(peerState)}`);
  }
  return `PEER_${peerState}`;
}

/** The peer expiry after hearing the peer (or starting) at `now`: `now + peerExpiryMs`. */
export function peerExpiryAfter(now: number, peerExpiryMs: number): number {
  return now + peerExpiryMs;
}

const next = (
  state: BinaryStarState,
  entered: StepNext["entered"] = null,
  accept: boolean | null = null,
  warning: StepNext["warning"] = null,
): StepNext => ({ type: "next", state, entered, accept, warning });

const fatal = (state: BinaryStarState, reason: BinaryStarFatalReason): StepFatal => ({
  type: "fatal",
  state,
  reason,
});

/**
 * One transition of the Binary Star machine: the reactor's table (spec 1.5.1). Pure: the same
 * inputs always give the same result, and nothing is called or mutated.
 *
 * A vote (`CLIENT_REQUEST`) makes a `PRIMARY` or `PASSIVE` server active only once
 * `context.now >= context.peerExpiry` (the failover rule, spec 1.5.3); an `ACTIVE` server
 * accepts every vote and a `BACKUP` none. Rejected votes are never fatal (fix 1.11.3).
 *
 * @throws {@link @zmq-patterns/core!InvalidArgumentError | InvalidArgumentError} for an unknown
 * state or event, or times that are not finite numbers.
 */
export function step(
  state: BinaryStarState,
  event: BinaryStarEvent,
  context: StepContext,
): StepResult {
  if (!STATES.includes(state)) {
    throw new InvalidArgumentError(`not a Binary Star state: ${String(state)}`);
  }
  if (!EVENTS.includes(event)) {
    throw new InvalidArgumentError(`not a Binary Star event: ${String(event)}`);
  }
  if (!Number.isFinite(context.now) || !Number.isFinite(context.peerExpiry)) {
    throw new InvalidArgumentError(
      `now and peerExpiry must be finite numbers, got ${String(context.now)} and ${String(context.peerExpiry)}`,
    );
  }
  const peerExpired = context.now >= context.peerExpiry;

  switch (state) {
    case "PRIMARY":
      switch (event) {
        case "PEER_BACKUP":
          return next("ACTIVE", "active");
        case "PEER_ACTIVE":
          return next("PASSIVE", "passive");
        case "PEER_PRIMARY":
          return next("PRIMARY", null, null, "misconfigured");
        case "PEER_PASSIVE":
          return next("PRIMARY");
        case "CLIENT_REQUEST":
          // The backup may be active after a failover we never saw: serve only once it is silent.
          return peerExpired ? next("ACTIVE", "active", true) : next("PRIMARY", null, false);
      }
      break;
    case "BACKUP":
      switch (event) {
        case "PEER_ACTIVE":
          return next("PASSIVE", "passive");
        case "PEER_BACKUP":
          return next("BACKUP", null, null, "misconfigured");
        case "PEER_PRIMARY":
        case "PEER_PASSIVE":
          return next("BACKUP");
        case "CLIENT_REQUEST":
          // A backup that never saw an active primary must not serve: the primary may be starting.
          return next("BACKUP", null, false);
      }
      break;
    case "ACTIVE":
      switch (event) {
        case "PEER_ACTIVE":
          return fatal("ACTIVE", "dual-active");
        case "PEER_PRIMARY":
        case "PEER_BACKUP":
        case "PEER_PASSIVE":
          // The peer is (re)starting or already passive: it will go passive on our heartbeat.
          return next("ACTIVE");
        case "CLIENT_REQUEST":
          return next("ACTIVE", null, true);
      }
      break;
    case "PASSIVE":
      switch (event) {
        case "PEER_PRIMARY":
        case "PEER_BACKUP":
          // The active peer restarted and lost its state: take over (roles swap, spec 1.9).
          return next("ACTIVE", "active");
        case "PEER_PASSIVE":
          return fatal("PASSIVE", "dual-passive");
        case "PEER_ACTIVE":
          return next("PASSIVE");
        case "CLIENT_REQUEST":
          // Silence alone never fails over; a vote alone never does while the peer is heard.
          return peerExpired ? next("ACTIVE", "active", true) : next("PASSIVE", null, false);
      }
      break;
  }
  // Unreachable: both inputs were validated above.
  throw new InvalidArgumentError(`no transition for ${state} on ${event}`);
}

/** Options of a {@link BinaryStarMachine}. */
export interface BinaryStarMachineOptions {
  /** Which server of the pair this is. */
  role: BinaryStarRole;
  /** The clock to read "now" from; a monotonic one (fix 1.11.7), a `ManualClock` in tests. */
  clock: Clock;
  /**
   * How long the peer may stay silent before a vote can make this server active: 2 x heartbeat,
   * and identical on both servers (spec 1.1, 1.4). Milliseconds, >= 1.
   */
  peerExpiryMs: number;
}

/**
 * The state machine with the reactor's peer-expiry bookkeeping (spec 1.5): the expiry is set
 * when the machine is created (the reactor's start) and refreshed by every valid peer state
 * *before* that event is stepped. Only decoded states reach {@link BinaryStarMachine.peerState},
 * so garbage from the peer neither steps the machine nor counts as liveness (fix 1.11.3).
 *
 * Once a step is fatal the machine stays stopped and returns that same fatal result, because a
 * broken pair must not come back to life on a later event.
 */
export class BinaryStarMachine {
  readonly #clock: Clock;
  readonly #peerExpiryMs: number;
  #state: BinaryStarState;
  #peerExpiry: number;
  #fatal: StepFatal | null = null;

  constructor(options: BinaryStarMachineOptions) {
    this.#state = initialState(options.role);
    this.#peerExpiryMs = checkDuration("peerExpiryMs", options.peerExpiryMs);
    this.#clock = options.clock;
    this.#peerExpiry = peerExpiryAfter(this.#clock.now(), this.#peerExpiryMs);
  }

  /** The current state (the state at the fatal event once stopped). */
  get state(): BinaryStarState {
    return this.#state;
  }

  /** When the peer counts as gone, on the machine's clock. */
  get peerExpiry(): number {
    return this.#peerExpiry;
  }

  /** The fatal result that stopped the machine, or `null` while it runs. */
  get fatal(): StepFatal | null {
    return this.#fatal;
  }

  /** The peer announced `peerState`: refresh its expiry, then step. */
  peerState(peerState: BinaryStarState): StepResult {
    if (this.#fatal !== null) return this.#fatal;
    const event = peerEvent(peerState);
    this.#peerExpiry = peerExpiryAfter(this.#clock.now(), this.#peerExpiryMs);
    return this.#apply(event);
  }

  /** A client request arrived on the voter: step, and say whether to accept it. */
  clientRequest(): StepResult {
    if (this.#fatal !== null) return this.#fatal;
    return this.#apply("CLIENT_REQUEST");
  }

  #apply(event: BinaryStarEvent): StepResult {
    const result = step(this.#state, event, {
      now: this.#clock.now(),
      peerExpiry: this.#peerExpiry,
    });
    if (result.type === "fatal") this.#fatal = result;
    else this.#state = result.state;
    return result;
  }
}
