import { RaftError, type DropReason } from "./errors.js";
import { handleVoteRequest, hup, poll } from "./election.js";
import { handleAppendEntries, handleHeartbeat, handleSnapshot } from "./follower.js";
import { RaftLog } from "./log.js";
import {
  ConfigHistory,
  appendToLog,
  applyConf,
  dropSilentDeparting,
  promotable,
} from "./membership.js";
import { resolveOptions, type RaftOptions, type ResolvedOptions } from "./options.js";
import type { Prng } from "./prng.js";
import type { Progress } from "./progress.js";
import { quorumFor, type Quorum } from "./quorum.js";
import { handleReadIndex } from "./read-index.js";
import { ReadOnly } from "./read-only.js";
import { bcastHeartbeat, handleAppendResponse, handleHeartbeatResponse } from "./replication.js";
import { handleTransferLeader } from "./transfer.js";
import {
  EMPTY_CONF_STATE,
  NONE,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type MsgReadIndex,
  type NodeId,
  type ReadState,
  type SoftState,
  type StateRole,
} from "./types.js";

/**
 * The Raft state machine (§5, and thesis §3–§6, §9): synchronous, deterministic, no I/O.
 * Inputs are method calls; outputs accumulate in `msgs`, `msgsAfterPersist`, `readStates`
 * and the log's unstable part, which `RawNode` hands out as a `Ready`.
 *
 * This file holds the node's state, its role transitions, the clock, and `step` with the
 * handler of each role. The work the handlers hand off lives beside it, one file per job:
 * election.ts, replication.ts (leader), follower.ts, membership.ts, read-index.ts,
 * snapshots.ts, transfer.ts, status.ts. Their functions take the `Raft` they work on, like
 * methods kept in another file; the class is internal to the package (`RawNode` is the
 * public surface), so its fields are not private.
 */
export class Raft {
  readonly id: NodeId;
  term = 0;
  vote: NodeId = NONE;
  lead: NodeId = NONE;
  role: StateRole = "follower";
  readonly log: RaftLog;

  /** Messages that may be sent at once (Ready duty 1). */
  msgs: Message[] = [];
  /**
   * Leader: entries were appended, or the commit index moved, since the last Ready; the
   * appends and commit notices they call for go out together when the next Ready is
   * taken (see `flushSends`), so that the proposals and acknowledgements stepped in
   * between share their messages.
   */
  broadcastDue = false;
  commitNoticeDue = false;
  /** Messages to send only once the current unstable state is durable (Ready duty 3). */
  msgsAfterPersist: Message[] = [];
  readStates: ReadState[] = [];
  /** Entries up to this index may be discarded from the log (a snapshot covers them). */
  pendingCompaction: number | undefined;

  /** The configurations in the log; `conf` is the one in effect (thesis §4.1). */
  readonly configs: ConfigHistory;
  conf: ConfState = EMPTY_CONF_STATE;
  quorum: Quorum = quorumFor([], []);
  readonly progress = new Map<NodeId, Progress>();
  votes = new Map<NodeId, boolean>();

  electionElapsed = 0;
  heartbeatElapsed = 0;
  randomizedElectionTimeout = 0;
  leadTransferee: NodeId = NONE;

  pendingReadIndexMessages: MsgReadIndex[] = [];

  /** Ticks since this node started: the clock leases are measured with. */
  ticks = 0;
  /**
   * When (in `ticks`) this node last heard from a leader of its term. It ignores votes for
   * an election timeout after that (CheckQuorum; thesis §4.2.3), whatever happens to its
   * term meanwhile: a newer term learned from a stray response must not end the lease it
   * promised. A node that restarts with state counts its start as such a contact: it may
   * have acknowledged a leader just before it stopped.
   */
  leaderContactAt: number;
  /**
   * The term as of the last Ready the application made durable. A heartbeat is
   * acknowledged only once our term is durable: an acknowledgement promises to honour the
   * leader's lease, and a node that restarts with no term on disk does not know it must.
   */
  durableTerm: number;
  /** Heartbeat rounds (leader), and the reads and the lease they confirm. */
  readonly readOnly: ReadOnly;

  options: ResolvedOptions;
  readonly prng: Prng;
  readonly unsafe: NonNullable<RaftOptions["testingUnsafe"]>;
  stepRole: (m: Message) => void;

  constructor(options: RaftOptions) {
    this.id = options.id;
    this.prng = options.prng;
    this.unsafe = options.testingUnsafe ?? {};
    this.options = resolveOptions(options);
    this.readOnly = new ReadOnly(
      this.options.electionTick,
      this.options.electionTick - 1 - this.options.leaseClockDriftTicks,
    );

    const storage = options.storage;
    const { hardState, confState } = storage.initialState();
    this.log = new RaftLog(storage);
    this.configs = new ConfigHistory(confState);
    // Config entries after the snapshot take effect from the log (thesis §4.1).
    this.configs.scan(this.log, this.log.firstIndex(), this.log.lastIndex());
    applyConf(this, this.configs.current());

    if (hardState.commit > this.log.lastIndex()) {
      throw new RaftError(
        "RAFT_INVARIANT",
        `stored commit index ${hardState.commit} is beyond the last log index ${this.log.lastIndex()}`,
      );
    }
    this.term = hardState.term;
    this.vote = hardState.vote;
    this.leaderContactAt = hardState.term > 0 ? 0 : -Infinity;
    this.durableTerm = hardState.term;
    this.log.commitTo(hardState.commit);
    const applied = this.options.applied;
    if (applied > this.log.committed) {
      throw new RaftError(
        "RAFT_INVARIANT",
        `applied index ${applied} is beyond the commit index ${this.log.committed}`,
      );
    }
    if (applied > this.log.applied) this.log.appliedTo(applied);
    this.stepRole = this.stepFollower;
    this.becomeFollower(this.term, NONE);
  }

  // ---- Derived state -------------------------------------------------------------------

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  softState(): SoftState {
    return { lead: this.lead, role: this.role, term: this.term };
  }

  /** Index of the entry (or snapshot) the configuration in effect comes from. */
  latestConfigIndex(): number {
    return this.configs.latestIndex(this.log.firstIndex() - 1);
  }

  maxCommittedBytesPerReady(): number {
    return this.options.maxCommittedBytesPerReady;
  }

  electionTimeout(): number {
    return this.options.electionTick;
  }

  // ---- Role transitions ----------------------------------------------------------------

  becomeFollower(term: number, lead: NodeId): void {
    this.reset(term);
    this.stepRole = this.stepFollower;
    this.lead = lead;
    this.role = "follower";
  }

  becomePreCandidate(): void {
    if (this.role === "leader") throw new RaftError("RAFT_INVARIANT", "leader cannot pre-campaign");
    // PreVote (thesis §9.6) changes neither term nor vote: only a real election does.
    this.stepRole = this.stepCandidate;
    this.votes = new Map();
    this.lead = NONE;
    this.role = "pre-candidate";
  }

  becomeCandidate(): void {
    if (this.role === "leader") throw new RaftError("RAFT_INVARIANT", "leader cannot campaign");
    this.reset(this.term + 1);
    this.stepRole = this.stepCandidate;
    this.vote = this.id;
    this.role = "candidate";
  }

  becomeLeader(): void {
    if (this.role !== "candidate") {
      throw new RaftError("RAFT_INVARIANT", `only a candidate becomes leader, not a ${this.role}`);
    }
    this.reset(this.term);
    this.stepRole = this.stepLeader;
    this.lead = this.id;
    this.role = "leader";
    // Followers start in probe; this node's own log counts only once durable (§10.2.1).
    const self = this.progress.get(this.id);
    if (self !== undefined) {
      self.becomeReplicate();
      self.match = this.log.stableIndex();
      self.next = this.log.lastIndex() + 1;
    }
    // A no-op of the new term commits everything before it (§5.4.2, §8).
    this.appendEntries([{ index: 0, term: 0, type: "normal", data: new Uint8Array(0) }]);
  }

  reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.leadTransferee = NONE;
    this.votes = new Map();
    const next = this.log.lastIndex() + 1;
    for (const [id, pr] of [...this.progress]) {
      if (pr.departingAt !== undefined) {
        this.progress.delete(id); // a departing member is the leader's business only
        continue;
      }
      pr.becomeProbe();
      pr.match = 0;
      pr.next = next;
      pr.recentActive = pr.id === this.id;
    }
    this.pendingReadIndexMessages = [];
    this.readOnly.reset();
    this.broadcastDue = false;
    this.commitNoticeDue = false;
  }

  resetRandomizedElectionTimeout(): void {
    const { electionTick, electionTickMax } = this.options;
    this.randomizedElectionTimeout =
      electionTick + this.prng.nextInt(electionTickMax - electionTick);
  }

  // ---- Time ----------------------------------------------------------------------------

  tick(): void {
    this.ticks++;
    if (this.role === "leader") this.tickHeartbeat();
    else this.tickElection();
  }

  tickElection(): void {
    this.electionElapsed++;
    if (promotable(this) && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      hup(this, "election");
    }
  }

  tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.options.electionTick) {
      this.electionElapsed = 0;
      dropSilentDeparting(this);
      if (this.options.checkQuorum) this.checkQuorumActive();
      // A transfer that did not finish within an election timeout is abandoned (§3.10).
      if (this.role === "leader" && this.leadTransferee !== NONE) this.leadTransferee = NONE;
    }
    if (this.role !== "leader") return;
    if (this.heartbeatElapsed >= this.options.heartbeatTick) {
      this.heartbeatElapsed = 0;
      bcastHeartbeat(this);
    }
  }

  /** CheckQuorum (thesis §6.2): step down unless a quorum was heard from this round. */
  checkQuorumActive(): void {
    const active = new Map<NodeId, boolean>();
    for (const [id, pr] of this.progress) {
      if (!pr.isLearner && (pr.recentActive || id === this.id)) active.set(id, true);
      if (id !== this.id) pr.recentActive = false;
    }
    if (this.quorum.voteResult(active) !== "won") this.becomeFollower(this.term, NONE);
  }

  // ---- Step: terms first, then the role's handler (§5.1) ------------------------------

  step(m: Message): void {
    if (m.term === 0) {
      // MsgProp and MsgReadIndex forwarded by followers carry no term: they are local
      // requests of whoever receives them.
    } else if (m.term > this.term) {
      if (this.role === "leader" && this.progress.get(m.from)?.departingAt !== undefined) {
        // A member this leader removed, whose term ran ahead while it was cut off: its term
        // means nothing to the configuration that removed it. Stop contacting it instead of
        // stepping down (a real newer leader is still found through the members).
        this.progress.delete(m.from);
        this.readOnly.forget(m.from);
        return;
      }
      if (m.type === "MsgVote" || m.type === "MsgPreVote") {
        // A node that heard from a leader within the minimum election timeout ignores
        // votes (thesis §4.2.3, §6.2), unless the leader itself asked for the election.
        const inLease =
          this.options.checkQuorum &&
          (this.role === "leader" || this.ticks - this.leaderContactAt < this.options.electionTick);
        if (inLease && !m.transfer) return;
      }
      if (m.type === "MsgPreVote") {
        // A pre-vote never changes our term.
      } else if (m.type === "MsgPreVoteResp" && !m.reject) {
        // Granted pre-votes carry the term we will campaign for; they are counted below.
      } else if (m.type === "MsgApp" || m.type === "MsgHeartbeat" || m.type === "MsgSnap") {
        this.becomeFollower(m.term, m.from);
      } else if (m.type === "MsgVote" && this.role !== "leader") {
        // Figure 2: only a granted vote restarts the election timer, not a newer term. A
        // candidate whose log cannot win (a removed node that never learned it, with PreVote
        // off) would otherwise keep every voter's timer from running out, and nobody else
        // would ever campaign.
        const elapsed = this.electionElapsed;
        this.becomeFollower(m.term, NONE);
        this.electionElapsed = elapsed;
      } else {
        this.becomeFollower(m.term, NONE);
      }
    } else if (m.term < this.term) {
      this.rejectLowerTerm(m);
      return;
    }

    if (m.type === "MsgVote" || m.type === "MsgPreVote") {
      handleVoteRequest(this, m);
      return;
    }
    if (m.type === "MsgApp" || m.type === "MsgHeartbeat" || m.type === "MsgSnap") {
      this.leaderContactAt = this.ticks; // the leader of our term
    }
    this.stepRole(m);
  }

  /**
   * A request of a lower term is refused with our term (Figure 2: "reply false if term <
   * currentTerm"), so that a stale leader or candidate learns the newer term and steps
   * down. Without the reply, a candidate or leader left behind at a lower term (PreVote or
   * CheckQuorum off, membership churn) could never rejoin. Responses of lower terms are
   * stale and dropped.
   */
  rejectLowerTerm(m: Message): void {
    const legacy = this.unsafe.ignoreLowerTerms === true;
    switch (m.type) {
      case "MsgApp":
      case "MsgHeartbeat":
      case "MsgSnap":
        if (legacy && (m.type === "MsgSnap" || !(this.options.checkQuorum || this.options.preVote)))
          return;
        this.send({
          type: "MsgAppResp",
          from: this.id,
          to: m.from,
          term: this.term,
          index: 0,
          reject: false,
          rejectHint: 0,
          logTerm: 0,
        });
        return;
      case "MsgVote":
        if (legacy) return;
        this.send({
          type: "MsgVoteResp",
          from: this.id,
          to: m.from,
          term: this.term,
          reject: true,
        });
        return;
      case "MsgPreVote":
        this.send({
          type: "MsgPreVoteResp",
          from: this.id,
          to: m.from,
          term: this.term,
          reject: true,
        });
        return;
      default:
        return;
    }
  }

  stepLeader = (m: Message): void => {
    switch (m.type) {
      case "MsgProp":
        this.appendProposal(m.entries, m.from);
        return;
      case "MsgReadIndex":
        handleReadIndex(this, m);
        return;
      case "MsgTransferLeader":
        handleTransferLeader(this, m.target);
        return;
      case "MsgAppResp":
        handleAppendResponse(this, m);
        return;
      case "MsgHeartbeatResp":
        handleHeartbeatResponse(this, m);
        return;
      default:
        // Vote responses from an earlier candidacy, MsgTimeoutNow, read responses: stale.
        return;
    }
  };

  stepCandidate = (m: Message): void => {
    const myVoteResp = this.role === "pre-candidate" ? "MsgPreVoteResp" : "MsgVoteResp";
    switch (m.type) {
      case "MsgProp":
        // No leader to forward to: the caller learns through `propose`'s error.
        return;
      case "MsgApp":
        this.becomeFollower(m.term, m.from);
        handleAppendEntries(this, m);
        return;
      case "MsgHeartbeat":
        this.becomeFollower(m.term, m.from);
        handleHeartbeat(this, m);
        return;
      case "MsgSnap":
        this.becomeFollower(m.term, m.from);
        handleSnapshot(this, m);
        return;
      case "MsgVoteResp":
      case "MsgPreVoteResp":
        if (m.type === myVoteResp) poll(this, m.from, !m.reject);
        return;
      default:
        return;
    }
  };

  stepFollower = (m: Message): void => {
    switch (m.type) {
      case "MsgProp":
        if (this.lead !== NONE && !this.options.disableProposalForwarding) {
          this.send({ ...m, to: this.lead });
        }
        return;
      case "MsgApp":
        this.electionElapsed = 0;
        this.lead = m.from;
        handleAppendEntries(this, m);
        return;
      case "MsgHeartbeat":
        this.electionElapsed = 0;
        this.lead = m.from;
        handleHeartbeat(this, m);
        return;
      case "MsgSnap":
        this.electionElapsed = 0;
        this.lead = m.from;
        handleSnapshot(this, m);
        return;
      case "MsgTransferLeader":
        if (this.lead !== NONE) this.send({ ...m, to: this.lead });
        return;
      case "MsgTimeoutNow":
        // Leadership transfer (thesis §3.10): campaign at once, past any lease.
        hup(this, "transfer");
        return;
      case "MsgReadIndex":
        if (this.lead !== NONE) this.send({ ...m, to: this.lead });
        return;
      case "MsgReadIndexResp":
        this.readStates.push({ index: m.index, context: m.context });
        return;
      default:
        return;
    }
  };

  // ---- Proposals ---------------------------------------------------------------------

  /**
   * Appends client entries on the leader; returns the index of the first. Throws
   * RAFT_PROPOSAL_DROPPED (with a reason) when this node cannot take them now.
   */
  propose(datas: readonly Uint8Array[]): { index: number; term: number } | undefined {
    const entries: Entry[] = datas.map((data) => ({ index: 0, term: 0, type: "normal", data }));
    if (this.role === "leader") {
      const index = this.appendProposal(entries, this.id);
      return { index, term: this.term };
    }
    if (this.lead === NONE) this.dropProposal("no-leader");
    if (this.options.disableProposalForwarding) this.dropProposal("forwarding-disabled");
    this.send({ type: "MsgProp", from: this.id, to: this.lead, term: 0, entries });
    return undefined;
  }

  dropProposal(reason: DropReason): never {
    const why: Record<DropReason, string> = {
      "no-leader": "there is no leader",
      "transfer-in-progress": `leadership is being transferred to ${this.leadTransferee}`,
      "not-a-member": "this leader is not a member of the configuration",
      "forwarding-disabled": "this node is not the leader and proposal forwarding is off",
      "config-change-in-progress": `a configuration change (index ${this.latestConfigIndex()}) is still in progress`,
      "not-leader": "this node is not the leader",
    };
    throw new RaftError("RAFT_PROPOSAL_DROPPED", `proposal dropped: ${why[reason]}`, {
      reason,
      leader: this.lead,
    });
  }

  /** Leader: assigns indexes and appends; returns the first index. */
  appendProposal(entries: readonly Entry[], from: NodeId): number {
    const drop = (reason: DropReason): number => {
      if (from === this.id) this.dropProposal(reason);
      return 0; // A forwarded proposal is dropped silently; its sender retries on timeout.
    };
    if (entries.length === 0) return this.log.lastIndex() + 1;
    if (!this.progress.has(this.id)) return drop("not-a-member");
    if (this.leadTransferee !== NONE) return drop("transfer-in-progress");
    if (entries.some((entry) => entry.type === "config")) {
      // Config entries come only from changeMembership on this leader.
      if (from !== this.id) return drop("not-leader");
    }
    const first = this.log.lastIndex() + 1;
    this.appendEntries(entries);
    if (from !== this.id) {
      // The forwarder answers its clients once it has applied these: tell it the commit.
      const forwarder = this.progress.get(from);
      if (forwarder !== undefined) forwarder.awaitsCommit = this.log.lastIndex();
    }
    // Sent when the node is next asked for a Ready, with whatever else arrives until then:
    // one MsgApp per follower for all of them, not one per MsgProp.
    this.broadcastDue = true;
    return first;
  }

  appendEntries(entries: readonly Entry[]): void {
    let index = this.log.lastIndex();
    const stamped: Entry[] = new Array<Entry>(entries.length);
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      stamped[i] = { index: ++index, term: this.term, type: entry.type, data: entry.data };
    }
    appendToLog(this, stamped);
  }

  // ---- Output --------------------------------------------------------------------------

  send(m: Message): void {
    // Responses that promise durable state (a vote, an acknowledged append) wait for the
    // unstable state to be persisted (Ready duty 3).
    if (m.type === "MsgAppResp" || m.type === "MsgVoteResp" || m.type === "MsgPreVoteResp") {
      this.msgsAfterPersist.push(m);
    } else {
      this.msgs.push(m);
    }
  }
}
