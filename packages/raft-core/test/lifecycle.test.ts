// Bootstrapping, restarting from durable state, the Ready contract, proposals and options.
import { describe, expect, test } from "vitest";
import {
  MemoryStorage,
  RaftError,
  RawNode,
  createPrng,
  decodeConfState,
  type Ready,
} from "../src/index.js";
import { raftOf } from "../src/raw-node.js";
import { TestNetwork, bytes, newNode, persist, storageWithPeers, text } from "./helpers/network.js";

function caught(fn: () => unknown): RaftError {
  try {
    fn();
  } catch (error) {
    return error as RaftError;
  }
  throw new Error("expected an error");
}

describe("bootstrap", () => {
  test("writes the first configuration at index 1, term 1, committed, to be persisted then applied", () => {
    const storage = new MemoryStorage();
    const node = newNode(1, storage);
    node.bootstrap({ voters: [3, 1, 2] });
    const ready = node.ready();
    expect(ready.hardState).toEqual({ term: 1, vote: 0, commit: 1 });
    expect(ready.entries.map((e) => [e.index, e.term, e.type])).toEqual([[1, 1, "config"]]);
    expect(decodeConfState(ready.entries[0]!.data)).toEqual({
      voters: [1, 2, 3],
      learners: [],
      votersOutgoing: [],
    });
    expect(ready.committedEntries).toEqual(ready.entries);
    expect(ready.mustSync).toBe(true);
  });

  test("on a node with any state it is refused, never a reset", () => {
    const storage = new MemoryStorage();
    const node = newNode(1, storage);
    node.bootstrap({ voters: [1] });
    persist(node, storage);
    const error = caught(() => node.bootstrap({ voters: [1, 2] }));
    expect([error.code, error.message]).toEqual([
      "RAFT_ALREADY_INITIALIZED",
      "node 1 already has state (term 1, last index 1); bootstrapping again would reset it",
    ]);
    const restarted = newNode(1, storage);
    expect(caught(() => restarted.bootstrap({ voters: [1] })).code).toBe(
      "RAFT_ALREADY_INITIALIZED",
    );
    expect(raftOf(restarted).conf.voters).toEqual([1]);
  });

  test("needs at least one voter", () => {
    const node = newNode(1, new MemoryStorage());
    expect(() => node.bootstrap({ voters: [] })).toThrow(
      new RangeError("bootstrap: the configuration needs at least one voter"),
    );
  });

  test("one bootstrapped node and two empty ones form a cluster: the others learn the configuration from its log", () => {
    const storages = new Map([1, 2, 3].map((id) => [id, new MemoryStorage()]));
    const network = new TestNetwork([1, 2, 3], {}, storages);
    network.member(1).node.bootstrap({ voters: [1, 2, 3] });
    network.stabilize();
    // Empty nodes are not voters of any configuration they know: they never campaign.
    for (let i = 0; i < 50; i++) {
      network.tick(2);
      network.tick(3);
    }
    network.stabilize();
    expect([network.raft(2).role, network.raft(2).term]).toEqual(["follower", 0]);
    network.elect(1);
    network.propose(1, "hello");
    for (const id of [2, 3]) {
      expect(network.raft(id).conf.voters).toEqual([1, 2, 3]);
      expect(
        network
          .member(id)
          .applied.map((e) => text(e.data))
          .at(-1),
      ).toBe("hello");
    }
    expect(network.raft(1).term).toBe(2);
  });
});

describe("restart", () => {
  test("restores term, vote, commit, log and membership from durable state", () => {
    const network = new TestNetwork([1, 2, 3]);
    network.elect(1);
    network.propose(1, "a");
    network.propose(1, "b");
    const { storage } = network.member(2);
    const restarted = new RawNode({
      id: 2,
      storage,
      prng: createPrng(2),
      electionTick: 10,
      heartbeatTick: 1,
      applied: 2,
    });
    const raft = raftOf(restarted);
    expect(raft.hardState()).toEqual(network.raft(2).hardState());
    expect(raft.log.lastIndex()).toBe(3);
    expect(raft.conf.voters).toEqual([1, 2, 3]);
    const ready = restarted.ready();
    expect(ready.committedEntries.map((e) => text(e.data))).toEqual(["b"]);
  });

  test("a vote survives a restart: the node does not vote twice in a term", () => {
    const storage = storageWithPeers([1, 2, 3]);
    const node = newNode(1, storage);
    node.step({ type: "MsgVote", from: 2, to: 1, term: 5, index: 0, logTerm: 0, transfer: false });
    persist(node, storage);
    const restarted = newNode(1, storage);
    restarted.step({
      type: "MsgVote",
      from: 3,
      to: 1,
      term: 5,
      index: 0,
      logTerm: 0,
      transfer: false,
    });
    const ready = restarted.ready();
    expect(ready.messagesAfterPersist).toEqual([
      { type: "MsgVoteResp", from: 1, to: 3, term: 5, reject: true },
    ]);
  });

  test("a stored commit index beyond the log is refused", () => {
    const storage = storageWithPeers([1]);
    storage.setHardState({ term: 1, vote: 1, commit: 5 });
    expect(caught(() => newNode(1, storage)).message).toBe(
      "stored commit index 5 is beyond the last log index 0",
    );
  });
});

describe("the Ready contract", () => {
  test("a follower's acknowledgement is sent only after persisting, never before", () => {
    const storage = storageWithPeers([1, 2, 3]);
    const node = newNode(1, storage);
    node.step({
      type: "MsgApp",
      from: 2,
      to: 1,
      term: 1,
      index: 0,
      logTerm: 0,
      entries: [{ index: 1, term: 1, type: "normal", data: bytes("x") }],
      commit: 0,
    });
    const ready: Ready = node.ready();
    expect(ready.messages).toEqual([]);
    expect(ready.messagesAfterPersist.map((m) => m.type)).toEqual(["MsgAppResp"]);
    expect(ready.mustSync).toBe(true);
  });

  test("a commit-only change needs no fsync", () => {
    const storage = storageWithPeers([1, 2, 3]);
    const node = newNode(1, storage);
    const entries = [{ index: 1, term: 1, type: "normal" as const, data: bytes("x") }];
    node.step({
      type: "MsgApp",
      from: 2,
      to: 1,
      term: 1,
      index: 0,
      logTerm: 0,
      entries,
      commit: 0,
    });
    persist(node, storage);
    node.step({ type: "MsgHeartbeat", from: 2, to: 1, term: 1, commit: 1, context: "" });
    const ready = node.ready();
    expect(ready.hardState).toEqual({ term: 1, vote: 0, commit: 1 });
    expect(ready.entries).toEqual([]);
    expect(ready.committedEntries).toEqual(entries);
    expect(ready.mustSync).toBe(false);
  });

  test("ready() twice without advance() and advance() without ready() are programmer errors", () => {
    const storage = storageWithPeers([1]);
    const node = newNode(1, storage);
    node.campaign();
    node.ready();
    expect(() => node.ready()).toThrow(
      new TypeError("ready(): the previous Ready has not been advanced yet"),
    );
    node.advance();
    expect(() => node.advance()).toThrow(new TypeError("advance(): no Ready is outstanding"));
  });

  test("the node may be stepped between ready() and advance(); entries a newer leader replaced stay unstable", () => {
    const storage = storageWithPeers([1, 2, 3]);
    const node = newNode(1, storage);
    const entry = (index: number, term: number) => ({
      index,
      term,
      type: "normal" as const,
      data: new Uint8Array(),
    });
    node.step({
      type: "MsgApp",
      from: 2,
      to: 1,
      term: 1,
      index: 0,
      logTerm: 0,
      entries: [entry(1, 1), entry(2, 1)],
      commit: 0,
    });
    const ready = node.ready();
    // While that write is in flight, a leader of term 2 replaces entry 2.
    node.step({
      type: "MsgApp",
      from: 3,
      to: 1,
      term: 2,
      index: 1,
      logTerm: 1,
      entries: [entry(2, 2)],
      commit: 0,
    });
    storage.append(ready.entries);
    node.advance();
    const next = node.ready();
    expect(next.entries.map((e) => [e.index, e.term])).toEqual([[2, 2]]);
  });

  test("messages addressed to another node, or claiming to come from this one, are ignored", () => {
    const storage = storageWithPeers([1, 2, 3]);
    const node = newNode(1, storage);
    node.step({ type: "MsgHeartbeat", from: 2, to: 3, term: 9, commit: 0, context: "" });
    node.step({ type: "MsgHeartbeat", from: 1, to: 1, term: 9, commit: 0, context: "" });
    expect(raftOf(node).term).toBe(0);
  });
});

describe("proposals", () => {
  test("a follower forwards proposals to the leader, which commits them", () => {
    const network = new TestNetwork([1, 2, 3]);
    network.elect(1);
    expect(network.member(2).node.propose(bytes("via 2"))).toBeUndefined();
    network.stabilize();
    expect(network.member(1).applied.map((e) => text(e.data))).toContain("via 2");
  });

  test("on the leader, propose returns where the entries landed", () => {
    const network = new TestNetwork([1, 2, 3]);
    network.elect(1);
    expect(network.member(1).node.propose([bytes("a"), bytes("b")])).toEqual({ index: 2, term: 1 });
  });

  test("with no leader a proposal is dropped, naming the reason", () => {
    const network = new TestNetwork([1, 2, 3]);
    const error = caught(() => network.member(1).node.propose(bytes("x")));
    expect(error).toBeInstanceOf(RaftError);
    expect([error.code, error.reason, error.leader, error.message]).toEqual([
      "RAFT_PROPOSAL_DROPPED",
      "no-leader",
      0,
      "proposal dropped: there is no leader",
    ]);
  });

  test("with forwarding disabled a follower drops proposals and names the leader", () => {
    const network = new TestNetwork([1, 2, 3], { disableProposalForwarding: true });
    network.elect(1);
    const error = caught(() => network.member(2).node.propose(bytes("x")));
    expect([error.code, error.reason, error.leader]).toEqual([
      "RAFT_PROPOSAL_DROPPED",
      "forwarding-disabled",
      1,
    ]);
  });
});

describe("options", () => {
  test.each([
    [{ id: 0 }, "RaftOptions.id: expected a positive integer, got 0"],
    [{ electionTick: 1.5 }, "RaftOptions.electionTick: expected a positive integer, got 1.5"],
    [
      { heartbeatTick: 10 },
      "RaftOptions.electionTick (10) must be greater than heartbeatTick (10)",
    ],
    [
      { electionTickMax: 10 },
      "RaftOptions.electionTickMax (10) must be greater than electionTick (10)",
    ],
    [{ maxInflightMsgs: 0 }, "RaftOptions.maxInflightMsgs: expected a positive integer, got 0"],
  ])("%j is refused with a RangeError", (override, message) => {
    expect(
      () =>
        new RawNode({
          id: 1,
          storage: new MemoryStorage(),
          prng: createPrng(1),
          electionTick: 10,
          heartbeatTick: 1,
          ...override,
        }),
    ).toThrow(new RangeError(message));
  });
});
