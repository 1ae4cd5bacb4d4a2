/**
 * What the Freelance tests share: cleanup, event waits with deadlines, in-process servers on
 * fresh addresses, and a raw 10/FLP server whose every answer the test decides.
 */
import { EventEmitter } from "node:events";
import { allocateAddress } from "@zmq-patterns/core/testing";
import { Router } from "zeromq";
import {
  FreelanceClient,
  type FreelanceClientOptions,
  FreelanceServer,
  type FreelanceServerOptions,
} from "../src/index.js";

export const E = Buffer.alloc(0);
export const t = (text: string): Buffer => Buffer.from(text);
export const str = (frames: readonly Buffer[]): string[] => frames.map((frame) => String(frame));

/** Things to close after each test, last opened first. */
const opened: Array<{ close(): unknown }> = [];

/** Registers `item` to be closed by {@link closeAll}. */
export function track<T extends { close(): unknown }>(item: T): T {
  opened.push(item);
  return item;
}

/** Closes everything {@link track}ed, for `afterEach`. */
export async function closeAll(): Promise<void> {
  for (const item of opened.splice(0).reverse()) await item.close();
}

/** A FreelanceServer on a fresh loopback address (closed after the test). */
export async function startServer(
  options: Omit<FreelanceServerOptions, "bind"> & { bind?: string },
): Promise<FreelanceServer> {
  const bind = options.bind ?? (await allocateAddress());
  return track(await FreelanceServer.start({ ...options, bind }));
}

/** A FreelanceClient closed after the test. */
export function startClient(options: FreelanceClientOptions): FreelanceClient {
  return track(new FreelanceClient(options));
}

/**
 * The next `event` of `emitter` whose payload passes `match`, or a rejection after `timeoutMs`.
 * Register it before causing the event.
 */
export function nextEvent<T = unknown>(
  emitter: EventEmitter | { on(...args: never[]): unknown },
  event: string,
  match: (payload: T) => boolean = () => true,
  timeoutMs = 5000,
): Promise<T> {
  const target = emitter as EventEmitter;
  return new Promise<T>((resolve, reject) => {
    const listener = (payload: T): void => {
      if (!match(payload)) return;
      clearTimeout(timer);
      target.off(event, listener);
      resolve(payload);
    };
    const timer = setTimeout(() => {
      target.off(event, listener);
      reject(new Error(`no "${event}" event within ${timeoutMs} ms`));
    }, timeoutMs);
    target.on(event, listener);
  });
}

/** Resolves once `predicate` holds, checked after each `event` of `emitter`. */
export function until(
  emitter: EventEmitter | { on(...args: never[]): unknown },
  event: string,
  predicate: () => boolean,
  timeoutMs = 5000,
): Promise<void> {
  if (predicate()) return Promise.resolve();
  return nextEvent(emitter, event, () => predicate(), timeoutMs).then(() => undefined);
}

/** Every payload of `event` from now on, in order. */
export function record<T>(
  emitter: EventEmitter | { on(...args: never[]): unknown },
  event: string,
): T[] {
  const payloads: T[] = [];
  (emitter as EventEmitter).on(event, (payload: T) => payloads.push(payload));
  return payloads;
}

/** `promise`, or a rejection naming `what` after `timeoutMs`. */
export async function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what}: not done within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The error a promise rejects with (fails the test when it resolves). */
export async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    const value = await promise;
    throw new Error(`expected a rejection, got ${JSON.stringify(value)}`);
  } catch (error) {
    return error;
  }
}

/** A promise the test resolves by hand. */
export function deferred<T = void>(): {
  promise: Promise<T>;
  resolve: (value: T) => void;
} {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** A message a {@link RawFlpServer} received from a client. */
export interface RawMessage {
  /** The client's routing id (to answer it). */
  client: Buffer;
  /** The frames after the routing id. */
  frames: Buffer[];
  /** `performance.now()` on arrival. */
  at: number;
}

interface RawFlpServerEvents {
  ping: [RawMessage];
  request: [RawMessage];
}

/**
 * A 10/FLP server on a raw ROUTER whose identity is its endpoint (or `identity`), so a test can
 * answer pings or not, answer requests late, twice, or with garbage. Every message is recorded.
 */
export class RawFlpServer extends EventEmitter<RawFlpServerEvents> {
  readonly endpoint: string;
  readonly socket: Router;
  /** Every PING received. */
  readonly pings: RawMessage[] = [];
  /** Every other message received. */
  readonly requests: RawMessage[] = [];
  /** Answer pings with PONG (switchable at any time). */
  answerPings: boolean;
  /** Answer requests with `[control]["OK"]` at once (switchable at any time). */
  answerRequests: boolean;

  private constructor(
    endpoint: string,
    socket: Router,
    options: { answerPings: boolean; answerRequests: boolean },
  ) {
    super();
    this.endpoint = endpoint;
    this.socket = socket;
    this.answerPings = options.answerPings;
    this.answerRequests = options.answerRequests;
    void this.#serve();
  }

  static async start(
    options: {
      endpoint?: string;
      identity?: string;
      answerPings?: boolean;
      answerRequests?: boolean;
    } = {},
  ): Promise<RawFlpServer> {
    const endpoint = options.endpoint ?? (await allocateAddress());
    const socket = new Router({ linger: 0, routingId: options.identity ?? endpoint });
    try {
      await socket.bind(endpoint);
    } catch (error) {
      socket.close();
      throw error;
    }
    return track(
      new RawFlpServer(endpoint, socket, {
        answerPings: options.answerPings ?? true,
        answerRequests: options.answerRequests ?? false,
      }),
    );
  }

  /** Sends `[client][frames...]` (a ROUTER without mandatory never blocks). */
  async send(client: Buffer, frames: readonly (Buffer | string)[]): Promise<void> {
    await this.socket.send([client, ...frames.map((f) => (typeof f === "string" ? t(f) : f))]);
  }

  /** Requests whose control frame is `control`. */
  copiesOf(control: string): RawMessage[] {
    return this.requests.filter((m) => String(m.frames[0]) === control);
  }

  close(): void {
    if (!this.socket.closed) this.socket.close();
  }

  async #serve(): Promise<void> {
    for (;;) {
      let frames: Buffer[];
      try {
        frames = await this.socket.receive();
      } catch {
        return;
      }
      const [client, ...rest] = frames as [Buffer, ...Buffer[]];
      const message: RawMessage = { client, frames: rest, at: performance.now() };
      const ping = rest.length === 1 && String(rest[0]) === "PING";
      (ping ? this.pings : this.requests).push(message);
      try {
        if (ping && this.answerPings) await this.send(client, ["PONG"]);
        if (!ping && this.answerRequests) await this.send(client, [rest[0] ?? E, "OK"]);
      } catch {
        return; // closed meanwhile
      }
      this.emit(ping ? "ping" : "request", message);
    }
  }
}

/** A logged line. */
export interface LogLine {
  level: "debug" | "info" | "warn" | "error";
  message: string;
  fields: Record<string, unknown> | undefined;
}

/** A logger that keeps its lines and emits each as a `line` event, so tests can wait on them. */
export class RecordingLogger extends EventEmitter<{ line: [LogLine] }> {
  readonly lines: LogLine[] = [];
  readonly debug = (message: string, fields?: Record<string, unknown>) =>
    this.#log("debug", message, fields);
  readonly info = (message: string, fields?: Record<string, unknown>) =>
    this.#log("info", message, fields);
  readonly warn = (message: string, fields?: Record<string, unknown>) =>
    this.#log("warn", message, fields);
  readonly error = (message: string, fields?: Record<string, unknown>) =>
    this.#log("error", message, fields);

  /** Lines whose message is `message`. */
  count(message: string): number {
    return this.lines.filter((line) => line.message === message).length;
  }

  /** Resolves once `count` lines with `message` were logged. */
  waitFor(message: string, count = 1, timeoutMs = 5000): Promise<void> {
    return until(this, "line", () => this.count(message) >= count, timeoutMs);
  }

  #log(level: LogLine["level"], message: string, fields: Record<string, unknown> | undefined) {
    const line = { level, message, fields };
    this.lines.push(line);
    this.emit("line", line);
  }
}

/** Counts calls and lets a test wait for the n-th one. */
export class CallCounter extends EventEmitter<{ call: [number] }> {
  calls = 0;

  hit(): void {
    this.calls += 1;
    this.emit("call", this.calls);
  }

  /** Resolves once `n` calls happened. */
  reached(n: number, timeoutMs = 5000): Promise<void> {
    return until(this, "call", () => this.calls >= n, timeoutMs);
  }
}
