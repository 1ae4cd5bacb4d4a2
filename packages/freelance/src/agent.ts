/**
 * Freelance model three (spec 2.4): the client agent speaking RFC 10/FLP.
 * @module
 * @internal
 */
import {
  ClosedError,
  Counters,
  closeSocket,
  ProtocolError,
  type TimerHandle,
} from "@zmq-patterns/core";
import { Router } from "zeromq";
import type { Engine, EngineContext, FreelanceClientStats } from "./client.js";
import { type PendingRequest, PendingTable } from "./pending.js";
import {
  decodeFlpServerMessage,
  encodeFlpRequest,
  encodePing,
  encodeSequence,
  parseSequence,
} from "./protocol.js";

interface Server {
  readonly endpoint: string;
  /** The routing identity: the endpoint string itself (RFC 10/FLP). */
  readonly identity: Buffer;
  /** Heard from within the TTL. */
  alive: boolean;
  /** When the server counts as gone unless heard from; starts at connect + TTL. */
  expiresAt: number;
  /** When to ping next, if nothing is heard before. */
  pingAt: number;
  /** The connection is up: handshake seen, no disconnect since. */
  connected: boolean;
  /** A send to it failed although connected: passed over until a ping to it goes through. */
  unreachable: boolean;
  /** An attempt on it timed out: passed over until it is heard from again. */
  suspect: boolean;
}

interface Flight {
  /** `[control][body...]`, the request without the routing frame. */
  readonly message: Buffer[];
  readonly attemptTimeoutMs: number;
  /** The server of the current attempt and when it times out; `null` while waiting for one. */
  current: { server: Server; deadline: number } | null;
  /** Servers tried in this round: a round ends when every usable server was tried. */
  readonly tried: Set<Server>;
}

type Request = PendingRequest<Flight>;

/** How soon a connected server whose send failed is probed again (see `#unreachable`). */
const PROBE_DELAY_MS = 10;

/**
 * The model-three agent: one ROUTER (`mandatory`, `immediate`, `sendTimeout` 0 so a send never
 * waits, linger 0) connected to every server and addressing each by its identity, the endpoint
 * string.
 *
 * Liveness: a server is pinged when it connects and then whenever it has been silent for the
 * ping interval; anything it sends proves it alive; silence for the TTL marks it gone.
 *
 * Routing: each request goes to the first usable server in connect order (connected, not timed
 * out, heard from or still within its first TTL). A request moves on to the next server when
 * its attempt times out (the timed-out server is then passed over until it answers again), when
 * the send finds the server unreachable (then passed over until a ping to it goes through), or
 * when its connection drops; after every usable server was tried once it starts another round.
 * No request is ever sent twice to the same server in a round, and nothing is resent on other
 * wake-ups (fix 2.6.1). Without a usable server a request waits for one until its deadline.
 */
export class FlpAgent implements Engine {
  readonly #context: EngineContext;
  readonly #socket = new Router({ mandatory: true, immediate: true, sendTimeout: 0, linger: 0 });
  readonly #servers = new Map<string, Server>();
  readonly #table: PendingTable<Flight>;
  readonly #dropped = new Counters();
  readonly #counts = { requests: 0, replies: 0, abandoned: 0, sends: 0 };
  #timer: TimerHandle | undefined;
  #timerAt = Number.POSITIVE_INFINITY;
  #closed = false;

  constructor(context: EngineContext) {
    this.#context = context;
    this.#table = new PendingTable(context.clock, context.maxPending, () =>
      [...this.#servers.keys()].join(", "),
    );
    this.#socket.events.on("handshake", ({ address }) => this.#onConnected(address));
    this.#socket.events.on("disconnect", ({ address }) => this.#onDisconnected(address));
    void this.#receive();
  }

  connect(endpoint: string): void {
    const now = this.#context.clock.now();
    // An inproc connection has no handshake and reports no socket events: it counts as
    // connected at once, and a failed ping (no peer bound yet) marks it unreachable until a
    // later ping goes through.
    const inproc = endpoint.startsWith("inproc://");
    const server: Server = {
      endpoint,
      identity: Buffer.from(endpoint),
      alive: false,
      expiresAt: now + this.#context.serverTtlMs,
      pingAt: now,
      connected: inproc,
      unreachable: false,
      suspect: false,
    };
    this.#servers.set(endpoint, server);
    this.#socket.connect(endpoint);
    if (inproc) this.#ping(server, now);
  }

  request(body: Buffer[], timeoutMs: number | undefined, signal?: AbortSignal): Promise<Buffer[]> {
    this.#counts.requests += 1;
    const timeout = timeoutMs ?? (this.#context.timeoutMs as number);
    const attemptTimeoutMs =
      this.#context.attemptTimeoutMs ?? Math.max(1, timeout / Math.max(1, this.#servers.size));
    const promise = this.#table.add(
      timeout,
      signal,
      (sequence) => ({
        message: encodeFlpRequest(encodeSequence(sequence), body),
        attemptTimeoutMs,
        current: null,
        tried: new Set(),
      }),
      (request) => this.#dispatch(request),
    );
    return promise.then(
      (reply) => {
        this.#counts.replies += 1;
        return reply;
      },
      (error) => {
        if ((error as { code?: string }).code === "TIMEOUT") this.#counts.abandoned += 1;
        throw error;
      },
    );
  }

  stats(): Omit<FreelanceClientStats, "model"> {
    return {
      pending: this.#table.size,
      ...this.#counts,
      servers: [...this.#servers.values()].map(({ endpoint, alive }) => ({ endpoint, alive })),
      dropped: this.#dropped.snapshot(),
    };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#timer?.cancel();
    this.#table.rejectAll(new ClosedError("client closed"));
    closeSocket(this.#socket);
  }

  // --- routing ---------------------------------------------------------------------------------

  #usable(server: Server, now: number): boolean {
    return server.connected && !server.unreachable && !server.suspect && now < server.expiresAt;
  }

  /** Sends the request to the next server of its round, or parks it until one is usable. */
  #dispatch(request: Request): void {
    if (this.#closed || this.#table.get(request.sequence) !== request) return;
    const flight = request.data;
    const now = this.#context.clock.now();
    const usable = [...this.#servers.values()].filter((server) => this.#usable(server, now));
    let server = usable.find((candidate) => !flight.tried.has(candidate));
    if (server === undefined && usable.length > 0) {
      flight.tried.clear(); // a new round
      server = usable[0];
    }
    if (server === undefined) {
      flight.current = null; // waits for a server to connect or answer
      return;
    }
    const target = server;
    flight.tried.add(target);
    flight.current = { server: target, deadline: now + flight.attemptTimeoutMs };
    request.attempts += 1;
    this.#counts.sends += 1;
    this.#context.emit("sent", {
      sequence: request.sequence,
      endpoint: target.endpoint,
      attempt: request.attempts,
    });
    this.#schedule(flight.current.deadline);
    this.#socket.send([target.identity, ...flight.message]).catch(() => {
      this.#unreachable(target);
      if (flight.current?.server === target) this.#failover(request, "unreachable");
    });
  }

  #failover(request: Request, reason: "timeout" | "unreachable" | "disconnected"): void {
    const flight = request.data;
    const from = flight.current?.server;
    if (from === undefined) return;
    flight.current = null;
    this.#context.logger.info("request moves on to another server", {
      sequence: request.sequence,
      from: from.endpoint,
      reason,
    });
    this.#context.emit("failover", { sequence: request.sequence, from: from.endpoint, reason });
    this.#dispatch(request);
  }

  /** Sends every parked request on, now that a server may be usable. */
  #resume(): void {
    for (const request of this.#table.values()) {
      if (request.data.current === null) this.#dispatch(request);
    }
  }

  // --- events ----------------------------------------------------------------------------------

  #onConnected(address: string): void {
    const server = this.#servers.get(address);
    if (!server || this.#closed) return;
    server.connected = true;
    server.unreachable = false;
    this.#ping(server, this.#context.clock.now());
    this.#resume();
  }

  #onDisconnected(address: string): void {
    const server = this.#servers.get(address);
    if (!server || this.#closed) return;
    server.connected = false;
    // Whatever was sent to it is lost with the connection: move on now, not after a timeout.
    for (const request of [...this.#table.values()]) {
      if (request.data.current?.server === server) this.#failover(request, "disconnected");
    }
  }

  async #receive(): Promise<void> {
    for (;;) {
      let frames: Buffer[];
      try {
        frames = await this.#socket.receive();
      } catch {
        return; // closed
      }
      const [identity, ...message] = frames as [Buffer, ...Buffer[]];
      // Identities are the endpoint's UTF-8 bytes; the byte comparison rejects lossy decodes.
      const server = this.#servers.get(identity.toString("utf8"));
      if (server === undefined || !server.identity.equals(identity)) {
        // The reference asserts here (fix 2.6.6): a server whose identity is not the endpoint
        // we connected to, e.g. "tcp://localhost:5555" reached as "tcp://127.0.0.1:5555".
        this.#drop("unknown server identity", identity.toString("latin1"));
        continue;
      }
      this.#heard(server);
      let decoded: ReturnType<typeof decodeFlpServerMessage>;
      try {
        decoded = decodeFlpServerMessage(message);
      } catch (error) {
        this.#drop(
          error instanceof ProtocolError ? error.reason : "undecodable message",
          server.endpoint,
        );
        continue;
      }
      if (decoded.type === "reply") {
        const sequence = parseSequence(decoded.control);
        // Only an outstanding request takes a reply (fix 2.6.2): late and duplicate replies
        // are dropped, never handed to a later request.
        if (sequence === undefined) this.#drop("invalid control frame", server.endpoint);
        else if (!this.#table.resolve(sequence, decoded.body))
          this.#drop("stale reply", server.endpoint);
      }
    }
  }

  /** Anything from a server proves it alive. */
  #heard(server: Server): void {
    const now = this.#context.clock.now();
    const wasUsable = this.#usable(server, now);
    server.expiresAt = now + this.#context.serverTtlMs;
    server.pingAt = now + this.#context.pingIntervalMs;
    server.connected = true;
    server.unreachable = false;
    server.suspect = false;
    if (!server.alive) {
      server.alive = true;
      this.#context.logger.info("server is up", { endpoint: server.endpoint });
      this.#context.emit("serverUp", { endpoint: server.endpoint });
    }
    this.#schedule(Math.min(server.pingAt, server.expiresAt));
    if (!wasUsable) this.#resume();
  }

  #ping(server: Server, now: number): void {
    server.pingAt = now + this.#context.pingIntervalMs;
    this.#schedule(server.pingAt);
    this.#socket.send([server.identity, ...encodePing()]).then(
      () => {
        if (!server.unreachable) return;
        server.unreachable = false;
        this.#resume();
      },
      () => this.#unreachable(server),
    );
  }

  /**
   * A send to `server` failed (EHOSTUNREACH). Right after a handshake this is usually transient:
   * libzmq takes a new connection into the ROUTER only when it next processes commands, which it
   * skips for sends less than about a millisecond apart. So the server is passed over and probed
   * again with a ping soon; if that fails too (say, its identity is not its endpoint), it is
   * probed every ping interval from then on.
   */
  #unreachable(server: Server): void {
    if (this.#closed || !server.connected || server.unreachable) return;
    server.unreachable = true;
    server.pingAt = this.#context.clock.now() + PROBE_DELAY_MS;
    this.#schedule(server.pingAt);
  }

  // --- the tickless timer ----------------------------------------------------------------------

  /** Wakes the agent at `at` at the latest (the earliest of all deadlines wins). */
  #schedule(at: number): void {
    if (this.#closed || at >= this.#timerAt) return;
    this.#timer?.cancel();
    this.#timerAt = at;
    this.#timer = this.#context.clock.setTimeout(
      () => this.#tick(),
      Math.max(0, at - this.#context.clock.now()),
    );
  }

  #tick(): void {
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
    if (this.#closed) return;
    const now = this.#context.clock.now();
    let next = Number.POSITIVE_INFINITY;
    for (const server of this.#servers.values()) {
      if (server.alive && now >= server.expiresAt) {
        server.alive = false;
        this.#context.logger.warn("server is gone", { endpoint: server.endpoint });
        this.#context.emit("serverDown", { endpoint: server.endpoint });
      }
      if (server.connected && now >= server.pingAt) this.#ping(server, now);
      if (server.connected) next = Math.min(next, server.pingAt);
      if (server.alive) next = Math.min(next, server.expiresAt);
    }
    for (const request of [...this.#table.values()]) {
      const current = request.data.current;
      if (current === null) continue;
      if (now >= current.deadline) {
        // No answer in time: pass this server over until it answers a ping (sent right away).
        current.server.suspect = true;
        if (current.server.connected) this.#ping(current.server, now);
        this.#failover(request, "timeout");
      }
      const after = request.data.current;
      if (after !== null) next = Math.min(next, after.deadline);
    }
    if (next < Number.POSITIVE_INFINITY) this.#schedule(next);
  }

  #drop(reason: string, from: string): void {
    this.#dropped.increment(reason);
    const quiet = reason === "stale reply";
    this.#context.logger[quiet ? "debug" : "warn"]("dropped message", { reason, from });
    this.#context.emit("dropped", { reason, from });
  }
}
