import { setTimeout as sleep } from "node:timers/promises";

/** How long a measurement warms up and then measures. */
export interface MeasureTiming {
  /** Load applied before counting starts, in milliseconds. */
  warmupMs: number;
  /** Length of the counted part, in milliseconds. */
  durationMs: number;
}

/** Outcome of one measurement. */
export interface Throughput {
  /** Replies received during the counted part. */
  messages: number;
  /** Actual length of the counted part, in seconds. */
  seconds: number;
  /** `messages / seconds`. */
  msgsPerSec: number;
}

/** Latency percentiles, in microseconds. */
export interface LatencyStats {
  /** Number of samples. */
  count: number;
  /** Median. */
  p50Us: number;
  /** 99th percentile. */
  p99Us: number;
  /** Largest sample. */
  maxUs: number;
}

/** Options of {@link measurePipelined}. */
export interface PipelinedOptions extends MeasureTiming {
  /**
   * Sends one request and resolves once the socket accepted it. Called from a single loop,
   * never concurrently (zeromq allows one pending `send()` per socket).
   */
  send: () => Promise<void>;
  /**
   * Receives one reply and resolves once it arrived. Called from a single loop, never
   * concurrently (zeromq allows one pending `receive()` per socket).
   */
  receive: () => Promise<void>;
  /** Most requests in flight at once (sent, reply not yet received). */
  window: number;
  /**
   * How long to wait, once sending stops, for the replies still in flight; a reply missing
   * after that is an error (a lost message). Default 5,000 ms.
   */
  drainTimeoutMs?: number;
}

/**
 * Measures pipelined request/reply throughput: a send loop keeps up to `window` requests in
 * flight while a receive loop counts the replies. Both loops run through the warm-up, the
 * replies received during the following `durationMs` are counted, then sending stops and the
 * replies still in flight are drained, so the sockets can be reused for the next run.
 */
export async function measurePipelined(options: PipelinedOptions): Promise<Throughput> {
  const { send, receive, window, warmupMs, durationMs, drainTimeoutMs = 5000 } = options;
  if (!(window >= 1)) throw new RangeError(`window must be at least 1, got ${window}`);
  let sent = 0;
  let received = 0;
  let sending = true;
  let wakeSender: (() => void) | undefined;
  const wake = (): void => {
    const resolve = wakeSender;
    wakeSender = undefined;
    resolve?.();
  };

  const sendLoop = async (): Promise<void> => {
    while (sending) {
      if (sent - received >= window) {
        await new Promise<void>((resolve) => {
          wakeSender = resolve;
        });
        continue;
      }
      // Counted before the await so the receive loop never stops short of a request being sent.
      sent++;
      await send();
    }
  };
  const receiveLoop = async (): Promise<void> => {
    while (sending || received < sent) {
      await receive();
      received++;
      if (wakeSender !== undefined && sent - received < window) wake();
    }
  };

  const loops = Promise.all([sendLoop(), receiveLoop()]);
  // A receive left pending by a drain timeout rejects later, when its socket closes.
  loops.catch(() => {});
  // `loops` only settles early when a send or receive fails; the race then rethrows.
  await Promise.race([sleep(warmupMs), loops]);
  const startCount = received;
  const startTime = performance.now();
  await Promise.race([sleep(durationMs), loops]);
  const messages = received - startCount;
  const seconds = (performance.now() - startTime) / 1000;
  sending = false;
  wake();
  await withTimeout(
    loops,
    drainTimeoutMs,
    () => `${sent - received} of ${sent} replies still missing ${drainTimeoutMs} ms after the end`,
  );
  return { messages, seconds, msgsPerSec: messages / seconds };
}

/** Options of {@link measureRoundTrip}. */
export interface RoundTripOptions extends MeasureTiming {
  /** Sends one request and resolves once its reply arrived. */
  request: () => Promise<void>;
}

/** Outcome of {@link measureRoundTrip}: throughput plus the latency of each round trip. */
export interface RoundTripResult extends Throughput {
  /** Latency of the round trips during the counted part. */
  latency: LatencyStats;
}

/**
 * Measures strict round trips: one request at a time, each awaited before the next, for
 * `warmupMs` uncounted then `durationMs` counted, recording every round trip's latency.
 */
export async function measureRoundTrip(options: RoundTripOptions): Promise<RoundTripResult> {
  const { request, warmupMs, durationMs } = options;
  const warmEnd = performance.now() + warmupMs;
  while (performance.now() < warmEnd) await request();
  const latency = new LatencyRecorder();
  const startTime = performance.now();
  const end = startTime + durationMs;
  let now = startTime;
  while (now < end) {
    const before = now;
    await request();
    now = performance.now();
    latency.record(now - before);
  }
  const seconds = (now - startTime) / 1000;
  return {
    messages: latency.count,
    seconds,
    msgsPerSec: latency.count / seconds,
    latency: latency.stats(),
  };
}

/** Collects latency samples and reports percentiles. */
export class LatencyRecorder {
  #samples: number[] = [];

  /** Number of samples recorded so far. */
  get count(): number {
    return this.#samples.length;
  }

  /** Records one sample, in milliseconds (as `performance.now()` differences are). */
  record(ms: number): void {
    this.#samples.push(ms);
  }

  /** p50, p99 and max of the samples so far, in microseconds; zeros when there are none. */
  stats(): LatencyStats {
    const sorted = Float64Array.from(this.#samples).sort();
    const at = (q: number): number => {
      if (sorted.length === 0) return 0;
      const index = Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1);
      return round1((sorted[Math.max(0, index)] ?? 0) * 1000);
    };
    return { count: sorted.length, p50Us: at(0.5), p99Us: at(0.99), maxUs: at(1) };
  }
}

/** Median of `values` (mean of the two middle values for an even count); `NaN` when empty. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  if (sorted.length === 0) return Number.NaN;
  if (sorted.length % 2 === 1) return sorted[middle]!;
  return (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Median throughput over repeated runs, with every run kept for the record. */
export interface ThroughputSummary {
  /** Median of the runs' msgs/s. */
  msgsPerSec: number;
  /** Each run's msgs/s, in run order. */
  runs: number[];
}

/** Reduces repeated runs to their median msgs/s, rounded, keeping each run's value. */
export function summarize(runs: readonly Throughput[]): ThroughputSummary {
  const values = runs.map((run) => Math.round(run.msgsPerSec));
  return { msgsPerSec: Math.round(median(values)), runs: values };
}

/**
 * The run whose msgs/s is the median (the lower middle one for an even count), to report its
 * other figures, e.g. its latency.
 */
export function medianRun<T extends Throughput>(runs: readonly T[]): T {
  const sorted = [...runs].sort((a, b) => a.msgsPerSec - b.msgsPerSec);
  const run = sorted[(sorted.length - 1) >> 1];
  if (run === undefined) throw new RangeError("medianRun needs at least one run");
  return run;
}

/** Warm-up, duration and repetitions of a benchmark's measurements. */
export interface BenchSettings extends MeasureTiming {
  /** Times each measurement is repeated; the median is reported. */
  runs: number;
}

/**
 * A benchmark's settings: `defaults`, overridden by the environment variables
 * `BENCH_WARMUP_MS`, `BENCH_DURATION_MS` and `BENCH_RUNS` (e.g. for a quick smoke run).
 */
export function benchSettings(defaults: BenchSettings): BenchSettings {
  const fromEnv = (name: string, fallback: number, min: number): number => {
    const raw = process.env[name];
    if (raw === undefined || raw === "") return fallback;
    const value = Number(raw);
    if (!Number.isFinite(value) || value < min) {
      throw new RangeError(`${name} must be a number >= ${min}, got ${JSON.stringify(raw)}`);
    }
    return value;
  };
  return {
    warmupMs: fromEnv("BENCH_WARMUP_MS", defaults.warmupMs, 0),
    durationMs: fromEnv("BENCH_DURATION_MS", defaults.durationMs, 1),
    runs: Math.round(fromEnv("BENCH_RUNS", defaults.runs, 1)),
  };
}

/** A measurement that can be run repeatedly, e.g. one of the kit's ceilings or a pattern's own. */
export interface Measurement<R extends Throughput = Throughput> {
  /** Name used in progress lines. */
  readonly name: string;
  /** Runs the measurement once. */
  run(timing: MeasureTiming): Promise<R>;
}

/** Called after each run of {@link runInterleaved}, e.g. {@link logRun}. */
export type RunListener = (name: string, run: number, runs: number, result: Throughput) => void;

/**
 * Runs every measurement `settings.runs` times, interleaved (a, b, c, a, b, c, ...) so a slow
 * spell of the machine weighs on all alike, calling `onRun` (default {@link logRun}) after each
 * run. Returns each measurement's runs, in the order of `measurements`.
 */
export async function runInterleaved<R extends Throughput>(
  settings: BenchSettings,
  measurements: readonly Measurement<R>[],
  onRun: RunListener = logRun,
): Promise<R[][]> {
  const results = measurements.map((): R[] => []);
  for (let run = 1; run <= settings.runs; run++) {
    for (const [i, measurement] of measurements.entries()) {
      const result = await measurement.run(settings);
      results[i]!.push(result);
      onRun(measurement.name, run, settings.runs, result);
    }
  }
  return results;
}

/** Prints one progress line on stderr: `  <name> run 2/3: 12,345 msgs/s`. */
export function logRun(name: string, run: number, runs: number, result: Throughput): void {
  const rate = Math.round(result.msgsPerSec).toLocaleString("en-US");
  console.error(`  ${name} run ${run}/${runs}: ${rate} msgs/s`);
}

function round1(value: number): number {
  return Math.round(value * 10) / 10;
}

async function withTimeout<T>(promise: Promise<T>, ms: number, message: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message())), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
