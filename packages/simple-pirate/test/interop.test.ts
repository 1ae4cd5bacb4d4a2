/**
 * Interoperability with independent Python peers (interop/python, pyzmq) playing the roles of the
 * Guide's spworker, spqueue and lpclient.
 */
import { join } from "node:path";
import {
  allocateAddress,
  type ChildProcessHandle,
  checkPython,
  killAllProcesses,
  nodeCommand,
  startProcess,
  startPythonPeer,
} from "@zmq-patterns/core/testing";
import { LazyPirateClient } from "@zmq-patterns/lazy-pirate";
import { afterEach, describe, expect, it } from "vitest";
import { SimplePirateQueue } from "../src/index.js";

const cli = join(import.meta.dirname, "../src/cli.ts");
// Needs /usr/bin/python3 with pyzmq (Debian: apt-get install python3-zmq); skipped otherwise.
const python = checkPython();
if (!python.available) console.warn(`simple-pirate interop tests skipped: ${python.reason}`);

const cleanup: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const item of cleanup.splice(0).reverse()) await item.close();
  await killAllProcesses();
});

function client(endpoint: string): LazyPirateClient {
  const c = new LazyPirateClient({
    endpoint,
    timeoutMs: 2500,
    retries: 3,
    validateReply: (reply, request) => reply.length === 1 && reply[0]!.equals(request[0]!),
  });
  cleanup.push(c);
  return c;
}

/** The identity a worker printed in its ready line ("... ready: 1A2B-3C4D connect..."). */
function identityOf(worker: ChildProcessHandle): string {
  const identity = /ready: ([0-9A-F]{4}-[0-9A-F]{4}) connect/.exec(worker.output.join("\n"))?.[1];
  expect(identity, `${worker.name} printed no identity`).toBeDefined();
  return identity as string;
}

/**
 * Resolves once `check()` holds, re-checking after every line `handle` prints; rejects after
 * `timeoutMs` with its last lines.
 */
async function untilOutput(
  handle: ChildProcessHandle,
  check: () => boolean,
  what: string,
  timeoutMs = 5000,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    const left = deadline - performance.now();
    if (left <= 0) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}; ${handle.name} printed:\n` +
          handle.output.slice(-20).join("\n"),
      );
    }
    await handle.waitForLine(/./, left).catch(() => {});
  }
}

// Shows up in the report as a skipped test titled with the reason.
// Skipped only where pyzmq cannot be imported (CI installs it): the report then names the reason.
if (!python.available) it.skip(`interop with Python peers: ${python.reason}`, () => {});

describe.skipIf(!python.available)("Simple Pirate interop with Python peers (pyzmq)", () => {
  it("Python spworkers serve our LazyPirateClient and the Python lpclient through our SimplePirateQueue", async () => {
    const queue = await SimplePirateQueue.start({
      frontend: await allocateAddress(),
      backend: await allocateAddress(),
    });
    cleanup.push(queue);
    const { frontend, backend } = queue.endpoints;
    const ready = new Set<string>();
    let wake: (() => void) | undefined;
    queue.on("workerReady", ({ worker }) => {
      ready.add(worker.toString("latin1"));
      wake?.();
    });
    const dispatched: string[] = [];
    queue.on("requestDispatched", ({ worker }) => dispatched.push(worker.toString("latin1")));

    const workers = await Promise.all(
      [1, 2].map(() => startPythonPeer("spworker", ["--connect", backend, "--work-ms", "5"])),
    );
    const identities = workers.map(identityOf);
    // READY (the REQ worker's [0x01], [W][""][0x01] at our backend) registers both workers.
    while (!identities.every((id) => ready.has(id))) {
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }

    const c = client(frontend);
    for (let i = 1; i <= 10; i++)
      expect((await c.request(String(i))).map(String)).toEqual([String(i)]);
    expect(new Set(dispatched)).toEqual(new Set(identities));

    const lpclient = await startPythonPeer("lpclient", [
      "--connect",
      frontend,
      "--count",
      "10",
      "--timeout",
      "2500",
    ]);
    expect(await lpclient.waitForExit(10_000)).toEqual({ code: 0, signal: null });
    expect(lpclient.output.join("\n")).toContain("done: 10 requests OK");
    expect(lpclient.output.filter((l) => /malformed|abandoning/.test(l))).toEqual([]);

    // Every request forwarded was answered and nothing was dropped (a resend after a timeout on a
    // loaded machine adds one of each).
    const stats = queue.stats();
    expect(stats).toMatchObject({ dropped: {}, workersReady: 2 });
    expect(stats.requestsForwarded).toBeGreaterThanOrEqual(20);
    expect(stats.repliesForwarded).toBe(stats.requestsForwarded);
  });

  it("our `simple-pirate worker` CLIs serve the Python lpclient and our client through the Python spqueue", async () => {
    const frontend = await allocateAddress();
    const backend = await allocateAddress();
    const spqueue = await startPythonPeer("spqueue", [
      "--frontend",
      frontend,
      "--backend",
      backend,
    ]);
    const workers = await Promise.all(
      ["w1", "w2"].map((name) =>
        startProcess({ ...nodeCommand(cli, ["worker", "--connect", backend]), name }),
      ),
    );
    const identities = workers.map(identityOf);
    // Our READY is recognised by the reference queue's one-byte test, under our "%04X-%04X" ids.
    await untilOutput(
      spqueue,
      () => identities.every((id) => spqueue.output.some((l) => l.includes(`worker ready ${id}`))),
      "both workers ready at the Python spqueue",
    );

    const lpclient = await startPythonPeer("lpclient", [
      "--connect",
      frontend,
      "--count",
      "10",
      "--timeout",
      "2500",
    ]);
    expect(await lpclient.waitForExit(10_000)).toEqual({ code: 0, signal: null });
    expect(lpclient.output.join("\n")).toContain("done: 10 requests OK");
    expect(lpclient.output.filter((l) => /malformed|abandoning/.test(l))).toEqual([]);

    const c = client(frontend);
    for (let i = 1; i <= 6; i++)
      expect((await c.request(String(i))).map(String)).toEqual([String(i)]);

    // Both of our workers got requests, and replied with the client's envelope intact.
    const dispatchedTo = (id: string) =>
      spqueue.output.filter((l) => l.includes(`request dispatched to ${id}`)).length;
    const forwardedFrom = (id: string) =>
      spqueue.output.filter((l) => l.includes(`reply from ${id} forwarded`)).length;
    await untilOutput(
      spqueue,
      () => identities.reduce((sum, id) => sum + forwardedFrom(id), 0) >= 16,
      "16 replies forwarded",
    );
    // Output lines arrive in order, so every dispatch before the 16th reply was printed by now.
    for (const id of identities) {
      expect(dispatchedTo(id)).toBeGreaterThan(0);
      expect(forwardedFrom(id)).toBe(dispatchedTo(id));
    }
    for (const w of workers)
      expect(w.output.filter((l) => /dropped|reconnected/.test(l))).toEqual([]);
  });
});
