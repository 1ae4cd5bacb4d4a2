/**
 * The shared core of zmq-patterns: what every pattern package builds on.
 *
 * - {@link Msg}: multipart messages (the Guide's zmsg) and {@link splitEnvelope | envelopes}.
 * - {@link FrameReader}: the cursor protocol codecs decode with.
 * - {@link SendQueue} and {@link Receiver}: ordered, bounded sends; receives with a deadline or
 *   an `AbortSignal`.
 * - {@link Backoff}, {@link Liveness}, {@link Heartbeater}, {@link ExpiryList}: heartbeat timing
 *   on an injectable {@link Clock}.
 * - {@link CloseStack}, {@link shutdownOnSignals}: lifecycle.
 * - Errors with codes, a quiet {@link Logger}, and the CLI conventions ({@link runCli}).
 *
 * The test kit lives at `@zmq-patterns/core/testing`.
 * @module
 * @mergeModuleWith <project>
 */
export {
  bindOption,
  type CliCommandSpec,
  type CliContext,
  type CliIo,
  type CliOptionSpec,
  type CliSpec,
  type CliValue,
  type CliValues,
  connectOption,
  defineCommand,
  type EndpointOptionSpec,
  faultCliOptions,
  faultSimulatorFromCli,
  runCli,
} from "./cli.js";
export { Counters } from "./counters.js";
export { Deque } from "./deque.js";
export {
  describeIdentity,
  type Envelope,
  identityFromKey,
  identityKey,
  joinEnvelope,
  splitEnvelope,
  unwrap,
  wrap,
} from "./envelope.js";
export {
  AbortedError,
  abortReason,
  ClosedError,
  type ErrorCode,
  InvalidArgumentError,
  isZmqPatternsError,
  ProtocolError,
  QueueFullError,
  RequestAbandonedError,
  TimeoutError,
  ZmqPatternsError,
} from "./errors.js";
export {
  EMPTY_FRAME,
  type FrameLike,
  formatFrame,
  isEmptyFrame,
  isPrintable,
  toFrame,
  toFrames,
} from "./frame.js";
export { decodeFrameFile, encodeFrameFile, type FrameFileLimits } from "./frame-file.js";
export { FrameReader } from "./frame-reader.js";
export {
  type ClosableSocket,
  type Closeable,
  CloseStack,
  closeSocket,
  type ShutdownOptions,
  shutdownOnSignals,
} from "./lifecycle.js";
export {
  type CreateLoggerOptions,
  createLogger,
  debugEnabled,
  formatFields,
  type LogFields,
  type Logger,
  type LogLevel,
  silentLogger,
} from "./logger.js";
export { Msg } from "./msg.js";
export { checkDuration, checkEndpoint, checkInteger } from "./options.js";
export {
  type ReceivableSocket,
  type ReceiveOptions,
  Receiver,
  type ReceiverOptions,
} from "./receiver.js";
export { type SendableSocket, SendQueue, type SendQueueOptions } from "./send-queue.js";
export { type FaultDecision, FaultSimulator, type FaultSimulatorOptions } from "./simulation.js";
export { Backoff, type BackoffOptions } from "./timing/backoff.js";
export { type Clock, systemClock, type TimerHandle } from "./timing/clock.js";
export { ExpiryList, type ExpiryListOptions } from "./timing/expiry.js";
export { Heartbeater, type HeartbeaterOptions } from "./timing/heartbeat.js";
export { Liveness } from "./timing/liveness.js";
export { sleep } from "./timing/sleep.js";
