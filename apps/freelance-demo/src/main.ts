// Freelance, narrated: three model-three servers (10/FLP), each in its own process, and a client in
// this process that makes a request every 250 ms and says which server answered each one. The
// servers are killed one by one, restarted, frozen and thawed while the requests keep being
// answered; then all three are down and a request fails with a typed error. Models two (the
// shotgun) and one (sequential failover) follow, briefly, for contrast.
import { isZmqPatternsError, RequestAbandonedError } from "@zmq-patterns/core";
import { allocateAddress } from "@zmq-patterns/core/testing";
import { binCommand, Demo, type RoleProcess } from "@zmq-patterns/demo-kit";
import { FreelanceClient, type FreelanceModel } from "@zmq-patterns/freelance";

// Shorter than the Guide's timings (request timeout 3 s, ping every 2 s, server TTL 6 s), so the
// demo takes seconds. With three servers a request gives each attempt a third of its timeout.
const TIMEOUT = 1500;
const ATTEMPT = TIMEOUT / 3;
const PING_INTERVAL = 500;
const SERVER_TTL = 1500;
const INTERVAL = 250;
/** Model one's time per attempt (the Guide's is 1 s). */
const MODEL1_ATTEMPT = 300;
/** How long the demo waits for something that normally takes a fraction of a second. */
const WAIT_MS = 15_000;

/** Short names of the servers ("A", "B2", ...), by endpoint. */
const names = new Map<string, string>();
const name = (endpoint: string) => names.get(endpoint) ?? endpoint;

/** Clients and traffic loops to close when the scenario ends, however it ends. */
const closers: Array<() => Promise<unknown>> = [];

const demo = new Demo(
  "Freelance (RFC 10/FLP): reliable request-reply over several servers, no broker",
);

/** One request of the traffic: which server answered it, or why it failed. */
interface Outcome {
  n: number;
  ok: boolean;
  /** The name of the server the request was last sent to (`*`: model two's copies). */
  server: string | undefined;
  ms: number;
  error?: unknown;
}

/**
 * A request every `interval` ms, one at a time, from `client`; every outcome is kept and, when
 * `narrate` is set, told as it comes. The server of each request is the one of the client's last
 * `sent` event: one request is outstanding at a time, so every event belongs to it.
 */
class Traffic {
  readonly outcomes: Outcome[] = [];
  readonly #client: FreelanceClient;
  readonly #interval: number;
  readonly #narrate: boolean;
  readonly #waiters = new Set<() => void>();
  #stopped = false;
  #loop: Promise<void> | undefined;
  #sentTo: string | undefined;

  readonly #first: number;

  /** `first` is the number of the first request (the numbers go on across two traffics). */
  constructor(client: FreelanceClient, interval: number, narrate: boolean, first = 1) {
    this.#client = client;
    this.#first = first;
    this.#interval = interval;
    this.#narrate = narrate;
    client.on("sent", ({ endpoint }) => {
      this.#sentTo = name(endpoint);
    });
    closers.push(() => this.stop());
  }

  start(): this {
    this.#loop ??= this.#run();
    return this;
  }

  /** Stops making requests, once the outstanding one (if any) is settled. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#loop;
  }

  get count(): number {
    return this.outcomes.length;
  }

  /** Resolves with the outcomes after index `since` once `done(them)` holds. */
  async until(
    since: number,
    done: (outcomes: Outcome[]) => boolean,
    what: string,
  ): Promise<Outcome[]> {
    const deadline = performance.now() + WAIT_MS;
    for (;;) {
      const outcomes = this.outcomes.slice(since);
      if (done(outcomes)) return outcomes;
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`no ${what} within ${WAIT_MS} ms`);
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.#waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, left);
        this.#waiters.add(wake);
      });
    }
  }

  /** The first `count` answers from `server` after index `since`. */
  async answersFrom(server: string, since: number, count: number): Promise<Outcome[]> {
    const from = (outcomes: Outcome[]) => outcomes.filter((o) => o.ok && o.server === server);
    const outcomes = await this.until(
      since,
      (list) => from(list).length >= count,
      `${count} answers from ${server}`,
    );
    return from(outcomes).slice(0, count);
  }

  async #run(): Promise<void> {
    for (let n = this.#first; !this.#stopped; n++) {
      this.#sentTo = undefined;
      const started = performance.now();
      let outcome: Outcome;
      try {
        await this.#client.request(`request ${n}`);
        outcome = { n, ok: true, server: this.#sentTo, ms: performance.now() - started };
      } catch (error) {
        outcome = { n, ok: false, server: this.#sentTo, ms: performance.now() - started, error };
      }
      this.outcomes.push(outcome);
      if (this.#narrate) {
        demo.say(
          outcome.ok
            ? `request ${n} answered by ${outcome.server} in ${ms(outcome.ms)}`
            : `request ${n} FAILED after ${ms(outcome.ms)}`,
        );
      }
      for (const wake of [...this.#waiters]) wake();
      if (!this.#stopped) await new Promise((resolve) => setTimeout(resolve, this.#interval));
    }
  }
}

function ms(value: number): string {
  return value < 10 ? `${value.toFixed(1)} ms` : `${value.toFixed(0)} ms`;
}

const slowest = (outcomes: Outcome[]) => Math.max(0, ...outcomes.map((o) => o.ms));

/** Fails the demo if any of `outcomes` failed. */
function expectNoFailure(outcomes: Outcome[], when: string): void {
  const failed = outcomes.filter((o) => !o.ok);
  if (failed.length > 0) {
    throw new Error(`request(s) ${failed.map((o) => o.n).join(", ")} failed ${when}`);
  }
}

/** Stops each role with SIGTERM and checks that it exited with status 0. */
async function stopAll(roles: readonly RoleProcess[]): Promise<void> {
  for (const role of roles) {
    const exit = await role.stop();
    if (exit.code !== 0) throw new Error(`${role.name} exited with ${JSON.stringify(exit)}`);
  }
}

/** Tracks `client` so it is closed when the scenario ends. */
function track(client: FreelanceClient): FreelanceClient {
  closers.push(() => client.close());
  return client;
}

/** The `freelance server` command of `model` bound to `endpoint`, as a role named `label`. */
function startServer(model: FreelanceModel, label: string, endpoint: string): Promise<RoleProcess> {
  const command = binCommand("@zmq-patterns/freelance", "freelance", [
    "server",
    "--model",
    String(model),
    "--bind",
    endpoint,
  ]);
  return demo.start(label, command);
}

/** Three fresh endpoints named `A<suffix>`, `B<suffix>` and `C<suffix>`. */
async function threeEndpoints(suffix: string): Promise<[string, string, string]> {
  const endpoints: string[] = [];
  for (const letter of ["A", "B", "C"]) {
    const endpoint = await allocateAddress("tcp");
    names.set(endpoint, `${letter}${suffix}`);
    endpoints.push(endpoint);
  }
  return endpoints as [string, string, string];
}

async function modelThree(): Promise<void> {
  demo.step("Start three model-3 servers. Each one's identity is the endpoint clients connect to.");
  const endpoints = await threeEndpoints("");
  for (const endpoint of endpoints) demo.say(`${name(endpoint)}: ${endpoint}`);
  const [serverA, serverB, serverC] = (await Promise.all(
    endpoints.map((endpoint) => startServer(3, `server ${name(endpoint)}`, endpoint)),
  )) as [RoleProcess, RoleProcess, RoleProcess];
  demo.ok("three servers bound; they know nothing of each other");

  demo.step(`Start the client: it connects to A, B and C, in that order of preference.`);
  const client = track(
    new FreelanceClient({
      model: 3,
      endpoints,
      timeoutMs: TIMEOUT,
      pingIntervalMs: PING_INTERVAL,
      serverTtlMs: SERVER_TTL,
    }),
  );
  client.on("serverUp", ({ endpoint }) =>
    demo.say(`client: server ${name(endpoint)} answered, it is alive`),
  );
  client.on("serverDown", ({ endpoint }) =>
    demo.say(`client: server ${name(endpoint)} silent for ${SERVER_TTL} ms, counted as gone`),
  );
  const traffic = new Traffic(client, INTERVAL, true);
  client.on("failover", ({ from, reason }) => {
    const why =
      reason === "disconnected"
        ? "its connection closed"
        : reason === "unreachable"
          ? "it is unreachable"
          : `no reply within ${ms(ATTEMPT)}`;
    demo.say(`client: request ${traffic.count + 1} moves on from ${name(from)}: ${why}`);
  });
  // The client sends to the first server whose connection is up: wait until all three answered
  // a ping, so the requests show the order of preference rather than which connected first.
  await new Promise<void>((resolve, reject) => {
    const check = () => {
      if (client.stats().servers.every((server) => server.alive)) {
        clearTimeout(timer);
        client.off("serverUp", check);
        resolve();
      }
    };
    const timer = setTimeout(() => reject(new Error("the servers did not all answer")), WAIT_MS);
    client.on("serverUp", check);
    check();
  });
  traffic.start();
  await traffic.answersFrom("A", 0, 4);
  demo.ok("A, the first in the client's order of preference, answers every request");
  demo.say("B and C answer the client's pings, so it knows they are there; no request goes to");
  demo.say("them while A answers");

  /** Kills (SIGKILL) `role` and waits for `next` to answer. */
  async function killAndWatch(role: RoleProcess, next: string): Promise<void> {
    const since = traffic.count;
    await role.kill("SIGKILL");
    const answers = await traffic.answersFrom(next, since, 4);
    const during = traffic.outcomes.slice(since).filter((o) => o.n <= (answers.at(-1)?.n ?? 0));
    expectNoFailure(during, `after ${role.name} died`);
    demo.ok(`${next} answers now; no request failed, the slowest took ${ms(slowest(during))}`);
  }

  demo.step("Kill A with SIGKILL, while the requests go on.");
  await killAndWatch(serverA, "B");
  demo.say("the kill closed A's connection and the client saw it at once: had a request been");
  demo.say("outstanding at A, it would have moved on to B then, without waiting for a timeout");

  demo.step("Kill B too. Only C is left.");
  await killAndWatch(serverB, "C");

  demo.step("Restart A and B on the same endpoints.");
  {
    const since = traffic.count;
    await Promise.all([serverA.restart(), serverB.restart()]);
    const [back] = await traffic.answersFrom("A", since, 3);
    expectNoFailure(
      traffic.outcomes.slice(since).filter((o) => o.n <= (back?.n ?? 0)),
      "during the restarts",
    );
    demo.ok(`from request ${back?.n} on, A answers again: it answered a ping, and it comes first`);
    demo.say("(the Guide's agent would put A back at the end of its list, behind C and B)");
  }

  demo.step("Freeze A with SIGSTOP: its connection stays open, but it answers nothing.");
  {
    const since = traffic.count;
    const staleBefore = client.stats().dropped["stale reply"] ?? 0;
    process.kill(serverA.pid, "SIGSTOP");
    const [caught] = await traffic.answersFrom("B", since, 3);
    expectNoFailure(traffic.outcomes.slice(since), "while A was frozen");
    demo.ok(
      `request ${caught?.n} got no reply from A within ${ms(ATTEMPT)}, its share of the ${TIMEOUT} ms ` +
        `timeout, and B answered it (${ms(caught?.ms ?? 0)} in all)`,
    );
    demo.say("A is passed over until it answers again; the client keeps pinging it");
    const thawed = traffic.count;
    process.kill(serverA.pid, "SIGCONT");
    demo.say("A thawed with SIGCONT");
    const [back] = await traffic.answersFrom("A", thawed, 2);
    const stale = (client.stats().dropped["stale reply"] ?? 0) - staleBefore;
    demo.ok(`A answered a ping and takes the requests again from request ${back?.n}`);
    demo.say(`A's late reply to request ${caught?.n} came too, and was dropped as stale (${stale}`);
    demo.say("dropped): a reply only ever settles the request it answers");
  }

  demo.step("Kill all three servers with SIGKILL.");
  {
    const since = traffic.count;
    await Promise.all([serverA, serverB, serverC].map((role) => role.kill("SIGKILL")));
    const outcomes = await traffic.until(since, (list) => list.some((o) => !o.ok), "failure");
    const failure = outcomes.find((o) => !o.ok);
    const error = failure?.error;
    if (!(error instanceof RequestAbandonedError) || !isZmqPatternsError(error, "TIMEOUT")) {
      throw new Error(`unexpected error: ${String(error)}`);
    }
    demo.ok(`request ${failure?.n} rejected with ${error.name} (code ${error.code}):`);
    demo.say(`"${error.message}"`);
    demo.say("with no server up, a request waits for one until its timeout, then rejects; what");
    demo.say("to do next is the application's call. This one keeps asking.");

    const restarted = traffic.count;
    await serverC.restart();
    const [back] = await traffic.answersFrom("C", restarted, 2);
    demo.ok(`C restarted and answered request ${back?.n}: no reconnecting by hand`);
  }
  await traffic.stop();
  const failed = traffic.outcomes.filter((o) => !o.ok);
  demo.ok(
    `model 3 in all: ${traffic.count} requests, ${failed.length} failed, only while no server was up`,
  );
  await client.close();
  await stopAll([serverC]);
}

async function modelTwo(): Promise<void> {
  demo.step("Model 2, the shotgun: every request goes to every server, the first reply wins.");
  const endpoints = await threeEndpoints("2");
  const servers = await Promise.all(
    endpoints.map((endpoint) => startServer(2, `server ${name(endpoint)}`, endpoint)),
  );
  const client = track(new FreelanceClient({ model: 2, endpoints, timeoutMs: TIMEOUT }));
  const traffic = new Traffic(client, 50, false).start();
  const before = await traffic.until(0, (list) => list.filter((o) => o.ok).length >= 10, "answers");
  demo.ok(`${before.length} requests answered, the slowest in ${ms(slowest(before))}`);
  const since = traffic.count;
  await servers[0]?.kill("SIGKILL");
  demo.say("A2 killed with SIGKILL");
  const after = await traffic.until(since, (list) => list.length >= 10, "10 requests");
  await traffic.stop();
  expectNoFailure(traffic.outcomes, "with model 2");
  demo.ok(`${after.length} more requests answered, the slowest in ${ms(slowest(after))}`);
  const stats = client.stats();
  demo.say(
    `the price: ${stats.sends} copies sent for ${stats.requests} requests, and ` +
      `${stats.dropped["stale reply"] ?? 0} replies dropped as duplicates,`,
  );
  demo.say("since every live server does every request. The client's DEALER is `immediate`, so");
  demo.say("no copies queue up for A2 while it is down");
  await client.close();
  await stopAll(servers.slice(1));
}

async function modelOne(): Promise<void> {
  demo.step("Model 1, sequential failover: one server after the other, each with a timeout.");
  const endpoints = await threeEndpoints("1");
  const servers = await Promise.all(
    endpoints.map((endpoint) => startServer(1, `server ${name(endpoint)}`, endpoint)),
  );
  const client = track(
    new FreelanceClient({ model: 1, endpoints, attemptTimeoutMs: MODEL1_ATTEMPT }),
  );
  const first = new Traffic(client, INTERVAL, true).start();
  await first.answersFrom("A1", 0, 3);
  await first.stop();
  await servers[0]?.kill("SIGKILL");
  demo.say("A1 killed with SIGKILL");
  const second = new Traffic(client, INTERVAL, true, first.count + 1).start();
  const after = await second.until(0, (list) => list.length >= 3, "3 requests");
  await second.stop();
  expectNoFailure(after, "with model 1");
  demo.ok(`each request waits ${MODEL1_ATTEMPT} ms on A1 before B1 answers it`);
  demo.say("model 1 keeps no state between requests: a dead server costs a full attempt");
  demo.say("timeout on every request, for as long as it is down");
  await client.close();
  await stopAll(servers.slice(1));
}

await demo.run(async () => {
  demo.intro(
    "Three model-three servers in their own processes, A, B and C, and a client in this process",
    `that makes a request every ${INTERVAL} ms. The client pings the servers, sends each request`,
    "to the first live server in its order of preference (A, then B, then C), and moves on to",
    "the next when one dies or stops answering. Any server can answer any request; no broker.",
    "To keep the demo short, its timings are shorter than the Guide's (3 s, 2 s and 6 s):",
    `request timeout ${TIMEOUT} ms (${ms(ATTEMPT)} per attempt with three servers), ping every ${PING_INTERVAL} ms, server TTL ${SERVER_TTL} ms.`,
  );
  try {
    await modelThree();
    await modelTwo();
    await modelOne();
    demo.step("Every client is closed and every server stopped with SIGTERM (exit status 0).");
  } finally {
    for (const close of closers.splice(0).reverse()) await close();
  }
});
