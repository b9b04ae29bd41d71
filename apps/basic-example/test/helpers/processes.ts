import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { freePorts } from "@rockraft/test-utils";
import { tmpdir } from "node:os";
import { join } from "node:path";

const appDir = join(import.meta.dirname, "../..");

/** `pnpm start`'s command line after `node` (V8 flags and script): nodes run as users run them. */
function startCommand(): string[] {
  const manifest = JSON.parse(readFileSync(join(appDir, "package.json"), "utf8")) as {
    scripts: { start: string };
  };
  const [node, ...rest] = manifest.scripts.start.replace(/^exec\s+/, "").split(/\s+/);
  if (node !== "node") throw new Error(`the start script does not run node: ${node}`);
  return rest;
}

export { freePorts };

/** One example node running as a real child process (`pnpm start`'s command, `--conf ...`). */
export class NodeProcess {
  child: ChildProcess | undefined;
  output = "";
  errors = "";
  exitCode: number | null | undefined;
  signal: NodeJS.Signals | null | undefined;

  constructor(
    readonly id: number,
    readonly confPath: string,
    readonly address: string,
    /** `node`'s arguments before `--conf`: by default the start script's. */
    readonly command: readonly string[] = startCommand(),
  ) {}

  start(): void {
    this.output = "";
    this.errors = "";
    this.exitCode = undefined;
    this.signal = undefined;
    const child = spawn(process.execPath, [...this.command, "--conf", this.confPath], {
      cwd: appDir,
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout.on("data", (chunk: Buffer) => (this.output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (this.errors += chunk.toString()));
    child.on("exit", (code, signal) => {
      this.exitCode = code;
      this.signal = signal;
    });
    this.child = child;
  }

  running(): boolean {
    return this.child !== undefined && this.exitCode === undefined;
  }

  /** Resolves when stdout has a line matching `pattern`. */
  async waitForOutput(pattern: RegExp, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pattern.test(this.output)) {
      if (this.exitCode !== undefined) {
        throw new Error(
          `node ${this.id} exited (${this.exitCode ?? this.signal}) before printing ${pattern}:\n${this.output}\n${this.errors}`,
        );
      }
      if (Date.now() > deadline)
        throw new Error(
          `node ${this.id} did not print ${pattern} within ${timeoutMs} ms:\n${this.output}\n${this.errors}`,
        );
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  async stop(
    signal: NodeJS.Signals,
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const child = this.child;
    if (child === undefined || this.exitCode !== undefined)
      return { code: this.exitCode ?? null, signal: this.signal ?? null };
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once("exit", (code, sig) => resolve({ code, signal: sig })),
    );
    child.kill(signal);
    return exited;
  }
}

/**
 * Three example nodes with configs in a temp directory (free ports, own data paths);
 * `extra(dir)` is appended to each node's file (say a `[tls]` table of files in `dir`).
 */
export async function exampleCluster(extra: (dir: string) => string = () => ""): Promise<{
  dir: string;
  nodes: NodeProcess[];
  cleanup: () => Promise<void>;
}> {
  const dir = await mkdtemp(join(tmpdir(), "rockraft-example-"));
  const ports = await freePorts(3);
  const members = ports
    .map((port, i) => `[[cluster.members]]\nnode_id = ${i + 1}\naddr = "127.0.0.1:${port}"\n`)
    .join("\n");
  const nodes: NodeProcess[] = [];
  for (const [i, port] of ports.entries()) {
    const id = i + 1;
    const confPath = join(dir, `node${id}.toml`);
    await writeFile(
      confPath,
      `[node]\nnode_id = ${id}\nraft_addr = "127.0.0.1:${port}"\n\n[rocksdb]\ndata_path = "${join(dir, `data${id}`)}"\n\n` +
        `[raft]\ntick_interval_ms = 20\nheartbeat_interval_ms = 100\nelection_timeout_min_ms = 500\nelection_timeout_max_ms = 1000\n\n` +
        `[log]\nlevel = "warn"\n\n[cluster]\n${members}\n${extra(dir)}`,
    );
    nodes.push(new NodeProcess(id, confPath, `127.0.0.1:${port}`));
  }
  return {
    dir,
    nodes,
    cleanup: async () => {
      await Promise.all(nodes.map((node) => node.stop("SIGKILL")));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The example's three nodes started as the seed's README does: node 1 first, then 2 and 3. */
export async function startExampleCluster(
  extra?: (dir: string) => string,
): Promise<Awaited<ReturnType<typeof exampleCluster>>> {
  const cluster = await exampleCluster(extra);
  try {
    const [n1, n2, n3] = cluster.nodes as [NodeProcess, NodeProcess, NodeProcess];
    n1.start();
    await n1.waitForOutput(/Initial log committed successfully/);
    n2.start();
    await n1.waitForOutput(/Raft node 1 is running/);
    n3.start();
    await n3.waitForOutput(/Raft node 3 is running/);
  } catch (error) {
    await cluster.cleanup();
    throw error;
  }
  return cluster;
}
