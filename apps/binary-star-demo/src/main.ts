// Binary Star, narrated: a primary and a backup server, each in its own process, and a client
// process sending numbered requests. The active primary is killed and the backup takes over on
// the client's next request; the primary comes back as passive; then the backup is killed and the
// primary is active again (the manual fail-back), and the backup rejoins as passive.
import { BinaryStarClient } from "@zmq-patterns/binary-star";
import { RequestAbandonedError } from "@zmq-patterns/core";
import { allocateAddress } from "@zmq-patterns/core/testing";
import { binCommand, Demo, type RoleProcess } from "@zmq-patterns/demo-kit";

// Shorter than the Guide's timings (heartbeat 1 s, peer expiry 2 s, client timeout 1 s, settle
// delay 2 s, one request a second), so the demo takes seconds. The settle delay stays at least
// the peer expiry, so the client's first vote on the other server is accepted.
const HEARTBEAT = 250;
const PEER_EXPIRY = 2 * HEARTBEAT;
const TIMEOUT = 500;
const SETTLE_DELAY = 500;
const INTERVAL = 250;
const WAIT_MS = 15_000;

const demo = new Demo("Binary Star: a primary/backup pair with failover voted by clients");

const literal = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");

/** Resolves with the first `count` lines matching `pattern` that `role` printed since line `since`. */
async function linesSince(
  role: RoleProcess,
  pattern: RegExp,
  count: number,
  since: number,
  timeoutMs = WAIT_MS,
): Promise<string[]> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const matches = role.output.slice(since).filter((line) => pattern.test(line));
    if (matches.length >= count) return matches.slice(0, count);
    const left = deadline - performance.now();
    if (left <= 0) throw new Error(`${role.name}: ${matches.length} of ${count} lines ${pattern}`);
    // Any new match wakes us up; counting again catches lines that came in the same chunk.
    await role.waitForLine(pattern, left);
  }
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

await demo.run(async () => {
  demo.intro(
    "A primary and a backup server (echo services) in their own processes, and a client process",
    "that sends numbered requests. At most one server is active. The passive one takes over only",
    "when a client asks it AND it has not heard its peer for the peer expiry.",
    "To keep the demo short, its timings are shorter than the Guide's (1 s, 2 s, 1 s and 2 s):",
    `heartbeat ${HEARTBEAT} ms, peer expiry ${PEER_EXPIRY} ms, client timeout ${TIMEOUT} ms, settle delay ${SETTLE_DELAY} ms.`,
  );
  const primaryVoter = await allocateAddress("tcp");
  const backupVoter = await allocateAddress("tcp");
  const primaryState = await allocateAddress("tcp");
  const backupState = await allocateAddress("tcp");
  const bin = (args: string[]) => binCommand("@zmq-patterns/binary-star", "binary-star", args);
  const server = (role: "primary" | "backup", voter: string, local: string, remote: string) =>
    bin([
      "server",
      `--${role}`,
      "--voter",
      voter,
      "--local",
      local,
      "--remote",
      remote,
      "--heartbeat-interval",
      String(HEARTBEAT),
    ]);
  const replyFrom = (endpoint: string) => new RegExp(`reply (\\d+) from ${literal(endpoint)}$`);
  const number = (line: string | undefined) => /reply (\d+) from/.exec(line ?? "")?.[1] ?? "?";

  demo.step("Start the primary, then the backup. Each publishes its state to the other.");
  demo.say(`primary: clients on ${primaryVoter}, state on ${primaryState}`);
  demo.say(`backup:  clients on ${backupVoter}, state on ${backupState}`);
  const primary = await demo.start(
    "primary",
    server("primary", primaryVoter, primaryState, backupState),
  );
  const backup = await demo.start(
    "backup",
    server("backup", backupVoter, backupState, primaryState),
  );
  await primary.waitForLine(/ready as active/, WAIT_MS, { includeSeen: true });
  await backup.waitForLine(/ready as passive/, WAIT_MS, { includeSeen: true });
  demo.ok("the primary heard the backup and is ACTIVE; the backup heard it and is PASSIVE");

  demo.step("Ask the passive backup directly, while the primary is alive.");
  {
    await using direct = new BinaryStarClient({
      endpoints: [backupVoter],
      timeoutMs: TIMEOUT,
      maxAttempts: 1,
    });
    try {
      await direct.request("1");
      throw new Error("the passive backup answered while its peer was alive");
    } catch (error) {
      if (!(error instanceof RequestAbandonedError)) throw error;
    }
    if (backup.output.some((line) => /ready as active/.test(line))) {
      throw new Error("the backup became active on a vote while the primary was heard");
    }
    demo.ok(`no reply within ${TIMEOUT} ms, and the backup is still PASSIVE`);
    demo.say("a vote alone never fails over while the peer's heartbeats arrive: the request is");
    demo.say("dropped without reply, and a real client would go back to the active server");
  }

  demo.step("Start the client: it sends to the primary first and switches on every timeout.");
  const client = await demo.start(
    "client",
    bin([
      "client",
      "--primary-server",
      primaryVoter,
      "--backup-server",
      backupVoter,
      "--timeout",
      String(TIMEOUT),
      "--settle-delay",
      String(SETTLE_DELAY),
      "--interval",
      String(INTERVAL),
    ]),
  );
  await linesSince(client, replyFrom(primaryVoter), 3, 0);
  demo.ok("the active primary echoes each request");

  demo.step("Kill the active primary with SIGKILL.");
  {
    let since = client.output.length;
    const sinceBackup = backup.output.length;
    await primary.kill("SIGKILL");
    const killed = performance.now();
    demo.say("the backup stops hearing heartbeats, but silence alone changes nothing: it stays");
    demo.say("passive until a client asks it");
    await linesSince(client, new RegExp(`failing over to ${literal(backupVoter)}`), 1, since);
    since = client.output.length;
    const [first] = await linesSince(client, replyFrom(backupVoter), 1, since);
    const elapsed = performance.now() - killed;
    const [why] = await linesSince(backup, /ready as active/, 1, sinceBackup);
    demo.ok(`the backup is ACTIVE: "${why?.replace(/^.*INFO /, "")}"`);
    demo.ok(`request ${number(first)} answered by the backup ${seconds(elapsed)} after the kill`);
    demo.say(
      `the client waited ${TIMEOUT} ms for the primary, switched, waited ${SETTLE_DELAY} ms`,
    );
    demo.say("and sent the same request again; by then the primary had been silent longer than");
    demo.say("the peer expiry, so the backup took the request as a vote and failed over");
  }

  demo.step("Restart the primary. The backup is active, so the primary joins as PASSIVE.");
  {
    const since = client.output.length;
    await primary.restart();
    const why = await primary.waitForLine(/ready as passive/, WAIT_MS, { includeSeen: true });
    demo.ok(`the new primary is PASSIVE: "${why.replace(/^.*INFO /, "")}"`);
    const replies = await linesSince(client, replyFrom(backupVoter), 2, since);
    demo.ok(`requests ${replies.map(number).join(" and ")} still answered by the backup`);
    demo.say("failover is automatic but recovery is manual: the pair stays this way round until");
    demo.say("an operator stops the backup, and the client sticks with the server that answers");
  }

  demo.step("Fail back by hand: kill the active backup with SIGKILL.");
  {
    const since = client.output.length;
    const sincePrimary = primary.output.length;
    await backup.kill("SIGKILL");
    const killed = performance.now();
    await linesSince(client, new RegExp(`failing over to ${literal(primaryVoter)}`), 1, since);
    const [first] = await linesSince(client, replyFrom(primaryVoter), 1, since);
    const elapsed = performance.now() - killed;
    const [why] = await linesSince(primary, /ready as active/, 1, sincePrimary);
    demo.ok(`the primary is ACTIVE again: "${why?.replace(/^.*INFO /, "")}"`);
    demo.ok(`request ${number(first)} answered by the primary ${seconds(elapsed)} after the kill`);
  }

  demo.step("Restart the backup: it finds the primary active and becomes PASSIVE.");
  {
    const sinceBackup = backup.output.length;
    const since = client.output.length;
    await backup.restart();
    const [why] = await linesSince(backup, /ready as passive/, 1, sinceBackup);
    demo.ok(`the backup is PASSIVE: "${why?.replace(/^.*INFO /, "")}"`);
    const replies = await linesSince(client, replyFrom(primaryVoter), 2, since);
    demo.ok(`requests ${replies.map(number).join(" and ")} answered by the primary`);
    demo.say("the pair is back as it started. Note that a primary restarted while the backup is");
    demo.say('still passive would make the backup active at once ("peer is restarting"): any');
    demo.say("restart of the active server swaps the roles");
  }

  demo.step("Stop the client, then the passive backup, then the active primary.");
  for (const role of [client, backup, primary]) {
    const exit = await role.stop();
    if (exit.code !== 0) throw new Error(`${role.name} exited with ${JSON.stringify(exit)}`);
  }
  demo.ok("all three exited on SIGTERM with status 0");
});
