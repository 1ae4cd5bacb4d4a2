import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ClosedError, TimeoutError } from "../src/errors.js";
import {
  type ChildProcessHandle,
  killAllProcesses,
  nodeCommand,
  runToCompletion,
  startProcess,
} from "../src/testing/index.js";

const fixtures = join(import.meta.dirname, "fixtures");
const fixture = (file: string, args: string[] = []) => nodeCommand(join(fixtures, file), args);

/** True while a process with this pid exists (signal 0 only checks). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    expect((err as NodeJS.ErrnoException).code).toBe("ESRCH");
    return false;
  }
}

afterEach(killAllProcesses);

describe("nodeCommand", () => {
  it("runs JavaScript with plain Node and TypeScript through tsx from source", () => {
    expect(nodeCommand("bin.mjs", ["--x"])).toEqual({
      command: process.execPath,
      args: ["bin.mjs", "--x"],
    });
    const ts = nodeCommand("bin.ts", ["--x"]);
    expect(ts.command).toBe(process.execPath);
    expect(ts.args[0]).toBe("--import");
    expect(ts.args[1]).toMatch(/tsx/);
    expect(ts.args.slice(2)).toEqual(["--conditions=@zmq-patterns/source", "bin.ts", "--x"]);
  });
});

describe("runToCompletion", () => {
  it("collects stdout, stderr and the exit code of a command that finishes", async () => {
    const outcome = await runToCompletion(join(fixtures, "testing-exit-with.mjs"), ["3", "a", "b"]);
    expect(outcome).toEqual({ code: 3, stdout: "out a b\n", stderr: "err a b\n" });
  });

  it("kills a command that does not finish within the time given", async () => {
    const outcome = await runToCompletion(
      join(fixtures, "testing-exit-with.mjs"),
      ["hang", "x"],
      2000,
    );
    // Killed by SIGKILL: no exit code.
    expect(outcome.code).toBeNull();
  });
});

describe("startProcess", () => {
  it("resolves once the ready line is printed and collects both streams", async () => {
    const child = await startProcess(fixture("testing-ready.mjs"));
    expect(child.name).toBe("testing-ready.mjs");
    expect(child.running).toBe(true);
    expect(child.exitInfo).toBeUndefined();
    expect(child.output).toContain("ready");
    expect(child.output).toContain(`pid=${child.pid}`);
    // The two pipes are read independently: the stderr line may come after "ready".
    await child.waitForLine("starting on stderr", 5000, { includeSeen: true });
    expect(child.lines).toContainEqual({ stream: "stderr", text: "starting on stderr" });
    expect(alive(child.pid)).toBe(true);
  });

  it("starts a TypeScript bin from source, in any working directory", async () => {
    const child = await startProcess({
      ...fixture("testing-ready-ts.ts"),
      cwd: "/",
      readyPattern: /^ready at 42$/,
    });
    expect(child.name).toBe("testing-ready-ts.ts");
    expect(child.output).toEqual(["ready at 42"]);
  });

  it("waitForLine matches lines from now on, or already seen ones when asked", async () => {
    const child = await startProcess(fixture("testing-ready.mjs"));
    expect(await child.waitForLine(/^pid=/, 1000, { includeSeen: true })).toBe(`pid=${child.pid}`);
    const line = child.waitForLine("SIGUSR2", 5000);
    process.kill(child.pid, "SIGUSR2");
    expect(await line).toBe("got SIGUSR2");
    await expect(child.waitForLine(/^ready$/, 50)).rejects.toBeInstanceOf(TimeoutError);
  });

  it("waitForLine fails with ClosedError when the process exits first", async () => {
    const child = await startProcess(fixture("testing-ready.mjs"));
    const line = child.waitForLine("never printed", 5000);
    await child.kill();
    await expect(line).rejects.toBeInstanceOf(ClosedError);
  });

  it("kill sends SIGKILL by default and resolves once the process is gone", async () => {
    const child = await startProcess(fixture("testing-ready.mjs"));
    const pid = child.pid;
    expect(await child.kill()).toEqual({ code: null, signal: "SIGKILL" });
    expect(child.running).toBe(false);
    expect(alive(pid)).toBe(false);
    // Killing a dead process reports how it ended.
    expect(await child.kill()).toEqual({ code: null, signal: "SIGKILL" });
    expect(await child.waitForExit()).toEqual({ code: null, signal: "SIGKILL" });
  });

  it("stop ends a process with SIGTERM, which it may handle", async () => {
    const child = await startProcess(fixture("testing-ready.mjs"));
    expect(await child.stop()).toEqual({ code: 0, signal: null });
    expect(child.output.at(-1)).toBe("stopping");
  });

  it("stop escalates to SIGKILL when SIGTERM is ignored", async () => {
    const child = await startProcess(fixture("testing-ready.mjs", ["--ignore-term"]));
    const ignored = child.waitForLine("ignoring SIGTERM");
    const exit = child.stop(300);
    await ignored;
    expect(await exit).toEqual({ code: null, signal: "SIGKILL" });
  });

  it("restart starts the same command with a new pid and waits until ready", async () => {
    const child = await startProcess(fixture("testing-ready.mjs"));
    const first = child.pid;
    await child.restart();
    expect(child.pid).not.toBe(first);
    expect(child.running).toBe(true);
    expect(alive(first)).toBe(false);
    expect(alive(child.pid)).toBe(true);
    expect(child.output.filter((line) => line === "ready")).toHaveLength(2);
    // A stopped process can be restarted too.
    await child.stop();
    await child.restart();
    expect(child.running).toBe(true);
  });

  it("rejects with ClosedError and the output when the process exits before ready", async () => {
    const error = await startProcess(fixture("testing-early-exit.mjs")).catch(
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(ClosedError);
    expect((error as Error).message).toMatch(/exited \(code 3\)/);
    expect((error as Error).message).toContain("[stderr] fatal: boom");
  });

  it("rejects with ClosedError when the command cannot be started", async () => {
    const error = await startProcess({ command: join(fixtures, "no-such-command") }).catch(
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(ClosedError);
    expect((error as Error).message).toMatch(/could not be started/);
  });

  it("rejects with TimeoutError quoting the output, and kills the process", async () => {
    const error = await startProcess({
      ...fixture("testing-never-ready.mjs"),
      name: "stuck",
      readyTimeoutMs: 1000,
    }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error).toMatchObject({ code: "TIMEOUT", timeoutMs: 1000 });
    const message = (error as Error).message;
    expect(message).toMatch(/^stuck printed no the ready line/);
    expect(message).toContain("[stdout] still starting");
    const pid = Number(/pid=(\d+)/.exec(message)?.[1]);
    expect(pid).toBeGreaterThan(0);
    expect(alive(pid)).toBe(false);
  });

  it("waitForExit times out while the process runs", async () => {
    const child = await startProcess(fixture("testing-ready.mjs"));
    await expect(child.waitForExit(50)).rejects.toBeInstanceOf(TimeoutError);
    expect(child.running).toBe(true);
  });

  it("asyncDispose kills the process", async () => {
    let pid = 0;
    {
      await using child = await startProcess(fixture("testing-ready.mjs"));
      pid = child.pid;
    }
    expect(alive(pid)).toBe(false);
  });

  it("killAllProcesses leaves no child alive", async () => {
    const children: ChildProcessHandle[] = await Promise.all(
      Array.from({ length: 3 }, () => startProcess(fixture("testing-ready.mjs"))),
    );
    const pids = children.map((child) => child.pid);
    expect(pids.every(alive)).toBe(true);
    await killAllProcesses();
    expect(pids.some(alive)).toBe(false);
    expect(children.every((child) => !child.running)).toBe(true);
  });
});
