import { join } from "node:path";
import { afterEach, expect, test } from "vitest";
import { parseConfig } from "@rockraft/config";
import { RaftNodeBuilder, RockraftError, type RaftNode } from "../src/index.js";
import {
  eventually,
  freePorts,
  nodeConfigText,
  runtimeOf,
  startCluster,
  type TestCluster,
} from "./helpers/cluster.js";

let cluster: TestCluster | undefined;
const extra: RaftNode[] = [];
afterEach(async () => {
  await Promise.all(extra.splice(0).map((node) => node.shutdown()));
  await cluster?.close();
  cluster = undefined;
});

async function refusal(call: Promise<unknown>): Promise<RockraftError> {
  try {
    await call;
  } catch (error) {
    if (error instanceof RockraftError) return error;
    throw error;
  }
  throw new Error("the call was accepted");
}

test(
  "a learner that is unreachable, or not a learner at all, is not made a voter",
  { timeout: 60_000 },
  async () => {
    cluster = await startCluster(3);
    const leader = cluster.leader()!;
    const voters = leader.metrics().membership.voters;
    const [port] = await freePorts(1);
    const ghost = { nodeId: 4, addr: `127.0.0.1:${port}` }; // nothing listens there
    await leader.raft().addLearner(ghost);

    const unreachable = await refusal(
      leader.raft().changeMembership({ voters: [...voters, ghost] }, { timeoutMs: 5_000 }),
    );
    expect([unreachable.code, unreachable.reason, unreachable.message]).toEqual([
      "RAFT_REQUEST_REFUSED",
      "voter-not-ready",
      "membership change refused: node 4 cannot become a voter yet: the leader has not heard from it within the last election timeout",
    ]);
    const stranger = await refusal(
      leader
        .raft()
        .changeMembership(
          { voters: [...voters, { nodeId: 5, addr: "127.0.0.1:1" }] },
          { timeoutMs: 5_000 },
        ),
    );
    expect(stranger.message).toBe(
      "membership change refused: node 5 cannot become a voter yet: it is not a learner of this cluster (add it as a learner first and let it catch up)",
    );
    expect(leader.metrics().membership.voters.map((v) => v.nodeId)).toEqual([1, 2, 3]);

    // Once it runs and has caught up, the same change is accepted.
    const config = parseConfig(nodeConfigText(4, port!, join(cluster.dir, "node4")), {
      source: "node4.toml",
    });
    extra.push(await RaftNodeBuilder.build(config));
    await eventually(
      () =>
        leader
          .raft()
          .changeMembership({ voters: [...voters, ghost] }, { timeoutMs: 5_000 })
          .then(() => true),
      "node 4 to be ready to become a voter",
      20_000,
    );
    expect(leader.metrics().membership.voters.map((v) => v.nodeId)).toEqual([1, 2, 3, 4]);
  },
);

test(
  "a node id or an address given twice is refused, on the leader and through a follower",
  { timeout: 60_000 },
  async () => {
    cluster = await startCluster(3);
    const leader = cluster.leader()!;
    const follower = [1, 2, 3].map((id) => cluster!.node(id)).find((n) => n !== leader)!;
    const voters = leader.metrics().membership.voters;
    const taken = voters[0]!;

    for (const node of [leader, follower]) {
      const sameAddress = await refusal(
        node.raft().addLearner({ nodeId: 7, addr: taken.addr }, { timeoutMs: 5_000 }),
      );
      expect(sameAddress.code).toBe("RAFT_INVALID_ARGUMENT");
      expect(sameAddress.message).toMatch(
        new RegExp(`address ${taken.addr} is given to nodes ${taken.nodeId} and 7`),
      );
      const twice = await refusal(
        node.raft().changeMembership({ voters, learners: [taken] }, { timeoutMs: 5_000 }),
      );
      expect(twice.code).toBe("RAFT_INVALID_ARGUMENT");
      expect(twice.message).toMatch(
        new RegExp(`node ${taken.nodeId} is given twice \\(as voter and as learner\\)`),
      );
    }
    expect(leader.metrics().membership.learners).toEqual([]);
  },
);

test(
  "a removed node says so: state removed, it stops campaigning, the others go on",
  { timeout: 60_000 },
  async () => {
    cluster = await startCluster(3);
    const leader = cluster.leader()!;
    const leaderId = leader.metrics().nodeId;
    const removed = [1, 2, 3].find((id) => id !== leaderId)!;
    const voters = leader.metrics().membership.voters.filter((v) => v.nodeId !== removed);
    await leader.raft().changeMembership({ voters });
    const node = cluster.node(removed);
    const metrics = await node
      .raft()
      .wait({ timeoutMs: 10_000 })
      .metrics((m) => m.state === "removed", "the node to know it was removed");
    expect(metrics.membership.voters.map((v) => v.nodeId)).not.toContain(removed);
    // It never campaigns again: raft-core no longer lets it (it is not promotable).
    const raw = runtimeOf(node).raw;
    raw.campaign();
    expect(raw.softState().role).toBe("follower");
    await leader.raft().clientWrite({ key: "after", value: "removal" });
  },
);
