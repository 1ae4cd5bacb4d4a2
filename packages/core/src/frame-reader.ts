/**
 * `FrameReader`: the cursor every protocol codec decodes with, so that codecs never index raw
 * frames and every rejection names its reason.
 * @module
 */
import { ProtocolError } from "./errors.js";

/**
 * Reads a multipart message front to back, throwing a {@link ProtocolError} that names the
 * missing or malformed part.
 *
 * @example
 * ```ts
 * const r = new FrameReader(frames);
 * r.empty("delimiter");
 * r.expect("header", MDPC01);
 * const service = r.text("service");
 * const body = r.rest();
 * ```
 */
export class FrameReader {
  readonly #frames: readonly Buffer[];
  #index = 0;

  constructor(frames: readonly Buffer[]) {
    this.#frames = frames;
  }

  /** Frames not read yet. */
  get remaining(): number {
    return this.#frames.length - this.#index;
  }

  /** The next frame without consuming it. */
  peek(): Buffer | undefined {
    return this.#frames[this.#index];
  }

  /** The next frame; throws `missing frame: <name>` when there is none. */
  frame(name: string): Buffer {
    const frame = this.#frames[this.#index];
    if (frame === undefined) throw new ProtocolError(`missing frame: ${name}`);
    this.#index += 1;
    return frame;
  }

  /** The next frame, which must be empty. */
  empty(name = "delimiter"): void {
    if (this.frame(name).byteLength !== 0) throw new ProtocolError(`${name} frame is not empty`);
  }

  /** The next frame, which must equal `expected` byte for byte. */
  expect(name: string, expected: Uint8Array): Buffer {
    const frame = this.frame(name);
    if (!frame.equals(expected)) throw new ProtocolError(`unexpected ${name}`);
    return frame;
  }

  /** The next frame, which must hold exactly one byte; returns that byte. */
  byte(name: string): number {
    const frame = this.frame(name);
    if (frame.byteLength !== 1) throw new ProtocolError(`${name} frame is not one byte`);
    return frame[0] as number;
  }

  /** The next frame, which must not be empty. */
  nonEmpty(name: string): Buffer {
    const frame = this.frame(name);
    if (frame.byteLength === 0) throw new ProtocolError(`${name} frame is empty`);
    return frame;
  }

  /** The next frame as UTF-8 text. */
  text(name: string, options: { maxBytes?: number; allowEmpty?: boolean } = {}): string {
    const frame = options.allowEmpty ? this.frame(name) : this.nonEmpty(name);
    if (options.maxBytes !== undefined && frame.byteLength > options.maxBytes) {
      throw new ProtocolError(`${name} frame is longer than ${options.maxBytes} bytes`);
    }
    return frame.toString("utf8");
  }

  /** Every frame not read yet; at least `min` of them (`missing frame: <name>` otherwise). */
  rest(name = "body", min = 0): Buffer[] {
    if (this.remaining < min) throw new ProtocolError(`missing frame: ${name}`);
    const rest = this.#frames.slice(this.#index);
    this.#index = this.#frames.length;
    return rest;
  }

  /** Asserts that every frame was read. */
  end(): void {
    if (this.remaining > 0) throw new ProtocolError(`unexpected ${this.remaining} extra frame(s)`);
  }
}
