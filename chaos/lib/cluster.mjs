// The example's node processes for `pnpm chaos`: started with the example's own start
// command and generated config files, on free 127.0.0.1 ports, with their data and logs in
// the run directory; killed, restarted, paused and resumed on demand.
import { spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { exampleCommand, freePorts, waitFor } from "@rockraft/test-utils";
import { RockraftClient } from "@rockraft/transport-grpc";

const APP = join(import.meta.dirname, "../../apps/basic-example");
const live = new Set();
process.on("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

export class ExampleCluster {
  /**
   * `dir`: the run directory; `nodes`: 3 or 5; `readMode`: the config's `read_mode`;
   * `network`: a NodeNetwork to run each node in its own namespace (for partitions).
   */
  constructor({ dir, nodes, readMode, network, unsafe }) {
    this.dir = dir;
    this.unsafe = unsafe;
    this.network = network;
    this.count = nodes;
    this.readMode = readMode;
    this.endpoints = [];
    /** Per node id: { child, output, paused }. */
    this.nodes = new Map();
  }

  async start() {
    if (this.network !== undefined) {
      this.network.create();
      this.endpoints = Array.from(
        { length: this.count },
        (_, i) => `${this.network.address(i + 1)}:7000`,
      );
    } else {
      const ports = await freePorts(this.count);
      this.endpoints = ports.map((port) => `127.0.0.1:${port}`);
    }
    const members = this.endpoints
      .map((addr, i) => `[[cluster.members]]\nnode_id = ${i + 1}\naddr = "${addr}"\n`)
      .join("\n");
    for (const [i, addr] of this.endpoints.entries()) {
      const id = i + 1;
      await writeFile(
        this.conf(id),
        `[node]\nnode_id = ${id}\nraft_addr = "${addr}"\n\n[rocksdb]\ndata_path = "${join(this.dir, `data${id}`)}"\n\n[raft]\nread_mode = "${this.readMode}"\n\n[log]\nlevel = "info"\npretty = false\n\n[cluster]\n${members}`,
      );
      this.spawn(id);
    }
    await this.waitRunning();
  }

  conf(id) {
    return join(this.dir, `node${id}.toml`);
  }

  spawn(id) {
    const argv = [process.execPath, ...exampleCommand(), "--conf", this.conf(id)];
    // In a namespace, `ip netns exec` execs node itself: signals reach the node.
    const [file, args] =
      this.network === undefined ? [argv[0], argv.slice(1)] : this.network.wrap(id, argv);
    const child = spawn(file, args, {
      cwd: APP,
      stdio: ["ignore", "pipe", "pipe"],
      env:
        this.unsafe === undefined
          ? process.env
          : { ...process.env, ROCKRAFT_TESTING_UNSAFE: this.unsafe },
    });
    live.add(child);
    child.once("exit", () => live.delete(child));
    // Each node's log (standard error, JSON lines) is kept in the run directory.
    child.stderr.pipe(createWriteStream(join(this.dir, `node${id}.log`), { flags: "a" }));
    const node = { child, output: "", paused: false };
    child.stdout.on("data", (chunk) => (node.output += chunk));
    this.nodes.set(id, node);
  }

  /** Waits until every node says it is running (after its latest start). */
  async waitRunning(timeoutMs = 60_000) {
    await waitFor(
      () => [...this.nodes.values()].every((node) => /is running/.test(node.output)),
      "every node to say it is running",
      timeoutMs,
      50,
    );
  }

  async kill(id) {
    const { child } = this.nodes.get(id);
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
  }

  async restart(id) {
    const node = this.nodes.get(id);
    if (node.child.exitCode === null && node.child.signalCode === null) return;
    this.spawn(id);
  }

  pause(id) {
    const node = this.nodes.get(id);
    node.paused = true;
    node.child.kill("SIGSTOP");
  }

  resume(id) {
    const node = this.nodes.get(id);
    node.paused = false;
    node.child.kill("SIGCONT");
  }

  /** Every node resumed and running again. */
  async healAll() {
    for (const [id, node] of this.nodes) {
      if (node.paused) this.resume(id);
      if (node.child.exitCode !== null || node.child.signalCode !== null) this.spawn(id);
    }
    await this.waitRunning();
  }

  /** Waits until every node knows a leader. */
  async waitForLeader(timeoutMs = 30_000) {
    const clients = this.endpoints.map(
      (endpoint) => new RockraftClient({ endpoints: [endpoint], timeoutMs: 1_000 }),
    );
    try {
      await waitFor(
        async () => {
          const metrics = await Promise.all(clients.map((c) => c.metrics().catch(() => undefined)));
          return metrics.every((m) => m !== undefined && m.currentLeader > 0) || undefined;
        },
        "every node to know a leader",
        timeoutMs,
        100,
      );
    } finally {
      for (const client of clients) client.close();
    }
  }

  /** Each node's current term. */
  async terms() {
    const terms = [];
    for (const endpoint of this.endpoints) {
      const client = new RockraftClient({ endpoints: [endpoint], timeoutMs: 5_000 });
      terms.push((await client.metrics()).currentTerm);
      client.close();
    }
    return terms;
  }

  /** Ctrl+C to every node, as a user stops them. */
  async stop() {
    await Promise.all(
      [...this.nodes.values()].map(({ child }) => {
        if (child.exitCode !== null || child.signalCode !== null) return undefined;
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGINT");
        return exited;
      }),
    );
    this.network?.remove();
  }
}
