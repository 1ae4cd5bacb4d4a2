/**
 * Interoperability with independent Python peers (interop/python, pyzmq): `clonesrv` plays a
 * standalone RFC 12/CHP server as the Guide's C reference behaves on the wire (SUB collector,
 * HUGZ with the counter, absolute `ttl` in snapshots, empty KTHXBAI body), and `clonecli` the
 * Guide's client agent (ICANHAZ right after subscribing, `ttl` always sent, HUGZ subscribed).
 * Our CloneClient against the Python server, the Python client against our CloneServer, and the
 * frames of each side compared byte for byte with our codecs.
 */
import {
  type ChildProcessHandle,
  checkPython,
  killAllProcesses,
  startPythonPeer,
} from "@zmq-patterns/core/testing";
import { afterEach, describe, expect, it } from "vitest";
import { Publisher, Router, Subscriber } from "zeromq";
import {
  type CloneChange,
  CloneClient,
  CloneServer,
  type CloneServerEvents,
  decodeClientUpdate,
  encodeSnapshotRequest,
  HUGZ,
  hugz,
  KTHXBAI,
  KvMsg,
  snapshotEnd,
} from "../src/index.js";
import {
  allocateBase,
  closeTracked,
  Listener,
  readSnapshot,
  snapshotDealer,
  track,
  Updater,
  WAIT_MS,
  within,
} from "./support.js";

/** HUGZ and TTL flush interval of the servers here, on both sides. */
const TICK = 200;
const HOST = "tcp://127.0.0.1";

// Needs /usr/bin/python3 with pyzmq (Debian: apt-get install python3-zmq); skipped otherwise.
const python = checkPython();
if (!python.available) console.warn(`clone interop tests skipped: ${python.reason}`);

afterEach(async () => {
  await closeTracked();
  await killAllProcesses();
});

/** The Python clonesrv on a fresh base port. */
async function pythonServer(extra: readonly string[] = []): Promise<{
  handle: ChildProcessHandle;
  address: string;
  port: number;
}> {
  const port = await allocateBase();
  const handle = await startPythonPeer("clonesrv", [
    "--port",
    String(port),
    "--host",
    HOST,
    "--hugz-interval",
    String(TICK),
    "--flush-interval",
    String(TICK),
    ...extra,
  ]);
  return { handle, address: `${HOST}:${port}`, port };
}

/** Our CloneServer, standalone on a fresh base port. */
async function ourServer(): Promise<{ server: CloneServer; address: string; port: number }> {
  const port = await allocateBase();
  const server = track(
    await CloneServer.start({ port, host: HOST, hugzIntervalMs: TICK, flushIntervalMs: TICK }),
  );
  return { server, address: `${HOST}:${port}`, port };
}

/** Our CloneClient on one server. */
function ourClient(address: string, subtree = ""): CloneClient {
  return track(new CloneClient({ servers: [address], subtree, serverTtlMs: 3000 }));
}

/** A Python clonecli on `address` with `args`. */
function pythonClient(address: string, args: readonly string[] = []): Promise<ChildProcessHandle> {
  return startPythonPeer("clonecli", ["--server", address, "--settle", "100", ...args]);
}

/** Resolves with the first line printed by `handle` from line `since` on that matches. */
async function lineAfter(
  handle: ChildProcessHandle,
  pattern: RegExp,
  since = 0,
  timeoutMs = WAIT_MS,
): Promise<string> {
  const seen = handle.output.slice(since).find((line) => pattern.test(line));
  if (seen !== undefined) return seen;
  return handle.waitForLine(pattern, timeoutMs);
}

const DUMP_LINE = /clonecli: ([^#\s][^=\s]*)=(.*)$/;
const DUMP_END = /clonecli: keys (\d+) sequence (\d+)$/;

/**
 * The map the Python client printed last (its `key=value` lines just above `keys N sequence S`),
 * as sorted `key=value` lines, and its sequence.
 */
function pythonMap(handle: ChildProcessHandle, since = 0): { map: string[]; sequence: number } {
  const lines = handle.output.slice(since);
  const end = lines.findLastIndex((line) => DUMP_END.test(line));
  if (end < 0) throw new Error(`${handle.name} printed no map`);
  const map: string[] = [];
  for (let i = end - 1; i >= 0; i--) {
    const match = DUMP_LINE.exec(lines[i] as string);
    if (!match) break;
    map.unshift(`${match[1]}=${match[2]}`);
  }
  const [, keys, sequence] = DUMP_END.exec(lines[end] as string) as RegExpExecArray;
  expect(map).toHaveLength(Number(keys));
  return { map: map.sort(), sequence: Number(sequence) };
}

/** A map as sorted `key=value` lines. */
const lines = (entries: Iterable<[string, Buffer]>): string[] =>
  [...entries].map(([key, value]) => `${key}=${value.toString()}`).sort();

/** A Python client run to completion (`--dump`): its exit status and the map it printed. */
async function pythonDump(
  address: string,
  args: readonly string[] = [],
): Promise<{ map: string[]; sequence: number; output: readonly string[] }> {
  const handle = await pythonClient(address, ["--dump", ...args]);
  expect(await handle.waitForExit(WAIT_MS)).toEqual({ code: 0, signal: null });
  return { ...pythonMap(handle), output: handle.output };
}

/** The frames `listener` received for `msg`. */
function rawOf(listener: Listener, msg: KvMsg): Buffer[] | undefined {
  return listener.raw[listener.heard.findIndex((heard) => heard.msg === msg)];
}

/** No decoding complaint from a Python peer. */
function expectNoInvalid(handle: ChildProcessHandle): void {
  expect(handle.output.filter((line) => /invalid message|bad request/.test(line))).toEqual([]);
}

/** The next change of `client` that passes `match`. Call before causing it. */
function nextChange(
  client: CloneClient,
  match: (change: CloneChange) => boolean,
): Promise<CloneChange> {
  let listener: (change: CloneChange) => void = () => {};
  const seen = new Promise<CloneChange>((resolve) => {
    listener = (change) => {
      if (match(change)) resolve(change);
    };
    client.on("change", listener);
  });
  return within(seen, WAIT_MS, "the change").finally(() => client.off("change", listener));
}

/** The next change of `client` for `key`. Call before causing it. */
function changeOf(client: CloneClient, key: string): Promise<CloneChange> {
  return nextChange(client, (change) => change.key === key);
}

type ServerUpdate = CloneServerEvents["update"][0];

/** The next update `server` publishes that passes `match`. Call before causing it. */
function nextUpdate(
  server: CloneServer,
  match: (update: ServerUpdate) => boolean,
): Promise<ServerUpdate> {
  let listener: (update: ServerUpdate) => void = () => {};
  const seen = new Promise<ServerUpdate>((resolve) => {
    listener = (update) => {
      if (match(update)) resolve(update);
    };
    server.on("update", listener);
  });
  return within(seen, WAIT_MS, "the update").finally(() => server.off("update", listener));
}

// Shows up in the report as a skipped test titled with the reason.
if (!python.available) it.skip(`interop with Python peers: ${python.reason}`, () => {});

describe.skipIf(!python.available)("Clone interop with Python peers (pyzmq)", () => {
  it("3.13.4, 3.13.5 our CloneClient against the Python clonesrv: the snapshot holds what a Python client stored (absolute ttl and uuid included), a subtree client gets only its keys, and live updates from both sides reach both clients", async () => {
    const { handle: server, address } = await pythonServer();
    const seeded = await pythonDump(address, [
      "--set",
      "a=1",
      "--set",
      "/x/b=2",
      "--set",
      "c=3",
      "--ttl",
      "60",
      "--dump-delay",
      "100",
    ]);
    expect(seeded.map).toEqual(["/x/b=2", "a=1", "c=3"]);
    await lineAfter(server, /update #3 c$/);

    const all = ourClient(address);
    const sub = ourClient(address, "/x/");
    await Promise.all([all.synced(), sub.synced()]);
    // The KVSYNC entries carry the reference's absolute ttl (epoch ms) and the writer's uuid.
    expect(lines(all.entries())).toEqual(["/x/b=2", "a=1", "c=3"]);
    expect(all.sequence).toBe(3);
    expect(lines(sub.entries())).toEqual(["/x/b=2"]);
    // KTHXBAI's body is empty from the reference, not the subtree: our client does not need it.
    expect(sub.sequence).toBe(3);

    // Our update: the Python server keeps our uuid, so set() is confirmed by its KVPUB.
    const seenBySub = changeOf(sub, "/x/ours");
    await all.set("/x/ours", "yes");
    expect(all.getText("/x/ours")).toBe("yes");
    expect((await seenBySub).value?.toString()).toBe("yes");
    await lineAfter(server, /update #4 \/x\/ours$/);

    // A Python client's updates reach both of ours; a delete removes the key.
    const deleted = changeOf(all, "a");
    const added = changeOf(sub, "/x/py");
    const writer = await pythonClient(address, ["--set", "/x/py=7", "--delete", "a"]);
    expect((await added).value?.toString()).toBe("7");
    expect((await deleted).value).toBeUndefined();
    expect(all.getText("/x/py")).toBe("7");
    expect(all.has("a")).toBe(false);
    expect(lines(sub.entries())).toEqual(["/x/b=2", "/x/ours=yes", "/x/py=7"]);

    // Every client, of either language, ends with the same map.
    const after = await pythonDump(address);
    expect(after.map).toEqual(lines(all.entries()));
    expect(after.sequence).toBe(all.sequence);
    expect(all.stats().dropped).toEqual({});
    expect(sub.stats().dropped).toEqual({});
    expectNoInvalid(server);
    expectNoInvalid(writer);
  });

  it("3.13.6 ttl through the Python clonesrv: a value our client sets with a 1 s ttl is expired there and deleted from our client; ttl=0 from the Python client is permanent", async () => {
    const { handle: server, address } = await pythonServer();
    const client = ourClient(address);
    await client.synced();
    const writer = await pythonClient(address, ["--set", "keep=1", "--ttl", "0"]);
    await lineAfter(writer, /#1 keep=1$/);

    const expired = nextChange(
      client,
      (change) => change.key === "short" && change.value === undefined,
    );
    const setAt = performance.now();
    await client.set("short", "x", { ttlMs: 1000 });
    const { sequence } = await expired;
    const elapsed = performance.now() - setAt;
    // ttl .. ttl + one flush interval, with room for a loaded machine.
    expect(elapsed).toBeGreaterThanOrEqual(900);
    expect(elapsed).toBeLessThan(1000 + TICK + 3000);
    await lineAfter(server, new RegExp(`expired #${sequence} short$`));
    expect(sequence).toBe(3);
    // "ttl=0" (always sent by the reference's client) never expires.
    expect(client.getText("keep")).toBe("1");
    expect(server.output.some((line) => /expired #\d+ keep$/.test(line))).toBe(false);
    expectNoInvalid(server);
  });

  it("3.13.7 HUGZ from the Python clonesrv keeps a client of a quiet subtree on its server", async () => {
    const { address, port } = await pythonServer();
    const client = track(
      new CloneClient({ servers: [address], subtree: "/quiet/", serverTtlMs: 4 * TICK }),
    );
    const failovers: unknown[] = [];
    client.on("failover", (event) => failovers.push(event));
    await client.synced();
    // Ten HUGZ intervals (2.5 server TTLs) go by without an update under /quiet/.
    const listener = await Listener.connect(`${HOST}:${port + 1}`, HUGZ);
    for (let n = 0; n < 10; n++) await listener.next((msg) => msg.key === HUGZ);
    expect(failovers).toEqual([]);
    expect(client.state).toBe("active");
  });

  it("the Python clonecli against our CloneServer: after updates from both sides and a ttl expiry, its map equals our server's and our client's", async () => {
    const { server, address } = await ourServer();
    const watcher = await pythonClient(address);
    await lineAfter(watcher, /heard HUGZ/);
    const client = ourClient(address);
    await client.synced();

    for (let n = 0; n < 10; n++) await client.set(`/ours/${n}`, `v${n}`);
    // Updates #11 to #23: three given, then ten random ones under /py/, all with "ttl=0".
    const writer = await pythonClient(address, [
      "--subtree",
      "/py/",
      "--set",
      "/py/fixed=1",
      "--set",
      "/ours/3=overwritten",
      "--delete",
      "/ours/4",
      "--random",
      "10",
      "--interval",
      "20",
    ]);
    await lineAfter(watcher, /clonecli: #23 \/py\/\d+=\d+$/);
    expect(server.sequence).toBe(23);
    await client.delete("/ours/9");
    const expired = nextUpdate(server, (u) => u.key === "gone" && u.reason === "expired");
    await client.set("gone", "soon", { ttlMs: 1000 });
    await expired;
    const final = server.sequence;
    await lineAfter(watcher, new RegExp(`clonecli: #${final} gone deleted$`));

    const since = watcher.output.length;
    process.kill(watcher.pid, "SIGUSR1");
    await lineAfter(watcher, DUMP_END, since);
    const theirs = pythonMap(watcher, since);
    const ours = lines(server.entries());
    expect(theirs.sequence).toBe(final);
    expect(theirs.map).toEqual(ours);
    expect(lines(client.entries())).toEqual(ours);
    expect(ours).toContain("/ours/3=overwritten");
    expect(ours).toContain("/py/fixed=1");
    expect(ours.filter((line) => /^\/ours\/(4|9)=|^gone=/.test(line))).toEqual([]);
    // The Python writer's ttl=0 made nothing expire but our own ttl'd key.
    expect(server.stats().expired).toBe(1);

    // A fresh Python client loads the same map from our snapshot; one on /py/ only its keys.
    const fresh = await pythonDump(address);
    expect(fresh.map).toEqual(ours);
    const subtree = await pythonDump(address, ["--subtree", "/py/"]);
    expect(subtree.map).toEqual(ours.filter((line) => line.startsWith("/py/")));
    expect(server.stats().dropped).toEqual({});
    for (const handle of [watcher, writer]) expectNoInvalid(handle);
  });

  it("golden frames: the Python client's ICANHAZ and KVSET are byte for byte what our codecs encode, and it applies our KVSYNC, KTHXBAI, HUGZ and KVPUB", async () => {
    const port = await allocateBase();
    const router = track(new Router({ linger: 0 }));
    const publisher = track(new Publisher({ linger: 0 }));
    const collector = track(new Subscriber({ linger: 0 }));
    collector.subscribe();
    await router.bind(`${HOST}:${port}`);
    await publisher.bind(`${HOST}:${port + 1}`);
    await collector.bind(`${HOST}:${port + 2}`);
    collector.receiveTimeout = WAIT_MS;
    router.receiveTimeout = WAIT_MS;

    const client = await pythonClient(`${HOST}:${port}`, [
      "--subtree",
      "/g/",
      "--set",
      "/g/k=v",
      "--ttl",
      "7",
    ]);
    const [id, ...request] = await router.receive();
    expect(request).toEqual(encodeSnapshotRequest("/g/"));
    const stored = new KvMsg({
      key: "/g/old",
      sequence: 3,
      uuid: "random",
      properties: { ttl: "5" },
      body: "x",
    });
    await router.send([id as Buffer, ...stored.encode()]);
    await router.send([id as Buffer, ...snapshotEnd(3, Buffer.from("/g/")).encode()]);
    await lineAfter(client, /synchronised: 1 keys, sequence 3$/);

    // HUGZ until the client has heard one (a PUB drops what it sends before the subscription).
    const beat = setInterval(() => void publisher.send(hugz(3).encode()).catch(() => {}), 50);
    try {
      await lineAfter(client, /heard HUGZ \(sequence 3\)$/);
    } finally {
      clearInterval(beat);
    }

    const kvset = (await collector.receive()) as [Buffer, Buffer, Buffer, Buffer, Buffer];
    expect(kvset).toHaveLength(5);
    expect(kvset[2]).toHaveLength(16);
    expect(kvset).toEqual(
      new KvMsg({ key: "/g/k", uuid: kvset[2], properties: { ttl: "7" }, body: "v" }).encode(),
    );
    expect(kvset[1]).toEqual(Buffer.alloc(8));
    expect(kvset[3]?.toString()).toBe("ttl=7\n");
    expect(decodeClientUpdate(kvset).uuid).toEqual(kvset[2]);

    const published = decodeClientUpdate(kvset);
    published.sequence = 4;
    await publisher.send(published.encode());
    await lineAfter(client, /clonecli: #4 \/g\/k=v$/);
    expectNoInvalid(client);
  });

  it("golden frames: the Python clonesrv's HUGZ, KVPUB, KVSYNC and KTHXBAI are byte for byte what our codecs encode, but for the reference's absolute ttl in KVSYNC and empty KTHXBAI body", async () => {
    const { handle: server, port } = await pythonServer();
    const listener = await Listener.connect(`${HOST}:${port + 1}`);
    expect(listener.raw[0]).toEqual(hugz(0).encode());

    const updater = await Updater.connect(`${HOST}:${port + 2}`);
    const sent = await updater.set("g", "v", { ttl: "30" });
    const kvpub = await listener.nextUpdate();
    // Published as received, with the next sequence and the relative ttl.
    expect(rawOf(listener, kvpub)).toEqual(
      new KvMsg({
        key: "g",
        sequence: 1,
        uuid: sent.uuid,
        properties: { ttl: "30" },
        body: "v",
      }).encode(),
    );
    const beat = await listener.next((msg) => msg.key === HUGZ && msg.sequence === 1);
    expect(rawOf(listener, beat)).toEqual(hugz(1).encode());

    const dealer = snapshotDealer(`${HOST}:${port}`);
    const before = Date.now();
    await dealer.send(encodeSnapshotRequest(""));
    const frames: Buffer[][] = [];
    dealer.receiveTimeout = WAIT_MS;
    for (;;) {
      const reply = await dealer.receive();
      frames.push(reply);
      if (reply[0]?.toString() === KTHXBAI) break;
    }
    expect(frames).toHaveLength(2);
    const [kvsync, end] = frames as [Buffer[], Buffer[]];
    // KVSYNC: the stored entry; its ttl is the absolute expiry in epoch ms (fix B2 is ours only).
    const ttl = /^ttl=(\d+)\n$/.exec(kvsync[3]?.toString() ?? "");
    expect(ttl).not.toBeNull();
    expect(Number(ttl?.[1])).toBeGreaterThan(before + 20_000);
    expect(Number(ttl?.[1])).toBeLessThan(before + 40_000);
    expect(kvsync).toEqual(
      new KvMsg({
        key: "g",
        sequence: 1,
        uuid: sent.uuid,
        properties: { ttl: ttl?.[1] as string },
        body: "v",
      }).encode(),
    );
    // KTHXBAI with the current sequence; for subtree "" ours is the same bytes.
    expect(end).toEqual(snapshotEnd(1, Buffer.alloc(0)).encode());

    // With a subtree, the reference's KTHXBAI body stays empty where ours carries the subtree.
    await dealer.send(encodeSnapshotRequest("/none/"));
    const subtreeEnd = await readSnapshot(dealer);
    expect(subtreeEnd.entries).toEqual([]);
    expect(subtreeEnd.end.encode()).toEqual(new KvMsg({ key: KTHXBAI, sequence: 1 }).encode());
    expect(snapshotEnd(1, Buffer.from("/none/")).body.toString()).toBe("/none/");
    expectNoInvalid(server);
  });
});
