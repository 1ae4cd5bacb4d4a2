/**
 * CLI conventions shared by every package's bin: subcommands per role, `--bind`, `--connect`,
 * `--verbose`, `--help`, `--version`, one ready line, clean shutdown on SIGINT/SIGTERM.
 * @module
 */
import { parseArgs } from "node:util";
import { InvalidArgumentError, isZmqPatternsError } from "./errors.js";
import { shutdownOnSignals } from "./lifecycle.js";
import { createLogger, type Logger } from "./logger.js";
import { checkEndpoint } from "./options.js";
import { FaultSimulator } from "./simulation.js";

/** One `--flag` of a command. */
export interface CliOptionSpec {
  /** Value type; numbers are validated (finite, >= `min`). */
  type: "string" | "number" | "boolean";
  /** One line for `--help`. */
  description: string;
  /** One-letter alias. */
  short?: string;
  /** Value when the flag is absent. */
  default?: string | number | boolean;
  /** Name of the value in `--help` (`--bind <endpoint>`). */
  placeholder?: string;
  /** Smallest accepted number. Default 0. */
  min?: number;
  /** Numbers must be integers. */
  integer?: boolean;
  /** Strings must be ZeroMQ endpoints. */
  endpoint?: boolean;
}

/** The value type of an option spec. */
export type CliValue<S extends Pick<CliOptionSpec, "type">> = S["type"] extends "boolean"
  ? boolean
  : S["type"] extends "number"
    ? number
    : string;

/** Parsed option values: options with a default (and booleans) are always present. */
export type CliValues<O extends Record<string, CliOptionSpec>> = {
  [K in keyof O]: O[K] extends { default: unknown }
    ? CliValue<O[K]>
    : O[K]["type"] extends "boolean"
      ? boolean
      : CliValue<O[K]> | undefined;
};

/** What a command's `run` receives. */
export interface CliContext<
  O extends Record<string, CliOptionSpec> = Record<string, CliOptionSpec>,
> {
  /** The bin's name. */
  readonly name: string;
  /** The subcommand being run. */
  readonly command: string;
  /** Parsed, validated option values. */
  readonly options: CliValues<O>;
  /** Arguments that are not options. */
  readonly positionals: string[];
  /** `--verbose` was given. */
  readonly verbose: boolean;
  /** Logs to stderr at info level (debug with `--verbose`). */
  readonly logger: Logger;
  /** Aborted when a shutdown signal arrives. */
  readonly signal: AbortSignal;
  /** Prints the one ready line, `<name> <command> ready: <detail>`, on stdout. */
  ready(detail: string): void;
  /** Prints a line on stdout. */
  print(line: string): void;
  /** Registers what to close on SIGINT/SIGTERM; the process then exits. */
  onShutdown(close: () => void | Promise<void>): void;
}

/** A subcommand: one role of the bin. */
export interface CliCommandSpec<
  O extends Record<string, CliOptionSpec> = Record<string, CliOptionSpec>,
> {
  /** One line for `--help`. */
  description: string;
  /** The command's flags (the common ones are added). */
  options: O;
  /** Names and descriptions of positional arguments, for `--help`. */
  positionals?: { name: string; description: string }[];
  /** Starts the role. Long-running roles return once started and stay alive until a signal. */
  run(context: CliContext<O>): void | Promise<void>;
}

/** A bin: its name, version, and one command per role. */
export interface CliSpec {
  name: string;
  version: string;
  description: string;
  // biome-ignore lint/suspicious/noExplicitAny: commands have heterogeneous option maps.
  commands: Record<string, CliCommandSpec<any>>;
}

/** Where a CLI writes; injectable for tests. */
export interface CliIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
}

/** Declares a command with its option types inferred. */
export function defineCommand<const O extends Record<string, CliOptionSpec>>(
  spec: CliCommandSpec<O>,
): CliCommandSpec<O> {
  return spec;
}

/** The spec of an endpoint option with a default, as {@link bindOption} returns. */
export interface EndpointOptionSpec {
  type: "string";
  description: string;
  default: string;
  placeholder: string;
  endpoint: true;
}

/** The conventional `--bind <endpoint>` option. */
export function bindOption(
  defaultEndpoint: string,
  description = "endpoint to bind",
): EndpointOptionSpec {
  return {
    type: "string",
    description,
    default: defaultEndpoint,
    placeholder: "endpoint",
    endpoint: true,
  };
}

/** The conventional `--connect <endpoint>` option. */
export function connectOption(
  defaultEndpoint: string,
  description = "endpoint to connect to",
): EndpointOptionSpec {
  return {
    type: "string",
    description,
    default: defaultEndpoint,
    placeholder: "endpoint",
    endpoint: true,
  };
}

const COMMON: Record<string, CliOptionSpec> = {
  verbose: { type: "boolean", short: "v", description: "log every message and decision" },
  help: { type: "boolean", short: "h", description: "show this help" },
  version: { type: "boolean", description: "print the version" },
};

/**
 * Runs a bin: parses `argv`, prints help or version, validates options, and runs the command.
 * Returns the exit code for usage errors (2) and failures (1); long-running commands exit
 * through their shutdown handlers.
 *
 * @example
 * ```ts
 * const code = await runCli({ name: "majordomo", version, description, commands: { broker } });
 * process.exitCode = code;
 * ```
 */
export async function runCli(
  spec: CliSpec,
  argv: readonly string[] = process.argv.slice(2),
  io: CliIo = { stdout: process.stdout, stderr: process.stderr },
): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === "--help" || first === "-h" || first === "help") {
    io.stdout.write(mainHelp(spec));
    return first === undefined ? 2 : 0;
  }
  if (first === "--version") {
    io.stdout.write(`${spec.version}\n`);
    return 0;
  }
  const command = spec.commands[first];
  if (!command) {
    io.stderr.write(`${spec.name}: unknown command "${first}"\n\n${mainHelp(spec)}`);
    return 2;
  }

  let context: CliContext;
  try {
    const parsed = parseCommand(command, rest);
    if (parsed === "help") {
      io.stdout.write(commandHelp(spec, first, command));
      return 0;
    }
    if (parsed === "version") {
      io.stdout.write(`${spec.version}\n`);
      return 0;
    }
    context = makeContext(spec, first, parsed.values, parsed.positionals, io);
  } catch (error) {
    io.stderr.write(
      `${spec.name} ${first}: ${errorMessage(error)}\nRun "${spec.name} ${first} --help" for usage.\n`,
    );
    return 2;
  }

  try {
    await command.run(context);
    return 0;
  } catch (error) {
    const usage = isZmqPatternsError(error, "INVALID_ARGUMENT");
    io.stderr.write(`${spec.name} ${first}: ${errorMessage(error)}\n`);
    return usage ? 2 : 1;
  }
}

function parseCommand(
  command: CliCommandSpec,
  args: string[],
): "help" | "version" | { values: Record<string, unknown>; positionals: string[] } {
  const all = { ...command.options, ...COMMON };
  const parseOptions: Record<string, { type: "string" | "boolean"; short?: string }> = {};
  for (const [key, option] of Object.entries(all)) {
    parseOptions[key] = {
      type: option.type === "boolean" ? "boolean" : "string",
      ...(option.short ? { short: option.short } : {}),
    };
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args, options: parseOptions, allowPositionals: true, strict: true });
  } catch (error) {
    throw new InvalidArgumentError(errorMessage(error).replace(/\. To specify.*$/s, ""));
  }
  if (parsed.values.help) return "help";
  if (parsed.values.version) return "version";
  if (!command.positionals?.length && parsed.positionals.length > 0) {
    throw new InvalidArgumentError(`unexpected argument "${parsed.positionals[0]}"`);
  }
  const values: Record<string, unknown> = {};
  for (const [key, option] of Object.entries(all)) {
    const raw = parsed.values[key];
    values[key] =
      raw === undefined ? defaultValue(option) : convert(key, option, raw as string | boolean);
  }
  return { values, positionals: parsed.positionals };
}

function defaultValue(option: CliOptionSpec): unknown {
  if (option.default !== undefined) return option.default;
  return option.type === "boolean" ? false : undefined;
}

function convert(key: string, option: CliOptionSpec, raw: string | boolean): unknown {
  if (option.type === "boolean") return raw;
  const text = String(raw);
  if (option.type === "number") {
    const value = Number(text);
    const min = option.min ?? 0;
    if (
      text.trim() === "" ||
      !Number.isFinite(value) ||
      value < min ||
      (option.integer && !Number.isInteger(value))
    ) {
      throw new InvalidArgumentError(
        `--${key} must be ${option.integer ? "an integer" : "a number"} >= ${min}, got "${text}"`,
      );
    }
    return value;
  }
  if (option.endpoint) checkEndpoint(`--${key}`, text);
  return text;
}

function makeContext(
  spec: CliSpec,
  command: string,
  values: Record<string, unknown>,
  positionals: string[],
  io: CliIo,
): CliContext {
  const verbose = values.verbose === true;
  const controller = new AbortController();
  const closers: Array<() => void | Promise<void>> = [];
  const logger = createLogger(`${spec.name}:${command}`, {
    level: verbose ? "debug" : "info",
    stream: io.stderr,
  });
  let installed = false;
  return {
    name: spec.name,
    command,
    options: values as CliValues<Record<string, CliOptionSpec>>,
    positionals,
    verbose,
    logger,
    signal: controller.signal,
    ready: (detail) => io.stdout.write(`${spec.name} ${command} ready: ${detail}\n`),
    print: (line) => io.stdout.write(`${line}\n`),
    onShutdown(close) {
      closers.push(close);
      if (installed) return;
      installed = true;
      shutdownOnSignals(
        async () => {
          controller.abort();
          for (const step of closers.reverse()) await step();
        },
        { log: (message) => logger.info(message) },
      );
    },
  };
}

function mainHelp(spec: CliSpec): string {
  const width = Math.max(...Object.keys(spec.commands).map((name) => name.length));
  const lines = Object.entries(spec.commands).map(
    ([name, command]) => `  ${name.padEnd(width)}  ${command.description}`,
  );
  return [
    `${spec.name} ${spec.version}: ${spec.description}`,
    "",
    `Usage: ${spec.name} <command> [options]`,
    "",
    "Commands:",
    ...lines,
    "",
    `Run "${spec.name} <command> --help" for a command's options.`,
    "",
  ].join("\n");
}

function commandHelp(spec: CliSpec, name: string, command: CliCommandSpec): string {
  const all = { ...command.options, ...COMMON };
  const rows = Object.entries(all).map(([key, option]) => {
    const flag = `${option.short ? `-${option.short}, ` : "    "}--${key}${option.type === "boolean" ? "" : ` <${option.placeholder ?? option.type}>`}`;
    const fallback =
      option.default !== undefined && option.type !== "boolean"
        ? ` (default: ${option.default})`
        : "";
    return [flag, `${option.description}${fallback}`] as const;
  });
  const positionals = command.positionals ?? [];
  const width = Math.max(
    ...rows.map(([flag]) => flag.length),
    ...positionals.map((p) => p.name.length + 2),
  );
  const args = positionals.map((p) => ` <${p.name}>`).join("");
  return [
    `Usage: ${spec.name} ${name} [options]${args}`,
    "",
    command.description,
    "",
    ...(positionals.length > 0
      ? [
          "Arguments:",
          ...positionals.map((p) => `  ${`<${p.name}>`.padEnd(width)}  ${p.description}`),
          "",
        ]
      : []),
    "Options:",
    ...rows.map(([flag, text]) => `  ${flag.padEnd(width)}  ${text}`),
    "",
  ].join("\n");
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The Guide's failure-injection flags shared by demo servers and workers; turn the parsed values
 * into a simulator with {@link faultSimulatorFromCli}.
 */
export const faultCliOptions = {
  "crash-after": {
    type: "number",
    integer: true,
    default: 0,
    placeholder: "n",
    description: "requests handled normally before simulated faults may start",
  },
  "crash-probability": {
    type: "number",
    default: 0,
    placeholder: "p",
    description: "chance per request (0-1) of simulating a crash (the process exits)",
  },
  "slow-probability": {
    type: "number",
    default: 0,
    placeholder: "p",
    description: "chance per request (0-1) of simulating overload",
  },
  "slow-ms": {
    type: "number",
    default: 3000,
    placeholder: "ms",
    description: "extra time an overloaded request takes",
  },
  "work-ms": {
    type: "number",
    default: 0,
    placeholder: "ms",
    description: "time every request takes",
  },
} as const satisfies Record<string, CliOptionSpec>;

/** A {@link FaultSimulator} configured from {@link faultCliOptions} values. */
export function faultSimulatorFromCli(values: CliValues<typeof faultCliOptions>): FaultSimulator {
  return new FaultSimulator({
    crashAfter: values["crash-after"],
    crashProbability: values["crash-probability"],
    slowProbability: values["slow-probability"],
    slowMs: values["slow-ms"],
    workMs: values["work-ms"],
  });
}
