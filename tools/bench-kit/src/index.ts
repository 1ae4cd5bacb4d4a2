/**
 * Shared helpers for the zmq-patterns benchmarks.
 * @packageDocumentation
 */

export { type NodeCommand, nodeCommand } from "@zmq-patterns/core/testing";
export { announceReady, READY_PATTERN } from "./announce.js";
export {
  CEILING_HWM,
  CEILING_PAYLOAD_BYTES,
  CEILING_WINDOW,
  type Ceiling,
  type CeilingOptions,
  type MeasureCeilingOptions,
  measureCeilings,
  measureDealerRouterEcho,
  measureProxyTwoHopEcho,
  measureReqRepRoundTrip,
  type PipelinedCeilingRun,
  type RoundTripCeilingRun,
  startDealerRouterEcho,
  startProxyTwoHopEcho,
  startReqRepRoundTrip,
} from "./ceilings.js";
export type {
  CoreBenchResults,
  CoreCeilings,
  PipelinedCeiling,
  RoundTripCeiling,
} from "./core-results.js";
export { formatMachine, loadAverage, type MachineInfo, machineInfo } from "./machine.js";
export {
  type BenchSettings,
  benchSettings,
  LatencyRecorder,
  type LatencyStats,
  logRun,
  type Measurement,
  type MeasureTiming,
  measurePipelined,
  measureRoundTrip,
  median,
  medianRun,
  type PipelinedOptions,
  type RoundTripOptions,
  type RoundTripResult,
  type RunListener,
  runInterleaved,
  summarize,
  type Throughput,
  type ThroughputSummary,
} from "./measure.js";
export {
  type Peer,
  type PeerGroup,
  type PeerOptions,
  peerCommand,
  startPeer,
  withPeers,
} from "./peers.js";
export { type Cell, formatNumber, formatTable, printTable, ratio } from "./report.js";
export {
  type BenchResults,
  readResults,
  repoRoot,
  resultsPath,
  writeResults,
} from "./results.js";
