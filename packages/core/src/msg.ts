/**
 * `Msg`, the zmsg of the Guide: a multipart message as an ordered list of `Buffer` frames.
 * @module
 */
import { ProtocolError } from "./errors.js";
import { type FrameLike, formatFrame, toFrame, toFrames } from "./frame.js";

/**
 * A multipart message: an ordered list of `Buffer` frames with the verbs of CZMQ's zmsg
 * (`push`/`pop` at the front, `append` at the end).
 *
 * Frames are held by reference: building a `Msg` from `Buffer`s copies no bytes, and
 * {@link Msg.frames} can be handed straight to a zeromq.js `send()`.
 *
 * @example
 * ```ts
 * const msg = new Msg(["MDPC01", "echo", "hello"]);
 * msg.push(""); // [""]["MDPC01"]["echo"]["hello"]
 * console.log(msg.dump());
 * ```
 */
export class Msg implements Iterable<Buffer> {
  readonly #frames: Buffer[];

  /** Builds a message from frames; strings are encoded as UTF-8. */
  constructor(frames: Iterable<FrameLike> = []) {
    this.#frames = toFrames(frames);
  }

  /** Builds a message from one frame or a list of frames. */
  static from(frames: FrameLike | Iterable<FrameLike>): Msg {
    if (typeof frames === "string" || frames instanceof Uint8Array) return new Msg([frames]);
    return new Msg(frames);
  }

  /** A one-frame message holding `value` as JSON. */
  static fromJSON(value: unknown): Msg {
    return new Msg([JSON.stringify(value)]);
  }

  /** The frames, in order. The array is the message's own: use {@link Msg.clone} to keep a copy. */
  get frames(): Buffer[] {
    return this.#frames;
  }

  /** Number of frames. */
  get size(): number {
    return this.#frames.length;
  }

  /** Total number of bytes over all frames. */
  get contentSize(): number {
    let total = 0;
    for (const frame of this.#frames) total += frame.byteLength;
    return total;
  }

  /** Adds a frame at the front. */
  push(frame: FrameLike): this {
    this.#frames.unshift(toFrame(frame));
    return this;
  }

  /** Removes and returns the first frame, or `undefined` when the message is empty. */
  pop(): Buffer | undefined {
    return this.#frames.shift();
  }

  /** Adds frames at the end. */
  append(...frames: FrameLike[]): this {
    for (const frame of frames) this.#frames.push(toFrame(frame));
    return this;
  }

  /** The first frame, or `undefined`. */
  first(): Buffer | undefined {
    return this.#frames[0];
  }

  /** The last frame, or `undefined`. */
  last(): Buffer | undefined {
    return this.#frames[this.#frames.length - 1];
  }

  /** The frame at `index` (negative counts from the end), or `undefined`. */
  at(index: number): Buffer | undefined {
    return this.#frames.at(index);
  }

  /** Removes and returns the first frame as text; `undefined` when the message is empty. */
  popText(encoding: BufferEncoding = "utf8"): string | undefined {
    return this.pop()?.toString(encoding);
  }

  /** The frame at `index` as text (UTF-8 by default); `undefined` when there is no such frame. */
  text(index = 0, encoding: BufferEncoding = "utf8"): string | undefined {
    return this.at(index)?.toString(encoding);
  }

  /** Every frame as text. */
  texts(encoding: BufferEncoding = "utf8"): string[] {
    return this.#frames.map((frame) => frame.toString(encoding));
  }

  /**
   * Parses the frame at `index` as JSON.
   * @throws {@link ProtocolError} when the frame is missing or is not valid JSON.
   */
  json<T = unknown>(index = 0): T {
    const frame = this.at(index);
    if (frame === undefined) throw new ProtocolError(`missing frame ${index} for JSON`);
    try {
      return JSON.parse(frame.toString("utf8")) as T;
    } catch (err) {
      throw new ProtocolError(`frame ${index} is not valid JSON`, { cause: err });
    }
  }

  /** True when both messages have the same frames with the same bytes. */
  equals(other: Msg | readonly Uint8Array[]): boolean {
    const frames = other instanceof Msg ? other.frames : other;
    if (frames.length !== this.#frames.length) return false;
    return this.#frames.every((frame, i) => frame.equals(frames[i] as Uint8Array));
  }

  /** A new message with copies of every frame. */
  clone(): Msg {
    return new Msg(this.#frames.map((frame) => Buffer.from(frame)));
  }

  /**
   * A readable listing of the frames, one per line: `[size] text` when printable, hex otherwise.
   * Frames longer than `maxBytes` are cut and end with `...`.
   */
  dump(maxBytes = 64): string {
    const lines = this.#frames.map((frame) => formatFrame(frame, maxBytes));
    return ["----------------------------------------", ...lines].join("\n");
  }

  /** Iterates over the frames. */
  [Symbol.iterator](): Iterator<Buffer> {
    return this.#frames[Symbol.iterator]();
  }

  /** A one-line summary for logs: the frames formatted and joined. */
  toString(): string {
    return this.#frames.map((frame) => formatFrame(frame, 32)).join(" ");
  }
}
