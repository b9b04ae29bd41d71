// The leader's side of replication (§5.3): appends with flow control, the commit rule,
// heartbeats, and what the transport reports about peers.
import { maybeLeaveJoint, maybeStepDownAfterRemoval } from "./membership.js";
import { releasePendingReadIndexMessages, respondToRead } from "./read-index.js";
import { sendTimeoutNow } from "./transfer.js";
import {
  entrySize,
  type Entry,
  type MsgAppResp,
  type MsgHeartbeatResp,
  type NodeId,
} from "./types.js";
import { Progress } from "./progress.js";
import type { Raft } from "./raft.js";

export function bcastAppend(r: Raft): void {
  for (const id of r.progress.keys()) {
    if (id !== r.id) maybeSendAppend(r, id, true);
  }
}

/**
 * Sends what proposals and commits since the last Ready call for, once for all of them:
 * each follower's new entries, and the commit index to those that wait for it (all of them
 * with `commitNotice: "broadcast"`). Called when a Ready is asked for.
 */
export function flushSends(r: Raft): void {
  const entries = r.broadcastDue;
  const commit = r.commitNoticeDue;
  if (!entries && !commit) return;
  r.broadcastDue = false;
  r.commitNoticeDue = false;
  if (r.role !== "leader") return;
  if (commit) sendCommit(r);
  if (entries) {
    for (const id of r.progress.keys()) {
      if (id === r.id) continue;
      // As many batches as the in-flight window allows (probe and snapshot pause at once).
      while (maybeSendAppend(r, id, false)) {
        /* send the next batch */
      }
    }
  }
}

/**
 * After the commit index moved: sends each follower what it is missing, with the new
 * commit index, and an empty MsgApp to carry the commit to a follower not yet told of it:
 * every such follower with `commitNotice: "broadcast"`, only those waiting for it with
 * `"on-demand"` (they forwarded the proposals or asked for the read index).
 */
export function sendCommit(r: Raft): void {
  const broadcast = r.options.commitNotice === "broadcast";
  const committed = r.log.committed;
  for (const [id, pr] of r.progress) {
    if (id === r.id) continue;
    const waiting = broadcast ? pr.sentCommit < committed : pr.awaitsCommit > pr.sentCommit;
    maybeSendAppend(r, id, waiting);
  }
}

/**
 * Sends entries (or a snapshot) to `to` unless its progress is paused. With
 * `sendIfEmpty`, sends an empty MsgApp to carry the commit index or probe. Returns
 * whether a message was sent.
 */
export function maybeSendAppend(r: Raft, to: NodeId, sendIfEmpty: boolean): boolean {
  const pr = r.progress.get(to);
  if (pr === undefined || to === r.id || pr.isPaused()) return false;
  const prevIndex = pr.next - 1;
  const prevTerm = r.log.term(prevIndex);
  if (prevTerm === undefined || pr.next < r.log.firstIndex()) return sendSnapshot(r, to, pr);

  const last = r.log.lastIndex();
  let entries: Entry[] = [];
  if (pr.next <= last) {
    const hi = Math.min(last + 1, pr.next + r.options.maxEntriesPerMsg);
    entries = r.log.slice(pr.next, hi, r.options.maxBytesPerMsg);
  }
  if (entries.length === 0 && !sendIfEmpty) return false;
  let bytes = 0;
  for (const entry of entries) bytes += entrySize(entry);
  pr.sentEntries(entries.length, prevIndex + entries.length, bytes);
  // The follower commits no further than the last entry this message brings it.
  pr.sentCommit = Math.max(pr.sentCommit, Math.min(r.log.committed, prevIndex + entries.length));
  r.send({
    type: "MsgApp",
    from: r.id,
    to,
    term: r.term,
    index: prevIndex,
    logTerm: prevTerm,
    entries,
    commit: r.log.committed,
  });
  return true;
}

export function sendSnapshot(r: Raft, to: NodeId, pr: Progress): boolean {
  if (!pr.recentActive) return false; // Do not ship a snapshot to a node that may be down.
  const snapshot = r.log.pendingSnapshot() ?? r.log.storage.snapshot();
  if (snapshot.metadata.index === 0) return false;
  pr.becomeSnapshot(snapshot.metadata.index);
  r.send({ type: "MsgSnap", from: r.id, to, term: r.term, snapshot });
  return true;
}

export function handleAppendResponse(r: Raft, m: MsgAppResp): void {
  const pr = r.progress.get(m.from);
  if (pr === undefined) return;
  pr.recentActive = true;
  if (m.reject) {
    // Fast backtracking: jump to where our log and the follower's hint can match.
    let nextProbe = m.rejectHint;
    if (m.logTerm > 0) nextProbe = r.log.findConflictByTerm(m.rejectHint, m.logTerm).index;
    if (pr.maybeDecrTo(m.index, nextProbe)) {
      if (pr.state === "replicate") pr.becomeProbe();
      maybeSendAppend(r, m.from, true);
    }
    return;
  }
  const wasPaused = pr.isPaused();
  if (!pr.maybeUpdate(m.index)) return;
  if (pr.state === "probe") pr.becomeReplicate();
  else if (pr.state === "snapshot" && pr.match + 1 >= r.log.firstIndex()) {
    pr.becomeProbe();
    pr.becomeReplicate();
  } else if (pr.state === "replicate") pr.inflights.freeLE(m.index);

  if (maybeCommit(r)) {
    if (r.role !== "leader") return; // it stepped down (removed itself): it sends nothing
    r.commitNoticeDue = true; // see flushSends
    releasePendingReadIndexMessages(r);
  } else if (m.from !== r.id && wasPaused) {
    maybeSendAppend(r, m.from, true);
  }
  if (m.from !== r.id) {
    // Pipelining: keep the window full while there is something to send.
    while (maybeSendAppend(r, m.from, false)) {
      /* send the next batch */
    }
  }
  if (
    m.from === r.leadTransferee &&
    pr.departingAt === undefined &&
    pr.match === r.log.lastIndex()
  ) {
    sendTimeoutNow(r, m.from);
  }
}

/** Commits what a quorum has durably acknowledged, if of this term (§5.3, §5.4.2). */
export function maybeCommit(r: Raft): boolean {
  const index = r.quorum.committedIndex((id) => r.progress.get(id)?.match);
  if (!r.log.maybeCommit(index, r.term)) return false;
  maybeLeaveJoint(r);
  maybeStepDownAfterRemoval(r);
  return true;
}

export function bcastHeartbeat(r: Raft): void {
  const context = String(r.readOnly.newRound(r.ticks));
  for (const id of r.progress.keys()) {
    if (id !== r.id) sendHeartbeat(r, id, context);
  }
}

export function sendHeartbeat(r: Raft, to: NodeId, context: string): void {
  const pr = r.progress.get(to)!;
  // Never tell a follower to commit past what it is known to hold.
  const commit = Math.min(pr.match, r.log.committed);
  pr.sentCommit = Math.max(pr.sentCommit, commit);
  if (pr.departingAt !== undefined && commit >= pr.departingAt) {
    // This heartbeat tells a removed member its removal committed (see departedRound).
    pr.departedRound ??= Number(context);
  }
  r.send({ type: "MsgHeartbeat", from: r.id, to, term: r.term, commit, context });
}

export function handleHeartbeatResponse(r: Raft, m: MsgHeartbeatResp): void {
  const pr = r.progress.get(m.from);
  if (pr === undefined) return;
  pr.recentActive = true;
  pr.msgAppFlowPaused = false;
  // A full window that a heartbeat round trip did not drain has probably lost a message:
  // free one slot so that a MsgApp goes out and, if rejected, replication backtracks.
  if (pr.state === "replicate" && pr.inflights.full()) pr.inflights.freeFirstOne();
  if (pr.match < r.log.lastIndex() || pr.state === "probe") maybeSendAppend(r, m.from, true);
  const round = r.readOnly.roundOf(m.context);
  if (round === undefined) return;
  if (pr.departedRound !== undefined && round >= pr.departedRound) {
    // A removed member acknowledged a heartbeat that told it its removal committed: it
    // holds the entry and knows it is committed, so it no longer campaigns. Forget it.
    r.progress.delete(m.from);
    r.readOnly.forget(m.from);
    return;
  }
  // Confirming a later request confirms every earlier one (they share the round trip).
  for (const done of r.readOnly.acknowledge(m.from, round, r.quorum, r.id))
    respondToRead(r, done.from, done.index, done.context);
}

/** The transport could not reach `id`: stop pipelining to it and probe again. */
export function reportUnreachable(r: Raft, id: NodeId): void {
  const pr = r.progress.get(id);
  if (r.role !== "leader" || pr === undefined) return;
  if (pr.state === "replicate") pr.becomeProbe();
}

/** Outcome of sending a snapshot to `id`; on failure it is retried after a heartbeat. */
export function reportSnapshot(r: Raft, id: NodeId, ok: boolean): void {
  const pr = r.progress.get(id);
  if (r.role !== "leader" || pr === undefined || pr.state !== "snapshot") return;
  if (!ok) pr.pendingSnapshot = 0;
  pr.becomeProbe();
  // Wait for a heartbeat response before probing, so a failing peer is not flooded.
  pr.msgAppFlowPaused = true;
}
