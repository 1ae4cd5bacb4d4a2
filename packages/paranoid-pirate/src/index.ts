/**
 * Paranoid Pirate (RFC 6/PPP): a reliable request-reply queue whose workers and queue heartbeat
 * each other. Silent workers are expired; workers that lose the queue reconnect with back-off.
 * Clients are Lazy Pirate clients.
 * @module
 */
export {
  DEFAULT_BACKEND,
  DEFAULT_FRONTEND,
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_LIVENESS,
  DEFAULT_RECONNECT_INITIAL_MS,
  DEFAULT_RECONNECT_MAX_MS,
  DEFAULT_WORKER_ENDPOINT,
  decodeClientRequest,
  decodeQueueMessage,
  decodeWorkerMessage,
  encodeHeartbeat,
  encodeReady,
  encodeRequest,
  encodeRouted,
  PPP_HEARTBEAT,
  PPP_READY,
  type QueueMessage,
  type Routed,
  type WorkerMessage,
} from "./protocol.js";
export {
  ParanoidPirateQueue,
  type ParanoidPirateQueueEvents,
  type ParanoidPirateQueueOptions,
  type ParanoidPirateQueueStats,
} from "./queue.js";
export {
  type ParanoidPirateHandler,
  ParanoidPirateWorker,
  type ParanoidPirateWorkerEvents,
  type ParanoidPirateWorkerOptions,
  type ParanoidPirateWorkerStats,
  type RequestContext,
} from "./worker.js";
