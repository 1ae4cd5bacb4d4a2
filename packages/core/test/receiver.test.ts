import { afterEach, describe, expect, it } from "vitest";
import { Dealer, Router } from "zeromq";
import { AbortedError, ClosedError, CloseStack, Receiver, TimeoutError } from "../src/index.js";

const stacks: CloseStack[] = [];
afterEach(async () => {
  for (const s of stacks.splice(0)) await s.close();
});

async function pair() {
  const resources = new CloseStack();
  stacks.push(resources);
  const router = resources.socket(new Router());
  await router.bind("tcp://127.0.0.1:*");
  const dealer = resources.socket(new Dealer());
  dealer.connect(router.lastEndpoint as string);
  const receiver = resources.use(new Receiver(dealer));
  // Learn the dealer's routing id so the router can talk to it.
  await dealer.send(["hello"]);
  const [id] = await router.receive();
  return { router, dealer, receiver, id: id as Buffer, resources };
}

describe("Receiver", () => {
  it("rejects with TimeoutError at the deadline and loses nothing that arrives later", async () => {
    const { router, receiver, id } = await pair();
    const error = await receiver.receive({ timeoutMs: 50 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error).toMatchObject({ code: "TIMEOUT", timeoutMs: 50 });
    await router.send([id, "late"]);
    const message = await receiver.receive({ timeoutMs: 5000 });
    expect(message.map(String)).toEqual(["late"]);
  });

  it("rejects with AbortedError when the signal aborts, and at once when already aborted", async () => {
    const { router, receiver, id } = await pair();
    const controller = new AbortController();
    const pending = receiver.receive({ signal: controller.signal });
    controller.abort();
    await expect(pending).rejects.toBeInstanceOf(AbortedError);
    await expect(receiver.receive({ signal: AbortSignal.abort() })).rejects.toMatchObject({
      code: "ABORTED",
    });
    await router.send([id, "after abort"]);
    expect((await receiver.receive({ timeoutMs: 5000 })).map(String)).toEqual(["after abort"]);
  });

  it("hands messages out in arrival order to callers in call order", async () => {
    const { router, receiver, id } = await pair();
    const calls = [receiver.receive(), receiver.receive(), receiver.receive()];
    for (const text of ["1", "2", "3"]) await router.send([id, text]);
    expect((await Promise.all(calls)).map((m) => String(m[0]))).toEqual(["1", "2", "3"]);
  });

  it("buffers up to its capacity, then leaves messages in ZeroMQ's queue", async () => {
    const resources = new CloseStack();
    stacks.push(resources);
    const router = resources.socket(new Router());
    await router.bind("tcp://127.0.0.1:*");
    const dealer = resources.socket(new Dealer());
    dealer.connect(router.lastEndpoint as string);
    const receiver = resources.use(new Receiver(router, { capacity: 5 }));
    for (let i = 0; i < 20; i++) await dealer.send([String(i)]);
    const got: string[] = [];
    for (let i = 0; i < 20; i++) got.push(String((await receiver.receive({ timeoutMs: 5000 }))[1]));
    expect(got).toEqual(Array.from({ length: 20 }, (_, i) => String(i)));
    expect(receiver.buffered).toBeLessThanOrEqual(5);
  });

  it("ends when closed or when its socket closes", async () => {
    const { receiver, resources } = await pair();
    const pending = receiver.receive();
    receiver.close();
    receiver.close();
    await expect(pending).rejects.toBeInstanceOf(ClosedError);
    await expect(receiver.receive()).rejects.toBeInstanceOf(ClosedError);

    const other = await pair();
    const waiting = other.receiver.receive();
    await other.resources.close();
    await expect(waiting).rejects.toBeInstanceOf(ClosedError);
    expect(other.receiver.closed).toBe(true);
    await resources.close();
  });

  it("iterates until the socket closes", async () => {
    const { router, receiver, id, resources } = await pair();
    for (const text of ["a", "b"]) await router.send([id, text]);
    const seen: string[] = [];
    for await (const message of receiver) {
      seen.push(String(message[0]));
      if (seen.length === 2) void resources.close();
    }
    expect(seen).toEqual(["a", "b"]);
  });
});
