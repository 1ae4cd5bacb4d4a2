#!/usr/bin/env node
// Runs the pnpm pinned in package.json through Node's bundled corepack, without prompting, so a
// machine with only Node.js 20 needs no global pnpm. corepack's pnpm shim is installed into a
// git-ignored folder put first on PATH, because turbo and nested scripts look for `pnpm` there.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const shims = join(root, ".corepack-bin");
const env = { ...process.env, COREPACK_ENABLE_DOWNLOAD_PROMPT: "0" };

if (!existsSync(join(shims, "pnpm"))) {
  mkdirSync(shims, { recursive: true });
  const enable = spawnSync("corepack", ["enable", "--install-directory", shims, "pnpm"], {
    stdio: "inherit",
    env,
  });
  if (enable.status !== 0) {
    console.error("could not set up pnpm through corepack");
    process.exit(enable.status ?? 1);
  }
}
env.PATH = `${shims}${delimiter}${env.PATH ?? ""}`;

const result = spawnSync("pnpm", process.argv.slice(2), {
  stdio: "inherit",
  env,
  cwd: process.cwd(),
});
if (result.error) {
  console.error(`could not run pnpm: ${result.error.message}`);
  process.exit(1);
}
process.exit(result.status ?? 1);
