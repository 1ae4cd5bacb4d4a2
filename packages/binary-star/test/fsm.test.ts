import { InvalidArgumentError } from "@zmq-patterns/core";
import { ManualClock } from "@zmq-patterns/core/testing";
import { describe, expect, it } from "vitest";
import {
  BINARY_STAR_EVENTS,
  BINARY_STAR_STATES,
  type BinaryStarEvent,
  BinaryStarMachine,
  type BinaryStarState,
  DEFAULT_PEER_EXPIRY_MS,
  initialState,
  peerEvent,
  peerExpiryAfter,
  type StepResult,
  step,
} from "../src/index.js";

/** The peer is still heard: the vote arrives 1 ms before the expiry. */
const FRESH = { now: 1999, peerExpiry: 2000 };
/** The peer has been silent exactly for the expiry: `now >= peerExpiry` (spec 1.5.3). */
const EXPIRED = { now: 2000, peerExpiry: 2000 };

type Expected =
  | { state: BinaryStarState; entered?: "active" | "passive"; accept?: boolean; warn?: true }
  | { fatal: "dual-active" | "dual-passive" };

/**
 * Spec 1.5.1, one row per (state, event, expiry) and a row id for test names. Peer events are
 * checked with both contexts: their outcome must not depend on the expiry.
 */
const TABLE: [
  id: string,
  BinaryStarState,
  BinaryStarEvent,
  "any" | "fresh" | "expired",
  Expected,
][] = [
  ["T01", "PRIMARY", "PEER_PRIMARY", "any", { state: "PRIMARY", warn: true }],
  ["T02", "PRIMARY", "PEER_BACKUP", "any", { state: "ACTIVE", entered: "active" }],
  ["T03", "PRIMARY", "PEER_ACTIVE", "any", { state: "PASSIVE", entered: "passive" }],
  ["T04", "PRIMARY", "PEER_PASSIVE", "any", { state: "PRIMARY" }],
  ["T05", "PRIMARY", "CLIENT_REQUEST", "fresh", { state: "PRIMARY", accept: false }],
  [
    "T06",
    "PRIMARY",
    "CLIENT_REQUEST",
    "expired",
    { state: "ACTIVE", entered: "active", accept: true },
  ],
  ["T07", "BACKUP", "PEER_PRIMARY", "any", { state: "BACKUP" }],
  ["T08", "BACKUP", "PEER_BACKUP", "any", { state: "BACKUP", warn: true }],
  ["T09", "BACKUP", "PEER_ACTIVE", "any", { state: "PASSIVE", entered: "passive" }],
  ["T10", "BACKUP", "PEER_PASSIVE", "any", { state: "BACKUP" }],
  ["T11", "BACKUP", "CLIENT_REQUEST", "fresh", { state: "BACKUP", accept: false }],
  ["T12", "BACKUP", "CLIENT_REQUEST", "expired", { state: "BACKUP", accept: false }],
  ["T13", "ACTIVE", "PEER_PRIMARY", "any", { state: "ACTIVE" }],
  ["T14", "ACTIVE", "PEER_BACKUP", "any", { state: "ACTIVE" }],
  ["T15", "ACTIVE", "PEER_ACTIVE", "any", { fatal: "dual-active" }],
  ["T16", "ACTIVE", "PEER_PASSIVE", "any", { state: "ACTIVE" }],
  ["T17", "ACTIVE", "CLIENT_REQUEST", "fresh", { state: "ACTIVE", accept: true }],
  ["T18", "ACTIVE", "CLIENT_REQUEST", "expired", { state: "ACTIVE", accept: true }],
  ["T19", "PASSIVE", "PEER_PRIMARY", "any", { state: "ACTIVE", entered: "active" }],
  ["T20", "PASSIVE", "PEER_BACKUP", "any", { state: "ACTIVE", entered: "active" }],
  ["T21", "PASSIVE", "PEER_ACTIVE", "any", { state: "PASSIVE" }],
  ["T22", "PASSIVE", "PEER_PASSIVE", "any", { fatal: "dual-passive" }],
  ["T23", "PASSIVE", "CLIENT_REQUEST", "fresh", { state: "PASSIVE", accept: false }],
  [
    "T24",
    "PASSIVE",
    "CLIENT_REQUEST",
    "expired",
    { state: "ACTIVE", entered: "active", accept: true },
  ],
];

function expectedResult(from: BinaryStarState, event: BinaryStarEvent, e: Expected): StepResult {
  if ("fatal" in e) return { type: "fatal", state: from, reason: e.fatal };
  return {
    type: "next",
    state: e.state,
    entered: e.entered ?? null,
    accept: event === "CLIENT_REQUEST" ? (e.accept ?? null) : null,
    warning: e.warn ? "misconfigured" : null,
  };
}

describe("step(): the complete transition table (spec 1.5.1, checklist 1.12.1)", () => {
  it("covers every state x event, and both expiry sides for CLIENT_REQUEST", () => {
    for (const state of BINARY_STAR_STATES) {
      for (const event of BINARY_STAR_EVENTS) {
        const rows = TABLE.filter(([, s, e]) => s === state && e === event);
        const when = rows.map(([, , , w]) => w).sort();
        expect(when, `${state} x ${event}`).toEqual(
          event === "CLIENT_REQUEST" ? ["expired", "fresh"] : ["any"],
        );
      }
    }
    expect(TABLE).toHaveLength(24);
  });

  it.each(TABLE)("1.5.1/%s: %s + %s (%s peer expiry)", (_id, from, event, when, expected) => {
    const contexts = when === "fresh" ? [FRESH] : when === "expired" ? [EXPIRED] : [FRESH, EXPIRED];
    for (const context of contexts) {
      expect(step(from, event, context)).toEqual(expectedResult(from, event, expected));
    }
  });

  it("1.12.9: ACTIVE + PEER_ACTIVE is fatal 'dual-active', PASSIVE + PEER_PASSIVE 'dual-passive'", () => {
    expect(step("ACTIVE", "PEER_ACTIVE", EXPIRED)).toEqual({
      type: "fatal",
      state: "ACTIVE",
      reason: "dual-active",
    });
    expect(step("PASSIVE", "PEER_PASSIVE", FRESH)).toEqual({
      type: "fatal",
      state: "PASSIVE",
      reason: "dual-passive",
    });
  });

  it("1.11.3: no vote is ever fatal, in any state, on either side of the expiry", () => {
    for (const state of BINARY_STAR_STATES) {
      for (const context of [FRESH, EXPIRED]) {
        expect(step(state, "CLIENT_REQUEST", context).type).toBe("next");
      }
    }
  });

  it("1.5.1: 'passive' is only entered from PRIMARY or BACKUP, and ACTIVE is never left", () => {
    for (const state of BINARY_STAR_STATES) {
      for (const event of BINARY_STAR_EVENTS) {
        for (const context of [FRESH, EXPIRED]) {
          const result = step(state, event, context);
          if (result.type !== "next") continue;
          if (result.entered === "passive") expect(["PRIMARY", "BACKUP"]).toContain(state);
          if (state === "ACTIVE") expect(result.state).toBe("ACTIVE");
          // `entered` is set exactly when the state changed into ACTIVE or PASSIVE.
          const changed = result.state !== state;
          expect(result.entered !== null).toBe(changed);
        }
      }
    }
  });

  it("1.11.2: PRIMARY never accepts a vote without becoming ACTIVE (the PoC's dual-active race)", () => {
    for (const context of [FRESH, EXPIRED]) {
      const result = step("PRIMARY", "CLIENT_REQUEST", context);
      if (result.type === "next" && result.accept) expect(result.state).toBe("ACTIVE");
    }
  });

  it("1.5.3: the expiry comparison is now >= peerExpiry, to the millisecond", () => {
    for (const from of ["PRIMARY", "PASSIVE"] as const) {
      expect(step(from, "CLIENT_REQUEST", { now: 4999.9, peerExpiry: 5000 })).toMatchObject({
        state: from,
        accept: false,
      });
      expect(step(from, "CLIENT_REQUEST", { now: 5000, peerExpiry: 5000 })).toMatchObject({
        state: "ACTIVE",
        accept: true,
      });
    }
  });

  it("rejects unknown states, events and non-finite times with InvalidArgumentError", () => {
    expect(() => step("MASTER" as BinaryStarState, "PEER_ACTIVE", FRESH)).toThrow(
      InvalidArgumentError,
    );
    expect(() => step("ACTIVE", "CLIENT_VOTE" as BinaryStarEvent, FRESH)).toThrow(
      InvalidArgumentError,
    );
    expect(() => step("PASSIVE", "CLIENT_REQUEST", { now: Number.NaN, peerExpiry: 0 })).toThrow(
      InvalidArgumentError,
    );
    expect(() =>
      step("PASSIVE", "CLIENT_REQUEST", { now: 0, peerExpiry: Number.POSITIVE_INFINITY }),
    ).toThrow(InvalidArgumentError);
  });
});

describe("helpers", () => {
  it("1.5: the primary starts in PRIMARY, the backup in BACKUP", () => {
    expect(initialState("primary")).toBe("PRIMARY");
    expect(initialState("backup")).toBe("BACKUP");
    expect(() => initialState("master" as "primary")).toThrow(InvalidArgumentError);
  });

  it("1.3/1.11.3: a peer state maps to the event of the same name, never to CLIENT_REQUEST", () => {
    expect(BINARY_STAR_STATES.map(peerEvent)).toEqual([
      "PEER_PRIMARY",
      "PEER_BACKUP",
      "PEER_ACTIVE",
      "PEER_PASSIVE",
    ]);
    expect(() => peerEvent("CLIENT_REQUEST" as BinaryStarState)).toThrow(InvalidArgumentError);
  });

  it("1.4: the peer expiry is the last hearing plus 2 x heartbeat by default", () => {
    expect(DEFAULT_PEER_EXPIRY_MS).toBe(2000);
    expect(peerExpiryAfter(500, DEFAULT_PEER_EXPIRY_MS)).toBe(2500);
  });
});

describe("BinaryStarMachine: peer-expiry bookkeeping on a ManualClock (spec 1.5, 1.5.3)", () => {
  const machine = (role: "primary" | "backup", clock: ManualClock) =>
    new BinaryStarMachine({ role, clock, peerExpiryMs: DEFAULT_PEER_EXPIRY_MS });

  it("1.12.3: a primary alone drops votes for 2 s after start, then becomes ACTIVE on the next", () => {
    const clock = new ManualClock(10_000);
    const m = machine("primary", clock);
    expect(m.state).toBe("PRIMARY");
    expect(m.peerExpiry).toBe(12_000);
    clock.advance(1999);
    expect(m.clientRequest()).toMatchObject({ state: "PRIMARY", accept: false, entered: null });
    clock.advance(1);
    expect(m.clientRequest()).toMatchObject({ state: "ACTIVE", accept: true, entered: "active" });
    // 'active' fires once: later votes are accepted without entering again.
    expect(m.clientRequest()).toMatchObject({ state: "ACTIVE", accept: true, entered: null });
  });

  it("1.12.4: a backup alone never accepts a vote", () => {
    const clock = new ManualClock();
    const m = machine("backup", clock);
    for (let i = 0; i < 10; i++) {
      clock.advance(1000);
      expect(m.clientRequest()).toMatchObject({ state: "BACKUP", accept: false });
    }
  });

  it("1.12.5: pair start: primary ACTIVE on the backup's heartbeat, backup PASSIVE on the primary's", () => {
    const clock = new ManualClock();
    const primary = machine("primary", clock);
    const backup = machine("backup", clock);
    clock.advance(1000);
    expect(backup.peerState(primary.state)).toMatchObject({ state: "BACKUP" });
    expect(primary.peerState(backup.state)).toMatchObject({ state: "ACTIVE", entered: "active" });
    clock.advance(1000);
    expect(backup.peerState(primary.state)).toMatchObject({
      state: "PASSIVE",
      entered: "passive",
    });
    expect(primary.peerState(backup.state)).toMatchObject({ state: "ACTIVE", entered: null });
  });

  it("1.12.6: failover: the passive backup drops a vote < 2 s after the last heartbeat, takes over at >= 2 s", () => {
    const clock = new ManualClock();
    const backup = machine("backup", clock);
    clock.advance(1000);
    backup.peerState("ACTIVE");
    expect(backup.state).toBe("PASSIVE");
    clock.advance(1000);
    backup.peerState("ACTIVE"); // the last heartbeat, at t = 2000; then the primary dies
    expect(backup.peerExpiry).toBe(4000);
    clock.advance(1999);
    expect(backup.clientRequest()).toMatchObject({ state: "PASSIVE", accept: false });
    clock.advance(1);
    expect(backup.clientRequest()).toMatchObject({
      state: "ACTIVE",
      accept: true,
      entered: "active",
    });
  });

  it("1.5.3: silence alone never fails over; every peer state refreshes the expiry before the step", () => {
    const clock = new ManualClock();
    const m = machine("backup", clock);
    m.peerState("ACTIVE");
    clock.advance(60_000);
    expect(m.state).toBe("PASSIVE");
    m.peerState("ACTIVE"); // heard again at the very moment the old expiry had passed
    expect(m.clientRequest()).toMatchObject({ state: "PASSIVE", accept: false });
  });

  it("1.12.7: a restarted primary goes PASSIVE against an ACTIVE backup, and the passive backup takes over from a restarting primary", () => {
    const clock = new ManualClock();
    const restarted = machine("primary", clock);
    clock.advance(1000);
    expect(restarted.peerState("ACTIVE")).toMatchObject({ state: "PASSIVE", entered: "passive" });

    const backup = machine("backup", clock);
    backup.peerState("ACTIVE");
    expect(backup.peerState("PRIMARY")).toMatchObject({ state: "ACTIVE", entered: "active" });
  });

  it("1.12.9/1.11.6: a fatal step stops the machine for good", () => {
    const clock = new ManualClock();
    const m = machine("primary", clock);
    m.peerState("BACKUP");
    const fatal = m.peerState("ACTIVE");
    expect(fatal).toEqual({ type: "fatal", state: "ACTIVE", reason: "dual-active" });
    expect(m.fatal).toBe(fatal);
    const expiry = m.peerExpiry;
    clock.advance(5000);
    expect(m.clientRequest()).toBe(fatal);
    expect(m.peerState("PASSIVE")).toBe(fatal);
    expect(m.peerExpiry).toBe(expiry);
  });

  it("1.11.5: both primaries warn 'misconfigured' and keep each other from serving (spec 1.5.4)", () => {
    const clock = new ManualClock();
    const a = machine("primary", clock);
    for (let i = 0; i < 5; i++) {
      clock.advance(1000);
      expect(a.peerState("PRIMARY")).toMatchObject({ state: "PRIMARY", warning: "misconfigured" });
      expect(a.clientRequest()).toMatchObject({ state: "PRIMARY", accept: false });
    }
  });

  it("validates its options", () => {
    const clock = new ManualClock();
    expect(() => new BinaryStarMachine({ role: "primary", clock, peerExpiryMs: 0 })).toThrow(
      InvalidArgumentError,
    );
    expect(
      () => new BinaryStarMachine({ role: "slave" as "backup", clock, peerExpiryMs: 2000 }),
    ).toThrow(InvalidArgumentError);
  });
});
