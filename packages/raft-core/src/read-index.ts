// Linearizable reads (thesis §6.4): ReadIndex and the leader lease. The heartbeat rounds that
// confirm them are kept in read-only.ts (etcd's read_only.go); this is how a node asks and answers.
import { maybeSendAppend, sendHeartbeat } from "./replication.js";
import { NONE, type MsgReadIndex, type NodeId } from "./types.js";
import { RaftError } from "./errors.js";
import type { Raft } from "./raft.js";

/**
 * Requests a linearizable read point for `context` (unique per request). The answer
 * arrives as a `ReadState` in a later Ready. Throws RAFT_READ_DROPPED when no leader is
 * known.
 */
export function readIndex(r: Raft, context: string): void {
  if (r.role === "leader") {
    handleReadIndex(r, { type: "MsgReadIndex", from: r.id, to: r.id, term: 0, context });
    return;
  }
  if (r.lead === NONE) {
    throw new RaftError("RAFT_READ_DROPPED", "read dropped: there is no leader", {
      reason: "no-leader",
    });
  }
  r.send({ type: "MsgReadIndex", from: r.id, to: r.lead, term: 0, context });
}

export function handleReadIndex(r: Raft, m: MsgReadIndex): void {
  // Until an entry of this term commits, the leader's commit index may lag what earlier
  // leaders committed (§6.4 step 1): hold reads until then. This holds for a sole voter
  // too: one that became leader after the configuration shrank to it may not have heard
  // of the last commits of the configuration before (found by the simulator).
  if (r.log.term(r.log.committed) !== r.term) {
    r.pendingReadIndexMessages.push(m);
    return;
  }
  startRead(r, m);
}

export function startRead(r: Raft, m: MsgReadIndex): void {
  if (r.quorum.voterIds().length === 1 && r.quorum.isVoter(r.id)) {
    // A sole voter needs no heartbeat round to know it still leads.
    respondToRead(r, m.from, r.log.committed, m.context);
    return;
  }
  if (r.options.readMode === "lease" && leaseValid(r)) {
    respondToRead(r, m.from, r.log.committed, m.context);
    return;
  }
  // ReadIndex (and a lease read whose lease has run out): a new heartbeat round, and the
  // answer once a quorum acknowledged it. Every request is answered on its own, even one
  // whose context another pending request shares.
  const round = r.readOnly.addRequest(
    { context: m.context, index: r.log.committed, from: m.from },
    r.ticks,
  );
  const context = String(round);
  for (const id of r.progress.keys()) {
    if (id !== r.id) sendHeartbeat(r, id, context);
  }
}

export function releasePendingReadIndexMessages(r: Raft): void {
  if (r.pendingReadIndexMessages.length === 0) return;
  if (r.log.term(r.log.committed) !== r.term) return;
  const pending = r.pendingReadIndexMessages;
  r.pendingReadIndexMessages = [];
  for (const m of pending) startRead(r, m);
}

export function respondToRead(r: Raft, to: NodeId, index: number, context: string): void {
  if (to === r.id || to === NONE) {
    r.readStates.push({ index, context });
  } else {
    r.send({ type: "MsgReadIndexResp", from: r.id, to, term: r.term, index, context });
    // The reader serves once it has applied `index`: without a broadcast, make sure it
    // learns that commit (after a heartbeat round it usually has already).
    const pr = r.options.commitNotice === "on-demand" ? r.progress.get(to) : undefined;
    if (pr !== undefined && pr.sentCommit < index) {
      pr.awaitsCommit = Math.max(pr.awaitsCommit, index);
      maybeSendAppend(r, to, true);
    }
  }
}

/** Whether this leader's lease holds (see `ReadOnly.leaseValid`). */
export function leaseValid(r: Raft): boolean {
  if (r.unsafe.leaseFromQuorumCheck === true) return true;
  return r.readOnly.leaseValid(r.quorum, r.id, r.ticks);
}
