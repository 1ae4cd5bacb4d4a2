import { describe, expect, it } from "vitest";
import { checkDuration, checkEndpoint, checkInteger, InvalidArgumentError } from "../src/index.js";

/** Runs `fn` and returns what it threw (fails the test when it does not throw). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error(`expected a throw, got ${String(fn())}`);
}

function expectInvalid(fn: () => unknown, message?: string | RegExp): void {
  const error = thrown(fn);
  expect(error).toBeInstanceOf(InvalidArgumentError);
  expect((error as InvalidArgumentError).code).toBe("INVALID_ARGUMENT");
  if (typeof message === "string") expect((error as Error).message).toBe(message);
  else if (message) expect((error as Error).message).toMatch(message);
}

describe("checkInteger", () => {
  it("returns integers in range", () => {
    expect(checkInteger("retries", 1)).toBe(1);
    expect(checkInteger("retries", 3)).toBe(3);
    expect(checkInteger("retries", Number.MAX_SAFE_INTEGER)).toBe(Number.MAX_SAFE_INTEGER);
    expect(checkInteger("n", 0, 0)).toBe(0);
    expect(checkInteger("n", -5, -10)).toBe(-5);
    expect(checkInteger("n", 10, 1, 10)).toBe(10);
    expect(checkInteger("n", 1, 1, 10)).toBe(1);
  });

  it("rejects values below the default min of 1", () => {
    expectInvalid(() => checkInteger("retries", 0), "retries must be an integer >= 1, got 0");
    expectInvalid(() => checkInteger("retries", -1), "retries must be an integer >= 1, got -1");
  });

  it("rejects non-integers", () => {
    expectInvalid(() => checkInteger("retries", 1.5), "retries must be an integer >= 1, got 1.5");
    expectInvalid(() => checkInteger("retries", Number.NaN), /got NaN$/);
    expectInvalid(() => checkInteger("retries", Number.POSITIVE_INFINITY), /got Infinity$/);
    expectInvalid(() => checkInteger("retries", "3" as unknown as number), /got 3$/);
  });

  it("rejects values out of a given range, naming the range", () => {
    expectInvalid(() => checkInteger("n", 11, 1, 10), "n must be an integer from 1 to 10, got 11");
    expectInvalid(() => checkInteger("n", 0, 1, 10), "n must be an integer from 1 to 10, got 0");
    expectInvalid(() => checkInteger("n", -1, 0), "n must be an integer >= 0, got -1");
  });
});

describe("checkDuration", () => {
  it("returns finite numbers of milliseconds >= min", () => {
    expect(checkDuration("timeout", 1)).toBe(1);
    expect(checkDuration("timeout", 2500)).toBe(2500);
    expect(checkDuration("timeout", 1.5)).toBe(1.5);
    expect(checkDuration("timeout", 0, 0)).toBe(0);
  });

  it("rejects values below min (default 1)", () => {
    expectInvalid(
      () => checkDuration("timeout", 0),
      "timeout must be a number of milliseconds >= 1, got 0",
    );
    expectInvalid(
      () => checkDuration("timeout", 0.5),
      "timeout must be a number of milliseconds >= 1, got 0.5",
    );
    expectInvalid(
      () => checkDuration("interval", 5, 10),
      "interval must be a number of milliseconds >= 10, got 5",
    );
    expectInvalid(() => checkDuration("timeout", -1, 0), /got -1$/);
  });

  it("rejects non-finite and non-number values", () => {
    expectInvalid(() => checkDuration("timeout", Number.NaN), /got NaN$/);
    expectInvalid(() => checkDuration("timeout", Number.POSITIVE_INFINITY), /got Infinity$/);
    expectInvalid(() => checkDuration("timeout", "100" as unknown as number), /got 100$/);
    expectInvalid(() => checkDuration("timeout", undefined as unknown as number), /undefined$/);
  });
});

describe("checkEndpoint", () => {
  it("accepts ZeroMQ endpoints", () => {
    for (const endpoint of [
      "tcp://*:5555",
      "tcp://localhost:5555",
      "tcp://127.0.0.1:*",
      "tcp://[::1]:5555",
      "tcp://[::]:*",
      "tcp://[fe80::1]:65535",
      "tcp://eth0:5555",
      "tcp://example.com:1",
      "ipc:///tmp/x",
      "ipc://@abstract",
      "inproc://a",
      "inproc://workers.backend",
      "ws://localhost:8080/path",
      "epgm://eth0;239.192.1.1:5555",
      "udp://127.0.0.1:5555",
    ]) {
      expect(checkEndpoint("--bind", endpoint)).toBe(endpoint);
    }
  });

  it("rejects strings that are not endpoints with INVALID_ARGUMENT", () => {
    for (const endpoint of [
      "localhost:5555",
      "tcp://host",
      "tcp://host:",
      "tcp://:5555",
      "tcp://host:port",
      "tcp://host:5555 ",
      " tcp://host:5555",
      "tcp://a b:5555",
      "tcp://[::1]",
      "http://localhost:5555",
      "ipc://",
      "inproc://",
      "inproc://a b",
      "",
    ]) {
      expectInvalid(
        () => checkEndpoint("--connect", endpoint),
        `--connect must be a ZeroMQ endpoint such as tcp://localhost:5555, got ${JSON.stringify(endpoint)}`,
      );
    }
  });

  it("rejects tcp ports above 65535", () => {
    expectInvalid(
      () => checkEndpoint("--bind", "tcp://h:70000"),
      "--bind has a port above 65535: tcp://h:70000",
    );
    expectInvalid(() => checkEndpoint("--bind", "tcp://[::1]:65536"), /port above 65535/);
    expect(checkEndpoint("--bind", "tcp://h:65535")).toBe("tcp://h:65535");
  });

  it("rejects non-string values", () => {
    for (const value of [undefined, null, 5555, {}, ["tcp://*:5555"]]) {
      expectInvalid(
        () => checkEndpoint("endpoint", value as unknown as string),
        /^endpoint must be/,
      );
    }
  });
});
