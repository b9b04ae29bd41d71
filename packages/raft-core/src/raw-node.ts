import { makeConfState } from "./conf-state.js";
import { resolveOptions, type RaftOptions, type ResolvedOptions } from "./options.js";
import { hup } from "./election.js";
import { bootstrap, changeMembership } from "./membership.js";
import { Raft } from "./raft.js";
import { readIndex } from "./read-index.js";
import { flushSends, reportSnapshot, reportUnreachable } from "./replication.js";
import { snapshotTaken } from "./snapshots.js";
import { checkInvariants, status, type Status } from "./status.js";
import { transferLeader } from "./transfer.js";
import {
  hardStateEqual,
  type ConfState,
  type Entry,
  type HardState,
  type LogPosition,
  type Message,
  type NodeId,
  type Ready,
  type SoftState,
} from "./types.js";

/**
 * The configuration `changeMembership` moves the cluster to, by node id (the layers above
 * name members with their addresses: transport-grpc's `MembershipTarget`).
 */
export interface ConfStateTarget {
  /** The voters afterwards; at least one. */
  readonly voters: readonly NodeId[];
  /** The learners afterwards; none when omitted. */
  readonly learners?: readonly NodeId[];
  /** Opaque data carried with the configuration (kept through the joint step). */
  readonly context?: string;
}

interface HandedOut {
  /** The term this Ready makes durable. */
  readonly term: number;
  readonly entries: readonly Entry[];
  readonly snapshotIndex: number | undefined;
  readonly lastCommitted: number | undefined;
  /** Responses to ourselves (our vote, our own append acknowledgement), due once persisted. */
  readonly selfMessages: readonly Message[];
}

/**
 * The driving API of one Raft node: feed it ticks, messages and requests; take a `Ready`,
 * carry out its duties (see `Ready`), then `advance()`. Synchronous and deterministic.
 *
 * ```ts
 * const node = new RawNode({ id: 1, storage, prng: createPrng(seed), electionTick: 10, heartbeatTick: 1 });
 * node.tick(); node.step(message); node.propose(data);
 * if (node.hasReady()) { const rd = node.ready(); ... ; node.advance(); }
 * ```
 */
export class RawNode {
  private readonly raft: Raft;
  private prevSoftState: SoftState;
  private prevHardState: HardState;
  private handedOut: HandedOut | undefined;

  constructor(options: RaftOptions) {
    this.raft = new Raft(options);
    this.prevSoftState = this.raft.softState();
    this.prevHardState = this.raft.hardState();
  }

  /** This node's id. */
  get id(): NodeId {
    return this.raft.id;
  }

  /**
   * Changes this node's timing while it runs: the heartbeat interval and the election
   * timeout range, in ticks, from the next tick (a new randomized election timeout is
   * drawn). Raft's safety does not rest on timing, but the lease read mode does: there a
   * node on a shorter election timeout could elect a new leader while the old one still
   * trusts its lease, so in that mode it throws (restart the nodes instead). Validated as
   * at construction (RangeError).
   */
  setTiming(timing: Pick<RaftOptions, "heartbeatTick" | "electionTick" | "electionTickMax">): void {
    const r = this.raft;
    if (r.options.readMode === "lease") {
      throw new RangeError(
        "RawNode.setTiming: the lease read mode relies on the election timeout: restart the nodes to change it",
      );
    }
    // Without a maximum, twice the minimum, as at construction.
    const electionTickMax = timing.electionTickMax ?? 2 * timing.electionTick;
    this.retune({ ...timing, electionTickMax });
    r.resetRandomizedElectionTimeout();
  }

  /** The timing in effect, in ticks (see `setTiming`). */
  timing(): Pick<Required<RaftOptions>, "heartbeatTick" | "electionTick" | "electionTickMax"> {
    const { heartbeatTick, electionTick, electionTickMax } = this.raft.options;
    return { heartbeatTick, electionTick, electionTickMax };
  }

  /** Runs with `changes` to its options from now on, validated as at construction. */
  private retune(changes: Partial<RaftOptions>): ResolvedOptions {
    const r = this.raft;
    r.options = resolveOptions({ ...r.options, ...changes, id: r.id, prng: r.prng });
    return r.options;
  }

  /** The replication limits in effect (see `setReplicationLimits`). */
  replicationLimits(): Pick<
    Required<RaftOptions>,
    "maxEntriesPerMsg" | "maxBytesPerMsg" | "maxInflightMsgs" | "maxInflightBytes"
  > {
    const { maxEntriesPerMsg, maxBytesPerMsg, maxInflightMsgs, maxInflightBytes } =
      this.raft.options;
    return { maxEntriesPerMsg, maxBytesPerMsg, maxInflightMsgs, maxInflightBytes };
  }

  /**
   * Changes the replication limits while the node runs: entries and bytes per append
   * message from the next one sent, and each follower's window of appends in flight
   * (`maxInflightMsgs`, `maxInflightBytes`; what is in flight stays, a smaller window is
   * full until enough is acknowledged). Validated as at construction (RangeError).
   */
  setReplicationLimits(
    limits: Partial<
      Pick<
        RaftOptions,
        "maxEntriesPerMsg" | "maxBytesPerMsg" | "maxInflightMsgs" | "maxInflightBytes"
      >
    >,
  ): void {
    const next = this.retune(limits);
    for (const pr of this.raft.progress.values())
      pr.inflights.resize(next.maxInflightMsgs, next.maxInflightBytes);
  }

  /**
   * Creates the first configuration of a brand-new cluster on this node (the seed's
   * `initialize`): a config entry at index 1, term 1, committed. Throws
   * RAFT_ALREADY_INITIALIZED if the node has any state; it never resets one.
   */
  bootstrap(members: {
    voters: readonly NodeId[];
    learners?: readonly NodeId[];
    context?: string;
  }): void {
    bootstrap(
      this.raft,
      makeConfState(members.voters, members.learners ?? [], [], members.context),
    );
  }

  /** Advances logical time by one tick (elections, heartbeats, CheckQuorum, transfer timeout). */
  tick(): void {
    this.raft.tick();
  }

  /** Delivers a message from a peer. Messages addressed to another node are ignored. */
  step(message: Message): void {
    if (message.to !== this.raft.id) return;
    // A peer must never impersonate us: our own responses only come back through advance().
    if (message.from === this.raft.id) return;
    this.raft.step(message);
  }

  /** Starts an election now, if this node may (a voter that is not already leader). */
  campaign(): void {
    hup(this.raft, "election");
  }

  /**
   * Proposes application entries. On the leader, returns where they landed (the first
   * entry's index and term); on a follower, forwards them and returns undefined. Throws
   * RaftError RAFT_PROPOSAL_DROPPED with a `reason` when they cannot be taken.
   */
  propose(data: Uint8Array | readonly Uint8Array[]): LogPosition | undefined {
    const list = data instanceof Uint8Array ? [data] : data;
    return this.raft.propose(list);
  }

  /**
   * Changes the cluster's membership to `voters` and `learners` by joint consensus (thesis
   * §4.3): a change of voters goes through C_old,new, then C_new (proposed by the leader
   * itself once the joint entry commits). Only on the leader, one change at a time; otherwise
   * throws RaftError RAFT_REQUEST_REFUSED with a `reason`.
   */
  changeMembership(target: ConfStateTarget): LogPosition {
    const conf = makeConfState(target.voters, target.learners ?? [], [], target.context);
    const ids = [...conf.voters, ...conf.learners];
    if (conf.voters.length === 0) {
      throw new RangeError("changeMembership: the configuration needs at least one voter");
    }
    if (!ids.every((id) => Number.isSafeInteger(id) && id > 0)) {
      throw new RangeError(
        `changeMembership: node ids must be positive integers, got ${ids.join(", ")}`,
      );
    }
    const both = conf.learners.filter((id) => conf.voters.includes(id));
    if (both.length > 0) {
      throw new RangeError(
        `changeMembership: node ${both[0]} cannot be both a voter and a learner`,
      );
    }
    return changeMembership(this.raft, conf);
  }

  /** Adds `id` as a learner: it receives the log but never votes or counts. */
  addLearner(id: NodeId): LogPosition {
    const conf = this.raft.conf;
    return this.changeMembership({
      ...contextOf(conf),
      voters: conf.voters,
      learners: [...conf.learners, id],
    });
  }

  /** Makes learner (or new node) `id` a voter. */
  promote(id: NodeId): LogPosition {
    const conf = this.raft.conf;
    return this.changeMembership({
      ...contextOf(conf),
      voters: [...conf.voters, id],
      learners: conf.learners.filter((learner) => learner !== id),
    });
  }

  /** Makes voter `id` a learner. */
  demote(id: NodeId): LogPosition {
    const conf = this.raft.conf;
    return this.changeMembership({
      ...contextOf(conf),
      voters: conf.voters.filter((voter) => voter !== id),
      learners: [...conf.learners, id],
    });
  }

  /** Removes `id` from the cluster, voter or learner. */
  remove(id: NodeId): LogPosition {
    const conf = this.raft.conf;
    return this.changeMembership({
      ...contextOf(conf),
      voters: conf.voters.filter((voter) => voter !== id),
      learners: conf.learners.filter((learner) => learner !== id),
    });
  }

  /**
   * The application made a snapshot through `index` durable and installed it in the
   * storage view; the core schedules compaction of the log before it, keeping
   * `keepEntries` entries behind it (`Ready.compactIndex`). When to take a snapshot is the
   * application's policy: the core never asks for one.
   */
  snapshotTaken(index: number, keepEntries: number): void {
    snapshotTaken(this.raft, index, keepEntries);
  }

  /**
   * Requests a linearizable read point for `context` (unique per request). The answer
   * arrives as a `ReadState` in a later Ready. Throws RAFT_READ_DROPPED when no leader is
   * known.
   */
  readIndex(context: string): void {
    readIndex(this.raft, context);
  }

  /** Asks the leader to hand leadership to `target` (thesis §3.10). */
  transferLeader(target: NodeId): void {
    transferLeader(this.raft, target);
  }

  /**
   * Tells the leader that a message to `id` was lost (a peer down, a queue full): its progress
   * falls back to probing.
   */
  reportUnreachable(id: NodeId): void {
    reportUnreachable(this.raft, id);
  }

  /**
   * Tells the leader how sending a snapshot to `id` ended: on success replication resumes after it,
   * on failure it is retried.
   */
  reportSnapshot(id: NodeId, ok: boolean): void {
    reportSnapshot(this.raft, id, ok);
  }

  /** This node's current state. */
  status(): Status {
    return status(this.raft);
  }

  /**
   * The membership in effect, without building a whole `status()`: the same object until
   * the membership changes, so a caller can detect a change by identity.
   */
  confState(): ConfState {
    return this.raft.conf;
  }

  /** Role, leader and term right now, without building a whole `status()`. */
  softState(): SoftState {
    return this.raft.softState();
  }

  /** Runs the node's own invariant checks; throws RaftError RAFT_INVARIANT on violation. */
  checkInvariants(): void {
    checkInvariants(this.raft);
  }

  /**
   * Whether `ready()` has work to hand out; false between `ready()` and `advance()`. A
   * leader's appends and commit notices for what was stepped in since the last Ready are
   * made here (and in `ready()`), once for all of it.
   */
  hasReady(): boolean {
    if (this.handedOut !== undefined) return false;
    const raft = this.raft;
    flushSends(raft);
    const soft = raft.softState();
    return (
      raft.msgs.length > 0 ||
      raft.msgsAfterPersist.length > 0 ||
      raft.log.unstable().length > 0 ||
      raft.log.pendingSnapshot() !== undefined ||
      raft.log.hasNextCommittedEntries() ||
      raft.readStates.length > 0 ||
      raft.pendingCompaction !== undefined ||
      !hardStateEqual(raft.hardState(), this.prevHardState) ||
      soft.lead !== this.prevSoftState.lead ||
      soft.role !== this.prevSoftState.role ||
      soft.term !== this.prevSoftState.term
    );
  }

  /** Takes the pending work; its duties are listed on `Ready`. Then call `advance()`. */
  ready(): Ready {
    if (this.handedOut !== undefined) {
      throw new TypeError("ready(): the previous Ready has not been advanced yet");
    }
    const raft = this.raft;
    const log = raft.log;
    flushSends(raft);

    const soft = raft.softState();
    const softChanged =
      soft.lead !== this.prevSoftState.lead ||
      soft.role !== this.prevSoftState.role ||
      soft.term !== this.prevSoftState.term;
    const hard = raft.hardState();
    const hardChanged = !hardStateEqual(hard, this.prevHardState);

    const snapshot = log.pendingSnapshot();
    const entries = log.unstable().slice();
    const committedEntries = log.nextCommittedEntries(raft.maxCommittedBytesPerReady());
    const lastEntry = entries[entries.length - 1];

    const selfMessages: Message[] = [];
    const messagesAfterPersist: Message[] = [];
    for (const m of raft.msgsAfterPersist) {
      if (m.to === raft.id) selfMessages.push(m);
      else messagesAfterPersist.push(m);
    }
    if (raft.role === "leader" && lastEntry !== undefined) {
      // The leader's own acknowledgement, counted toward commit once these are durable.
      selfMessages.push({
        type: "MsgAppResp",
        from: raft.id,
        to: raft.id,
        term: raft.term,
        index: lastEntry.index,
        reject: false,
        rejectHint: 0,
        logTerm: 0,
      });
    }
    const messages = raft.msgs;
    raft.msgs = [];
    raft.msgsAfterPersist = [];
    const readStates = raft.readStates;
    raft.readStates = [];
    const compactIndex = raft.pendingCompaction;
    raft.pendingCompaction = undefined;

    const mustSync =
      entries.length > 0 ||
      snapshot !== undefined ||
      hard.term !== this.prevHardState.term ||
      hard.vote !== this.prevHardState.vote;

    if (softChanged) this.prevSoftState = soft;
    this.prevHardState = hard;
    this.handedOut = {
      term: hard.term,
      entries,
      snapshotIndex: snapshot?.metadata.index,
      lastCommitted: committedEntries[committedEntries.length - 1]?.index,
      selfMessages,
    };
    return {
      softState: softChanged ? soft : undefined,
      hardState: hardChanged ? hard : undefined,
      snapshot,
      entries,
      committedEntries,
      messages,
      messagesAfterPersist,
      readStates,
      mustSync,
      compactIndex,
    };
  }

  /** Acknowledges that the last Ready's duties are done (Ready duty 5). */
  advance(): void {
    const done = this.handedOut;
    if (done === undefined) throw new TypeError("advance(): no Ready is outstanding");
    this.handedOut = undefined;
    this.raft.durableTerm = done.term;
    const log = this.raft.log;
    if (done.snapshotIndex !== undefined) {
      log.stableSnapshotTo(done.snapshotIndex);
      if (done.snapshotIndex > log.applied) log.applied = done.snapshotIndex;
    }
    log.stableEntries(done.entries);
    if (done.lastCommitted !== undefined && done.lastCommitted > log.applied) {
      log.appliedTo(done.lastCommitted);
    }
    for (const m of done.selfMessages) this.raft.step(m);
  }
}

/** The node's internal state machine, for this package's own tests and simulator only. */
export function raftOf(node: RawNode): Raft {
  return node["raft"];
}

function contextOf(conf: ConfState): { context?: string } {
  return conf.context === undefined ? {} : { context: conf.context };
}
