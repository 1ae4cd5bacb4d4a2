import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../src/errors.js";
import { ManualClock } from "../src/testing/index.js";

describe("ManualClock", () => {
  it("starts where told and moves only on advance", () => {
    const clock = new ManualClock(1000);
    expect(clock.now()).toBe(1000);
    clock.advance(250);
    expect(clock.now()).toBe(1250);
    expect(clock.pending).toBe(0);
  });

  it("runs due callbacks in deadline order, each at its own deadline", () => {
    const clock = new ManualClock();
    const ran: string[] = [];
    clock.setTimeout(() => ran.push(`c@${clock.now()}`), 30);
    clock.setTimeout(() => ran.push(`a@${clock.now()}`), 10);
    clock.setTimeout(() => ran.push(`b@${clock.now()}`), 20);
    clock.setTimeout(() => ran.push("late"), 31);
    expect(clock.nextDeadline).toBe(10);
    expect(clock.advance(30)).toBe(3);
    expect(ran).toEqual(["a@10", "b@20", "c@30"]);
    expect(clock.now()).toBe(30);
    expect(clock.pending).toBe(1);
    clock.advance(1);
    expect(ran.at(-1)).toBe("late");
  });

  it("runs equal deadlines in scheduling order", () => {
    const clock = new ManualClock();
    const ran: number[] = [];
    for (let i = 0; i < 5; i++) clock.setTimeout(() => ran.push(i), 100);
    clock.setTimeout(() => ran.push(-1), 50);
    clock.advance(100);
    expect(ran).toEqual([-1, 0, 1, 2, 3, 4]);
  });

  it("cancel removes a timer and is harmless twice or after it ran", () => {
    const clock = new ManualClock();
    const ran: string[] = [];
    const a = clock.setTimeout(() => ran.push("a"), 10);
    const b = clock.setTimeout(() => ran.push("b"), 20);
    expect(clock.pending).toBe(2);
    a.cancel();
    a.cancel();
    expect(clock.pending).toBe(1);
    clock.advance(20);
    b.cancel();
    expect(ran).toEqual(["b"]);
    expect(clock.pending).toBe(0);
  });

  it("a callback may cancel a later timer due in the same advance", () => {
    const clock = new ManualClock();
    const ran: string[] = [];
    const later = clock.setTimeout(() => ran.push("later"), 20);
    clock.setTimeout(() => {
      ran.push("first");
      later.cancel();
    }, 10);
    clock.advance(100);
    expect(ran).toEqual(["first"]);
  });

  it("runs callbacks scheduled during an advance when they fall due within it", () => {
    const clock = new ManualClock();
    const ran: string[] = [];
    clock.setTimeout(() => {
      ran.push(`a@${clock.now()}`);
      clock.setTimeout(() => ran.push(`b@${clock.now()}`), 15); // due at 25: inside
      clock.setTimeout(() => ran.push(`c@${clock.now()}`), 0); // due at 10: runs next
      clock.setTimeout(() => ran.push("d"), 50); // due at 60: outside
    }, 10);
    clock.setTimeout(() => ran.push(`e@${clock.now()}`), 20);
    clock.advance(30);
    expect(ran).toEqual(["a@10", "c@10", "e@20", "b@25"]);
    expect(clock.pending).toBe(1);
    expect(clock.now()).toBe(30);
  });

  it("a periodic timer fires once per period", () => {
    const clock = new ManualClock();
    const ticks: number[] = [];
    const tick = (): void => {
      ticks.push(clock.now());
      clock.setTimeout(tick, 100);
    };
    clock.setTimeout(tick, 100);
    clock.advance(350);
    expect(ticks).toEqual([100, 200, 300]);
    expect(clock.nextDeadline).toBe(400);
  });

  it("runAll drains timers, and stops a timer that re-arms itself for ever", () => {
    const clock = new ManualClock();
    const ran: number[] = [];
    clock.setTimeout(() => ran.push(clock.now()), 500);
    clock.setTimeout(() => ran.push(clock.now()), 5);
    expect(clock.runAll()).toBe(2);
    expect(ran).toEqual([5, 500]);
    expect(clock.now()).toBe(500);

    const spin = (): void => void clock.setTimeout(spin, 0);
    clock.setTimeout(spin, 0);
    expect(() => clock.runAll(1000)).toThrow(/1000 callbacks/);
  });

  it("advanceTo moves to an absolute time and never back", () => {
    const clock = new ManualClock(100);
    clock.advanceTo(150);
    expect(clock.now()).toBe(150);
    clock.advanceTo(120);
    expect(clock.now()).toBe(150);
  });

  it("clamps negative delays to zero and leaves Infinity pending", () => {
    const clock = new ManualClock(10);
    const ran: string[] = [];
    clock.setTimeout(() => ran.push("now"), -5);
    const never = clock.setTimeout(() => ran.push("never"), Number.POSITIVE_INFINITY);
    clock.advance(0);
    expect(ran).toEqual(["now"]);
    clock.runAll();
    expect(clock.pending).toBe(1);
    never.cancel();
    expect(clock.pending).toBe(0);
  });

  it("a throwing callback propagates and leaves the clock at its deadline", () => {
    const clock = new ManualClock();
    const ran: string[] = [];
    clock.setTimeout(() => {
      throw new Error("boom");
    }, 10);
    clock.setTimeout(() => ran.push("after"), 20);
    expect(() => clock.advance(100)).toThrow("boom");
    expect(clock.now()).toBe(10);
    clock.advance(10);
    expect(ran).toEqual(["after"]);
  });

  it("rejects bad arguments", () => {
    const clock = new ManualClock();
    expect(() => clock.advance(-1)).toThrow(InvalidArgumentError);
    expect(() => clock.advance(Number.NaN)).toThrow(InvalidArgumentError);
    expect(() => clock.setTimeout(() => {}, Number.NaN)).toThrow(InvalidArgumentError);
    expect(() => new ManualClock(Number.POSITIVE_INFINITY)).toThrow(InvalidArgumentError);
  });
});
