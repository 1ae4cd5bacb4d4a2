import { ProtocolError } from "@zmq-patterns/core";
import { describe, expect, it } from "vitest";
import {
  type BinaryStarState,
  BSTAR_STATE_CODES,
  DEFAULT_BACKUP_ENDPOINTS,
  DEFAULT_CLIENT_ENDPOINTS,
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_PEER_EXPIRY_MS,
  DEFAULT_PRIMARY_ENDPOINTS,
  DEFAULT_REQUEST_INTERVAL_MS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  DEFAULT_SETTLE_DELAY_MS,
  decodeSequence,
  decodeState,
  encodeSequence,
  encodeState,
} from "../src/index.js";

const t = (text: string) => Buffer.from(text);
const b = (...bytes: number[]) => Buffer.from(bytes);
const E = Buffer.alloc(0);

function reasonOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ProtocolError);
    return (error as ProtocolError).reason;
  }
  throw new Error("did not throw");
}

describe("1.4 constants", () => {
  it("1.4: heartbeat 1000 ms, peer expiry 2 x heartbeat, client timings", () => {
    expect(DEFAULT_HEARTBEAT_INTERVAL_MS).toBe(1000);
    expect(DEFAULT_PEER_EXPIRY_MS).toBe(2000);
    expect(DEFAULT_REQUEST_TIMEOUT_MS).toBe(1000);
    expect(DEFAULT_SETTLE_DELAY_MS).toBe(2000);
    expect(DEFAULT_SETTLE_DELAY_MS).toBeGreaterThanOrEqual(DEFAULT_PEER_EXPIRY_MS);
    expect(DEFAULT_REQUEST_INTERVAL_MS).toBe(1000);
  });

  it("1.2: the Guide's endpoints, each server hearing the other's publisher", () => {
    expect(DEFAULT_PRIMARY_ENDPOINTS).toEqual({
      frontend: "tcp://*:5001",
      localState: "tcp://*:5003",
      remoteState: "tcp://localhost:5004",
    });
    expect(DEFAULT_BACKUP_ENDPOINTS).toEqual({
      frontend: "tcp://*:5002",
      localState: "tcp://*:5004",
      remoteState: "tcp://localhost:5003",
    });
    expect(DEFAULT_CLIENT_ENDPOINTS).toEqual(["tcp://localhost:5001", "tcp://localhost:5002"]);
    expect(Object.isFrozen(DEFAULT_PRIMARY_ENDPOINTS)).toBe(true);
    expect(Object.isFrozen(DEFAULT_CLIENT_ENDPOINTS)).toBe(true);
  });
});

describe("1.3 peer state message", () => {
  const GOLDEN: [BinaryStarState, string][] = [
    ["PRIMARY", "1"],
    ["BACKUP", "2"],
    ["ACTIVE", "3"],
    ["PASSIVE", "4"],
  ];

  it.each(GOLDEN)("1.3/1.12.2: %s is one frame holding the ASCII digit %s", (state, digit) => {
    expect(BSTAR_STATE_CODES[state]).toBe(Number(digit));
    expect(encodeState(state)).toEqual([t(digit)]);
    expect(encodeState(state)[0]).toEqual(b(digit.charCodeAt(0)));
    expect(decodeState([t(digit)])).toBe(state);
  });

  it("1.3: encodeState rejects what is not a state", () => {
    expect(reasonOf(() => encodeState("MASTER" as BinaryStarState))).toBe("unknown state");
  });

  it.each([
    ["no frames", [], "empty message"],
    ["two frames (1.12.10)", [t("3"), t("3")], "unexpected 1 extra frame(s)"],
    ["an empty frame", [E], "state frame is empty"],
    ["'5', the reference's CLIENT_REQUEST (1.11.3)", [t("5")], "unknown state"],
    ["'0', what atoi makes of garbage", [t("0")], "unknown state"],
    ["'x' (1.12.10)", [t("x")], "unknown state"],
    ["a binary code instead of a digit", [b(3)], "unknown state"],
    ["two digits", [t("12")], "unknown state"],
    ["a padded digit", [t("03")], "unknown state"],
    ["a digit with a trailing NUL", [b(0x33, 0)], "unknown state"],
    ["a digit with spaces", [t(" 3")], "unknown state"],
  ])("1.11.3: decodeState rejects %s", (_what, frames, reason) => {
    expect(reasonOf(() => decodeState(frames as Buffer[]))).toBe(reason);
  });
});

describe("1.3 client request and reply body", () => {
  it.each([
    [1, "1"],
    [42, "42"],
    [Number.MAX_SAFE_INTEGER, String(Number.MAX_SAFE_INTEGER)],
  ])("1.3: sequence %d is one frame holding %j", (sequence, text) => {
    expect(encodeSequence(sequence)).toEqual([t(text)]);
    expect(decodeSequence([t(text)])).toBe(sequence);
  });

  it.each([0, -1, 1.5, Number.NaN, Number.MAX_SAFE_INTEGER + 1])(
    "1.3: encodeSequence rejects %d",
    (sequence) => {
      expect(reasonOf(() => encodeSequence(sequence))).toBe("invalid sequence");
    },
  );

  it.each([
    ["no frames", [], "empty message"],
    ["two frames", [t("1"), t("1")], "unexpected 1 extra frame(s)"],
    ["an empty frame", [E], "sequence frame is empty"],
    ["a too long frame", [t("12345678901234567")], "sequence frame is longer than 16 bytes"],
    ["zero", [t("0")], "invalid sequence"],
    ["a negative number", [t("-1")], "invalid sequence"],
    ["leading zeros", [t("01")], "invalid sequence"],
    ["text", [t("abc")], "invalid sequence"],
    ["trailing garbage", [t("7x")], "invalid sequence"],
    ["a fraction", [t("1.5")], "invalid sequence"],
    ["a number above 2^53 - 1", [t("9007199254740993")], "invalid sequence"],
  ])("1.3: decodeSequence rejects %s", (_what, frames, reason) => {
    expect(reasonOf(() => decodeSequence(frames as Buffer[]))).toBe(reason);
  });
});
