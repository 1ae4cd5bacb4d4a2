// Paranoid Pirate, narrated: a queue and three heartbeating workers in their own processes. A
// worker is killed and expired; then the queue itself is killed and restarted, and the workers
// find their way back on their own.
import { allocateAddress } from "@zmq-patterns/core/testing";
import { binCommand, Demo } from "@zmq-patterns/demo-kit";
import { LazyPirateClient } from "@zmq-patterns/lazy-pirate";

const INTERVAL = "250";
const demo = new Demo("Paranoid Pirate (RFC 6/PPP): heartbeats, expiry and reconnect");

await demo.run(async () => {
  demo.intro(
    "A queue process, three worker processes, and a Lazy Pirate client in this process.",
    `Queue and workers heartbeat every ${INTERVAL} ms; three silent intervals mean a dead peer.`,
  );
  const frontend = await allocateAddress("tcp");
  const backend = await allocateAddress("tcp");
  const bin = (args: string[]) =>
    binCommand("@zmq-patterns/paranoid-pirate", "paranoid-pirate", args);
  const queueArgs = [
    "queue",
    "--frontend",
    frontend,
    "--backend",
    backend,
    "--heartbeat-interval",
    INTERVAL,
  ];

  demo.step("Start the queue and three workers.");
  const queue = await demo.start("queue", bin(queueArgs));
  const workers = [];
  for (const name of ["worker-a", "worker-b", "worker-c"]) {
    const args = [
      "worker",
      "--connect",
      backend,
      "--identity",
      name,
      "--heartbeat-interval",
      INTERVAL,
      "--reconnect-initial",
      "500",
    ];
    workers.push(await demo.start(name, bin([...args, "--work-ms", "50"])));
  }
  await queue.waitForLine(/worker ready .*/, 5000, { includeSeen: true });

  await using client = new LazyPirateClient({ endpoint: frontend, timeoutMs: 1000, retries: 10 });
  client.on("retry", ({ attempt }) =>
    demo.say(`no reply to attempt ${attempt}: the client resends`),
  );
  const send = async (n: number) => {
    const reply = await client.request(`request ${n}`);
    demo.ok(`${reply[0]} answered`);
  };

  demo.step("Send requests: the queue spreads them over the workers, least recently used first.");
  for (let n = 1; n <= 3; n++) await send(n);

  demo.step(
    "Kill worker-a with SIGKILL. The queue drops it: at once if a send to it fails, at the latest after three silent intervals.",
  );
  await workers[0]?.kill("SIGKILL");
  await queue.waitForLine(/worker expired/, 5000);
  for (let n = 4; n <= 6; n++) await send(n);

  demo.step("Kill the queue with SIGKILL, then start it again on the same endpoints.");
  await queue.kill("SIGKILL");
  demo.say("the workers hear no heartbeats and will reconnect with back-off");
  await Promise.all(workers.slice(1).map((w) => w.waitForLine(/reconnecting in \d+ ms/, 5000)));
  await queue.restart();
  await Promise.all(
    workers.slice(1).map((w) => w.waitForLine(/READY sent/, 10_000, { includeSeen: true })),
  );
  demo.ok("both surviving workers said READY to the new queue without any help");
  for (let n = 7; n <= 9; n++) await send(n);
});
