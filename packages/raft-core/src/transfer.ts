// Leadership transfer (thesis §3.10).
import { maybeSendAppend } from "./replication.js";
import { NONE, type NodeId } from "./types.js";
import { RaftError } from "./errors.js";
import type { Raft } from "./raft.js";

/** Asks the leader (this node, or the one it knows) to hand leadership to `target`. */
export function transferLeader(r: Raft, target: NodeId): void {
  if (r.role === "leader") {
    handleTransferLeader(r, target, true);
    return;
  }
  if (r.lead === NONE) {
    throw new RaftError("RAFT_REQUEST_REFUSED", "leadership transfer refused: there is no leader", {
      reason: "no-leader",
    });
  }
  r.send({ type: "MsgTransferLeader", from: r.id, to: r.lead, term: r.term, target });
}

export function handleTransferLeader(r: Raft, target: NodeId, local = false): void {
  const pr = r.progress.get(target);
  if (pr === undefined || pr.isLearner) {
    if (local) {
      throw new RaftError(
        "RAFT_REQUEST_REFUSED",
        `leadership transfer refused: node ${target} is not a voter`,
        { reason: "not-a-member", leader: r.id },
      );
    }
    return;
  }
  if (target === r.leadTransferee) return;
  if (target === r.id) {
    r.leadTransferee = NONE; // Already leader: a transfer to self cancels any other.
    return;
  }
  r.leadTransferee = target;
  // The transfer must finish within an election timeout or is abandoned.
  r.electionElapsed = 0;
  if (pr.match === r.log.lastIndex()) sendTimeoutNow(r, target);
  else maybeSendAppend(r, target, true);
}

export function sendTimeoutNow(r: Raft, to: NodeId): void {
  r.readOnly.revokeLease();
  r.send({ type: "MsgTimeoutNow", from: r.id, to, term: r.term });
}
