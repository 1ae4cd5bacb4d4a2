/**
 * `Liveness`: the Guide's count of heartbeat intervals a peer may stay silent.
 * @module
 */
import { checkInteger } from "../options.js";

/**
 * Counts down missed heartbeat intervals. Any traffic from the peer calls {@link Liveness.reset};
 * each interval that passes in silence calls {@link Liveness.miss}; the peer is dead when the count
 * reaches zero.
 */
export class Liveness {
  /** The starting (and reset) value: how many silent intervals are tolerated. */
  readonly initial: number;
  #value: number;

  constructor(initial = 3) {
    this.initial = checkInteger("liveness", initial);
    this.#value = this.initial;
  }

  /** Intervals left before the peer is considered dead. */
  get value(): number {
    return this.#value;
  }

  /** True once the count reached zero. */
  get dead(): boolean {
    return this.#value <= 0;
  }

  /** The peer showed a sign of life. */
  reset(): void {
    this.#value = this.initial;
  }

  /** One interval passed in silence; returns true only when this miss made the peer dead. */
  miss(): boolean {
    if (this.#value === 0) return false;
    this.#value -= 1;
    return this.#value === 0;
  }
}
