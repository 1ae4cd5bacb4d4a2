import { describe, expect, it } from "vitest";
import { decodeFrameFile, encodeFrameFile, ProtocolError } from "../src/index.js";

const reason = (fn: () => unknown) => {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ProtocolError);
    return (error as ProtocolError).reason;
  }
  throw new Error("did not throw");
};

describe("frame files", () => {
  it("round-trips any frames, empty ones included, in a documented layout", () => {
    const frames = [Buffer.from("echo"), Buffer.alloc(0), Buffer.from([0, 255, 7])];
    const file = encodeFrameFile(frames);
    expect(file.subarray(0, 5)).toEqual(Buffer.from([0x5a, 0x4d, 0x51, 0x46, 1])); // "ZMQF", v1
    expect(file.readUInt32BE(5)).toBe(3);
    expect(file.readUInt32BE(9)).toBe(4);
    expect(file.byteLength).toBe(9 + (4 + 4) + 4 + (4 + 3) + 4);
    expect(decodeFrameFile(file)).toEqual(frames);
    expect(decodeFrameFile(encodeFrameFile([]))).toEqual([]);
  });

  it("detects every truncation and any flipped byte", () => {
    const file = encodeFrameFile([Buffer.from("hello"), Buffer.from("world")]);
    for (let length = 0; length < file.byteLength; length++) {
      expect(() => decodeFrameFile(file.subarray(0, length))).toThrow(ProtocolError);
    }
    for (let i = 0; i < file.byteLength; i++) {
      const damaged = Buffer.from(file);
      damaged[i] = (damaged[i] as number) ^ 0x40;
      expect(() => decodeFrameFile(damaged)).toThrow(ProtocolError);
    }
  });

  it("names what is wrong and applies limits", () => {
    expect(reason(() => decodeFrameFile(Buffer.from("not a frame file at all")))).toBe(
      "not a frame file",
    );
    const file = encodeFrameFile([Buffer.from("x")]);
    const v2 = Buffer.from(file);
    v2[4] = 2;
    expect(reason(() => decodeFrameFile(v2))).toBe("unsupported frame file version");
    expect(reason(() => decodeFrameFile(file.subarray(0, 6)))).toBe("frame file truncated");
    expect(reason(() => decodeFrameFile(encodeFrameFile(["a", "b", "c"]), { maxFrames: 2 }))).toBe(
      "frame file too large",
    );
    expect(reason(() => decodeFrameFile(file, { maxBytes: 4 }))).toBe("frame file too large");
  });
});

describe("CRC-32", () => {
  it("the software fallback for early Node 20 releases equals zlib's", async () => {
    const { crc32ForTests } = await import("../src/frame-file.js");
    for (const text of ["", "abc", "123456789", "x".repeat(1000)]) {
      const data = Buffer.from(text);
      expect(crc32ForTests.software(data)).toBe(crc32ForTests.native(data));
    }
    expect(crc32ForTests.software(Buffer.from("123456789"))).toBe(0xcbf43926);
  });
});
