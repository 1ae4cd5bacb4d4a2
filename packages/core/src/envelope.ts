/**
 * Envelopes: the routing frames in front of a message body, up to an empty delimiter.
 *
 * `splitEnvelope`/`joinEnvelope` are the explicit form this library prefers; `wrap`/`unwrap`
 * keep the exact CZMQ semantics for code that mirrors the Guide.
 * @module
 */
import { ProtocolError } from "./errors.js";
import { EMPTY_FRAME, type FrameLike, isEmptyFrame, isPrintable, toFrame } from "./frame.js";
import { Msg } from "./msg.js";

/** A message split at its first empty delimiter. */
export interface Envelope {
  /** Routing frames before the delimiter (the delimiter itself is not included). */
  envelope: Buffer[];
  /** Frames after the delimiter. */
  body: Buffer[];
}

/**
 * Splits `frames` at the first empty frame into routing envelope and body.
 *
 * @throws {@link ProtocolError} when there is no empty delimiter.
 */
export function splitEnvelope(frames: Msg | readonly Buffer[]): Envelope {
  const list = frames instanceof Msg ? frames.frames : frames;
  const index = list.findIndex((frame) => frame.byteLength === 0);
  if (index < 0) throw new ProtocolError("no envelope delimiter");
  return { envelope: list.slice(0, index), body: list.slice(index + 1) };
}

/** Joins an envelope and a body with one empty delimiter between them: the inverse of {@link splitEnvelope}. */
export function joinEnvelope(envelope: readonly FrameLike[], body: readonly FrameLike[]): Buffer[] {
  return [...envelope.map(toFrame), EMPTY_FRAME, ...body.map(toFrame)];
}

/**
 * CZMQ `zmsg_wrap`: pushes an empty delimiter, then `address`, at the front of `msg`
 * (`[address][""][...]`).
 */
export function wrap(msg: Msg, address: FrameLike): Msg {
  return msg.push(EMPTY_FRAME).push(address);
}

/**
 * CZMQ `zmsg_unwrap`: pops and returns the first frame, then pops the next frame too when it is
 * empty. A delimiter is not required, so this also serves DEALER peers that send none.
 *
 * @throws {@link ProtocolError} when the message has no frames.
 */
export function unwrap(msg: Msg): Buffer {
  const address = msg.pop();
  if (address === undefined) throw new ProtocolError("no address frame to unwrap");
  if (isEmptyFrame(msg.first())) msg.pop();
  return address;
}

/** A routing identity as a stable lowercase hex string, usable as a map key. */
export function identityKey(identity: Uint8Array): string {
  return Buffer.from(identity.buffer, identity.byteOffset, identity.byteLength).toString("hex");
}

/**
 * The routing identity a {@link identityKey} was made from.
 *
 * @throws {@link ProtocolError} when `key` is not an even-length hex string.
 */
export function identityFromKey(key: string): Buffer {
  if (key.length % 2 !== 0 || !/^[0-9a-f]*$/i.test(key)) {
    throw new ProtocolError("identity key is not hex");
  }
  return Buffer.from(key, "hex");
}

/**
 * A routing identity for people: the text when every byte is printable (`worker-a`), otherwise
 * hex (`00a38e1f29`). Accepts the identity or its {@link identityKey}.
 */
export function describeIdentity(identity: Uint8Array | string): string {
  let bytes: Buffer;
  try {
    bytes = typeof identity === "string" ? identityFromKey(identity) : Buffer.from(identity);
  } catch {
    return String(identity);
  }
  return bytes.byteLength > 0 && isPrintable(bytes)
    ? bytes.toString("latin1")
    : bytes.toString("hex");
}
