#!/usr/bin/env node
// `pnpm chaos`: builds what is not built yet (the example and the packages it runs on), then
// runs the harness (run.mjs) with the given options.
import { spawnSync } from "node:child_process";
import { join } from "node:path";

const build = spawnSync(
  "pnpm",
  ["exec", "turbo", "run", "build", "--filter=@rockraft/chaos...", "--output-logs=errors-only"],
  {
    cwd: join(import.meta.dirname, ".."),
    stdio: ["ignore", "ignore", "inherit"],
    env: { ...process.env, TURBO_TELEMETRY_DISABLED: "1", DO_NOT_TRACK: "1" },
  },
);
if (build.status !== 0) {
  console.error("chaos: the build failed; run `pnpm build` to see why");
  process.exit(build.status ?? 1);
}
await import("./run.mjs");
