import {
  ClosedError,
  InvalidArgumentError,
  QueueFullError,
  TimeoutError,
} from "@zmq-patterns/core";
import { allocateAddress } from "@zmq-patterns/core/testing";
import { afterEach, describe, expect, it } from "vitest";
import { Subscriber } from "zeromq";
import {
  type CloneChange,
  CloneClient,
  type CloneClientOptions,
  CloneServer,
  type CloneServerOptions,
  HUGZ,
  KTHXBAI,
  KvMsg,
} from "../src/index.js";
import {
  allocateBase,
  B,
  closeTracked,
  dump,
  E,
  FakeServer,
  HB,
  nextEvent,
  record,
  retryWhileInUse,
  TICK,
  track,
  Updater,
  u64,
  waitFor,
} from "./support.js";

afterEach(closeTracked);

const HOST = "tcp://127.0.0.1";

/** A standalone server at a fresh base port, as clients address it: `tcp://127.0.0.1:P`. */
async function standalone(options: CloneServerOptions = {}): Promise<{
  server: CloneServer;
  address: string;
}> {
  const port = await allocateBase();
  const server = track(
    await CloneServer.start({
      port,
      host: HOST,
      hugzIntervalMs: TICK,
      flushIntervalMs: TICK,
      ...options,
    }),
  );
  return { server, address: `${HOST}:${port}` };
}

interface Pair {
  primary: CloneServer;
  backup: CloneServer;
  addresses: [string, string];
  restartPrimary(): Promise<CloneServer>;
}

/** A pair at fresh base ports, settled (primary active, backup passive and synced). */
async function pair(): Promise<Pair> {
  const [p, b] = [await allocateBase(), await allocateBase()];
  const [pState, bState] = [await allocateAddress(), await allocateAddress()];
  const common = {
    host: HOST,
    heartbeatIntervalMs: HB,
    hugzIntervalMs: TICK,
    flushIntervalMs: TICK,
  };
  const primaryOptions: CloneServerOptions = {
    ...common,
    role: "primary",
    port: p,
    peer: { snapshot: `${HOST}:${b}`, publisher: `${HOST}:${b + 1}` },
    localState: pState,
    remoteState: bState,
  };
  const start = async (options: CloneServerOptions) =>
    track(await retryWhileInUse(() => CloneServer.start(options)));
  const primary = await start(primaryOptions);
  const backup = await start({
    ...common,
    role: "backup",
    port: b,
    peer: { snapshot: `${HOST}:${p}`, publisher: `${HOST}:${p + 1}` },
    localState: bState,
    remoteState: pState,
  });
  await waitFor(
    () => primary.mode === "active" && backup.mode === "passive" && backup.stats().synced,
    "the pair settling",
  );
  return {
    primary,
    backup,
    addresses: [`${HOST}:${p}`, `${HOST}:${b}`],
    restartPrimary: () => start(primaryOptions),
  };
}

function client(options: CloneClientOptions): CloneClient {
  return track(new CloneClient({ serverTtlMs: 2000, subscribeWaitMs: 500, ...options }));
}

/** A client that has loaded its first snapshot. */
async function syncedClient(options: CloneClientOptions): Promise<CloneClient> {
  const c = client(options);
  await c.synced();
  return c;
}

function entries(c: CloneClient): string[] {
  return dump(c.entries());
}

describe("CloneClient against a server", () => {
  it("3.13.5 a late joiner converges to the same map as an early one", async () => {
    const { server, address } = await standalone();
    const early = await syncedClient({ servers: [address] });
    expect(early.state).toBe("active");
    expect(early.server).toBe(address);
    for (let i = 0; i < 20; i++) await early.set(`/k/${i}`, `v${i}`);
    await early.delete("/k/5");
    await early.set("/k/6", "changed");
    const late = await syncedClient({ servers: [address] });
    expect(entries(late)).toEqual(entries(early));
    expect(late.sequence).toBe(early.sequence);
    expect(late.sequence).toBe(22);
    // Both follow on.
    await late.set("/k/7", "from late");
    await waitFor(() => early.getText("/k/7") === "from late", "the early client seeing it");
    expect(entries(late)).toEqual(entries(early));
    expect(dump(server.entries())).toEqual(entries(early));
    expect(early.stats()).toMatchObject({
      state: "active",
      server: address,
      sequence: 23,
      keys: 19,
    });
  });

  it("3.9.1 C7 set and delete resolve once the server confirms; get, getText, getJson, has, keys, size; absent is undefined", async () => {
    const { server, address } = await standalone();
    const c = await syncedClient({ servers: [address] });
    expect(c.get("/nope")).toBeUndefined();
    expect(c.getText("/nope")).toBeUndefined();
    expect(c.getJson("/nope")).toBeUndefined();
    expect(c.has("/nope")).toBe(false);
    await c.set("/text", "hello");
    // Confirmed means visible locally, at once.
    expect(c.getText("/text")).toBe("hello");
    await c.set("/json", { a: [1, 2], b: "x" });
    expect(c.getJson("/json")).toEqual({ a: [1, 2], b: "x" });
    await c.set("/bytes", new Uint8Array([0, 1, 2]));
    expect(c.get("/bytes")).toEqual(Buffer.from([0, 1, 2]));
    await c.set("/ttl", "v", { ttlMs: 1500 });
    expect(server.get("/ttl")?.getProperty("ttl")).toBe("2");
    await c.set("/no-ttl", "v", { ttlMs: 0 });
    expect(server.get("/no-ttl")?.getProperty("ttl")).toBeUndefined();
    expect(c.has("/text")).toBe(true);
    expect([...c.keys()].sort()).toEqual(["/bytes", "/json", "/no-ttl", "/text", "/ttl"]);
    expect(c.size).toBe(5);
    await c.delete("/text");
    expect(c.get("/text")).toBeUndefined();
    expect(c.has("/text")).toBe(false);
    // Deleting what is not there is confirmed too.
    await c.delete("/never");
    expect(() => c.getJson("/bytes")).toThrow(SyntaxError);
    expect(server.get("/json")?.text).toBe('{"a":[1,2],"b":"x"}');
  });

  it("3.9.1 bad writes reject without sending anything", async () => {
    const { server, address } = await standalone();
    const c = await syncedClient({ servers: [address] });
    for (const key of ["", HUGZ, KTHXBAI, "k".repeat(256)]) {
      await expect(c.set(key, "v"), key).rejects.toBeInstanceOf(InvalidArgumentError);
    }
    await expect(c.delete("")).rejects.toBeInstanceOf(InvalidArgumentError);
    for (const ttlMs of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
      await expect(c.set("/k", "v", { ttlMs })).rejects.toBeInstanceOf(InvalidArgumentError);
    }
    await c.set("/k", "ok");
    expect(server.sequence).toBe(1);
  });

  it("3.13.6 a value set with a ttl disappears from the client with a delete change", async () => {
    const { address } = await standalone();
    const c = await syncedClient({ servers: [address] });
    const gone = nextEvent(c, "change", (ch) => ch.key === "/eph" && ch.value === undefined, 5000);
    const setAt = performance.now();
    await c.set("/eph", "v", { ttlMs: 1000 });
    expect(c.getText("/eph")).toBe("v");
    const change = await gone;
    expect(performance.now() - setAt).toBeGreaterThanOrEqual(900);
    expect(change.sequence).toBe(2);
    expect(c.has("/eph")).toBe(false);
  });

  it("3.13.7 C5 a subtree client sees only its subtree, and stays with a server whose subtree is quiet thanks to HUGZ", async () => {
    const { address } = await standalone();
    const writer = await syncedClient({ servers: [address] });
    await writer.set("/s/before", "1");
    await writer.set("/other/before", "1");
    const serverTtlMs = 500;
    const sub = await syncedClient({ servers: [address], subtree: "/s/", serverTtlMs });
    expect(sub.subtree).toBe("/s/");
    expect(entries(sub)).toEqual(["/s/before=1"]);
    const failovers = record(sub, "failover");
    const changes = record(sub, "change");
    // Several server TTLs of traffic outside the subtree only.
    const until = performance.now() + 4 * serverTtlMs;
    for (let i = 0; performance.now() < until; i++) await writer.set(`/other/${i}`, `${i}`);
    expect(failovers).toEqual([]);
    expect(changes).toEqual([]);
    expect(sub.state).toBe("active");
    await writer.set("/s/after", "2");
    await waitFor(() => sub.getText("/s/after") === "2", "the subtree update");
    expect(entries(sub)).toEqual(["/s/after=2", "/s/before=1"]);
    // Its own writes: confirmed inside the subtree, sent (and not seen) outside it.
    await sub.set("/s/mine", "3");
    expect(sub.getText("/s/mine")).toBe("3");
    await sub.set("/elsewhere", "4");
    await waitFor(() => writer.getText("/elsewhere") === "4", "the write outside the subtree");
    expect(sub.has("/elsewhere")).toBe(false);
    expect(sub.has(HUGZ)).toBe(false);
  });

  it("3.9 change events and the changes() iterator, which stops when the loop breaks and ends on close", async () => {
    const { address } = await standalone();
    const c = await syncedClient({ servers: [address] });
    const events: CloneChange[] = record(c, "change");
    const iterator = c.changes();
    const seen: CloneChange[] = [];
    const consumer = (async () => {
      for await (const change of iterator) {
        seen.push(change);
        if (seen.length === 3) break;
      }
    })();
    await c.set("/a", "1");
    await c.set("/b", "2");
    await c.delete("/a");
    await consumer;
    expect(seen).toEqual([
      { key: "/a", value: B("1"), sequence: 1 },
      { key: "/b", value: B("2"), sequence: 2 },
      { key: "/a", value: undefined, sequence: 3 },
    ]);
    expect(events).toEqual(seen);
    // Broken out of: the iterator is done and collects nothing more.
    await c.set("/c", "3");
    expect(await iterator.next()).toEqual({ value: undefined, done: true });
    // Another iterator ends when the client closes.
    const second = c.changes();
    const drained = (async () => {
      const got: string[] = [];
      for await (const change of second) got.push(change.key);
      return got;
    })();
    await c.set("/d", "4");
    await c.close();
    expect(await drained).toEqual(["/d"]);
    // After close, an iterator is done at once.
    expect(await c.changes().next()).toEqual({ value: undefined, done: true });
  });

  it("3.5 a snapshot of thousands of keys loads completely", { timeout: 30_000 }, async () => {
    const { server, address } = await standalone();
    const updater = await Updater.connect(server.endpoints.collector);
    for (let i = 0; i < 5000; i += 500) {
      for (let j = i; j < i + 500; j++) await updater.set(`/big/${j}`, "x".repeat(50));
      await waitFor(() => server.sequence >= i + 500, "a batch published");
    }
    const c = client({ servers: [address] });
    expect(await nextEvent(c, "synced")).toMatchObject({ keys: 5000, sequence: 5000 });
    expect(c.size).toBe(5000);
  });
});

describe("CloneClient against a scripted server", () => {
  it("3.13.5 B15 updates numbered up to KTHXBAI are ignored, later ones applied, including those buffered during the snapshot", async () => {
    const fake = await FakeServer.start();
    fake.answering = false;
    fake.sequence = 4;
    const c = client({ servers: [fake.address] });
    const request = await fake.request(1);
    expect(request.frames.map(String)).toEqual(["ICANHAZ?", ""]);
    // Published while the snapshot is being made: 5 is in it, 6 is not.
    await fake.publish("/k", "from update 5", 5);
    await fake.publish("/later", "from update 6", 6);
    fake.put("/k", "from snapshot", 5);
    fake.map.delete("/later");
    fake.sequence = 5;
    await fake.answer(0);
    await c.synced();
    await waitFor(() => c.sequence === 6, "update 6 applied");
    expect(c.getText("/k")).toBe("from snapshot");
    expect(c.getText("/later")).toBe("from update 6");
    // A stale or repeated publication changes nothing.
    const changes = record(c, "change");
    await fake.publish("/k", "stale", 3);
    await fake.publish("/later", "repeated", 6);
    await fake.publish("/k", "fresh", 7);
    await waitFor(() => c.sequence === 7, "update 7 applied");
    expect(changes).toEqual([{ key: "/k", value: B("fresh"), sequence: 7 }]);
    expect(c.getText("/later")).toBe("from update 6");
  });

  it("B15 the snapshot is asked for once the subscription delivers (or after subscribeWaitMs when the server is silent)", async () => {
    const beating = await FakeServer.start(30);
    const startedA = performance.now();
    client({ servers: [beating.address], subscribeWaitMs: 5000 });
    await beating.request(1);
    expect(performance.now() - startedA).toBeLessThan(4000);

    const silent = await FakeServer.start();
    silent.beating = false;
    const startedB = performance.now();
    const c = client({ servers: [silent.address], subscribeWaitMs: 400, serverTtlMs: 5000 });
    await silent.request(1);
    expect(performance.now() - startedB).toBeGreaterThanOrEqual(380);
    await c.synced();
  });

  it("C6 a write is not applied locally: it waits for the server's publication with the same uuid", async () => {
    const fake = await FakeServer.start();
    const c = await syncedClient({ servers: [fake.address] });
    let done = false;
    const write = c.set("/k", "v").then(() => {
      done = true;
    });
    await waitFor(() => fake.collected.length === 1, "the update on the collector");
    const sent = fake.collected[0] as KvMsg;
    expect(sent.key).toBe("/k");
    expect(sent.sequence).toBe(0);
    expect(sent.uuid).toHaveLength(16);
    expect(c.has("/k")).toBe(false);
    expect(done).toBe(false);
    // Someone else's update of the key does not confirm ours.
    await fake.publish("/k", "other", 1);
    await waitFor(() => c.getText("/k") === "other", "the other update");
    expect(done).toBe(false);
    await fake.publish("/k", "v", 2, sent.uuid as Buffer);
    await write;
    expect(c.getText("/k")).toBe("v");
  });

  it("C6 a write the server never confirms rejects with TimeoutError after confirmTimeoutMs", async () => {
    const fake = await FakeServer.start();
    const c = await syncedClient({ servers: [fake.address], confirmTimeoutMs: 300 });
    const error = await c.set("/k", "v").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TimeoutError);
    expect((error as Error).message).toMatch(/not confirmed/);
  });

  it("a gap in the sequence is reported and, by default, answered with a fresh snapshot on a fresh socket (C2)", async () => {
    const fake = await FakeServer.start();
    fake.put("/a", "1", 5);
    fake.sequence = 5;
    const c = await syncedClient({ servers: [fake.address] });
    expect(c.sequence).toBe(5);
    const gap = nextEvent(c, "gap");
    const resynced = nextEvent(c, "synced");
    // 6 and 7 never reach the client.
    fake.put("/b", "2", 6);
    fake.put("/c", "3", 7);
    fake.sequence = 7;
    await fake.publish("/d", "4", 8);
    expect(await gap).toEqual({ expected: 6, got: 8 });
    expect(await resynced).toMatchObject({ keys: 4, sequence: 8 });
    expect(entries(c)).toEqual(["/a=1", "/b=2", "/c=3", "/d=4"]);
    expect(fake.requests).toHaveLength(2);
    expect(fake.requests[1]?.id.equals(fake.requests[0]?.id as Buffer)).toBe(false);
  });

  it("C4 a HUGZ ahead of the client's sequence reveals a gap too, and is never stored", async () => {
    const fake = await FakeServer.start();
    const c = await syncedClient({ servers: [fake.address] });
    const gap = nextEvent(c, "gap");
    const resynced = nextEvent(c, "synced");
    fake.put("/missed", "x", 1);
    fake.sequence = 1; // the next HUGZ says 1
    expect(await gap).toEqual({ expected: 1, got: 1 });
    await resynced;
    expect(entries(c)).toEqual(["/missed=x"]);
    expect(c.has(HUGZ)).toBe(false);
  });

  it('onGap "ignore" reports the gap and carries on', async () => {
    const fake = await FakeServer.start();
    const c = await syncedClient({ servers: [fake.address], onGap: "ignore" });
    const gaps = record(c, "gap");
    await fake.publish("/a", "1", 1);
    await fake.publish("/b", "2", 4);
    await waitFor(() => c.sequence === 4, "update 4 applied");
    expect(gaps).toEqual([{ expected: 2, got: 4 }]);
    expect(entries(c)).toEqual(["/a=1", "/b=2"]);
    expect(fake.requests).toHaveLength(1);
  });

  it("a subtree client does not look for gaps (it sees a subset of the sequence by design)", async () => {
    const fake = await FakeServer.start();
    const c = await syncedClient({ servers: [fake.address], subtree: "/s/" });
    const gaps = record(c, "gap");
    await fake.publish("/other", "x", 1);
    await fake.publish("/s/a", "1", 5);
    await waitFor(() => c.sequence === 5, "update 5 applied");
    fake.sequence = 9;
    // Two HUGZ ahead of the client's sequence later, still no gap.
    await waitFor(() => fake.requests.length === 1 && c.sequence === 5, "steady");
    await nextEvent(c, "gap", () => true, 300).catch(() => {});
    expect(gaps).toEqual([]);
    expect(entries(c)).toEqual(["/s/a=1"]);
  });

  it("3.13.11 C10 malformed publications and snapshot messages are dropped and counted", async () => {
    const fake = await FakeServer.start();
    fake.answering = false;
    const c = client({ servers: [fake.address] });
    const dropped = record(c, "dropped");
    await fake.request(1);
    // Garbage inside the snapshot, then a good entry and the end.
    await fake.answer(0, [
      [B("/x")],
      [B("/x"), B("short"), E, E, B("v")],
      // 3.13.2: a HUGZ is never stored, not even from a snapshot.
      new KvMsg({ key: HUGZ, sequence: 1, body: "x" }).encode(),
      new KvMsg({ key: "/ok", sequence: 1, body: "1" }).encode(),
      new KvMsg({ key: KTHXBAI, sequence: 1 }).encode(),
    ]);
    await c.synced();
    expect(entries(c)).toEqual(["/ok=1"]);
    await fake.publishRaw([B("/y"), u64(2)]);
    await fake.publishRaw([B("/y"), u64(2), Buffer.alloc(3), E, B("v")]);
    await fake.publishRaw([B("/y"), u64(2), E, B("bad props"), B("v")]);
    await fake.publish("/y", "good", 2);
    await waitFor(() => c.getText("/y") === "good", "the good update");
    expect(dropped.map((d) => d.reason)).toEqual([
      "expected 5 frames, got 1",
      "sequence frame is not 8 bytes",
      "expected 5 frames, got 2",
      "uuid frame is neither 16 bytes nor empty",
      "invalid properties",
    ]);
    expect(dropped.every((d) => d.server === fake.address)).toBe(true);
    expect(c.stats().dropped).toMatchObject({ "invalid properties": 1 });
    expect(c.state).toBe("active");
  });

  it("QueueFullError for a changes() consumer that falls 10,000 changes behind", {
    timeout: 30_000,
  }, async () => {
    const fake = await FakeServer.start();
    for (let i = 0; i < 10_001; i++) fake.put(`/k/${i}`, "v", 1);
    fake.sequence = 1;
    const c = client({ servers: [fake.address] });
    const iterator = c.changes();
    await c.synced();
    expect(c.size).toBe(10_001);
    let count = 0;
    const error = await (async () => {
      for await (const _ of iterator) count++;
    })().catch((e: unknown) => e);
    expect(count).toBe(10_000);
    expect(error).toBeInstanceOf(QueueFullError);
    // Other consumers are not affected.
    const other = c.changes();
    await fake.publish("/new", "x", 2);
    expect((await other.next()).value).toMatchObject({ key: "/new", sequence: 2 });
  });

  it("a silent server is left after serverTtlMs (with one server, for itself again)", async () => {
    const fake = await FakeServer.start();
    const c = await syncedClient({ servers: [fake.address], serverTtlMs: 400 });
    const failover = nextEvent(c, "failover");
    fake.beating = false;
    expect(await failover).toEqual({
      from: fake.address,
      to: fake.address,
      reason: "no HUGZ from the server",
    });
    fake.beating = true;
    await fake.request(2);
    await waitFor(() => c.state === "active", "active again");
  });
});

describe("CloneClient failover (3.9.3)", () => {
  it("3.13.8 C1 the server in use dies: the client moves to the other, and keys deleted meanwhile are gone", async () => {
    const { primary, backup, addresses } = await pair();
    const serverTtlMs = 1000;
    const c = await syncedClient({ servers: addresses, serverTtlMs });
    expect(c.server).toBe(addresses[0]);
    await c.set("/a", "1");
    await c.set("/b", "1");
    await c.set("/c", "1");
    await waitFor(() => backup.sequence === 3, "the backup mirroring");
    // Another writer, not a Clone client, talks to both collectors while the primary is gone.
    const writer = await Updater.connect(primary.endpoints.collector, backup.endpoints.collector);
    const changes = record(c, "change");
    const failover = nextEvent(c, "failover");
    const synced = nextEvent(c, "synced", (s) => s.server === addresses[1]);
    await primary.close();
    const closedAt = performance.now();
    await writer.delete("/b");
    await writer.set("/c", "2");
    expect(await failover).toEqual({
      from: addresses[0],
      to: addresses[1],
      reason: "no HUGZ from the server",
    });
    expect(await synced).toMatchObject({ keys: 2, sequence: 5 });
    // Server TTL, then the vote (the backup's peer expiry is long past) and the snapshot.
    expect(performance.now() - closedAt).toBeLessThan(serverTtlMs + 5000);
    expect(c.server).toBe(addresses[1]);
    expect(backup.mode).toBe("active");
    expect(entries(c)).toEqual(["/a=1", "/c=2"]);
    expect(changes).toEqual([
      { key: "/c", value: B("2"), sequence: 5 },
      { key: "/b", value: undefined, sequence: 5 },
    ]);
    // And it works on.
    await c.set("/d", "1");
    expect(backup.get("/d")?.text).toBe("1");
  });

  it("3.13.8 a write made while the server in use is dead is confirmed by the other server once the client fails over", async () => {
    const { primary, addresses } = await pair();
    const c = await syncedClient({ servers: addresses, serverTtlMs: 1000 });
    await primary.close();
    await c.set("/during", "x");
    expect(c.server).toBe(addresses[1]);
    expect(c.getText("/during")).toBe("x");
  });

  it("3.13.10 a client whose first server is the passive one moves on to the active one", async () => {
    const { primary, backup, addresses } = await pair();
    const c = client({ servers: [addresses[1], addresses[0]], serverTtlMs: 1000 });
    const failover = nextEvent(c, "failover");
    await c.synced();
    expect(await failover).toEqual({
      from: addresses[1],
      to: addresses[0],
      reason: "no snapshot from the server",
    });
    expect(c.server).toBe(addresses[0]);
    expect(primary.mode).toBe("active");
    expect(backup.mode).toBe("passive");
    await c.set("/k", "v");
    expect(c.getText("/k")).toBe("v");
  });

  it("3.13.10 after a failover and a restart of the primary, clients keep working on the backup", async () => {
    const p = await pair();
    const c = await syncedClient({ servers: p.addresses, serverTtlMs: 1000 });
    await c.set("/a", "1");
    await p.primary.close();
    await c.set("/b", "1");
    expect(c.server).toBe(p.addresses[1]);
    const restarted = await p.restartPrimary();
    await waitFor(
      () => restarted.mode === "passive" && restarted.stats().synced,
      "the primary back, passive",
    );
    await c.set("/c", "1");
    await waitFor(() => restarted.sequence === p.backup.sequence, "the primary mirroring");
    expect(dump(restarted.entries())).toEqual(["/a=1", "/b=1", "/c=1"]);
    // A new client listing the (now passive) primary first ends up on the backup as well.
    const late = await syncedClient({ servers: p.addresses, serverTtlMs: 1000 });
    expect(late.server).toBe(p.addresses[1]);
    expect(entries(late)).toEqual(["/a=1", "/b=1", "/c=1"]);
  });

  it("B3 updates sent while a server is down are not delivered to it late when it comes back", async () => {
    const { address } = await standalone();
    const downBase = await allocateBase();
    const downCollector = `${HOST}:${downBase + 2}`;
    const bindCollector = async () => {
      const socket = track(new Subscriber({ linger: 0 }));
      socket.subscribe();
      await retryWhileInUse(() => socket.bind(downCollector));
      const got: string[] = [];
      void (async () => {
        try {
          for await (const frames of socket) got.push(KvMsg.decode(frames).text);
        } catch {
          // closed
        }
      })();
      return { socket, got };
    };
    // The second server's collector is up while the client connects.
    const first = await bindCollector();
    const c = await syncedClient({
      servers: [address, `${HOST}:${downBase}`],
      serverTtlMs: 60_000,
    });
    await waitFor(() => {
      void c.set("/probe", "up").catch(() => {});
      return first.got.includes("up");
    }, "the client's publisher reaching the second collector");
    first.socket.close();
    // Sent while it is down (the first server confirms it).
    await c.set("/k", "while down");
    const second = await bindCollector();
    await waitFor(() => {
      void c.set("/probe", "back").catch(() => {});
      return second.got.includes("back");
    }, "the client's publisher reaching the collector again");
    expect(second.got).not.toContain("while down");
  });

  it("close rejects pending writes and synced() with ClosedError; close is idempotent", async () => {
    const fake = await FakeServer.start();
    fake.answering = false;
    const c = client({ servers: [fake.address] });
    const synced = c.synced();
    const early = c.set("/k", "v"); // waits for the first snapshot
    await fake.request(1);
    await c.close();
    await expect(synced).rejects.toBeInstanceOf(ClosedError);
    await expect(early).rejects.toBeInstanceOf(ClosedError);
    await expect(c.synced()).rejects.toBeInstanceOf(ClosedError);
    await expect(c.set("/k", "v")).rejects.toBeInstanceOf(ClosedError);
    await c.close();

    const answered = await FakeServer.start();
    const d = await syncedClient({ servers: [answered.address] });
    const pending = d.set("/k", "v"); // never confirmed by the fake
    await waitFor(() => answered.collected.length === 1, "the update sent");
    await Promise.all([d.close(), d.close()]);
    await expect(pending).rejects.toBeInstanceOf(ClosedError);
    // Synced before: stays resolved.
    await expect(d.synced()).resolves.toBeUndefined();
  });

  it("async dispose closes it", async () => {
    const fake = await FakeServer.start();
    let pending: Promise<void>;
    {
      await using c = new CloneClient({ servers: [fake.address] });
      pending = c.synced();
      await pending;
      pending = c.set("/k", "v");
      await waitFor(() => fake.collected.length === 1, "the update sent");
    }
    await expect(pending).rejects.toBeInstanceOf(ClosedError);
  });

  it("option validation", () => {
    const cases: Array<[CloneClientOptions, RegExp]> = [
      [{ servers: [] }, /servers must be a non-empty array/],
      [{ servers: "tcp://localhost:5556" as never }, /servers must be a non-empty array/],
      [{ servers: ["nowhere"] }, /servers\[0\] must be a ZeroMQ endpoint/],
      [
        { servers: ["tcp://localhost:5556", "ipc://clone.sock"] },
        /server address must be like tcp:\/\/host:port/,
      ],
      [{ servers: ["tcp://localhost:65534"] }, /server address must be like/],
      [{ subtree: "x".repeat(256) }, /subtree must be a string of at most 255 bytes/],
      [{ subtree: 5 as never }, /subtree must be a string/],
      [{ serverTtlMs: 0 }, /serverTtlMs/],
      [{ subscribeWaitMs: -1 }, /subscribeWaitMs/],
      [{ confirmTimeoutMs: Number.NaN }, /confirmTimeoutMs/],
      [{ onGap: "panic" as never }, /onGap must be "resync" or "ignore"/],
    ];
    for (const [options, message] of cases) {
      expect(() => new CloneClient(options), JSON.stringify(options)).toThrow(message);
      try {
        new CloneClient(options);
      } catch (error) {
        expect(error).toBeInstanceOf(InvalidArgumentError);
      }
    }
  });
});
