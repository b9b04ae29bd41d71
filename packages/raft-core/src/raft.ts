import {
  allMembers,
  decodeConfState,
  encodeConfState,
  isEmptyConfState,
  makeConfState,
} from "./conf-state.js";
import { RaftError, type DropReason } from "./errors.js";
import { RaftLog } from "./log.js";
import type { Prng } from "./prng.js";
import { Progress } from "./progress.js";
import { quorumFor, type Quorum } from "./quorum.js";
import { validateOptions, type RaftOptions } from "./options.js";
import { ReadOnly } from "./read-only.js";
import {
  EMPTY_CONF_STATE,
  NONE,
  entrySize,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type MsgApp,
  type MsgAppResp,
  type MsgHeartbeat,
  type MsgHeartbeatResp,
  type MsgReadIndex,
  type MsgSnap,
  type MsgVote,
  type NodeId,
  type ReadState,
  type SoftState,
  type StateRole,
} from "./types.js";

/** The leader's view of one member's replication. */
export interface ProgressStatus {
  /** Highest index known to match the leader's log. */
  readonly match: number;
  /** Next index to send. */
  readonly next: number;
  /** `probe` (finding the match), `replicate` (pipelining) or `snapshot` (sending one). */
  readonly state: Progress["state"];
  /** Append messages sent and not yet acknowledged. */
  readonly inflight: number;
  /** Whether the member was heard from in the current election timeout (CheckQuorum). */
  readonly recentActive: boolean;
  /** Whether the member is a learner. */
  readonly isLearner: boolean;
}

/** A snapshot of a node's state, for metrics and tests. */
export interface Status {
  /** This node's id. */
  readonly id: NodeId;
  /** The current hard state (possibly not yet durable). */
  readonly hardState: HardState;
  /** Role, leader and term. */
  readonly softState: SoftState;
  /** The index the application last reported applied (via `advance`). */
  readonly applied: number;
  /** The last index of this node's log. */
  readonly lastIndex: number;
  /** The membership in effect. */
  readonly confState: ConfState;
  /** Index of the entry (or snapshot) the configuration in effect comes from. */
  readonly configIndex: number;
  /** The target of a leadership transfer in progress, or {@link NONE}. */
  readonly leadTransferee: NodeId;
  /** Replication progress per member; only on the leader, empty otherwise. */
  readonly progress: ReadonlyMap<NodeId, ProgressStatus>;
}

type CampaignKind = "pre-election" | "election" | "transfer";

interface ConfigEntry {
  readonly index: number;
  readonly conf: ConfState;
}

/**
 * The Raft state machine (§5, and thesis §3–§6, §9): synchronous, deterministic, no I/O.
 * Inputs are method calls; outputs accumulate in `msgs`, `msgsAfterPersist`, `readStates`
 * and the log's unstable part, which `RawNode` hands out as a `Ready`.
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
  /** Messages to send only once the current unstable state is durable (Ready duty 3). */
  msgsAfterPersist: Message[] = [];
  readStates: ReadState[] = [];
  /** The applied index at which the snapshot policy last asked for a snapshot, if pending. */
  snapshotDue: number | undefined;
  private snapshotRequestedAt = 0;
  /** Entries up to this index may be discarded from the log (a snapshot covers them). */
  pendingCompaction: number | undefined;

  // Membership: the snapshot's configuration, then every config entry in the log after it.
  // The newest one is in effect as soon as it is appended (thesis §4.1).
  private baseConf: ConfState;
  private configEntries: ConfigEntry[] = [];
  conf: ConfState = EMPTY_CONF_STATE;
  private quorum: Quorum = quorumFor([], []);
  readonly progress = new Map<NodeId, Progress>();
  private votes = new Map<NodeId, boolean>();

  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  leadTransferee: NodeId = NONE;

  private pendingReadIndexMessages: MsgReadIndex[] = [];

  /** Ticks since this node started: the clock leases are measured with. */
  private ticks = 0;
  /**
   * When (in `ticks`) this node last heard from a leader of its term. It ignores votes for
   * an election timeout after that (CheckQuorum; thesis §4.2.3), whatever happens to its
   * term meanwhile: a newer term learned from a stray response must not end the lease it
   * promised. A node that restarts with state counts its start as such a contact: it may
   * have acknowledged a leader just before it stopped.
   */
  private leaderContactAt: number;
  /**
   * The term as of the last Ready the application made durable. A heartbeat is
   * acknowledged only once our term is durable: an acknowledgement promises to honour the
   * leader's lease, and a node that restarts with no term on disk does not know it must.
   */
  durableTerm: number;
  /** Heartbeat rounds (leader), and the reads and the lease they confirm. */
  private readonly readOnly: ReadOnly;

  private readonly options: Required<
    Omit<RaftOptions, "testingUnsafe" | "storage" | "prng" | "id">
  >;
  private readonly prng: Prng;
  private readonly unsafe: NonNullable<RaftOptions["testingUnsafe"]>;
  private stepRole: (m: Message) => void;

  constructor(options: RaftOptions) {
    validateOptions(options);
    this.id = options.id;
    this.prng = options.prng;
    this.unsafe = options.testingUnsafe ?? {};
    this.options = {
      electionTick: options.electionTick,
      electionTickMax: options.electionTickMax ?? 2 * options.electionTick,
      heartbeatTick: options.heartbeatTick,
      applied: options.applied ?? 0,
      maxEntriesPerMsg: options.maxEntriesPerMsg ?? 300,
      maxBytesPerMsg: options.maxBytesPerMsg ?? 1024 * 1024,
      maxInflightMsgs: options.maxInflightMsgs ?? 256,
      maxInflightBytes: options.maxInflightBytes ?? 0,
      maxCommittedBytesPerReady: options.maxCommittedBytesPerReady ?? 64 * 1024 * 1024,
      preVote: options.preVote ?? true,
      checkQuorum: options.checkQuorum ?? true,
      readMode: options.readMode ?? "read_index",
      leaseClockDriftTicks: options.leaseClockDriftTicks ?? Math.ceil(options.electionTick / 5),
      disableProposalForwarding: options.disableProposalForwarding ?? false,
      commitNotice: options.commitNotice ?? "broadcast",
      snapshotInterval: options.snapshotInterval ?? 5000,
      snapshotKeepEntries: options.snapshotKeepEntries ?? 1000,
    };
    this.readOnly = new ReadOnly(
      this.options.electionTick,
      this.options.electionTick - 1 - this.options.leaseClockDriftTicks,
    );

    const storage = options.storage;
    const { hardState, confState } = storage.initialState();
    this.log = new RaftLog(storage);
    this.baseConf = confState;
    // Config entries after the snapshot take effect from the log (thesis §4.1).
    this.scanConfigEntries(this.log.firstIndex(), this.log.lastIndex());
    this.applyConf(this.currentConf());

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

  /**
   * A voter of the configuration in effect may campaign. So may a voter of the previous
   * configuration while the newest one is uncommitted: a leader removing itself may still
   * be needed to replicate C_new (thesis §4.2.2, Figure 4.6); it does not count its own vote.
   * Learners and strangers never campaign.
   */
  promotable(): boolean {
    if (this.quorum.isVoter(this.id)) return true;
    if (this.latestConfigIndex() <= this.log.committed) return false;
    const previous = this.configEntries[this.configEntries.length - 2]?.conf ?? this.baseConf;
    return previous.voters.includes(this.id) || previous.votersOutgoing.includes(this.id);
  }

  maxCommittedBytesPerReady(): number {
    return this.options.maxCommittedBytesPerReady;
  }

  electionTimeout(): number {
    return this.options.electionTick;
  }

  status(): Status {
    const progress = new Map<NodeId, ProgressStatus>();
    if (this.role === "leader") {
      for (const [id, pr] of this.progress) {
        if (pr.departingAt !== undefined) continue; // no longer a member
        progress.set(id, {
          match: pr.match,
          next: pr.next,
          state: pr.state,
          inflight: pr.inflights.count,
          recentActive: pr.recentActive,
          isLearner: pr.isLearner,
        });
      }
    }
    return {
      id: this.id,
      hardState: this.hardState(),
      softState: this.softState(),
      applied: this.log.applied,
      lastIndex: this.log.lastIndex(),
      confState: this.conf,
      configIndex: this.latestConfigIndex(),
      leadTransferee: this.leadTransferee,
      progress,
    };
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

  private reset(term: number): void {
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
  }

  private resetRandomizedElectionTimeout(): void {
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

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.hup("election");
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.options.electionTick) {
      this.electionElapsed = 0;
      this.dropSilentDeparting();
      if (this.options.checkQuorum) this.checkQuorumActive();
      // A transfer that did not finish within an election timeout is abandoned (§3.10).
      if (this.role === "leader" && this.leadTransferee !== NONE) this.leadTransferee = NONE;
    }
    if (this.role !== "leader") return;
    if (this.heartbeatElapsed >= this.options.heartbeatTick) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat();
    }
  }

  /**
   * A removed member not heard from for an election timeout is given up on, and so is one
   * still not told after ten (say, a snapshot to it keeps failing).
   */
  private dropSilentDeparting(): void {
    for (const [id, pr] of [...this.progress]) {
      if (pr.departingAt === undefined) continue;
      pr.departingRounds++;
      if (!pr.recentActive || pr.departingRounds > 10) {
        this.progress.delete(id);
        this.readOnly.forget(id);
      } else pr.recentActive = false;
    }
  }

  /** CheckQuorum (thesis §6.2): step down unless a quorum was heard from this round. */
  private checkQuorumActive(): void {
    const active = new Map<NodeId, boolean>();
    for (const [id, pr] of this.progress) {
      if (!pr.isLearner && (pr.recentActive || id === this.id)) active.set(id, true);
      if (id !== this.id) pr.recentActive = false;
    }
    if (this.quorum.voteResult(active) !== "won") this.becomeFollower(this.term, NONE);
  }

  // ---- Elections -----------------------------------------------------------------------

  /** Starts an election now (or a pre-election when PreVote is on). */
  hup(kind: "election" | "transfer"): void {
    if (this.role === "leader" || !this.promotable()) return;
    if (kind === "transfer") this.campaign("transfer");
    else this.campaign(this.options.preVote ? "pre-election" : "election");
  }

  private campaign(kind: CampaignKind): void {
    let term: number;
    let type: "MsgVote" | "MsgPreVote";
    if (kind === "pre-election") {
      this.becomePreCandidate();
      type = "MsgPreVote";
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      type = "MsgVote";
      term = this.term;
    }
    const index = this.log.lastIndex();
    const logTerm = this.log.lastTerm();
    for (const id of this.quorum.voterIds()) {
      if (id === this.id) {
        // Our own vote counts only once the term and vote are durable: it is delivered
        // back to us after persisting, like any other vote response.
        this.msgsAfterPersist.push({
          type: type === "MsgVote" ? "MsgVoteResp" : "MsgPreVoteResp",
          from: this.id,
          to: this.id,
          term,
          reject: false,
        });
      } else {
        this.msgs.push({
          type,
          from: this.id,
          to: id,
          term,
          index,
          logTerm,
          transfer: kind === "transfer",
        });
      }
    }
  }

  private poll(from: NodeId, granted: boolean): void {
    if (!this.votes.has(from)) this.votes.set(from, granted);
    const result = this.quorum.voteResult(this.votes);
    if (result === "won") {
      if (this.role === "pre-candidate") this.campaign("election");
      else {
        this.becomeLeader();
        this.bcastAppend();
      }
    } else if (result === "lost") {
      this.becomeFollower(this.term, NONE);
    }
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
      this.handleVoteRequest(m);
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
  private rejectLowerTerm(m: Message): void {
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

  /** §5.2 one vote per term, §5.4.1 only for a log at least as up to date as ours. */
  private handleVoteRequest(m: MsgVote): void {
    const canVote =
      this.vote === m.from ||
      (this.vote === NONE && this.lead === NONE) ||
      (m.type === "MsgPreVote" && m.term > this.term);
    const upToDate =
      this.unsafe.grantVotesWithoutLogCheck === true || this.log.isUpToDate(m.index, m.logTerm);
    const respType = m.type === "MsgVote" ? "MsgVoteResp" : "MsgPreVoteResp";
    if (canVote && upToDate) {
      this.send({ type: respType, from: this.id, to: m.from, term: m.term, reject: false });
      if (m.type === "MsgVote") {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send({ type: respType, from: this.id, to: m.from, term: this.term, reject: true });
    }
  }

  private stepLeader = (m: Message): void => {
    switch (m.type) {
      case "MsgProp":
        this.appendProposal(m.entries, m.from);
        return;
      case "MsgReadIndex":
        this.handleReadIndex(m);
        return;
      case "MsgTransferLeader":
        this.handleTransferLeader(m.target);
        return;
      case "MsgAppResp":
        this.handleAppendResponse(m);
        return;
      case "MsgHeartbeatResp":
        this.handleHeartbeatResponse(m);
        return;
      default:
        // Vote responses from an earlier candidacy, MsgTimeoutNow, read responses: stale.
        return;
    }
  };

  private stepCandidate = (m: Message): void => {
    const myVoteResp = this.role === "pre-candidate" ? "MsgPreVoteResp" : "MsgVoteResp";
    switch (m.type) {
      case "MsgProp":
        // No leader to forward to: the caller learns through `propose`'s error.
        return;
      case "MsgApp":
        this.becomeFollower(m.term, m.from);
        this.handleAppendEntries(m);
        return;
      case "MsgHeartbeat":
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case "MsgSnap":
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case "MsgVoteResp":
      case "MsgPreVoteResp":
        if (m.type === myVoteResp) this.poll(m.from, !m.reject);
        return;
      default:
        return;
    }
  };

  private stepFollower = (m: Message): void => {
    switch (m.type) {
      case "MsgProp":
        if (this.lead !== NONE && !this.options.disableProposalForwarding) {
          this.send({ ...m, to: this.lead });
        }
        return;
      case "MsgApp":
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppendEntries(m);
        return;
      case "MsgHeartbeat":
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case "MsgSnap":
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case "MsgTransferLeader":
        if (this.lead !== NONE) this.send({ ...m, to: this.lead });
        return;
      case "MsgTimeoutNow":
        // Leadership transfer (thesis §3.10): campaign at once, past any lease.
        this.hup("transfer");
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

  private dropProposal(reason: DropReason): never {
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
  private appendProposal(entries: readonly Entry[], from: NodeId): number {
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
    this.bcastAppend();
    return first;
  }

  private appendEntries(entries: readonly Entry[]): void {
    let index = this.log.lastIndex();
    const stamped: Entry[] = new Array<Entry>(entries.length);
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      stamped[i] = { index: ++index, term: this.term, type: entry.type, data: entry.data };
    }
    this.appendToLog(stamped);
  }

  /** Every append goes through here, so that config entries take effect when appended. */
  private appendToLog(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = entries[0]!.index;
    let changed = false;
    // Config entries being overwritten no longer count (a truncated config is rolled back).
    while (
      this.configEntries.length > 0 &&
      this.configEntries[this.configEntries.length - 1]!.index >= first
    ) {
      this.configEntries.pop();
      changed = true;
    }
    this.log.append(entries);
    for (const entry of entries) {
      if (entry.type === "config") {
        this.configEntries.push({ index: entry.index, conf: decodeConfState(entry.data) });
        changed = true;
      }
    }
    if (changed) this.applyConf(this.currentConf());
  }

  /** Index of the entry (or snapshot) the configuration in effect comes from. */
  latestConfigIndex(): number {
    const last = this.configEntries[this.configEntries.length - 1];
    return last === undefined ? this.log.firstIndex() - 1 : last.index;
  }

  /** A change is in progress until its entry commits and any joint configuration is left. */
  membershipChangeInProgress(): boolean {
    return this.latestConfigIndex() > this.log.committed || this.conf.votersOutgoing.length > 0;
  }

  /**
   * Changes the membership to `target` (thesis §4.3). A change of voters goes through the
   * joint configuration C_old,new, then C_new, which the leader proposes by itself once the
   * joint entry commits; a change of learners alone needs no joint step. Each entry takes
   * effect when appended. One change at a time.
   */
  changeMembership(target: ConfState): { index: number; term: number } {
    if (this.role !== "leader") {
      throw new RaftError(
        "RAFT_REQUEST_REFUSED",
        this.lead === NONE
          ? "membership change refused: there is no leader"
          : `membership change refused: node ${this.id} is not the leader (node ${this.lead} is)`,
        { reason: this.lead === NONE ? "no-leader" : "not-leader", leader: this.lead },
      );
    }
    if (this.membershipChangeInProgress()) {
      throw new RaftError(
        "RAFT_REQUEST_REFUSED",
        `membership change refused: the change at index ${this.latestConfigIndex()} is still in progress`,
        { reason: "config-change-in-progress", leader: this.id },
      );
    }
    if (this.leadTransferee !== NONE) {
      throw new RaftError(
        "RAFT_REQUEST_REFUSED",
        `membership change refused: leadership is being transferred to ${this.leadTransferee}`,
        { reason: "transfer-in-progress", leader: this.id },
      );
    }
    const votersChange = !sameIds(target.voters, this.conf.voters);
    const next: ConfState = votersChange
      ? makeConfState(target.voters, target.learners, this.conf.voters, target.context)
      : makeConfState(target.voters, target.learners, [], target.context);
    const index = this.log.lastIndex() + 1;
    this.appendEntries([{ index: 0, term: 0, type: "config", data: encodeConfState(next) }]);
    this.bcastAppend();
    return { index, term: this.term };
  }

  /** Once C_old,new commits, the leader proposes C_new (thesis §4.3). */
  private maybeLeaveJoint(): void {
    if (this.role !== "leader" || this.conf.votersOutgoing.length === 0) return;
    if (this.latestConfigIndex() > this.log.committed) return;
    const next = makeConfState(this.conf.voters, this.conf.learners, [], this.conf.context);
    this.appendEntries([{ index: 0, term: 0, type: "config", data: encodeConfState(next) }]);
    this.bcastAppend();
  }

  private scanConfigEntries(lo: number, hi: number): void {
    const chunk = 1024;
    for (let start = lo; start <= hi; start += chunk) {
      for (const entry of this.log.slice(start, Math.min(hi, start + chunk - 1) + 1)) {
        if (entry.type === "config") {
          this.configEntries.push({ index: entry.index, conf: decodeConfState(entry.data) });
        }
      }
    }
  }

  private currentConf(): ConfState {
    const last = this.configEntries[this.configEntries.length - 1];
    return last === undefined ? this.baseConf : last.conf;
  }

  private applyConf(conf: ConfState): void {
    this.conf = conf;
    this.quorum = quorumFor(conf.voters, conf.votersOutgoing);
    const members = new Set(allMembers(conf));
    const learners = new Set(conf.learners);
    for (const [id, pr] of [...this.progress]) {
      if (members.has(id)) continue;
      if (this.role === "leader" && id !== this.id && this.configEntries.length > 0) {
        // Removed by the entry just appended: keep replicating to it, counting it toward
        // nothing, until it knows that entry committed (see `departingAt`).
        pr.departingAt ??= this.latestConfigIndex();
        pr.isLearner = true;
        if (this.leadTransferee === id) this.leadTransferee = NONE;
        continue;
      }
      this.progress.delete(id);
    }
    for (const id of members) {
      const existing = this.progress.get(id);
      if (existing !== undefined && existing.departingAt !== undefined) {
        // Added back while departing: it may be a new node on a wiped disk. Start afresh
        // rather than trust what the removed one had acknowledged.
        this.progress.delete(id);
        this.readOnly.forget(id);
      } else if (existing !== undefined) {
        existing.isLearner = learners.has(id) && !this.quorum.isVoter(id);
        continue;
      }
      const pr = new Progress(
        id,
        this.log.lastIndex() + 1,
        this.options.maxInflightMsgs,
        this.options.maxInflightBytes,
        learners.has(id) && !this.quorum.isVoter(id),
      );
      // A member joining a leader's configuration starts recently active, so that a
      // CheckQuorum round right after the change does not count it as lost.
      pr.recentActive = true;
      if (id === this.id && this.role === "leader") {
        pr.becomeReplicate();
        pr.match = this.log.stableIndex();
      }
      this.progress.set(id, pr);
    }
  }

  /** Bootstraps a brand-new node: the first config entry at index 1, term 1, committed. */
  bootstrap(conf: ConfState): void {
    if (this.log.lastIndex() !== 0 || this.term !== 0 || this.vote !== NONE) {
      throw new RaftError(
        "RAFT_ALREADY_INITIALIZED",
        `node ${this.id} already has state (term ${this.term}, last index ${this.log.lastIndex()}); bootstrapping again would reset it`,
      );
    }
    if (isEmptyConfState(conf) || conf.voters.length === 0) {
      throw new RangeError("bootstrap: the configuration needs at least one voter");
    }
    this.becomeFollower(1, NONE);
    this.appendToLog([{ index: 1, term: 1, type: "config", data: encodeConfState(conf) }]);
    this.log.commitTo(1);
  }

  // ---- Replication (leader) ------------------------------------------------------------

  private bcastAppend(): void {
    for (const id of this.progress.keys()) {
      if (id !== this.id) this.maybeSendAppend(id, true);
    }
  }

  /**
   * After the commit index moved: sends each follower what it is missing, with the new
   * commit index; with `commitNotice: "on-demand"`, an empty MsgApp only to those waiting
   * for it (they forwarded the proposals or asked for the read index).
   */
  private sendCommit(): void {
    if (this.options.commitNotice === "broadcast") {
      this.bcastAppend();
      return;
    }
    for (const [id, pr] of this.progress) {
      if (id !== this.id) this.maybeSendAppend(id, pr.awaitsCommit > pr.sentCommit);
    }
  }

  /**
   * Sends entries (or a snapshot) to `to` unless its progress is paused. With
   * `sendIfEmpty`, sends an empty MsgApp to carry the commit index or probe. Returns
   * whether a message was sent.
   */
  private maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.progress.get(to);
    if (pr === undefined || to === this.id || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    if (prevTerm === undefined || pr.next < this.log.firstIndex()) return this.sendSnapshot(to, pr);

    const last = this.log.lastIndex();
    let entries: Entry[] = [];
    if (pr.next <= last) {
      const hi = Math.min(last + 1, pr.next + this.options.maxEntriesPerMsg);
      entries = this.log.slice(pr.next, hi, this.options.maxBytesPerMsg);
    }
    if (entries.length === 0 && !sendIfEmpty) return false;
    let bytes = 0;
    for (const entry of entries) bytes += entrySize(entry);
    pr.sentEntries(entries.length, prevIndex + entries.length, bytes);
    // The follower commits no further than the last entry this message brings it.
    pr.sentCommit = Math.max(
      pr.sentCommit,
      Math.min(this.log.committed, prevIndex + entries.length),
    );
    this.send({
      type: "MsgApp",
      from: this.id,
      to,
      term: this.term,
      index: prevIndex,
      logTerm: prevTerm,
      entries,
      commit: this.log.committed,
    });
    return true;
  }

  private sendSnapshot(to: NodeId, pr: Progress): boolean {
    if (!pr.recentActive) return false; // Do not ship a snapshot to a node that may be down.
    const snapshot = this.log.pendingSnapshot() ?? this.log.storage.snapshot();
    if (snapshot.metadata.index === 0) return false;
    pr.becomeSnapshot(snapshot.metadata.index);
    this.send({ type: "MsgSnap", from: this.id, to, term: this.term, snapshot });
    return true;
  }

  private handleAppendResponse(m: MsgAppResp): void {
    const pr = this.progress.get(m.from);
    if (pr === undefined) return;
    pr.recentActive = true;
    if (m.reject) {
      // Fast backtracking: jump to where our log and the follower's hint can match.
      let nextProbe = m.rejectHint;
      if (m.logTerm > 0) nextProbe = this.log.findConflictByTerm(m.rejectHint, m.logTerm).index;
      if (pr.maybeDecrTo(m.index, nextProbe)) {
        if (pr.state === "replicate") pr.becomeProbe();
        this.maybeSendAppend(m.from, true);
      }
      return;
    }
    const wasPaused = pr.isPaused();
    if (!pr.maybeUpdate(m.index)) return;
    if (pr.state === "probe") pr.becomeReplicate();
    else if (pr.state === "snapshot" && pr.match + 1 >= this.log.firstIndex()) {
      pr.becomeProbe();
      pr.becomeReplicate();
    } else if (pr.state === "replicate") pr.inflights.freeLE(m.index);

    if (this.maybeCommit()) {
      if (this.role !== "leader") return; // it stepped down (removed itself): it sends nothing
      this.sendCommit();
      this.releasePendingReadIndexMessages();
    } else if (m.from !== this.id && wasPaused) {
      this.maybeSendAppend(m.from, true);
    }
    if (m.from !== this.id) {
      // Pipelining: keep the window full while there is something to send.
      while (this.maybeSendAppend(m.from, false)) {
        /* send the next batch */
      }
    }
    if (
      m.from === this.leadTransferee &&
      pr.departingAt === undefined &&
      pr.match === this.log.lastIndex()
    ) {
      this.sendTimeoutNow(m.from);
    }
  }

  /** Commits what a quorum has durably acknowledged, if of this term (§5.3, §5.4.2). */
  private maybeCommit(): boolean {
    const index = this.quorum.committedIndex((id) => this.progress.get(id)?.match);
    if (!this.log.maybeCommit(index, this.term)) return false;
    this.maybeLeaveJoint();
    this.maybeStepDownAfterRemoval();
    return true;
  }

  /** A leader no longer among the voters of a committed configuration steps down (§4.2.2). */
  private maybeStepDownAfterRemoval(): void {
    const latest = this.configEntries[this.configEntries.length - 1];
    if (latest === undefined || latest.index > this.log.committed) return;
    if (this.role === "leader" && !this.quorum.isVoter(this.id)) {
      // Tell every member, and every member this change removed, that it committed (an
      // empty append after our last entry, whatever their flow control: a follower whose
      // log matches ours commits; another refuses, harmlessly). A removed member learns it
      // no longer belongs and stops campaigning; the new voters need not wait for a leader.
      const last = this.log.lastIndex();
      const logTerm = this.log.lastTerm();
      for (const id of this.progress.keys()) {
        if (id === this.id) continue;
        this.send({
          type: "MsgApp",
          from: this.id,
          to: id,
          term: this.term,
          index: last,
          logTerm,
          entries: [],
          commit: this.log.committed,
        });
      }
      this.becomeFollower(this.term, NONE);
    }
  }

  private bcastHeartbeat(): void {
    const context = String(this.readOnly.newRound(this.ticks));
    for (const id of this.progress.keys()) {
      if (id !== this.id) this.sendHeartbeat(id, context);
    }
  }

  private sendHeartbeat(to: NodeId, context: string): void {
    const pr = this.progress.get(to)!;
    // Never tell a follower to commit past what it is known to hold.
    const commit = Math.min(pr.match, this.log.committed);
    pr.sentCommit = Math.max(pr.sentCommit, commit);
    if (pr.departingAt !== undefined && commit >= pr.departingAt) {
      // This heartbeat tells a removed member its removal committed (see departedRound).
      pr.departedRound ??= Number(context);
    }
    this.send({ type: "MsgHeartbeat", from: this.id, to, term: this.term, commit, context });
  }

  private handleHeartbeatResponse(m: MsgHeartbeatResp): void {
    const pr = this.progress.get(m.from);
    if (pr === undefined) return;
    pr.recentActive = true;
    pr.msgAppFlowPaused = false;
    // A full window that a heartbeat round trip did not drain has probably lost a message:
    // free one slot so that a MsgApp goes out and, if rejected, replication backtracks.
    if (pr.state === "replicate" && pr.inflights.full()) pr.inflights.freeFirstOne();
    if (pr.match < this.log.lastIndex() || pr.state === "probe") this.maybeSendAppend(m.from, true);
    const round = this.readOnly.roundOf(m.context);
    if (round === undefined) return;
    if (pr.departedRound !== undefined && round >= pr.departedRound) {
      // A removed member acknowledged a heartbeat that told it its removal committed: it
      // holds the entry and knows it is committed, so it no longer campaigns. Forget it.
      this.progress.delete(m.from);
      this.readOnly.forget(m.from);
      return;
    }
    // Confirming a later request confirms every earlier one (they share the round trip).
    for (const done of this.readOnly.acknowledge(m.from, round, this.quorum, this.id))
      this.respondToRead(done.from, done.index, done.context);
  }

  /** Whether this leader's lease holds (see `ReadOnly.leaseValid`). */
  private leaseValid(): boolean {
    if (this.unsafe.leaseFromQuorumCheck === true) return true;
    return this.readOnly.leaseValid(this.quorum, this.id, this.ticks);
  }

  private sendTimeoutNow(to: NodeId): void {
    this.readOnly.revokeLease();
    this.send({ type: "MsgTimeoutNow", from: this.id, to, term: this.term });
  }

  // ---- Leadership transfer (thesis §3.10) -----------------------------------------------

  /** Asks the leader (this node, or the one it knows) to hand leadership to `target`. */
  transferLeader(target: NodeId): void {
    if (this.role === "leader") {
      this.handleTransferLeader(target, true);
      return;
    }
    if (this.lead === NONE) {
      throw new RaftError(
        "RAFT_REQUEST_REFUSED",
        "leadership transfer refused: there is no leader",
        {
          reason: "no-leader",
        },
      );
    }
    this.send({ type: "MsgTransferLeader", from: this.id, to: this.lead, term: this.term, target });
  }

  private handleTransferLeader(target: NodeId, local = false): void {
    const pr = this.progress.get(target);
    if (pr === undefined || pr.isLearner) {
      if (local) {
        throw new RaftError(
          "RAFT_REQUEST_REFUSED",
          `leadership transfer refused: node ${target} is not a voter`,
          { reason: "not-a-member", leader: this.id },
        );
      }
      return;
    }
    if (target === this.leadTransferee) return;
    if (target === this.id) {
      this.leadTransferee = NONE; // Already leader: a transfer to self cancels any other.
      return;
    }
    this.leadTransferee = target;
    // The transfer must finish within an election timeout or is abandoned.
    this.electionElapsed = 0;
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(target);
    else this.maybeSendAppend(target, true);
  }

  // ---- Reads (thesis §6.4) ---------------------------------------------------------------

  /**
   * Requests a linearizable read point for `context` (unique per request). The answer
   * arrives as a `ReadState` in a later Ready. Throws RAFT_READ_DROPPED when no leader is
   * known.
   */
  readIndex(context: string): void {
    if (this.role === "leader") {
      this.handleReadIndex({ type: "MsgReadIndex", from: this.id, to: this.id, term: 0, context });
      return;
    }
    if (this.lead === NONE) {
      throw new RaftError("RAFT_READ_DROPPED", "read dropped: there is no leader", {
        reason: "no-leader",
      });
    }
    this.send({ type: "MsgReadIndex", from: this.id, to: this.lead, term: 0, context });
  }

  private handleReadIndex(m: MsgReadIndex): void {
    // Until an entry of this term commits, the leader's commit index may lag what earlier
    // leaders committed (§6.4 step 1): hold reads until then. This holds for a sole voter
    // too: one that became leader after the configuration shrank to it may not have heard
    // of the last commits of the configuration before (found by the simulator).
    if (this.log.term(this.log.committed) !== this.term) {
      this.pendingReadIndexMessages.push(m);
      return;
    }
    this.startRead(m);
  }

  private startRead(m: MsgReadIndex): void {
    if (this.quorum.voterIds().length === 1 && this.quorum.isVoter(this.id)) {
      // A sole voter needs no heartbeat round to know it still leads.
      this.respondToRead(m.from, this.log.committed, m.context);
      return;
    }
    if (this.options.readMode === "lease" && this.leaseValid()) {
      this.respondToRead(m.from, this.log.committed, m.context);
      return;
    }
    // ReadIndex (and a lease read whose lease has run out): a new heartbeat round, and the
    // answer once a quorum acknowledged it. Every request is answered on its own, even one
    // whose context another pending request shares.
    const round = this.readOnly.addRequest(
      { context: m.context, index: this.log.committed, from: m.from },
      this.ticks,
    );
    const context = String(round);
    for (const id of this.progress.keys()) {
      if (id !== this.id) this.sendHeartbeat(id, context);
    }
  }

  private releasePendingReadIndexMessages(): void {
    if (this.pendingReadIndexMessages.length === 0) return;
    if (this.log.term(this.log.committed) !== this.term) return;
    const pending = this.pendingReadIndexMessages;
    this.pendingReadIndexMessages = [];
    for (const m of pending) this.startRead(m);
  }

  private respondToRead(to: NodeId, index: number, context: string): void {
    if (to === this.id || to === NONE) {
      this.readStates.push({ index, context });
    } else {
      this.send({ type: "MsgReadIndexResp", from: this.id, to, term: this.term, index, context });
      // The reader serves once it has applied `index`: without a broadcast, make sure it
      // learns that commit (after a heartbeat round it usually has already).
      const pr = this.options.commitNotice === "on-demand" ? this.progress.get(to) : undefined;
      if (pr !== undefined && pr.sentCommit < index) {
        pr.awaitsCommit = Math.max(pr.awaitsCommit, index);
        this.maybeSendAppend(to, true);
      }
    }
  }

  // ---- Follower handlers ---------------------------------------------------------------

  private handleAppendEntries(m: MsgApp): void {
    const reply = (index: number, reject = false, rejectHint = 0, logTerm = 0) =>
      this.send({
        type: "MsgAppResp",
        from: this.id,
        to: m.from,
        term: this.term,
        index,
        reject,
        rejectHint,
        logTerm,
      });
    if (m.index < this.log.committed) {
      reply(this.log.committed);
      return;
    }
    if (this.log.matchTerm(m.index, m.logTerm)) {
      // §5.3: the logs match up to m.index; drop a conflicting suffix and append.
      const lastNew = m.index + m.entries.length;
      const conflict = this.log.findConflict(m.entries);
      if (conflict !== 0) {
        if (conflict <= this.log.committed) {
          throw new RaftError(
            "RAFT_INVARIANT",
            `entry ${conflict} from leader ${m.from} conflicts with committed entries (committed ${this.log.committed})`,
          );
        }
        this.appendToLog(m.entries.slice(conflict - (m.index + 1)));
      }
      this.log.commitTo(Math.min(m.commit, lastNew));
      reply(lastNew);
      return;
    }
    // Mismatch: hint the leader at our longest prefix that can match, one term per trip.
    const hint = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm);
    reply(m.index, true, hint.index, hint.term);
  }

  private handleHeartbeat(m: MsgHeartbeat): void {
    if (m.commit > this.log.lastIndex()) {
      // The leader sends no commit index past what we acknowledged holding: our log lost
      // entries we had made durable (damaged or truncated storage).
      throw new RaftError(
        "RAFT_INVARIANT",
        `commit index ${m.commit} from leader ${m.from} is beyond this node's last log index ${this.log.lastIndex()}: its log lost entries it had acknowledged (damaged or truncated storage). Remove this node from the cluster, then add it back with an empty data directory`,
      );
    }
    this.log.commitTo(m.commit);
    const response: Message = {
      type: "MsgHeartbeatResp",
      from: this.id,
      to: m.from,
      term: this.term,
      context: m.context,
    };
    // The acknowledgement confirms the leader's reads and lease: it waits until our term
    // is durable (only the first heartbeats of a new term wait for a write).
    if (this.term === this.durableTerm) this.msgs.push(response);
    else this.msgsAfterPersist.push(response);
  }

  private handleSnapshot(m: MsgSnap): void {
    const { index, term } = m.snapshot.metadata;
    const reply = (ackIndex: number) =>
      this.send({
        type: "MsgAppResp",
        from: this.id,
        to: m.from,
        term: this.term,
        index: ackIndex,
        reject: false,
        rejectHint: 0,
        logTerm: 0,
      });
    if (index <= this.log.committed) {
      reply(this.log.committed);
      return;
    }
    if (this.log.matchTerm(index, term)) {
      // We already hold the snapshot's last entry: just fast-forward the commit index. The
      // reply vouches for the snapshot's index only: the entries after it were never checked
      // against the leader's log, so they must not count toward a commit there.
      this.log.commitTo(index);
      reply(index);
      return;
    }
    this.restore(m.snapshot);
    reply(this.log.lastIndex());
  }

  /** Replaces log and membership with a snapshot's (§7). */
  restore(snapshot: MsgSnap["snapshot"]): void {
    this.log.restore(snapshot);
    this.baseConf = snapshot.metadata.confState;
    this.configEntries = [];
    this.applyConf(this.baseConf);
  }

  // ---- Snapshots (§7) ------------------------------------------------------------------

  /** After applying: asks for a snapshot when the policy says one is due. */
  maybeRequestSnapshot(): void {
    const interval = this.options.snapshotInterval;
    if (interval === 0) return;
    const since = Math.max(this.log.storage.snapshot().metadata.index, this.snapshotRequestedAt);
    if (this.log.applied - since >= interval) {
      this.snapshotRequestedAt = this.log.applied;
      this.snapshotDue = this.log.applied;
    }
  }

  /**
   * The application made a snapshot of its state through `index` durable and put it in the
   * storage view. The log before it is compacted, keeping `snapshotKeepEntries` entries so
   * that slightly lagging followers still catch up from the log.
   */
  snapshotTaken(index: number): void {
    const stored = this.log.storage.snapshot().metadata.index;
    if (stored !== index) {
      throw new RangeError(
        `snapshotTaken(${index}): the storage's snapshot is at index ${stored}; install the snapshot in the storage view first`,
      );
    }
    // The application may have applied entries this node handed out as committed before
    // `advance()` records them as applied: the bound is the commit index.
    if (index > this.log.committed) {
      throw new RangeError(
        `snapshotTaken(${index}): beyond the commit index ${this.log.committed}`,
      );
    }
    const compactTo = index - this.options.snapshotKeepEntries;
    if (compactTo >= this.log.storage.firstIndex() && compactTo > (this.pendingCompaction ?? 0)) {
      this.pendingCompaction = compactTo;
    }
  }

  // ---- Peers ---------------------------------------------------------------------------

  /** The transport could not reach `id`: stop pipelining to it and probe again. */
  reportUnreachable(id: NodeId): void {
    const pr = this.progress.get(id);
    if (this.role !== "leader" || pr === undefined) return;
    if (pr.state === "replicate") pr.becomeProbe();
  }

  /** Outcome of sending a snapshot to `id`; on failure it is retried after a heartbeat. */
  reportSnapshot(id: NodeId, ok: boolean): void {
    const pr = this.progress.get(id);
    if (this.role !== "leader" || pr === undefined || pr.state !== "snapshot") return;
    if (!ok) pr.pendingSnapshot = 0;
    pr.becomeProbe();
    // Wait for a heartbeat response before probing, so a failing peer is not flooded.
    pr.msgAppFlowPaused = true;
  }

  // ---- Output --------------------------------------------------------------------------

  private send(m: Message): void {
    // Responses that promise durable state (a vote, an acknowledged append) wait for the
    // unstable state to be persisted (Ready duty 3).
    if (m.type === "MsgAppResp" || m.type === "MsgVoteResp" || m.type === "MsgPreVoteResp") {
      this.msgsAfterPersist.push(m);
    } else {
      this.msgs.push(m);
    }
  }

  /** Throws RAFT_INVARIANT when the node's own state is inconsistent (simulator-checked). */
  checkInvariants(): void {
    const fail = (what: string) => {
      throw new RaftError("RAFT_INVARIANT", `node ${this.id}: ${what}`);
    };
    const log = this.log;
    if (!(log.applied <= log.committed))
      fail(`applied ${log.applied} > committed ${log.committed}`);
    if (!(log.committed <= log.lastIndex()))
      fail(`committed ${log.committed} > last ${log.lastIndex()}`);
    if ((this.role === "leader") !== (this.lead === this.id))
      fail(`role ${this.role} with lead ${this.lead}`);
    if (this.role === "candidate" && this.vote !== this.id)
      fail(`candidate voted for ${this.vote}`);
    if (this.role === "leader") {
      for (const pr of this.progress.values()) {
        if (!(pr.match < pr.next))
          fail(`progress of ${pr.id}: match ${pr.match} >= next ${pr.next}`);
      }
      const self = this.progress.get(this.id);
      if (self !== undefined && self.match > log.lastIndex()) fail(`own match beyond last index`);
    }
  }
}

function sameIds(a: readonly NodeId[], b: readonly NodeId[]): boolean {
  return a.length === b.length && a.every((id, i) => id === b[i]);
}
