// CheckQuorum (thesis §6.2) and the leader lease it gives followers (§4.2.3).
import { describe, expect, test } from "vitest";
import { TestNetwork } from "./helpers/network.js";

describe("CheckQuorum", () => {
  test("a leader that hears from no quorum for an election timeout steps down", () => {
    const network = new TestNetwork([1, 2, 3], { checkQuorum: true });
    network.elect(1);
    network.isolate(1);
    // The first check finds followers that answered before the partition; the second does not.
    for (let i = 0; i < 2 * 10; i++) {
      network.tick(1);
      network.stabilize();
    }
    expect([network.raft(1).role, network.raft(1).lead]).toEqual(["follower", 0]);
  });

  test("a leader that hears from a quorum keeps leading", () => {
    const network = new TestNetwork([1, 2, 3], { checkQuorum: true });
    network.elect(1);
    network.isolate(3);
    for (let i = 0; i < 50; i++) {
      network.tick(1);
      network.stabilize();
    }
    expect(network.raft(1).role).toBe("leader");
  });

  test("a follower that heard from its leader within the election timeout ignores vote requests", () => {
    const network = new TestNetwork([1, 2, 3], { checkQuorum: true });
    network.elect(1);
    const follower = network.raft(2);
    follower.step({
      type: "MsgVote",
      from: 3,
      to: 2,
      term: 5,
      index: 100,
      logTerm: 5,
      transfer: false,
    });
    expect([follower.term, follower.vote, follower.lead]).toEqual([1, 1, 1]);
    expect(follower.msgsAfterPersist).toEqual([]);
  });

  test("once the lease has expired, the follower considers the vote", () => {
    const network = new TestNetwork([1, 2, 3], { checkQuorum: true });
    network.elect(1);
    network.isolate(1);
    const follower = network.raft(2);
    // Ten ticks without hearing from the leader end the lease (node 2 may have started its
    // own election by then, which also ends it).
    for (let i = 0; i < 10; i++) network.tick(2);
    follower.step({
      type: "MsgVote",
      from: 3,
      to: 2,
      term: 5,
      index: 100,
      logTerm: 5,
      transfer: false,
    });
    expect(follower.term).toBe(5);
    expect(follower.vote).toBe(3);
  });
});
