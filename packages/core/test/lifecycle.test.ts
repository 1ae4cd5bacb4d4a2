import { spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Dealer, Router } from "zeromq";
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
    // Warm up: the context's own descriptors are created with the first sockets.
    for (let i = 0; i < 10; i++) closeSocket(new Dealer());
    const before = count();
    const router = new Router({ linger: 0 });
    await router.bind("tcp://127.0.0.1:*");
    const endpoint = router.lastEndpoint as string;
    for (let i = 0; i < 2000; i++) {
      const dealer = new Dealer({ linger: 0 });
      dealer.connect(endpoint);
      if (i % 100 === 0) await dealer.send(["ping"]);
      closeSocket(dealer);
      // zeromq.js completes closes on the event loop; yield so they are not all outstanding at
      // once (libzmq allows 1,023 live sockets per context).
      if (i % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    closeSocket(router);
    // libzmq's I/O thread releases descriptors asynchronously: wait until the count settles.
    const deadline = Date.now() + 10_000;
    while (count() > before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(count()).toBeLessThanOrEqual(before);
  });
});
