// Peer of queue.bench.ts: one Paranoid Pirate worker with an immediate echo handler, in its own
// process. Usage: worker.ts <queue backend endpoint> <heartbeat interval ms>. Prints `ready` once
// it has connected and sent READY. (The package's `worker` command would do, but it logs a line
// for every request it answers, which would be what the benchmark measures.)
import { announceReady } from "@zmq-patterns/bench-kit";
import { ParanoidPirateWorker } from "../src/index.js";

const [endpoint, interval] = process.argv.slice(2);
if (endpoint === undefined || interval === undefined) {
  console.error("usage: worker.ts <queue backend endpoint> <heartbeat interval ms>");
  process.exit(2);
}

const worker = await ParanoidPirateWorker.start({
  endpoint,
  heartbeatIntervalMs: Number(interval),
  handler: (body) => body,
});
worker.on("disconnected", ({ delayMs }) =>
  console.error(`lost the queue, reconnecting in ${delayMs} ms`),
);
announceReady("", () => worker.close());
