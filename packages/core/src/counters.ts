/**
 * `Counters`: named counts, such as messages dropped by reason.
 * @module
 */

/**
 * A set of named counters. Brokers and servers count every dropped message under its reason so
 * that `stats()` can say what was dropped and why.
 *
 * The number of distinct names is bounded (default 256): names past the bound are counted under
 * `"other"`, so a peer that sends endless distinct garbage cannot grow memory.
 */
export class Counters<K extends string = string> {
  readonly #counts = new Map<string, number>();
  readonly #maxKeys: number;

  constructor(maxKeys = 256) {
    this.#maxKeys = maxKeys;
  }

  /** Adds `n` (default 1) to `key` and returns the new count. */
  increment(key: K, n = 1): number {
    const name = this.#counts.has(key) || this.#counts.size < this.#maxKeys ? key : "other";
    const value = (this.#counts.get(name) ?? 0) + n;
    this.#counts.set(name, value);
    return value;
  }

  /** The count of `key` (0 when never incremented). */
  get(key: K): number {
    return this.#counts.get(key) ?? 0;
  }

  /** Sum over all keys. */
  get total(): number {
    let sum = 0;
    for (const value of this.#counts.values()) sum += value;
    return sum;
  }

  /** A plain-object copy of the counts. */
  snapshot(): Record<string, number> {
    return Object.fromEntries(this.#counts);
  }

  /** Sets every count back to zero. */
  reset(): void {
    this.#counts.clear();
  }
}
