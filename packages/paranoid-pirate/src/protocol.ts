/**
 * The Paranoid Pirate Protocol (RFC 6/PPP): constants, and pure codecs between frames and typed
 * messages for both sides of the queue-worker connection. No sockets, no timers.
 * @module
 */
import { FrameReader, joinEnvelope, ProtocolError } from "@zmq-patterns/core";

/** `READY`: the first message of every worker conversation (PPP-R3, R4). */
export const PPP_READY = 0x01;
/** `HEARTBEAT`: sent both ways at regular intervals (PPP-R2, R4). */
export const PPP_HEARTBEAT = 0x02;

/** The Guide's `HEARTBEAT_INTERVAL`. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 1000;
/** The Guide's `HEARTBEAT_LIVENESS`: silent intervals before a peer is considered dead. */
export const DEFAULT_LIVENESS = 3;
/** The Guide's `INTERVAL_INIT`: the worker's first reconnect delay. */
export const DEFAULT_RECONNECT_INITIAL_MS = 1000;
/** The Guide's `INTERVAL_MAX`: the cap of the worker's reconnect delay. */
export const DEFAULT_RECONNECT_MAX_MS = 32_000;
/** Where clients connect (the queue's frontend). */
export const DEFAULT_FRONTEND = "tcp://*:5555";
/** Where workers connect (the queue's backend). */
export const DEFAULT_BACKEND = "tcp://*:5556";
/** The backend as workers reach it. */
export const DEFAULT_WORKER_ENDPOINT = "tcp://localhost:5556";

const READY_FRAME = Buffer.from([PPP_READY]);
const HEARTBEAT_FRAME = Buffer.from([PPP_HEARTBEAT]);

/** A request or reply: the address stack up to the empty delimiter, and the content parts. */
export interface Routed {
  /** Address frames (the client's identity first, as a ROUTER sees it), without the delimiter. */
  envelope: Buffer[];
  /** One or more content parts. */
  body: Buffer[];
}

/** What a worker sends, as the queue sees it after taking the worker's identity off. */
export type WorkerMessage =
  | { type: "ready" }
  | { type: "heartbeat" }
  | ({ type: "reply" } & Routed);

/** What the queue sends, as a worker's DEALER sees it. */
export type QueueMessage = { type: "heartbeat" } | ({ type: "request" } & Routed);

/**
 * Decodes a worker message (the frames after the worker identity). A one-frame message is a
 * command and must be exactly `0x01` or `0x02`; anything longer is a reply and must carry an
 * address stack, an empty delimiter and at least one content part (PPP-R4).
 *
 * @throws {@link @zmq-patterns/core!ProtocolError | ProtocolError} naming what is wrong.
 */
export function decodeWorkerMessage(frames: readonly Buffer[]): WorkerMessage {
  if (frames.length === 0) throw new ProtocolError("empty message");
  if (frames.length === 1) {
    const command = new FrameReader(frames).byte("command");
    if (command === PPP_READY) return { type: "ready" };
    if (command === PPP_HEARTBEAT) return { type: "heartbeat" };
    throw new ProtocolError("unknown command");
  }
  return { type: "reply", ...decodeRouted(frames, "reply") };
}

/**
 * Decodes a queue message at the worker: `[0x02]` is a heartbeat; a request carries an address
 * stack, an empty delimiter and at least one content part.
 *
 * @throws {@link @zmq-patterns/core!ProtocolError | ProtocolError} naming what is wrong.
 */
export function decodeQueueMessage(frames: readonly Buffer[]): QueueMessage {
  if (frames.length === 0) throw new ProtocolError("empty message");
  if (frames.length === 1) {
    if (new FrameReader(frames).byte("command") === PPP_HEARTBEAT) return { type: "heartbeat" };
    throw new ProtocolError("unknown command");
  }
  return { type: "request", ...decodeRouted(frames, "request") };
}

/**
 * Decodes a client request as the frontend ROUTER delivers it: `[C][""][body...]`, or a longer
 * address stack when the client sits behind other ROUTERs.
 *
 * @throws {@link @zmq-patterns/core!ProtocolError | ProtocolError} naming what is wrong.
 */
export function decodeClientRequest(frames: readonly Buffer[]): Routed {
  return decodeRouted(frames, "request");
}

/** READY as a worker sends it: `[0x01]`. */
export function encodeReady(): Buffer[] {
  return [READY_FRAME];
}

/** HEARTBEAT as either side sends it, `[0x02]` (a queue prepends the worker identity). */
export function encodeHeartbeat(): Buffer[] {
  return [HEARTBEAT_FRAME];
}

/** A request from the queue to worker `worker`: `[W][C...][""][body...]` (4.4: no delimiter after W). */
export function encodeRequest(worker: Buffer, request: Routed): Buffer[] {
  return [worker, ...joinEnvelope(request.envelope, request.body)];
}

/** A reply from a worker: `[C...][""][body...]`; also what the frontend sends to the client. */
export function encodeRouted(message: Routed): Buffer[] {
  return joinEnvelope(message.envelope, message.body);
}

function decodeRouted(frames: readonly Buffer[], what: string): Routed {
  const reader = new FrameReader(frames);
  const envelope: Buffer[] = [];
  while (reader.peek()?.byteLength !== 0) {
    if (reader.remaining === 0) throw new ProtocolError(`${what} without envelope delimiter`);
    envelope.push(reader.frame("address"));
  }
  if (envelope.length === 0) throw new ProtocolError(`${what} without address`);
  reader.empty();
  const body = reader.rest("body", 1);
  return { envelope, body };
}
