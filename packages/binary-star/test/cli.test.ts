import { join } from "node:path";
import {
  allocateAddress,
  type ChildProcessHandle,
  killAllProcesses,
  nodeCommand,
  type ProcessOutcome,
  runToCompletion,
  startProcess,
} from "@zmq-patterns/core/testing";
import { afterEach, describe, expect, it } from "vitest";
import { closeTracked, FakePeer } from "./support.js";

const cli = join(import.meta.dirname, "../src/cli.ts");
/** Tests that start several processes: each pays for its own TypeScript loader. */
const SPAWNING_MS = 60_000;
/** Waits on child processes: a loaded machine starts and schedules them slowly. */
const CHILD_MS = 15_000;

afterEach(async () => {
  await closeTracked();
  await killAllProcesses();
});

/** Runs the bin to completion (killed after `timeoutMs`) and collects its output. */
function run(args: string[], timeoutMs = 30_000): Promise<ProcessOutcome> {
  return runToCompletion(cli, args, timeoutMs);
}

/** Timing of the pairs run here: fast heartbeats, a peer expiry with room for a loaded machine. */
const TIMING = ["--heartbeat-interval", "100", "--peer-expiry", "1000"];

async function startServer(
  role: "primary" | "backup",
  endpoints: { voter: string; local: string; remote: string },
): Promise<ChildProcessHandle> {
  return startProcess({
    ...nodeCommand(cli, [
      "server",
      `--${role}`,
      "--voter",
      endpoints.voter,
      "--local",
      endpoints.local,
      "--remote",
      endpoints.remote,
      ...TIMING,
    ]),
    name: role,
    readyPattern: /binary-star server ready/,
    readyTimeoutMs: CHILD_MS,
  });
}

describe("binary-star CLI", () => {
  it(
    "--help describes both commands and their options",
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
      for (const flag of [
        "-p, --primary",
        "-b, --backup",
        "--voter <endpoint>",
        "--local <endpoint>",
        "--remote <endpoint>",
        "--heartbeat-interval <ms>",
        "--peer-expiry <ms>",
        "--stats-interval <ms>",
      ]) {
        expect(server.stdout).toContain(flag);
      }
      expect(server.stdout).toContain("tcp://*:5001 primary, tcp://*:5002 backup");
      expect(client.code).toBe(0);
      for (const flag of [
        "--primary-server <endpoint>",
        "--backup-server <endpoint>",
        "--timeout <ms>",
        "--settle-delay <ms>",
        "--interval <ms>",
        "--requests <n>",
      ]) {
        expect(client.stdout).toContain(flag);
      }
      expect(client.stdout).toContain("(default: tcp://localhost:5001)");
      expect(client.stdout).toContain("(default: tcp://localhost:5002)");
    },
    SPAWNING_MS,
  );

  it(
    "usage errors exit with status 2 and say what is wrong",
    async () => {
      const [voter, local, remote] = [
        await allocateAddress(),
        await allocateAddress(),
        await allocateAddress(),
      ];
      const where = ["--voter", voter, "--local", local, "--remote", remote];
      const cases: Array<[string[], RegExp]> = [
        [["server", ...where], /exactly one of --primary \(-p\) and --backup \(-b\)/],
        [["server", "-p", "-b", ...where], /exactly one of --primary \(-p\) and --backup \(-b\)/],
        [["server", "-p", "--voter", "nowhere"], /--voter must be a ZeroMQ endpoint/],
        [["server", "-b", "--remote", "tcp://localhost"], /--remote must be a ZeroMQ endpoint/],
        [["server", "-p", "--heartbeat-interval", "soon"], /--heartbeat-interval must be a number/],
        [
          ["server", "-p", "--heartbeat-interval", "0"],
          /--heartbeat-interval must be a number >= 1/,
        ],
        [
          ["server", "-p", ...where, "--heartbeat-interval", "500", "--peer-expiry", "500"],
          /peerExpiryMs \(500\) must exceed heartbeatIntervalMs \(500\)/,
        ],
        [["client", "--requests", "1.5"], /--requests must be an integer/],
        [["client", "--timeout", "0"], /--timeout must be a number >= 1/],
        [
          ["client", "--primary-server", "localhost:5001"],
          /--primary-server must be a ZeroMQ endpoint/,
        ],
        [["server", "--master"], /master/],
        [["nonsense"], /unknown command/],
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
    "1.12.5 / 1.12.11 a server pair and the client: replies from the primary, then from the backup once the primary is killed",
    async () => {
      const [pVoter, pState, bVoter, bState] = [
        await allocateAddress(),
        await allocateAddress(),
        await allocateAddress(),
        await allocateAddress(),
      ];
      const [primary, backup] = await Promise.all([
        startServer("primary", { voter: pVoter, local: pState, remote: bState }),
        startServer("backup", { voter: bVoter, local: bState, remote: pState }),
      ]);
      expect(primary.output).toContain(
        `binary-star server ready: primary, voter ${pVoter}, state ${pState}, peer ${bState}`,
      );
      await primary.waitForLine(/peer is passive, ready as active/, CHILD_MS, {
        includeSeen: true,
      });
      await backup.waitForLine(/peer is active, ready as passive/, CHILD_MS, {
        includeSeen: true,
      });

      const clientArgs = [
        "client",
        "--primary-server",
        pVoter,
        "--backup-server",
        bVoter,
        "--interval",
        "10",
      ];
      const normal = await run([...clientArgs, "--requests", "3", "--timeout", "5000"]);
      expect(normal.code).toBe(0);
      expect(normal.stdout).toBe(
        [
          `binary-star client ready: servers ${pVoter}, ${bVoter}`,
          `reply 1 from ${pVoter}`,
          `reply 2 from ${pVoter}`,
          `reply 3 from ${pVoter}`,
          "",
        ].join("\n"),
      );

      await primary.kill("SIGKILL");
      // The settle delay exceeds the peer expiry, so the first resend to the backup is accepted.
      const failover = await run([
        ...clientArgs,
        "--requests",
        "2",
        "--timeout",
        "500",
        "--settle-delay",
        "1200",
      ]);
      expect(failover.code).toBe(0);
      expect(failover.stdout).toContain(`reply 1 from ${bVoter}\nreply 2 from ${bVoter}\n`);
      expect(failover.stderr).toContain(`no reply from ${pVoter}, failing over to ${bVoter}`);
      await backup.waitForLine(/client vote, peer silent, ready as active/, CHILD_MS, {
        includeSeen: true,
      });
      expect(backup.running).toBe(true);
    },
    SPAWNING_MS,
  );

  it(
    "1.12.9 / 1.11.6 an active server hearing another active one exits with status 3",
    async () => {
      const peer = await FakePeer.start();
      const server = await startServer("primary", {
        voter: await allocateAddress(),
        local: await allocateAddress(),
        remote: peer.endpoint,
      });
      await peer.announce(["2"]);
      await server.waitForLine(/peer is passive, ready as active/, CHILD_MS, {
        includeSeen: true,
      });
      await peer.announce(["3"]);
      const exit = await server.waitForExit(CHILD_MS);
      expect(exit).toEqual({ code: 3, signal: null });
      expect(server.output.join("\n")).toMatch(
        /ERROR fatal error: dual active servers \(split brain\), aborting \(we were ACTIVE, peer says ACTIVE\)/,
      );
    },
    SPAWNING_MS,
  );
});
