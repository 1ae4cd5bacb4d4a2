/**
 * The `clone` bin: `clone server [--primary | --backup]` (the Guide's clonesrv5/clonesrv6) and
 * `clone client` (watch the map, set or delete keys, or write random updates as clonecli6).
 * @module
 */

import { randomInt } from "node:crypto";
import { createRequire } from "node:module";
import { defineCommand, InvalidArgumentError, runCli, sleep } from "@zmq-patterns/core";
import {
  CloneClient,
  CloneServer,
  DEFAULT_BACKUP_PORT,
  DEFAULT_PRIMARY_PORT,
  DEFAULT_SERVERS,
} from "./index.js";

const { version } = createRequire(import.meta.url)("../package.json") as { version: string };

/** Exit status of a server stopped by a broken pair (split brain). */
const EXIT_FATAL = 3;

const portOption = (description: string) =>
  ({ type: "number", integer: true, min: 1, placeholder: "port", description }) as const;
const endpointOption = (description: string) =>
  ({ type: "string", endpoint: true, placeholder: "endpoint", description }) as const;

const server = defineCommand({
  description: "run a Clone server: standalone, or one of a Binary Star pair (clonesrv6)",
  options: {
    primary: { type: "boolean", short: "p", description: "run as the primary of a pair" },
    backup: { type: "boolean", short: "b", description: "run as the backup of a pair" },
    port: portOption(
      `base port P: snapshots P, updates P+1, collector P+2 (default: ${DEFAULT_PRIMARY_PORT}, backup ${DEFAULT_BACKUP_PORT})`,
    ),
    host: {
      type: "string",
      default: "tcp://*",
      placeholder: "tcp://host",
      description: "host part of the bound endpoints",
    },
    "peer-snapshot": endpointOption(
      "pair: the peer's snapshot endpoint (default: localhost, peer's P)",
    ),
    "peer-publisher": endpointOption(
      "pair: the peer's publisher endpoint (default: localhost, peer's P+1)",
    ),
    local: endpointOption(
      "pair: this server's Binary Star state endpoint (default: tcp://*:5003, backup :5004)",
    ),
    remote: endpointOption(
      "pair: the peer's Binary Star state endpoint (default: tcp://localhost:5004, backup :5003)",
    ),
    "heartbeat-interval": {
      type: "number",
      min: 1,
      placeholder: "ms",
      description: "pair: Binary Star heartbeat, same on both servers (default: 1000)",
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
    if (o.primary && o.backup)
      throw new InvalidArgumentError("give at most one of --primary and --backup");
    const role = o.primary ? "primary" : o.backup ? "backup" : undefined;
    if (role === undefined && (o["peer-snapshot"] || o["peer-publisher"] || o.local || o.remote)) {
      throw new InvalidArgumentError("peer and state endpoints need --primary or --backup");
    }
    const clone = await CloneServer.start({
      ...(role ? { role } : {}),
      ...(o.port !== undefined ? { port: o.port } : {}),
      host: o.host,
      ...(o["peer-snapshot"] || o["peer-publisher"]
        ? {
            peer: {
              ...(o["peer-snapshot"] ? { snapshot: o["peer-snapshot"] } : {}),
              ...(o["peer-publisher"] ? { publisher: o["peer-publisher"] } : {}),
            },
          }
        : {}),
      ...(o.local ? { localState: o.local } : {}),
      ...(o.remote ? { remoteState: o.remote } : {}),
      ...(o["heartbeat-interval"] !== undefined
        ? { heartbeatIntervalMs: o["heartbeat-interval"] }
        : {}),
    });
    ctx.onShutdown(() => clone.close());
    clone.on("mode", ({ mode, state }) => ctx.logger.info(`${mode} (${state})`));
    clone.on("synced", ({ keys, sequence }) =>
      ctx.logger.info(`synchronised from the active: ${keys} keys, sequence ${sequence}`),
    );
    clone.on("update", ({ key, sequence, deleted, reason }) =>
      ctx.logger.debug(`${reason} ${key} #${sequence}${deleted ? " (deleted)" : ""}`),
    );
    clone.on("snapshot", ({ keys, subtree }) =>
      ctx.logger.debug(`snapshot of ${keys} keys${subtree ? ` under ${subtree}` : ""}`),
    );
    clone.on("dropped", ({ reason, socket }) =>
      ctx.logger.warn(`dropped message on ${socket}: ${reason}`),
    );
    clone.on("fatal", (error) => {
      ctx.logger.error(error.message);
      void clone.close().then(() => process.exit(EXIT_FATAL));
    });
    if (o["stats-interval"] > 0) {
      const timer = setInterval(
        () => ctx.print(`stats ${JSON.stringify(clone.stats())}`),
        o["stats-interval"],
      );
      ctx.onShutdown(() => clearInterval(timer));
    }
    // A standalone server is active from start(), before the listener above existed.
    if (role === undefined) ctx.logger.info(`${clone.mode} (STANDALONE)`);
    const { snapshot, publisher, collector } = clone.endpoints;
    ctx.ready(
      `${role ?? "standalone"}, snapshot ${snapshot}, publisher ${publisher}, collector ${collector}`,
    );
  },
});

const client = defineCommand({
  description:
    "follow a Clone map: print it and its changes, set or delete keys, or write random updates",
  positionals: [
    {
      name: "server...",
      description: `servers as tcp://host:port (default: ${DEFAULT_SERVERS.join(" ")})`,
    },
  ],
  options: {
    subtree: {
      type: "string",
      default: "",
      placeholder: "prefix",
      description: "follow only keys under this prefix",
    },
    set: {
      type: "string",
      placeholder: "key=value",
      description: "set one key, wait for the server's confirmation, exit",
    },
    delete: {
      type: "string",
      placeholder: "key",
      description: "delete one key, wait for confirmation, exit",
    },
    ttl: {
      type: "number",
      default: 0,
      placeholder: "s",
      description: "with --set: seconds until the value expires (0: never)",
    },
    dump: { type: "boolean", description: "print the whole map once synchronised, then exit" },
    random: {
      type: "boolean",
      description:
        "every --interval ms set a random key under the subtree to a random value (clonecli6)",
    },
    interval: {
      type: "number",
      default: 1000,
      min: 1,
      placeholder: "ms",
      description: "with --random: pause between updates",
    },
    quiet: { type: "boolean", short: "q", description: "do not print every change" },
    "server-ttl": {
      type: "number",
      min: 1,
      placeholder: "ms",
      description: "silence before failing over (default: 5000)",
    },
  },
  async run(ctx) {
    const o = ctx.options;
    const actions = [o.set !== undefined, o.delete !== undefined, o.dump, o.random].filter(
      Boolean,
    ).length;
    if (actions > 1)
      throw new InvalidArgumentError("give at most one of --set, --delete, --dump and --random");
    // Checked before connecting: a usage error must not wait for a server.
    const at = o.set?.indexOf("=") ?? -1;
    if (o.set !== undefined && at <= 0)
      throw new InvalidArgumentError(`--set needs key=value, got "${o.set}"`);
    const map = new CloneClient({
      ...(ctx.positionals.length > 0 ? { servers: ctx.positionals } : {}),
      subtree: o.subtree,
      ...(o["server-ttl"] !== undefined ? { serverTtlMs: o["server-ttl"] } : {}),
    });
    ctx.onShutdown(() => map.close());
    map.on("failover", ({ from, to, reason }) =>
      ctx.logger.warn(`${reason} (${from}), failing over to ${to}`),
    );
    map.on("synced", ({ server: from, keys, sequence }) =>
      ctx.logger.info(`synchronised from ${from}: ${keys} keys, sequence ${sequence}`),
    );
    map.on("gap", ({ expected, got }) =>
      ctx.logger.warn(`missed updates (expected #${expected}, got #${got}), resynchronising`),
    );
    ctx.ready(`servers ${map.servers.join(", ")}${o.subtree ? `, subtree ${o.subtree}` : ""}`);
    try {
      await map.synced();
    } catch {
      return; // closed by a signal
    }
    if (o.set !== undefined) {
      await map.set(
        o.set.slice(0, at),
        o.set.slice(at + 1),
        o.ttl > 0 ? { ttlMs: o.ttl * 1000 } : {},
      );
      ctx.print(`set ${o.set.slice(0, at)}`);
      await map.close();
      return;
    }
    if (o.delete !== undefined) {
      await map.delete(o.delete);
      ctx.print(`deleted ${o.delete}`);
      await map.close();
      return;
    }
    if (o.dump) {
      for (const [key, value] of [...map.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
        ctx.print(`${key}=${value.toString("utf8")}`);
      }
      ctx.print(`keys ${map.size} sequence ${map.sequence}`);
      await map.close();
      return;
    }
    if (!o.quiet) {
      map.on("change", ({ key, value, sequence }) =>
        ctx.print(
          value === undefined
            ? `#${sequence} ${key} deleted`
            : `#${sequence} ${key}=${value.toString("utf8")}`,
        ),
      );
    }
    if (!o.random) return; // watch until interrupted
    while (!ctx.signal.aborted) {
      const key = `${o.subtree}${randomInt(10_000)}`;
      const ttl = randomInt(30);
      map
        .set(key, String(randomInt(1_000_000)), ttl > 0 ? { ttlMs: ttl * 1000 } : {})
        .catch((error: Error) => {
          if (!ctx.signal.aborted)
            ctx.logger.warn(`update of ${key} not confirmed: ${error.message}`);
        });
      try {
        await sleep(o.interval, { signal: ctx.signal });
      } catch {
        return;
      }
    }
  },
});

process.exitCode = await runCli({
  name: "clone",
  version,
  description: "Clone (RFC 12/CHP): a key-value map shared through a server or a Binary Star pair",
  commands: { server, client },
});
