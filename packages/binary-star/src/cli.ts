/**
 * The `binary-star` bin: `binary-star server --primary | --backup` (an echo service, the Guide's
 * bstarsrv2) and `binary-star client` (the Guide's bstarcli).
 * @module
 */
import { createRequire } from "node:module";
import {
  connectOption,
  defineCommand,
  describeIdentity,
  InvalidArgumentError,
  ProtocolError,
  runCli,
  sleep,
} from "@zmq-patterns/core";
import {
  BinaryStar,
  BinaryStarClient,
  DEFAULT_BACKUP_ENDPOINTS,
  DEFAULT_CLIENT_ENDPOINTS,
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_PRIMARY_ENDPOINTS,
  DEFAULT_REQUEST_INTERVAL_MS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  DEFAULT_SETTLE_DELAY_MS,
  decodeSequence,
  encodeSequence,
} from "./index.js";

const { version } = createRequire(import.meta.url)("../package.json") as { version: string };

/** Exit status of a server stopped by a broken pair (the reference exits 0: fix 1.11.6). */
const EXIT_FATAL = 3;

const roleEndpoint = (description: string, primary: string, backup: string) =>
  ({
    type: "string",
    endpoint: true,
    placeholder: "endpoint",
    description: `${description} (default: ${primary} primary, ${backup} backup)`,
  }) as const;

const server = defineCommand({
  description: "run one server of the pair, an echo service (bstarsrv2)",
  options: {
    primary: { type: "boolean", short: "p", description: "run as the primary" },
    backup: { type: "boolean", short: "b", description: "run as the backup" },
    voter: roleEndpoint(
      "endpoint for clients (the voter)",
      DEFAULT_PRIMARY_ENDPOINTS.frontend,
      DEFAULT_BACKUP_ENDPOINTS.frontend,
    ),
    local: roleEndpoint(
      "endpoint to publish this server's state on",
      DEFAULT_PRIMARY_ENDPOINTS.localState,
      DEFAULT_BACKUP_ENDPOINTS.localState,
    ),
    remote: roleEndpoint(
      "the peer's state endpoint",
      DEFAULT_PRIMARY_ENDPOINTS.remoteState,
      DEFAULT_BACKUP_ENDPOINTS.remoteState,
    ),
    "heartbeat-interval": {
      type: "number",
      min: 1,
      default: DEFAULT_HEARTBEAT_INTERVAL_MS,
      placeholder: "ms",
      description: "interval between state messages (both servers must agree)",
    },
    "peer-expiry": {
      type: "number",
      min: 1,
      placeholder: "ms",
      description: "peer silence before a client vote fails over (default: 2 x heartbeat)",
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
    if (o.primary === o.backup) {
      throw new InvalidArgumentError("give exactly one of --primary (-p) and --backup (-b)");
    }
    const role = o.primary ? "primary" : "backup";
    const bstar = await BinaryStar.start({
      role,
      ...(o.voter ? { voter: o.voter } : {}),
      ...(o.local ? { localState: o.local } : {}),
      ...(o.remote ? { remoteState: o.remote } : {}),
      heartbeatIntervalMs: o["heartbeat-interval"],
      ...(o["peer-expiry"] !== undefined ? { peerExpiryMs: o["peer-expiry"] } : {}),
      // The echo service answers REQ clients: [identity]["" ][body...].
      validateRequest: (message) => {
        if (message.length < 3 || message[1]?.byteLength !== 0) {
          throw new ProtocolError("not a request envelope");
        }
      },
      handler: (message, voter) => {
        ctx.logger.debug(`echo to ${describeIdentity(message[0] ?? "")}`);
        voter.send(message);
      },
    });
    ctx.onShutdown(() => bstar.close());
    bstar.on("state", ({ to, reason }) =>
      ctx.logger.info(`${reason}, ready as ${to.toLowerCase()}`),
    );
    bstar.on("misconfigured", ({ peerState }) =>
      ctx.logger.warn(`misconfigured pair: the peer is also in state ${peerState}`),
    );
    bstar.on("rejected", ({ state }) =>
      ctx.logger.debug(`request rejected (state ${state}): no reply`),
    );
    bstar.on("dropped", ({ reason, side, from }) =>
      ctx.logger.warn(
        `dropped message from ${side}${from ? ` ${describeIdentity(from)}` : ""}: ${reason}`,
      ),
    );
    bstar.on("fatal", (error) => {
      ctx.logger.error(`${error.message} (we were ${error.state}, peer says ${error.peerState})`);
      void bstar.close().then(() => process.exit(EXIT_FATAL));
    });
    if (o["stats-interval"] > 0) {
      const timer = setInterval(
        () => ctx.print(`stats ${JSON.stringify(bstar.stats())}`),
        o["stats-interval"],
      );
      ctx.onShutdown(() => clearInterval(timer));
    }
    const { voter, localState, remoteState } = bstar.endpoints;
    ctx.ready(`${role}, voter ${voter}, state ${localState}, peer ${remoteState}`);
  },
});

const client = defineCommand({
  description: "send numbered requests, failing over between the servers (bstarcli)",
  options: {
    "primary-server": connectOption(DEFAULT_CLIENT_ENDPOINTS[0] as string, "the primary's voter"),
    "backup-server": connectOption(DEFAULT_CLIENT_ENDPOINTS[1] as string, "the backup's voter"),
    timeout: {
      type: "number",
      min: 1,
      default: DEFAULT_REQUEST_TIMEOUT_MS,
      placeholder: "ms",
      description: "wait for a reply before failing over",
    },
    "settle-delay": {
      type: "number",
      default: DEFAULT_SETTLE_DELAY_MS,
      placeholder: "ms",
      description: "pause before trying the other server (>= the servers' peer expiry)",
    },
    interval: {
      type: "number",
      default: DEFAULT_REQUEST_INTERVAL_MS,
      placeholder: "ms",
      description: "pause after each reply",
    },
    requests: {
      type: "number",
      integer: true,
      default: 0,
      placeholder: "n",
      description: "stop after this many replies (0: run until interrupted)",
    },
  },
  async run(ctx) {
    const o = ctx.options;
    const pair = new BinaryStarClient({
      endpoints: [o["primary-server"], o["backup-server"]],
      timeoutMs: o.timeout,
      settleDelayMs: o["settle-delay"],
      validateReply: (reply, request) => reply[0]?.equals(request[0] ?? Buffer.alloc(0)) === true,
    });
    ctx.onShutdown(() => pair.close());
    pair.on("failover", ({ from, to }) =>
      ctx.logger.warn(`no reply from ${from}, failing over to ${to}`),
    );
    pair.on("invalidReply", ({ reply }) =>
      ctx.logger.warn(`bad reply (${reply.map(String).join("|")})`),
    );
    ctx.ready(`servers ${pair.endpoints.join(", ")}`);
    for (let sequence = 1; o.requests === 0 || sequence <= o.requests; sequence++) {
      let reply: Buffer[];
      try {
        reply = await pair.request(encodeSequence(sequence), { signal: ctx.signal });
      } catch (error) {
        if (ctx.signal.aborted) return;
        throw error;
      }
      ctx.print(`reply ${decodeSequence(reply)} from ${pair.endpoint}`);
      if (o.requests !== 0 && sequence === o.requests) break;
      try {
        await sleep(o.interval, { signal: ctx.signal });
      } catch {
        return;
      }
    }
    await pair.close();
  },
});

process.exitCode = await runCli({
  name: "binary-star",
  version,
  description: "Binary Star: a primary/backup pair with client-voted failover",
  commands: { server, client },
});
