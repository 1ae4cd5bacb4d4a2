/**
 * Peer processes of a benchmark (echo servers, proxies, brokers, workers), started and stopped
 * with the child-process harness of `@zmq-patterns/core/testing`.
 * @module
 */
import { basename } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type ChildProcessHandle,
  killAllProcesses,
  type NodeCommand,
  nodeCommand,
  startProcess,
} from "@zmq-patterns/core/testing";
import { READY_PATTERN } from "./announce.js";

/** Options of {@link startPeer}. */
export interface PeerOptions {
  /** Arguments passed to the script. */
  args?: readonly string[];
  /** Extra environment variables, added to this process's environment. */
  env?: Readonly<Record<string, string>>;
  /** Name used in error messages and output prefixes; defaults to the file's name. */
  name?: string;
  /**
   * Pattern a line of the peer's stdout or stderr must match once it is ready; its first capture
   * group becomes {@link Peer.endpoint}. Defaults to {@link READY_PATTERN}, the line
   * {@link announceReady} prints.
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
  /** The match of the ready pattern on the peer's ready line. */
  readonly ready: RegExpMatchArray;
  /** First capture group of the ready match (the endpoint the peer bound), or `""`. */
  readonly endpoint: string;
  /** The harness's handle of the process: its output, `waitForLine`, `kill`. */
  readonly process: ChildProcessHandle;
  /** Stops the peer: SIGTERM, then SIGKILL if it has not exited after 2 s. Idempotent. */
  stop(): Promise<void>;
}

export { READY_PATTERN } from "./announce.js";

const ORPHAN_GUARD = new URL("./orphan-guard.mjs", import.meta.url).href;

/**
 * The command line of a peer: {@link nodeCommand} of `@zmq-patterns/core/testing` (`.ts` files
 * through tsx with the `@zmq-patterns/source` condition, so workspace packages and bins run from
 * their sources), plus a preloaded guard that stops the peer when the benchmark process dies,
 * even by SIGKILL.
 */
export function peerCommand(file: string | URL, args: readonly string[] = []): NodeCommand {
  const { command, args: nodeArgs } = nodeCommand(toPath(file), args);
  return { command, args: ["--import", ORPHAN_GUARD, ...nodeArgs] };
}

/**
 * Starts a Node.js script (`.ts` through tsx, see {@link peerCommand}) as a peer process with
 * `startProcess` of `@zmq-patterns/core/testing` and waits for its ready line. The peer's output
 * after the ready line is copied to this process's stderr, prefixed with its name (until
 * {@link Peer.stop} is called). Prefer {@link withPeers}, which also stops the peers, even on
 * Ctrl-C.
 */
export async function startPeer(file: string | URL, options: PeerOptions = {}): Promise<Peer> {
  const path = toPath(file);
  const name = options.name ?? basename(path).replace(/\.[cm]?[jt]s$/, "");
  const pattern = options.readyPattern ?? READY_PATTERN;
  let echo = false;
  const handle = await startProcess({
    ...peerCommand(path, options.args),
    name,
    readyPattern: pattern,
    readyTimeoutMs: options.readyTimeoutMs ?? 20_000,
    ...(options.env === undefined ? {} : { env: { ...options.env } }),
    onOutput: (line) => {
      if (echo) process.stderr.write(`[${name}] ${line.text}\n`);
    },
  });
  let ready: RegExpMatchArray | undefined;
  for (const line of handle.output) {
    const match = ready === undefined ? execOnce(pattern, line) : null;
    if (match !== null) ready = match;
    // Whatever the peer said besides its ready line (warnings, say) is shown.
    else process.stderr.write(`[${name}] ${line}\n`);
  }
  if (ready === undefined) throw new Error(`peer ${name}: ready line not found in its output`);
  echo = true;
  let stopped: Promise<void> | undefined;
  return {
    name,
    pid: handle.pid,
    ready,
    endpoint: ready[1] ?? "",
    process: handle,
    stop() {
      // Shutdown chatter ("shutting down on SIGTERM") is kept in the handle's output, not shown.
      echo = false;
      stopped ??= handle.stop(2000).then(() => {});
      return stopped;
    },
  };
}

/** What {@link withPeers} gives its body. */
export interface PeerGroup {
  /** Like {@link startPeer}, the peer being stopped when the group ends. */
  start(file: string | URL, options?: PeerOptions): Promise<Peer>;
  /**
   * Registers a clean-up (closing a client socket, say) run when the group ends, before its peers
   * are stopped; clean-ups run in reverse order of registration.
   */
  defer(cleanup: () => unknown): void;
}

/**
 * Runs `body` with a {@link PeerGroup}, then runs its clean-ups and stops every peer it started,
 * whether `body` succeeded or threw. While a group is open, SIGINT and SIGTERM (Ctrl-C) kill
 * every peer (`killAllProcesses`) before the benchmark dies of the signal.
 */
export async function withPeers<T>(body: (peers: PeerGroup) => Promise<T>): Promise<T> {
  const started: Promise<Peer>[] = [];
  const cleanups: (() => unknown)[] = [];
  const group: PeerGroup = {
    start(file, options) {
      const peer = startPeer(file, options);
      started.push(peer);
      return peer;
    },
    defer(cleanup) {
      cleanups.push(cleanup);
    },
  };
  const release = holdSignalHandlers();
  try {
    return await body(group);
  } finally {
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup();
      } catch (error) {
        console.error(error);
      }
    }
    const peers = await Promise.allSettled(started);
    await Promise.all(
      peers.map((peer) => (peer.status === "fulfilled" ? peer.value.stop() : null)),
    );
    release();
  }
}

const SIGNALS = ["SIGINT", "SIGTERM"] as const;
let openGroups = 0;
let interrupted = false;

function onSignal(signal: NodeJS.Signals): void {
  if (interrupted) return;
  interrupted = true;
  process.stderr.write(`\n${signal}: killing the benchmark's peers\n`);
  void killAllProcesses().finally(() => {
    for (const name of SIGNALS) process.off(name, onSignal);
    // Die of the signal, as without the handler (under tsx, its own handler exits with 128 + n).
    process.kill(process.pid, signal);
  });
}

/** Installs the signal handlers of {@link withPeers} while at least one group is open. */
function holdSignalHandlers(): () => void {
  if (openGroups++ === 0) for (const name of SIGNALS) process.on(name, onSignal);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    if (--openGroups === 0 && !interrupted) {
      for (const name of SIGNALS) process.off(name, onSignal);
    }
  };
}

function execOnce(pattern: RegExp, text: string): RegExpExecArray | null {
  pattern.lastIndex = 0;
  return pattern.exec(text);
}

function toPath(file: string | URL): string {
  return typeof file === "string" ? file : fileURLToPath(file);
}
