import { allocateAddress, Tap } from "@zmq-patterns/core/testing";
import { afterEach, describe, expect, it } from "vitest";
import { MajordomoBroker } from "../src/broker.js";

const E = Buffer.alloc(0);
const cleanup: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const item of cleanup.splice(0).reverse()) await item.close();
});

describe("MajordomoBroker smoke", () => {
  it("routes a 0.1 request to a 0.1 worker and the reply back", async () => {
    const broker = await MajordomoBroker.start({ bind: await allocateAddress() });
    cleanup.push(broker);
    const [endpoint] = broker.endpoints as [string];
    const worker = await Tap.dealer(endpoint);
    cleanup.push(worker);
    const ready = new Promise((r) => broker.once("workerReady", r));
    await worker.send(["", "MDPW01", Buffer.from([1]), "echo"]);
    await ready;
    const client = await Tap.dealer(endpoint);
    cleanup.push(client);
    await client.send(["", "MDPC01", "echo", "hello"]);
    const request = await worker.receive();
    expect(request.slice(0, 3)).toEqual([E, Buffer.from("MDPW01"), Buffer.from([2])]);
    expect(request.slice(4)).toEqual([E, Buffer.from("hello")]);
    await worker.send(["", "MDPW01", Buffer.from([3]), request[3] as Buffer, "", "world"]);
    expect(await client.receive()).toEqual([
      E,
      Buffer.from("MDPC01"),
      Buffer.from("echo"),
      Buffer.from("world"),
    ]);
    expect(broker.stats().services.echo).toEqual({ workersIdle: 1, workersBusy: 0, queued: 0 });
  });
});
