/**
 * What the fault and partition tests share: a server of the pair run as a child process (the
 * `binary-star server` command, from source) whose output lines are timestamped and can be
 * awaited across restarts, and a probe that keeps sending requests (votes) to one voter and
 * timestamps every reply.
 */
import { EventEmitter } from "node:events";
import { join } from "node:path";
import { TimeoutError } from "@zmq-patterns/core";
import {
  type ChildProcessHandle,
  type ExitInfo,
  nodeCommand,
  startProcess,
} from "@zmq-patterns/core/testing";
import { Dealer } from "zeromq";
import { type BinaryStarStats, decodeSequence, encodeSequence } from "../src/index.js";

export const CLI = join(import.meta.dirname, "../src/cli.ts");

/** How one server of the pair is started. */
export interface ServerSpec {
  role: "primary" | "backup";
  voter: string;
  local: string;
  remote: string;
  heartbeatMs: number;
  peerExpiryMs: number;
  /** Print a `stats {...}` line this often. Default: never. */
  statsIntervalMs?: number;
  /** A command the server runs under, e.g. `["ip", "netns", "exec", name]`. */
  wrap?: readonly string[];
}

/** An output line and when this process saw it (`performance.now()`). */
export interface TimedLine {
  text: string;
  at: number;
  /** 1 for the first process, 2 after the first restart, and so on. */
  run: number;
}

/** The transition log line of the CLI: `<reason>, ready as active|passive`. */
export const READY_AS = /ready as (active|passive)$/;
/** The CLI's fatal line (dual active or dual passive). */
export const FATAL = /fatal error/;

/** A `binary-star server` child process. */
export class ServerProcess {
  readonly spec: ServerSpec;
  readonly lines: TimedLine[] = [];
  readonly #lineEvents = new EventEmitter();
  #handle: ChildProcessHandle | undefined;
  #run = 0;

  private constructor(spec: ServerSpec) {
    this.spec = spec;
  }

  /** Starts the server and waits for its ready line. */
  static async start(spec: ServerSpec): Promise<ServerProcess> {
    const server = new ServerProcess(spec);
    const args = [
      "server",
      `--${spec.role}`,
      "--voter",
      spec.voter,
      "--local",
      spec.local,
      "--remote",
      spec.remote,
      "--heartbeat-interval",
      String(spec.heartbeatMs),
      "--peer-expiry",
      String(spec.peerExpiryMs),
      ...(spec.statsIntervalMs ? ["--stats-interval", String(spec.statsIntervalMs)] : []),
    ];
    const node = nodeCommand(CLI, args);
    const [command, ...prefix] = spec.wrap ?? [];
    server.#run = 1;
    server.#handle = await startProcess({
      ...(command === undefined
        ? node
        : { command, args: [...prefix, node.command, ...node.args] }),
      name: spec.role,
      readyPattern: /server ready:/,
      readyTimeoutMs: 20_000,
      onOutput: ({ text }) => {
        const line = { text, at: performance.now(), run: server.#run };
        server.lines.push(line);
        server.#lineEvents.emit("line", line, server.lines.length - 1);
      },
    });
    return server;
  }

  get role(): "primary" | "backup" {
    return this.spec.role;
  }

  get running(): boolean {
    return this.#handle?.running === true;
  }

  get exitInfo(): ExitInfo | undefined {
    return this.#handle?.exitInfo;
  }

  /** Kills the server with SIGKILL; resolves with the time the signal was sent, once it is gone. */
  async kill(): Promise<number> {
    const at = performance.now();
    await this.#handle?.kill("SIGKILL");
    return at;
  }

  /** Starts the server again (after {@link ServerProcess.kill}) and waits for its ready line. */
  async restart(): Promise<void> {
    this.#run += 1;
    await this.#handle?.restart();
  }

  waitForExit(timeoutMs: number): Promise<ExitInfo> {
    if (this.#handle === undefined) throw new Error(`${this.role} never started`);
    return this.#handle.waitForExit(timeoutMs);
  }

  /**
   * The first line from index `from` on (default: lines printed from now on) that matches
   * `pattern`; rejects with a `TimeoutError` quoting the recent output after `timeoutMs`.
   */
  waitForLine(
    pattern: RegExp,
    timeoutMs: number,
    from: number = this.lines.length,
  ): Promise<TimedLine> {
    const seen = this.lines.slice(from).find((line) => pattern.test(line.text));
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const listener = (line: TimedLine, index: number): void => {
        if (index < from || !pattern.test(line.text)) return;
        clearTimeout(timer);
        this.#lineEvents.off("line", listener);
        resolve(line);
      };
      const timer = setTimeout(() => {
        this.#lineEvents.off("line", listener);
        reject(
          new TimeoutError(
            `${this.role} printed no line matching ${pattern} within ${timeoutMs} ms; output:\n` +
              this.tail(),
            timeoutMs,
          ),
        );
      }, timeoutMs);
      this.#lineEvents.on("line", listener);
    });
  }

  /**
   * Waits for the `stats` line (see `statsIntervalMs`) from index `from` on for which `match`
   * holds; `at` is when the line arrived.
   */
  async waitForStats(
    match: (stats: BinaryStarStats, at: number) => boolean,
    timeoutMs: number,
    from: number = this.lines.length,
  ): Promise<BinaryStarStats & { at: number }> {
    let index = from;
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const line = await this.waitForLine(
        /^stats /,
        Math.max(1, deadline - performance.now()),
        index,
      );
      index = this.lines.indexOf(line) + 1;
      const stats = parseStats(line.text);
      if (match(stats, line.at)) return { ...stats, at: line.at };
    }
  }

  /** The lines matching `pattern`. */
  matching(pattern: RegExp): TimedLine[] {
    return this.lines.filter((line) => pattern.test(line.text));
  }

  /** The last lines of output, for failure messages. */
  tail(count = 30): string {
    return this.lines
      .slice(-count)
      .map((line) => `  [${this.role} #${line.run}] ${line.text}`)
      .join("\n");
  }
}

export function parseStats(text: string): BinaryStarStats {
  return JSON.parse(text.slice("stats ".length)) as BinaryStarStats;
}

/** One reply the probe received. */
export interface ProbeReply {
  /** The probe's name: which server answered. */
  server: string;
  /** When the reply arrived (`performance.now()`). */
  at: number;
  sequence: number;
}

/**
 * Sends a numbered request (`["", "<n>"]` on a DEALER, what a REQ client sends) to one voter every
 * `intervalMs`, without waiting for replies: a passive server drops them silently, an active one
 * echoes them. Each request is a vote, so a probe is also a client that can make a passive server
 * take over. Requests are only sent over a live connection (`immediate`), so nothing queued while
 * a server is down reaches it later.
 */
export class VoterProbe {
  readonly server: string;
  readonly endpoint: string;
  readonly replies: ProbeReply[] = [];
  readonly #events = new EventEmitter();
  readonly #socket: Dealer;
  readonly #timer: NodeJS.Timeout;
  #sequence = 0;
  #sending = false;
  #closed = false;

  constructor(server: string, endpoint: string, intervalMs = 25) {
    this.server = server;
    this.endpoint = endpoint;
    this.#socket = new Dealer({ linger: 0, immediate: true, sendTimeout: 0 });
    this.#socket.connect(endpoint);
    this.#timer = setInterval(() => this.#send(), intervalMs);
    void this.#receive();
  }

  /** Number of requests sent. */
  get sent(): number {
    return this.#sequence;
  }

  /**
   * The first reply at index `from` or later in {@link VoterProbe.replies} (default: from now on)
   * for which `match` holds.
   */
  waitForReply(
    timeoutMs: number,
    from: number = this.replies.length,
    match: (reply: ProbeReply) => boolean = () => true,
  ): Promise<ProbeReply> {
    const seen = this.replies.slice(from).find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const listener = (reply: ProbeReply, index: number): void => {
        if (index < from || !match(reply)) return;
        clearTimeout(timer);
        this.#events.off("reply", listener);
        resolve(reply);
      };
      const timer = setTimeout(() => {
        this.#events.off("reply", listener);
        reject(
          new TimeoutError(
            `no reply from ${this.server} (${this.endpoint}) within ${timeoutMs} ms ` +
              `(${this.replies.length} replies to ${this.#sequence} requests so far)`,
            timeoutMs,
          ),
        );
      }, timeoutMs);
      this.#events.on("reply", listener);
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#socket.close();
  }

  #send(): void {
    if (this.#sending || this.#closed) return;
    this.#sending = true;
    const sequence = this.#sequence + 1;
    this.#socket.send([Buffer.alloc(0), ...encodeSequence(sequence)]).then(
      () => {
        this.#sequence = sequence;
        this.#sending = false;
      },
      () => {
        // No live connection (the server is down): nothing was sent.
        this.#sending = false;
      },
    );
  }

  async #receive(): Promise<void> {
    for (;;) {
      let frames: Buffer[];
      try {
        frames = await this.#socket.receive();
      } catch {
        return; // closed
      }
      const reply = {
        server: this.server,
        at: performance.now(),
        sequence: decodeSequence(frames.slice(1)),
      };
      this.replies.push(reply);
      this.#events.emit("reply", reply, this.replies.length - 1);
    }
  }
}

/** Replies of several probes in arrival order, reduced to runs: `["primary", "backup", ...]`. */
export function replyRuns(
  replies: readonly ProbeReply[],
): { server: string; first: number; last: number; count: number }[] {
  const sorted = [...replies].sort((a, b) => a.at - b.at);
  const runs: { server: string; first: number; last: number; count: number }[] = [];
  for (const reply of sorted) {
    const current = runs.at(-1);
    if (current?.server === reply.server) {
      current.last = reply.at;
      current.count += 1;
    } else {
      runs.push({ server: reply.server, first: reply.at, last: reply.at, count: 1 });
    }
  }
  return runs;
}
