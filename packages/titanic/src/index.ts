/**
 * Titanic (RFC 9/TSP): disconnected, disk-backed reliable requests on top of Majordomo. A client
 * stores a request and gets a UUID; Titanic runs it on its service whenever that service is
 * available; the client fetches the reply later, then closes the request.
 * @module
 */
export {
  DEFAULT_MAX_POLL_MS,
  DEFAULT_POLL_MS,
  type TitanicCallOptions,
  TitanicClient,
  type TitanicClientOptions,
  type TitanicReply,
  type TitanicRequestOptions,
  TitanicStatusError,
} from "./client.js";
export {
  DEFAULT_ATTEMPT_TIMEOUT_MS,
  DEFAULT_CONCURRENCY,
  DEFAULT_MAX_ATTEMPT_TIMEOUT_MS,
  DEFAULT_MAX_RETRY_BACKOFF_MS,
  DEFAULT_MAX_SOCKETS_PER_REQUEST,
  DEFAULT_PER_SERVICE_CONCURRENCY,
  DEFAULT_RETRY_BACKOFF_MS,
  type ServiceAvailability,
  type TitanicDispatcherEvents,
  type TitanicDispatcherStats,
  type TitanicDispatchOptions,
  type TitanicServiceStats,
} from "./dispatcher.js";
export * from "./protocol.js";
export {
  DEFAULT_COLLECT_INTERVAL_MS,
  DEFAULT_COLLECT_MAX_AGE_MS,
  DEFAULT_TITANIC_DIR,
  type TitanicCollectOptions,
  TitanicServer,
  type TitanicServerEvents,
  type TitanicServerOptions,
  type TitanicServerStats,
  type TitanicServiceName,
} from "./server.js";
export {
  type EntryState,
  FileStore,
  type FileStoreOptions,
  type StoredRequest,
  type TitanicStore,
} from "./store.js";
