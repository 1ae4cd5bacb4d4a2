/**
 * What the broker-level tests share: raw MDP frames in both versions, event waits and a broker on
 * a fresh address. Frames are spelled out byte by byte on purpose, independently of protocol.ts,
 * so the tests check the codec rather than repeat it.
 */
import type { EventEmitter } from "node:events";
import { allocateAddress } from "@zmq-patterns/core/testing";
import {
  MajordomoBroker,
  type MajordomoBrokerEvents,
  type MajordomoBrokerOptions,
} from "../src/broker.js";

export const E = Buffer.alloc(0);
export const B = (text: string): Buffer => Buffer.from(text);
export const byte = (value: number): Buffer => Buffer.from([value]);
export const MDPC01 = B("MDPC01");
export const MDPW01 = B("MDPW01");
export const MDPC02 = B("MDPC02");
export const MDPW02 = B("MDPW02");

export type Version = "0.1" | "0.2";
const frame = (value: string | Buffer): Buffer => (typeof value === "string" ? B(value) : value);

/** Worker commands (W->B), as a worker's DEALER sends them. */
export const READY = (v: Version, service: string | Buffer): Buffer[] =>
  v === "0.1" ? [E, MDPW01, byte(1), frame(service)] : [MDPW02, byte(1), frame(service)];
export const HEARTBEAT = (v: Version): Buffer[] =>
  v === "0.1" ? [E, MDPW01, byte(4)] : [MDPW02, byte(5)];
export const DISCONNECT = (v: Version): Buffer[] =>
  v === "0.1" ? [E, MDPW01, byte(5)] : [MDPW02, byte(6)];
export const REPLY01 = (client: Buffer, ...body: Buffer[]): Buffer[] => [
  E,
  MDPW01,
  byte(3),
  client,
  E,
  ...body,
];
export const PARTIAL02 = (client: Buffer, ...body: Buffer[]): Buffer[] => [
  MDPW02,
  byte(3),
  client,
  E,
  ...body,
];
export const FINAL02 = (client: Buffer, ...body: Buffer[]): Buffer[] => [
  MDPW02,
  byte(4),
  client,
  E,
  ...body,
];

/** Client requests (C->B), as a client's DEALER sends them. */
export const REQUEST = (v: Version, service: string | Buffer, ...body: Buffer[]): Buffer[] =>
  v === "0.1" ? [E, MDPC01, frame(service), ...body] : [MDPC02, byte(1), frame(service), ...body];
export const REQUEST01 = (service: string | Buffer, ...body: Buffer[]): Buffer[] =>
  REQUEST("0.1", service, ...body);

/** True for a broker HEARTBEAT of either version. */
export function isHeartbeat(frames: readonly Buffer[]): boolean {
  const [a, b, c] = frames;
  if (frames.length === 3 && a?.byteLength === 0 && b?.equals(MDPW01) && c?.equals(byte(4)))
    return true;
  return frames.length === 2 && a?.equals(MDPW02) === true && b?.equals(byte(5)) === true;
}

type Events = MajordomoBrokerEvents;

/** The next `event` whose payload matches; register it before causing the event. */
export function nextEvent<K extends keyof Events>(
  broker: MajordomoBroker,
  event: K,
  match: (payload: Events[K][0]) => boolean = () => true,
  timeoutMs = 2000,
): Promise<Events[K][0]> {
  const emitter = broker as unknown as EventEmitter;
  return new Promise((resolve, reject) => {
    const listener = (payload: Events[K][0]): void => {
      if (!match(payload)) return;
      clearTimeout(timer);
      emitter.off(event, listener as (...args: unknown[]) => void);
      resolve(payload);
    };
    const timer = setTimeout(() => {
      emitter.off(event, listener as (...args: unknown[]) => void);
      reject(new Error(`no ${event} event within ${timeoutMs} ms`));
    }, timeoutMs);
    emitter.on(event, listener as (...args: unknown[]) => void);
  });
}

/** A broker on a fresh address, closed by the caller's cleanup list. */
export async function startBroker(
  cleanup: Array<{ close(): unknown }>,
  options: MajordomoBrokerOptions = {},
): Promise<{ broker: MajordomoBroker; endpoint: string }> {
  const broker = await MajordomoBroker.start({
    bind: await allocateAddress(),
    heartbeatIntervalMs: 1000,
    // Tap workers heartbeat only where a test says so; a long liveness keeps a loaded machine
    // from expiring them. Tests of expiry set their own.
    liveness: 10,
    ...options,
  });
  cleanup.push(broker);
  return { broker, endpoint: broker.endpoints[0] as string };
}
