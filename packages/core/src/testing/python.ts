/**
 * Python peers for interoperability tests: finds the repository's `interop/python` peers (written
 * with pyzmq), checks once whether a Python with pyzmq is available, and starts peers as child
 * processes through {@link startProcess}, so they are killed like every other test process.
 * @module
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { InvalidArgumentError } from "../errors.js";
import { type ChildProcessHandle, type StartProcessOptions, startProcess } from "./process.js";

/**
 * The Python used by default: the system one, where Debian's `python3-zmq` package installs
 * pyzmq. Override with the `ZMQ_PATTERNS_PYTHON` environment variable.
 */
export const DEFAULT_PYTHON = "/usr/bin/python3";

/** The peers' folder, relative to the repository root. */
const PEERS_DIR = join("interop", "python");

/** What {@link checkPython} found. */
export interface PythonCheck {
  /** True when the interpreter runs, imports `zmq`, and the peers' folder was found. */
  available: boolean;
  /** The interpreter checked. */
  python: string;
  /** The folder holding the peers, when found. */
  peersDir: string | undefined;
  /** pyzmq's version, when it imports. */
  pyzmq: string | undefined;
  /** The libzmq version pyzmq is built against, when it imports. */
  libzmq: string | undefined;
  /** Why the peers cannot run, when {@link PythonCheck.available} is false. */
  reason: string | undefined;
}

/** A command line as {@link startProcess} takes it. */
export interface PythonCommand {
  /** The Python interpreter. */
  command: string;
  /** Python's flags, the peer script, then the peer's arguments. */
  args: string[];
}

/** Options of {@link startPythonPeer}. */
export type StartPythonPeerOptions = Omit<StartProcessOptions, "command" | "args">;

const checks = new Map<string, PythonCheck>();

/** The interpreter to use: `ZMQ_PATTERNS_PYTHON` when set, else {@link DEFAULT_PYTHON}. */
export function pythonExecutable(): string {
  const fromEnv = process.env.ZMQ_PATTERNS_PYTHON;
  return fromEnv !== undefined && fromEnv !== "" ? fromEnv : DEFAULT_PYTHON;
}

/**
 * The folder of the Python peers: `ZMQ_PATTERNS_INTEROP_DIR` when set, else the first
 * `interop/python` found walking up from `from` (default: this module's folder, which lies inside
 * the repository whether run from source or from `dist`). `undefined` when there is none.
 */
export function findPythonPeersDir(from?: string): string | undefined {
  const fromEnv = process.env.ZMQ_PATTERNS_INTEROP_DIR;
  if (fromEnv !== undefined && fromEnv !== "") return existsSync(fromEnv) ? fromEnv : undefined;
  let dir = resolve(from ?? dirname(fileURLToPath(import.meta.url)));
  for (;;) {
    const candidate = join(dir, PEERS_DIR);
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/**
 * Checks, once per interpreter (the answer is cached), that `python` runs and imports pyzmq and
 * that the peers' folder exists. Synchronous, so a test file can decide at collection time
 * whether to skip (`describe.skipIf(!checkPython().available)`).
 */
export function checkPython(python: string = pythonExecutable()): PythonCheck {
  const cached = checks.get(python);
  if (cached !== undefined) return cached;
  const check = runCheck(python);
  checks.set(python, check);
  return check;
}

function runCheck(python: string): PythonCheck {
  const peersDir = findPythonPeersDir();
  const result: PythonCheck = {
    available: false,
    python,
    peersDir,
    pyzmq: undefined,
    libzmq: undefined,
    reason: undefined,
  };
  const probe = spawnSync(
    python,
    ["-B", "-c", "import zmq; print(zmq.pyzmq_version(), zmq.zmq_version())"],
    { encoding: "utf8", timeout: 15_000, stdio: ["ignore", "pipe", "pipe"] },
  );
  if (probe.error !== undefined) {
    result.reason = `cannot run ${python} (${probe.error.message})`;
    return result;
  }
  if (probe.status !== 0) {
    const lastLine = probe.stderr.trim().split("\n").at(-1) ?? `exit status ${probe.status}`;
    result.reason =
      `${python} cannot import zmq (${lastLine}); install pyzmq, e.g. ` +
      "`apt-get install python3-zmq`, or set ZMQ_PATTERNS_PYTHON";
    return result;
  }
  const [pyzmq, libzmq] = probe.stdout.trim().split(/\s+/);
  result.pyzmq = pyzmq;
  result.libzmq = libzmq;
  if (peersDir === undefined) {
    result.reason = `no ${PEERS_DIR} folder found above ${dirname(fileURLToPath(import.meta.url))}`;
    return result;
  }
  result.available = true;
  return result;
}

/**
 * The command line that runs the peer `peer` (`"lpserver"`, `"ppworker"`, ...) with its
 * arguments: unbuffered output, no bytecode files written into the repository.
 *
 * @throws `InvalidArgumentError` when the peers' folder cannot be found or has no such peer.
 */
export function pythonCommand(peer: string, args: readonly string[] = []): PythonCommand {
  const dir = findPythonPeersDir();
  if (dir === undefined) throw new InvalidArgumentError(`no ${PEERS_DIR} folder found`);
  const script = join(dir, peer.endsWith(".py") ? peer : `${peer}.py`);
  if (!existsSync(script)) throw new InvalidArgumentError(`no Python peer ${script}`);
  return { command: pythonExecutable(), args: ["-u", "-B", script, ...args] };
}

/**
 * Starts a Python peer and resolves once it prints its ready line (every peer prints one
 * containing `ready`). The process is tracked like any other: `killAllProcesses()` kills it.
 */
export function startPythonPeer(
  peer: string,
  args: readonly string[] = [],
  options: StartPythonPeerOptions = {},
): Promise<ChildProcessHandle> {
  return startProcess({ name: peer, ...options, ...pythonCommand(peer, args) });
}
