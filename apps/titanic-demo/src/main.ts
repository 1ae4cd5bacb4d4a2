// Titanic, narrated: a Majordomo broker and a Titanic server, each in its own process, and a
// Titanic client in this process. Requests for a service that has no worker yet are stored on
// disk and answered "300 pending"; Titanic is killed with SIGKILL while they wait and restarted
// on the same directory; then an echo worker starts and every request is answered and closed.
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { allocateAddress } from "@zmq-patterns/core/testing";
import { binCommand, Demo } from "@zmq-patterns/demo-kit";
import { TitanicClient, TitanicStatusError } from "@zmq-patterns/titanic";

const INTERVAL = "250";
const BODIES = ["Hello", "disconnected", "world"];
const demo = new Demo("Titanic (RFC 9/TSP): disconnected, disk-backed reliable requests");
const dir = await mkdtemp(join(tmpdir(), "titanic-demo-"));

/** The store directory, one line per file, in a stable order. */
async function listDir(): Promise<void> {
  const names = (await readdir(dir)).sort();
  if (names.length === 0) demo.say(`${dir} is empty`);
  else demo.say(`${dir} holds ${names.length} files:`);
  for (const name of names) demo.say(`  ${name}`);
}

const short = (uuid: string) => `${uuid.slice(0, 8)}…`;
const text = (frames: Buffer[]) => frames.map(String).join(" ");

try {
  await demo.run(async () => {
    demo.intro(
      "A Majordomo broker and Titanic run as processes; the client is in this process. The echo",
      "service has no worker at first: Titanic keeps its requests on disk until one comes, across",
      "a crash of Titanic itself. Heartbeats every 250 ms; Titanic looks for workers again after",
      "250 ms, doubling up to 1 s.",
    );
    const endpoint = await allocateAddress("tcp");
    const heartbeat = ["--heartbeat-interval", INTERVAL, "--liveness", "3"];

    demo.step("Start the Majordomo broker.");
    const broker = await demo.start(
      "broker",
      binCommand("@zmq-patterns/majordomo", "majordomo", [
        "broker",
        "--bind",
        endpoint,
        ...heartbeat,
      ]),
    );

    demo.step(`Start Titanic on the broker, storing in ${dir}.`);
    const registered = Promise.all(
      ["titanic.request", "titanic.reply", "titanic.close"].map((service) =>
        broker.waitForLine(`ready for "${service}"`, 5000),
      ),
    );
    const titanic = await demo.start(
      "titanic",
      binCommand("@zmq-patterns/titanic", "titanic", [
        "server",
        "--broker",
        endpoint,
        "--dir",
        dir,
        ...heartbeat,
        "--retry-backoff",
        INTERVAL,
        "--max-retry-backoff",
        "1000",
      ]),
      { readyPattern: /Titanic serves/ },
    );
    await registered;
    demo.ok("Titanic registered titanic.request, titanic.reply and titanic.close as a worker");

    await using client = new TitanicClient({ broker: endpoint, timeoutMs: 1000, retries: 5 });

    demo.step("Submit three echo requests. No echo worker exists yet.");
    const uuids: string[] = [];
    for (const body of BODIES) {
      const uuid = await client.submit("echo", body);
      uuids.push(uuid);
      demo.ok(`"${body}" stored as ${uuid}: the 200 came after the request was on disk`);
    }
    await titanic.waitForLine('no workers for "echo"', 5000, { includeSeen: true });
    demo.say("Titanic asked the broker (mmi.service echo): no worker, so the requests wait");
    for (const uuid of uuids) {
      const answer = await client.reply(uuid);
      demo.ok(
        `titanic.reply ${short(uuid)}: ${answer.status === "pending" ? "300 pending" : "?!"}`,
      );
    }
    await listDir();
    demo.say(
      "one .req file per request and no .rep: the pending requests are the directory itself",
    );

    demo.step("Kill Titanic with SIGKILL while the three requests are pending, then restart it.");
    await titanic.kill("SIGKILL");
    demo.say("Titanic is gone; the requests are still on disk:");
    await listDir();
    await titanic.restart();
    const ready = titanic.output.findLast((line) => line.includes("Titanic serves")) ?? "";
    const resumed = /\((\d+) pending resumed\)/.exec(ready)?.[1];
    if (resumed !== String(uuids.length)) throw new Error(`expected 3 resumed: ${ready}`);
    demo.ok(
      `the new Titanic found the ${resumed} pending requests in the directory and resumed them`,
    );
    for (const uuid of uuids) {
      const answer = await client.reply(uuid);
      demo.ok(
        `titanic.reply ${short(uuid)}: ${answer.status === "pending" ? "300 pending" : "?!"}`,
      );
    }
    demo.say("the client kept its UUIDs; it asks the new Titanic as if nothing happened");

    demo.step("Start an echo worker (majordomo worker --service echo).");
    const replied = Promise.all(
      uuids.map((uuid) => titanic.waitForLine(`replied ${uuid}`, 10_000)),
    );
    const echo = await demo.start(
      "echo",
      binCommand("@zmq-patterns/majordomo", "majordomo", [
        "worker",
        "--connect",
        endpoint,
        "--service",
        "echo",
        ...heartbeat,
        "--reconnect",
        INTERVAL,
      ]),
    );
    await replied;
    demo.ok(
      "Titanic saw the worker on its next look, sent the three requests and stored the replies",
    );
    for (const [i, uuid] of uuids.entries()) {
      const answer = await client.reply(uuid);
      if (answer.status !== "ok" || text(answer.body) !== BODIES[i]) {
        throw new Error(`unexpected reply for ${uuid}`);
      }
      demo.ok(`titanic.reply ${short(uuid)}: 200 "${text(answer.body)}"`);
    }
    await listDir();
    demo.say("each request now has its .rep next to its .req; asking again gives the same 200");

    demo.step("Close the three requests (titanic.close).");
    for (const uuid of uuids) await client.closeRequest(uuid);
    demo.ok("three 200s: Titanic removed each request and its reply");
    await listDir();
    try {
      await client.reply(uuids[0] as string);
      throw new Error("a closed request was still known");
    } catch (error) {
      if (!(error instanceof TitanicStatusError) || error.status !== "400") throw error;
      demo.ok(`titanic.reply ${short(uuids[0] as string)} after close: 400 (unknown request)`);
    }

    demo.step("Stop the worker, Titanic and the broker.");
    await echo.stop();
    await titanic.stop();
    await broker.stop();
    demo.ok("all three exited on SIGTERM");
  });
} finally {
  await rm(dir, { recursive: true, force: true });
}
