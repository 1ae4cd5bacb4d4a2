/**
 * Lazy Pirate: client-side reliability for ZeroMQ request-reply. The client waits for each reply
 * with a timeout and, when none comes, reconnects and resends, then gives up with a typed error.
 * @module
 */
export {
  DEFAULT_CLIENT_ENDPOINT,
  DEFAULT_RETRIES,
  DEFAULT_TIMEOUT_MS,
  LazyPirateClient,
  type LazyPirateClientEvents,
  type LazyPirateClientOptions,
  type RequestOptions,
} from "./client.js";
export {
  DEFAULT_SERVER_BIND,
  type LazyPirateHandler,
  LazyPirateServer,
  type LazyPirateServerEvents,
  type LazyPirateServerOptions,
} from "./server.js";
