/**
 * Simple Pirate: a queue that hands each client request to the least recently used ready worker,
 * and REQ workers that tell the queue when they are ready. Clients are Lazy Pirate clients: they
 * retry when a worker dies with their request.
 * @module
 */
export {
  type BackendMessage,
  type ClientMessage,
  DEFAULT_BACKEND_BIND,
  DEFAULT_FRONTEND_BIND,
  DEFAULT_WORKER_ENDPOINT,
  decodeBackend,
  decodeFrontend,
  decodeWorkerRequest,
  encodeClientReply,
  encodeDispatch,
  encodeReady,
  encodeWorkerReply,
  WORKER_READY,
} from "./protocol.js";
export {
  type QueueSide,
  SimplePirateQueue,
  type SimplePirateQueueEndpoints,
  type SimplePirateQueueEvents,
  type SimplePirateQueueOptions,
  type SimplePirateQueueStats,
} from "./queue.js";
export {
  randomWorkerIdentity,
  type SimplePirateHandler,
  SimplePirateWorker,
  type SimplePirateWorkerEvents,
  type SimplePirateWorkerOptions,
  type SimplePirateWorkerStats,
} from "./worker.js";
