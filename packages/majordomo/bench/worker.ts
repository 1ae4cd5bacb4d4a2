// Peer of broker.bench.ts: one MDP/0.1 MajordomoWorker with an immediate echo handler, in its own
// process. Usage: worker.ts <broker endpoint> <service>. Prints `ready` once it has connected and
// sent READY (the broker's `worker ready` line tells when it registered). (The package's `worker`
// command would do, but it logs a line for every request it answers.)
import { announceReady } from "@zmq-patterns/bench-kit";
import { MajordomoWorker } from "../src/index.js";

const [broker, service] = process.argv.slice(2);
if (broker === undefined || service === undefined) {
  console.error("usage: worker.ts <broker endpoint> <service>");
  process.exit(2);
}

const worker = await MajordomoWorker.start({ broker, service, handler: (body) => body });
worker.on("disconnected", ({ reason, delayMs }) =>
  console.error(`left the broker (${reason}), registering again in ${delayMs} ms`),
);
announceReady("", () => worker.close());
