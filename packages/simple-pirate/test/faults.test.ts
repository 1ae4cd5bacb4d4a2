import { join } from "node:path";
import { RequestAbandonedError } from "@zmq-patterns/core";
import {
  allocateAddress,
  type ChildProcessHandle,
  killAllProcesses,
  nodeCommand,
  startProcess,
} from "@zmq-patterns/core/testing";
import { LazyPirateClient } from "@zmq-patterns/lazy-pirate";
import { afterEach, describe, expect, it } from "vitest";

const cli = join(import.meta.dirname, "../src/cli.ts");
const cleanup: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const item of cleanup.splice(0).reverse()) await item.close();
  await killAllProcesses();
});

interface System {
  frontend: string;
  backend: string;
  queue: ChildProcessHandle;
}

async function startQueue(extra: string[] = []): Promise<System> {
  const frontend = await allocateAddress("tcp");
  const backend = await allocateAddress("tcp");
  const queue = await startProcess({
    ...nodeCommand(cli, ["queue", "--frontend", frontend, "--backend", backend, ...extra]),
    name: "queue",
  });
  return { frontend, backend, queue };
}

/** Starts a worker process and waits until the queue has it in its ready list. */
async function startWorker(system: System, identity: string, extra: string[] = []) {
  const listed = system.queue.waitForLine(`worker ready worker=${identity} `, 10_000);
  const worker = await startProcess({
    ...nodeCommand(cli, ["worker", "--connect", system.backend, "--identity", identity, ...extra]),
    name: identity,
  });
  await listed;
  return worker;
}

function client(system: System, timeoutMs: number, retries = 3) {
  const c = new LazyPirateClient({ endpoint: system.frontend, timeoutMs, retries });
  cleanup.push(c);
  const retried: number[] = [];
  c.on("retry", ({ attempt }) => retried.push(attempt));
  return { c, retried };
}

describe("Simple Pirate with real processes", () => {
  it("3.6/SP-B3: a worker SIGKILLed mid-request; the client's retry is answered by another worker", async () => {
    const system = await startQueue();
    const w1 = await startWorker(system, "w1", ["--work-ms", "1000"]);
    const w2 = await startWorker(system, "w2", ["--work-ms", "1000"]);
    const { c, retried } = client(system, 1500);

    const reply = c.request("1");
    // w1 became ready first, so it is handed request 1; kill it while it works on it.
    await w1.waitForLine("normal request (1)", 5000, { includeSeen: true });
    expect(await w1.kill("SIGKILL")).toEqual({ code: null, signal: "SIGKILL" });
    expect((await reply).map(String)).toEqual(["1"]);
    expect(retried).toEqual([1]);
    expect(w2.output.some((line) => line.includes("normal request (1)"))).toBe(true);

    // The dead worker was busy, so it is not in the ready list: later requests go to w2 alone.
    expect((await c.request("2")).map(String)).toEqual(["2"]);
    expect(retried).toEqual([1]);
  });

  it("3.2: a simulated crash exits the worker process with code 1; another worker answers the retry", async () => {
    const system = await startQueue();
    const crasher = await startWorker(system, "crasher", ["--crash-probability", "1"]);
    await startWorker(system, "steady");
    const { c, retried } = client(system, 500);
    expect((await c.request("hello")).map(String)).toEqual(["hello"]);
    expect(await crasher.waitForExit()).toEqual({ code: 1, signal: null });
    expect(crasher.output.some((line) => line.includes("simulating a crash"))).toBe(true);
    expect(retried).toEqual([1]);
  });

  it("3.6: a worker killed while ready stays listed; the request routed to it is lost and the retry served", async () => {
    const system = await startQueue();
    const idle = await startWorker(system, "idle");
    await startWorker(system, "spare");
    await idle.kill("SIGKILL");
    const { c, retried } = client(system, 500);
    const dispatchedToDead = system.queue.waitForLine("request dispatched worker=idle ");
    expect((await c.request("x")).map(String)).toEqual(["x"]);
    await dispatchedToDead;
    expect(retried).toEqual([1]);
  });

  it("3.6: a queue restart stalls the system, since workers never send READY again", async () => {
    const system = await startQueue();
    await startWorker(system, "w");
    const { c } = client(system, 500);
    expect((await c.request("before")).map(String)).toEqual(["before"]);
    await system.queue.restart();
    const stalled = await c.request("after", { timeoutMs: 300, retries: 2 }).catch((e) => e);
    expect(stalled).toBeInstanceOf(RequestAbandonedError);
  });

  it("the queue CLI logs its counts every --stats-interval ms", async () => {
    const system = await startQueue(["--stats-interval", "50"]);
    await startWorker(system, "w");
    const { c } = client(system, 2000);
    await c.request("x");
    const line = await system.queue.waitForLine(/stats .*repliesForwarded=1/);
    expect(line).toContain("workersReady=1");
    expect(line).toContain("requestsForwarded=1");
  });
});
