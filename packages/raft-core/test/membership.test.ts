// Learners and membership change by joint consensus (thesis §4.3).
import { describe, expect, test } from "vitest";
import { MemoryStorage, RaftError } from "../src/index.js";
import { promotable } from "../src/membership.js";
import { JointQuorum, MajorityQuorum } from "../src/quorum.js";
import { TestNetwork, bytes, storageWithPeers, text } from "./helpers/network.js";

function caught(fn: () => unknown): RaftError {
  try {
    fn();
  } catch (error) {
    return error as RaftError;
  }
  throw new Error("expected an error");
}

/** {1,2,3} with node 1 leading and idle nodes 4 and 5 outside the cluster. */
function cluster(options = {}) {
  const storages = new Map([
    [1, storageWithPeers([1, 2, 3])],
    [2, storageWithPeers([1, 2, 3])],
    [3, storageWithPeers([1, 2, 3])],
    [4, new MemoryStorage()],
    [5, new MemoryStorage()],
  ]);
  const network = new TestNetwork([1, 2, 3, 4, 5], options, storages);
  network.elect(1);
  return network;
}

describe("quorums", () => {
  test("a majority quorum commits the index a majority has acknowledged", () => {
    const quorum = new MajorityQuorum([1, 2, 3, 4, 5]);
    const acked = new Map([
      [1, 9],
      [2, 7],
      [3, 5],
      [4, 3],
      [5, 1],
    ]);
    expect(quorum.committedIndex((id) => acked.get(id))).toBe(5);
    expect(
      quorum.voteResult(
        new Map([
          [1, true],
          [2, true],
          [3, true],
        ]),
      ),
    ).toBe("won");
    expect(
      quorum.voteResult(
        new Map([
          [1, false],
          [2, false],
          [3, false],
        ]),
      ),
    ).toBe("lost");
    expect(
      quorum.voteResult(
        new Map([
          [1, true],
          [2, false],
        ]),
      ),
    ).toBe("pending");
  });

  test("a joint quorum needs a majority of both configurations", () => {
    const quorum = new JointQuorum([1, 4, 5], [1, 2, 3]);
    const acked = new Map([
      [1, 9],
      [2, 9],
      [3, 9],
      [4, 2],
      [5, 1],
    ]);
    expect(quorum.committedIndex((id) => acked.get(id))).toBe(2);
    expect(
      quorum.voteResult(
        new Map([
          [1, true],
          [2, true],
          [3, true],
        ]),
      ),
    ).toBe("pending");
    expect(
      quorum.voteResult(
        new Map([
          [1, true],
          [2, true],
          [4, true],
        ]),
      ),
    ).toBe("won");
    expect(
      quorum.voteResult(
        new Map([
          [2, false],
          [3, false],
        ]),
      ),
    ).toBe("lost");
    expect(quorum.voterIds()).toEqual([1, 2, 3, 4, 5]);
  });
});

describe("learners", () => {
  test("confState() is the membership in effect, the same object until it changes", () => {
    const network = cluster();
    const node = network.member(1).node;
    const before = node.confState();
    expect(before).toBe(node.status().confState);
    network.propose(1, "x");
    expect(node.confState()).toBe(before);
    node.addLearner(4);
    network.stabilize();
    expect(node.confState()).not.toBe(before);
    expect(node.confState()).toEqual({ voters: [1, 2, 3], learners: [4], votersOutgoing: [] });
  });

  test("the leader visits members in ascending id order, also after a change adds one", () => {
    const network = new TestNetwork([1, 3]);
    network.elect(1);
    const node = network.member(1).node;
    node.addLearner(2);
    network.stabilize();
    expect([...node.status().progress.keys()]).toEqual([1, 2, 3]);
    network.tick(1); // a heartbeat round
    const heartbeats = node.ready().messages.filter((m) => m.type === "MsgHeartbeat");
    expect(heartbeats.map((m) => m.to)).toEqual([2, 3]);
  });

  test("a learner receives the log but its acknowledgement never counts toward a commit", () => {
    const network = cluster();
    network.member(1).node.addLearner(4);
    network.stabilize();
    expect(network.raft(1).conf).toEqual({ voters: [1, 2, 3], learners: [4], votersOutgoing: [] });
    network.isolate(2);
    network.isolate(3);
    network.propose(1, "x");
    expect(network.raft(4).log.lastIndex()).toBe(network.raft(1).log.lastIndex());
    expect(network.raft(1).log.committed).toBeLessThan(network.raft(1).log.lastIndex());
  });

  test("a learner never campaigns, however long it goes without a leader", () => {
    const network = cluster();
    network.member(1).node.addLearner(4);
    network.stabilize();
    network.isolate(1);
    for (let i = 0; i < 100; i++) network.tick(4);
    network.stabilize();
    expect([network.raft(4).role, network.raft(4).term]).toEqual(["follower", 1]);
  });

  test("a learner's vote does not count", () => {
    const network = cluster();
    network.member(1).node.addLearner(4);
    network.stabilize();
    network.isolate(1);
    network.isolate(3);
    for (let i = 0; i < 40; i++) {
      network.tick(2);
      network.stabilize();
    }
    // Node 2 hears from itself and learner 4 only: not a majority of {1,2,3}.
    expect(network.raft(2).role).not.toBe("leader");
  });

  test("a learner is promoted to voter through the joint configuration", () => {
    const network = cluster();
    network.member(1).node.addLearner(4);
    network.stabilize();
    network.member(1).node.promote(4);
    network.stabilize();
    expect(network.raft(1).conf).toEqual({
      voters: [1, 2, 3, 4],
      learners: [],
      votersOutgoing: [],
    });
    expect(network.raft(4).conf).toEqual(network.raft(1).conf);
    const configs = network
      .member(1)
      .applied.filter((e) => e.type === "config")
      .map((e) => text(e.data));
    expect(configs.slice(-2)).toEqual([
      '{"voters":[1,2,3,4],"learners":[],"votersOutgoing":[1,2,3]}',
      '{"voters":[1,2,3,4],"learners":[],"votersOutgoing":[]}',
    ]);
  });
});

describe("joint consensus", () => {
  test("each configuration takes effect when appended, before it commits", () => {
    const network = cluster();
    network.drop("MsgApp");
    network.member(1).node.changeMembership({ voters: [1, 4, 5] });
    expect(network.raft(1).conf).toEqual({
      voters: [1, 4, 5],
      learners: [],
      votersOutgoing: [1, 2, 3],
    });
    expect(network.raft(1).log.committed).toBeLessThan(network.raft(1).log.lastIndex());
  });

  test("during the joint phase, a commit needs a majority of the old and of the new voters", () => {
    const network = cluster();
    network.isolate(4);
    network.isolate(5);
    network.member(1).node.changeMembership({ voters: [1, 4, 5] });
    network.stabilize();
    const leader = network.raft(1);
    const joint = leader.log.lastIndex();
    expect(leader.conf.votersOutgoing).toEqual([1, 2, 3]);
    expect(leader.log.committed).toBeLessThan(joint); // old majority yes, new majority no
    network.recover();
    network.tick(1);
    network.stabilize();
    expect(leader.conf).toEqual({ voters: [1, 4, 5], learners: [], votersOutgoing: [] });
    expect(leader.log.committed).toBe(leader.log.lastIndex());
  });

  test("a configuration's context is carried through the joint step to every member", () => {
    const network = cluster();
    network.member(1).node.changeMembership({ voters: [1, 2, 4], context: '{"4":"10.0.0.4:1"}' });
    network.stabilize();
    for (const id of [1, 2, 4]) {
      expect(network.raft(id).conf).toEqual({
        voters: [1, 2, 4],
        learners: [],
        votersOutgoing: [],
        context: '{"4":"10.0.0.4:1"}',
      });
    }
  });

  test("a second change while one is in progress is refused", () => {
    const network = cluster();
    network.drop("MsgAppResp");
    network.member(1).node.addLearner(4);
    const error = caught(() => network.member(1).node.addLearner(5));
    expect([error.code, error.reason, error.message]).toEqual([
      "RAFT_REQUEST_REFUSED",
      "config-change-in-progress",
      "membership change refused: the change at index 2 is still in progress",
    ]);
  });

  test("a change asked of a follower is refused, naming the leader", () => {
    const network = cluster();
    const error = caught(() => network.member(2).node.addLearner(4));
    expect([error.code, error.reason, error.leader, error.message]).toEqual([
      "RAFT_REQUEST_REFUSED",
      "not-leader",
      1,
      "membership change refused: node 2 is not the leader (node 1 is)",
    ]);
  });

  test.each([
    [{ voters: [] }, "changeMembership: the configuration needs at least one voter"],
    [
      { voters: [1, 2], learners: [2] },
      "changeMembership: node 2 cannot be both a voter and a learner",
    ],
    [{ voters: [1, -2] }, "changeMembership: node ids must be positive integers, got -2, 1"],
  ])("an invalid target %j is a RangeError", (target, message) => {
    const network = cluster();
    expect(() => network.member(1).node.changeMembership(target)).toThrow(new RangeError(message));
  });

  test("a leader that removes itself keeps leading until C_new commits, then steps down", () => {
    const network = cluster();
    network.member(1).node.remove(1);
    network.stabilize();
    expect(network.raft(1).role).toBe("follower");
    expect(network.raft(2).conf.voters).toEqual([2, 3]);
    for (let i = 0; i < 30; i++) {
      network.tick(2);
      network.tick(3);
      network.stabilize();
    }
    const leaders = [2, 3].filter((id) => network.raft(id).role === "leader");
    expect(leaders).toHaveLength(1);
    network.propose(leaders[0]!, "after");
    expect(text(network.member(2).applied.at(-1)!.data)).toBe("after");
  });

  test("replacing the leader: it leaves and a new voter joins in one change", () => {
    const network = cluster();
    network.member(1).node.changeMembership({ voters: [2, 3, 4] });
    network.stabilize();
    expect(network.raft(4).conf).toEqual({ voters: [2, 3, 4], learners: [], votersOutgoing: [] });
    expect(network.raft(1).role).toBe("follower");
  });

  test("a configuration entry that a new leader overwrites is rolled back", () => {
    const network = cluster();
    network.isolate(1);
    network.member(1).node.addLearner(4); // appended only on the isolated old leader
    expect(network.raft(1).conf.learners).toEqual([4]);
    for (let i = 0; i < 30 && network.raft(2).role !== "leader"; i++) {
      network.tick(2);
      network.stabilize();
    }
    network.recover();
    network.tick(2); // a heartbeat: node 1 learns of term 2 and is probed again
    network.propose(2, "new term");
    expect(network.raft(1).term).toBe(2);
    expect(network.raft(1).conf).toEqual({ voters: [1, 2, 3], learners: [], votersOutgoing: [] });
  });

  test("a removed node that never learnt of its removal does not disrupt the cluster", () => {
    const network = cluster({ preVote: true, checkQuorum: true });
    network.isolate(3);
    network.member(1).node.remove(3);
    network.stabilize();
    const term = network.raft(1).term;
    network.recover();
    for (let i = 0; i < 100; i++) {
      network.tick(3);
      if (i % 2 === 0) network.tick(1);
      network.stabilize();
    }
    expect([network.raft(1).role, network.raft(1).term]).toEqual(["leader", term]);
    expect(network.member(1).node.propose(bytes("still leading"))).toBeDefined();
  });

  test("a removed node cut off during its removal learns of it once reachable, and stops campaigning", () => {
    const network = cluster({ preVote: true, checkQuorum: true });
    network.isolate(3);
    network.member(1).node.remove(3);
    network.stabilize();
    expect(network.raft(1).conf.voters).toEqual([1, 2]);
    expect(network.raft(3).conf.voters).toEqual([1, 2, 3]); // it heard nothing
    network.recover();
    // The leader replicates to it, counting it toward nothing, until it holds its removal.
    for (let i = 0; i < 3; i++) {
      network.tick(1);
      network.stabilize();
    }
    expect(network.raft(3).conf).toEqual({ voters: [1, 2], learners: [], votersOutgoing: [] });
    expect(promotable(network.raft(3))).toBe(false);
    expect(network.raft(1).progress.has(3)).toBe(false); // then it is forgotten
    const sent = network.delivered.length;
    for (let i = 0; i < 100; i++) {
      network.tick(3);
      network.tick(1);
      network.stabilize();
    }
    expect(network.raft(3).role).toBe("follower");
    expect(network.delivered.slice(sent).filter((m) => m.from === 3)).toEqual([]);
  });

  test("a removed node whose term ran ahead while cut off does not depose the leader", () => {
    const network = cluster({ preVote: false, checkQuorum: true });
    network.isolate(3);
    network.member(1).node.remove(3);
    network.stabilize();
    for (let i = 0; i < 25; i++) network.tick(3); // it campaigns alone: its term runs ahead
    network.stabilize();
    expect(network.raft(3).term).toBeGreaterThan(network.raft(1).term);
    const term = network.raft(1).term;
    network.recover();
    network.tick(1);
    network.stabilize();
    expect([network.raft(1).role, network.raft(1).term]).toEqual(["leader", term]);
    expect(network.raft(1).progress.has(3)).toBe(false);
  });

  test("a node added back while still departing starts afresh (it may be a wiped disk)", () => {
    const network = cluster({ preVote: true, checkQuorum: true });
    network.propose(1, "x");
    network.isolate(3);
    network.member(1).node.remove(3);
    network.stabilize();
    expect(network.raft(1).progress.get(3)?.match).toBeGreaterThan(0);
    network.member(1).node.addLearner(3);
    network.stabilize();
    const pr = network.raft(1).progress.get(3)!;
    expect([pr.match, pr.isLearner, pr.departingAt]).toEqual([0, true, undefined]);
  });

  test("a removed node that stays unreachable is given up on after an election timeout", () => {
    const network = cluster({ preVote: true, checkQuorum: true });
    network.isolate(3);
    network.member(1).node.remove(3);
    network.stabilize();
    expect(network.raft(1).progress.get(3)?.isLearner).toBe(true);
    for (let i = 0; i < 25; i++) {
      network.tick(1);
      network.stabilize();
    }
    expect(network.raft(1).progress.has(3)).toBe(false);
    expect(network.raft(1).role).toBe("leader");
  });
});
