import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeFrameFile, ProtocolError } from "@zmq-patterns/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FileStore, type StoredRequest } from "../src/store.js";

const A = "0123456789ABCDEF0123456789ABCDEF";
const B = "FEDCBA9876543210FEDCBA9876543210";
const C = "00000000000000000000000000000001";
const D = "ABCDEFABCDEFABCDEFABCDEFABCDEF00";

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "titanic-"));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function openStore(options: { dir?: string; fsync?: boolean } = {}): Promise<FileStore> {
  const store = new FileStore({ dir: options.dir ?? root, fsync: options.fsync ?? true });
  await store.open();
  return store;
}

function request(uuid: string, storedAt = 1_700_000_000_000, body?: Buffer[]): StoredRequest {
  return {
    uuid,
    service: "echo",
    body: body ?? [Buffer.from(`hello ${uuid}`)],
    storedAt,
  };
}

/** Every file under `dir` (recursively) with its size, to prove that nothing changed. */
async function tree(dir: string): Promise<string[]> {
  const names = await readdir(dir, { recursive: true });
  const out: string[] = [];
  for (const name of names) {
    const info = await stat(join(dir, name));
    out.push(`${name}:${info.isDirectory() ? "dir" : info.size}`);
  }
  return out.sort();
}

/** Rejects with a ProtocolError; returns its reason. */
async function protocolReason(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(ProtocolError);
  return (error as ProtocolError).reason;
}

const allBytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

describe("FileStore: requests and replies", () => {
  it("round-trips a request with binary, empty and large frames, and a UTF-8 service name", async () => {
    const store = await openStore();
    const big = randomBytes(1 << 20);
    const stored: StoredRequest = {
      uuid: A,
      service: "café.échange",
      body: [allBytes, Buffer.alloc(0), Buffer.from([0]), big, Buffer.alloc(0)],
      storedAt: 1_712_345_678_901,
    };
    await store.putRequest(stored);
    // A new instance reads the same bytes back too. (The 1 MiB frame is compared with equals():
    // deep equality of a large Buffer is slow.)
    for (const read of [store, await openStore()]) {
      const got = await read.getRequest(A);
      expect(got?.body[3]?.equals(big)).toBe(true);
      expect({ ...got, body: got?.body.filter((f) => f !== got.body[3]) }).toEqual({
        ...stored,
        body: [allBytes, Buffer.alloc(0), Buffer.from([0]), Buffer.alloc(0)],
      });
      expect(got?.body).toHaveLength(5);
    }
  });

  it("round-trips a request whose body is one empty frame, and one without body frames", async () => {
    const store = await openStore();
    await store.putRequest(request(A, 5, [Buffer.alloc(0)]));
    await store.putRequest(request(B, 6, []));
    expect((await store.getRequest(A))?.body).toEqual([Buffer.alloc(0)]);
    expect((await store.getRequest(B))?.body).toEqual([]);
  });

  it("round-trips replies: binary, empty frames, no frames at all", async () => {
    const store = await openStore();
    for (const uuid of [A, B, C]) await store.putRequest(request(uuid));
    await store.putReply(A, [allBytes, Buffer.alloc(0), Buffer.from("end")]);
    await store.putReply(B, [Buffer.alloc(0)]);
    await store.putReply(C, []);
    expect(await store.getReply(A)).toEqual([allBytes, Buffer.alloc(0), Buffer.from("end")]);
    expect(await store.getReply(B)).toEqual([Buffer.alloc(0)]);
    // An empty reply is still a reply: done, not pending.
    expect(await store.getReply(C)).toEqual([]);
    expect(await store.state(C)).toBe("done");
  });

  it("the reply does not alter the stored request, and repeated reads give the same reply (TSP-R3)", async () => {
    const store = await openStore();
    await store.putRequest(request(A, 42));
    await store.putReply(A, [Buffer.from("result")]);
    expect(await store.getRequest(A)).toEqual(request(A, 42));
    expect(await store.getReply(A)).toEqual([Buffer.from("result")]);
    expect(await store.getReply(A)).toEqual([Buffer.from("result")]);
  });

  it("unknown UUIDs have no request and no reply; a pending one has no reply", async () => {
    const store = await openStore();
    expect(await store.getRequest(A)).toBeUndefined();
    expect(await store.getReply(A)).toBeUndefined();
    await store.putRequest(request(A));
    expect(await store.getReply(A)).toBeUndefined();
  });
});

describe("FileStore: states and remove (TI-B9)", () => {
  it("goes unknown -> pending -> done -> unknown after remove", async () => {
    const store = await openStore();
    expect(await store.state(A)).toBe("unknown");
    await store.putRequest(request(A));
    expect(await store.state(A)).toBe("pending");
    await store.putReply(A, [Buffer.from("r")]);
    expect(await store.state(A)).toBe("done");
    await store.remove(A);
    expect(await store.state(A)).toBe("unknown");
    expect(await store.getRequest(A)).toBeUndefined();
    expect(await store.getReply(A)).toBeUndefined();
    expect(await readdir(root)).toEqual([]);
  });

  it("TSP-R4: remove is idempotent, works on pending entries and on UUIDs never seen", async () => {
    const store = await openStore();
    await store.remove(A);
    await store.putRequest(request(B));
    await store.remove(B);
    await store.remove(B);
    await store.remove(B.toLowerCase());
    expect(await store.state(B)).toBe("unknown");
    expect(await store.pending()).toEqual([]);
    expect(await readdir(root)).toEqual([]);
  });

  it("remove forgets only its own entry", async () => {
    const store = await openStore();
    for (const uuid of [A, B]) {
      await store.putRequest(request(uuid));
      await store.putReply(uuid, [Buffer.from(uuid)]);
    }
    await store.remove(A);
    expect(await store.state(B)).toBe("done");
    expect(await store.getReply(B)).toEqual([Buffer.from(B)]);
  });

  it("TI-B1: remove deletes the request before the reply, so being cut between the two never makes a finished entry pending again", async () => {
    const store = await openStore();
    await store.putRequest(request(A));
    await store.putReply(A, [Buffer.from("r")]);
    // Make deleting the request fail (a non-empty directory in its place), as a crash would stop it.
    await rm(join(root, `${A}.req`));
    await mkdir(join(root, `${A}.req`));
    await writeFile(join(root, `${A}.req`, "x"), "");
    await store.remove(A).catch(() => {});
    expect(await store.state(A)).not.toBe("pending");
    expect(await readdir(root)).toContain(`${A}.rep`);
  });

  it("putReply after remove does not resurrect the entry (closed before the dispatcher answered)", async () => {
    const store = await openStore();
    await store.putRequest(request(A));
    await store.remove(A);
    await store.putReply(A, [Buffer.from("late")]);
    expect(await store.state(A)).toBe("unknown");
    expect(await store.getReply(A)).toBeUndefined();
    expect(await store.pending()).toEqual([]);
    expect(await readdir(root)).toEqual([]);
  });

  it("putReply for a UUID never stored is ignored", async () => {
    const store = await openStore();
    await store.putReply(A, [Buffer.from("stray")]);
    expect(await store.state(A)).toBe("unknown");
    expect(await readdir(root)).toEqual([]);
  });

  it("putReply racing remove never leaves a reply that can be read", async () => {
    const store = await openStore();
    for (let i = 0; i < 20; i++) {
      await store.putRequest(request(A));
      await Promise.all([store.putReply(A, [Buffer.from("r")]), store.remove(A)]);
      expect(await store.state(A)).toBe("unknown");
      expect(await store.getReply(A)).toBeUndefined();
    }
    // Whatever a lost race left behind, the next open() clears it.
    await openStore();
    expect(await readdir(root)).toEqual([]);
  });

  it("TI-B6: there is no queue file: after many requests are stored, answered and closed the directory is empty", async () => {
    const store = await openStore();
    for (let i = 0; i < 30; i++) {
      const uuid = i.toString(16).padStart(32, "0").toUpperCase();
      await store.putRequest(request(uuid, i));
      await store.putReply(uuid, [Buffer.from(String(i))]);
      await store.remove(uuid);
    }
    expect(await readdir(root)).toEqual([]);
  });
});

describe("FileStore: UUIDs (TSP-R2, TI-B4)", () => {
  it("TI-B4: lowercase and uppercase address the same entry, stored under the uppercase name", async () => {
    const store = await openStore();
    const lower = A.toLowerCase();
    await store.putRequest(request(lower));
    expect(await readdir(root)).toEqual([`${A}.req`]);
    expect(await store.getRequest(A)).toEqual({ ...request(lower), uuid: A });
    expect((await store.getRequest(lower))?.uuid).toBe(A);
    expect(await store.state(lower)).toBe("pending");
    await store.putReply(A, [Buffer.from("r")]);
    expect((await readdir(root)).sort()).toEqual([`${A}.rep`, `${A}.req`]);
    expect(await store.getReply(lower)).toEqual([Buffer.from("r")]);
    // Mixed case too.
    const mixed = `${A.slice(0, 16).toLowerCase()}${A.slice(16)}`;
    expect(await store.state(mixed)).toBe("done");
    expect((await store.pending()).map((r) => r.uuid)).toEqual([]);
    await store.remove(lower);
    expect(await store.state(A)).toBe("unknown");
    expect(await readdir(root)).toEqual([]);
  });

  it("TI-B4: invalid UUIDs are rejected by every method with ProtocolError, touching no file inside or outside the store", async () => {
    const dir = join(root, "store");
    const store = await openStore({ dir });
    await store.putRequest(request(A));
    await store.putReply(A, [Buffer.from("keep")]);
    // Files a traversal could reach: "<dir>/../x.req" and friends.
    for (const name of ["x", "x.req", "x.rep", "evil.req", `${"A".repeat(31)}.req`]) {
      await writeFile(join(root, name), "victim");
    }
    await writeFile(join(dir, "notes.req"), "not an entry");
    const before = await tree(root);

    const invalid = [
      "../x",
      "../../../../../../../../../../x", // 32 characters
      "..%2F..%2F..%2F..%2F..%2F..%2Fxx", // 32 characters
      "A".repeat(31),
      "A".repeat(33),
      `${"A".repeat(32)}\n`,
      ` ${"A".repeat(31)}`,
      "G".repeat(32),
      "0123456789abcdef0123456789abcdeg",
      "01234567-89AB-CDEF-0123-456789ABCDEF",
      "notes",
      "",
    ];
    const calls: Array<[string, (uuid: string) => Promise<unknown>]> = [
      ["putRequest", (uuid) => store.putRequest(request(uuid))],
      ["getRequest", (uuid) => store.getRequest(uuid)],
      ["putReply", (uuid) => store.putReply(uuid, [Buffer.from("x")])],
      ["getReply", (uuid) => store.getReply(uuid)],
      ["state", (uuid) => store.state(uuid)],
      ["remove", (uuid) => store.remove(uuid)],
    ];
    for (const uuid of invalid) {
      for (const [name, call] of calls) {
        const reason = await protocolReason(call(uuid));
        expect(reason, `${name}(${JSON.stringify(uuid)})`).toBe("invalid UUID");
      }
    }
    expect(await tree(root)).toEqual(before);
    expect(await store.getReply(A)).toEqual([Buffer.from("keep")]);
  });

  it("pending() and collect() ignore files in the directory that are not canonical entries", async () => {
    const store = await openStore();
    const lowerName = `${B.toLowerCase()}.req`;
    await writeFile(join(root, "notes.req"), "not an entry");
    await writeFile(join(root, lowerName), "not an entry either");
    await writeFile(join(root, "queue"), "-0123\n");
    await store.putRequest(request(A));
    expect((await store.pending()).map((r) => r.uuid)).toEqual([A]);
    expect(await store.collect({ maxFinished: 0 })).toBe(0);
    expect((await readdir(root)).sort()).toEqual([`${A}.req`, lowerName, "notes.req", "queue"]);
  });
});

describe("FileStore: pending() and restart (TI-5, TI-B1)", () => {
  it("lists requests without a reply, oldest first (ties by UUID), and drops answered and closed ones", async () => {
    const store = await openStore();
    await store.putRequest(request(A, 3000));
    await store.putRequest(request(B, 1000));
    await store.putRequest(request(C, 2000));
    await store.putRequest(request(D, 1000));
    expect((await store.pending()).map((r) => r.uuid)).toEqual([D, B, C, A]);
    await store.putReply(C, [Buffer.from("r")]);
    await store.remove(D);
    const pending = await store.pending();
    expect(pending.map((r) => r.uuid)).toEqual([B, A]);
    expect(pending[0]).toEqual(request(B, 1000));
  });

  it("TI-5: a new FileStore on the same directory sees the same pending requests and replies", async () => {
    const first = await openStore();
    await first.putRequest(request(A, 20));
    await first.putRequest(request(B, 10));
    await first.putRequest(request(C, 30));
    await first.putReply(C, [Buffer.from("answer")]);
    await first.close();

    const second = await openStore();
    expect(await second.pending()).toEqual([request(B, 10), request(A, 20)]);
    expect(await second.state(C)).toBe("done");
    expect(await second.getReply(C)).toEqual([Buffer.from("answer")]);
    await second.putReply(B, [Buffer.from("later")]);
    expect((await (await openStore()).pending()).map((r) => r.uuid)).toEqual([A]);
  });

  it("open() creates a missing directory, and a store on an empty one has nothing pending", async () => {
    const dir = join(root, "a", "b", "c");
    const store = await openStore({ dir });
    expect(await readdir(dir)).toEqual([]);
    expect(await store.pending()).toEqual([]);
    expect(await store.collect({ maxAgeMs: 0, maxFinished: 0 })).toBe(0);
  });

  it("TI-B1: open() removes leftover temp files and orphan replies and keeps everything else", async () => {
    const store = await openStore();
    await store.putRequest(request(A, 1)); // pending
    await store.putRequest(request(B, 2)); // done
    await store.putReply(B, [Buffer.from("b")]);
    await store.close();
    const tmpA = `${A}.rep.0123456789ab.tmp`; // a reply write cut by a crash
    const tmpC = `${C}.req.ba9876543210.tmp`; // a request write cut by a crash
    await writeFile(join(root, tmpA), Buffer.from("ZMQF\x01torn"));
    await writeFile(join(root, tmpC), Buffer.alloc(0));
    // A reply whose request was removed, with the crash before the reply went.
    await writeFile(join(root, `${D}.rep`), await readFile(join(root, `${B}.rep`)));
    await writeFile(join(root, "README"), "kept");
    await mkdir(join(root, "sub"));

    // Before open(), a torn temp file is invisible: A is still pending, C unknown.
    const reopened = new FileStore({ dir: root });
    expect(await reopened.state(A)).toBe("pending");
    expect(await reopened.state(C)).toBe("unknown");
    expect(await reopened.state(D)).toBe("unknown");
    expect(await reopened.getReply(D)).toBeUndefined();

    await reopened.open();
    expect((await readdir(root)).sort()).toEqual(
      [`${A}.req`, `${B}.rep`, `${B}.req`, "README", "sub"].sort(),
    );
    expect(await reopened.pending()).toEqual([request(A, 1)]);
    expect(await reopened.getReply(B)).toEqual([Buffer.from("b")]);
    // open() is repeatable.
    await reopened.open();
    expect(await reopened.pending()).toEqual([request(A, 1)]);
  });

  it("TI-B1: writes leave no temporary file behind", async () => {
    const store = await openStore();
    await store.putRequest(request(A));
    await store.putReply(A, [Buffer.from("r")]);
    await store.putRequest(request(B));
    expect((await readdir(root)).sort()).toEqual([`${A}.rep`, `${A}.req`, `${B}.req`]);
  });

  it("7.8: a reader concurrent with a write sees the old file or the new one, never a partial one", async () => {
    const store = await openStore();
    await store.putRequest(request(A));
    const first = [randomBytes(2 << 20)];
    const second = [randomBytes(3 << 20), Buffer.alloc(0)];
    let writing = true;
    const writer = (async () => {
      try {
        for (let i = 0; i < 6; i++) await store.putReply(A, i % 2 === 0 ? first : second);
      } finally {
        writing = false;
      }
    })();
    let reads = 0;
    while (writing) {
      const reply = await store.getReply(A);
      reads += 1;
      if (reply !== undefined) {
        const same = (frames: Buffer[]) =>
          frames.length === reply.length && frames.every((f, i) => f.equals(reply[i] as Buffer));
        expect(same(first) || same(second)).toBe(true);
      }
    }
    await writer;
    expect(reads).toBeGreaterThan(0);
  });
});

describe("FileStore: damaged files are rejected, not returned (TI-B1, TI-B10)", () => {
  async function damage(file: string, how: "flip" | "truncate" | "empty"): Promise<void> {
    const data = await readFile(file);
    if (how === "flip") {
      const at = data.byteLength >> 1;
      data[at] = (data[at] as number) ^ 0x01;
      await writeFile(file, data);
    } else if (how === "truncate") {
      await writeFile(file, data.subarray(0, data.byteLength - 3));
    } else {
      await writeFile(file, Buffer.alloc(0));
    }
  }

  for (const how of ["flip", "truncate", "empty"] as const) {
    it(`a request file damaged (${how}) makes getRequest reject with ProtocolError`, async () => {
      const store = await openStore();
      await store.putRequest(request(A, 1, [Buffer.from("some body long enough to damage")]));
      await damage(join(root, `${A}.req`), how);
      const reason = await protocolReason(store.getRequest(A));
      expect(reason).toMatch(
        how === "empty" ? /not a frame file|truncated/ : /checksum mismatch|truncated/,
      );
      if (how === "flip") expect(reason).toBe("frame file checksum mismatch");
    });

    it(`a reply file damaged (${how}) makes getReply reject with ProtocolError`, async () => {
      const store = await openStore();
      await store.putRequest(request(A));
      await store.putReply(A, [Buffer.from("a reply long enough to damage"), Buffer.alloc(0)]);
      await damage(join(root, `${A}.rep`), how);
      const reason = await protocolReason(store.getReply(A));
      expect(reason).toMatch(
        how === "empty" ? /not a frame file|truncated/ : /checksum mismatch|truncated/,
      );
      if (how === "flip") expect(reason).toBe("frame file checksum mismatch");
    });
  }

  it("pending() never hands out a damaged request as if it were valid", async () => {
    const store = await openStore();
    await store.putRequest(request(A, 1));
    await store.putRequest(request(B, 2));
    await damage(join(root, `${A}.req`), "flip");
    // Either it refuses (ProtocolError) or it skips the damaged entry; never garbage.
    const result = await store.pending().then(
      (list) => list,
      (error: unknown) => error,
    );
    if (Array.isArray(result)) expect(result).toEqual([request(B, 2)]);
    else expect(result).toBeInstanceOf(ProtocolError);
  });

  it("TI-B10: a file in CZMQ's zmsg_save format (native size_t lengths, no header) is rejected", async () => {
    const store = await openStore();
    await store.putRequest(request(A));
    const frames = [Buffer.from("200"), Buffer.from("Hello world")];
    const czmq = Buffer.concat(
      frames.flatMap((frame) => {
        const size = Buffer.alloc(8);
        size.writeBigUInt64LE(BigInt(frame.byteLength));
        return [size, frame];
      }),
    );
    await writeFile(join(root, `${A}.rep`), czmq);
    expect(await protocolReason(store.getReply(A))).toBe("not a frame file");
    await writeFile(join(root, `${B}.req`), czmq);
    expect(await protocolReason(store.getRequest(B))).toBe("not a frame file");
  });
});

describe("FileStore: on-disk format (TI-B10)", () => {
  it("TI-B10: files are core frame files: magic ZMQF, version 1, big-endian lengths, CRC-32 (golden bytes)", async () => {
    const store = await openStore();
    await store.putRequest({
      uuid: A,
      service: "echo",
      body: [Buffer.from("hi"), Buffer.alloc(0), Buffer.from([0x00, 0xff])],
      storedAt: 1_700_000_000_000,
    });
    await store.putReply(A, [Buffer.from("ok"), Buffer.from([0x80])]);
    // Computed independently (Python: struct.pack(">I"), zlib.crc32).
    const req = await readFile(join(root, `${A}.req`));
    expect(req.toString("hex")).toBe(
      "5a4d51460100000005000000046563686f0000000d313730303030303030303030300000000268690000000000000002" +
        "00ff83b92e9e",
    );
    const rep = await readFile(join(root, `${A}.rep`));
    expect(rep.toString("hex")).toBe("5a4d51460100000002000000026f6b00000001809dcb7d75");
    expect(req.subarray(0, 4).toString()).toBe("ZMQF");
    // Request file frames: [service][storedAt][body...] (spec 7.10 plus the stored time).
    expect(decodeFrameFile(req).map((f) => f.toString("hex"))).toEqual([
      Buffer.from("echo").toString("hex"),
      Buffer.from("1700000000000").toString("hex"),
      "6869",
      "",
      "00ff",
    ]);
  });

  it("TI-B10: a file written by hand in the documented format is read back", async () => {
    const store = await openStore();
    await writeFile(
      join(root, `${A}.req`),
      Buffer.from(
        "5a4d51460100000005000000046563686f0000000d313730303030303030303030300000000268690000000000000002" +
          "00ff83b92e9e",
        "hex",
      ),
    );
    await writeFile(
      join(root, `${A}.rep`),
      Buffer.from("5a4d51460100000002000000026f6b00000001809dcb7d75", "hex"),
    );
    expect(await store.getRequest(A)).toEqual({
      uuid: A,
      service: "echo",
      body: [Buffer.from("hi"), Buffer.alloc(0), Buffer.from([0x00, 0xff])],
      storedAt: 1_700_000_000_000,
    });
    expect(await store.getReply(A)).toEqual([Buffer.from("ok"), Buffer.from([0x80])]);
  });
});

describe("FileStore: collect (TI-B9 TTL)", () => {
  /** Sets the time a reply was stored, as collect() reads it (the reply file's mtime). */
  async function finishedAt(uuid: string, at: number): Promise<void> {
    const when = new Date(at);
    await utimes(join(root, `${uuid}.rep`), when, when);
  }

  async function fill(store: FileStore, finished: string[], pending: string[]): Promise<void> {
    for (const uuid of [...finished, ...pending]) await store.putRequest(request(uuid));
    for (const uuid of finished) await store.putReply(uuid, [Buffer.from(uuid)]);
    // Pending entries look very old: collect must still keep them.
    for (const uuid of pending) {
      const old = new Date(Date.now() - 30 * 86_400_000);
      await utimes(join(root, `${uuid}.req`), old, old);
    }
  }

  it("by age: removes finished entries older than maxAgeMs, keeps younger and pending ones", async () => {
    const store = await openStore();
    await fill(store, [A, B, C], [D]);
    const now = Date.now();
    await finishedAt(A, now - 3 * 3_600_000);
    await finishedAt(B, now - 2 * 3_600_000);
    await finishedAt(C, now);
    expect(await store.collect({ maxAgeMs: 90 * 60_000 })).toBe(2);
    expect(await store.state(A)).toBe("unknown");
    expect(await store.state(B)).toBe("unknown");
    expect(await store.state(C)).toBe("done");
    expect(await store.state(D)).toBe("pending");
    expect((await readdir(root)).sort()).toEqual([`${C}.rep`, `${C}.req`, `${D}.req`]);
  });

  it("by count: keeps the newest maxFinished finished entries, removes the oldest first", async () => {
    const store = await openStore();
    await fill(store, [A, B, C, D], []);
    const now = Date.now();
    await finishedAt(C, now - 4_000);
    await finishedAt(A, now - 3_000);
    await finishedAt(D, now - 2_000);
    await finishedAt(B, now - 1_000);
    expect(await store.collect({ maxFinished: 3 })).toBe(1);
    expect(await store.state(C)).toBe("unknown");
    expect(await store.collect({ maxFinished: 1 })).toBe(2);
    expect(await store.state(A)).toBe("unknown");
    expect(await store.state(D)).toBe("unknown");
    expect(await store.state(B)).toBe("done");
    expect(await store.collect({ maxFinished: 1 })).toBe(0);
    expect(await store.collect({ maxFinished: 0 })).toBe(1);
    expect(await readdir(root)).toEqual([]);
  });

  it("by count, pending entries neither count nor get removed", async () => {
    const store = await openStore();
    const pending = ["1", "2", "3"].map((n) => n.repeat(32));
    await fill(store, [A, B], pending);
    await finishedAt(A, Date.now() - 1_000);
    expect(await store.collect({ maxFinished: 1 })).toBe(1);
    expect(await store.state(A)).toBe("unknown");
    expect(await store.state(B)).toBe("done");
    expect((await store.pending()).map((r) => r.uuid).sort()).toEqual(pending);
  });

  it("age and count together: age first, then the oldest beyond the count", async () => {
    const store = await openStore();
    await fill(store, [A, B, C, D], []);
    const now = Date.now();
    await finishedAt(A, now - 10 * 3_600_000);
    await finishedAt(B, now - 3_000);
    await finishedAt(C, now - 2_000);
    await finishedAt(D, now - 1_000);
    expect(await store.collect({ maxAgeMs: 3_600_000, maxFinished: 2 })).toBe(2);
    expect(await store.state(A)).toBe("unknown");
    expect(await store.state(B)).toBe("unknown");
    expect(await store.state(C)).toBe("done");
    expect(await store.state(D)).toBe("done");
  });

  it("an empty policy removes nothing", async () => {
    const store = await openStore();
    await fill(store, [A, B], [C]);
    await finishedAt(A, 0);
    expect(await store.collect({})).toBe(0);
    expect(await readdir(root)).toHaveLength(5);
  });
});

describe("FileStore with fsync: false", () => {
  it("stores, answers, lists, recovers and removes the same way", async () => {
    const store = await openStore({ fsync: false });
    await store.putRequest(request(A, 2));
    await store.putRequest(request(B, 1));
    await store.putReply(A, [allBytes, Buffer.alloc(0)]);
    expect(await store.getReply(A)).toEqual([allBytes, Buffer.alloc(0)]);
    expect(await store.pending()).toEqual([request(B, 1)]);
    const again = await openStore({ fsync: false });
    expect(await again.pending()).toEqual([request(B, 1)]);
    expect(await again.state(A)).toBe("done");
    await again.remove(A);
    await again.remove(A);
    expect(await again.state(A)).toBe("unknown");
    expect(await protocolReason(again.state("../x"))).toBe("invalid UUID");
    expect((await readdir(root)).sort()).toEqual([`${B}.req`]);
  });

  it("defaults to the .titanic directory, as the Guide", () => {
    expect(new FileStore().dir).toBe(".titanic");
  });
});
