/**
 * The child-process harness: starts brokers, workers and servers as real processes, waits until
 * they say they are ready, and kills them (even when a test fails) so no process outlives the run.
 * @module
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createRequire } from "node:module";
import { basename } from "node:path";
import type { Readable } from "node:stream";
import { pathToFileURL } from "node:url";
import { ClosedError, InvalidArgumentError, TimeoutError } from "../errors.js";

/** Options of {@link startProcess}. */
export interface StartProcessOptions {
  /** The executable, e.g. `process.execPath` (see {@link nodeCommand}). */
  command: string;
  /** Its arguments. */
  args?: readonly string[];
  /** Variables added to the parent's environment; `undefined` removes one. */
  env?: Record<string, string | undefined>;
  /** Working directory. Default: the parent's. */
  cwd?: string;
  /** Name used in error messages and debug output. Default: the script's or command's file name. */
  name?: string;
  /** A stdout or stderr line matching it means the process is ready. Default `/\bready\b/i`. */
  readyPattern?: RegExp;
  /** How long to wait for the ready line before killing the process. Default 15,000 ms. */
  readyTimeoutMs?: number;
  /** Called with every line the process prints, as it prints it (demos use it to narrate). */
  onOutput?: (line: OutputLine) => void;
}

/** How a child process ended: exactly one of `code` and `signal` is set after a normal exit. */
export interface ExitInfo {
  /** Exit code, or `null` when a signal ended the process. */
  code: number | null;
  /** The signal that ended the process, or `null` when it exited by itself. */
  signal: NodeJS.Signals | null;
}

/** One line of child output and the stream it came from. */
export interface OutputLine {
  /** The stream that carried the line. */
  stream: "stdout" | "stderr";
  /** The line without its line ending. */
  text: string;
}

/** Options of {@link ChildProcessHandle.waitForLine}. */
export interface WaitForLineOptions {
  /**
   * Also match lines already in {@link ChildProcessHandle.output} (the first match wins).
   * Default `false`: only lines printed after the call count, so that an old line from before a
   * restart or an earlier step cannot satisfy a new expectation.
   */
  includeSeen?: boolean;
}

/** A started child process; obtained from {@link startProcess}. */
export interface ChildProcessHandle extends AsyncDisposable {
  /** The name used in messages. */
  readonly name: string;
  /** Pid of the current process (a new one after {@link ChildProcessHandle.restart}). */
  readonly pid: number;
  /** True until the current process has exited. */
  readonly running: boolean;
  /** Every output line of stdout and stderr, in arrival order, across restarts. */
  readonly output: readonly string[];
  /** The same lines as {@link ChildProcessHandle.output}, tagged with their stream. */
  readonly lines: readonly OutputLine[];
  /** How the current process ended, or `undefined` while it runs. */
  readonly exitInfo: ExitInfo | undefined;
  /**
   * Resolves with the first line printed from now on that matches `pattern` (a `RegExp`, or a
   * substring), see {@link WaitForLineOptions.includeSeen}. Rejects with a `TimeoutError` after
   * `timeoutMs` (default 5,000) and with a `ClosedError` if the process exits first.
   */
  waitForLine(
    pattern: RegExp | string,
    timeoutMs?: number,
    options?: WaitForLineOptions,
  ): Promise<string>;
  /**
   * Resolves once the process has exited and its output is read; rejects with a `TimeoutError`
   * after `timeoutMs` (default 5,000), leaving the process running.
   */
  waitForExit(timeoutMs?: number): Promise<ExitInfo>;
  /**
   * Sends `signal` (default `SIGKILL`) and resolves once the process has exited, so a signal the
   * process survives makes it wait for its exit; a process already gone just reports its exit.
   */
  kill(signal?: NodeJS.Signals): Promise<ExitInfo>;
  /** Sends `SIGTERM`, then `SIGKILL` if it is still running after `timeoutMs` (default 5,000). */
  stop(timeoutMs?: number): Promise<ExitInfo>;
  /**
   * Kills the process with `SIGKILL` if it runs (a crash, as reliability tests want; call
   * {@link ChildProcessHandle.stop} first for a graceful one), starts the same command again and
   * waits until it is ready.
   */
  restart(): Promise<void>;
}

const DEFAULT_READY_PATTERN = /\bready\b/i;
const DEFAULT_READY_TIMEOUT_MS = 15_000;
const DEFAULT_WAIT_MS = 5_000;
/** Lines of output quoted in error messages. */
const TAIL_LINES = 20;
/** How long output pipes held open by grandchildren may delay the exit of a dead child. */
const PIPE_GRACE_MS = 1_000;

/** Handles whose current process runs, killed on exit so no child outlives the test run. */
const live = new Set<Handle>();
let exitHookInstalled = false;

/**
 * Starts `command` and resolves once it prints a line matching the ready pattern. Rejects with a
 * `TimeoutError` quoting the last lines of output when the line does not come in time (the
 * process is killed first) and with a `ClosedError` when the process exits or fails to start.
 */
export async function startProcess(options: StartProcessOptions): Promise<ChildProcessHandle> {
  if (typeof options.command !== "string" || options.command.length === 0) {
    throw new InvalidArgumentError("command must be a non-empty string");
  }
  const readyTimeoutMs = options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
  if (!Number.isFinite(readyTimeoutMs) || readyTimeoutMs <= 0) {
    throw new InvalidArgumentError(
      `readyTimeoutMs must be a number of milliseconds > 0, got ${String(readyTimeoutMs)}`,
    );
  }
  const handle = new Handle(options, readyTimeoutMs);
  await handle.start();
  return handle;
}

/**
 * Kills every child started by {@link startProcess} that still runs, with `SIGKILL`, and waits for
 * them to exit. Call it from `afterEach`/`afterAll`: the process `exit` hook that does the same is
 * never reached in test runner workers that are killed rather than exited.
 */
export async function killAllProcesses(): Promise<void> {
  await Promise.all([...live].map((handle) => handle.kill("SIGKILL")));
}

/** A command line as {@link startProcess} takes it, so it can be spread into its options. */
export interface NodeCommand {
  /** The executable: the current Node binary. */
  command: string;
  /** Node's flags, the script, then the script's arguments. */
  args: string[];
}

/**
 * The command line that runs `file` with the current Node: TypeScript files get the `tsx` loader
 * and the `@zmq-patterns/source` condition, so tests and benchmarks start bins from source.
 */
export function nodeCommand(file: string, args: readonly string[] = []): NodeCommand {
  const prefix = /\.[cm]?tsx?$/.test(file)
    ? ["--import", tsxLoader(), "--conditions=@zmq-patterns/source"]
    : [];
  return { command: process.execPath, args: [...prefix, file, ...args] };
}

let tsxSpecifier: string | undefined;

/** Resolves `tsx` from here so the child finds it whatever its working directory. */
function tsxLoader(): string {
  if (tsxSpecifier === undefined) {
    try {
      tsxSpecifier = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;
    } catch {
      tsxSpecifier = "tsx";
    }
  }
  return tsxSpecifier;
}

/** One spawned process of a handle; a restart makes a new one. */
interface Run {
  readonly child: ChildProcess;
  readonly pid: number;
  exit: ExitInfo | undefined;
  /** Set when the process could not be spawned. */
  error: Error | undefined;
  /** Resolves once the process has exited and its output pipes are drained. */
  readonly closed: Promise<ExitInfo>;
  readonly lineListeners: Set<(line: OutputLine) => void>;
}

class Handle implements ChildProcessHandle {
  readonly name: string;
  readonly output: string[] = [];
  readonly lines: OutputLine[] = [];
  readonly #options: StartProcessOptions;
  readonly #readyTimeoutMs: number;
  readonly #debug: boolean;
  #run: Run | undefined;

  constructor(options: StartProcessOptions, readyTimeoutMs: number) {
    this.#options = options;
    this.#readyTimeoutMs = readyTimeoutMs;
    this.name = options.name ?? defaultName(options.command, options.args ?? []);
    this.#debug = Boolean(process.env.ZMQ_PATTERNS_DEBUG);
  }

  get pid(): number {
    return this.#current().pid;
  }

  get running(): boolean {
    const run = this.#run;
    return run !== undefined && run.exit === undefined && run.error === undefined;
  }

  get exitInfo(): ExitInfo | undefined {
    return this.#run?.exit;
  }

  async start(): Promise<void> {
    const run = this.#spawn();
    const pattern = this.#options.readyPattern ?? DEFAULT_READY_PATTERN;
    try {
      await this.#waitOn(
        run,
        matcher(pattern),
        this.#readyTimeoutMs,
        `the ready line ${String(pattern)}`,
      );
    } catch (err) {
      if (err instanceof TimeoutError) await this.#signal(run, "SIGKILL");
      throw err;
    }
  }

  waitForLine(
    pattern: RegExp | string,
    timeoutMs = DEFAULT_WAIT_MS,
    options: WaitForLineOptions = {},
  ): Promise<string> {
    const test = matcher(pattern);
    if (options.includeSeen === true) {
      const seen = this.output.find(test);
      if (seen !== undefined) return Promise.resolve(seen);
    }
    const what = typeof pattern === "string" ? JSON.stringify(pattern) : String(pattern);
    return this.#waitOn(this.#current(), test, timeoutMs, `a line matching ${what}`);
  }

  async waitForExit(timeoutMs = DEFAULT_WAIT_MS): Promise<ExitInfo> {
    const run = this.#current();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(
          new TimeoutError(
            `${this.name} still runs after ${timeoutMs} ms${this.#tail()}`,
            timeoutMs,
          ),
        );
      }, timeoutMs);
    });
    try {
      return await Promise.race([run.closed, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  kill(signal: NodeJS.Signals = "SIGKILL"): Promise<ExitInfo> {
    return this.#signal(this.#current(), signal);
  }

  async stop(timeoutMs = DEFAULT_WAIT_MS): Promise<ExitInfo> {
    const run = this.#current();
    if (run.exit !== undefined || run.error !== undefined) return run.closed;
    run.child.kill("SIGTERM");
    let timer: NodeJS.Timeout | undefined;
    const escalate = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    try {
      await Promise.race([run.closed, escalate]);
    } finally {
      clearTimeout(timer);
    }
    return this.#signal(run, "SIGKILL");
  }

  async restart(): Promise<void> {
    if (this.#run !== undefined) await this.#signal(this.#run, "SIGKILL");
    await this.start();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#run !== undefined) await this.#signal(this.#run, "SIGKILL");
  }

  /** Kills the child during process exit, when only synchronous work is possible. */
  killNow(): void {
    if (this.running) this.#run?.child.kill("SIGKILL");
  }

  #current(): Run {
    if (this.#run === undefined) throw new ClosedError(`${this.name} was never started`);
    return this.#run;
  }

  async #signal(run: Run, signal: NodeJS.Signals): Promise<ExitInfo> {
    if (run.exit === undefined && run.error === undefined) run.child.kill(signal);
    return run.closed;
  }

  #spawn(): Run {
    const { command, args = [], cwd } = this.#options;
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const [key, value] of Object.entries(this.#options.env ?? {})) {
      if (value === undefined) delete env[key];
      else env[key] = value;
    }
    const child = spawn(command, [...args], {
      stdio: ["ignore", "pipe", "pipe"],
      env,
      ...(cwd === undefined ? {} : { cwd }),
    });
    let resolveClosed!: (info: ExitInfo) => void;
    const closed = new Promise<ExitInfo>((resolve) => {
      resolveClosed = resolve;
    });
    const run: Run = {
      child,
      pid: child.pid ?? -1,
      exit: undefined,
      error: undefined,
      closed,
      lineListeners: new Set(),
    };
    this.#run = run;
    if (child.pid !== undefined) {
      live.add(this);
      installExitHook();
    }

    const onLine = (stream: OutputLine["stream"], text: string): void => {
      const line: OutputLine = { stream, text };
      this.output.push(text);
      this.lines.push(line);
      if (this.#debug) process.stderr.write(`[${this.name}] ${text}\n`);
      this.#options.onOutput?.(line);
      for (const listener of [...run.lineListeners]) listener(line);
    };
    readLines(child.stdout!, (text) => onLine("stdout", text));
    readLines(child.stderr!, (text) => onLine("stderr", text));

    let grace: NodeJS.Timeout | undefined;
    const finish = (): void => {
      clearTimeout(grace);
      if (run.exit === undefined) run.exit = { code: child.exitCode, signal: child.signalCode };
      live.delete(this);
      resolveClosed(run.exit);
    };
    child.once("exit", (code, signal) => {
      run.exit = { code, signal };
      live.delete(this);
      // Normally "close" follows at once; a grandchild holding the pipes must not hang the test.
      grace = setTimeout(() => {
        child.stdout?.destroy();
        child.stderr?.destroy();
        finish();
      }, PIPE_GRACE_MS);
    });
    child.once("close", finish);
    child.on("error", (err) => {
      // Emitted for a failed spawn (then no "exit" follows) and for a failed kill (ignored).
      if (child.pid === undefined && run.error === undefined) {
        run.error = err;
        finish();
      }
    });
    return run;
  }

  /** Waits for a line of `run` passing `test`; fails on timeout or when the process ends. */
  #waitOn(
    run: Run,
    test: (text: string) => boolean,
    timeoutMs: number,
    what: string,
  ): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      let settled = false;
      const settle = (): boolean => {
        if (settled) return false;
        settled = true;
        clearTimeout(timer);
        run.lineListeners.delete(listener);
        return true;
      };
      const listener = (line: OutputLine): void => {
        if (test(line.text) && settle()) resolve(line.text);
      };
      const timer = setTimeout(() => {
        if (settle()) {
          reject(
            new TimeoutError(
              `${this.name} printed no ${what} within ${timeoutMs} ms${this.#tail()}`,
              timeoutMs,
            ),
          );
        }
      }, timeoutMs);
      run.lineListeners.add(listener);
      void run.closed.then((info) => {
        if (!settle()) return;
        const how =
          run.error !== undefined
            ? `could not be started (${run.error.message})`
            : `exited (${describeExit(info)})`;
        reject(
          new ClosedError(
            `${this.name} ${how} before it printed ${what}${this.#tail()}`,
            run.error === undefined ? undefined : { cause: run.error },
          ),
        );
      });
    });
  }

  #tail(): string {
    if (this.lines.length === 0) return "; it printed nothing";
    const tail = this.lines.slice(-TAIL_LINES);
    const skipped = this.lines.length - tail.length;
    const header =
      skipped > 0 ? `; last ${tail.length} of ${this.lines.length} lines:` : "; output:";
    return `${header}\n${tail.map((line) => `  [${line.stream}] ${line.text}`).join("\n")}`;
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const handle of live) handle.killNow();
  });
}

/** Splits a stream into lines, flushing an unterminated last line at the end. */
function readLines(stream: Readable, onLine: (text: string) => void): void {
  let pending = "";
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    pending += chunk;
    let index = pending.indexOf("\n");
    while (index >= 0) {
      onLine(pending.slice(0, index).replace(/\r$/, ""));
      pending = pending.slice(index + 1);
      index = pending.indexOf("\n");
    }
  });
  stream.on("end", () => {
    if (pending.length > 0) onLine(pending.replace(/\r$/, ""));
    pending = "";
  });
  // A destroyed pipe (see PIPE_GRACE_MS) must not become an unhandled error.
  stream.on("error", () => {});
}

function matcher(pattern: RegExp | string): (text: string) => boolean {
  if (typeof pattern === "string") return (text) => text.includes(pattern);
  return (text) => {
    pattern.lastIndex = 0;
    return pattern.test(text);
  };
}

function describeExit(info: ExitInfo): string {
  if (info.signal !== null) return `signal ${info.signal}`;
  return info.code === null ? "unknown status" : `code ${info.code}`;
}

/** Node flags whose value is a module, not the script being run. */
const MODULE_FLAGS = new Set(["--import", "--require", "-r", "--loader", "--experimental-loader"]);

function defaultName(command: string, args: readonly string[]): string {
  const script = args.find(
    (arg, i) =>
      !arg.startsWith("-") && !MODULE_FLAGS.has(args[i - 1] ?? "") && /\.[cm]?[jt]sx?$/.test(arg),
  );
  return basename(script ?? command);
}

/** How a process run by {@link runToCompletion} ended, and what it printed. */
export interface ProcessOutcome {
  /** The exit code, or `null` when a signal ended it. */
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `file` with the current Node (as {@link nodeCommand}) until it exits, and collects its
 * output: for commands that finish on their own, such as a bin's `--help` or a usage error. The
 * process is killed with SIGKILL after `timeoutMs`, so a command that hangs fails its test
 * instead of the run.
 */
export function runToCompletion(
  file: string,
  args: readonly string[] = [],
  timeoutMs = 30_000,
): Promise<ProcessOutcome> {
  const { command, args: full } = nodeCommand(file, args);
  return new Promise((resolve, reject) => {
    const child = spawn(command, full, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
