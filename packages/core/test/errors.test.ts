import { describe, expect, it } from "vitest";
import {
  AbortedError,
  abortReason,
  ClosedError,
  type ErrorCode,
  InvalidArgumentError,
  isZmqPatternsError,
  ProtocolError,
  QueueFullError,
  RequestAbandonedError,
  TimeoutError,
  ZmqPatternsError,
} from "../src/index.js";

describe("error classes", () => {
  const cases: [string, () => ZmqPatternsError, ErrorCode, string][] = [
    ["ZmqPatternsError", () => new ZmqPatternsError("CLOSED", "base"), "CLOSED", "base"],
    ["TimeoutError", () => new TimeoutError("too slow", 250), "TIMEOUT", "too slow"],
    [
      "RequestAbandonedError",
      () => new RequestAbandonedError("server seems to be offline, abandoning", 3, 2500),
      "TIMEOUT",
      "server seems to be offline, abandoning",
    ],
    [
      "ProtocolError",
      () => new ProtocolError("missing frame: service"),
      "PROTOCOL",
      "protocol violation: missing frame: service",
    ],
    ["ClosedError", () => new ClosedError(), "CLOSED", "closed"],
    ["AbortedError", () => new AbortedError(), "ABORTED", "aborted"],
    [
      "InvalidArgumentError",
      () => new InvalidArgumentError("retries must be >= 1"),
      "INVALID_ARGUMENT",
      "retries must be >= 1",
    ],
    ["QueueFullError", () => new QueueFullError("queue is full"), "QUEUE_FULL", "queue is full"],
  ];

  for (const [name, make, code, message] of cases) {
    it(`${name} has code ${code}, name ${name} and is a ZmqPatternsError and an Error`, () => {
      const error = make();
      expect(error.code).toBe(code);
      expect(error.name).toBe(name);
      expect(error.message).toBe(message);
      expect(error).toBeInstanceOf(ZmqPatternsError);
      expect(error).toBeInstanceOf(Error);
      expect(isZmqPatternsError(error)).toBe(true);
      expect(isZmqPatternsError(error, code)).toBe(true);
      expect(typeof error.stack).toBe("string");
      expect(String(error)).toBe(`${name}: ${message}`);
    });
  }

  it("TimeoutError carries timeoutMs", () => {
    expect(new TimeoutError("t", 1500).timeoutMs).toBe(1500);
  });

  it("RequestAbandonedError is a TimeoutError with attempts and timeoutMs", () => {
    const error = new RequestAbandonedError("gave up", 3, 2500);
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error.attempts).toBe(3);
    expect(error.timeoutMs).toBe(2500);
    expect(isZmqPatternsError(error, "TIMEOUT")).toBe(true);
  });

  it("ProtocolError carries its short reason", () => {
    const error = new ProtocolError("unexpected header");
    expect(error.reason).toBe("unexpected header");
    expect(error.message).toBe("protocol violation: unexpected header");
  });

  it("ClosedError and AbortedError take a custom message", () => {
    expect(new ClosedError("socket closed").message).toBe("socket closed");
    expect(new AbortedError("stopped").message).toBe("stopped");
  });

  it("keeps the cause", () => {
    const cause = new Error("root");
    expect(new ProtocolError("bad", { cause }).cause).toBe(cause);
    expect(new TimeoutError("t", 1, { cause }).cause).toBe(cause);
    expect(new RequestAbandonedError("r", 1, 1, { cause }).cause).toBe(cause);
    expect(new ClosedError(undefined, { cause }).cause).toBe(cause);
    expect(new AbortedError("a", { cause }).cause).toBe(cause);
    expect(new InvalidArgumentError("i", { cause }).cause).toBe(cause);
    expect(new QueueFullError("q", { cause }).cause).toBe(cause);
    expect(new ZmqPatternsError("PROTOCOL", "z", { cause }).cause).toBe(cause);
  });

  it("a subclass of a subclass gets its own name", () => {
    class CustomError extends ProtocolError {}
    expect(new CustomError("x").name).toBe("CustomError");
    expect(new CustomError("x").code).toBe("PROTOCOL");
  });
});

describe("isZmqPatternsError", () => {
  it("is false for other values", () => {
    for (const value of [
      new Error("plain"),
      new TypeError("type"),
      { code: "TIMEOUT", message: "look-alike" },
      "TIMEOUT",
      null,
      undefined,
      42,
    ]) {
      expect(isZmqPatternsError(value)).toBe(false);
      expect(isZmqPatternsError(value, "TIMEOUT")).toBe(false);
    }
  });

  it("checks the code when given", () => {
    const error = new ClosedError();
    expect(isZmqPatternsError(error)).toBe(true);
    expect(isZmqPatternsError(error, "CLOSED")).toBe(true);
    expect(isZmqPatternsError(error, "ABORTED")).toBe(false);
    expect(isZmqPatternsError(new RequestAbandonedError("r", 1, 1), "PROTOCOL")).toBe(false);
  });

  it("narrows the type", () => {
    const value: unknown = new QueueFullError("full");
    if (isZmqPatternsError(value, "QUEUE_FULL")) {
      const code: ErrorCode = value.code;
      expect(code).toBe("QUEUE_FULL");
    } else {
      expect.unreachable();
    }
  });
});

describe("abortReason", () => {
  it("wraps an Error reason in an AbortedError, keeping it as the cause", () => {
    const controller = new AbortController();
    const reason = new Error("user pressed Ctrl-C");
    controller.abort(reason);
    const error = abortReason(controller.signal);
    expect(error).toBeInstanceOf(AbortedError);
    expect(error.code).toBe("ABORTED");
    expect(error.message).toBe("aborted: user pressed Ctrl-C");
    expect(error.cause).toBe(reason);
  });

  it("wraps a string reason as 'aborted', keeping it as the cause", () => {
    const controller = new AbortController();
    controller.abort("shutdown");
    const error = abortReason(controller.signal);
    expect(error).toBeInstanceOf(AbortedError);
    expect(error.message).toBe("aborted");
    expect(error.cause).toBe("shutdown");
  });

  it("uses the default DOMException when abort() is called without a reason", () => {
    const controller = new AbortController();
    controller.abort();
    const error = abortReason(controller.signal);
    expect(error).toBeInstanceOf(AbortedError);
    expect(error.code).toBe("ABORTED");
    expect(error.message).toMatch(/^aborted: /);
    expect((error.cause as DOMException).name).toBe("AbortError");
  });

  it("gives a plain 'aborted' without a cause when the signal has no reason", () => {
    const error = abortReason(new AbortController().signal);
    expect(error).toBeInstanceOf(AbortedError);
    expect(error.message).toBe("aborted");
    expect(error.cause).toBeUndefined();
    expect("cause" in error).toBe(false);
  });

  it("returns a reason that already is a ZmqPatternsError as is", () => {
    for (const reason of [
      new TimeoutError("deadline", 100),
      new ClosedError(),
      new AbortedError(),
    ]) {
      const controller = new AbortController();
      controller.abort(reason);
      expect(abortReason(controller.signal)).toBe(reason);
    }
  });

  it("works with AbortSignal.abort and AbortSignal.timeout reasons", async () => {
    const closed = new ClosedError();
    expect(abortReason(AbortSignal.abort(closed))).toBe(closed);
    const signal = AbortSignal.timeout(1);
    await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve()));
    const error = abortReason(signal);
    expect(error).toBeInstanceOf(AbortedError);
    expect((error.cause as DOMException).name).toBe("TimeoutError");
  });
});
