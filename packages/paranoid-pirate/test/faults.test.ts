import { join } from "node:path";
import { identityKey } from "@zmq-patterns/core";
import {
  allocateAddress,
  killAllProcesses,
  nodeCommand,
  startProcess,
} from "@zmq-patterns/core/testing";
import { LazyPirateClient } from "@zmq-patterns/lazy-pirate";
import { afterEach, describe, expect, it } from "vitest";
import { ParanoidPirateQueue } from "../src/index.js";

const cli = join(import.meta.dirname, "../src/cli.ts");
const INTERVAL = 200;
const LIVENESS = 3;
const cleanup: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const item of cleanup.splice(0).reverse()) await item.close();
  await killAllProcesses();
});

function startWorker(backend: string, identity: string) {
  return startProcess({
    ...nodeCommand(cli, [
      "worker",
      "--connect",
      backend,
      "--identity",
      identity,
      "--heartbeat-interval",
      String(INTERVAL),
      "--liveness",
      String(LIVENESS),
      "--reconnect-initial",
      "200",
    ]),
    name: identity,
  });
}

describe("Paranoid Pirate under real failures", () => {
  it("PPQ-4: a SIGKILLed worker is expired within liveness x interval (+1 interval) and gets no more requests", async () => {
    const queue = await ParanoidPirateQueue.start({
      frontend: await allocateAddress(),
      backend: await allocateAddress(),
      heartbeatIntervalMs: INTERVAL,
      liveness: LIVENESS,
    });
    cleanup.push(queue);
    const ready = new Set<string>();
    const bothReady = new Promise<void>((resolve) =>
      queue.on("workerReady", ({ worker }) => {
        ready.add(worker);
        if (ready.size === 2) resolve();
      }),
    );
    const victim = await startWorker(queue.endpoints.backend, "victim");
    await startWorker(queue.endpoints.backend, "survivor");
    await bothReady;

    const victimKey = identityKey(Buffer.from("victim"));
    const expired = new Promise<number>((resolve) =>
      queue.on("workerExpired", ({ worker }) => {
        if (worker === victimKey) resolve(performance.now());
      }),
    );
    const killedAt = performance.now();
    await victim.kill("SIGKILL");
    const expiredAfter = (await expired) - killedAt;
    expect(expiredAfter).toBeLessThanOrEqual((LIVENESS + 1) * INTERVAL + 100);

    const dispatchedTo: string[] = [];
    queue.on("requestDispatched", ({ worker }) => dispatchedTo.push(worker));
    const client = new LazyPirateClient({
      endpoint: queue.endpoints.frontend,
      timeoutMs: 2000,
      retries: 1,
    });
    cleanup.push(client);
    for (let i = 0; i < 10; i++)
      expect((await client.request(String(i))).map(String)).toEqual([String(i)]);
    expect(new Set(dispatchedTo)).toEqual(new Set([identityKey(Buffer.from("survivor"))]));
  });

  it("4.8: the queue SIGKILLed and restarted: workers reconnect with back-off and service resumes unattended", async () => {
    const frontend = await allocateAddress();
    const backend = await allocateAddress();
    const queue = await startProcess({
      ...nodeCommand(cli, [
        "queue",
        "--frontend",
        frontend,
        "--backend",
        backend,
        "--heartbeat-interval",
        String(INTERVAL),
        "--liveness",
        String(LIVENESS),
      ]),
      name: "queue",
    });
    const workers = [await startWorker(backend, "w1"), await startWorker(backend, "w2")];
    const client = new LazyPirateClient({ endpoint: frontend, timeoutMs: 500, retries: 40 });
    cleanup.push(client);
    expect((await client.request("before")).map(String)).toEqual(["before"]);

    await queue.kill("SIGKILL");
    const reconnecting = workers.map((w) => w.waitForLine(/reconnecting in \d+ ms/, 10_000));
    await queue.restart();
    await Promise.all(reconnecting);
    // The strict queue ignores the workers' stray heartbeats; they say READY after back-off.
    await Promise.all(
      workers.map((w) => w.waitForLine(/reconnected .* READY sent/, 10_000, { includeSeen: true })),
    );
    expect((await client.request("after")).map(String)).toEqual(["after"]);
    expect(queue.output.join("\n")).toMatch(/worker ready/);
  });
});
