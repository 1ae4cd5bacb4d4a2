// Failover time of a Binary Star pair: from the SIGKILL of the active server to the first reply
// from the other one, for the Guide's timings (heartbeat 1000 ms, peer expiry 2000, client
// timeout 1000, settle delay 2000) and for a 250 ms heartbeat (peer expiry 500, timeout 250,
// settle 500).
//
// Each timing has its own pair of `binary-star server` processes (the package's bin, from source)
// on tcp 127.0.0.1. This process runs two clients per pair:
//
// - the Guide's client, a BinaryStarClient sending request after request (10 ms apart): the
//   request in flight at the kill times out, the client waits the settle delay and resends to the
//   other server. Its failover time is bounded below by timeout + settle, the baseline it is
//   reported against;
// - an eager client, a DEALER that starts voting on the passive server every 10 ms the moment the
//   active one is killed: it measures the takeover itself, the passive server's peer expiry since
//   the last heartbeat it heard, reported against the peer expiry.
//
// One run kills the active server, waits for both first replies, restarts the killed server
// (it comes back passive) and waits a random part of a heartbeat, so the kills fall at every
// phase of the heartbeat; the next run kills the other server. The timings are measured
// interleaved, `runs` times each; the median and max are printed and stored in
// bench/results/binary-star.json.
//
// Run: `node ../../scripts/pnpm.mjs bench` in packages/binary-star. BENCH_RUNS overrides the
// number of runs (BENCH_WARMUP_MS and BENCH_DURATION_MS do not apply).
import { EventEmitter } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import {
  type BenchResults,
  benchSettings,
  formatMachine,
  loadAverage,
  machineInfo,
  median,
  peerCommand,
  printTable,
  ratio,
  withPeers,
  writeResults,
} from "@zmq-patterns/bench-kit";
import { allocateAddress, type ChildProcessHandle, startProcess } from "@zmq-patterns/core/testing";
import { Dealer } from "zeromq";
import {
  BinaryStarClient,
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_PEER_EXPIRY_MS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  DEFAULT_SETTLE_DELAY_MS,
  encodeSequence,
} from "../src/index.js";

/** One timing of the pair and its clients. */
interface Timing {
  name: string;
  heartbeatMs: number;
  peerExpiryMs: number;
  clientTimeoutMs: number;
  settleDelayMs: number;
}

const TIMINGS: readonly Timing[] = [
  {
    name: "Guide defaults",
    heartbeatMs: DEFAULT_HEARTBEAT_INTERVAL_MS,
    peerExpiryMs: DEFAULT_PEER_EXPIRY_MS,
    clientTimeoutMs: DEFAULT_REQUEST_TIMEOUT_MS,
    settleDelayMs: DEFAULT_SETTLE_DELAY_MS,
  },
  {
    name: "250 ms heartbeat",
    heartbeatMs: 250,
    peerExpiryMs: 500,
    clientTimeoutMs: 250,
    settleDelayMs: 500,
  },
];

/** Pause between two requests of the clients. */
const REQUEST_INTERVAL_MS = 10;
/** Bound on any one wait (a failover, a restart): a run that exceeds it fails the benchmark. */
const WAIT_MS = 30_000;

const CLI = new URL("../src/cli.ts", import.meta.url);

/** Failover times of one measurement, in ms. */
interface FailoverStats {
  medianMs: number;
  maxMs: number;
  minMs: number;
  /** Each run's time, in run order. */
  runs: number[];
  /** What the times are compared with. */
  baseline: "timeout + settle" | "peer expiry";
  baselineMs: number;
  /** `medianMs / baselineMs`. */
  medianVsBaseline: number;
  /** `maxMs / baselineMs`. */
  maxVsBaseline: number;
}

/** One timing's row in bench/results/binary-star.json. */
interface TimingResult extends Timing {
  /** SIGKILL -> first reply from the other server to the Guide's client. */
  guideClient: FailoverStats;
  /** SIGKILL -> first reply from the other server to a client voting on it every 10 ms. */
  eagerClient: FailoverStats;
}

function stats(
  times: readonly number[],
  baseline: FailoverStats["baseline"],
  baselineMs: number,
): FailoverStats {
  const runs = times.map((time) => Math.round(time));
  const medianMs = Math.round(median(runs));
  const maxMs = Math.max(...runs);
  return {
    medianMs,
    maxMs,
    minMs: Math.min(...runs),
    runs,
    baseline,
    baselineMs,
    medianVsBaseline: round3(medianMs / baselineMs),
    maxVsBaseline: round3(maxMs / baselineMs),
  };
}

function round3(value: number): number {
  return Math.round(value * 1000) / 1000;
}

/** A `binary-star server` process whose output lines can be awaited. */
class Server {
  readonly role: "primary" | "backup";
  readonly voter: string;
  readonly #lines = new EventEmitter();
  readonly #output: string[] = [];
  #handle: ChildProcessHandle | undefined;

  constructor(role: "primary" | "backup", voter: string) {
    this.role = role;
    this.voter = voter;
  }

  async start(timing: Timing, local: string, remote: string): Promise<void> {
    this.#handle = await startProcess({
      ...peerCommand(CLI, [
        "server",
        `--${this.role}`,
        "--voter",
        this.voter,
        "--local",
        local,
        "--remote",
        remote,
        "--heartbeat-interval",
        String(timing.heartbeatMs),
        "--peer-expiry",
        String(timing.peerExpiryMs),
      ]),
      name: `${this.role} (${timing.name})`,
      readyPattern: /server ready:/,
      readyTimeoutMs: 20_000,
      onOutput: ({ text }) => {
        this.#output.push(text);
        this.#lines.emit("line", text);
      },
    });
  }

  /** Resolves with the first line printed from now on that matches `pattern`. */
  nextLine(pattern: RegExp): Promise<string> {
    return new Promise((resolve, reject) => {
      const listener = (text: string): void => {
        if (!pattern.test(text)) return;
        clearTimeout(timer);
        this.#lines.off("line", listener);
        resolve(text);
      };
      const timer = setTimeout(() => {
        this.#lines.off("line", listener);
        reject(
          new Error(
            `${this.role}: no line matching ${pattern} in ${WAIT_MS} ms; last lines:\n` +
              this.#output.slice(-10).join("\n"),
          ),
        );
      }, WAIT_MS);
      this.#lines.on("line", listener);
    });
  }

  /** Whether a line so far matched `pattern`. */
  printed(pattern: RegExp): boolean {
    return this.#output.some((text) => pattern.test(text));
  }

  kill(): Promise<unknown> {
    return this.#handle?.kill("SIGKILL") ?? Promise.resolve();
  }

  /** SIGTERM, then SIGKILL if it still runs after 2 s. */
  stop(): Promise<unknown> {
    return this.#handle?.stop(2000) ?? Promise.resolve();
  }

  restart(): Promise<void> {
    return this.#handle?.restart() ?? Promise.resolve();
  }
}

/** A pair with its two clients. */
class Pair {
  readonly timing: Timing;
  readonly guideTimes: number[] = [];
  readonly eagerTimes: number[] = [];
  readonly #servers: Record<"primary" | "backup", Server>;
  readonly #client: BinaryStarClient;
  readonly #probes: Record<"primary" | "backup", Dealer>;
  readonly #replies = new EventEmitter();
  /** Replies to the eager client's votes, by server. */
  readonly #votes = new EventEmitter();
  readonly #stop = new AbortController();
  #active: "primary" | "backup" = "primary";
  #loop: Promise<void> = Promise.resolve();

  private constructor(timing: Timing, primaryVoter: string, backupVoter: string) {
    this.timing = timing;
    this.#servers = {
      primary: new Server("primary", primaryVoter),
      backup: new Server("backup", backupVoter),
    };
    this.#client = new BinaryStarClient({
      endpoints: [primaryVoter, backupVoter],
      timeoutMs: timing.clientTimeoutMs,
      settleDelayMs: timing.settleDelayMs,
      validateReply: (reply, request) => reply[0]?.equals(request[0]!) === true,
    });
    const probe = (role: "primary" | "backup", endpoint: string): Dealer => {
      const socket = new Dealer({ linger: 0, immediate: true, sendTimeout: 0 });
      socket.connect(endpoint);
      void (async () => {
        for (;;) {
          try {
            await socket.receive();
          } catch {
            return; // closed
          }
          this.#votes.emit(role, performance.now());
        }
      })();
      return socket;
    };
    this.#probes = {
      primary: probe("primary", primaryVoter),
      backup: probe("backup", backupVoter),
    };
  }

  /** Starts both servers, waits until the pair has settled and starts the Guide client. */
  static async start(timing: Timing): Promise<Pair> {
    const [pVoter, pState, bVoter, bState] = await Promise.all(
      Array.from({ length: 4 }, () => allocateAddress()),
    );
    const pair = new Pair(timing, pVoter!, bVoter!);
    const { primary, backup } = pair.#servers;
    const settled = Promise.all([
      primary.nextLine(/peer is passive, ready as active$/),
      backup.nextLine(/peer is active, ready as passive$/),
    ]);
    await Promise.all([
      primary.start(timing, pState!, bState!),
      backup.start(timing, bState!, pState!),
    ]);
    await settled;
    pair.#loop = pair.#requestLoop();
    await pair.#nextReply(primary.voter);
    return pair;
  }

  /**
   * Kills the active server and measures both clients' failover; then restarts the killed server,
   * waits until it is passive, and waits a random part of a heartbeat before the next run.
   */
  async failover(): Promise<{ guide: number; eager: number; killed: string }> {
    const victim = this.#servers[this.#active];
    const heirRole = this.#active === "primary" ? "backup" : "primary";
    const heir = this.#servers[heirRole];
    const guideReply = this.#nextReply(heir.voter);
    const killedAt = performance.now();
    const killed = victim.kill();
    const eagerReply = this.#vote(heirRole);
    const [guideAt, eagerAt] = await Promise.all([guideReply, eagerReply, killed]);
    const guide = guideAt - killedAt;
    const eager = eagerAt - killedAt;
    this.guideTimes.push(guide);
    this.eagerTimes.push(eager);
    this.#active = heirRole;

    const passive = victim.nextLine(/peer is active, ready as passive$/);
    await victim.restart();
    await passive;
    // The Guide client keeps talking to the new active server; kill at a random heartbeat phase.
    await this.#nextReply(heir.voter);
    await sleep(Math.random() * this.timing.heartbeatMs);
    return { guide, eager, killed: victim.role };
  }

  async close(): Promise<void> {
    this.#stop.abort();
    await this.#client.close();
    await this.#loop;
    this.#probes.primary.close();
    this.#probes.backup.close();
    if (
      this.#servers.primary.printed(/fatal error/) ||
      this.#servers.backup.printed(/fatal error/)
    ) {
      console.error(`  ${this.timing.name}: a server failed fatally`);
    }
    await Promise.all([this.#servers.primary.stop(), this.#servers.backup.stop()]);
  }

  /** The Guide client: one request after the other, each reply announced with its server. */
  async #requestLoop(): Promise<void> {
    for (let sequence = 1; !this.#stop.signal.aborted; sequence++) {
      try {
        await this.#client.request(encodeSequence(sequence), { signal: this.#stop.signal });
      } catch (error) {
        if (this.#stop.signal.aborted) return;
        throw error;
      }
      this.#replies.emit("reply", this.#client.endpoint, performance.now());
      await sleep(REQUEST_INTERVAL_MS);
    }
  }

  /** When the Guide client's next reply from `endpoint` arrives. */
  #nextReply(endpoint: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const listener = (from: string, at: number): void => {
        if (from !== endpoint) return;
        clearTimeout(timer);
        this.#replies.off("reply", listener);
        resolve(at);
      };
      const timer = setTimeout(() => {
        this.#replies.off("reply", listener);
        reject(new Error(`${this.timing.name}: no reply from ${endpoint} in ${WAIT_MS} ms`));
      }, WAIT_MS);
      this.#replies.on("reply", listener);
    });
  }

  /** The eager client: votes on `role`'s server every 10 ms until it answers; resolves then. */
  async #vote(role: "primary" | "backup"): Promise<number> {
    const socket = this.#probes[role];
    let answered: number | undefined;
    const onReply = (at: number): void => {
      answered ??= at;
    };
    this.#votes.on(role, onReply);
    try {
      const deadline = performance.now() + WAIT_MS;
      while (answered === undefined) {
        if (performance.now() > deadline) throw new Error(`${role} never took over`);
        // Only over a live connection (immediate): a vote that cannot leave at once is skipped.
        await socket.send([Buffer.alloc(0), Buffer.from("1")]).catch(() => {});
        await sleep(REQUEST_INTERVAL_MS);
      }
      return answered;
    } finally {
      this.#votes.off(role, onReply);
    }
  }
}

const settings = benchSettings({ warmupMs: 0, durationMs: 0, runs: 20 });
const machine = machineInfo();
const began = performance.now();
const loadBefore = loadAverage();

console.log(`binary-star failover on ${formatMachine(machine)}`);

const results = await withPeers(async (peers): Promise<TimingResult[]> => {
  const pairs = await Promise.all(
    TIMINGS.map(async (timing) => {
      const pair = await Pair.start(timing);
      peers.defer(() => pair.close());
      return pair;
    }),
  );
  console.error(`  pairs started in ${((performance.now() - began) / 1000).toFixed(1)} s`);
  for (let run = 1; run <= settings.runs; run++) {
    for (const pair of pairs) {
      const { guide, eager, killed } = await pair.failover();
      console.error(
        `  ${pair.timing.name} run ${run}/${settings.runs}: ${killed} killed, guide client ` +
          `${guide.toFixed(0)} ms, eager client ${eager.toFixed(0)} ms`,
      );
    }
  }
  return pairs.map((pair) => ({
    ...pair.timing,
    guideClient: stats(
      pair.guideTimes,
      "timeout + settle",
      pair.timing.clientTimeoutMs + pair.timing.settleDelayMs,
    ),
    eagerClient: stats(pair.eagerTimes, "peer expiry", pair.timing.peerExpiryMs),
  }));
});

const data: BenchResults<{ requestIntervalMs: number; timings: TimingResult[] }> = {
  name: "binary-star",
  date: new Date().toISOString(),
  machine,
  settings,
  results: { requestIntervalMs: REQUEST_INTERVAL_MS, timings: results },
};
const path = writeResults("binary-star", data);

printTable(
  `binary-star failover: SIGKILL of the active server -> first reply from the other, ` +
    `tcp 127.0.0.1, ${settings.runs} runs each`,
  results.flatMap((timing) => {
    const label = `hb ${timing.heartbeatMs}, expiry ${timing.peerExpiryMs}`;
    return [
      {
        measurement: `${label}: Guide client (timeout ${timing.clientTimeoutMs} + settle ${timing.settleDelayMs})`,
        "median ms": timing.guideClient.medianMs,
        "max ms": timing.guideClient.maxMs,
        baseline: `timeout + settle ${timing.guideClient.baselineMs}`,
        "median vs baseline": ratio(timing.guideClient.medianMs, timing.guideClient.baselineMs),
        "max vs baseline": ratio(timing.guideClient.maxMs, timing.guideClient.baselineMs),
      },
      {
        measurement: `${label}: eager client (votes every ${REQUEST_INTERVAL_MS} ms)`,
        "median ms": timing.eagerClient.medianMs,
        "max ms": timing.eagerClient.maxMs,
        baseline: `peer expiry ${timing.eagerClient.baselineMs}`,
        "median vs baseline": ratio(timing.eagerClient.medianMs, timing.eagerClient.baselineMs),
        "max vs baseline": ratio(timing.eagerClient.maxMs, timing.eagerClient.baselineMs),
      },
    ];
  }),
  [
    `Guide client: BinaryStarClient, a request every ${REQUEST_INTERVAL_MS} ms; the request in flight ` +
      "at the kill times out, then the settle delay, then the resend: timeout + settle is its floor",
    "eager client: starts voting on the passive server at the kill; the passive takes over once " +
      "it has not heard its peer for the peer expiry, so expiry - heartbeat .. expiry after the kill",
    `processes: the two servers of each pair; both clients in this process`,
    `machine: ${formatMachine(machine)}`,
    `load average (1, 5, 15 min): ${loadBefore} before, ${loadAverage()} after`,
    `written to ${path} in ${((performance.now() - began) / 1000).toFixed(1)} s`,
  ],
);
