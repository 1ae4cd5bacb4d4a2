/**
 * The Majordomo Protocol: MDP/0.1 (RFC 7/MDP, the default) and MDP/0.2 (RFC 18/MDP), with the
 * Majordomo Management Interface (RFC 8/MMI). Constants and pure codecs between frames and typed
 * messages; no sockets, no timers.
 *
 * Frames are given as a peer's DEALER sees them (for 0.1 with the leading empty frame; a REQ
 * client sees the same without it). A ROUTER sees the same with the peer's identity in front.
 * @module
 */
import {
  EMPTY_FRAME,
  type FrameLike,
  FrameReader,
  ProtocolError,
  toFrames,
} from "@zmq-patterns/core";

/** The protocol versions: `"0.1"` is RFC 7 (stable), `"0.2"` is RFC 18 (draft, streaming replies). */
export type MdpVersion = "0.1" | "0.2";

/** Client header of MDP/0.1. */
export const MDPC01: Buffer = Buffer.from("MDPC01");
/** Worker header of MDP/0.1. */
export const MDPW01: Buffer = Buffer.from("MDPW01");
/** Client header of MDP/0.2. */
export const MDPC02: Buffer = Buffer.from("MDPC02");
/** Worker header of MDP/0.2. */
export const MDPW02: Buffer = Buffer.from("MDPW02");

/** Worker command codes of MDP/0.1 (RFC 7). */
export const MDPW01_COMMANDS = {
  ready: 0x01,
  request: 0x02,
  reply: 0x03,
  heartbeat: 0x04,
  disconnect: 0x05,
} as const;
/** Worker command codes of MDP/0.2 (RFC 18). */
export const MDPW02_COMMANDS = {
  ready: 0x01,
  request: 0x02,
  partial: 0x03,
  final: 0x04,
  heartbeat: 0x05,
  disconnect: 0x06,
} as const;
/** Client command codes of MDP/0.2 (RFC 18); MDP/0.1 client messages carry no command. */
export const MDPC02_COMMANDS = { request: 0x01, partial: 0x02, final: 0x03 } as const;

/** The namespace the broker answers itself (RFC 8/MMI). */
export const MMI_PREFIX = "mmi.";
/** The MMI service that tells whether a service has workers. */
export const MMI_SERVICE = "mmi.service";
/** MMI reply codes: the service has workers, has none, or the `mmi.*` service is not implemented. */
export const MMI_CODES = { found: "200", notFound: "404", notImplemented: "501" } as const;

/** The Guide's broker endpoint, for clients and workers alike. */
export const DEFAULT_BROKER_BIND = "tcp://*:5555";
/** The broker as clients and workers reach it. */
export const DEFAULT_BROKER_ENDPOINT = "tcp://localhost:5555";
/** The Guide's heartbeat interval for broker and workers. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 2500;
/** The Guide's liveness: silent intervals before a peer is considered dead. */
export const DEFAULT_LIVENESS = 3;
/** The Guide's worker reconnect delay. */
export const DEFAULT_RECONNECT_MS = 2500;
/** The Guide's client timeout per attempt. */
export const DEFAULT_TIMEOUT_MS = 2500;
/** The Guide's client attempts per request. */
export const DEFAULT_RETRIES = 3;
/** Longest service name accepted, in bytes (bounds what a peer can make the broker store). */
export const MAX_SERVICE_NAME_BYTES = 255;

/** A worker command, whichever the version. `reply` is 0.1's REPLY or 0.2's PARTIAL/FINAL. */
export type WorkerCommand =
  | { command: "ready"; service: string }
  | { command: "request"; client: Buffer; body: Buffer[] }
  | { command: "reply"; client: Buffer; body: Buffer[]; final: boolean }
  | { command: "heartbeat" }
  | { command: "disconnect" };

/** A client request. */
export interface ClientRequest {
  service: string;
  body: Buffer[];
}

/** A reply to a client; 0.1 replies are always `final`. */
export interface ClientReply {
  service: string;
  body: Buffer[];
  final: boolean;
}

/** What reaches a broker, once the sender's identity is taken off. */
export type BrokerInbound =
  | { side: "client"; version: MdpVersion; request: ClientRequest }
  | { side: "worker"; version: MdpVersion; message: WorkerCommand };

/**
 * Decodes what a broker received (the frames after the sender identity), recognising the side
 * and the version by the header: `["" ]["MDPC01"|"MDPW01"]...` is 0.1, `["MDPC02"|"MDPW02"]...` 0.2.
 *
 * @throws {@link @zmq-patterns/core!ProtocolError | ProtocolError} naming what is wrong.
 */
export function decodeBrokerInbound(frames: readonly Buffer[]): BrokerInbound {
  const reader = new FrameReader(frames);
  const first = reader.frame("header");
  let header = first;
  if (first.byteLength === 0) {
    header = reader.frame("header");
    if (header.equals(MDPC01))
      return { side: "client", version: "0.1", request: readClientRequest(reader) };
    if (header.equals(MDPW01))
      return { side: "worker", version: "0.1", message: readWorkerCommand(reader, "0.1") };
    throw new ProtocolError("unknown protocol header");
  }
  if (header.equals(MDPC02)) {
    if (reader.byte("command") !== MDPC02_COMMANDS.request)
      throw new ProtocolError("unexpected client command");
    return { side: "client", version: "0.2", request: readClientRequest(reader) };
  }
  if (header.equals(MDPW02))
    return { side: "worker", version: "0.2", message: readWorkerCommand(reader, "0.2") };
  throw new ProtocolError("unknown protocol header");
}

/** Encodes a worker command as the worker's DEALER sends it and receives it. */
export function encodeWorkerCommand(version: MdpVersion, message: WorkerCommand): Buffer[] {
  const head = version === "0.1" ? [EMPTY_FRAME, MDPW01] : [MDPW02];
  const codes = version === "0.1" ? MDPW01_COMMANDS : MDPW02_COMMANDS;
  switch (message.command) {
    case "ready":
      return [...head, byte(codes.ready), checkedService(message.service)];
    case "request":
      return [...head, byte(codes.request), ...routed(message.client, message.body)];
    case "reply": {
      const code =
        version === "0.1"
          ? replyCode01(message.final)
          : message.final
            ? MDPW02_COMMANDS.final
            : MDPW02_COMMANDS.partial;
      return [...head, byte(code), ...routed(message.client, message.body)];
    }
    case "heartbeat":
      return [...head, byte(codes.heartbeat)];
    case "disconnect":
      return [...head, byte(codes.disconnect)];
  }
}

/**
 * Decodes a worker command as the worker's DEALER received it (from a broker of `version`, or of
 * either version when omitted).
 *
 * @throws {@link @zmq-patterns/core!ProtocolError | ProtocolError} naming what is wrong.
 */
export function decodeWorkerCommand(
  frames: readonly Buffer[],
  version?: MdpVersion,
): WorkerCommand {
  const reader = new FrameReader(frames);
  const seen: MdpVersion = frames[0]?.byteLength === 0 ? "0.1" : "0.2";
  if (version !== undefined && seen !== version)
    throw new ProtocolError("unexpected protocol version");
  if (seen === "0.1") {
    reader.empty();
    reader.expect("header", MDPW01);
  } else {
    reader.expect("header", MDPW02);
  }
  return readWorkerCommand(reader, seen);
}

/** Encodes a client request as a DEALER sends it (a REQ sends the same without the first, empty frame in 0.1). */
export function encodeClientRequest(
  version: MdpVersion,
  service: string,
  body: readonly FrameLike[],
): Buffer[] {
  const frames = toFrames(body);
  if (frames.length === 0) throw new ProtocolError("a request needs at least one body frame");
  const name = checkedService(service);
  return version === "0.1"
    ? [EMPTY_FRAME, MDPC01, name, ...frames]
    : [MDPC02, byte(MDPC02_COMMANDS.request), name, ...frames];
}

/** Encodes a reply to a client as the client's DEALER receives it. */
export function encodeClientReply(version: MdpVersion, reply: ClientReply): Buffer[] {
  const name = checkedService(reply.service);
  if (reply.body.length === 0) throw new ProtocolError("missing frame: body");
  if (version === "0.1") {
    if (!reply.final) throw new ProtocolError("MDP/0.1 has no partial replies");
    return [EMPTY_FRAME, MDPC01, name, ...reply.body];
  }
  const code = reply.final ? MDPC02_COMMANDS.final : MDPC02_COMMANDS.partial;
  return [MDPC02, byte(code), name, ...reply.body];
}

/**
 * Decodes a reply as a client's DEALER received it (0.1 with the leading empty frame; pass the
 * frames of a REQ with `""` put back in front).
 *
 * @throws {@link @zmq-patterns/core!ProtocolError | ProtocolError} naming what is wrong.
 */
export function decodeClientReply(frames: readonly Buffer[], version?: MdpVersion): ClientReply {
  const reader = new FrameReader(frames);
  const seen: MdpVersion = frames[0]?.byteLength === 0 ? "0.1" : "0.2";
  if (version !== undefined && seen !== version)
    throw new ProtocolError("unexpected protocol version");
  let final = true;
  if (seen === "0.1") {
    reader.empty();
    reader.expect("header", MDPC01);
  } else {
    reader.expect("header", MDPC02);
    const code = reader.byte("command");
    if (code === MDPC02_COMMANDS.partial) final = false;
    else if (code !== MDPC02_COMMANDS.final) throw new ProtocolError("unexpected client command");
  }
  const service = readService(reader);
  return { service, body: reader.rest("body", 1), final };
}

/** True when `service` is in the MMI namespace (`mmi.*`). */
export function isMmiService(service: string): boolean {
  return service.startsWith(MMI_PREFIX);
}

function readClientRequest(reader: FrameReader): ClientRequest {
  const service = readService(reader);
  return { service, body: reader.rest("body", 1) };
}

function readWorkerCommand(reader: FrameReader, version: MdpVersion): WorkerCommand {
  const code = reader.byte("command");
  const codes = version === "0.1" ? MDPW01_COMMANDS : MDPW02_COMMANDS;
  switch (code) {
    case codes.ready: {
      const service = readService(reader);
      reader.end();
      return { command: "ready", service };
    }
    case codes.request:
      return { command: "request", ...readRouted(reader) };
    case codes.heartbeat:
      reader.end();
      return { command: "heartbeat" };
    case codes.disconnect:
      reader.end();
      return { command: "disconnect" };
  }
  if (version === "0.1" && code === MDPW01_COMMANDS.reply)
    return { command: "reply", ...readRouted(reader), final: true };
  if (version === "0.2" && code === MDPW02_COMMANDS.partial)
    return { command: "reply", ...readRouted(reader), final: false };
  if (version === "0.2" && code === MDPW02_COMMANDS.final)
    return { command: "reply", ...readRouted(reader), final: true };
  throw new ProtocolError("unknown command");
}

/**
 * MDP-R12: exactly one client address frame, then an empty frame, then the body: at least one
 * frame (RFC 7 REQUEST and REPLY have 6 or more frames, RFC 18 REQUEST, PARTIAL and FINAL 5 or more).
 */
function readRouted(reader: FrameReader): { client: Buffer; body: Buffer[] } {
  const client = reader.nonEmpty("client address");
  reader.empty();
  return { client, body: reader.rest("body", 1) };
}

/** A service name is a non-empty UTF-8 string of at most 255 bytes, returned byte for byte in replies. */
function readService(reader: FrameReader): string {
  const frame = reader.nonEmpty("service");
  if (frame.byteLength > MAX_SERVICE_NAME_BYTES) {
    throw new ProtocolError(`service frame is longer than ${MAX_SERVICE_NAME_BYTES} bytes`);
  }
  const name = frame.toString("utf8");
  // Invalid UTF-8 would be replaced by U+FFFD and no longer match the bytes the peer sent.
  if (Buffer.byteLength(name) !== frame.byteLength || !Buffer.from(name).equals(frame)) {
    throw new ProtocolError("service frame is not UTF-8");
  }
  return name;
}

function checkedService(service: string): Buffer {
  const name = Buffer.from(service);
  if (name.byteLength === 0) throw new ProtocolError("service frame is empty");
  if (name.byteLength > MAX_SERVICE_NAME_BYTES) {
    throw new ProtocolError(`service frame is longer than ${MAX_SERVICE_NAME_BYTES} bytes`);
  }
  return name;
}

function routed(client: Buffer, body: readonly Buffer[]): Buffer[] {
  if (client.byteLength === 0) throw new ProtocolError("client address frame is empty");
  if (body.length === 0) throw new ProtocolError("missing frame: body");
  return [client, EMPTY_FRAME, ...body];
}

function replyCode01(final: boolean): number {
  if (!final) throw new ProtocolError("MDP/0.1 has no partial replies");
  return MDPW01_COMMANDS.reply;
}

function byte(value: number): Buffer {
  return Buffer.from([value]);
}
