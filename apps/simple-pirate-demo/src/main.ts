// Simple Pirate, narrated: a queue process spreads a client's requests over worker processes; one
// worker is killed with SIGKILL in the middle of a request, the client's resend is served by
// another, and a worker started late gets its share of the work.
import { allocateAddress } from "@zmq-patterns/core/testing";
import { binCommand, Demo, type RoleProcess } from "@zmq-patterns/demo-kit";
import { LazyPirateClient } from "@zmq-patterns/lazy-pirate";

const WORK_MS = 300;
const TIMEOUT_MS = 800;

const demo = new Demo(
  "Simple Pirate: a queue that hands requests to the least recently used worker",
);

await demo.run(async () => {
  demo.intro(
    "A queue process sits between a client and worker processes that echo requests.",
    `Each worker takes ${WORK_MS} ms per request. The client is a Lazy Pirate client: it waits`,
    `${TIMEOUT_MS} ms for each reply and, on silence, opens a new socket and resends.`,
  );
  const frontend = await allocateAddress("tcp");
  const backend = await allocateAddress("tcp");
  const simplePirate = (args: string[]) =>
    binCommand("@zmq-patterns/simple-pirate", "simple-pirate", args);

  demo.step(`Start the queue: clients connect to ${frontend}, workers to ${backend}.`);
  const queue = await demo.start(
    "queue",
    simplePirate(["queue", "--frontend", frontend, "--backend", backend]),
  );

  const workers = new Map<string, RoleProcess>();
  const startWorker = async (name: string) => {
    const listed = queue.waitForLine(`worker ready worker=${name} `);
    const args = ["worker", "--connect", backend, "--identity", name, "--work-ms", String(WORK_MS)];
    workers.set(name, await demo.start(name, simplePirate(args)));
    await listed;
  };
  /** The worker, among `names`, that logs request `n` next. */
  const handedTo = (n: number, names: readonly string[]) =>
    Promise.any(
      names.map((name) =>
        (workers.get(name) as RoleProcess)
          .waitForLine(`normal request (${n})`, 5000)
          .then(() => name),
      ),
    );

  demo.step("Start three workers. Each sends READY and joins the tail of the queue's ready list.");
  for (const name of ["worker-1", "worker-2", "worker-3"]) await startWorker(name);

  await using client = new LazyPirateClient({ endpoint: frontend, timeoutMs: TIMEOUT_MS });
  client.on("retry", ({ attempt }) =>
    demo.say(`no reply to attempt ${attempt} within ${TIMEOUT_MS} ms: new socket, resending`),
  );
  const send = async (n: number, names: readonly string[]) => {
    const worker = handedTo(n, names);
    const reply = await client.request(String(n));
    demo.ok(`request ${n} answered "${reply[0]}" by ${await worker}`);
  };

  demo.step("Send three requests: the least recently used worker gets each one.");
  const all = ["worker-1", "worker-2", "worker-3"];
  for (let n = 1; n <= 3; n++) await send(n, all);

  demo.step("Send request 4 and kill its worker with SIGKILL while it works on it.");
  const pending = client.request("4");
  const victim = await handedTo(4, all);
  await workers.get(victim)?.kill("SIGKILL");
  const survivors = all.filter((name) => name !== victim);
  demo.say(`${victim} killed mid-request: request 4 dies with it, and nobody tells the client`);
  const rescuer = handedTo(4, survivors);
  const reply = await pending;
  demo.ok(`request 4 answered "${reply[0]}" after the resend, by ${await rescuer}`);

  demo.step(`Send two more: ${victim} was busy when it died, so it is not in the ready list.`);
  for (let n = 5; n <= 6; n++) await send(n, survivors);

  demo.step("Start a late worker, worker-4: it joins the tail of the list and gets work in turn.");
  await startWorker("worker-4");
  const late = [...survivors, "worker-4"];
  let lateServed = 0;
  for (let n = 7; n <= 9; n++) {
    const worker = handedTo(n, late);
    const answer = await client.request(String(n));
    const name = await worker;
    if (name === "worker-4") lateServed += 1;
    demo.ok(`request ${n} answered "${answer[0]}" by ${name}`);
  }
  if (lateServed === 0) throw new Error("worker-4 got no work");
  demo.say("the queue never learned that a worker died: the client's resend covered for it");
});
