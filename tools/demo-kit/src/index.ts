/**
 * Narration for the demo apps: numbered steps, commentary, and role processes (the packages' own
 * bins) whose output streams into the story with a coloured prefix.
 * @module
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import {
  type ChildProcessHandle,
  killAllProcesses,
  type StartProcessOptions,
  startProcess,
} from "@zmq-patterns/core/testing";

const useColor = process.stdout.isTTY === true && !process.env.NO_COLOR;
const paint = (code: string, text: string) => (useColor ? `\x1b[${code}m${text}\x1b[0m` : text);
const PALETTE = ["36", "35", "33", "34", "32", "96", "95", "93"];

/** A process started by the demo, with its output shown under a name. */
export type RoleProcess = ChildProcessHandle;

/** The command that runs a package's bin (its built `bin/<name>.js`) with `args`. */
export function binCommand(
  packageName: string,
  bin: string,
  args: readonly string[],
): { command: string; args: string[] } {
  const manifest = createRequire(import.meta.url).resolve(`${packageName}/package.json`);
  const pkg = createRequire(import.meta.url)(manifest) as { bin?: Record<string, string> };
  const file = pkg.bin?.[bin];
  if (!file) throw new Error(`${packageName} has no bin named ${bin}`);
  return { command: process.execPath, args: [join(dirname(manifest), file), ...args] };
}

/** A narrated scenario. */
export class Demo {
  readonly title: string;
  #step = 0;
  #colors = 0;
  readonly #started = performance.now();

  constructor(title: string) {
    this.title = title;
  }

  /** Prints the scenario's title and what it will show. */
  intro(...lines: string[]): void {
    console.log(paint("1", `${this.title}`));
    for (const line of lines) console.log(`  ${line}`);
  }

  /** Starts a numbered step. */
  step(text: string): void {
    this.#step += 1;
    console.log(`\n${paint("1", `Step ${this.#step}.`)} ${text}`);
  }

  /** Commentary. */
  say(text: string): void {
    console.log(`  ${paint("2", "»")} ${text}`);
  }

  /** A claim the demo just verified. */
  ok(text: string): void {
    console.log(`  ${paint("32", "✔")} ${text}`);
  }

  /** Starts a role process and waits for its ready line; its output is shown prefixed with `name`. */
  async start(
    name: string,
    command: { command: string; args: string[] },
    options: Partial<StartProcessOptions> = {},
  ): Promise<RoleProcess> {
    const color = PALETTE[this.#colors++ % PALETTE.length] as string;
    const prefix = paint(color, `    [${name}]`);
    return startProcess({
      ...command,
      name,
      ...options,
      onOutput: (line) => console.log(`${prefix} ${line.text}`),
    });
  }

  /** Time since the demo started, for narration. */
  elapsed(): string {
    return `${((performance.now() - this.#started) / 1000).toFixed(1)} s`;
  }

  /**
   * Runs the scenario: every role process is killed at the end, whatever happens; a failure is
   * reported and sets a non-zero exit code. SIGINT/SIGTERM end the demo cleanly.
   */
  async run(scenario: (demo: Demo) => Promise<void>): Promise<void> {
    const onSignal = () => {
      void killAllProcesses().finally(() => process.exit(130));
    };
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
    try {
      await scenario(this);
      console.log(`\n${paint("32;1", "Demo complete")} in ${this.elapsed()}.`);
    } catch (error) {
      console.error(
        `\n${paint("31;1", "Demo failed:")} ${error instanceof Error ? error.message : String(error)}`,
      );
      process.exitCode = 1;
    } finally {
      await killAllProcesses();
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    }
  }
}
