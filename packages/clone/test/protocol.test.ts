import { ProtocolError } from "@zmq-patterns/core";
import { describe, expect, it } from "vitest";
import {
  clientEndpoints,
  DEFAULT_BACKUP_PORT,
  DEFAULT_FLUSH_INTERVAL_MS,
  DEFAULT_HUGZ_INTERVAL_MS,
  DEFAULT_PRIMARY_PORT,
  DEFAULT_SERVER_TTL_MS,
  DEFAULT_SERVERS,
  decodeClientUpdate,
  decodeSnapshotRequest,
  encodeSnapshotRequest,
  hugz,
  KvMsg,
  serverEndpoints,
  snapshotEnd,
  ttlSeconds,
} from "../src/index.js";
import { B, E, u64 } from "./support.js";

const hex = (frames: readonly Buffer[]): string[] => frames.map((f) => f.toString("hex"));

function reason(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ProtocolError);
    return (error as ProtocolError).reason;
  }
  throw new Error("did not throw");
}

describe("snapshot request (ICANHAZ?)", () => {
  it('3.5 encodes as ["ICANHAZ?"][subtree], the subtree possibly empty', () => {
    expect(hex(encodeSnapshotRequest("/a/"))).toEqual(hex([B("ICANHAZ?"), B("/a/")]));
    expect(hex(encodeSnapshotRequest())).toEqual(hex([B("ICANHAZ?"), E]));
  });

  it("3.5 decodes the two-frame form and the one-frame form of models two and three", () => {
    expect(decodeSnapshotRequest([B("ICANHAZ?"), B("/a/")]).toString()).toBe("/a/");
    expect(decodeSnapshotRequest([B("ICANHAZ?"), E])).toHaveLength(0);
    expect(decodeSnapshotRequest([B("ICANHAZ?")])).toHaveLength(0);
    // Any byte prefix is accepted (3.10 [DECISION]), not only /seg/ forms.
    expect(decodeSnapshotRequest([B("ICANHAZ?"), B("abc")]).toString()).toBe("abc");
  });

  it("3.13.11 rejects what is not a snapshot request", () => {
    expect(reason(() => decodeSnapshotRequest([]))).toBe("not a snapshot request");
    expect(reason(() => decodeSnapshotRequest([B("ICANHAZ")]))).toBe("not a snapshot request");
    expect(reason(() => decodeSnapshotRequest([B("icanhaz?"), E]))).toBe("not a snapshot request");
    expect(reason(() => decodeSnapshotRequest([E, B("ICANHAZ?")]))).toBe("not a snapshot request");
    expect(reason(() => decodeSnapshotRequest([B("ICANHAZ?"), E, E]))).toBe(
      "unexpected 1 extra frame(s)",
    );
    expect(reason(() => decodeSnapshotRequest([B("ICANHAZ?"), Buffer.alloc(256, 0x61)]))).toBe(
      "subtree frame is longer than 255 bytes",
    );
  });
});

describe("server messages", () => {
  it("3.5 KTHXBAI: the current sequence, no uuid or properties, the subtree as body (3.10 [DECISION])", () => {
    expect(hex(snapshotEnd(42, B("/a/")).encode())).toEqual(
      hex([B("KTHXBAI"), u64(42), E, E, B("/a/")]),
    );
    expect(hex(snapshotEnd(0, E).encode())).toEqual(hex([B("KTHXBAI"), u64(0), E, E, E]));
  });

  it("3.6 HUGZ: the current sequence, everything else empty", () => {
    expect(hex(hugz(7).encode())).toEqual(hex([B("HUGZ"), u64(7), E, E, E]));
    expect(hex(hugz(2 ** 33).encode())).toEqual(hex([B("HUGZ"), u64(2 ** 33), E, E, E]));
  });
});

describe("endpoints", () => {
  it("3.4 a server's endpoints from its base port: P, P+1, P+2", () => {
    expect(serverEndpoints("tcp://*", 5556)).toEqual({
      snapshot: "tcp://*:5556",
      publisher: "tcp://*:5557",
      collector: "tcp://*:5558",
    });
    expect(DEFAULT_PRIMARY_PORT).toBe(5556);
    expect(DEFAULT_BACKUP_PORT).toBe(5566);
  });

  it("3.9.1 a client's endpoints from tcp://host:P", () => {
    expect(clientEndpoints("tcp://localhost:5566")).toEqual({
      snapshot: "tcp://localhost:5566",
      publisher: "tcp://localhost:5567",
      collector: "tcp://localhost:5568",
    });
    expect(clientEndpoints("tcp://[::1]:7000").collector).toBe("tcp://[::1]:7002");
    expect(DEFAULT_SERVERS).toEqual(["tcp://localhost:5556", "tcp://localhost:5566"]);
    for (const bad of [
      "tcp://localhost",
      "tcp://localhost:",
      "tcp://h:0",
      "tcp://h:65534",
      "tcp://h:123456",
    ]) {
      expect(() => clientEndpoints(bad), bad).toThrow(ProtocolError);
    }
  });

  it("4.6 default timers: HUGZ and flush every second, server TTL five seconds", () => {
    expect(DEFAULT_HUGZ_INTERVAL_MS).toBe(1000);
    expect(DEFAULT_FLUSH_INTERVAL_MS).toBe(1000);
    expect(DEFAULT_SERVER_TTL_MS).toBe(5000);
  });
});

describe("client updates (KVSET) as the server reads them", () => {
  const update = (key: string, props = ""): Buffer[] => [B(key), u64(0), E, B(props), B("v")];

  it("3.6 accepts a five-frame update with any sequence, uuid or none, a valid ttl", () => {
    const msg = decodeClientUpdate(update("/k", "ttl=12\n"));
    expect(msg.key).toBe("/k");
    expect(ttlSeconds(msg)).toBe(12);
    expect(ttlSeconds(decodeClientUpdate(update("/k")))).toBe(0);
    // C sends ttl=0 always; Python sends fractions.
    expect(ttlSeconds(decodeClientUpdate(update("/k", "ttl=0\n")))).toBe(0);
    expect(ttlSeconds(decodeClientUpdate(update("/k", "ttl=1.5\n")))).toBe(1.5);
    expect(ttlSeconds(decodeClientUpdate(update("/k", "ttl=\n")))).toBe(0);
    expect(decodeClientUpdate([B("/k"), u64(99), Buffer.alloc(16, 1), E, E]).isDelete).toBe(true);
  });

  it("3.13.11 rejects reserved and empty keys, invalid ttls, and whatever KvMsg rejects", () => {
    expect(reason(() => decodeClientUpdate(update("HUGZ")))).toBe("reserved key");
    expect(reason(() => decodeClientUpdate(update("KTHXBAI")))).toBe("reserved key");
    expect(reason(() => decodeClientUpdate(update("")))).toBe("empty key");
    for (const ttl of ["-1", "abc", "1e3", "0x10", " 1", "1.", ".5", "Infinity"]) {
      expect(
        reason(() => decodeClientUpdate(update("/k", `ttl=${ttl}\n`))),
        ttl,
      ).toBe("invalid ttl");
    }
    expect(reason(() => decodeClientUpdate([B("/k"), u64(0), E, E]))).toBe(
      "expected 5 frames, got 4",
    );
    expect(reason(() => decodeClientUpdate([B("/k"), B("1"), E, E, B("v")]))).toBe(
      "sequence frame is not 8 bytes",
    );
  });

  it("B11 ttlSeconds: absent is 0 (never uninitialised)", () => {
    expect(ttlSeconds(new KvMsg({ key: "k" }))).toBe(0);
    expect(ttlSeconds(new KvMsg({ key: "k", properties: { ttl: "3" } }))).toBe(3);
    expect(() => ttlSeconds(new KvMsg({ key: "k", properties: { ttl: "x" } }))).toThrow(
      ProtocolError,
    );
  });
});
