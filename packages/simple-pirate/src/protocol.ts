/**
 * The Simple Pirate wire format: constants, and pure codecs between frames and typed messages.
 * No sockets, no timers.
 *
 * | step                           | frames as the application sees them  |
 * | ------------------------------ | ------------------------------------ |
 * | worker READY (REQ sends)       | `[0x01]`                             |
 * | READY at the backend ROUTER    | `[W][""][0x01]`                      |
 * | request at the frontend ROUTER | `[C][""][request...]`                |
 * | queue to worker (backend)      | `[W][""][C][""][request...]`         |
 * | worker REQ receives            | `[C][""][request...]`                |
 * | worker REQ replies             | `[C][""][reply...]`                  |
 * | reply at the backend ROUTER    | `[W][""][C][""][reply...]`           |
 * | queue to client (frontend)     | `[C][""][reply...]`                  |
 *
 * `[C]` stands for the client's return envelope: its routing identity, preceded by the
 * identities of any ROUTER proxies the request passed through.
 * @module
 */
import { type FrameLike, FrameReader, joinEnvelope, toFrames } from "@zmq-patterns/core";

/** The READY signal a worker sends once, when it starts: one frame holding the byte `0x01`. */
export const WORKER_READY: Buffer = Buffer.from([0x01]);

/** The Guide's queue frontend endpoint, where clients connect. */
export const DEFAULT_FRONTEND_BIND = "tcp://*:5555";
/** The Guide's queue backend endpoint, where workers connect. */
export const DEFAULT_BACKEND_BIND = "tcp://*:5556";
/** The Guide's worker endpoint: the queue backend on the local host. */
export const DEFAULT_WORKER_ENDPOINT = "tcp://localhost:5556";

/** A client request, or a reply on its way back to that client. */
export interface ClientMessage {
  /**
   * The client's return envelope, without the delimiter: its routing identity, preceded by the
   * identities of any ROUTER proxies in between. Never empty.
   */
  envelope: Buffer[];
  /** The application frames after the delimiter. Never empty. */
  body: Buffer[];
}

/** What a worker sent to the queue's backend, decoded by {@link decodeBackend}. */
export type BackendMessage =
  /** The worker announced that it is ready for a request. */
  | { type: "ready"; worker: Buffer }
  /** The worker answered a request: `reply` goes back to the client it names. */
  | { type: "reply"; worker: Buffer; reply: ClientMessage };

/**
 * Decodes what the frontend ROUTER received from a client, `[C][""][request...]`.
 *
 * @throws {@link @zmq-patterns/core!ProtocolError | ProtocolError} when the delimiter or the request body is missing.
 */
export function decodeFrontend(frames: readonly Buffer[]): ClientMessage {
  const reader = new FrameReader(frames);
  const envelope = readEnvelope(reader, "client identity", "client delimiter");
  const body = reader.rest("request body", 1);
  return { envelope, body };
}

/**
 * Decodes what the backend ROUTER received from a worker: `[W][""][0x01]` (READY, exactly these
 * three frames) or `[W][""][C][""][reply...]` (a reply).
 *
 * READY is recognised by the whole message, not by the first byte after the worker's
 * delimiter, so a reply to a client whose identity starts with `0x01` is still a reply.
 *
 * @throws {@link @zmq-patterns/core!ProtocolError | ProtocolError} when the message is neither.
 */
export function decodeBackend(frames: readonly Buffer[]): BackendMessage {
  const reader = new FrameReader(frames);
  const worker = reader.nonEmpty("worker identity");
  reader.empty("worker delimiter");
  if (reader.remaining === 1 && reader.peek()?.equals(WORKER_READY))
    return { type: "ready", worker };
  const envelope = readEnvelope(reader, "client address", "client delimiter");
  const body = reader.rest("reply body", 1);
  return { type: "reply", worker, reply: { envelope, body } };
}

/** The frames a queue sends on its backend to hand `request` to `worker`: `[W][""][C][""][request...]`. */
export function encodeDispatch(worker: Buffer, request: ClientMessage): Buffer[] {
  return joinEnvelope([worker], joinEnvelope(request.envelope, request.body));
}

/** The frames a queue sends on its frontend to return `reply` to its client: `[C][""][reply...]`. */
export function encodeClientReply(reply: ClientMessage): Buffer[] {
  return joinEnvelope(reply.envelope, reply.body);
}

/** The frames a worker's REQ socket sends to announce it is ready: `[0x01]`. */
export function encodeReady(): Buffer[] {
  return [WORKER_READY];
}

/**
 * Decodes what a worker's REQ socket received from the queue, `[C][""][request...]`.
 *
 * @throws {@link @zmq-patterns/core!ProtocolError | ProtocolError} when the client envelope, its delimiter or the body is missing.
 */
export function decodeWorkerRequest(frames: readonly Buffer[]): ClientMessage {
  const reader = new FrameReader(frames);
  const envelope = readEnvelope(reader, "client address", "client delimiter");
  const body = reader.rest("request body", 1);
  return { envelope, body };
}

/**
 * The frames a worker's REQ socket sends to answer a request: `[C][""][reply...]`. A message
 * needs at least one frame, so an empty `body` is sent as one empty frame.
 */
export function encodeWorkerReply(
  envelope: readonly Buffer[],
  body: readonly FrameLike[],
): Buffer[] {
  return joinEnvelope(envelope, body.length > 0 ? toFrames(body) : [Buffer.alloc(0)]);
}

/**
 * Reads a return envelope: one non-empty frame, any further non-empty frames, then the empty
 * delimiter, which is consumed.
 */
function readEnvelope(reader: FrameReader, first: string, delimiter: string): Buffer[] {
  const envelope = [reader.nonEmpty(first)];
  for (let next = reader.peek(); next !== undefined && next.byteLength > 0; next = reader.peek()) {
    envelope.push(reader.frame(first));
  }
  reader.empty(delimiter);
  return envelope;
}
