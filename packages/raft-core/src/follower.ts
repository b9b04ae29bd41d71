// A follower's handlers of its leader's messages: appends (§5.3), heartbeats, snapshots (§7).
import { appendToLog } from "./membership.js";
import { restore } from "./snapshots.js";
import { type Message, type MsgApp, type MsgHeartbeat, type MsgSnap } from "./types.js";
import { RaftError } from "./errors.js";
import type { Raft } from "./raft.js";

export function handleAppendEntries(r: Raft, m: MsgApp): void {
  const reply = (index: number, reject = false, rejectHint = 0, logTerm = 0) =>
    r.send({
      type: "MsgAppResp",
      from: r.id,
      to: m.from,
      term: r.term,
      index,
      reject,
      rejectHint,
      logTerm,
    });
  if (m.index < r.log.committed) {
    reply(r.log.committed);
    return;
  }
  if (r.log.matchTerm(m.index, m.logTerm)) {
    // §5.3: the logs match up to m.index; drop a conflicting suffix and append.
    const lastNew = m.index + m.entries.length;
    const conflict = r.log.findConflict(m.entries);
    if (conflict !== 0) {
      if (conflict <= r.log.committed) {
        throw new RaftError(
          "RAFT_INVARIANT",
          `entry ${conflict} from leader ${m.from} conflicts with committed entries (committed ${r.log.committed})`,
        );
      }
      appendToLog(r, m.entries.slice(conflict - (m.index + 1)));
    }
    r.log.commitTo(Math.min(m.commit, lastNew));
    reply(lastNew);
    return;
  }
  // Mismatch: hint the leader at our longest prefix that can match, one term per trip.
  const hint = r.log.findConflictByTerm(Math.min(m.index, r.log.lastIndex()), m.logTerm);
  reply(m.index, true, hint.index, hint.term);
}

export function handleHeartbeat(r: Raft, m: MsgHeartbeat): void {
  if (m.commit > r.log.lastIndex()) {
    // The leader sends no commit index past what we acknowledged holding: our log lost
    // entries we had made durable (damaged or truncated storage).
    throw new RaftError(
      "RAFT_INVARIANT",
      `commit index ${m.commit} from leader ${m.from} is beyond this node's last log index ${r.log.lastIndex()}: its log lost entries it had acknowledged (damaged or truncated storage). Remove this node from the cluster, then add it back with an empty data directory`,
    );
  }
  r.log.commitTo(m.commit);
  const response: Message = {
    type: "MsgHeartbeatResp",
    from: r.id,
    to: m.from,
    term: r.term,
    context: m.context,
  };
  // The acknowledgement confirms the leader's reads and lease: it waits until our term
  // is durable (only the first heartbeats of a new term wait for a write).
  if (r.term === r.durableTerm) r.msgs.push(response);
  else r.msgsAfterPersist.push(response);
}

export function handleSnapshot(r: Raft, m: MsgSnap): void {
  const { index, term } = m.snapshot.metadata;
  const reply = (ackIndex: number) =>
    r.send({
      type: "MsgAppResp",
      from: r.id,
      to: m.from,
      term: r.term,
      index: ackIndex,
      reject: false,
      rejectHint: 0,
      logTerm: 0,
    });
  if (index <= r.log.committed) {
    reply(r.log.committed);
    return;
  }
  if (r.log.matchTerm(index, term)) {
    // We already hold the snapshot's last entry: just fast-forward the commit index. The
    // reply vouches for the snapshot's index only: the entries after it were never checked
    // against the leader's log, so they must not count toward a commit there.
    r.log.commitTo(index);
    reply(index);
    return;
  }
  restore(r, m.snapshot);
  reply(r.log.lastIndex());
}
