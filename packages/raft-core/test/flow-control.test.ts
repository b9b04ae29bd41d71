// Replication flow control: batching, pipelining with an in-flight window, probe and
// replicate states, and fast backtracking of conflicting logs.
import { describe, expect, test } from "vitest";
import type { Entry, Message, MsgApp } from "../src/index.js";
import { raftOf } from "../src/raw-node.js";
import {
  TestNetwork,
  bytes,
  newNode,
  persist,
  storageWithPeers,
  type TestOptions,
} from "./helpers/network.js";

/** Node 1 leads {1,2}, its no-op committed, follower 2 in replicate state; output drained. */
function leaderWithReplicatingFollower(options: TestOptions = {}) {
  const storage = storageWithPeers([1, 2]);
  const node = newNode(1, storage, options);
  const raft = raftOf(node);
  node.campaign();
  persist(node, storage);
  node.step({ type: "MsgVoteResp", from: 2, to: 1, term: 1, reject: false });
  persist(node, storage);
  node.step({
    type: "MsgAppResp",
    from: 2,
    to: 1,
    term: 1,
    index: 1,
    reject: false,
    rejectHint: 0,
    logTerm: 0,
  });
  persist(node, storage);
  expect(raft.progress.get(2)!.state).toBe("replicate");
  return { node, raft, storage };
}

const appsTo = (messages: readonly Message[], to: number) =>
  messages.filter((m): m is MsgApp => m.type === "MsgApp" && m.to === to);

describe("flow control", () => {
  test("in replicate state, MsgApps are pipelined up to the in-flight window, then pause", () => {
    const { node, storage } = leaderWithReplicatingFollower({ maxInflightMsgs: 3 });
    const sent: MsgApp[] = [];
    for (let i = 0; i < 5; i++) {
      node.propose(bytes(`p${i}`));
      sent.push(...appsTo(persist(node, storage).messages, 2));
    }
    expect(sent.map((m) => [m.index, m.entries.map((e) => e.index)])).toEqual([
      [1, [2]],
      [2, [3]],
      [3, [4]],
    ]);
    // One acknowledgement frees the window: the rest goes out in one batch.
    node.step({
      type: "MsgAppResp",
      from: 2,
      to: 1,
      term: 1,
      index: 2,
      reject: false,
      rejectHint: 0,
      logTerm: 0,
    });
    const next = appsTo(persist(node, storage).messages, 2);
    expect(next.map((m) => [m.index, m.entries.map((e) => e.index)])).toEqual([[4, [5, 6]]]);
  });

  test("setReplicationLimits: a smaller window holds what is in flight and pauses until acknowledged; a new entry limit applies from the next MsgApp", () => {
    const { node, storage } = leaderWithReplicatingFollower({ maxInflightMsgs: 4 });
    const sent: MsgApp[] = [];
    for (let i = 0; i < 3; i++) {
      node.propose(bytes(`p${i}`));
      sent.push(...appsTo(persist(node, storage).messages, 2));
    }
    expect(sent).toHaveLength(3); // three in flight, of four
    node.setReplicationLimits({ maxInflightMsgs: 2, maxEntriesPerMsg: 1 });
    node.propose([bytes("q1"), bytes("q2")]);
    expect(appsTo(persist(node, storage).messages, 2)).toEqual([]); // 3 in flight > 2
    const ack = (index: number) =>
      node.step({
        type: "MsgAppResp",
        from: 2,
        to: 1,
        term: 1,
        index,
        reject: false,
        rejectHint: 0,
        logTerm: 0,
      });
    ack(3); // one left in flight: room for one more MsgApp, of one entry
    const next = appsTo(persist(node, storage).messages, 2);
    expect(next.map((m) => m.entries.map((e) => e.index))).toEqual([[5]]);
    expect(() => node.setReplicationLimits({ maxInflightMsgs: 0 })).toThrow(RangeError);
  });

  test("a MsgApp carries at most maxEntriesPerMsg entries", () => {
    const { node, raft, storage } = leaderWithReplicatingFollower({ maxEntriesPerMsg: 2 });
    raft.progress.get(2)!.becomeProbe();
    node.propose([bytes("a"), bytes("b"), bytes("c"), bytes("d"), bytes("e")]);
    const [first] = appsTo(persist(node, storage).messages, 2);
    expect(first!.entries.map((e) => e.index)).toEqual([2, 3]);
  });

  test("a MsgApp carries at most maxBytesPerMsg of entries, but always at least one", () => {
    const { node, raft, storage } = leaderWithReplicatingFollower({ maxBytesPerMsg: 2500 });
    raft.progress.get(2)!.becomeProbe();
    const kilobyte = new Uint8Array(1000); // 1024 bytes each with framing
    node.propose([kilobyte, kilobyte, kilobyte]);
    let [message] = appsTo(persist(node, storage).messages, 2);
    expect(message!.entries.map((e: Entry) => e.index)).toEqual([2, 3]);

    const huge = leaderWithReplicatingFollower({ maxBytesPerMsg: 1024 });
    huge.raft.progress.get(2)!.becomeProbe();
    huge.node.propose(new Uint8Array(10_000));
    [message] = appsTo(persist(huge.node, huge.storage).messages, 2);
    expect(message!.entries.map((e: Entry) => e.index)).toEqual([2]);
  });

  test("in probe state, one MsgApp is out at a time until an answer or a heartbeat", () => {
    const { node, raft, storage } = leaderWithReplicatingFollower();
    raft.progress.get(2)!.becomeProbe();
    node.propose(bytes("a"));
    expect(appsTo(persist(node, storage).messages, 2)).toHaveLength(1);
    node.propose(bytes("b"));
    expect(appsTo(persist(node, storage).messages, 2)).toHaveLength(0);
    node.step({ type: "MsgHeartbeatResp", from: 2, to: 1, term: 1, context: "" });
    expect(appsTo(persist(node, storage).messages, 2)).toHaveLength(1);
  });

  test("reportUnreachable turns a replicating follower back to probe", () => {
    const { node, raft } = leaderWithReplicatingFollower();
    node.reportUnreachable(2);
    expect(raft.progress.get(2)!.state).toBe("probe");
  });

  test("a full window that a heartbeat round trip did not drain frees a slot, so lost MsgApps are retried", () => {
    const { node, raft, storage } = leaderWithReplicatingFollower({ maxInflightMsgs: 2 });
    for (let i = 0; i < 3; i++) {
      node.propose(bytes(`p${i}`));
      persist(node, storage); // these MsgApps are "lost"
    }
    expect(raft.progress.get(2)!.inflights.full()).toBe(true);
    node.step({ type: "MsgHeartbeatResp", from: 2, to: 1, term: 1, context: "" });
    const retry = appsTo(persist(node, storage).messages, 2);
    expect(retry).toHaveLength(1);
  });

  test("fast backtracking repairs a long conflicting log in one round trip per term", () => {
    // The follower holds 100 entries of term 1 past index 1 that the leader never had; the
    // leader's log diverges at index 2. Backtracking by term skips them all at once.
    const leaderStorage = storageWithPeers([1, 2, 3]);
    const followerStorage = storageWithPeers([1, 2, 3]);
    const entry = (index: number, term: number): Entry => ({
      index,
      term,
      type: "normal",
      data: new Uint8Array(),
    });
    leaderStorage.append([entry(1, 1), ...Array.from({ length: 5 }, (_, i) => entry(i + 2, 3))]);
    leaderStorage.setHardState({ term: 3, vote: 1, commit: 1 });
    followerStorage.append(Array.from({ length: 101 }, (_, i) => entry(i + 1, i === 0 ? 1 : 2)));
    followerStorage.setHardState({ term: 2, vote: 0, commit: 1 });
    const network = new TestNetwork(
      [1, 2, 3],
      {},
      new Map([
        [1, leaderStorage],
        [2, followerStorage],
        [3, storageWithPeers([1, 2, 3])],
      ]),
    );
    network.isolate(3);
    network.member(1).node.campaign();
    network.stabilize();
    network.recover();
    network.cutOneWay(1, 3);
    network.stabilize([{ type: "MsgVoteResp", from: 3, to: 1, term: 4, reject: false }]);
    expect(network.raft(1).role).toBe("leader");
    network.propose(1, "x");
    const rejections = network.delivered.filter(
      (m) => m.type === "MsgAppResp" && m.from === 2 && m.reject,
    );
    expect(rejections.length).toBeLessThanOrEqual(2);
    const log = (id: number) =>
      network
        .raft(id)
        .log.slice(1, network.raft(id).log.lastIndex() + 1)
        .map((e) => [e.index, e.term]);
    expect(log(2)).toEqual(log(1));
  });
});
