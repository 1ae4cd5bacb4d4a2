/**
 * `ExpiryList`: deadlines for thousands of peers, expired without scanning them all.
 * @module
 */
import { checkDuration } from "../options.js";
import { type Clock, systemClock, type TimerHandle } from "./clock.js";

/** Options of {@link ExpiryList}. */
export interface ExpiryListOptions<K, V> {
  /** How long an entry lives after its last {@link ExpiryList.touch}. */
  ttlMs: number;
  /** Called for each entry that expires while the list runs its own timer. */
  onExpire?: (key: K, value: V) => void;
  /** Clock for time and timers. Default: the system clock. */
  clock?: Clock;
}

/**
 * Entries that expire a fixed time after they were last touched, like CZMQ zloop's "tickets".
 *
 * With one TTL for all entries, the order of last touch is the order of deadlines, so touching
 * moves an entry to the tail and expiry pops from the head: both O(1), whatever the number of
 * peers. A single timer is armed for the head's deadline only.
 */
export class ExpiryList<K, V = undefined> {
  readonly ttlMs: number;
  readonly #clock: Clock;
  readonly #onExpire: ((key: K, value: V) => void) | undefined;
  readonly #entries = new Map<K, { value: V; deadline: number }>();
  #timer: TimerHandle | undefined;
  #running = false;

  constructor(options: ExpiryListOptions<K, V>) {
    this.ttlMs = checkDuration("ttlMs", options.ttlMs);
    this.#clock = options.clock ?? systemClock;
    this.#onExpire = options.onExpire;
  }

  /** Number of live entries. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * Sets (or refreshes) `key`'s deadline to now + TTL, moving it to the tail. Without `value`, an
   * entry keeps the value it had.
   */
  touch(key: K, value?: V): void {
    const existing = this.#entries.get(key);
    const stored = (value === undefined ? existing?.value : value) as V;
    this.#entries.delete(key);
    this.#entries.set(key, { value: stored, deadline: this.#clock.now() + this.ttlMs });
    if (this.#running && this.#timer === undefined) this.#arm();
  }

  /** True when `key` is present (expired entries stay until {@link ExpiryList.expire} runs). */
  has(key: K): boolean {
    return this.#entries.has(key);
  }

  /** The value stored with `key`. */
  get(key: K): V | undefined {
    return this.#entries.get(key)?.value;
  }

  /** The deadline of `key` on the list's clock. */
  deadline(key: K): number | undefined {
    return this.#entries.get(key)?.deadline;
  }

  /** Removes `key`; returns whether it was present. */
  delete(key: K): boolean {
    return this.#entries.delete(key);
  }

  /** Keys from the soonest deadline to the latest. */
  keys(): IterableIterator<K> {
    return this.#entries.keys();
  }

  /** Removes and returns the entries whose deadline is at or before `now`, soonest first. */
  expire(now = this.#clock.now()): Array<[K, V]> {
    const expired: Array<[K, V]> = [];
    for (const [key, entry] of this.#entries) {
      if (entry.deadline > now) break;
      this.#entries.delete(key);
      expired.push([key, entry.value]);
    }
    return expired;
  }

  /** Runs a timer that expires entries as they fall due and reports them to `onExpire`. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#arm();
  }

  /** Stops the timer; entries stay. Idempotent. */
  stop(): void {
    this.#running = false;
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  /** Removes every entry and stops the timer. */
  clear(): void {
    this.stop();
    this.#entries.clear();
  }

  #arm(): void {
    const head = this.#entries.values().next();
    if (head.done) return;
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      for (const [key, value] of this.expire()) {
        this.#onExpire?.(key, value);
        if (!this.#running) return;
      }
      if (this.#running) this.#arm();
    }, head.value.deadline - this.#clock.now());
  }
}
