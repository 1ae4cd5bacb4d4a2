/**
 * Storage of Titanic: the `TitanicStore` interface and the filesystem store.
 * @module
 */
import { randomBytes } from "node:crypto";
import type { Stats } from "node:fs";
import { mkdir, open, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { decodeFrameFile, encodeFrameFile, ProtocolError } from "@zmq-patterns/core";
import { normalizeUuid } from "./protocol.js";

/** A stored request. */
export interface StoredRequest {
  /** Canonical UUID. */
  uuid: string;
  /** The service to run it on. */
  service: string;
  /** The request for that service. */
  body: Buffer[];
  /** When it was stored, in ms since the epoch (orders recovery). */
  storedAt: number;
}

/** What a UUID stands for in the store. */
export type EntryState = "pending" | "done" | "unknown";

/**
 * Where Titanic keeps requests and replies. Every write must be durable when its promise resolves:
 * Titanic acknowledges a request with `200` only after `putRequest` resolved, and hands a reply
 * out only after `putReply` resolved. A crash at any moment must leave each entry either as it
 * was or as it became, never torn.
 */
export interface TitanicStore {
  /** Prepares the store (creates it, recovers from a crash). Called once before anything else. */
  open(): Promise<void>;
  /** Stores a new request durably. */
  putRequest(request: StoredRequest): Promise<void>;
  /** The stored request, or `undefined` (unknown or closed). */
  getRequest(uuid: string): Promise<StoredRequest | undefined>;
  /** Stores the reply of a pending request durably; ignored when the request was closed. */
  putReply(uuid: string, body: readonly Buffer[]): Promise<void>;
  /** The stored reply, or `undefined`. */
  getReply(uuid: string): Promise<Buffer[] | undefined>;
  /** `pending` (request, no reply yet), `done` (reply stored) or `unknown`. */
  state(uuid: string): Promise<EntryState>;
  /** Forgets a request and its reply. Idempotent. */
  remove(uuid: string): Promise<void>;
  /** Requests without a reply, oldest first: what a restarted dispatcher resumes. */
  pending(): Promise<StoredRequest[]>;
  /**
   * Removes finished entries (reply stored) older than `maxAgeMs`, then the oldest finished ones
   * beyond `maxFinished`. Returns how many were removed.
   */
  collect(policy: { maxAgeMs?: number; maxFinished?: number }): Promise<number>;
  /** Releases resources. */
  close(): Promise<void>;
}

/** Options of {@link FileStore}. */
export interface FileStoreOptions {
  /** Directory of the store. Default `.titanic` (relative to the working directory), as the Guide. */
  dir?: string;
  /**
   * Flush every write to the device before acknowledging it. Default true. Without it, a power
   * loss (not a process crash) can lose acknowledged requests; it is faster.
   */
  fsync?: boolean;
}

const REQUEST = ".req";
const REPLY = ".rep";
const TEMP = ".tmp";
const DAMAGED = ".damaged";

/**
 * The filesystem store: in its directory, `<UUID>.req` holds `[service][stored at][body...]` (the
 * time of storage in ms, as decimal text, orders recovery) and `<UUID>.rep` the reply frames, each in core's checksummed frame-file format. Writes go to a
 * temporary file that is flushed and then renamed over the target, and the directory is flushed,
 * so a crash leaves the old file or the new one, never a torn one. Pending requests are the
 * `.req` files without a `.rep`, found by scanning the directory when the store opens: there is no
 * separate queue file that could disagree with them. Opening also removes leftover temporary
 * files and replies whose request is gone. A request file that fails its checksum is renamed
 * `<UUID>.req.damaged` and left for a person, so the others still resume.
 */
export class FileStore implements TitanicStore {
  readonly dir: string;
  readonly #fsync: boolean;

  constructor(options: FileStoreOptions = {}) {
    this.dir = options.dir ?? ".titanic";
    this.#fsync = options.fsync ?? true;
  }

  async open(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const names = new Set(await readdir(this.dir));
    for (const name of names) {
      if (name.endsWith(TEMP)) await rm(join(this.dir, name), { force: true });
      // A reply without its request: the request was closed and the crash came before the reply went.
      else if (name.endsWith(REPLY) && !names.has(name.slice(0, -REPLY.length) + REQUEST)) {
        await rm(join(this.dir, name), { force: true });
      }
    }
    await this.#syncDir();
  }

  async putRequest(request: StoredRequest): Promise<void> {
    const uuid = normalizeUuid(request.uuid);
    const frames = [
      Buffer.from(request.service),
      Buffer.from(String(request.storedAt)),
      ...request.body,
    ];
    await this.#write(uuid + REQUEST, encodeFrameFile(frames));
  }

  async getRequest(uuid: string): Promise<StoredRequest | undefined> {
    const id = normalizeUuid(uuid);
    const frames = await this.#read(id + REQUEST);
    if (!frames) return undefined;
    const [service, storedAt, ...body] = frames;
    const at = Number(storedAt?.toString());
    if (service === undefined || !Number.isFinite(at))
      throw new ProtocolError("request file malformed");
    return { uuid: id, service: service.toString(), storedAt: at, body };
  }

  async putReply(uuid: string, body: readonly Buffer[]): Promise<void> {
    const id = normalizeUuid(uuid);
    if ((await this.state(id)) === "unknown") return; // closed meanwhile
    await this.#write(id + REPLY, encodeFrameFile(body));
  }

  async getReply(uuid: string): Promise<Buffer[] | undefined> {
    const id = normalizeUuid(uuid);
    if (!(await exists(join(this.dir, id + REQUEST)))) return undefined;
    return this.#read(id + REPLY);
  }

  async state(uuid: string): Promise<EntryState> {
    const id = normalizeUuid(uuid);
    if (!(await exists(join(this.dir, id + REQUEST)))) return "unknown";
    return (await exists(join(this.dir, id + REPLY))) ? "done" : "pending";
  }

  async remove(uuid: string): Promise<void> {
    const id = normalizeUuid(uuid);
    // The request first: a crash between the two leaves an orphan reply, removed at the next open,
    // never a request that looks pending again.
    await rm(join(this.dir, id + REQUEST), { force: true });
    await rm(join(this.dir, id + REPLY), { force: true });
    await this.#syncDir();
  }

  async pending(): Promise<StoredRequest[]> {
    const names = new Set(await readdir(this.dir));
    const found: StoredRequest[] = [];
    for (const name of names) {
      if (!name.endsWith(REQUEST)) continue;
      const uuid = name.slice(0, -REQUEST.length);
      if (names.has(uuid + REPLY) || !isCanonical(uuid)) continue;
      let request: StoredRequest | undefined;
      try {
        request = await this.getRequest(uuid);
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw error;
        // A damaged request must not stop the others from resuming: it is set aside for a person.
        await rename(join(this.dir, name), join(this.dir, `${name}${DAMAGED}`));
        continue;
      }
      if (request) found.push(request);
    }
    return found.sort((a, b) => a.storedAt - b.storedAt || a.uuid.localeCompare(b.uuid));
  }

  async collect(policy: { maxAgeMs?: number; maxFinished?: number }): Promise<number> {
    const names = await readdir(this.dir);
    const finished: { uuid: string; at: number }[] = [];
    for (const name of names) {
      if (!name.endsWith(REPLY)) continue;
      const uuid = name.slice(0, -REPLY.length);
      if (!isCanonical(uuid) || !names.includes(uuid + REQUEST)) continue;
      const info = await statIfExists(join(this.dir, name));
      if (info) finished.push({ uuid, at: info.mtimeMs });
    }
    finished.sort((a, b) => a.at - b.at);
    const now = Date.now();
    let removed = 0;
    for (const [index, entry] of finished.entries()) {
      const tooOld = policy.maxAgeMs !== undefined && now - entry.at > policy.maxAgeMs;
      const tooMany =
        policy.maxFinished !== undefined && finished.length - index > policy.maxFinished;
      if (!tooOld && !tooMany) continue;
      await this.remove(entry.uuid);
      removed += 1;
    }
    return removed;
  }

  async close(): Promise<void> {}

  async #read(name: string): Promise<Buffer[] | undefined> {
    let data: Buffer;
    try {
      data = await readFile(join(this.dir, name));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw error;
    }
    return decodeFrameFile(data);
  }

  /** Temp file, flush, rename over the target, flush the directory. */
  async #write(name: string, data: Buffer): Promise<void> {
    const temp = join(this.dir, `${name}.${randomBytes(6).toString("hex")}${TEMP}`);
    try {
      const handle = await open(temp, "w");
      try {
        await handle.writeFile(data);
        if (this.#fsync) await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, join(this.dir, name));
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
    await this.#syncDir();
  }

  async #syncDir(): Promise<void> {
    if (!this.#fsync) return;
    const handle = await open(this.dir, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }
}

function isCanonical(uuid: string): boolean {
  return /^[0-9A-F]{32}$/.test(uuid);
}

/** The file's stat, or `undefined` when it does not exist; any other failure is thrown. */
async function statIfExists(path: string): Promise<Stats | undefined> {
  try {
    return await stat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

async function exists(path: string): Promise<boolean> {
  return (await statIfExists(path)) !== undefined;
}
