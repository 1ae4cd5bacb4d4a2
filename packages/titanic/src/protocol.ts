/**
 * The Titanic Service Protocol (RFC 9/TSP): service names, status codes, UUIDs, and pure codecs
 * for the bodies of the three services. TSP messages are ordinary Majordomo request and reply
 * bodies. No sockets, no files.
 * @module
 */
import { randomUUID } from "node:crypto";
import { type FrameLike, FrameReader, ProtocolError, toFrames } from "@zmq-patterns/core";

/** Stores a request: `[service][body...]` -> `[status][uuid]`. */
export const TITANIC_REQUEST = "titanic.request";
/** Fetches a reply: `[uuid]` -> `[status][reply...]`. */
export const TITANIC_REPLY = "titanic.reply";
/** Forgets a request and its reply: `[uuid]` -> `[status]`. */
export const TITANIC_CLOSE = "titanic.close";

/** The only status codes TSP allows (TSP-R6). */
export const TSP_STATUS = {
  /** OK; for `titanic.reply`, the service ran and here is its reply. */
  ok: "200",
  /** Pending: try again later. */
  pending: "300",
  /** Unknown: an invalid or unknown UUID (or an invalid request); do not retry. */
  unknown: "400",
  /** Internal error (storage): try again later. */
  error: "500",
} as const;

/** A TSP status code. */
export type TspStatus = (typeof TSP_STATUS)[keyof typeof TSP_STATUS];

const UUID = /^[0-9A-Fa-f]{32}$/;

/** True when `text` is 32 hexadecimal characters (TSP-R2), in either case. */
export function isUuid(text: string): boolean {
  return UUID.test(text);
}

/**
 * A UUID in the canonical form used for storage and replies: 32 uppercase hex characters, as the
 * Guide's C Titanic writes them (its Python version writes lowercase; both are accepted).
 *
 * @throws {@link @zmq-patterns/core!ProtocolError | ProtocolError} `invalid UUID` otherwise.
 */
export function normalizeUuid(text: string): string {
  if (!isUuid(text)) throw new ProtocolError("invalid UUID");
  return text.toUpperCase();
}

/** A new random UUID in canonical form. */
export function newUuid(): string {
  return randomUUID().replaceAll("-", "").toUpperCase();
}

/** A `titanic.request` body: the target service and the request for it. */
export interface TitanicSubmission {
  service: string;
  body: Buffer[];
}

/**
 * Decodes a `titanic.request` body, `[service][body...]` (2 or more frames; a service name as MDP
 * allows: UTF-8, 1 to 255 bytes).
 *
 * @throws {@link @zmq-patterns/core!ProtocolError | ProtocolError} naming what is wrong.
 */
export function decodeSubmission(body: readonly Buffer[]): TitanicSubmission {
  const reader = new FrameReader(body);
  const frame = reader.nonEmpty("service");
  const service = frame.toString("utf8");
  if (frame.byteLength > 255 || !Buffer.from(service).equals(frame))
    throw new ProtocolError("invalid service name");
  return { service, body: reader.rest("body", 1) };
}

/** Encodes a `titanic.request` body. */
export function encodeSubmission(service: string, body: readonly FrameLike[]): Buffer[] {
  const frames = toFrames(body);
  if (frames.length === 0) throw new ProtocolError("missing frame: body");
  return [Buffer.from(service), ...frames];
}

/**
 * Decodes the `[uuid]` body of `titanic.reply` and `titanic.close` (exactly one frame) into the
 * canonical UUID.
 *
 * @throws {@link @zmq-patterns/core!ProtocolError | ProtocolError} `invalid UUID`, `missing frame: uuid`, or extra frames.
 */
export function decodeUuidBody(body: readonly Buffer[]): string {
  const reader = new FrameReader(body);
  const frame = reader.frame("uuid");
  reader.end();
  return normalizeUuid(frame.toString("latin1"));
}

/** A reply body: the status frame, then the rest (TSP-R6: a code, optionally a space and text). */
export function encodeStatusReply(
  status: TspStatus,
  rest: readonly FrameLike[] = [],
  text?: string,
): Buffer[] {
  return [Buffer.from(text ? `${status} ${text}` : status), ...toFrames(rest)];
}

/** A decoded reply body: its status (first three characters of the status frame) and the rest. */
export interface StatusReply {
  status: TspStatus;
  rest: Buffer[];
}

/**
 * Decodes a TSP reply body. Only the first three characters of the status frame count (TSP-R6).
 *
 * @throws {@link @zmq-patterns/core!ProtocolError | ProtocolError} for a missing or unknown status.
 */
export function decodeStatusReply(body: readonly Buffer[]): StatusReply {
  const reader = new FrameReader(body);
  const code = reader.frame("status").toString("latin1").slice(0, 3);
  if (!(Object.values(TSP_STATUS) as string[]).includes(code))
    throw new ProtocolError("unknown status");
  return { status: code as TspStatus, rest: reader.rest() };
}
