import { join } from "node:path";
import {
  allocateAddress,
  killAllProcesses,
  nodeCommand,
  type ProcessOutcome,
  runToCompletion,
  startProcess,
} from "@zmq-patterns/core/testing";
import { afterEach, describe, expect, it } from "vitest";
import { closeAll, startClient, str } from "./support.js";

const cli = join(import.meta.dirname, "../src/cli.ts");
/** Tests that start several processes at once: each pays for its own TypeScript loader. */
const SPAWNING_MS = 60_000;
afterEach(async () => {
  await closeAll();
  await killAllProcesses();
});

/** Runs the bin to completion (killed after `timeoutMs`) and collects its output. */
function run(args: string[], timeoutMs = 30_000): Promise<ProcessOutcome> {
  return runToCompletion(cli, args, timeoutMs);
}

function startCliServer(model: number, bind: string, extra: string[] = []) {
  return startProcess({
    ...nodeCommand(cli, ["server", "--model", String(model), "--bind", bind, ...extra]),
    name: `server-${model}`,
  });
}

describe("freelance CLI", () => {
  it(
    "--help lists both commands, and each command's --help its options",
    async () => {
      const [main, server, client] = await Promise.all([
        run(["--help"]),
        run(["server", "--help"]),
        run(["client", "--help"]),
      ]);
      expect(main.code).toBe(0);
      expect(main.stdout).toMatch(/^ {2}server /m);
      expect(main.stdout).toMatch(/^ {2}client /m);
      expect(server.code).toBe(0);
      for (const flag of ["--model", "--bind", "--identity", "--delay", "--stats-interval"]) {
        expect(server.stdout).toContain(flag);
      }
      expect(server.stdout).toContain("(default: tcp://*:5555)");
      expect(client.code).toBe(0);
      for (const flag of ["--model", "--requests", "--interval", "--timeout", "--body"]) {
        expect(client.stdout).toContain(flag);
      }
    },
    SPAWNING_MS,
  );

  it(
    "usage errors exit with code 2 and say what is wrong",
    async () => {
      const endpoint = await allocateAddress();
      const cases: Array<[string[], RegExp]> = [
        [["server"], /--model is required/],
        [["server", "--model", "4"], /--model must be 1, 2 or 3, got 4/],
        [["server", "--model", "0"], /--model must be an integer >= 1/],
        [["server", "--model", "two"], /--model must be an integer/],
        [["server", "--model", "1", "--identity", endpoint], /identity is only used by model 3/],
        [["server", "--model", "3", "--bind", "nowhere"], /--bind must be a ZeroMQ endpoint/],
        [["client", endpoint], /--model is required/],
        [["client", "--model", "5", endpoint], /--model must be 1, 2 or 3/],
        [["client", "--model", "3"], /give at least one server endpoint/],
        [["client", "--model", "3", "localhost"], /endpoint must be a ZeroMQ endpoint/],
        [["client", "--model", "3", "--timeout", "0", endpoint], /--timeout must be a number >= 1/],
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

  it.each([
    [1, "random name"],
    [2, "OK"],
    [3, "OK"],
  ])(
    "model %i: the server answers the client, which prints each request and a summary and exits 0",
    async (model, reply) => {
      const bind = await allocateAddress();
      const server = await startCliServer(model, bind);
      const identity = model === 3 ? `, identity ${bind}` : "";
      expect(server.output).toContain(
        `freelance server ready: model ${model}, endpoint ${bind}${identity}`,
      );
      const client = await run(["client", "--model", String(model), "--requests", "3", bind]);
      // Info lines only (model 3 says when a server is up), no warning or error.
      expect(client.stderr).not.toMatch(/ (WARN|ERROR) /);
      expect(client.code).toBe(0);
      const lines = client.stdout.trim().split("\n");
      expect(lines[0]).toBe(`freelance client ready: model ${model}, servers ${bind}`);
      for (const n of [1, 2, 3]) {
        expect(lines[n]).toMatch(new RegExp(`^request ${n} ok in [0-9.]+ ms: ${reply}$`));
      }
      expect(lines[4]).toMatch(/^done: 3 ok, 0 failed, average round trip \d+ us$/);
      expect(lines).toHaveLength(5);
    },
    SPAWNING_MS,
  );

  it.each([1, 2, 3])(
    "model %i: a client with no server reports the failure and exits 1",
    async (model) => {
      const nobody = await allocateAddress();
      const client = await run(["client", "--model", String(model), "--timeout", "300", nobody]);
      expect(client.code).toBe(1);
      expect(client.stdout).toMatch(/^request 1 failed: /m);
      expect(client.stdout).toMatch(/^done: 0 ok, 1 failed$/m);
      expect(client.stderr).toMatch(/1 of 1 request\(s\) failed/);
    },
    SPAWNING_MS,
  );

  it(
    "server --stats-interval prints its counters, --identity sets the model-3 identity, SIGTERM stops it",
    async () => {
      const bind = await allocateAddress();
      const identity = bind.replace("127.0.0.1", "localhost");
      const server = await startCliServer(3, bind, [
        "--identity",
        identity,
        "--stats-interval",
        "100",
      ]);
      expect(server.output).toContain(
        `freelance server ready: model 3, endpoint ${bind}, identity ${identity}`,
      );
      const client = startClient({ model: 3, endpoints: [identity] });
      expect(str(await client.request("x"))).toEqual(["OK"]);
      const stats = await server.waitForLine(/^stats \{"requests":1,/, 10_000);
      expect(JSON.parse(stats.slice("stats ".length))).toMatchObject({
        requests: 1,
        handlerErrors: 0,
        inFlight: 0,
        dropped: {},
      });
      expect(await server.stop(10_000)).toEqual({ code: 0, signal: null });
    },
    SPAWNING_MS,
  );

  it(
    "server --delay answers each request that much later; the model-1 server still echoes",
    async () => {
      const bind = await allocateAddress();
      await startCliServer(1, bind, ["--delay", "300"]);
      const client = startClient({ model: 1, endpoints: [bind], attemptTimeoutMs: 10_000 });
      const started = performance.now();
      expect(str(await client.request("slow echo"))).toEqual(["slow echo"]);
      expect(performance.now() - started).toBeGreaterThanOrEqual(300 - 30);
    },
    SPAWNING_MS,
  );

  it(
    "server exits 1 when its endpoint is taken",
    async () => {
      const bind = await allocateAddress();
      await startCliServer(2, bind);
      const second = await run(["server", "--model", "2", "--bind", bind]);
      expect(second.code).toBe(1);
      expect(second.stderr).toMatch(/freelance server: .*(in use|EADDRINUSE)/i);
    },
    SPAWNING_MS,
  );
});
