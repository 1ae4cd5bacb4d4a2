// Clone, narrated: a Binary Star pair of Clone servers and four clients in their own processes,
// three writing random keys (one of them under a subtree) and one watching. The active server is
// killed while the clients write; they fail over to the backup, which takes over and publishes
// the updates its peer never did. At the end every client's view of the map, rebuilt from the
// changes it printed, is compared with the surviving server's map at the same sequence number.
import {
  allocateAddress,
  allocatePort,
  type OutputLine,
  startProcess,
} from "@zmq-patterns/core/testing";
import { binCommand, Demo, type RoleProcess } from "@zmq-patterns/demo-kit";

// Shorter than the Guide's timings (Binary Star heartbeat 1 s, client SERVER_TTL 5 s, one update
// a second per client), so the demo takes seconds. The servers' HUGZ stays at one a second, so the
// clients' server TTL must stay well above that.
const HEARTBEAT = 250;
const SERVER_TTL = 2000;
const INTERVAL = 150;
const SUBTREE = "/room/";
const WAIT_MS = 20_000;
/** Change lines of each client shown at the start before the rest are only counted. */
const SHOWN_CHANGES = 3;

const demo = new Demo("Clone (RFC 12/CHP): a shared key-value map on a Binary Star server pair");

const literal = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

// --- role processes whose chatter is filtered -----------------------------------------------------

const useColor = process.stdout.isTTY === true && !process.env.NO_COLOR;
const PALETTE = ["36", "35", "33", "34", "32", "96", "95", "93"];
let colors = 0;

/** How a role's lines are shown: change lines up to a budget, other lines through a filter. */
interface View {
  changes: number;
  show(line: OutputLine): boolean;
}

const views = new Map<string, View>();

/**
 * Starts a role like `demo.start` does, but shows only some of its lines: the clients print every
 * change of the map and the servers (with `--verbose`) every update, which would drown the story.
 * Every line is still kept in the handle's `output`, where the checks below read it.
 */
function startRole(
  name: string,
  command: { command: string; args: string[] },
  show: (line: OutputLine) => boolean = () => true,
): Promise<RoleProcess> {
  const color = PALETTE[colors++ % PALETTE.length] as string;
  const prefix = useColor ? `\x1b[${color}m    [${name}]\x1b[0m` : `    [${name}]`;
  const view: View = { changes: SHOWN_CHANGES, show };
  views.set(name, view);
  return startProcess({
    ...command,
    name,
    onOutput: (line) => {
      if (CHANGE.test(line.text)) {
        if (view.changes <= 0) return;
        view.changes -= 1;
      } else if (!view.show(line)) {
        return;
      }
      console.log(`${prefix} ${line.text}`);
    },
  });
}

/** Lets `count` more change lines of `role` through to the screen. */
function showChanges(role: RoleProcess, count: number): void {
  const view = views.get(role.name);
  if (view) view.changes = count;
}

// --- what the clients print --------------------------------------------------------------------------

/** A change line of `clone client`: `#SEQ key=value` or `#SEQ key deleted`. */
const CHANGE = /^#(\d+) ([^=\s]+)(?:=(.*)| deleted)$/;

interface Change {
  /** Position of the line in the role's output. */
  index: number;
  sequence: number;
  key: string;
  value: string | undefined;
}

function changesOf(role: RoleProcess): Change[] {
  return role.output.flatMap((text, index) => {
    const match = CHANGE.exec(text);
    return match
      ? [{ index, sequence: Number(match[1]), key: match[2] as string, value: match[3] }]
      : [];
  });
}

const lastSequence = (role: RoleProcess) =>
  changesOf(role).reduce((max, change) => Math.max(max, change.sequence), 0);

/**
 * A client's map as of `sequence`, rebuilt from `initial` and the changes it printed. The
 * changes printed before it failed over (`failoverLine`) came from the primary, those after from
 * the backup; within each part the sequence numbers never go down (the changes a snapshot makes
 * all carry the snapshot's sequence). For a sequence the primary had reached, the map is the
 * first part up to it; for a later one, all of the first part and the second up to it. The
 * order is checked, not assumed.
 */
function viewAt(
  role: RoleProcess,
  sequence: number,
  failoverLine: number,
  initial: ReadonlyMap<string, string> = new Map(),
): Map<string, string> {
  const changes = changesOf(role);
  const before = changes.filter((change) => change.index < failoverLine);
  const after = changes.filter((change) => change.index >= failoverLine);
  for (const part of [before, after]) {
    if (part.some((change, i) => i > 0 && change.sequence < (part[i - 1] as Change).sequence)) {
      throw new Error(`${role.name} printed changes out of sequence order`);
    }
  }
  const primaryReached = Math.max(0, ...before.map((change) => change.sequence));
  const applied =
    sequence < primaryReached
      ? before.filter((change) => change.sequence <= sequence)
      : [...before, ...after.filter((change) => change.sequence <= sequence)];
  const map = new Map(initial);
  for (const change of applied) {
    if (change.value === undefined) map.delete(change.key);
    else map.set(change.key, change.value);
  }
  return map;
}

/** The differences between two maps, at most five, for an error message. */
function differences(a: Map<string, string>, b: Map<string, string>): string[] {
  const out: string[] = [];
  for (const [key, value] of a)
    if (b.get(key) !== value) out.push(`${key}: ${value} vs ${b.get(key)}`);
  for (const [key, value] of b) if (!a.has(key)) out.push(`${key}: (absent) vs ${value}`);
  return out.slice(0, 5);
}

function expectSame(what: string, a: Map<string, string>, b: Map<string, string>): void {
  const diff = differences(a, b);
  if (diff.length > 0) throw new Error(`${what} differ: ${diff.join("; ")}`);
}

const under = (map: Map<string, string>, prefix: string) =>
  new Map([...map].filter(([key]) => key.startsWith(prefix)));

/** Resolves with the first line matching `pattern` that `role` printed since line `since`. */
async function lineSince(
  role: RoleProcess,
  pattern: RegExp,
  since: number,
  timeoutMs = WAIT_MS,
): Promise<string> {
  const seen = role.output.slice(since).find((line) => pattern.test(line));
  if (seen !== undefined) return seen;
  return role.waitForLine(pattern, timeoutMs);
}

/** Resolves once `role` has printed `count` change lines since line `since`. */
async function changesSince(role: RoleProcess, count: number, since: number): Promise<void> {
  const deadline = performance.now() + WAIT_MS;
  for (;;) {
    if (role.output.slice(since).filter((line) => CHANGE.test(line)).length >= count) return;
    const left = deadline - performance.now();
    if (left <= 0) throw new Error(`${role.name}: fewer than ${count} changes in ${WAIT_MS} ms`);
    await role.waitForLine(CHANGE, left);
  }
}

/** Resolves once `role` has printed a change numbered `sequence` or later. */
async function reached(role: RoleProcess, sequence: number): Promise<void> {
  const deadline = performance.now() + WAIT_MS;
  while (lastSequence(role) < sequence) {
    const left = deadline - performance.now();
    if (left <= 0) throw new Error(`${role.name} never reached #${sequence}`);
    await role.waitForLine(CHANGE, left);
  }
}

/** Three consecutive free ports P, P+1, P+2, as a Clone server needs; returns P. */
async function basePort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await allocatePort();
    if ((await allocatePort()) === port + 1 && (await allocatePort()) === port + 2) return port;
  }
  throw new Error("found no three consecutive free ports");
}

await demo.run(async () => {
  demo.intro(
    "A primary and a backup Clone server (a Binary Star pair) and four clients, each in its own",
    "process: three write random keys (one of them only under the subtree /room/) and one only",
    "watches. Every update goes to both servers; the active one numbers it and publishes it, the",
    "passive one mirrors the active one and keeps the updates it has not seen published yet.",
    "Timings are shorter than the Guide's: the servers heartbeat each other every",
    `${HEARTBEAT} ms (1 s); clients fail over after ${SERVER_TTL} ms without a message from their server`,
    `(--server-ttl; 5 s), while the servers' HUGZ stays at one a second; each writer sends an update`,
    `every ${INTERVAL} ms (1 s), with a random TTL of 0 to 29 s (0: none).`,
  );
  const host = "tcp://127.0.0.1";
  const primaryPort = await basePort();
  const backupPort = await basePort();
  const primaryState = await allocateAddress("tcp");
  const backupState = await allocateAddress("tcp");
  const primaryAddress = `${host}:${primaryPort}`;
  const backupAddress = `${host}:${backupPort}`;
  const bin = (args: string[]) => binCommand("@zmq-patterns/clone", "clone", args);
  const server = (role: "primary" | "backup") => {
    const [port, peer, local, remote] =
      role === "primary"
        ? [primaryPort, backupPort, primaryState, backupState]
        : [backupPort, primaryPort, backupState, primaryState];
    return bin([
      "server",
      `--${role}`,
      "--port",
      String(port),
      "--host",
      host,
      "--peer-snapshot",
      `${host}:${peer}`,
      "--peer-publisher",
      `${host}:${peer + 1}`,
      "--local",
      local,
      "--remote",
      remote,
      "--heartbeat-interval",
      String(HEARTBEAT),
      "--verbose",
    ]);
  };
  const client = (args: string[]) =>
    bin(["client", primaryAddress, backupAddress, "--server-ttl", String(SERVER_TTL), ...args]);
  // With --verbose a server logs every update; show the rarer lines (a few replays, snapshots,
  // state changes) and only count the others.
  let replaysShown = 0;
  const serverLines = (line: OutputLine) => {
    if (/DEBUG (set|expired) /.test(line.text)) return false;
    if (/DEBUG replayed /.test(line.text)) return replaysShown++ < 3;
    return true;
  };

  demo.step("Start the primary and the watcher, which prints every change of the map.");
  demo.say(
    `primary: snapshots ${primaryAddress}, updates :${primaryPort + 1}, collector :${primaryPort + 2}`,
  );
  demo.say(
    `backup:  snapshots ${backupAddress}, updates :${backupPort + 1}, collector :${backupPort + 2}`,
  );
  const primary = await startRole("primary", server("primary"), serverLines);
  const watcher = await startRole("watcher", client([]));
  await lineSince(primary, /active \(ACTIVE\)/, 0);
  await lineSince(watcher, new RegExp(`synchronised from ${literal(primaryAddress)}: 0 keys`), 0);
  showChanges(watcher, 2);
  demo.ok("the primary became ACTIVE on the watcher's snapshot request, which is a vote");
  demo.say("alone, a primary takes a vote only once its peer expiry has passed: its backup might");
  demo.say("have been active without it knowing");

  demo.step("Store two permanent keys with `clone client --set`.");
  const seeds = await Promise.all([
    startRole("set", client(["--set", "motd=hello"])),
    startRole("set", client(["--set", "mode=demo"])),
  ]);
  for (const seed of seeds) {
    const exit = await seed.waitForExit(WAIT_MS);
    if (exit.code !== 0) throw new Error(`clone client --set exited with ${JSON.stringify(exit)}`);
  }
  await changesSince(watcher, 2, 0);
  demo.ok("each --set returned once the primary had published its update (#1 and #2)");

  demo.step("Start the backup: it hears the primary ACTIVE, becomes PASSIVE and copies its map.");
  const backup = await startRole("backup", server("backup"), serverLines);
  await lineSince(backup, /passive \(PASSIVE\)/, 0);
  const copied = /synchronised from the active: (\d+) keys, sequence (\d+)/.exec(
    await lineSince(backup, /synchronised from the active/, 0),
  );
  demo.ok(`the backup is PASSIVE with the primary's ${copied?.[1]} keys, up to #${copied?.[2]}`);
  demo.say("it asked for the snapshot only once the primary's publications reached it (a HUGZ),");
  demo.say("so no update can fall between the snapshot and the updates it mirrors from then on");

  demo.step("Start three writers; they share the map through the primary.");
  const rate = ["--random", "--interval", String(INTERVAL)];
  const writers = await Promise.all([
    startRole("writer-1", client(rate)),
    startRole("writer-2", client(rate)),
    startRole("writer-3", client(["--subtree", SUBTREE, ...rate])),
  ]);
  const [, , writer3] = writers;
  const clients = [...writers, watcher];
  await Promise.all(
    writers.map((role) =>
      lineSince(role, new RegExp(`synchronised from ${literal(primaryAddress)}`), 0),
    ),
  );
  showChanges(watcher, SHOWN_CHANGES);
  await changesSince(watcher, 60, 0);
  demo.ok(
    `the watcher has applied ${changesOf(watcher).length} changes, up to #${lastSequence(watcher)}`,
  );
  demo.say(`writer-3 follows only ${SUBTREE}: it fetches and receives only those keys (and HUGZ)`);
  demo.say("each client prints every change it applies (shown: the first few); a value with a TTL");
  demo.say("goes away when the active server publishes its deletion, numbered like any update");

  demo.step("Kill the active primary with SIGKILL while the writers keep writing.");
  const since = new Map(
    [...clients, backup].map((role) => [role.name, role.output.length] as const),
  );
  const at = (role: RoleProcess) => since.get(role.name) ?? 0;
  await primary.kill("SIGKILL");
  const killed = performance.now();
  demo.say("the writers' updates still reach the backup's collector; as it is passive, it keeps");
  demo.say("them on its pending list until it sees the active publish them, which never happens");
  const failedOver = clients.map((role) =>
    lineSince(role, new RegExp(`failing over to ${literal(backupAddress)}`), at(role)).then(() => {
      // Show the watcher's first changes from the backup: what its new snapshot changed.
      if (role === watcher) showChanges(watcher, SHOWN_CHANGES + 2);
      return [role.name, role.output.length] as const;
    }),
  );
  const resynced = clients.map((role) =>
    lineSince(role, new RegExp(`synchronised from ${literal(backupAddress)}`), at(role)).then(
      () => performance.now() - killed,
    ),
  );
  await lineSince(backup, /active \(ACTIVE\)/, at(backup));
  const active = performance.now() - killed;
  const failoverLines = new Map(await Promise.all(failedOver));
  const failoverLine = (role: RoleProcess) => failoverLines.get(role.name) ?? 0;
  const times = await Promise.all(resynced);
  const afterKill = backup.output.slice(at(backup));
  const replayed = afterKill.filter((line) => /DEBUG replayed /.test(line));
  const firstSnapshot = afterKill.findIndex((line) => /DEBUG snapshot of/.test(line));
  if (firstSnapshot < afterKill.findLastIndex((line) => /DEBUG replayed /.test(line))) {
    throw new Error("the backup served a snapshot before it had published its pending updates");
  }
  demo.ok(`the backup became ACTIVE ${seconds(active)} after the kill, on the first client's vote`);
  demo.ok(
    `it first published the ${replayed.length} pending updates, with new sequence numbers, then served the snapshot`,
  );
  const [fastest, slowest] = [seconds(Math.min(...times)), seconds(Math.max(...times))];
  demo.ok(
    `all four clients failed over and synchronised from the backup ${fastest === slowest ? fastest : `${fastest} to ${slowest}`} after the kill`,
  );
  demo.say(`each waited ${SERVER_TTL} ms in silence, then for the backup's first message (a HUGZ,`);
  demo.say("within a second), then asked it for a snapshot: that request was its vote");

  demo.step("Let the writers go on through the backup, then stop them.");
  await changesSince(watcher, 60, watcher.output.length);
  for (const writer of writers) {
    const exit = await writer.stop();
    if (exit.code !== 0) throw new Error(`${writer.name} exited with ${JSON.stringify(exit)}`);
  }
  const unconfirmed = writers.flatMap((w) => w.output.filter((line) => /not confirmed/.test(line)));
  demo.ok("the three writers stopped on SIGTERM with status 0");
  demo.ok(
    unconfirmed.length === 0
      ? "none reported an unconfirmed update: each set waits until its update comes back published"
      : `${unconfirmed.length} of their updates never came back published by a server`,
  );

  demo.step("Restart the primary: it finds the backup ACTIVE, becomes PASSIVE and copies its map.");
  const primarySince = primary.output.length;
  await primary.restart();
  await lineSince(primary, /passive \(PASSIVE\)/, primarySince);
  const resync = /synchronised from the active: (\d+) keys, sequence (\d+)/.exec(
    await lineSince(primary, /synchronised from the active/, primarySince),
  );
  const primaryKeys = Number(resync?.[1]);
  const primarySequence = Number(resync?.[2]);
  await reached(watcher, primarySequence);
  const watcherThen = viewAt(watcher, primarySequence, failoverLine(watcher));
  if (watcherThen.size !== primaryKeys) {
    throw new Error(
      `the primary has ${primaryKeys} keys at #${primarySequence}, the watcher ${watcherThen.size}`,
    );
  }
  demo.ok(
    `the primary holds ${primaryKeys} keys at #${primarySequence}, as many as the watcher at #${primarySequence}`,
  );
  demo.say("the pair stays this way round: going back to the primary is an operator's decision");

  demo.step("Compare every client's view of the map with the surviving server's.");
  // Listed like every client, primary first: the primary is passive now and ignores the
  // request, so the client moves on to the backup after the server TTL.
  const dump = await startRole(
    "dump",
    client(["--dump"]),
    (line) => line.stream === "stderr" || /^keys \d+ sequence \d+$/.test(line.text),
  );
  const exit = await dump.waitForExit(WAIT_MS);
  if (exit.code !== 0) throw new Error(`clone client --dump exited with ${JSON.stringify(exit)}`);
  await lineSince(dump, new RegExp(`failing over to ${literal(backupAddress)}`), 0);
  await lineSince(dump, new RegExp(`synchronised from ${literal(backupAddress)}`), 0);
  const summary = dump.output.map((line) => /^keys (\d+) sequence (\d+)$/.exec(line)).find(Boolean);
  if (!summary) throw new Error("the dump printed no summary");
  const dumpSequence = Number(summary[2]);
  const serverMap = new Map(
    dump.output.flatMap((line) => {
      const match = /^([^=\s]+)=(.*)$/.exec(line);
      return match ? [[match[1] as string, match[2] as string] as const] : [];
    }),
  );
  if (serverMap.size !== Number(summary[1])) throw new Error("the dump's key count is wrong");
  await reached(watcher, dumpSequence);
  expectSame(
    `the backup's map and the watcher's at #${dumpSequence}`,
    serverMap,
    viewAt(watcher, dumpSequence, failoverLine(watcher)),
  );
  demo.ok(
    `the backup's map at #${dumpSequence} (${serverMap.size} keys, from \`clone client --dump\`) equals the watcher's at #${dumpSequence}`,
  );
  demo.say("the dump client listed the primary first, as every client here: the passive primary");
  demo.say(`ignored its request, so after ${SERVER_TTL} ms it moved on to the backup`);
  demo.say("the watcher has printed every change since the map was empty, so its output");
  demo.say("rebuilds its map at any sequence number");
  for (const writer of writers) {
    const subtree = writer === writer3 ? SUBTREE : "";
    const first = changesOf(writer)[0]?.sequence ?? 1;
    const start = under(viewAt(watcher, first - 1, failoverLine(watcher)), subtree);
    const last = lastSequence(writer);
    const mine = viewAt(writer, last, failoverLine(writer), start);
    const theirs = under(viewAt(watcher, last, failoverLine(watcher)), subtree);
    expectSame(`${writer.name}'s map and the watcher's at #${last}`, mine, theirs);
    demo.ok(
      `${writer.name}'s last view, at #${last}: ${mine.size} keys${subtree ? ` under ${subtree}` : ""}, the same as the watcher's at #${last}`,
    );
  }
  demo.say("a writer prints only the changes after its first snapshot, so its view starts from");
  demo.say("the watcher's map just before its first printed change; from there on, through the");
  demo.say("failover, its own printed changes lead to the same map as the watcher's");
  if (serverMap.get("motd") !== "hello" || serverMap.get("mode") !== "demo") {
    throw new Error("the permanent keys set at the start are gone");
  }
  demo.ok("the two permanent keys stored through the primary are still there: motd and mode");

  demo.step("Stop the watcher, then the passive primary, then the active backup.");
  for (const role of [watcher, primary, backup]) {
    const stopped = await role.stop();
    if (stopped.code !== 0) throw new Error(`${role.name} exited with ${JSON.stringify(stopped)}`);
  }
  demo.ok("all three exited on SIGTERM with status 0");
});
