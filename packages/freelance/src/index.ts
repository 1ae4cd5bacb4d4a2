/**
 * Freelance for ZeroMQ on Node.js: reliable request-reply over a pool of servers with no
 * broker, in the Guide's three models. {@link FreelanceClient} is the client of all three,
 * {@link FreelanceServer} the server; model three speaks RFC 10/FLP.
 * @module
 */
export {
  FreelanceClient,
  type FreelanceClientEvents,
  type FreelanceClientOptions,
  type FreelanceClientStats,
  type FreelanceRequestOptions,
} from "./client.js";
export {
  DEFAULT_CLIENT_ENDPOINTS,
  DEFAULT_SERVER_ENDPOINT,
  DEFAULT_SERVER_IDENTITY,
  decodeFlpCommand,
  decodeFlpServerMessage,
  decodeModel2Reply,
  decodeModel2Request,
  encodeFlpReply,
  encodeFlpRequest,
  encodeModel2Reply,
  encodeModel2Request,
  encodePing,
  encodePong,
  encodeSequence,
  type FlpCommand,
  type FlpServerMessage,
  type FreelanceModel,
  identityForEndpoint,
  MODEL1_ATTEMPT_TIMEOUT_MS,
  MODEL1_RETRIES,
  MODEL2_TIMEOUT_MS,
  MODEL3_TIMEOUT_MS,
  type Model2Reply,
  type Model2Request,
  OK_FRAME,
  PING_FRAME,
  PING_INTERVAL_MS,
  PONG_FRAME,
  parseSequence,
  SERVER_TTL_MS,
} from "./protocol.js";
export {
  type FreelanceHandler,
  FreelanceServer,
  type FreelanceServerEvents,
  type FreelanceServerOptions,
  type FreelanceServerStats,
} from "./server.js";
