import { describe, expect, it } from "vitest";
import {
  EMPTY_FRAME,
  formatFrame,
  InvalidArgumentError,
  isEmptyFrame,
  isPrintable,
  Msg,
  ProtocolError,
  toFrame,
  toFrames,
} from "../src/index.js";

const RULE = "----------------------------------------";

/** Runs `fn` and returns what it threw (fails the test when it does not throw). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error("expected a throw");
}

describe("toFrame / toFrames", () => {
  it("returns a Buffer as is", () => {
    const buffer = Buffer.from("abc");
    expect(toFrame(buffer)).toBe(buffer);
  });

  it("encodes strings as UTF-8 and maps the empty string to the shared EMPTY_FRAME", () => {
    expect(toFrame("héllo")).toEqual(Buffer.from("héllo", "utf8"));
    expect(toFrame("héllo").byteLength).toBe(6);
    expect(toFrame("")).toBe(EMPTY_FRAME);
    expect(EMPTY_FRAME.byteLength).toBe(0);
  });

  it("views a Uint8Array without copying, keeping its offset and length", () => {
    const backing = new Uint8Array([0, 1, 2, 3, 4, 5, 6, 7]);
    const view = backing.subarray(2, 5);
    const frame = toFrame(view);
    expect(Buffer.isBuffer(frame)).toBe(true);
    expect([...frame]).toEqual([2, 3, 4]);
    expect(frame.buffer).toBe(backing.buffer);
    expect(frame.byteOffset).toBe(2);
    backing[3] = 99;
    expect(frame[1]).toBe(99);
  });

  it("rejects values that are not frames with INVALID_ARGUMENT", () => {
    for (const [value, described] of [
      [42, "number"],
      [null, "null"],
      [undefined, "undefined"],
      [["a"], "an array"],
      [{}, "object"],
    ] as const) {
      const error = thrown(() => toFrame(value as unknown as string));
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect((error as InvalidArgumentError).code).toBe("INVALID_ARGUMENT");
      expect((error as Error).message).toBe(
        `a frame must be a string, Buffer or Uint8Array, got ${described}`,
      );
    }
  });

  it("converts any iterable", () => {
    function* gen() {
      yield "a";
      yield Buffer.from("b");
      yield new Uint8Array([0x63]);
    }
    expect(toFrames(gen()).map((f) => f.toString())).toEqual(["a", "b", "c"]);
    expect(toFrames([])).toEqual([]);
  });
});

describe("isEmptyFrame / isPrintable", () => {
  it("isEmptyFrame is true only for a zero-length frame", () => {
    expect(isEmptyFrame(Buffer.alloc(0))).toBe(true);
    expect(isEmptyFrame(new Uint8Array(0))).toBe(true);
    expect(isEmptyFrame(Buffer.from([0]))).toBe(false);
    expect(isEmptyFrame(undefined)).toBe(false);
  });

  it("isPrintable accepts space to tilde only", () => {
    expect(isPrintable(Buffer.from(" ~azAZ09!"))).toBe(true);
    expect(isPrintable(Buffer.alloc(0))).toBe(true);
    expect(isPrintable(Buffer.from([0x1f]))).toBe(false);
    expect(isPrintable(Buffer.from([0x7f]))).toBe(false);
    expect(isPrintable(Buffer.from([0x20, 0x7e]))).toBe(true);
    expect(isPrintable(Buffer.from("a\nb"))).toBe(false);
    expect(isPrintable(Buffer.from("é"))).toBe(false);
  });
});

describe("formatFrame", () => {
  it("shows printable frames as text with a 3-digit size", () => {
    expect(formatFrame(Buffer.from("hello"))).toBe("[005] hello");
    expect(formatFrame(Buffer.from("x".repeat(12)))).toBe(`[012] ${"x".repeat(12)}`);
  });

  it("shows binary frames as uppercase hex", () => {
    expect(formatFrame(Buffer.from([0x00, 0xab, 0x7f, 0x10]))).toBe("[004] 00AB7F10");
  });

  it("shows an empty frame as [000]", () => {
    expect(formatFrame(Buffer.alloc(0))).toBe("[000]");
  });

  it("cuts frames longer than maxBytes and ends them with ...", () => {
    expect(formatFrame(Buffer.from("abcdefgh"), 3)).toBe("[008] abc...");
    expect(formatFrame(Buffer.from("abc"), 3)).toBe("[003] abc");
    expect(formatFrame(Buffer.from([1, 2, 3, 4]), 2)).toBe("[004] 0102...");
    expect(formatFrame(Buffer.from("a".repeat(1000)))).toBe(`[1000] ${"a".repeat(64)}...`);
  });

  it("decides printability on the shown bytes only", () => {
    // The binary byte lies past the cut, so the shown part is text.
    expect(formatFrame(Buffer.from([0x41, 0x42, 0x00]), 2)).toBe("[003] AB...");
  });

  it("handles a Uint8Array view at an offset", () => {
    const backing = new Uint8Array([0x00, 0x68, 0x69, 0x00]);
    expect(formatFrame(backing.subarray(1, 3))).toBe("[002] hi");
  });
});

describe("Msg construction", () => {
  it("is empty by default", () => {
    const msg = new Msg();
    expect(msg.size).toBe(0);
    expect(msg.contentSize).toBe(0);
    expect(msg.frames).toEqual([]);
    expect(msg.first()).toBeUndefined();
    expect(msg.last()).toBeUndefined();
    expect(msg.pop()).toBeUndefined();
  });

  it("builds from strings, Buffers and Uint8Arrays", () => {
    const buffer = Buffer.from("buf");
    const msg = new Msg(["text", buffer, new Uint8Array([1, 2]), ""]);
    expect(msg.size).toBe(4);
    expect(msg.frames.every((frame) => Buffer.isBuffer(frame))).toBe(true);
    expect(msg.text(0)).toBe("text");
    expect(msg.at(1)).toBe(buffer);
    expect([...(msg.at(2) as Buffer)]).toEqual([1, 2]);
    expect(msg.at(3)).toBe(EMPTY_FRAME);
  });

  it("keeps a Uint8Array's bytes by reference, at its byteOffset", () => {
    const backing = new Uint8Array([9, 9, 1, 2, 3, 9]);
    const view = backing.subarray(2, 5);
    const msg = new Msg([view]);
    const frame = msg.first() as Buffer;
    expect(frame.buffer).toBe(backing.buffer);
    expect(frame.byteOffset).toBe(2);
    expect(frame.byteLength).toBe(3);
    expect([...frame]).toEqual([1, 2, 3]);
    backing[2] = 42;
    expect(frame[0]).toBe(42);
  });

  it("builds from any iterable of frames", () => {
    const msg = new Msg(new Set(["a", "b"]));
    expect(msg.texts()).toEqual(["a", "b"]);
  });

  it("rejects non-frame values", () => {
    expect(() => new Msg([5 as unknown as string])).toThrow(InvalidArgumentError);
  });

  it("Msg.from takes one frame or a list", () => {
    expect(Msg.from("hello").texts()).toEqual(["hello"]);
    expect(Msg.from("").size).toBe(1);
    const buffer = Buffer.from("one");
    const single = Msg.from(buffer);
    expect(single.size).toBe(1);
    expect(single.first()).toBe(buffer);
    expect(Msg.from(new Uint8Array([1, 2, 3])).size).toBe(1);
    expect(Msg.from(["a", "b", "c"]).texts()).toEqual(["a", "b", "c"]);
    expect(Msg.from([]).size).toBe(0);
  });

  it("Msg.fromJSON holds one JSON frame", () => {
    const msg = Msg.fromJSON({ a: 1, b: [true, null] });
    expect(msg.size).toBe(1);
    expect(msg.text()).toBe('{"a":1,"b":[true,null]}');
    expect(msg.json()).toEqual({ a: 1, b: [true, null] });
    expect(Msg.fromJSON("s").text()).toBe('"s"');
    expect(Msg.fromJSON(3).json<number>()).toBe(3);
  });
});

describe("Msg verbs", () => {
  it("push adds at the front, append at the end, and both chain", () => {
    const msg = new Msg(["b"]);
    expect(msg.push("a")).toBe(msg);
    expect(msg.append("c", "d")).toBe(msg);
    expect(msg.append()).toBe(msg);
    msg.push(Buffer.from("0")).append(new Uint8Array([0x65]));
    expect(msg.texts()).toEqual(["0", "a", "b", "c", "d", "e"]);
  });

  it("pop removes and returns the first frame", () => {
    const msg = new Msg(["a", "b"]);
    expect(msg.pop()?.toString()).toBe("a");
    expect(msg.size).toBe(1);
    expect(msg.pop()?.toString()).toBe("b");
    expect(msg.pop()).toBeUndefined();
    expect(msg.size).toBe(0);
  });

  it("first, last and at read without removing", () => {
    const msg = new Msg(["a", "b", "c"]);
    expect(msg.first()?.toString()).toBe("a");
    expect(msg.last()?.toString()).toBe("c");
    expect(msg.at(1)?.toString()).toBe("b");
    expect(msg.at(-1)?.toString()).toBe("c");
    expect(msg.at(-3)?.toString()).toBe("a");
    expect(msg.at(3)).toBeUndefined();
    expect(msg.at(-4)).toBeUndefined();
    expect(msg.size).toBe(3);
  });

  it("size counts frames and contentSize counts bytes", () => {
    const msg = new Msg(["abc", "", Buffer.alloc(10), "é"]);
    expect(msg.size).toBe(4);
    expect(msg.contentSize).toBe(3 + 0 + 10 + 2);
  });

  it("frames is the message's own array", () => {
    const msg = new Msg(["a"]);
    msg.frames.push(Buffer.from("b"));
    expect(msg.size).toBe(2);
  });
});

describe("Msg text", () => {
  it("text reads a frame as UTF-8 by default, or in another encoding", () => {
    const msg = new Msg(["héllo", Buffer.from([0xde, 0xad])]);
    expect(msg.text()).toBe("héllo");
    expect(msg.text(0)).toBe("héllo");
    expect(msg.text(1, "hex")).toBe("dead");
    expect(msg.text(-1, "base64")).toBe("3q0=");
    expect(msg.text(2)).toBeUndefined();
    expect(new Msg().text()).toBeUndefined();
  });

  it("texts lists every frame as text", () => {
    expect(new Msg(["a", "", "c"]).texts()).toEqual(["a", "", "c"]);
    expect(new Msg([Buffer.from([1, 2])]).texts("hex")).toEqual(["0102"]);
    expect(new Msg().texts()).toEqual([]);
  });

  it("popText removes the first frame as text", () => {
    const msg = new Msg(["one", Buffer.from([0xff])]);
    expect(msg.popText()).toBe("one");
    expect(msg.popText("hex")).toBe("ff");
    expect(msg.popText()).toBeUndefined();
  });
});

describe("Msg.json", () => {
  it("parses a valid JSON frame, at index 0 or another index", () => {
    const msg = new Msg(["header", '{"x":[1,2]}', "42"]);
    expect(msg.json(1)).toEqual({ x: [1, 2] });
    expect(msg.json<number>(2)).toBe(42);
    expect(msg.json(-1)).toBe(42);
    expect(new Msg(["null"]).json()).toBeNull();
  });

  it("throws ProtocolError with code PROTOCOL on invalid JSON, keeping the cause", () => {
    for (const text of ["{not json", "", "undefined", "{'a':1}"]) {
      const error = thrown(() => new Msg(["ok", text]).json(1));
      expect(error).toBeInstanceOf(ProtocolError);
      const protocol = error as ProtocolError;
      expect(protocol.code).toBe("PROTOCOL");
      expect(protocol.reason).toBe("frame 1 is not valid JSON");
      expect(protocol.message).toBe("protocol violation: frame 1 is not valid JSON");
      expect(protocol.cause).toBeInstanceOf(SyntaxError);
    }
  });

  it("throws ProtocolError when the frame is missing", () => {
    const error = thrown(() => new Msg(["{}"]).json(3));
    expect(error).toBeInstanceOf(ProtocolError);
    expect((error as ProtocolError).code).toBe("PROTOCOL");
    expect((error as ProtocolError).reason).toBe("missing frame 3 for JSON");
    expect(() => new Msg().json()).toThrow(/missing frame 0 for JSON/);
  });
});

describe("Msg.equals", () => {
  it("compares with another Msg frame by frame, byte by byte", () => {
    const a = new Msg(["a", "", Buffer.from([1, 2])]);
    expect(a.equals(new Msg(["a", "", new Uint8Array([1, 2])]))).toBe(true);
    expect(a.equals(a)).toBe(true);
    expect(a.equals(new Msg(["a", "", Buffer.from([1, 3])]))).toBe(false);
    expect(a.equals(new Msg(["a", ""]))).toBe(false);
    expect(a.equals(new Msg(["a", "", Buffer.from([1, 2]), ""]))).toBe(false);
    expect(new Msg().equals(new Msg())).toBe(true);
  });

  it("compares with arrays of Buffers or Uint8Arrays", () => {
    const msg = new Msg(["ab", "c"]);
    expect(msg.equals([Buffer.from("ab"), Buffer.from("c")])).toBe(true);
    expect(msg.equals([new Uint8Array([0x61, 0x62]), new Uint8Array([0x63])])).toBe(true);
    expect(msg.equals([Buffer.from("a"), Buffer.from("bc")])).toBe(false);
    expect(msg.equals([])).toBe(false);
    expect(new Msg().equals([])).toBe(true);
  });

  it("does not treat frame boundaries as irrelevant", () => {
    expect(new Msg(["", "a"]).equals(new Msg(["a", ""]))).toBe(false);
  });
});

describe("Msg.clone", () => {
  it("copies every frame into new memory", () => {
    const backing = Buffer.from("hello");
    const original = new Msg([backing, "", "x"]);
    const copy = original.clone();
    expect(copy).not.toBe(original);
    expect(copy.equals(original)).toBe(true);
    expect(copy.frames).not.toBe(original.frames);
    // Every frame of the copy is independent of the original's bytes.
    for (let i = 0; i < copy.size; i++) {
      const frame = copy.at(i) as Buffer;
      const source = original.at(i) as Buffer;
      expect(frame).not.toBe(source);
      if (source.byteLength > 0) {
        const before = frame[0];
        source[0] = (source[0] as number) ^ 0xff;
        expect(frame[0]).toBe(before);
        source[0] = (source[0] as number) ^ 0xff;
      }
    }
    backing[0] = 0x4a;
    expect(original.text()).toBe("Jello");
    expect(copy.text()).toBe("hello");
  });

  it("is independent in structure", () => {
    const original = new Msg(["a", "b"]);
    const copy = original.clone();
    copy.pop();
    copy.append("c");
    original.push("z");
    expect(original.texts()).toEqual(["z", "a", "b"]);
    expect(copy.texts()).toEqual(["b", "c"]);
  });
});

describe("Msg.dump and toString", () => {
  it("lists frames under a rule", () => {
    const msg = new Msg(["MDPC01", "", Buffer.from([0x00, 0x1f, 0xff]), "echo"]);
    expect(msg.dump()).toBe(
      [RULE, "[006] MDPC01", "[000]", "[003] 001FFF", "[004] echo"].join("\n"),
    );
  });

  it("dumps an empty message as the rule alone", () => {
    expect(new Msg().dump()).toBe(RULE);
  });

  it("truncates long frames with ...", () => {
    const msg = new Msg(["a".repeat(100), Buffer.alloc(70, 0xab)]);
    expect(msg.dump().split("\n")).toEqual([
      RULE,
      `[100] ${"a".repeat(64)}...`,
      `[070] ${"AB".repeat(64)}...`,
    ]);
    expect(msg.dump(4).split("\n")).toEqual([RULE, "[100] aaaa...", "[070] ABABABAB..."]);
  });

  it("uses a size wider than 3 digits when the frame needs it", () => {
    expect(new Msg([Buffer.alloc(1234, 0x41)]).dump(1)).toBe(`${RULE}\n[1234] A...`);
  });

  it("toString joins frames on one line, cut at 32 bytes", () => {
    const msg = new Msg(["hi", "", Buffer.from([1]), "b".repeat(40)]);
    expect(msg.toString()).toBe(`[002] hi [000] [001] 01 [040] ${"b".repeat(32)}...`);
    expect(String(new Msg())).toBe("");
  });
});

describe("Msg iteration", () => {
  it("iterates over the frames in order", () => {
    const msg = new Msg(["a", "b", "c"]);
    const seen: string[] = [];
    for (const frame of msg) seen.push(frame.toString());
    expect(seen).toEqual(["a", "b", "c"]);
    expect([...msg]).toEqual(msg.frames);
    expect(Array.from(new Msg())).toEqual([]);
  });

  it("can be passed where an iterable of frames is expected", () => {
    const msg = new Msg(["x", "y"]);
    const copy = new Msg(msg);
    expect(copy.equals(msg)).toBe(true);
    expect(copy.frames).not.toBe(msg.frames);
  });
});
