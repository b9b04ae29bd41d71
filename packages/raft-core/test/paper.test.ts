// One test per rule of the Raft paper (Ongaro and Ousterhout, 2014), §5.1–§5.4, each named
// for its rule. Outputs are compared whole: extra or missing messages are bugs too.
import { describe, expect, test } from "vitest";
import { MemoryStorage, NONE, type Entry, type Message, type RawNode } from "../src/index.js";
import type { Raft } from "../src/raft.js";
import { raftOf } from "../src/raw-node.js";
import {
  TestNetwork,
  bytes,
  newNode,
  persist,
  sortMessages,
  sortedMessages,
  storageWithPeers,
  type TestOptions,
} from "./helpers/network.js";

function entries(...terms: number[]): Entry[] {
  return terms.map((term, i) => ({ index: i + 1, term, type: "normal", data: new Uint8Array() }));
}

function positions(list: readonly Entry[]): [number, number][] {
  return list.map((entry) => [entry.index, entry.term]);
}

/** Node 1 of a cluster of `voters`, with a fresh MemoryStorage holding `log`. */
function setup(voters = [1, 2, 3], log: Entry[] = [], options: TestOptions = {}) {
  const storage = storageWithPeers(voters);
  storage.append(log);
  const node = newNode(1, storage, options);
  return { storage, node, raft: raftOf(node) };
}

/** Takes every message the node has queued, sorted, and clears the queues. */
function take(raft: Raft): Message[] {
  const messages = [...raft.msgs, ...raft.msgsAfterPersist];
  raft.msgs = [];
  raft.msgsAfterPersist = [];
  return sortMessages(messages);
}

const app = (
  from: number,
  to: number,
  term: number,
  index: number,
  logTerm: number,
  list: Entry[],
  commit: number,
): Message => ({
  type: "MsgApp",
  from,
  to,
  term,
  index,
  logTerm,
  entries: list,
  commit,
});

const appResp = (
  from: number,
  to: number,
  term: number,
  index: number,
  reject = false,
  rejectHint = 0,
  logTerm = 0,
): Message => ({
  type: "MsgAppResp",
  from,
  to,
  term,
  index,
  reject,
  rejectHint,
  logTerm,
});

const vote = (from: number, to: number, term: number, index: number, logTerm: number): Message => ({
  type: "MsgVote",
  from,
  to,
  term,
  index,
  logTerm,
  transfer: false,
});

const voteResp = (from: number, to: number, term: number, reject: boolean): Message => ({
  type: "MsgVoteResp",
  from,
  to,
  term,
  reject,
});

/**
 * Makes node 1 of {1,2,3} leader of term 1 with its no-op committed everywhere, and drains
 * its output: the state §5.3's replication tests start from.
 */
function committedLeader() {
  const { storage, node, raft } = setup();
  node.campaign();
  persist(node, storage);
  node.step(voteResp(2, 1, 1, false));
  persist(node, storage);
  node.step(appResp(2, 1, 1, 1));
  node.step(appResp(3, 1, 1, 1));
  persist(node, storage);
  expect(raft.role).toBe("leader");
  expect(raft.log.committed).toBe(1);
  return { storage, node, raft };
}

describe("§5.1 terms", () => {
  test.each(["follower", "candidate", "leader"] as const)(
    "a %s that sees a larger term updates its term and becomes a follower",
    (role) => {
      const { raft } = setup();
      if (role === "follower") raft.becomeFollower(1, 2);
      if (role === "candidate") raft.becomeCandidate();
      if (role === "leader") {
        raft.becomeCandidate();
        raft.becomeLeader();
      }
      expect(raft.term).toBe(1);
      raft.step(app(2, 1, 2, 0, 0, [], 0));
      expect(raft.term).toBe(2);
      expect(raft.role).toBe("follower");
      expect(raft.lead).toBe(2);
    },
  );

  test("a vote request with a larger term makes the node a follower of no one in that term", () => {
    const { raft } = setup();
    raft.becomeCandidate();
    raft.becomeLeader();
    raft.step(vote(2, 1, 2, 5, 2));
    expect([raft.term, raft.role, raft.lead]).toEqual([2, "follower", NONE]);
  });

  test("a request with a stale term is rejected with the current term: nothing else changes", () => {
    const { raft } = setup();
    raft.becomeFollower(2, NONE);
    raft.step(app(2, 1, 1, 0, 0, entries(1), 0));
    expect(raft.term).toBe(2);
    expect(raft.log.lastIndex()).toBe(0);
    // Figure 2: "reply false if term < currentTerm" — the stale leader learns term 2.
    expect(take(raft)).toEqual([appResp(1, 2, 2, 0)]);
  });

  test.each([
    ["PreVote and CheckQuorum on", { preVote: true, checkQuorum: true }],
    ["PreVote and CheckQuorum off", { preVote: false, checkQuorum: false }],
  ] as const)(
    "with %s, a stale leader's heartbeat and a stale candidate's vote request learn the newer term",
    (_name, options) => {
      const { raft } = setup([1, 2, 3], [], options);
      raft.becomeFollower(3, NONE);
      raft.step({ type: "MsgHeartbeat", from: 2, to: 1, term: 2, commit: 0, context: "" });
      raft.step({
        type: "MsgVote",
        from: 3,
        to: 1,
        term: 2,
        index: 5,
        logTerm: 2,
        transfer: false,
      });
      expect([raft.term, raft.vote]).toEqual([3, NONE]);
      expect(take(raft)).toEqual([
        appResp(1, 2, 3, 0),
        { type: "MsgVoteResp", from: 1, to: 3, term: 3, reject: true },
      ]);
    },
  );

  test("a vote request of a newer term that is refused does not restart the election timer", () => {
    // Figure 2: the timer restarts on hearing from the leader or granting a vote. A removed
    // node with a short log (PreVote off) must not keep the voters from ever campaigning.
    const { raft, node } = setup([1, 2, 3], entries(1, 1));
    raft.becomeFollower(1, NONE);
    for (let i = 0; i < 9; i++) node.tick();
    raft.step(vote(3, 1, 2, 1, 1)); // a shorter log: refused
    expect([raft.term, raft.vote]).toEqual([2, NONE]);
    expect((raft as unknown as { electionElapsed: number }).electionElapsed).toBe(9);
    raft.step(vote(2, 1, 3, 2, 1)); // as up to date: granted, and the timer restarts
    expect([raft.term, raft.vote]).toEqual([3, 2]);
    expect((raft as unknown as { electionElapsed: number }).electionElapsed).toBe(0);
  });

  test("the stale leader steps down when it hears the newer term", () => {
    const { raft } = setup();
    raft.becomeCandidate();
    raft.becomeLeader();
    take(raft);
    raft.step(appResp(2, 1, 5, 0));
    expect([raft.role, raft.term, raft.lead]).toEqual(["follower", 5, NONE]);
  });
});

describe("§5.2 leader election", () => {
  test("servers start up as followers", () => {
    const { raft } = setup();
    expect([raft.role, raft.term, raft.vote, raft.lead]).toEqual(["follower", 0, NONE, NONE]);
  });

  test("a leader sends heartbeats to all followers every heartbeat interval", () => {
    const { raft, node } = setup([1, 2, 3], [], { heartbeatTick: 1 });
    raft.becomeCandidate();
    raft.becomeLeader();
    take(raft);
    node.tick();
    expect(take(raft)).toEqual([
      { type: "MsgHeartbeat", from: 1, to: 2, term: 1, commit: 0, context: "1" },
      { type: "MsgHeartbeat", from: 1, to: 3, term: 1, commit: 0, context: "1" },
    ]);
  });

  test.each(["follower", "candidate"] as const)(
    "a %s whose election timeout elapses starts an election: new term, votes for itself, asks all",
    (role) => {
      const { raft, node, storage } = setup();
      if (role === "follower") raft.becomeFollower(1, 2);
      else raft.becomeCandidate();
      for (let i = 0; i < 2 * 10; i++) node.tick();
      expect([raft.term, raft.role, raft.vote]).toEqual([2, "candidate", 1]);
      const ready = persist(node, storage);
      expect(ready.hardState).toEqual({ term: 2, vote: 1, commit: 0 });
      expect(ready.mustSync).toBe(true);
      expect(sortedMessages(ready)).toEqual([vote(1, 2, 2, 0, 0), vote(1, 3, 2, 0, 0)]);
    },
  );

  test.each([
    [1, {}, "leader"],
    [3, { 2: true, 3: true }, "leader"],
    [3, { 2: true }, "leader"],
    [5, { 2: true, 3: true, 4: true, 5: true }, "leader"],
    [5, { 2: true, 3: true, 4: true }, "leader"],
    [5, { 2: true, 3: true }, "leader"],
    [3, {}, "candidate"],
    [5, { 2: true }, "candidate"],
    [5, { 2: false, 3: false }, "candidate"],
    [5, {}, "candidate"],
    [3, { 2: false, 3: false }, "follower"],
    [5, { 2: false, 3: false, 4: false, 5: false }, "follower"],
    [5, { 2: true, 3: false, 4: false, 5: false }, "follower"],
  ] as const)(
    "an election in one round of %i voters with votes %j ends as %s: win, lose or split",
    (size, votes, expected) => {
      const ids = Array.from({ length: size }, (_, i) => i + 1);
      const { raft, node, storage } = setup(ids);
      node.campaign();
      persist(node, storage); // Our own vote counts once durable.
      for (const [id, granted] of Object.entries(votes)) {
        node.step(voteResp(Number(id), 1, 1, !granted));
      }
      expect(raft.role).toBe(expected);
      expect(raft.term).toBe(1);
    },
  );

  test.each([
    [NONE, 2, false],
    [NONE, 3, false],
    [2, 2, false],
    [3, 3, false],
    [2, 3, true],
    [3, 2, true],
  ])(
    "a follower that voted for %i in a term answers candidate %i with reject=%s: one vote per term",
    (voted, candidate, reject) => {
      const { raft } = setup();
      raft.becomeFollower(1, NONE);
      raft.vote = voted;
      raft.step(vote(candidate, 1, 1, 0, 0));
      expect(take(raft)).toEqual([voteResp(1, candidate, 1, reject)]);
      expect(raft.vote).toBe(reject ? voted : candidate);
    },
  );

  test("a vote grant waits for the vote to be durable (sent after persisting)", () => {
    const { raft, node, storage } = setup();
    raft.becomeFollower(1, NONE);
    node.step(vote(2, 1, 2, 0, 0));
    const ready = persist(node, storage);
    expect(ready.messages).toEqual([]);
    expect(ready.messagesAfterPersist).toEqual([voteResp(1, 2, 2, false)]);
    expect(ready.hardState).toEqual({ term: 2, vote: 2, commit: 0 });
    expect(storage.hardState()).toEqual({ term: 2, vote: 2, commit: 0 });
  });

  test.each([
    ["the same term", 1],
    ["a higher term", 2],
  ])("a candidate that hears from a leader of %s falls back to follower", (_what, term) => {
    const { raft } = setup();
    raft.becomeCandidate();
    raft.step(app(2, 1, term, 0, 0, [], 0));
    expect([raft.role, raft.term, raft.lead]).toEqual(["follower", term, 2]);
  });

  test("election timeouts are randomized over [electionTick, 2 × electionTick)", () => {
    const { raft, node } = setup([1, 2, 3], [], { electionTick: 10 });
    const seen = new Set<number>();
    for (let round = 0; round < 1000; round++) {
      raft.becomeFollower(raft.term + 1, 2);
      let elapsed = 0;
      while (raft.role === "follower") {
        node.tick();
        elapsed++;
      }
      take(raft);
      seen.add(elapsed);
    }
    expect([...seen].sort((a, b) => a - b)).toEqual([10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
  });

  test("randomized timeouts rarely collide: usually one follower times out alone", () => {
    const size = 5;
    const rafts = Array.from({ length: size }, (_, i) => {
      const storage = storageWithPeers([1, 2, 3, 4, 5]);
      const node = newNode(i + 1, storage, { electionTick: 10 });
      return { node, raft: raftOf(node) };
    });
    let conflicts = 0;
    const rounds = 1000;
    for (let round = 0; round < rounds; round++) {
      for (const { raft } of rafts) raft.becomeFollower(raft.term + 1, NONE);
      let timedOut = 0;
      while (timedOut === 0) {
        for (const { node, raft } of rafts) {
          node.tick();
          if (raft.role !== "follower") timedOut++;
        }
      }
      for (const { raft } of rafts) take(raft);
      if (timedOut > 1) conflicts++;
    }
    expect(conflicts / rounds).toBeLessThanOrEqual(0.3);
  });
});

describe("§5.3 log replication", () => {
  test("a leader appends a proposal to its log and sends it to every follower", () => {
    const { node, raft, storage } = committedLeader();
    node.propose(bytes("some data"));
    const ready = persist(node, storage);
    const entry: Entry = { index: 2, term: 1, type: "normal", data: bytes("some data") };
    expect(ready.entries).toEqual([entry]);
    expect(sortedMessages(ready)).toEqual([
      app(1, 2, 1, 1, 1, [entry], 1),
      app(1, 3, 1, 1, 1, [entry], 1),
    ]);
    expect(raft.log.committed).toBe(1);
  });

  test("an entry commits once a majority stores it, and later messages carry the commit index", () => {
    const { node, raft, storage } = committedLeader();
    node.propose(bytes("some data"));
    persist(node, storage);
    expect(raft.log.committed).toBe(1);
    node.step(appResp(2, 1, 1, 2));
    expect(raft.log.committed).toBe(2);
    const ready = persist(node, storage);
    expect(positions(ready.committedEntries)).toEqual([[2, 1]]);
    expect(sortedMessages(ready)).toEqual([app(1, 2, 1, 2, 1, [], 2), app(1, 3, 1, 2, 1, [], 2)]);
  });

  test("the leader counts itself toward a commit only once its own write is durable (§10.2.1)", () => {
    const { node, raft, storage } = committedLeader();
    node.propose(bytes("x"));
    const ready = node.ready(); // Handed out, not yet persisted: MsgApps may already go.
    expect(sortedMessages(ready).map((m) => m.type)).toEqual(["MsgApp", "MsgApp"]);
    node.step(appResp(2, 1, 1, 2));
    expect(raft.log.committed).toBe(1); // Follower 2 alone is not a majority.
    storage.append(ready.entries);
    node.advance(); // Our write is durable: now we count.
    expect(raft.log.committed).toBe(2);
  });

  test("committing an entry commits all entries before it, including those of earlier leaders", () => {
    const storage = storageWithPeers([1, 2, 3]);
    storage.append(entries(1, 2));
    storage.setHardState({ term: 2, vote: NONE, commit: 0 });
    const restarted = newNode(1, storage);
    const leader = raftOf(restarted);
    restarted.campaign();
    persist(restarted, storage);
    restarted.step(voteResp(2, 1, 3, false));
    restarted.propose(bytes("some data"));
    persist(restarted, storage);
    restarted.step(appResp(2, 1, 3, 4));
    const ready = persist(restarted, storage);
    expect(leader.log.committed).toBe(4);
    expect(positions(ready.committedEntries)).toEqual([
      [1, 1],
      [2, 2],
      [3, 3],
      [4, 3],
    ]);
  });

  test.each([
    [1, [[1, 1]]],
    [
      2,
      [
        [1, 1],
        [2, 1],
      ],
    ],
  ] as const)(
    "a follower applies entries up to the leader's commit index (%i)",
    (commit, applied) => {
      const { raft, node, storage } = setup();
      raft.becomeFollower(1, 2);
      node.step(app(2, 1, 1, 0, 0, entries(1, 1), commit));
      const ready = persist(node, storage);
      expect(raft.log.committed).toBe(commit);
      expect(positions(ready.committedEntries)).toEqual(applied);
    },
  );

  test.each([
    ["matches a committed entry (index 0)", 0, 0, 1, false, 0, 0],
    ["matches a committed entry (index 1)", 1, 1, 1, false, 0, 0],
    ["matches an uncommitted entry", 2, 2, 2, false, 0, 0],
    ["mismatches an existing entry's term", 1, 2, 2, true, 1, 1],
    ["names an entry the follower lacks", 3, 3, 3, true, 2, 2],
  ])(
    "the follower consistency check: a MsgApp that %s",
    (_what, logTerm, index, wantIndex, reject, hint, hintTerm) => {
      const storage = storageWithPeers([1, 2, 3]);
      storage.append(entries(1, 2));
      storage.setHardState({ term: 0, vote: NONE, commit: 1 });
      const follower = raftOf(newNode(1, storage));
      follower.becomeFollower(2, 2);
      follower.step(app(2, 1, 2, index, logTerm, [], 0));
      expect(take(follower)).toEqual([appResp(1, 2, 2, wantIndex, reject, hint, hintTerm)]);
    },
  );

  test.each([
    [
      "appends after a match",
      2,
      2,
      [[3, 3]],
      [
        [1, 1],
        [2, 2],
        [3, 3],
      ],
      [[3, 3]],
    ],
    [
      "replaces a conflicting suffix",
      1,
      1,
      [
        [2, 3],
        [3, 4],
      ],
      [
        [1, 1],
        [2, 3],
        [3, 4],
      ],
      [
        [2, 3],
        [3, 4],
      ],
    ],
    [
      "ignores entries it already has",
      0,
      0,
      [[1, 1]],
      [
        [1, 1],
        [2, 2],
      ],
      [],
    ],
    ["replaces the whole log on a conflict at its start", 0, 0, [[1, 3]], [[1, 3]], [[1, 3]]],
  ] as const)(
    "a follower that %s keeps its log consistent with the leader's",
    (_what, index, logTerm, sent, wantLog, wantUnstable) => {
      const { raft } = setup([1, 2, 3], entries(1, 2));
      raft.becomeFollower(2, 2);
      const list: Entry[] = sent.map(([i, t]) => ({
        index: i,
        term: t,
        type: "normal",
        data: new Uint8Array(),
      }));
      raft.step(app(2, 1, 2, index, logTerm, list, 0));
      expect(positions(raft.log.slice(1, raft.log.lastIndex() + 1))).toEqual(wantLog);
      expect(positions(raft.log.unstable())).toEqual(wantUnstable);
    },
  );

  // Figure 7: the leader's log and six follower logs (a)-(f) that it must repair.
  const leaderLog = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
  test.each([
    ["(a) missing an entry", [1, 1, 1, 4, 4, 5, 5, 6, 6]],
    ["(b) missing many entries", [1, 1, 1, 4]],
    ["(c) with an extra uncommitted entry", [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6]],
    ["(d) with extra entries of a later term", [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7]],
    ["(e) with a conflicting suffix", [1, 1, 1, 4, 4, 4, 4]],
    ["(f) with a long conflicting suffix of old terms", [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3]],
  ])("Figure 7: the leader brings a follower %s into agreement", (_what, followerLog) => {
    const term = 8;
    const leaderStorage = storageWithPeers([1, 2, 3]);
    leaderStorage.append(entries(...leaderLog));
    leaderStorage.setHardState({ term, vote: NONE, commit: leaderLog.length });
    const followerStorage = storageWithPeers([1, 2, 3]);
    followerStorage.append(entries(...followerLog));
    followerStorage.setHardState({ term: term - 1, vote: NONE, commit: 0 });
    const network = new TestNetwork(
      [1, 2, 3],
      {},
      new Map([
        [1, leaderStorage],
        [2, followerStorage],
        [3, new MemoryStorage()],
      ]),
    );
    network.isolate(3); // Node 3 only grants its vote, below.
    network.member(1).node.campaign();
    network.stabilize();
    network.recover();
    network.cutOneWay(1, 3);
    network.stabilize([voteResp(3, 1, term + 1, false)]);
    expect(network.raft(1).role).toBe("leader");
    network.propose(1, "");
    const logOf = (raft: Raft) => positions(raft.log.slice(1, raft.log.lastIndex() + 1));
    expect(logOf(network.raft(2))).toEqual(logOf(network.raft(1)));
    expect(network.raft(2).log.committed).toBe(network.raft(1).log.committed);
  });
});

describe("§5.4 safety", () => {
  test.each([
    [[1], 2],
    [[1, 2], 3],
  ])(
    "a vote request carries the candidate's last log index and term (log terms %j)",
    (terms, term) => {
      const { raft, node, storage } = setup();
      raft.becomeFollower(term - 1, 2);
      node.step(app(2, 1, term - 1, 0, 0, entries(...terms), 0));
      persist(node, storage);
      for (let i = 0; i < 2 * 10; i++) node.tick();
      const ready = persist(node, storage);
      const last = terms.length;
      expect(sortedMessages(ready)).toEqual([
        vote(1, 2, term, last, terms[last - 1]!),
        vote(1, 3, term, last, terms[last - 1]!),
      ]);
    },
  );

  test.each([
    ["the same last term and a longer log", [1], 1, 2, false],
    ["the same last term and the same length", [1], 1, 1, false],
    ["the same last term and a shorter log", [1, 1], 1, 1, true],
    ["a higher last term and the same length", [1], 2, 1, false],
    ["a higher last term and a longer log", [1], 2, 2, false],
    ["a higher last term and a shorter log", [1, 1], 2, 1, false],
    ["a lower last term and the same length", [2], 1, 1, true],
    ["a lower last term and a longer log", [2], 1, 2, true],
    ["a lower last term and a shorter log", [2, 1], 1, 1, true],
  ])(
    "a voter grants only to an up-to-date log: candidate with %s",
    (_what, ourTerms, candidateLogTerm, candidateIndex, reject) => {
      const { raft } = setup([1, 2], entries(...ourTerms));
      raft.step(vote(2, 1, 3, candidateIndex, candidateLogTerm));
      expect(take(raft)).toEqual([voteResp(1, 2, 3, reject)]);
    },
  );

  test.each([
    [1, 0],
    [2, 0],
    [3, 3],
  ])(
    "a leader commits only entries of its own term by counting replicas (ack of %i commits %i)",
    (acked, commit) => {
      const storage = storageWithPeers([1, 2]);
      storage.append(entries(1, 2));
      storage.setHardState({ term: 2, vote: NONE, commit: 0 });
      const node: RawNode = newNode(1, storage);
      const raft = raftOf(node);
      node.campaign();
      persist(node, storage);
      node.step(voteResp(2, 1, 3, false));
      persist(node, storage); // The no-op (index 3, term 3) is durable here.
      node.step(appResp(2, 1, 3, acked));
      expect(raft.log.committed).toBe(commit);
    },
  );
});
