/**
 * Freelance model two (spec 2.3): the "brutal shotgun", every request to every server.
 * @module
 * @internal
 */
import { ClosedError, Counters, closeSocket, ProtocolError } from "@zmq-patterns/core";
import { Dealer } from "zeromq";
import type { Engine, EngineContext, FreelanceClientStats } from "./client.js";
import { type PendingRequest, PendingTable } from "./pending.js";
import { decodeModel2Reply, encodeModel2Request } from "./protocol.js";

/** How long after a handshake the copies still waiting for a server are sent again. */
const FLUSH_AGAIN_MS = 10;

interface Shot {
  message: Buffer[];
  /** Copies still to send: more than zero while no server could take them. */
  unsent: number;
}

/**
 * One DEALER connected to every server sends `N` copies of each request (N = servers), which
 * its round robin spreads one per connected server; the first reply carrying the request's
 * sequence wins and the others are dropped as stale.
 *
 * The DEALER is `immediate` (fix 2.6.10), so copies go only to servers whose connection is up
 * rather than queueing for a dead server that would receive them all when it came back. When no
 * server is connected the copies wait for the next handshake (and, should the new connection
 * not be taken in yet, are tried once more shortly after it), within the request's timeout.
 */
export class Model2Engine implements Engine {
  readonly #context: EngineContext;
  readonly #socket = new Dealer({ immediate: true, sendTimeout: 0, linger: 0 });
  readonly #table: PendingTable<Shot>;
  readonly #dropped = new Counters();
  readonly #counts = { requests: 0, replies: 0, abandoned: 0, sends: 0 };
  #servers = 0;
  #sending: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(context: EngineContext) {
    this.#context = context;
    this.#table = new PendingTable(
      context.clock,
      context.maxPending,
      () => `${this.#servers} server(s)`,
    );
    this.#socket.events.on("handshake", () => {
      this.#flush();
      // libzmq takes a new connection into the DEALER lazily (it skips command processing for
      // sends less than about a millisecond apart), so sends made around the handshake can still
      // find no connection: look again shortly.
      context.clock.setTimeout(() => this.#flush(), FLUSH_AGAIN_MS);
    });
    void this.#receive();
  }

  connect(endpoint: string): void {
    this.#socket.connect(endpoint);
    this.#servers += 1;
  }

  request(body: Buffer[], timeoutMs: number | undefined, signal?: AbortSignal): Promise<Buffer[]> {
    this.#counts.requests += 1;
    const promise = this.#table.add(
      timeoutMs ?? (this.#context.timeoutMs as number),
      signal,
      (sequence) => ({ message: encodeModel2Request(sequence, body), unsent: this.#servers }),
      (request) => this.#shoot(request),
    );
    return promise.then(
      (reply) => {
        this.#counts.replies += 1;
        return reply;
      },
      (error) => {
        if (!(error instanceof ClosedError) && (error as { code?: string }).code === "TIMEOUT") {
          this.#counts.abandoned += 1;
        }
        throw error;
      },
    );
  }

  stats(): Omit<FreelanceClientStats, "model"> {
    return {
      pending: this.#table.size,
      ...this.#counts,
      servers: [],
      dropped: this.#dropped.snapshot(),
    };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#table.rejectAll(new ClosedError("client closed"));
    closeSocket(this.#socket);
  }

  /** Queues the sends of a request's remaining copies behind any sends in progress. */
  #shoot(request: PendingRequest<Shot>): void {
    this.#sending = this.#sending.then(() => this.#sendCopies(request));
  }

  async #sendCopies(request: PendingRequest<Shot>): Promise<void> {
    const shot = request.data;
    while (shot.unsent > 0 && !this.#closed && this.#table.get(request.sequence) === request) {
      try {
        await this.#socket.send(shot.message);
      } catch {
        // EAGAIN: no server connected right now; the next handshake sends the rest.
        return;
      }
      shot.unsent -= 1;
      request.attempts += 1;
      this.#counts.sends += 1;
      this.#context.emit("sent", {
        sequence: request.sequence,
        endpoint: "*",
        attempt: request.attempts,
      });
    }
  }

  /** A server connected: send the copies that found no server before. */
  #flush(): void {
    for (const request of this.#table.values()) {
      if (request.data.unsent > 0) this.#shoot(request);
    }
  }

  async #receive(): Promise<void> {
    for (;;) {
      let message: Buffer[];
      try {
        message = await this.#socket.receive();
      } catch {
        return; // closed
      }
      let reply: ReturnType<typeof decodeModel2Reply>;
      try {
        reply = decodeModel2Reply(message);
      } catch (error) {
        this.#drop(error instanceof ProtocolError ? error.reason : "undecodable message", message);
        continue;
      }
      // Only the outstanding request with this sequence takes it: later copies' replies and
      // replies to abandoned requests are stale (fix 2.6.11).
      if (!this.#table.resolve(reply.sequence, reply.body)) this.#drop("stale reply", message);
    }
  }

  #drop(reason: string, message: Buffer[]): void {
    this.#dropped.increment(reason);
    // Stale replies are the normal fate of every copy but the first: not worth a warning.
    this.#context.logger.debug("dropped reply", { reason, frames: message.length });
    this.#context.emit("dropped", { reason, from: "" });
  }
}
