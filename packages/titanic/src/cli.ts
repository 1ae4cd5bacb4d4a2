/**
 * The `titanic` bin: `titanic server`, `client`, and the single steps `request`, `reply`, `close`.
 * @module
 */
import { createRequire } from "node:module";
import {
  type CliContext,
  type CliOptionSpec,
  defineCommand,
  InvalidArgumentError,
  isPrintable,
  runCli,
} from "@zmq-patterns/core";
import {
  DEFAULT_BROKER_ENDPOINT,
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_LIVENESS,
  DEFAULT_RETRIES,
  DEFAULT_TIMEOUT_MS,
} from "@zmq-patterns/majordomo";
import { DEFAULT_MAX_POLL_MS, DEFAULT_POLL_MS, TitanicClient } from "./client.js";
import {
  DEFAULT_ATTEMPT_TIMEOUT_MS,
  DEFAULT_CONCURRENCY,
  DEFAULT_MAX_ATTEMPT_TIMEOUT_MS,
  DEFAULT_MAX_RETRY_BACKOFF_MS,
  DEFAULT_PER_SERVICE_CONCURRENCY,
  DEFAULT_RETRY_BACKOFF_MS,
} from "./dispatcher.js";
import { isUuid } from "./protocol.js";
import { DEFAULT_COLLECT_MAX_AGE_MS, DEFAULT_TITANIC_DIR, TitanicServer } from "./server.js";
import { FileStore } from "./store.js";

const { version } = createRequire(import.meta.url)("../package.json") as { version: string };

const brokerOption = {
  type: "string",
  default: DEFAULT_BROKER_ENDPOINT,
  placeholder: "endpoint",
  endpoint: true,
  description: "the Majordomo broker",
} as const satisfies CliOptionSpec;

const ms = (description: string, defaultMs: number, min = 1) =>
  ({ type: "number", min, default: defaultMs, placeholder: "ms", description }) as const;

/** Options of the commands that talk to Titanic as a client. */
const clientOptions = {
  broker: brokerOption,
  "mdp-timeout": ms("time to wait for Titanic's answer to one TSP request", DEFAULT_TIMEOUT_MS),
  retries: {
    type: "number",
    min: 1,
    integer: true,
    default: DEFAULT_RETRIES,
    placeholder: "n",
    description: "sends per TSP request in total",
  },
} as const satisfies Record<string, CliOptionSpec>;

const requestOptions = {
  service: {
    type: "string",
    default: "echo",
    placeholder: "name",
    description: "the service to run the request on",
  },
  body: {
    type: "string",
    default: "Hello world",
    placeholder: "text",
    description: "the request body",
  },
} as const satisfies Record<string, CliOptionSpec>;

const pollOptions = {
  "poll-ms": ms(
    "first wait before asking for the reply (doubles while pending)",
    DEFAULT_POLL_MS,
    0,
  ),
  "max-poll-ms": ms("longest wait between two polls", DEFAULT_MAX_POLL_MS, 0),
  timeout: ms("give up after this long in all, and close the request (0: never)", 0, 0),
} as const satisfies Record<string, CliOptionSpec>;

const server = defineCommand({
  description: "run Titanic: titanic.request, titanic.reply and titanic.close, and the dispatcher",
  options: {
    broker: brokerOption,
    dir: {
      type: "string",
      default: DEFAULT_TITANIC_DIR,
      placeholder: "path",
      description: "directory of requests and replies",
    },
    "attempt-timeout": ms(
      "wait for a service's reply to a first send (doubles per send)",
      DEFAULT_ATTEMPT_TIMEOUT_MS,
    ),
    "max-attempt-timeout": ms("cap of the attempt timeout", DEFAULT_MAX_ATTEMPT_TIMEOUT_MS),
    "retry-backoff": ms(
      "pause before a resend or a new look for a service (doubles)",
      DEFAULT_RETRY_BACKOFF_MS,
      0,
    ),
    "max-retry-backoff": ms("cap of the back-off", DEFAULT_MAX_RETRY_BACKOFF_MS, 0),
    concurrency: {
      type: "number",
      min: 1,
      integer: true,
      default: DEFAULT_CONCURRENCY,
      placeholder: "n",
      description: "requests in flight at once, all services together",
    },
    "per-service": {
      type: "number",
      min: 1,
      integer: true,
      default: DEFAULT_PER_SERVICE_CONCURRENCY,
      placeholder: "n",
      description: "requests in flight at once for one service",
    },
    "no-mmi": {
      type: "boolean",
      description: "send without asking the broker (mmi.service) whether the service has workers",
    },
    "collect-max-age": ms(
      "remove finished requests nobody closed after this long",
      DEFAULT_COLLECT_MAX_AGE_MS,
      0,
    ),
    "no-collect": {
      type: "boolean",
      description: "keep finished requests until their client closes them",
    },
    "no-fsync": {
      type: "boolean",
      description: "do not flush writes to the device (faster; a power loss can lose requests)",
    },
    "heartbeat-interval": ms(
      "heartbeat interval of the workers (as the broker's)",
      DEFAULT_HEARTBEAT_INTERVAL_MS,
    ),
    liveness: {
      type: "number",
      min: 1,
      integer: true,
      default: DEFAULT_LIVENESS,
      placeholder: "n",
      description: "silent heartbeat intervals before the broker is considered dead",
    },
    "stats-interval": ms("print stats this often (0: never)", 0, 0),
  },
  async run(ctx) {
    const o = ctx.options;
    const titanic = await TitanicServer.start({
      broker: o.broker,
      store: new FileStore({ dir: o.dir, fsync: !o["no-fsync"] }),
      attemptTimeoutMs: o["attempt-timeout"],
      maxAttemptTimeoutMs: o["max-attempt-timeout"],
      retryBackoffMs: o["retry-backoff"],
      maxRetryBackoffMs: o["max-retry-backoff"],
      concurrency: o.concurrency,
      perServiceConcurrency: o["per-service"],
      mmiCheck: !o["no-mmi"],
      collect: o["no-collect"] ? false : { maxAgeMs: o["collect-max-age"] },
      heartbeatIntervalMs: o["heartbeat-interval"],
      liveness: o.liveness,
      // The server logs its own decisions; this command prints the same events in its words, so
      // the server shares the command's logger only when tracing with --verbose.
      ...(ctx.verbose ? { logger: ctx.logger } : {}),
    });
    ctx.onShutdown(() => titanic.close());
    const log = ctx.logger;
    titanic.on("stored", ({ uuid, service }) => log.info(`stored ${uuid} for "${service}"`));
    titanic.on("dispatched", ({ uuid, service, attempt }) =>
      log.info(`dispatched ${uuid} to "${service}" (attempt ${attempt})`),
    );
    titanic.on("attemptTimedOut", ({ uuid, service, attempt, timeoutMs, retryInMs }) =>
      log.warn(
        `no reply from "${service}" for ${uuid} within ${timeoutMs} ms (attempt ${attempt}): sending again in ${retryInMs} ms unless it answers`,
      ),
    );
    titanic.on("replied", ({ uuid, service, attempt, late }) =>
      log.info(`replied ${uuid} from "${service}" (attempt ${attempt}${late ? ", late" : ""})`),
    );
    titanic.on("closed", ({ uuid }) => log.info(`closed ${uuid}`));
    titanic.on("unavailable", ({ service, retryInMs }) =>
      log.info(`no workers for "${service}": its requests wait (looking again in ${retryInMs} ms)`),
    );
    titanic.on("unreachable", ({ retryInMs }) =>
      log.warn(`the broker does not answer: dispatch paused for ${retryInMs} ms`),
    );
    titanic.on("storageError", ({ operation, uuid, error }) =>
      log.error(
        `storage failure in ${operation}${uuid ? ` for ${uuid}` : ""}: ${error instanceof Error ? error.message : String(error)}`,
      ),
    );
    titanic.on("rejected", ({ service, reason }) => log.warn(`${service}: 400 ${reason}`));
    titanic.on("collected", ({ removed }) => log.info(`collected ${removed} finished request(s)`));
    if (o["stats-interval"] > 0) {
      const timer = setInterval(
        () => ctx.print(`stats ${JSON.stringify(titanic.stats())}`),
        o["stats-interval"],
      );
      ctx.onShutdown(() => clearInterval(timer));
    }
    ctx.ready(
      `Titanic serves titanic.request, titanic.reply and titanic.close via ${o.broker}, storage in ${o.dir} (${titanic.resumed} pending resumed)`,
    );
  },
});

const client = defineCommand({
  description: "store requests, wait for their replies, print them and close them (ticlient)",
  options: {
    ...requestOptions,
    ...clientOptions,
    ...pollOptions,
    count: {
      type: "number",
      min: 1,
      integer: true,
      default: 1,
      placeholder: "n",
      description: "requests to send; with more than one, print a summary",
    },
  },
  async run(ctx) {
    const o = ctx.options;
    const titanic = openClient(ctx, o);
    const started = performance.now();
    try {
      const calls: Promise<void>[] = [];
      for (let i = 0; i < o.count; i++) {
        const call = titanic
          .call(o.service, o.body, {
            pollMs: o["poll-ms"],
            maxPollMs: Math.max(o["max-poll-ms"], o["poll-ms"]),
            ...(o.timeout > 0 ? { timeoutMs: o.timeout } : {}),
            signal: ctx.signal,
            onSubmitted: (uuid) => {
              if (o.count === 1) ctx.print(`request UUID ${uuid}`);
              else ctx.logger.debug(`request UUID ${uuid}`);
            },
          })
          .then((reply) => {
            if (o.count === 1) ctx.print(`reply: ${show(reply)}`);
            else ctx.logger.debug(`reply: ${show(reply)}`);
          });
        call.catch(() => {}); // awaited below
        calls.push(call);
      }
      const outcomes = await Promise.allSettled(calls);
      const failed = outcomes.filter((outcome) => outcome.status === "rejected");
      const first = failed[0];
      if (first) {
        const prefix = o.count > 1 ? `${failed.length} of ${o.count} requests failed: ` : "";
        throw new Error(`${prefix}${message(first.reason)}`, { cause: first.reason });
      }
    } finally {
      await titanic.close();
    }
    if (o.count > 1) {
      const elapsedMs = performance.now() - started;
      const rate = Math.round((o.count * 1000) / Math.max(elapsedMs, 1));
      ctx.print(`${o.count} requests/replies processed in ${Math.round(elapsedMs)} ms (${rate}/s)`);
    }
  },
});

const request = defineCommand({
  description: "store one request (titanic.request) and print its UUID",
  options: { ...requestOptions, ...clientOptions },
  async run(ctx) {
    const o = ctx.options;
    const titanic = openClient(ctx, o);
    try {
      ctx.print(await titanic.submit(o.service, o.body, { signal: ctx.signal }));
    } finally {
      await titanic.close();
    }
  },
});

const reply = defineCommand({
  description: 'print the reply of a request (titanic.reply), or "pending"',
  positionals: [{ name: "uuid", description: "the request's UUID (32 hex characters)" }],
  options: {
    ...clientOptions,
    wait: { type: "boolean", description: "poll until the reply is there" },
    "poll-ms": pollOptions["poll-ms"],
    "max-poll-ms": pollOptions["max-poll-ms"],
    timeout: ms("with --wait: give up after this long (0: never)", 0, 0),
  },
  async run(ctx) {
    const o = ctx.options;
    const uuid = uuidArgument(ctx.positionals);
    const titanic = openClient(ctx, o);
    const deadline = o.timeout > 0 ? performance.now() + o.timeout : Number.POSITIVE_INFINITY;
    try {
      let waitMs = o["poll-ms"];
      for (;;) {
        const answer = await titanic.reply(uuid, { signal: ctx.signal });
        if (answer.status === "ok") {
          ctx.print(`reply: ${show(answer.body)}`);
          return;
        }
        if (!o.wait) {
          ctx.print("pending");
          return;
        }
        if (performance.now() + waitMs > deadline) {
          throw new Error(`still pending after ${o.timeout} ms`);
        }
        await new Promise((resolve) => setTimeout(resolve, waitMs));
        waitMs = Math.min(Math.max(waitMs * 2, 1), Math.max(o["max-poll-ms"], o["poll-ms"]));
      }
    } finally {
      await titanic.close();
    }
  },
});

const close = defineCommand({
  description: "close a request (titanic.close): Titanic forgets it and its reply",
  positionals: [{ name: "uuid", description: "the request's UUID (32 hex characters)" }],
  options: clientOptions,
  async run(ctx) {
    const uuid = uuidArgument(ctx.positionals);
    const titanic = openClient(ctx, ctx.options);
    try {
      await titanic.closeRequest(uuid, { signal: ctx.signal });
      ctx.print(`closed ${uuid.toUpperCase()}`);
    } finally {
      await titanic.close();
    }
  },
});

function openClient(
  ctx: CliContext,
  o: { broker: string; "mdp-timeout": number; retries: number },
): TitanicClient {
  const titanic = new TitanicClient({
    broker: o.broker,
    timeoutMs: o["mdp-timeout"],
    retries: o.retries,
    verbose: ctx.verbose,
    logger: ctx.logger,
  });
  ctx.onShutdown(() => titanic.close());
  return titanic;
}

function uuidArgument(positionals: readonly string[]): string {
  const [uuid, extra] = positionals;
  if (uuid === undefined) throw new InvalidArgumentError("give the request's UUID");
  if (extra !== undefined) throw new InvalidArgumentError(`unexpected argument "${extra}"`);
  if (!isUuid(uuid)) {
    throw new InvalidArgumentError(`a UUID is 32 hexadecimal characters, got "${uuid}"`);
  }
  return uuid;
}

/** Frames for people: text when printable, hex otherwise. */
function show(frames: readonly Buffer[]): string {
  return frames
    .map((frame) => (isPrintable(frame) ? frame.toString("utf8") : frame.toString("hex")))
    .join(" ");
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

process.exitCode = await runCli({
  name: "titanic",
  version,
  description: "Titanic (RFC 9/TSP): disconnected, disk-backed reliable requests over Majordomo",
  commands: { server, client, request, reply, close },
});
