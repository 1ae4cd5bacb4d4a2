// Transport ceilings of ZeroMQ on Node.js on this machine, the yardstick of every pattern's
// benchmark: (a) DEALER -> ROUTER echo, pipelined, two processes; (b) REQ -> REP strict round
// trip, two processes; (c) the echo of (a) through a JavaScript ROUTER <-> DEALER proxy, three
// processes, two hops. All over tcp on 127.0.0.1 with 10-byte payloads. The measurements and
// their peers live in the bench kit (`measureCeilings`; a pattern's benchmark measures the one it
// is compared with in its own run, e.g. `startProxyTwoHopEcho`). They are interleaved, each
// repeated `runs` times, and the medians are printed and stored in bench/results/core.json
// (`readResults("core")` in @zmq-patterns/bench-kit).
//
// Run: `node ../../scripts/pnpm.mjs bench` in packages/core. BENCH_WARMUP_MS, BENCH_DURATION_MS
// and BENCH_RUNS override the defaults below.
import {
  benchSettings,
  CEILING_PAYLOAD_BYTES,
  CEILING_WINDOW,
  type CoreBenchResults,
  formatMachine,
  loadAverage,
  machineInfo,
  measureCeilings,
  printTable,
  ratio,
  writeResults,
} from "../../../tools/bench-kit/src/index.js";

const settings = benchSettings({ warmupMs: 500, durationMs: 2500, runs: 3 });
const machine = machineInfo();
const began = performance.now();
const loadBefore = loadAverage();

console.log(`core ceilings on ${formatMachine(machine)}`);

const results = await measureCeilings(settings, {
  window: CEILING_WINDOW,
  payloadBytes: CEILING_PAYLOAD_BYTES,
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
  `core ceilings: tcp 127.0.0.1, ${CEILING_PAYLOAD_BYTES}-byte payloads, median of ${settings.runs} x ${settings.durationMs / 1000} s`,
  [
    row(
      `(a) DEALER->ROUTER echo, window ${results.dealerRouterEcho.window}, 2 processes`,
      results.dealerRouterEcho,
    ),
    row("(b) REQ->REP round trip, 2 processes", results.reqRepRoundTrip),
    row(`(c) (a) through a JS ROUTER<->DEALER proxy, 3 processes`, results.proxyTwoHopEcho),
  ],
  [
    `(b) latency: p50 ${latency.p50Us} us, p99 ${latency.p99Us} us, max ${latency.maxUs} us`,
    `machine: ${formatMachine(machine)}`,
    `load average (1, 5, 15 min): ${loadBefore} before, ${loadAverage()} after`,
    `written to ${path} in ${((performance.now() - began) / 1000).toFixed(1)} s`,
  ],
);
