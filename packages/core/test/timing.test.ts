import { describe, expect, it } from "vitest";
import { Backoff, ExpiryList, Heartbeater, Liveness } from "../src/index.js";
import { ManualClock } from "../src/testing/index.js";

describe("Backoff", () => {
  it("doubles from 1 s to a 32 s cap by default (PPW-2) and resets", () => {
    const backoff = new Backoff();
    const delays = Array.from({ length: 8 }, () => backoff.next());
    expect(delays).toEqual([1000, 2000, 4000, 8000, 16000, 32000, 32000, 32000]);
    expect(backoff.attempts).toBe(8);
    backoff.reset();
    expect(backoff.peek()).toBe(1000);
    expect(backoff.next()).toBe(1000);
  });

  it("applies jitter within the configured fraction", () => {
    let r = 0;
    const values = [0, 0.5, 0.999];
    const backoff = new Backoff({
      initialMs: 1000,
      jitter: 0.2,
      random: () => values[r++ % 3] as number,
    });
    expect(backoff.next()).toBe(800);
    expect(backoff.next()).toBe(2000);
    expect(backoff.next()).toBeGreaterThan(4700);
  });

  it("rejects bad options with INVALID_ARGUMENT", () => {
    expect(() => new Backoff({ initialMs: -1 })).toThrow(
      expect.objectContaining({ code: "INVALID_ARGUMENT" }),
    );
    expect(() => new Backoff({ initialMs: 10, maxMs: 5 })).toThrow(/maxMs/);
    expect(() => new Backoff({ factor: 0.5 })).toThrow(/factor/);
    expect(() => new Backoff({ jitter: 2 })).toThrow(/jitter/);
  });
});

describe("Liveness", () => {
  it("counts down missed intervals and resets on traffic", () => {
    const liveness = new Liveness(3);
    expect(liveness.miss()).toBe(false);
    expect(liveness.miss()).toBe(false);
    liveness.reset();
    expect(liveness.value).toBe(3);
    liveness.miss();
    liveness.miss();
    expect(liveness.miss()).toBe(true);
    expect(liveness.dead).toBe(true);
    expect(liveness.miss()).toBe(false);
    expect(liveness.value).toBe(0);
  });

  it("rejects a non-positive liveness", () => {
    expect(() => new Liveness(0)).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
  });
});

describe("Heartbeater", () => {
  it("beats once per interval on a fixed cadence", () => {
    const clock = new ManualClock();
    let beats = 0;
    const hb = new Heartbeater({ intervalMs: 1000, clock, onBeat: () => beats++ });
    hb.start();
    clock.advance(999);
    expect(beats).toBe(0);
    clock.advance(1);
    expect(beats).toBe(1);
    clock.advance(4000);
    expect(beats).toBe(5);
    hb.stop();
    clock.advance(5000);
    expect(beats).toBe(5);
    expect(clock.pending).toBe(0);
  });

  it("declares the peer dead after `liveness` silent intervals, never while it talks", () => {
    const clock = new ManualClock();
    let dead = 0;
    const hb = new Heartbeater({
      intervalMs: 1000,
      liveness: 3,
      clock,
      onBeat: () => {},
      onPeerDead: () => dead++,
    });
    hb.start();
    for (let i = 0; i < 10; i++) {
      clock.advance(900);
      hb.touch();
      clock.advance(100);
    }
    expect(dead).toBe(0);
    clock.advance(2999);
    expect(dead).toBe(0);
    clock.advance(1);
    expect(dead).toBe(1);
  });

  it("declares death between liveness and liveness+1 intervals after the last message", () => {
    const clock = new ManualClock();
    let deadAt = -1;
    const hb = new Heartbeater({
      intervalMs: 1000,
      liveness: 3,
      clock,
      onBeat: () => {},
      onPeerDead: () => {
        if (deadAt < 0) deadAt = clock.now();
      },
    });
    hb.start();
    clock.advance(1500);
    hb.touch(); // last sign of life at 1500
    clock.advance(10_000);
    expect(deadAt - 1500).toBeGreaterThanOrEqual(3000);
    expect(deadAt - 1500).toBeLessThanOrEqual(4000);
  });

  it("stops for good when onPeerDead stops it, and restarts cleanly", () => {
    const clock = new ManualClock();
    let beats = 0;
    const hb: Heartbeater = new Heartbeater({
      intervalMs: 100,
      liveness: 1,
      clock,
      onBeat: () => beats++,
      onPeerDead: () => hb.stop(),
    });
    hb.start();
    clock.advance(1000);
    expect(hb.running).toBe(false);
    expect(beats).toBe(0);
    hb.start();
    expect(hb.liveness.value).toBe(1);
    hb.touch();
    clock.advance(100);
    expect(beats).toBe(1);
  });

  it("skips ticks missed while blocked instead of bursting", () => {
    const clock = new ManualClock();
    let beats = 0;
    const hb = new Heartbeater({ intervalMs: 100, clock, onBeat: () => beats++ });
    hb.start();
    // Jump past several deadlines in one step: only the one due timer fires.
    clock.advance(100);
    expect(beats).toBe(1);
    hb.touch();
    clock.advance(350);
    expect(beats).toBe(4);
  });
});

describe("ExpiryList", () => {
  it("expires entries in order of last touch, a fixed TTL after it", () => {
    const clock = new ManualClock();
    const list = new ExpiryList<string, number>({ ttlMs: 3000, clock });
    list.touch("a", 1);
    clock.advance(1000);
    list.touch("b", 2);
    clock.advance(1000);
    list.touch("a"); // keeps its value, moves to the tail
    expect(list.get("a")).toBe(1);
    expect([...list.keys()]).toEqual(["b", "a"]);
    expect(list.expire(clock.now() + 1999)).toEqual([]);
    expect(list.expire(clock.now() + 2000)).toEqual([["b", 2]]);
    expect(list.size).toBe(1);
    expect(list.deadline("a")).toBe(5000);
  });

  it("runs one timer for the head and reports expiries as they fall due", () => {
    const clock = new ManualClock();
    const expired: string[] = [];
    const list = new ExpiryList<string>({
      ttlMs: 1000,
      clock,
      onExpire: (key) => expired.push(key),
    });
    list.start();
    list.touch("a");
    clock.advance(500);
    list.touch("b");
    clock.advance(400);
    list.touch("a"); // the head moves: the armed timer fires early, finds nothing, re-arms
    clock.advance(600);
    expect(expired).toEqual(["b"]);
    clock.advance(399);
    expect(expired).toEqual(["b"]);
    clock.advance(1);
    expect(expired).toEqual(["b", "a"]);
    expect(clock.pending).toBe(0);
    list.touch("c");
    expect(clock.pending).toBe(1);
    list.stop();
    expect(clock.pending).toBe(0);
  });

  it("keeps 10,000 peers and expires the silent ones without touching the rest", () => {
    const clock = new ManualClock();
    const expired: number[] = [];
    const list = new ExpiryList<number>({
      ttlMs: 3000,
      clock,
      onExpire: (key) => expired.push(key),
    });
    list.start();
    for (let i = 0; i < 10_000; i++) list.touch(i);
    clock.advance(2000);
    for (let i = 0; i < 10_000; i += 2) list.touch(i); // even peers talk
    clock.advance(1000);
    expect(expired.length).toBe(5000);
    expect(expired.every((key) => key % 2 === 1)).toBe(true);
    expect(list.size).toBe(5000);
    list.clear();
    expect(clock.pending).toBe(0);
  });

  it("rejects a non-positive TTL", () => {
    expect(() => new ExpiryList({ ttlMs: 0 })).toThrow(
      expect.objectContaining({ code: "INVALID_ARGUMENT" }),
    );
  });
});
