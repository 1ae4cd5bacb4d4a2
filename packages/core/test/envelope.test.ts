import { describe, expect, it } from "vitest";
import {
  EMPTY_FRAME,
  identityFromKey,
  identityKey,
  joinEnvelope,
  Msg,
  ProtocolError,
  splitEnvelope,
  unwrap,
  wrap,
} from "../src/index.js";

/** mulberry32: a tiny seeded PRNG returning floats in [0, 1). */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An integer in [min, max]. */
function int(random: () => number, min: number, max: number): number {
  return min + Math.floor(random() * (max - min + 1));
}

function bytes(random: () => number, length: number): Buffer {
  const buffer = Buffer.alloc(length);
  for (let i = 0; i < length; i++) buffer[i] = int(random, 0, 255);
  return buffer;
}

/** 0-4 routing frames, each 1-17 random bytes (never empty). */
function randomEnvelope(random: () => number): Buffer[] {
  return Array.from({ length: int(random, 0, 4) }, () => bytes(random, int(random, 1, 17)));
}

/** 0-5 body frames, each 0-17 random bytes; about a quarter are empty. */
function randomBody(random: () => number): Buffer[] {
  return Array.from({ length: int(random, 0, 5) }, () =>
    random() < 0.25 ? Buffer.alloc(0) : bytes(random, int(random, 1, 17)),
  );
}

/** Runs `fn` and returns what it threw (fails the test when it does not throw). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error("expected a throw");
}

function expectProtocolError(fn: () => unknown, reason: string): void {
  const error = thrown(fn);
  expect(error).toBeInstanceOf(ProtocolError);
  expect((error as ProtocolError).code).toBe("PROTOCOL");
  expect((error as ProtocolError).reason).toBe(reason);
}

const hex = (frames: readonly Uint8Array[]) => frames.map((f) => Buffer.from(f).toString("hex"));

const RUNS = 3000;

describe("PRNG sanity", () => {
  it("mulberry32 is deterministic and spreads over [0, 1)", () => {
    const a = mulberry32(7);
    const b = mulberry32(7);
    const values = Array.from({ length: 1000 }, () => a());
    expect(values).toEqual(Array.from({ length: 1000 }, () => b()));
    expect(Math.min(...values)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...values)).toBeLessThan(1);
    expect(new Set(values).size).toBeGreaterThan(990);
  });
});

describe("splitEnvelope / joinEnvelope", () => {
  it("splits at the first empty frame", () => {
    const frames = [
      Buffer.from("A"),
      Buffer.from("B"),
      EMPTY_FRAME,
      Buffer.from("body"),
      EMPTY_FRAME,
    ];
    const { envelope, body } = splitEnvelope(frames);
    expect(envelope.map(String)).toEqual(["A", "B"]);
    expect(body.map(String)).toEqual(["body", ""]);
  });

  it("accepts a Msg", () => {
    const { envelope, body } = splitEnvelope(new Msg(["id", "", "hello"]));
    expect(envelope.map(String)).toEqual(["id"]);
    expect(body.map(String)).toEqual(["hello"]);
  });

  it("handles an empty envelope and an empty body", () => {
    expect(splitEnvelope([EMPTY_FRAME])).toEqual({ envelope: [], body: [] });
    expect(splitEnvelope(new Msg(["", "x"])).envelope).toEqual([]);
    expect(splitEnvelope(new Msg(["x", ""])).body).toEqual([]);
  });

  it("does not alias the input array", () => {
    const frames = [Buffer.from("a"), EMPTY_FRAME, Buffer.from("b")];
    const split = splitEnvelope(frames);
    split.envelope.push(Buffer.from("z"));
    split.body.push(Buffer.from("z"));
    expect(frames).toHaveLength(3);
  });

  it("throws ProtocolError 'no envelope delimiter' without an empty frame", () => {
    expectProtocolError(() => splitEnvelope([]), "no envelope delimiter");
    expectProtocolError(() => splitEnvelope([Buffer.from("a")]), "no envelope delimiter");
    expectProtocolError(() => splitEnvelope(new Msg(["a", "b", "c"])), "no envelope delimiter");
  });

  it("joinEnvelope puts exactly one delimiter between envelope and body", () => {
    const joined = joinEnvelope(["A", Buffer.from("B")], ["x", "", new Uint8Array([1])]);
    expect(joined.every((frame) => Buffer.isBuffer(frame))).toBe(true);
    expect(hex(joined)).toEqual(["41", "42", "", "78", "", "01"]);
    expect(joined[2]).toBe(EMPTY_FRAME);
    expect(joinEnvelope([], [])).toEqual([EMPTY_FRAME]);
  });

  it(`round-trips ${RUNS} random envelopes and bodies`, () => {
    const random = mulberry32(0x5eed);
    let emptyEnvelopes = 0;
    let bodiesWithEmptyFrames = 0;
    for (let run = 0; run < RUNS; run++) {
      const envelope = randomEnvelope(random);
      const body = randomBody(random);
      if (envelope.length === 0) emptyEnvelopes++;
      if (body.some((frame) => frame.byteLength === 0)) bodiesWithEmptyFrames++;

      const joined = joinEnvelope(envelope, body);
      expect(joined).toHaveLength(envelope.length + 1 + body.length);

      const split = splitEnvelope(joined);
      expect(hex(split.envelope)).toEqual(hex(envelope));
      expect(hex(split.body)).toEqual(hex(body));

      // The same through a Msg.
      const viaMsg = splitEnvelope(new Msg(joined));
      expect(hex(viaMsg.envelope)).toEqual(hex(envelope));
      expect(hex(viaMsg.body)).toEqual(hex(body));
    }
    // The generator actually exercised the interesting shapes.
    expect(emptyEnvelopes).toBeGreaterThan(RUNS / 10);
    expect(bodiesWithEmptyFrames).toBeGreaterThan(RUNS / 10);
  });
});

describe("wrap / unwrap (CZMQ semantics)", () => {
  it("wrap pushes an empty delimiter, then the address", () => {
    const msg = new Msg(["hello"]);
    expect(wrap(msg, "addr")).toBe(msg);
    expect(msg.texts()).toEqual(["addr", "", "hello"]);
    wrap(msg, Buffer.from([0, 1]));
    expect(hex(msg.frames)).toEqual(["0001", "", "61646472", "", "68656c6c6f"]);
  });

  it("wrap on an empty message gives [address][]", () => {
    expect(wrap(new Msg(), "a").texts()).toEqual(["a", ""]);
  });

  it("unwrap pops the address and the empty delimiter after it", () => {
    const msg = new Msg(["addr", "", "hello"]);
    expect(unwrap(msg).toString()).toBe("addr");
    expect(msg.texts()).toEqual(["hello"]);
  });

  it("unwrap keeps the next frame when it is not empty (DEALER peer without delimiter)", () => {
    const msg = new Msg(["addr", "READY", "payload"]);
    expect(unwrap(msg).toString()).toBe("addr");
    expect(msg.texts()).toEqual(["READY", "payload"]);
  });

  it("unwrap pops only one empty frame", () => {
    const msg = new Msg(["addr", "", "", "x"]);
    unwrap(msg);
    expect(msg.texts()).toEqual(["", "x"]);
  });

  it("unwrap on a one-frame message returns it and leaves the message empty", () => {
    const msg = new Msg(["only"]);
    expect(unwrap(msg).toString()).toBe("only");
    expect(msg.size).toBe(0);
  });

  it("unwrap pops an empty first frame as the address, then a following empty frame", () => {
    const msg = new Msg(["", "", "x"]);
    expect(unwrap(msg).byteLength).toBe(0);
    expect(msg.texts()).toEqual(["x"]);
  });

  it("unwrap on an empty message throws ProtocolError", () => {
    expectProtocolError(() => unwrap(new Msg()), "no address frame to unwrap");
  });

  it(`follows CZMQ exactly over ${RUNS} random messages`, () => {
    const random = mulberry32(0xc2a0);
    for (let run = 0; run < RUNS; run++) {
      const body = randomBody(random);
      const address = bytes(random, int(random, 1, 17));

      // wrap then unwrap is the identity.
      const msg = new Msg(body);
      wrap(msg, address);
      expect(hex(msg.frames)).toEqual(hex([address, EMPTY_FRAME, ...body]));
      expect(hex([unwrap(msg)])).toEqual(hex([address]));
      expect(hex(msg.frames)).toEqual(hex(body));

      // unwrap on an arbitrary non-empty message: a reference model of zmsg_unwrap.
      const frames = [address, ...randomBody(random)];
      const expectedRest = frames.slice(1);
      if (expectedRest[0]?.byteLength === 0) expectedRest.shift();
      const target = new Msg(frames);
      expect(unwrap(target)).toBe(address);
      expect(hex(target.frames)).toEqual(hex(expectedRest));

      // Nested wraps peel off in reverse order (a multi-hop route).
      const envelope = randomEnvelope(random);
      const nested = new Msg(body);
      for (const hop of [...envelope].reverse()) wrap(nested, hop);
      expect(nested.size).toBe(body.length + 2 * envelope.length);
      for (const hop of envelope) expect(hex([unwrap(nested)])).toEqual(hex([hop]));
      expect(hex(nested.frames)).toEqual(hex(body));
    }
  });
});

describe("identityKey / identityFromKey", () => {
  it("formats identities as lowercase hex", () => {
    expect(identityKey(Buffer.from([0x00, 0x6b, 0x8b, 0x45, 0xff]))).toBe("006b8b45ff");
    expect(identityKey(Buffer.from("AB"))).toBe("4142");
  });

  it("uses only the view's bytes of a Uint8Array at an offset", () => {
    const backing = new Uint8Array([0xaa, 0x00, 0x01, 0x02, 0xbb]);
    expect(identityKey(backing.subarray(1, 4))).toBe("000102");
    const slice = Buffer.from("xxABCxx").subarray(2, 5);
    expect(identityKey(slice)).toBe("414243");
  });

  it(`round-trips ${RUNS} random 5-byte identities starting with 0x00`, () => {
    const random = mulberry32(0x1d);
    const keys = new Set<string>();
    for (let run = 0; run < RUNS; run++) {
      const identity = Buffer.concat([Buffer.from([0]), bytes(random, 4)]);
      const key = identityKey(identity);
      expect(key).toMatch(/^00[0-9a-f]{8}$/);
      expect(identityFromKey(key).equals(identity)).toBe(true);
      expect(identityFromKey(key.toUpperCase()).equals(identity)).toBe(true);
      keys.add(key);
    }
    expect(keys.size).toBeGreaterThan(RUNS - 5);
  });

  it("rejects keys that are not even-length hex", () => {
    for (const bad of ["0", "abc", "zz", "00gg", "0x00", "00 11", "-1", "é0"]) {
      expectProtocolError(() => identityFromKey(bad), "identity key is not hex");
    }
  });

  it("maps the empty key to an empty identity", () => {
    expect(identityFromKey("").byteLength).toBe(0);
  });
});
