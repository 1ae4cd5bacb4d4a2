// Majordomo, narrated: a broker and five workers for two services, each in its own process, and
// the clients in this process. MMI tells which services are up; a worker dies in the middle of a
// request on each service (one is declared idempotent, the other not) and both requests are still
// answered; then the broker itself is killed and restarted and the workers come back on their
// own. It ends with MDP/0.2 streaming replies.
import { allocateAddress } from "@zmq-patterns/core/testing";
import { binCommand, Demo, type RoleProcess } from "@zmq-patterns/demo-kit";
import {
  MajordomoAsyncClient,
  MajordomoClient,
  MMI_CODES,
  mmiService,
} from "@zmq-patterns/majordomo";

const INTERVAL = "250";
const TIMEOUT_MS = 1000;
const demo = new Demo("Majordomo (RFC 7/MDP, RFC 8/MMI, RFC 18/MDP): services by name");

/** Resolves once `role` has printed `count` lines matching `pattern` since line `since`. */
async function linesSince(
  role: RoleProcess,
  pattern: RegExp,
  count: number,
  since: number,
  timeoutMs = 10_000,
): Promise<string[]> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const matches = role.output.slice(since).filter((line) => pattern.test(line));
    if (matches.length >= count) return matches;
    const left = deadline - performance.now();
    if (left <= 0) throw new Error(`${role.name}: ${matches.length} of ${count} lines ${pattern}`);
    // Any new match wakes us up; counting again catches lines that came in the same chunk.
    await role.waitForLine(pattern, left);
  }
}

const text = (frames: Buffer[]) => frames.map(String).join(" ");

await demo.run(async () => {
  demo.intro(
    "One broker process, workers for the services echo and ledger in their own processes, and",
    "clients in this process. Broker and workers heartbeat every 250 ms; three silent intervals",
    "mean a dead peer. The clients wait 1 s for a reply before they send again.",
  );
  const endpoint = await allocateAddress("tcp");
  const bin = (args: string[]) => binCommand("@zmq-patterns/majordomo", "majordomo", args);
  const heartbeat = ["--heartbeat-interval", INTERVAL, "--liveness", "3"];

  demo.step("Start the broker. It is told that echo is idempotent and ledger is not.");
  const broker = await demo.start(
    "broker",
    bin(["broker", "--bind", endpoint, ...heartbeat, "--idempotent", "echo"]),
  );
  demo.say("a request lost with its echo worker will be queued again; a ledger one will not");

  demo.step("Start three echo workers and two ledger workers, one after the other.");
  const startWorker = async (name: string, service: string, extra: string[] = []) => {
    const registered = broker.waitForLine(`ready for "${service}"`, 5000);
    const role = await demo.start(
      name,
      bin([
        "worker",
        "--connect",
        endpoint,
        "--service",
        service,
        ...heartbeat,
        "--reconnect",
        INTERVAL,
        ...extra,
      ]),
    );
    await registered;
    return role;
  };
  // echo-1 answers its first request, then hangs on every later one: a worker stuck on a request.
  const echo1 = await startWorker("echo-1", "echo", [
    "--crash-after",
    "1",
    "--slow-probability",
    "1",
    "--slow-ms",
    "15000",
  ]);
  const echo2 = await startWorker("echo-2", "echo");
  const echo3 = await startWorker("echo-3", "echo");
  // ledger-1 hangs on every request.
  const ledger1 = await startWorker("ledger-1", "ledger", [
    "--slow-probability",
    "1",
    "--slow-ms",
    "15000",
  ]);
  const ledger2 = await startWorker("ledger-2", "ledger");
  demo.ok("the broker logged a READY from each of the five workers");

  await using client = new MajordomoClient({
    broker: endpoint,
    timeoutMs: TIMEOUT_MS,
    retries: 10,
  });
  client.on("retry", ({ service, attempt }) =>
    demo.say(`no reply from ${service} to attempt ${attempt} within 1 s: the client sends again`),
  );

  demo.step("Ask the broker which services have workers (mmi.service, RFC 8/MMI).");
  for (const name of ["echo", "ledger", "nope"]) {
    const code = await mmiService(client, name);
    const meaning = code === MMI_CODES.found ? "has workers" : "has no worker";
    demo.ok(`mmi.service ${name}: ${code} (${meaning})`);
  }
  demo.say("the broker answers mmi.* itself, at once; nothing is queued");

  demo.step("Send three echo requests: the least recently used idle worker takes each one.");
  for (let n = 1; n <= 3; n++) {
    const reply = await client.request("echo", `hello ${n}`);
    demo.ok(`"${text(reply)}" came back`);
  }

  demo.step("Send a fourth echo request: it goes to echo-1, which hangs on it. Kill echo-1.");
  {
    const stuck = echo1.waitForLine("simulating CPU overload", 5000);
    const retriesBefore = client.stats().retries;
    const started = performance.now();
    const reply = client.request("echo", "hello 4");
    await stuck;
    demo.say("echo-1 is stuck on the request: SIGKILL it");
    const requeued = broker.waitForLine('request for "echo" queued again', 5000);
    await echo1.kill("SIGKILL");
    await requeued;
    demo.say("the broker's next heartbeat to echo-1 fails, so it forgets echo-1 and, echo being");
    demo.say("idempotent, puts the request back at the head of the echo queue");
    const body = text(await reply);
    const elapsed = Math.round(performance.now() - started);
    if (client.stats().retries === retriesBefore) {
      demo.ok(`"${body}" answered in ${elapsed} ms on the client's first attempt: re-queued`);
    } else {
      demo.ok(`"${body}" answered in ${elapsed} ms after the client sent it again`);
    }
  }

  demo.step("Now a ledger request: ledger-1 takes it and hangs. Kill ledger-1.");
  {
    const stuck = ledger1.waitForLine("simulating CPU overload", 5000);
    const retriesBefore = client.stats().retries;
    const started = performance.now();
    const reply = client.request("ledger", "debit 10");
    await stuck;
    const dropped = broker.waitForLine(
      /request for "ledger" dropped: worker lost while busy/,
      5000,
    );
    await ledger1.kill("SIGKILL");
    await dropped;
    demo.say("ledger is not idempotent: the broker drops the request rather than run it twice");
    const body = text(await reply);
    const elapsed = Math.round(performance.now() - started);
    const retries = client.stats().retries - retriesBefore;
    demo.ok(
      `"${body}" answered in ${elapsed} ms by ledger-2, after ${retries} client ${retries === 1 ? "retry" : "retries"}`,
    );
    demo.say("the client's retry is what recovered it: with a worker that had already done the");
    demo.say("work, that same retry would have run it twice, so the service must tolerate that");
  }

  demo.step("Kill the broker with SIGKILL and start it again on the same endpoint.");
  {
    const survivors = [echo2, echo3, ledger2];
    const leaving = survivors.map((w) =>
      w.waitForLine(/(disconnect|heartbeat failure): registering again in \d+ ms/, 10_000),
    );
    await broker.kill("SIGKILL");
    const since = broker.output.length;
    demo.say("every request the broker held is gone with it; a client request sent now waits");
    const retriesBefore = client.stats().retries;
    const reply = client.request("echo", "sent while the broker was down");
    await broker.restart();
    const reasons = await Promise.all(leaving);
    for (const [i, line] of reasons.entries()) {
      const how = line.includes("heartbeat failure")
        ? "heard nothing for three intervals and opened a new connection"
        : "got DISCONNECT for its HEARTBEAT to the new broker and opened a new connection at once";
      demo.say(`${survivors[i]?.name} ${how}`);
    }
    await linesSince(broker, /ready for "(echo|ledger)"/, survivors.length, since);
    demo.ok("the three surviving workers registered with the new broker by themselves");
    demo.ok(`"${text(await reply)}" answered once broker and workers were back`);
    if (client.stats().retries === retriesBefore) {
      demo.say("it waited in the client's socket until the new broker was up, then in the echo");
      demo.say("queue until an echo worker registered: no retry was needed");
    }
    for (const name of ["echo", "ledger"]) {
      demo.ok(`mmi.service ${name}: ${await mmiService(client, name)}`);
    }
  }

  demo.step("An asynchronous client sends six requests at once, then reads the replies.");
  {
    await using mdc = new MajordomoAsyncClient({ broker: endpoint });
    for (let n = 1; n <= 6; n++) await mdc.send("echo", `async ${n}`);
    const replies: string[] = [];
    for (let n = 1; n <= 6; n++) replies.push(text((await mdc.receive({ timeoutMs: 5000 })).body));
    demo.ok(`6 replies, in arrival order: ${replies.join(", ")}`);
    demo.say("MDP carries no request id: replies come in the order workers finish (two here)");
  }

  demo.step("MDP/0.2: a worker that streams each reply as three PARTIALs and a FINAL.");
  {
    await startWorker("stream-1", "stream", ["--protocol", "0.2", "--partials", "3"]);
    await using streaming = new MajordomoClient({
      broker: endpoint,
      version: "0.2",
      timeoutMs: TIMEOUT_MS,
      retries: 3,
    });
    let partials = 0;
    const final = await streaming.request("stream", "chunk", {
      onPartial: (body) => {
        partials += 1;
        demo.say(`PARTIAL ${partials}: "${text(body)}"`);
      },
    });
    demo.ok(`FINAL: "${text(final)}" after ${partials} partial replies (MDP/0.2 client)`);
    const plain = await client.request("stream", "chunk");
    demo.ok(`an MDP/0.1 client asking the same worker gets only the FINAL: "${text(plain)}"`);
  }
});
