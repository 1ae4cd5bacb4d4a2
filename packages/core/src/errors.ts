/**
 * Every error thrown by zmq-patterns is a {@link ZmqPatternsError} with a stable {@link ErrorCode},
 * so callers branch on `err.code` rather than on messages.
 * @module
 */

/** The stable codes carried by every zmq-patterns error. */
export type ErrorCode =
  | "TIMEOUT"
  | "PROTOCOL"
  | "CLOSED"
  | "ABORTED"
  | "INVALID_ARGUMENT"
  | "QUEUE_FULL";

/** Base class of every error thrown by zmq-patterns packages. */
export class ZmqPatternsError extends Error {
  /** Stable machine-readable code. */
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** An operation did not complete within its deadline. */
export class TimeoutError extends ZmqPatternsError {
  /** The deadline that expired, in milliseconds. */
  readonly timeoutMs: number;

  constructor(message: string, timeoutMs: number, options?: ErrorOptions) {
    super("TIMEOUT", message, options);
    this.timeoutMs = timeoutMs;
  }
}

/**
 * A request got no valid reply after every attempt, so the client gave up (the Guide's "server
 * seems to be offline, abandoning"). A {@link TimeoutError}: its code is `TIMEOUT`.
 */
export class RequestAbandonedError extends TimeoutError {
  /** Sends made before giving up. */
  readonly attempts: number;

  constructor(message: string, attempts: number, timeoutMs: number, options?: ErrorOptions) {
    super(message, timeoutMs, options);
    this.attempts = attempts;
  }
}

/**
 * A peer sent something that does not follow the protocol. `reason` is a short, stable
 * description suitable for counting (e.g. `"missing frame: service"`).
 */
export class ProtocolError extends ZmqPatternsError {
  /** Why the message was rejected, short enough to be used as a counter key. */
  readonly reason: string;

  constructor(reason: string, options?: ErrorOptions) {
    super("PROTOCOL", `protocol violation: ${reason}`, options);
    this.reason = reason;
  }
}

/** The object was closed before or while the operation ran. */
export class ClosedError extends ZmqPatternsError {
  constructor(message = "closed", options?: ErrorOptions) {
    super("CLOSED", message, options);
  }
}

/** The operation was cancelled through an `AbortSignal`. */
export class AbortedError extends ZmqPatternsError {
  constructor(message = "aborted", options?: ErrorOptions) {
    super("ABORTED", message, options);
  }
}

/** An option or argument is invalid; thrown synchronously, before anything starts. */
export class InvalidArgumentError extends ZmqPatternsError {
  constructor(message: string, options?: ErrorOptions) {
    super("INVALID_ARGUMENT", message, options);
  }
}

/** A bounded queue is full and the caller asked not to wait. */
export class QueueFullError extends ZmqPatternsError {
  constructor(message: string, options?: ErrorOptions) {
    super("QUEUE_FULL", message, options);
  }
}

/** True when `err` is a zmq-patterns error, optionally with the given code. */
export function isZmqPatternsError(err: unknown, code?: ErrorCode): err is ZmqPatternsError {
  return err instanceof ZmqPatternsError && (code === undefined || err.code === code);
}

/** The `AbortSignal`'s reason as an {@link AbortedError} (keeping a reason that already is one). */
export function abortReason(signal: AbortSignal): ZmqPatternsError {
  const reason: unknown = signal.reason;
  if (reason instanceof ZmqPatternsError) return reason;
  return new AbortedError(
    reason instanceof Error ? `aborted: ${reason.message}` : "aborted",
    reason === undefined ? undefined : { cause: reason },
  );
}
