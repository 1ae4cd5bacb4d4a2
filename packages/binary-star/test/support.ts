/**
 * What the socket-level Binary Star tests share: bounded event waits, servers on fresh addresses,
 * a fake peer that publishes chosen state frames, a tap on a server's state publisher, voting
 * clients and simple ROUTER servers for the client tests.
 */
import { EventEmitter } from "node:events";
import { type FrameLike, sleep, TimeoutError, toFrames } from "@zmq-patterns/core";
import { allocateAddress, Tap } from "@zmq-patterns/core/testing";
import { Publisher, Router, Subscriber } from "zeromq";
import {
  BinaryStar,
  type BinaryStarClient,
  type BinaryStarClientEvents,
  type BinaryStarEvents,
  type BinaryStarOptions,
  type BinaryStarRole,
} from "../src/index.js";

/** How long a test waits for something that normally takes milliseconds (a loaded machine). */
export const WAIT_MS = 5000;
/** Heartbeat of the servers under test: short, so tests are fast. */
export const HB = 100;
export const E = Buffer.alloc(0);
export const B = (text: string): Buffer => Buffer.from(text);
export const texts = (frames: readonly Buffer[]): string[] => frames.map(String);

const tracked: Array<{ close(): unknown }> = [];

/** Closes `item` after the test (call {@link closeTracked} from `afterEach`). */
export function track<T extends { close(): unknown }>(item: T): T {
  tracked.push(item);
  return item;
}

/** Closes everything {@link track}ed, last first. */
export async function closeTracked(): Promise<void> {
  for (const item of tracked.splice(0).reverse()) await item.close();
}

/** Rejects with a `TimeoutError` naming `what` unless `promise` settles within `timeoutMs`. */
export async function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new TimeoutError(`${what} did not happen within ${timeoutMs} ms`, timeoutMs)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Events of the emitters under test, by emitter type (Node's typings lose payload types). */
type EventsOf<T> = T extends BinaryStar
  ? BinaryStarEvents
  : T extends BinaryStarClient
    ? BinaryStarClientEvents
    : never;
/** The payload of `event` of emitter type `T`. */
type PayloadOf<T, K extends keyof EventsOf<T>> = EventsOf<T>[K] extends [infer P] ? P : never;

/**
 * The first argument of the next `event` of `emitter` that passes `match`. Register it before
 * causing the event.
 */
export function nextEvent<
  T extends BinaryStar | BinaryStarClient,
  K extends keyof EventsOf<T> & string,
>(
  emitter: T,
  event: K,
  match: (payload: PayloadOf<T, K>) => boolean = () => true,
  timeoutMs = WAIT_MS,
): Promise<PayloadOf<T, K>> {
  type P = PayloadOf<T, K>;
  const plain = emitter as unknown as EventEmitter;
  let listener: (payload: P) => void = () => {};
  const seen = new Promise<P>((resolve) => {
    listener = (payload) => {
      if (match(payload)) resolve(payload);
    };
    plain.on(event, listener);
  });
  return within(seen, timeoutMs, `event "${event}"`).finally(() => plain.off(event, listener));
}

/** Every emission of the named events, in order, with the time it happened. */
export interface Recorded {
  event: string;
  payload: unknown;
  at: number;
}

/** Records the named events of `emitter` from now on. */
export function record(emitter: EventEmitter, ...events: string[]): Recorded[] {
  const log: Recorded[] = [];
  for (const event of events) {
    (emitter as unknown as EventEmitter).on(event, (payload: unknown) =>
      log.push({ event, payload, at: performance.now() }),
    );
  }
  return log;
}

/** Waits until `condition()` holds, checking every 10 ms; fails after `timeoutMs`. */
export async function waitFor(
  condition: () => boolean,
  what: string,
  timeoutMs = WAIT_MS,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) {
      throw new TimeoutError(`${what} did not happen within ${timeoutMs} ms`, timeoutMs);
    }
    await sleep(10);
  }
}

function isAddressInUse(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === "EADDRINUSE";
}

/**
 * Runs `bind` until it does not fail with `EADDRINUSE`: a port closed a moment ago is released
 * by ZeroMQ's I/O thread shortly after `close()` returns.
 */
export async function retryWhileInUse<T>(bind: () => Promise<T>, timeoutMs = WAIT_MS): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      return await bind();
    } catch (error) {
      if (!isAddressInUse(error) || performance.now() > deadline) throw error;
      await sleep(20);
    }
  }
}

/** Resolves once a fresh ROUTER can bind `endpoint` (and closes it): nothing holds the port. */
export async function expectBindable(endpoint: string): Promise<void> {
  await retryWhileInUse(async () => {
    const socket = new Router({ linger: 0 });
    try {
      await socket.bind(endpoint);
    } finally {
      socket.close();
    }
  });
}

/** Options of {@link startServer}: those of `BinaryStar.start`, every one optional but the role. */
export type ServerOptions = Partial<BinaryStarOptions> & { role: BinaryStarRole };

/** Echoes each accepted request back to its sender, the Guide's bstarsrv2. */
export const echo: BinaryStarOptions["handler"] = (message, voter) => {
  voter.send(message);
};

/**
 * A server on fresh addresses (unless given), echoing, heartbeating every {@link HB} ms, closed
 * after the test. A fresh `remoteState` nobody binds leaves the server alone.
 */
export async function startServer(options: ServerOptions): Promise<BinaryStar> {
  const full: BinaryStarOptions = {
    handler: echo,
    heartbeatIntervalMs: HB,
    ...options,
    voter: options.voter ?? (await allocateAddress()),
    localState: options.localState ?? (await allocateAddress()),
    remoteState: options.remoteState ?? (await allocateAddress()),
  };
  // A restarted server binds the ports its predecessor just closed.
  return track(await retryWhileInUse(() => BinaryStar.start(full)));
}

/** The endpoints of a pair, so a test can restart either server where it was. */
export interface PairEndpoints {
  primary: { voter: string; localState: string; remoteState: string };
  backup: { voter: string; localState: string; remoteState: string };
}

export async function pairEndpoints(): Promise<PairEndpoints> {
  const [pVoter, pState, bVoter, bState] = [
    await allocateAddress(),
    await allocateAddress(),
    await allocateAddress(),
    await allocateAddress(),
  ];
  return {
    primary: { voter: pVoter, localState: pState, remoteState: bState },
    backup: { voter: bVoter, localState: bState, remoteState: pState },
  };
}

/**
 * Starts a pair (in the given order, the second once the first has sent two heartbeats alone)
 * and waits until the primary is ACTIVE and the backup PASSIVE.
 */
export async function startPair(
  options: Partial<BinaryStarOptions> & { first?: BinaryStarRole } = {},
): Promise<{ primary: BinaryStar; backup: BinaryStar; endpoints: PairEndpoints }> {
  const { first = "primary", ...rest } = options;
  const endpoints = await pairEndpoints();
  const second: BinaryStarRole = first === "primary" ? "backup" : "primary";
  const a = await startServer({ ...rest, role: first, ...endpoints[first] });
  await waitFor(() => a.stats().stateMessagesSent >= 2, `${first} heartbeats`);
  const b = await startServer({ ...rest, role: second, ...endpoints[second] });
  const [primary, backup] = first === "primary" ? [a, b] : [b, a];
  await waitFor(
    () => primary.state === "ACTIVE" && backup.state === "PASSIVE",
    "the pair settling as ACTIVE/PASSIVE",
  );
  return { primary, backup, endpoints };
}

/**
 * A DEALER talking to a voter the way a REQ client does (`["", body]`), closed after the test.
 */
export async function voterClient(endpoint: string, routingId?: string): Promise<Tap> {
  return track(await Tap.dealer(endpoint, routingId === undefined ? {} : { routingId }));
}

/** Sends request `sequence` the way a REQ client frames it. */
export function vote(client: Tap, sequence: number | string): Promise<void> {
  return client.send([E, String(sequence)]);
}

/** The body of the next reply a {@link voterClient} gets. */
export async function nextReply(client: Tap, timeoutMs = WAIT_MS): Promise<string> {
  const frames = await client.receive(timeoutMs);
  if (frames.length !== 2 || frames[0]?.byteLength !== 0) {
    throw new Error(`not a reply to a REQ-style request: ${JSON.stringify(texts(frames))}`);
  }
  return String(frames[1]);
}

/**
 * Sends numbered votes every `everyMs` (1, 2, 3, ...) until one is answered; returns the number
 * of the first answered vote, how many were sent up to it, the last one sent (the ones after the
 * answered one were answered too, and their replies read), and when the answer came. Replies
 * come in order, so every vote before the answered one was dropped.
 */
export async function voteUntilAnswered(
  client: Tap,
  options: { everyMs?: number; timeoutMs?: number; first?: number } = {},
): Promise<{ answered: number; sent: number; last: number; at: number }> {
  const { everyMs = 50, timeoutMs = WAIT_MS, first = 1 } = options;
  const deadline = performance.now() + timeoutMs;
  for (let sequence = first; ; sequence++) {
    if (performance.now() > deadline) {
      throw new TimeoutError(`no vote answered within ${timeoutMs} ms`, timeoutMs);
    }
    await vote(client, sequence);
    let body: string;
    try {
      body = await nextReply(client, everyMs);
    } catch (error) {
      if (!(error instanceof TimeoutError)) throw error;
      continue;
    }
    const at = performance.now();
    const answered = Number(body);
    // On a loaded machine the answer may be to an earlier vote than the last one sent. The server
    // is active now, so the votes sent after it are answered too: read those replies here, or a
    // later read would take them for its own.
    for (let later = answered + 1; later <= sequence; later++) {
      const reply = await nextReply(client);
      if (reply !== String(later)) throw new Error(`reply ${reply} where ${later} was due`);
    }
    return { answered, sent: answered - first + 1, last: sequence, at };
  }
}

/**
 * A stand-in for the other server of a pair: a PUB socket the server under test subscribes to,
 * publishing chosen frames (state digits or garbage) in a loop.
 */
export class FakePeer {
  readonly endpoint: string;
  readonly #socket: Publisher;
  #loop: { stopped: boolean; done: Promise<void> } | undefined;

  private constructor(socket: Publisher, endpoint: string) {
    this.#socket = socket;
    this.endpoint = endpoint;
  }

  static async start(): Promise<FakePeer> {
    const socket = new Publisher({ linger: 0 });
    const endpoint = await allocateAddress();
    await socket.bind(endpoint);
    return track(new FakePeer(socket, endpoint));
  }

  /**
   * Publishes `messages` in turn, one every `everyMs` (the subscription may take a moment to
   * arrive, and a real peer repeats itself too), until the next `announce` or `stop`. Messages
   * already sent are delivered before any of the new ones.
   */
  async announce(
    messages: ReadonlyArray<string | readonly FrameLike[]>,
    everyMs = 30,
  ): Promise<void> {
    await this.stop();
    const frames = messages.map((message) =>
      toFrames(typeof message === "string" ? [message] : message),
    );
    const loop = { stopped: false, done: Promise.resolve() };
    loop.done = (async () => {
      for (let i = 0; !loop.stopped && !this.#socket.closed; i++) {
        await this.#socket.send(frames[i % frames.length] as Buffer[]);
        await sleep(everyMs);
      }
    })().catch(() => {}); // closed meanwhile
    this.#loop = loop;
  }

  /** Stops publishing; resolves once the last message is handed to the socket. */
  async stop(): Promise<void> {
    const loop = this.#loop;
    this.#loop = undefined;
    if (!loop) return;
    loop.stopped = true;
    await loop.done;
  }

  async close(): Promise<void> {
    await this.stop();
    this.#socket.close();
  }
}

/** A SUB socket on a server's state publisher, to check what goes on the wire. */
export class StateTap {
  readonly #socket: Subscriber;

  private constructor(socket: Subscriber) {
    this.#socket = socket;
  }

  static connect(endpoint: string): StateTap {
    const socket = new Subscriber({ linger: 0 });
    socket.subscribe();
    socket.connect(endpoint);
    return track(new StateTap(socket));
  }

  /** The next message, every frame. */
  async next(timeoutMs = WAIT_MS): Promise<Buffer[]> {
    this.#socket.receiveTimeout = timeoutMs;
    try {
      return await this.#socket.receive();
    } catch (error) {
      if ((error as { code?: unknown }).code === "EAGAIN") {
        throw new TimeoutError(`no state message within ${timeoutMs} ms`, timeoutMs);
      }
      throw error;
    }
  }

  /** Reads messages until one is exactly `[digit]`; returns every message read, that one last. */
  async until(digit: string, timeoutMs = WAIT_MS): Promise<Buffer[][]> {
    const seen: Buffer[][] = [];
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const frames = await this.next(Math.max(1, deadline - performance.now()));
      seen.push(frames);
      if (frames.length === 1 && String(frames[0]) === digit) return seen;
    }
  }

  close(): void {
    if (!this.#socket.closed) this.#socket.close();
  }
}

/** What a {@link RouterServer} does with a request body: reply with frames, or stay silent. */
export type RouterBehaviour = "echo" | "silent" | ((body: Buffer[]) => Buffer[] | null);

/**
 * A minimal REQ-compatible server for client tests: a bound ROUTER that answers each request
 * `[id, "", body...]` according to `behaviour` (changeable at any time), after `delayMs`.
 * Emits `request` with `{ body, at }` as each arrives.
 */
export class RouterServer extends EventEmitter<{ request: [{ body: Buffer[]; at: number }] }> {
  readonly endpoint: string;
  behaviour: RouterBehaviour;
  delayMs = 0;
  readonly requests: Array<{ body: Buffer[]; at: number }> = [];
  /** Requests received and not yet answered (or dropped), and the most there ever were. */
  outstanding = 0;
  maxOutstanding = 0;
  readonly #socket: Router;

  private constructor(socket: Router, endpoint: string, behaviour: RouterBehaviour) {
    super();
    this.#socket = socket;
    this.endpoint = endpoint;
    this.behaviour = behaviour;
    void this.#serve();
  }

  static async start(behaviour: RouterBehaviour = "echo"): Promise<RouterServer> {
    const socket = new Router({ linger: 0 });
    const endpoint = await allocateAddress();
    await socket.bind(endpoint);
    return track(new RouterServer(socket, endpoint, behaviour));
  }

  /** An address nobody listens on: a server that is down. */
  static async down(): Promise<string> {
    return allocateAddress();
  }

  async #serve(): Promise<void> {
    for (;;) {
      let message: Buffer[];
      try {
        message = await this.#socket.receive();
      } catch {
        return; // closed
      }
      const [id, , ...body] = message;
      const request = { body, at: performance.now() };
      this.requests.push(request);
      this.outstanding += 1;
      this.maxOutstanding = Math.max(this.maxOutstanding, this.outstanding);
      this.emit("request", request);
      void this.#answer(id as Buffer, body);
    }
  }

  async #answer(id: Buffer, body: Buffer[]): Promise<void> {
    if (this.delayMs > 0) await sleep(this.delayMs);
    const behaviour = this.behaviour;
    const reply = behaviour === "echo" ? body : behaviour === "silent" ? null : behaviour(body);
    this.outstanding -= 1;
    if (reply === null || this.#socket.closed) return;
    await this.#socket.send([id, E, ...reply]).catch(() => {});
  }

  close(): void {
    if (!this.#socket.closed) this.#socket.close();
  }
}
