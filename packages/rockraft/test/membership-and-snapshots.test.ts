import { afterEach, expect, test } from "vitest";
import { RaftNodeBuilder } from "../src/index.js";
import { parseConfig } from "@rockraft/config";
import { join } from "node:path";
import {
  eventually,
  freePorts,
  nodeConfigText,
  startCluster,
  type TestCluster,
} from "./helpers/cluster.js";

let cluster: TestCluster | undefined;
const extra: { shutdown(): Promise<void> }[] = [];
afterEach(async () => {
  for (const node of extra.splice(0)) await node.shutdown();
  await cluster?.close();
  cluster = undefined;
});

const text = (value: Uint8Array | undefined) =>
  value === undefined ? undefined : new TextDecoder().decode(value);

test(
  "a follower restarted after the log was compacted catches up by snapshot",
  { timeout: 90_000 },
  async () => {
    cluster = await startCluster(3, {
      extraRaft: "snapshot_logs_since_last = 20\nsnapshot_keep_logs = 5\n",
    });
    const leader = cluster.leader()!;
    const leaderId = leader.metrics().nodeId;
    const followerId = [1, 2, 3].find((id) => id !== leaderId)!;
    await cluster.stop(followerId);
    for (let i = 0; i < 60; i++) await leader.raft().clientWrite({ key: `k${i}`, value: `v${i}` });
    await leader
      .raft()
      .wait({ timeoutMs: 10_000 })
      .metrics((m) => m.snapshotIndex >= 40, "a snapshot on the leader");
    await cluster.start(followerId);
    const follower = cluster.node(followerId);
    const applied = leader.metrics().lastApplied!.index;
    await follower
      .raft()
      .wait({ timeoutMs: 20_000 })
      .appliedIndex(applied, "catching up after restart");
    expect(follower.metrics().snapshotIndex).toBeGreaterThan(0);
    for (const i of [0, 30, 59])
      expect(text(await follower.raft().read(`k${i}`, { mode: "local" }))).toBe(`v${i}`);
  },
);

test(
  "add a learner, promote it, remove a node, transfer leadership",
  { timeout: 90_000 },
  async () => {
    cluster = await startCluster(3);
    const [port] = await freePorts(1);
    const config = parseConfig(nodeConfigText(4, port!, join(cluster.dir, "node4")), {
      source: "node4.toml",
    });
    const newcomer = await RaftNodeBuilder.build(config);
    extra.push(newcomer);
    const leader = cluster.leader()!;
    await leader.raft().clientWrite({ key: "before", value: "1" });

    await leader.raft().addLearner({ nodeId: 4, addr: config.node.advertiseAddr });
    await newcomer
      .raft()
      .wait({ timeoutMs: 10_000 })
      .metrics(
        (m) => m.membership.learners.some((l) => l.nodeId === 4),
        "node 4 learns it is a learner",
      );
    expect(text(await newcomer.raft().read("before", { mode: "local" }))).toBe("1");

    const members = leader.metrics().membership.voters;
    // Refused as not ready while the leader has not heard from node 4 lately (after a stall
    // of a loaded machine, say): asked again until it is.
    await eventually(
      () =>
        leader
          .raft()
          .changeMembership({
            voters: [...members, { nodeId: 4, addr: config.node.advertiseAddr }],
          })
          .then(() => true),
      "node 4 promoted to voter",
    );
    expect(leader.metrics().membership.voters.map((v) => v.nodeId)).toEqual([1, 2, 3, 4]);

    const leaderId = leader.metrics().nodeId;
    const removed = [1, 2, 3].find((id) => id !== leaderId)!;
    await leader.raft().changeMembership({
      voters: leader.metrics().membership.voters.filter((v) => v.nodeId !== removed),
    });
    expect(leader.metrics().membership.voters.map((v) => v.nodeId)).not.toContain(removed);

    await leader.raft().transferLeader(4);
    await newcomer.raft().wait({ timeoutMs: 10_000 }).state("leader", "after the transfer");
    await newcomer.raft().clientWrite({ key: "after", value: "2" });
    await eventually(
      async () => text(await leader.raft().read("after")) === "2",
      "the old leader to read the new write",
    );
  },
);

test(
  "a membership change on a follower is forwarded to the leader",
  { timeout: 60_000 },
  async () => {
    cluster = await startCluster(3);
    const follower = [1, 2, 3]
      .map((id) => cluster!.node(id))
      .find((n) => n.metrics().state === "follower")!;
    const [port] = await freePorts(1);
    const { logIndex } = await follower.raft().addLearner({ nodeId: 9, addr: `127.0.0.1:${port}` });
    expect(logIndex).toBeGreaterThan(0);
    await follower
      .raft()
      .wait({ timeoutMs: 10_000 })
      .appliedIndex(logIndex, "the forwarded change");
    expect(follower.metrics().membership.learners.map((l) => l.nodeId)).toEqual([9]);
  },
);

test(
  "metrics are served in Prometheus format when [metrics] is set",
  { timeout: 60_000 },
  async () => {
    const [raftPort, metricsPort] = await freePorts(2);
    const { mkdtemp, rm } = await import("node:fs/promises");
    const { tmpdir } = await import("node:os");
    const dir = await mkdtemp(join(tmpdir(), "rockraft-metrics-"));
    const text =
      nodeConfigText(1, raftPort!, join(dir, "node1")) +
      `\n[metrics]\naddr = "127.0.0.1:${metricsPort}"\n`;
    const node = await RaftNodeBuilder.build(parseConfig(text, { source: "node1.toml" }));
    try {
      await node.raft().initialize([{ nodeId: 1, addr: `127.0.0.1:${raftPort}` }]);
      await node.raft().wait({ timeoutMs: 10_000 }).state("leader");
      await node.raft().clientWrite({ key: "k", value: "v" });
      const body = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      expect(body).toMatch(/rockraft_role\{role="leader",node_id="1"\} 1/);
      expect(body).toMatch(/rockraft_applied_index\{node_id="1"\} [1-9]/);
      expect(body).toMatch(/rockraft_proposals_total\{node_id="1"\} [1-9]/);
      expect(body).toMatch(/rockraft_apply_latency_seconds_count\{node_id="1"\} [1-9]/);
    } finally {
      await node.shutdown();
      await rm(dir, { recursive: true, force: true });
    }
  },
);

test(
  "shutdown is idempotent and later calls are refused with RAFT_NODE_STOPPED",
  { timeout: 60_000 },
  async () => {
    cluster = await startCluster(1);
    const node = cluster.node(1);
    await Promise.all([node.shutdown(), node.shutdown()]);
    await node.closed;
    await expect(node.raft().clientWrite({ key: "k", value: "v" })).rejects.toMatchObject({
      code: "RAFT_NODE_STOPPED",
    });
    cluster.nodes.delete(1);
  },
);
