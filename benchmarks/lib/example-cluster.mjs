// Shared by the cluster benchmarks: builds what is not built, and runs the example's three
// nodes as processes on free 127.0.0.1 ports with their data in a temp directory, started
// exactly as a user starts them (the example's start command, from @rockraft/test-utils).
import { spawn, spawnSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { exampleCommand, freePorts } from "@rockraft/test-utils";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const root = join(import.meta.dirname, "../..");

/** Runs `turbo build` quietly; exits the process if it fails. */
export function buildAll() {
  const build = spawnSync("pnpm", ["exec", "turbo", "run", "build", "--output-logs=errors-only"], {
    cwd: root,
    stdio: "inherit",
  });
  if (build.status !== 0) process.exit(1);
}

const leftChildren = new Set();
const leftDirs = new Set();
let exitHooked = false;

/**
 * Makes sure `child` (SIGKILL) and `dir` do not outlive this process when it ends without
 * stopping them: an error thrown half-way, or SIGTERM (e.g. from `timeout`).
 */
export function cleanUpOnExit({ child, dir }) {
  if (!exitHooked) {
    exitHooked = true;
    process.on("exit", () => {
      for (const left of leftChildren) left.kill("SIGKILL");
      for (const left of leftDirs) rmSync(left, { recursive: true, force: true });
    });
    process.once("SIGTERM", () => process.exit(143));
  }
  if (child !== undefined) {
    leftChildren.add(child);
    child.once("exit", () => leftChildren.delete(child));
  }
  if (dir !== undefined) leftDirs.add(dir);
}

export { freePorts };

/** The p-th percentile (0-100) of ascending `sorted`; 0 when it is empty. */
export function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

/** CPU seconds (user + system) a process has used so far (Linux /proc). */
export function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * Starts three example nodes and waits until each says it is running. `nodeArgs` go after
 * the start script's own flags and before the script (e.g. --cpu-prof), so they can also
 * override those flags. Returns the nodes, their endpoints, the temp dir and `stop`
 * (SIGINT, wait, delete the temp dir).
 */
export async function startExampleCluster({ nodeArgs = [], prefix = "rockraft-bench-" } = {}) {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  cleanUpOnExit({ dir });
  const ports = await freePorts(3);
  const members = ports
    .map((port, i) => `[[cluster.members]]\nnode_id = ${i + 1}\naddr = "127.0.0.1:${port}"\n`)
    .join("\n");
  const nodes = [];
  for (const [i, port] of ports.entries()) {
    const conf = join(dir, `node${i + 1}.toml`);
    const data = join(dir, `data${i + 1}`);
    await writeFile(
      conf,
      `[node]\nnode_id = ${i + 1}\nraft_addr = "127.0.0.1:${port}"\n\n[rocksdb]\ndata_path = "${data}"\n\n[log]\nlevel = "warn"\n\n[cluster]\n${members}`,
    );
    const start = exampleCommand(); // [...flags, script]
    const command = [...start.slice(0, -1), ...nodeArgs, start.at(-1), "--conf", conf];
    const child = spawn(process.execPath, command, {
      cwd: join(root, "apps/basic-example"),
      stdio: ["ignore", "pipe", "inherit"],
    });
    cleanUpOnExit({ child });
    let output = "";
    child.stdout.on("data", (chunk) => (output += chunk));
    nodes.push({ child, data, output: () => output });
  }
  const stop = async () => {
    for (const node of nodes) node.child.kill("SIGINT");
    await Promise.all(
      nodes.map(
        (node) =>
          new Promise((resolve) =>
            node.child.exitCode !== null ? resolve() : node.child.on("exit", resolve),
          ),
      ),
    );
    await rm(dir, { recursive: true, force: true });
  };
  process.on("SIGINT", () => void stop().then(() => process.exit(130)));
  const deadline = Date.now() + 60_000;
  while (!nodes.every((node) => /is running/.test(node.output()))) {
    if (Date.now() > deadline) {
      await stop();
      throw new Error("the example cluster did not start within 60 s");
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { dir, nodes, endpoints: ports.map((port) => `127.0.0.1:${port}`), stop };
}
