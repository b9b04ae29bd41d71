// Linearizable reads: ReadIndex (thesis §6.4) and lease-based reads (§6.4.1).
import { describe, expect, test } from "vitest";
import { RaftError } from "../src/index.js";
import { newNode, persist, storageWithPeers, TestNetwork } from "./helpers/network.js";

describe("ReadIndex", () => {
  test("the leader answers with its commit index after a heartbeat round confirms it leads", () => {
    const network = new TestNetwork([1, 2, 3]);
    network.elect(1);
    network.propose(1, "x");
    network.member(1).node.readIndex("read-1");
    network.stabilize();
    expect(network.member(1).readStates).toEqual([{ index: 2, context: "read-1" }]);
    // The read started a heartbeat round of its own, numbered by the leader.
    const heartbeats = network.delivered.filter((m) => m.type === "MsgHeartbeat");
    expect(heartbeats.map((m) => [m.to, m.type === "MsgHeartbeat" && m.context])).toEqual([
      [2, "1"],
      [3, "1"],
    ]);
  });

  test("two pending requests that share a context are each answered, at their own index", () => {
    // A follower that restarted may reuse a context it sent before it stopped. The leader
    // must not take the new request for the old one: it would answer it at the old index.
    const network = new TestNetwork([1, 2, 3]);
    network.elect(1);
    network.drop("MsgHeartbeatResp");
    network.member(2).node.readIndex("2/1");
    network.stabilize();
    const before = network.raft(1).log.committed;
    network.recover();
    network.drop("MsgHeartbeat"); // the write commits, the old read stays unconfirmed
    network.propose(1, "acknowledged");
    const written = network.raft(1).log.committed;
    expect(written).toBeGreaterThan(before);
    network.recover();
    network.member(2).node.readIndex("2/1");
    network.stabilize();
    expect(network.member(2).readStates).toEqual([
      { index: before, context: "2/1" },
      { index: written, context: "2/1" },
    ]);
  });

  test("an acknowledgement of a round sent before a request arrived does not confirm it", () => {
    const network = new TestNetwork([1, 2, 3]);
    network.elect(1);
    network.tick(1); // round 1 goes out and is acknowledged by both followers
    network.stabilize();
    network.drop("MsgHeartbeat");
    network.member(1).node.readIndex("late");
    network.stabilize();
    expect(network.member(1).readStates).toEqual([]);
  });

  test("a follower's read is forwarded to the leader and answered with the leader's commit index", () => {
    const network = new TestNetwork([1, 2, 3]);
    network.elect(1);
    network.propose(1, "x");
    network.member(2).node.readIndex("read-2");
    network.stabilize();
    expect(network.member(2).readStates).toEqual([{ index: 2, context: "read-2" }]);
    expect(network.member(1).readStates).toEqual([]);
  });

  test("without a quorum's confirmation the leader does not answer", () => {
    const network = new TestNetwork([1, 2, 3]);
    network.elect(1);
    network.drop("MsgHeartbeatResp");
    network.member(1).node.readIndex("read-1");
    network.stabilize();
    expect(network.member(1).readStates).toEqual([]);
    network.recover();
    network.tick(1); // the next heartbeat round carries the pending context again
    network.stabilize();
    expect(network.member(1).readStates).toEqual([{ index: 1, context: "read-1" }]);
  });

  test("a new leader holds reads until an entry of its own term commits", () => {
    const network = new TestNetwork([1, 2, 3]);
    network.drop("MsgAppResp");
    network.member(1).node.campaign();
    network.stabilize();
    const leader = network.raft(1);
    expect(leader.role).toBe("leader");
    expect(leader.log.committed).toBe(0);
    network.member(1).node.readIndex("early");
    network.stabilize();
    expect(network.member(1).readStates).toEqual([]);
    network.recover();
    network.tick(1);
    network.stabilize();
    expect(leader.log.committed).toBe(1);
    expect(network.member(1).readStates).toEqual([{ index: 1, context: "early" }]);
  });

  test("a read with no known leader is dropped with RAFT_READ_DROPPED", () => {
    const network = new TestNetwork([1, 2, 3]);
    const error = (() => {
      try {
        network.member(2).node.readIndex("r");
      } catch (caught) {
        return caught as RaftError;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(RaftError);
    expect([error?.code, error?.reason, error?.message]).toEqual([
      "RAFT_READ_DROPPED",
      "no-leader",
      "read dropped: there is no leader",
    ]);
  });

  test("a single-voter leader answers at once", () => {
    const network = new TestNetwork([1]);
    network.elect(1);
    network.member(1).node.readIndex("solo");
    network.stabilize();
    expect(network.member(1).readStates).toEqual([{ index: 1, context: "solo" }]);
  });
});

test("a sole voter whose commit index lags holds reads until an entry of its term commits", () => {
  // Node 2 is the only voter left after the configuration shrank; entries 2 and 3 were
  // committed under the configuration before, but node 2 only knows of commit 1 (it was
  // never told: a lost message, or no commit broadcast). Answering a read at 1 would miss
  // them; the simulator found exactly this (seed 600987, churn, commit notices on demand).
  const storage = storageWithPeers([2]);
  const entry = (index: number) => ({
    index,
    term: 1,
    type: "normal" as const,
    data: new Uint8Array([index]),
  });
  storage.append([entry(1), entry(2), entry(3)]);
  storage.setHardState({ term: 1, vote: 0, commit: 1 });
  const node = newNode(2, storage);
  node.campaign();
  const readStates = [];
  while (node.hasReady() && node.status().softState.role !== "leader")
    readStates.push(...persist(node, storage).readStates);
  expect(node.status().softState.role).toBe("leader");
  expect(readStates).toEqual([]);
  node.readIndex("solo");
  // Its commit index is still 1, of term 1: no answer yet.
  expect(persist(node, storage).readStates).toEqual([]);
  while (node.hasReady()) readStates.push(...persist(node, storage).readStates);
  // Its own entry of term 2 (index 4) committed, and with it everything before it.
  expect(readStates).toEqual([{ index: 4, context: "solo" }]);
});

describe("lease reads", () => {
  const lease = { readMode: "lease", checkQuorum: true, preVote: true } as const;

  test("with read mode lease, the leader answers without a heartbeat round while its lease holds", () => {
    const network = new TestNetwork([1, 2, 3], lease);
    network.elect(1);
    network.tick(1); // a heartbeat round, acknowledged by both: the lease starts at its send
    network.stabilize();
    network.isolate(2);
    network.isolate(3);
    const heartbeats = network.delivered.filter((m) => m.type === "MsgHeartbeat").length;
    network.member(1).node.readIndex("lease-1");
    network.stabilize();
    expect(network.member(1).readStates).toEqual([{ index: 1, context: "lease-1" }]);
    expect(network.delivered.filter((m) => m.type === "MsgHeartbeat")).toHaveLength(heartbeats);
  });

  test("without an acknowledged round the lease read falls back to ReadIndex", () => {
    const network = new TestNetwork([1, 2, 3], lease);
    network.elect(1);
    network.isolate(2);
    network.isolate(3);
    network.member(1).node.readIndex("no-lease");
    network.stabilize();
    expect(network.member(1).readStates).toEqual([]);
    network.recover();
    network.tick(1);
    network.stabilize();
    expect(network.member(1).readStates).toEqual([{ index: 1, context: "no-lease" }]);
  });

  test("the lease ends electionTick - 1 - leaseClockDriftTicks ticks after its round was sent", () => {
    // electionTick 10, drift 2 (the default, ceil(10 / 5)): the lease lasts 7 ticks.
    const network = new TestNetwork([1, 2, 3], lease);
    network.elect(1);
    network.tick(1);
    network.stabilize();
    network.isolate(2);
    network.isolate(3);
    network.tick(1, 6);
    network.member(1).node.readIndex("in");
    network.stabilize();
    expect(network.member(1).readStates).toEqual([{ index: 1, context: "in" }]);
    network.tick(1, 1);
    network.member(1).node.readIndex("out");
    network.stabilize();
    expect(network.member(1).readStates).toEqual([{ index: 1, context: "in" }]);
  });

  /**
   * Leader 1 is cut off right after it took office (its CheckQuorum round starts there);
   * an election timeout later, its followers no longer honour it and elect node 2, which
   * commits a write. Node 1 still leads: its next CheckQuorum passes (it heard from both
   * followers in the round before) and only the one after fails, almost two election
   * timeouts after it was cut off. Returns the index of the acknowledged write.
   */
  function oldLeaderBesideNewOne(network: TestNetwork): number {
    network.elect(1);
    network.isolate(1);
    for (let t = 0; t < 10; t++) for (const id of [1, 2, 3]) network.tick(id);
    network.stabilize();
    network.member(2).node.campaign();
    network.stabilize();
    expect([network.raft(1).role, network.raft(2).role]).toEqual(["leader", "leader"]);
    network.propose(2, "acknowledged");
    return network.raft(2).log.committed;
  }

  test("a leader cut off just after a CheckQuorum round never serves a lease read below a newer leader's write", () => {
    const network = new TestNetwork([1, 2, 3], lease);
    const written = oldLeaderBesideNewOne(network);
    network.member(1).node.readIndex("stale?");
    network.stabilize();
    // Its lease ran out 7 ticks after the last round its followers acknowledged: the read
    // falls back to ReadIndex, which a cut-off leader cannot complete.
    expect(network.member(1).readStates).toEqual([]);
    for (let t = 0; t < 10; t++) network.tick(1);
    network.stabilize();
    expect(network.raft(1).role).toBe("follower");
    for (const state of network.member(1).readStates)
      expect(state.index).toBeGreaterThanOrEqual(written);
  });

  test("with the lease measured by CheckQuorum alone (the old rule), that read is stale", () => {
    const network = new TestNetwork([1, 2, 3], {
      ...lease,
      testingUnsafe: { leaseFromQuorumCheck: true },
    });
    const written = oldLeaderBesideNewOne(network);
    network.member(1).node.readIndex("stale");
    network.stabilize();
    expect(network.member(1).readStates).toEqual([{ index: 1, context: "stale" }]);
    expect(written).toBeGreaterThan(1);
  });

  test("a leadership transfer ends the lease for the rest of the term", () => {
    const network = new TestNetwork([1, 2, 3], lease);
    network.elect(1);
    network.tick(1);
    network.stabilize();
    network.drop("MsgTimeoutNow"); // the transfer stalls: node 1 stays leader
    network.member(1).node.transferLeader(2);
    network.stabilize();
    expect(network.raft(1).role).toBe("leader");
    network.isolate(2);
    network.isolate(3);
    network.member(1).node.readIndex("after-transfer");
    network.stabilize();
    expect(network.member(1).readStates).toEqual([]);
  });

  test("a node that restarts ignores votes for an election timeout, as if a leader's lease held", () => {
    const network = new TestNetwork([1, 2, 3], lease);
    network.elect(1);
    const member = network.member(3);
    member.node = newNode(3, member.storage, lease); // restarted from its durable state
    const vote = {
      type: "MsgVote",
      from: 2,
      to: 3,
      term: 2,
      index: 10,
      logTerm: 1,
      transfer: false,
    } as const;
    member.node.step(vote);
    expect(network.raft(3).term).toBe(1);
    network.tick(3, 10);
    member.node.step(vote);
    expect(network.raft(3).term).toBe(2);
  });

  test("a follower that learns a newer term from a stray response still honours the lease it acknowledged", () => {
    // Node 1 acknowledged leader 2's heartbeat. A rejecting vote response of term 3 (node 3
    // answering an old vote request of node 1's) moves it to term 3 with no leader; node 3's
    // vote request must still be ignored until an election timeout after the heartbeat.
    const storage = storageWithPeers([1, 2, 3]);
    const node = newNode(1, storage, lease);
    node.step({ type: "MsgHeartbeat", from: 2, to: 1, term: 1, commit: 0, context: "1" });
    node.step({ type: "MsgVoteResp", from: 3, to: 1, term: 3, reject: true });
    expect(node.status().hardState.term).toBe(3);
    const vote = {
      type: "MsgVote",
      from: 3,
      to: 1,
      term: 4,
      index: 0,
      logTerm: 0,
      transfer: false,
    } as const;
    node.step(vote);
    expect(node.status().hardState).toMatchObject({ term: 3, vote: 0 });
    for (let i = 0; i < 10; i++) node.tick();
    node.step(vote);
    expect(node.status().hardState).toMatchObject({ term: 4, vote: 3 });
  });

  test("a heartbeat is acknowledged only once the term it brought is durable", () => {
    // A node whose term is not on disk would forget, if it crashed now, that it promised to
    // honour this leader's lease.
    const storage = storageWithPeers([1, 2, 3]);
    const node = newNode(1, storage, lease);
    node.step({ type: "MsgHeartbeat", from: 2, to: 1, term: 1, commit: 0, context: "1" });
    const first = node.ready();
    expect(first.hardState?.term).toBe(1);
    expect(first.messages).toEqual([]);
    expect(first.messagesAfterPersist.map((m) => m.type)).toEqual(["MsgHeartbeatResp"]);
    storage.setHardState(first.hardState!);
    node.advance();
    node.step({ type: "MsgHeartbeat", from: 2, to: 1, term: 1, commit: 0, context: "2" });
    expect(node.ready().messages.map((m) => m.type)).toEqual(["MsgHeartbeatResp"]);
  });

  test("lease reads require CheckQuorum", () => {
    expect(() => new TestNetwork([1], { readMode: "lease", checkQuorum: false })).toThrow(
      new RangeError('RaftOptions.readMode "lease" requires checkQuorum'),
    );
  });

  test("a drift bound that leaves no lease is refused", () => {
    expect(() => new TestNetwork([1], { ...lease, leaseClockDriftTicks: 9 })).toThrow(
      new RangeError(
        "RaftOptions.leaseClockDriftTicks (9) leaves no lease: it must be less than electionTick - 1 (9)",
      ),
    );
  });
});
