// Peer of titanic.bench.ts: one MajordomoWorker with an immediate echo handler, in its own
// process. Usage: worker.ts <broker endpoint> <service>. Prints `ready` once it has connected and
// sent READY (the broker's `worker ready` line tells when it registered). It serves both the
// requests Titanic dispatches and the plain Majordomo baseline.
import { announceReady } from "@zmq-patterns/bench-kit";
import { MajordomoWorker } from "@zmq-patterns/majordomo";

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
