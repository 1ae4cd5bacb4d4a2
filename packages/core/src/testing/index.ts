/**
 * The test kit of zmq-patterns: unique endpoints, a manual clock, a child-process harness and a
 * raw wire tap, shared by the tests and benchmarks of every package.
 * @module
 */
export {
  allocateAddress,
  allocatePort,
  PORT_RANGE_END,
  PORT_RANGE_START,
  PORTS_PER_SLOT,
  type Transport,
} from "./addresses.js";
export { ManualClock } from "./manual-clock.js";
export {
  type ChildProcessHandle,
  type ExitInfo,
  killAllProcesses,
  type NodeCommand,
  nodeCommand,
  type OutputLine,
  type ProcessOutcome,
  runToCompletion,
  type StartProcessOptions,
  startProcess,
  type WaitForLineOptions,
} from "./process.js";
export {
  checkPython,
  DEFAULT_PYTHON,
  findPythonPeersDir,
  type PythonCheck,
  type PythonCommand,
  pythonCommand,
  pythonExecutable,
  type StartPythonPeerOptions,
  startPythonPeer,
} from "./python.js";
export {
  Tap,
  type TapBindOptions,
  type TapConnectRouterOptions,
  type TapDealerOptions,
  UnexpectedMessageError,
} from "./tap.js";
