/**
 * The transport ceilings of ZeroMQ on Node.js: the baselines every pattern's benchmark measures in
 * the same run and reports its figures against. Each ceiling starts its own peer processes
 * (scripts in `./ceiling-peers/`) and a client socket in the benchmark process, over tcp on
 * 127.0.0.1.
 *
 * Two levels: `startX(peers, options)` sets a ceiling up in a {@link withPeers} group and returns
 * a {@link Ceiling} whose runs can be interleaved with the benchmark's own measurements
 * ({@link runInterleaved}); `measureX(settings, options)` does it all, runs it `settings.runs`
 * times and returns the median summary.
 * @module
 */
import { Dealer, Request } from "zeromq";
import { CEILING_HWM } from "./ceiling-peers/shared.js";
import type { CoreCeilings, PipelinedCeiling, RoundTripCeiling } from "./core-results.js";
import {
  type BenchSettings,
  type Measurement,
  type MeasureTiming,
  measurePipelined,
  measureRoundTrip,
  medianRun,
  type RoundTripResult,
  type RunListener,
  runInterleaved,
  summarize,
  type Throughput,
} from "./measure.js";
import { type PeerGroup, withPeers } from "./peers.js";

export { CEILING_HWM } from "./ceiling-peers/shared.js";

/** Requests in flight in the pipelined ceilings unless told otherwise. */
export const CEILING_WINDOW = 1000;

/** Size of every request and reply of the ceilings unless told otherwise. */
export const CEILING_PAYLOAD_BYTES = 10;

/** Options of the ceilings. */
export interface CeilingOptions {
  /**
   * Requests in flight, for the pipelined ceilings (ignored by the round trip). Default
   * {@link CEILING_WINDOW}; use the window of the measurement the ceiling is compared with.
   */
  window?: number;
  /** Size of each request and reply. Default {@link CEILING_PAYLOAD_BYTES}. */
  payloadBytes?: number;
}

/** Options of the `measureX` functions. */
export interface MeasureCeilingOptions extends CeilingOptions {
  /** Called after each run. Default: a progress line on stderr ({@link logRun}). */
  onRun?: RunListener;
}

/**
 * A ceiling set up by a `startX` function: its peers run and its client is connected. Each
 * {@link Ceiling.run} is kept for {@link Ceiling.summary}. Its client closes when the peer group
 * ends (or on {@link Ceiling.close}).
 */
export interface Ceiling<R extends Throughput, S> extends Measurement<R> {
  /** The key of the ceiling in {@link CoreCeilings}. */
  readonly name: keyof CoreCeilings;
  /** What is measured, for tables, e.g. `"DEALER->ROUTER echo, window 1000, 2 processes"`. */
  readonly description: string;
  /** The runs so far, in run order. */
  readonly runs: readonly R[];
  /** The median of the runs so far, with the ceiling's parameters. */
  summary(): S;
  /** Closes the client socket. Idempotent. */
  close(): void;
}

/** A pipelined ceiling: DEALER client, `window` requests in flight. */
export type PipelinedCeilingRun = Ceiling<Throughput, PipelinedCeiling>;

/** The strict round-trip ceiling: REQ client. */
export type RoundTripCeilingRun = Ceiling<RoundTripResult, RoundTripCeiling>;

const PEERS = new URL("./ceiling-peers/", import.meta.url);

const CLIENT_OPTIONS = {
  linger: 0,
  sendHighWaterMark: CEILING_HWM,
  receiveHighWaterMark: CEILING_HWM,
  // A lost reply fails the run instead of hanging it.
  receiveTimeout: 10_000,
};

/**
 * (a) DEALER client -> ROUTER echo server, `window` requests in flight; two processes, one hop.
 */
export async function startDealerRouterEcho(
  peers: PeerGroup,
  options: CeilingOptions = {},
): Promise<PipelinedCeilingRun> {
  const params = pipelineParams(options);
  const echo = await peers.start(new URL("echo-router.ts", PEERS));
  return pipelined(
    peers,
    "dealerRouterEcho",
    `DEALER->ROUTER echo, window ${params.window}, 2 processes`,
    echo.endpoint,
    params,
  );
}

/** (b) REQ client -> REP echo server, one request at a time; two processes. */
export async function startReqRepRoundTrip(
  peers: PeerGroup,
  options: CeilingOptions = {},
): Promise<RoundTripCeilingRun> {
  const rep = await peers.start(new URL("rep-echo.ts", PEERS));
  const payloadBytes = options.payloadBytes ?? CEILING_PAYLOAD_BYTES;
  const payload = Buffer.alloc(payloadBytes, "x");
  const client = new Request(CLIENT_OPTIONS);
  client.connect(rep.endpoint);
  const close = closer(peers, client);
  const runs: RoundTripResult[] = [];
  return {
    name: "reqRepRoundTrip",
    description: "REQ->REP round trip, 2 processes",
    runs,
    async run(timing: MeasureTiming) {
      const result = await measureRoundTrip({
        warmupMs: timing.warmupMs,
        durationMs: timing.durationMs,
        request: async () => {
          await client.send(payload);
          await client.receive();
        },
      });
      runs.push(result);
      return result;
    },
    summary: () => ({
      ...summarize(runs),
      payloadBytes,
      latency: medianRun(runs).latency,
    }),
    close,
  };
}

/**
 * (c) DEALER client -> JavaScript proxy (frontend ROUTER, backend DEALER, a receive/forward loop
 * each way) -> ROUTER echo server, `window` requests in flight; three processes, two hops. The
 * yardstick of a broker written in JavaScript.
 */
export async function startProxyTwoHopEcho(
  peers: PeerGroup,
  options: CeilingOptions = {},
): Promise<PipelinedCeilingRun> {
  const params = pipelineParams(options);
  const echo = await peers.start(new URL("echo-router.ts", PEERS), { name: "proxy-echo-router" });
  const proxy = await peers.start(new URL("proxy.ts", PEERS), { args: [echo.endpoint] });
  return pipelined(
    peers,
    "proxyTwoHopEcho",
    `DEALER->JS ROUTER<->DEALER proxy->ROUTER echo, window ${params.window}, 3 processes`,
    proxy.endpoint,
    params,
  );
}

/** Measures {@link startDealerRouterEcho} `settings.runs` times, in its own peer group. */
export function measureDealerRouterEcho(
  settings: BenchSettings,
  options: MeasureCeilingOptions = {},
): Promise<PipelinedCeiling> {
  return measureAlone(settings, options, startDealerRouterEcho);
}

/** Measures {@link startReqRepRoundTrip} `settings.runs` times, in its own peer group. */
export function measureReqRepRoundTrip(
  settings: BenchSettings,
  options: MeasureCeilingOptions = {},
): Promise<RoundTripCeiling> {
  return measureAlone(settings, options, startReqRepRoundTrip);
}

/** Measures {@link startProxyTwoHopEcho} `settings.runs` times, in its own peer group. */
export function measureProxyTwoHopEcho(
  settings: BenchSettings,
  options: MeasureCeilingOptions = {},
): Promise<PipelinedCeiling> {
  return measureAlone(settings, options, startProxyTwoHopEcho);
}

/**
 * Measures the three ceilings, interleaved, `settings.runs` times each: what core's benchmark
 * stores in `bench/results/core.json`.
 */
export function measureCeilings(
  settings: BenchSettings,
  options: MeasureCeilingOptions = {},
): Promise<CoreCeilings> {
  return withPeers(async (peers) => {
    const [a, b, c] = await Promise.all([
      startDealerRouterEcho(peers, options),
      startReqRepRoundTrip(peers, options),
      startProxyTwoHopEcho(peers, options),
    ]);
    await runInterleaved<Throughput>(settings, [a, b, c], options.onRun);
    return {
      dealerRouterEcho: a.summary(),
      reqRepRoundTrip: b.summary(),
      proxyTwoHopEcho: c.summary(),
    };
  });
}

async function measureAlone<R extends Throughput, S>(
  settings: BenchSettings,
  options: MeasureCeilingOptions,
  start: (peers: PeerGroup, options: CeilingOptions) => Promise<Ceiling<R, S>>,
): Promise<S> {
  return withPeers(async (peers) => {
    const ceiling = await start(peers, options);
    await runInterleaved(settings, [ceiling], options.onRun);
    return ceiling.summary();
  });
}

/** Window and payload size of a pipelined ceiling, checked before any peer starts. */
function pipelineParams(options: CeilingOptions): { window: number; payloadBytes: number } {
  const window = options.window ?? CEILING_WINDOW;
  const payloadBytes = options.payloadBytes ?? CEILING_PAYLOAD_BYTES;
  if (!(Number.isInteger(window) && window >= 1 && window <= CEILING_HWM)) {
    throw new RangeError(`window must be an integer from 1 to ${CEILING_HWM}, got ${window}`);
  }
  return { window, payloadBytes };
}

function pipelined(
  peers: PeerGroup,
  name: "dealerRouterEcho" | "proxyTwoHopEcho",
  description: string,
  endpoint: string,
  { window, payloadBytes }: { window: number; payloadBytes: number },
): PipelinedCeilingRun {
  const payload = Buffer.alloc(payloadBytes, "x");
  const client = new Dealer(CLIENT_OPTIONS);
  client.connect(endpoint);
  const close = closer(peers, client);
  const runs: Throughput[] = [];
  return {
    name,
    description,
    runs,
    async run(timing: MeasureTiming) {
      const result = await measurePipelined({
        window,
        warmupMs: timing.warmupMs,
        durationMs: timing.durationMs,
        send: () => client.send(payload),
        receive: async () => {
          await client.receive();
        },
      });
      runs.push(result);
      return result;
    },
    summary: () => ({ ...summarize(runs), window, payloadBytes }),
    close,
  };
}

/** Closes `socket` once, when called or when the group ends. */
function closer(peers: PeerGroup, socket: { close(): void }): () => void {
  let closed = false;
  const close = (): void => {
    if (closed) return;
    closed = true;
    socket.close();
  };
  peers.defer(close);
  return close;
}
