/** Option validation shared by the Majordomo roles; not part of the public API. */
import { InvalidArgumentError } from "@zmq-patterns/core";
import { MAX_SERVICE_NAME_BYTES, type MdpVersion } from "../protocol.js";

/** Validates a service name a client may address (`mmi.*` included). */
export function checkRequestService(service: string): string {
  if (typeof service !== "string" || service.length === 0) {
    throw new InvalidArgumentError("service must be a non-empty string");
  }
  if (Buffer.byteLength(service) > MAX_SERVICE_NAME_BYTES) {
    throw new InvalidArgumentError(`service must be at most ${MAX_SERVICE_NAME_BYTES} bytes`);
  }
  return service;
}

/** Validates a protocol version option. */
export function checkVersion(version: MdpVersion): MdpVersion {
  if (version !== "0.1" && version !== "0.2") {
    throw new InvalidArgumentError(`version must be "0.1" or "0.2", got ${String(version)}`);
  }
  return version;
}
