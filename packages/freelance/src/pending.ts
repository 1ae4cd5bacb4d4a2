/**
 * The outstanding requests of a sequence-numbered client (models two and three): each has its
 * own sequence, deadline and abort signal, and settles exactly once.
 * @module
 * @internal
 */
import {
  abortReason,
  type Clock,
  QueueFullError,
  RequestAbandonedError,
  type TimerHandle,
} from "@zmq-patterns/core";

/** One outstanding request. */
export interface PendingRequest<T> {
  readonly sequence: number;
  /** When the request is abandoned, on the client's clock. */
  readonly deadline: number;
  readonly timeoutMs: number;
  /** The engine's own bookkeeping. */
  readonly data: T;
  /** Sends made for this request, copies and resends included. */
  attempts: number;
}

interface Entry<T> extends PendingRequest<T> {
  resolve(reply: Buffer[]): void;
  reject(error: unknown): void;
  timer: TimerHandle;
  unlisten: () => void;
}

/**
 * The table of outstanding requests, keyed by sequence. A request leaves it when it settles
 * (reply, timeout, abort or close), so a reply that comes later finds nothing and is dropped.
 */
export class PendingTable<T> {
  readonly #clock: Clock;
  readonly #capacity: number;
  readonly #entries = new Map<number, Entry<T>>();
  readonly #describe: () => string;
  #sequence = 0;

  constructor(clock: Clock, capacity: number, describe: () => string) {
    this.#clock = clock;
    this.#capacity = capacity;
    this.#describe = describe;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The outstanding requests, oldest first. */
  values(): IterableIterator<PendingRequest<T>> {
    return this.#entries.values();
  }

  get(sequence: number): PendingRequest<T> | undefined {
    return this.#entries.get(sequence);
  }

  /**
   * Registers a new request under the next sequence number (from 1, never reused) and returns
   * it with the promise of its reply. `start` runs once the request is registered.
   */
  add(
    timeoutMs: number,
    signal: AbortSignal | undefined,
    data: (sequence: number) => T,
    start: (request: PendingRequest<T>) => void,
  ): Promise<Buffer[]> {
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    if (this.#entries.size >= this.#capacity) {
      return Promise.reject(new QueueFullError(`${this.#capacity} requests already outstanding`));
    }
    const sequence = ++this.#sequence;
    return new Promise<Buffer[]>((resolve, reject) => {
      const onAbort = () =>
        this.#settle(sequence, (entry) => entry.reject(abortReason(signal as AbortSignal)));
      signal?.addEventListener("abort", onAbort, { once: true });
      const entry: Entry<T> = {
        sequence,
        deadline: this.#clock.now() + timeoutMs,
        timeoutMs,
        data: data(sequence),
        attempts: 0,
        resolve,
        reject,
        timer: this.#clock.setTimeout(
          () =>
            this.#settle(sequence, (e) =>
              e.reject(
                new RequestAbandonedError(
                  `no reply from ${this.#describe()} within ${timeoutMs} ms (${e.attempts} send(s))`,
                  e.attempts,
                  timeoutMs,
                ),
              ),
            ),
          timeoutMs,
        ),
        unlisten: () => signal?.removeEventListener("abort", onAbort),
      };
      this.#entries.set(sequence, entry);
      start(entry);
    });
  }

  /** Hands `reply` to the request with this sequence; false when there is none (stale reply). */
  resolve(sequence: number, reply: Buffer[]): boolean {
    return this.#settle(sequence, (entry) => entry.resolve(reply));
  }

  /** Rejects every outstanding request (on close). */
  rejectAll(error: unknown): void {
    for (const sequence of [...this.#entries.keys()]) {
      this.#settle(sequence, (entry) => entry.reject(error));
    }
  }

  #settle(sequence: number, settle: (entry: Entry<T>) => void): boolean {
    const entry = this.#entries.get(sequence);
    if (!entry) return false;
    this.#entries.delete(sequence);
    entry.timer.cancel();
    entry.unlisten();
    settle(entry);
    return true;
  }
}
