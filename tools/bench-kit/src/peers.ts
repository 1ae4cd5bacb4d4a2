import { type ChildProcess, spawn } from "node:child_process";
import { basename } from "node:path";
import { fileURLToPath } from "node:url";

/** Options of {@link startPeer}. */
export interface PeerOptions {
  /** Arguments passed to the script. */
  args?: readonly string[];
  /** Extra environment variables, added to this process's environment. */
  env?: Readonly<Record<string, string>>;
  /** Name used in error messages and output prefixes; defaults to the file's name. */
  name?: string;
  /**
   * Pattern the peer's stdout must match once it is ready; its first capture group becomes
   * {@link Peer.endpoint}. Defaults to {@link READY_PATTERN}, the line {@link announceReady} prints.
   */
  readyPattern?: RegExp;
  /** How long to wait for the ready line. Default 20,000 ms (tsx start-up is slow on small machines). */
  readyTimeoutMs?: number;
}

/** A running peer process that announced it is ready. */
export interface Peer {
  /** Name used in messages. */
  readonly name: string;
  /** Process id. */
  readonly pid: number;
  /** The match of the ready pattern on the peer's stdout. */
  readonly ready: RegExpMatchArray;
  /** First capture group of the ready match (the endpoint the peer bound), or `""`. */
  readonly endpoint: string;
  /** Stops the peer: SIGTERM, then SIGKILL if it has not exited after 2 s. Idempotent. */
  stop(): Promise<void>;
}

/** Matches the line printed by {@link announceReady}: `ready <endpoint>`. */
export const READY_PATTERN = /^ready(?:[ \t]+(\S+))?[ \t]*$/m;

/**
 * Command and arguments that run `file` with this Node.js: `.ts` files through tsx with the
 * `@zmq-patterns/source` condition, so workspace packages resolve to their sources.
 */
export function nodeCommand(
  file: string | URL,
  args: readonly string[] = [],
): { command: string; args: string[] } {
  const path = typeof file === "string" ? file : fileURLToPath(file);
  const loader = /\.[cm]?ts$/.test(path)
    ? ["--import", tsxLoader(), "--conditions=@zmq-patterns/source"]
    : [];
  return { command: process.execPath, args: [...loader, path, ...args] };
}

/**
 * Starts a Node.js script (`.ts` through tsx, see {@link nodeCommand}) as a peer process and
 * waits for its ready line. The peer's stderr is passed through; its stdout after the ready
 * line is copied to this process's stderr, prefixed with its name. The peer's stdin is a pipe
 * that closes when this process dies, which {@link announceReady} treats as a stop request, so
 * peers never outlive their benchmark. Prefer {@link withPeers}, which also stops them.
 */
export async function startPeer(file: string | URL, options: PeerOptions = {}): Promise<Peer> {
  const { command, args } = nodeCommand(file, options.args);
  const path = typeof file === "string" ? file : fileURLToPath(file);
  const name = options.name ?? basename(path).replace(/\.[cm]?[jt]s$/, "");
  const pattern = options.readyPattern ?? READY_PATTERN;
  const timeoutMs = options.readyTimeoutMs ?? 20_000;
  const child = spawn(command, args, {
    stdio: ["pipe", "pipe", "inherit"],
    env: { ...process.env, ...options.env },
  });
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else {
      child.once("exit", () => resolve());
      child.once("error", () => resolve());
    }
  });
  const stop = once(() => stopChild(child, exited));
  try {
    const ready = await waitForReady(child, name, pattern, timeoutMs);
    return { name, pid: child.pid ?? -1, ready, endpoint: ready[1] ?? "", stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Starts peers for {@link withPeers}; every peer started through it is stopped at the end. */
export interface PeerGroup {
  /** Like {@link startPeer}, the peer being stopped when the group ends. */
  start(file: string | URL, options?: PeerOptions): Promise<Peer>;
}

/**
 * Runs `body` with a {@link PeerGroup}, then stops every peer it started, whether `body`
 * succeeded or threw.
 */
export async function withPeers<T>(body: (peers: PeerGroup) => Promise<T>): Promise<T> {
  const started: Promise<Peer>[] = [];
  const group: PeerGroup = {
    start(file, options) {
      const peer = startPeer(file, options);
      started.push(peer);
      return peer;
    },
  };
  try {
    return await body(group);
  } finally {
    const peers = await Promise.allSettled(started);
    await Promise.all(
      peers.map((peer) => (peer.status === "fulfilled" ? peer.value.stop() : null)),
    );
  }
}

/**
 * Called by a peer script once it is ready: prints `ready <endpoint>` on stdout (see
 * {@link READY_PATTERN}), then runs `shutdown` and exits when asked to stop (SIGTERM, SIGINT)
 * or when its parent goes away (stdin closes).
 */
export function announceReady(endpoint: string, shutdown: () => unknown = () => {}): void {
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    Promise.resolve()
      .then(shutdown)
      .then(
        () => process.exit(0),
        (error: unknown) => {
          console.error(error);
          process.exit(1);
        },
      );
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  process.stdin.once("end", stop);
  process.stdin.once("error", stop);
  process.stdin.resume();
  process.stdout.write(`ready ${endpoint}\n`);
}

function waitForReady(
  child: ChildProcess,
  name: string,
  pattern: RegExp,
  timeoutMs: number,
): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let output = "";
    let ready = false;
    const timer = setTimeout(
      () => fail(new Error(`peer ${name} not ready after ${timeoutMs} ms; stdout: ${output}`)),
      timeoutMs,
    );
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void =>
      fail(new Error(`peer ${name} exited (${signal ?? `code ${code}`}) before it was ready`));
    const fail = (error: Error): void => {
      clearTimeout(timer);
      child.off("exit", onExit);
      if (!ready) reject(error);
    };
    child.once("exit", onExit);
    child.once("error", fail);
    child.stdout?.setEncoding("utf8");
    child.stdout?.on("data", (chunk: string) => {
      if (ready) {
        process.stderr.write(prefixLines(`[${name}] `, chunk));
        return;
      }
      output += chunk;
      const match = pattern.exec(output);
      if (match === null) return;
      ready = true;
      clearTimeout(timer);
      child.off("exit", onExit);
      const rest = output.slice((match.index ?? 0) + match[0].length).replace(/^\r?\n/, "");
      if (rest !== "") process.stderr.write(prefixLines(`[${name}] `, rest));
      resolve(match);
    });
  });
}

async function stopChild(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 2000);
  await exited;
  clearTimeout(timer);
  child.stdin?.destroy();
  child.stdout?.destroy();
}

function prefixLines(prefix: string, text: string): string {
  return text.replace(/^(?=.)/gm, prefix);
}

function once(fn: () => Promise<void>): () => Promise<void> {
  let result: Promise<void> | undefined;
  return () => {
    result ??= fn();
    return result;
  };
}

let tsxUrl: string | undefined;

/** Absolute URL of tsx's loader, so peers find it whatever their working directory. */
function tsxLoader(): string {
  if (tsxUrl === undefined) {
    try {
      tsxUrl = import.meta.resolve("tsx");
    } catch {
      tsxUrl = "tsx";
    }
  }
  return tsxUrl;
}
