/**
 * Binary Star for ZeroMQ on Node.js: a primary/backup server pair with automatic failover voted
 * by clients. {@link BinaryStar} is the server-side reactor, {@link BinaryStarClient} the client
 * that fails over with the pair, and {@link step} the pure state machine underneath.
 * @module
 */

export {
  BinaryStarClient,
  type BinaryStarClientEvents,
  type BinaryStarClientOptions,
  type BinaryStarRequestOptions,
} from "./client.js";
export {
  BINARY_STAR_EVENTS,
  BINARY_STAR_STATES,
  type BinaryStarEvent,
  type BinaryStarFatalReason,
  BinaryStarMachine,
  type BinaryStarMachineOptions,
  type BinaryStarRole,
  type BinaryStarState,
  initialState,
  peerEvent,
  peerExpiryAfter,
  type StepContext,
  type StepFatal,
  type StepNext,
  type StepResult,
  step,
} from "./fsm.js";
export {
  type BinaryStarEndpoints,
  BSTAR_STATE_CODES,
  DEFAULT_BACKUP_ENDPOINTS,
  DEFAULT_CLIENT_ENDPOINTS,
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_PEER_EXPIRY_MS,
  DEFAULT_PRIMARY_ENDPOINTS,
  DEFAULT_REQUEST_INTERVAL_MS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  DEFAULT_SETTLE_DELAY_MS,
  decodeSequence,
  decodeState,
  encodeSequence,
  encodeState,
} from "./protocol.js";
export {
  BinaryStar,
  type BinaryStarEvents,
  BinaryStarFatalError,
  type BinaryStarHandler,
  type BinaryStarOptions,
  type BinaryStarStats,
  type BinaryStarTransitionReason,
  type BinaryStarVoter,
} from "./reactor.js";
