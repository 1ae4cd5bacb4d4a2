// Transport ceilings of ZeroMQ on Node.js on this machine, the yardstick of every pattern's
// benchmark: (a) DEALER -> ROUTER echo, pipelined, two processes; (b) REQ -> REP strict round
// trip, two processes; (c) the echo of (a) through a JavaScript ROUTER <-> DEALER proxy, three
// processes, two hops. All over tcp on 127.0.0.1 with 10-byte payloads. The measurements are
// interleaved, each repeated `runs` times, and the medians are printed and stored in
// bench/results/core.json (`readResults("core")` in @zmq-patterns/bench-kit).
//
// Run: `node ../../scripts/pnpm.mjs bench` in packages/core. BENCH_WARMUP_MS, BENCH_DURATION_MS
// and BENCH_RUNS override the defaults below.
import { Dealer, Request } from "zeromq";
import {
  benchSettings,
  type CoreBenchResults,
  type CoreCeilings,
  formatMachine,
  machineInfo,
  measurePipelined,
  measureRoundTrip,
  medianRun,
  printTable,
  type RoundTripResult,
  ratio,
  summarize,
  type Throughput,
  withPeers,
  writeResults,
} from "../../../tools/bench-kit/src/index.js";
import { PAYLOAD_BYTES, PEER_HWM, WINDOW } from "./shared.js";

const settings = benchSettings({ warmupMs: 500, durationMs: 2500, runs: 3 });
const machine = machineInfo();
const payload = Buffer.alloc(PAYLOAD_BYTES, "x");
const began = performance.now();

console.log(`core ceilings on ${formatMachine(machine)}`);

const results = await withPeers(async (peers): Promise<CoreCeilings> => {
  const [echo, rep] = await Promise.all([
    peers.start(new URL("./echo-router.ts", import.meta.url)),
    peers.start(new URL("./rep-echo.ts", import.meta.url)),
  ]);
  const proxy = await peers.start(new URL("./proxy.ts", import.meta.url), {
    args: [echo.endpoint],
  });

  const clientOptions = {
    linger: 0,
    sendHighWaterMark: PEER_HWM,
    receiveHighWaterMark: PEER_HWM,
    // A lost reply fails the run instead of hanging it.
    receiveTimeout: 10_000,
  };
  const direct = new Dealer(clientOptions);
  const viaProxy = new Dealer(clientOptions);
  const req = new Request(clientOptions);
  direct.connect(echo.endpoint);
  viaProxy.connect(proxy.endpoint);
  req.connect(rep.endpoint);

  const pipelined = (dealer: Dealer): Promise<Throughput> =>
    measurePipelined({
      window: WINDOW,
      warmupMs: settings.warmupMs,
      durationMs: settings.durationMs,
      send: () => dealer.send(payload),
      receive: async () => {
        await dealer.receive();
      },
    });
  const roundTrip = (): Promise<RoundTripResult> =>
    measureRoundTrip({
      warmupMs: settings.warmupMs,
      durationMs: settings.durationMs,
      request: async () => {
        await req.send(payload);
        await req.receive();
      },
    });

  const runs = { dealerRouterEcho: [] as Throughput[], reqRepRoundTrip: [] as RoundTripResult[] };
  const proxyRuns: Throughput[] = [];
  try {
    // Interleaved, so a slow spell of the machine weighs on all three alike.
    for (let run = 1; run <= settings.runs; run++) {
      const a = await pipelined(direct);
      runs.dealerRouterEcho.push(a);
      progress("dealerRouterEcho", run, a);
      const b = await roundTrip();
      runs.reqRepRoundTrip.push(b);
      progress("reqRepRoundTrip", run, b);
      const c = await pipelined(viaProxy);
      proxyRuns.push(c);
      progress("proxyTwoHopEcho", run, c);
    }
  } finally {
    direct.close();
    viaProxy.close();
    req.close();
  }

  return {
    dealerRouterEcho: {
      ...summarize(runs.dealerRouterEcho),
      window: WINDOW,
      payloadBytes: PAYLOAD_BYTES,
    },
    reqRepRoundTrip: {
      ...summarize(runs.reqRepRoundTrip),
      payloadBytes: PAYLOAD_BYTES,
      latency: medianRun(runs.reqRepRoundTrip).latency,
    },
    proxyTwoHopEcho: { ...summarize(proxyRuns), window: WINDOW, payloadBytes: PAYLOAD_BYTES },
  };
});

const data: CoreBenchResults = {
  name: "core",
  date: new Date().toISOString(),
  machine,
  settings,
  results,
};
const path = writeResults("core", data);

const baseline = results.dealerRouterEcho.msgsPerSec;
const row = (name: string, summary: { msgsPerSec: number; runs: number[] }) => ({
  measurement: name,
  "msgs/s": summary.msgsPerSec,
  "vs (a)": ratio(summary.msgsPerSec, baseline),
  runs: summary.runs.map((value) => value.toLocaleString("en-US")).join(" / "),
});
const { latency } = results.reqRepRoundTrip;
printTable(
  `core ceilings: tcp 127.0.0.1, ${PAYLOAD_BYTES}-byte payloads, median of ${settings.runs} x ${settings.durationMs / 1000} s`,
  [
    row(`(a) DEALER->ROUTER echo, window ${WINDOW}, 2 processes`, results.dealerRouterEcho),
    row("(b) REQ->REP round trip, 2 processes", results.reqRepRoundTrip),
    row(`(c) (a) through a JS ROUTER<->DEALER proxy, 3 processes`, results.proxyTwoHopEcho),
  ],
  [
    `(b) latency: p50 ${latency.p50Us} us, p99 ${latency.p99Us} us, max ${latency.maxUs} us`,
    `machine: ${formatMachine(machine)}`,
    `written to ${path} in ${((performance.now() - began) / 1000).toFixed(1)} s`,
  ],
);

function progress(name: string, run: number, result: Throughput): void {
  const rate = Math.round(result.msgsPerSec).toLocaleString("en-US");
  console.error(`  ${name} run ${run}/${settings.runs}: ${rate} msgs/s`);
}
