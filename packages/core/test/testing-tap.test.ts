import { describe, expect, it } from "vitest";
import type { Dealer } from "zeromq";
import { ClosedError, TimeoutError } from "../src/errors.js";
import { allocateAddress, Tap, UnexpectedMessageError } from "../src/testing/index.js";

const text = (frames: Buffer[]): string[] => frames.map((frame) => frame.toString("latin1"));

describe("Tap", () => {
  it("router and dealer exchange exact frames, empty ones included", async () => {
    await using router = await Tap.router();
    expect(router.endpoint).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);
    await using dealer = await Tap.dealer(router.endpoint, { routingId: "client-1" });

    await dealer.send(["", "MDPC01", new Uint8Array([0, 1, 2]), "", Buffer.from("end")]);
    const request = await router.receive();
    expect(request).toHaveLength(6);
    expect(text(request)).toEqual(["client-1", "", "MDPC01", "\u0000\u0001\u0002", "", "end"]);
    expect(request.every(Buffer.isBuffer)).toBe(true);

    await router.send([request[0]!, "", "reply", ""]);
    expect(text(await dealer.receive())).toEqual(["", "reply", ""]);
  });

  it("accepts a binary routing id", async () => {
    const id = Buffer.from([1, 0, 255, 7]);
    await using router = await Tap.router();
    await using dealer = await Tap.dealer(router.endpoint, { routingId: id });
    await dealer.send(["x"]);
    const [from, body] = await router.receive();
    expect(from).toEqual(id);
    expect(body?.toString()).toBe("x");
  });

  it("receive times out with code TIMEOUT and loses nothing", async () => {
    await using router = await Tap.router();
    await using dealer = await Tap.dealer(router.endpoint);
    const error = await router.receive(50).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error).toMatchObject({ code: "TIMEOUT", timeoutMs: 50 });
    await dealer.send(["after"]);
    expect(text(await router.receive()).at(-1)).toBe("after");
  });

  it("expectNothing resolves on silence and rejects with the message otherwise", async () => {
    await using router = await Tap.router();
    await using dealer = await Tap.dealer(router.endpoint, { routingId: "d" });
    await router.expectNothing(30);
    await dealer.send(["", "surprise"]);
    const error = await router.expectNothing(5000).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(UnexpectedMessageError);
    expect(text((error as UnexpectedMessageError).frames)).toEqual(["d", "", "surprise"]);
    expect((error as Error).message).toContain("[008] surprise");
  });

  it("a bound dealer with no peer times out on send", async () => {
    // A connecting DEALER queues at once; a bound one has nowhere to queue until a peer comes.
    await using dealer = await Tap.bindDealer();
    await expect(dealer.send(["x"], 50)).rejects.toMatchObject({ code: "TIMEOUT" });
  });

  it("bindDealer and connectRouter talk as soon as connectRouter resolves", async () => {
    await using server = await Tap.bindDealer({ bind: await allocateAddress("ipc") });
    expect(server.endpoint.startsWith("ipc://")).toBe(true);
    await using client = await Tap.connectRouter(server.endpoint, { peerId: "server" });
    // A ROUTER drops messages to unknown peers: this one only arrives after the handshake.
    await client.send(["server", "ping"]);
    expect(text(await server.receive())).toEqual(["ping"]);
    await server.send(["pong"]);
    expect(text(await client.receive())).toEqual(["server", "pong"]);
  });

  it("connectRouter times out when nobody listens", async () => {
    const error = await Tap.connectRouter(await allocateAddress(), { timeoutMs: 50 }).catch(
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(TimeoutError);
  });

  it("close is idempotent, with linger 0, and later calls fail with ClosedError", async () => {
    const router = await Tap.router();
    const dealer = await Tap.dealer(router.endpoint);
    expect((dealer.socket as Dealer).linger).toBe(0);
    dealer.close();
    dealer.close();
    expect(dealer.closed).toBe(true);
    await expect(dealer.receive()).rejects.toBeInstanceOf(ClosedError);
    await expect(dealer.send(["x"])).rejects.toBeInstanceOf(ClosedError);
    await router[Symbol.asyncDispose]();
    expect(router.socket.closed).toBe(true);
  });

  it("closing fails a pending receive with ClosedError, not a timeout", async () => {
    const router = await Tap.router();
    const pending = router.receive(5000).catch((err: unknown) => err);
    router.close();
    expect(await pending).toBeInstanceOf(ClosedError);
  });

  it("binds where told", async () => {
    const address = await allocateAddress("inproc");
    await using router = await Tap.router({ bind: address });
    expect(router.endpoint).toBe(address);
    await using dealer = await Tap.dealer(address);
    await dealer.send(["hi"]);
    expect(text(await router.receive()).at(-1)).toBe("hi");
  });
});
