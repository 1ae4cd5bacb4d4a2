/**
 * Unique endpoints for tests that run in parallel worker processes, so no two tests ever bind
 * (or connect to) the same address by accident.
 * @module
 */
import { readdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { InvalidArgumentError } from "../errors.js";

/** The transports {@link allocateAddress} can hand out endpoints for. */
export type Transport = "tcp" | "ipc" | "inproc";

/**
 * First port handed out. The whole range sits below Linux's ephemeral range (32768-60999 by
 * default), so the kernel never picks one of these ports as the local port of an outgoing
 * connection and a port found free stays free until the test binds it.
 */
export const PORT_RANGE_START = 20_000;

/** One past the last port handed out (see {@link PORT_RANGE_START}). */
export const PORT_RANGE_END = 32_000;

/**
 * Ports reserved for each process; a process that needs more fails instead of reusing ports.
 * The first port of a slot is its claim: the owning process keeps it bound while it lives.
 */
export const PORTS_PER_SLOT = 250;

const SLOTS = Math.floor((PORT_RANGE_END - PORT_RANGE_START) / PORTS_PER_SLOT);

/** Longest ipc path we hand out: unix socket paths are capped at 107 bytes (103 on macOS). */
const MAX_IPC_PATH = 100;
const IPC_PREFIX = "zmqp-";
/** Our ipc file names: prefix, pid in base 36, counter in base 36. */
const IPC_NAME = /^zmqp-([0-9a-z]+)-[0-9a-z]+\.sock$/;

interface PortSlot {
  first: number;
  offset: number;
  source: string;
}

let portSlot: Promise<PortSlot> | undefined;
let portsTried = 0;
let counter = 0;
const ipcPaths = new Set<string>();
let ipcCleanupInstalled = false;

/**
 * Returns an endpoint no other test is using: `tcp://127.0.0.1:PORT` (default, the port checked
 * free), `ipc://` a short path in the temporary directory, or `inproc://` a unique name.
 *
 * TCP ports come from a slot of {@link PORTS_PER_SLOT} ports owned by this process. The slot is
 * claimed by keeping its first port bound for the life of the process, so two processes never
 * own one slot, even across concurrent test runs; the search starts at the slot named by
 * vitest's `VITEST_POOL_ID`, else `VITEST_WORKER_ID`, else the pid, and walks on past slots
 * already claimed. Ports are never handed out twice by one process, because a peer left over
 * from an earlier test would reconnect to a reused port.
 */
export async function allocateAddress(transport: Transport = "tcp"): Promise<string> {
  switch (transport) {
    case "tcp":
      return `tcp://127.0.0.1:${await allocatePort()}`;
    case "ipc":
      return `ipc://${allocateIpcPath()}`;
    case "inproc":
      return `inproc://zmqp-${process.pid.toString(36)}-${(++counter).toString(36)}`;
    default:
      throw new InvalidArgumentError(
        `transport must be "tcp", "ipc" or "inproc", got ${JSON.stringify(transport)}`,
      );
  }
}

/**
 * Returns a TCP port on 127.0.0.1 that was free a moment ago and that this process has not
 * handed out before (see {@link allocateAddress} for how ports are partitioned).
 */
export async function allocatePort(): Promise<number> {
  portSlot ??= claimSlot();
  const slot = await portSlot;
  const usable = PORTS_PER_SLOT - 1;
  for (;;) {
    if (portsTried >= usable) {
      throw new Error(
        `allocatePort: all ${usable} ports of this process's slot ` +
          `(${slot.first + 1}-${slot.first + usable}, ${slot.source}) ` +
          "were handed out or in use; split the test file or free the ports",
      );
    }
    // Reserved synchronously, so concurrent callers never receive the same port.
    const port = slot.first + 1 + ((slot.offset + portsTried++) % usable);
    if (await isPortFree(port)) return port;
  }
}

/** Claims the first free slot from the preferred one on, holding its first port until exit. */
async function claimSlot(): Promise<PortSlot> {
  const preferred = preferredSlot();
  // Knuth's multiplicative hash spreads neighbouring pids across the slot.
  const offset = (Math.imul(process.pid, 2_654_435_761) >>> 0) % (PORTS_PER_SLOT - 1);
  for (let i = 0; i < SLOTS; i++) {
    const index = (preferred.index + i) % SLOTS;
    const first = PORT_RANGE_START + index * PORTS_PER_SLOT;
    if (await holdPort(first)) {
      const source = i === 0 ? `chosen by ${preferred.source}` : `claimed after ${i} busy slot(s)`;
      return { first, offset, source };
    }
  }
  throw new Error(
    `allocatePort: all ${SLOTS} port slots between ${PORT_RANGE_START} and ${PORT_RANGE_END} ` +
      "are claimed by other processes",
  );
}

/** Binds the port for the rest of the process's life (without keeping it alive). */
function holdPort(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen({ port, host: "127.0.0.1", exclusive: true }, () => {
      server.unref();
      resolve(true);
    });
  });
}

function preferredSlot(): { index: number; source: string } {
  const pool = envInteger(process.env.VITEST_POOL_ID);
  const worker = envInteger(process.env.VITEST_WORKER_ID);
  let index: number;
  let source: string;
  if (pool !== undefined) {
    index = pool % SLOTS;
    source = `VITEST_POOL_ID=${pool}`;
  } else if (worker !== undefined) {
    index = worker % SLOTS;
    source = `VITEST_WORKER_ID=${worker}`;
  } else {
    index = process.pid % SLOTS;
    source = `pid ${process.pid}`;
  }
  return { index, source };
}

function envInteger(value: string | undefined): number | undefined {
  return value !== undefined && /^\d+$/.test(value) ? Number(value) : undefined;
}

/** Binds the port briefly; any failure (in use, forbidden) counts as not free. */
function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once("error", () => resolve(false));
    server.listen({ port, host: "127.0.0.1", exclusive: true }, () => {
      server.close(() => resolve(true));
    });
  });
}

function allocateIpcPath(): string {
  const dir = tmpdir();
  const name = `${IPC_PREFIX}${process.pid.toString(36)}-${(++counter).toString(36)}.sock`;
  let path = join(dir, name);
  // A long TMPDIR would overflow the unix socket path limit; /tmp always fits.
  if (Buffer.byteLength(path) > MAX_IPC_PATH && process.platform !== "win32") path = `/tmp/${name}`;
  if (!ipcCleanupInstalled) {
    ipcCleanupInstalled = true;
    removeStaleIpcFiles(dirname(path));
    // Not reached when a test runner kills its workers; the sweep above covers that case.
    process.once("exit", () => {
      for (const file of ipcPaths) rmSync(file, { force: true });
    });
  }
  // A dead process with the same pid may have left its socket file behind.
  rmSync(path, { force: true });
  ipcPaths.add(path);
  return path;
}

/** Removes socket files left by processes that no longer exist, since killed workers leak them. */
function removeStaleIpcFiles(dir: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const pid = IPC_NAME.exec(name)?.[1];
    if (pid === undefined || isAlive(Number.parseInt(pid, 36))) continue;
    rmSync(join(dir, name), { force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code !== "ESRCH";
  }
}
