import { spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Context, Dealer, Router } from "zeromq";
import { CloseStack, closeSocket } from "../src/index.js";
import { nodeCommand, startProcess } from "../src/testing/index.js";

const fixtures = join(import.meta.dirname, "fixtures");

/** Runs a fixture to completion and returns its exit code and output. */
function run(file: string, timeoutMs: number): Promise<{ code: number | null; output: string }> {
  const { command, args } = nodeCommand(join(fixtures, file));
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk) => (output += chunk));
    child.stderr.on("data", (chunk) => (output += chunk));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${file} did not exit by itself within ${timeoutMs} ms:\n${output}`));
    }, timeoutMs);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

describe("CloseStack", () => {
  it("runs steps once, last added first, and keeps going past a failing step", async () => {
    const order: string[] = [];
    const stack = new CloseStack();
    stack.defer(() => void order.push("first"));
    stack.defer(() => {
      throw new Error("boom");
    });
    stack.defer(async () => void order.push("last"));
    const first = stack.close();
    expect(stack.close()).toBe(first);
    await expect(first).rejects.toThrow("boom");
    expect(order).toEqual(["last", "first"]);
    expect(stack.closed).toBe(true);
  });

  it("closes registered sockets with linger 0, and works with await using", async () => {
    let router: Router;
    {
      await using stack = new CloseStack();
      router = stack.socket(new Router());
      expect(router.closed).toBe(false);
    }
    expect(router.closed).toBe(true);
  });

  it("closeSocket is idempotent", () => {
    const dealer = new Dealer();
    closeSocket(dealer);
    closeSocket(dealer);
    expect(dealer.closed).toBe(true);
  });
});

describe("process lifecycle", () => {
  it("a process using core exits by itself after close()", async () => {
    const { code, output } = await run("exit-after-close.ts", 15_000);
    expect(output).toContain("closed after hello");
    expect(code).toBe(0);
  });

  it.each(["SIGINT", "SIGTERM"] as const)("a CLI closes and exits with 0 on %s", async (signal) => {
    const child = await startProcess({
      ...nodeCommand(join(fixtures, "signals.ts")),
      name: "signals",
    });
    child.kill(signal).catch(() => {});
    const exit = await child.waitForExit(10_000);
    expect(exit.code).toBe(0);
    expect(child.output.join("\n")).toMatch(/shutting down on SIG(INT|TERM)[\s\S]*closing/);
  });
});

describe("file descriptors", () => {
  it("opening and closing 2,000 sockets leaks no file descriptors", async () => {
    const count = () => readdirSync("/proc/self/fd").length;
    /** Waits (bounded) until the descriptor count is at most `limit`: libzmq closes sockets on its own thread. */
    const settle = async (limit: number, deadlineMs: number) => {
      const deadline = Date.now() + deadlineMs;
      while (count() > limit && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    };
    // A context of its own: the sockets still being reaped count against its socket limit, which
    // a loaded machine can otherwise reach; the limit here is well above the 2,000 of the test.
    const context = new Context({ maxSockets: 8192 });
    // Warm up: the context's own descriptors are created with its first sockets.
    for (let i = 0; i < 10; i++) closeSocket(new Dealer({ context }));
    await settle(Number.POSITIVE_INFINITY, 0);
    const router = new Router({ linger: 0, context });
    await router.bind("tcp://127.0.0.1:*");
    const endpoint = router.lastEndpoint as string;
    const before = count();
    for (let i = 0; i < 2000; i++) {
      const dealer = new Dealer({ linger: 0, context });
      dealer.connect(endpoint);
      if (i % 100 === 0) await dealer.send(["ping"]);
      closeSocket(dealer);
      // Let the closes catch up now and then, so descriptors in flight stay few.
      if (i % 100 === 99) await settle(before + 400, 10_000);
    }
    await settle(before, 10_000);
    expect(count()).toBeLessThanOrEqual(before);
    closeSocket(router);
  });
});
