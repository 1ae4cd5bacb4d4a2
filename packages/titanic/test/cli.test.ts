import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  allocateAddress,
  killAllProcesses,
  nodeCommand,
  type ProcessOutcome,
  runToCompletion,
  startProcess,
} from "@zmq-patterns/core/testing";
import { MajordomoBroker, MajordomoWorker } from "@zmq-patterns/majordomo";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

const cli = join(import.meta.dirname, "../src/cli.ts");
/** Tests that start several processes: each pays for its own TypeScript loader. */
const SPAWNING_MS = 60_000;
const UUID = /^[0-9A-F]{32}$/;

let dir: string;
const cleanup: Array<{ close(): unknown }> = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "titanic-cli-"));
});

afterEach(async () => {
  await killAllProcesses();
  for (const item of cleanup.splice(0).reverse()) await item.close();
  await rm(dir, { recursive: true, force: true });
});

/** Runs the bin to completion (killed after `timeoutMs`) and collects its output. */
function run(args: string[], timeoutMs = 20_000): Promise<ProcessOutcome> {
  return runToCompletion(cli, args, timeoutMs);
}

/** Heartbeats of broker, workers and Titanic: a killed Titanic's workers are expired quickly. */
const HEARTBEAT_MS = 250;

/** An in-process broker and, on demand, echo workers that count what they run. */
async function majordomo() {
  const endpoint = await allocateAddress();
  const broker = await MajordomoBroker.start({ bind: endpoint, heartbeatIntervalMs: HEARTBEAT_MS });
  cleanup.push(broker);
  const executions: string[] = [];
  const worker = async (service: string) => {
    cleanup.push(
      await MajordomoWorker.start({
        broker: endpoint,
        service,
        heartbeatIntervalMs: HEARTBEAT_MS,
        handler: (body) => {
          executions.push(body.map(String).join(" "));
          return body;
        },
      }),
    );
  };
  return { endpoint, worker, executions };
}

function titanicServer(endpoint: string, ...more: string[]) {
  return startProcess({
    ...nodeCommand(cli, [
      "server",
      "--broker",
      endpoint,
      "--dir",
      dir,
      "--retry-backoff",
      "50",
      "--max-retry-backoff",
      "200",
      "--heartbeat-interval",
      String(HEARTBEAT_MS),
      ...more,
    ]),
    name: "titanic server",
    readyPattern: /^titanic server ready: /,
  });
}

describe("titanic CLI", () => {
  it(
    "--help lists the commands, and each command's --help its options",
    async () => {
      const [main, server, client, request, reply, close] = await Promise.all([
        run(["--help"]),
        run(["server", "--help"]),
        run(["client", "--help"]),
        run(["request", "--help"]),
        run(["reply", "--help"]),
        run(["close", "--help"]),
      ]);
      expect(main.code).toBe(0);
      for (const command of ["server", "client", "request", "reply", "close"]) {
        expect(main.stdout).toMatch(new RegExp(`^  ${command} `, "m"));
      }
      expect(server.code).toBe(0);
      for (const flag of [
        "--broker",
        "--dir",
        "--attempt-timeout",
        "--max-attempt-timeout",
        "--retry-backoff",
        "--concurrency",
        "--per-service",
        "--no-mmi",
        "--collect-max-age",
        "--no-collect",
        "--no-fsync",
        "--stats-interval",
      ]) {
        expect(server.stdout).toContain(flag);
      }
      expect(server.stdout).toContain("(default: tcp://localhost:5555)");
      expect(server.stdout).toContain("(default: .titanic)");
      expect(client.code).toBe(0);
      for (const flag of [
        "--service",
        "--body",
        "--count",
        "--poll-ms",
        "--timeout",
        "--retries",
      ]) {
        expect(client.stdout).toContain(flag);
      }
      expect(request).toMatchObject({ code: 0 });
      expect(reply.stdout).toContain("<uuid>");
      expect(reply.stdout).toContain("--wait");
      expect(close.stdout).toContain("<uuid>");
    },
    SPAWNING_MS,
  );

  it(
    "argument errors exit with code 2 and say what is wrong",
    async () => {
      const cases: Array<[string[], RegExp]> = [
        [["server", "--broker", "localhost"], /--broker must be a ZeroMQ endpoint/],
        [["server", "--per-service", "0"], /--per-service must be an integer >= 1/],
        [
          ["server", "--attempt-timeout", "100", "--max-attempt-timeout", "50"],
          /maxAttemptTimeoutMs/,
        ],
        [["client", "--count", "0"], /--count must be an integer >= 1/],
        [["reply", "../../etc/passwd"], /a UUID is 32 hexadecimal characters/],
        [["close"], /give the request's UUID/],
        [["request", "--no-such-flag"], /no-such-flag/],
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

  it(
    "server and client as processes: the client prints the UUID, then the reply, and closes the request",
    async () => {
      const mdp = await majordomo();
      await mdp.worker("echo");
      const server = await titanicServer(mdp.endpoint);
      expect(server.output).toContain(
        `titanic server ready: Titanic serves titanic.request, titanic.reply and titanic.close via ${mdp.endpoint}, storage in ${dir} (0 pending resumed)`,
      );
      const outcome = await run(["client", "--broker", mdp.endpoint, "--body", "Hello Titanic"]);
      expect(outcome.code).toBe(0);
      const [first, second, ...rest] = outcome.stdout.split("\n");
      expect(first).toMatch(/^request UUID [0-9A-F]{32}$/);
      expect(second).toBe("reply: Hello Titanic");
      expect(rest).toEqual([""]);
      const uuid = (first as string).slice("request UUID ".length);
      await server.waitForLine(`closed ${uuid}`, 5000, { includeSeen: true });
      for (const line of [
        `stored ${uuid} for "echo"`,
        `dispatched ${uuid} to "echo"`,
        `replied ${uuid} from "echo"`,
      ]) {
        expect(server.output.some((text) => text.includes(line))).toBe(true);
      }
      expect(mdp.executions).toEqual(["Hello Titanic"]);
      expect(await readdir(dir)).toEqual([]);

      const many = await run([
        "client",
        "--broker",
        mdp.endpoint,
        "--count",
        "20",
        "--poll-ms",
        "10",
      ]);
      expect(many.code).toBe(0);
      expect(many.stdout).toMatch(/^20 requests\/replies processed in \d+ ms \(\d+\/s\)\n$/);
    },
    SPAWNING_MS,
  );

  it(
    "request, reply and close one step at a time; reply of a closed request exits 1 with 400",
    async () => {
      const mdp = await majordomo();
      await titanicServer(mdp.endpoint);
      const submitted = await run([
        "request",
        "--broker",
        mdp.endpoint,
        "--service",
        "later",
        "--body",
        "step",
      ]);
      expect(submitted.code).toBe(0);
      const uuid = submitted.stdout.trim();
      expect(uuid).toMatch(UUID);
      expect(await run(["reply", "--broker", mdp.endpoint, uuid])).toMatchObject({
        code: 0,
        stdout: "pending\n",
      });
      await mdp.worker("later");
      expect(
        await run([
          "reply",
          "--broker",
          mdp.endpoint,
          uuid.toLowerCase(),
          "--wait",
          "--poll-ms",
          "20",
        ]),
      ).toMatchObject({ code: 0, stdout: "reply: step\n" });
      expect(await run(["close", "--broker", mdp.endpoint, uuid])).toMatchObject({
        code: 0,
        stdout: `closed ${uuid}\n`,
      });
      const gone = await run(["reply", "--broker", mdp.endpoint, uuid]);
      expect(gone.code).toBe(1);
      expect(gone.stderr).toMatch(/400 unknown request/);
    },
    SPAWNING_MS,
  );

  it(
    "TI-B1/TI-5: a request acknowledged before the server is killed (SIGKILL) runs after a restart",
    async () => {
      const mdp = await majordomo();
      const server = await titanicServer(mdp.endpoint);
      const submitted = await run([
        "request",
        "--broker",
        mdp.endpoint,
        "--service",
        "later",
        "--body",
        "survivor",
      ]);
      const uuid = submitted.stdout.trim();
      expect(uuid).toMatch(UUID);
      await server.restart(); // SIGKILL, then the same command again
      expect(server.output).toContainEqual(expect.stringMatching(/\(1 pending resumed\)$/));
      await mdp.worker("later");
      expect(
        await run([
          "reply",
          "--broker",
          mdp.endpoint,
          uuid,
          "--wait",
          "--poll-ms",
          "20",
          "--timeout",
          "15000",
        ]),
      ).toMatchObject({ code: 0, stdout: "reply: survivor\n" });
      expect(mdp.executions).toEqual(["survivor"]);
    },
    SPAWNING_MS,
  );
});
