/**
 * `sleep`: an abortable delay that never keeps the process alive.
 * @module
 */
import { abortReason } from "../errors.js";
import { type Clock, systemClock } from "./clock.js";

/**
 * Resolves after `ms` on an unref'd timer; rejects with `AbortedError` when `signal` aborts.
 */
export function sleep(
  ms: number,
  options: { signal?: AbortSignal; clock?: Clock } = {},
): Promise<void> {
  const { signal, clock = systemClock } = options;
  if (signal?.aborted) return Promise.reject(abortReason(signal));
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      timer.cancel();
      reject(abortReason(signal as AbortSignal));
    };
    const timer = clock.setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
