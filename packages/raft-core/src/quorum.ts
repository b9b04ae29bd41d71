import type { NodeId } from "./types.js";

/** Outcome of an election so far. */
export type VoteResult = "pending" | "won" | "lost";

/**
 * A quorum rule over a set of voters. Joint consensus (thesis §4.3) is a pair of majority
 * rules that must both agree; everything that counts votes or acknowledgements goes through
 * this interface, so the core never counts majorities by hand.
 */
export interface Quorum {
  /** The largest index acknowledged by a quorum, given each voter's acknowledged index. */
  committedIndex(acked: (id: NodeId) => number | undefined): number;
  /** Outcome of an election given the votes received so far (true = granted). */
  voteResult(votes: ReadonlyMap<NodeId, boolean>): VoteResult;
  /** Every voter, sorted ascending. */
  voterIds(): readonly NodeId[];
  /** Whether `id` votes in this quorum. */
  isVoter(id: NodeId): boolean;
}

export class MajorityQuorum implements Quorum {
  private readonly voters: readonly NodeId[];
  private readonly scratch: Float64Array;

  constructor(voters: readonly NodeId[]) {
    this.voters = [...voters].sort((a, b) => a - b);
    this.scratch = new Float64Array(this.voters.length);
  }

  committedIndex(acked: (id: NodeId) => number | undefined): number {
    const n = this.voters.length;
    // An empty configuration does not constrain a joint decision.
    if (n === 0) return Number.MAX_SAFE_INTEGER;
    const values = this.scratch;
    for (let i = 0; i < n; i++) values[i] = acked(this.voters[i]!) ?? 0;
    values.sort();
    // Ascending: the index at n - majority is acknowledged by a majority (itself and above).
    return values[n - ((n >> 1) + 1)]!;
  }

  voteResult(votes: ReadonlyMap<NodeId, boolean>): VoteResult {
    const n = this.voters.length;
    if (n === 0) return "won";
    let granted = 0;
    let missing = 0;
    for (const id of this.voters) {
      const vote = votes.get(id);
      if (vote === undefined) missing++;
      else if (vote) granted++;
    }
    const majority = (n >> 1) + 1;
    if (granted >= majority) return "won";
    if (granted + missing >= majority) return "pending";
    return "lost";
  }

  voterIds(): readonly NodeId[] {
    return this.voters;
  }

  isVoter(id: NodeId): boolean {
    return this.voters.includes(id);
  }
}

/** Both halves of a joint configuration must agree (thesis §4.3). */
export class JointQuorum implements Quorum {
  private readonly incoming: MajorityQuorum;
  private readonly outgoing: MajorityQuorum;
  private readonly all: readonly NodeId[];

  constructor(incoming: readonly NodeId[], outgoing: readonly NodeId[]) {
    this.incoming = new MajorityQuorum(incoming);
    this.outgoing = new MajorityQuorum(outgoing);
    this.all = [...new Set([...incoming, ...outgoing])].sort((a, b) => a - b);
  }

  committedIndex(acked: (id: NodeId) => number | undefined): number {
    return Math.min(this.incoming.committedIndex(acked), this.outgoing.committedIndex(acked));
  }

  voteResult(votes: ReadonlyMap<NodeId, boolean>): VoteResult {
    const a = this.incoming.voteResult(votes);
    const b = this.outgoing.voteResult(votes);
    if (a === b) return a;
    if (a === "lost" || b === "lost") return "lost";
    return "pending";
  }

  voterIds(): readonly NodeId[] {
    return this.all;
  }

  isVoter(id: NodeId): boolean {
    return this.incoming.isVoter(id) || this.outgoing.isVoter(id);
  }
}

export function quorumFor(voters: readonly NodeId[], votersOutgoing: readonly NodeId[]): Quorum {
  return votersOutgoing.length === 0
    ? new MajorityQuorum(voters)
    : new JointQuorum(voters, votersOutgoing);
}
