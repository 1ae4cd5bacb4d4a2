/**
 * The clock every timer in zmq-patterns runs on, so that tests can inject a manual one.
 * @module
 */

/** An opaque handle to a scheduled callback. */
export interface TimerHandle {
  /** Stops the callback from running; harmless after it ran. */
  cancel(): void;
}

/**
 * Time and timers. Implementations must never keep the process alive: the system clock
 * `unref()`s every timer.
 */
export interface Clock {
  /** Monotonic milliseconds. */
  now(): number;
  /** Runs `callback` once after `delayMs`. */
  setTimeout(callback: () => void, delayMs: number): TimerHandle;
}

/** The real clock: `performance.now()` and unref'd Node timers. */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout(callback, delayMs) {
    const timer = setTimeout(callback, Math.max(0, delayMs));
    timer.unref();
    return { cancel: () => clearTimeout(timer) };
  },
};
