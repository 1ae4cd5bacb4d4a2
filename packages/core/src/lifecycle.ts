/**
 * Lifecycle: idempotent close, `await using`, sockets closed with linger 0, and clean exits on
 * SIGINT/SIGTERM.
 * @module
 */
import { checkDuration } from "./options.js";

/** Anything with an idempotent asynchronous `close()`, usable with `await using`. */
export interface Closeable extends AsyncDisposable {
  /** Releases every resource. Safe to call more than once; later calls return the same promise. */
  close(): Promise<void>;
}

/** The part of a zeromq.js socket that {@link closeSocket} needs. */
export interface ClosableSocket {
  readonly closed: boolean;
  linger: number;
  close(): void;
}

/**
 * Closes a zeromq.js socket once, discarding unsent messages by default.
 *
 * zeromq.js sockets default to an infinite linger, which can keep a process from exiting while a
 * peer is gone; every socket whose pending messages may be discarded is closed with `linger` 0.
 */
export function closeSocket(socket: ClosableSocket, lingerMs = 0): void {
  if (socket.closed) return;
  socket.linger = lingerMs;
  socket.close();
}

/**
 * Collects cleanup steps and runs them once, last added first, like `AsyncDisposableStack`
 * (which Node 20 lacks). A role class keeps one and forwards its `close()` to it.
 *
 * @example
 * ```ts
 * const stack = new CloseStack();
 * const router = stack.socket(new Router());
 * stack.defer(() => heartbeater.stop());
 * await stack.close();
 * ```
 */
export class CloseStack implements Closeable {
  readonly #steps: Array<() => void | Promise<void>> = [];
  #closing: Promise<void> | undefined;

  /** True once {@link CloseStack.close} was called. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** Adds a cleanup step. After close, the step runs at once. */
  defer(step: () => void | Promise<void>): void {
    if (this.#closing) {
      void Promise.resolve().then(step);
      return;
    }
    this.#steps.push(step);
  }

  /** Registers a socket to be closed with `linger` 0 (or the given linger) and returns it. */
  socket<S extends ClosableSocket>(socket: S, lingerMs = 0): S {
    this.defer(() => closeSocket(socket, lingerMs));
    return socket;
  }

  /** Registers a {@link Closeable} (or anything with `close()`) and returns it. */
  use<T extends { close(): unknown }>(resource: T): T {
    this.defer(async () => {
      await resource.close();
    });
    return resource;
  }

  /**
   * Runs every step once, last added first. A failing step does not stop the others; the first
   * failure is thrown after all ran. Later calls return the same promise.
   */
  close(): Promise<void> {
    this.#closing ??= this.#run();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #run(): Promise<void> {
    let failure: unknown;
    let failed = false;
    for (const step of this.#steps.splice(0).reverse()) {
      try {
        await step();
      } catch (error) {
        if (!failed) failure = error;
        failed = true;
      }
    }
    if (failed) throw failure;
  }
}

/** Options of {@link shutdownOnSignals}. */
export interface ShutdownOptions {
  /** Signals to handle. Default SIGINT and SIGTERM. */
  signals?: NodeJS.Signals[];
  /** Exit forcibly when closing takes longer than this. Default 5,000 ms. */
  timeoutMs?: number;
  /** Told what happens ("shutting down on SIGINT"). Default: nothing. */
  log?: (message: string) => void;
  /** Ends the process; injectable for tests. Default `process.exit`. */
  exit?: (code: number) => void;
}

/**
 * Makes a CLI shut down cleanly: on the first signal it calls `close` and exits with code 0
 * (1 if closing failed); a second signal, or closing past the timeout, exits at once with 130.
 * Returns a function that removes the handlers.
 */
export function shutdownOnSignals(
  close: () => void | Promise<void>,
  options: ShutdownOptions = {},
): () => void {
  const signals = options.signals ?? ["SIGINT", "SIGTERM"];
  const timeoutMs = checkDuration("timeoutMs", options.timeoutMs ?? 5000);
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const log = options.log ?? (() => {});
  let shuttingDown = false;

  const onSignal = (signal: NodeJS.Signals) => {
    if (shuttingDown) {
      log(`${signal} again: exiting now`);
      exit(130);
      return;
    }
    shuttingDown = true;
    log(`shutting down on ${signal}`);
    const timer = setTimeout(() => {
      log(`shutdown took longer than ${timeoutMs} ms: exiting now`);
      exit(130);
    }, timeoutMs);
    timer.unref();
    Promise.resolve()
      .then(close)
      .then(
        () => exit(0),
        (error: unknown) => {
          log(`shutdown failed: ${error instanceof Error ? error.message : String(error)}`);
          exit(1);
        },
      )
      .finally(() => clearTimeout(timer));
  };

  for (const signal of signals) process.on(signal, onSignal);
  return () => {
    for (const signal of signals) process.off(signal, onSignal);
  };
}
