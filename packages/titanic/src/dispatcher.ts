/**
 * The dispatcher of Titanic: runs stored requests on their services through the broker, as an
 * MDP/0.1 client, and stores their replies. Internal to {@link TitanicServer}; its events and
 * figures are the server's.
 * @module
 */
import { EventEmitter } from "node:events";
import {
  Backoff,
  type Clock,
  Counters,
  checkDuration,
  checkEndpoint,
  checkInteger,
  closeSocket,
  createLogger,
  Deque,
  InvalidArgumentError,
  type Logger,
  ProtocolError,
  silentLogger,
  sleep,
  systemClock,
  type TimerHandle,
} from "@zmq-patterns/core";
import {
  DEFAULT_BROKER_ENDPOINT,
  DEFAULT_TIMEOUT_MS,
  decodeClientReply,
  encodeClientRequest,
  MajordomoClient,
  MMI_CODES,
  mmiService,
} from "@zmq-patterns/majordomo";
import { Dealer } from "zeromq";
import type { StoredRequest, TitanicStore } from "./store.js";

/** Default of {@link TitanicDispatchOptions.attemptTimeoutMs}. */
export const DEFAULT_ATTEMPT_TIMEOUT_MS = 5000;
/** Default of {@link TitanicDispatchOptions.maxAttemptTimeoutMs}. */
export const DEFAULT_MAX_ATTEMPT_TIMEOUT_MS = 60_000;
/** Default of {@link TitanicDispatchOptions.retryBackoffMs}. */
export const DEFAULT_RETRY_BACKOFF_MS = 1000;
/** Default of {@link TitanicDispatchOptions.maxRetryBackoffMs}. */
export const DEFAULT_MAX_RETRY_BACKOFF_MS = 32_000;
/** Default of {@link TitanicDispatchOptions.concurrency}. */
export const DEFAULT_CONCURRENCY = 16;
/** Default of {@link TitanicDispatchOptions.perServiceConcurrency}. */
export const DEFAULT_PER_SERVICE_CONCURRENCY = 4;
/** Default of {@link TitanicDispatchOptions.maxSocketsPerRequest}. */
export const DEFAULT_MAX_SOCKETS_PER_REQUEST = 4;

/** How long an MMI `200` for a service is trusted before a first dispatch asks again. */
const PRESENT_TTL_MS = 1000;

/** How requests are run on their services: timeouts, back-off, concurrency. */
export interface TitanicDispatchOptions {
  /**
   * Time to wait for a service's reply to the first send of a request; it doubles with each
   * send, up to `maxAttemptTimeoutMs`. Default 5,000 ms.
   */
  attemptTimeoutMs?: number;
  /** Cap of the attempt timeout. Default 60,000 ms. */
  maxAttemptTimeoutMs?: number;
  /**
   * Pause after an attempt timed out before the request is sent again (and before an absent
   * service is asked about again); it doubles each time, up to `maxRetryBackoffMs`.
   * Default 1,000 ms.
   */
  retryBackoffMs?: number;
  /** Cap of the retry back-off. Default 32,000 ms. */
  maxRetryBackoffMs?: number;
  /** Requests in flight at once, all services together. Default 16. */
  concurrency?: number;
  /**
   * Requests in flight at once for one service: a slow or dead service holds at most this many
   * slots, so other services keep running (no head-of-line blocking). Default 4.
   */
  perServiceConcurrency?: number;
  /**
   * Sockets kept listening for a late reply per request: each send goes out on a new socket and
   * the older ones stay open, the oldest being closed beyond this number. Default 4.
   */
  maxSocketsPerRequest?: number;
  /**
   * Ask the broker (`mmi.service`) whether a service has workers before sending to it; requests
   * for a service without workers then wait on disk instead of being sent. The answer is only a
   * hint: a `200` may come for workers that just died, and a broker without MMI (`501`) is
   * trusted to queue. The broker is given `attemptTimeoutMs`, at most 2,500 ms, to answer; when
   * it does not, nothing is sent until it does. Default true.
   */
  mmiCheck?: boolean;
}

/** Options of the dispatcher. */
export interface DispatcherOptions extends TitanicDispatchOptions {
  /** The broker. Default `tcp://localhost:5555`. */
  broker?: string;
  /** Where requests and replies live. */
  store: TitanicStore;
  /** Clock for timeouts and back-off. Default: the system clock. */
  clock?: Clock;
  /** Where to log. */
  logger?: Logger;
}

/** Whether a service had workers when the broker was last asked (`mmi.service`). */
export type ServiceAvailability = "unknown" | "present" | "absent";

/** Events of the dispatcher, part of {@link TitanicServerEvents}. */
export interface TitanicDispatcherEvents {
  /** A request was sent to its service (`attempt` 1 is the first send). */
  dispatched: [{ uuid: string; service: string; attempt: number; timeoutMs: number }];
  /**
   * No reply came within `timeoutMs`. The attempt's socket keeps listening; the request is sent
   * again after `retryInMs`, unless a reply comes first.
   */
  attemptTimedOut: [
    { uuid: string; service: string; attempt: number; timeoutMs: number; retryInMs: number },
  ];
  /**
   * A reply was stored: the request is done. `attempt` is the send it answered, `attempts` the
   * sends made; `late` when it came after that send had timed out; `ageMs` is the time since the
   * request was stored.
   */
  replied: [
    {
      uuid: string;
      service: string;
      attempt: number;
      attempts: number;
      late: boolean;
      ageMs: number;
    },
  ];
  /** The broker says the service has no workers (MMI `404`): its requests wait, asked again after `retryInMs`. */
  unavailable: [{ service: string; retryInMs: number }];
  /** The broker did not answer an MMI query: nothing is sent until it does, asked again after `retryInMs`. */
  unreachable: [{ retryInMs: number; error: unknown }];
  /** A storage operation failed; it is retried (`operation` names it). */
  storageError: [{ operation: string; uuid?: string; error: unknown }];
}

/** Per-service figures in {@link TitanicServerStats}. */
export interface TitanicServiceStats {
  /** Requests waiting for a slot or for the service to appear. */
  queued: number;
  /** Requests holding a slot: sent and not answered yet. */
  inFlight: number;
  /** Replies stored since start. */
  completed: number;
  /** Sends since start. */
  attempts: number;
  /** Attempts timed out since start. */
  timeouts: number;
  /** What the broker last said about its workers. */
  availability: ServiceAvailability;
}

/** The dispatcher's part of {@link TitanicServerStats}. */
export interface TitanicDispatcherStats {
  /** Requests known without a stored reply (queued, in flight, or whose reply is being stored). */
  pending: number;
  /** Requests waiting for a slot or for their service. */
  queued: number;
  /** Requests holding a slot. */
  inFlight: number;
  /** Sockets open for attempts. */
  sockets: number;
  /** Replies stored since start. */
  completed: number;
  /** Sends since start. */
  attempts: number;
  /** Attempts timed out since start. */
  timeouts: number;
  /** Replies that came after their attempt had timed out, and were used. */
  lateReplies: number;
  /** Replies discarded as malformed or for another service. */
  discarded: number;
  /** Storage operations that failed. */
  storageErrors: number;
  /** By service: the live state of services with requests, and counters of every service. */
  services: Record<string, TitanicServiceStats>;
}

/** One socket of a request, listening for the reply to the send made on it. */
interface Line {
  socket: Dealer;
  attempt: number;
}

/**
 * Where a request is: `queued` (no slot), `active` (holds a slot; `step` says more), `storing`
 * (its reply is being written), `done` (stored or forgotten).
 */
type Phase = "queued" | "active" | "storing" | "done";
/** Within `active`: waiting for a reply, waiting out the back-off, or due for a resend. */
type Step = "waiting" | "backoff" | "due";

interface Job {
  readonly request: StoredRequest;
  readonly service: ServiceState;
  phase: Phase;
  step: Step;
  attempts: number;
  timeoutMs: number;
  readonly backoff: Backoff;
  lines: Line[];
  timer: TimerHandle | undefined;
  /** When the last back-off ended (clock time): a resend needs an MMI answer newer than that. */
  dueAt: number;
}

interface ServiceState {
  readonly name: string;
  /** Requests never sent, oldest first (finished ones are skipped when taken). */
  readonly fresh: Deque<Job>;
  /** Requests sent before and put back because the service went away; they go first. */
  readonly again: Job[];
  queued: number;
  active: number;
  /** Requests of this service known to the dispatcher, whatever their phase. */
  jobs: number;
  availability: ServiceAvailability;
  checkedAt: number;
  checkWanted: boolean;
  readonly absence: Backoff;
  recheck: TimerHandle | undefined;
}

/**
 * Runs stored requests on their services. Each service has a FIFO queue; at most
 * `perServiceConcurrency` requests of one service and `concurrency` in all are in flight, so a
 * slow or absent service never blocks the others. Each send goes out on its own DEALER socket as an
 * MDP/0.1 client request: MDP replies carry no request id, but a reply on that socket can only
 * answer that request.
 *
 * When a send gets no reply within its timeout, its socket keeps listening (a late reply is
 * accepted, the first reply wins) and the request is sent again on a new socket after a back-off;
 * timeouts and back-offs double up to their caps. Before a send the broker may be asked
 * (`mmi.service`) whether the service has workers; a request for a service without workers is
 * not sent but waits, and the service is asked about again after a back-off.
 *
 * A request can run more than once: once per send made before its first reply arrives (a service
 * slower than its attempt timeouts), and again after a restart of Titanic if it was in flight.
 * @internal
 */
export class Dispatcher extends EventEmitter<TitanicDispatcherEvents> {
  readonly broker: string;
  readonly attemptTimeoutMs: number;
  readonly maxAttemptTimeoutMs: number;
  readonly retryBackoffMs: number;
  readonly maxRetryBackoffMs: number;
  readonly concurrency: number;
  readonly perServiceConcurrency: number;
  readonly maxSocketsPerRequest: number;
  readonly mmiCheck: boolean;
  readonly #store: TitanicStore;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #jobs = new Map<string, Job>();
  readonly #services = new Map<string, ServiceState>();
  readonly #due = new Set<Job>();
  readonly #checks: ServiceState[] = [];
  readonly #brokerBackoff: Backoff;
  readonly #completedBy = new Counters();
  readonly #attemptsBy = new Counters();
  readonly #timeoutsBy = new Counters();
  readonly #counts = {
    completed: 0,
    attempts: 0,
    timeouts: 0,
    lateReplies: 0,
    discarded: 0,
    storageErrors: 0,
  };
  readonly #storing = new Set<Promise<void>>();
  readonly #closing = new AbortController();
  #mmi: MajordomoClient | undefined;
  #active = 0;
  #sockets = 0;
  #checking = false;
  #paused: TimerHandle | undefined;
  #holding = false;
  #closed = false;

  /** @throws {@link @zmq-patterns/core!InvalidArgumentError | InvalidArgumentError} on bad options. */
  constructor(options: DispatcherOptions) {
    super();
    this.broker = checkEndpoint("broker", options.broker ?? DEFAULT_BROKER_ENDPOINT);
    this.attemptTimeoutMs = checkDuration(
      "attemptTimeoutMs",
      options.attemptTimeoutMs ?? DEFAULT_ATTEMPT_TIMEOUT_MS,
    );
    this.maxAttemptTimeoutMs = checkDuration(
      "maxAttemptTimeoutMs",
      options.maxAttemptTimeoutMs ??
        Math.max(DEFAULT_MAX_ATTEMPT_TIMEOUT_MS, this.attemptTimeoutMs),
    );
    this.retryBackoffMs = checkDuration(
      "retryBackoffMs",
      options.retryBackoffMs ?? DEFAULT_RETRY_BACKOFF_MS,
      0,
    );
    this.maxRetryBackoffMs = checkDuration(
      "maxRetryBackoffMs",
      options.maxRetryBackoffMs ?? Math.max(DEFAULT_MAX_RETRY_BACKOFF_MS, this.retryBackoffMs),
      0,
    );
    checkCap("maxAttemptTimeoutMs", this.maxAttemptTimeoutMs, this.attemptTimeoutMs);
    checkCap("maxRetryBackoffMs", this.maxRetryBackoffMs, this.retryBackoffMs);
    this.concurrency = checkInteger("concurrency", options.concurrency ?? DEFAULT_CONCURRENCY);
    this.perServiceConcurrency = checkInteger(
      "perServiceConcurrency",
      options.perServiceConcurrency ?? DEFAULT_PER_SERVICE_CONCURRENCY,
    );
    this.maxSocketsPerRequest = checkInteger(
      "maxSocketsPerRequest",
      options.maxSocketsPerRequest ?? DEFAULT_MAX_SOCKETS_PER_REQUEST,
    );
    this.mmiCheck = options.mmiCheck ?? true;
    this.#store = options.store;
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger ?? createLogger("titanic:dispatcher");
    this.#brokerBackoff = this.#newBackoff();
  }

  /**
   * Resumes every stored request without a reply, oldest first (TI-5). Returns how many.
   *
   * @throws (as a rejection) what the store's `pending()` throws.
   */
  async start(): Promise<number> {
    if (this.mmiCheck) {
      this.#mmi = new MajordomoClient({
        broker: this.broker,
        timeoutMs: Math.min(this.attemptTimeoutMs, DEFAULT_TIMEOUT_MS),
        retries: 1,
        logger: silentLogger, // a failed query is reported once, as "unreachable"
      });
    }
    const pending = await this.#store.pending();
    this.#holding = true; // one pump for all of them
    try {
      for (const request of pending) this.submit(request);
    } finally {
      this.#holding = false;
    }
    this.#pump();
    return pending.length;
  }

  /** Takes a stored request for dispatch (after it was stored durably). */
  submit(request: StoredRequest): void {
    if (this.#closed || this.#jobs.has(request.uuid)) return;
    const service = this.#service(request.service);
    const job: Job = {
      request,
      service,
      phase: "queued",
      step: "waiting",
      attempts: 0,
      timeoutMs: this.attemptTimeoutMs,
      backoff: this.#newBackoff(),
      lines: [],
      timer: undefined,
      dueAt: 0,
    };
    this.#jobs.set(request.uuid, job);
    service.jobs += 1;
    service.fresh.push(job);
    service.queued += 1;
    this.#pump();
  }

  /**
   * Forgets a request (it was closed): no more sends, its sockets close, a reply still on its way
   * is not stored. Returns whether it was pending.
   */
  forget(uuid: string): boolean {
    const job = this.#jobs.get(uuid);
    if (!job) return false;
    const wasPending = job.phase !== "storing";
    this.#finish(job);
    this.#pump();
    return wasPending;
  }

  /** A snapshot of the dispatcher's state and counters. */
  stats(): TitanicDispatcherStats {
    let queued = 0;
    // Service names come from clients: a Map, not an object, so that "__proto__" is just a name.
    const services = new Map<string, TitanicServiceStats>();
    const entry = (name: string): TitanicServiceStats => {
      let stats = services.get(name);
      if (!stats) {
        stats = {
          queued: 0,
          inFlight: 0,
          completed: this.#completedBy.get(name),
          attempts: this.#attemptsBy.get(name),
          timeouts: this.#timeoutsBy.get(name),
          availability: "unknown",
        };
        services.set(name, stats);
      }
      return stats;
    };
    for (const service of this.#services.values()) {
      queued += service.queued;
      Object.assign(entry(service.name), {
        queued: service.queued,
        inFlight: service.active,
        availability: service.availability,
      });
    }
    for (const counters of [this.#completedBy, this.#attemptsBy, this.#timeoutsBy]) {
      for (const name of Object.keys(counters.snapshot())) entry(name);
    }
    return {
      pending: this.#jobs.size,
      queued,
      inFlight: this.#active,
      sockets: this.#sockets,
      ...this.#counts,
      services: Object.fromEntries(services),
    };
  }

  /** Stops dispatching, closes every socket, and waits for replies being stored. Idempotent. */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#closing.abort();
      this.#paused?.cancel();
      for (const job of [...this.#jobs.values()]) this.#finish(job);
      for (const service of this.#services.values()) service.recheck?.cancel();
      this.#services.clear();
      await this.#mmi?.close();
    }
    while (this.#storing.size > 0) await Promise.allSettled([...this.#storing]);
  }

  // ------------------------------------------------------------------------------------------
  // Scheduling

  /** Sends what can be sent: due resends first, then new requests round robin over services. */
  #pump(): void {
    if (this.#closed || this.#holding) return;
    for (const job of this.#due) {
      const verdict = this.#availability(job.service, job.dueAt);
      if (verdict === "go") {
        this.#due.delete(job);
        this.#send(job);
      } else if (verdict === "absent") {
        this.#due.delete(job);
        this.#requeue(job);
      }
    }
    const recent = this.#clock.now() - PRESENT_TTL_MS;
    let progress = true;
    while (progress && this.#active < this.concurrency) {
      progress = false;
      for (const service of [...this.#services.values()]) {
        if (this.#active >= this.concurrency) break;
        if (service.queued === 0 || service.active >= this.perServiceConcurrency) continue;
        if (this.#availability(service, recent) !== "go") continue;
        const job = this.#take(service);
        if (!job) continue;
        // Round robin across pumps too: the service that just got a slot goes to the back.
        this.#services.delete(service.name);
        this.#services.set(service.name, service);
        job.phase = "active";
        service.active += 1;
        this.#active += 1;
        this.#send(job);
        progress = true;
      }
    }
  }

  /** The next queued request of a service: those put back first, then the never-sent ones. */
  #take(service: ServiceState): Job | undefined {
    for (const list of [service.again, service.fresh]) {
      for (let job = list.shift(); job; job = list.shift()) {
        if (job.phase !== "queued") continue; // finished while queued
        service.queued -= 1;
        return job;
      }
    }
    return undefined;
  }

  /** Back to the head of its service's queue, its slot freed: the service has no workers. */
  #requeue(job: Job): void {
    this.#release(job);
    job.phase = "queued";
    const { again } = job.service;
    again.push(job);
    again.sort((a, b) => a.request.storedAt - b.request.storedAt);
    job.service.queued += 1;
  }

  #release(job: Job): void {
    if (job.phase !== "active") return;
    job.service.active -= 1;
    this.#active -= 1;
    this.#due.delete(job);
  }

  /** Stops everything of a request: timers, sockets, slot, queue place. */
  #finish(job: Job): void {
    if (job.phase === "done") return;
    if (job.phase === "queued") job.service.queued -= 1;
    this.#release(job);
    job.phase = "done";
    job.timer?.cancel();
    job.timer = undefined;
    for (const line of job.lines) this.#closeLine(line);
    job.lines = [];
    this.#jobs.delete(job.request.uuid);
    const { service } = job;
    service.jobs -= 1;
    // Forget a service with nothing left to run, so that random names cannot grow memory.
    if (service.jobs === 0) {
      service.recheck?.cancel();
      if (this.#services.get(service.name) === service) this.#services.delete(service.name);
    }
  }

  #service(name: string): ServiceState {
    let service = this.#services.get(name);
    if (!service) {
      service = {
        name,
        fresh: new Deque<Job>(),
        again: [],
        queued: 0,
        active: 0,
        jobs: 0,
        availability: "unknown",
        checkedAt: Number.NEGATIVE_INFINITY,
        checkWanted: false,
        absence: this.#newBackoff(),
        recheck: undefined,
      };
      this.#services.set(name, service);
    }
    return service;
  }

  #newBackoff(): Backoff {
    return new Backoff({ initialMs: this.retryBackoffMs, maxMs: this.maxRetryBackoffMs });
  }

  // ------------------------------------------------------------------------------------------
  // Availability (MMI)

  /**
   * May a request of `service` be sent now? `go` when MMI checks are off, or the broker said
   * `200` (or `501`) at or after `since`; `absent` after a `404`; otherwise `wait`, and a check
   * is asked for.
   */
  #availability(service: ServiceState, since: number): "go" | "absent" | "wait" {
    if (!this.mmiCheck) return "go";
    if (service.availability === "absent") return "absent";
    if (this.#paused) return "wait";
    if (service.availability === "present" && service.checkedAt >= since) return "go";
    if (!service.checkWanted) {
      service.checkWanted = true;
      this.#checks.push(service);
      void this.#runChecks();
    }
    return "wait";
  }

  /** Asks the broker about services, one at a time. */
  async #runChecks(): Promise<void> {
    if (this.#checking) return;
    this.#checking = true;
    try {
      for (;;) {
        if (this.#closed || this.#paused) return;
        const service = this.#checks.shift();
        if (!service) return;
        await this.#check(service);
        this.#pump();
      }
    } finally {
      this.#checking = false;
    }
  }

  async #check(service: ServiceState): Promise<void> {
    const mmi = this.#mmi;
    if (!mmi) return;
    let code: string;
    try {
      code = await mmiService(mmi, service.name);
    } catch (error) {
      service.checkWanted = false;
      if (this.#closed) return;
      this.#pause(error);
      return;
    }
    service.checkWanted = false;
    this.#brokerBackoff.reset();
    if (this.#closed) return;
    if (code !== MMI_CODES.notFound) {
      service.availability = "present";
      service.checkedAt = this.#clock.now();
      service.absence.reset();
      return;
    }
    service.availability = "absent";
    const retryInMs = service.absence.next();
    this.#logger.info("service has no workers: its requests wait", {
      service: service.name,
      retryInMs,
    });
    this.emit("unavailable", { service: service.name, retryInMs });
    service.recheck?.cancel();
    service.recheck = this.#clock.setTimeout(() => {
      service.recheck = undefined;
      service.availability = "unknown";
      this.#pump();
    }, retryInMs);
  }

  /** The broker did not answer: nothing is sent (it would pile up) until it does. */
  #pause(error: unknown): void {
    for (const service of this.#checks.splice(0)) service.checkWanted = false;
    const retryInMs = this.#brokerBackoff.next();
    this.#logger.warn("no answer from the broker: dispatch paused", { retryInMs });
    this.emit("unreachable", { retryInMs, error });
    this.#paused = this.#clock.setTimeout(() => {
      this.#paused = undefined;
      this.#pump();
    }, retryInMs);
  }

  // ------------------------------------------------------------------------------------------
  // Attempts

  /** One send, on a new socket; older sockets of the request keep listening. */
  #send(job: Job): void {
    const { request } = job;
    job.step = "waiting";
    job.attempts += 1;
    const attempt = job.attempts;
    const timeoutMs = job.timeoutMs;
    const socket = new Dealer({ linger: 0 });
    socket.connect(this.broker);
    this.#sockets += 1;
    const line: Line = { socket, attempt };
    job.lines.push(line);
    while (job.lines.length > this.maxSocketsPerRequest) {
      const oldest = job.lines.shift();
      if (oldest) this.#closeLine(oldest);
    }
    void this.#listen(job, line);
    socket.send(encodeClientRequest("0.1", request.service, request.body)).catch(() => {
      // Closed before the message left: a later send or a restart takes over.
    });
    this.#counts.attempts += 1;
    this.#attemptsBy.increment(request.service);
    this.#logger.debug("request dispatched", {
      uuid: request.uuid,
      service: request.service,
      attempt,
      timeoutMs,
    });
    this.emit("dispatched", { uuid: request.uuid, service: request.service, attempt, timeoutMs });
    job.timer?.cancel();
    job.timer = this.#clock.setTimeout(() => this.#timedOut(job, attempt), timeoutMs);
  }

  #timedOut(job: Job, attempt: number): void {
    if (job.phase !== "active" || job.attempts !== attempt || job.step !== "waiting") return;
    const { request } = job;
    const timeoutMs = job.timeoutMs;
    job.timeoutMs = Math.min(job.timeoutMs * 2, this.maxAttemptTimeoutMs);
    const retryInMs = job.backoff.next();
    job.step = "backoff";
    this.#counts.timeouts += 1;
    this.#timeoutsBy.increment(request.service);
    this.#logger.info("no reply in time: the request will be sent again", {
      uuid: request.uuid,
      service: request.service,
      attempt,
      timeoutMs,
      retryInMs,
    });
    this.emit("attemptTimedOut", {
      uuid: request.uuid,
      service: request.service,
      attempt,
      timeoutMs,
      retryInMs,
    });
    job.timer = this.#clock.setTimeout(() => {
      job.timer = undefined;
      if (job.phase !== "active") return;
      job.step = "due";
      job.dueAt = this.#clock.now();
      this.#due.add(job);
      this.#pump();
    }, retryInMs);
  }

  /** Reads a request's socket until a valid reply comes or the socket closes. */
  async #listen(job: Job, line: Line): Promise<void> {
    for (;;) {
      let frames: Buffer[];
      try {
        frames = await line.socket.receive();
      } catch {
        return; // closed
      }
      let reply: Buffer[];
      try {
        const decoded = decodeClientReply(frames, "0.1");
        if (decoded.service !== job.request.service) throw new ProtocolError("unexpected service");
        reply = decoded.body;
      } catch (error) {
        this.#counts.discarded += 1;
        this.#logger.warn("malformed reply discarded", {
          uuid: job.request.uuid,
          reason: error instanceof ProtocolError ? error.reason : "undecodable",
        });
        continue;
      }
      this.#replied(job, reply, line.attempt);
      return;
    }
  }

  /** The first reply wins: the slot is freed at once and the reply stored. */
  #replied(job: Job, body: Buffer[], attempt: number): void {
    if (job.phase === "done" || job.phase === "storing") return;
    const late = attempt !== job.attempts || job.step !== "waiting" || job.phase === "queued";
    if (job.phase === "queued") job.service.queued -= 1;
    this.#release(job);
    job.phase = "storing";
    job.timer?.cancel();
    job.timer = undefined;
    for (const line of job.lines) this.#closeLine(line);
    job.lines = [];
    if (late) this.#counts.lateReplies += 1;
    const storing = this.#store$(job, body, attempt, late);
    this.#storing.add(storing);
    void storing.finally(() => this.#storing.delete(storing));
    this.#pump();
  }

  /** Stores a reply durably, retrying with back-off: a reply in hand is never thrown away for a storage error. */
  async #store$(job: Job, body: Buffer[], attempt: number, late: boolean): Promise<void> {
    const { request } = job;
    const backoff = this.#newBackoff();
    while (job.phase === "storing") {
      try {
        await this.#store.putReply(request.uuid, body);
        break;
      } catch (error) {
        this.#counts.storageErrors += 1;
        const retryInMs = backoff.next();
        this.#logger.error("cannot store a reply: trying again", {
          uuid: request.uuid,
          error,
          retryInMs,
        });
        this.emit("storageError", { operation: "putReply", uuid: request.uuid, error });
        try {
          await sleep(retryInMs, { signal: this.#closing.signal, clock: this.#clock });
        } catch {
          return; // closed
        }
      }
    }
    if (job.phase !== "storing") return; // closed meanwhile: the store ignored it, or it was not written
    this.#finish(job);
    this.#counts.completed += 1;
    this.#completedBy.increment(request.service);
    const ageMs = Math.max(0, Date.now() - request.storedAt);
    this.#logger.debug("reply stored", { uuid: request.uuid, service: request.service, attempt });
    this.emit("replied", {
      uuid: request.uuid,
      service: request.service,
      attempt,
      attempts: job.attempts,
      late,
      ageMs,
    });
    this.#pump();
  }

  #closeLine(line: Line): void {
    if (line.socket.closed) return;
    closeSocket(line.socket);
    this.#sockets -= 1;
  }
}

function checkCap(name: string, cap: number, initial: number): void {
  if (cap < initial) {
    throw new InvalidArgumentError(`${name} (${cap}) must be >= its initial value (${initial})`);
  }
}
