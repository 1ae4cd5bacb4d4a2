import { describe, expect, expectTypeOf, it } from "vitest";
import {
  bindOption,
  type CliContext,
  type CliIo,
  type CliSpec,
  connectOption,
  defineCommand,
  FaultSimulator,
  faultCliOptions,
  faultSimulatorFromCli,
  InvalidArgumentError,
  runCli,
} from "../src/index.js";

/** An io that keeps what is written. */
function captureIo(): CliIo & { out: () => string; err: () => string } {
  let stdout = "";
  let stderr = "";
  return {
    stdout: {
      write(text: string) {
        stdout += text;
      },
    },
    stderr: {
      write(text: string) {
        stderr += text;
      },
    },
    out: () => stdout,
    err: () => stderr,
  };
}

// biome-ignore lint/suspicious/noExplicitAny: contexts of heterogeneous commands.
type AnyContext = CliContext<any>;

/** A bin with a few commands; `seen` receives the context of the command that ran. */
function makeSpec(seen: AnyContext[] = []): CliSpec {
  const server = defineCommand({
    description: "run the demo server",
    options: {
      bind: bindOption("tcp://*:5555"),
      workers: {
        type: "number",
        short: "w",
        integer: true,
        min: 1,
        default: 4,
        placeholder: "n",
        description: "worker count",
      },
      ratio: { type: "number", description: "a ratio", default: 0.5 },
      name: { type: "string", short: "n", description: "a name" },
      quiet: { type: "boolean", short: "q", description: "say less" },
    },
    run(ctx) {
      seen.push(ctx);
      ctx.ready(ctx.options.bind);
    },
  });
  const client = defineCommand({
    description: "run the client",
    options: {
      connect: connectOption("tcp://localhost:5555"),
      retries: { type: "number", integer: true, min: 1, default: 3, description: "tries" },
    },
    positionals: [{ name: "text", description: "what to send" }],
    run(ctx) {
      seen.push(ctx);
      ctx.print(`sending ${ctx.positionals.join(" ")}`);
    },
  });
  const usage = defineCommand({
    description: "always fails with a usage error",
    options: {},
    run() {
      throw new InvalidArgumentError("--foo and --bar cannot be combined");
    },
  });
  const crash = defineCommand({
    description: "always fails",
    options: {},
    async run() {
      await Promise.resolve();
      throw new Error("connection refused");
    },
  });
  const throwsString = defineCommand({
    description: "throws a non-Error",
    options: {},
    run() {
      throw "plain string";
    },
  });
  return {
    name: "demo",
    version: "1.2.3",
    description: "a demo bin",
    commands: { server, client, usage, crash, "throws-string": throwsString },
  };
}

async function run(argv: string[], seen: AnyContext[] = []) {
  const io = captureIo();
  const code = await runCli(makeSpec(seen), argv, io);
  return { code, out: io.out(), err: io.err(), seen };
}

describe("runCli: top level", () => {
  it("prints the main help and returns 2 without arguments", async () => {
    const { code, out, err } = await run([]);
    expect(code).toBe(2);
    expect(err).toBe("");
    expect(out).toContain("demo 1.2.3: a demo bin");
    expect(out).toContain("Usage: demo <command> [options]");
    expect(out).toContain('Run "demo <command> --help" for a command\'s options.');
  });

  it("prints the main help and returns 0 with --help, -h or help", async () => {
    for (const flag of ["--help", "-h", "help"]) {
      const { code, out, err } = await run([flag]);
      expect(code).toBe(0);
      expect(err).toBe("");
      expect(out).toContain("Commands:");
      // Names are padded to the longest command name.
      expect(out).toContain("\n  server         run the demo server\n");
      expect(out).toContain("\n  client         run the client\n");
      expect(out).toContain("\n  throws-string  throws a non-Error\n");
    }
  });

  it("prints the version with --version", async () => {
    const { code, out, err } = await run(["--version"]);
    expect(code).toBe(0);
    expect(out).toBe("1.2.3\n");
    expect(err).toBe("");
  });

  it("rejects an unknown command with 2 and a message on stderr", async () => {
    const { code, out, err } = await run(["bogus"]);
    expect(code).toBe(2);
    expect(out).toBe("");
    expect(err).toMatch(/^demo: unknown command "bogus"\n\n/);
    expect(err).toContain("Commands:");
  });

  it("treats a leading flag other than --help/--version as an unknown command", async () => {
    const { code, err } = await run(["--verbose", "server"]);
    expect(code).toBe(2);
    expect(err).toContain('unknown command "--verbose"');
  });
});

describe("runCli: command help", () => {
  it("lists options with placeholders, defaults and short flags", async () => {
    for (const flag of ["--help", "-h"]) {
      const seen: AnyContext[] = [];
      const { code, out, err } = await run(["server", flag], seen);
      expect(code).toBe(0);
      expect(err).toBe("");
      expect(seen).toEqual([]);
      const lines = out.split("\n");
      expect(lines[0]).toBe("Usage: demo server [options]");
      expect(out).toContain("\nrun the demo server\n");
      expect(out).toContain("Options:");
      const line = (flagText: string) => lines.find((l) => l.trimStart().startsWith(flagText));
      expect(line("--bind <endpoint>")).toMatch(/endpoint to bind \(default: tcp:\/\/\*:5555\)$/);
      expect(line("-w, --workers <n>")).toMatch(/worker count \(default: 4\)$/);
      expect(line("--ratio <number>")).toMatch(/a ratio \(default: 0\.5\)$/);
      expect(line("-n, --name <string>")).toMatch(/a name$/);
      expect(line("-q, --quiet")).toMatch(/say less$/);
      expect(line("-v, --verbose")).toMatch(/log every message and decision$/);
      expect(line("-h, --help")).toMatch(/show this help$/);
      expect(line("--version")).toMatch(/print the version$/);
      // Options without a short flag are indented to line up with "-x, ".
      expect(line("--bind") ?? "").toMatch(/^ {6}--bind <endpoint> /);
      expect(line("-w, --workers") ?? "").toMatch(/^ {2}-w, --workers <n> /);
      // Descriptions start in one column.
      const rows = lines.slice(lines.indexOf("Options:") + 1).filter((l) => l !== "");
      expect(rows).toHaveLength(8);
      const starts = rows.map((row) => /^ {2}.*?\S {2,}(?=\S)/.exec(row)?.[0].length);
      expect(new Set(starts).size).toBe(1);
    }
  });

  it("lists positional arguments", async () => {
    const { code, out } = await run(["client", "--help"]);
    expect(code).toBe(0);
    expect(out.split("\n")[0]).toBe("Usage: demo client [options] <text>");
    expect(out).toContain("Arguments:");
    expect(out).toMatch(/\n {2}<text> +what to send\n/);
    expect(out).toMatch(
      /--connect <endpoint> +endpoint to connect to \(default: tcp:\/\/localhost:5555\)/,
    );
    expect(out).toMatch(/--retries <number> +tries \(default: 3\)/);
  });

  it("prints the version after a command", async () => {
    const { code, out } = await run(["server", "--version"]);
    expect(code).toBe(0);
    expect(out).toBe("1.2.3\n");
  });
});

describe("runCli: option parsing", () => {
  it("applies typed defaults", async () => {
    const seen: AnyContext[] = [];
    const { code, out, err } = await run(["server"], seen);
    expect(code).toBe(0);
    expect(err).toBe("");
    expect(out).toBe("demo server ready: tcp://*:5555\n");
    const ctx = seen[0] as AnyContext;
    expect(ctx.name).toBe("demo");
    expect(ctx.command).toBe("server");
    expect(ctx.options).toEqual({
      bind: "tcp://*:5555",
      workers: 4,
      ratio: 0.5,
      name: undefined,
      quiet: false,
      verbose: false,
      help: false,
      version: false,
    });
    expect(typeof ctx.options.workers).toBe("number");
    expect(ctx.positionals).toEqual([]);
    expect(ctx.verbose).toBe(false);
    expect(ctx.signal).toBeInstanceOf(AbortSignal);
    expect(ctx.signal.aborted).toBe(false);
  });

  it("parses given values, long and short, with = or a separate argument", async () => {
    const seen: AnyContext[] = [];
    const { code } = await run(
      ["server", "--bind=tcp://127.0.0.1:*", "-w", "8", "--ratio", "0.25", "-n", "x y", "-q"],
      seen,
    );
    expect(code).toBe(0);
    expect(seen[0]?.options).toMatchObject({
      bind: "tcp://127.0.0.1:*",
      workers: 8,
      ratio: 0.25,
      name: "x y",
      quiet: true,
    });
  });

  it("accepts a number at its minimum and negative-looking values with =", async () => {
    const seen: AnyContext[] = [];
    expect((await run(["server", "--workers", "1"], seen)).code).toBe(0);
    expect(seen[0]?.options.workers).toBe(1);
    expect((await run(["server", "--ratio=0"], seen)).code).toBe(0);
    expect(seen[1]?.options.ratio).toBe(0);
  });

  const rejects: [string, string[], string][] = [
    ["a non-number", ["--workers", "abc"], '--workers must be an integer >= 1, got "abc"'],
    ["an empty number", ["--workers="], '--workers must be an integer >= 1, got ""'],
    ["a blank number", ["--ratio", " "], '--ratio must be a number >= 0, got " "'],
    ["Infinity", ["--ratio", "Infinity"], '--ratio must be a number >= 0, got "Infinity"'],
    ["a number below min", ["--workers", "0"], '--workers must be an integer >= 1, got "0"'],
    ["a negative number", ["--ratio=-1"], '--ratio must be a number >= 0, got "-1"'],
    ["a non-integer", ["-w", "2.5"], '--workers must be an integer >= 1, got "2.5"'],
  ];
  for (const [what, args, message] of rejects) {
    it(`rejects ${what} with 2 and a message naming the flag`, async () => {
      const seen: AnyContext[] = [];
      const { code, out, err } = await run(["server", ...args], seen);
      expect(code).toBe(2);
      expect(out).toBe("");
      expect(seen).toEqual([]);
      expect(err).toBe(`demo server: ${message}\nRun "demo server --help" for usage.\n`);
    });
  }

  it("accepts a non-integer for a number option that is not integer", async () => {
    const seen: AnyContext[] = [];
    expect((await run(["server", "--ratio", "2.5"], seen)).code).toBe(0);
    expect(seen[0]?.options.ratio).toBe(2.5);
  });

  it("validates endpoint options", async () => {
    const bad = await run(["server", "--bind", "localhost:5555"]);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain(
      'demo server: --bind must be a ZeroMQ endpoint such as tcp://localhost:5555, got "localhost:5555"',
    );
    const port = await run(["client", "--connect", "tcp://h:70000"]);
    expect(port.code).toBe(2);
    expect(port.err).toContain("--connect has a port above 65535");
    const seen: AnyContext[] = [];
    expect((await run(["client", "--connect", "ipc:///tmp/x"], seen)).code).toBe(0);
    expect(seen[0]?.options.connect).toBe("ipc:///tmp/x");
  });

  it("does not validate plain string options as endpoints", async () => {
    const seen: AnyContext[] = [];
    expect((await run(["server", "--name", "localhost:5555"], seen)).code).toBe(0);
    expect(seen[0]?.options.name).toBe("localhost:5555");
  });

  it("rejects an unknown flag with 2, without parseArgs' positional hint", async () => {
    for (const flag of ["--bogus", "-x"]) {
      const { code, out, err } = await run(["server", flag]);
      expect(code).toBe(2);
      expect(out).toBe("");
      expect(err).toBe(
        `demo server: Unknown option '${flag}'\nRun "demo server --help" for usage.\n`,
      );
    }
  });

  it("rejects a string option without its value", async () => {
    const { code, err } = await run(["server", "--bind"]);
    expect(code).toBe(2);
    expect(err).toMatch(/^demo server: .*--bind/);
  });

  it("rejects a value that looks like a flag without =", async () => {
    const { code, out, err } = await run(["server", "--ratio", "-1"]);
    expect(code).toBe(2);
    expect(out).toBe("");
    expect(err).toMatch(/^demo server: Option '--ratio' argument is ambiguous\./);
    expect(err).toMatch(/\nRun "demo server --help" for usage\.\n$/);
  });

  it("rejects a boolean flag given a value", async () => {
    const { code, err } = await run(["server", "--quiet=yes"]);
    expect(code).toBe(2);
    expect(err).toBe(
      `demo server: Option '-q, --quiet' does not take an argument\nRun "demo server --help" for usage.\n`,
    );
  });

  it("rejects an unexpected positional with 2 when the command takes none", async () => {
    const { code, err } = await run(["server", "extra"]);
    expect(code).toBe(2);
    expect(err).toBe(
      'demo server: unexpected argument "extra"\nRun "demo server --help" for usage.\n',
    );
  });

  it("passes positionals to commands that declare them", async () => {
    const seen: AnyContext[] = [];
    const { code, out } = await run(["client", "hello", "--retries", "5", "world"], seen);
    expect(code).toBe(0);
    expect(out).toBe("sending hello world\n");
    expect(seen[0]?.positionals).toEqual(["hello", "world"]);
    expect(seen[0]?.options.retries).toBe(5);
  });
});

describe("runCli: running commands", () => {
  it("ctx.ready prints '<name> <cmd> ready: <detail>' and ctx.print a line", async () => {
    const io = captureIo();
    const spec: CliSpec = {
      name: "majordomo",
      version: "0.0.1",
      description: "d",
      commands: {
        broker: defineCommand({
          description: "broker",
          options: {},
          run(ctx) {
            ctx.ready("x");
            ctx.print("more");
          },
        }),
      },
    };
    expect(await runCli(spec, ["broker"], io)).toBe(0);
    expect(io.out()).toBe("majordomo broker ready: x\nmore\n");
    expect(io.err()).toBe("");
  });

  it("returns 2 when run throws an InvalidArgumentError", async () => {
    const { code, out, err } = await run(["usage"]);
    expect(code).toBe(2);
    expect(out).toBe("");
    expect(err).toBe("demo usage: --foo and --bar cannot be combined\n");
  });

  it("returns 1 when run throws or rejects with another error", async () => {
    const { code, err } = await run(["crash"]);
    expect(code).toBe(1);
    expect(err).toBe("demo crash: connection refused\n");
    const other = await run(["throws-string"]);
    expect(other.code).toBe(1);
    expect(other.err).toBe("demo throws-string: plain string\n");
  });

  it("waits for an async run", async () => {
    const io = captureIo();
    const order: string[] = [];
    const spec: CliSpec = {
      name: "n",
      version: "1",
      description: "d",
      commands: {
        slow: defineCommand({
          description: "slow",
          options: {},
          async run() {
            await new Promise((resolve) => setTimeout(resolve, 5));
            order.push("run done");
          },
        }),
      },
    };
    const code = await runCli(spec, ["slow"], io);
    order.push("returned");
    expect(code).toBe(0);
    expect(order).toEqual(["run done", "returned"]);
  });

  it("sets ctx.verbose with --verbose or -v and logs debug lines to stderr", async () => {
    for (const flag of ["--verbose", "-v"]) {
      const io = captureIo();
      let verbose: boolean | undefined;
      const spec: CliSpec = {
        name: "demo",
        version: "1",
        description: "d",
        commands: {
          work: defineCommand({
            description: "w",
            options: {},
            run(ctx) {
              verbose = ctx.verbose;
              ctx.logger.debug("detail", { n: 1 });
              ctx.logger.info("note");
            },
          }),
        },
      };
      expect(await runCli(spec, ["work", flag], io)).toBe(0);
      expect(verbose).toBe(true);
      expect(io.err()).toMatch(/demo:work DEBUG detail n=1\n/);
      expect(io.err()).toMatch(/demo:work INFO note\n/);
      expect(io.out()).toBe("");
    }
  });

  it("logs at info without --verbose", async () => {
    const io = captureIo();
    let verbose: boolean | undefined;
    const spec: CliSpec = {
      name: "demo",
      version: "1",
      description: "d",
      commands: {
        work: defineCommand({
          description: "w",
          options: {},
          run(ctx) {
            verbose = ctx.verbose;
            ctx.logger.debug("hidden");
            ctx.logger.warn("shown");
          },
        }),
      },
    };
    expect(await runCli(spec, ["work"], io)).toBe(0);
    expect(verbose).toBe(false);
    expect(io.err()).not.toContain("hidden");
    expect(io.err()).toMatch(/^\d{2}:\d{2}:\d{2}\.\d{3} demo:work WARN shown\n$/);
  });
});

describe("option helpers and types", () => {
  it("bindOption and connectOption build endpoint options", () => {
    expect(bindOption("tcp://*:5555")).toEqual({
      type: "string",
      description: "endpoint to bind",
      default: "tcp://*:5555",
      placeholder: "endpoint",
      endpoint: true,
    });
    expect(connectOption("tcp://localhost:5555", "broker endpoint")).toEqual({
      type: "string",
      description: "broker endpoint",
      default: "tcp://localhost:5555",
      placeholder: "endpoint",
      endpoint: true,
    });
    expect(connectOption("ipc:///x").description).toBe("endpoint to connect to");
    expect(bindOption("ipc:///x", "where").description).toBe("where");
  });

  it("defineCommand returns its spec and infers option value types", () => {
    const command = defineCommand({
      description: "typed",
      options: {
        bind: bindOption("tcp://*:5555"),
        count: { type: "number", default: 1, description: "c" },
        limit: { type: "number", description: "l" },
        label: { type: "string", description: "s" },
        flag: { type: "boolean", description: "b" },
      },
      run(ctx) {
        expectTypeOf(ctx.options.bind).toEqualTypeOf<string>();
        expectTypeOf(ctx.options.count).toEqualTypeOf<number>();
        expectTypeOf(ctx.options.limit).toEqualTypeOf<number | undefined>();
        expectTypeOf(ctx.options.label).toEqualTypeOf<string | undefined>();
        expectTypeOf(ctx.options.flag).toEqualTypeOf<boolean>();
      },
    });
    expect(command.description).toBe("typed");
    expect(Object.keys(command.options)).toEqual(["bind", "count", "limit", "label", "flag"]);
  });
});

describe("faultCliOptions / faultSimulatorFromCli", () => {
  function faultSpec(onRun: (simulator: FaultSimulator) => void): CliSpec {
    return {
      name: "lpserver",
      version: "1",
      description: "d",
      commands: {
        server: defineCommand({
          description: "server",
          options: { ...faultCliOptions },
          run(ctx) {
            onRun(faultSimulatorFromCli(ctx.options));
          },
        }),
      },
    };
  }

  it("defaults to no faults", async () => {
    let simulator: FaultSimulator | undefined;
    const io = captureIo();
    expect(
      await runCli(
        faultSpec((s) => (simulator = s)),
        ["server"],
        io,
      ),
    ).toBe(0);
    expect(simulator).toBeInstanceOf(FaultSimulator);
    expect(simulator?.enabled).toBe(false);
    expect(simulator?.next()).toEqual({ kind: "normal", delayMs: 0, cycle: 1 });
  });

  it("passes the flags to the simulator", async () => {
    let simulator: FaultSimulator | undefined;
    const io = captureIo();
    const argv = ["server", "--crash-after", "2", "--slow-probability", "1", "--work-ms", "10"];
    expect(
      await runCli(
        faultSpec((s) => (simulator = s)),
        [...argv, "--slow-ms=5"],
        io,
      ),
    ).toBe(0);
    expect(simulator?.enabled).toBe(true);
    expect(simulator?.next()).toEqual({ kind: "normal", delayMs: 10, cycle: 1 });
    expect(simulator?.next()).toEqual({ kind: "normal", delayMs: 10, cycle: 2 });
    expect(simulator?.next()).toEqual({ kind: "slow", delayMs: 15, cycle: 3 });
  });

  it("lists the fault flags in the command help", async () => {
    const io = captureIo();
    expect(
      await runCli(
        faultSpec(() => {}),
        ["server", "--help"],
        io,
      ),
    ).toBe(0);
    expect(io.out()).toMatch(/--crash-after <n> +requests handled normally .*\(default: 0\)/);
    expect(io.out()).toMatch(
      /--slow-ms <ms> +extra time an overloaded request takes \(default: 3000\)/,
    );
  });

  it("rejects a non-integer --crash-after at parse time", async () => {
    const io = captureIo();
    expect(
      await runCli(
        faultSpec(() => {}),
        ["server", "--crash-after", "1.5"],
        io,
      ),
    ).toBe(2);
    expect(io.err()).toContain('--crash-after must be an integer >= 0, got "1.5"');
  });

  it("turns a probability above 1 into a usage error (2) from run", async () => {
    const io = captureIo();
    // faultSimulatorFromCli throws inside run, so the command never gets the simulator.
    let reached = false;
    const argv = ["server", "--crash-probability", "1.5"];
    const code = await runCli(
      faultSpec(() => (reached = true)),
      argv,
      io,
    );
    expect(reached).toBe(false);
    expect(code).toBe(2);
    expect(io.err()).toBe("lpserver server: crashProbability must be from 0 to 1, got 1.5\n");
  });
});
