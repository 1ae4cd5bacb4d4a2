// Request rate, latency and failover time of the three Freelance models, each with three servers,
// against baselines measured in the same run.
//
// Every server is its own process: the package's `freelance server` command (src/cli.ts, run from
// source), three per model, bound to tcp on 127.0.0.1; the client is a FreelanceClient in this
// process, with the Guide's timings (the defaults). Bodies are PAYLOAD_BYTES bytes.
//
// 1. Round trip: one request at a time, each awaited before the next, for each model, beside the
//    kit's REQ->REP round trip (two processes, one hop, as a Freelance request): requests/s, p50
//    and p99 latency. The four are measured interleaved, `runs` times each; medians are reported.
// 2. Pipelined: WINDOW requests in flight, for models two and three (model one sends one request
//    at a time), beside the kit's DEALER->ROUTER echo with the same window.
// 3. Failover: with requests made back to back, one of the three servers (the first, the one
//    model three prefers) is SIGKILLed at a random moment; the client has no warning. Per trial:
//    the longest time without a successful reply from the kill on, the slowest request that ended
//    after it, the latency once the client has settled with the server gone (requests started
//    1.5 s or more after the kill), and the requests that failed. The same with SIGSTOP (a server
//    that hangs with its connection open, which no disconnect reveals), and without a fault, as
//    the control: on a busy machine requests pause now and then anyway. Each trial uses a new
//    client; a killed server is restarted for the next.
//
// Results go to bench/results/freelance.json. Run: `node ../../scripts/pnpm.mjs run bench` in
// packages/freelance. BENCH_WARMUP_MS, BENCH_DURATION_MS and BENCH_RUNS override the defaults of
// parts 1 and 2.
import { setTimeout as sleep } from "node:timers/promises";
import {
  type BenchResults,
  benchSettings,
  formatMachine,
  formatNumber,
  type LatencyStats,
  loadAverage,
  type Measurement,
  machineInfo,
  measurePipelined,
  measureRoundTrip,
  median,
  medianRun,
  type Peer,
  type PeerGroup,
  type PipelinedCeiling,
  printTable,
  type RoundTripCeiling,
  type RoundTripResult,
  ratio,
  runInterleaved,
  startDealerRouterEcho,
  startReqRepRoundTrip,
  summarize,
  type Throughput,
  withPeers,
  writeResults,
} from "@zmq-patterns/bench-kit";
import { allocateAddress } from "@zmq-patterns/core/testing";
import {
  FreelanceClient,
  type FreelanceModel,
  MODEL1_ATTEMPT_TIMEOUT_MS,
  MODEL2_TIMEOUT_MS,
  MODEL3_TIMEOUT_MS,
  PING_INTERVAL_MS,
  SERVER_TTL_MS,
} from "../src/index.js";

/** Requests in flight in the pipelined measurements (the ceiling uses the same window). */
const WINDOW = 100;
/** Size of every request body. */
const PAYLOAD_BYTES = 10;
/** Servers per model. */
const SERVERS = 3;
const MODELS = [1, 2, 3] as const satisfies readonly FreelanceModel[];
/** Failover trials per model and fault. */
const TRIALS = { none: 3, SIGKILL: 4, SIGSTOP: 3 } as const;
/** Requests made back to back before the fault, at the least. */
const TRIAL_WARMUP_MS = 200;
/**
 * After the fault, the client is in its steady state with the server down from this long on (it
 * covers the 1 s attempt timeouts of models one and three, with a margin).
 */
const SETTLED_MS = 1500;
/** Requests measured in that steady state. */
const AFTER = 2;
/** A trial that takes longer than this has failed. */
const TRIAL_LIMIT_MS = 30_000;

const CLI = new URL("../src/cli.ts", import.meta.url);
/** The server command's ready line: `freelance server ready: model N, endpoint <ep>[, ...]`. */
const SERVER_READY = /ready: model \d, endpoint ([^,\s]+)/;

const payload = Buffer.alloc(PAYLOAD_BYTES, "x");

type Fault = keyof typeof TRIALS;

/** One model's round trip in bench/results/freelance.json. */
interface RoundTripRow {
  model: FreelanceModel;
  requestsPerSec: number;
  runs: number[];
  /** Latency of the median run. */
  latency: LatencyStats;
  vsReqRep: number;
}

/** One model's pipelined rate in bench/results/freelance.json. */
interface PipelinedRow {
  model: FreelanceModel;
  requestsPerSec: number;
  runs: number[];
  vsDealerRouter: number;
}

/** One failover trial. */
interface Trial {
  /**
   * The longest time without a successful reply from the fault on (from the fault to the first
   * reply after it, or between two replies): how long the client saw no answer, ms.
   */
  gapMs: number;
  /** The slowest request that ended after the fault, ms. */
  slowestMs: number;
  /** Median latency of the successful requests just before the fault, ms. */
  beforeMs: number;
  /** Median latency of the first AFTER requests started SETTLED_MS after the fault, ms. */
  afterMs: number;
  /** Requests that failed after the fault. */
  failed: number;
}

/** One model and fault's failover figures in bench/results/freelance.json. */
interface FailoverRow {
  model: FreelanceModel;
  fault: Fault;
  trials: Trial[];
  /** Medians over the trials. */
  gapMs: number;
  slowestMs: number;
  afterMs: number;
  /** Largest over the trials. */
  maxGapMs: number;
  /** Over all the trials. */
  failed: number;
}

/** The `results` of bench/results/freelance.json. */
interface FreelanceBench {
  servers: number;
  payloadBytes: number;
  window: number;
  /** The client's timings: the Guide's. */
  timings: {
    model1AttemptTimeoutMs: number;
    model2TimeoutMs: number;
    model3TimeoutMs: number;
    model3AttemptTimeoutMs: number;
    pingIntervalMs: number;
    serverTtlMs: number;
  };
  reqRepRoundTrip: RoundTripCeiling;
  roundTrip: RoundTripRow[];
  dealerRouterEcho: PipelinedCeiling;
  pipelined: PipelinedRow[];
  failover: FailoverRow[];
}

const settings = benchSettings({ warmupMs: 500, durationMs: 2000, runs: 3 });
const machine = machineInfo();
const began = performance.now();
const loadBefore = loadAverage();

console.log(`freelance on ${formatMachine(machine)}`);

const results = await withPeers(async (peers): Promise<FreelanceBench> => {
  const [reqRep, dealerRouter, ...pools] = await Promise.all([
    startReqRepRoundTrip(peers, { payloadBytes: PAYLOAD_BYTES }),
    startDealerRouterEcho(peers, { window: WINDOW, payloadBytes: PAYLOAD_BYTES }),
    ...MODELS.map((model) => startPool(peers, model)),
  ]);
  console.error(`  peers started in ${seconds(performance.now() - began)}`);
  const clients = pools.map((pool) => {
    const client = new FreelanceClient({ model: pool.model, endpoints: pool.endpoints });
    peers.defer(() => client.close());
    return client;
  });
  for (const client of clients) await warm(client);

  console.error("  round trip, one request at a time");
  const roundTrips = await runInterleaved<RoundTripResult>(settings, [
    reqRep,
    ...clients.map((client) => ({
      name: `model ${client.model} round trip`,
      run: (timing: { warmupMs: number; durationMs: number }) =>
        measureRoundTrip({
          ...timing,
          request: async () => {
            await client.request(payload);
          },
        }),
    })),
  ]);
  const reqRepRoundTrip = reqRep.summary();

  console.error(`  pipelined, window ${WINDOW}`);
  const pipelinedClients = clients.filter((client) => client.model !== 1);
  const pipelinedRuns = await runInterleaved<Throughput>(settings, [
    dealerRouter,
    ...pipelinedClients.map((client) => pipelinedMeasurement(client)),
  ]);
  const dealerRouterEcho = dealerRouter.summary();
  for (const client of clients) await client.close();

  const failover: FailoverRow[] = [];
  for (const fault of ["none", "SIGKILL", "SIGSTOP"] as const) {
    for (const pool of pools) {
      console.error(`  failover, model ${pool.model}, ${fault}`);
      const trials: Trial[] = [];
      for (let i = 0; i < TRIALS[fault]; i++) trials.push(await failoverTrial(pool, fault));
      failover.push({
        model: pool.model,
        fault,
        trials,
        gapMs: round1(median(trials.map((t) => t.gapMs))),
        slowestMs: round1(median(trials.map((t) => t.slowestMs))),
        afterMs: round1(median(trials.map((t) => t.afterMs))),
        maxGapMs: round1(Math.max(...trials.map((t) => t.gapMs))),
        failed: trials.reduce((sum, t) => sum + t.failed, 0),
      });
    }
  }

  return {
    servers: SERVERS,
    payloadBytes: PAYLOAD_BYTES,
    window: WINDOW,
    timings: {
      model1AttemptTimeoutMs: MODEL1_ATTEMPT_TIMEOUT_MS,
      model2TimeoutMs: MODEL2_TIMEOUT_MS,
      model3TimeoutMs: MODEL3_TIMEOUT_MS,
      model3AttemptTimeoutMs: MODEL3_TIMEOUT_MS / SERVERS,
      pingIntervalMs: PING_INTERVAL_MS,
      serverTtlMs: SERVER_TTL_MS,
    },
    reqRepRoundTrip,
    roundTrip: MODELS.map((model, i) => {
      const runs = roundTrips[i + 1] ?? [];
      const summary = summarize(runs);
      return {
        model,
        requestsPerSec: summary.msgsPerSec,
        runs: summary.runs,
        latency: medianRun(runs).latency,
        vsReqRep: round3(summary.msgsPerSec / reqRepRoundTrip.msgsPerSec),
      };
    }),
    dealerRouterEcho,
    pipelined: pipelinedClients.map((client, i) => {
      const summary = summarize(pipelinedRuns[i + 1] ?? []);
      return {
        model: client.model,
        requestsPerSec: summary.msgsPerSec,
        runs: summary.runs,
        vsDealerRouter: round3(summary.msgsPerSec / dealerRouterEcho.msgsPerSec),
      };
    }),
    failover,
  };
});

const data: BenchResults<FreelanceBench> = {
  name: "freelance",
  date: new Date().toISOString(),
  machine,
  settings,
  results,
};
const path = writeResults("freelance", data);

const runsOf = (values: number[]): string => values.map((v) => formatNumber(v)).join(" / ");
const us = (value: number): string => `${formatNumber(value)} µs`;
const ms = (value: number): string => `${formatNumber(value, 1)} ms`;
const base = results.reqRepRoundTrip;
printTable(
  `freelance, round trip (one request at a time), ${SERVERS} servers, tcp 127.0.0.1, ` +
    `${PAYLOAD_BYTES}-byte bodies, median of ${settings.runs} x ${settings.durationMs / 1000} s`,
  [
    {
      measurement: "baseline: REQ->REP round trip (one hop)",
      "requests/s": base.msgsPerSec,
      "vs baseline": ratio(base.msgsPerSec, base.msgsPerSec),
      p50: us(base.latency.p50Us),
      p99: us(base.latency.p99Us),
      runs: runsOf(base.runs),
    },
    ...results.roundTrip.map((row) => ({
      measurement: `model ${row.model}`,
      "requests/s": row.requestsPerSec,
      "vs baseline": ratio(row.requestsPerSec, base.msgsPerSec),
      p50: us(row.latency.p50Us),
      p99: us(row.latency.p99Us),
      runs: runsOf(row.runs),
    })),
  ],
);
const echo = results.dealerRouterEcho;
printTable(`freelance, pipelined, window ${WINDOW}, ${SERVERS} servers`, [
  {
    measurement: `baseline: DEALER->ROUTER echo, window ${WINDOW}`,
    "requests/s": echo.msgsPerSec,
    "vs baseline": ratio(echo.msgsPerSec, echo.msgsPerSec),
    runs: runsOf(echo.runs),
  },
  ...results.pipelined.map((row) => ({
    measurement: `model ${row.model}`,
    "requests/s": row.requestsPerSec,
    "vs baseline": ratio(row.requestsPerSec, echo.msgsPerSec),
    runs: runsOf(row.runs),
  })),
]);
printTable(
  "freelance, failover: the first of three servers faulted while requests run back to back " +
    `(median of ${TRIALS.SIGKILL} SIGKILL / ${TRIALS.SIGSTOP} SIGSTOP / ${TRIALS.none} control trials)`,
  results.failover.map((row) => ({
    fault: `model ${row.model}, ${row.fault === "none" ? "no fault (control)" : row.fault}`,
    "longest without a reply": ms(row.gapMs),
    "(max)": ms(row.maxGapMs),
    "slowest request": ms(row.slowestMs),
    [`latency from ${SETTLED_MS / 1000} s on`]: ms(row.afterMs),
    failed: row.failed,
  })),
  [
    "control: the same trial without a fault, for the pauses a busy machine causes anyway",
    `Guide timings: model 1 attempt ${MODEL1_ATTEMPT_TIMEOUT_MS} ms; model 2 timeout ` +
      `${MODEL2_TIMEOUT_MS} ms; model 3 timeout ${MODEL3_TIMEOUT_MS} ms ` +
      `(${MODEL3_TIMEOUT_MS / SERVERS} ms per attempt), ping ${PING_INTERVAL_MS} ms, TTL ${SERVER_TTL_MS} ms`,
    "processes: this client; each server its own process (the freelance server command); " +
      "the baselines' echo servers",
    `machine: ${formatMachine(machine)}`,
    `load average (1, 5, 15 min): ${loadBefore} before, ${loadAverage()} after`,
    `written to ${path} in ${seconds(performance.now() - began)}`,
  ],
);

// ---------------------------------------------------------------------------------------------

/** Three servers of one model, each in its own process. */
interface Pool {
  model: FreelanceModel;
  endpoints: string[];
  servers: Peer[];
}

async function startPool(peers: PeerGroup, model: FreelanceModel): Promise<Pool> {
  const endpoints: string[] = [];
  for (let i = 0; i < SERVERS; i++) endpoints.push(await allocateAddress("tcp"));
  const servers = await Promise.all(
    endpoints.map((endpoint, i) =>
      peers.start(CLI, {
        name: `model${model}-server${i + 1}`,
        args: ["server", "--model", String(model), "--bind", endpoint],
        readyPattern: SERVER_READY,
      }),
    ),
  );
  return { model, endpoints, servers };
}

/** Makes requests until every server is connected (model three: alive) and answering. */
async function warm(client: FreelanceClient): Promise<void> {
  const deadline = performance.now() + 10_000;
  for (;;) {
    await client.request(payload);
    const ready =
      client.model !== 3 || client.stats().servers.every((server) => server.alive === true);
    if (ready && client.stats().replies >= 20) return;
    if (performance.now() > deadline) throw new Error(`model ${client.model}: servers not ready`);
    await sleep(10);
  }
}

/** The pipelined measurement of `client`: WINDOW requests in flight, replies taken in order. */
function pipelinedMeasurement(client: FreelanceClient): Measurement {
  const inFlight: Promise<Buffer[]>[] = [];
  return {
    name: `model ${client.model} pipelined`,
    run: (timing) =>
      measurePipelined({
        ...timing,
        window: WINDOW,
        send: async () => {
          const reply = client.request(payload);
          // Awaited in order by `receive`; a failure fails the run there.
          reply.catch(() => {});
          inFlight.push(reply);
        },
        receive: async () => {
          const reply = inFlight.shift();
          if (reply === undefined) throw new Error("receive with nothing in flight");
          await reply;
        },
      }),
  };
}

/**
 * One failover trial: a new client makes requests back to back; after TRIAL_WARMUP_MS and a
 * random part of fifty milliseconds, the first server gets `fault`; the trial ends once AFTER
 * successful requests started SETTLED_MS or more after the fault.
 */
async function failoverTrial(pool: Pool, fault: Fault): Promise<Trial> {
  const victim = pool.servers[0] as Peer;
  if (!victim.process.running) await victim.process.restart();
  const client = new FreelanceClient({ model: pool.model, endpoints: pool.endpoints });
  const samples: Array<{ start: number; end: number; ok: boolean }> = [];
  let faultAt = Number.POSITIVE_INFINITY;
  let finish: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const settled = (s: { start: number; ok: boolean }) => s.ok && s.start >= faultAt + SETTLED_MS;
  let stopped = false;
  try {
    await warm(client);
    const loop = (async () => {
      while (!stopped) {
        const start = performance.now();
        let ok = true;
        try {
          await client.request(payload);
        } catch {
          ok = false;
        }
        samples.push({ start, end: performance.now(), ok });
        if (samples.filter(settled).length >= AFTER) finish();
      }
    })();
    await sleep(TRIAL_WARMUP_MS + Math.random() * 50);
    faultAt = performance.now();
    if (fault !== "none") process.kill(victim.process.pid, fault);
    const limit = sleep(TRIAL_LIMIT_MS).then(() => {
      throw new Error(`model ${pool.model}, ${fault}: trial not done in ${TRIAL_LIMIT_MS} ms`);
    });
    await Promise.race([done, limit]);
    stopped = true;
    await loop;
  } finally {
    stopped = true;
    if (fault === "SIGSTOP") process.kill(victim.process.pid, "SIGCONT");
    // Until the harness has seen the exit, the handle still says the server runs.
    else if (fault === "SIGKILL") await victim.process.kill("SIGKILL");
    await client.close();
  }
  const latency = (s: { start: number; end: number }) => s.end - s.start;
  const before = samples.filter((s) => s.ok && s.end <= faultAt).map(latency);
  const ended = samples.filter((s) => s.end > faultAt);
  let gap = 0;
  let last = faultAt;
  for (const s of ended) {
    if (!s.ok) continue;
    gap = Math.max(gap, s.end - last);
    last = s.end;
  }
  return {
    gapMs: round1(gap),
    slowestMs: round1(Math.max(...ended.map(latency))),
    beforeMs: round1(median(before.slice(-100))),
    afterMs: round1(median(samples.filter(settled).slice(0, AFTER).map(latency))),
    failed: ended.filter((s) => !s.ok).length,
  };
}

function round1(value: number): number {
  return Math.round(value * 10) / 10;
}

function round3(value: number): number {
  return Math.round(value * 1000) / 1000;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}
