/**
 * `Receiver`: receive with a deadline and an `AbortSignal`, without losing messages.
 * @module
 */
import type { Readable } from "zeromq";
import { Deque } from "./deque.js";
import { type AbortedError, abortReason, ClosedError, TimeoutError } from "./errors.js";
import { checkDuration, checkInteger } from "./options.js";

/** A socket the receiver can read from. */
export type ReceivableSocket = Pick<Readable, "receive"> & { readonly closed: boolean };

/** Options of {@link Receiver}. */
export interface ReceiverOptions {
  /**
   * Messages read ahead of the application before reading pauses (ZeroMQ then holds further
   * messages in its own queue, up to the socket's high-water mark). Default 1,000.
   */
  capacity?: number;
}

/** Options of one {@link Receiver.receive} call. */
export interface ReceiveOptions {
  /** Reject with {@link TimeoutError} when no message arrives within this many ms. */
  timeoutMs?: number;
  /** Reject with {@link AbortedError} when this signal aborts. */
  signal?: AbortSignal;
}

interface Waiter {
  resolve(message: Buffer[]): void;
  reject(error: Error): void;
}

/**
 * Reads one socket continuously and hands messages out through {@link Receiver.receive}, which
 * can give up on a deadline or an `AbortSignal`.
 *
 * zeromq.js cannot cancel a pending `receive()`, so giving up on a raw socket would either block
 * the next receive (`EBUSY`) or lose the message it later returns. The receiver keeps a single
 * read in flight and buffers what arrives, so a timed-out or aborted call loses nothing: the
 * message goes to the next caller. Messages are handed out in arrival order, to callers in call
 * order. The receiver ends when its socket closes; {@link Receiver.close} ends it earlier.
 *
 * @example
 * ```ts
 * const receiver = new Receiver(dealer);
 * const reply = await receiver.receive({ timeoutMs: 2500 });
 * ```
 */
export class Receiver implements AsyncIterable<Buffer[]> {
  readonly capacity: number;
  readonly #socket: ReceivableSocket;
  readonly #buffer = new Deque<Buffer[]>();
  readonly #waiters = new Deque<Waiter>();
  #resume: (() => void) | undefined;
  #closed = false;
  #ended = false;
  #failure: Error | undefined;

  constructor(socket: ReceivableSocket, options: ReceiverOptions = {}) {
    this.#socket = socket;
    this.capacity = checkInteger("capacity", options.capacity ?? 1000);
    void this.#pump();
  }

  /** Messages received and not yet handed out. */
  get buffered(): number {
    return this.#buffer.length;
  }

  /** True once closed, or once the socket closed and every buffered message was handed out. */
  get closed(): boolean {
    return this.#closed || (this.#ended && this.#buffer.length === 0);
  }

  /**
   * The next message. Buffered messages are returned at once.
   *
   * @throws {@link TimeoutError}, {@link AbortedError} or {@link ClosedError} as a rejection.
   */
  receive(options: ReceiveOptions = {}): Promise<Buffer[]> {
    const message = this.#buffer.shift();
    if (message !== undefined) {
      this.#resume?.();
      return Promise.resolve(message);
    }
    if (this.#closed || this.#ended) {
      return Promise.reject(this.#failure ?? new ClosedError("receiver closed"));
    }
    const { timeoutMs, signal } = options;
    if (timeoutMs !== undefined) checkDuration("timeoutMs", timeoutMs, 0);
    if (signal?.aborted) return Promise.reject(abortReason(signal));

    return new Promise<Buffer[]>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const settle = () => {
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      const waiter: Waiter = {
        resolve: (msg) => {
          settle();
          resolve(msg);
        },
        reject: (err) => {
          settle();
          reject(err);
        },
      };
      const giveUp = (error: Error) => {
        this.#removeWaiter(waiter);
        waiter.reject(error);
      };
      const onAbort = () => giveUp(abortReason(signal as AbortSignal));
      signal?.addEventListener("abort", onAbort, { once: true });
      if (timeoutMs !== undefined) {
        timer = setTimeout(
          () => giveUp(new TimeoutError(`no message within ${timeoutMs} ms`, timeoutMs)),
          timeoutMs,
        );
        timer.unref();
      }
      this.#waiters.push(waiter);
    });
  }

  /** Iterates over messages until the receiver closes. */
  async *[Symbol.asyncIterator](): AsyncIterator<Buffer[]> {
    for (;;) {
      try {
        yield await this.receive();
      } catch (error) {
        if (error instanceof ClosedError) return;
        throw error;
      }
    }
  }

  /**
   * Stops handing out messages and rejects pending calls with {@link ClosedError}. The socket is
   * not closed: its owner does that (which also ends the one read still in flight). Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#buffer.drain();
    this.#rejectWaiters(new ClosedError("receiver closed"));
    this.#resume?.();
  }

  #removeWaiter(waiter: Waiter): void {
    const rest = this.#waiters.drain().filter((w) => w !== waiter);
    for (const w of rest) this.#waiters.push(w);
  }

  #rejectWaiters(error: Error): void {
    for (const waiter of this.#waiters.drain()) waiter.reject(error);
  }

  async #pump(): Promise<void> {
    while (!this.#closed) {
      if (this.#buffer.length >= this.capacity) {
        await new Promise<void>((resolve) => {
          this.#resume = resolve;
        });
        this.#resume = undefined;
        continue;
      }
      let message: Buffer[];
      try {
        message = await this.#socket.receive();
      } catch (error) {
        // A closed socket rejects its pending receive (EAGAIN); that is the normal end.
        if (!this.#socket.closed) {
          this.#failure = new ClosedError("receive failed", { cause: error });
        }
        this.#end();
        return;
      }
      if (this.#closed) return;
      const waiter = this.#waiters.shift();
      if (waiter) waiter.resolve(message);
      else this.#buffer.push(message);
    }
  }

  /** The socket ended: waiters fail now; buffered messages are still handed out. */
  #end(): void {
    this.#ended = true;
    this.#rejectWaiters(this.#failure ?? new ClosedError("socket closed"));
  }
}
