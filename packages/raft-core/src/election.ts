// Elections (§5.2, §5.4.1) with PreVote (thesis §9.6).
import { promotable } from "./membership.js";
import { bcastAppend } from "./replication.js";
import { NONE, type MsgVote, type NodeId } from "./types.js";
import type { Raft } from "./raft.js";

type CampaignKind = "pre-election" | "election" | "transfer";

/** Starts an election now (or a pre-election when PreVote is on). */
export function hup(r: Raft, kind: "election" | "transfer"): void {
  if (r.role === "leader" || !promotable(r)) return;
  if (kind === "transfer") campaign(r, "transfer");
  else campaign(r, r.options.preVote ? "pre-election" : "election");
}

export function campaign(r: Raft, kind: CampaignKind): void {
  let term: number;
  let type: "MsgVote" | "MsgPreVote";
  if (kind === "pre-election") {
    r.becomePreCandidate();
    type = "MsgPreVote";
    term = r.term + 1;
  } else {
    r.becomeCandidate();
    type = "MsgVote";
    term = r.term;
  }
  const index = r.log.lastIndex();
  const logTerm = r.log.lastTerm();
  for (const id of r.quorum.voterIds()) {
    if (id === r.id) {
      // Our own vote counts only once the term and vote are durable: it is delivered
      // back to us after persisting, like any other vote response.
      r.msgsAfterPersist.push({
        type: type === "MsgVote" ? "MsgVoteResp" : "MsgPreVoteResp",
        from: r.id,
        to: r.id,
        term,
        reject: false,
      });
    } else {
      r.msgs.push({
        type,
        from: r.id,
        to: id,
        term,
        index,
        logTerm,
        transfer: kind === "transfer",
      });
    }
  }
}

export function poll(r: Raft, from: NodeId, granted: boolean): void {
  if (!r.votes.has(from)) r.votes.set(from, granted);
  const result = r.quorum.voteResult(r.votes);
  if (result === "won") {
    if (r.role === "pre-candidate") campaign(r, "election");
    else {
      r.becomeLeader();
      bcastAppend(r);
    }
  } else if (result === "lost") {
    r.becomeFollower(r.term, NONE);
  }
}

/** §5.2 one vote per term, §5.4.1 only for a log at least as up to date as ours. */
export function handleVoteRequest(r: Raft, m: MsgVote): void {
  const canVote =
    r.vote === m.from ||
    (r.vote === NONE && r.lead === NONE) ||
    (m.type === "MsgPreVote" && m.term > r.term);
  const upToDate =
    r.unsafe.grantVotesWithoutLogCheck === true || r.log.isUpToDate(m.index, m.logTerm);
  const respType = m.type === "MsgVote" ? "MsgVoteResp" : "MsgPreVoteResp";
  if (canVote && upToDate) {
    r.send({ type: respType, from: r.id, to: m.from, term: m.term, reject: false });
    if (m.type === "MsgVote") {
      r.electionElapsed = 0;
      r.vote = m.from;
    }
  } else {
    r.send({ type: respType, from: r.id, to: m.from, term: r.term, reject: true });
  }
}
