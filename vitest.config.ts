import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { defineConfig } from "vitest/config";

const root = import.meta.dirname;

/** One vitest project per package (and per app that has tests), run against sources. */
const projects = ["packages", "apps"].flatMap((dir) =>
  existsSync(join(root, dir))
    ? readdirSync(join(root, dir))
        .filter((name) => existsSync(join(root, dir, name, "test")))
        .map((name) => ({
          extends: true as const,
          test: {
            name,
            root: join(root, dir, name),
            include: ["test/**/*.test.ts"],
          },
        }))
    : [],
);

export default defineConfig({
  root,
  resolve: { conditions: ["@zmq-patterns/source"] },
  ssr: { resolve: { conditions: ["@zmq-patterns/source"] } },
  test: {
    projects,
    testTimeout: 20_000,
    hookTimeout: 20_000,
    teardownTimeout: 10_000,
    pool: "forks",
    reporters: process.env.CI ? ["default"] : ["default"],
  },
});
