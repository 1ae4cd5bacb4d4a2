/**
 * Validation of options and arguments: a bad value fails fast with an
 * {@link InvalidArgumentError} that names the option.
 * @module
 */
import { InvalidArgumentError } from "./errors.js";

/** Returns `value`, or throws unless it is an integer >= `min` (default 1). */
export function checkInteger(
  name: string,
  value: number,
  min = 1,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
    throw new InvalidArgumentError(`${name} must be an integer ${range}, got ${String(value)}`);
  }
  return value;
}

/** Returns `value`, or throws unless it is a finite number of milliseconds >= `min` (default 1). */
export function checkDuration(name: string, value: number, min = 1): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < min) {
    throw new InvalidArgumentError(
      `${name} must be a number of milliseconds >= ${min}, got ${String(value)}`,
    );
  }
  return value;
}

const ENDPOINT =
  /^(tcp:\/\/[^\s:]+:(\d+|\*)|tcp:\/\/\[[0-9a-fA-F:.]+\]:(\d+|\*)|ipc:\/\/\S+|inproc:\/\/\S+|(pgm|epgm|ws|wss|udp|vmci):\/\/\S+)$/;

/**
 * Returns `value`, or throws unless it looks like a ZeroMQ endpoint
 * (`tcp://host:port`, `tcp://*:port`, `ipc://path`, `inproc://name`, ...).
 */
export function checkEndpoint(name: string, value: string): string {
  if (typeof value !== "string" || !ENDPOINT.test(value)) {
    throw new InvalidArgumentError(
      `${name} must be a ZeroMQ endpoint such as tcp://localhost:5555, got ${typeof value === "string" ? JSON.stringify(value) : String(value)}`,
    );
  }
  const port = /^tcp:\/\/.*:(\d+)$/.exec(value)?.[1];
  if (port !== undefined && Number(port) > 65535) {
    throw new InvalidArgumentError(`${name} has a port above 65535: ${value}`);
  }
  return value;
}
