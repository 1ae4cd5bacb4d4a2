/**
 * The `majordomo` bin: `majordomo broker`, `worker`, `client` and `mmi`.
 * @module
 */
import { createRequire } from "node:module";
import {
  type CliOptionSpec,
  checkEndpoint,
  connectOption,
  defineCommand,
  describeIdentity,
  faultCliOptions,
  faultSimulatorFromCli,
  InvalidArgumentError,
  isPrintable,
  type Logger,
  runCli,
} from "@zmq-patterns/core";
import { DEFAULT_MAX_IN_FLIGHT, MajordomoAsyncClient } from "./async-client.js";
import { MajordomoBroker } from "./broker.js";
import { MajordomoClient } from "./client.js";
import { mmiService } from "./mmi.js";
import {
  DEFAULT_BROKER_BIND,
  DEFAULT_BROKER_ENDPOINT,
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_LIVENESS,
  DEFAULT_RECONNECT_MS,
  DEFAULT_RETRIES,
  DEFAULT_TIMEOUT_MS,
  type MdpVersion,
  MMI_CODES,
} from "./protocol.js";
import { MajordomoWorker } from "./worker.js";

const { version } = createRequire(import.meta.url)("../package.json") as { version: string };

const heartbeatOptions = {
  "heartbeat-interval": {
    type: "number",
    min: 1,
    default: DEFAULT_HEARTBEAT_INTERVAL_MS,
    placeholder: "ms",
    description: "heartbeat interval (broker and workers should agree)",
  },
  liveness: {
    type: "number",
    min: 1,
    integer: true,
    default: DEFAULT_LIVENESS,
    placeholder: "n",
    description: "silent intervals before the peer is considered dead",
  },
} as const satisfies Record<string, CliOptionSpec>;

/** `--version` belongs to every bin, so the protocol version is `--protocol`. */
const protocolOption = {
  type: "string",
  default: "0.1",
  placeholder: "0.1|0.2",
  description: "MDP version: 0.1 (RFC 7) or 0.2 (RFC 18, partial replies)",
} as const satisfies CliOptionSpec;

const serviceOption = (description: string) =>
  ({
    type: "string",
    default: "echo",
    placeholder: "name",
    description,
  }) as const satisfies CliOptionSpec;

const clientOptions = {
  connect: connectOption(DEFAULT_BROKER_ENDPOINT, "the broker"),
  protocol: protocolOption,
  timeout: {
    type: "number",
    min: 1,
    default: DEFAULT_TIMEOUT_MS,
    placeholder: "ms",
    description: "time to wait for a reply",
  },
  retries: {
    type: "number",
    min: 1,
    integer: true,
    default: DEFAULT_RETRIES,
    placeholder: "n",
    description: "sends per request in total (synchronous client)",
  },
} as const satisfies Record<string, CliOptionSpec>;

const broker = defineCommand({
  description: "run the broker: clients and MDP/0.1 and 0.2 workers on one socket (mdbroker)",
  options: {
    bind: {
      type: "string",
      default: DEFAULT_BROKER_BIND,
      placeholder: "endpoints",
      description: "endpoint(s) to bind, comma-separated",
    },
    ...heartbeatOptions,
    "request-ttl": {
      type: "number",
      min: 1,
      placeholder: "ms",
      description: "how long a request may wait for a worker (default: the broker's, 60000)",
    },
    "max-queued": {
      type: "number",
      min: 1,
      integer: true,
      placeholder: "n",
      description: "requests queued per service (default: the broker's, 1000)",
    },
    idempotent: {
      type: "string",
      placeholder: "service,...",
      description: "services whose requests are queued again when their worker dies",
    },
    "stats-interval": {
      type: "number",
      default: 0,
      placeholder: "ms",
      description: "print stats this often (0: never)",
    },
  },
  async run(ctx) {
    const o = ctx.options;
    const bind = o.bind.split(",").map((endpoint) => checkEndpoint("--bind", endpoint.trim()));
    const idempotent = new Set(
      (o.idempotent ?? "")
        .split(",")
        .map((name) => name.trim())
        .filter((name) => name.length > 0),
    );
    const mdp = await MajordomoBroker.start({
      bind,
      heartbeatIntervalMs: o["heartbeat-interval"],
      liveness: o.liveness,
      ...(o["request-ttl"] === undefined ? {} : { requestTtlMs: o["request-ttl"] }),
      ...(o["max-queued"] === undefined ? {} : { maxQueuedPerService: o["max-queued"] }),
      ...(idempotent.size > 0 ? { idempotent: (service: string) => idempotent.has(service) } : {}),
      verbose: ctx.verbose,
      ...libraryLogger(ctx),
    });
    ctx.onShutdown(() => mdp.close());
    mdp.on("workerReady", ({ worker, service, version }) =>
      ctx.logger.info(`worker ${describeIdentity(worker)} ready for "${service}" (MDP/${version})`),
    );
    mdp.on("workerExpired", ({ worker, service, busy }) =>
      ctx.logger.warn(
        `worker ${describeIdentity(worker)} of "${service}" expired${busy ? " while busy" : ""}`,
      ),
    );
    mdp.on("workerDisconnected", ({ worker, service, reason }) =>
      ctx.logger.info(`worker ${describeIdentity(worker)} of "${service}" left: ${reason}`),
    );
    mdp.on("requestDispatched", ({ service, worker }) =>
      ctx.logger.debug(`request for "${service}" sent to ${describeIdentity(worker)}`),
    );
    mdp.on("requestExpired", ({ service }) =>
      ctx.logger.warn(`request for "${service}" expired in the queue`),
    );
    mdp.on("requestRequeued", ({ service }) =>
      ctx.logger.info(`request for "${service}" queued again`),
    );
    mdp.on("requestDropped", ({ service, reason }) =>
      ctx.logger.warn(`request for "${service}" dropped: ${reason}`),
    );
    mdp.on("dropped", ({ reason, from }) =>
      ctx.logger.warn(`dropped message from ${describeIdentity(from)}: ${reason}`),
    );
    if (o["stats-interval"] > 0) {
      const timer = setInterval(
        () => ctx.print(`stats ${JSON.stringify(mdp.stats())}`),
        o["stats-interval"],
      );
      ctx.onShutdown(() => clearInterval(timer));
    }
    ctx.ready(`MDP broker is active at ${mdp.endpoints.join(", ")}`);
  },
});

const worker = defineCommand({
  description: "run an echo worker for a service, heartbeating and registering again (mdworker)",
  options: {
    service: serviceOption("the service to register"),
    connect: connectOption(DEFAULT_BROKER_ENDPOINT, "the broker"),
    protocol: protocolOption,
    ...heartbeatOptions,
    reconnect: {
      type: "number",
      default: DEFAULT_RECONNECT_MS,
      placeholder: "ms",
      description: "delay before registering again after a heartbeat failure",
    },
    "reconnect-max": {
      type: "number",
      placeholder: "ms",
      description: "double the reconnect delay after each failure up to this (default: fixed)",
    },
    partials: {
      type: "number",
      integer: true,
      default: 0,
      placeholder: "n",
      description: "MDP/0.2: send the request back n times as PARTIAL before the FINAL",
    },
    ...faultCliOptions,
  },
  async run(ctx) {
    const o = ctx.options;
    const mdpVersion = checkProtocol(o.protocol);
    if (o.partials > 0 && mdpVersion === "0.1") {
      throw new InvalidArgumentError("--partials needs --protocol 0.2");
    }
    const mdw = await MajordomoWorker.start({
      broker: o.connect,
      service: o.service,
      version: mdpVersion,
      heartbeatIntervalMs: o["heartbeat-interval"],
      liveness: o.liveness,
      reconnectMs: o.reconnect,
      ...(o["reconnect-max"] === undefined ? {} : { reconnectMaxMs: o["reconnect-max"] }),
      handler: async (body, { partial }) => {
        for (let i = 0; i < o.partials; i++) await partial(body);
        return body;
      },
      simulate: faultSimulatorFromCli(o),
      verbose: ctx.verbose,
      ...libraryLogger(ctx),
    });
    ctx.onShutdown(() => mdw.close());
    mdw.on("connected", ({ attempt }) => {
      if (attempt > 1) ctx.logger.info(`registered again with ${o.connect}`);
    });
    mdw.on("request", ({ body, kind }) => {
      if (kind === "normal") ctx.logger.debug(`normal reply (${show(body)})`);
      if (kind === "slow") ctx.logger.warn("simulating CPU overload");
    });
    mdw.on("disconnected", ({ reason, delayMs }) =>
      ctx.logger.warn(`${reason}: registering again in ${delayMs} ms`),
    );
    mdw.on("dropped", ({ reason }) => ctx.logger.warn(`invalid message from broker: ${reason}`));
    mdw.on("crash", () => {
      ctx.logger.warn("simulating a crash");
      process.exit(1);
    });
    ctx.ready(`worker for "${o.service}" connected to ${o.connect} (MDP/${mdpVersion})`);
  },
});

const client = defineCommand({
  description: "send requests to a service and print the replies (mdclient, mdclient2)",
  options: {
    service: serviceOption("the service to call"),
    ...clientOptions,
    body: {
      type: "string",
      default: "Hello world",
      placeholder: "text",
      description: "the request body",
    },
    count: {
      type: "number",
      min: 1,
      integer: true,
      default: 1,
      placeholder: "n",
      description: "requests to send; with more than one, print a summary",
    },
    async: {
      type: "boolean",
      description: "use the asynchronous client: many requests in flight (mdclient2)",
    },
    window: {
      type: "number",
      min: 1,
      integer: true,
      default: DEFAULT_MAX_IN_FLIGHT,
      placeholder: "n",
      description: "requests in flight at most, with --async",
    },
  },
  async run(ctx) {
    const o = ctx.options;
    const mdpVersion = checkProtocol(o.protocol);
    const started = performance.now();
    const onReply = (body: Buffer[], final: boolean) => {
      if (o.count === 1) ctx.print(`${final ? "reply" : "partial"}: ${show(body)}`);
      else ctx.logger.debug(`${final ? "reply" : "partial"}: ${show(body)}`);
    };
    if (o.async) {
      const mdc = new MajordomoAsyncClient({
        broker: o.connect,
        maxInFlight: o.window,
        version: mdpVersion,
        verbose: ctx.verbose,
        ...libraryLogger(ctx),
      });
      ctx.onShutdown(() => mdc.close());
      // Sending and receiving run side by side: send waits while the window is full.
      const sending = (async () => {
        for (let i = 0; i < o.count; i++) await mdc.send(o.service, o.body);
      })();
      sending.catch(() => {}); // awaited below; until then a failure must not go unhandled
      let replies = 0;
      try {
        while (replies < o.count) {
          const reply = await mdc.receive({ timeoutMs: o.timeout, signal: ctx.signal });
          onReply(reply.body, reply.final);
          if (reply.final) replies += 1;
        }
        await sending;
      } catch (error) {
        throw new Error(`${replies} of ${o.count} replies received, then none in ${o.timeout} ms`, {
          cause: error,
        });
      } finally {
        await mdc.close();
        await sending.catch(() => {});
      }
    } else {
      const mdc = new MajordomoClient({
        broker: o.connect,
        timeoutMs: o.timeout,
        retries: o.retries,
        version: mdpVersion,
        verbose: ctx.verbose,
        ...libraryLogger(ctx),
      });
      ctx.onShutdown(() => mdc.close());
      try {
        for (let i = 0; i < o.count; i++) {
          const body = await mdc.request(o.service, o.body, {
            signal: ctx.signal,
            onPartial: (partial) => onReply(partial, false),
          });
          onReply(body, true);
        }
      } finally {
        await mdc.close();
      }
    }
    if (o.count > 1) {
      const elapsedMs = performance.now() - started;
      const rate = Math.round((o.count * 1000) / Math.max(elapsedMs, 1));
      ctx.print(`${o.count} requests/replies processed in ${Math.round(elapsedMs)} ms (${rate}/s)`);
    }
  },
});

const mmi = defineCommand({
  description: "ask the broker whether a service has workers (mmi.service; mmiecho)",
  options: {
    service: serviceOption("the service to look up"),
    ...clientOptions,
  },
  async run(ctx) {
    const o = ctx.options;
    const mdc = new MajordomoClient({
      broker: o.connect,
      timeoutMs: o.timeout,
      retries: o.retries,
      version: checkProtocol(o.protocol),
      verbose: ctx.verbose,
      ...libraryLogger(ctx),
    });
    let code: string;
    try {
      code = await mmiService(mdc, o.service, { signal: ctx.signal });
    } catch (error) {
      throw new Error("no response from broker, make sure it's running", { cause: error });
    } finally {
      await mdc.close();
    }
    ctx.print(`Lookup ${o.service} service: ${code}`);
    // The exit status answers scripts: 0 only when the service has workers.
    if (code !== MMI_CODES.found) {
      throw new Error(code === MMI_CODES.notFound ? "no workers" : `unexpected code ${code}`);
    }
  },
});

function checkProtocol(value: string): MdpVersion {
  if (value !== "0.1" && value !== "0.2") {
    throw new InvalidArgumentError(`--protocol must be 0.1 or 0.2, got "${value}"`);
  }
  return value;
}

/** Frames for people: text when printable, hex otherwise. */
function show(frames: readonly Buffer[]): string {
  return frames
    .map((frame) => (isPrintable(frame) ? frame.toString("latin1") : frame.toString("hex")))
    .join(" ");
}

process.exitCode = await runCli({
  name: "majordomo",
  version,
  description:
    "Majordomo (RFC 7/MDP, 18/MDP, 8/MMI): a service-oriented broker, workers and clients",
  commands: { broker, worker, client, mmi },
});

/**
 * The roles log their own decisions; the commands above print the same events in their words. So
 * the library's logger is the command's only with `--verbose`, when tracing wants both.
 */
function libraryLogger(ctx: { verbose: boolean; logger: Logger }): { logger?: Logger } {
  return ctx.verbose ? { logger: ctx.logger } : {};
}
