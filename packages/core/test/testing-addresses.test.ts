import { spawnSync } from "node:child_process";
import { existsSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { Dealer, Router } from "zeromq";
import { InvalidArgumentError } from "../src/errors.js";
import {
  allocateAddress,
  allocatePort,
  PORT_RANGE_END,
  PORT_RANGE_START,
  PORTS_PER_SLOT,
  type Transport,
} from "../src/testing/index.js";

/** Binds a Router and connects a Dealer on `address`, then checks a message goes through. */
async function roundTrip(address: string): Promise<void> {
  const router = new Router({ linger: 0 });
  const dealer = new Dealer({ linger: 0, routingId: "d1" });
  try {
    await router.bind(address);
    dealer.connect(address);
    await dealer.send(["hello"]);
    router.receiveTimeout = 2000;
    const [id, body] = await router.receive();
    expect(id?.toString()).toBe("d1");
    expect(body?.toString()).toBe("hello");
  } finally {
    dealer.close();
    router.close();
  }
}

describe("allocateAddress", () => {
  it("hands out unique tcp addresses, all bindable at once, in this process's slot", async () => {
    const addresses = await Promise.all(Array.from({ length: 40 }, () => allocateAddress()));
    expect(new Set(addresses).size).toBe(addresses.length);
    const ports = addresses.map((address) => {
      const match = /^tcp:\/\/127\.0\.0\.1:(\d+)$/.exec(address);
      expect(match).not.toBeNull();
      return Number(match?.[1]);
    });
    for (const port of ports) {
      expect(port).toBeGreaterThanOrEqual(PORT_RANGE_START);
      expect(port).toBeLessThan(PORT_RANGE_END);
    }
    // Every port comes from the same block of PORTS_PER_SLOT ports.
    const first = Math.floor((Math.min(...ports) - PORT_RANGE_START) / PORTS_PER_SLOT);
    const last = Math.floor((Math.max(...ports) - PORT_RANGE_START) / PORTS_PER_SLOT);
    expect(last).toBe(first);

    const routers = addresses.map(() => new Router({ linger: 0 }));
    try {
      await Promise.all(routers.map((router, i) => router.bind(addresses[i]!)));
      expect(routers.map((router) => router.lastEndpoint)).toEqual(addresses);
    } finally {
      for (const router of routers) router.close();
    }
  });

  it("allocatePort returns a port that a fresh call never repeats", async () => {
    const a = await allocatePort();
    const b = await allocatePort();
    expect(a).not.toBe(b);
    expect(Number.isInteger(a)).toBe(true);
  });

  it("skips a port that is in use", async () => {
    // The walk through the slot is sequential: occupy the port after the one just handed out.
    const previous = await allocatePort();
    const slotFirst =
      PORT_RANGE_START +
      Math.floor((previous - PORT_RANGE_START) / PORTS_PER_SLOT) * PORTS_PER_SLOT;
    const next = previous + 1 < slotFirst + PORTS_PER_SLOT ? previous + 1 : slotFirst + 1;
    const blocker = new Router({ linger: 0 });
    try {
      await blocker.bind(`tcp://127.0.0.1:${next}`);
      const port = await allocatePort();
      expect(port).not.toBe(next);
      expect(port).not.toBe(previous);
    } finally {
      blocker.close();
    }
  });

  it("two allocators (as in two processes) claim different slots", async () => {
    const ours = await allocatePort();
    vi.resetModules();
    const other = await import("../src/testing/addresses.js");
    const theirs = await other.allocatePort();
    const slotOf = (port: number) => Math.floor((port - PORT_RANGE_START) / PORTS_PER_SLOT);
    expect(slotOf(theirs)).not.toBe(slotOf(ours));
    // The first port of a slot is its claim and is never handed out.
    expect((theirs - PORT_RANGE_START) % PORTS_PER_SLOT).not.toBe(0);
  });

  it("fails clearly once the slot is used up", async () => {
    vi.resetModules();
    const fresh = await import("../src/testing/addresses.js");
    for (let i = 0; i < PORTS_PER_SLOT; i++) {
      try {
        await fresh.allocatePort();
      } catch {
        // Ports in use count against the slot too; the next call must fail regardless.
        break;
      }
    }
    await expect(fresh.allocatePort()).rejects.toThrow(/ports of this process's slot/);
  });

  it.each(["tcp", "ipc", "inproc"] as const)(
    "a Router/Dealer pair talks over %s",
    async (transport) => {
      const address = await allocateAddress(transport);
      expect(address.startsWith(`${transport}://`)).toBe(true);
      await roundTrip(address);
    },
  );

  it("ipc paths are short, unique and in the temporary directory", async () => {
    const paths = await Promise.all(Array.from({ length: 10 }, () => allocateAddress("ipc")));
    expect(new Set(paths).size).toBe(paths.length);
    for (const address of paths) {
      const path = address.slice("ipc://".length);
      expect(Buffer.byteLength(path)).toBeLessThanOrEqual(100);
      expect(path.startsWith(tmpdir()) || path.startsWith("/tmp/")).toBe(true);
    }
  });

  it("removes ipc socket files left by dead processes", async () => {
    const dead = spawnSync(process.execPath, ["-e", ""]).pid;
    const alive = process.ppid;
    const stale = join(tmpdir(), `zmqp-${dead.toString(36)}-1.sock`);
    const live = join(tmpdir(), `zmqp-${alive.toString(36)}-1.sock`);
    writeFileSync(stale, "");
    writeFileSync(live, "");
    try {
      vi.resetModules();
      const fresh = await import("../src/testing/addresses.js");
      await fresh.allocateAddress("ipc");
      expect(existsSync(stale)).toBe(false);
      expect(existsSync(live)).toBe(true);
    } finally {
      rmSync(stale, { force: true });
      rmSync(live, { force: true });
    }
  });

  it("inproc names are unique", async () => {
    const names = await Promise.all(Array.from({ length: 10 }, () => allocateAddress("inproc")));
    expect(new Set(names).size).toBe(names.length);
  });

  it("rejects an unknown transport", async () => {
    await expect(allocateAddress("udp" as Transport)).rejects.toBeInstanceOf(InvalidArgumentError);
  });
});
