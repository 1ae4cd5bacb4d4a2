/**
 * A portable encoding of a multipart message for files: what Titanic and any other store writes
 * to disk. Unlike CZMQ's `zmsg_save` (native-endian `size_t` lengths, no header), it has a magic,
 * a version, big-endian lengths and a checksum, so a torn or foreign file is detected.
 * @module
 */
import * as zlib from "node:zlib";
import { ProtocolError } from "./errors.js";
import { type FrameLike, toFrames } from "./frame.js";

/** `zlib.crc32` arrived in Node 20.15; earlier releases of Node 20 use the same CRC computed here. */
const crc32: (data: Uint8Array) => number =
  (zlib as { crc32?: (data: Uint8Array) => number }).crc32 ?? softwareCrc32;

let table: Uint32Array | undefined;

function softwareCrc32(data: Uint8Array): number {
  table ??= Uint32Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  let crc = 0xffffffff;
  for (const byte of data) crc = (table[(crc ^ byte) & 0xff] as number) ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** The CRC-32 of `data` (the zlib polynomial), for tests of the fallback. @internal */
export const crc32ForTests = { native: crc32, software: softwareCrc32 };

const MAGIC = Buffer.from("ZMQF");
const VERSION = 1;
const HEADER_BYTES = MAGIC.length + 1 + 4; // magic, version, frame count
const TRAILER_BYTES = 4; // CRC-32

/** Limits applied when decoding, so a damaged length cannot make the decoder allocate wildly. */
export interface FrameFileLimits {
  /** Most frames accepted. Default 65,536. */
  maxFrames?: number;
  /** Most bytes accepted in all. Default 256 MiB. */
  maxBytes?: number;
}

/**
 * Encodes frames as: `"ZMQF"`, version byte `1`, frame count (u32 BE), then per frame its length
 * (u32 BE) and bytes, then a CRC-32 (u32 BE) of everything before it.
 */
export function encodeFrameFile(frames: readonly FrameLike[]): Buffer {
  const list = toFrames(frames);
  let size = HEADER_BYTES + TRAILER_BYTES;
  for (const frame of list) size += 4 + frame.byteLength;
  const out = Buffer.allocUnsafe(size);
  MAGIC.copy(out, 0);
  out.writeUInt8(VERSION, MAGIC.length);
  out.writeUInt32BE(list.length, MAGIC.length + 1);
  let offset = HEADER_BYTES;
  for (const frame of list) {
    out.writeUInt32BE(frame.byteLength, offset);
    frame.copy(out, offset + 4);
    offset += 4 + frame.byteLength;
  }
  out.writeUInt32BE(crc32(out.subarray(0, offset)), offset);
  return out;
}

/**
 * Decodes what {@link encodeFrameFile} wrote.
 *
 * @throws {@link ProtocolError} naming what is wrong: `not a frame file`, `unsupported frame file
 * version`, `frame file truncated`, `frame file checksum mismatch`, `frame file too large`.
 */
export function decodeFrameFile(data: Uint8Array, limits: FrameFileLimits = {}): Buffer[] {
  const maxFrames = limits.maxFrames ?? 65_536;
  const maxBytes = limits.maxBytes ?? 256 * 1024 * 1024;
  const buffer = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (buffer.byteLength > maxBytes) throw new ProtocolError("frame file too large");
  if (buffer.byteLength < HEADER_BYTES + TRAILER_BYTES) {
    throw new ProtocolError(
      buffer.subarray(0, 4).equals(MAGIC) ? "frame file truncated" : "not a frame file",
    );
  }
  if (!buffer.subarray(0, MAGIC.length).equals(MAGIC)) throw new ProtocolError("not a frame file");
  if (buffer.readUInt8(MAGIC.length) !== VERSION)
    throw new ProtocolError("unsupported frame file version");
  const body = buffer.byteLength - TRAILER_BYTES;
  if (crc32(buffer.subarray(0, body)) !== buffer.readUInt32BE(body)) {
    throw new ProtocolError("frame file checksum mismatch");
  }
  const count = buffer.readUInt32BE(MAGIC.length + 1);
  if (count > maxFrames) throw new ProtocolError("frame file too large");
  const frames: Buffer[] = [];
  let offset = HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    if (offset + 4 > body) throw new ProtocolError("frame file truncated");
    const length = buffer.readUInt32BE(offset);
    if (offset + 4 + length > body) throw new ProtocolError("frame file truncated");
    // Copies, so the frames do not pin the whole file buffer in memory.
    frames.push(Buffer.from(buffer.subarray(offset + 4, offset + 4 + length)));
    offset += 4 + length;
  }
  if (offset !== body) throw new ProtocolError("frame file has trailing bytes");
  return frames;
}
