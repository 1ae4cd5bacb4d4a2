import { ProtocolError } from "@zmq-patterns/core";
import { describe, expect, it } from "vitest";
import {
  decodeClientRequest,
  decodeQueueMessage,
  decodeWorkerMessage,
  encodeHeartbeat,
  encodeReady,
  encodeRequest,
  encodeRouted,
  PPP_HEARTBEAT,
  PPP_READY,
} from "../src/index.js";

const b = (...bytes: number[]) => Buffer.from(bytes);
const t = (text: string) => Buffer.from(text);
const E = Buffer.alloc(0);

describe("6/PPP golden frames", () => {
  it("PPP-R4: READY is one frame holding 0x01, HEARTBEAT one frame holding 0x02", () => {
    expect(PPP_READY).toBe(0x01);
    expect(PPP_HEARTBEAT).toBe(0x02);
    expect(encodeReady()).toEqual([b(0x01)]);
    expect(encodeHeartbeat()).toEqual([b(0x02)]);
  });

  it("4.4: a request to a worker is [W][C][''][body...] with no delimiter after W", () => {
    expect(encodeRequest(t("W"), { envelope: [t("C")], body: [t("a"), t("b")] })).toEqual([
      t("W"),
      t("C"),
      E,
      t("a"),
      t("b"),
    ]);
  });

  it("4.4: a reply is [C][''][body...], forwarded unchanged to the frontend", () => {
    expect(encodeRouted({ envelope: [t("C")], body: [t("r")] })).toEqual([t("C"), E, t("r")]);
  });
});

describe("decodeWorkerMessage (frames after the worker identity)", () => {
  it("decodes READY, HEARTBEAT and replies with any address stack and body", () => {
    expect(decodeWorkerMessage([b(1)])).toEqual({ type: "ready" });
    expect(decodeWorkerMessage([b(2)])).toEqual({ type: "heartbeat" });
    expect(decodeWorkerMessage([t("C"), E, t("r")])).toEqual({
      type: "reply",
      envelope: [t("C")],
      body: [t("r")],
    });
    expect(decodeWorkerMessage([t("C1"), t("C2"), E, t("r"), E])).toEqual({
      type: "reply",
      envelope: [t("C1"), t("C2")],
      body: [t("r"), E],
    });
  });

  it.each([
    [[], "empty message"],
    [[b(3)], "unknown command"],
    [[b(0x01, 0x02)], "command frame is not one byte"],
    [[E], "command frame is not one byte"],
    [[t("C"), t("r")], "reply without envelope delimiter"],
    [[E, t("r")], "reply without address"],
    [[t("C"), E], "missing frame: body"],
  ])("PP-B2/B7: rejects %j with reason %s", (frames, reason) => {
    const error = (() => {
      try {
        decodeWorkerMessage(frames as Buffer[]);
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(ProtocolError);
    expect((error as ProtocolError).reason).toBe(reason);
  });
});

describe("decodeQueueMessage (at the worker)", () => {
  it("decodes heartbeats and requests, rejects the rest", () => {
    expect(decodeQueueMessage([b(2)])).toEqual({ type: "heartbeat" });
    expect(decodeQueueMessage([t("C"), E, t("x"), t("y")])).toEqual({
      type: "request",
      envelope: [t("C")],
      body: [t("x"), t("y")],
    });
    expect(() => decodeQueueMessage([b(1)])).toThrow(ProtocolError);
    expect(() => decodeQueueMessage([t("C"), E])).toThrow(/body/);
  });
});

describe("decodeClientRequest", () => {
  it("needs an address, a delimiter and a body", () => {
    expect(decodeClientRequest([t("C"), E, t("q")])).toEqual({
      envelope: [t("C")],
      body: [t("q")],
    });
    expect(() => decodeClientRequest([t("C"), t("q")])).toThrow(/delimiter/);
    expect(() => decodeClientRequest([t("C"), E])).toThrow(/body/);
  });
});
