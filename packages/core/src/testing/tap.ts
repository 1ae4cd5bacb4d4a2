/**
 * `Tap`: a raw ROUTER or DEALER peer that sends and receives exact frames, so tests can assert
 * what a pattern puts on the wire and feed it malformed messages.
 * @module
 */
import { Dealer, Router } from "zeromq";
import { ClosedError, InvalidArgumentError, TimeoutError } from "../errors.js";
import { type FrameLike, formatFrame, toFrames } from "../frame.js";
import { allocateAddress } from "./addresses.js";

/** Default time {@link Tap.receive} and {@link Tap.send} wait. */
const DEFAULT_TIMEOUT_MS = 2_000;

/** Options of {@link Tap.router} and {@link Tap.bindDealer}. */
export interface TapBindOptions {
  /** Endpoint to bind. Default: a fresh `tcp://127.0.0.1` address from `allocateAddress()`. */
  bind?: string;
  /** The socket's own routing id, as a ROUTER peer will see it. */
  routingId?: string | Buffer;
}

/** Options of {@link Tap.dealer}. */
export interface TapDealerOptions {
  /** The DEALER's routing id, as the ROUTER it connects to will see it. */
  routingId?: string | Buffer;
}

/** Options of {@link Tap.connectRouter}. */
export interface TapConnectRouterOptions {
  /** The ROUTER's own routing id, as the ROUTER it connects to will see it. */
  routingId?: string | Buffer;
  /** The routing id this tap gives the peer (`ZMQ_CONNECT_ROUTING_ID`), to address it at once. */
  peerId?: string;
  /**
   * How long to wait for the connection handshake, because a ROUTER silently drops messages to a
   * peer it does not know yet. Default 5,000 ms.
   */
  timeoutMs?: number;
}

/**
 * Thrown by {@link Tap.expectNothing} when a message arrives; carries the message, which the
 * tap consumed.
 */
export class UnexpectedMessageError extends Error {
  /** The message that arrived. */
  readonly frames: Buffer[];

  constructor(message: string, frames: Buffer[]) {
    super(message);
    this.name = "UnexpectedMessageError";
    this.frames = frames;
  }
}

/**
 * A raw socket for assertions on exact frames. Every socket has linger 0, so closing never
 * blocks on undelivered messages.
 */
export class Tap<S extends Router | Dealer = Router | Dealer> implements AsyncDisposable {
  /** The raw zeromq socket, for options the tap does not cover. */
  readonly socket: S;
  /** The endpoint the tap bound (with the real port) or connected to. */
  readonly endpoint: string;

  private constructor(socket: S, endpoint: string) {
    this.socket = socket;
    this.endpoint = endpoint;
  }

  /** A bound ROUTER, which prefixes every received message with the sender's routing id. */
  static async router(options: TapBindOptions = {}): Promise<Tap<Router>> {
    return Tap.#bind(new Router({ linger: 0 }), options);
  }

  /** A bound DEALER, for patterns whose clients connect a ROUTER or DEALER to a server. */
  static async bindDealer(options: TapBindOptions = {}): Promise<Tap<Dealer>> {
    return Tap.#bind(new Dealer({ linger: 0 }), options);
  }

  /** A DEALER connected to `endpoint`; messages queue until the connection is up. */
  static async dealer(endpoint: string, options: TapDealerOptions = {}): Promise<Tap<Dealer>> {
    const socket = new Dealer({ linger: 0 });
    try {
      setRoutingId(socket, options.routingId);
      socket.connect(endpoint);
    } catch (err) {
      socket.close();
      throw err;
    }
    return new Tap(socket, endpoint);
  }

  /**
   * A ROUTER connected to `endpoint`, resolved once the handshake with the peer is done so the
   * first message sent to it is not dropped.
   */
  static async connectRouter(
    endpoint: string,
    options: TapConnectRouterOptions = {},
  ): Promise<Tap<Router>> {
    const timeoutMs = options.timeoutMs ?? 5_000;
    const socket = new Router({ linger: 0 });
    try {
      setRoutingId(socket, options.routingId);
      // Observing starts before connecting, so the handshake event cannot be missed.
      const events = socket.events;
      socket.connect(endpoint, options.peerId === undefined ? {} : { routingId: options.peerId });
      await new Promise<void>((resolve, reject) => {
        const onHandshake = (): void => {
          clearTimeout(timer);
          events.off("handshake", onHandshake);
          resolve();
        };
        const timer = setTimeout(() => {
          events.off("handshake", onHandshake);
          reject(
            new TimeoutError(`no handshake with ${endpoint} within ${timeoutMs} ms`, timeoutMs),
          );
        }, timeoutMs);
        events.on("handshake", onHandshake);
      });
    } catch (err) {
      socket.close();
      throw err;
    }
    return new Tap(socket, endpoint);
  }

  static async #bind<T extends Router | Dealer>(
    socket: T,
    options: TapBindOptions,
  ): Promise<Tap<T>> {
    try {
      setRoutingId(socket, options.routingId);
      const address = options.bind ?? (await allocateAddress("tcp"));
      await socket.bind(address);
      return new Tap(socket, socket.lastEndpoint ?? address);
    } catch (err) {
      socket.close();
      throw err;
    }
  }

  /** True once {@link Tap.close} ran. */
  get closed(): boolean {
    return this.socket.closed;
  }

  /**
   * Sends one multipart message exactly as given (a ROUTER's first frame is the routing id).
   * Rejects with a `TimeoutError` when it cannot be queued within `timeoutMs` (a bound DEALER
   * nobody connected to, or a full queue), and with a `ClosedError` after {@link Tap.close}.
   */
  async send(frames: readonly FrameLike[], timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
    if (frames.length === 0) throw new InvalidArgumentError("a message needs at least one frame");
    this.#checkOpen();
    this.socket.sendTimeout = timeoutMs;
    try {
      await this.socket.send(toFrames(frames));
    } catch (err) {
      this.#checkOpen(err);
      if (isCode(err, "EAGAIN")) {
        throw new TimeoutError(
          `${this.#kind()} tap could not send within ${timeoutMs} ms`,
          timeoutMs,
          {
            cause: err,
          },
        );
      }
      throw err;
    }
  }

  /**
   * The next message, every frame as a `Buffer` (a ROUTER's first frame is the sender's routing
   * id). Rejects with a `TimeoutError` (code `"TIMEOUT"`) when none arrives within `timeoutMs`;
   * no message is lost by the timeout.
   */
  async receive(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Buffer[]> {
    this.#checkOpen();
    this.socket.receiveTimeout = timeoutMs;
    try {
      return await this.socket.receive();
    } catch (err) {
      this.#checkOpen(err);
      if (isCode(err, "EAGAIN")) {
        throw new TimeoutError(
          `${this.#kind()} tap received nothing within ${timeoutMs} ms`,
          timeoutMs,
          { cause: err },
        );
      }
      throw err;
    }
  }

  /**
   * Resolves when no message arrives within `withinMs`, and rejects with an
   * {@link UnexpectedMessageError} carrying the message otherwise. It is the one assertion that
   * has to wait out a fixed window, since absence cannot be signalled: keep the window short.
   */
  async expectNothing(withinMs = 100): Promise<void> {
    let frames: Buffer[];
    try {
      frames = await this.receive(withinMs);
    } catch (err) {
      if (err instanceof TimeoutError) return;
      throw err;
    }
    const shown = frames.map((frame) => `  ${formatFrame(frame)}`).join("\n");
    throw new UnexpectedMessageError(
      `expected no message within ${withinMs} ms, got ${frames.length} frame(s):\n${shown}`,
      frames,
    );
  }

  /** Closes the socket at once, dropping anything unsent; calling it again does nothing. */
  close(): void {
    if (!this.socket.closed) this.socket.close();
  }

  /** Closes the tap, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  /** Throws a `ClosedError`, because zeromq fails a pending call on a closed socket with EAGAIN. */
  #checkOpen(cause?: unknown): void {
    if (this.socket.closed) {
      throw new ClosedError(
        `the ${this.#kind()} tap is closed`,
        cause === undefined ? undefined : { cause },
      );
    }
  }

  #kind(): string {
    return this.socket instanceof Router ? "ROUTER" : "DEALER";
  }
}

function setRoutingId(socket: Router | Dealer, routingId: string | Buffer | undefined): void {
  if (routingId === undefined) return;
  const bytes = typeof routingId === "string" ? Buffer.byteLength(routingId) : routingId.length;
  if (bytes === 0 || bytes > 255) {
    throw new InvalidArgumentError("routingId must be 1 to 255 bytes long");
  }
  // zeromq types the option as a string, but the binding sets a Buffer byte for byte.
  socket.routingId = routingId as unknown as string;
}

function isCode(err: unknown, code: string): boolean {
  return typeof err === "object" && err !== null && (err as { code?: unknown }).code === code;
}
