/**
 * The Majordomo Management Interface (RFC 8/MMI) from the client side: services in the `mmi.`
 * namespace, answered by the broker itself.
 * @module
 */
import { type FrameLike, InvalidArgumentError, ProtocolError } from "@zmq-patterns/core";
import type { MajordomoClient, MajordomoRequestOptions } from "./client.js";
import { isMmiService, type MMI_CODES, MMI_PREFIX, MMI_SERVICE } from "./protocol.js";

/** An MMI reply code: `"200"` found, `"404"` not found, `"501"` not implemented, or another a broker may use. */
export type MmiCode = (typeof MMI_CODES)[keyof typeof MMI_CODES] | (string & {});

/**
 * Sends a request to a management service (`mmi.*`) and resolves with the broker's reply body.
 * The broker answers at once, whether or not workers exist, with the last body frame replaced by
 * its code (the reference broker's convention).
 *
 * @throws {@link @zmq-patterns/core!InvalidArgumentError | InvalidArgumentError} at once when
 * `service` is not in the `mmi.` namespace; the client's rejections otherwise (a
 * {@link @zmq-patterns/core!RequestAbandonedError | RequestAbandonedError} when no broker answers).
 */
export function mmiQuery(
  client: MajordomoClient,
  service: string,
  body: FrameLike | readonly FrameLike[],
  options?: MajordomoRequestOptions,
): Promise<Buffer[]> {
  if (!isMmiService(service)) {
    throw new InvalidArgumentError(
      `MMI services start with "${MMI_PREFIX}", got ${JSON.stringify(service)}`,
    );
  }
  return client.request(service, body, options);
}

/**
 * Asks the broker whether `name` has workers (`mmi.service`, MMI-R2): `"200"` when at least one
 * is registered, `"404"` when none; a broker without MMI would answer `"501"` (MMI-R3).
 *
 * @throws {@link @zmq-patterns/core!ProtocolError | ProtocolError} (as a rejection) when the reply
 * has no frame; the client's rejections otherwise.
 *
 * @example
 * ```ts
 * const client = new MajordomoClient({ broker: "tcp://localhost:5555" });
 * if ((await mmiService(client, "echo")) === MMI_CODES.found) console.log("echo is up");
 * ```
 */
export async function mmiService(
  client: MajordomoClient,
  name: string,
  options?: MajordomoRequestOptions,
): Promise<MmiCode> {
  const reply = await mmiQuery(client, MMI_SERVICE, [name], options);
  return mmiCode(reply);
}

/**
 * The code of an MMI reply: its last frame, as text.
 *
 * @throws {@link @zmq-patterns/core!ProtocolError | ProtocolError} when the reply has no frame.
 */
export function mmiCode(reply: readonly Buffer[]): MmiCode {
  const code = reply.at(-1);
  if (code === undefined) throw new ProtocolError("MMI reply without a code");
  return code.toString("utf8");
}
