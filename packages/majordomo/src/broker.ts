/**
 * `MajordomoBroker`: the service-oriented reliable queue of RFC 7/MDP, with RFC 8/MMI and RFC
 * 18/MDP peers on the same socket.
 * @module
 */
import { EventEmitter } from "node:events";
import {
  type Clock,
  type Closeable,
  CloseStack,
  Counters,
  checkDuration,
  checkEndpoint,
  checkInteger,
  createLogger,
  Deque,
  ExpiryList,
  InvalidArgumentError,
  identityKey,
  type Logger,
  Msg,
  ProtocolError,
  SendQueue,
  systemClock,
  type TimerHandle,
} from "@zmq-patterns/core";
import { Router } from "zeromq";
import {
  type ClientRequest,
  DEFAULT_BROKER_BIND,
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_LIVENESS,
  decodeBrokerInbound,
  encodeClientReply,
  encodeWorkerCommand,
  isMmiService,
  type MdpVersion,
  MMI_CODES,
  MMI_SERVICE,
  type WorkerCommand,
} from "./protocol.js";

/** Options of {@link MajordomoBroker}. */
export interface MajordomoBrokerOptions {
  /** Endpoint(s) to bind, for clients and workers alike. Default `tcp://*:5555`. */
  bind?: string | readonly string[];
  /** Heartbeat interval, which workers should share (RFC 7 tolerates a difference within liveness). Default 2,500 ms. */
  heartbeatIntervalMs?: number;
  /** Silent intervals before a worker, idle or busy, is expired. Default 3. */
  liveness?: number;
  /** How long a request may wait in a service queue before it is expired (RFC 7 SHOULD). Default 60,000 ms. */
  requestTtlMs?: number;
  /** Requests a service queue holds; more are dropped. Default 1,000. */
  maxQueuedPerService?: number;
  /** Services known at once (random names cannot grow memory without bound). Default 1,000. */
  maxServices?: number;
  /** Workers registered at once. Default 10,000. */
  maxWorkers?: number;
  /**
   * Services whose requests may run twice: when a worker dies while busy, its request is queued
   * again instead of being dropped. Default: none (the client's retry recovers it).
   */
  idempotent?: (service: string) => boolean;
  /** Clock for heartbeats and expiry. Default: the system clock. */
  clock?: Clock;
  /** Logs every message received and sent, frame by frame, at debug level (the Guide's `-v`). */
  verbose?: boolean;
  /** Where to log. Default: quiet unless `ZMQ_PATTERNS_DEBUG` enables `majordomo:broker`. */
  logger?: Logger;
}

/** Per-service figures in {@link MajordomoBrokerStats}. */
export interface ServiceStats {
  workersIdle: number;
  workersBusy: number;
  queued: number;
}

/** A snapshot of the broker's state and counters. */
export interface MajordomoBrokerStats {
  services: Record<string, ServiceStats>;
  workers: number;
  requestsIn: number;
  requestsDispatched: number;
  repliesOut: number;
  requestsExpired: number;
  requestsRequeued: number;
  workersExpired: number;
  mmiRequests: number;
  /** Messages and requests dropped, by reason. */
  dropped: Record<string, number>;
}

/** Events of {@link MajordomoBroker}; worker and client ids are identities in hex. */
export interface MajordomoBrokerEvents {
  workerReady: [{ worker: string; service: string; version: MdpVersion }];
  workerExpired: [{ worker: string; service: string; busy: boolean }];
  workerDisconnected: [{ worker: string; service: string; reason: string }];
  requestDispatched: [{ service: string; worker: string; client: string }];
  requestExpired: [{ service: string; client: string }];
  requestRequeued: [{ service: string; client: string }];
  /** A request was dropped (queue full, worker died on a non-idempotent service, ...). */
  requestDropped: [{ service: string; client: string; reason: string }];
  replyForwarded: [{ service: string; worker: string; client: string; final: boolean }];
  /** A message was dropped before it became a request or a reply. */
  dropped: [{ reason: string; from: string }];
}

interface QueuedRequest {
  client: Buffer;
  version: MdpVersion;
  service: string;
  body: Buffer[];
  expiresAt: number;
}

interface Service {
  name: string;
  requests: Deque<QueuedRequest>;
  /** Idle workers, least recently used first. */
  idle: Map<string, Worker>;
  workers: Set<string>;
}

interface Worker {
  key: string;
  identity: Buffer;
  version: MdpVersion;
  service: Service;
  current: QueuedRequest | undefined;
}

/**
 * A Majordomo broker: clients send requests for a named service; workers register for one service
 * each; the broker queues requests per service and hands each to the least recently used idle
 * worker of that service. Broker and workers heartbeat each other; a silent worker is expired.
 *
 * MDP/0.1 (RFC 7) and MDP/0.2 (RFC 18) peers share one socket: the broker recognises each
 * message's header and answers in the peer's version, so a 0.1 client can be served by a 0.2
 * worker and the other way round (partial replies reach 0.2 clients only).
 *
 * It fixes the Guide's reference broker where that one crashes, leaks or misroutes: every message
 * is validated (malformed ones are counted and dropped, never crash it); busy workers are
 * heartbeated and expired too; expiry is ordered, so a live worker never shields dead ones; a
 * reply is accepted only from a busy worker for the client it was given; `mmi.*` registration is
 * refused by service name; queues are bounded and queued requests expire; a worker that cannot be
 * reached (ROUTER mandatory) is dead at once; workers get DISCONNECT when the broker closes.
 *
 * @example
 * ```ts
 * await using broker = await MajordomoBroker.start({ bind: "tcp://*:5555" });
 * broker.on("workerExpired", ({ service }) => console.warn(`a ${service} worker died`));
 * ```
 */
export class MajordomoBroker extends EventEmitter<MajordomoBrokerEvents> implements Closeable {
  readonly heartbeatIntervalMs: number;
  readonly liveness: number;
  readonly requestTtlMs: number;
  readonly #binds: string[];
  readonly #bound: string[] = [];
  readonly #limits: { queued: number; services: number; workers: number };
  readonly #idempotent: (service: string) => boolean;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #verbose: boolean;
  readonly #stack = new CloseStack();
  readonly #socket: Router;
  readonly #out: SendQueue;
  readonly #services = new Map<string, Service>();
  readonly #workers = new Map<string, Worker>();
  readonly #expiry: ExpiryList<string>;
  /**
   * What busy workers were doing when they were expired, by worker: a worker that does not
   * heartbeat while it works (the Guide's) may still answer. Bounded; oldest forgotten first.
   */
  readonly #expiredBusy = new Map<
    string,
    { request: QueuedRequest; service: string; requeued: boolean }
  >();
  readonly #dropped = new Counters();
  readonly #counts = {
    requestsIn: 0,
    requestsDispatched: 0,
    repliesOut: 0,
    requestsExpired: 0,
    requestsRequeued: 0,
    workersExpired: 0,
    mmiRequests: 0,
  };
  #heartbeat: TimerHandle | undefined;

  private constructor(options: MajordomoBrokerOptions) {
    super();
    const binds = options.bind ?? DEFAULT_BROKER_BIND;
    this.#binds = (typeof binds === "string" ? [binds] : [...binds]).map((b) =>
      checkEndpoint("bind", b),
    );
    if (this.#binds.length === 0)
      throw new InvalidArgumentError("bind needs at least one endpoint");
    this.heartbeatIntervalMs = checkDuration(
      "heartbeatIntervalMs",
      options.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS,
    );
    this.liveness = checkInteger("liveness", options.liveness ?? DEFAULT_LIVENESS);
    this.requestTtlMs = checkDuration("requestTtlMs", options.requestTtlMs ?? 60_000);
    this.#limits = {
      queued: checkInteger("maxQueuedPerService", options.maxQueuedPerService ?? 1000),
      services: checkInteger("maxServices", options.maxServices ?? 1000),
      workers: checkInteger("maxWorkers", options.maxWorkers ?? 10_000),
    };
    this.#idempotent = options.idempotent ?? (() => false);
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger ?? createLogger("majordomo:broker");
    this.#verbose = options.verbose ?? false;
    // Mandatory routing turns a send to a vanished peer into an error instead of silence. A short
    // linger lets the DISCONNECTs sent on close leave.
    this.#socket = this.#stack.socket(new Router({ mandatory: true }), 200);
    this.#out = new SendQueue(this.#socket, {
      capacity: 10_000,
      onError: (error, frames) => this.#sendFailed(error, frames[0]),
    });
    this.#expiry = new ExpiryList<string>({
      ttlMs: this.heartbeatIntervalMs * this.liveness,
      clock: this.#clock,
      onExpire: (key) => this.#expireWorker(key),
    });
    this.#stack.defer(async () => {
      this.#heartbeat?.cancel();
      this.#expiry.stop();
      // RFC 7 lets the broker send DISCONNECT at any time: workers then reconnect elsewhere or later.
      for (const worker of this.#workers.values())
        this.#sendWorker(worker, { command: "disconnect" });
      await Promise.race([
        this.#out.drain(),
        new Promise((resolve) => setTimeout(resolve, 200).unref()),
      ]);
      this.#out.close();
    });
  }

  /** Binds and starts serving. */
  static async start(options: MajordomoBrokerOptions = {}): Promise<MajordomoBroker> {
    const broker = new MajordomoBroker(options);
    try {
      for (const endpoint of broker.#binds) {
        await broker.#socket.bind(endpoint);
        broker.#bound.push(broker.#socket.lastEndpoint ?? endpoint);
      }
    } catch (error) {
      await broker.close();
      throw error;
    }
    broker.#expiry.start();
    broker.#scheduleHeartbeat();
    void broker.#serve();
    broker.#logger.info("MDP broker is active", { endpoints: broker.endpoints.join(",") });
    return broker;
  }

  /** The bound endpoints, with real ports. */
  get endpoints(): string[] {
    return [...this.#bound];
  }

  /** A snapshot of services, workers and counters. */
  stats(): MajordomoBrokerStats {
    const services: Record<string, ServiceStats> = {};
    for (const service of this.#services.values()) {
      services[service.name] = {
        workersIdle: service.idle.size,
        workersBusy: service.workers.size - service.idle.size,
        queued: service.requests.length,
      };
    }
    return {
      services,
      workers: this.#workers.size,
      ...this.#counts,
      dropped: this.#dropped.snapshot(),
    };
  }

  /** Sends DISCONNECT to every worker, stops, and closes the socket. Idempotent. */
  close(): Promise<void> {
    return this.#stack.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #serve(): Promise<void> {
    for (;;) {
      let frames: Buffer[];
      try {
        frames = await this.#socket.receive();
      } catch {
        return; // closed
      }
      if (this.#stack.closed) return;
      if (this.#verbose) this.#logger.debug(`received\n${new Msg(frames).dump()}`);
      const [sender, ...rest] = frames as [Buffer, ...Buffer[]];
      let inbound: ReturnType<typeof decodeBrokerInbound>;
      try {
        inbound = decodeBrokerInbound(rest);
      } catch (error) {
        this.#invalid(sender, error);
        continue;
      }
      try {
        if (inbound.side === "client") this.#onClient(sender, inbound.version, inbound.request);
        else this.#onWorker(sender, inbound.version, inbound.message);
      } catch (error) {
        // Defence in depth: nothing a peer sends may stop the broker.
        this.#logger.error("message handling failed", { error });
        this.#drop("internal error", identityKey(sender));
      }
    }
  }

  // ------------------------------------------------------------------------------------------
  // Clients

  #onClient(client: Buffer, version: MdpVersion, request: ClientRequest): void {
    this.#counts.requestsIn += 1;
    if (isMmiService(request.service)) {
      this.#mmi(client, version, request);
      return;
    }
    const service = this.#service(request.service);
    if (!service) {
      this.#dropRequest(request.service, client, "too many services");
      return;
    }
    if (service.requests.length >= this.#limits.queued) {
      this.#dropRequest(service.name, client, "service queue full");
      return;
    }
    service.requests.push({
      client,
      version,
      service: service.name,
      body: request.body,
      expiresAt: this.#clock.now() + this.requestTtlMs,
    });
    this.#dispatch(service);
  }

  /** RFC 8/MMI: answered by the broker at once, never queued. */
  #mmi(client: Buffer, version: MdpVersion, request: ClientRequest): void {
    this.#counts.mmiRequests += 1;
    let code: string = MMI_CODES.notImplemented;
    if (request.service === MMI_SERVICE) {
      const name = (request.body.at(-1) as Buffer).toString();
      const service = this.#services.get(name);
      code = service && service.workers.size > 0 ? MMI_CODES.found : MMI_CODES.notFound;
    }
    // As the reference: the last body frame is replaced by the code.
    const body = [...request.body.slice(0, -1), Buffer.from(code)];
    this.#sendClient(client, version, { service: request.service, body, final: true });
  }

  #sendClient(
    client: Buffer,
    version: MdpVersion,
    reply: { service: string; body: Buffer[]; final: boolean },
  ): void {
    if (!this.#send([client, ...encodeClientReply(version, reply)])) {
      this.#dropped.increment("send queue full");
    }
  }

  // ------------------------------------------------------------------------------------------
  // Workers

  #onWorker(sender: Buffer, version: MdpVersion, message: WorkerCommand): void {
    const key = identityKey(sender);
    const worker = this.#workers.get(key);
    if (worker) {
      if (worker.version !== version) {
        this.#disconnect(worker, "protocol version changed");
        return;
      }
      this.#expiry.touch(key); // MDP-R13: any command but DISCONNECT proves the worker alive
    }
    switch (message.command) {
      case "ready":
        if (worker)
          this.#disconnect(worker, "duplicate READY"); // MDB-6
        else this.#register(sender, key, version, message.service);
        return;
      case "heartbeat":
        // MDB-6: a HEARTBEAT from an unknown worker (after a broker restart) gets DISCONNECT, and
        // the worker reconnects and registers again.
        if (!worker) this.#refuse(sender, version, "HEARTBEAT from unknown worker");
        return;
      case "reply":
        if (worker) this.#onReply(worker, message);
        else if (this.#lateReply(key, message)) {
          // Answered; now the worker learns it is unknown and registers again (MDB-6).
          if (message.final)
            this.#send([sender, ...encodeWorkerCommand(version, { command: "disconnect" })]);
        } else this.#refuse(sender, version, "REPLY from unknown worker");
        return;
      case "disconnect":
        if (worker) this.#removeWorker(worker, "DISCONNECT from worker");
        return;
      case "request":
        if (worker) this.#disconnect(worker, "REQUEST from worker");
        else this.#refuse(sender, version, "REQUEST from worker");
        return;
    }
  }

  #register(identity: Buffer, key: string, version: MdpVersion, name: string): void {
    if (isMmiService(name)) {
      this.#refuse(identity, version, "READY for a reserved mmi. service"); // MMI-R1, fixes MDB-B1
      return;
    }
    if (this.#workers.size >= this.#limits.workers) {
      this.#refuse(identity, version, "too many workers");
      return;
    }
    const service = this.#service(name);
    if (!service) {
      this.#refuse(identity, version, "too many services");
      return;
    }
    const worker: Worker = { key, identity, version, service, current: undefined };
    this.#workers.set(key, worker);
    service.workers.add(key);
    this.#expiry.touch(key);
    this.#logger.debug("worker ready", { worker: key, service: name, version });
    this.emit("workerReady", { worker: key, service: name, version });
    this.#setIdle(worker);
  }

  #onReply(worker: Worker, reply: Extract<WorkerCommand, { command: "reply" }>): void {
    const request = worker.current;
    // MDB-B4/B5: a reply is only valid from a busy worker, for the client it was given.
    if (!request) {
      this.#disconnect(worker, "REPLY from idle worker");
      return;
    }
    if (!request.client.equals(reply.client)) {
      this.#disconnect(worker, "REPLY for another client");
      return;
    }
    // A 0.1 client can take only the final reply: partials from a 0.2 worker are not forwarded.
    if (reply.final || request.version === "0.2") {
      this.#sendClient(request.client, request.version, {
        service: worker.service.name,
        body: reply.body,
        final: reply.final,
      });
      this.emit("replyForwarded", {
        service: worker.service.name,
        worker: worker.key,
        client: identityKey(request.client),
        final: reply.final,
      });
    }
    if (!reply.final) return;
    this.#counts.repliesOut += 1;
    worker.current = undefined;
    this.#setIdle(worker);
  }

  #setIdle(worker: Worker): void {
    worker.service.idle.delete(worker.key);
    worker.service.idle.set(worker.key, worker);
    this.#dispatch(worker.service);
  }

  #dispatch(service: Service): void {
    const now = this.#clock.now();
    while (service.idle.size > 0 && service.requests.length > 0) {
      const request = service.requests.shift() as QueuedRequest;
      if (request.expiresAt <= now) {
        this.#expireRequest(request);
        continue;
      }
      const [key, worker] = service.idle.entries().next().value as [string, Worker];
      service.idle.delete(key);
      worker.current = request;
      this.#sendWorker(worker, { command: "request", client: request.client, body: request.body });
      this.#counts.requestsDispatched += 1;
      this.emit("requestDispatched", {
        service: service.name,
        worker: key,
        client: identityKey(request.client),
      });
    }
  }

  #sendWorker(worker: Worker, command: WorkerCommand): void {
    if (!this.#send([worker.identity, ...encodeWorkerCommand(worker.version, command)])) {
      this.#dropped.increment("send queue full");
    }
  }

  /** Every send of the broker: never waits; a full queue is reported by returning false. */
  #send(frames: Buffer[]): boolean {
    if (this.#verbose) this.#logger.debug(`sending\n${new Msg(frames).dump()}`);
    return this.#out.trySend(frames);
  }

  /** Answers an invalid or unexpected command from an unregistered peer with DISCONNECT (MDP-R10). */
  #refuse(identity: Buffer, version: MdpVersion, reason: string): void {
    this.#drop(reason, identityKey(identity));
    this.#send([identity, ...encodeWorkerCommand(version, { command: "disconnect" })]);
  }

  /** MDP-R10: DISCONNECT, then nothing more for that worker. */
  #disconnect(worker: Worker, reason: string): void {
    this.#drop(reason, worker.key);
    this.#sendWorker(worker, { command: "disconnect" });
    this.#removeWorker(worker, reason);
  }

  #removeWorker(worker: Worker, reason: string): void {
    if (this.#workers.get(worker.key) !== worker) return;
    this.#workers.delete(worker.key);
    this.#expiry.delete(worker.key);
    const service = worker.service;
    service.idle.delete(worker.key);
    service.workers.delete(worker.key);
    this.#logger.debug("worker removed", { worker: worker.key, service: service.name, reason });
    this.emit("workerDisconnected", { worker: worker.key, service: service.name, reason });
    const request = worker.current;
    worker.current = undefined;
    if (request) this.#recover(request, reason);
    this.#collect(service);
  }

  /** A busy worker is gone: queue its request again if the service is idempotent (MDB-B9). */
  #recover(request: QueuedRequest, reason: string): void {
    const client = identityKey(request.client);
    if (!this.#idempotent(request.service)) {
      this.#dropRequest(request.service, request.client, "worker lost while busy");
      this.#logger.info("request lost with its worker", {
        service: request.service,
        client,
        reason,
      });
      return;
    }
    const service = this.#service(request.service);
    if (!service) {
      this.#dropRequest(request.service, request.client, "too many services");
      return;
    }
    if (service.requests.length >= this.#limits.queued) {
      this.#dropRequest(service.name, request.client, "service queue full");
      return;
    }
    // At the head: it has waited longest. Its deadline is kept.
    const rest = service.requests.drain();
    service.requests.push(request);
    for (const queued of rest) service.requests.push(queued);
    this.#counts.requestsRequeued += 1;
    this.emit("requestRequeued", { service: request.service, client });
    this.#dispatch(service);
  }

  #expireWorker(key: string): void {
    const worker = this.#workers.get(key);
    if (!worker) return;
    this.#counts.workersExpired += 1;
    const busy = worker.current !== undefined;
    if (worker.current) {
      const request = worker.current;
      this.#expiredBusy.set(key, {
        request,
        service: worker.service.name,
        requeued: this.#idempotent(request.service),
      });
      if (this.#expiredBusy.size > 1024)
        this.#expiredBusy.delete(this.#expiredBusy.keys().next().value as string);
    }
    this.#logger.info("worker expired", { worker: key, service: worker.service.name, busy });
    this.emit("workerExpired", { worker: key, service: worker.service.name, busy });
    this.#removeWorker(worker, "expired");
  }

  /**
   * A REPLY from a worker expired while busy, for the request it was given. It still answers the
   * client unless that request was queued again (its new worker answers instead, so the client
   * never gets two). The worker is then sent DISCONNECT, as any unknown worker, and registers
   * again. Returns false when the reply is not such a late one, true when it was handled.
   */
  #lateReply(key: string, reply: Extract<WorkerCommand, { command: "reply" }>): boolean {
    const late = this.#expiredBusy.get(key);
    if (!late?.request.client.equals(reply.client)) return false;
    const { request, service, requeued } = late;
    if (requeued) {
      this.#dropped.increment("late reply of a requeued request");
    } else if (reply.final || request.version === "0.2") {
      this.#sendClient(request.client, request.version, {
        service,
        body: reply.body,
        final: reply.final,
      });
      if (reply.final) this.#counts.repliesOut += 1;
      this.emit("replyForwarded", {
        service,
        worker: key,
        client: identityKey(request.client),
        final: reply.final,
      });
    }
    if (reply.final) this.#expiredBusy.delete(key);
    return true;
  }

  /**
   * A send failed. ROUTER mandatory reports a peer whose connection is gone (EHOSTUNREACH): a
   * worker among them is dead. Any other failure (a peer that stopped reading) only loses the message.
   */
  #sendFailed(error: unknown, identity: Buffer | undefined): void {
    const key = identityKey(identity ?? Buffer.alloc(0));
    const unreachable = (error as { code?: unknown } | undefined)?.code === "EHOSTUNREACH";
    const worker = this.#workers.get(key);
    if (!unreachable) {
      this.#drop(worker ? "send to worker failed" : "send to client failed", key);
      return;
    }
    if (worker) {
      this.#drop("unroutable worker", key);
      this.#removeWorker(worker, "unroutable");
    } else {
      this.#drop("unroutable client", key);
    }
  }

  // ------------------------------------------------------------------------------------------
  // Services, timers, accounting

  #service(name: string): Service | undefined {
    let service = this.#services.get(name);
    if (!service) {
      if (this.#services.size >= this.#limits.services) return undefined;
      service = { name, requests: new Deque(), idle: new Map(), workers: new Set() };
      this.#services.set(name, service);
    }
    return service;
  }

  /** A service with no workers and no queued requests is forgotten, so names cannot pile up. */
  #collect(service: Service): void {
    if (service.workers.size === 0 && service.requests.length === 0)
      this.#services.delete(service.name);
  }

  #scheduleHeartbeat(): void {
    this.#heartbeat = this.#clock.setTimeout(() => {
      if (this.#stack.closed) return;
      // Every registered worker, idle or busy (fixes MDB-B2): a busy Node worker heartbeats too.
      for (const worker of this.#workers.values())
        this.#sendWorker(worker, { command: "heartbeat" });
      this.#expireRequests();
      this.#scheduleHeartbeat();
    }, this.heartbeatIntervalMs);
  }

  /** Queues are in arrival order, so expired requests sit at the head. */
  #expireRequests(): void {
    const now = this.#clock.now();
    for (const service of [...this.#services.values()]) {
      for (
        let head = service.requests.peek();
        head && head.expiresAt <= now;
        head = service.requests.peek()
      ) {
        this.#expireRequest(service.requests.shift() as QueuedRequest);
      }
      this.#collect(service);
    }
  }

  #expireRequest(request: QueuedRequest): void {
    this.#counts.requestsExpired += 1;
    this.emit("requestExpired", { service: request.service, client: identityKey(request.client) });
  }

  #dropRequest(service: string, client: Buffer, reason: string): void {
    this.#dropped.increment(reason);
    this.emit("requestDropped", { service, client: identityKey(client), reason });
  }

  #invalid(sender: Buffer, error: unknown): void {
    const reason = error instanceof ProtocolError ? error.reason : "undecodable message";
    const key = identityKey(sender);
    // MDP-R10: a registered worker that sends garbage is treated as invalid.
    const worker = this.#workers.get(key);
    if (worker) this.#disconnect(worker, reason);
    else this.#drop(reason, key);
  }

  #drop(reason: string, from: string): void {
    this.#dropped.increment(reason);
    this.#logger.warn("dropped message", { reason, from });
    this.emit("dropped", { reason, from });
  }
}
