// Throughput of the Paranoid Pirate queue with 1, 2 and 4 workers, against the two-hop proxy
// ceiling measured in the same run. Every party is its own process: the queue (the package's
// `queue` command, from source), each worker (bench/worker.ts, a ParanoidPirateWorker with an
// immediate echo handler), the two ceiling peers, and this process, whose DEALER client keeps
// WINDOW requests of PAYLOAD_BYTES in flight (`["", body]` out, `["", reply]` back). A PPP worker
// handles one request at a time, so throughput can only grow with workers. Each worker count has
// its own queue and workers, started once; the measurements are interleaved, each repeated
// `runs` times, and the medians are printed and stored in bench/results/paranoid-pirate.json.
//
// Run: `node ../../scripts/pnpm.mjs bench` in packages/paranoid-pirate. BENCH_WARMUP_MS,
// BENCH_DURATION_MS and BENCH_RUNS override the defaults below.
import { setTimeout as sleep } from "node:timers/promises";
import {
  type BenchResults,
  benchSettings,
  formatMachine,
  loadAverage,
  type Measurement,
  machineInfo,
  measurePipelined,
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
import { Dealer } from "zeromq";
import { DEFAULT_HEARTBEAT_INTERVAL_MS, DEFAULT_LIVENESS } from "../src/index.js";

/** Requests in flight from the client (the ceiling uses the same window). */
const WINDOW = 100;
/** Size of every request and reply. */
const PAYLOAD_BYTES = 10;
/** Worker counts measured. */
const WORKER_COUNTS = [1, 2, 4] as const;
/** The default heartbeat interval: a heartbeat a second each way per worker, noise at this rate. */
const HEARTBEAT_MS = DEFAULT_HEARTBEAT_INTERVAL_MS;

const CLI = new URL("../src/cli.ts", import.meta.url);
const WORKER = new URL("./worker.ts", import.meta.url);
/** The queue command's ready line: `paranoid-pirate queue ready: frontend <ep>, backend <ep>`. */
const QUEUE_READY = /ready: frontend (\S+), backend (\S+)$/;

/** One worker count's row in bench/results/paranoid-pirate.json. */
interface QueueThroughput {
  /** Worker processes behind the queue. */
  workers: number;
  /** Median requests (round trips) per second. */
  requestsPerSec: number;
  /** Each run's requests/s, in run order. */
  runs: number[];
  /** `requestsPerSec` over the two-hop proxy ceiling's msgs/s of the same run. */
  vsProxyTwoHop: number;
}

/** The `results` of bench/results/paranoid-pirate.json. */
interface ParanoidPirateBench {
  window: number;
  payloadBytes: number;
  heartbeatIntervalMs: number;
  /** The baseline, measured in the same run with the same window and payload. */
  proxyTwoHopEcho: PipelinedCeiling;
  queue: QueueThroughput[];
}

const settings = benchSettings({ warmupMs: 500, durationMs: 2000, runs: 3 });
const machine = machineInfo();
const began = performance.now();
const loadBefore = loadAverage();

console.log(`paranoid-pirate queue on ${formatMachine(machine)}`);

const results = await withPeers(async (peers): Promise<ParanoidPirateBench> => {
  const [ceiling, ...setups] = await Promise.all([
    startProxyTwoHopEcho(peers, { window: WINDOW, payloadBytes: PAYLOAD_BYTES }),
    ...WORKER_COUNTS.map((workers) => startQueue(peers, workers)),
  ]);
  console.error(`  peers started in ${((performance.now() - began) / 1000).toFixed(1)} s`);
  const [, ...queueRuns] = await runInterleaved<Throughput>(settings, [ceiling, ...setups]);
  const proxyTwoHopEcho = ceiling.summary();
  return {
    window: WINDOW,
    payloadBytes: PAYLOAD_BYTES,
    heartbeatIntervalMs: HEARTBEAT_MS,
    proxyTwoHopEcho,
    queue: WORKER_COUNTS.map((workers, i) => {
      const summary = summarize(queueRuns[i] ?? []);
      return {
        workers,
        requestsPerSec: summary.msgsPerSec,
        runs: summary.runs,
        vsProxyTwoHop: round3(summary.msgsPerSec / proxyTwoHopEcho.msgsPerSec),
      };
    }),
  };
});

const data: BenchResults<ParanoidPirateBench> = {
  name: "paranoid-pirate",
  date: new Date().toISOString(),
  machine,
  settings,
  results,
};
const path = writeResults("paranoid-pirate", data);

const ceiling = results.proxyTwoHopEcho;
const runs = (values: number[]): string =>
  values.map((value) => value.toLocaleString("en-US")).join(" / ");
printTable(
  `paranoid-pirate queue: tcp 127.0.0.1, ${PAYLOAD_BYTES}-byte payloads, window ${WINDOW}, ` +
    `median of ${settings.runs} x ${settings.durationMs / 1000} s`,
  [
    {
      measurement: "two-hop proxy ceiling (DEALER->JS proxy->ROUTER echo)",
      "requests/s": ceiling.msgsPerSec,
      "vs ceiling": ratio(ceiling.msgsPerSec, ceiling.msgsPerSec),
      runs: runs(ceiling.runs),
    },
    ...results.queue.map((row) => ({
      measurement: `DEALER->queue->${row.workers} worker${row.workers === 1 ? "" : "s"}`,
      "requests/s": row.requestsPerSec,
      "vs ceiling": ratio(row.requestsPerSec, ceiling.msgsPerSec),
      runs: runs(row.runs),
    })),
  ],
  [
    `processes: this client, the queue, one per worker; the ceiling: client, proxy, echo server`,
    `heartbeat ${HEARTBEAT_MS} ms, liveness ${DEFAULT_LIVENESS}; each worker handles one request at a time`,
    `machine: ${formatMachine(machine)}`,
    `load average (1, 5, 15 min): ${loadBefore} before, ${loadAverage()} after`,
    `written to ${path} in ${((performance.now() - began) / 1000).toFixed(1)} s`,
  ],
);

/**
 * Starts a queue and `workers` workers, waits until the queue has registered them all, and
 * connects a client; returns the measurement of that setup.
 */
async function startQueue(peers: PeerGroup, workers: number): Promise<Measurement> {
  const name = `queue-${workers}w`;
  const queue = await peers.start(CLI, {
    name,
    args: [
      "queue",
      "--frontend",
      "tcp://127.0.0.1:*",
      "--backend",
      "tcp://127.0.0.1:*",
      "--heartbeat-interval",
      String(HEARTBEAT_MS),
    ],
    readyPattern: QUEUE_READY,
  });
  const [, frontend = "", backend = ""] = queue.ready;
  await Promise.all(
    Array.from({ length: workers }, (_, i) =>
      peers.start(WORKER, {
        name: `${name}-worker${i + 1}`,
        args: [backend, String(HEARTBEAT_MS)],
      }),
    ),
  );
  await waitForWorkers(queue, workers);

  const client = new Dealer({ linger: 0, receiveTimeout: 10_000 });
  peers.defer(() => client.close());
  client.connect(frontend);
  const request = [Buffer.alloc(0), Buffer.alloc(PAYLOAD_BYTES, "x")];
  // One round trip first, checking the reply's shape: `["", body]`.
  await client.send(request);
  const reply = await client.receive();
  if (reply.length !== 2 || reply[0]?.length !== 0 || !reply[1]?.equals(request[1]!)) {
    throw new Error(`${name}: unexpected reply ${JSON.stringify(reply.map(String))}`);
  }
  return {
    name: `queue, ${workers} worker${workers === 1 ? "" : "s"}`,
    run: (timing) =>
      measurePipelined({
        window: WINDOW,
        warmupMs: timing.warmupMs,
        durationMs: timing.durationMs,
        send: () => client.send(request),
        receive: async () => {
          await client.receive();
        },
      }),
  };
}

/** Waits until the queue has logged `count` `worker ready` lines (it logs each at info level). */
async function waitForWorkers(queue: Peer, count: number, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  const registered = (): number =>
    queue.process.output.filter((line) => /\bworker ready\b/.test(line)).length;
  while (registered() < count) {
    if (performance.now() > deadline) {
      throw new Error(`${queue.name}: ${registered()} of ${count} workers registered`);
    }
    await sleep(20);
  }
}

function round3(value: number): number {
  return Math.round(value * 1000) / 1000;
}
