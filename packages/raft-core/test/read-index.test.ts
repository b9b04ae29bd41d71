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
    const heartbeats = network.delivered.filter(
      (m) => m.type === "MsgHeartbeat" && m.context === "read-1",
    );
    expect(heartbeats.map((m) => m.to)).toEqual([2, 3]);
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
  test("with read mode lease, the leader answers without a heartbeat round", () => {
    const network = new TestNetwork([1, 2, 3], { readMode: "lease", checkQuorum: true });
    network.elect(1);
    network.isolate(2);
    network.isolate(3);
    network.member(1).node.readIndex("lease-1");
    network.stabilize();
    expect(network.member(1).readStates).toEqual([{ index: 1, context: "lease-1" }]);
    expect(network.delivered.filter((m) => m.type === "MsgHeartbeat" && m.context !== "")).toEqual(
      [],
    );
  });

  test("lease reads require CheckQuorum", () => {
    expect(() => new TestNetwork([1], { readMode: "lease", checkQuorum: false })).toThrow(
      new RangeError('RaftOptions.readMode "lease" requires checkQuorum'),
    );
  });
});
