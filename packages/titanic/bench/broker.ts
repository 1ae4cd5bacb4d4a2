// Peer of titanic.bench.ts: a MajordomoBroker with the package's defaults, bound to
// tcp://127.0.0.1:*, without a log line per request (the `broker` command of
// @zmq-patterns/majordomo formats one, which would be part of what is measured). Prints
// `ready <endpoint>`, then `worker ready <service>` as each worker registers: Titanic's three
// services and the echo worker.
import { announceReady } from "@zmq-patterns/bench-kit";
import { MajordomoBroker } from "@zmq-patterns/majordomo";

const broker = await MajordomoBroker.start({ bind: "tcp://127.0.0.1:*" });
broker.on("workerReady", ({ service }) => console.log(`worker ready ${service}`));
broker.on("workerExpired", ({ service }) => console.error(`a worker of ${service} expired`));
announceReady(broker.endpoints[0], () => broker.close());
