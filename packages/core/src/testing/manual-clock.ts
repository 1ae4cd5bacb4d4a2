/**
 * `ManualClock`: a {@link Clock} whose time only moves when the test says so, so timer logic
 * (heartbeats, retries, expiry) is tested deterministically and instantly.
 * @module
 */
import { InvalidArgumentError } from "../errors.js";
import type { Clock, TimerHandle } from "../timing/clock.js";

interface Timer {
  readonly deadline: number;
  readonly callback: () => void;
}

/** Callbacks one {@link ManualClock.advance} or {@link ManualClock.runAll} may run before it gives up. */
const DEFAULT_MAX_CALLBACKS = 100_000;

/**
 * A clock that never moves by itself: `advance(ms)` moves time forward and runs the callbacks that
 * fall due, in deadline order and, for equal deadlines, in the order they were scheduled. It uses
 * no real timers, so nothing it schedules keeps the process alive.
 */
export class ManualClock implements Clock {
  #now: number;
  /** Sorted by deadline, then by scheduling order. */
  readonly #timers: Timer[] = [];

  /** Starts the clock at `startMs` (default 0). */
  constructor(startMs = 0) {
    if (!Number.isFinite(startMs)) {
      throw new InvalidArgumentError(`startMs must be a finite number, got ${String(startMs)}`);
    }
    this.#now = startMs;
  }

  /** The current manual time in milliseconds. */
  now(): number {
    return this.#now;
  }

  /**
   * Schedules `callback` at `now() + delayMs`; negative delays count as 0, like Node's timers,
   * and `Infinity` schedules a timer that never fires.
   */
  setTimeout(callback: () => void, delayMs: number): TimerHandle {
    if (typeof callback !== "function") {
      throw new InvalidArgumentError("callback must be a function");
    }
    if (typeof delayMs !== "number" || Number.isNaN(delayMs)) {
      throw new InvalidArgumentError(`delayMs must be a number, got ${String(delayMs)}`);
    }
    const timer: Timer = { deadline: this.#now + Math.max(0, delayMs), callback };
    this.#insert(timer);
    return {
      cancel: () => {
        const index = this.#timers.indexOf(timer);
        if (index >= 0) this.#timers.splice(index, 1);
      },
    };
  }

  /** Timers scheduled and neither run nor cancelled. */
  get pending(): number {
    return this.#timers.length;
  }

  /** Deadline of the next timer to run, or `undefined` when none is pending. */
  get nextDeadline(): number | undefined {
    return this.#timers[0]?.deadline;
  }

  /**
   * Moves time forward by `ms`, running every callback that falls due on the way (including those
   * scheduled by callbacks during the advance), each with `now()` equal to its own deadline.
   * Returns the number of callbacks run. A callback that throws stops the advance with `now()`
   * left at that callback's deadline, and the error propagates.
   */
  advance(ms: number, maxCallbacks = DEFAULT_MAX_CALLBACKS): number {
    if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0) {
      throw new InvalidArgumentError(`ms must be a finite number >= 0, got ${String(ms)}`);
    }
    const target = this.#now + ms;
    const ran = this.#runUntil(target, maxCallbacks);
    // A nested advance() from a callback may already have gone further; time never goes back.
    this.#now = Math.max(this.#now, target);
    return ran;
  }

  /** Moves time to the absolute `timeMs` (not before now), like {@link ManualClock.advance}. */
  advanceTo(timeMs: number, maxCallbacks = DEFAULT_MAX_CALLBACKS): number {
    return this.advance(Math.max(0, timeMs - this.#now), maxCallbacks);
  }

  /**
   * Runs timers until none is pending, moving time to each deadline; returns the number run.
   * Throws once `maxCallbacks` have run, because a timer that re-arms itself never settles.
   * Timers scheduled at `Infinity` are left pending.
   */
  runAll(maxCallbacks = DEFAULT_MAX_CALLBACKS): number {
    return this.#runUntil(Number.MAX_VALUE, maxCallbacks);
  }

  #runUntil(target: number, maxCallbacks: number): number {
    let ran = 0;
    for (;;) {
      const next = this.#timers[0];
      if (next === undefined || next.deadline > target) return ran;
      if (ran >= maxCallbacks) {
        throw new Error(
          `ManualClock: ${maxCallbacks} callbacks ran and timers are still due at ${next.deadline} ` +
            "(a timer that re-arms itself with a zero delay never lets time move)",
        );
      }
      this.#timers.shift();
      this.#now = Math.max(this.#now, next.deadline);
      ran++;
      next.callback();
    }
  }

  #insert(timer: Timer): void {
    // Binary search for the first timer due strictly later: equal deadlines keep scheduling order.
    let low = 0;
    let high = this.#timers.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.#timers[mid]!.deadline <= timer.deadline) low = mid + 1;
      else high = mid;
    }
    this.#timers.splice(low, 0, timer);
  }
}
