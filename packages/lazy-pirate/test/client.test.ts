import { join } from "node:path";
import {
  AbortedError,
  ClosedError,
  ProtocolError,
  RequestAbandonedError,
} from "@zmq-patterns/core";
import {
  allocateAddress,
  killAllProcesses,
  nodeCommand,
  startProcess,
  Tap,
} from "@zmq-patterns/core/testing";
import { afterEach, describe, expect, it } from "vitest";
import { LazyPirateClient, LazyPirateServer } from "../src/index.js";

const cli = join(import.meta.dirname, "../src/cli.ts");
const cleanup: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const item of cleanup.splice(0)) await item.close();
  await killAllProcesses();
});

function client(options: ConstructorParameters<typeof LazyPirateClient>[0]) {
  const c = new LazyPirateClient(options);
  cleanup.push(c);
  return c;
}

async function tap() {
  const t = await Tap.router();
  cleanup.push(t);
  return t;
}

describe("LazyPirateClient against a real server process", () => {
  it("LP-2/2.6: succeeds through a server that is SIGKILLed and restarted mid-run", async () => {
    const endpoint = await allocateAddress("tcp");
    const server = await startProcess({
      ...nodeCommand(cli, ["server", "--bind", endpoint]),
      name: "server",
    });
    const c = client({ endpoint, timeoutMs: 300, retries: 20 });
    const replies: string[] = [];
    let killed = false;
    for (let i = 1; i <= 20; i++) {
      if (i === 8) {
        await server.kill("SIGKILL");
        killed = true;
        // Request 8 is sent to a dead server; the restart happens while it waits and retries.
        const pending = c.request(String(i));
        await server.restart();
        replies.push(String((await pending)[0]));
        continue;
      }
      replies.push(String((await c.request(String(i)))[0]));
    }
    expect(killed).toBe(true);
    expect(replies).toEqual(Array.from({ length: 20 }, (_, i) => String(i + 1)));
  });

  it("LP-1: abandons with RequestAbandonedError after `retries` sends when the server stays down, in time", async () => {
    const endpoint = await allocateAddress("tcp");
    const c = client({ endpoint, timeoutMs: 200, retries: 3 });
    const sent: number[] = [];
    c.on("sent", ({ attempt }) => sent.push(attempt));
    const started = performance.now();
    const error = await c.request("anyone?").catch((e: unknown) => e);
    const elapsed = performance.now() - started;
    expect(error).toBeInstanceOf(RequestAbandonedError);
    expect(error).toMatchObject({ code: "TIMEOUT", attempts: 3, timeoutMs: 200 });
    expect(sent).toEqual([1, 2, 3]);
    // Bounded by (retries + 1) x timeout plus a margin; at least retries x timeout.
    expect(elapsed).toBeGreaterThanOrEqual(3 * 200 - 20);
    expect(elapsed).toBeLessThan(4 * 200 + 500);
  });
});

describe("LazyPirateClient on the wire", () => {
  it("ENV-4 golden frames: a REQ request reaches a ROUTER as [id][''][body...]", async () => {
    const server = await tap();
    const c = client({ endpoint: server.endpoint, timeoutMs: 2000 });
    const reply = c.request(["hello", Buffer.from([0, 1, 2])]);
    const frames = await server.receive();
    expect(frames).toHaveLength(4);
    expect(frames[1]).toEqual(Buffer.alloc(0));
    expect(frames.slice(2)).toEqual([Buffer.from("hello"), Buffer.from([0, 1, 2])]);
    await server.send([frames[0] as Buffer, "", "world"]);
    expect((await reply).map(String)).toEqual(["world"]);
  });

  it("LP-2: a late reply to attempt 1 is never returned for attempt 2 nor for the next request", async () => {
    const server = await tap();
    const c = client({ endpoint: server.endpoint, timeoutMs: 200, retries: 3 });
    const retried = new Promise((resolve) => c.once("retry", resolve));
    const first = c.request("req-1");
    const [attempt1] = await server.receive();
    await retried;
    const [attempt2, , body2] = await server.receive();
    expect(String(body2)).toBe("req-1");
    expect(attempt2).not.toEqual(attempt1);
    // The late reply to attempt 1 goes first: its socket is closed, so it can never arrive.
    await server.send([attempt1 as Buffer, "", "late reply to attempt 1"]);
    await server.send([attempt2 as Buffer, "", "reply to attempt 2"]);
    expect((await first).map(String)).toEqual(["reply to attempt 2"]);

    const second = c.request("req-2");
    const [id3, , body3] = await server.receive();
    expect(String(body3)).toBe("req-2");
    await server.send([attempt1 as Buffer, "", "late again"]);
    await server.send([id3 as Buffer, "", "reply to req-2"]);
    expect((await second).map(String)).toEqual(["reply to req-2"]);
  });

  it("LP-4: a malformed reply is discarded and does not consume a retry", async () => {
    const server = await tap();
    const c = client({
      endpoint: server.endpoint,
      timeoutMs: 200,
      retries: 2,
      validateReply: (reply, request) => String(reply[0]) === String(request[0]),
    });
    const invalid: string[] = [];
    c.on("invalidReply", ({ reply }) => invalid.push(String(reply[0])));
    const result = c.request("7");
    await server.receive(); // attempt 1: left unanswered, times out (retry 1 of 2 used)
    const [id2] = await server.receive(); // attempt 2
    await server.send([id2 as Buffer, "", "garbage"]);
    const [id3] = await server.receive(); // resent at once, without using the last retry
    await server.send([id3 as Buffer, "", "7"]);
    expect((await result).map(String)).toEqual(["7"]);
    expect(invalid).toEqual(["garbage"]);
  });

  it("LP-4: gives up with ProtocolError after `retries` malformed replies", async () => {
    const server = await tap();
    const c = client({
      endpoint: server.endpoint,
      timeoutMs: 1000,
      retries: 2,
      validateReply: () => false,
    });
    const result = c.request("x").catch((e: unknown) => e);
    for (let i = 0; i < 2; i++) {
      const [id] = await server.receive();
      await server.send([id as Buffer, "", "bad"]);
    }
    expect(await result).toBeInstanceOf(ProtocolError);
  });

  it("ENV-6: concurrent requests are sent one at a time, each answered by its own reply", async () => {
    const server = await tap();
    const c = client({ endpoint: server.endpoint, timeoutMs: 2000 });
    const results = Promise.all(["a", "b", "c"].map((body) => c.request(body)));
    for (let i = 0; i < 3; i++) {
      const [id, , body] = await server.receive();
      await server.expectNothing(20); // nothing else is sent before this one is answered
      await server.send([id as Buffer, "", `re:${body}`]);
    }
    expect((await results).map((r) => String(r[0]))).toEqual(["re:a", "re:b", "re:c"]);
  });

  it("rejects with AbortedError when its signal aborts, and recovers for the next request", async () => {
    const server = await tap();
    const c = client({ endpoint: server.endpoint, timeoutMs: 5000 });
    const controller = new AbortController();
    const aborted = c.request("slow", { signal: controller.signal });
    await server.receive();
    controller.abort();
    await expect(aborted).rejects.toBeInstanceOf(AbortedError);
    const next = c.request("next");
    const [id, , body] = await server.receive();
    expect(String(body)).toBe("next");
    await server.send([id as Buffer, "", "ok"]);
    expect((await next).map(String)).toEqual(["ok"]);
  });

  it("close() is idempotent and rejects pending and later requests with ClosedError", async () => {
    const server = await tap();
    const c = client({ endpoint: server.endpoint, timeoutMs: 5000 });
    const pending = c.request("x");
    await server.receive();
    await c.close();
    await c.close();
    await expect(pending).rejects.toBeInstanceOf(ClosedError);
    await expect(c.request("y")).rejects.toMatchObject({ code: "CLOSED" });
  });

  it("fails fast on bad options", () => {
    expect(() => new LazyPirateClient({ endpoint: "localhost:5555" })).toThrow(
      expect.objectContaining({ code: "INVALID_ARGUMENT" }),
    );
    expect(() => new LazyPirateClient({ timeoutMs: 0 })).toThrow(/timeoutMs/);
    expect(() => new LazyPirateClient({ retries: 0 })).toThrow(/retries/);
  });
});

describe("LazyPirateServer", () => {
  it("2.5: echoes requests and simulates a crash as the Guide's lpserver", async () => {
    const server = await LazyPirateServer.start({
      bind: "tcp://127.0.0.1:*",
      simulate: { crashAfter: 2, crashProbability: 1 },
    });
    cleanup.push(server);
    const crashed = new Promise((resolve) => server.once("crash", resolve));
    const c = client({ endpoint: server.endpoint, timeoutMs: 300, retries: 1 });
    expect((await c.request("1")).map(String)).toEqual(["1"]);
    expect((await c.request("2")).map(String)).toEqual(["2"]);
    await expect(c.request("3")).rejects.toBeInstanceOf(RequestAbandonedError);
    await crashed;
  });
});
