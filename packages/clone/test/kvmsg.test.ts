import { InvalidArgumentError, ProtocolError } from "@zmq-patterns/core";
import { describe, expect, it } from "vitest";
import {
  decodeProperties,
  decodeSequence,
  encodeProperties,
  encodeSequence,
  HUGZ,
  KTHXBAI,
  KvMsg,
  MAX_KEY_BYTES,
  randomUuid,
} from "../src/index.js";
import { B, E, u64 } from "./support.js";

const UUID = Buffer.from("000102030405060708090a0b0c0d0e0f", "hex");
const hex = (frames: readonly Buffer[]): string[] => frames.map((f) => f.toString("hex"));

/** The error `fn` throws. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error("did not throw");
}

function rejects(frames: Buffer[], reason: string, decode = KvMsg.decode): void {
  const error = thrown(() => decode(frames));
  expect(error).toBeInstanceOf(ProtocolError);
  expect((error as ProtocolError).reason).toBe(reason);
}

describe("KvMsg wire form", () => {
  it("3.13.1 five frames byte-exact: key, u64be sequence above 2^32, 16-byte uuid, property lines, body", () => {
    const sequence = 2 ** 32 + 5;
    const msg = new KvMsg({
      key: "/a/b",
      sequence,
      uuid: UUID,
      properties: [
        ["ttl", "30"],
        ["owner", "x=y"],
      ],
      body: "hello",
    });
    expect(hex(msg.encode())).toEqual(
      hex([
        B("/a/b"),
        Buffer.from([0, 0, 0, 1, 0, 0, 0, 5]),
        UUID,
        B("ttl=30\nowner=x=y\n"),
        B("hello"),
      ]),
    );
    const back = KvMsg.decode(msg.encode());
    expect(back.key).toBe("/a/b");
    expect(back.sequence).toBe(sequence);
    expect(back.uuid?.equals(UUID)).toBe(true);
    expect([...back.properties]).toEqual([
      ["ttl", "30"],
      ["owner", "x=y"],
    ]);
    expect(back.getProperty("owner")).toBe("x=y");
    expect(back.text).toBe("hello");
    expect(back.isDelete).toBe(false);
  });

  it("3.13.1 no uuid and no properties are empty frames; the largest safe sequence round-trips", () => {
    const msg = new KvMsg({ key: "k", sequence: Number.MAX_SAFE_INTEGER, body: "v" });
    const frames = msg.encode();
    expect(hex(frames)).toEqual(hex([B("k"), u64(Number.MAX_SAFE_INTEGER), E, E, B("v")]));
    const back = KvMsg.decode(frames);
    expect(back.uuid).toBeNull();
    expect(back.properties.size).toBe(0);
    expect(back.sequence).toBe(Number.MAX_SAFE_INTEGER);
  });

  it("3.13.1 the three-frame short form: [key][sequence][body]", () => {
    const msg = new KvMsg({
      key: "5",
      sequence: 2 ** 40,
      uuid: UUID,
      body: "77",
      properties: { a: "b" },
    });
    expect(hex(msg.encodeShort())).toEqual(hex([B("5"), u64(2 ** 40), B("77")]));
    const back = KvMsg.decodeShort([B("5"), u64(2 ** 40), B("77")]);
    expect(back.key).toBe("5");
    expect(back.sequence).toBe(2 ** 40);
    expect(back.text).toBe("77");
    expect(back.uuid).toBeNull();
    expect(back.properties.size).toBe(0);
  });

  it("3.13.1 setting a property again replaces it and moves it last; deleting removes it", () => {
    const msg = new KvMsg({ properties: { a: "1", b: "2", c: "3" } });
    msg.setProperty("a", "4");
    expect(encodeProperties(msg.properties).toString()).toBe("b=2\nc=3\na=4\n");
    expect(msg.deleteProperty("b")).toBe(true);
    expect(msg.deleteProperty("b")).toBe(false);
    expect(msg.encode()[3]?.toString()).toBe("c=3\na=4\n");
    expect(msg.getProperty("nope")).toBeUndefined();
  });

  it("3.3 [DECISION] properties decode: split at the first '=', last line without LF accepted, empty lines ignored, empty value allowed", () => {
    expect(decodeProperties(B("a=1\nb=x=y=z\nc=3"))).toEqual([
      ["a", "1"],
      ["b", "x=y=z"],
      ["c", "3"],
    ]);
    expect(decodeProperties(B("\n\na=1\n\n\nb=\n"))).toEqual([
      ["a", "1"],
      ["b", ""],
    ]);
    expect(decodeProperties(E)).toEqual([]);
    // A repeated name in the frame: the later line wins, as setProperty would make it.
    const msg = KvMsg.decode([B("k"), u64(1), E, B("a=1\nb=2\na=3"), B("v")]);
    expect([...msg.properties]).toEqual([
      ["b", "2"],
      ["a", "3"],
    ]);
  });

  it("3.13.1 keys and properties round-trip as UTF-8, including a leading byte-order mark", () => {
    for (const key of ["/é/ü/", "\uFEFFbom", "日本"]) {
      const msg = new KvMsg({ key, body: "v", properties: { note: "\uFEFFçé" } });
      const back = KvMsg.decode(msg.encode());
      expect(back.key).toBe(key);
      expect(back.getProperty("note")).toBe("\uFEFFçé");
    }
  });

  it("3.13.1 a key of exactly 255 bytes is fine, 256 are not", () => {
    const key = "k".repeat(MAX_KEY_BYTES);
    expect(KvMsg.decode(new KvMsg({ key }).encode()).key).toBe(key);
    expect(() => new KvMsg({ key: `${key}k` })).toThrow(InvalidArgumentError);
    // 128 two-byte characters are 256 bytes.
    expect(() => new KvMsg({ key: "é".repeat(128) })).toThrow(InvalidArgumentError);
    expect(new KvMsg({ key: "é".repeat(127) }).key).toHaveLength(127);
  });

  it("3.13.2 an empty body means delete", () => {
    expect(new KvMsg({ key: "k" }).isDelete).toBe(true);
    expect(new KvMsg({ key: "k", body: "" }).isDelete).toBe(true);
    expect(new KvMsg({ key: "k", body: "0" }).isDelete).toBe(false);
    const msg = new KvMsg({ key: "k", body: "v" });
    msg.body = Buffer.alloc(0);
    expect(msg.isDelete).toBe(true);
  });

  it("HUGZ and KTHXBAI are plain keys to the codec", () => {
    expect(HUGZ).toBe("HUGZ");
    expect(KTHXBAI).toBe("KTHXBAI");
  });
});

describe("KvMsg rejections", () => {
  const good = (): Buffer[] => [B("k"), u64(1), UUID, B("a=1\n"), B("v")];

  it("3.13.1 wrong frame counts", () => {
    rejects([], "expected 5 frames, got 0");
    rejects(good().slice(0, 4), "expected 5 frames, got 4");
    rejects([...good(), B("extra")], "expected 5 frames, got 6");
    rejects(good(), "expected 3 frames, got 5", KvMsg.decodeShort);
    rejects([B("k"), u64(1)], "expected 3 frames, got 2", KvMsg.decodeShort);
  });

  it("3.13.1 a sequence frame that is not 8 bytes, or beyond the safe integers", () => {
    for (const bad of [E, Buffer.alloc(4), Buffer.alloc(7), Buffer.alloc(9)]) {
      const frames = good();
      frames[1] = bad;
      rejects(frames, "sequence frame is not 8 bytes");
      rejects([B("k"), bad, B("v")], "sequence frame is not 8 bytes", KvMsg.decodeShort);
    }
    const frames = good();
    frames[1] = u64(BigInt(Number.MAX_SAFE_INTEGER) + 1n);
    rejects(frames, "sequence too large");
    frames[1] = Buffer.alloc(8, 0xff);
    rejects(frames, "sequence too large");
    expect(() => decodeSequence(Buffer.alloc(8, 0xff))).toThrow(ProtocolError);
  });

  it("3.13.1 a uuid frame that is neither 16 bytes nor empty", () => {
    for (const length of [1, 15, 17, 36]) {
      const frames = good();
      frames[2] = Buffer.alloc(length);
      rejects(frames, "uuid frame is neither 16 bytes nor empty");
    }
  });

  it("3.13.1 invalid properties: a line without '=', an empty name, bytes that are not UTF-8", () => {
    for (const bad of [
      B("novalue\n"),
      B("a=1\nnovalue"),
      B("=v\n"),
      Buffer.from([0x61, 0x3d, 0xff, 0x0a]),
    ]) {
      const frames = good();
      frames[3] = bad;
      rejects(frames, "invalid properties");
    }
  });

  it("3.13.1 a key longer than 255 bytes or not UTF-8", () => {
    const frames = good();
    frames[0] = Buffer.alloc(256, 0x61);
    rejects(frames, "key is longer than 255 bytes");
    rejects(
      [Buffer.alloc(256, 0x61), u64(1), E],
      "key is longer than 255 bytes",
      KvMsg.decodeShort,
    );
    frames[0] = Buffer.from([0xc3, 0x28]);
    rejects(frames, "key is not UTF-8");
    frames[0] = Buffer.from([0xff]);
    rejects(frames, "key is not UTF-8");
  });

  it("building a message checks its fields", () => {
    expect(() => new KvMsg({ sequence: -1 })).toThrow(InvalidArgumentError);
    expect(() => new KvMsg({ sequence: 1.5 })).toThrow(InvalidArgumentError);
    expect(() => new KvMsg({ sequence: 2 ** 53 })).toThrow(InvalidArgumentError);
    expect(() => new KvMsg({ uuid: Buffer.alloc(15) })).toThrow(InvalidArgumentError);
    expect(() => new KvMsg({ properties: { "a=b": "1" } })).toThrow(InvalidArgumentError);
    expect(() => new KvMsg({ properties: { "a\nb": "1" } })).toThrow(InvalidArgumentError);
    expect(() => new KvMsg({ properties: { "": "1" } })).toThrow(InvalidArgumentError);
    expect(() => new KvMsg({ properties: { a: "1\n2" } })).toThrow(InvalidArgumentError);
    const msg = new KvMsg();
    expect(() => {
      msg.sequence = -2;
    }).toThrow(InvalidArgumentError);
    expect(() => {
      msg.uuid = new Uint8Array(3);
    }).toThrow(InvalidArgumentError);
    expect(() => {
      msg.key = "x".repeat(300);
    }).toThrow(InvalidArgumentError);
    expect(() => encodeSequence(-1)).toThrow(InvalidArgumentError);
  });
});

describe("KvMsg objects", () => {
  it("defaults: empty key, sequence 0, no uuid, no properties, empty body", () => {
    const msg = new KvMsg();
    expect(hex(msg.encode())).toEqual(hex([E, u64(0), E, E, E]));
    expect(msg.toString()).toContain("seq=0");
  });

  it('uuid "random" is 16 fresh bytes; randomUuid is a version 4 UUID', () => {
    const a = new KvMsg({ uuid: "random" });
    const b = new KvMsg({ uuid: "random" });
    expect(a.uuid).toHaveLength(16);
    expect(a.uuid?.equals(b.uuid as Buffer)).toBe(false);
    const raw = randomUuid();
    expect(raw).toHaveLength(16);
    expect((raw[6] as number) >> 4).toBe(4);
  });

  it("B5 clone() is deep: no frame or property is shared, and it encodes identically", () => {
    const body = Buffer.from("value");
    const original = new KvMsg({
      key: "k",
      sequence: 9,
      uuid: Buffer.from(UUID),
      properties: { ttl: "5", a: "1" },
      body,
    });
    const copy = original.clone();
    expect(hex(copy.encode())).toEqual(hex(original.encode()));
    // Mutate everything on the copy: the original is untouched.
    copy.body.fill(0x7a);
    copy.uuid?.fill(0);
    copy.setProperty("ttl", "99");
    copy.setProperty("b", "2");
    copy.sequence = 10;
    copy.key = "other";
    expect(original.text).toBe("value");
    expect(original.uuid?.equals(UUID)).toBe(true);
    expect(encodeProperties(original.properties).toString()).toBe("ttl=5\na=1\n");
    expect(original.sequence).toBe(9);
    expect(original.key).toBe("k");
    // And the other way round.
    body.fill(0x78);
    expect(original.clone().text).toBe("xxxxx");
    expect(copy.text).toBe("zzzzz");
  });

  it("the uuid is copied on the way in, so a caller's buffer can be reused", () => {
    const raw = Buffer.from(UUID);
    const msg = new KvMsg({ uuid: raw });
    raw.fill(0);
    expect(msg.uuid?.equals(UUID)).toBe(true);
  });

  it("properties can be given as a Map, entries or a record, in order", () => {
    const fromMap = new KvMsg({
      properties: new Map([
        ["x", "1"],
        ["y", "2"],
      ]),
    });
    const fromEntries = new KvMsg({
      properties: [
        ["x", "1"],
        ["y", "2"],
      ],
    });
    const fromRecord = new KvMsg({ properties: { x: "1", y: "2" } });
    for (const msg of [fromMap, fromEntries, fromRecord]) {
      expect(msg.encode()[3]?.toString()).toBe("x=1\ny=2\n");
    }
  });
});
