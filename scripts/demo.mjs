#!/usr/bin/env node
// `pnpm demo`: builds what is not built yet, then runs the example's three nodes together,
// each line prefixed with its node; Ctrl+C stops all three (each shuts down cleanly).
// The nodes use apps/basic-example/conf/node{1,2,3}.toml unchanged (data in /tmp/rockraft).
import { spawn, spawnSync } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { exampleCommand } from "@rockraft/test-utils";

const root = join(import.meta.dirname, "..");
const app = join(root, "apps/basic-example");
const env = { ...process.env, TURBO_TELEMETRY_DISABLED: "1", DO_NOT_TRACK: "1" };

const build = spawnSync(
  "pnpm",
  ["exec", "turbo", "run", "build", "--filter=basic-example...", "--output-logs=errors-only"],
  {
    cwd: root,
    stdio: "inherit",
    env,
  },
);
if (build.status !== 0) process.exit(build.status ?? 1);

const colors = ["\x1b[36m", "\x1b[35m", "\x1b[33m"];
const reset = "\x1b[0m";
const tty = process.stdout.isTTY === true;
const children = [];
let stopping = false;

function start(n) {
  const child = spawn(process.execPath, [...exampleCommand(), "--conf", `conf/node${n}.toml`], {
    cwd: app,
    stdio: ["ignore", "pipe", "pipe"],
    env,
  });
  const prefix = tty ? `${colors[n - 1]}[node${n}]${reset} ` : `[node${n}] `;
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on("line", (line) =>
      process.stdout.write(`${prefix}${line}\n`),
    );
  }
  child.on("exit", (code, signal) => {
    process.stdout.write(`${prefix}exited (${signal ?? code})\n`);
    if (!stopping && code !== 0) stopAll();
  });
  children.push(child);
}

function stopAll() {
  if (stopping) return;
  stopping = true;
  for (const child of children) if (child.exitCode === null) child.kill("SIGINT");
}

process.on("SIGINT", stopAll);
process.on("SIGTERM", stopAll);

start(1);
setTimeout(() => !stopping && start(2), 1000);
setTimeout(() => !stopping && start(3), 2000);

await new Promise((resolve) => setTimeout(resolve, 2100));
await Promise.all(
  children.map((child) =>
    child.exitCode !== null ? null : new Promise((resolve) => child.on("exit", resolve)),
  ),
);
process.exit(children.every((child) => child.exitCode === 0) ? 0 : 1);
