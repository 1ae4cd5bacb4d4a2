/**
 * `SendQueue`: the one path every sender of a socket goes through.
 * @module
 */
import type { Writable } from "zeromq";
import { Deque } from "./deque.js";
import { ClosedError } from "./errors.js";
import { type FrameLike, toFrames } from "./frame.js";
import { checkInteger } from "./options.js";

/** A socket the queue can write to. */
export type SendableSocket = Pick<Writable, "send"> & { readonly closed: boolean };

/** Options of {@link SendQueue}. */
export interface SendQueueOptions {
  /** Messages held before {@link SendQueue.send} waits and {@link SendQueue.trySend} refuses. Default 1,000. */
  capacity?: number;
  /** Called when a message queued with {@link SendQueue.trySend} fails to send. */
  onError?: (error: unknown, frames: Buffer[]) => void;
}

interface Item {
  frames: Buffer[];
  resolve?: () => void;
  reject?: (error: unknown) => void;
}

/**
 * Serialises the sends of one socket, in order, with a bound.
 *
 * zeromq.js allows one pending `send()` per socket and throws `EBUSY` on a second, so a broker
 * that answers from its receive loop and heartbeats from a timer must funnel both through one
 * queue. {@link SendQueue.send} applies backpressure (it resolves once the socket took the message
 * and waits for room when the queue is full); {@link SendQueue.trySend} never waits and reports a
 * full queue by returning `false`, for traffic that may be dropped (heartbeats, replies to peers
 * that may be gone).
 */
export class SendQueue {
  readonly capacity: number;
  readonly #socket: SendableSocket;
  readonly #onError: (error: unknown, frames: Buffer[]) => void;
  readonly #queued = new Deque<Item>();
  readonly #waiting = new Deque<Item>();
  readonly #idle: (() => void)[] = [];
  #pumping = false;
  #closed = false;

  constructor(socket: SendableSocket, options: SendQueueOptions = {}) {
    this.#socket = socket;
    this.capacity = checkInteger("capacity", options.capacity ?? 1000);
    this.#onError = options.onError ?? (() => {});
  }

  /** Messages queued or waiting for room. */
  get length(): number {
    return this.#queued.length + this.#waiting.length;
  }

  /** True after {@link SendQueue.close} or once the socket closed. */
  get closed(): boolean {
    return this.#closed || this.#socket.closed;
  }

  /**
   * Queues a message and resolves once the socket accepted it, waiting for room when the queue
   * is full. Messages leave in the order `send` and `trySend` were called.
   *
   * @throws {@link ClosedError} (as a rejection) when the queue or socket is closed.
   */
  send(frames: readonly FrameLike[]): Promise<void> {
    if (this.closed) return Promise.reject(new ClosedError("send queue is closed"));
    return new Promise<void>((resolve, reject) => {
      const item = { frames: toFrames(frames), resolve, reject };
      if (this.#waiting.length === 0 && this.#queued.length < this.capacity) {
        this.#queued.push(item);
        this.#pump();
      } else {
        this.#waiting.push(item);
      }
    });
  }

  /**
   * Queues a message without waiting. Returns `false`, and queues nothing, when the queue is full
   * or closed; the caller decides whether that counts as a drop. Send errors go to `onError`.
   */
  trySend(frames: readonly FrameLike[]): boolean {
    if (this.closed || this.#waiting.length > 0 || this.#queued.length >= this.capacity)
      return false;
    this.#queued.push({ frames: toFrames(frames) });
    this.#pump();
    return true;
  }

  /** Resolves once everything queued so far has been handed to the socket (or failed). */
  drain(): Promise<void> {
    if (this.length === 0 && !this.#pumping) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Rejects everything still queued with {@link ClosedError}; later sends reject at once. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#failAll(new ClosedError("send queue closed"));
  }

  #failAll(error: Error): void {
    for (const item of [...this.#queued.drain(), ...this.#waiting.drain()]) {
      item.reject?.(error);
    }
    for (const resolve of this.#idle.splice(0)) resolve();
  }

  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      for (let item = this.#queued.peek(); item !== undefined; item = this.#queued.peek()) {
        try {
          await this.#socket.send(item.frames);
          item.resolve?.();
        } catch (error) {
          if (item.reject) item.reject(error);
          else this.#onError(error, item.frames);
        }
        this.#queued.shift();
        if (this.#socket.closed) {
          this.#failAll(new ClosedError("socket closed"));
          break;
        }
        while (this.#waiting.length > 0 && this.#queued.length < this.capacity) {
          this.#queued.push(this.#waiting.shift() as Item);
        }
      }
    } finally {
      this.#pumping = false;
      if (this.length === 0) for (const resolve of this.#idle.splice(0)) resolve();
    }
  }
}
