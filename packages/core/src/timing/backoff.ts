/**
 * `Backoff`: exponential, capped retry delays.
 * @module
 */
import { InvalidArgumentError } from "../errors.js";
import { checkDuration } from "../options.js";

/** Options of {@link Backoff}. */
export interface BackoffOptions {
  /** First delay. Default 1,000 ms (the Guide's `INTERVAL_INIT`). */
  initialMs?: number;
  /** Cap of the delay. Default 32,000 ms (the Guide's `INTERVAL_MAX`). */
  maxMs?: number;
  /** Growth per attempt. Default 2. */
  factor?: number;
  /**
   * Fraction of random spread applied to each delay, from 0 (none, the default, as the Guide)
   * to 1. With 0.2 a 1,000 ms delay becomes 800 to 1,200 ms; it keeps a crowd of peers that lost
   * the same server from reconnecting in lockstep.
   */
  jitter?: number;
  /** Random source in [0, 1), for tests. Default `Math.random`. */
  random?: () => number;
}

/**
 * Exponential back-off: `next()` returns 1, 2, 4 ... 32, 32 s with the defaults; `reset()` starts
 * over (a peer resets it on any sign of life).
 */
export class Backoff {
  readonly initialMs: number;
  readonly maxMs: number;
  readonly factor: number;
  readonly jitter: number;
  readonly #random: () => number;
  #current: number;
  #attempts = 0;

  constructor(options: BackoffOptions = {}) {
    this.initialMs = checkDuration("initialMs", options.initialMs ?? 1000, 0);
    this.maxMs = checkDuration("maxMs", options.maxMs ?? 32_000, 0);
    if (this.maxMs < this.initialMs) {
      throw new InvalidArgumentError(
        `maxMs (${this.maxMs}) must be >= initialMs (${this.initialMs})`,
      );
    }
    this.factor = checkDuration("factor", options.factor ?? 2, 1);
    this.jitter = options.jitter ?? 0;
    if (!(this.jitter >= 0 && this.jitter <= 1)) {
      throw new InvalidArgumentError(
        `jitter must be a fraction from 0 to 1, got ${String(this.jitter)}`,
      );
    }
    this.#random = options.random ?? Math.random;
    this.#current = this.initialMs;
  }

  /** Delays handed out since the last reset. */
  get attempts(): number {
    return this.#attempts;
  }

  /** The delay the next call to {@link Backoff.next} returns, before jitter. */
  peek(): number {
    return this.#current;
  }

  /** The delay to wait now; grows the following one up to the cap. */
  next(): number {
    const base = this.#current;
    this.#current = Math.min(this.maxMs, this.#current * this.factor);
    this.#attempts += 1;
    if (this.jitter === 0) return base;
    const spread = base * this.jitter;
    return Math.max(0, Math.round(base - spread + 2 * spread * this.#random()));
  }

  /** Back to the initial delay. */
  reset(): void {
    this.#current = this.initialMs;
    this.#attempts = 0;
  }
}
