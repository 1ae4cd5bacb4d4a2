/**
 * `FaultSimulator`: the Guide's failure injection for demo servers and workers.
 * @module
 */
import { InvalidArgumentError } from "./errors.js";
import { checkDuration, checkInteger } from "./options.js";

/** Options of {@link FaultSimulator}; all off by default. */
export interface FaultSimulatorOptions {
  /** Requests handled normally before faults may start (the Guide: 3). Default 0. */
  crashAfter?: number;
  /** Chance, per request once past `crashAfter`, of crashing (the Guide's servers: 1/3 or 1/5). */
  crashProbability?: number;
  /** Chance, per request once past `crashAfter`, of being slow (overload). */
  slowProbability?: number;
  /** Extra time a slow request takes. Default 3,000 ms. */
  slowMs?: number;
  /** Time every request takes (the Guide's servers: 1,000 ms). Default 0. */
  workMs?: number;
  /** Random source in [0, 1). Default `Math.random`. */
  random?: () => number;
}

/** What the simulator decided for one request. */
export interface FaultDecision {
  /** `crash`: stop abruptly; `slow`: take `delayMs`; `normal`: take `delayMs` (the work time). */
  kind: "normal" | "slow" | "crash";
  /** How long to take before replying. */
  delayMs: number;
  /** 1-based count of requests seen. */
  cycle: number;
}

/**
 * Decides, request by request, whether a demo server or worker behaves, is slow, or crashes, as
 * the Guide's lpserver, spworker and ppworker do. The caller carries out the decision.
 */
export class FaultSimulator {
  readonly #options: Required<Omit<FaultSimulatorOptions, "random">> & { random: () => number };
  #cycle = 0;

  constructor(options: FaultSimulatorOptions = {}) {
    const probability = (name: string, value: number | undefined) => {
      const p = value ?? 0;
      if (!(p >= 0 && p <= 1))
        throw new InvalidArgumentError(`${name} must be from 0 to 1, got ${String(value)}`);
      return p;
    };
    this.#options = {
      crashAfter: checkInteger("crashAfter", options.crashAfter ?? 0, 0),
      crashProbability: probability("crashProbability", options.crashProbability),
      slowProbability: probability("slowProbability", options.slowProbability),
      slowMs: checkDuration("slowMs", options.slowMs ?? 3000, 0),
      workMs: checkDuration("workMs", options.workMs ?? 0, 0),
      random: options.random ?? Math.random,
    };
  }

  /** True when any fault can happen. */
  get enabled(): boolean {
    return this.#options.crashProbability > 0 || this.#options.slowProbability > 0;
  }

  /** The decision for the next request. */
  next(): FaultDecision {
    const { crashAfter, crashProbability, slowProbability, slowMs, workMs, random } = this.#options;
    this.#cycle += 1;
    const cycle = this.#cycle;
    if (cycle > crashAfter && crashProbability > 0 && random() < crashProbability) {
      return { kind: "crash", delayMs: 0, cycle };
    }
    if (cycle > crashAfter && slowProbability > 0 && random() < slowProbability) {
      return { kind: "slow", delayMs: workMs + slowMs, cycle };
    }
    return { kind: "normal", delayMs: workMs, cycle };
  }
}
