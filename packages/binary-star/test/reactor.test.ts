import { InvalidArgumentError, identityKey, ProtocolError, TimeoutError } from "@zmq-patterns/core";
import { allocateAddress, Tap } from "@zmq-patterns/core/testing";
import { afterEach, describe, expect, it } from "vitest";
import {
  BinaryStar,
  BinaryStarFatalError,
  type BinaryStarOptions,
  type BinaryStarRole,
  type BinaryStarVoter,
} from "../src/index.js";
import {
  B,
  closeTracked,
  E,
  echo,
  expectBindable,
  FakePeer,
  HB,
  nextEvent,
  nextReply,
  pairEndpoints,
  type Recorded,
  record,
  StateTap,
  startPair,
  startServer,
  texts,
  track,
  vote,
  voterClient,
  voteUntilAnswered,
  waitFor,
} from "./support.js";

afterEach(closeTracked);

/** Peer expiry where the test sends votes the server must reject: ten heartbeats of slack. */
const EXPIRY = 10 * HB;

/** A server that heard `digit` from a fake peer and went where that takes it. */
async function drive(
  server: BinaryStar,
  peer: FakePeer,
  digit: string,
  event: "active" | "passive",
): Promise<void> {
  const entered = nextEvent(server, event);
  await peer.announce([digit]);
  await entered;
  await peer.stop();
}

/** The request envelope the bundled echo server insists on: `[id, "", body...]`. */
function requireEnvelope(message: Buffer[]): void {
  if (message.length < 3 || message[1]?.byteLength !== 0) {
    throw new ProtocolError("not a request envelope");
  }
}

describe("BinaryStar on the wire", () => {
  it("1.12.2 publishes one single-frame state digit per heartbeat", async () => {
    const server = await startServer({ role: "primary", heartbeatIntervalMs: HB });
    const tap = StateTap.connect(server.endpoints.localState);
    await tap.next(); // subscribed
    // Count what arrives in a window of 15 heartbeats. The bounds allow for messages read late
    // at either edge of the window and for timers running late on a loaded machine, but not
    // for two messages per beat, nor for a slower default pace.
    const windowMs = 15 * HB;
    const messages: Buffer[][] = [];
    const start = performance.now();
    for (;;) {
      const left = start + windowMs - performance.now();
      if (left <= 0) break;
      try {
        messages.push(await tap.next(Math.ceil(left)));
      } catch (error) {
        if (!(error instanceof TimeoutError)) throw error;
      }
    }
    expect(messages.length).toBeGreaterThanOrEqual(5);
    expect(messages.length).toBeLessThanOrEqual(15 + 4);
    expect(messages.map(texts)).toEqual(messages.map(() => ["1"]));
    expect(server.stats().stateMessagesSent).toBeGreaterThanOrEqual(messages.length + 1);
  });

  it("1.12.2 the digit follows the state: 2 while the backup waits, then 4 and 3 once paired", async () => {
    const endpoints = await pairEndpoints();
    const backupTap = StateTap.connect(endpoints.backup.localState);
    const primaryTap = StateTap.connect(endpoints.primary.localState);
    const backup = await startServer({ role: "backup", ...endpoints.backup });
    expect(texts((await backupTap.until("2")).at(-1) ?? [])).toEqual(["2"]);
    const primary = await startServer({ role: "primary", ...endpoints.primary });
    const fromBackup = await backupTap.until("4");
    const fromPrimary = await primaryTap.until("3");
    // Every message is one frame; the backup says BACKUP until it is PASSIVE, the primary says
    // at most PRIMARY before ACTIVE.
    for (const frames of [...fromBackup, ...fromPrimary]) expect(frames).toHaveLength(1);
    expect(fromBackup.slice(0, -1).every((frames) => String(frames[0]) === "2")).toBe(true);
    expect(fromPrimary.slice(0, -1).every((frames) => String(frames[0]) === "1")).toBe(true);
    expect(primary.state).toBe("ACTIVE");
    expect(backup.state).toBe("PASSIVE");
    expect(texts(await backupTap.next())).toEqual(["4"]);
    expect(texts(await primaryTap.next())).toEqual(["3"]);
  });
});

describe("BinaryStar alone", () => {
  it("1.12.3 the primary alone drops votes within the peer expiry; the first vote after it is served, after 'active'", async () => {
    const expiry = 1500;
    const events: string[] = [];
    const startedBefore = performance.now();
    const server = await startServer({
      role: "primary",
      heartbeatIntervalMs: 200,
      peerExpiryMs: expiry,
      handler: (message, voter) => {
        events.push(`handler ${String(message.at(-1))}`);
        voter.send(message);
      },
    });
    server.on("active", () => events.push("active"));
    const states = record(server, "state", "active", "rejected");
    const client = await voterClient(server.endpoints.voter);

    const rejected = nextEvent(server, "rejected");
    await vote(client, 1);
    expect(await rejected).toEqual({ state: "PRIMARY", from: expect.any(String) });
    expect(server.state).toBe("PRIMARY");

    const { answered, last, at } = await voteUntilAnswered(client, {
      first: 2,
      timeoutMs: 10_000,
    });
    // The machine's expiry began inside start(), after startedBefore.
    expect(at - startedBefore).toBeGreaterThanOrEqual(expiry);
    expect(server.state).toBe("ACTIVE");
    const stats = server.stats();
    expect(stats.requestsRejected).toBe(answered - 1);
    // Votes sent after the first answered one (a slow reply) were accepted as well.
    expect(stats.requestsAccepted).toBe(last - answered + 1);
    expect(states.filter((e) => e.event === "rejected")).toHaveLength(answered - 1);
    const handled = Array.from(
      { length: last - answered + 1 },
      (_, i) => `handler ${answered + i}`,
    );
    expect(events).toEqual(["active", ...handled]);
    expect(states.filter((e) => e.event === "state").map((e) => e.payload)).toEqual([
      { from: "PRIMARY", to: "ACTIVE", reason: "client vote, peer silent" },
    ]);

    // Active for good: more votes are echoed, 'active' is not emitted again.
    for (const sequence of [answered + 1, answered + 2]) {
      await vote(client, sequence);
      expect(await nextReply(client)).toBe(String(sequence));
    }
    expect(events.filter((e) => e === "active")).toHaveLength(1);
    expect(server.stats().requestsAccepted).toBe(3);
  });

  it("1.12.4 the backup alone never replies and stays BACKUP, even long after the peer expiry", async () => {
    const server = await startServer({ role: "backup", peerExpiryMs: 3 * HB });
    const log = record(server, "state", "active", "passive");
    const client = await voterClient(server.endpoints.voter);
    await vote(client, 1);
    await waitFor(() => server.stats().peerExpiresInMs === 0, "the peer expiry passing");
    for (let sequence = 2; sequence <= 5; sequence++) {
      const rejected = nextEvent(server, "rejected");
      await vote(client, sequence);
      expect(await rejected).toMatchObject({ state: "BACKUP" });
    }
    await client.expectNothing(3 * HB);
    expect(server.state).toBe("BACKUP");
    expect(server.isActive).toBe(false);
    expect(server.stats()).toMatchObject({ requestsRejected: 5, requestsAccepted: 0 });
    expect(log).toEqual([]);
  });
});

describe("BinaryStar pair", () => {
  it.each(["primary", "backup"] as const)(
    "1.12.5 started with the %s first, the pair settles as primary ACTIVE, backup PASSIVE",
    async (first) => {
      const endpoints = await pairEndpoints();
      const second: BinaryStarRole = first === "primary" ? "backup" : "primary";
      const options = { peerExpiryMs: EXPIRY };
      const servers: Partial<Record<BinaryStarRole, BinaryStar>> = {};
      const logs: Partial<Record<BinaryStarRole, Recorded[]>> = {};
      for (const role of [first, second]) {
        const server = await startServer({ ...options, role, ...endpoints[role] });
        // Attached before any message can be read: no transition is missed.
        logs[role] = record(server, "state", "active", "passive", "fatal");
        servers[role] = server;
        await waitFor(() => server.stats().stateMessagesSent >= 2, `${role} heartbeating`);
      }
      const { primary, backup } = servers as Record<BinaryStarRole, BinaryStar>;
      const { primary: logP, backup: logBk } = logs as Record<BinaryStarRole, Recorded[]>;
      await waitFor(
        () => primary.state === "ACTIVE" && backup.state === "PASSIVE",
        "ACTIVE/PASSIVE",
      );
      expect(logP.map(({ event, payload }) => ({ event, payload }))).toEqual([
        { event: "state", payload: { from: "PRIMARY", to: "ACTIVE", reason: "peer is passive" } },
        { event: "active", payload: { from: "PRIMARY", reason: "peer is passive" } },
      ]);
      expect(logBk.map(({ event, payload }) => ({ event, payload }))).toEqual([
        { event: "state", payload: { from: "BACKUP", to: "PASSIVE", reason: "peer is active" } },
        { event: "passive", payload: { from: "BACKUP", reason: "peer is active" } },
      ]);
      expect(primary.isActive).toBe(true);
      expect(backup.isActive).toBe(false);

      // The active serves; the passive drops votes while its peer is heard.
      const toPrimary = await voterClient(primary.endpoints.voter);
      await vote(toPrimary, 1);
      expect(await nextReply(toPrimary)).toBe("1");
      const toBackup = await voterClient(backup.endpoints.voter);
      const rejected = nextEvent(backup, "rejected");
      await vote(toBackup, 1);
      expect(await rejected).toMatchObject({ state: "PASSIVE" });
      await toBackup.expectNothing(3 * HB);
      expect(backup.state).toBe("PASSIVE");
    },
  );

  it("1.12.6 the active primary goes away: the backup drops votes until the peer expiry, then takes over", async () => {
    const { primary, backup } = await startPair({ peerExpiryMs: EXPIRY });
    const log = record(backup, "active", "fatal");
    const client = await voterClient(backup.endpoints.voter);
    await primary.close();
    const closedAt = performance.now();
    // Later heartbeats still in flight can only push the expiry further away.
    const earliest = closedAt + backup.stats().peerExpiresInMs;

    const rejected = nextEvent(backup, "rejected");
    await vote(client, 1);
    expect(await rejected).toMatchObject({ state: "PASSIVE" });
    const { answered, last, at } = await voteUntilAnswered(client, {
      first: 2,
      timeoutMs: 10_000,
    });
    expect(at).toBeGreaterThanOrEqual(earliest - 1);
    expect(at - closedAt).toBeLessThan(EXPIRY + 5000);
    expect(backup.state).toBe("ACTIVE");
    expect(backup.stats()).toMatchObject({
      requestsRejected: answered - 1,
      requestsAccepted: last - answered + 1,
    });
    expect(log.map(({ event, payload }) => ({ event, payload }))).toEqual([
      { event: "active", payload: { from: "PASSIVE", reason: "client vote, peer silent" } },
    ]);
  });

  it("1.12.7 the primary restarted while the backup is ACTIVE comes back PASSIVE, without a fatal error", async () => {
    const { primary, backup, endpoints } = await startPair({ peerExpiryMs: EXPIRY });
    const client = await voterClient(backup.endpoints.voter);
    await primary.close();
    await voteUntilAnswered(client, { timeoutMs: 10_000 });
    expect(backup.state).toBe("ACTIVE");
    const backupLog = record(backup, "state", "fatal");

    const restarted = await startServer({
      role: "primary",
      peerExpiryMs: EXPIRY,
      ...endpoints.primary,
    });
    const primaryLog = record(restarted, "state", "fatal");
    expect(await nextEvent(restarted, "passive")).toEqual({
      from: "PRIMARY",
      reason: "peer is active",
    });
    // Both keep hearing each other for a while: the backup ignores PRIMARY and PASSIVE.
    const received = backup.stats().stateMessagesReceived;
    await waitFor(
      () => backup.stats().stateMessagesReceived >= received + 5,
      "the backup hearing the restarted primary",
    );
    expect(backupLog).toEqual([]);
    expect(primaryLog.map((e) => e.event)).toEqual(["state"]);
    expect([backup.state, restarted.state]).toEqual(["ACTIVE", "PASSIVE"]);
    expect([backup.fatal, restarted.fatal]).toEqual([null, null]);

    // Still served by the backup; the restarted primary drops votes.
    await vote(client, "after");
    expect(await nextReply(client)).toBe("after");
    const toPrimary = await voterClient(restarted.endpoints.voter);
    const rejected = nextEvent(restarted, "rejected");
    await vote(toPrimary, 1);
    expect(await rejected).toMatchObject({ state: "PASSIVE" });
  });

  it("1.12.7 the primary restarted while the backup is PASSIVE: roles swap, backup ACTIVE, primary PASSIVE", async () => {
    const { primary, backup, endpoints } = await startPair({ peerExpiryMs: EXPIRY });
    const backupActive = nextEvent(backup, "active");
    const fatal = record(backup, "fatal");
    await primary.close();
    const restarted = await startServer({
      role: "primary",
      peerExpiryMs: EXPIRY,
      ...endpoints.primary,
    });
    const restartedPassive = nextEvent(restarted, "passive");
    expect(await backupActive).toEqual({ from: "PASSIVE", reason: "peer is restarting" });
    expect(await restartedPassive).toEqual({ from: "PRIMARY", reason: "peer is active" });
    expect([backup.state, restarted.state]).toEqual(["ACTIVE", "PASSIVE"]);
    expect(fatal).toEqual([]);
    const client = await voterClient(backup.endpoints.voter);
    await vote(client, 7);
    expect(await nextReply(client)).toBe("7");
  });
});

describe("BinaryStar with a fake peer", () => {
  it.each([
    ["backup", "1"],
    ["backup", "2"],
    ["primary", "1"],
    ["primary", "2"],
  ] as const)(
    "1.12.8 a passive %s becomes ACTIVE when the peer announces %s (restarting)",
    async (role, digit) => {
      const peer = await FakePeer.start();
      const server = await startServer({ role, remoteState: peer.endpoint });
      await drive(server, peer, "3", "passive");
      expect(server.state).toBe("PASSIVE");
      const active = nextEvent(server, "active");
      await peer.announce([digit]);
      expect(await active).toEqual({ from: "PASSIVE", reason: "peer is restarting" });
      expect(server.state).toBe("ACTIVE");
      const client = await voterClient(server.endpoints.voter);
      await vote(client, 1);
      expect(await nextReply(client)).toBe("1");
    },
  );

  it("1.12.9 an ACTIVE server hearing ACTIVE stops with a dual-active BinaryStarFatalError", async () => {
    const peer = await FakePeer.start();
    const server = await startServer({ role: "primary", remoteState: peer.endpoint });
    await drive(server, peer, "2", "active");
    const client = await voterClient(server.endpoints.voter);
    await vote(client, 1);
    expect(await nextReply(client)).toBe("1");

    const fatals = record(server, "fatal");
    const fatal = nextEvent(server, "fatal");
    await peer.announce(["3"]);
    const error = await fatal;
    expect(error).toBeInstanceOf(BinaryStarFatalError);
    expect(error).toMatchObject({ reason: "dual-active", state: "ACTIVE", peerState: "ACTIVE" });
    expect(error.message).toMatch(/dual active/);
    expect(server.fatal).toBe(error);
    expect(server.isActive).toBe(false);

    // Closed: it serves nobody and its ports are free, however long the peer insists.
    await server.close();
    await vote(client, 2);
    await client.expectNothing(3 * HB);
    await expectBindable(server.endpoints.voter);
    await expectBindable(server.endpoints.localState);
    expect(fatals).toHaveLength(1);
  });

  it("1.12.9 a PASSIVE server hearing PASSIVE stops with a dual-passive BinaryStarFatalError", async () => {
    const peer = await FakePeer.start();
    const server = await startServer({ role: "backup", remoteState: peer.endpoint });
    await drive(server, peer, "3", "passive");
    const fatal = nextEvent(server, "fatal");
    await peer.announce(["4"]);
    const error = await fatal;
    expect(error).toBeInstanceOf(BinaryStarFatalError);
    expect(error).toMatchObject({ reason: "dual-passive", state: "PASSIVE", peerState: "PASSIVE" });
    expect(error.message).toMatch(/dual passive/);
    expect(server.fatal).toBe(error);
    await expectBindable(server.endpoints.voter);
  });

  it("1.12.10 / 1.11.3 invalid peer frames are counted and dropped: no crash, no liveness, never a vote", async () => {
    const peer = await FakePeer.start();
    const expiry = 5 * HB;
    const server = await startServer({
      role: "primary",
      peerExpiryMs: expiry,
      remoteState: peer.endpoint,
    });
    await drive(server, peer, "3", "passive");
    const drops = record(server, "dropped");
    const reasons = new Set<string>();
    const allSeen = new Promise<void>((resolve) =>
      server.on("dropped", ({ reason }) => {
        reasons.add(reason);
        if (reasons.size === 3) resolve();
      }),
    );
    // "3" then "3" in two frames must not pass for ACTIVE: once this server is active that
    // would be a dual-active fatal error.
    await peer.announce(["5", "x", "", "33", ["3", "3"], "0", "13", [E, "3"]], 10);
    await allSeen;
    expect(reasons).toEqual(
      new Set(["unknown state", "state frame is empty", "unexpected 1 extra frame(s)"]),
    );
    for (const { payload } of drops) expect(payload).toMatchObject({ side: "peer", from: "" });
    const received = server.stats().stateMessagesReceived;

    // Garbage streams on, yet the peer counts as silent: a vote fails over.
    const client = await voterClient(server.endpoints.voter);
    const active = nextEvent(server, "active");
    await voteUntilAnswered(client, { timeoutMs: 10_000 });
    expect(await active).toEqual({ from: "PASSIVE", reason: "client vote, peer silent" });

    const dropped = server.stats().dropped;
    await waitFor(
      () => Object.values(server.stats().dropped).reduce((a, b) => a + b, 0) >= sum(dropped) + 16,
      "more garbage dropped while active",
    );
    const stats = server.stats();
    expect(stats.stateMessagesReceived).toBe(received);
    expect(stats.state).toBe("ACTIVE");
    expect(server.fatal).toBeNull();
    expect(Object.keys(stats.dropped).sort()).toEqual(
      ["state frame is empty", "unexpected 1 extra frame(s)", "unknown state"].sort(),
    );
    expect(stats.dropped["unknown state"]).toBeGreaterThan(
      stats.dropped["state frame is empty"] ?? 0,
    );
    await vote(client, "still");
    expect(await nextReply(client)).toBe("still");
  });

  it("1.11.5 the peer announcing our own role emits 'misconfigured' once, and again only after it said something else", async () => {
    const peer = await FakePeer.start();
    const server = await startServer({ role: "backup", remoteState: peer.endpoint });
    const log = record(server, "misconfigured");
    const first = nextEvent(server, "misconfigured");
    await peer.announce(["2"]);
    expect(await first).toEqual({ state: "BACKUP", peerState: "BACKUP" });
    const received = server.stats().stateMessagesReceived;
    await waitFor(
      () => server.stats().stateMessagesReceived >= received + 5,
      "more BACKUP announcements",
    );
    expect(log).toHaveLength(1);
    await peer.announce(["1"]);
    await waitFor(
      () => server.stats().stateMessagesReceived >= received + 8,
      "PRIMARY announcements",
    );
    const again = nextEvent(server, "misconfigured");
    await peer.announce(["2"]);
    await again;
    expect(log).toHaveLength(2);
    expect(server.state).toBe("BACKUP");
  });
});

describe("BinaryStar misconfigured pair", () => {
  it.each(["primary", "backup"] as const)(
    "1.11.5 two %s servers report 'misconfigured' once each, and neither serves",
    async (role) => {
      const endpoints = await pairEndpoints();
      const options = { role, peerExpiryMs: EXPIRY };
      const a = await startServer({ ...options, ...endpoints.primary });
      const logA = record(a, "misconfigured", "state", "fatal");
      const b = await startServer({ ...options, ...endpoints.backup });
      const logB = record(b, "misconfigured", "state", "fatal");
      // Well past the expiry that began at start: only the peer's heartbeats keep it away.
      await waitFor(
        () => a.stats().stateMessagesReceived >= 15 && b.stats().stateMessagesReceived >= 15,
        "both servers hearing each other",
      );
      const state = role === "primary" ? "PRIMARY" : "BACKUP";
      for (const [server, log] of [
        [a, logA],
        [b, logB],
      ] as const) {
        const client = await voterClient(server.endpoints.voter);
        const rejected = nextEvent(server, "rejected");
        await vote(client, 1);
        expect(await rejected).toMatchObject({ state });
        await client.expectNothing(2 * HB);
        expect(server.state).toBe(state);
        expect(log.map(({ event, payload }) => ({ event, payload }))).toEqual([
          { event: "misconfigured", payload: { state, peerState: state } },
        ]);
      }
    },
  );
});

describe("BinaryStar voter", () => {
  it("garbage on the voter is counted and dropped, is not a vote, and good requests are still served", async () => {
    const handled: string[] = [];
    const server = await startServer({
      role: "primary",
      peerExpiryMs: 3 * HB,
      validateRequest: (message) => {
        requireEnvelope(message);
        if (String(message[2]) === "boom") throw new Error("boom");
      },
      handler: (message, voter) => {
        handled.push(String(message[2]));
        voter.send(message);
      },
    });
    const log = record(server, "state", "rejected");
    await waitFor(() => server.stats().peerExpiresInMs === 0, "the peer expiry passing");
    const junk = track(await Tap.dealer(server.endpoints.voter, { routingId: "junk" }));
    const junkKey = identityKey(B("junk"));

    // Past the expiry, any vote would make the primary active: garbage must not.
    let dropped = nextEvent(server, "dropped");
    await junk.send(["no envelope"]);
    expect(await dropped).toEqual({
      reason: "not a request envelope",
      side: "voter",
      from: junkKey,
    });
    dropped = nextEvent(server, "dropped");
    await junk.send([E, "boom"]);
    expect(await dropped).toEqual({ reason: "undecodable message", side: "voter", from: junkKey });
    expect(server.state).toBe("PRIMARY");
    expect(log).toEqual([]);
    await junk.expectNothing(2 * HB);

    const client = await voterClient(server.endpoints.voter);
    await vote(client, 1);
    expect(await nextReply(client)).toBe("1");
    expect(server.state).toBe("ACTIVE");

    // Active: garbage still never reaches the handler; good requests around it are served.
    dropped = nextEvent(server, "dropped");
    await junk.send([B("a"), B("b"), B("c")]);
    await dropped;
    await vote(client, 2);
    expect(await nextReply(client)).toBe("2");
    expect(handled).toEqual(["1", "2"]);
    expect(server.stats()).toMatchObject({
      requestsAccepted: 2,
      requestsRejected: 0,
      dropped: { "not a request envelope": 2, "undecodable message": 1 },
    });
  });

  it("a handler that throws or rejects is counted in handlerErrors and the server keeps serving", async () => {
    const peer = await FakePeer.start();
    const server = await startServer({
      role: "primary",
      remoteState: peer.endpoint,
      handler: async (message, voter) => {
        const body = String(message.at(-1));
        if (body === "throw") throw new Error("thrown");
        if (body === "reject") return Promise.reject(new Error("rejected"));
        voter.send(message);
      },
    });
    await drive(server, peer, "2", "active");
    const client = await voterClient(server.endpoints.voter);
    await vote(client, "throw");
    await vote(client, "reject");
    await vote(client, "ok");
    expect(await nextReply(client)).toBe("ok");
    await waitFor(() => server.stats().handlerErrors === 2, "two handler errors");
    expect(server.stats()).toMatchObject({ requestsAccepted: 3, handlerErrors: 2 });
    expect(server.isActive).toBe(true);
  });

  it("a synchronously throwing handler does not stop the voter", async () => {
    const peer = await FakePeer.start();
    const server = await startServer({
      role: "primary",
      remoteState: peer.endpoint,
      handler: (message, voter) => {
        if (String(message.at(-1)) === "throw") throw new Error("thrown");
        voter.send(message);
      },
    });
    await drive(server, peer, "2", "active");
    const client = await voterClient(server.endpoints.voter);
    await vote(client, "throw");
    await vote(client, "ok");
    expect(await nextReply(client)).toBe("ok");
    expect(server.stats().handlerErrors).toBe(1);
  });

  it("1.11.4 onReject can answer a rejected request explicitly; a failing onReject is counted", async () => {
    const server = await startServer({
      role: "backup",
      onReject: (message, voter, state) => {
        if (String(message.at(-1)) === "throw") throw new Error("onReject failed");
        voter.send([message[0] as Buffer, E, `not active (${state})`]);
      },
    });
    const client = await voterClient(server.endpoints.voter);
    const rejected = nextEvent(server, "rejected");
    await vote(client, 1);
    expect(await rejected).toMatchObject({ state: "BACKUP" });
    expect(await nextReply(client)).toBe("not active (BACKUP)");
    await vote(client, "throw");
    await vote(client, 3);
    expect(await nextReply(client)).toBe("not active (BACKUP)");
    expect(server.stats()).toMatchObject({
      requestsRejected: 3,
      requestsAccepted: 0,
      handlerErrors: 1,
    });
  });

  it("voter.send refuses when the send queue is full (counted) and once closed (not counted)", async () => {
    let voter: BinaryStarVoter | undefined;
    const results: boolean[] = [];
    const server = await startServer({
      role: "backup",
      sendCapacity: 1,
      onReject: (message, v) => {
        voter = v;
        for (const body of ["a", "b", "c"]) results.push(v.send([message[0] as Buffer, E, body]));
      },
    });
    const client = await voterClient(server.endpoints.voter, "tight");
    const drops = record(server, "dropped");
    await vote(client, 1);
    expect(await nextReply(client)).toBe("a");
    expect(results).toEqual([true, false, false]);
    expect(drops.map((e) => e.payload)).toEqual(
      Array.from({ length: 2 }, () => ({
        reason: "voter queue full",
        side: "voter",
        from: identityKey(B("tight")),
      })),
    );
    await client.expectNothing(2 * HB);
    await server.close();
    expect(voter?.send([B("tight"), E, "late"])).toBe(false);
    expect(server.stats().dropped).toEqual({ "voter queue full": 2 });
  });

  it("1.11.4 by default a rejected request gets no reply at all", async () => {
    const server = await startServer({ role: "backup" });
    const client = await voterClient(server.endpoints.voter);
    const rejected = nextEvent(server, "rejected");
    await vote(client, 1);
    await rejected;
    await client.expectNothing(3 * HB);
  });
});

describe("BinaryStar options and lifecycle", () => {
  it("rejects bad options with InvalidArgumentError before opening anything", async () => {
    const [voter, localState, remoteState] = [
      await allocateAddress(),
      await allocateAddress(),
      await allocateAddress(),
    ];
    const good: BinaryStarOptions = {
      role: "primary",
      handler: echo,
      voter,
      localState,
      remoteState,
      heartbeatIntervalMs: HB,
    };
    const bad: Array<[string, Record<string, unknown>]> = [
      ["role", { role: "master" }],
      ["role", { role: undefined }],
      ["handler", { handler: undefined }],
      ["handler", { handler: "echo" }],
      ["voter", { voter: "nowhere" }],
      ["localState", { localState: "tcp://127.0.0.1" }],
      ["remoteState", { remoteState: 5004 }],
      ["heartbeatIntervalMs", { heartbeatIntervalMs: 0 }],
      ["heartbeatIntervalMs", { heartbeatIntervalMs: Number.NaN }],
      ["peerExpiryMs", { peerExpiryMs: HB }],
      ["peerExpiryMs", { peerExpiryMs: HB - 1 }],
      ["peerExpiryMs", { heartbeatIntervalMs: 2000, peerExpiryMs: 1500 }],
      ["sendCapacity", { sendCapacity: 0 }],
    ];
    for (const [name, change] of bad) {
      const error = await BinaryStar.start({ ...good, ...change } as BinaryStarOptions).then(
        (server) => {
          void server.close();
          return new Error(`accepted ${JSON.stringify(change)}`);
        },
        (e: unknown) => e,
      );
      expect(error, name).toBeInstanceOf(InvalidArgumentError);
    }
    // Nothing was bound along the way.
    await expectBindable(voter);
    await expectBindable(localState);
  });

  it("close() is idempotent and stops heartbeats and serving", async () => {
    const server = await startServer({ role: "backup" });
    const tap = StateTap.connect(server.endpoints.localState);
    await tap.next();
    const first = server.close();
    expect(server.close()).toBe(first);
    await first;
    await server.close();
    expect(server.isActive).toBe(false);
    const sent = server.stats().stateMessagesSent;
    // Absence: no heartbeat for several intervals.
    await new Promise((resolve) => setTimeout(resolve, 4 * HB));
    expect(server.stats().stateMessagesSent).toBe(sent);
    await expectBindable(server.endpoints.voter);
    await expectBindable(server.endpoints.localState);
  });

  it("a port in use makes start() reject and leaves nothing open", async () => {
    const squatter = track(await Tap.router());
    const voter = await allocateAddress();
    const options = (change: Partial<BinaryStarOptions>): BinaryStarOptions => ({
      role: "primary",
      handler: echo,
      heartbeatIntervalMs: HB,
      voter,
      localState: squatter.endpoint,
      remoteState: squatter.endpoint,
      ...change,
    });
    // The voter binds first, then the state publisher fails: the voter must be released.
    await expect(BinaryStar.start(options({}))).rejects.toMatchObject({ code: "EADDRINUSE" });
    await expectBindable(voter);
    const localState = await allocateAddress();
    await expect(
      BinaryStar.start(options({ voter: squatter.endpoint, localState })),
    ).rejects.toMatchObject({ code: "EADDRINUSE" });
    await expectBindable(localState);
    // And a good start on the very same addresses works.
    const remoteState = await allocateAddress();
    const server = await startServer(options({ localState, remoteState }));
    expect(server.state).toBe("PRIMARY");
    expect(server.endpoints).toEqual({ voter, localState, remoteState });
  });
});

function sum(counts: Record<string, number>): number {
  return Object.values(counts).reduce((a, b) => a + b, 0);
}
