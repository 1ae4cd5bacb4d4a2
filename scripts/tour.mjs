#!/usr/bin/env node
// The demo tour: runs the demo apps one after the other, in the order the patterns build on each
// other. `node scripts/tour.mjs` runs every demo present under apps/; `node scripts/tour.mjs <name>`
// runs one. Each demo is its app's `start` script, run directly (no package manager in between, so
// signals and exit codes reach the demo and come back unchanged).
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { delimiter, join, relative } from "node:path";

const root = join(import.meta.dirname, "..");

/** Every demo of the tour, in order. The app of `<name>` lives in `apps/<name>-demo`. */
const DEMOS = [
  "core",
  "lazy-pirate",
  "simple-pirate",
  "paranoid-pirate",
  "majordomo",
  "titanic",
  "binary-star",
  "freelance",
  "clone",
];

const SIGNAL_NUMBERS = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15 };

function usage() {
  return [
    "usage: node scripts/tour.mjs [<demo>]",
    "       npm run tour [-- <demo>]",
    "",
    "Runs every demo found under apps/, or only <demo>.",
    `Demos, in tour order: ${DEMOS.join(", ")}`,
  ].join("\n");
}

function fail(message) {
  console.error(`tour: ${message}`);
  process.exit(1);
}

function appDir(name) {
  return join(root, "apps", `${name}-demo`);
}

/** Reads the `start` script of a demo app; fails with a clear message when there is none. */
function startScript(name) {
  const manifest = join(appDir(name), "package.json");
  if (!existsSync(manifest)) fail(`${relative(root, appDir(name))} has no package.json`);
  let pkg;
  try {
    pkg = JSON.parse(readFileSync(manifest, "utf8"));
  } catch (err) {
    fail(`cannot read ${relative(root, manifest)}: ${err.message}`);
  }
  const script = pkg?.scripts?.start;
  if (typeof script !== "string" || script.trim() === "") {
    fail(`${relative(root, manifest)} has no "start" script`);
  }
  return script;
}

function banner(index, total, name) {
  const line = "=".repeat(72);
  const where = relative(root, appDir(name));
  console.log(`\n${line}\n  zmq-patterns tour ${index}/${total}: ${name}  (${where})\n${line}\n`);
}

function seconds(ms) {
  return `${(ms / 1000).toFixed(1)} s`;
}

// ---------------------------------------------------------------------------------------------
// Which demos to run.

const args = process.argv.slice(2);
if (args.includes("-h") || args.includes("--help")) {
  console.log(usage());
  process.exit(0);
}
if (args.length > 1) fail(`expected at most one demo name, got ${args.length}\n\n${usage()}`);

let selected;
if (args.length === 1) {
  const name = args[0]
    .replace(/^apps\//, "")
    .replace(/\/$/, "")
    .replace(/-demo$/, "");
  if (!DEMOS.includes(name)) {
    fail(`unknown demo "${args[0]}". Known demos: ${DEMOS.join(", ")}`);
  }
  if (!existsSync(appDir(name))) {
    fail(`the ${name} demo (${relative(root, appDir(name))}) is not in this checkout yet`);
  }
  selected = [name];
} else {
  selected = DEMOS.filter((name) => existsSync(appDir(name)));
  if (selected.length === 0) {
    console.log("tour: no demo apps under apps/ yet; nothing to run.");
    process.exit(0);
  }
}

// ---------------------------------------------------------------------------------------------
// Running one demo, with SIGINT/SIGTERM forwarded to it.

const posix = process.platform !== "win32";
let current; // the running demo's child process
let stopping; // the signal that asked the tour to stop, if any

function signalDemo(signal) {
  if (current === undefined || current.exitCode !== null || current.signalCode !== null) return;
  try {
    // On POSIX the demo runs in its own process group, so the shell, the demo and anything it
    // started all get the signal, exactly once.
    if (posix) process.kill(-current.pid, signal);
    else current.kill(signal);
  } catch {
    // Already gone.
  }
}

for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(signal, () => {
    if (stopping === undefined) {
      stopping = signal;
      console.error(`\ntour: ${signal} received, stopping the running demo...`);
    }
    signalDemo(signal);
    if (current === undefined) process.exit(128 + SIGNAL_NUMBERS[signal]);
  });
}
// Never leave a demo behind, whatever ends the tour.
process.on("exit", () => signalDemo("SIGKILL"));

function binPath(name) {
  const bins = [join(appDir(name), "node_modules", ".bin"), join(root, "node_modules", ".bin")];
  return [...bins, process.env.PATH ?? ""].join(delimiter);
}

function runDemo(name) {
  const script = startScript(name);
  const pathKey = Object.keys(process.env).find((key) => key.toUpperCase() === "PATH") ?? "PATH";
  return new Promise((resolve) => {
    current = spawn(script, {
      cwd: appDir(name),
      stdio: "inherit",
      shell: true,
      detached: posix,
      env: { ...process.env, [pathKey]: binPath(name) },
    });
    current.on("error", (err) => {
      console.error(`tour: cannot start the ${name} demo: ${err.message}`);
      current = undefined;
      resolve(1);
    });
    current.on("exit", (code, signal) => {
      current = undefined;
      if (signal !== null) resolve(128 + (SIGNAL_NUMBERS[signal] ?? 0));
      else resolve(code ?? 1);
    });
  });
}

// ---------------------------------------------------------------------------------------------

const started = performance.now();
const results = [];
for (const [i, name] of selected.entries()) {
  if (stopping !== undefined) break;
  banner(i + 1, selected.length, name);
  const t0 = performance.now();
  const code = await runDemo(name);
  results.push({ name, code, ms: performance.now() - t0 });
  if (stopping !== undefined) {
    console.error(`\ntour: stopped by ${stopping} during the ${name} demo.`);
    process.exit(128 + SIGNAL_NUMBERS[stopping]);
  }
  if (code !== 0) {
    console.error(`\ntour: the ${name} demo failed (exit code ${code}); stopping the tour.`);
    process.exit(code);
  }
}

const line = "=".repeat(72);
console.log(`\n${line}`);
for (const { name, ms } of results) console.log(`  ok  ${name.padEnd(18)} ${seconds(ms)}`);
console.log(
  `  ${results.length} demo(s) passed in ${seconds(performance.now() - started)}\n${line}`,
);
