import { join } from "node:path";
import {
  allocateAddress,
  killAllProcesses,
  nodeCommand,
  type ProcessOutcome,
  runToCompletion,
  startProcess,
  Tap,
} from "@zmq-patterns/core/testing";
import { afterEach, describe, expect, it } from "vitest";
import type { Router } from "zeromq";

const cli = join(import.meta.dirname, "../src/cli.ts");
/** Tests that start several processes at once: each pays for its own TypeScript loader. */
const SPAWNING_MS = 60_000;
const E = Buffer.alloc(0);
const t = (text: string) => Buffer.from(text);
const cleanup: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const item of cleanup.splice(0).reverse()) await item.close();
  await killAllProcesses();
});

/** Runs the bin to completion (killed after `timeoutMs`) and collects its output. */
function run(args: string[], timeoutMs = 15_000): Promise<ProcessOutcome> {
  return runToCompletion(cli, args, timeoutMs);
}

async function fakeBroker(): Promise<Tap<Router>> {
  const broker = await Tap.router();
  cleanup.push(broker);
  return broker;
}

/** The next message that is not a worker heartbeat. */
async function nextCommand(broker: Tap<Router>, timeoutMs = 5000): Promise<Buffer[]> {
  for (;;) {
    const frames = await broker.receive(timeoutMs);
    if (!(frames.length === 4 && frames[3]?.equals(Buffer.from([4])))) return frames;
  }
}

describe("majordomo CLI", () => {
  it(
    "--help lists the commands, and each command's --help its options",
    async () => {
      const [main, broker, worker, client, mmi] = await Promise.all([
        run(["--help"]),
        run(["broker", "--help"]),
        run(["worker", "--help"]),
        run(["client", "--help"]),
        run(["mmi", "--help"]),
      ]);
      expect(main.code).toBe(0);
      for (const command of ["broker", "worker", "client", "mmi"]) {
        expect(main.stdout).toMatch(new RegExp(`^  ${command} `, "m"));
      }
      expect(broker).toMatchObject({ code: 0 });
      for (const flag of [
        "--bind",
        "--heartbeat-interval",
        "--liveness",
        "--request-ttl",
        "--max-queued",
        "--idempotent",
        "--stats-interval",
        "--verbose",
      ]) {
        expect(broker.stdout).toContain(flag);
      }
      expect(broker.stdout).toContain("(default: tcp://*:5555)");
      expect(worker).toMatchObject({ code: 0 });
      for (const flag of [
        "--service",
        "--connect",
        "--protocol",
        "--reconnect",
        "--reconnect-max",
        "--partials",
        "--crash-probability",
      ]) {
        expect(worker.stdout).toContain(flag);
      }
      expect(worker.stdout).toContain("(default: tcp://localhost:5555)");
      expect(client).toMatchObject({ code: 0 });
      for (const flag of ["--count", "--async", "--window", "--body", "--timeout", "--retries"]) {
        expect(client.stdout).toContain(flag);
      }
      expect(mmi).toMatchObject({ code: 0 });
      expect(mmi.stdout).toContain("--service");
    },
    SPAWNING_MS,
  );

  it(
    "argument errors exit with code 2 and say what is wrong",
    async () => {
      const cases: Array<[string[], RegExp]> = [
        [["worker", "--protocol", "0.3"], /--protocol must be 0.1 or 0.2/],
        [["worker", "--service", "mmi.service"], /reserved mmi\. namespace/],
        [["worker", "--partials", "2"], /--partials needs --protocol 0.2/],
        [["client", "--count", "0"], /--count must be an integer >= 1/],
        [["client", "--connect", "localhost"], /--connect must be a ZeroMQ endpoint/],
        [["broker", "--bind", "tcp://*:5555,nowhere"], /--bind must be a ZeroMQ endpoint/],
        [["broker", "--liveness", "1.5"], /--liveness must be an integer/],
        [["mmi", "--no-such-flag"], /no-such-flag/],
        [["no-such-command"], /unknown command/],
      ];
      const outcomes = await Promise.all(cases.map(([args]) => run(args)));
      outcomes.forEach((outcome, i) => {
        const [args, message] = cases[i] as [string[], RegExp];
        expect({ args, code: outcome.code }).toEqual({ args, code: 2 });
        expect(outcome.stderr).toMatch(message);
      });
    },
    SPAWNING_MS,
  );

  it("worker: prints one ready line, says READY for its service, echoes, and says DISCONNECT on SIGTERM", async () => {
    const broker = await fakeBroker();
    const worker = await startProcess({
      ...nodeCommand(cli, ["worker", "--connect", broker.endpoint, "--service", "tea"]),
      name: "worker",
    });
    expect(worker.output.filter((line) => /ready/.test(line))).toEqual([
      `majordomo worker ready: worker for "tea" connected to ${broker.endpoint} (MDP/0.1)`,
    ]);
    const [id, ...ready] = await nextCommand(broker);
    expect(ready).toEqual([E, t("MDPW01"), Buffer.from([1]), t("tea")]);
    await broker.send([id as Buffer, E, t("MDPW01"), Buffer.from([2]), t("C"), E, t("earl grey")]);
    expect((await nextCommand(broker)).slice(1)).toEqual([
      E,
      t("MDPW01"),
      Buffer.from([3]),
      t("C"),
      E,
      t("earl grey"),
    ]);
    await worker.kill("SIGTERM");
    expect((await nextCommand(broker)).slice(1)).toEqual([E, t("MDPW01"), Buffer.from([5])]);
  });

  it("worker --verbose traces every message like the Guide's -v", async () => {
    const broker = await fakeBroker();
    const worker = await startProcess({
      ...nodeCommand(cli, ["worker", "--connect", broker.endpoint, "--verbose"]),
      name: "worker",
    });
    await nextCommand(broker);
    await worker.waitForLine("[006] MDPW01", 5000, { includeSeen: true });
    expect(worker.output.join("\n")).toMatch(/sending READY\n-+\n\[000\]\n\[006\] MDPW01\n/);
  });

  it("client: prints the reply of a 0.1 request and exits 0", async () => {
    const broker = await fakeBroker();
    const outcome = run(["client", "--connect", broker.endpoint, "--body", "ping"]);
    const [id, ...request] = await broker.receive(10_000);
    expect(request).toEqual([E, t("MDPC01"), t("echo"), t("ping")]);
    await broker.send([id as Buffer, E, t("MDPC01"), t("echo"), t("pong")]);
    const { code, stdout } = await outcome;
    expect(code).toBe(0);
    expect(stdout).toBe("reply: pong\n");
  });

  it("client: exits 1 with a message when the service does not answer", async () => {
    const broker = await fakeBroker();
    const outcome = await run([
      "client",
      "--connect",
      broker.endpoint,
      "--timeout",
      "100",
      "--retries",
      "2",
    ]);
    expect(outcome.code).toBe(1);
    expect(outcome.stderr).toMatch(/no reply from service "echo".*after 2 attempt/);
  });

  it("mmi: prints the code; exit 0 on 200, 1 on 404", async () => {
    const broker = await fakeBroker();
    for (const [code, exit] of [
      ["200", 0],
      ["404", 1],
    ] as const) {
      const outcome = run(["mmi", "--connect", broker.endpoint, "--service", "tea"]);
      const [id, ...request] = await broker.receive(10_000);
      expect(request).toEqual([E, t("MDPC01"), t("mmi.service"), t("tea")]);
      await broker.send([id as Buffer, E, t("MDPC01"), t("mmi.service"), t(code)]);
      const { code: status, stdout } = await outcome;
      expect(stdout).toBe(`Lookup tea service: ${code}\n`);
      expect(status).toBe(exit);
    }
  });

  it(
    "broker, worker, client and mmi as processes: sync, async and 0.2 clients all get their replies",
    async () => {
      const endpoint = await allocateAddress();
      const broker = await startProcess({
        ...nodeCommand(cli, ["broker", "--bind", endpoint, "--heartbeat-interval", "200"]),
        name: "broker",
      });
      expect(broker.output).toContain(
        `majordomo broker ready: MDP broker is active at ${endpoint}`,
      );
      await startProcess({
        ...nodeCommand(cli, [
          "worker",
          "--connect",
          endpoint,
          "--protocol",
          "0.2",
          "--partials",
          "1",
          "--heartbeat-interval",
          "200",
        ]),
        name: "worker",
      });
      await broker.waitForLine(/ready for "echo" \(MDP\/0.2\)/, 10_000, { includeSeen: true });
      const [sync, many, async, streaming, lookup] = await Promise.all([
        run(["client", "--connect", endpoint]),
        run(["client", "--connect", endpoint, "--count", "50"]),
        run(["client", "--connect", endpoint, "--count", "200", "--async", "--window", "20"]),
        run(["client", "--connect", endpoint, "--protocol", "0.2", "--body", "hi"]),
        run(["mmi", "--connect", endpoint]),
      ]);
      expect(sync).toMatchObject({ code: 0, stdout: "reply: Hello world\n" });
      expect(many.code).toBe(0);
      expect(many.stdout).toMatch(/^50 requests\/replies processed in \d+ ms/);
      expect(async.code).toBe(0);
      expect(async.stdout).toMatch(/^200 requests\/replies processed in \d+ ms/);
      expect(streaming).toMatchObject({ code: 0, stdout: "partial: hi\nreply: hi\n" });
      expect(lookup).toMatchObject({ code: 0, stdout: "Lookup echo service: 200\n" });
    },
    SPAWNING_MS,
  );
});
