/**
 * Freelance wire formats and constants (spec 2.2-2.4): model one's plain request-reply, model
 * two's sequence-tagged shotgun, and model three's Freelance Protocol (RFC 10/FLP). Pure codecs,
 * no sockets.
 * @module
 */
import {
  EMPTY_FRAME,
  type FrameLike,
  FrameReader,
  ProtocolError,
  toFrame,
} from "@zmq-patterns/core";

/** The three Freelance models of the Guide (spec 2.2, 2.3, 2.4). */
export type FreelanceModel = 1 | 2 | 3;

/** Model one: time per attempt (the Guide's `REQUEST_TIMEOUT`). */
export const MODEL1_ATTEMPT_TIMEOUT_MS = 1000;
/** Model one: attempts when there is a single server (the Guide's `MAX_RETRIES`). */
export const MODEL1_RETRIES = 3;
/** Model two: time to wait for the first matching reply (the Guide's `GLOBAL_TIMEOUT`). */
export const MODEL2_TIMEOUT_MS = 2500;
/** Model three: time to wait for a matching reply (the Guide's `GLOBAL_TIMEOUT`). */
export const MODEL3_TIMEOUT_MS = 3000;
/** Model three: a silent server is pinged this often (the Guide's `PING_INTERVAL`). */
export const PING_INTERVAL_MS = 2000;
/** Model three: a server silent this long counts as gone (the Guide's `SERVER_TTL`). */
export const SERVER_TTL_MS = 6000;

/** Where the Guide's servers bind. */
export const DEFAULT_SERVER_ENDPOINT = "tcp://*:5555";
/** The Guide's model-three server identity: the public endpoint clients connect to. */
export const DEFAULT_SERVER_IDENTITY = "tcp://localhost:5555";
/** The three servers the Guide's clients use. */
export const DEFAULT_CLIENT_ENDPOINTS: readonly string[] = Object.freeze([
  "tcp://localhost:5555",
  "tcp://localhost:5556",
  "tcp://localhost:5557",
]);

/** The model-two and model-three servers' reply body (spec 2.3, 2.4.2). */
export const OK_FRAME: Buffer = Buffer.from("OK");
/** 10/FLP ping command. */
export const PING_FRAME: Buffer = Buffer.from("PING");
/** 10/FLP ping answer. */
export const PONG_FRAME: Buffer = Buffer.from("PONG");

const DECIMAL = /^(0|[1-9][0-9]*)$/;
const MAX_SEQUENCE_BYTES = 16;

/** A sequence number as its decimal frame. */
export function encodeSequence(sequence: number): Buffer {
  if (!Number.isSafeInteger(sequence) || sequence < 0) {
    throw new ProtocolError("invalid sequence");
  }
  return Buffer.from(String(sequence));
}

/**
 * Reads a decimal sequence frame strictly (spec 4.3): not `atoi`, so `"PONG"`, `"12abc"` or an
 * empty frame are never taken for a number (fix 2.6.3). Returns `undefined` when the frame is
 * not a sequence.
 */
export function parseSequence(frame: Buffer): number | undefined {
  if (frame.byteLength === 0 || frame.byteLength > MAX_SEQUENCE_BYTES) return undefined;
  const text = frame.toString("latin1");
  if (!DECIMAL.test(text)) return undefined;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : undefined;
}

function frames(body: FrameLike | readonly FrameLike[]): Buffer[] {
  return typeof body === "string" || body instanceof Uint8Array
    ? [toFrame(body)]
    : body.map(toFrame);
}

function checkBody(body: Buffer[]): Buffer[] {
  if (body.length === 0) throw new ProtocolError("missing frame: body");
  return body;
}

// ---------------------------------------------------------------------------------------------
// Model two (spec 2.3): DEALER client -> REP-style server

/**
 * A model-two request as the client's DEALER sends it: `["", sequence, body...]` (the empty
 * delimiter makes REP servers accept it). The Guide's server wants exactly one body frame; more
 * are allowed here and rejected by a strict server.
 */
export function encodeModel2Request(
  sequence: number,
  body: FrameLike | readonly FrameLike[],
): Buffer[] {
  return [EMPTY_FRAME, encodeSequence(sequence), ...checkBody(frames(body))];
}

/** What a model-two server reads after the envelope: `[sequence][body]`, exactly two frames. */
export interface Model2Request {
  /** The sequence frame, returned unchanged in the reply. */
  sequence: Buffer;
  /** The request body. */
  body: Buffer;
}

/**
 * Decodes a model-two request body (after the REP envelope): exactly `[sequence][body]`. The
 * reference asserts and crashes on anything else; we throw for the caller to drop (fix 2.6.9).
 *
 * @throws {@link @zmq-patterns/core!ProtocolError | ProtocolError} `missing frame: sequence`,
 * `missing frame: body`, `unexpected N extra frame(s)` or `invalid sequence`.
 */
export function decodeModel2Request(body: readonly Buffer[]): Model2Request {
  const reader = new FrameReader(body);
  const sequence = reader.frame("sequence");
  const request = reader.frame("body");
  reader.end();
  if (parseSequence(sequence) === undefined) throw new ProtocolError("invalid sequence");
  return { sequence, body: request };
}

/** A model-two reply body (before the envelope): `[sequence][reply...]`, by default `["OK"]`. */
export function encodeModel2Reply(
  sequence: Buffer,
  reply: readonly Buffer[] = [OK_FRAME],
): Buffer[] {
  return [sequence, ...checkBody([...reply])];
}

/** A model-two reply as the client's DEALER receives it. */
export interface Model2Reply {
  sequence: number;
  /** The frames after the sequence (`["OK"]` from the Guide's server). */
  body: Buffer[];
}

/**
 * Decodes what the model-two client's DEALER receives: `["", sequence, reply...]` with at least
 * one reply frame (the reference asserts exactly `["", sequence, "OK"]`).
 *
 * @throws {@link @zmq-patterns/core!ProtocolError | ProtocolError} `missing frame: delimiter`,
 * `delimiter frame is not empty`, `invalid sequence` or `missing frame: body`.
 */
export function decodeModel2Reply(message: readonly Buffer[]): Model2Reply {
  const reader = new FrameReader(message);
  reader.empty("delimiter");
  const sequence = parseSequence(reader.frame("sequence"));
  if (sequence === undefined) throw new ProtocolError("invalid sequence");
  return { sequence, body: reader.rest("body", 1) };
}

// ---------------------------------------------------------------------------------------------
// Model three: RFC 10/FLP, ROUTER to ROUTER (spec 2.4.1)

/** A 10/FLP ping, without the routing frame: `["PING"]`. */
export function encodePing(): Buffer[] {
  return [PING_FRAME];
}

/** A 10/FLP pong, without the routing frame: `["PONG"]`. */
export function encodePong(): Buffer[] {
  return [PONG_FRAME];
}

/**
 * A 10/FLP request, without the routing frame: `[control][body...]`. The client control frame
 * (CCF) is opaque to servers; ours carries the decimal request sequence, so it is never the
 * literal `"PING"`.
 *
 * @throws {@link @zmq-patterns/core!ProtocolError | ProtocolError} `missing frame: body` when
 * `body` has no frame, `control frame is PING` when the control frame would read as a ping.
 */
export function encodeFlpRequest(
  control: FrameLike,
  body: FrameLike | readonly FrameLike[],
): Buffer[] {
  const ccf = toFrame(control);
  if (ccf.equals(PING_FRAME)) throw new ProtocolError("control frame is PING");
  return [ccf, ...checkBody(frames(body))];
}

/** A 10/FLP reply, without the routing frame: `[control][reply...]`, by default `["OK"]`. */
export function encodeFlpReply(control: Buffer, reply: readonly Buffer[] = [OK_FRAME]): Buffer[] {
  return [control, ...checkBody([...reply])];
}

/** A client command as a 10/FLP server reads it (after the client's routing frame). */
export type FlpCommand = { type: "ping" } | { type: "request"; control: Buffer; body: Buffer[] };

/**
 * Decodes a client command (after the routing frame): `["PING"]`, or `[control][body...]` with
 * at least one body frame (RFC 10/FLP).
 *
 * @throws {@link @zmq-patterns/core!ProtocolError | ProtocolError} `empty message`,
 * `PING with extra frames` or `missing frame: body`.
 */
export function decodeFlpCommand(message: readonly Buffer[]): FlpCommand {
  const [control, ...body] = message;
  if (control === undefined) throw new ProtocolError("empty message");
  if (control.equals(PING_FRAME)) {
    if (body.length > 0) throw new ProtocolError("PING with extra frames");
    return { type: "ping" };
  }
  if (body.length === 0) throw new ProtocolError("missing frame: body");
  return { type: "request", control, body };
}

/** A server message as a 10/FLP client reads it (after the server's routing frame). */
export type FlpServerMessage =
  | { type: "pong" }
  | { type: "reply"; control: Buffer; body: Buffer[] };

/**
 * Decodes a server message (after the routing frame): `["PONG"]`, or `[control][reply...]`
 * with at least one reply frame.
 *
 * @throws {@link @zmq-patterns/core!ProtocolError | ProtocolError} `empty message`,
 * `PONG with extra frames` or `missing frame: body`.
 */
export function decodeFlpServerMessage(message: readonly Buffer[]): FlpServerMessage {
  const [control, ...body] = message;
  if (control === undefined) throw new ProtocolError("empty message");
  if (control.equals(PONG_FRAME)) {
    if (body.length > 0) throw new ProtocolError("PONG with extra frames");
    return { type: "pong" };
  }
  if (body.length === 0) throw new ProtocolError("missing frame: body");
  return { type: "reply", control, body };
}

/**
 * The identity a model-three server should use, from the endpoint it binds: a wildcard host
 * becomes `localhost` (`tcp://*:5555` -> `tcp://localhost:5555`, the Guide's pair); any other
 * endpoint is its own identity. Clients must connect to exactly this string (RFC 10/FLP).
 */
export function identityForEndpoint(bind: string): string {
  return bind.replace(/^tcp:\/\/(\*|0\.0\.0\.0):/, "tcp://localhost:");
}
