/**
 * The `freelance` bin: `freelance server --model N` (the Guide's flserver1/2/3) and
 * `freelance client --model N ENDPOINT...` (flclient1/2/3).
 * @module
 */
import { createRequire } from "node:module";
import {
  bindOption,
  defineCommand,
  InvalidArgumentError,
  isZmqPatternsError,
  runCli,
  sleep,
} from "@zmq-patterns/core";
import {
  DEFAULT_SERVER_ENDPOINT,
  FreelanceClient,
  type FreelanceModel,
  FreelanceServer,
} from "./index.js";

const { version } = createRequire(import.meta.url)("../package.json") as { version: string };

const modelOption = {
  type: "number",
  integer: true,
  min: 1,
  placeholder: "1|2|3",
  description: "the Freelance model (required; clients and servers must agree)",
} as const;

function checkModel(value: number | undefined): FreelanceModel {
  if (value !== 1 && value !== 2 && value !== 3) {
    throw new InvalidArgumentError(
      value === undefined
        ? "--model is required (1, 2 or 3)"
        : `--model must be 1, 2 or 3, got ${value}`,
    );
  }
  return value;
}

const server = defineCommand({
  description: "run a Freelance server: model 1 echoes, models 2 and 3 answer OK",
  options: {
    model: modelOption,
    bind: bindOption(DEFAULT_SERVER_ENDPOINT, "endpoint to bind"),
    identity: {
      type: "string",
      placeholder: "endpoint",
      description:
        "model 3: the identity clients address, the public endpoint (default: the bind endpoint, * read as localhost)",
    },
    delay: {
      type: "number",
      default: 0,
      placeholder: "ms",
      description: "answer each request this much later (to show slow servers)",
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
    const model = checkModel(o.model);
    const delay = o.delay;
    const freelance = await FreelanceServer.start({
      model,
      bind: o.bind,
      ...(o.identity !== undefined ? { identity: o.identity } : {}),
      ...(delay > 0
        ? {
            handler: async (body: Buffer[]) => {
              await sleep(delay);
              return model === 1 ? body : ["OK"];
            },
          }
        : {}),
    });
    ctx.onShutdown(() => freelance.close());
    freelance.on("dropped", ({ reason }) => ctx.logger.warn(`dropped message: ${reason}`));
    freelance.on("reply", () => ctx.logger.debug("request answered"));
    if (o["stats-interval"] > 0) {
      const timer = setInterval(
        () => ctx.print(`stats ${JSON.stringify(freelance.stats())}`),
        o["stats-interval"],
      );
      ctx.onShutdown(() => clearInterval(timer));
    }
    const identity = freelance.identity === undefined ? "" : `, identity ${freelance.identity}`;
    ctx.ready(`model ${model}, endpoint ${freelance.endpoint}${identity}`);
  },
});

const client = defineCommand({
  description: "send requests to a pool of Freelance servers and report round trips",
  positionals: [{ name: "endpoint...", description: "the servers, in order of preference" }],
  options: {
    model: modelOption,
    requests: {
      type: "number",
      integer: true,
      default: 1,
      placeholder: "n",
      description: "requests to make (0: until interrupted)",
    },
    interval: {
      type: "number",
      default: 0,
      placeholder: "ms",
      description: "pause between requests",
    },
    timeout: {
      type: "number",
      min: 1,
      placeholder: "ms",
      description: "give up on a request after this long (default: the model's)",
    },
    "attempt-timeout": {
      type: "number",
      min: 1,
      placeholder: "ms",
      description:
        "models 1 and 3: time one server gets before the request moves on (default: model 1 1000, model 3 the timeout / servers)",
    },
    "ping-interval": {
      type: "number",
      min: 1,
      placeholder: "ms",
      description: "model 3: ping a silent server this often (default: 2000)",
    },
    "server-ttl": {
      type: "number",
      min: 1,
      placeholder: "ms",
      description: "model 3: a server silent this long counts as gone (default: 6000)",
    },
    body: {
      type: "string",
      default: "random name",
      placeholder: "text",
      description: "the request body",
    },
  },
  async run(ctx) {
    const o = ctx.options;
    const model = checkModel(o.model);
    if (ctx.positionals.length === 0) {
      throw new InvalidArgumentError("give at least one server endpoint");
    }
    const freelance = new FreelanceClient({
      model,
      endpoints: ctx.positionals,
      ...(o.timeout !== undefined ? { timeoutMs: o.timeout } : {}),
      ...(o["attempt-timeout"] !== undefined ? { attemptTimeoutMs: o["attempt-timeout"] } : {}),
      ...(o["ping-interval"] !== undefined ? { pingIntervalMs: o["ping-interval"] } : {}),
      ...(o["server-ttl"] !== undefined ? { serverTtlMs: o["server-ttl"] } : {}),
    });
    ctx.onShutdown(() => freelance.close());
    freelance.on("failover", ({ sequence, from, reason }) =>
      ctx.logger.info(`request ${sequence}: ${from} ${reason}, trying another server`),
    );
    freelance.on("serverUp", ({ endpoint }) => ctx.logger.info(`server ${endpoint} is up`));
    freelance.on("serverDown", ({ endpoint }) => ctx.logger.warn(`server ${endpoint} is gone`));
    ctx.ready(`model ${model}, servers ${ctx.positionals.join(", ")}`);
    let ok = 0;
    let failed = 0;
    let totalMs = 0;
    for (let n = 1; o.requests === 0 || n <= o.requests; n++) {
      const started = performance.now();
      try {
        const reply = await freelance.request(o.body, { signal: ctx.signal });
        const ms = performance.now() - started;
        totalMs += ms;
        ok += 1;
        ctx.print(`request ${n} ok in ${ms.toFixed(1)} ms: ${reply.map(String).join("|")}`);
      } catch (error) {
        if (ctx.signal.aborted) break;
        if (!isZmqPatternsError(error, "TIMEOUT")) throw error;
        failed += 1;
        ctx.print(`request ${n} failed: ${error.message}`);
      }
      if (o.interval > 0 && (o.requests === 0 || n < o.requests)) {
        try {
          await sleep(o.interval, { signal: ctx.signal });
        } catch {
          break;
        }
      }
    }
    const average = ok > 0 ? `, average round trip ${((totalMs * 1000) / ok).toFixed(0)} us` : "";
    ctx.print(`done: ${ok} ok, ${failed} failed${average}`);
    await freelance.close();
    if (failed > 0) throw new Error(`${failed} of ${ok + failed} request(s) failed`);
  },
});

process.exitCode = await runCli({
  name: "freelance",
  version,
  description: "Freelance (RFC 10/FLP): reliable request-reply over a pool of servers, no broker",
  commands: { server, client },
});
