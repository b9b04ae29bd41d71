import {
  allMembers,
  type ConfState,
  type NodeId,
  type RaftStorage,
  type Status,
} from "@rockraft/raft-core";
import { RockraftError, withUnknownOutcome } from "./errors.js";
import type { Member, Waiter } from "./wait.js";

/** What the leader knows when it checks a membership change. */
export interface MembershipContext {
  /** Members' addresses as this node knows them. */
  readonly addresses: ReadonlyMap<NodeId, string>;
  /** raft-core's status now. */
  readonly status: Status;
  /** When (monotonic ms) each peer was last heard from. */
  readonly lastHeard: ReadonlyMap<NodeId, number>;
  /** Monotonic ms now. */
  readonly now: number;
  /** `raft.promote_max_lag_entries`. */
  readonly maxLagEntries: number;
  /** `raft.election_timeout_min_ms`. */
  readonly electionTimeoutMs: number;
}

/**
 * Refuses what etcd refuses: a node id given twice, one address for two nodes
 * (RAFT_INVALID_ARGUMENT), and, on the leader, a new voter it has not heard from within the
 * last election timeout or whose log is more than `promote_max_lag_entries` behind
 * (RAFT_REQUEST_REFUSED, reason `voter-not-ready`): it would count toward every quorum while
 * it cannot vote or acknowledge.
 */
export function checkMembershipTarget(
  target: { voters: readonly Member[]; learners: readonly Member[] },
  context: MembershipContext,
): void {
  const invalid = (message: string) =>
    new RockraftError("RAFT_INVALID_ARGUMENT", `membership change refused: ${message}`);
  const ids = new Map<NodeId, string>();
  const owners = new Map<string, NodeId>();
  for (const [role, members] of [
    ["voter", target.voters],
    ["learner", target.learners],
  ] as const) {
    for (const member of members) {
      if (member.addr === "" && !context.addresses.has(member.nodeId))
        throw invalid(`node ${member.nodeId} has no address`);
      const seen = ids.get(member.nodeId);
      if (seen !== undefined)
        throw invalid(`node ${member.nodeId} is given twice (as ${seen} and as ${role})`);
      ids.set(member.nodeId, role);
      const owner = owners.get(member.addr);
      if (owner !== undefined)
        throw invalid(`address ${member.addr} is given to nodes ${owner} and ${member.nodeId}`);
      owners.set(member.addr, member.nodeId);
    }
  }
  // An address a current member keeps, claimed by another id.
  for (const [id, addr] of context.addresses) {
    const claimant = owners.get(addr);
    if (claimant !== undefined && claimant !== id && ids.has(id))
      throw invalid(`address ${addr} is node ${id}'s, not node ${claimant}'s`);
  }
  const { status } = context;
  if (status.softState.role !== "leader") return; // the runtime refuses with the leader's name
  const now = context.now;
  for (const { nodeId } of target.voters) {
    if (status.confState.voters.includes(nodeId)) continue;
    const progress = status.progress.get(nodeId);
    const behind = status.lastIndex - (progress?.match ?? 0);
    const heard = context.lastHeard.get(nodeId);
    const why =
      progress === undefined
        ? "it is not a learner of this cluster (add it as a learner first and let it catch up)"
        : heard === undefined || now - heard > context.electionTimeoutMs
          ? "the leader has not heard from it within the last election timeout"
          : behind > context.maxLagEntries
            ? `its log is ${behind} entries behind the leader's (the limit is ${context.maxLagEntries}, raft.promote_max_lag_entries)`
            : undefined;
    if (why !== undefined) {
      throw new RockraftError(
        "RAFT_REQUEST_REFUSED",
        `membership change refused: node ${nodeId} cannot become a voter yet: ${why}`,
        { reason: "voter-not-ready" },
      );
    }
  }
}

/**
 * The index of the configuration in effect when it already is `target` (the same voters,
 * learners and addresses, applied, no change in progress): a change made again, say by a
 * retry after an unknown outcome, is then done already. Undefined otherwise.
 */
export function settledAt(
  target: { voters: readonly Member[]; learners: readonly Member[] },
  status: Status,
  applied: number,
  addresses: ReadonlyMap<NodeId, string>,
): number | undefined {
  const conf = status.confState;
  if (conf.votersOutgoing.length > 0 || applied < status.configIndex) return undefined;
  const same = (ids: readonly NodeId[], members: readonly Member[]) =>
    ids.length === members.length &&
    members.every((m) => ids.includes(m.nodeId) && addresses.get(m.nodeId) === m.addr);
  return same(conf.voters, target.voters) && same(conf.learners, target.learners)
    ? status.configIndex
    : undefined;
}

/** Where a membership change stands on the node that proposed it (see changeOutcome). */
export type ChangeOutcome = "pending" | "applied" | "replaced";

/**
 * Where the membership change proposed at `position` stands: `pending` until it (and the
 * leaving of a joint configuration) is applied here; then `applied`, or `replaced` when a
 * newer leader's entry sits at its index (entries do not move: it never committed). An
 * entry compacted away is behind a snapshot, so it committed.
 */
export function changeOutcome(
  position: { index: number; term: number },
  status: Status,
  applied: number,
  storage: RaftStorage,
): ChangeOutcome {
  const settled =
    applied >= position.index &&
    applied >= status.configIndex &&
    status.confState.votersOutgoing.length === 0;
  if (!settled) return "pending";
  let term: number | undefined;
  try {
    term = storage.term(position.index);
  } catch {
    term = undefined; // compacted
  }
  return term !== undefined && term !== position.term ? "replaced" : "applied";
}

/**
 * Waits until the membership change proposed at `position` is applied here (and the leaving
 * of a joint configuration); resolves with its index. Rejects RAFT_PROPOSAL_DROPPED when a
 * newer leader's entry replaced it; RAFT_TIMEOUT, its outcome unknown (the change may still
 * be made), when the wait fails (the deadline, the node stopping).
 */
export async function awaitChange(
  waiter: Waiter,
  position: { index: number; term: number },
  status: () => Status,
  storage: RaftStorage,
  timeoutMs: number,
): Promise<number> {
  let outcome = "pending" as ChangeOutcome;
  await waiter
    .until(
      (m) => {
        outcome = changeOutcome(position, status(), m.lastApplied?.index ?? 0, storage);
        return outcome !== "pending";
      },
      `the membership change at index ${position.index} to be applied`,
      timeoutMs,
      "RAFT_TIMEOUT",
    )
    .catch((error: unknown) => {
      throw withUnknownOutcome(error as Error);
    });
  if (outcome === "replaced") {
    throw new RockraftError(
      "RAFT_PROPOSAL_DROPPED",
      `the membership change at index ${position.index} was replaced by a newer leader's entry before it committed`,
    );
  }
  return position.index;
}

/**
 * Whether this node knows it was removed: it was a member (in this process), and the
 * configuration in effect, committed as far as it knows, no longer lists it.
 */
export class RemovalWatch {
  private wasMember = false;
  private said = false;
  /** The last configuration looked at (raft-core keeps the same object until it changes). */
  private lastConf: ConfState | undefined;
  private lastMember = false;

  constructor(private readonly nodeId: NodeId) {}

  /** Whether `conf` lists this node (remembering that it did); cheap for the same `conf`. */
  isMember(conf: ConfState): boolean {
    if (conf !== this.lastConf) {
      this.lastConf = conf;
      this.lastMember = allMembers(conf).includes(this.nodeId);
      if (this.lastMember) this.wasMember = true;
    }
    return this.lastMember;
  }

  removed(status: Status): boolean {
    if (this.isMember(status.confState)) return false;
    return this.wasMember && status.configIndex <= status.hardState.commit;
  }

  /**
   * The index of the configuration that removed this node, the first time it is known
   * (to be said once); cheap while the node is a member (no `status()`).
   */
  newlyRemoved(conf: ConfState, status: () => Status): number | undefined {
    if (this.said || this.isMember(conf) || !this.wasMember) return undefined;
    const now = status();
    if (!this.removed(now)) return undefined;
    this.said = true;
    return now.configIndex;
  }
}
