// The raw fan-out baseline of clone.bench.ts: a SUB that takes every message and a PUB that
// passes it on unchanged, what a Clone server does with an update minus the sequencing and the
// map. Binds both on tcp 127.0.0.1 and prints `ready <sub endpoint> <pub endpoint>`.
import { announceReady } from "@zmq-patterns/bench-kit";
import { Publisher, Subscriber } from "zeromq";

const collector = new Subscriber({ linger: 0 });
const publisher = new Publisher({ linger: 0 });
collector.subscribe();
await collector.bind("tcp://127.0.0.1:*");
await publisher.bind("tcp://127.0.0.1:*");

void (async () => {
  try {
    for await (const frames of collector) await publisher.send(frames);
  } catch {
    // closed
  }
})();

announceReady(`${collector.lastEndpoint} ${publisher.lastEndpoint}`, () => {
  collector.close();
  publisher.close();
});
