// Snapshots and log compaction (§7): the snapshot policy, compaction boundaries, sending,
// installing and restarting from a snapshot.
import { describe, expect, test } from "vitest";
import {
  MemoryStorage,
  makeConfState,
  type Entry,
  type MsgSnap,
  type Snapshot,
} from "../src/index.js";
import { raftOf } from "../src/raw-node.js";
import { TestNetwork, bytes, newNode, persist, storageWithPeers, text } from "./helpers/network.js";

const entry = (index: number, term: number): Entry => ({
  index,
  term,
  type: "normal",
  data: bytes(`e${index}`),
});

/** Takes a snapshot at node `id`'s applied index, as an application would. */
function snapshotAt(network: TestNetwork, id: number, keepEntries = 0): number {
  const member = network.member(id);
  const applied = member.applied.at(-1)!.index;
  member.storage.createSnapshot(applied, network.raft(id).conf, bytes(`state@${applied}`));
  member.node.snapshotTaken(applied, keepEntries);
  return applied;
}

describe("compaction", () => {
  test("compacts the log up to the snapshot minus the entries to keep", () => {
    const network = new TestNetwork([1]);
    network.elect(1);
    for (let i = 0; i < 10; i++) network.propose(1, `p${i}`);
    const index = snapshotAt(network, 1, 3); // 11
    const { node, storage } = network.member(1);
    const ready = persist(node, storage);
    expect(ready.compactIndex).toBe(index - 3);
    expect(storage.firstIndex()).toBe(index - 2);
  });

  test("does not compact when the kept entries reach back past the log's start", () => {
    const network = new TestNetwork([1]);
    network.elect(1);
    network.propose(1, "x");
    snapshotAt(network, 1, 100);
    expect(network.member(1).node.hasReady()).toBe(false);
  });

  test("a snapshot of entries applied but not yet advanced past may be reported before advance()", () => {
    const network = new TestNetwork([1]);
    network.elect(1);
    const { node, storage } = network.member(1);
    node.propose(bytes("x"));
    node.propose(bytes("y"));
    let ready = node.ready();
    storage.append(ready.entries);
    node.advance(); // self-ack: the entries commit
    ready = node.ready();
    expect(ready.committedEntries.map((e) => e.index)).toEqual([2, 3]);
    // The application applied 2..3 and snapshotted them before calling advance().
    storage.createSnapshot(3, network.raft(1).conf, bytes("state@3"));
    node.snapshotTaken(3, 0);
    node.advance();
    expect(node.ready().compactIndex).toBe(3);
  });

  test("snapshotTaken must match the storage's snapshot and stay within the commit index", () => {
    const network = new TestNetwork([1]);
    network.elect(1);
    expect(() => network.member(1).node.snapshotTaken(1, 0)).toThrow(
      new RangeError(
        "snapshotTaken(1): the storage's snapshot is at index 0; install the snapshot in the storage view first",
      ),
    );
  });
});

describe("sending and installing snapshots", () => {
  /** Leader 1 of {1,2,3} has compacted past what node 3 (cut off until now) needs. */
  function laggingFollower() {
    const network = new TestNetwork([1, 2, 3]);
    network.elect(1);
    network.isolate(3);
    for (let i = 0; i < 5; i++) network.propose(1, `p${i}`);
    const index = snapshotAt(network, 1);
    network.stabilize();
    const { storage } = network.member(1);
    expect(storage.firstIndex()).toBe(index + 1);
    network.recover();
    return { network, index };
  }

  test("a follower whose next entry was compacted is sent the snapshot and catches up after it", () => {
    const { network, index } = laggingFollower();
    network.tick(1); // heartbeat → response → the leader finds node 3 needs a snapshot
    network.stabilize();
    const snaps = network.delivered.filter((m): m is MsgSnap => m.type === "MsgSnap");
    expect(snaps.map((m) => [m.to, m.snapshot.metadata.index])).toEqual([[3, index]]);
    expect(text(snaps[0]!.snapshot.data)).toBe(`state@${index}`);
    expect(network.raft(1).progress.get(3)!.match).toBe(index);
    network.member(1).node.reportSnapshot(3, true);
    network.propose(1, "after");
    expect(network.raft(3).log.lastIndex()).toBe(network.raft(1).log.lastIndex());
    expect(text(network.member(3).applied.at(-1)!.data)).toBe("after");
    expect(network.member(3).storage.snapshot().metadata.index).toBe(index);
  });

  test("a failed transfer is retried after the next heartbeat", () => {
    const { network, index } = laggingFollower();
    network.drop("MsgSnap");
    network.tick(1);
    network.stabilize();
    expect(network.raft(1).progress.get(3)!.state).toBe("snapshot");
    network.member(1).node.reportSnapshot(3, false);
    expect(network.raft(1).progress.get(3)!.state).toBe("probe");
    network.recover();
    network.tick(1);
    network.stabilize();
    expect(network.member(3).storage.snapshot().metadata.index).toBe(index);
  });

  test("installing replaces a conflicting log entirely and restarts it after the snapshot", () => {
    const storage = storageWithPeers([1, 2, 3]);
    storage.append([entry(1, 1), entry(2, 1), entry(3, 1)]);
    const node = newNode(2, storage);
    const raft = raftOf(node);
    const snapshot: Snapshot = {
      metadata: { index: 5, term: 2, confState: makeConfState([1, 2, 3], [4]) },
      data: bytes("state"),
    };
    node.step({ type: "MsgSnap", from: 1, to: 2, term: 2, snapshot });
    const ready = node.ready();
    expect(ready.snapshot).toBe(snapshot);
    expect(ready.entries).toEqual([]);
    expect(ready.hardState).toEqual({ term: 2, vote: 0, commit: 5 });
    expect(ready.messagesAfterPersist).toEqual([
      {
        type: "MsgAppResp",
        from: 2,
        to: 1,
        term: 2,
        index: 5,
        reject: false,
        rejectHint: 0,
        logTerm: 0,
      },
    ]);
    storage.applySnapshot(snapshot);
    node.advance();
    expect([raft.log.firstIndex(), raft.log.lastIndex(), raft.log.applied]).toEqual([6, 5, 5]);
    expect(raft.conf.learners).toEqual([4]);
  });

  test("a snapshot whose last entry the follower already has only advances its commit", () => {
    const storage = storageWithPeers([1, 2, 3]);
    storage.append([entry(1, 1), entry(2, 1), entry(3, 1)]);
    const node = newNode(2, storage);
    const snapshot: Snapshot = {
      metadata: { index: 2, term: 1, confState: makeConfState([1, 2, 3]) },
      data: bytes("state"),
    };
    node.step({ type: "MsgSnap", from: 1, to: 2, term: 1, snapshot });
    const ready = node.ready();
    expect(ready.snapshot).toBeUndefined();
    expect(ready.hardState?.commit).toBe(2);
    expect(ready.committedEntries.map((e) => e.index)).toEqual([1, 2]);
  });

  test("that follower acknowledges the snapshot's index, not its own unchecked entries after it", () => {
    // Entries 3..5 of term 1 were never checked against the leader's log (the leader's own
    // entry 3 may be of a later term): acknowledging 5 would let the leader count them.
    const storage = storageWithPeers([1, 2, 3]);
    storage.append([entry(1, 1), entry(2, 1), entry(3, 1), entry(4, 1), entry(5, 1)]);
    const node = newNode(2, storage);
    const snapshot: Snapshot = {
      metadata: { index: 2, term: 1, confState: makeConfState([1, 2, 3]) },
      data: bytes("state"),
    };
    node.step({ type: "MsgSnap", from: 1, to: 2, term: 2, snapshot });
    const ready = node.ready();
    expect(ready.snapshot).toBeUndefined();
    expect(ready.messagesAfterPersist).toEqual([
      {
        type: "MsgAppResp",
        from: 2,
        to: 1,
        term: 2,
        index: 2,
        reject: false,
        rejectHint: 0,
        logTerm: 0,
      },
    ]);
  });
});

describe("restart from a snapshot", () => {
  test("restores the log after the snapshot and the newest membership of snapshot and log", () => {
    const network = new TestNetwork([1, 2, 3]);
    network.elect(1);
    network.propose(1, "a");
    snapshotAt(network, 1, 1);
    network.member(1).node.addLearner(4); // a config entry after the snapshot
    network.stabilize();
    network.propose(1, "b");
    const { storage } = network.member(1);
    const snapshotIndex = storage.snapshot().metadata.index;
    const restarted = newNode(1, storage, { applied: snapshotIndex });
    const raft = raftOf(restarted);
    expect(raft.conf).toEqual({ voters: [1, 2, 3], learners: [4], votersOutgoing: [] });
    expect(raft.log.firstIndex()).toBe(snapshotIndex);
    expect(raft.log.applied).toBe(snapshotIndex);
    const ready = restarted.ready();
    expect(
      ready.committedEntries.map((e) => (e.type === "config" ? "config" : text(e.data))),
    ).toEqual(["config", "b"]);
  });

  test("a node whose storage holds only a snapshot restarts at it", () => {
    const storage = new MemoryStorage();
    storage.applySnapshot({
      metadata: { index: 7, term: 3, confState: makeConfState([1, 2]) },
      data: bytes("s"),
    });
    storage.setHardState({ term: 3, vote: 0, commit: 7 });
    const raft = raftOf(newNode(2, storage));
    expect([
      raft.log.firstIndex(),
      raft.log.lastIndex(),
      raft.log.applied,
      raft.log.committed,
    ]).toEqual([8, 7, 7, 7]);
    expect(raft.conf.voters).toEqual([1, 2]);
  });
});
