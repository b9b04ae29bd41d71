import { describe, expect, test } from "vitest";
import { RawNode, createPrng } from "../src/index.js";
import { TestNetwork, storageWithPeers, text } from "./helpers/network.js";

const appliedData = (network: TestNetwork, id: number): string[] =>
  network
    .member(id)
    .applied.filter((entry) => entry.type === "normal" && entry.data.byteLength > 0)
    .map((entry) => text(entry.data));

/** Empty MsgApps (commit notices) delivered to `to` since `from` in the traffic log. */
function commitNotices(network: TestNetwork, to: number, since: number): number {
  return network.delivered
    .slice(since)
    .filter((m) => m.type === "MsgApp" && m.to === to && m.entries.length === 0).length;
}

describe('commitNotice: "on-demand"', () => {
  test("a write on the leader sends no commit notices: followers learn the commit at the next heartbeat", () => {
    const network = new TestNetwork([1, 2, 3], { commitNotice: "on-demand" });
    network.elect(1);
    const before = network.delivered.length;
    network.propose(1, "a");
    expect(appliedData(network, 1)).toEqual(["a"]);
    expect(commitNotices(network, 2, before) + commitNotices(network, 3, before)).toBe(0);
    const index = network.raft(1).log.committed;
    expect(network.raft(2).log.committed).toBe(index - 1);
    expect(network.raft(3).log.committed).toBe(index - 1);

    network.tick(1); // heartbeatTick is 1 in these tests
    network.stabilize();
    expect(network.raft(2).log.committed).toBe(index);
    expect(appliedData(network, 2)).toEqual(["a"]);
    expect(appliedData(network, 3)).toEqual(["a"]);
  });

  test("the default broadcasts the commit to every follower at once (etcd's behaviour)", () => {
    const network = new TestNetwork([1, 2, 3]);
    network.elect(1);
    const before = network.delivered.length;
    network.propose(1, "a");
    expect(commitNotices(network, 2, before)).toBe(1);
    expect(commitNotices(network, 3, before)).toBe(1);
    expect(appliedData(network, 2)).toEqual(["a"]);
    expect(appliedData(network, 3)).toEqual(["a"]);
  });

  test("a follower that forwarded a proposal is told of its commit at once; the others are not", () => {
    const network = new TestNetwork([1, 2, 3], { commitNotice: "on-demand" });
    network.elect(1);
    const before = network.delivered.length;
    network.propose(2, "forwarded");
    expect(appliedData(network, 2)).toEqual(["forwarded"]);
    expect(commitNotices(network, 2, before)).toBe(1);
    expect(commitNotices(network, 3, before)).toBe(0);
    expect(appliedData(network, 3)).toEqual([]);

    // Told once: a later write on the leader sends it no notice again.
    const later = network.delivered.length;
    network.propose(1, "local");
    expect(commitNotices(network, 2, later)).toBe(0);
  });

  test("a lease read on a follower learns the commit with its answer, without waiting for a heartbeat", () => {
    const network = new TestNetwork([1, 2, 3], {
      commitNotice: "on-demand",
      readMode: "lease",
      checkQuorum: true,
    });
    network.elect(1);
    network.propose(1, "a");
    const index = network.raft(1).log.committed;
    expect(network.raft(3).log.committed).toBeLessThan(index);

    network.member(3).node.readIndex("r");
    network.stabilize();
    expect(network.member(3).readStates).toEqual([{ index, context: "r" }]);
    expect(network.raft(3).log.committed).toBe(index);
    expect(appliedData(network, 3)).toEqual(["a"]);
  });

  test("a safe read on a follower learns the commit from the read's heartbeat round", () => {
    const network = new TestNetwork([1, 2, 3], { commitNotice: "on-demand" });
    network.elect(1);
    network.propose(1, "a");
    const index = network.raft(1).log.committed;
    network.member(2).node.readIndex("r");
    network.stabilize();
    expect(network.member(2).readStates).toEqual([{ index, context: "r" }]);
    expect(appliedData(network, 2)).toEqual(["a"]);
  });

  test("an unknown value is refused with a message naming the option", () => {
    expect(
      () =>
        new RawNode({
          id: 1,
          storage: storageWithPeers([1]),
          prng: createPrng(1),
          electionTick: 10,
          heartbeatTick: 1,
          commitNotice: "lazy" as never,
        }),
    ).toThrow(/RaftOptions\.commitNotice: expected "broadcast" or "on-demand", got "lazy"/);
  });
});
