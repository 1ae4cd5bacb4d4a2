/**
 * Frames: the single parts of a multipart ZeroMQ message.
 * @module
 */
import { InvalidArgumentError } from "./errors.js";

/** What every API accepts as a frame: text (UTF-8), a `Buffer`, or any `Uint8Array`. */
export type FrameLike = string | Buffer | Uint8Array;

/** An empty frame, the envelope delimiter. Shared and never mutated. */
export const EMPTY_FRAME: Buffer = Buffer.alloc(0);

/** Converts a {@link FrameLike} to a `Buffer` without copying bytes that are already binary. */
export function toFrame(value: FrameLike): Buffer {
  if (Buffer.isBuffer(value)) return value;
  if (typeof value === "string") return value.length === 0 ? EMPTY_FRAME : Buffer.from(value);
  if (value instanceof Uint8Array)
    return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  throw new InvalidArgumentError(
    `a frame must be a string, Buffer or Uint8Array, got ${describe(value)}`,
  );
}

/** Converts a list of {@link FrameLike} values to `Buffer` frames. */
export function toFrames(values: Iterable<FrameLike>): Buffer[] {
  const frames: Buffer[] = [];
  for (const value of values) frames.push(toFrame(value));
  return frames;
}

/** True when the frame has no bytes (an envelope delimiter). */
export function isEmptyFrame(frame: Uint8Array | undefined): boolean {
  return frame !== undefined && frame.byteLength === 0;
}

/** True when every byte is printable ASCII (space to tilde), the test `dump()` uses. */
export function isPrintable(frame: Uint8Array): boolean {
  for (const byte of frame) {
    if (byte < 0x20 || byte > 0x7e) return false;
  }
  return true;
}

/** Formats one frame the way ZeroMQ people debug: `[size] text` when printable, else hex. */
export function formatFrame(frame: Uint8Array, maxBytes = 64): string {
  const size = String(frame.byteLength).padStart(3, "0");
  const shown = frame.subarray(0, maxBytes);
  const buffer = Buffer.from(shown.buffer, shown.byteOffset, shown.byteLength);
  const text = isPrintable(shown)
    ? buffer.toString("latin1")
    : buffer.toString("hex").toUpperCase();
  const more = frame.byteLength > maxBytes ? "..." : "";
  return text.length > 0 ? `[${size}] ${text}${more}` : `[${size}]`;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value;
}
