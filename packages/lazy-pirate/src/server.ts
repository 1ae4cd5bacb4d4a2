/**
 * `LazyPirateServer`: a REP server for demos and tests that can simulate crashes and overload.
 * @module
 */
import { EventEmitter } from "node:events";
import {
  type Closeable,
  CloseStack,
  checkEndpoint,
  createLogger,
  FaultSimulator,
  type FaultSimulatorOptions,
  type FrameLike,
  type Logger,
  sleep,
  toFrames,
} from "@zmq-patterns/core";
import { Reply } from "zeromq";

/** The Guide's server endpoint. */
export const DEFAULT_SERVER_BIND = "tcp://*:5555";

/** Computes a reply from a request. */
export type LazyPirateHandler = (
  request: Buffer[],
) => readonly FrameLike[] | Promise<readonly FrameLike[]>;

/** Options of {@link LazyPirateServer}. */
export interface LazyPirateServerOptions {
  /** Endpoint to bind. Default `tcp://*:5555`. */
  bind?: string;
  /** Computes replies. Default: echo the request unchanged, as the Guide's lpserver. */
  handler?: LazyPirateHandler;
  /** Failure injection (crash, overload, work time); a simulator or its options. Default: none. */
  simulate?: FaultSimulator | FaultSimulatorOptions;
  /** Where to log. Default: quiet unless `ZMQ_PATTERNS_DEBUG` enables `lazy-pirate:server`. */
  logger?: Logger;
}

/** Events of {@link LazyPirateServer}. */
export interface LazyPirateServerEvents {
  /** A request arrived; `kind` says what the simulator decided. */
  request: [{ cycle: number; request: Buffer[]; kind: "normal" | "slow" | "crash" }];
  /** The simulator decided to crash: the server stopped without replying. */
  crash: [{ cycle: number }];
}

/**
 * A plain REP server, the counterpart of {@link LazyPirateClient} in demos and tests: it answers
 * requests through a handler (echo by default) and, like the Guide's lpserver, can simulate
 * crashes and overload. A simulated crash closes the socket without replying and emits `crash`;
 * a CLI exits the process there.
 */
export class LazyPirateServer extends EventEmitter<LazyPirateServerEvents> implements Closeable {
  readonly #socket: Reply;
  readonly #stack = new CloseStack();
  readonly #handler: LazyPirateHandler;
  readonly #simulator: FaultSimulator;
  readonly #logger: Logger;
  readonly #bind: string;
  readonly #closing = new AbortController();

  private constructor(options: LazyPirateServerOptions) {
    super();
    this.#bind = checkEndpoint("bind", options.bind ?? DEFAULT_SERVER_BIND);
    this.#handler = options.handler ?? ((request) => request);
    this.#simulator =
      options.simulate instanceof FaultSimulator
        ? options.simulate
        : new FaultSimulator(options.simulate);
    this.#logger = options.logger ?? createLogger("lazy-pirate:server");
    this.#socket = this.#stack.socket(new Reply());
    this.#stack.defer(() => this.#closing.abort());
  }

  /** Binds and starts serving. */
  static async start(options: LazyPirateServerOptions = {}): Promise<LazyPirateServer> {
    const server = new LazyPirateServer(options);
    try {
      await server.#socket.bind(server.#bind);
    } catch (error) {
      await server.close();
      throw error;
    }
    void server.#serve();
    return server;
  }

  /** The bound endpoint, with the real port when bound to `*` or `0`. */
  get endpoint(): string {
    return this.#socket.lastEndpoint ?? this.#bind;
  }

  /** Stops serving and closes the socket (linger 0). Idempotent. */
  close(): Promise<void> {
    return this.#stack.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #serve(): Promise<void> {
    for (;;) {
      let request: Buffer[];
      try {
        request = await this.#socket.receive();
      } catch {
        return; // closed
      }
      const decision = this.#simulator.next();
      this.emit("request", { cycle: decision.cycle, request, kind: decision.kind });
      if (decision.kind === "crash") {
        this.#logger.warn("simulating a crash", { cycle: decision.cycle });
        await this.close();
        this.emit("crash", { cycle: decision.cycle });
        return;
      }
      if (decision.kind === "slow")
        this.#logger.info("simulating CPU overload", { cycle: decision.cycle });
      if (decision.delayMs > 0) {
        try {
          await sleep(decision.delayMs, { signal: this.#closing.signal });
        } catch {
          return; // closed while working
        }
      }
      try {
        const reply = toFrames(await this.#handler(request));
        await this.#socket.send(reply);
      } catch (error) {
        if (this.#stack.closed) return;
        // A handler failure must still answer: a REP socket cannot take the next request otherwise.
        this.#logger.error("handler failed", { error });
        await this.#socket.send([]).catch(() => {});
      }
    }
  }
}
