import type { LatencyStats, ThroughputSummary } from "./measure.js";
import type { BenchResults } from "./results.js";

/** A pipelined echo measurement of the core ceilings. */
export interface PipelinedCeiling extends ThroughputSummary {
  /** Requests in flight. */
  window: number;
  /** Payload size of each request and reply. */
  payloadBytes: number;
}

/** A strict round-trip measurement of the core ceilings. */
export interface RoundTripCeiling extends ThroughputSummary {
  /** Payload size of each request and reply. */
  payloadBytes: number;
  /** Round-trip latency of the median run. */
  latency: LatencyStats;
}

/**
 * The transport ceilings measured by `measureCeilings` (run by
 * `packages/core/bench/ceilings.bench.ts`), over tcp on 127.0.0.1, each the median of the runs.
 * A pattern's benchmark measures the ceiling it compares itself to in its own run (`startX` or
 * `measureX` of `ceilings.ts`) rather than reading these from an earlier run.
 */
export interface CoreCeilings {
  /** DEALER client -> ROUTER echo server, window of in-flight requests; two processes, one hop. */
  dealerRouterEcho: PipelinedCeiling;
  /** REQ client -> REP echo server, one request at a time; two processes. */
  reqRepRoundTrip: RoundTripCeiling;
  /**
   * DEALER client -> JavaScript proxy (frontend ROUTER, backend DEALER, a receive/forward loop
   * each way) -> ROUTER echo server, same window; three processes, two hops.
   */
  proxyTwoHopEcho: PipelinedCeiling;
}

/** Contents of `bench/results/core.json`, read with `readResults("core")`. */
export type CoreBenchResults = BenchResults<CoreCeilings>;
