/**
 * `sleep`: an abortable delay.
 * @module
 */
import { abortReason } from "../errors.js";
import { type Clock, systemClock } from "./clock.js";

/**
 * Resolves after `ms`; rejects with `AbortedError` when `signal` aborts. On the system clock the
 * timer keeps the process alive like any pending work (a worker waiting to reconnect has no
 * socket open), so owners abort it on close. With another `clock` (a test's), it runs on that.
 */
export function sleep(
  ms: number,
  options: { signal?: AbortSignal; clock?: Clock } = {},
): Promise<void> {
  const { signal, clock } = options;
  if (signal?.aborted) return Promise.reject(abortReason(signal));
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      cancel();
      reject(abortReason(signal as AbortSignal));
    };
    const done = () => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    };
    let cancel: () => void;
    if (clock && clock !== systemClock) {
      const handle = clock.setTimeout(done, ms);
      cancel = () => handle.cancel();
    } else {
      const timer = setTimeout(done, Math.max(0, ms));
      cancel = () => clearTimeout(timer);
    }
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
