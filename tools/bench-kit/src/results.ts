import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { CoreBenchResults } from "./core-results.js";
import type { MachineInfo } from "./machine.js";
import type { BenchSettings } from "./measure.js";

/** What a benchmark stores in `bench/results/<name>.json`. */
export interface BenchResults<R = unknown> {
  /** The benchmark's name, also the file's name. */
  name: string;
  /** When the benchmark ran, ISO 8601. */
  date: string;
  /** Where it ran. */
  machine: MachineInfo;
  /** Warm-up, duration and repetitions used. */
  settings: BenchSettings;
  /** The benchmark's own figures. */
  results: R;
}

/**
 * The repository root: the nearest directory holding `pnpm-workspace.yaml`, walking up from
 * `from` (default: this file's directory, so it works whatever the working directory).
 */
export function repoRoot(from: string = dirname(fileURLToPath(import.meta.url))): string {
  let dir = from;
  for (;;) {
    if (existsSync(join(dir, "pnpm-workspace.yaml"))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no pnpm-workspace.yaml above ${from}`);
    dir = parent;
  }
}

/** Path of the results file of benchmark `name`: `<repo root>/bench/results/<name>.json`. */
export function resultsPath(name: string): string {
  if (!/^[\w.-]+$/.test(name))
    throw new RangeError(`invalid benchmark name ${JSON.stringify(name)}`);
  return join(repoRoot(), "bench", "results", `${name}.json`);
}

/** Writes `data` to {@link resultsPath}(`name`) as indented JSON (atomically); returns the path. */
export function writeResults(name: string, data: BenchResults): string {
  const path = resultsPath(name);
  mkdirSync(dirname(path), { recursive: true });
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(data, null, 2)}\n`);
  renameSync(temporary, path);
  return path;
}

/**
 * Reads the results benchmark `name` stored with {@link writeResults}; `undefined` when it has
 * not run on this checkout yet. `"core"` is typed as {@link CoreBenchResults}; pass the type of
 * other benchmarks' results explicitly. The content is not validated.
 */
export function readResults(name: "core"): CoreBenchResults | undefined;
export function readResults<T extends BenchResults = BenchResults>(name: string): T | undefined;
export function readResults(name: string): BenchResults | undefined {
  const path = resultsPath(name);
  if (!existsSync(path)) return undefined;
  return JSON.parse(readFileSync(path, "utf8")) as BenchResults;
}
