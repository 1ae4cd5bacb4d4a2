/**
 * `TitanicClient`: the client side of RFC 9/TSP, on a Majordomo client.
 * @module
 */
import {
  abortReason,
  type Closeable,
  ClosedError,
  checkDuration,
  checkEndpoint,
  checkInteger,
  createLogger,
  type FrameLike,
  InvalidArgumentError,
  isZmqPatternsError,
  type Logger,
  ProtocolError,
  sleep,
  TimeoutError,
  toFrames,
} from "@zmq-patterns/core";
import {
  DEFAULT_BROKER_ENDPOINT,
  DEFAULT_RETRIES,
  DEFAULT_TIMEOUT_MS,
  MAX_SERVICE_NAME_BYTES,
  MajordomoClient,
} from "@zmq-patterns/majordomo";
import {
  decodeStatusReply,
  encodeSubmission,
  isUuid,
  type StatusReply,
  TITANIC_CLOSE,
  TITANIC_REPLY,
  TITANIC_REQUEST,
  TSP_STATUS,
} from "./protocol.js";

/** Default of {@link TitanicCallOptions.pollMs}: the Guide's ticlient's. */
export const DEFAULT_POLL_MS = 100;
/** Default of {@link TitanicCallOptions.maxPollMs}: the Guide's ticlient's wait after a `300`. */
export const DEFAULT_MAX_POLL_MS = 5000;

/** Options of {@link TitanicClient}. */
export interface TitanicClientOptions {
  /** The broker. Default `tcp://localhost:5555`. */
  broker?: string;
  /** Time to wait for Titanic's answer to one TSP request. Default 2,500 ms. */
  timeoutMs?: number;
  /** Sends per TSP request in total, each on a new socket. Default 3. */
  retries?: number;
  /** Log every MDP message at debug level. Default false. */
  verbose?: boolean;
  /** Where to log. Default: quiet unless `ZMQ_PATTERNS_DEBUG` enables `titanic:client`. */
  logger?: Logger;
}

/** Options of one TSP request ({@link TitanicClient.submit}, `reply`, `closeRequest`). */
export interface TitanicRequestOptions {
  /** Abandons the request (rejects with `AbortedError`). */
  signal?: AbortSignal;
}

/** Options of {@link TitanicClient.call}. */
export interface TitanicCallOptions extends TitanicRequestOptions {
  /** First wait before asking for the reply; the wait doubles after each `300`. Default 100 ms. */
  pollMs?: number;
  /** Cap of the wait between two polls. Default 5,000 ms. */
  maxPollMs?: number;
  /**
   * Gives up (rejects with {@link @zmq-patterns/core!TimeoutError | TimeoutError}) after this long
   * in all. Default: no limit (Titanic is for services that may be away for a long time).
   */
  timeoutMs?: number;
  /** Told the UUID once the request is stored (keep it to fetch the reply after a crash). */
  onSubmitted?: (uuid: string) => void;
}

/** What `titanic.reply` says about a request. */
export type TitanicReply =
  | { status: "pending" }
  | {
      status: "ok";
      /** The service's reply. */
      body: Buffer[];
    };

/**
 * Titanic answered `400` (the request is unknown, was closed, or its body was refused; do not
 * retry) or `500` (a storage failure; try again later). A
 * {@link @zmq-patterns/core!ProtocolError | ProtocolError}: its code is `PROTOCOL`, and
 * `retryable` tells the two apart.
 */
export class TitanicStatusError extends ProtocolError {
  /** The TSP status code. */
  readonly status: typeof TSP_STATUS.unknown | typeof TSP_STATUS.error;
  /** The TSP service that answered. */
  readonly service: string;
  /** True for `500`: the same request may succeed later (TSP-R6). */
  readonly retryable: boolean;
  /** The text after the code, if any (informative only, TSP-R6). */
  readonly text: string;

  constructor(
    service: string,
    status: typeof TSP_STATUS.unknown | typeof TSP_STATUS.error,
    text = "",
  ) {
    super(status === TSP_STATUS.unknown ? "unknown request" : "server error");
    this.status = status;
    this.service = service;
    this.retryable = status === TSP_STATUS.error;
    this.text = text;
    this.message =
      status === TSP_STATUS.unknown
        ? `${service}: 400 unknown request${text ? ` (${text})` : ""}`
        : `${service}: 500 internal error in Titanic, try again later${text ? ` (${text})` : ""}`;
  }
}

/**
 * A Titanic client (RFC 9/TSP): it stores a request with Titanic and gets a UUID
 * ({@link TitanicClient.submit}), asks for the reply whenever it likes
 * ({@link TitanicClient.reply}), and closes the request once it has the reply
 * ({@link TitanicClient.closeRequest}); {@link TitanicClient.call} does the three steps.
 *
 * It talks to Titanic through a
 * {@link @zmq-patterns/majordomo!MajordomoClient | MajordomoClient}: each TSP request is retried on
 * a new socket and a stale answer is never returned. Status codes are read from their first three
 * characters (TSP-R6). A lost answer to `submit` makes it send again, which stores the request a
 * second time under another UUID (TSP has no idempotency key): make services idempotent.
 *
 * @example
 * ```ts
 * await using titanic = new TitanicClient({ broker: "tcp://localhost:5555" });
 * const reply = await titanic.call("echo", "Hello world");
 * ```
 */
export class TitanicClient implements Closeable {
  readonly broker: string;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly #mdp: MajordomoClient;
  readonly #logger: Logger;
  readonly #closing = new AbortController();

  /** @throws {@link @zmq-patterns/core!InvalidArgumentError | InvalidArgumentError} on bad options. */
  constructor(options: TitanicClientOptions = {}) {
    this.broker = checkEndpoint("broker", options.broker ?? DEFAULT_BROKER_ENDPOINT);
    this.timeoutMs = checkDuration("timeoutMs", options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    this.retries = checkInteger("retries", options.retries ?? DEFAULT_RETRIES);
    this.#logger = options.logger ?? createLogger("titanic:client");
    this.#mdp = new MajordomoClient({
      broker: this.broker,
      timeoutMs: this.timeoutMs,
      retries: this.retries,
      verbose: options.verbose ?? false,
      logger: this.#logger,
    });
  }

  /**
   * Stores a request for `service` with Titanic (`titanic.request`) and resolves with its UUID
   * (32 uppercase hex characters) once Titanic has it on disk.
   *
   * @throws {@link @zmq-patterns/core!InvalidArgumentError | InvalidArgumentError} at once for a bad service name or an empty body;
   * as rejections: {@link TitanicStatusError} (`400`: refused; `500`: storage failure, retryable),
   * {@link @zmq-patterns/core!RequestAbandonedError | RequestAbandonedError} when Titanic does not answer,
   * `AbortedError`, {@link @zmq-patterns/core!ClosedError | ClosedError},
   * {@link @zmq-patterns/core!ProtocolError | ProtocolError} for an answer that breaks TSP.
   */
  submit(
    service: string,
    body: FrameLike | readonly FrameLike[],
    options: TitanicRequestOptions = {},
  ): Promise<string> {
    const frames = encodeSubmission(checkService(service), checkBody(body));
    return this.#tsp(TITANIC_REQUEST, frames, options).then(({ status, rest }) => {
      if (status !== TSP_STATUS.ok) {
        throw new ProtocolError(`unexpected ${status} answer from titanic.request`);
      }
      const uuid = rest[0]?.toString("latin1");
      if (uuid === undefined || rest.length !== 1 || !isUuid(uuid)) {
        throw new ProtocolError("invalid UUID in titanic.request answer");
      }
      // Kept exactly as the server wrote it: some Titanics store UUIDs case-sensitively.
      return uuid;
    });
  }

  /**
   * Asks for the reply of a request (`titanic.reply`): `{ status: "ok", body }` once the service
   * answered (the same every time until the request is closed), `{ status: "pending" }` before.
   *
   * @throws {@link @zmq-patterns/core!InvalidArgumentError | InvalidArgumentError} at once for a UUID that is not 32 hex characters;
   * as rejections: {@link TitanicStatusError} (`400`: unknown or closed; `500`: retryable), and the
   * rejections of {@link TitanicClient.submit}.
   */
  reply(uuid: string, options: TitanicRequestOptions = {}): Promise<TitanicReply> {
    const id = checkUuid(uuid);
    return this.#tsp(TITANIC_REPLY, [Buffer.from(id)], options).then(({ status, rest }) => {
      if (status === TSP_STATUS.pending) return { status: "pending" };
      if (status === TSP_STATUS.ok && rest.length > 0) return { status: "ok", body: rest };
      throw new ProtocolError(`unexpected ${status} answer from titanic.reply`);
    });
  }

  /**
   * Closes a request (`titanic.close`): Titanic forgets it and its reply, and stops running it if
   * it had not run yet. Closing an unknown or closed request succeeds too (TSP-R4).
   *
   * @throws {@link @zmq-patterns/core!InvalidArgumentError | InvalidArgumentError} at once for a UUID that is not 32 hex characters;
   * as rejections: {@link TitanicStatusError} (`500`: retryable), and the rejections of {@link TitanicClient.submit}.
   */
  closeRequest(uuid: string, options: TitanicRequestOptions = {}): Promise<void> {
    const id = checkUuid(uuid);
    return this.#tsp(TITANIC_CLOSE, [Buffer.from(id)], options).then(({ status }) => {
      if (status !== TSP_STATUS.ok) {
        throw new ProtocolError(`unexpected ${status} answer from titanic.close`);
      }
    });
  }

  /**
   * Submits a request, polls until its reply is stored, closes it and resolves with the reply.
   * `300` and `500` answers are retried (TI-B12: a `500` is not fatal), as are polls Titanic does
   * not answer (it may be restarting); a `400` is fatal. When it gives up after the request was
   * stored (a timeout, an abort, an answer that breaks TSP), it closes the request, so Titanic
   * stops running it.
   *
   * @throws as rejections: {@link @zmq-patterns/core!TimeoutError | TimeoutError} after `timeoutMs`;
   * {@link TitanicStatusError} for a `400`; the rejections of {@link TitanicClient.submit} while
   * submitting; `AbortedError`; {@link @zmq-patterns/core!ClosedError | ClosedError}.
   */
  call(
    service: string,
    body: FrameLike | readonly FrameLike[],
    options: TitanicCallOptions = {},
  ): Promise<Buffer[]> {
    checkService(service);
    const frames = checkBody(body);
    const pollMs = checkDuration("pollMs", options.pollMs ?? DEFAULT_POLL_MS, 0);
    const maxPollMs = checkDuration(
      "maxPollMs",
      options.maxPollMs ?? Math.max(DEFAULT_MAX_POLL_MS, pollMs),
      0,
    );
    if (maxPollMs < pollMs) {
      throw new InvalidArgumentError(`maxPollMs (${maxPollMs}) must be >= pollMs (${pollMs})`);
    }
    const timeoutMs =
      options.timeoutMs === undefined ? undefined : checkDuration("timeoutMs", options.timeoutMs);
    return this.#call(service, frames, { ...options, pollMs, maxPollMs, timeoutMs });
  }

  /** Closes the Majordomo client; pending and later calls reject with {@link @zmq-patterns/core!ClosedError | ClosedError}. Idempotent. */
  async close(): Promise<void> {
    if (!this.#closing.signal.aborted) this.#closing.abort(new ClosedError("client closed"));
    await this.#mdp.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #call(
    service: string,
    body: Buffer[],
    options: Omit<TitanicCallOptions, "timeoutMs"> & {
      pollMs: number;
      maxPollMs: number;
      timeoutMs: number | undefined;
    },
  ): Promise<Buffer[]> {
    const { signal, dispose } = this.#linkedSignal(service, options.signal, options.timeoutMs);
    let uuid: string | undefined;
    try {
      uuid = await this.#retrying(() => this.submit(service, body, { signal }), signal, options);
      options.onSubmitted?.(uuid);
      const id = uuid;
      let waitMs = options.pollMs;
      for (;;) {
        await sleep(waitMs, { signal });
        const reply = await this.#retrying(() => this.reply(id, { signal }), signal, options, true);
        if (reply.status === "ok") {
          await this.#closeQuietly(id, this.#closing.signal);
          return reply.body;
        }
        waitMs = Math.min(Math.max(waitMs * 2, 1), options.maxPollMs);
      }
    } catch (error) {
      // Stop Titanic from running a request nobody waits for any more, without delaying the
      // rejection (Titanic may be the reason for it).
      const unknown = error instanceof TitanicStatusError && !error.retryable;
      if (uuid !== undefined && !unknown) void this.#closeQuietly(uuid, this.#closing.signal);
      throw error;
    } finally {
      dispose();
    }
  }

  /**
   * Runs a TSP request again after a `500` (and, for polls, when Titanic does not answer), waiting
   * between tries as between polls.
   */
  async #retrying<T>(
    run: () => Promise<T>,
    signal: AbortSignal,
    options: { pollMs: number; maxPollMs: number },
    poll = false,
  ): Promise<T> {
    let waitMs = options.pollMs;
    for (;;) {
      try {
        return await run();
      } catch (error) {
        if (signal.aborted) throw abortReason(signal);
        const retry =
          (error instanceof TitanicStatusError && error.retryable) ||
          (poll && isZmqPatternsError(error, "TIMEOUT"));
        if (!retry) throw error;
        this.#logger.info("Titanic cannot answer now: trying again", {
          error,
          retryInMs: waitMs,
        });
      }
      await sleep(waitMs, { signal });
      waitMs = Math.min(Math.max(waitMs * 2, 1), options.maxPollMs);
    }
  }

  async #closeQuietly(uuid: string, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    try {
      await this.closeRequest(uuid, { signal });
    } catch (error) {
      this.#logger.warn("cannot close the request", { uuid, error });
    }
  }

  /** One signal for a call: the caller's, the client's closing and the call's deadline. */
  #linkedSignal(
    service: string,
    outer: AbortSignal | undefined,
    timeoutMs: number | undefined,
  ): { signal: AbortSignal; dispose: () => void } {
    const controller = new AbortController();
    const sources = [outer, this.#closing.signal].filter((s): s is AbortSignal => s !== undefined);
    const listeners = sources.map((source) => {
      const listener = () => controller.abort(source.reason);
      if (source.aborted) listener();
      else source.addEventListener("abort", listener, { once: true });
      return () => source.removeEventListener("abort", listener);
    });
    let timer: NodeJS.Timeout | undefined;
    if (timeoutMs !== undefined) {
      timer = setTimeout(() => {
        controller.abort(
          new TimeoutError(
            `no reply from service "${service}" through Titanic within ${timeoutMs} ms`,
            timeoutMs,
          ),
        );
      }, timeoutMs);
    }
    return {
      signal: controller.signal,
      dispose: () => {
        clearTimeout(timer);
        for (const remove of listeners) remove();
      },
    };
  }

  /** Sends a TSP request and decodes the status; `400` and `500` become {@link TitanicStatusError}. */
  async #tsp(
    service: string,
    frames: Buffer[],
    options: TitanicRequestOptions,
  ): Promise<StatusReply> {
    if (this.#closing.signal.aborted) throw new ClosedError("client closed");
    const answer = await this.#mdp.request(service, frames, {
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const reply = decodeStatusReply(answer);
    if (reply.status === TSP_STATUS.unknown || reply.status === TSP_STATUS.error) {
      const text = answer[0]?.toString("utf8").slice(4) ?? "";
      throw new TitanicStatusError(service, reply.status, text);
    }
    return reply;
  }
}

function checkService(service: string): string {
  if (typeof service !== "string" || service.length === 0) {
    throw new InvalidArgumentError("service must be a non-empty string");
  }
  if (Buffer.byteLength(service) > MAX_SERVICE_NAME_BYTES) {
    throw new InvalidArgumentError(`service must be at most ${MAX_SERVICE_NAME_BYTES} bytes`);
  }
  return service;
}

function checkBody(body: FrameLike | readonly FrameLike[]): Buffer[] {
  const frames = toFrames(typeof body === "string" || body instanceof Uint8Array ? [body] : body);
  if (frames.length === 0) throw new InvalidArgumentError("a request needs at least one frame");
  return frames;
}

function checkUuid(uuid: string): string {
  if (typeof uuid !== "string" || !isUuid(uuid)) {
    throw new InvalidArgumentError(
      `a UUID is 32 hexadecimal characters, got ${JSON.stringify(String(uuid))}`,
    );
  }
  // Sent as given, not case-normalised: the Guide's Python Titanic hands out lowercase UUIDs and
  // finds them only in that case.
  return uuid;
}
