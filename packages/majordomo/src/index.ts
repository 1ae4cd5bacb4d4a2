/**
 * Majordomo: a service-oriented reliable request-reply broker with its workers and clients,
 * speaking MDP/0.1 (RFC 7/MDP), MDP/0.2 (RFC 18/MDP) and the management interface (RFC 8/MMI).
 * @module
 */
export {
  type AsyncSendOptions,
  DEFAULT_MAX_IN_FLIGHT,
  MajordomoAsyncClient,
  type MajordomoAsyncClientEvents,
  type MajordomoAsyncClientOptions,
  type MajordomoAsyncClientStats,
} from "./async-client.js";
export {
  MajordomoBroker,
  type MajordomoBrokerEvents,
  type MajordomoBrokerOptions,
  type MajordomoBrokerStats,
  type ServiceStats,
} from "./broker.js";
export {
  MajordomoClient,
  type MajordomoClientEvents,
  type MajordomoClientOptions,
  type MajordomoClientStats,
  type MajordomoRequestOptions,
  type PartialInfo,
} from "./client.js";
export { type MmiCode, mmiCode, mmiQuery, mmiService } from "./mmi.js";
export {
  type BrokerInbound,
  type ClientReply,
  type ClientRequest,
  DEFAULT_BROKER_BIND,
  DEFAULT_BROKER_ENDPOINT,
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_LIVENESS,
  DEFAULT_RECONNECT_MS,
  DEFAULT_RETRIES,
  DEFAULT_TIMEOUT_MS,
  decodeBrokerInbound,
  decodeClientReply,
  decodeWorkerCommand,
  encodeClientReply,
  encodeClientRequest,
  encodeWorkerCommand,
  isMmiService,
  MAX_SERVICE_NAME_BYTES,
  MDPC01,
  MDPC02,
  MDPC02_COMMANDS,
  MDPW01,
  MDPW01_COMMANDS,
  MDPW02,
  MDPW02_COMMANDS,
  type MdpVersion,
  MMI_CODES,
  MMI_PREFIX,
  MMI_SERVICE,
  type WorkerCommand,
} from "./protocol.js";
export {
  type MajordomoDisconnectReason,
  type MajordomoHandler,
  type MajordomoRequest,
  type MajordomoRequestContext,
  MajordomoWorker,
  type MajordomoWorkerEvents,
  type MajordomoWorkerOptions,
  type MajordomoWorkerStats,
} from "./worker.js";
