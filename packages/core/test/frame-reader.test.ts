import { describe, expect, it } from "vitest";
import { FrameReader, ProtocolError } from "../src/index.js";

const f = (...values: (string | number[])[]): Buffer[] =>
  values.map((value) => (typeof value === "string" ? Buffer.from(value) : Buffer.from(value)));

/** Runs `fn` and returns what it threw (fails the test when it does not throw). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error("expected a throw");
}

function expectReason(fn: () => unknown, reason: string): void {
  const error = thrown(fn);
  expect(error).toBeInstanceOf(ProtocolError);
  expect((error as ProtocolError).code).toBe("PROTOCOL");
  expect((error as ProtocolError).reason).toBe(reason);
  expect((error as ProtocolError).message).toBe(`protocol violation: ${reason}`);
}

describe("FrameReader", () => {
  it("reads a Majordomo-like message front to back", () => {
    const r = new FrameReader(f("", "MDPC01", "echo", "hello", "world"));
    expect(r.remaining).toBe(5);
    r.empty("delimiter");
    r.expect("header", Buffer.from("MDPC01"));
    expect(r.text("service")).toBe("echo");
    expect(r.rest().map(String)).toEqual(["hello", "world"]);
    expect(r.remaining).toBe(0);
    r.end();
  });

  describe("remaining / peek", () => {
    it("counts unread frames and peeks without consuming", () => {
      const r = new FrameReader(f("a", "b"));
      expect(r.peek()?.toString()).toBe("a");
      expect(r.peek()?.toString()).toBe("a");
      expect(r.remaining).toBe(2);
      r.frame("first");
      expect(r.peek()?.toString()).toBe("b");
      expect(r.remaining).toBe(1);
      r.frame("second");
      expect(r.peek()).toBeUndefined();
      expect(r.remaining).toBe(0);
    });

    it("is empty for no frames", () => {
      const r = new FrameReader([]);
      expect(r.remaining).toBe(0);
      expect(r.peek()).toBeUndefined();
      r.end();
    });
  });

  describe("frame", () => {
    it("returns the next frame by reference, even when empty", () => {
      const frames = f("x", "");
      const r = new FrameReader(frames);
      expect(r.frame("one")).toBe(frames[0]);
      expect(r.frame("two")).toBe(frames[1]);
    });

    it("throws 'missing frame: <name>' past the end", () => {
      const r = new FrameReader(f("x"));
      r.frame("x");
      expectReason(() => r.frame("service"), "missing frame: service");
      expect(r.remaining).toBe(0);
    });
  });

  describe("empty", () => {
    it("accepts an empty frame", () => {
      const r = new FrameReader(f("", "x"));
      r.empty();
      expect(r.remaining).toBe(1);
    });

    it("rejects a non-empty frame, naming it (default name: delimiter)", () => {
      expectReason(() => new FrameReader(f("x")).empty(), "delimiter frame is not empty");
      expectReason(() => new FrameReader(f("x")).empty("gap"), "gap frame is not empty");
    });

    it("rejects a missing frame", () => {
      expectReason(() => new FrameReader([]).empty(), "missing frame: delimiter");
      expectReason(() => new FrameReader([]).empty("gap"), "missing frame: gap");
    });
  });

  describe("expect", () => {
    it("returns the frame when it matches byte for byte", () => {
      const frames = f([1, 2, 3]);
      const r = new FrameReader(frames);
      expect(r.expect("header", new Uint8Array([1, 2, 3]))).toBe(frames[0]);
    });

    it("throws 'unexpected <name>' on a different frame", () => {
      expectReason(
        () => new FrameReader(f("MDPW01")).expect("header", Buffer.from("MDPC01")),
        "unexpected header",
      );
      expectReason(
        () => new FrameReader(f("MDPC0")).expect("header", Buffer.from("MDPC01")),
        "unexpected header",
      );
      expectReason(
        () => new FrameReader(f("")).expect("header", Buffer.from("MDPC01")),
        "unexpected header",
      );
    });

    it("throws 'missing frame: <name>' when absent", () => {
      expectReason(
        () => new FrameReader([]).expect("header", Buffer.from("x")),
        "missing frame: header",
      );
    });

    it("matches an expected empty frame", () => {
      expect(new FrameReader(f("")).expect("nothing", new Uint8Array(0)).byteLength).toBe(0);
    });
  });

  describe("byte", () => {
    it("returns the single byte", () => {
      const r = new FrameReader(f([0x05], [0x00], [0xff]));
      expect(r.byte("command")).toBe(5);
      expect(r.byte("command")).toBe(0);
      expect(r.byte("command")).toBe(255);
    });

    it("throws '<name> frame is not one byte' for other lengths", () => {
      expectReason(() => new FrameReader(f("")).byte("command"), "command frame is not one byte");
      expectReason(
        () => new FrameReader(f([1, 2])).byte("command"),
        "command frame is not one byte",
      );
    });

    it("throws 'missing frame: <name>' when absent", () => {
      expectReason(() => new FrameReader([]).byte("command"), "missing frame: command");
    });
  });

  describe("nonEmpty", () => {
    it("returns a non-empty frame", () => {
      expect(new FrameReader(f("id")).nonEmpty("identity").toString()).toBe("id");
    });

    it("throws '<name> frame is empty' on an empty frame", () => {
      expectReason(() => new FrameReader(f("")).nonEmpty("identity"), "identity frame is empty");
    });

    it("throws 'missing frame: <name>' when absent", () => {
      expectReason(() => new FrameReader([]).nonEmpty("identity"), "missing frame: identity");
    });
  });

  describe("text", () => {
    it("decodes UTF-8", () => {
      expect(new FrameReader(f("héllo")).text("greeting")).toBe("héllo");
    });

    it("rejects an empty frame unless allowEmpty", () => {
      expectReason(() => new FrameReader(f("")).text("service"), "service frame is empty");
      expect(new FrameReader(f("")).text("service", { allowEmpty: true })).toBe("");
      expectReason(
        () => new FrameReader(f("")).text("service", { allowEmpty: false }),
        "service frame is empty",
      );
    });

    it("enforces maxBytes on bytes, not characters", () => {
      expect(new FrameReader(f("abcd")).text("service", { maxBytes: 4 })).toBe("abcd");
      expectReason(
        () => new FrameReader(f("abcde")).text("service", { maxBytes: 4 }),
        "service frame is longer than 4 bytes",
      );
      // "éé" is 2 characters but 4 bytes.
      expectReason(
        () => new FrameReader(f("éé")).text("service", { maxBytes: 3 }),
        "service frame is longer than 3 bytes",
      );
      expect(new FrameReader(f("")).text("s", { maxBytes: 0, allowEmpty: true })).toBe("");
    });

    it("throws 'missing frame: <name>' when absent, with or without allowEmpty", () => {
      expectReason(() => new FrameReader([]).text("service"), "missing frame: service");
      expectReason(
        () => new FrameReader([]).text("service", { allowEmpty: true }),
        "missing frame: service",
      );
    });
  });

  describe("rest", () => {
    it("returns every unread frame and consumes them", () => {
      const r = new FrameReader(f("a", "b", "", "c"));
      r.frame("a");
      const rest = r.rest();
      expect(rest.map(String)).toEqual(["b", "", "c"]);
      expect(r.remaining).toBe(0);
      expect(r.rest()).toEqual([]);
      r.end();
    });

    it("returns a copy, not the reader's array", () => {
      const frames = f("a", "b");
      const rest = new FrameReader(frames).rest();
      expect(rest).not.toBe(frames);
      expect(rest).toEqual(frames);
    });

    it("with min, throws 'missing frame: <name>' when fewer frames remain", () => {
      const r = new FrameReader(f("cmd", "x"));
      r.frame("cmd");
      expectReason(() => r.rest("body", 2), "missing frame: body");
      expect(r.remaining).toBe(1);
      expectReason(() => new FrameReader([]).rest("payload", 1), "missing frame: payload");
      expect(r.rest("body", 1).map(String)).toEqual(["x"]);
    });

    it("defaults to name 'body' and min 0", () => {
      expect(new FrameReader([]).rest()).toEqual([]);
      expectReason(() => new FrameReader([]).rest(undefined, 1), "missing frame: body");
    });
  });

  describe("end", () => {
    it("passes when everything was read", () => {
      const r = new FrameReader(f("a"));
      r.frame("a");
      expect(() => r.end()).not.toThrow();
    });

    it("throws 'unexpected <n> extra frame(s)' otherwise", () => {
      expectReason(() => new FrameReader(f("a")).end(), "unexpected 1 extra frame(s)");
      const r = new FrameReader(f("a", "b", "c"));
      r.frame("a");
      expectReason(() => r.end(), "unexpected 2 extra frame(s)");
    });
  });

  it("consumes a frame even when its validation fails", () => {
    // Documents current behaviour: validation happens after the frame was taken.
    const r = new FrameReader(f("x", "y"));
    expect(() => r.empty()).toThrow(ProtocolError);
    expect(r.remaining).toBe(1);
    expect(r.peek()?.toString()).toBe("y");
  });
});
