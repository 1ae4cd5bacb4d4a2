/**
 * `Heartbeater`: send heartbeats on a fixed cadence and track the peer's liveness.
 * @module
 */
import { checkDuration } from "../options.js";
import { type Clock, systemClock, type TimerHandle } from "./clock.js";
import { Liveness } from "./liveness.js";

/** Options of {@link Heartbeater}. */
export interface HeartbeaterOptions {
  /** Time between heartbeats, and the unit of liveness. */
  intervalMs: number;
  /** Silent intervals tolerated before the peer is declared dead. Default 3. */
  liveness?: number;
  /** Sends one heartbeat. Called once per interval while running. */
  onBeat: () => void;
  /** Called once when the peer has been silent for `liveness` intervals. */
  onPeerDead?: () => void;
  /** Clock for time and timers. Default: the system clock. */
  clock?: Clock;
}

/**
 * A heartbeat timer on its own schedule, independent of message handling, so heartbeats keep
 * flowing while a handler awaits (the Guide's single-threaded reference cannot do that).
 *
 * Every interval it counts a miss when nothing arrived from the peer since the previous tick
 * ({@link Heartbeater.touch} records traffic), declares the peer dead when {@link Liveness}
 * reaches zero, then sends a heartbeat. A peer is therefore declared dead between `liveness` and
 * `liveness + 1` intervals after its last message. Ticks keep a fixed cadence; ticks missed while
 * the event loop was blocked are skipped rather than sent in a burst.
 */
export class Heartbeater {
  readonly intervalMs: number;
  readonly liveness: Liveness;
  readonly #clock: Clock;
  readonly #onBeat: () => void;
  readonly #onPeerDead: (() => void) | undefined;
  #timer: TimerHandle | undefined;
  #nextAt = 0;
  #heard = false;
  #generation = 0;

  constructor(options: HeartbeaterOptions) {
    this.intervalMs = checkDuration("intervalMs", options.intervalMs);
    this.liveness = new Liveness(options.liveness ?? 3);
    this.#clock = options.clock ?? systemClock;
    this.#onBeat = options.onBeat;
    this.#onPeerDead = options.onPeerDead;
  }

  /** True between {@link Heartbeater.start} and {@link Heartbeater.stop}. */
  get running(): boolean {
    return this.#timer !== undefined;
  }

  /** Starts ticking (first heartbeat one interval from now) with full liveness. Restarts if running. */
  start(): void {
    this.stop();
    this.liveness.reset();
    this.#heard = false;
    this.#nextAt = this.#clock.now() + this.intervalMs;
    this.#schedule();
  }

  /** Stops ticking. Idempotent. */
  stop(): void {
    this.#generation += 1;
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  /** Records traffic from the peer: any message counts as a sign of life. */
  touch(): void {
    this.#heard = true;
    this.liveness.reset();
  }

  #schedule(): void {
    this.#timer = this.#clock.setTimeout(() => this.#tick(), this.#nextAt - this.#clock.now());
  }

  #tick(): void {
    const now = this.#clock.now();
    do this.#nextAt += this.intervalMs;
    while (this.#nextAt <= now);
    if (this.#heard) this.#heard = false;
    else if (this.liveness.miss()) {
      const generation = this.#generation;
      this.#onPeerDead?.();
      // The callback may have restarted or stopped us; only carry on if it did neither.
      if (generation !== this.#generation) return;
      this.liveness.reset();
    }
    this.#schedule();
    this.#onBeat();
  }
}
