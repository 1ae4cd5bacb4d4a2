/**
 * Logging: a small interface, quiet by default, readable debug lines on stderr on request.
 * @module
 */

/** Severity of a log line. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** Structured details appended to a log line as `key=value`. */
export type LogFields = Record<string, unknown>;

/**
 * What every zmq-patterns component logs through. Pass your own to route lines into pino,
 * winston or a test; the default is {@link createLogger}'s, silent unless `ZMQ_PATTERNS_DEBUG`
 * is set.
 */
export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** A logger that drops everything. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};

/** Options of {@link createLogger}. */
export interface CreateLoggerOptions {
  /**
   * Lowest level written. Default: `debug` when `ZMQ_PATTERNS_DEBUG` enables the namespace,
   * otherwise nothing is written at all.
   */
  level?: LogLevel | "silent";
  /** Where lines go. Default `process.stderr`. */
  stream?: { write(line: string): unknown };
  /** Prefix lines with the time. Default true. */
  timestamps?: boolean;
}

/**
 * True when the `ZMQ_PATTERNS_DEBUG` environment variable enables `namespace`: `1` or `*`
 * enables all; otherwise a comma-separated list of names where `*` matches anything
 * (`majordomo:*,core`).
 */
export function debugEnabled(
  namespace: string,
  env: string | undefined = process.env.ZMQ_PATTERNS_DEBUG,
): boolean {
  if (!env) return false;
  return env.split(",").some((raw) => {
    const pattern = raw.trim();
    if (pattern === "1" || pattern === "*" || pattern === "true") return true;
    if (pattern === "") return false;
    const regex = new RegExp(`^${pattern.split("*").map(escapeRegExp).join(".*")}$`);
    return regex.test(namespace);
  });
}

/**
 * A logger for `namespace` (e.g. `"majordomo:broker"`) that writes readable lines:
 * `12:00:00.123 majordomo:broker WARN dropped message reason="unknown command"`.
 */
export function createLogger(namespace: string, options: CreateLoggerOptions = {}): Logger {
  const level = options.level ?? (debugEnabled(namespace) ? "debug" : "silent");
  if (level === "silent") return silentLogger;
  const threshold = LEVELS[level];
  const stream = options.stream ?? process.stderr;
  const timestamps = options.timestamps ?? true;
  const write = (lineLevel: LogLevel, message: string, fields?: LogFields) => {
    if (LEVELS[lineLevel] < threshold) return;
    const time = timestamps ? `${new Date().toISOString().slice(11, 23)} ` : "";
    stream.write(
      `${time}${namespace} ${lineLevel.toUpperCase()} ${message}${formatFields(fields)}\n`,
    );
  };
  return {
    debug: (message, fields) => write("debug", message, fields),
    info: (message, fields) => write("info", message, fields),
    warn: (message, fields) => write("warn", message, fields),
    error: (message, fields) => write("error", message, fields),
  };
}

/** Formats fields as ` key=value` pairs; strings with spaces are quoted, buffers shown as hex. */
export function formatFields(fields: LogFields | undefined): string {
  if (!fields) return "";
  let out = "";
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    out += ` ${key}=${formatValue(value)}`;
  }
  return out;
}

function formatValue(value: unknown): string {
  if (value instanceof Uint8Array)
    return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("hex");
  if (typeof value === "string")
    return /^[\w.:/@*+-]+$/.test(value) ? value : JSON.stringify(value);
  if (value instanceof Error) return JSON.stringify(value.message);
  if (typeof value === "object" && value !== null) {
    try {
      return JSON.stringify(value);
    } catch {
      return "[object]";
    }
  }
  return String(value);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.+?^${}()|[\]\\]/g, "\\$&");
}
