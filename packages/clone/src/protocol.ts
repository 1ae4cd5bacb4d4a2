/**
 * Clone protocol (RFC 12/CHP) messages beyond the key-value message itself, and the pattern's
 * constants (spec 3.5, 3.6, 3.8, 3.9, 4.6).
 * @module
 */
import { FrameReader, ProtocolError } from "@zmq-patterns/core";
import { HUGZ, ICANHAZ, KTHXBAI, KvMsg } from "./kvmsg.js";

/** The Guide's base port of a standalone server and of the primary: snapshot 5556, publisher 5557, collector 5558. */
export const DEFAULT_PRIMARY_PORT = 5556;
/** The Guide's base port of the backup: snapshot 5566, publisher 5567, collector 5568. */
export const DEFAULT_BACKUP_PORT = 5566;
/** Interval of the server's HUGZ heartbeat (spec 3.6). */
export const DEFAULT_HUGZ_INTERVAL_MS = 1000;
/** Interval of the server's TTL flush (spec 3.7). */
export const DEFAULT_FLUSH_INTERVAL_MS = 1000;
/** The client's `SERVER_TTL`: silence after which it fails over (spec 3.9.2). */
export const DEFAULT_SERVER_TTL_MS = 5000;

const ICANHAZ_FRAME = Buffer.from(ICANHAZ);

/** A snapshot request: `["ICANHAZ?"][subtree]` (spec 3.5; subtree may be empty). */
export function encodeSnapshotRequest(subtree = ""): Buffer[] {
  return [ICANHAZ_FRAME, Buffer.from(subtree, "utf8")];
}

/**
 * Decodes a snapshot request after the routing frame: `["ICANHAZ?"][subtree]`, or the one-frame
 * `["ICANHAZ?"]` of the Guide's models two and three (subtree empty). Returns the subtree.
 *
 * @throws {@link @zmq-patterns/core!ProtocolError | ProtocolError} `not a snapshot request`,
 * `subtree frame is longer than 255 bytes` or `unexpected N extra frame(s)`.
 */
export function decodeSnapshotRequest(frames: readonly Buffer[]): Buffer {
  const reader = new FrameReader(frames);
  if (frames.length === 0 || !reader.frame("command").equals(ICANHAZ_FRAME)) {
    throw new ProtocolError("not a snapshot request");
  }
  const subtree = reader.remaining > 0 ? reader.frame("subtree") : Buffer.alloc(0);
  reader.end();
  if (subtree.byteLength > 255) throw new ProtocolError("subtree frame is longer than 255 bytes");
  return subtree;
}

/**
 * The snapshot terminator (spec 3.5, 3.10 [DECISION]): key `KTHXBAI`, the server's current
 * sequence, no UUID or properties, the subtree as body.
 */
export function snapshotEnd(sequence: number, subtree: Buffer): KvMsg {
  return new KvMsg({ key: KTHXBAI, sequence, body: subtree });
}

/** The server heartbeat (spec 3.6): key `HUGZ`, the current sequence, everything else empty. */
export function hugz(sequence: number): KvMsg {
  return new KvMsg({ key: HUGZ, sequence });
}

/** The endpoints of one Clone server from its base port P (spec 3.4): P, P+1, P+2. */
export interface CloneServerEndpoints {
  /** Snapshot ROUTER (the Binary Star voter in a pair): port P. */
  snapshot: string;
  /** Update publisher PUB: port P+1. */
  publisher: string;
  /** Update collector SUB: port P+2. */
  collector: string;
}

/**
 * The three endpoints at `host` for base port `port`: `tcp://host:P`, `:P+1`, `:P+2`.
 *
 * @example
 * ```ts
 * serverEndpoints("tcp://*", 5556); // snapshot tcp://*:5556, publisher :5557, collector :5558
 * ```
 */
export function serverEndpoints(host: string, port: number): CloneServerEndpoints {
  return {
    snapshot: `${host}:${port}`,
    publisher: `${host}:${port + 1}`,
    collector: `${host}:${port + 2}`,
  };
}

/**
 * Splits a server address `tcp://host:P` into the three endpoints a client uses (spec 3.9.1:
 * the reference takes the address and the base port separately).
 *
 * @throws {@link @zmq-patterns/core!ProtocolError | ProtocolError} when the address does not
 * end in a port.
 */
export function clientEndpoints(address: string): CloneServerEndpoints {
  const match = /^(.*):(\d{1,5})$/.exec(address);
  const port = match ? Number(match[2]) : Number.NaN;
  if (!match || !Number.isInteger(port) || port < 1 || port > 65533) {
    throw new ProtocolError(`server address must be like tcp://host:port, got ${address}`);
  }
  return serverEndpoints(match[1] as string, port);
}
