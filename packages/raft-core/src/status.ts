// What a node reports about itself (`RawNode.status()`), and the checks of its own state.
import { RaftError } from "./errors.js";
import type { Progress } from "./progress.js";
import type { Raft } from "./raft.js";
import type { ConfState, HardState, NodeId, SoftState } from "./types.js";

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

/** The node's state as a plain object. */
export function status(r: Raft): Status {
  const progress = new Map<NodeId, ProgressStatus>();
  if (r.role === "leader") {
    for (const [id, pr] of r.progress) {
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
    id: r.id,
    hardState: r.hardState(),
    softState: r.softState(),
    applied: r.log.applied,
    lastIndex: r.log.lastIndex(),
    confState: r.conf,
    configIndex: r.latestConfigIndex(),
    leadTransferee: r.leadTransferee,
    progress,
  };
}

/** Throws RAFT_INVARIANT when the node's own state is inconsistent (simulator-checked). */
export function checkInvariants(r: Raft): void {
  const fail = (what: string) => {
    throw new RaftError("RAFT_INVARIANT", `node ${r.id}: ${what}`);
  };
  const log = r.log;
  if (!(log.applied <= log.committed)) fail(`applied ${log.applied} > committed ${log.committed}`);
  if (!(log.committed <= log.lastIndex()))
    fail(`committed ${log.committed} > last ${log.lastIndex()}`);
  if ((r.role === "leader") !== (r.lead === r.id)) fail(`role ${r.role} with lead ${r.lead}`);
  if (r.role === "candidate" && r.vote !== r.id) fail(`candidate voted for ${r.vote}`);
  if (r.role === "leader") {
    for (const pr of r.progress.values()) {
      if (!(pr.match < pr.next)) fail(`progress of ${pr.id}: match ${pr.match} >= next ${pr.next}`);
    }
    const self = r.progress.get(r.id);
    if (self !== undefined && self.match > log.lastIndex()) fail(`own match beyond last index`);
  }
}
