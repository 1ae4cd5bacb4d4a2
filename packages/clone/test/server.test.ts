import { InvalidArgumentError } from "@zmq-patterns/core";
import { allocateAddress } from "@zmq-patterns/core/testing";
import { afterEach, describe, expect, it } from "vitest";
import { Publisher } from "zeromq";
import { CloneServer, HUGZ, KTHXBAI, KvMsg } from "../src/index.js";
import {
  B,
  closeTracked,
  dump,
  dumpSnapshot,
  E,
  fetchSnapshot,
  Listener,
  nextEvent,
  readSnapshot,
  record,
  retryWhileInUse,
  serverEndpoints,
  snapshotDealer,
  startStandalone,
  TICK,
  track,
  Updater,
  u64,
  waitFor,
} from "./support.js";

afterEach(closeTracked);

/** A standalone server, a listener on its publisher and an updater on its collector. */
async function setup(options: Parameters<typeof startStandalone>[0] = {}) {
  const server = await startStandalone(options);
  const listener = await Listener.connect(server.endpoints.publisher);
  const updater = await Updater.connect(server.endpoints.collector);
  return { server, listener, updater };
}

/** Sends `count` updates and waits until the server has published them all. */
async function fill(
  server: CloneServer,
  updater: Updater,
  keys: string[],
  value = (key: string) => `value of ${key}`,
): Promise<void> {
  const target = server.sequence + keys.length;
  for (const key of keys) await updater.set(key, value(key));
  await waitFor(() => server.sequence >= target, `${keys.length} updates published`);
}

describe("standalone server: sequencing (3.6)", () => {
  it("3.13.3 N updates are published with sequences 1..N in arrival order, uuid and properties preserved, relative ttl", async () => {
    const { server, listener, updater } = await setup();
    expect(server.mode).toBe("active");
    expect(server.role).toBeUndefined();
    expect(server.stats()).toMatchObject({
      mode: "active",
      state: "STANDALONE",
      sequence: 0,
      synced: true,
    });
    const events = record(server, "update");
    const sent: KvMsg[] = [];
    for (let i = 0; i < 50; i++) {
      sent.push(
        await updater.set(`/k/${i}`, `v${i}`, {
          properties: { owner: `client=${i % 3}` },
          ...(i % 2 === 0 ? { ttl: "30" } : {}),
        }),
      );
    }
    for (const [i, msg] of sent.entries()) {
      const published = await listener.nextUpdate();
      expect(published.sequence).toBe(i + 1);
      expect(published.key).toBe(msg.key);
      expect(published.text).toBe(`v${i}`);
      expect(published.uuid?.equals(msg.uuid as Buffer)).toBe(true);
      // Exactly the properties sent, in order: the ttl stays relative on the wire (B2).
      expect(published.encode()[3]?.toString()).toBe(msg.encode()[3]?.toString());
      if (i % 2 === 0) expect(published.getProperty("ttl")).toBe("30");
    }
    expect(server.sequence).toBe(50);
    expect(server.stats()).toMatchObject({ sequence: 50, keys: 50, updatesPublished: 50 });
    expect(events.map((e) => e.sequence)).toEqual(sent.map((_, i) => i + 1));
    expect(events.every((e) => e.reason === "set" && !e.deleted)).toBe(true);
    expect(server.get("/k/7")?.text).toBe("v7");
    expect(server.get("/k/7")?.uuid?.equals(sent[7]?.uuid as Buffer)).toBe(true);
    expect(server.get("/nope")).toBeUndefined();
  });

  it("3.13.2 a delete is sequenced and published like a set, and the key is gone; an update without uuid goes through", async () => {
    const { server, listener, updater } = await setup();
    await updater.set("/a", "1");
    await updater.set("/b", "2", { uuid: null });
    const b = await listener.next((m) => m.key === "/b");
    expect(b.uuid).toBeNull();
    const deleted = nextEvent(server, "update", (e) => e.deleted);
    const del = await updater.delete("/a");
    expect(await deleted).toEqual({ key: "/a", sequence: 3, deleted: true, reason: "set" });
    const published = await listener.next((m) => m.key === "/a" && m.isDelete);
    expect(published.sequence).toBe(3);
    expect(published.uuid?.equals(del.uuid as Buffer)).toBe(true);
    expect(server.get("/a")).toBeUndefined();
    expect(dump(server.entries())).toEqual(["/b=2"]);
    // Deleting an absent key still takes a sequence number: clients confirm by it.
    await updater.delete("/never");
    expect((await listener.next((m) => m.key === "/never")).sequence).toBe(4);
    expect(server.stats().keys).toBe(1);
  });
});

describe("standalone server: snapshots (3.5)", () => {
  it('3.13.4 subtree "" gets every key, "/a/" only keys under /a/; KTHXBAI carries the current sequence and the subtree', async () => {
    const { server, updater } = await setup();
    await fill(server, updater, ["/a/1", "/a/2", "/ab", "/b/1", "x", "/a/gone"]);
    const gone = nextEvent(server, "update", (e) => e.key === "/a/gone");
    await updater.delete("/a/gone");
    await gone;
    // The newest update was a delete: the counter, not the newest entry, is the KTHXBAI sequence.
    expect(server.sequence).toBe(7);

    const all = await fetchSnapshot(server.endpoints.snapshot);
    expect(dumpSnapshot(all)).toEqual([
      "/a/1=value of /a/1",
      "/a/2=value of /a/2",
      "/ab=value of /ab",
      "/b/1=value of /b/1",
      "x=value of x",
    ]);
    expect(all.end.sequence).toBe(7);
    expect(all.end.body).toHaveLength(0);
    // Each entry as stored: its own sequence and the client's uuid.
    const a1 = all.entries.find((m) => m.key === "/a/1");
    expect(a1?.sequence).toBe(1);
    expect(a1?.uuid?.equals(server.get("/a/1")?.uuid as Buffer)).toBe(true);

    const sub = await fetchSnapshot(server.endpoints.snapshot, "/a/");
    expect(dumpSnapshot(sub)).toEqual(["/a/1=value of /a/1", "/a/2=value of /a/2"]);
    expect(hexFrames(sub.end)).toEqual(
      hexFrames(new KvMsg({ key: KTHXBAI, sequence: 7, body: "/a/" })),
    );

    const none = await fetchSnapshot(server.endpoints.snapshot, "/zzz/");
    expect(none.entries).toEqual([]);
    expect(none.end.sequence).toBe(7);
    expect(server.stats().snapshotsServed).toBe(3);
  });

  it("3.13.4 an empty server answers with KTHXBAI 0; the one-frame ICANHAZ? of models two and three is answered too (B10)", async () => {
    const { server, updater } = await setup();
    const empty = await fetchSnapshot(server.endpoints.snapshot);
    expect(empty.entries).toEqual([]);
    expect(hexFrames(empty.end)).toEqual(
      [B(KTHXBAI), u64(0), E, E, E].map((f) => f.toString("hex")),
    );
    await fill(server, updater, ["k"]);
    const dealer = snapshotDealer(server.endpoints.snapshot);
    const served = nextEvent(server, "snapshot");
    await dealer.send([B("ICANHAZ?")]);
    const snapshot = await readSnapshot(dealer);
    expect(dumpSnapshot(snapshot)).toEqual(["k=value of k"]);
    expect(snapshot.end.sequence).toBe(1);
    expect(await served).toMatchObject({ subtree: "", keys: 1 });
  });

  it("3.13.4 replies go to the requester only, and two concurrent requesters each get a full snapshot", async () => {
    const { server, updater } = await setup();
    const keys = Array.from({ length: 500 }, (_, i) => `/k/${String(i).padStart(3, "0")}`);
    await fill(server, updater, keys);
    const first = snapshotDealer(server.endpoints.snapshot);
    const second = snapshotDealer(server.endpoints.snapshot);
    const bystander = snapshotDealer(server.endpoints.snapshot);
    // The bystander is connected (it got its own answer) but asks nothing more.
    await bystander.send([B("ICANHAZ?"), B("/none/")]);
    expect((await readSnapshot(bystander)).entries).toEqual([]);
    await Promise.all([first.send([B("ICANHAZ?"), E]), second.send([B("ICANHAZ?"), B("/k/")])]);
    const [a, b] = await Promise.all([readSnapshot(first), readSnapshot(second)]);
    expect(a.entries.map((m) => m.key).sort()).toEqual(keys);
    expect(b.entries.map((m) => m.key).sort()).toEqual(keys);
    expect(a.end.sequence).toBe(500);
    expect(b.end.sequence).toBe(500);
    // Nothing else arrives anywhere (a stray message would show up as soon as it was sent).
    bystander.receiveTimeout = 300;
    await expect(bystander.receive()).rejects.toMatchObject({ code: "EAGAIN" });
    first.receiveTimeout = 1;
    await expect(first.receive()).rejects.toMatchObject({ code: "EAGAIN" });
  });

  it("3.13.4 a snapshot of 20,000 keys arrives complete (backpressure, nothing dropped)", {
    timeout: 60_000,
  }, async () => {
    const { server, updater } = await setup();
    const keys = Array.from({ length: 20_000 }, (_, i) => `/big/${i}`);
    // In batches, so neither the updater's nor the collector's queue overflows.
    for (let i = 0; i < keys.length; i += 500) {
      await fill(server, updater, keys.slice(i, i + 500), () => "x".repeat(100));
    }
    expect(server.stats().keys).toBe(20_000);
    const snapshot = await fetchSnapshot(server.endpoints.snapshot, "", 30_000);
    expect(snapshot.entries).toHaveLength(20_000);
    expect(new Set(snapshot.entries.map((m) => m.key)).size).toBe(20_000);
    expect(snapshot.end.sequence).toBe(20_000);
    // Three requesters at once are served one after the other, each completely.
    const three = await Promise.all(
      [1, 2, 3].map(() => fetchSnapshot(server.endpoints.snapshot, "", 45_000)),
    );
    for (const each of three) {
      expect(each.entries).toHaveLength(20_000);
      expect(each.end.sequence).toBe(20_000);
    }
    expect(server.stats().dropped).toEqual({});
  });
});

describe("standalone server: TTL (3.7)", () => {
  it("3.13.6 a ttl=1 value is deleted within about 2 s with a delete KVPUB carrying a new sequence; no ttl and ttl=0 never expire", async () => {
    const { server, listener, updater } = await setup();
    const events = record(server, "update");
    await updater.set("/forever", "1");
    await updater.set("/zero", "1", { ttl: "0" });
    const eph = await updater.set("/eph", "1", { ttl: "1" });
    const set = await listener.next((m) => m.key === "/eph");
    const setAt = performance.now();
    expect(set.sequence).toBe(3);
    const deleted = await listener.next((m) => m.key === "/eph", 5000);
    const after = performance.now() - setAt;
    expect(deleted.isDelete).toBe(true);
    expect(deleted.sequence).toBe(4);
    expect(deleted.uuid?.equals(eph.uuid as Buffer)).toBe(true);
    // ttl .. ttl + one flush interval, with a generous margin for a loaded machine.
    expect(after).toBeGreaterThanOrEqual(900);
    expect(after).toBeLessThan(1000 + TICK + 1500);
    expect(server.get("/eph")).toBeUndefined();
    expect(events.at(-1)).toEqual({ key: "/eph", sequence: 4, deleted: true, reason: "expired" });
    expect(server.stats()).toMatchObject({ expired: 1, keys: 2, sequence: 4 });
    // Many flushes later the permanent values are still there.
    const flushes = server.stats().expired;
    await nextHugz(listener, 5);
    expect(dump(server.entries())).toEqual(["/forever=1", "/zero=1"]);
    expect(server.stats().expired).toBe(flushes);
  });

  it("3.13.6 re-setting a value refreshes its ttl; re-setting it without ttl makes it permanent", async () => {
    const { server, listener, updater } = await setup();
    // Same expiry for all three at first.
    await updater.set("/control", "c", { ttl: "1" });
    await updater.set("/refreshed", "r", { ttl: "1" });
    await updater.set("/permanent", "p", { ttl: "1" });
    await updater.set("/refreshed", "r2", { ttl: "3" });
    await updater.set("/permanent", "p2");
    await listener.next((m) => m.key === "/permanent" && m.text === "p2");
    const refreshedAt = performance.now();
    await listener.next((m) => m.key === "/control" && m.isDelete, 5000);
    // Had the refresh not counted, /refreshed would have gone in the same flush as /control.
    expect(server.get("/refreshed")?.text).toBe("r2");
    expect(server.get("/permanent")?.text).toBe("p2");
    await listener.next((m) => m.key === "/refreshed" && m.isDelete, 8000);
    expect(performance.now() - refreshedAt).toBeGreaterThanOrEqual(2500);
    expect(dump(server.entries())).toEqual(["/permanent=p2"]);
    await nextHugz(listener, 3);
    expect(server.get("/permanent")?.text).toBe("p2");
  });

  it("B2 KVSYNC carries the seconds left as a relative ttl, and the other properties as sent", async () => {
    const { server, updater } = await setup();
    const sent = await updater.set("/t", "v", { ttl: "30", properties: { owner: "me" } });
    await updater.set("/p", "v");
    await waitFor(() => server.sequence === 2, "two updates");
    const snapshot = await fetchSnapshot(server.endpoints.snapshot);
    const t = snapshot.entries.find((m) => m.key === "/t");
    expect(t?.getProperty("owner")).toBe("me");
    expect(Number(t?.getProperty("ttl"))).toBeGreaterThanOrEqual(28);
    expect(Number(t?.getProperty("ttl"))).toBeLessThanOrEqual(30);
    expect(t?.uuid?.equals(sent.uuid as Buffer)).toBe(true);
    expect(snapshot.entries.find((m) => m.key === "/p")?.getProperty("ttl")).toBeUndefined();
    // The stored message keeps the ttl as sent: nothing absolute ever shows (B2).
    expect(server.get("/t")?.getProperty("ttl")).toBe("30");
  });

  it("3.7 fractional ttls of the Python clients are honoured", async () => {
    const { server, listener, updater } = await setup();
    await updater.set("/half", "v", { ttl: "0.3" });
    await listener.next((m) => m.key === "/half" && !m.isDelete);
    await listener.next((m) => m.key === "/half" && m.isDelete, 5000);
    expect(server.get("/half")).toBeUndefined();
  });
});

describe("standalone server: HUGZ (3.6)", () => {
  it("3.13.7 HUGZ every second (default) with the current sequence", {
    timeout: 30_000,
  }, async () => {
    const server = track(await CloneServer.start({ endpoints: await serverEndpoints() }));
    const updater = await Updater.connect(server.endpoints.collector);
    // Connecting the listener waits for a first HUGZ (sequence 0).
    const listener = await Listener.connect(server.endpoints.publisher, HUGZ, "/");
    await updater.set("/a", "1");
    await updater.set("/b", "2");
    await listener.next((m) => m.key === "/b");
    const hugz = await listener.next((m) => m.key === HUGZ, 3000);
    expect(hugz.sequence).toBe(2);
    expect(
      hugz
        .encode()
        .slice(2)
        .map((f) => f.byteLength),
    ).toEqual([0, 0, 0]);
    const times: number[] = [];
    for (let i = 0; i < 4; i++) {
      await listener.next((m) => m.key === HUGZ, 3000);
      times.push(performance.now());
    }
    const gaps = times.slice(1).map((t, i) => t - (times[i] as number));
    const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length;
    // Timers only ever fire late; delivery jitter can make one gap look a little short.
    expect(mean).toBeGreaterThanOrEqual(900);
    expect(mean).toBeLessThan(1600);
    for (const gap of gaps) expect(gap).toBeGreaterThan(500);
  });

  it("3.13.7 HUGZ reaches a subscriber of a quiet subtree", async () => {
    const server = await startStandalone();
    const listener = await Listener.connect(server.endpoints.publisher, "/quiet/", HUGZ);
    const updater = await Updater.connect(server.endpoints.collector);
    await updater.set("/loud/1", "x");
    await waitFor(() => server.sequence === 1, "one update");
    const hugz = await listener.next((m) => m.key === HUGZ && m.sequence === 1);
    expect(hugz.sequence).toBe(1);
    expect(listener.updates).toEqual([]);
  });
});

describe("standalone server: bad input (3.13.11)", () => {
  it("3.13.11 malformed updates on the collector are dropped, counted and reported; the server keeps serving", async () => {
    const { server, listener, updater } = await setup();
    const dropped = record(server, "dropped");
    const good = [B("/k"), u64(0), Buffer.alloc(16, 1), E, B("v")];
    const bad: Array<[Buffer[], string]> = [
      [[B("/k")], "expected 5 frames, got 1"],
      [good.slice(0, 4), "expected 5 frames, got 4"],
      [[...good, B("x")], "expected 5 frames, got 6"],
      [[B("/k"), B("1234567"), E, E, B("v")], "sequence frame is not 8 bytes"],
      [[B("/k"), Buffer.alloc(8, 0xff), E, E, B("v")], "sequence too large"],
      [[B("/k"), u64(0), Buffer.alloc(5), E, B("v")], "uuid frame is neither 16 bytes nor empty"],
      [[B("/k"), u64(0), E, B("garbage"), B("v")], "invalid properties"],
      [[Buffer.alloc(300, 0x61), u64(0), E, E, B("v")], "key is longer than 255 bytes"],
      [[Buffer.from([0xff, 0xfe]), u64(0), E, E, B("v")], "key is not UTF-8"],
      [[B("HUGZ"), u64(0), E, E, B("v")], "reserved key"],
      [[B("KTHXBAI"), u64(0), E, E, B("v")], "reserved key"],
      [[E, u64(0), E, E, B("v")], "empty key"],
      [[B("/k"), u64(0), E, B("ttl=-1\n"), B("v")], "invalid ttl"],
      [[B("/k"), u64(0), E, B("ttl=soon\n"), B("v")], "invalid ttl"],
    ];
    for (const [frames] of bad) await updater.send(frames);
    await updater.send(good);
    const published = await listener.nextUpdate();
    expect(published.key).toBe("/k");
    expect(published.sequence).toBe(1);
    expect(dropped.map((d) => d.reason)).toEqual(bad.map(([, reason]) => reason));
    expect(dropped.every((d) => d.socket === "collector")).toBe(true);
    expect(server.stats().dropped).toEqual({
      "expected 5 frames, got 1": 1,
      "expected 5 frames, got 4": 1,
      "expected 5 frames, got 6": 1,
      "sequence frame is not 8 bytes": 1,
      "sequence too large": 1,
      "uuid frame is neither 16 bytes nor empty": 1,
      "invalid properties": 1,
      "key is longer than 255 bytes": 1,
      "key is not UTF-8": 1,
      "reserved key": 2,
      "empty key": 1,
      "invalid ttl": 2,
    });
    expect(server.stats()).toMatchObject({ sequence: 1, keys: 1 });
  });

  it("3.13.11 malformed snapshot requests are dropped and counted; the server keeps answering", async () => {
    const { server, updater } = await setup();
    await fill(server, updater, ["/k"]);
    const dropped = record(server, "dropped");
    const dealer = snapshotDealer(server.endpoints.snapshot);
    const bad: Array<[Buffer[], string]> = [
      [[B("HELLO")], "not a snapshot request"],
      [[E], "not a snapshot request"],
      [[B("ICANHAZ"), E], "not a snapshot request"],
      [[B("ICANHAZ?"), E, B("extra")], "unexpected 1 extra frame(s)"],
      [[B("ICANHAZ?"), Buffer.alloc(256, 0x61)], "subtree frame is longer than 255 bytes"],
    ];
    for (const [frames] of bad) await dealer.send(frames);
    await dealer.send([B("ICANHAZ?"), E]);
    const snapshot = await readSnapshot(dealer);
    expect(dumpSnapshot(snapshot)).toEqual(["/k=value of /k"]);
    expect(dropped.map((d) => d.reason)).toEqual(bad.map(([, reason]) => reason));
    expect(dropped.every((d) => d.socket === "snapshot" && d.from.length > 0)).toBe(true);
    expect(server.stats().dropped).toMatchObject({ "not a snapshot request": 3 });
    expect(server.stats().snapshotsServed).toBe(1);
  });

  it("3.13.11 a requester that vanishes mid-snapshot costs nothing but that snapshot", {
    timeout: 60_000,
  }, async () => {
    const { server, updater } = await setup();
    await fill(
      server,
      updater,
      Array.from({ length: 3000 }, (_, i) => `/k/${i}`),
      () => "y".repeat(200),
    );
    const gone = snapshotDealer(server.endpoints.snapshot);
    await gone.send([B("ICANHAZ?"), E]);
    await gone.receive();
    gone.close();
    // The next requester may wait behind a reply stuck for the vanished one, at most the
    // snapshot socket's send timeout (5 s), and then some on a loaded machine.
    const snapshot = await fetchSnapshot(server.endpoints.snapshot, "", 30_000);
    expect(snapshot.entries).toHaveLength(3000);
  });
});

describe("standalone server: life cycle", () => {
  it("close is idempotent, and a closed server publishes nothing more", async () => {
    const { server, listener } = await setup();
    await Promise.all([server.close(), server.close()]);
    await server.close();
    const count = listener.heard.length;
    await expect(listener.next(() => true, 5 * TICK)).rejects.toThrow(/no matching message/);
    expect(listener.heard.length).toBe(count);
    // Its ports are free again.
    await expectBindable(server.endpoints.publisher);
  });

  it("async dispose closes it", async () => {
    let endpoint: string;
    {
      await using server = await CloneServer.start({
        endpoints: await serverEndpoints(),
        hugzIntervalMs: TICK,
      });
      endpoint = server.endpoints.snapshot;
      expect((await fetchSnapshot(endpoint)).end.sequence).toBe(0);
    }
    await expectBindable(endpoint);
  });

  it("a start that cannot bind rejects and releases what it had bound", async () => {
    const taken = new Publisher({ linger: 0 });
    track(taken);
    const busy = await allocateAddress();
    await taken.bind(busy);
    const endpoints = { ...(await serverEndpoints()), snapshot: busy };
    await expect(CloneServer.start({ endpoints })).rejects.toMatchObject({ code: "EADDRINUSE" });
    // The publisher and collector it bound first were closed.
    await expectBindable(endpoints.publisher);
    await expectBindable(endpoints.collector);
  });

  it("option validation", async () => {
    const endpoints = await serverEndpoints();
    const cases: Array<[Parameters<typeof CloneServer.start>[0], RegExp]> = [
      [{ role: "leader" as never, endpoints }, /role must be/],
      [{ port: 0 }, /port must be an integer from 1 to 65533/],
      [{ port: 65534 }, /port must be an integer/],
      [{ port: 1.5 }, /port must be an integer/],
      [
        { endpoints: { ...endpoints, snapshot: "nowhere" } },
        /endpoints.snapshot must be a ZeroMQ endpoint/,
      ],
      [{ endpoints: { ...endpoints, collector: "tcp://x" } }, /endpoints.collector/],
      [{ endpoints, peer: { snapshot: "tcp://localhost:1" } }, /need a role/],
      [{ endpoints, localState: "tcp://*:1" }, /need a role/],
      [{ endpoints, remoteState: "tcp://localhost:1" }, /need a role/],
      [{ endpoints, role: "primary", peer: { publisher: "bad" } }, /peer.publisher/],
      [{ endpoints, hugzIntervalMs: 0 }, /hugzIntervalMs/],
      [{ endpoints, flushIntervalMs: Number.NaN }, /flushIntervalMs/],
      [{ endpoints, pendingMaxAgeMs: -1 }, /pendingMaxAgeMs/],
      [{ endpoints, pendingMaxSize: 0 }, /pendingMaxSize/],
      [{ endpoints, pendingMaxSize: 2.5 }, /pendingMaxSize/],
      [{ endpoints, snapshotTimeoutMs: 0 }, /snapshotTimeoutMs/],
      [{ endpoints, role: "backup", heartbeatIntervalMs: 100, peerExpiryMs: 50 }, /peerExpiryMs/],
    ];
    for (const [options, message] of cases) {
      const error = await CloneServer.start(options).then(
        (server) => {
          void server.close();
          return new Error(`started with ${JSON.stringify(options)}`);
        },
        (e: unknown) => e,
      );
      expect(error, JSON.stringify(options)).toBeInstanceOf(InvalidArgumentError);
      expect((error as Error).message).toMatch(message);
    }
    // Nothing was left bound by the failed starts.
    for (const endpoint of Object.values(endpoints)) await expectBindable(endpoint);
  });
});

/** Waits for `count` more HUGZ on `listener`. */
async function nextHugz(listener: Listener, count: number): Promise<void> {
  for (let i = 0; i < count; i++) await listener.next((m) => m.key === HUGZ);
}

function hexFrames(msg: KvMsg): string[] {
  return msg.encode().map((f) => f.toString("hex"));
}

/** Resolves once a fresh socket can bind `endpoint` (ZeroMQ frees a closed port shortly after). */
async function expectBindable(endpoint: string): Promise<void> {
  await retryWhileInUse(async () => {
    const socket = new Publisher({ linger: 0 });
    try {
      await socket.bind(endpoint);
    } finally {
      socket.close();
    }
  });
}
