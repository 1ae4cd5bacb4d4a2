import { sleep } from "@zmq-patterns/core";
import { allocateAddress } from "@zmq-patterns/core/testing";
import { afterEach, describe, expect, it } from "vitest";
import { Dealer, Publisher, Router, Subscriber } from "zeromq";
import { type CloneServer, KTHXBAI, type KvMsg } from "../src/index.js";
import {
  B,
  closeTracked,
  dump,
  dumpSnapshot,
  fetchSnapshot,
  HB,
  Listener,
  nextEvent,
  pairConfig,
  record,
  startMember,
  startPair,
  track,
  Updater,
  voteForSnapshot,
  WAIT_MS,
  waitFor,
} from "./support.js";

afterEach(closeTracked);

/** Both servers hold the same entries (key, value, uuid, properties) and the same sequence. */
function expectMirrored(active: CloneServer, passive: CloneServer): void {
  expect(passive.sequence).toBe(active.sequence);
  expect(dump(passive.entries())).toEqual(dump(active.entries()));
  for (const [key] of active.entries()) {
    const a = active.get(key) as KvMsg;
    const p = passive.get(key) as KvMsg;
    expect(p.encode().map(hex), key).toEqual(a.encode().map(hex));
  }
}

const hex = (frame: Buffer): string => frame.toString("hex");

/** Waits until the passive has caught up with the active and cancelled every pending entry. */
async function quiescent(active: CloneServer, passive: CloneServer): Promise<void> {
  await waitFor(
    () => passive.sequence === active.sequence && passive.stats().pending === 0,
    `the passive catching up with sequence ${active.sequence}`,
  );
}

/** Sends `keys` through `updater` and waits until `server` has published them. */
async function fill(server: CloneServer, updater: Updater, entries: Array<[string, string]>) {
  const target = server.sequence + entries.length;
  for (const [key, value] of entries) await updater.set(key, value);
  await waitFor(() => server.sequence >= target, `${entries.length} updates published`);
}

describe("Clone server pair (3.8)", () => {
  it("3.8 the pair settles: primary active, backup passive and synchronised from it", async () => {
    const config = await pairConfig();
    const primary = await startMember(config.primary);
    const primaryMode = nextEvent(primary, "mode", (m) => m.mode === "active");
    const backup = await startMember(config.backup);
    const synced = nextEvent(backup, "synced");
    expect(await primaryMode).toEqual({ mode: "active", state: "ACTIVE" });
    expect(await synced).toEqual({ keys: 0, sequence: 0 });
    expect(backup.mode).toBe("passive");
    expect(primary.stats()).toMatchObject({ mode: "active", state: "ACTIVE", synced: true });
    expect(backup.stats()).toMatchObject({ mode: "passive", state: "PASSIVE", synced: true });
    expect(primary.role).toBe("primary");
    expect(backup.role).toBe("backup");
    expect(primary.endpoints).toEqual(config.primary.endpoints);
  });

  it("3.13.9 B1 the passive mirrors the active exactly, TTL values included; it never expires or numbers anything itself", async () => {
    const { primary, backup } = await startPair();
    const updater = await Updater.connect(primary.endpoints.collector, backup.endpoints.collector);
    const backupUpdates = record(backup, "update");
    const expired = record(primary, "update");
    for (let i = 0; i < 20; i++)
      await updater.set(`/k/${i}`, `v${i}`, { properties: { n: `${i}` } });
    await updater.set("/eph/1", "gone soon", { ttl: "1" });
    await updater.set("/eph/2", "gone soon", { ttl: "1" });
    await updater.set("/long", "stays", { ttl: "60" });
    await updater.delete("/k/3");
    await waitFor(() => primary.sequence === 24, "24 updates");
    await quiescent(primary, backup);
    expectMirrored(primary, backup);
    expect(backup.get("/long")?.getProperty("ttl")).toBe("60");
    // The ttl=1 values expire on the active only; the passive applies the active's deletes.
    await waitFor(
      () => expired.filter((e) => e.reason === "expired").length === 2,
      "the active expiring two values",
      WAIT_MS,
    );
    await quiescent(primary, backup);
    expect(primary.sequence).toBe(26);
    expectMirrored(primary, backup);
    expect(backup.get("/eph/1")).toBeUndefined();
    expect(backup.get("/long")?.text).toBe("stays");
    expect(backupUpdates).toEqual([]);
    expect(backup.stats()).toMatchObject({ expired: 0, updatesPublished: 0, sequence: 26 });
    // And after more flush ticks (of which the passive has none) nothing has moved.
    await nextEvent(primary, "update", () => true, 500).catch(() => {});
    await quiescent(primary, backup);
    expectMirrored(primary, backup);
  });

  it("1.6 garbage on the passive's snapshot socket is no vote, even with the peer gone", async () => {
    const { primary, backup } = await startPair();
    const dropped = record(backup, "dropped");
    await primary.close();
    const sender = track(new Dealer({ linger: 0 }));
    sender.connect(backup.endpoints.snapshot);
    // Well past the peer expiry (2 heartbeats), keep sending junk.
    const until = performance.now() + 6 * HB;
    while (performance.now() < until) {
      await sender.send([B("GIMME")]);
      await sender.send([B("ICANHAZ?"), B(""), B("extra")]);
      await sleep(HB / 3);
    }
    await waitFor(() => dropped.length >= 4, "garbage dropped");
    expect(backup.mode).toBe("passive");
    expect(dropped.every((d) => d.socket === "snapshot")).toBe(true);
    expect(backup.stats().dropped).toMatchObject({ "not a snapshot request": expect.any(Number) });
    // A real request is a vote and is answered.
    const snapshot = await voteForSnapshot(backup.endpoints.snapshot);
    expect(snapshot.end.key).toBe(KTHXBAI);
    expect(backup.mode).toBe("active");
  });

  it("3.13.9 B10 updates sent while the active is down are replayed by the backup when a vote makes it active, before the vote is answered", async () => {
    const { primary, backup } = await startPair();
    const updater = await Updater.connect(primary.endpoints.collector, backup.endpoints.collector);
    await fill(primary, updater, [
      ["/a", "1"],
      ["/b", "1"],
      ["/c", "1"],
    ]);
    await quiescent(primary, backup);
    const listener = await Listener.connect(backup.endpoints.publisher);
    await primary.close();
    const sent = [
      await updater.set("/a", "2"),
      await updater.delete("/b"),
      await updater.set("/d", "new", { ttl: "30" }),
      await updater.set("/a", "3"),
    ];
    await waitFor(() => backup.stats().pending === 4, "four updates pending on the backup");
    expect(backup.sequence).toBe(3);
    const updates = record(backup, "update");
    const became = nextEvent(backup, "mode", (m) => m.mode === "active");
    const snapshot = await voteForSnapshot(backup.endpoints.snapshot);
    expect(await became).toEqual({ mode: "active", state: "ACTIVE" });
    // Replayed in arrival order, each once, with new sequence numbers.
    expect(updates).toEqual([
      { key: "/a", sequence: 4, deleted: false, reason: "replayed" },
      { key: "/b", sequence: 5, deleted: true, reason: "replayed" },
      { key: "/d", sequence: 6, deleted: false, reason: "replayed" },
      { key: "/a", sequence: 7, deleted: false, reason: "replayed" },
    ]);
    // B10: the very vote that caused the failover already sees them.
    expect(dumpSnapshot(snapshot)).toEqual(["/a=3", "/c=1", "/d=new"]);
    expect(snapshot.end.sequence).toBe(7);
    // B6: the replayed ttl is relative and honoured as such (not expired at once).
    expect(
      Number(snapshot.entries.find((m) => m.key === "/d")?.getProperty("ttl")),
    ).toBeGreaterThan(25);
    // And published, with the clients' uuids.
    for (const [i, msg] of sent.entries()) {
      const published = await listener.nextUpdate();
      expect(published.sequence).toBe(4 + i);
      expect(published.key).toBe(msg.key);
      expect(published.uuid?.equals(msg.uuid as Buffer)).toBe(true);
    }
    expect(backup.stats()).toMatchObject({ pending: 0, sequence: 7, keys: 3 });
    // New updates are sequenced on from there.
    await updater.set("/e", "5");
    expect((await listener.nextUpdate()).sequence).toBe(8);
  });

  it("3.8.3 a primary alone takes over on a vote after the peer expiry and publishes what it collected meanwhile", async () => {
    const config = await pairConfig();
    const primary = await startMember(config.primary);
    const updater = await Updater.connect(primary.endpoints.collector);
    await updater.set("/early", "1");
    await waitFor(() => primary.stats().pending === 1, "the update pending");
    expect(primary.mode).toBe("waiting");
    const snapshot = await voteForSnapshot(primary.endpoints.snapshot);
    expect(primary.mode).toBe("active");
    expect(dumpSnapshot(snapshot)).toEqual(["/early=1"]);
    expect(snapshot.end.sequence).toBe(1);
  });

  it("3.13.9 B3 the active's own publications are never replayed: not those whose client copy missed the passive, not TTL deletes", async () => {
    const { primary, backup } = await startPair();
    const both = await Updater.connect(primary.endpoints.collector, backup.endpoints.collector);
    const primaryOnly = await Updater.connect(primary.endpoints.collector);
    await primaryOnly.set("/only-primary", "1");
    await both.set("/eph", "x", { ttl: "1" });
    await both.set("/k", "1");
    await waitFor(() => primary.stats().expired === 1, "the ttl expiring");
    await quiescent(primary, backup);
    expect(primary.sequence).toBe(4);
    expectMirrored(primary, backup);
    await primary.close();
    const updates = record(backup, "update");
    const snapshot = await voteForSnapshot(backup.endpoints.snapshot);
    expect(updates).toEqual([]);
    expect(backup.sequence).toBe(4);
    expect(dumpSnapshot(snapshot)).toEqual(["/k=1", "/only-primary=1"]);
  });

  it("B3 a client update the active never published leaves the pending list after pendingMaxAgeMs, so it cannot overwrite a newer value", async () => {
    const maxAge = 1500;
    const { primary, backup } = await startPair({ pendingMaxAgeMs: maxAge });
    const both = await Updater.connect(primary.endpoints.collector, backup.endpoints.collector);
    const backupOnly = await Updater.connect(backup.endpoints.collector);
    // The active's copy of this one was lost: only the passive has it.
    await backupOnly.set("/k", "old");
    await waitFor(() => backup.stats().pending === 1, "the lost update pending");
    // Wait out the maximum age (what is under test), then a newer value goes through.
    await sleep(maxAge + 200);
    await both.set("/k", "new");
    await waitFor(() => primary.get("/k")?.text === "new", "the newer value");
    await quiescent(primary, backup);
    await primary.close();
    await backupOnly.set("/fresh", "1");
    await waitFor(() => backup.stats().pending === 1, "the fresh update pending");
    const updates = record(backup, "update");
    const snapshot = await voteForSnapshot(backup.endpoints.snapshot);
    expect(updates.map((u) => u.key)).toEqual(["/fresh"]);
    expect(dumpSnapshot(snapshot)).toEqual(["/fresh=1", "/k=new"]);
  });

  it("3.13.9 B12 an update without uuid is applied by the active only, never replayed by the passive (no update applied twice)", async () => {
    const { primary, backup } = await startPair();
    const updater = await Updater.connect(primary.endpoints.collector, backup.endpoints.collector);
    const dropped = nextEvent(backup, "dropped");
    await updater.set("/k", "1", { uuid: null });
    await updater.set("/k", "2");
    expect(await dropped).toEqual({
      reason: "no uuid, not kept for failover",
      socket: "collector",
      from: "",
    });
    await waitFor(() => primary.sequence === 2, "both published");
    await quiescent(primary, backup);
    expectMirrored(primary, backup);
    await primary.close();
    const updates = record(backup, "update");
    const snapshot = await voteForSnapshot(backup.endpoints.snapshot);
    expect(updates).toEqual([]);
    expect(dumpSnapshot(snapshot)).toEqual(["/k=2"]);
    expect(snapshot.end.sequence).toBe(2);
  });

  it("B3 the pending list is bounded in size, oldest dropped first", async () => {
    const { primary, backup } = await startPair({ pendingMaxSize: 3 });
    const backupOnly = await Updater.connect(backup.endpoints.collector);
    for (let i = 1; i <= 5; i++) await backupOnly.set(`/p/${i}`, `${i}`);
    await waitFor(() => backup.stats().dropped["pending list full"] === 2, "two dropped");
    expect(backup.stats().pending).toBe(3);
    await primary.close();
    const updates = record(backup, "update");
    await voteForSnapshot(backup.endpoints.snapshot);
    expect(updates.map((u) => u.key)).toEqual(["/p/3", "/p/4", "/p/5"]);
  });

  it("3.13.9 B4 client updates the passive collected before it synced, and that the snapshot covers, are not replayed", async () => {
    const config = await pairConfig();
    // The backup hears its peer only through a relay the test opens when it wants.
    const relayEndpoint = await allocateAddress();
    const primary = await startMember(config.primary);
    const backup = await startMember({ ...config.backup, remoteState: relayEndpoint });
    await waitFor(() => primary.mode === "active", "the primary active (it hears the backup)");
    expect(backup.mode).toBe("waiting");
    const updater = await Updater.connect(primary.endpoints.collector, backup.endpoints.collector);
    await updater.set("/k", "v1");
    await updater.set("/k", "v2");
    await updater.set("/other", "x");
    await waitFor(
      () => primary.sequence === 3 && backup.stats().pending === 3,
      "three updates published by the primary and pending on the backup",
    );
    // Now the backup hears the primary: it goes passive and loads the snapshot, which holds
    // v2 and /other (their uuids) and, implicitly, v1 which v2 replaced.
    const synced = nextEvent(backup, "synced");
    await Relay.start(config.primary.localState, relayEndpoint);
    expect(await synced).toEqual({ keys: 2, sequence: 3 });
    expect(backup.stats().pending).toBe(0);
    await primary.close();
    const updates = record(backup, "update");
    const snapshot = await voteForSnapshot(backup.endpoints.snapshot);
    expect(updates).toEqual([]);
    expect(dumpSnapshot(snapshot)).toEqual(["/k=v2", "/other=x"]);
    expect(snapshot.end.sequence).toBe(3);
  });

  it("B7 the passive's snapshot fetch times out and asks again; it keeps heartbeating and can still take over", async () => {
    const config = await pairConfig();
    // The backup asks a stand-in for its snapshot, which ignores the first two requests and
    // then relays the real one from the primary.
    const standIn = track(new Router({ linger: 0 }));
    const standInEndpoint = await allocateAddress();
    await standIn.bind(standInEndpoint);
    const primary = await startMember(config.primary);
    const updater = await Updater.connect(primary.endpoints.collector);
    const backup = await startMember(
      { ...config.backup, peer: { ...config.backup.peer, snapshot: standInEndpoint } },
      { snapshotTimeoutMs: 300 },
    );
    await waitFor(() => primary.mode === "active", "the primary active");
    await updater.set("/k", "1");
    const requesters = new Set<string>();
    const synced = nextEvent(backup, "synced");
    void (async () => {
      try {
        for await (const [id, ...request] of standIn) {
          requesters.add(hex(id as Buffer));
          expect(request.map(String)).toEqual(["ICANHAZ?", ""]);
          if (requesters.size < 3) continue;
          const real = await fetchSnapshot(primary.endpoints.snapshot);
          for (const msg of [...real.entries, real.end]) {
            await standIn.send([id as Buffer, ...msg.encode()]);
          }
        }
      } catch {
        // closed
      }
    })();
    expect(await synced).toEqual({ keys: 1, sequence: 1 });
    // Each attempt on a fresh socket (fresh routing id), after a timeout.
    expect(requesters.size).toBe(3);
    expect(backup.stats().dropped["snapshot fetch timed out"]).toBe(2);
    expect(backup.mode).toBe("passive");
    expectMirrored(primary, backup);
  });

  it("B8 a passive that never managed to sync can still be voted active and serves what it has", async () => {
    const config = await pairConfig();
    // Its peer publisher points nowhere: it goes passive but never hears a publication.
    const nowhere = await allocateAddress();
    const primary = await startMember(config.primary);
    const backup = await startMember({
      ...config.backup,
      peer: { ...config.backup.peer, publisher: nowhere },
    });
    await waitFor(() => backup.mode === "passive", "the backup passive");
    const updater = await Updater.connect(primary.endpoints.collector, backup.endpoints.collector);
    await updater.set("/k", "1");
    await waitFor(() => backup.stats().pending === 1, "the update pending");
    expect(backup.stats().synced).toBe(false);
    await primary.close();
    const snapshot = await voteForSnapshot(backup.endpoints.snapshot);
    expect(backup.stats()).toMatchObject({ mode: "active", synced: true });
    expect(dumpSnapshot(snapshot)).toEqual(["/k=1"]);
  });

  it("3.13.10 a primary restarted after a failover comes back passive, re-syncs, and mirrors the backup", async () => {
    const { primary, backup, config } = await startPair();
    const updater = await Updater.connect(primary.endpoints.collector, backup.endpoints.collector);
    await fill(primary, updater, [
      ["/a", "1"],
      ["/b", "1"],
    ]);
    await quiescent(primary, backup);
    await primary.close();
    await voteForSnapshot(backup.endpoints.snapshot);
    expect(backup.mode).toBe("active");
    await fill(backup, updater, [
      ["/a", "2"],
      ["/c", "1"],
    ]);
    const restarted = await startMember(config.primary);
    const fatal = record(restarted, "fatal");
    await waitFor(
      () => restarted.mode === "passive" && restarted.stats().synced,
      "the restarted primary passive and synced",
    );
    expect(backup.mode).toBe("active");
    await updater.ready(3); // the updater reconnected to the restarted primary's collector
    await fill(backup, updater, [["/d", "1"]]);
    await quiescent(backup, restarted);
    expectMirrored(backup, restarted);
    expect(dump(restarted.entries())).toEqual(["/a=2", "/b=1", "/c=1", "/d=1"]);
    expect(fatal).toEqual([]);
    expect(restarted.stats().updatesPublished).toBe(0);
  });

  it("1.5.4 a split brain stops the server with a fatal event", async () => {
    const config = await pairConfig();
    // The primary hears a fake peer that claims to be active too.
    const fake = track(new Publisher({ linger: 0 }));
    const fakeEndpoint = await allocateAddress();
    await fake.bind(fakeEndpoint);
    const primary = await startMember({ ...config.primary, remoteState: fakeEndpoint });
    await voteForSnapshot(primary.endpoints.snapshot);
    expect(primary.mode).toBe("active");
    const fatal = nextEvent(primary, "fatal");
    const beat = setInterval(() => void fake.send(B("3")).catch(() => {}), HB / 2);
    try {
      const error = await fatal;
      expect(error.reason).toBe("dual-active");
    } finally {
      clearInterval(beat);
    }
    // Closed: the snapshot port is free again and close is harmless.
    await primary.close();
    expect(primary.endpoints.snapshot).toBe(config.primary.endpoints.snapshot);
  });
});

/** Forwards one PUB's messages to a fresh PUB bound elsewhere. */
class Relay {
  readonly #in: Subscriber;
  readonly #out: Publisher;

  private constructor(input: Subscriber, output: Publisher) {
    this.#in = input;
    this.#out = output;
    void (async () => {
      try {
        for await (const frames of input) await output.send(frames);
      } catch {
        // closed
      }
    })();
  }

  static async start(from: string, to: string): Promise<Relay> {
    const input = new Subscriber({ linger: 0 });
    input.subscribe();
    input.connect(from);
    const output = new Publisher({ linger: 0 });
    await output.bind(to);
    return track(new Relay(input, output));
  }

  close(): void {
    this.#in.close();
    this.#out.close();
  }
}
