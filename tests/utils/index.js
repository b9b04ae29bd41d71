// Helpers shared by the repository's tests and scripts (plain JavaScript, so that the
// scripts under scripts/ use them too; index.d.ts types them).
export { checkKey, describe, firstViolation, step } from "./linearizability.js";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";

/**
 * Ports free right now on 127.0.0.1, for servers that bind them later (a node's, restarted
 * on the same port after a kill). Picked below the kernel's ephemeral range where there is
 * room: a port in it can be taken meanwhile as the local port of any outgoing connection
 * on the machine, and the node's bind would then fail with EADDRINUSE. Elsewhere the
 * operating system picks them.
 */
export async function freePorts(count) {
  const below = ephemeralStart();
  if (below === undefined || below - PICK_FROM < 1_000) return systemPorts(count);
  const ports = new Set();
  for (let tries = 0; ports.size < count; tries++) {
    if (tries >= 1_000) throw new Error(`freePorts: no free port below ${below} in 1,000 tries`);
    const port = PICK_FROM + Math.floor(Math.random() * (below - PICK_FROM));
    if (!ports.has(port) && (await bindable(port))) ports.add(port);
  }
  return [...ports];
}

/** The lowest port picked: above the well-known and most registered services' ports. */
const PICK_FROM = 10_000;

/** Where the kernel's ephemeral ports start (Linux), if it says. */
function ephemeralStart() {
  try {
    const [start] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8")
      .trim()
      .split(/\s+/)
      .map(Number);
    return Number.isInteger(start) ? start : undefined;
  } catch {
    return undefined;
  }
}

/** Whether a server can listen on `port` of 127.0.0.1 now. */
function bindable(port) {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/** Ports the operating system picks (in its ephemeral range). */
async function systemPorts(count) {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise((resolve, reject) => {
          const server = createServer();
          server.once("error", reject);
          server.listen(0, "127.0.0.1", () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((server) => server.address().port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

/**
 * Polls `condition` until it returns a value other than undefined or false, or the deadline
 * passes; resolves with that value. The error names what was awaited, and the condition's
 * last error if it threw.
 */
export async function waitFor(condition, what, timeoutMs = 10_000, pollMs = 10) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  for (;;) {
    try {
      const value = await condition();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      const last = lastError === undefined ? "" : `; last error: ${lastError.message}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last}`);
    }
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}

/**
 * The example's `pnpm start` command line after `node` (its V8 flags and script), so that
 * the benchmarks and `pnpm demo` run the nodes exactly as a user does.
 */
export function exampleCommand() {
  const app = join(import.meta.dirname, "../../apps/basic-example");
  const manifest = JSON.parse(readFileSync(join(app, "package.json"), "utf8"));
  const [node, ...rest] = manifest.scripts.start.replace(/^exec\s+/, "").split(/\s+/);
  if (node !== "node") throw new Error(`basic-example's start script does not run node: ${node}`);
  return rest;
}

/**
 * Makes sure etcd is on the PATH: installs Debian's etcd-server when it is missing (the
 * cluster benchmark and `pnpm chaos --target etcd` compare against it).
 */
export function ensureEtcd() {
  if (spawnSync("which", ["etcd"]).status === 0) return;
  console.error("etcd not found: installing Debian's etcd-server...");
  const install = spawnSync("apt-get", ["install", "-y", "etcd-server"], {
    stdio: "inherit",
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  });
  if (install.status !== 0) throw new Error("apt-get install etcd-server failed");
}
