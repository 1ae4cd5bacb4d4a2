// Throughput, broker CPU time per request and latency of the Majordomo broker, against the
// two-hop proxy ceiling measured in the same run.
//
// Every party is its own process: the broker (bench/broker.ts, a MajordomoBroker), each worker
// (bench/worker.ts, a MajordomoWorker with an immediate echo handler), the two ceiling peers, and
// this process, whose MajordomoAsyncClient keeps WINDOW requests of PAYLOAD_BYTES in flight
// (MDP/0.1, tcp on 127.0.0.1). An MDP worker handles one request at a time, so throughput can only
// grow with workers. Each worker count has its own broker and workers, started once.
//
// 1. Throughput: the ceiling and the three setups are measured interleaved, each `runs` times; the
//    medians are reported with their ratio to the ceiling. Around each run the broker is asked
//    (SIGUSR2) for its CPU time (user + system) and the replies it forwarded: the difference gives
//    its CPU time per request.
// 2. Latency: with 4 workers, requests are sent open-loop at half the peak rate just measured, on
//    a 1 ms timer, each timed from its send to its reply (the body carries a sequence number, as
//    the async client returns replies in arrival order); p50, p99 and max are reported.
//
// Results go to bench/results/majordomo.json. Run: `node ../../scripts/pnpm.mjs run bench` in
// packages/majordomo. BENCH_WARMUP_MS, BENCH_DURATION_MS and BENCH_RUNS override the defaults.
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
  measurePipelined,
  median,
  type Peer,
  type PeerGroup,
  type PipelinedCeiling,
  printTable,
  ratio,
  runInterleaved,
  startProxyTwoHopEcho,
  summarize,
  type Throughput,
  withPeers,
  writeResults,
} from "@zmq-patterns/bench-kit";
import {
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_LIVENESS,
  MajordomoAsyncClient,
} from "../src/index.js";

/** Requests in flight from the client (the ceiling uses the same window). */
const WINDOW = 100;
/** Size of every request and reply body. */
const PAYLOAD_BYTES = 10;
/** Worker counts measured. */
const WORKER_COUNTS = [1, 2, 4] as const;
/** The workers' service. */
const SERVICE = "echo";
/** Workers behind the broker in the latency measurement. */
const LATENCY_WORKERS = 4;
/** The latency measurement's rate, as a fraction of the peak rate of its setup. */
const LATENCY_LOAD = 0.5;
/** Interval of the open-loop pacer, in ms (Node's timers go no finer). */
const PACER_TICK_MS = 1;

const BROKER = new URL("./broker.ts", import.meta.url);
const WORKER = new URL("./worker.ts", import.meta.url);

/** One run through the broker: throughput plus the broker's CPU time over the run. */
interface BrokerRun extends Throughput {
  /** Broker CPU time (user + system) from just before the warm-up to just after the drain, µs. */
  brokerCpuUs: number;
  /** Replies the broker forwarded over the same interval. */
  brokerRequests: number;
  /** Length of that interval, ms. */
  brokerWallMs: number;
}

/** One worker count's row in bench/results/majordomo.json. */
interface BrokerThroughput {
  /** Worker processes behind the broker. */
  workers: number;
  /** Median requests (round trips) per second. */
  requestsPerSec: number;
  /** Each run's requests/s, in run order. */
  runs: number[];
  /** `requestsPerSec` over the two-hop proxy ceiling's msgs/s of the same run. */
  vsProxyTwoHop: number;
  /** Broker CPU time per request, µs: median over the runs. */
  brokerCpuUsPerRequest: number;
  /** Each run's broker CPU time per request, µs. */
  brokerCpuUsPerRequestRuns: number[];
  /** Broker CPU time over wall time, median over the runs (1 = one core busy all the time). */
  brokerCpuShare: number;
}

/** The latency measurement in bench/results/majordomo.json. */
interface BrokerLatency {
  workers: number;
  /** Requests/s asked of the pacer: `LATENCY_LOAD` x the setup's peak. */
  targetRate: number;
  /** Requests/s actually sent during the counted part. */
  sentRate: number;
  durationMs: number;
  /** Send-to-reply latency of the requests sent during the counted part, in ms. */
  count: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Broker CPU time per request at this rate, µs. */
  brokerCpuUsPerRequest: number;
  /** Broker CPU time over wall time at this rate. */
  brokerCpuShare: number;
}

/** The `results` of bench/results/majordomo.json. */
interface MajordomoBench {
  protocol: "MDP/0.1";
  window: number;
  payloadBytes: number;
  heartbeatIntervalMs: number;
  /** The baseline, measured in the same run with the same window and payload. */
  proxyTwoHopEcho: PipelinedCeiling;
  broker: BrokerThroughput[];
  latency: BrokerLatency;
}

/** A setup of one worker count: its broker, a client, and the measurement of its throughput. */
interface Setup extends Measurement<BrokerRun> {
  readonly workers: number;
  readonly broker: Peer;
  readonly runs: BrokerRun[];
}

const settings = benchSettings({ warmupMs: 500, durationMs: 2000, runs: 3 });
const latencyTiming: MeasureTiming = {
  warmupMs: settings.warmupMs,
  durationMs: Math.round(1.5 * settings.durationMs),
};
const machine = machineInfo();
const began = performance.now();
const loadBefore = loadAverage();

console.log(`majordomo broker on ${formatMachine(machine)}`);

const results = await withPeers(async (peers): Promise<MajordomoBench> => {
  const [ceiling, ...setups] = await Promise.all([
    startProxyTwoHopEcho(peers, { window: WINDOW, payloadBytes: PAYLOAD_BYTES }),
    ...WORKER_COUNTS.map((workers) => startSetup(peers, workers)),
  ]);
  console.error(`  peers started in ${seconds(performance.now() - began)} s`);
  await runInterleaved<Throughput>(settings, [ceiling, ...setups]);
  const proxyTwoHopEcho = ceiling.summary();
  const broker = setups.map((setup): BrokerThroughput => {
    const summary = summarize(setup.runs);
    const cpu = setup.runs.map((run) => round1(run.brokerCpuUs / run.brokerRequests));
    const share = setup.runs.map((run) => run.brokerCpuUs / 1000 / run.brokerWallMs);
    return {
      workers: setup.workers,
      requestsPerSec: summary.msgsPerSec,
      runs: summary.runs,
      vsProxyTwoHop: round3(summary.msgsPerSec / proxyTwoHopEcho.msgsPerSec),
      brokerCpuUsPerRequest: round1(median(cpu)),
      brokerCpuUsPerRequestRuns: cpu,
      brokerCpuShare: round3(median(share)),
    };
  });
  const target = setups.find((setup) => setup.workers === LATENCY_WORKERS);
  const peak = broker.find((row) => row.workers === LATENCY_WORKERS)?.requestsPerSec;
  if (target === undefined || peak === undefined) throw new Error("no latency setup");
  const latency = await measureLatency(peers, target, Math.round(LATENCY_LOAD * peak));
  return {
    protocol: "MDP/0.1",
    window: WINDOW,
    payloadBytes: PAYLOAD_BYTES,
    heartbeatIntervalMs: DEFAULT_HEARTBEAT_INTERVAL_MS,
    proxyTwoHopEcho,
    broker,
    latency,
  };
});

const data: BenchResults<MajordomoBench> = {
  name: "majordomo",
  date: new Date().toISOString(),
  machine,
  settings,
  results,
};
const path = writeResults("majordomo", data);

const ceiling = results.proxyTwoHopEcho;
const list = (values: readonly number[], digits = 0): string =>
  values.map((value) => formatNumber(value, digits)).join(" / ");
const lat = results.latency;
printTable(
  `majordomo broker: MDP/0.1, tcp 127.0.0.1, ${PAYLOAD_BYTES}-byte payloads, window ${WINDOW}, ` +
    `median of ${settings.runs} x ${settings.durationMs / 1000} s`,
  [
    {
      measurement: "two-hop proxy ceiling (DEALER->JS proxy->ROUTER echo)",
      "requests/s": ceiling.msgsPerSec,
      "vs ceiling": ratio(ceiling.msgsPerSec, ceiling.msgsPerSec),
      "broker CPU us/req": "",
      "broker CPU": "",
      runs: list(ceiling.runs),
    },
    ...results.broker.map((row) => ({
      measurement: `async client->broker->${row.workers} echo worker${row.workers === 1 ? "" : "s"}`,
      "requests/s": row.requestsPerSec,
      "vs ceiling": ratio(row.requestsPerSec, ceiling.msgsPerSec),
      "broker CPU us/req": row.brokerCpuUsPerRequest.toFixed(1),
      "broker CPU": `${Math.round(row.brokerCpuShare * 100)}%`,
      runs: list(row.runs),
    })),
  ],
  [
    "processes: this client, the broker, one per worker; the ceiling: client, proxy, echo server",
    `heartbeat ${DEFAULT_HEARTBEAT_INTERVAL_MS} ms, liveness ${DEFAULT_LIVENESS}; each worker ` +
      "handles one request at a time; broker CPU = user + system time of the broker process over " +
      "each run (warm-up and drain included) / requests it answered, and its share of one core",
  ],
);
printTable(
  `latency at ${LATENCY_LOAD * 100}% of the peak rate, ${lat.workers} workers, open loop ` +
    `(${PACER_TICK_MS} ms pacer), ${lat.durationMs / 1000} s`,
  [
    {
      "target req/s": lat.targetRate,
      "sent req/s": Math.round(lat.sentRate),
      requests: lat.count,
      "p50 ms": lat.p50Ms.toFixed(3),
      "p99 ms": lat.p99Ms.toFixed(3),
      "max ms": lat.maxMs.toFixed(3),
      "broker CPU us/req": lat.brokerCpuUsPerRequest.toFixed(1),
      "broker CPU": `${Math.round(lat.brokerCpuShare * 100)}%`,
    },
  ],
  [
    `machine: ${formatMachine(machine)}`,
    `load average (1, 5, 15 min): ${loadBefore} before, ${loadAverage()} after`,
    `written to ${path} in ${seconds(performance.now() - began)} s`,
  ],
);

/**
 * Starts a broker and `workers` workers, waits until the broker has registered them all, and
 * connects an async client; returns the measurement of that setup.
 */
async function startSetup(peers: PeerGroup, workers: number): Promise<Setup> {
  const name = `broker-${workers}w`;
  const broker = await peers.start(BROKER, { name });
  await Promise.all(
    Array.from({ length: workers }, (_, i) =>
      peers.start(WORKER, { name: `${name}-worker${i + 1}`, args: [broker.endpoint, SERVICE] }),
    ),
  );
  await waitForWorkers(broker, workers);

  const client = new MajordomoAsyncClient({ broker: broker.endpoint, maxInFlight: WINDOW });
  peers.defer(() => client.close());
  const payload = Buffer.alloc(PAYLOAD_BYTES, "x");
  await checkEcho(client, payload, name);
  const runs: BrokerRun[] = [];
  return {
    name: `broker, ${workers} worker${workers === 1 ? "" : "s"}`,
    workers,
    broker,
    runs,
    async run(timing) {
      const before = await brokerCpu(broker);
      const result = await measurePipelined({
        window: WINDOW,
        warmupMs: timing.warmupMs,
        durationMs: timing.durationMs,
        send: () => client.send(SERVICE, payload),
        receive: async () => {
          await client.receive();
        },
      });
      const after = await brokerCpu(broker);
      const run: BrokerRun = {
        ...result,
        brokerCpuUs: after.cpuUs - before.cpuUs,
        brokerRequests: after.replies - before.replies,
        brokerWallMs: after.at - before.at,
      };
      runs.push(run);
      return run;
    },
  };
}

/** One round trip first, checking the echo: a reply for `echo` whose body is the request's. */
async function checkEcho(
  client: MajordomoAsyncClient,
  payload: Buffer,
  name: string,
): Promise<void> {
  await client.send(SERVICE, payload);
  const reply = await client.receive({ timeoutMs: 10_000 });
  if (reply.service !== SERVICE || reply.body.length !== 1 || !reply.body[0]?.equals(payload)) {
    throw new Error(`${name}: unexpected reply ${JSON.stringify(reply.body.map(String))}`);
  }
}

/** Waits until the broker has printed `count` `worker ready` lines. */
async function waitForWorkers(broker: Peer, count: number, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  const registered = (): number =>
    broker.process.output.filter((line) => /^worker ready\b/.test(line)).length;
  while (registered() < count) {
    if (performance.now() > deadline) {
      throw new Error(`${broker.name}: ${registered()} of ${count} workers registered`);
    }
    await sleep(20);
  }
}

/** The broker's CPU time (user + system, µs) and replies forwarded so far, asked by SIGUSR2. */
async function brokerCpu(broker: Peer): Promise<{ cpuUs: number; replies: number; at: number }> {
  const line = broker.process.waitForLine(/^cpu \d+ \d+$/, 5000);
  process.kill(broker.pid, "SIGUSR2");
  const [, cpu = "", replies = ""] = /^cpu (\d+) (\d+)$/.exec(await line) ?? [];
  return { cpuUs: Number(cpu), replies: Number(replies), at: performance.now() };
}

/**
 * Sends requests open-loop at `rate` per second through the `setup`'s broker, on a fresh client
 * whose window never holds a send back, each body a zero-padded sequence number of PAYLOAD_BYTES;
 * the requests sent after the warm-up are timed from their send to their reply.
 */
async function measureLatency(
  peers: PeerGroup,
  setup: Setup,
  rate: number,
): Promise<BrokerLatency> {
  const { warmupMs, durationMs } = latencyTiming;
  console.error(
    `  latency, ${setup.workers} workers: ${formatNumber(rate)} requests/s for ` +
      `${(warmupMs + durationMs) / 1000} s`,
  );
  const client = new MajordomoAsyncClient({
    broker: setup.broker.endpoint,
    maxInFlight: 1_000_000,
  });
  peers.defer(() => client.close());
  await checkEcho(client, Buffer.alloc(PAYLOAD_BYTES, "x"), "latency client");

  const sentAt: number[] = [];
  const latency = new LatencyRecorder();
  let failure: unknown;
  const fail = (error: unknown): void => {
    failure ??= error;
  };
  let first = Number.POSITIVE_INFINITY; // first sequence number counted
  let last = Number.POSITIVE_INFINITY; // first sequence number after the counted part
  let sending = true;
  let received = 0;
  let allIn: (() => void) | undefined;
  const drained = new Promise<void>((resolve) => {
    allIn = resolve;
  });
  const checkDrained = (): void => {
    if (!sending && received === sentAt.length) allIn?.();
  };

  // Runs until the client closes (its pending receive then rejects, ignored once drained).
  const receiveLoop = async (): Promise<void> => {
    for (;;) {
      const reply = await client.receive();
      const now = performance.now();
      const seq = Number(reply.body[0]?.toString());
      const at = sentAt[seq];
      if (at === undefined) throw new Error(`reply with an unknown sequence number ${seq}`);
      received++;
      if (seq >= first && seq < last) latency.record(now - at);
      checkDrained();
    }
  };
  receiveLoop().catch((error: unknown) => {
    if (sending || received < sentAt.length) fail(error);
    allIn?.();
  });

  const before = await brokerCpu(setup.broker);
  const start = performance.now();
  const countFrom = start + warmupMs;
  const end = countFrom + durationMs;
  let countedAt = 0;
  let endedAt = 0;
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const now = performance.now();
      if (failure !== undefined || now >= end) {
        clearInterval(timer);
        last = sentAt.length;
        endedAt = now;
        resolve();
        return;
      }
      if (now >= countFrom && first === Number.POSITIVE_INFINITY) {
        first = sentAt.length;
        countedAt = now;
      }
      const due = Math.floor(((now - start) * rate) / 1000);
      while (sentAt.length < due) {
        const seq = sentAt.length;
        const body = String(seq).padStart(PAYLOAD_BYTES, "0");
        sentAt.push(performance.now());
        client.send(SERVICE, body).catch(fail);
      }
    }, PACER_TICK_MS);
  });
  sending = false;
  checkDrained();
  const complete = await Promise.race([drained.then(() => true), sleep(5000, false)]);
  if (failure !== undefined) throw failure;
  if (!complete) throw new Error(`${sentAt.length - received} replies missing 5 s after the end`);
  const after = await brokerCpu(setup.broker);

  const stats: LatencyStats = latency.stats();
  const countedMs = endedAt - countedAt;
  return {
    workers: setup.workers,
    targetRate: rate,
    sentRate: round1(((last - first) * 1000) / countedMs),
    durationMs,
    count: stats.count,
    p50Ms: round3(stats.p50Us / 1000),
    p99Ms: round3(stats.p99Us / 1000),
    maxMs: round3(stats.maxUs / 1000),
    brokerCpuUsPerRequest: round1((after.cpuUs - before.cpuUs) / (after.replies - before.replies)),
    brokerCpuShare: round3((after.cpuUs - before.cpuUs) / 1000 / (after.at - before.at)),
  };
}

function seconds(ms: number): string {
  return (ms / 1000).toFixed(1);
}

function round1(value: number): number {
  return Math.round(value * 10) / 10;
}

function round3(value: number): number {
  return Math.round(value * 1000) / 1000;
}
