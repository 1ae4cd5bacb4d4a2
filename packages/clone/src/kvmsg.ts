/**
 * `KvMsg`: the key-value message of the Clone pattern and RFC 12/CHP (spec 3.2, 3.3), in its
 * full five-frame form and the three-frame short form of the Guide's first models.
 * @module
 */
import { randomUUID } from "node:crypto";
import { type FrameLike, InvalidArgumentError, ProtocolError, toFrame } from "@zmq-patterns/core";

/** Longest key, in bytes (the reference reads keys into 256-byte C strings). */
export const MAX_KEY_BYTES = 255;
/** Length of a UUID frame. */
export const UUID_BYTES = 16;
/** Sequence frame length: an unsigned 64-bit big-endian integer. */
export const SEQUENCE_BYTES = 8;
/** Key of the server's heartbeat (spec 3.6). Never stored. */
export const HUGZ = "HUGZ";
/** Key of the snapshot terminator (spec 3.5). Never stored. */
export const KTHXBAI = "KTHXBAI";
/** First frame of a snapshot request (spec 3.5). */
export const ICANHAZ = "ICANHAZ?";
/** The property holding a value's time to live, in seconds (spec 3.7). */
export const TTL_PROPERTY = "ttl";

const EMPTY = Buffer.alloc(0);

/** The fields of a {@link KvMsg}; all optional when building one. */
export interface KvMsgInit {
  /** The key, at most 255 bytes of UTF-8. Default empty. */
  key?: string;
  /** The sequence number, 0 to `Number.MAX_SAFE_INTEGER`. Default 0. */
  sequence?: number;
  /** A 16-byte UUID, `"random"` for a fresh one, or `null` (default) for none. */
  uuid?: Uint8Array | "random" | null;
  /** Properties in order; names without `=` or LF, values without LF. */
  properties?: Iterable<readonly [string, string]> | Record<string, string>;
  /** The value; empty means "delete this key". Default empty. */
  body?: FrameLike;
}

/**
 * One key-value message. Five frames on the wire (12/CHP): `[key][sequence][uuid][properties]
 * [body]`, where the sequence is 8 bytes big-endian, the UUID 16 raw bytes or empty, the
 * properties `name=value` lines each ended by LF, and an empty body means delete. The short
 * form (models one to four) is `[key][sequence][body]`.
 *
 * Properties keep their order; setting one that exists moves it to the end, as the reference
 * does. Decoding follows the spec's decision (3.3): lines split on LF, empty lines ignored, a
 * last line without LF accepted, each line split at its first `=`.
 *
 * @example
 * ```ts
 * const msg = new KvMsg({ key: "/config/a", body: "42", uuid: "random", properties: { ttl: "30" } });
 * socket.send(msg.encode());
 * const back = KvMsg.decode(await socket.receive());
 * ```
 */
export class KvMsg {
  #key: string;
  #sequence: number;
  #uuid: Buffer | null;
  readonly #properties = new Map<string, string>();
  #body: Buffer;

  constructor(init: KvMsgInit = {}) {
    this.#key = checkKey(init.key ?? "");
    this.#sequence = checkSequence(init.sequence ?? 0);
    this.#uuid = init.uuid === "random" ? randomUuid() : checkUuid(init.uuid ?? null);
    const properties =
      init.properties === undefined
        ? []
        : Symbol.iterator in init.properties
          ? (init.properties as Iterable<readonly [string, string]>)
          : Object.entries(init.properties);
    for (const [name, value] of properties) this.setProperty(name, value);
    this.#body = init.body === undefined ? EMPTY : toFrame(init.body);
  }

  /** The key (empty when not set). */
  get key(): string {
    return this.#key;
  }

  set key(key: string) {
    this.#key = checkKey(key);
  }

  /** The sequence number (0 when not set). */
  get sequence(): number {
    return this.#sequence;
  }

  set sequence(sequence: number) {
    this.#sequence = checkSequence(sequence);
  }

  /** The 16-byte UUID, or `null`. */
  get uuid(): Buffer | null {
    return this.#uuid;
  }

  set uuid(uuid: Uint8Array | null) {
    this.#uuid = checkUuid(uuid);
  }

  /** The value; empty means delete. */
  get body(): Buffer {
    return this.#body;
  }

  set body(body: FrameLike) {
    this.#body = toFrame(body);
  }

  /** The value as UTF-8 text. */
  get text(): string {
    return this.#body.toString("utf8");
  }

  /** True when this message deletes its key (empty body). */
  get isDelete(): boolean {
    return this.#body.byteLength === 0;
  }

  /** The properties, in order. */
  get properties(): ReadonlyMap<string, string> {
    return this.#properties;
  }

  /** A property's value, or `undefined` when absent (the reference returns `""`). */
  getProperty(name: string): string | undefined {
    return this.#properties.get(name);
  }

  /**
   * Sets a property, moving it to the end if it existed.
   *
   * @throws {@link @zmq-patterns/core!InvalidArgumentError | InvalidArgumentError} for a name
   * that is empty or holds `=` or LF, or a value that holds LF.
   */
  setProperty(name: string, value: string): this {
    if (typeof name !== "string" || name === "" || /[=\n]/.test(name)) {
      throw new InvalidArgumentError(`invalid property name ${JSON.stringify(name)}`);
    }
    if (typeof value !== "string" || value.includes("\n")) {
      throw new InvalidArgumentError(`invalid value for property ${name}: no line feeds allowed`);
    }
    this.#properties.delete(name);
    this.#properties.set(name, value);
    return this;
  }

  /** Removes a property; true when it was there. */
  deleteProperty(name: string): boolean {
    return this.#properties.delete(name);
  }

  /** A deep copy: no frame or property is shared (the reference's `dup` corrupted them, B5). */
  clone(): KvMsg {
    return new KvMsg({
      key: this.#key,
      sequence: this.#sequence,
      uuid: this.#uuid === null ? null : Buffer.from(this.#uuid),
      properties: [...this.#properties],
      body: Buffer.from(this.#body),
    });
  }

  /** The five frames of 12/CHP: `[key][sequence][uuid][properties][body]`. */
  encode(): Buffer[] {
    return [
      Buffer.from(this.#key, "utf8"),
      encodeSequence(this.#sequence),
      this.#uuid ?? EMPTY,
      encodeProperties(this.#properties),
      this.#body,
    ];
  }

  /** The three frames of the short form (models one to four): `[key][sequence][body]`. */
  encodeShort(): Buffer[] {
    return [Buffer.from(this.#key, "utf8"), encodeSequence(this.#sequence), this.#body];
  }

  /**
   * Decodes the five-frame form.
   *
   * @throws {@link @zmq-patterns/core!ProtocolError | ProtocolError}: `expected 5 frames, got
   * N`, `key is longer than 255 bytes`, `key is not UTF-8`, `sequence frame is not 8 bytes`,
   * `sequence too large`, `uuid frame is neither 16 bytes nor empty`, `invalid properties`.
   */
  static decode(frames: readonly Buffer[]): KvMsg {
    if (frames.length !== 5) throw new ProtocolError(`expected 5 frames, got ${frames.length}`);
    const [key, sequence, uuid, properties, body] = frames as [
      Buffer,
      Buffer,
      Buffer,
      Buffer,
      Buffer,
    ];
    if (uuid.byteLength !== 0 && uuid.byteLength !== UUID_BYTES) {
      throw new ProtocolError("uuid frame is neither 16 bytes nor empty");
    }
    return new KvMsg({
      key: decodeKey(key),
      sequence: decodeSequence(sequence),
      uuid: uuid.byteLength === 0 ? null : uuid,
      properties: decodeProperties(properties),
      body,
    });
  }

  /**
   * Decodes the three-frame short form.
   *
   * @throws {@link @zmq-patterns/core!ProtocolError | ProtocolError} as {@link KvMsg.decode},
   * with `expected 3 frames, got N`.
   */
  static decodeShort(frames: readonly Buffer[]): KvMsg {
    if (frames.length !== 3) throw new ProtocolError(`expected 3 frames, got ${frames.length}`);
    const [key, sequence, body] = frames as [Buffer, Buffer, Buffer];
    return new KvMsg({ key: decodeKey(key), sequence: decodeSequence(sequence), body });
  }

  /** For debugging: key, sequence, uuid, properties and the body's size. */
  toString(): string {
    const props = [...this.#properties].map(([n, v]) => `${n}=${v}`).join(",");
    const uuid = this.#uuid ? this.#uuid.toString("hex") : "-";
    return `[${this.#key}] seq=${this.#sequence} uuid=${uuid} props={${props}} body=${this.#body.byteLength}B`;
  }
}

/** Eight bytes, big-endian (spec 4.3). */
export function encodeSequence(sequence: number): Buffer {
  const frame = Buffer.alloc(SEQUENCE_BYTES);
  frame.writeBigUInt64BE(BigInt(checkSequence(sequence)));
  return frame;
}

/**
 * Reads an 8-byte big-endian sequence.
 *
 * @throws {@link @zmq-patterns/core!ProtocolError | ProtocolError} `sequence frame is not 8
 * bytes`, or `sequence too large` above `Number.MAX_SAFE_INTEGER`.
 */
export function decodeSequence(frame: Buffer): number {
  if (frame.byteLength !== SEQUENCE_BYTES) throw new ProtocolError("sequence frame is not 8 bytes");
  const value = frame.readBigUInt64BE();
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new ProtocolError("sequence too large");
  return Number(value);
}

/** Encodes properties as `name=value` lines, each ended by LF; empty frame when there are none. */
export function encodeProperties(properties: ReadonlyMap<string, string>): Buffer {
  if (properties.size === 0) return EMPTY;
  let text = "";
  for (const [name, value] of properties) text += `${name}=${value}\n`;
  return Buffer.from(text, "utf8");
}

/**
 * Decodes a properties frame (spec 3.3 [DECISION]): split on LF, empty lines ignored, a last
 * line without LF accepted, each line split at its first `=`.
 *
 * @throws {@link @zmq-patterns/core!ProtocolError | ProtocolError} `invalid properties` for a
 * line without `=` or with an empty name, or text that is not UTF-8.
 */
export function decodeProperties(frame: Buffer): Array<[string, string]> {
  if (frame.byteLength === 0) return [];
  const text = decodeUtf8(frame, "invalid properties");
  const result: Array<[string, string]> = [];
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const at = line.indexOf("=");
    if (at <= 0) throw new ProtocolError("invalid properties");
    result.push([line.slice(0, at), line.slice(at + 1)]);
  }
  return result;
}

function decodeKey(frame: Buffer): string {
  if (frame.byteLength > MAX_KEY_BYTES) throw new ProtocolError("key is longer than 255 bytes");
  return decodeUtf8(frame, "key is not UTF-8");
}

// ignoreBOM: a leading U+FEFF is part of the key or property, not a byte-order mark to drop.
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function decodeUtf8(frame: Buffer, reason: string): string {
  try {
    return utf8.decode(frame);
  } catch {
    throw new ProtocolError(reason);
  }
}

function checkKey(key: string): string {
  if (typeof key !== "string") throw new InvalidArgumentError("key must be a string");
  if (Buffer.byteLength(key, "utf8") > MAX_KEY_BYTES) {
    throw new InvalidArgumentError(`key is longer than ${MAX_KEY_BYTES} bytes`);
  }
  return key;
}

function checkSequence(sequence: number): number {
  if (!Number.isSafeInteger(sequence) || sequence < 0) {
    throw new InvalidArgumentError(`sequence must be an integer from 0, got ${String(sequence)}`);
  }
  return sequence;
}

function checkUuid(uuid: Uint8Array | null): Buffer | null {
  if (uuid === null) return null;
  if (!(uuid instanceof Uint8Array) || uuid.byteLength !== UUID_BYTES) {
    throw new InvalidArgumentError(`uuid must be ${UUID_BYTES} bytes or null`);
  }
  return Buffer.from(uuid);
}

/** A fresh random (version 4) UUID as 16 raw bytes (spec 4.3). */
export function randomUuid(): Buffer {
  return Buffer.from(randomUUID().replaceAll("-", ""), "hex");
}
