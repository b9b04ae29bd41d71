// PreVote (thesis §9.6): a node first asks whether it could win before it raises its term.
import { describe, expect, test } from "vitest";
import { TestNetwork } from "./helpers/network.js";

describe("PreVote", () => {
  test("a partitioned node keeps pre-campaigning without raising its term", () => {
    const network = new TestNetwork([1, 2, 3], { preVote: true });
    network.elect(1);
    network.isolate(3);
    for (let i = 0; i < 100; i++) {
      network.tick(3);
      network.stabilize();
    }
    expect(network.raft(3).term).toBe(1);
    expect(network.raft(3).role).toBe("pre-candidate");
  });

  test("when the partition heals, the node rejoins without disrupting the leader", () => {
    const network = new TestNetwork([1, 2, 3], { preVote: true });
    network.elect(1);
    network.isolate(3);
    for (let i = 0; i < 100; i++) {
      network.tick(3);
      network.stabilize();
    }
    network.recover();
    network.tick(1); // a heartbeat reaches node 3
    network.stabilize();
    expect([network.raft(1).role, network.raft(1).term]).toEqual(["leader", 1]);
    expect([network.raft(3).role, network.raft(3).lead]).toEqual(["follower", 1]);
  });

  test("without PreVote the same partition inflates the term and deposes the leader", () => {
    const network = new TestNetwork([1, 2, 3], { preVote: false });
    network.elect(1);
    network.isolate(3);
    for (let i = 0; i < 100; i++) {
      network.tick(3);
      network.stabilize();
    }
    expect(network.raft(3).term).toBeGreaterThan(3);
    network.recover();
    // Node 3 ignores the leader's older term and campaigns again at its inflated term.
    for (let i = 0; i < 20 && network.raft(1).term === 1; i++) {
      network.tick(3);
      network.stabilize();
    }
    expect(network.raft(1).term).toBeGreaterThan(3);
  });

  test("a pre-vote changes neither the voter's term nor its vote", () => {
    const network = new TestNetwork([1, 2, 3], { preVote: true });
    network.elect(1);
    const before = { ...network.raft(2).hardState() };
    network.member(2).node.step({
      type: "MsgPreVote",
      from: 3,
      to: 2,
      term: 5,
      index: 100,
      logTerm: 9,
      transfer: false,
    });
    expect(network.raft(2).hardState()).toEqual(before);
  });

  test("a node wins a real election after a successful pre-election", () => {
    const network = new TestNetwork([1, 2, 3], { preVote: true });
    network.elect(1);
    expect([network.raft(1).role, network.raft(1).term]).toEqual(["leader", 1]);
    network.isolate(1);
    for (let i = 0; i < 30; i++) {
      network.tick(2);
      network.stabilize();
    }
    expect([network.raft(2).role, network.raft(2).term]).toEqual(["leader", 2]);
  });
});
