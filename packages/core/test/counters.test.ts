import { describe, expect, it } from "vitest";
import { Counters } from "../src/index.js";

describe("Counters", () => {
  it("starts at zero", () => {
    const counters = new Counters();
    expect(counters.get("anything")).toBe(0);
    expect(counters.total).toBe(0);
    expect(counters.snapshot()).toEqual({});
  });

  it("increments by one by default and by n when given, returning the new count", () => {
    const counters = new Counters();
    expect(counters.increment("a")).toBe(1);
    expect(counters.increment("a")).toBe(2);
    expect(counters.increment("a", 5)).toBe(7);
    expect(counters.increment("b", 3)).toBe(3);
    expect(counters.get("a")).toBe(7);
    expect(counters.get("b")).toBe(3);
    expect(counters.get("c")).toBe(0);
  });

  it("totals every key", () => {
    const counters = new Counters();
    counters.increment("x", 2);
    counters.increment("y");
    counters.increment("z", 10);
    expect(counters.total).toBe(13);
  });

  it("snapshot is a plain-object copy", () => {
    const counters = new Counters();
    counters.increment("missing frame: service");
    counters.increment("unexpected header", 2);
    const snapshot = counters.snapshot();
    expect(snapshot).toEqual({ "missing frame: service": 1, "unexpected header": 2 });
    snapshot["unexpected header"] = 100;
    counters.increment("later");
    expect(counters.get("unexpected header")).toBe(2);
    expect(snapshot).not.toHaveProperty("later");
    expect(Object.getPrototypeOf(snapshot)).toBe(Object.prototype);
  });

  it("reset sets every count back to zero", () => {
    const counters = new Counters();
    counters.increment("a", 4);
    counters.increment("b");
    counters.reset();
    expect(counters.get("a")).toBe(0);
    expect(counters.total).toBe(0);
    expect(counters.snapshot()).toEqual({});
    expect(counters.increment("a")).toBe(1);
  });

  it("counts new keys past maxKeys under 'other'", () => {
    const counters = new Counters(3);
    counters.increment("a");
    counters.increment("b");
    counters.increment("c");
    expect(counters.increment("d")).toBe(1);
    expect(counters.increment("e", 4)).toBe(5);
    expect(counters.get("d")).toBe(0);
    expect(counters.get("e")).toBe(0);
    expect(counters.get("other")).toBe(5);
    expect(counters.snapshot()).toEqual({ a: 1, b: 1, c: 1, other: 5 });
    expect(counters.total).toBe(8);
  });

  it("keeps counting keys that already exist past the bound", () => {
    const counters = new Counters(2);
    counters.increment("a");
    counters.increment("b");
    counters.increment("c");
    expect(counters.increment("a")).toBe(2);
    expect(counters.increment("b", 2)).toBe(3);
    expect(counters.get("other")).toBe(1);
  });

  it("bounds memory under endless distinct keys (default 256)", () => {
    const counters = new Counters();
    for (let i = 0; i < 10_000; i++) counters.increment(`garbage-${i}`);
    const keys = Object.keys(counters.snapshot());
    // 256 named keys plus "other".
    expect(keys.length).toBe(257);
    expect(counters.get("other")).toBe(10_000 - 256);
    expect(counters.get("garbage-255")).toBe(1);
    expect(counters.get("garbage-256")).toBe(0);
    expect(counters.total).toBe(10_000);
  });

  it("accepts new keys again after reset", () => {
    const counters = new Counters(1);
    counters.increment("a");
    counters.increment("b");
    counters.reset();
    counters.increment("b");
    expect(counters.snapshot()).toEqual({ b: 1 });
  });

  it("with maxKeys 0, counts everything under 'other'", () => {
    const counters = new Counters(0);
    counters.increment("a");
    counters.increment("b");
    expect(counters.snapshot()).toEqual({ other: 2 });
  });

  it("takes a key type", () => {
    const counters = new Counters<"sent" | "dropped">();
    counters.increment("sent");
    counters.increment("dropped", 2);
    // @ts-expect-error not one of the declared keys
    counters.increment("bogus");
    expect(counters.get("dropped")).toBe(2);
  });
});
