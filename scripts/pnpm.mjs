#!/usr/bin/env node
// Runs the pnpm pinned in package.json through Node's bundled corepack, without prompting,
// so a machine with only Node.js 20 needs no global pnpm.
import { spawnSync } from "node:child_process";

const result = spawnSync("corepack", ["pnpm", ...process.argv.slice(2)], {
  stdio: "inherit",
  env: { ...process.env, COREPACK_ENABLE_DOWNLOAD_PROMPT: "0" },
});
if (result.error) {
  console.error(`could not run corepack: ${result.error.message}`);
  process.exit(1);
}
process.exit(result.status ?? 1);
