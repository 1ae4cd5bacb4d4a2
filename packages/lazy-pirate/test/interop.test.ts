/**
 * Interoperability with independent Python peers (interop/python, pyzmq): our client against a
 * Python Lazy Pirate server, and a Python Lazy Pirate client against our server CLI.
 */
import { join } from "node:path";
import {
  allocateAddress,
  checkPython,
  killAllProcesses,
  nodeCommand,
  startProcess,
  startPythonPeer,
} from "@zmq-patterns/core/testing";
import { afterEach, describe, expect, it } from "vitest";
import { LazyPirateClient } from "../src/index.js";

const cli = join(import.meta.dirname, "../src/cli.ts");
// Needs /usr/bin/python3 with pyzmq (Debian: apt-get install python3-zmq); skipped otherwise.
const python = checkPython();
if (!python.available) console.warn(`lazy-pirate interop tests skipped: ${python.reason}`);

const cleanup: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const item of cleanup.splice(0)) await item.close();
  await killAllProcesses();
});

// Shows up in the report as a skipped test titled with the reason.
// Skipped only where pyzmq cannot be imported (CI installs it): the report then names the reason.
if (!python.available) it.skip(`interop with Python peers: ${python.reason}`, () => {});

describe.skipIf(!python.available)("Lazy Pirate interop with Python peers (pyzmq)", () => {
  it("our LazyPirateClient gets every echo from the Python lpserver, through a SIGKILL and restart of the server", async () => {
    const endpoint = await allocateAddress("tcp");
    const server = await startPythonPeer("lpserver", ["--bind", endpoint, "--work-ms", "0"]);
    const client = new LazyPirateClient({
      endpoint,
      timeoutMs: 300,
      retries: 20,
      validateReply: (reply, request) => reply.length === 1 && reply[0]!.equals(request[0]!),
    });
    cleanup.push(client);
    const replies: string[] = [];
    for (let i = 1; i <= 12; i++) {
      if (i === 6) {
        await server.kill("SIGKILL");
        // Request 6 goes to a dead server: the client retries while the server restarts.
        const pending = client.request(String(i));
        await server.restart();
        replies.push(String((await pending)[0]));
        continue;
      }
      replies.push(String((await client.request(String(i)))[0]));
    }
    expect(replies).toEqual(Array.from({ length: 12 }, (_, i) => String(i + 1)));
    // The restarted Python server saw the request in flight, and the last one (its log line may
    // still be on its way through the pipe when the reply is already here).
    await server.waitForLine(/normal request \(6\)$/, 2000, { includeSeen: true });
    await server.waitForLine(/normal request \(12\)$/, 2000, { includeSeen: true });
  });

  it("a multipart request comes back from the Python lpserver frame for frame", async () => {
    const endpoint = await allocateAddress("tcp");
    await startPythonPeer("lpserver", ["--bind", endpoint, "--work-ms", "0"]);
    const client = new LazyPirateClient({ endpoint, timeoutMs: 2500, retries: 3 });
    cleanup.push(client);
    const request = [Buffer.from("head"), Buffer.alloc(0), Buffer.from([0, 1, 2, 255])];
    expect(await client.request(request)).toEqual(request);
  });

  it("the Python lpclient completes its requests against our `lazy-pirate server` CLI and exits 0", async () => {
    const endpoint = await allocateAddress("tcp");
    await startProcess({ ...nodeCommand(cli, ["server", "--bind", endpoint]), name: "server" });
    const client = await startPythonPeer("lpclient", [
      "--connect",
      endpoint,
      "--count",
      "20",
      "--timeout",
      "2500",
      "--retries",
      "3",
    ]);
    const exit = await client.waitForExit(10_000);
    expect(client.output.join("\n")).toContain("done: 20 requests OK");
    expect(exit).toEqual({ code: 0, signal: null });
    expect(client.output.filter((l) => /server replied OK \(\d+\)/.test(l))).toHaveLength(20);
    expect(client.output.filter((l) => /malformed|retrying|abandoning/.test(l))).toEqual([]);
  });

  it("the Python lpclient rides out our server CLI being SIGKILLed and restarted", async () => {
    const endpoint = await allocateAddress("tcp");
    const server = await startProcess({
      ...nodeCommand(cli, ["server", "--bind", endpoint, "--work-ms", "5"]),
      name: "server",
    });
    const client = await startPythonPeer("lpclient", [
      "--connect",
      endpoint,
      "--timeout",
      "300",
      "--retries",
      "30",
    ]);
    await client.waitForLine("server replied OK (3)", 5000, { includeSeen: true });
    await server.kill("SIGKILL");
    await client.waitForLine("no response from server, retrying", 5000);
    await server.restart();
    // Whatever request was in flight is resent and answered; the sequence goes on.
    const after = await client.waitForLine(/server replied OK \(\d+\)/, 5000);
    const resumedAt = Number(/\((\d+)\)/.exec(after)?.[1]);
    await client.waitForLine(`server replied OK (${resumedAt + 3})`, 5000, { includeSeen: true });
    expect(client.output.filter((l) => /malformed|abandoning/.test(l))).toEqual([]);
    expect(await client.stop()).toEqual({ code: 0, signal: null });
  });
});
