/**
 * The `simple-pirate` bin: `simple-pirate queue` and `simple-pirate worker`.
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
  DEFAULT_BACKEND_BIND,
  DEFAULT_FRONTEND_BIND,
  DEFAULT_WORKER_ENDPOINT,
  SimplePirateQueue,
  SimplePirateWorker,
} from "./index.js";

const { version } = createRequire(import.meta.url)("../package.json") as { version: string };

const queue = defineCommand({
  description: "load-balance client requests over ready workers, as the Guide's spqueue",
  options: {
    frontend: bindOption(DEFAULT_FRONTEND_BIND, "endpoint to bind for clients"),
    backend: bindOption(DEFAULT_BACKEND_BIND, "endpoint to bind for workers"),
    "stats-interval": {
      type: "number",
      min: 1,
      placeholder: "ms",
      description: "log the queue's counts at this interval (default: never)",
    },
  },
  async run(ctx) {
    const pirate = await SimplePirateQueue.start({
      frontend: ctx.options.frontend,
      backend: ctx.options.backend,
    });
    const interval = ctx.options["stats-interval"];
    const timer =
      interval === undefined
        ? undefined
        : setInterval(() => ctx.logger.info("stats", { ...pirate.stats() }), interval);
    ctx.onShutdown(async () => {
      clearInterval(timer);
      await pirate.close();
    });
    pirate.on("workerReady", ({ worker, workersReady }) =>
      ctx.logger.info("worker ready", { worker: describeIdentity(worker), workersReady }),
    );
    pirate.on("requestDispatched", ({ worker, workersReady }) =>
      ctx.logger.info("request dispatched", { worker: describeIdentity(worker), workersReady }),
    );
    pirate.on("replyForwarded", ({ worker }) =>
      ctx.logger.debug("reply forwarded", { worker: describeIdentity(worker) }),
    );
    pirate.on("dropped", ({ reason, from }) =>
      ctx.logger.warn("dropped message", { reason, from: describeIdentity(from) }),
    );
    const { frontend, backend } = pirate.endpoints;
    ctx.ready(`frontend ${frontend}, backend ${backend}`);
  },
});

const worker = defineCommand({
  description:
    "echo requests from the queue on a REQ socket, optionally simulating crashes and overload (spworker)",
  options: {
    connect: connectOption(DEFAULT_WORKER_ENDPOINT, "queue backend endpoint"),
    identity: {
      type: "string",
      placeholder: "id",
      description: 'routing identity (default: random, such as "1A2B-3C4D")',
    },
    ...faultCliOptions,
  },
  async run(ctx) {
    const pirate = await SimplePirateWorker.start({
      endpoint: ctx.options.connect,
      ...(ctx.options.identity === undefined ? {} : { identity: ctx.options.identity }),
      simulate: faultSimulatorFromCli(ctx.options),
    });
    ctx.onShutdown(() => pirate.close());
    pirate.on("request", ({ cycle, body, kind }) => {
      if (kind === "normal")
        ctx.logger.info(`normal request (${body.map(String).join("|")})`, { cycle });
      if (kind === "slow") ctx.logger.warn("simulating CPU overload", { cycle });
    });
    pirate.on("restart", ({ reason, identity }) =>
      ctx.logger.warn("dropped a request and reconnected", { reason, identity }),
    );
    pirate.on("crash", () => {
      ctx.logger.warn("simulating a crash");
      process.exit(1);
    });
    ctx.ready(`${pirate.identity} connecting to ${pirate.endpoint}`);
  },
});

process.exitCode = await runCli({
  name: "simple-pirate",
  version,
  description: "Simple Pirate: a queue that load-balances requests over workers",
  commands: { queue, worker },
});
