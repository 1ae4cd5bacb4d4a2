/**
 * Clone for ZeroMQ on Node.js (RFC 12/CHP): a key-value store shared by many clients through a
 * server, or a Binary Star pair of servers. {@link CloneServer} and {@link CloneClient} are the
 * two roles; {@link KvMsg} is the message both speak.
 * @module
 */
export {
  type CloneChange,
  CloneClient,
  type CloneClientEvents,
  type CloneClientOptions,
  type CloneClientState,
  type CloneSetOptions,
  DEFAULT_SERVERS,
} from "./client.js";
export {
  decodeProperties,
  decodeSequence,
  encodeProperties,
  encodeSequence,
  HUGZ,
  ICANHAZ,
  KTHXBAI,
  KvMsg,
  type KvMsgInit,
  MAX_KEY_BYTES,
  randomUuid,
  SEQUENCE_BYTES,
  TTL_PROPERTY,
  UUID_BYTES,
} from "./kvmsg.js";
export {
  type CloneServerEndpoints,
  clientEndpoints,
  DEFAULT_BACKUP_PORT,
  DEFAULT_FLUSH_INTERVAL_MS,
  DEFAULT_HUGZ_INTERVAL_MS,
  DEFAULT_PRIMARY_PORT,
  DEFAULT_SERVER_TTL_MS,
  decodeSnapshotRequest,
  encodeSnapshotRequest,
  hugz,
  serverEndpoints,
  snapshotEnd,
} from "./protocol.js";
export {
  CloneServer,
  type CloneServerEvents,
  type CloneServerMode,
  type CloneServerOptions,
  type CloneServerStats,
  decodeClientUpdate,
  ttlSeconds,
} from "./server.js";
