// The basic example (the seed's examples/basic, in TypeScript):
//   pnpm --filter basic-example start -- --conf conf/node1.toml
// Node 1 initializes the three-node cluster and writes two keys; nodes 2 and 3 join,
// replicate and report. Each node runs until Ctrl+C.
import { inspect, parseArgs } from "node:util";
import {
  RaftNodeBuilder,
  loadConfig,
  type Config,
  type NodeMetrics,
  type RaftNode,
} from "rockraft";

/** The seed's members, used when the config file lists none. */
const SEED_MEMBERS = [
  { nodeId: 1, addr: "127.0.0.1:6682" },
  { nodeId: 2, addr: "127.0.0.1:6683" },
  { nodeId: 3, addr: "127.0.0.1:6684" },
];
const WAIT_MS = 24 * 3600 * 1000; // until the other nodes start, or Ctrl+C

const show = (value: unknown) => inspect(value, { depth: 4, breakLength: Infinity });
const print = (line = "") => process.stdout.write(`${line}\n`);

function printMetrics(metrics: NodeMetrics): void {
  const state = metrics.state.charAt(0).toUpperCase() + metrics.state.slice(1);
  const members = (list: NodeMetrics["membership"]["voters"]) =>
    list.map((m) => `${m.nodeId} (${m.addr})`).join(", ");
  print("Current Raft Metrics:");
  print(`  Current Leader: ${show(metrics.currentLeader)}`);
  print(`  Current Term: ${metrics.currentTerm}`);
  print(`  Last Applied Index: ${show(metrics.lastApplied)}`);
  print(`  Last Log Index: ${metrics.lastLogIndex}`);
  print(`  State: ${state}`);
  const learners =
    metrics.membership.learners.length > 0
      ? `; learners: ${members(metrics.membership.learners)}`
      : "";
  print(`  Membership: voters: ${members(metrics.membership.voters)}${learners}`);
  print();
}

async function writeData(node: RaftNode, key: string, value: string): Promise<number> {
  print(`  key: ${key}`);
  print(`  value: ${show(value)}`);
  const { logId } = await node.raft().clientWrite({ key, value });
  print(`✓ Write result: log_id=${show(logId)}`);
  return logId.index;
}

async function run(node: RaftNode, config: Config): Promise<void> {
  const api = node.raft();
  const id = config.node.nodeId;
  if (id === 1) {
    const members = config.cluster.members.length > 0 ? config.cluster.members : SEED_MEMBERS;
    print(`Initializing ${members.length}-node cluster...`);
    const { initialized } = await api.initialize(members);
    print(
      initialized
        ? "✓ Cluster initialized successfully!"
        : "✓ Cluster was already initialized (restart): nothing changed.",
    );
    print();
  } else {
    print("Waiting for cluster to be initialized by node 1...");
    await api
      .wait({ timeoutMs: WAIT_MS })
      .metrics((m) => m.initialized, "the cluster to be initialized");
  }

  print("Waiting for initial log to be committed (log index 1)...");
  await api.wait({ timeoutMs: WAIT_MS }).appliedIndex(1, "the initial membership entry");
  print("✓ Initial log committed successfully!");
  print();

  if (id === 1) {
    const metrics = await api
      .wait({ timeoutMs: WAIT_MS })
      .leader("before writing (start node 2 and 3)");
    if (metrics.currentLeader === id) print(`Node ${id} is the leader, writing data to cluster...`);
    else
      print(
        `Node ${id} is not the leader (node ${metrics.currentLeader} is), writing data through the leader...`,
      );
    const first = await writeData(node, "my_key", "my_value");
    print();
    print(`Waiting for write to be applied (log index ${first})...`);
    await api.wait({ timeoutMs: WAIT_MS }).appliedIndex(first, "after writing my_key");
    print("✓ Write applied successfully!");
    print();
    print("Writing second piece of data:");
    const second = await writeData(node, "another_key", "another_value");
    await api.wait({ timeoutMs: WAIT_MS }).appliedIndex(second, "after writing another_key");
    print();
  }

  printMetrics(api.metrics());
  print(`Raft node ${id} is running. Press Ctrl+C to shutdown.`);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: process.argv.slice(2).filter((arg) => arg !== "--"),
    options: { conf: { type: "string", short: "c" } },
  });
  if (values.conf === undefined) {
    process.stderr.write("error: missing --conf <file> (for example --conf conf/node1.toml)\n");
    return 2;
  }
  const config = await loadConfig(values.conf);
  print("Creating Raft node with config:");
  print(`  node_id: ${config.node.nodeId}`);
  print(`  raft_addr: ${config.node.raftAddr}`);
  print(`  data_path: ${config.storage.dataPath}`);
  print();
  print("Creating Raft node...");
  // The start script runs node with --expose-gc, so the leader can time its young-generation
  // collections (rockraft's README, "The Node.js process"); run with plain `node`, it keeps
  // V8's own timing, quietly.
  const exposed = typeof (globalThis as { gc?: unknown }).gc === "function";
  const node = await RaftNodeBuilder.build(config, {
    youngGc: exposed ? "scheduled" : "v8",
    ...testingUnsafe(),
  });
  print("✓ Raft node created and gRPC service started successfully!");
  print();

  let stopping = false;
  // A node that stops by itself (disk full, I/O error, corrupt data, a broken invariant)
  // serves nothing more: the process says why in one line and exits with status 1, so that a
  // supervisor restarts it and nobody takes it for a live member.
  let failedExit: Promise<number> | undefined;
  void node.failed.then((error) => {
    if (stopping) return;
    stopping = true;
    failedExit = node.shutdown().then(() => {
      // After the shutdown, which writes out the log, the fatal record first.
      process.stderr.write(`error: ${error.message}\n`);
      return 1;
    });
  });
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    print();
    print(`Received ${signal}, shutting down Raft node ${config.node.nodeId}...`);
    void node.shutdown();
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
  // SIGHUP reads the config file again: the live keys change, anything else is refused
  // with a line that names it, and the node runs on unchanged. Reloads run one at a time,
  // in the order of the signals (the file's last state wins).
  let reloads = Promise.resolve();
  process.on("SIGHUP", () => {
    reloads = reloads.then(async () => {
      if (stopping) return;
      try {
        const changes = await node.reloadConfigFile();
        print(`✓ Config reloaded (${changes.length} changed)`);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        process.stderr.write(`error: config not reloaded: ${message}\n`);
      }
    });
  });

  try {
    await run(node, config);
  } catch (error) {
    if (!stopping) {
      await node.shutdown();
      throw error;
    }
  }
  await node.closed;
  if (failedExit !== undefined) return failedExit;
  if (stopping) print(`✓ Raft node ${config.node.nodeId} shut down cleanly.`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    // Bad config, a port in use, a locked data path: one clear line (or one per problem), no stack.
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`error: ${message}\n`);
    process.exit(1);
  },
);

/**
 * `ROCKRAFT_TESTING_UNSAFE=local-reads`: a known bug switched on, for `pnpm chaos` to show
 * that it catches it (reads served from this node's state without ReadIndex). Testing only.
 */
function testingUnsafe(): { testingUnsafe?: { localReads: boolean } } {
  const value = process.env["ROCKRAFT_TESTING_UNSAFE"];
  if (value === undefined || value === "") return {};
  if (value !== "local-reads") {
    throw new Error(
      `ROCKRAFT_TESTING_UNSAFE: expected "local-reads", got ${JSON.stringify(value)}`,
    );
  }
  return { testingUnsafe: { localReads: true } };
}
