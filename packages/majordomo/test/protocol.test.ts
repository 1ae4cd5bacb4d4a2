/**
 * Golden frames and codec rules of MDP/0.1 (RFC 7), MDP/0.2 (RFC 18) and MMI (RFC 8): every
 * message of both versions byte for byte, decode round trips, and every rejection reason.
 */
import { ProtocolError } from "@zmq-patterns/core";
import { describe, expect, it } from "vitest";
import {
  decodeBrokerInbound,
  decodeClientReply,
  decodeWorkerCommand,
  encodeClientReply,
  encodeClientRequest,
  encodeWorkerCommand,
  isMmiService,
  MAX_SERVICE_NAME_BYTES,
  MDPC01,
  MDPC02,
  MDPC02_COMMANDS,
  MDPW01,
  MDPW01_COMMANDS,
  MDPW02,
  MDPW02_COMMANDS,
  type MdpVersion,
  MMI_CODES,
  MMI_PREFIX,
  MMI_SERVICE,
  type WorkerCommand,
} from "../src/protocol.js";

/** A frame written as hex bytes (spaces allowed); `""` is the empty frame. */
function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ""), "hex");
}
/** A message written frame by frame in hex. */
function frames(...parts: string[]): Buffer[] {
  return parts.map(hex);
}
/** Frames as hex strings, so a mismatch shows the bytes. */
function show(message: readonly Buffer[]): string[] {
  return message.map((frame) => frame.toString("hex"));
}

// Golden bytes, written out by hand rather than derived from the constants under test.
const H_MDPC01 = "4d 44 50 43 30 31";
const H_MDPW01 = "4d 44 50 57 30 31";
const H_MDPC02 = "4d 44 50 43 30 32";
const H_MDPW02 = "4d 44 50 57 30 32";
const H_ECHO = "65 63 68 6f"; // "echo"
const H_HELLO = "68 65 6c 6c 6f"; // "hello"
const H_WORLD = "77 6f 72 6c 64"; // "world"
const H_CLIENT = "00 a3 8e 1f 29"; // a generated 5-byte identity (ENV-3)
const CLIENT = hex(H_CLIENT);

/** Asserts a ProtocolError with exactly this reason. */
function rejects(fn: () => unknown, reason: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught, `expected ProtocolError "${reason}"`).toBeInstanceOf(ProtocolError);
  expect((caught as ProtocolError).reason).toBe(reason);
  expect((caught as ProtocolError).code).toBe("PROTOCOL");
}

describe("constants (section 0.1, 5.2, 6.3)", () => {
  it("MDP-R15 (0.1) headers are the 6 ASCII bytes of MDPC01/MDPW01/MDPC02/MDPW02", () => {
    expect(MDPC01.toString("hex")).toBe(hex(H_MDPC01).toString("hex"));
    expect(MDPW01.toString("hex")).toBe(hex(H_MDPW01).toString("hex"));
    expect(MDPC02.toString("hex")).toBe(hex(H_MDPC02).toString("hex"));
    expect(MDPW02.toString("hex")).toBe(hex(H_MDPW02).toString("hex"));
  });

  it("5.2/6.3 command codes: 0.1 worker 1..5, 0.2 worker 1..6, 0.2 client 1..3", () => {
    expect(MDPW01_COMMANDS).toEqual({
      ready: 1,
      request: 2,
      reply: 3,
      heartbeat: 4,
      disconnect: 5,
    });
    expect(MDPW02_COMMANDS).toEqual({
      ready: 1,
      request: 2,
      partial: 3,
      final: 4,
      heartbeat: 5,
      disconnect: 6,
    });
    expect(MDPC02_COMMANDS).toEqual({ request: 1, partial: 2, final: 3 });
  });

  it("MMI-R1..R3: namespace mmi., service mmi.service, codes 200/404/501", () => {
    expect(MMI_PREFIX).toBe("mmi.");
    expect(MMI_SERVICE).toBe("mmi.service");
    expect(MMI_CODES).toEqual({ found: "200", notFound: "404", notImplemented: "501" });
    expect(isMmiService("mmi.service")).toBe(true);
    expect(isMmiService("mmi.")).toBe(true);
    expect(isMmiService("mmi")).toBe(false);
    expect(isMmiService("echo.mmi.")).toBe(false);
  });
});

interface Golden {
  name: string;
  encode: () => Buffer[];
  wire: Buffer[];
}

describe("golden frames MDP/0.1 (RFC 7, section 5.4): leading empty frame on every command", () => {
  const goldens: Golden[] = [
    {
      name: 'client REQUEST [""]["MDPC01"][service][body...]',
      encode: () => encodeClientRequest("0.1", "echo", ["hello", "world"]),
      wire: frames("", H_MDPC01, H_ECHO, H_HELLO, H_WORLD),
    },
    {
      name: 'client REPLY [""]["MDPC01"][service][body...]',
      encode: () =>
        encodeClientReply("0.1", { service: "echo", body: [hex(H_WORLD)], final: true }),
      wire: frames("", H_MDPC01, H_ECHO, H_WORLD),
    },
    {
      name: 'worker READY [""]["MDPW01"][0x01][service]',
      encode: () => encodeWorkerCommand("0.1", { command: "ready", service: "echo" }),
      wire: frames("", H_MDPW01, "01", H_ECHO),
    },
    {
      name: 'worker REQUEST [""]["MDPW01"][0x02][<C>][""][body...]',
      encode: () =>
        encodeWorkerCommand("0.1", {
          command: "request",
          client: CLIENT,
          body: [hex(H_HELLO), hex(H_WORLD)],
        }),
      wire: frames("", H_MDPW01, "02", H_CLIENT, "", H_HELLO, H_WORLD),
    },
    {
      name: 'worker REPLY [""]["MDPW01"][0x03][<C>][""][body...]',
      encode: () =>
        encodeWorkerCommand("0.1", {
          command: "reply",
          client: CLIENT,
          body: [hex(H_WORLD)],
          final: true,
        }),
      wire: frames("", H_MDPW01, "03", H_CLIENT, "", H_WORLD),
    },
    {
      name: 'worker HEARTBEAT [""]["MDPW01"][0x04]',
      encode: () => encodeWorkerCommand("0.1", { command: "heartbeat" }),
      wire: frames("", H_MDPW01, "04"),
    },
    {
      name: 'worker DISCONNECT [""]["MDPW01"][0x05]',
      encode: () => encodeWorkerCommand("0.1", { command: "disconnect" }),
      wire: frames("", H_MDPW01, "05"),
    },
  ];
  for (const golden of goldens) {
    it(`MDP-R15 ${golden.name}`, () => {
      expect(show(golden.encode())).toEqual(show(golden.wire));
    });
  }
});

describe("golden frames MDP/0.2 (RFC 18, section 6.2): no empty frame, explicit client command", () => {
  const goldens: Golden[] = [
    {
      name: 'client REQUEST ["MDPC02"][0x01][service][body...]',
      encode: () => encodeClientRequest("0.2", "echo", ["hello", "world"]),
      wire: frames(H_MDPC02, "01", H_ECHO, H_HELLO, H_WORLD),
    },
    {
      name: 'client PARTIAL ["MDPC02"][0x02][service][body...]',
      encode: () =>
        encodeClientReply("0.2", { service: "echo", body: [hex(H_HELLO)], final: false }),
      wire: frames(H_MDPC02, "02", H_ECHO, H_HELLO),
    },
    {
      name: 'client FINAL ["MDPC02"][0x03][service][body...]',
      encode: () =>
        encodeClientReply("0.2", { service: "echo", body: [hex(H_WORLD)], final: true }),
      wire: frames(H_MDPC02, "03", H_ECHO, H_WORLD),
    },
    {
      name: 'worker READY ["MDPW02"][0x01][service]',
      encode: () => encodeWorkerCommand("0.2", { command: "ready", service: "echo" }),
      wire: frames(H_MDPW02, "01", H_ECHO),
    },
    {
      name: 'worker REQUEST ["MDPW02"][0x02][<C>][""][body...]',
      encode: () =>
        encodeWorkerCommand("0.2", {
          command: "request",
          client: CLIENT,
          body: [hex(H_HELLO), hex(H_WORLD)],
        }),
      wire: frames(H_MDPW02, "02", H_CLIENT, "", H_HELLO, H_WORLD),
    },
    {
      name: 'worker PARTIAL ["MDPW02"][0x03][<C>][""][body...]',
      encode: () =>
        encodeWorkerCommand("0.2", {
          command: "reply",
          client: CLIENT,
          body: [hex(H_HELLO)],
          final: false,
        }),
      wire: frames(H_MDPW02, "03", H_CLIENT, "", H_HELLO),
    },
    {
      name: 'worker FINAL ["MDPW02"][0x04][<C>][""][body...]',
      encode: () =>
        encodeWorkerCommand("0.2", {
          command: "reply",
          client: CLIENT,
          body: [hex(H_WORLD)],
          final: true,
        }),
      wire: frames(H_MDPW02, "04", H_CLIENT, "", H_WORLD),
    },
    {
      name: 'worker HEARTBEAT ["MDPW02"][0x05]',
      encode: () => encodeWorkerCommand("0.2", { command: "heartbeat" }),
      wire: frames(H_MDPW02, "05"),
    },
    {
      name: 'worker DISCONNECT ["MDPW02"][0x06]',
      encode: () => encodeWorkerCommand("0.2", { command: "disconnect" }),
      wire: frames(H_MDPW02, "06"),
    },
  ];
  for (const golden of goldens) {
    it(`MDP-R15 ${golden.name}`, () => {
      expect(show(golden.encode())).toEqual(show(golden.wire));
    });
  }

  it("RFC 18: no 0.2 message starts with an empty frame", () => {
    for (const golden of goldens) expect(golden.wire[0]?.byteLength).toBe(6);
  });
});

describe("decoding what the broker receives (decodeBrokerInbound) and round trips", () => {
  it("MDP-R5 0.1 client REQUEST decodes to service + body and re-encodes to the same frames", () => {
    const wire = frames("", H_MDPC01, H_ECHO, H_HELLO, "", H_WORLD);
    const inbound = decodeBrokerInbound(wire);
    expect(inbound).toEqual({
      side: "client",
      version: "0.1",
      request: { service: "echo", body: [hex(H_HELLO), Buffer.alloc(0), hex(H_WORLD)] },
    });
    if (inbound.side !== "client") throw new Error("unreachable");
    expect(show(encodeClientRequest("0.1", inbound.request.service, inbound.request.body))).toEqual(
      show(wire),
    );
  });

  it("RFC 18 0.2 client REQUEST decodes and re-encodes to the same frames", () => {
    const wire = frames(H_MDPC02, "01", H_ECHO, H_HELLO);
    const inbound = decodeBrokerInbound(wire);
    expect(inbound).toEqual({
      side: "client",
      version: "0.2",
      request: { service: "echo", body: [hex(H_HELLO)] },
    });
    if (inbound.side !== "client") throw new Error("unreachable");
    expect(show(encodeClientRequest("0.2", inbound.request.service, inbound.request.body))).toEqual(
      show(wire),
    );
  });

  const workerCases: Array<{ version: MdpVersion; wire: Buffer[]; message: WorkerCommand }> = [
    {
      version: "0.1",
      wire: frames("", H_MDPW01, "01", H_ECHO),
      message: { command: "ready", service: "echo" },
    },
    {
      version: "0.1",
      wire: frames("", H_MDPW01, "03", H_CLIENT, "", H_WORLD, ""),
      message: {
        command: "reply",
        client: CLIENT,
        body: [hex(H_WORLD), Buffer.alloc(0)],
        final: true,
      },
    },
    { version: "0.1", wire: frames("", H_MDPW01, "04"), message: { command: "heartbeat" } },
    { version: "0.1", wire: frames("", H_MDPW01, "05"), message: { command: "disconnect" } },
    {
      version: "0.2",
      wire: frames(H_MDPW02, "01", H_ECHO),
      message: { command: "ready", service: "echo" },
    },
    {
      version: "0.2",
      wire: frames(H_MDPW02, "03", H_CLIENT, "", H_HELLO),
      message: { command: "reply", client: CLIENT, body: [hex(H_HELLO)], final: false },
    },
    {
      version: "0.2",
      wire: frames(H_MDPW02, "04", H_CLIENT, "", H_WORLD),
      message: { command: "reply", client: CLIENT, body: [hex(H_WORLD)], final: true },
    },
    { version: "0.2", wire: frames(H_MDPW02, "05"), message: { command: "heartbeat" } },
    { version: "0.2", wire: frames(H_MDPW02, "06"), message: { command: "disconnect" } },
  ];
  for (const { version, wire, message } of workerCases) {
    it(`MDP-R8/R13 ${version} worker ${message.command}${message.command === "reply" && !message.final ? " (partial)" : ""} decodes and round-trips`, () => {
      expect(decodeBrokerInbound(wire)).toEqual({ side: "worker", version, message });
      expect(show(encodeWorkerCommand(version, message))).toEqual(show(wire));
    });
  }

  it("MDP-R12 a REQUEST from a peer on the worker side decodes (the broker then refuses it)", () => {
    expect(decodeBrokerInbound(frames("", H_MDPW01, "02", H_CLIENT, "", H_HELLO))).toEqual({
      side: "worker",
      version: "0.1",
      message: { command: "request", client: CLIENT, body: [hex(H_HELLO)] },
    });
  });

  it("MDB-B6 service names: 255 bytes accepted, UTF-8 multi-byte names round-trip", () => {
    const longest = "s".repeat(MAX_SERVICE_NAME_BYTES);
    const inbound = decodeBrokerInbound(["", MDPC01, longest, "x"].map((f) => Buffer.from(f)));
    expect(inbound.side === "client" && inbound.request.service).toBe(longest);
    const unicode = "é".repeat(127); // 254 bytes
    const wire = encodeClientRequest("0.1", unicode, ["x"]);
    expect(wire[2]?.byteLength).toBe(254);
    const back = decodeBrokerInbound(wire);
    expect(back.side === "client" && back.request.service).toBe(unicode);
  });
});

describe("decoding what a worker receives (decodeWorkerCommand) and round trips", () => {
  const cases: Array<{ version: MdpVersion; wire: Buffer[]; message: WorkerCommand }> = [
    {
      version: "0.1",
      wire: frames("", H_MDPW01, "02", H_CLIENT, "", H_HELLO, H_WORLD),
      message: { command: "request", client: CLIENT, body: [hex(H_HELLO), hex(H_WORLD)] },
    },
    { version: "0.1", wire: frames("", H_MDPW01, "04"), message: { command: "heartbeat" } },
    { version: "0.1", wire: frames("", H_MDPW01, "05"), message: { command: "disconnect" } },
    {
      version: "0.2",
      wire: frames(H_MDPW02, "02", H_CLIENT, "", H_HELLO),
      message: { command: "request", client: CLIENT, body: [hex(H_HELLO)] },
    },
    { version: "0.2", wire: frames(H_MDPW02, "05"), message: { command: "heartbeat" } },
    { version: "0.2", wire: frames(H_MDPW02, "06"), message: { command: "disconnect" } },
  ];
  for (const { version, wire, message } of cases) {
    it(`MDP-R12 ${version} ${message.command} decodes with and without a version and round-trips`, () => {
      expect(decodeWorkerCommand(wire, version)).toEqual(message);
      expect(decodeWorkerCommand(wire)).toEqual(message);
      expect(show(encodeWorkerCommand(version, message))).toEqual(show(wire));
    });
  }
});

describe("decoding what a client receives (decodeClientReply) and round trips", () => {
  it("MDP-R4 0.1 REPLY (DEALER view) decodes as final and round-trips", () => {
    const wire = frames("", H_MDPC01, H_ECHO, H_WORLD, H_HELLO);
    const reply = decodeClientReply(wire, "0.1");
    expect(reply).toEqual({ service: "echo", body: [hex(H_WORLD), hex(H_HELLO)], final: true });
    expect(show(encodeClientReply("0.1", reply))).toEqual(show(wire));
    expect(decodeClientReply(wire)).toEqual(reply);
  });

  it("RFC 18 0.2 PARTIAL and FINAL decode and round-trip", () => {
    const partial = frames(H_MDPC02, "02", H_ECHO, H_HELLO);
    const final = frames(H_MDPC02, "03", H_ECHO, H_WORLD);
    const p = decodeClientReply(partial, "0.2");
    const f = decodeClientReply(final);
    expect(p).toEqual({ service: "echo", body: [hex(H_HELLO)], final: false });
    expect(f).toEqual({ service: "echo", body: [hex(H_WORLD)], final: true });
    expect(show(encodeClientReply("0.2", p))).toEqual(show(partial));
    expect(show(encodeClientReply("0.2", f))).toEqual(show(final));
  });
});

describe("rejections of decodeBrokerInbound (MDP-R10, MDB-B7: drop invalid messages)", () => {
  const s256 = "73".repeat(256);
  const cases: Array<[string, Buffer[], string]> = [
    ["no frame at all", [], "missing frame: header"],
    ["only the empty frame", frames(""), "missing frame: header"],
    ["unknown 0.1 header", frames("", "4d 44 50 58 30 31"), "unknown protocol header"],
    ["unknown 0.2-style header", frames("58 59 5a"), "unknown protocol header"],
    [
      "0.1 client header without the leading empty frame",
      frames(H_MDPC01, H_ECHO, H_HELLO),
      "unknown protocol header",
    ],
    [
      "non-empty frame 0 before a 0.1 header",
      frames("00", H_MDPC01, H_ECHO, H_HELLO),
      "unknown protocol header",
    ],
    [
      "0.2 header after an empty frame",
      frames("", H_MDPC02, "01", H_ECHO, H_HELLO),
      "unknown protocol header",
    ],
    ["0.1 client without service", frames("", H_MDPC01), "missing frame: service"],
    ["0.1 client request without body", frames("", H_MDPC01, H_ECHO), "missing frame: body"],
    ["0.1 client empty service name", frames("", H_MDPC01, "", H_HELLO), "service frame is empty"],
    [
      "0.1 client service name over 255 bytes",
      frames("", H_MDPC01, s256, H_HELLO),
      "service frame is longer than 255 bytes",
    ],
    ["0.2 client without command", frames(H_MDPC02), "missing frame: command"],
    [
      "0.2 client command of two bytes",
      frames(H_MDPC02, "01 01", H_ECHO, H_HELLO),
      "command frame is not one byte",
    ],
    [
      "0.2 client PARTIAL sent by a client",
      frames(H_MDPC02, "02", H_ECHO, H_HELLO),
      "unexpected client command",
    ],
    [
      "0.2 client FINAL sent by a client",
      frames(H_MDPC02, "03", H_ECHO, H_HELLO),
      "unexpected client command",
    ],
    [
      "0.2 client unknown command",
      frames(H_MDPC02, "00", H_ECHO, H_HELLO),
      "unexpected client command",
    ],
    ["0.2 client request without body", frames(H_MDPC02, "01", H_ECHO), "missing frame: body"],
    ["0.2 client empty service", frames(H_MDPC02, "01", "", H_HELLO), "service frame is empty"],
    [
      "0.2 client service name over 255 bytes",
      frames(H_MDPC02, "01", s256, H_HELLO),
      "service frame is longer than 255 bytes",
    ],
    ["0.1 worker without command", frames("", H_MDPW01), "missing frame: command"],
    ["0.1 worker empty command frame", frames("", H_MDPW01, ""), "command frame is not one byte"],
    ["0.1 worker unknown command 0x00", frames("", H_MDPW01, "00"), "unknown command"],
    ["0.1 worker unknown command 0x06", frames("", H_MDPW01, "06"), "unknown command"],
    ["0.2 worker unknown command 0x07", frames(H_MDPW02, "07"), "unknown command"],
    ["0.2 worker unknown command 0x00", frames(H_MDPW02, "00"), "unknown command"],
    ["0.1 READY without service", frames("", H_MDPW01, "01"), "missing frame: service"],
    ["0.1 READY empty service", frames("", H_MDPW01, "01", ""), "service frame is empty"],
    [
      "0.1 READY service over 255 bytes",
      frames("", H_MDPW01, "01", s256),
      "service frame is longer than 255 bytes",
    ],
    [
      "0.1 READY with an extra frame",
      frames("", H_MDPW01, "01", H_ECHO, ""),
      "unexpected 1 extra frame(s)",
    ],
    [
      "0.1 HEARTBEAT with an extra frame",
      frames("", H_MDPW01, "04", H_ECHO),
      "unexpected 1 extra frame(s)",
    ],
    [
      "0.1 DISCONNECT with two extra frames",
      frames("", H_MDPW01, "05", "", ""),
      "unexpected 2 extra frame(s)",
    ],
    [
      "0.2 READY with an extra frame",
      frames(H_MDPW02, "01", H_ECHO, H_ECHO),
      "unexpected 1 extra frame(s)",
    ],
    ["0.2 READY without service", frames(H_MDPW02, "01"), "missing frame: service"],
    [
      "0.2 HEARTBEAT with an extra frame",
      frames(H_MDPW02, "05", ""),
      "unexpected 1 extra frame(s)",
    ],
    [
      "0.2 DISCONNECT with an extra frame",
      frames(H_MDPW02, "06", "00"),
      "unexpected 1 extra frame(s)",
    ],
    [
      "0.1 REPLY without client address",
      frames("", H_MDPW01, "03"),
      "missing frame: client address",
    ],
    [
      "0.1 REPLY with an empty client address (MDP-R12)",
      frames("", H_MDPW01, "03", "", "", H_WORLD),
      "client address frame is empty",
    ],
    [
      "0.1 REPLY without delimiter (MDP-R12)",
      frames("", H_MDPW01, "03", H_CLIENT),
      "missing frame: delimiter",
    ],
    [
      "0.1 REPLY with two address frames, i.e. a non-empty delimiter (MDP-R12)",
      frames("", H_MDPW01, "03", H_CLIENT, H_CLIENT, "", H_WORLD),
      "delimiter frame is not empty",
    ],
    [
      "0.2 PARTIAL with an empty client address",
      frames(H_MDPW02, "03", "", "", H_WORLD),
      "client address frame is empty",
    ],
    [
      "0.2 FINAL with a non-empty delimiter",
      frames(H_MDPW02, "04", H_CLIENT, H_WORLD),
      "delimiter frame is not empty",
    ],
    [
      "0.1 REQUEST with an empty client address",
      frames("", H_MDPW01, "02", "", "", H_WORLD),
      "client address frame is empty",
    ],
  ];
  for (const [name, wire, reason] of cases) {
    it(`MDP-R10 rejects ${name}: "${reason}"`, () => {
      rejects(() => decodeBrokerInbound(wire), reason);
    });
  }

  it("MDP-R15 codes of the other version are not accepted (0.1 worker with 0.2-only code 0x06)", () => {
    rejects(() => decodeBrokerInbound(frames("", H_MDPW01, "06")), "unknown command");
    // and 0x04 means HEARTBEAT in 0.1 but FINAL in 0.2
    expect(decodeBrokerInbound(frames("", H_MDPW01, "04"))).toMatchObject({
      message: { command: "heartbeat" },
    });
    rejects(() => decodeBrokerInbound(frames(H_MDPW02, "04")), "missing frame: client address");
  });
});

describe("rejections of decodeWorkerCommand and decodeClientReply", () => {
  it("MDP-R15 a version other than the one asked for: 'unexpected protocol version'", () => {
    rejects(
      () => decodeWorkerCommand(frames(H_MDPW02, "05"), "0.1"),
      "unexpected protocol version",
    );
    rejects(
      () => decodeWorkerCommand(frames("", H_MDPW01, "04"), "0.2"),
      "unexpected protocol version",
    );
    rejects(
      () => decodeClientReply(frames(H_MDPC02, "03", H_ECHO, H_HELLO), "0.1"),
      "unexpected protocol version",
    );
    rejects(
      () => decodeClientReply(frames("", H_MDPC01, H_ECHO, H_HELLO), "0.2"),
      "unexpected protocol version",
    );
  });

  it("MDP-R15 wrong or missing header", () => {
    rejects(() => decodeWorkerCommand([]), "missing frame: header");
    rejects(() => decodeWorkerCommand(frames("")), "missing frame: header");
    rejects(() => decodeWorkerCommand(frames("", H_MDPC01, "04")), "unexpected header");
    rejects(() => decodeWorkerCommand(frames(H_MDPC02, "05")), "unexpected header");
    rejects(() => decodeClientReply(frames("", H_MDPW01, H_ECHO, H_HELLO)), "unexpected header");
    rejects(() => decodeClientReply(frames(H_MDPW02, "03", H_ECHO, H_HELLO)), "unexpected header");
    rejects(() => decodeClientReply([]), "missing frame: header");
  });

  it("worker side: unknown command, missing command, bad REQUEST envelope (MDP-R12)", () => {
    rejects(() => decodeWorkerCommand(frames("", H_MDPW01)), "missing frame: command");
    rejects(() => decodeWorkerCommand(frames("", H_MDPW01, "09")), "unknown command");
    rejects(() => decodeWorkerCommand(frames(H_MDPW02, "ff")), "unknown command");
    rejects(
      () => decodeWorkerCommand(frames("", H_MDPW01, "02", "", "", H_HELLO)),
      "client address frame is empty",
    );
    rejects(
      () => decodeWorkerCommand(frames(H_MDPW02, "02", H_CLIENT, H_HELLO)),
      "delimiter frame is not empty",
    );
    rejects(
      () => decodeWorkerCommand(frames("", H_MDPW01, "05", "")),
      "unexpected 1 extra frame(s)",
    );
  });

  it("MDP-R10 client side: missing command, a REQUEST code, missing/empty/over-long service", () => {
    rejects(() => decodeClientReply(frames(H_MDPC02)), "missing frame: command");
    rejects(
      () => decodeClientReply(frames(H_MDPC02, "01", H_ECHO, H_HELLO)),
      "unexpected client command",
    );
    rejects(() => decodeClientReply(frames("", H_MDPC01)), "missing frame: service");
    rejects(() => decodeClientReply(frames("", H_MDPC01, "", H_HELLO)), "service frame is empty");
    rejects(
      () => decodeClientReply(frames("", H_MDPC01, "73".repeat(256), H_HELLO)),
      "service frame is longer than 255 bytes",
    );
  });
});

describe("rejections of the encoders", () => {
  it("MDP-R4 a client request without body frames", () => {
    rejects(
      () => encodeClientRequest("0.1", "echo", []),
      "a request needs at least one body frame",
    );
    rejects(
      () => encodeClientRequest("0.2", "echo", []),
      "a request needs at least one body frame",
    );
  });

  it("MDB-B6 empty and over-long service names (counted in UTF-8 bytes)", () => {
    rejects(() => encodeClientRequest("0.1", "", ["x"]), "service frame is empty");
    rejects(
      () => encodeClientRequest("0.2", "s".repeat(256), ["x"]),
      "service frame is longer than 255 bytes",
    );
    rejects(
      () => encodeClientRequest("0.1", "é".repeat(128), ["x"]),
      "service frame is longer than 255 bytes",
    );
    rejects(
      () => encodeWorkerCommand("0.1", { command: "ready", service: "" }),
      "service frame is empty",
    );
    rejects(
      () => encodeWorkerCommand("0.2", { command: "ready", service: "s".repeat(256) }),
      "service frame is longer than 255 bytes",
    );
    rejects(
      () => encodeClientReply("0.2", { service: "", body: [], final: true }),
      "service frame is empty",
    );
  });

  it("6.1 MDP/0.1 has no partial replies, neither towards the client nor from the worker", () => {
    rejects(
      () => encodeClientReply("0.1", { service: "echo", body: [hex(H_HELLO)], final: false }),
      "MDP/0.1 has no partial replies",
    );
    rejects(
      () =>
        encodeWorkerCommand("0.1", {
          command: "reply",
          client: CLIENT,
          body: [hex(H_HELLO)],
          final: false,
        }),
      "MDP/0.1 has no partial replies",
    );
  });
});

describe("codec robustness fixes (regression tests)", () => {
  // Regression (formerly: protocol.ts readRouted uses reader.rest() with no minimum): RFC 7 REPLY is "6 or more
  // frames" ([""]["MDPW01"][0x03][<C>][""][body...], body... = one or more frames, section 0.1
  // and 5.4), RFC 18 PARTIAL/FINAL 5 or more. A REPLY without a body frame is accepted, and the
  // broker then forwards a 3-frame REPLY [""]["MDPC01"][service] to the client (RFC 7: 4+ frames).
  it("MDP-R12/5.4 fixed: a worker REPLY/PARTIAL/FINAL without any body frame is rejected", () => {
    expect(() => decodeBrokerInbound(frames("", H_MDPW01, "03", H_CLIENT, ""))).toThrow(
      ProtocolError,
    );
    expect(() => decodeBrokerInbound(frames(H_MDPW02, "03", H_CLIENT, ""))).toThrow(ProtocolError);
    expect(() => decodeBrokerInbound(frames(H_MDPW02, "04", H_CLIENT, ""))).toThrow(ProtocolError);
  });

  // Same root cause on the receiving sides: a REQUEST with no body and a client REPLY with no
  // body (RFC 7 client REPLY: 4 or more frames) decode without error.
  it("5.4 fixed: a worker REQUEST or a client REPLY without any body frame is rejected", () => {
    expect(() => decodeWorkerCommand(frames("", H_MDPW01, "02", H_CLIENT, ""))).toThrow(
      ProtocolError,
    );
    expect(() => decodeClientReply(frames("", H_MDPC01, H_ECHO))).toThrow(ProtocolError);
    expect(() => decodeClientReply(frames(H_MDPC02, "03", H_ECHO))).toThrow(ProtocolError);
  });

  // Regression (formerly: readService decodes with toString("utf8"), checkedService re-encodes): a service frame
  // that is not valid UTF-8 decodes lossily (0xFF -> U+FFFD), so the name the broker answers with
  // is not the frame the peer sent (MDB-7: the reply carries the registered name), and a name of
  // <= 255 bytes can become > 255 bytes once re-encoded (each invalid byte turns into 3), which the
  // encoders then reject. The decoder should either reject non-UTF-8 service frames (RFC 7: a
  // printable string) or keep the bytes.
  it("MDB-7 fixed: a decoded service name re-encodes to the very same frame", () => {
    const binary = Buffer.from([0x65, 0xff, 0x6f]);
    let inbound: ReturnType<typeof decodeBrokerInbound> | undefined;
    try {
      inbound = decodeBrokerInbound([Buffer.alloc(0), MDPC01, binary, Buffer.from("x")]);
    } catch (error) {
      // rejecting a non-UTF-8 service name is an acceptable fix
      expect(error).toBeInstanceOf(ProtocolError);
      return;
    }
    if (inbound.side !== "client") throw new Error("unreachable");
    const reply = encodeClientReply("0.1", {
      service: inbound.request.service,
      body: [],
      final: true,
    });
    expect(reply[2]?.toString("hex")).toBe(binary.toString("hex"));
  });

  it("MDB-B7 fixed: every service name the decoder accepts can be encoded in a reply", () => {
    const binary = Buffer.concat([Buffer.from("mmi."), Buffer.alloc(100, 0xff)]); // 104 bytes
    let inbound: ReturnType<typeof decodeBrokerInbound> | undefined;
    try {
      inbound = decodeBrokerInbound([Buffer.alloc(0), MDPC01, binary, Buffer.from("x")]);
    } catch (error) {
      expect(error).toBeInstanceOf(ProtocolError);
      return;
    }
    if (inbound.side !== "client") throw new Error("unreachable");
    const service = inbound.request.service;
    // throws "service frame is longer than 255 bytes": 4 + 100 x 3 bytes
    expect(() => encodeClientReply("0.1", { service, body: [], final: true })).not.toThrow();
  });
});
