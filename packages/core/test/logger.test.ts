import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createLogger, debugEnabled, formatFields, silentLogger } from "../src/index.js";

/** A stream that keeps what is written. */
function capture(): { write(line: string): void; lines: string[] } {
  const lines: string[] = [];
  return { write: (line: string) => void lines.push(line), lines };
}

describe("debugEnabled", () => {
  it("is false without a setting", () => {
    expect(debugEnabled("core", "")).toBe(false);
    expect(debugEnabled("core", undefined)).toBe(false);
  });

  it("enables everything with 1, * or true", () => {
    for (const env of ["1", "*", "true", " 1 ", "other,*"]) {
      expect(debugEnabled("majordomo:broker", env)).toBe(true);
      expect(debugEnabled("core", env)).toBe(true);
    }
  });

  it("matches exact names in a comma-separated list", () => {
    expect(debugEnabled("core", "core")).toBe(true);
    expect(debugEnabled("core", "lazy-pirate, core")).toBe(true);
    expect(debugEnabled("lazy-pirate", "lazy-pirate,core")).toBe(true);
    expect(debugEnabled("cor", "core")).toBe(false);
    expect(debugEnabled("core:x", "core")).toBe(false);
    expect(debugEnabled("xcore", "core")).toBe(false);
  });

  it("matches wildcards anywhere in a pattern", () => {
    expect(debugEnabled("majordomo:broker", "majordomo:*")).toBe(true);
    expect(debugEnabled("majordomo:worker", "majordomo:*,core")).toBe(true);
    expect(debugEnabled("majordomo", "majordomo:*")).toBe(false);
    expect(debugEnabled("titanic:broker", "majordomo:*")).toBe(false);
    expect(debugEnabled("majordomo:broker", "*:broker")).toBe(true);
    expect(debugEnabled("majordomo:worker", "*:broker")).toBe(false);
    expect(debugEnabled("a:b:c", "a*c")).toBe(true);
  });

  it("treats regex characters in patterns literally", () => {
    expect(debugEnabled("a.b", "a.b")).toBe(true);
    expect(debugEnabled("axb", "a.b")).toBe(false);
    expect(debugEnabled("a+", "a+")).toBe(true);
    expect(debugEnabled("aa", "a+")).toBe(false);
    expect(debugEnabled("(x)", "(x)")).toBe(true);
    expect(debugEnabled("x", "(x)")).toBe(false);
  });

  it("ignores empty list entries and does not match non-listed names", () => {
    expect(debugEnabled("core", ",,")).toBe(false);
    expect(debugEnabled("core", " , ")).toBe(false);
    expect(debugEnabled("core", "0")).toBe(false);
    expect(debugEnabled("core", "false")).toBe(false);
    expect(debugEnabled("core", "majordomo:*,lazy-pirate")).toBe(false);
  });
});

describe("formatFields", () => {
  it("is empty for no fields", () => {
    expect(formatFields(undefined)).toBe("");
    expect(formatFields({})).toBe("");
  });

  it("formats each field as key=value", () => {
    expect(formatFields({ service: "echo", attempts: 3, ok: true, none: null })).toBe(
      " service=echo attempts=3 ok=true none=null",
    );
  });

  it("shows buffers as hex", () => {
    expect(formatFields({ identity: Buffer.from([0x00, 0x6b, 0x8b, 0x45]) })).toBe(
      " identity=006b8b45",
    );
  });

  it("quotes strings with spaces or unusual characters, not plain tokens", () => {
    expect(formatFields({ reason: "unknown command" })).toBe(' reason="unknown command"');
    expect(formatFields({ endpoint: "tcp://localhost:5555" })).toBe(
      " endpoint=tcp://localhost:5555",
    );
    expect(formatFields({ who: "a@b.c", pattern: "x*+-_" })).toBe(" who=a@b.c pattern=x*+-_");
    expect(formatFields({ empty: "" })).toBe(' empty=""');
    expect(formatFields({ q: 'say "hi"' })).toBe(' q="say \\"hi\\""');
    expect(formatFields({ nl: "a\nb" })).toBe(' nl="a\\nb"');
  });

  it("skips undefined values", () => {
    expect(formatFields({ a: 1, b: undefined, c: 2 })).toBe(" a=1 c=2");
    expect(formatFields({ b: undefined })).toBe("");
  });

  it("shows objects and arrays as JSON", () => {
    expect(formatFields({ stats: { sent: 1, dropped: { bad: 2 } } })).toBe(
      ' stats={"sent":1,"dropped":{"bad":2}}',
    );
    expect(formatFields({ list: [1, "a"] })).toBe(' list=[1,"a"]');
  });

  it("shows errors by their message and unserialisable objects as [object]", () => {
    expect(formatFields({ error: new Error("boom here") })).toBe(' error="boom here"');
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    expect(formatFields({ circular })).toBe(" circular=[object]");
  });

  it("shows other primitives with String()", () => {
    expect(formatFields({ big: 10n, n: Number.NaN, neg: -1.5 })).toBe(" big=10 n=NaN neg=-1.5");
  });
});

describe("createLogger", () => {
  const saved = process.env.ZMQ_PATTERNS_DEBUG;

  beforeEach(() => {
    delete process.env.ZMQ_PATTERNS_DEBUG;
  });

  afterEach(() => {
    if (saved === undefined) delete process.env.ZMQ_PATTERNS_DEBUG;
    else process.env.ZMQ_PATTERNS_DEBUG = saved;
  });

  it("is silent by default without ZMQ_PATTERNS_DEBUG", () => {
    const stream = capture();
    const logger = createLogger("core", { stream });
    expect(logger).toBe(silentLogger);
    logger.debug("d");
    logger.info("i");
    logger.warn("w");
    logger.error("e");
    expect(stream.lines).toEqual([]);
  });

  it("is silent when ZMQ_PATTERNS_DEBUG does not match the namespace", () => {
    process.env.ZMQ_PATTERNS_DEBUG = "majordomo:*";
    const stream = capture();
    createLogger("core", { stream, timestamps: false }).error("e");
    expect(stream.lines).toEqual([]);
  });

  it("writes from debug up when ZMQ_PATTERNS_DEBUG enables the namespace", () => {
    process.env.ZMQ_PATTERNS_DEBUG = "majordomo:*";
    const stream = capture();
    const logger = createLogger("majordomo:broker", { stream, timestamps: false });
    logger.debug("hello", { n: 1 });
    logger.error("bad");
    expect(stream.lines).toEqual([
      "majordomo:broker DEBUG hello n=1\n",
      "majordomo:broker ERROR bad\n",
    ]);
  });

  it("is silent with level silent even when enabled by the environment", () => {
    process.env.ZMQ_PATTERNS_DEBUG = "1";
    const stream = capture();
    const logger = createLogger("core", { level: "silent", stream });
    expect(logger).toBe(silentLogger);
    logger.error("e");
    expect(stream.lines).toEqual([]);
  });

  it("writes formatted lines at the chosen level without timestamps", () => {
    const stream = capture();
    const logger = createLogger("majordomo:broker", {
      level: "debug",
      stream,
      timestamps: false,
    });
    logger.debug("received", { identity: Buffer.from([0, 1, 0xab]) });
    logger.info("started", { endpoint: "tcp://*:5555" });
    logger.warn("dropped message", { reason: "unknown command", skipped: undefined });
    logger.error("failed", { error: new Error("boom") });
    expect(stream.lines).toEqual([
      "majordomo:broker DEBUG received identity=0001ab\n",
      "majordomo:broker INFO started endpoint=tcp://*:5555\n",
      'majordomo:broker WARN dropped message reason="unknown command"\n',
      'majordomo:broker ERROR failed error="boom"\n',
    ]);
  });

  it("respects the threshold", () => {
    const levels = ["debug", "info", "warn", "error"] as const;
    for (const [index, level] of levels.entries()) {
      const stream = capture();
      const logger = createLogger("ns", { level, stream, timestamps: false });
      for (const line of levels) logger[line](line);
      expect(stream.lines).toEqual(
        levels.slice(index).map((line) => `ns ${line.toUpperCase()} ${line}\n`),
      );
    }
  });

  it("prefixes lines with HH:MM:SS.mmm by default", () => {
    const stream = capture();
    createLogger("core", { level: "info", stream }).info("hi", { a: 1 });
    expect(stream.lines).toHaveLength(1);
    expect(stream.lines[0]).toMatch(/^\d{2}:\d{2}:\d{2}\.\d{3} core INFO hi a=1\n$/);
  });

  it("silentLogger accepts every call", () => {
    expect(() => {
      silentLogger.debug("x", { a: 1 });
      silentLogger.info("x");
      silentLogger.warn("x");
      silentLogger.error("x");
    }).not.toThrow();
  });
});
