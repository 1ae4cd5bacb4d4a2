import { ProtocolError } from "@zmq-patterns/core";
import { describe, expect, it } from "vitest";
import {
  DEFAULT_CLIENT_ENDPOINTS,
  DEFAULT_SERVER_ENDPOINT,
  DEFAULT_SERVER_IDENTITY,
  decodeFlpCommand,
  decodeFlpServerMessage,
  decodeModel2Reply,
  decodeModel2Request,
  encodeFlpReply,
  encodeFlpRequest,
  encodeModel2Reply,
  encodeModel2Request,
  encodePing,
  encodePong,
  encodeSequence,
  identityForEndpoint,
  MODEL1_ATTEMPT_TIMEOUT_MS,
  MODEL1_RETRIES,
  MODEL2_TIMEOUT_MS,
  MODEL3_TIMEOUT_MS,
  OK_FRAME,
  PING_FRAME,
  PING_INTERVAL_MS,
  PONG_FRAME,
  parseSequence,
  SERVER_TTL_MS,
} from "../src/index.js";

// Frames are spelled out byte by byte, independently of protocol.ts, so the tests check the
// codec rather than repeat it.
const b = (...bytes: number[]) => Buffer.from(bytes);
const t = (text: string) => Buffer.from(text, "latin1");
const E = Buffer.alloc(0);

/** The reason of the ProtocolError `fn` throws (fails when it throws anything else). */
function reasonOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ProtocolError);
    expect(error).toMatchObject({ code: "PROTOCOL" });
    return (error as ProtocolError).reason;
  }
  throw new Error("expected a ProtocolError, nothing was thrown");
}

describe("constants (spec 4.6)", () => {
  it("4.6: the reference timings and endpoints are the defaults", () => {
    expect(MODEL1_ATTEMPT_TIMEOUT_MS).toBe(1000);
    expect(MODEL1_RETRIES).toBe(3);
    expect(MODEL2_TIMEOUT_MS).toBe(2500);
    expect(MODEL3_TIMEOUT_MS).toBe(3000);
    expect(PING_INTERVAL_MS).toBe(2000);
    expect(SERVER_TTL_MS).toBe(6000);
    expect(DEFAULT_SERVER_ENDPOINT).toBe("tcp://*:5555");
    expect(DEFAULT_SERVER_IDENTITY).toBe("tcp://localhost:5555");
    expect(DEFAULT_CLIENT_ENDPOINTS).toEqual([
      "tcp://localhost:5555",
      "tcp://localhost:5556",
      "tcp://localhost:5557",
    ]);
    expect(Object.isFrozen(DEFAULT_CLIENT_ENDPOINTS)).toBe(true);
  });

  it("2.4.1: PING, PONG and OK are the ASCII bytes of the words", () => {
    expect(PING_FRAME).toEqual(b(0x50, 0x49, 0x4e, 0x47));
    expect(PONG_FRAME).toEqual(b(0x50, 0x4f, 0x4e, 0x47));
    expect(OK_FRAME).toEqual(b(0x4f, 0x4b));
  });
});

describe("sequence frames (spec 4.3, fix 2.6.3)", () => {
  it("4.3: a sequence is its decimal ASCII digits, 0 included", () => {
    expect(encodeSequence(0)).toEqual(b(0x30));
    expect(encodeSequence(1)).toEqual(b(0x31));
    expect(encodeSequence(1234567890)).toEqual(t("1234567890"));
    expect(encodeSequence(Number.MAX_SAFE_INTEGER)).toEqual(t("9007199254740991"));
  });

  it.each([[-1], [1.5], [Number.NaN], [Number.POSITIVE_INFINITY], [Number.MAX_SAFE_INTEGER + 1]])(
    "4.3: encodeSequence(%s) is rejected",
    (value) => {
      expect(reasonOf(() => encodeSequence(value))).toBe("invalid sequence");
    },
  );

  it("2.6.3: parseSequence reads plain decimals, and 10 digits do not overflow (2.6.9)", () => {
    expect(parseSequence(t("0"))).toBe(0);
    expect(parseSequence(t("1"))).toBe(1);
    expect(parseSequence(t("42"))).toBe(42);
    expect(parseSequence(t("4294967296"))).toBe(4294967296);
    expect(parseSequence(t("9007199254740991"))).toBe(Number.MAX_SAFE_INTEGER);
    for (const n of [0, 1, 9, 10, 99, 100, 65535, 2 ** 32, Number.MAX_SAFE_INTEGER]) {
      expect(parseSequence(encodeSequence(n))).toBe(n);
    }
  });

  it.each([
    ["PONG", t("PONG")],
    ["PING", t("PING")],
    ["OK", t("OK")],
    ["12abc (atoi would read 12)", t("12abc")],
    ["abc12", t("abc12")],
    ["empty frame", E],
    ["-1", t("-1")],
    ["+1", t("+1")],
    ["01 (leading zero)", t("01")],
    ["00", t("00")],
    ["1.0", t("1.0")],
    ["1e3", t("1e3")],
    ["0x10", t("0x10")],
    [" 1 (space)", t(" 1")],
    ["1 (trailing space)", t("1 ")],
    ["1\\n", t("1\n")],
    ["1\\0", b(0x31, 0x00)],
    ["Arabic-Indic digit", Buffer.from("\u0661", "utf8")],
    ["above MAX_SAFE_INTEGER", t("9007199254740992")],
    ["17 digits (too long)", t("12345678901234567")],
    ["a very long digit run", t("1".repeat(100))],
  ])("2.6.3: parseSequence rejects %s", (_name, frame) => {
    expect(parseSequence(frame)).toBeUndefined();
  });
});

describe("10/FLP golden frames (spec 2.4.1, 2.4.5)", () => {
  it("2.4.1: a ping is one frame PING, a pong one frame PONG", () => {
    expect(encodePing()).toEqual([b(0x50, 0x49, 0x4e, 0x47)]);
    expect(encodePong()).toEqual([b(0x50, 0x4f, 0x4e, 0x47)]);
  });

  it("2.4.1: a request is [CCF][body...]: one body frame, several, and binary frames kept as is", () => {
    expect(encodeFlpRequest("1", "random name")).toEqual([b(0x31), t("random name")]);
    expect(encodeFlpRequest(t("17"), [t("a"), E, b(0x00, 0xff)])).toEqual([
      b(0x31, 0x37),
      t("a"),
      E,
      b(0x00, 0xff),
    ]);
    expect(encodeFlpRequest(encodeSequence(7), b(0x01))).toEqual([t("7"), b(0x01)]);
  });

  it("2.4.1: a request needs at least one body frame, and its CCF can never read as PING", () => {
    expect(reasonOf(() => encodeFlpRequest("1", []))).toBe("missing frame: body");
    expect(reasonOf(() => encodeFlpRequest("PING", "x"))).toBe("control frame is PING");
    expect(reasonOf(() => encodeFlpRequest(t("PING"), ["x"]))).toBe("control frame is PING");
  });

  it("2.4.1: a reply is [CCF unchanged][reply...], OK by default", () => {
    expect(encodeFlpReply(t("17"))).toEqual([t("17"), b(0x4f, 0x4b)]);
    expect(encodeFlpReply(b(0xde, 0xad), [t("x"), E])).toEqual([b(0xde, 0xad), t("x"), E]);
    expect(reasonOf(() => encodeFlpReply(t("17"), []))).toBe("missing frame: body");
  });

  it("2.4.1: a server decodes PING and [CCF][body...] (the CCF is opaque, even non-decimal or empty)", () => {
    expect(decodeFlpCommand([t("PING")])).toEqual({ type: "ping" });
    expect(decodeFlpCommand([t("17"), t("random name")])).toEqual({
      type: "request",
      control: t("17"),
      body: [t("random name")],
    });
    expect(decodeFlpCommand([t("abc"), t("a"), t("b")])).toEqual({
      type: "request",
      control: t("abc"),
      body: [t("a"), t("b")],
    });
    expect(decodeFlpCommand([E, E])).toEqual({ type: "request", control: E, body: [E] });
    // PONG from a client is no command of its own: without a body it is malformed.
    expect(decodeFlpCommand([t("PONG"), t("x")])).toMatchObject({ type: "request" });
  });

  it.each([
    ["empty", [], "empty message"],
    ["PING with one extra frame", [t("PING"), t("x")], "PING with extra frames"],
    ["PING with an extra empty frame", [t("PING"), E], "PING with extra frames"],
    ["a CCF without body", [t("17")], "missing frame: body"],
    ["a lone PONG", [t("PONG")], "missing frame: body"],
    ["a lone empty frame", [E], "missing frame: body"],
  ])("2.4.1: a server rejects %s", (_name, frames, reason) => {
    expect(reasonOf(() => decodeFlpCommand(frames))).toBe(reason);
  });

  it("2.4.1: a client decodes PONG and [CCF][reply...]", () => {
    expect(decodeFlpServerMessage([t("PONG")])).toEqual({ type: "pong" });
    expect(decodeFlpServerMessage([t("3"), t("OK")])).toEqual({
      type: "reply",
      control: t("3"),
      body: [t("OK")],
    });
    expect(decodeFlpServerMessage([t("3"), t("a"), E])).toEqual({
      type: "reply",
      control: t("3"),
      body: [t("a"), E],
    });
  });

  it.each([
    ["empty", [], "empty message"],
    ["PONG with an extra frame", [t("PONG"), t("x")], "PONG with extra frames"],
    ["a reply without body", [t("3")], "missing frame: body"],
    ["a PING (no command a server sends)", [t("PING")], "missing frame: body"],
  ])("2.4.1: a client rejects %s", (_name, frames, reason) => {
    expect(reasonOf(() => decodeFlpServerMessage(frames))).toBe(reason);
  });

  it("2.4.5: encode/decode round trips on both sides", () => {
    const request = encodeFlpRequest(encodeSequence(99), [t("a"), t("b")]);
    const command = decodeFlpCommand(request);
    expect(command).toEqual({ type: "request", control: t("99"), body: [t("a"), t("b")] });
    if (command.type !== "request") throw new Error("unreachable");
    const reply = decodeFlpServerMessage(encodeFlpReply(command.control));
    expect(reply).toEqual({ type: "reply", control: t("99"), body: [t("OK")] });
    expect(decodeFlpCommand(encodePing())).toEqual({ type: "ping" });
    expect(decodeFlpServerMessage(encodePong())).toEqual({ type: "pong" });
  });
});

describe("model 2 golden frames (spec 2.3, 2.4.5)", () => {
  it('2.3: the client sends ["", sequence, body]; sequence 1 is the first', () => {
    expect(encodeModel2Request(1, "random name")).toEqual([E, b(0x31), t("random name")]);
    expect(encodeModel2Request(10000, [t("x")])).toEqual([E, t("10000"), t("x")]);
    expect(encodeModel2Request(3, [t("a"), t("b")])).toEqual([E, t("3"), t("a"), t("b")]);
    expect(reasonOf(() => encodeModel2Request(1, []))).toBe("missing frame: body");
    expect(reasonOf(() => encodeModel2Request(-1, "x"))).toBe("invalid sequence");
  });

  it("2.3: the server reads exactly [sequence][body] and keeps the sequence frame's bytes", () => {
    expect(decodeModel2Request([t("5"), t("random name")])).toEqual({
      sequence: t("5"),
      body: t("random name"),
    });
    expect(decodeModel2Request([t("0"), E])).toEqual({ sequence: t("0"), body: E });
  });

  it('2.3: the server replies [sequence]["OK"], the sequence frame unchanged', () => {
    expect(encodeModel2Reply(t("5"))).toEqual([b(0x35), b(0x4f, 0x4b)]);
    expect(encodeModel2Reply(t("12"), [t("x"), t("y")])).toEqual([t("12"), t("x"), t("y")]);
    expect(reasonOf(() => encodeModel2Reply(t("5"), []))).toBe("missing frame: body");
  });

  it('2.3: the client reads ["", sequence, "OK"] (and any reply of one frame or more)', () => {
    expect(decodeModel2Reply([E, b(0x35), b(0x4f, 0x4b)])).toEqual({
      sequence: 5,
      body: [t("OK")],
    });
    expect(decodeModel2Reply([E, t("7"), t("a"), E])).toEqual({
      sequence: 7,
      body: [t("a"), E],
    });
  });

  it.each([
    ["empty", [], "missing frame: sequence"],
    ["a sequence alone", [t("1")], "missing frame: body"],
    ["three frames", [t("1"), t("a"), t("b")], "unexpected 1 extra frame(s)"],
    ["the client's delimiter still on", [E, t("1"), t("a")], "unexpected 1 extra frame(s)"],
    ["a non-decimal sequence", [t("abc"), t("a")], "invalid sequence"],
    ["an atoi-style sequence", [t("12abc"), t("a")], "invalid sequence"],
    ["an empty sequence", [E, t("a")], "invalid sequence"],
    ["a negative sequence", [t("-1"), t("a")], "invalid sequence"],
  ])("2.7.2, fix 2.6.9: the server rejects %s instead of asserting", (_name, frames, reason) => {
    expect(reasonOf(() => decodeModel2Request(frames))).toBe(reason);
  });

  it.each([
    ["empty", [], "missing frame: delimiter"],
    ["a non-empty delimiter", [t("x"), t("1"), t("OK")], "delimiter frame is not empty"],
    ["no delimiter at all", [t("1"), t("OK")], "delimiter frame is not empty"],
    ["the delimiter alone", [E], "missing frame: sequence"],
    ["an invalid sequence", [E, t("PONG"), t("OK")], "invalid sequence"],
    ["a sequence with a leading zero", [E, t("01"), t("OK")], "invalid sequence"],
    ["no reply body", [E, t("1")], "missing frame: body"],
  ])("2.7.3: the client rejects %s", (_name, frames, reason) => {
    expect(reasonOf(() => decodeModel2Reply(frames))).toBe(reason);
  });
});

describe("identityForEndpoint (spec 2.4.1, 2.4.2)", () => {
  it("2.4.2: a wildcard host reads as localhost, the Guide's flserver3 pair", () => {
    expect(identityForEndpoint("tcp://*:5555")).toBe("tcp://localhost:5555");
    expect(identityForEndpoint("tcp://0.0.0.0:6000")).toBe("tcp://localhost:6000");
    expect(identityForEndpoint(DEFAULT_SERVER_ENDPOINT)).toBe(DEFAULT_SERVER_IDENTITY);
  });

  it("2.4.1: any other endpoint is its own identity", () => {
    for (const endpoint of [
      "tcp://127.0.0.1:5555",
      "tcp://localhost:5555",
      "tcp://192.168.55.162:5055",
      "tcp://example.com:1",
      "ipc://freelance.sock",
      "inproc://freelance",
      "tcp://[::1]:5555",
    ]) {
      expect(identityForEndpoint(endpoint)).toBe(endpoint);
    }
    // Only the host part is rewritten, not a port that happens to be a wildcard.
    expect(identityForEndpoint("tcp://127.0.0.1:*")).toBe("tcp://127.0.0.1:*");
  });
});
