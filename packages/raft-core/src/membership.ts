// Membership changes (thesis §4): the configurations in the log, joint consensus, the
// leader's progress per member, and what happens to members that leave.
import { bcastAppend } from "./replication.js";
import { NONE, type ConfState, type Entry } from "./types.js";
import {
  allMembers,
  decodeConfState,
  encodeConfState,
  isEmptyConfState,
  makeConfState,
} from "./conf-state.js";
import { RaftError } from "./errors.js";
import { Progress } from "./progress.js";
import { quorumFor } from "./quorum.js";
import type { RaftLog } from "./log.js";
import type { NodeId } from "./types.js";
import type { Raft } from "./raft.js";

interface ConfigEntry {
  readonly index: number;
  readonly conf: ConfState;
}

/**
 * The snapshot's configuration, then every config entry in the log after it. The newest
 * one is in effect as soon as it is appended, committed or not (thesis §4.1); a truncated
 * entry is rolled back.
 */
export class ConfigHistory {
  private entries: ConfigEntry[] = [];

  constructor(private base: ConfState) {}

  /** The configuration in effect. */
  current(): ConfState {
    return this.latest()?.conf ?? this.base;
  }

  /** The configuration before the one in effect. */
  previous(): ConfState {
    return this.entries[this.entries.length - 2]?.conf ?? this.base;
  }

  /** The newest config entry in the log, if any is after the snapshot. */
  latest(): ConfigEntry | undefined {
    return this.entries[this.entries.length - 1];
  }

  /** Index of the entry the configuration in effect comes from, or `snapshotIndex`. */
  latestIndex(snapshotIndex: number): number {
    return this.latest()?.index ?? snapshotIndex;
  }

  /** Whether a config entry after the snapshot is in the log. */
  hasEntries(): boolean {
    return this.entries.length > 0;
  }

  /** Forgets the entries at `index` and after (being overwritten); whether any were. */
  truncateFrom(index: number): boolean {
    let changed = false;
    while (this.entries.length > 0 && this.entries[this.entries.length - 1]!.index >= index) {
      this.entries.pop();
      changed = true;
    }
    return changed;
  }

  /** Records the config entries among `entries`; whether there were any. */
  record(entries: readonly Entry[]): boolean {
    let changed = false;
    for (const entry of entries) {
      if (entry.type === "config") {
        this.entries.push({ index: entry.index, conf: decodeConfState(entry.data) });
        changed = true;
      }
    }
    return changed;
  }

  /** Reads the config entries of `log` in [lo, hi], in chunks. */
  scan(log: RaftLog, lo: number, hi: number): void {
    const chunk = 1024;
    for (let start = lo; start <= hi; start += chunk) {
      this.record(log.slice(start, Math.min(hi, start + chunk - 1) + 1));
    }
  }

  /** A snapshot replaced the log: its configuration is the base, and there are no entries. */
  restore(base: ConfState): void {
    this.base = base;
    this.entries = [];
  }
}

/**
 * A voter of the configuration in effect may campaign. So may a voter of the previous
 * configuration while the newest one is uncommitted: a leader removing itself may still
 * be needed to replicate C_new (thesis §4.2.2, Figure 4.6); it does not count its own vote.
 * Learners and strangers never campaign.
 */
export function promotable(r: Raft): boolean {
  if (r.quorum.isVoter(r.id)) return true;
  if (r.latestConfigIndex() <= r.log.committed) return false;
  const previous = r.configs.previous();
  return previous.voters.includes(r.id) || previous.votersOutgoing.includes(r.id);
}

/** Every append goes through here, so that config entries take effect when appended. */
export function appendToLog(r: Raft, entries: readonly Entry[]): void {
  if (entries.length === 0) return;
  const truncated = r.configs.truncateFrom(entries[0]!.index);
  r.log.append(entries);
  const appended = r.configs.record(entries);
  if (truncated || appended) applyConf(r, r.configs.current());
}

/** A change is in progress until its entry commits and any joint configuration is left. */
function membershipChangeInProgress(r: Raft): boolean {
  return r.latestConfigIndex() > r.log.committed || r.conf.votersOutgoing.length > 0;
}

/**
 * Changes the membership to `target` (thesis §4.3). A change of voters goes through the
 * joint configuration C_old,new, then C_new, which the leader proposes by itself once the
 * joint entry commits; a change of learners alone needs no joint step. Each entry takes
 * effect when appended. One change at a time.
 */
export function changeMembership(r: Raft, target: ConfState): { index: number; term: number } {
  if (r.role !== "leader") {
    throw new RaftError(
      "RAFT_REQUEST_REFUSED",
      r.lead === NONE
        ? "membership change refused: there is no leader"
        : `membership change refused: node ${r.id} is not the leader (node ${r.lead} is)`,
      { reason: r.lead === NONE ? "no-leader" : "not-leader", leader: r.lead },
    );
  }
  if (membershipChangeInProgress(r)) {
    throw new RaftError(
      "RAFT_REQUEST_REFUSED",
      `membership change refused: the change at index ${r.latestConfigIndex()} is still in progress`,
      { reason: "config-change-in-progress", leader: r.id },
    );
  }
  if (r.leadTransferee !== NONE) {
    throw new RaftError(
      "RAFT_REQUEST_REFUSED",
      `membership change refused: leadership is being transferred to ${r.leadTransferee}`,
      { reason: "transfer-in-progress", leader: r.id },
    );
  }
  const votersChange = !sameIds(target.voters, r.conf.voters);
  const next: ConfState = votersChange
    ? makeConfState(target.voters, target.learners, r.conf.voters, target.context)
    : makeConfState(target.voters, target.learners, [], target.context);
  const index = r.log.lastIndex() + 1;
  r.appendEntries([{ index: 0, term: 0, type: "config", data: encodeConfState(next) }]);
  bcastAppend(r);
  return { index, term: r.term };
}

/** Once C_old,new commits, the leader proposes C_new (thesis §4.3). */
export function maybeLeaveJoint(r: Raft): void {
  if (r.role !== "leader" || r.conf.votersOutgoing.length === 0) return;
  if (r.latestConfigIndex() > r.log.committed) return;
  const next = makeConfState(r.conf.voters, r.conf.learners, [], r.conf.context);
  r.appendEntries([{ index: 0, term: 0, type: "config", data: encodeConfState(next) }]);
  bcastAppend(r);
}

/**
 * Puts `conf` in effect: the quorum rule, and the leader's progress per member. Members
 * are visited in ascending id order everywhere: the progress map is kept sorted.
 */
export function applyConf(r: Raft, conf: ConfState): void {
  r.conf = conf;
  r.quorum = quorumFor(conf.voters, conf.votersOutgoing);
  const members = new Set(allMembers(conf));
  const learners = new Set(conf.learners);
  for (const [id, pr] of [...r.progress]) {
    if (members.has(id)) continue;
    if (r.role === "leader" && id !== r.id && r.configs.hasEntries()) {
      // Removed by the entry just appended: keep replicating to it, counting it toward
      // nothing, until it knows that entry committed (see `departingAt`).
      pr.departingAt ??= r.latestConfigIndex();
      pr.isLearner = true;
      if (r.leadTransferee === id) r.leadTransferee = NONE;
      continue;
    }
    r.progress.delete(id);
  }
  for (const id of members) {
    const existing = r.progress.get(id);
    if (existing !== undefined && existing.departingAt !== undefined) {
      // Added back while departing: it may be a new node on a wiped disk. Start afresh
      // rather than trust what the removed one had acknowledged.
      r.progress.delete(id);
      r.readOnly.forget(id);
    } else if (existing !== undefined) {
      existing.isLearner = learners.has(id) && !r.quorum.isVoter(id);
      continue;
    }
    const pr = new Progress(
      id,
      r.log.lastIndex() + 1,
      r.options.maxInflightMsgs,
      r.options.maxInflightBytes,
      learners.has(id) && !r.quorum.isVoter(id),
    );
    // A member joining a leader's configuration starts recently active, so that a
    // CheckQuorum round right after the change does not count it as lost.
    pr.recentActive = true;
    if (id === r.id && r.role === "leader") {
      pr.becomeReplicate();
      pr.match = r.log.stableIndex();
    }
    r.progress.set(id, pr);
  }
  sortById(r.progress);
}

/** Bootstraps a brand-new node: the first config entry at index 1, term 1, committed. */
export function bootstrap(r: Raft, conf: ConfState): void {
  if (r.log.lastIndex() !== 0 || r.term !== 0 || r.vote !== NONE) {
    throw new RaftError(
      "RAFT_ALREADY_INITIALIZED",
      `node ${r.id} already has state (term ${r.term}, last index ${r.log.lastIndex()}); bootstrapping again would reset it`,
    );
  }
  if (isEmptyConfState(conf) || conf.voters.length === 0) {
    throw new RangeError("bootstrap: the configuration needs at least one voter");
  }
  r.becomeFollower(1, NONE);
  appendToLog(r, [{ index: 1, term: 1, type: "config", data: encodeConfState(conf) }]);
  r.log.commitTo(1);
}

/** A leader no longer among the voters of a committed configuration steps down (§4.2.2). */
export function maybeStepDownAfterRemoval(r: Raft): void {
  const latest = r.configs.latest();
  if (latest === undefined || latest.index > r.log.committed) return;
  if (r.role === "leader" && !r.quorum.isVoter(r.id)) {
    // Tell every member, and every member this change removed, that it committed (an
    // empty append after our last entry, whatever their flow control: a follower whose
    // log matches ours commits; another refuses, harmlessly). A removed member learns it
    // no longer belongs and stops campaigning; the new voters need not wait for a leader.
    const last = r.log.lastIndex();
    const logTerm = r.log.lastTerm();
    for (const id of r.progress.keys()) {
      if (id === r.id) continue;
      r.send({
        type: "MsgApp",
        from: r.id,
        to: id,
        term: r.term,
        index: last,
        logTerm,
        entries: [],
        commit: r.log.committed,
      });
    }
    r.becomeFollower(r.term, NONE);
  }
}

/**
 * A removed member not heard from for an election timeout is given up on, and so is one
 * still not told after ten (say, a snapshot to it keeps failing).
 */
export function dropSilentDeparting(r: Raft): void {
  for (const [id, pr] of [...r.progress]) {
    if (pr.departingAt === undefined) continue;
    pr.departingRounds++;
    if (!pr.recentActive || pr.departingRounds > 10) {
      r.progress.delete(id);
      r.readOnly.forget(id);
    } else pr.recentActive = false;
  }
}

/** Keeps the map in ascending id order, so that members are always visited in that order. */
function sortById(progress: Map<NodeId, Progress>): void {
  let sorted = true;
  let previous = -Infinity;
  for (const id of progress.keys()) {
    if (id < previous) sorted = false;
    previous = id;
  }
  if (sorted) return;
  const entries = [...progress].sort(([a], [b]) => a - b);
  progress.clear();
  for (const [id, pr] of entries) progress.set(id, pr);
}

function sameIds(a: readonly NodeId[], b: readonly NodeId[]): boolean {
  return a.length === b.length && a.every((id, i) => id === b[i]);
}
