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
import { allocateBase } from "./support.js";

const cli = join(import.meta.dirname, "../src/cli.ts");
/** Tests that start several processes: each pays for its own TypeScript loader. */
const SPAWNING_MS = 90_000;
/** How long a process may take to say something that normally takes a second. */
const LINE_MS = 20_000;
const HOST = "tcp://127.0.0.1";

afterEach(async () => {
  await killAllProcesses();
});

/** Runs the bin to completion (killed after `timeoutMs`) and collects its output. */
function run(args: string[], timeoutMs = 30_000): Promise<ProcessOutcome> {
  return runToCompletion(cli, args, timeoutMs);
}

/** Runs the bin, expects it to succeed, and returns its output after the ready line. */
async function ok(args: string[]): Promise<string> {
  const outcome = await run(args);
  expect(outcome, `clone ${args.join(" ")}`).toMatchObject({ code: 0 });
  const [ready, ...rest] = outcome.stdout.split("\n");
  expect(ready).toMatch(/^clone client ready: servers /);
  return rest.join("\n");
}

function start(args: string[], name: string): Promise<ChildProcessHandle> {
  return startProcess({ ...nodeCommand(cli, args), name, readyTimeoutMs: LINE_MS });
}

describe("clone CLI", () => {
  it(
    "--help lists the commands, and each command's --help its options",
    async () => {
      const [main, server, client, none] = await Promise.all([
        run(["--help"]),
        run(["server", "--help"]),
        run(["client", "--help"]),
        run([]),
      ]);
      expect(main.code).toBe(0);
      for (const command of ["server", "client"]) {
        expect(main.stdout).toMatch(new RegExp(`^  ${command} `, "m"));
      }
      expect(none.code).toBe(2);
      expect(server.code).toBe(0);
      for (const flag of [
        "--primary",
        "--backup",
        "--port",
        "--host",
        "--peer-snapshot",
        "--peer-publisher",
        "--local",
        "--remote",
        "--heartbeat-interval",
        "--stats-interval",
      ]) {
        expect(server.stdout).toContain(flag);
      }
      expect(client.code).toBe(0);
      for (const flag of [
        "--subtree",
        "--set",
        "--delete",
        "--ttl",
        "--dump",
        "--random",
        "--interval",
        "--quiet",
        "--server-ttl",
      ]) {
        expect(client.stdout).toContain(flag);
      }
      expect(client.stdout).toContain("tcp://localhost:5556 tcp://localhost:5566");
    },
    SPAWNING_MS,
  );

  it(
    "argument errors exit with code 2 and say what is wrong, without waiting for any server",
    async () => {
      const cases: Array<[string[], RegExp]> = [
        [["server", "--primary", "--backup"], /at most one of --primary and --backup/],
        [["server", "--local", "tcp://*:1"], /need --primary or --backup/],
        [["server", "--peer-snapshot", "tcp://localhost:1"], /need --primary or --backup/],
        [["server", "--port", "abc"], /--port must be an integer/],
        [["server", "--port", "65534"], /port must be an integer from 1 to 65533/],
        [["server", "--remote", "nowhere"], /--remote must be a ZeroMQ endpoint/],
        [["client", "--set", "novalue"], /--set needs key=value/],
        [["client", "--set", "=v"], /--set needs key=value/],
        [
          ["client", "--set", "a=1", "--dump"],
          /at most one of --set, --delete, --dump and --random/,
        ],
        [["client", "--ttl=-1"], /--ttl must be a number >= 0/],
        [["client", "nowhere"], /servers\[0\] must be a ZeroMQ endpoint/],
        [["client", "ipc://clone.sock"], /server address must be like tcp:\/\/host:port/],
        [["client", "--subtree", "x".repeat(300)], /subtree must be a string of at most 255 bytes/],
        [["bogus"], /unknown command "bogus"/],
        [["server", "--bogus"], /bogus/],
      ];
      const outcomes = await Promise.all(cases.map(([args]) => run(args)));
      for (const [i, [args, message]] of cases.entries()) {
        const outcome = outcomes[i] as ProcessOutcome;
        expect(outcome.code, args.join(" ")).toBe(2);
        expect(outcome.stderr, args.join(" ")).toMatch(message);
      }
    },
    SPAWNING_MS,
  );

  it(
    "a standalone server and clients: --set (with --ttl), --delete, --dump, and a watching client",
    async () => {
      const port = await allocateBase();
      const server = await start(["server", "--port", String(port), "--host", HOST], "server");
      expect(server.output).toContain(
        `clone server ready: standalone, snapshot ${HOST}:${port}, publisher ${HOST}:${port + 1}, collector ${HOST}:${port + 2}`,
      );
      const address = `${HOST}:${port}`;
      const watcher = await start(["client", address], "watcher");
      await watcher.waitForLine(/synchronised from/, LINE_MS, { includeSeen: true });

      expect(await ok(["client", address, "--set", "a=1"])).toBe("set a\n");
      await watcher.waitForLine("#1 a=1", LINE_MS, { includeSeen: true });
      await ok(["client", address, "--set", "b=2", "--ttl", "60"]);
      await ok(["client", address, "--set", "c=x=y"]);
      expect(await ok(["client", address, "--delete", "a"])).toBe("deleted a\n");
      await watcher.waitForLine("#4 a deleted", LINE_MS, { includeSeen: true });
      const dump = await ok(["client", address, "--dump"]);
      expect(dump).toBe("b=2\nc=x=y\nkeys 2 sequence 4\n");
      // A subtree dump sees only its keys.
      await ok(["client", address, "--set", "/s/k=v"]);
      expect(await ok(["client", address, "--subtree", "/s/", "--dump"])).toBe(
        "/s/k=v\nkeys 1 sequence 5\n",
      );
      // The watcher printed every change in order.
      expect(watcher.lines.filter((l) => l.stream === "stdout").map((l) => l.text)).toEqual([
        `clone client ready: servers ${address}`,
        "#1 a=1",
        "#2 b=2",
        "#3 c=x=y",
        "#4 a deleted",
        "#5 /s/k=v",
      ]);
      expect((await watcher.stop()).code).toBe(0);
      expect((await server.stop()).code).toBe(0);
    },
    SPAWNING_MS,
  );

  it(
    "a pair with custom ports settles (primary active, backup passive and synchronised) and serves clients",
    async () => {
      const [p, b] = [await allocateBase(), await allocateBase()];
      const [pState, bState] = [await allocateAddress(), await allocateAddress()];
      const pair = (
        role: "primary" | "backup",
        port: number,
        peer: number,
        local: string,
        remote: string,
      ) => [
        "server",
        `--${role}`,
        "--port",
        String(port),
        "--host",
        HOST,
        "--peer-snapshot",
        `${HOST}:${peer}`,
        "--peer-publisher",
        `${HOST}:${peer + 1}`,
        "--local",
        local,
        "--remote",
        remote,
        "--heartbeat-interval",
        "200",
      ];
      const primary = await start(pair("primary", p, b, pState, bState), "primary");
      expect(primary.output).toContain(
        `clone server ready: primary, snapshot ${HOST}:${p}, publisher ${HOST}:${p + 1}, collector ${HOST}:${p + 2}`,
      );
      const backup = await start(
        [...pair("backup", b, p, bState, pState), "--stats-interval", "300"],
        "backup",
      );
      await primary.waitForLine("active (ACTIVE)", LINE_MS, { includeSeen: true });
      await backup.waitForLine("passive (PASSIVE)", LINE_MS, { includeSeen: true });
      await backup.waitForLine("synchronised from the active: 0 keys, sequence 0", LINE_MS, {
        includeSeen: true,
      });
      const stats = await backup.waitForLine(
        /^stats \{.*"mode":"passive".*"synced":true/,
        LINE_MS,
        {
          includeSeen: true,
        },
      );
      expect(JSON.parse(stats.slice("stats ".length))).toMatchObject({
        mode: "passive",
        state: "PASSIVE",
        synced: true,
      });

      const servers = [`${HOST}:${p}`, `${HOST}:${b}`];
      expect(await ok(["client", ...servers, "--set", "k=v"])).toBe("set k\n");
      await backup.waitForLine(/^stats \{.*"sequence":1/, LINE_MS);
      // A client that asks the passive backup first moves on to the active primary.
      const dump = await run([
        "client",
        servers[1] as string,
        servers[0] as string,
        "--dump",
        "--server-ttl",
        "1000",
      ]);
      expect(dump).toMatchObject({
        code: 0,
        stdout: `clone client ready: servers ${servers[1]}, ${servers[0]}\nk=v\nkeys 1 sequence 1\n`,
      });
      expect(dump.stderr).toMatch(/failing over to/);
      expect(primary.output.join("\n")).not.toMatch(/fatal/);
      expect(backup.output.join("\n")).not.toMatch(/fatal/);
      expect((await backup.stop()).code).toBe(0);
      expect((await primary.stop()).code).toBe(0);
    },
    SPAWNING_MS,
  );
});
