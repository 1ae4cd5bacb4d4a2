// Peer of titanic.bench.ts: a TitanicServer with the package's defaults (a FileStore with fsync
// on, MMI check on), in its own process. Usage: titanic.ts <broker endpoint> <dir>. Garbage
// collection is off, so nothing but the benchmark's own requests touches the store. Prints
// `ready` once its three services are registered with the broker (start resolves after their
// READY), and on SIGUSR2 one line `stats <json>` with its counters, so the benchmark can check
// that no request was sent twice.
import { announceReady } from "@zmq-patterns/bench-kit";
import { TitanicServer } from "../src/index.js";

const [broker, dir] = process.argv.slice(2);
if (broker === undefined || dir === undefined) {
  console.error("usage: titanic.ts <broker endpoint> <dir>");
  process.exit(2);
}

const titanic = await TitanicServer.start({ broker, dir, collect: false });
titanic.on("storageError", ({ operation, error }) =>
  console.error(`storage error in ${operation}: ${String(error)}`),
);
titanic.on("attemptTimedOut", ({ service, attempt, timeoutMs }) =>
  console.error(`${service}: attempt ${attempt} timed out after ${timeoutMs} ms`),
);
process.on("SIGUSR2", () => {
  const { stored, closed, completed, attempts, timeouts, lateReplies, storageErrors, pending } =
    titanic.stats();
  const stats = {
    stored,
    closed,
    completed,
    attempts,
    timeouts,
    lateReplies,
    storageErrors,
    pending,
  };
  console.log(`stats ${JSON.stringify(stats)}`);
});
announceReady("", () => titanic.close());
