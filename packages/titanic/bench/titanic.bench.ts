// Throughput of Titanic with its store flushed to disk (fsync on, the default), against plain
// Majordomo through the same broker, with the same worker and client concurrency, in the same run.
//
// Every party is its own process: the broker (bench/broker.ts, a MajordomoBroker), Titanic
// (bench/titanic.ts, a TitanicServer whose FileStore lives in a temporary directory), one echo
// worker (bench/worker.ts, a MajordomoWorker), and this process, which runs CLIENTS clients in
// parallel, each one request at a time (closed loop), with PAYLOAD_BYTES bodies (MDP/0.1, tcp on
// 127.0.0.1). Three measurements, interleaved, each `runs` times; the medians are reported:
//
// (a) durable submissions: `titanic.request` answered `200` with a UUID, i.e. the request was
//     written, flushed, renamed and its directory flushed. They name a service without workers
//     (PARKED), so Titanic stores them and leaves them waiting: what is measured is the
//     submission alone, not the dispatch that would follow it.
// (b) end to end: `TitanicClient.call` on the echo service: submit, poll `titanic.reply` (first
//     after POLL_MS, doubling up to MAX_POLL_MS) until the reply is stored, then `titanic.close`.
//     In between Titanic dispatches the request to the echo worker and stores its reply (flushed).
// (c) the baseline: a MajordomoClient request to the same echo worker through the same broker.
//
// Ratios are to (c). Around the runs Titanic is asked (SIGUSR2) for its counters, to check that
// every completed request was sent once (no attempt timed out). The temporary directory is
// removed at the end, also on Ctrl-C. Results go to bench/results/titanic.json.
//
// Run: `node ../../scripts/pnpm.mjs run bench` in packages/titanic. BENCH_WARMUP_MS,
// BENCH_DURATION_MS and BENCH_RUNS override the defaults.
import { mkdtempSync, rmSync, statfsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import {
  type BenchResults,
  benchSettings,
  formatMachine,
  formatNumber,
  LatencyRecorder,
  type LatencyStats,
  loadAverage,
  type Measurement,
  type MeasureTiming,
  machineInfo,
  medianRun,
  type Peer,
  printTable,
  ratio,
  runInterleaved,
  summarize,
  type Throughput,
  withPeers,
  writeResults,
} from "@zmq-patterns/bench-kit";
import { MajordomoClient } from "@zmq-patterns/majordomo";
import { TitanicClient } from "../src/index.js";

/** Clients running in parallel, each one request at a time, in every measurement. */
const CLIENTS = 4;
/** Size of every request and reply body. */
const PAYLOAD_BYTES = 10;
/** The echo worker's service. */
const SERVICE = "echo";
/** A service without workers: submissions to it are stored and wait. */
const PARKED = "bench.parked";
/** First wait of `TitanicClient.call` before asking for the reply (doubles while pending). */
const POLL_MS = 1;
/** Cap of that wait. */
const MAX_POLL_MS = 20;
/** Longest a single operation may take before the run fails. */
const OPERATION_TIMEOUT_MS = 30_000;

const BROKER = new URL("./broker.ts", import.meta.url);
const TITANIC = new URL("./titanic.ts", import.meta.url);
const WORKER = new URL("./worker.ts", import.meta.url);

/** One run: throughput plus the latency of the operations completed during the counted part. */
interface LoopRun extends Throughput {
  latency: LatencyStats;
}

/** One measurement's row in bench/results/titanic.json. */
interface Row {
  /** Median operations per second. */
  perSec: number;
  /** Each run's operations/s, in run order. */
  runs: number[];
  /** `perSec` over the Majordomo baseline's of the same run. */
  vsMajordomo: number;
  /** Latency of one operation in the median run, ms. */
  p50Ms: number;
  p99Ms: number;
}

/** Titanic's counters (SIGUSR2), as bench/titanic.ts prints them. */
interface TitanicCounters {
  stored: number;
  closed: number;
  completed: number;
  attempts: number;
  timeouts: number;
  lateReplies: number;
  storageErrors: number;
  pending: number;
}

/** The `results` of bench/results/titanic.json. */
interface TitanicBench {
  protocol: "MDP/0.1, 9/TSP";
  clients: number;
  payloadBytes: number;
  fsync: true;
  /** File system of the store's directory (from statfs). */
  storeFileSystem: string;
  pollMs: number;
  maxPollMs: number;
  /** (c) The baseline: Majordomo echo requests/s, same broker, worker and clients. */
  majordomoEcho: Row;
  /** (a) `titanic.request` answered `200` (stored and flushed) per second. */
  durableSubmissions: Row;
  /** (b) Submit, wait for the stored reply, close: completed requests per second. */
  endToEnd: Row;
  /** Titanic's counters at the end of the runs. */
  titanic: TitanicCounters;
}

const settings = benchSettings({ warmupMs: 500, durationMs: 2000, runs: 3 });
const machine = machineInfo();
const began = performance.now();
const loadBefore = loadAverage();

// The store's directory, removed at the end, after Titanic stopped. On Ctrl-C (SIGINT, SIGTERM)
// the kit's handler kills the peers, then raises the signal again; that second time it is the only
// handler left, so it removes the directory and lets the signal end the process.
const dir = mkdtempSync(join(tmpdir(), "titanic-bench-"));
const removeDir = (): void => rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
const onSignal = (signal: NodeJS.Signals): void => {
  if (process.listenerCount(signal) > 1) return; // the kit is still stopping the peers
  removeDir();
  for (const name of ["SIGINT", "SIGTERM"] as const) process.off(name, onSignal);
  process.kill(process.pid, signal);
};
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);
const storeFileSystem = fileSystemOf(dir);

console.log(`titanic on ${formatMachine(machine)}`);
console.log(`store: ${dir} (${storeFileSystem}), fsync on`);

let results: TitanicBench;
try {
  results = await withPeers(async (peers): Promise<TitanicBench> => {
    const broker = await peers.start(BROKER, { name: "broker" });
    const [titanic] = await Promise.all([
      peers.start(TITANIC, { name: "titanic", args: [broker.endpoint, dir] }),
      peers.start(WORKER, { name: "worker", args: [broker.endpoint, SERVICE] }),
    ]);
    await waitForServices(broker, ["titanic.request", "titanic.reply", "titanic.close", SERVICE]);
    console.error(`  peers started in ${seconds(performance.now() - began)} s`);

    const payload = Buffer.alloc(PAYLOAD_BYTES, "x");
    const mdp = Array.from(
      { length: CLIENTS },
      () => new MajordomoClient({ broker: broker.endpoint }),
    );
    const tsp = Array.from(
      { length: CLIENTS },
      () => new TitanicClient({ broker: broker.endpoint }),
    );
    for (const client of [...mdp, ...tsp]) peers.defer(() => client.close());

    // One of each first, checking the echo.
    check(await mdp[0]!.request(SERVICE, payload), payload, "majordomo echo");
    check(await tsp[0]!.call(SERVICE, payload, callOptions()), payload, "titanic call");

    const measurements = [
      closedLoop("majordomo echo", mdp, async (client) => {
        await client.request(SERVICE, payload, { timeoutMs: OPERATION_TIMEOUT_MS, retries: 1 });
      }),
      closedLoop("titanic.request (durable)", tsp, async (client) => {
        await client.submit(PARKED, payload);
      }),
      closedLoop("titanic end to end", tsp, async (client) => {
        check(await client.call(SERVICE, payload, callOptions()), payload, "titanic call");
      }),
    ];
    const [majordomoRuns = [], submitRuns = [], endToEndRuns = []] = await runInterleaved(
      settings,
      measurements,
    );
    const counters = await titanicCounters(titanic);
    const baseline = summarize(majordomoRuns).msgsPerSec;
    return {
      protocol: "MDP/0.1, 9/TSP",
      clients: CLIENTS,
      payloadBytes: PAYLOAD_BYTES,
      fsync: true,
      storeFileSystem,
      pollMs: POLL_MS,
      maxPollMs: MAX_POLL_MS,
      majordomoEcho: row(majordomoRuns, baseline),
      durableSubmissions: row(submitRuns, baseline),
      endToEnd: row(endToEndRuns, baseline),
      titanic: counters,
    };
  });
} finally {
  removeDir();
}

const data: BenchResults<TitanicBench> = {
  name: "titanic",
  date: new Date().toISOString(),
  machine,
  settings,
  results,
};
const path = writeResults("titanic", data);

const list = (values: readonly number[]): string =>
  values.map((value) => formatNumber(value)).join(" / ");
const line = (measurement: string, r: Row) => ({
  measurement,
  "per second": r.perSec,
  "vs majordomo": ratio(r.perSec, results.majordomoEcho.perSec),
  "p50 ms": r.p50Ms.toFixed(2),
  "p99 ms": r.p99Ms.toFixed(2),
  runs: list(r.runs),
});
const t = results.titanic;
printTable(
  `titanic: MDP/0.1 + 9/TSP, tcp 127.0.0.1, ${PAYLOAD_BYTES}-byte bodies, ${CLIENTS} clients ` +
    `in parallel (one request each at a time), median of ${settings.runs} x ` +
    `${settings.durationMs / 1000} s`,
  [
    line("(c) majordomo echo: client->broker->worker (baseline)", results.majordomoEcho),
    line("(a) titanic.request answered 200 (stored, fsync)", results.durableSubmissions),
    line("(b) titanic end to end: submit, poll reply, close", results.endToEnd),
  ],
  [
    "processes: this process (the clients), the broker, Titanic, one echo worker",
    `store: FileStore, fsync on, in a temporary directory on ${storeFileSystem}; (a) submits to ` +
      `a service without workers, so requests are stored and wait; (b) polls after ${POLL_MS} ms, ` +
      `doubling to ${MAX_POLL_MS} ms`,
    `titanic: ${t.stored} stored, ${t.completed} replies stored from ${t.attempts} sends ` +
      `(${t.timeouts} timeouts, ${t.lateReplies} late), ${t.closed} closed, ` +
      `${t.storageErrors} storage errors`,
    `machine: ${formatMachine(machine)}`,
    `load average (1, 5, 15 min): ${loadBefore} before, ${loadAverage()} after`,
    `written to ${path} in ${seconds(performance.now() - began)} s`,
  ],
);

/**
 * A measurement where each client runs `operation` in a loop, one at a time, all clients in
 * parallel; the operations completed during the counted part are counted and timed.
 */
function closedLoop<C>(
  name: string,
  clients: readonly C[],
  operation: (client: C) => Promise<void>,
): Measurement<LoopRun> {
  return {
    name,
    async run(timing: MeasureTiming): Promise<LoopRun> {
      let running = true;
      let counting = false;
      let count = 0;
      const latency = new LatencyRecorder();
      const loops = Promise.all(
        clients.map(async (client) => {
          while (running) {
            const start = performance.now();
            await withTimeout(operation(client), OPERATION_TIMEOUT_MS, name);
            if (counting) {
              count += 1;
              latency.record(performance.now() - start);
            }
          }
        }),
      );
      loops.catch(() => {});
      // `loops` only settles early when an operation fails; the race then rethrows.
      await Promise.race([sleep(timing.warmupMs), loops]);
      counting = true;
      const start = performance.now();
      await Promise.race([sleep(timing.durationMs), loops]);
      counting = false;
      const elapsed = (performance.now() - start) / 1000;
      running = false;
      await loops;
      return {
        messages: count,
        seconds: elapsed,
        msgsPerSec: count / elapsed,
        latency: latency.stats(),
      };
    },
  };
}

function row(runs: readonly LoopRun[], baseline: number): Row {
  const summary = summarize(runs);
  const median = medianRun(runs);
  return {
    perSec: summary.msgsPerSec,
    runs: summary.runs,
    vsMajordomo: round3(summary.msgsPerSec / baseline),
    p50Ms: round3(median.latency.p50Us / 1000),
    p99Ms: round3(median.latency.p99Us / 1000),
  };
}

function callOptions() {
  return { pollMs: POLL_MS, maxPollMs: MAX_POLL_MS, timeoutMs: OPERATION_TIMEOUT_MS };
}

function check(reply: readonly Buffer[], payload: Buffer, what: string): void {
  if (reply.length !== 1 || !reply[0]?.equals(payload)) {
    throw new Error(`${what}: unexpected reply ${JSON.stringify(reply.map(String))}`);
  }
}

/** Waits until the broker has printed a `worker ready` line for each of `services`. */
async function waitForServices(broker: Peer, services: readonly string[]): Promise<void> {
  const deadline = performance.now() + 10_000;
  const missing = (): string[] =>
    services.filter(
      (service) => !broker.process.output.some((text) => text === `worker ready ${service}`),
    );
  while (missing().length > 0) {
    if (performance.now() > deadline) {
      throw new Error(`services not registered with the broker: ${missing().join(", ")}`);
    }
    await sleep(20);
  }
}

/** Titanic's counters, asked by SIGUSR2. */
async function titanicCounters(titanic: Peer): Promise<TitanicCounters> {
  const reply = titanic.process.waitForLine(/^stats \{.*\}$/, 5000);
  process.kill(titanic.pid, "SIGUSR2");
  return JSON.parse((await reply).slice("stats ".length)) as TitanicCounters;
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The name of the file system `path` is on, from its statfs magic number. */
function fileSystemOf(path: string): string {
  const names: Record<number, string> = {
    61267: "ext4",
    1481003842: "xfs",
    2435016766: "btrfs",
    16914836: "tmpfs (fsync costs nothing)",
    2035054128: "overlayfs",
    801189825: "zfs",
  };
  const type = statfsSync(path).type;
  return names[type] ?? `file system 0x${type.toString(16)}`;
}

function seconds(ms: number): string {
  return (ms / 1000).toFixed(1);
}

function round3(value: number): number {
  return Math.round(value * 1000) / 1000;
}
