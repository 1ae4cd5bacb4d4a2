/**
 * The `paranoid-pirate` bin: `paranoid-pirate queue` and `paranoid-pirate worker`.
 * @module
 */
import { createRequire } from "node:module";
import {
  bindOption,
  connectOption,
  defineCommand,
  describeIdentity,
  faultCliOptions,
  faultSimulatorFromCli,
  runCli,
} from "@zmq-patterns/core";
import {
  DEFAULT_BACKEND,
  DEFAULT_FRONTEND,
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_LIVENESS,
  DEFAULT_RECONNECT_INITIAL_MS,
  DEFAULT_RECONNECT_MAX_MS,
  DEFAULT_WORKER_ENDPOINT,
  ParanoidPirateQueue,
  ParanoidPirateWorker,
} from "./index.js";

const { version } = createRequire(import.meta.url)("../package.json") as { version: string };

const heartbeatOptions = {
  "heartbeat-interval": {
    type: "number",
    min: 1,
    default: DEFAULT_HEARTBEAT_INTERVAL_MS,
    placeholder: "ms",
    description: "heartbeat interval (queue and workers must agree)",
  },
  liveness: {
    type: "number",
    min: 1,
    integer: true,
    default: DEFAULT_LIVENESS,
    placeholder: "n",
    description: "silent intervals before the peer is considered dead",
  },
} as const;

const queue = defineCommand({
  description: "run the queue: clients on the frontend, 6/PPP workers on the backend (ppqueue)",
  options: {
    frontend: bindOption(DEFAULT_FRONTEND, "endpoint for clients"),
    backend: bindOption(DEFAULT_BACKEND, "endpoint for workers"),
    ...heartbeatOptions,
    "register-unknown": {
      type: "boolean",
      description: "take a heartbeat from an unknown worker as READY (the Guide's lenient mode)",
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
    const pirate = await ParanoidPirateQueue.start({
      frontend: o.frontend,
      backend: o.backend,
      heartbeatIntervalMs: o["heartbeat-interval"],
      liveness: o.liveness,
      unknownWorkerHeartbeat: o["register-unknown"] ? "register" : "ignore",
    });
    ctx.onShutdown(() => pirate.close());
    pirate.on("workerReady", ({ worker }) =>
      ctx.logger.info(`worker ready ${describeIdentity(worker)}`),
    );
    pirate.on("workerExpired", ({ worker, busy }) =>
      ctx.logger.warn(`worker expired ${describeIdentity(worker)}${busy ? " (while busy)" : ""}`),
    );
    pirate.on("requestDispatched", ({ worker }) =>
      ctx.logger.debug(`request sent to ${describeIdentity(worker)}`),
    );
    pirate.on("dropped", ({ reason, side, from }) =>
      ctx.logger.warn(`dropped message from ${side} ${describeIdentity(from)}: ${reason}`),
    );
    if (o["stats-interval"] > 0) {
      const timer = setInterval(
        () => ctx.print(`stats ${JSON.stringify(pirate.stats())}`),
        o["stats-interval"],
      );
      ctx.onShutdown(() => clearInterval(timer));
    }
    const { frontend, backend } = pirate.endpoints;
    ctx.ready(`frontend ${frontend}, backend ${backend}`);
  },
});

const worker = defineCommand({
  description: "run a 6/PPP echo worker that heartbeats and reconnects with back-off (ppworker)",
  options: {
    connect: connectOption(DEFAULT_WORKER_ENDPOINT, "the queue's backend"),
    ...heartbeatOptions,
    "reconnect-initial": {
      type: "number",
      min: 1,
      default: DEFAULT_RECONNECT_INITIAL_MS,
      placeholder: "ms",
      description: "first reconnect delay",
    },
    "reconnect-max": {
      type: "number",
      min: 1,
      default: DEFAULT_RECONNECT_MAX_MS,
      placeholder: "ms",
      description: "cap of the doubling reconnect delay",
    },
    identity: {
      type: "string",
      placeholder: "id",
      description: "routing identity (default: chosen by ZeroMQ)",
    },
    ...faultCliOptions,
  },
  async run(ctx) {
    const o = ctx.options;
    const pirate = await ParanoidPirateWorker.start({
      endpoint: o.connect,
      heartbeatIntervalMs: o["heartbeat-interval"],
      liveness: o.liveness,
      reconnectInitialMs: o["reconnect-initial"],
      reconnectMaxMs: o["reconnect-max"],
      ...(o.identity ? { identity: o.identity } : {}),
      simulate: faultSimulatorFromCli(o),
    });
    ctx.onShutdown(() => pirate.close());
    pirate.on("connected", ({ attempt }) => {
      if (attempt > 1) ctx.logger.info(`reconnected to ${o.connect}, READY sent`);
    });
    pirate.on("request", ({ body, kind }) => {
      if (kind === "normal") ctx.logger.info(`normal reply (${body.map(String).join("|")})`);
      if (kind === "slow") ctx.logger.warn("simulating CPU overload");
    });
    pirate.on("disconnected", ({ delayMs }) =>
      ctx.logger.warn(`heartbeat failure, can't reach queue; reconnecting in ${delayMs} ms`),
    );
    pirate.on("dropped", ({ reason }) => ctx.logger.warn(`invalid message from queue: ${reason}`));
    pirate.on("crash", () => {
      ctx.logger.warn("simulating a crash");
      process.exit(1);
    });
    ctx.ready(`connected to ${o.connect}`);
  },
});

process.exitCode = await runCli({
  name: "paranoid-pirate",
  version,
  description: "Paranoid Pirate (RFC 6/PPP): a reliable queue with heartbeating workers",
  commands: { queue, worker },
});
