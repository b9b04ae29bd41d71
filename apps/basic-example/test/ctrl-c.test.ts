import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, test } from "vitest";
import { freePorts, waitFor } from "@rockraft/test-utils";

// Ctrl+C in a terminal sends SIGINT to the whole foreground process group: pnpm, the shell
// it runs the script with, and node. The user must see only the node's own shutdown lines,
// and the command must exit 0.
let dir: string | undefined;
afterAll(() => (dir === undefined ? undefined : rm(dir, { recursive: true, force: true })));

test(
  "Ctrl+C through `pnpm --filter basic-example start` shuts the node down and exits 0, with no pnpm error",
  { timeout: 60_000 },
  async () => {
    // A one-node cluster: it starts, writes and reports "is running" on its own.
    dir = await mkdtemp(join(tmpdir(), "rockraft-ctrl-c-"));
    const [port] = await freePorts(1);
    const confPath = join(dir, "node1.toml");
    await writeFile(
      confPath,
      `[node]\nnode_id = 1\nraft_addr = "127.0.0.1:${port}"\n\n[rocksdb]\ndata_path = "${join(dir, "data")}"\n\n` +
        `[log]\nlevel = "warn"\n\n[cluster]\n[[cluster.members]]\nnode_id = 1\naddr = "127.0.0.1:${port}"\n`,
    );
    const root = join(import.meta.dirname, "../../..");
    // Its own process group, as a terminal's foreground job.
    const child = spawn("pnpm", ["--filter", "basic-example", "start", "--", "--conf", confPath], {
      cwd: root,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on("exit", (code, signal) => resolve({ code, signal })),
    );
    await waitFor(() => /is running/.test(output), "the node to start", 30_000);
    process.kill(-child.pid!, "SIGINT");
    const { code, signal } = await exited;
    expect(output).toContain("shut down cleanly");
    expect(output).not.toMatch(/ERR_PNPM|ELIFECYCLE|Command failed/);
    expect({ code, signal }).toEqual({ code: 0, signal: null });
  },
);
