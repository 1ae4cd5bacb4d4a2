// Snapshot transfer, update fan-out and memory of a Clone server, against baselines measured in
// the same run.
//
// 1. Memory: a standalone CloneServer in this process is filled with KEYS keys (VALUE_BYTES-byte
//    values) through its collector; the heap (and the memory of Buffers outside it) is measured
//    after a full garbage collection before the server starts and once it holds every key.
// 2. Snapshot transfer: a standalone `clone server` process (the package's bin, from source)
//    holds KEYS keys; a new CloneClient in this process syncs from it, from construction to its
//    'synced' event (it asks for the snapshot 1 ms after connecting instead of waiting for the
//    first HUGZ, which the bin sends every second). Baseline: the same snapshot read by a bare
//    DEALER that sends ICANHAZ? and counts messages up to KTHXBAI, without decoding them.
// 3. Update fan-out: a bare PUB sends KVSETs with WINDOW in flight (one more each time the first
//    client sees one published); a second `clone server` process (its map starts empty)
//    sequences and publishes them to FANOUT CloneClients in this process. Baseline: the same
//    five-frame messages through a relay process (a SUB passing everything to a PUB, no
//    sequencing, no map) to FANOUT bare SUBs, with the same window. Rates are deliveries:
//    messages times subscribers.
//
// Results go to bench/results/clone.json. Run: `node ../../scripts/pnpm.mjs bench` in
// packages/clone. BENCH_WARMUP_MS, BENCH_DURATION_MS and BENCH_RUNS override the defaults of part
// 3 (BENCH_RUNS also sets the snapshot runs).
import { setTimeout as sleep } from "node:timers/promises";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import {
  type BenchResults,
  benchSettings,
  formatMachine,
  formatNumber,
  loadAverage,
  type Measurement,
  machineInfo,
  measurePipelined,
  median,
  printTable,
  ratio,
  runInterleaved,
  summarize,
  type Throughput,
  withPeers,
  writeResults,
} from "@zmq-patterns/bench-kit";
import { allocateAddress } from "@zmq-patterns/core/testing";
import { Dealer, Subscriber, XPublisher } from "zeromq";
import { CloneClient, CloneServer, encodeSnapshotRequest, KTHXBAI, KvMsg } from "../src/index.js";
import { allocateBase } from "../test/support.js";

/** Keys in the map of parts 1 and 2. */
const KEYS = 100_000;
/** Size of every value. */
const VALUE_BYTES = 32;
/** Writes (or raw messages) in flight in part 3. */
const WINDOW = 100;
/** Clients receiving each update in part 3. */
const FANOUT = 4;
/** Keys the writer of part 3 cycles through. */
const FAN_KEYS = 1000;

const CLI = new URL("../src/cli.ts", import.meta.url);
const RELAY = new URL("./relay-peer.ts", import.meta.url);
const HOST = "tcp://127.0.0.1";

const value = Buffer.alloc(VALUE_BYTES, "v");
const keyOf = (i: number): string => `/bench/${String(i).padStart(6, "0")}`;

/** Messages arrived at the first subscriber, taken one by one by the pipelined receive loop. */
class Arrivals {
  #unread = 0;
  #waiters: Array<() => void> = [];

  arrived(): void {
    const wake = this.#waiters.shift();
    if (wake) wake();
    else this.#unread++;
  }

  next(): Promise<void> {
    if (this.#unread > 0) {
      this.#unread--;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  reset(): void {
    this.#unread = 0;
  }
}

/** The `results` of bench/results/clone.json. */
interface CloneBench {
  keys: number;
  valueBytes: number;
  memory: {
    method: string;
    heapBytesPerKey: number;
    externalBytesPerKey: number;
    totalBytes: number;
    bytesPerKey: number;
  };
  snapshot: {
    /** CloneClient sync: construction to 'synced'. */
    clientMs: number;
    clientKeysPerSec: number;
    clientRunsMs: number[];
    /** Bare DEALER, ICANHAZ? to KTHXBAI. */
    rawMs: number;
    rawKeysPerSec: number;
    rawRunsMs: number[];
    vsRaw: number;
  };
  fanout: {
    subscribers: number;
    window: number;
    /** Deliveries per second (updates x subscribers). */
    cloneDeliveriesPerSec: number;
    cloneRuns: number[];
    rawDeliveriesPerSec: number;
    rawRuns: number[];
    vsRaw: number;
  };
}

const settings = benchSettings({ warmupMs: 500, durationMs: 2000, runs: 3 });
const machine = machineInfo();
const began = performance.now();
const loadBefore = loadAverage();
console.log(`clone on ${formatMachine(machine)}`);

// --- 1. memory -----------------------------------------------------------------------------------

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

/** An update publisher that knows when a collector has subscribed, never dropping (no HWM). */
async function filler(collector: string): Promise<XPublisher> {
  const socket = new XPublisher({ linger: 0, sendHighWaterMark: 0 });
  socket.connect(collector);
  await socket.receive(); // the collector's subscription
  return socket;
}

async function fill(socket: XPublisher, done: () => Promise<void>): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < KEYS; i++) {
    await socket.send(new KvMsg({ key: keyOf(i), uuid: "random", body: value }).encode());
  }
  await done();
  return performance.now() - start;
}

function memory(): { heap: number; external: number } {
  for (let i = 0; i < 3; i++) gc();
  const usage = process.memoryUsage();
  return { heap: usage.heapUsed, external: usage.arrayBuffers };
}

console.error(`  memory: filling an in-process server with ${formatNumber(KEYS)} keys`);
const memoryResult = await (async () => {
  const before = memory();
  const server = await CloneServer.start({
    endpoints: {
      snapshot: await allocateAddress("tcp"),
      publisher: await allocateAddress("tcp"),
      collector: await allocateAddress("tcp"),
    },
  });
  try {
    const socket = await filler(server.endpoints.collector);
    await fill(socket, async () => {
      while (server.sequence < KEYS) await sleep(20);
    });
    socket.close();
    await sleep(100);
    const after = memory();
    if (server.stats().keys !== KEYS) throw new Error(`server holds ${server.stats().keys} keys`);
    const heap = after.heap - before.heap;
    const external = after.external - before.external;
    return {
      method:
        "process.memoryUsage() heapUsed and arrayBuffers after gc() (--expose-gc set at run time), before the server started and once it held every key",
      heapBytesPerKey: Math.round(heap / KEYS),
      externalBytesPerKey: Math.round(external / KEYS),
      totalBytes: heap + external,
      bytesPerKey: Math.round((heap + external) / KEYS),
    };
  } finally {
    await server.close();
  }
})();

// --- 2 and 3: a server process -------------------------------------------------------------------

const results = await withPeers(async (peers): Promise<CloneBench> => {
  const port = await allocateBase();
  const fanPort = await allocateBase();
  const [relay, server, fanServer] = await Promise.all([
    peers.start(RELAY, { name: "relay", readyPattern: /^ready (\S+) (\S+)/m }),
    ...[port, fanPort].map((base, i) =>
      peers.start(CLI, {
        name: i === 0 ? "clone-server" : "clone-fan-server",
        args: ["server", "--port", String(base), "--host", HOST],
        readyPattern: /clone server ready: standalone, snapshot (\S+),/,
      }),
    ),
  ]);
  const address = `${HOST}:${port}`;
  const fanAddress = `${HOST}:${fanPort}`;

  console.error(`  snapshot: filling the server process with ${formatNumber(KEYS)} keys`);
  const hugz = new Subscriber({ linger: 0 });
  peers.defer(() => hugz.close());
  hugz.subscribe("HUGZ");
  hugz.connect(`${HOST}:${port + 1}`);
  const fillMs = await fill(await filler(`${HOST}:${port + 2}`), async () => {
    for (;;) {
      const msg = KvMsg.decode(await hugz.receive());
      if (msg.sequence >= KEYS) return;
    }
  });
  console.error(`  filled in ${(fillMs / 1000).toFixed(1)} s (HUGZ every second included)`);

  const clientRuns: number[] = [];
  const rawRuns: number[] = [];
  for (let run = 1; run <= settings.runs; run++) {
    const start = performance.now();
    const client = new CloneClient({ servers: [address], subscribeWaitMs: 1 });
    await client.synced();
    const clientMs = performance.now() - start;
    if (client.size !== KEYS) throw new Error(`client synced ${client.size} keys`);
    await client.close();
    clientRuns.push(clientMs);

    const dealer = new Dealer({ linger: 0, receiveTimeout: 30_000 });
    const rawStart = performance.now();
    dealer.connect(address);
    await dealer.send(encodeSnapshotRequest(""));
    let received = 0;
    for (;;) {
      const [key] = await dealer.receive();
      if (key?.toString() === KTHXBAI) break;
      received += 1;
    }
    const rawMs = performance.now() - rawStart;
    dealer.close();
    if (received !== KEYS) throw new Error(`raw snapshot had ${received} keys`);
    rawRuns.push(rawMs);
    console.error(
      `  snapshot run ${run}/${settings.runs}: CloneClient ${clientMs.toFixed(0)} ms, bare DEALER ${rawMs.toFixed(0)} ms`,
    );
  }

  await server?.stop();

  // Part 3: the Clone fan-out, on a server of its own whose map starts empty.
  const clients = Array.from({ length: FANOUT }, () => {
    const client = new CloneClient({ servers: [fanAddress], subscribeWaitMs: 1 });
    peers.defer(() => client.close());
    return client;
  });
  await Promise.all(clients.map((c) => c.synced()));
  // The updates go out on a bare PUB, as in the baseline (CloneClient.set cannot be called again
  // before its previous send has finished, see the report), and the first client's changes pace it.
  const changes = clients.map(() => 0);
  const cloneArrivals = new Arrivals();
  for (const [i, client] of clients.entries()) {
    client.on("change", () => {
      (changes[i] as number)++;
      if (i === 0) cloneArrivals.arrived();
    });
  }
  const updater = await filler(`${HOST}:${fanPort + 2}`);
  peers.defer(() => updater.close());
  let n = 0;
  const cloneFanout: Measurement = {
    name: `Clone fan-out to ${FANOUT} clients`,
    run: async (timing) => {
      const result = await measurePipelined({
        ...timing,
        window: WINDOW,
        send: async () => {
          const msg = new KvMsg({ key: `/fan/${n++ % FAN_KEYS}`, uuid: "random", body: value });
          await updater.send(msg.encode());
        },
        receive: () => cloneArrivals.next(),
      });
      await allEqual(changes, "Clone clients");
      return deliveries(result);
    },
  };

  // Part 3: the raw baseline.
  const [, relayIn, relayOut] = relay.ready as unknown as [string, string, string];
  const subscribers = Array.from({ length: FANOUT }, () => {
    const sub = new Subscriber({ linger: 0 });
    peers.defer(() => sub.close());
    sub.subscribe();
    sub.connect(relayOut);
    return sub;
  });
  const counts = subscribers.map(() => 0);
  const rawArrivals = new Arrivals();
  for (const [i, sub] of subscribers.entries()) {
    void (async () => {
      try {
        for await (const _ of sub) {
          (counts[i] as number)++;
          if (i === 0) rawArrivals.arrived();
        }
      } catch {
        // closed
      }
    })();
  }
  const pub = await filler(relayIn);
  peers.defer(() => pub.close());
  // Until every subscriber gets the probes, its subscription has not reached the relay.
  while (counts.some((c) => c === 0)) {
    await pub.send(new KvMsg({ key: "/probe", uuid: "random", body: value }).encode());
    await sleep(20);
  }
  // The last probes may still be on their way: wait until all arrived, then start counting.
  await sleep(100);
  counts.fill(0);
  rawArrivals.reset();
  const rawFanout: Measurement = {
    name: `raw PUB/SUB fan-out to ${FANOUT} SUBs`,
    run: async (timing) => {
      let seq = 0;
      const result = await measurePipelined({
        ...timing,
        window: WINDOW,
        send: async () => {
          const msg = new KvMsg({
            key: `/fan/${seq % FAN_KEYS}`,
            sequence: ++seq,
            uuid: "random",
            body: value,
          });
          await pub.send(msg.encode());
        },
        receive: () => rawArrivals.next(),
      });
      await allEqual(counts, "raw SUBs");
      return deliveries(result);
    },
  };

  console.error(`  fan-out to ${FANOUT}, window ${WINDOW}`);
  const [rawRunsFan, cloneRunsFan] = await runInterleaved(settings, [rawFanout, cloneFanout]);
  const raw = summarize(rawRunsFan ?? []);
  const clone = summarize(cloneRunsFan ?? []);
  for (const client of clients) await client.close();
  await fanServer?.stop();

  const clientMs = median(clientRuns);
  const rawMs = median(rawRuns);
  return {
    keys: KEYS,
    valueBytes: VALUE_BYTES,
    memory: memoryResult,
    snapshot: {
      clientMs: round1(clientMs),
      clientKeysPerSec: Math.round(KEYS / (clientMs / 1000)),
      clientRunsMs: clientRuns.map(round1),
      rawMs: round1(rawMs),
      rawKeysPerSec: Math.round(KEYS / (rawMs / 1000)),
      rawRunsMs: rawRuns.map(round1),
      vsRaw: round3(rawMs / clientMs),
    },
    fanout: {
      subscribers: FANOUT,
      window: WINDOW,
      cloneDeliveriesPerSec: clone.msgsPerSec,
      cloneRuns: clone.runs,
      rawDeliveriesPerSec: raw.msgsPerSec,
      rawRuns: raw.runs,
      vsRaw: round3(clone.msgsPerSec / raw.msgsPerSec),
    },
  };
});

const data: BenchResults<CloneBench> = {
  name: "clone",
  date: new Date().toISOString(),
  machine,
  settings,
  results,
};
const path = writeResults("clone", data);

const runsOf = (values: number[]): string => values.map((v) => formatNumber(v)).join(" / ");
const s = results.snapshot;
printTable(
  `clone, snapshot of ${formatNumber(KEYS)} keys (${VALUE_BYTES}-byte values), tcp 127.0.0.1, median of ${settings.runs}`,
  [
    {
      measurement: "baseline: bare DEALER, ICANHAZ? to KTHXBAI, no decoding",
      "keys/s": s.rawKeysPerSec,
      time: `${formatNumber(s.rawMs)} ms`,
      "vs baseline": ratio(s.rawKeysPerSec, s.rawKeysPerSec),
      runs: `${runsOf(s.rawRunsMs)} ms`,
    },
    {
      measurement: "CloneClient, construction to synced",
      "keys/s": s.clientKeysPerSec,
      time: `${formatNumber(s.clientMs)} ms`,
      "vs baseline": ratio(s.clientKeysPerSec, s.rawKeysPerSec),
      runs: `${runsOf(s.clientRunsMs)} ms`,
    },
  ],
);
const f = results.fanout;
printTable(
  `clone, update fan-out to ${FANOUT} subscribers, window ${WINDOW}, median of ${settings.runs} x ${settings.durationMs / 1000} s`,
  [
    {
      measurement: "baseline: raw SUB->PUB relay process, bare SUBs",
      "deliveries/s": f.rawDeliveriesPerSec,
      "updates/s": Math.round(f.rawDeliveriesPerSec / FANOUT),
      "vs baseline": ratio(f.rawDeliveriesPerSec, f.rawDeliveriesPerSec),
      runs: runsOf(f.rawRuns),
    },
    {
      measurement: "Clone server process, CloneClients",
      "deliveries/s": f.cloneDeliveriesPerSec,
      "updates/s": Math.round(f.cloneDeliveriesPerSec / FANOUT),
      "vs baseline": ratio(f.cloneDeliveriesPerSec, f.rawDeliveriesPerSec),
      runs: runsOf(f.cloneRuns),
    },
  ],
);
const m = results.memory;
printTable(
  `clone, server memory for ${formatNumber(KEYS)} keys (${VALUE_BYTES}-byte values, 13-byte keys)`,
  [
    {
      measurement: "in-process CloneServer",
      "heap B/key": m.heapBytesPerKey,
      "Buffers B/key": m.externalBytesPerKey,
      "total B/key": m.bytesPerKey,
      total: `${formatNumber(m.totalBytes / 1024 / 1024, 1)} MiB`,
    },
  ],
  [
    `memory: ${m.method}`,
    "processes: this one (clients, bare DEALER and SUBs, the memory server); two clone server " +
      "commands (snapshot, fan-out); the relay",
    `machine: ${formatMachine(machine)}`,
    `load average (1, 5, 15 min): ${loadBefore} before, ${loadAverage()} after`,
    `written to ${path} in ${((performance.now() - began) / 1000).toFixed(1)} s`,
  ],
);

// ---------------------------------------------------------------------------------------------

/** Deliveries instead of messages: every message reached each of the FANOUT subscribers. */
function deliveries(result: Throughput): Throughput {
  return {
    messages: result.messages * FANOUT,
    seconds: result.seconds,
    msgsPerSec: result.msgsPerSec * FANOUT,
  };
}

/** Waits until every subscriber got as many messages as the first (none lost). */
async function allEqual(counters: number[], what: string): Promise<void> {
  const deadline = performance.now() + 10_000;
  while (counters.some((c) => c !== counters[0])) {
    if (performance.now() > deadline) throw new Error(`${what} lost messages: ${counters}`);
    await sleep(10);
  }
}

function round1(value: number): number {
  return Math.round(value * 10) / 10;
}

function round3(value: number): number {
  return Math.round(value * 1000) / 1000;
}
