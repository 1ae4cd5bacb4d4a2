/**
 * The `lazy-pirate` bin: `lazy-pirate client` and `lazy-pirate server`.
 * @module
 */
import { createRequire } from "node:module";
import {
  bindOption,
  connectOption,
  defineCommand,
  faultCliOptions,
  faultSimulatorFromCli,
  isZmqPatternsError,
  runCli,
} from "@zmq-patterns/core";
import {
  DEFAULT_CLIENT_ENDPOINT,
  DEFAULT_RETRIES,
  DEFAULT_SERVER_BIND,
  DEFAULT_TIMEOUT_MS,
  LazyPirateClient,
  LazyPirateServer,
} from "./index.js";

const { version } = createRequire(import.meta.url)("../package.json") as { version: string };

const client = defineCommand({
  description: "send numbered requests, retrying through timeouts, as the Guide's lpclient",
  options: {
    connect: connectOption(DEFAULT_CLIENT_ENDPOINT, "server endpoint"),
    timeout: {
      type: "number",
      min: 1,
      default: DEFAULT_TIMEOUT_MS,
      placeholder: "ms",
      description: "time to wait for each reply",
    },
    retries: {
      type: "number",
      min: 1,
      integer: true,
      default: DEFAULT_RETRIES,
      placeholder: "n",
      description: "sends per request before abandoning",
    },
    count: {
      type: "number",
      integer: true,
      default: 0,
      placeholder: "n",
      description: "requests to send, 0 for no limit",
    },
  },
  async run(ctx) {
    const { connect, timeout, retries, count } = ctx.options;
    const pirate = new LazyPirateClient({
      endpoint: connect,
      timeoutMs: timeout,
      retries,
      // The server must echo the sequence number: anything else is a malformed reply.
      validateReply: (reply, request) =>
        reply.length === 1 && reply[0]?.equals(request[0] as Buffer) === true,
    });
    ctx.onShutdown(() => pirate.close());
    pirate.on("sent", ({ attempt, request }) => {
      if (attempt > 1) ctx.logger.info(`resending request ${request[0]} (attempt ${attempt})`);
    });
    pirate.on("retry", () => ctx.logger.warn("no response from server, retrying"));
    pirate.on("invalidReply", ({ reply }) =>
      ctx.logger.warn(`malformed reply from server: ${reply.map(String).join("|")}`),
    );
    ctx.ready(`connecting to ${connect}`);
    for (let sequence = 1; count === 0 || sequence <= count; sequence++) {
      if (ctx.signal.aborted) return;
      try {
        await pirate.request(String(sequence), { signal: ctx.signal });
        ctx.logger.info(`server replied OK (${sequence})`);
      } catch (error) {
        if (ctx.signal.aborted) return;
        if (isZmqPatternsError(error, "TIMEOUT"))
          ctx.logger.error("server seems to be offline, abandoning");
        await pirate.close();
        throw error;
      }
    }
    await pirate.close();
  },
});

const server = defineCommand({
  description:
    "echo requests on a REP socket, optionally simulating crashes and overload (lpserver)",
  options: {
    bind: bindOption(DEFAULT_SERVER_BIND),
    ...faultCliOptions,
  },
  async run(ctx) {
    const pirate = await LazyPirateServer.start({
      bind: ctx.options.bind,
      simulate: faultSimulatorFromCli(ctx.options),
    });
    ctx.onShutdown(() => pirate.close());
    pirate.on("request", ({ cycle, request, kind }) => {
      if (kind === "normal")
        ctx.logger.info(`normal request (${request.map(String).join("|")})`, { cycle });
      if (kind === "slow") ctx.logger.warn("simulating CPU overload", { cycle });
    });
    pirate.on("crash", () => {
      ctx.logger.warn("simulating a crash");
      process.exit(1);
    });
    ctx.ready(`bound ${pirate.endpoint}`);
  },
});

process.exitCode = await runCli({
  name: "lazy-pirate",
  version,
  description: "Lazy Pirate: reliable request-reply from the client side",
  commands: { client, server },
});
