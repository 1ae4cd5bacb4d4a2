/**
 * Interoperability with independent Python peers (interop/python, pyzmq) playing the roles of the
 * Guide's titanic and ticlient: RFC 9/TSP on RFC 7/MDP 0.1, with our Majordomo broker and echo
 * worker in process.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
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
import { MajordomoBroker, MajordomoClient, MajordomoWorker } from "@zmq-patterns/majordomo";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { TitanicClient, type TitanicReply, TitanicStatusError } from "../src/index.js";

const cli = join(import.meta.dirname, "../src/cli.ts");
const INTERVAL = 200;
const UUID = /^[0-9A-F]{32}$/;
// Needs /usr/bin/python3 with pyzmq (Debian: apt-get install python3-zmq); skipped otherwise.
const python = checkPython();
if (!python.available) console.warn(`titanic interop tests skipped: ${python.reason}`);

let dir: string;
const cleanup: Array<{ close(): unknown }> = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "titanic-interop-"));
});

afterEach(async () => {
  await killAllProcesses();
  for (const item of cleanup.splice(0).reverse()) await item.close();
  await rm(dir, { recursive: true, force: true });
});

/** What no peer may ever log: a message it could not take from one of ours. */
const PYTHON_PROTOCOL_ERRORS = /invalid|assertion failed|fatal|storage failure/;

const matching = (handle: ChildProcessHandle, pattern: RegExp): string[] =>
  handle.output.filter((line) => pattern.test(line));

/** Our broker in process. */
async function ourBroker(): Promise<string> {
  const endpoint = await allocateAddress();
  cleanup.push(await MajordomoBroker.start({ bind: endpoint, heartbeatIntervalMs: INTERVAL }));
  return endpoint;
}

/** Our echo worker in process; it records the bodies it runs. */
async function ourEchoWorker(broker: string, executions: Buffer[][] = []): Promise<Buffer[][]> {
  cleanup.push(
    await MajordomoWorker.start({
      broker,
      service: "echo",
      heartbeatIntervalMs: INTERVAL,
      handler: (body) => {
        executions.push(body);
        return body;
      },
    }),
  );
  return executions;
}

/** The Python titanic, storing in the test's directory. */
function pythonTitanic(broker: string, extra: readonly string[] = []): Promise<ChildProcessHandle> {
  return startPythonPeer("titanic", [
    "--broker",
    broker,
    "--dir",
    dir,
    "--idle-ms",
    "100",
    "--heartbeat-interval",
    String(INTERVAL),
    "--reconnect",
    String(INTERVAL),
    ...extra,
  ]);
}

function titanicClient(broker: string): TitanicClient {
  const client = new TitanicClient({ broker, timeoutMs: 2000, retries: 3 });
  cleanup.push(client);
  return client;
}

/** Polls `titanic.reply` until it is not pending. */
async function awaitReply(client: TitanicClient, uuid: string, timeoutMs = 5000) {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const answer: TitanicReply = await client.reply(uuid);
    if (answer.status === "ok") return answer.body;
    if (performance.now() > deadline) throw new Error(`${uuid} still pending`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Polls raw `titanic.reply` [UUID] until it is not pending ("300"); returns the raw answer. */
async function awaitRawReply(mdp: MajordomoClient, uuid: string, timeoutMs = 5000) {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const answer = await mdp.request("titanic.reply", [Buffer.from(uuid)]);
    if (String(answer[0]) !== "300") return answer;
    if (performance.now() > deadline) throw new Error(`${uuid} still pending`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function statusOf(error: unknown): string | undefined {
  return error instanceof TitanicStatusError ? error.status : undefined;
}

// Skipped only where pyzmq cannot be imported (CI installs it): the report then names the reason.
if (!python.available) it.skip(`interop with Python peers: ${python.reason}`, () => {});

describe.skipIf(!python.available)("titanic interop with Python peers", () => {
  it("the Python ticlient stores, fetches and closes requests through our Titanic server CLI", async () => {
    const endpoint = await ourBroker();
    const executions = await ourEchoWorker(endpoint);
    const server = await startProcess({
      ...nodeCommand(cli, [
        "server",
        "--broker",
        endpoint,
        "--dir",
        dir,
        "--heartbeat-interval",
        String(INTERVAL),
        "--retry-backoff",
        "100",
        "--no-fsync",
      ]),
      name: "titanic",
    });

    const ticlient = await startPythonPeer("ticlient", [
      "--connect",
      endpoint,
      "--count",
      "3",
      "--pending-ms",
      "100",
    ]);
    expect(await ticlient.waitForExit(10_000)).toEqual({ code: 0, signal: null });
    // A multi-frame body, an empty frame included, comes back frame for frame.
    const multi = await startPythonPeer("ticlient", [
      "--connect",
      endpoint,
      "--pending-ms",
      "100",
      "--body",
      "first",
      "--body",
      "",
      "--body",
      "third",
    ]);
    expect(await multi.waitForExit(10_000)).toEqual({ code: 0, signal: null });

    const output = ticlient.output.join("\n");
    expect(output).toContain("done: 3 requests OK");
    expect(matching(ticlient, /Reply: Hello world$/)).toHaveLength(3);
    expect(multi.output.join("\n")).toContain("done: 1 requests OK");
    expect(matching(multi, /Reply: third$/)).toHaveLength(1);
    for (const peer of [ticlient, multi])
      expect(matching(peer, PYTHON_PROTOCOL_ERRORS)).toEqual([]);

    // Our server handed out 32 uppercase hex digits, each a new request.
    const uuids = [ticlient, multi].flatMap((peer) =>
      matching(peer, /I: request UUID /).map((l) => /I: request UUID (\S+)$/.exec(l)![1]!),
    );
    expect(uuids).toHaveLength(4);
    for (const uuid of uuids) expect(uuid).toMatch(UUID);
    expect(new Set(uuids).size).toBe(4);
    // Each ran once, with the body the ticlient gave.
    expect(executions.map((body) => body.map(String))).toEqual([
      ["Hello world"],
      ["Hello world"],
      ["Hello world"],
      ["first", "", "third"],
    ]);
    // The ticlient closed them: our server now answers 400 for each.
    const client = titanicClient(endpoint);
    for (const uuid of uuids) {
      const error = await client.reply(uuid).catch((e: unknown) => e);
      expect(statusOf(error)).toBe("400");
    }
    expect(server.running).toBe(true);
    expect(matching(server, /: 400 |dropped|invalid/)).toEqual([]);
  });

  it("our TitanicClient against the Python titanic: 300 while pending, 200 and the body, close 200, then 400", async () => {
    const endpoint = await ourBroker();
    const titanic = await pythonTitanic(endpoint);
    const client = titanicClient(endpoint);

    // Raw TSP answers of the reference, frame for frame.
    const mdp = new MajordomoClient({ broker: endpoint, timeoutMs: 2000, retries: 3 });
    cleanup.push(mdp);
    const body = [Buffer.from("Hello"), Buffer.alloc(0), Buffer.from([0, 1, 0xfe, 0xff])];
    const stored = await mdp.request("titanic.request", [Buffer.from("echo"), ...body]);
    expect(stored).toHaveLength(2);
    expect(String(stored[0])).toBe("200");
    const rawUuid = String(stored[1]);
    expect(rawUuid).toMatch(UUID);
    expect((await mdp.request("titanic.reply", [Buffer.from(rawUuid)])).map(String)).toEqual([
      "300",
    ]);
    const unknown = "0123456789ABCDEF0123456789ABCDEF";
    expect((await mdp.request("titanic.reply", [Buffer.from(unknown)])).map(String)).toEqual([
      "400",
    ]);
    expect((await mdp.request("titanic.close", [Buffer.from(unknown)])).map(String)).toEqual([
      "200",
    ]);

    // Ours: submit while the service has no worker (the reference's MMI check says 404).
    const uuid = await client.submit("echo", body);
    expect(uuid).toMatch(UUID);
    expect(uuid).not.toBe(rawUuid);
    expect(await client.reply(uuid)).toEqual({ status: "pending" });
    await new Promise((resolve) => setTimeout(resolve, 300)); // a few dispatcher passes
    expect(await client.reply(uuid)).toEqual({ status: "pending" });

    // The worker comes: both requests run, and the replies are the bodies, byte for byte.
    const executions = await ourEchoWorker(endpoint);
    const reply = await awaitReply(client, uuid);
    expect(reply).toEqual(body);
    // Idempotent until closed (TSP-R3).
    expect(await client.reply(uuid)).toEqual({ status: "ok", body });
    // The raw request may finish a pass later than ours: the dispatcher asks mmi.service for each
    // request in turn, so a worker that registers between the two questions in one pass runs ours
    // first and leaves the raw one for the next pass.
    const raw = await awaitRawReply(mdp, rawUuid);
    expect(raw).toEqual([Buffer.from("200"), ...body]);

    // Close (200, also twice: TSP-R4), then the request is unknown (400).
    await client.closeRequest(uuid);
    await client.closeRequest(uuid);
    const after = await client.reply(uuid).catch((e: unknown) => e);
    expect(after).toBeInstanceOf(TitanicStatusError);
    expect(statusOf(after)).toBe("400");
    expect((await mdp.request("titanic.close", [Buffer.from(rawUuid)])).map(String)).toEqual([
      "200",
    ]);
    expect((await mdp.request("titanic.reply", [Buffer.from(rawUuid)])).map(String)).toEqual([
      "400",
    ]);

    // call(): the three steps, several requests.
    for (let i = 1; i <= 3; i++) {
      const answer = await client.call("echo", [`call ${i}`, "x"], { pollMs: 50, timeoutMs: 5000 });
      expect(answer.map(String)).toEqual([`call ${i}`, "x"]);
    }
    // Our client sends a UUID exactly as the server gave it (this server is case-sensitive).
    const again = await client.submit("echo", "case");
    expect(await awaitReply(client, again)).toEqual([Buffer.from("case")]);

    // Each request ran exactly once (the reference marks each queue entry done in place).
    const ran = executions.map((b) => b.map((f) => f.toString("hex")).join("|"));
    expect(ran.filter((r) => r === body.map((f) => f.toString("hex")).join("|"))).toHaveLength(2);
    expect(ran).toHaveLength(6);
    expect(matching(titanic, PYTHON_PROTOCOL_ERRORS)).toEqual([]);
    expect(titanic.running).toBe(true);
  });

  // The Guide's Python titanic hands out lowercase UUIDs (uuid4().hex) and looks them up as given
  // (file names are case-sensitive). Regression: our client used to uppercase every UUID, so such
  // a Titanic answered titanic.reply ["<UPPERCASE>"] with ["400"]. It now keeps the server's case.
  it("a Titanic handing out lowercase UUIDs (the Guide's Python one) gets them back in lowercase", async () => {
    const endpoint = await ourBroker();
    await ourEchoWorker(endpoint);
    await pythonTitanic(endpoint, ["--uuid-case", "lower"]);
    const mdp = new MajordomoClient({ broker: endpoint, timeoutMs: 2000, retries: 3 });
    cleanup.push(mdp);
    const stored = await mdp.request("titanic.request", ["echo", "lower"]);
    expect(stored.map(String)).toEqual(["200", expect.stringMatching(/^[0-9a-f]{32}$/)]);
    const lower = String(stored[1]);
    const raw = async (uuid: string) =>
      (await mdp.request("titanic.reply", [Buffer.from(uuid)])).map(String);
    await expect.poll(() => raw(lower), { interval: 50, timeout: 5000 }).toEqual(["200", "lower"]);
    expect(await raw(lower.toUpperCase())).toEqual(["400"]);
    const client = titanicClient(endpoint);
    const uuid = await client.submit("echo", "lower");
    expect(uuid).toMatch(/^[0-9a-f]{32}$/);
    expect(await awaitReply(client, uuid)).toEqual([Buffer.from("lower")]);
  });

  it("our TitanicClient against a Titanic handing out lowercase UUIDs (the Guide's Python one)", async () => {
    const endpoint = await ourBroker();
    await ourEchoWorker(endpoint);
    await pythonTitanic(endpoint, ["--uuid-case", "lower"]);
    const client = titanicClient(endpoint);
    const reply = await client.call("echo", "lower", { pollMs: 50, timeoutMs: 5000 });
    expect(reply.map(String)).toEqual(["lower"]);
  });

  it("the Python ticlient against the Python titanic and our broker and worker (the peers agree with each other)", async () => {
    const endpoint = await ourBroker();
    await ourEchoWorker(endpoint);
    const titanic = await pythonTitanic(endpoint, ["--uuid-case", "lower"]);
    const ticlient = await startPythonPeer("ticlient", [
      "--connect",
      endpoint,
      "--count",
      "3",
      "--pending-ms",
      "100",
    ]);
    expect(await ticlient.waitForExit(10_000)).toEqual({ code: 0, signal: null });
    expect(ticlient.output.join("\n")).toContain("done: 3 requests OK");
    expect(matching(ticlient, /I: request UUID [0-9a-f]{32}$/)).toHaveLength(3);
    expect(matching(titanic, PYTHON_PROTOCOL_ERRORS)).toEqual([]);
  });
});
