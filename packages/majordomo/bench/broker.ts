// Peer of broker.bench.ts: a MajordomoBroker with the package's defaults, bound to
// tcp://127.0.0.1:* (the package's `broker` command would do, but its event listeners format a
// log line for every request, which would be part of what is measured). Prints `ready <endpoint>`,
// then `worker ready <service>` as each worker registers and, on SIGUSR2, `cpu <µs> <replies>`: the
// process's CPU time so far (user + system, `process.cpuUsage()`) and the replies it forwarded, so
// the benchmark can take the broker's CPU time per request over any interval.
import { announceReady } from "@zmq-patterns/bench-kit";
import { MajordomoBroker } from "../src/index.js";

const broker = await MajordomoBroker.start({ bind: "tcp://127.0.0.1:*" });
broker.on("workerReady", ({ service }) => console.log(`worker ready ${service}`));
broker.on("workerExpired", ({ service }) => console.error(`a worker of ${service} expired`));
process.on("SIGUSR2", () => {
  const { user, system } = process.cpuUsage();
  console.log(`cpu ${user + system} ${broker.stats().repliesOut}`);
});
announceReady(broker.endpoints[0], () => broker.close());
