import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig, type Config } from "@rockraft/config";
import { freePorts } from "@rockraft/test-utils";
import { RaftNodeBuilder, type BuildOptions, type RaftNode } from "../../src/index.js";
import type { NodeRuntime } from "../../src/runtime.js";

/** The runtime under a node, for tests that must reach into it (filter what it hears, read points). */
export function runtimeOf(node: RaftNode): NodeRuntime {
  return (node as unknown as { runtime: NodeRuntime }).runtime;
}

export { freePorts };

export interface TestCluster {
  readonly dir: string;
  readonly configs: Map<number, Config>;
  readonly nodes: Map<number, RaftNode>;
  node(id: number): RaftNode;
  start(id: number): Promise<RaftNode>;
  stop(id: number): Promise<void>;
  leader(): RaftNode | undefined;
  close(): Promise<void>;
}

/** Config text for a test node: fast timing, a temp data path. */
export function nodeConfigText(id: number, port: number, dataPath: string, extra = ""): string {
  return `[node]
node_id = ${id}
raft_addr = "127.0.0.1:${port}"

[rocksdb]
data_path = "${dataPath}"

[raft]
tick_interval_ms = 10
heartbeat_interval_ms = 50
election_timeout_min_ms = 400
election_timeout_max_ms = 800
${extra}
[log]
level = "silent"
`;
}

/** Nodes 1..size on real gRPC ports and real LevelDB in a temp directory. */
export async function startCluster(
  size: number,
  options: { extraRaft?: string; initialize?: boolean; buildOptions?: BuildOptions } = {},
): Promise<TestCluster> {
  const dir = await mkdtemp(join(tmpdir(), "rockraft-cluster-"));
  const ports = await freePorts(size);
  const configs = new Map<number, Config>();
  ports.forEach((port, i) => {
    const id = i + 1;
    configs.set(
      id,
      parseConfig(nodeConfigText(id, port, join(dir, `node${id}`), options.extraRaft ?? ""), {
        source: `node${id}.toml`,
      }),
    );
  });
  const nodes = new Map<number, RaftNode>();
  const cluster: TestCluster = {
    dir,
    configs,
    nodes,
    node: (id) => {
      const node = nodes.get(id);
      if (node === undefined) throw new Error(`node ${id} is not running`);
      return node;
    },
    start: async (id) => {
      const node = await RaftNodeBuilder.build(configs.get(id)!, options.buildOptions);
      nodes.set(id, node);
      return node;
    },
    stop: async (id) => {
      const node = nodes.get(id);
      nodes.delete(id);
      await node?.shutdown();
    },
    leader: () => [...nodes.values()].find((node) => node.metrics().state === "leader"),
    close: async () => {
      await Promise.all([...nodes.values()].map((node) => node.shutdown()));
      nodes.clear();
      await rm(dir, { recursive: true, force: true });
    },
  };
  for (let id = 1; id <= size; id++) await cluster.start(id);
  if (options.initialize !== false) {
    await cluster
      .node(1)
      .raft()
      .initialize(
        [...configs.values()].map((config) => ({
          nodeId: config.node.nodeId,
          addr: config.node.advertiseAddr,
        })),
      );
    await cluster.node(1).raft().wait({ timeoutMs: 10_000 }).leader("after initialize");
  }
  return cluster;
}

/** Polls `condition` until it holds or the deadline passes (the shared `waitFor`). */
export { waitFor as eventually } from "@rockraft/test-utils";
