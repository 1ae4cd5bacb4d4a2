import { afterEach, describe, expect, it } from "vitest";
import { Dealer, Router } from "zeromq";
import { ClosedError, CloseStack, Receiver, SendQueue } from "../src/index.js";

const stack: CloseStack[] = [];
afterEach(async () => {
  for (const s of stack.splice(0)) await s.close();
});

async function pair() {
  const resources = new CloseStack();
  stack.push(resources);
  const router = resources.socket(new Router());
  await router.bind("tcp://127.0.0.1:*");
  const dealer = resources.socket(new Dealer());
  dealer.connect(router.lastEndpoint as string);
  return { router, dealer };
}

describe("SendQueue", () => {
  it("serialises many concurrent senders on one socket: no EBUSY, call order kept", async () => {
    const { router, dealer } = await pair();
    const queue = new SendQueue(dealer, { capacity: 100 });
    const senders = 50;
    const perSender = 200;
    const order: string[] = [];
    const sends: Promise<void>[] = [];
    // Interleave the senders' calls; the queue must preserve exactly this order.
    for (let i = 0; i < perSender; i++) {
      for (let s = 0; s < senders; s++) {
        const text = `${s}:${i}`;
        order.push(text);
        sends.push(queue.send([text]));
      }
    }
    const receiver = new Receiver(router, { capacity: senders * perSender });
    await Promise.all(sends);
    const received: string[] = [];
    for (let n = 0; n < senders * perSender; n++) {
      const [, body] = await receiver.receive({ timeoutMs: 5000 });
      received.push(String(body));
    }
    expect(received).toEqual(order);
    receiver.close();
  });

  it("bounds what it holds: trySend refuses when full and send waits for room", async () => {
    // A DEALER with no peer cannot send, so the first message stays pending in the socket and
    // the queue fills up behind it.
    const resources = new CloseStack();
    stack.push(resources);
    const dealer = resources.socket(new Dealer({ sendHighWaterMark: 1 }));
    const queue = new SendQueue(dealer, { capacity: 3 });
    expect(queue.trySend(["a"])).toBe(true);
    expect(queue.trySend(["b"])).toBe(true);
    expect(queue.trySend(["c"])).toBe(true);
    expect(queue.trySend(["d"])).toBe(false);
    let settled = false;
    const waiting = queue.send(["e"]).then(
      () => (settled = true),
      (error: unknown) => error,
    );
    expect(queue.length).toBe(4);
    expect(queue.trySend(["f"])).toBe(false);

    // Give the socket a peer: everything queued drains in order, including the waiter.
    const router = resources.socket(new Router());
    await router.bind("tcp://127.0.0.1:*");
    dealer.connect(router.lastEndpoint as string);
    const receiver = new Receiver(router);
    const got: string[] = [];
    for (let i = 0; i < 4; i++) got.push(String((await receiver.receive({ timeoutMs: 5000 }))[1]));
    expect(got).toEqual(["a", "b", "c", "e"]);
    await waiting;
    expect(settled).toBe(true);
    await queue.drain();
    expect(queue.length).toBe(0);
    receiver.close();
  });

  it("rejects queued and later sends with ClosedError once closed", async () => {
    const resources = new CloseStack();
    stack.push(resources);
    const dealer = resources.socket(new Dealer());
    const queue = new SendQueue(dealer, { capacity: 1 });
    const first = queue.send(["pending"]);
    const second = queue.send(["waiting"]);
    queue.close();
    queue.close();
    await expect(first).rejects.toBeInstanceOf(ClosedError);
    await expect(second).rejects.toBeInstanceOf(ClosedError);
    await expect(queue.send(["late"])).rejects.toMatchObject({ code: "CLOSED" });
    expect(queue.trySend(["late"])).toBe(false);
  });

  it("fails everything when the socket closes under it", async () => {
    const resources = new CloseStack();
    stack.push(resources);
    const dealer = resources.socket(new Dealer());
    const queue = new SendQueue(dealer);
    const pending = queue.send(["x"]);
    const after = queue.send(["y"]);
    await resources.close();
    await expect(pending).rejects.toBeDefined();
    await expect(after).rejects.toBeDefined();
    expect(queue.closed).toBe(true);
  });

  it("reports trySend failures to onError", async () => {
    const resources = new CloseStack();
    stack.push(resources);
    const errors: unknown[] = [];
    const dealer = resources.socket(new Dealer());
    const queue = new SendQueue(dealer, { onError: (error) => errors.push(error) });
    queue.trySend(["x"]);
    await resources.close();
    await queue.drain();
    expect(errors.length).toBe(1);
  });

  it("rejects a bad capacity", () => {
    expect(() => new SendQueue(new Dealer({ linger: 0 }), { capacity: 0 })).toThrow(/capacity/);
  });
});
