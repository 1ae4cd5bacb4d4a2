/**
 * Shared helpers for the zmq-patterns benchmarks.
 * @packageDocumentation
 */
export type {
  CoreBenchResults,
  CoreCeilings,
  PipelinedCeiling,
  RoundTripCeiling,
} from "./core-results.js";
export { formatMachine, type MachineInfo, machineInfo } from "./machine.js";
export {
  type BenchSettings,
  benchSettings,
  LatencyRecorder,
  type LatencyStats,
  type MeasureTiming,
  measurePipelined,
  measureRoundTrip,
  median,
  medianRun,
  type PipelinedOptions,
  type RoundTripOptions,
  type RoundTripResult,
  summarize,
  type Throughput,
  type ThroughputSummary,
} from "./measure.js";
export {
  announceReady,
  nodeCommand,
  type Peer,
  type PeerGroup,
  type PeerOptions,
  READY_PATTERN,
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
