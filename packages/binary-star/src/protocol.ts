/**
 * Binary Star wire formats (spec 1.3) and constants (spec 1.4): pure codecs between frames and
 * typed values. No sockets, no timers.
 *
 * - Peer state: one frame holding the ASCII digit of the sender's state, `"1"` PRIMARY,
 *   `"2"` BACKUP, `"3"` ACTIVE, `"4"` PASSIVE; no envelope, no topic.
 * - Client request and reply body: one frame holding the decimal request sequence, from 1.
 * @module
 */
import { FrameReader, ProtocolError } from "@zmq-patterns/core";
import type { BinaryStarState } from "./fsm.js";

/** The wire code of each state (spec 1.3), the digit a server publishes to its peer. */
export const BSTAR_STATE_CODES: Readonly<Record<BinaryStarState, number>> = Object.freeze({
  PRIMARY: 1,
  BACKUP: 2,
  ACTIVE: 3,
  PASSIVE: 4,
});

/** The Guide's `HEARTBEAT`: interval between state messages to the peer. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 1000;
/** Peer silence after which a client vote may cause failover: 2 x heartbeat (spec 1.4). */
export const DEFAULT_PEER_EXPIRY_MS = 2 * DEFAULT_HEARTBEAT_INTERVAL_MS;
/** The Guide client's `REQUEST_TIMEOUT`: how long it waits for a reply before failing over. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 1000;
/** The Guide client's `SETTLE_DELAY`: pause before trying the other server (>= peer expiry). */
export const DEFAULT_SETTLE_DELAY_MS = 2000;
/** The Guide client's pacing: one request per second after each good reply. */
export const DEFAULT_REQUEST_INTERVAL_MS = 1000;

/** The endpoints of one server of the pair (spec 1.2). */
export interface BinaryStarEndpoints {
  /** Where the client-facing voter socket (ROUTER) binds. */
  readonly frontend: string;
  /** Where this server's state publisher (PUB) binds. */
  readonly localState: string;
  /** Where this server's state subscriber (SUB) connects: the peer's publisher. */
  readonly remoteState: string;
}

/** The Guide's primary (`-p`): clients on 5001, publishes state on 5003, hears the backup on 5004. */
export const DEFAULT_PRIMARY_ENDPOINTS: BinaryStarEndpoints = Object.freeze({
  frontend: "tcp://*:5001",
  localState: "tcp://*:5003",
  remoteState: "tcp://localhost:5004",
});

/** The Guide's backup (`-b`): clients on 5002, publishes state on 5004, hears the primary on 5003. */
export const DEFAULT_BACKUP_ENDPOINTS: BinaryStarEndpoints = Object.freeze({
  frontend: "tcp://*:5002",
  localState: "tcp://*:5004",
  remoteState: "tcp://localhost:5003",
});

/** The servers the Guide's client tries, primary first, toggling on every timeout (spec 1.8). */
export const DEFAULT_CLIENT_ENDPOINTS: readonly string[] = Object.freeze([
  "tcp://localhost:5001",
  "tcp://localhost:5002",
]);

// Frames are immutable once sent, so each state's frame is built once and shared.
const STATE_FRAMES = new Map<BinaryStarState, Buffer>(
  Object.entries(BSTAR_STATE_CODES).map(([state, code]) => [
    state as BinaryStarState,
    Buffer.from(String(code)),
  ]),
);
const STATES_BY_DIGIT = new Map<number, BinaryStarState>(
  Object.entries(BSTAR_STATE_CODES).map(([state, code]) => [0x30 + code, state as BinaryStarState]),
);

/** A peer state message: `["1"]` .. `["4"]` (spec 1.3). */
export function encodeState(state: BinaryStarState): Buffer[] {
  const frame = STATE_FRAMES.get(state);
  if (frame === undefined) throw new ProtocolError("unknown state");
  return [frame];
}

/**
 * Decodes a peer state message. Only exactly one frame holding one of the digits `1`..`4` is a
 * state; anything else throws, so a caller neither steps its machine nor counts the message as
 * peer liveness (fix 1.11.3: the reference's `atoi` turned garbage into 0 and `"5"` into a
 * client request).
 *
 * @throws {@link @zmq-patterns/core!ProtocolError | ProtocolError}: `empty message`,
 * `unexpected N extra frame(s)`, `state frame is empty` or `unknown state`.
 */
export function decodeState(frames: readonly Buffer[]): BinaryStarState {
  if (frames.length === 0) throw new ProtocolError("empty message");
  const reader = new FrameReader(frames);
  const frame = reader.nonEmpty("state");
  reader.end();
  const state = frame.byteLength === 1 ? STATES_BY_DIGIT.get(frame[0]!) : undefined;
  if (state === undefined) throw new ProtocolError("unknown state");
  return state;
}

/** Largest sequence number: above it, decimal text no longer round-trips through a `number`. */
const MAX_SEQUENCE = Number.MAX_SAFE_INTEGER;
const DECIMAL = /^[1-9][0-9]*$/;

/**
 * A client request body, also the demo server's echoed reply: `["<sequence>"]` in decimal
 * without padding (spec 1.3). The sequence starts at 1.
 *
 * @throws {@link @zmq-patterns/core!ProtocolError | ProtocolError} `invalid sequence` unless
 * `sequence` is an integer from 1 to `Number.MAX_SAFE_INTEGER`.
 */
export function encodeSequence(sequence: number): Buffer[] {
  if (!Number.isInteger(sequence) || sequence < 1 || sequence > MAX_SEQUENCE) {
    throw new ProtocolError("invalid sequence");
  }
  return [Buffer.from(String(sequence))];
}

/**
 * Decodes a request or reply body holding a sequence number. Stricter than the reference's
 * `atoi`: garbage is an error rather than 0, so a client never mistakes it for a reply.
 *
 * @throws {@link @zmq-patterns/core!ProtocolError | ProtocolError}: `empty message`,
 * `unexpected N extra frame(s)`, `sequence frame is empty`, `sequence frame is longer than 16
 * bytes` or `invalid sequence`.
 */
export function decodeSequence(frames: readonly Buffer[]): number {
  if (frames.length === 0) throw new ProtocolError("empty message");
  const reader = new FrameReader(frames);
  const text = reader.text("sequence", { maxBytes: 16 });
  reader.end();
  if (!DECIMAL.test(text)) throw new ProtocolError("invalid sequence");
  const sequence = Number(text);
  if (sequence > MAX_SEQUENCE) throw new ProtocolError("invalid sequence");
  return sequence;
}
