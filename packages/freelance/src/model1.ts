/**
 * Freelance model one (spec 2.2): simple retry and failover with one REQ per attempt.
 * @module
 * @internal
 */
import {
  abortReason,
  ClosedError,
  Counters,
  closeSocket,
  Receiver,
  RequestAbandonedError,
  TimeoutError,
} from "@zmq-patterns/core";
import { Request } from "zeromq";
import type { Engine, EngineContext, FreelanceClientStats } from "./client.js";

/**
 * Tries the servers in order, one attempt each, or `retries` attempts when there is only one
 * server (the Guide's flclient1). Every attempt uses a new REQ socket that is always closed
 * (linger 0), so a late reply can never be read as the answer to a later attempt. Requests run
 * one at a time, in call order; a request's timeout and abort signal count from the call, so one
 * waiting behind another still gives up on time.
 */
export class Model1Engine implements Engine {
  readonly #context: EngineContext;
  readonly #endpoints: string[] = [];
  readonly #sockets = new Set<Request>();
  readonly #dropped = new Counters();
  readonly #closing = new AbortController();
  readonly #counts = { requests: 0, replies: 0, abandoned: 0, sends: 0 };
  #queue: Promise<unknown> = Promise.resolve();
  #pending = 0;
  #sequence = 0;

  constructor(context: EngineContext) {
    this.#context = context;
  }

  connect(endpoint: string): void {
    this.#endpoints.push(endpoint);
  }

  request(body: Buffer[], timeoutMs: number | undefined, signal?: AbortSignal): Promise<Buffer[]> {
    this.#counts.requests += 1;
    this.#pending += 1;
    const sequence = ++this.#sequence;
    const limit = timeoutMs ?? this.#context.timeoutMs;
    // The time limit counts from the call, queueing included.
    const deadline =
      limit === undefined ? Number.POSITIVE_INFINITY : this.#context.clock.now() + limit;
    const turn = this.#queue;
    const done = this.#run(sequence, body, turn, deadline, limit, signal).finally(() => {
      this.#pending -= 1;
    });
    // The next request waits for every earlier one, including one that gave up while queued.
    this.#queue = Promise.all([turn, done.catch(() => {})]);
    return done;
  }

  stats(): Omit<FreelanceClientStats, "model"> {
    return {
      pending: this.#pending,
      ...this.#counts,
      servers: [],
      dropped: this.#dropped.snapshot(),
    };
  }

  close(): void {
    this.#closing.abort(new ClosedError("client closed"));
    for (const socket of this.#sockets) closeSocket(socket);
    this.#sockets.clear();
  }

  async #run(
    sequence: number,
    body: Buffer[],
    turn: Promise<unknown>,
    deadline: number,
    timeoutMs: number | undefined,
    signal: AbortSignal | undefined,
  ): Promise<Buffer[]> {
    const stop = signal ? AbortSignal.any([signal, this.#closing.signal]) : this.#closing.signal;
    const clock = this.#context.clock;
    // Out of time already when its turn comes: abandoned without sending anything.
    const inTime = await this.#waitTurn(turn, stop, deadline);
    const plan =
      this.#endpoints.length === 1
        ? Array.from({ length: this.#context.retries }, () => this.#endpoints[0] as string)
        : [...this.#endpoints];
    const attemptTimeoutMs = this.#context.attemptTimeoutMs as number;
    let attempts = 0;
    for (const [index, endpoint] of plan.entries()) {
      if (stop.aborted) throw abortReason(stop);
      const remaining = deadline - clock.now();
      if (!inTime || remaining <= 0) break;
      // An attempt given all the time left is the last one, whatever the clock says when it
      // times out (timers may fire a few milliseconds early).
      const last = remaining <= attemptTimeoutMs;
      attempts += 1;
      const reply = await this.#attempt(
        sequence,
        endpoint,
        attempts,
        body,
        Math.min(attemptTimeoutMs, remaining),
        stop,
      );
      if (reply) {
        this.#counts.replies += 1;
        return reply;
      }
      if (last) break;
      const next = plan[index + 1];
      if (next !== undefined) {
        this.#context.logger.info("no reply, trying the next server", { endpoint, next });
        this.#context.emit("failover", { sequence, from: endpoint, reason: "timeout" });
      }
    }
    this.#counts.abandoned += 1;
    const limit = timeoutMs ?? attempts * attemptTimeoutMs;
    throw new RequestAbandonedError(
      `no reply from ${[...new Set(plan)].join(", ")} after ${attempts} attempt(s)`,
      attempts,
      limit,
    );
  }

  /**
   * Waits until the requests before this one are done; a request waiting in line stops waiting
   * at once on abort or close, and at its deadline. Resolves false when the deadline came first.
   */
  #waitTurn(turn: Promise<unknown>, stop: AbortSignal, deadline: number): Promise<boolean> {
    if (stop.aborted) return Promise.resolve(true);
    const clock = this.#context.clock;
    return new Promise<boolean>((resolve) => {
      const go = (inTime: boolean) => {
        timer?.cancel();
        stop.removeEventListener("abort", onAbort);
        resolve(inTime);
      };
      const onAbort = () => go(true);
      const timer = Number.isFinite(deadline)
        ? clock.setTimeout(() => go(false), deadline - clock.now())
        : undefined;
      stop.addEventListener("abort", onAbort, { once: true });
      void turn.then(() => go(true));
    });
  }

  /** One attempt on a fresh REQ socket: the reply, or `undefined` on timeout. */
  async #attempt(
    sequence: number,
    endpoint: string,
    attempt: number,
    body: Buffer[],
    timeoutMs: number,
    stop: AbortSignal,
  ): Promise<Buffer[] | undefined> {
    const socket = new Request({ linger: 0 });
    this.#sockets.add(socket);
    const receiver = new Receiver(socket, { capacity: 1 });
    try {
      socket.connect(endpoint);
      this.#counts.sends += 1;
      this.#context.emit("sent", { sequence, endpoint, attempt });
      await socket.send(body);
      return await receiver.receive({ timeoutMs, signal: stop });
    } catch (error) {
      if (stop.aborted) throw abortReason(stop);
      if (error instanceof TimeoutError) return undefined;
      throw error;
    } finally {
      // A REQ that timed out waits for a reply forever: never reuse it (spec 2.2).
      receiver.close();
      closeSocket(socket);
      this.#sockets.delete(socket);
    }
  }
}
