/**
 * Interoperability with independent Python peers (interop/python, pyzmq) playing the roles of the
 * Guide's mdbroker, mdworker, mdclient, mdclient2 and mmiecho: RFC 7/MDP 0.1 and RFC 8/MMI on the
 * wire, with short heartbeats on both sides.
 */
import { spawn } from "node:child_process";
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
import { afterEach, describe, expect, it } from "vitest";
import {
  MajordomoAsyncClient,
  MajordomoBroker,
  type MajordomoBrokerOptions,
  MajordomoClient,
  mmiQuery,
  mmiService,
} from "../src/index.js";

const cli = join(import.meta.dirname, "../src/cli.ts");
const INTERVAL = 200;
/** The Guide's liveness, for the side whose patience a test is about. */
const LIVENESS = 3;
/**
 * The liveness of a side whose expiry a test is not about: a loaded machine can stall a process
 * for several intervals, which must not turn into a spurious expiry or reconnection.
 */
const STEADY = 10;
// Needs /usr/bin/python3 with pyzmq (Debian: apt-get install python3-zmq); skipped otherwise.
const python = checkPython();
if (!python.available) console.warn(`majordomo interop tests skipped: ${python.reason}`);

const cleanup: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const item of cleanup.splice(0).reverse()) await item.close();
  await killAllProcesses();
});

const text = (frames: readonly Buffer[]): string[] => frames.map(String);

function timing(interval = INTERVAL, liveness = STEADY): string[] {
  return ["--heartbeat-interval", String(interval), "--liveness", String(liveness)];
}

// ------------------------------------------------------------------------------------------------
// Python peers

/** A Python mdbroker bound to a fresh endpoint. */
async function pythonBroker(
  interval = INTERVAL,
  liveness = STEADY,
): Promise<{ handle: ChildProcessHandle; endpoint: string }> {
  const endpoint = await allocateAddress();
  const handle = await startPythonPeer("mdbroker", [
    "--bind",
    endpoint,
    ...timing(interval, liveness),
  ]);
  return { handle, endpoint };
}

/** A Python mdworker (echo); it neither reads nor heartbeats while it "works". */
function pythonWorker(
  broker: string,
  extra: readonly string[] = [],
  interval = INTERVAL,
  liveness = STEADY,
): Promise<ChildProcessHandle> {
  return startPythonPeer("mdworker", [
    "--connect",
    broker,
    ...timing(interval, liveness),
    "--reconnect",
    String(interval),
    ...extra,
  ]);
}

/** Runs a Python client peer (mdclient, mdclient2, mmiecho) to its exit. */
async function runPython(
  peer: string,
  args: readonly string[],
  timeoutMs = 8000,
): Promise<{ code: number | null; output: string[] }> {
  const handle = await startPythonPeer(peer, args);
  const exit = await handle.waitForExit(timeoutMs);
  return { code: exit.code, output: [...handle.output] };
}

/** Workers the Python broker registered ("worker ready <id> for <service>") after line `from`. */
function registered(broker: ChildProcessHandle, from = 0): Set<string> {
  return new Set(
    matching(broker, from, /worker ready \S+ for/).map((l) => /worker ready (\S+)/.exec(l)![1]!),
  );
}

/** Workers the Python broker dispatched requests to after line `from`. */
function dispatchedTo(broker: ChildProcessHandle, from = 0): Set<string> {
  return new Set(
    matching(broker, from, /dispatched to/).map((l) => /dispatched to (\S+)/.exec(l)![1]!),
  );
}

/** What no peer may ever log: a message it could not take from one of ours. */
const PYTHON_PROTOCOL_ERRORS = /invalid|assertion failed/;

// ------------------------------------------------------------------------------------------------
// Our side

async function ourBroker(options: MajordomoBrokerOptions = {}): Promise<MajordomoBroker> {
  const broker = await MajordomoBroker.start({
    bind: await allocateAddress(),
    heartbeatIntervalMs: INTERVAL,
    liveness: STEADY,
    ...options,
  });
  cleanup.push(broker);
  return broker;
}

function ourWorker(
  broker: string,
  name: string,
  extra: readonly string[] = [],
  interval = INTERVAL,
  liveness = STEADY,
): Promise<ChildProcessHandle> {
  return startProcess({
    ...nodeCommand(cli, [
      "worker",
      "--connect",
      broker,
      ...timing(interval, liveness),
      "--reconnect",
      String(interval),
      ...extra,
    ]),
    name,
  });
}

/** Runs a one-shot command of our bin (`client`, `mmi`) to its exit. */
function runOurs(
  args: readonly string[],
  timeoutMs = 10_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const { command, args: prefix } = nodeCommand(cli, args);
  return new Promise((resolve, reject) => {
    const child = spawn(command, prefix, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function syncClient(broker: string, timeoutMs = 2000, retries = 3): MajordomoClient {
  const client = new MajordomoClient({ broker, timeoutMs, retries });
  cleanup.push(client);
  return client;
}

/** Records READY registrations at our broker from now on (identity keys in arrival order). */
function trackReady(broker: MajordomoBroker): {
  keys: string[];
  waitFor(count: number, timeoutMs?: number): Promise<string[]>;
} {
  const keys: string[] = [];
  let wake: (() => void) | undefined;
  broker.on("workerReady", ({ worker }) => {
    keys.push(worker);
    wake?.();
  });
  return {
    keys,
    async waitFor(count, timeoutMs = 5000) {
      const deadline = performance.now() + timeoutMs;
      while (keys.length < count) {
        const left = deadline - performance.now();
        if (left <= 0) throw new Error(`${keys.length} of ${count} workers registered`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      return keys.slice(0, count);
    },
  };
}

/**
 * Drops that timing alone explains (a worker the broker already forgot heartbeats or is sent a
 * heartbeat at the moment it goes), which a heavily loaded machine can cause. Any other drop
 * reason is a message our broker could not accept from a reference peer.
 */
const TIMING_DROPS = /^(HEARTBEAT from unknown worker|unroutable worker|unroutable client)$/;

function protocolDrops(dropped: Record<string, number>): Record<string, number> {
  return Object.fromEntries(
    Object.entries(dropped).filter(([reason]) => !TIMING_DROPS.test(reason)),
  );
}

// ------------------------------------------------------------------------------------------------
// Output helpers

/**
 * Resolves once `check()` holds, re-checking after every line the processes print; rejects after
 * `timeoutMs` with the last lines of each.
 */
async function untilOutput(
  handles: readonly ChildProcessHandle[],
  check: () => boolean,
  what: string,
  timeoutMs = 5000,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    const left = deadline - performance.now();
    if (left <= 0) {
      const tails = handles.map((h) => `[${h.name}]\n${h.output.slice(-15).join("\n")}`);
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${tails.join("\n")}`);
    }
    await Promise.race(handles.map((h) => h.waitForLine(/./, left).catch(() => {})));
  }
}

/** Lines of `handle` after index `from` that match `pattern`. */
function matching(handle: ChildProcessHandle, from: number, pattern: RegExp): string[] {
  return handle.output.slice(from).filter((line) => pattern.test(line));
}

// Shows up in the report as a skipped test titled with the reason.
// Skipped only where pyzmq cannot be imported (CI installs it): the report then names the reason.
if (!python.available) it.skip(`interop with Python peers: ${python.reason}`, () => {});

describe.skipIf(!python.available)("Majordomo interop with Python peers (pyzmq)", () => {
  it("Python mdworkers serve the Python mdclient, mdclient2 and mmiecho through our MajordomoBroker", async () => {
    const broker = await ourBroker();
    const [endpoint] = broker.endpoints as [string];
    const dispatched = new Set<string>();
    broker.on("requestDispatched", ({ worker }) => dispatched.add(worker));
    const ready = trackReady(broker);
    const workers = await Promise.all([pythonWorker(endpoint), pythonWorker(endpoint)]);
    const keys = await ready.waitFor(2);

    // The clients run side by side: REQ (numbered and multi-frame), DEALER with 20 in flight, MMI.
    const [sync, multi, async, found, missing, other] = await Promise.all([
      runPython("mdclient", ["--connect", endpoint, "--count", "10"]),
      runPython("mdclient", ["--connect", endpoint, "--body", "a", "--body", "", "--body", "c"]),
      runPython("mdclient2", ["--connect", endpoint, "--count", "20"]),
      runPython("mmiecho", ["--connect", endpoint]),
      runPython("mmiecho", ["--connect", endpoint, "--service", "nosuch"]),
      runPython("mmiecho", ["--connect", endpoint, "--mmi", "mmi.foo"]),
    ]);
    expect(sync.code, sync.output.join("\n")).toBe(0);
    expect(sync.output.join("\n")).toContain("done: 10 requests OK");
    // An empty frame inside the body survives both hops.
    expect(multi.code, multi.output.join("\n")).toBe(0);
    expect(multi.output.join("\n")).toContain("reply 1: a|''|c");
    expect(async.code, async.output.join("\n")).toBe(0);
    expect(async.output.join("\n")).toContain("done: 20 replies OK");
    // MMI: the broker replaces the last body frame with the code (200, 404, and 501 for an
    // unimplemented mmi.* service), and REQ and the reference client checks take it.
    expect(found.output.join("\n")).toContain("Lookup echo service: 200");
    expect(missing.output.join("\n")).toContain("Lookup nosuch service: 404");
    expect(other.output.join("\n")).toContain("Lookup echo service: 501");
    for (const run of [found, missing, other]) expect(run.code).toBe(0);

    // Both reference workers were used, and everything they sent decoded: READY, HEARTBEAT and
    // 6+-frame REPLYs; and they took everything our broker sent (REQUEST, HEARTBEAT).
    expect(dispatched).toEqual(new Set(keys));
    const stats = broker.stats();
    expect(protocolDrops(stats.dropped)).toEqual({});
    expect(stats.requestsDispatched).toBe(31);
    expect(stats.repliesOut).toBe(31);
    expect(stats.mmiRequests).toBe(3);
    expect(stats.workersExpired).toBe(0);
    for (const w of workers) {
      expect(w.running).toBe(true);
      expect(matching(w, 0, PYTHON_PROTOCOL_ERRORS)).toEqual([]);
      expect(matching(w, 0, /reconnected/)).toEqual([]);
    }

    // Closing, our broker says DISCONNECT [W][""]["MDPW01"][0x05]; the reference workers take it
    // and open a new socket at once, which says READY again.
    await broker.close();
    await untilOutput(
      workers,
      () => workers.every((w) => matching(w, 0, /reconnected .*after DISCONNECT/).length > 0),
      "both workers to take the DISCONNECT",
    );
    for (const w of workers) expect(matching(w, 0, PYTHON_PROTOCOL_ERRORS)).toEqual([]);
  });

  it("our worker CLIs, sync and async clients, `client` and `mmi` commands work through the Python mdbroker", async () => {
    const { handle: mdbroker, endpoint } = await pythonBroker();
    const workers = await Promise.all([ourWorker(endpoint, "w1"), ourWorker(endpoint, "w2")]);
    await untilOutput([mdbroker], () => registered(mdbroker).size >= 2, "2 workers");

    // In process: the REQ client, numbered and multi-frame; the DEALER client with 20 in flight.
    const client = syncClient(endpoint);
    for (let i = 1; i <= 10; i++)
      expect(text(await client.request("echo", String(i)))).toEqual([String(i)]);
    expect(text(await client.request("echo", ["a", "", "c"]))).toEqual(["a", "", "c"]);
    const asyncClient = new MajordomoAsyncClient({ broker: endpoint });
    cleanup.push(asyncClient);
    for (let i = 1; i <= 20; i++) await asyncClient.send("echo", `async ${i}`);
    const bodies: string[] = [];
    for (let i = 1; i <= 20; i++) {
      const reply = await asyncClient.receive({ timeoutMs: 3000 });
      expect(reply).toMatchObject({ service: "echo", final: true });
      bodies.push(...text(reply.body));
    }
    expect(bodies.sort()).toEqual(Array.from({ length: 20 }, (_, i) => `async ${i + 1}`).sort());
    // MMI: "mmi.service" replies with the code in place of the name; other mmi.* names get 501.
    expect(await mmiService(client, "echo")).toBe("200");
    expect(await mmiService(client, "nosuch")).toBe("404");
    expect(text(await mmiQuery(client, "mmi.foo", ["x", "y"]))).toEqual(["x", "501"]);
    expect(client.stats().discarded).toEqual({});
    expect(asyncClient.stats().discarded).toEqual({});

    // The bin's one-shot commands, as separate processes.
    const [cliSync, cliAsync, cliFound, cliMissing] = await Promise.all([
      runOurs(["client", "--connect", endpoint, "--count", "5", "--timeout", "2000"]),
      runOurs(["client", "--connect", endpoint, "--count", "5", "--async", "--timeout", "2000"]),
      runOurs(["mmi", "--connect", endpoint, "--service", "echo"]),
      runOurs(["mmi", "--connect", endpoint, "--service", "nosuch"]),
    ]);
    expect(cliSync.code, cliSync.stderr).toBe(0);
    expect(cliSync.stdout).toMatch(/5 requests\/replies processed/);
    expect(cliAsync.code, cliAsync.stderr).toBe(0);
    expect(cliAsync.stdout).toMatch(/5 requests\/replies processed/);
    expect(cliFound).toMatchObject({ code: 0 });
    expect(cliFound.stdout).toContain("Lookup echo service: 200");
    expect(cliMissing.code).not.toBe(0); // the bin's exit status says "no workers"
    expect(cliMissing.stdout).toContain("Lookup nosuch service: 404");

    // Both of our workers served; the reference broker understood all they sent, and they all
    // it sent (REQUEST, HEARTBEAT); nobody reconnected.
    expect(dispatchedTo(mdbroker).size).toBe(2);
    expect(matching(mdbroker, 0, PYTHON_PROTOCOL_ERRORS)).toEqual([]);
    expect(matching(mdbroker, 0, /DISCONNECT|expired|deleted/)).toEqual([]);
    for (const w of workers) {
      expect(w.running).toBe(true);
      expect(matching(w, 0, /invalid message|registering again/)).toEqual([]);
    }

    // Stopped, our worker says DISCONNECT [""]["MDPW01"][0x05] (the reference worker says
    // nothing): the reference broker forgets it at once, and MMI counts only the other one. The
    // DISCONNECT is best effort (a process stalled on a loaded machine can exit before it left),
    // so a worker may instead be expired after liveness x interval; one of two must say it.
    const [w1, w2] = workers as [ChildProcessHandle, ChildProcessHandle];
    const gone = () => matching(mdbroker, 0, /deleted \((DISCONNECT from worker|expired)\)/);
    expect(await w1.stop()).toEqual({ code: 0, signal: null });
    await untilOutput([mdbroker], () => gone().length >= 1, "the first worker to go");
    expect(await mmiService(client, "echo")).toBe("200");
    expect(await w2.stop()).toEqual({ code: 0, signal: null });
    await untilOutput([mdbroker], () => gone().length >= 2, "the second worker to go");
    expect(await mmiService(client, "echo")).toBe("404");
    const said = gone().filter((l) => /DISCONNECT/.test(l)).length;
    if (said < 2) console.warn(`${2 - said} DISCONNECT(s) of our stopped workers did not arrive`);
    expect(said).toBeGreaterThanOrEqual(1);
    expect(matching(mdbroker, 0, PYTHON_PROTOCOL_ERRORS)).toEqual([]);
  });

  it("mixed: a Python mdworker and our worker CLI share a service behind our broker, for Python and our clients", async () => {
    const broker = await ourBroker();
    const [endpoint] = broker.endpoints as [string];
    const dispatched: string[] = [];
    broker.on("requestDispatched", ({ worker }) => dispatched.push(worker));
    const ready = trackReady(broker);
    const pyWorker = await pythonWorker(endpoint);
    const [pyKey] = (await ready.waitFor(1)) as [string];
    const ours = await ourWorker(endpoint, "ours");
    const oursKey = (await ready.waitFor(2))[1]!;

    const client = syncClient(endpoint);
    const asyncClient = new MajordomoAsyncClient({ broker: endpoint });
    cleanup.push(asyncClient);
    const [pySync, pyAsync] = await Promise.all([
      runPython("mdclient", ["--connect", endpoint, "--count", "10", "--pause-ms", "5"]),
      runPython("mdclient2", ["--connect", endpoint, "--count", "10"]),
      (async () => {
        for (let i = 1; i <= 10; i++)
          expect(text(await client.request("echo", `ours ${i}`))).toEqual([`ours ${i}`]);
      })(),
      (async () => {
        for (let i = 1; i <= 10; i++) await asyncClient.send("echo", `async ${i}`);
        for (let i = 1; i <= 10; i++) await asyncClient.receive({ timeoutMs: 3000 });
      })(),
    ]);
    expect(pySync.code, pySync.output.join("\n")).toBe(0);
    expect(pySync.output.join("\n")).toContain("done: 10 requests OK");
    expect(pyAsync.code, pyAsync.output.join("\n")).toBe(0);
    expect(pyAsync.output.join("\n")).toContain("done: 10 replies OK");
    await expect(mmiService(client, "echo")).resolves.toBe("200");

    // LRU across the two languages: both served a good share of the 40 requests.
    expect(dispatched).toHaveLength(40);
    for (const key of [pyKey, oursKey])
      expect(dispatched.filter((k) => k === key).length).toBeGreaterThanOrEqual(5);
    expect(protocolDrops(broker.stats().dropped)).toEqual({});
    expect(matching(pyWorker, 0, PYTHON_PROTOCOL_ERRORS)).toEqual([]);
    expect(matching(ours, 0, /invalid message|registering again/)).toEqual([]);
  });

  // One worker of each pair gives up on the broker after liveness x interval (600 ms), the other
  // only after 25 intervals (5 s): the broker is restarted once the first gave up, so the first
  // registers again from a new socket (READY) and the second when the restarted broker answers
  // the HEARTBEAT of its old socket with DISCONNECT. Both ways are exercised every time.
  const PATIENT = 25;

  it("our worker CLIs register again after the Python mdbroker is SIGKILLed and restarted (liveness expiry; DISCONNECT on HEARTBEAT), and our client completes", async () => {
    const { handle: mdbroker, endpoint } = await pythonBroker();
    const [quick, patient] = await Promise.all([
      ourWorker(endpoint, "quick", [], INTERVAL, LIVENESS),
      ourWorker(endpoint, "patient", [], INTERVAL, PATIENT),
    ]);
    await untilOutput([mdbroker], () => registered(mdbroker).size >= 2, "2 workers");
    const client = syncClient(endpoint, 1000, 10);
    expect(text(await client.request("echo", "before"))).toEqual(["before"]);

    await mdbroker.kill("SIGKILL");
    const from = mdbroker.output.length;
    // Sent while the broker is down: lost with it, or queued in the socket until it is back.
    const during = client.request("echo", "during");
    await quick.waitForLine(/heartbeat failure/, 3000);
    await mdbroker.restart();
    await untilOutput(
      [mdbroker, quick, patient],
      () => registered(mdbroker, from).size >= 2,
      "2 workers at the restarted broker",
    );
    expect(text(await during)).toEqual(["during"]);
    for (let i = 1; i <= 5; i++)
      expect(text(await client.request("echo", `after ${i}`))).toEqual([`after ${i}`]);

    // The patient worker's HEARTBEAT [""]["MDPW01"][0x04] reached the new broker from an unknown
    // identity and got DISCONNECT [""]["MDPW01"][0x05]; it registered again.
    expect(
      matching(mdbroker, from, /DISCONNECT sent to .*HEARTBEAT from unknown worker/),
    ).not.toEqual([]);
    // (At once, or after the reconnect delay when that connection had not heard the broker yet,
    // which our worker takes as a refusal. Their own lines may come after the broker's: each
    // process's output is read on its own.)
    await patient.waitForLine(/disconnect: registering again in \d+ ms/, 2000, {
      includeSeen: true,
    });
    expect(matching(patient, 0, /heartbeat failure/)).toEqual([]);
    expect(matching(patient, 0, /registering again/)).toHaveLength(1);
    // (The quick one again after each further liveness x interval while the broker was starting.)
    for (const w of [quick, patient]) {
      await w.waitForLine(/registered again/, 2000, { includeSeen: true });
      expect(w.running).toBe(true);
      expect(matching(w, 0, /invalid message/)).toEqual([]);
    }
    expect(matching(mdbroker, from, PYTHON_PROTOCOL_ERRORS)).toEqual([]);
  });

  it("Python mdworkers register again after our broker CLI is SIGKILLed and restarted (liveness expiry; DISCONNECT on HEARTBEAT), and the Python mdclient completes with its retries", async () => {
    const endpoint = await allocateAddress();
    const broker = await startProcess({
      ...nodeCommand(cli, ["broker", "--bind", endpoint, ...timing()]),
      name: "broker",
    });
    const [quick, patient] = await Promise.all([
      pythonWorker(endpoint, [], INTERVAL, LIVENESS),
      pythonWorker(endpoint, [], INTERVAL, PATIENT),
    ]);
    const readyLines = (from: number) => matching(broker, from, /ready for "echo"/).length;
    await untilOutput([broker], () => readyLines(0) >= 2, "2 workers");

    const mdclient = await startPythonPeer("mdclient", [
      "--connect",
      endpoint,
      "--count",
      "20",
      "--pause-ms",
      "40",
      "--timeout",
      "500",
      "--retries",
      "20",
    ]);
    await mdclient.waitForLine(/reply 5:/, 5000, { includeSeen: true });
    await broker.kill("SIGKILL");
    const from = broker.output.length;
    // Down for longer than the client's timeout: it must retry on a new socket.
    await quick.waitForLine(/disconnected from broker/, 3000);
    await broker.restart();
    await untilOutput([broker], () => readyLines(from) >= 2, "2 workers at the restarted broker");
    expect(await mdclient.waitForExit(10_000)).toEqual({ code: 0, signal: null });
    expect(mdclient.output.join("\n")).toContain("done: 20 requests OK");
    expect(matching(mdclient, 0, /no reply, reconnecting/).length).toBeGreaterThanOrEqual(1);
    expect(matching(mdclient, 0, PYTHON_PROTOCOL_ERRORS)).toEqual([]);

    await quick.waitForLine(/reconnected .*after heartbeat failure/, 2000, { includeSeen: true });
    await patient.waitForLine(/reconnected .*after DISCONNECT/, 2000, { includeSeen: true });
    // (Again after each further liveness x interval while our broker is still starting.)
    expect(matching(quick, 0, /reconnected .*after DISCONNECT/)).toEqual([]);
    expect(matching(patient, 0, /reconnected/)).toHaveLength(1);
    expect(matching(patient, 0, /disconnected from broker/)).toEqual([]);
    for (const w of [quick, patient]) {
      expect(w.running).toBe(true);
      expect(matching(w, 0, PYTHON_PROTOCOL_ERRORS)).toEqual([]);
    }
    // Our broker took every reference message: nothing dropped but what timing explains.
    expect(
      broker.output.filter(
        (l) => /dropped message from/.test(l) && !TIMING_DROPS.test(l.replace(/^.*: /, "")),
      ),
    ).toEqual([]);
  });

  // Requests longer than liveness x interval. The reference worker is single-threaded: while it
  // works it neither reads nor heartbeats (MDW-2); the reference broker heartbeats only idle
  // workers (MDB-4) and never expires a busy one (MDB-5). Shorter intervals keep these tests
  // fast; the work lasts four times liveness x interval, so even a process stalled on a loaded
  // machine (whose timers skip the ticks it missed) counts out its liveness while it runs.
  const FAST = 100;
  const LONG_WORK_MS = 1200;

  // Our broker expires busy workers too, so it expires the silent reference worker mid-request;
  // it still forwards the late REPLY [W][""]["MDPW01"][0x03][C][""][body] to the client, then
  // answers it with DISCONNECT [W][""]["MDPW01"][0x05] (an unknown worker), and the reference
  // worker registers again on a new socket.
  it("a Python mdworker whose request outlasts liveness x interval is expired while busy by our broker, yet its late reply reaches the client and it registers again", async () => {
    const broker = await ourBroker({ heartbeatIntervalMs: FAST, liveness: LIVENESS });
    const [endpoint] = broker.endpoints as [string];
    const ready = trackReady(broker);
    const expired: boolean[] = [];
    broker.on("workerExpired", ({ busy }) => expired.push(busy));
    const worker = await pythonWorker(endpoint, ["--work-ms", String(LONG_WORK_MS)], FAST);
    await ready.waitFor(1);
    const client = syncClient(endpoint, LONG_WORK_MS + 1000, 1);
    expect(text(await client.request("echo", "long"))).toEqual(["long"]);
    expect(expired).toEqual([true]);
    await worker.waitForLine(/reconnected .*after DISCONNECT/, 2000, { includeSeen: true });
    await ready.waitFor(2);
    expect(broker.stats().repliesOut).toBe(1);
    // The late REPLY was taken ("REPLY from unknown worker" would be a refusal). At the expiry the
    // request was also counted as "worker lost while busy", although it was answered after all.
    const { "worker lost while busy": _counted, ...dropped } = broker.stats().dropped;
    expect(protocolDrops(dropped)).toEqual({});
    expect(matching(worker, 0, PYTHON_PROTOCOL_ERRORS)).toEqual([]);
  });

  // Our worker heartbeats while its handler runs and would take a broker silent for liveness x
  // interval for dead; but a broker that never spoke during a request may be one that heartbeats
  // only idle workers, like the reference, so our worker waits for the handler and keeps its
  // registration (a reconnection would abort the handler and lose the reply for ever, since the
  // reference broker would keep the old registration busy).
  it("our worker CLI whose handler outlasts liveness x interval keeps its registration with the Python mdbroker, which heartbeats only idle workers, and answers", async () => {
    const { handle: mdbroker, endpoint } = await pythonBroker(FAST, LIVENESS);
    const worker = await ourWorker(
      endpoint,
      "slow",
      ["--work-ms", String(LONG_WORK_MS)],
      FAST,
      LIVENESS,
    );
    await untilOutput([mdbroker], () => registered(mdbroker).size >= 1, "the worker");
    const client = syncClient(endpoint, LONG_WORK_MS + 1000, 1);
    expect(text(await client.request("echo", "long"))).toEqual(["long"]);
    expect(await mmiService(client, "echo")).toBe("200");
    expect(registered(mdbroker).size).toBe(1);
    expect(matching(worker, 0, /heartbeat failure|registering again|invalid message/)).toEqual([]);
    expect(matching(mdbroker, 0, /DISCONNECT|expired|deleted/)).toEqual([]);
    expect(matching(mdbroker, 0, PYTHON_PROTOCOL_ERRORS)).toEqual([]);
  });
});
