import type { Quorum } from "./quorum.js";
import type { NodeId } from "./types.js";

/** A ReadIndex request waiting for a quorum's acknowledgement of its round. */
export interface ReadRequest {
  readonly context: string;
  /** The leader's commit index when the request arrived: the read point it answers. */
  readonly index: number;
  readonly from: NodeId;
  /** The heartbeat round sent when the request arrived: a quorum's ack of it confirms it. */
  readonly round: number;
}

/** A heartbeat round the leader sent, and when (in its ticks). */
interface Round {
  readonly round: number;
  readonly sentAt: number;
}

/**
 * A leader's heartbeat rounds, and the reads and the lease they confirm (thesis §6.4; etcd's
 * read_only.go). Every heartbeat carries its round's number as its context; a follower's
 * reply acknowledges that round and every round before it. A ReadIndex request is confirmed
 * once a quorum acknowledged a round sent after it arrived; the lease starts when the newest
 * round a quorum acknowledged was sent. Round numbers only grow (never reset, and a node
 * leads at most once per term), so two requests never share a round, whatever contexts
 * their callers gave.
 */
export class ReadOnly {
  private round = 0;
  private rounds: Round[] = [];
  private readonly acked = new Map<NodeId, number>();
  private requests: ReadRequest[] = [];
  /** A MsgTimeoutNow went out this term: voters may now ignore the lease, so it is over. */
  private leaseRevoked = false;

  /**
   * `electionTick` bounds how long a round can start a lease; the lease lasts `leaseTicks`
   * from the send of the round that started it.
   */
  constructor(
    private readonly electionTick: number,
    private readonly leaseTicks: number,
  ) {}

  /** A new term or role: nothing pending, no acknowledgement, no lease. */
  reset(): void {
    this.rounds = [];
    this.acked.clear();
    this.requests = [];
    this.leaseRevoked = false;
  }

  /** Starts a heartbeat round at `now` (ticks): its number, its heartbeats' context. */
  newRound(now: number): number {
    const round = ++this.round;
    // Rounds older than an election timeout can no longer start a lease.
    const horizon = now - this.electionTick;
    let drop = 0;
    while (drop < this.rounds.length && this.rounds[drop]!.sentAt < horizon) drop++;
    if (drop > 0) this.rounds.splice(0, drop);
    this.rounds.push({ round, sentAt: now });
    return round;
  }

  /** A read that waits for a quorum's acknowledgement of a new round, started at `now`. */
  addRequest(request: Omit<ReadRequest, "round">, now: number): number {
    const round = this.newRound(now);
    this.requests.push({ ...request, round });
    return round;
  }

  /** The round a heartbeat response's context names, if this leader sent it. */
  roundOf(context: string): number | undefined {
    if (context === "" || context.length > 15) return undefined;
    const round = Number(context);
    const ours = Number.isSafeInteger(round) && round > 0 && String(round) === context;
    return ours && round <= this.round ? round : undefined;
  }

  /**
   * `from` acknowledged `round`: returns the requests it (with the others) confirms, in
   * order, removed from those pending.
   */
  acknowledge(from: NodeId, round: number, quorum: Quorum, self: NodeId): ReadRequest[] {
    if (round <= (this.acked.get(from) ?? 0)) return [];
    this.acked.set(from, round);
    if (this.requests.length === 0) return [];
    const acked = this.quorumAckedRound(quorum, self);
    let confirmed = 0;
    while (confirmed < this.requests.length && this.requests[confirmed]!.round <= acked)
      confirmed++;
    return confirmed === 0 ? [] : this.requests.splice(0, confirmed);
  }

  /** `id` no longer takes part (removed, given up on): its acknowledgements go. */
  forget(id: NodeId): void {
    this.acked.delete(id);
  }

  /** A MsgTimeoutNow went out: the lease is over for the rest of the term. */
  revokeLease(): void {
    this.leaseRevoked = true;
  }

  /**
   * Whether the lease holds at `now` (thesis §6.4.1). A follower that acknowledged a
   * heartbeat ignores votes for an election timeout after receiving it (CheckQuorum), so no
   * other leader can be elected within `electionTick - 1` ticks of the send of the newest
   * round a quorum acknowledged (one tick is lost to tick granularity); the lease ends the
   * drift bound before that. A leadership transfer ends it for the rest of the term: the
   * target's election does not wait for the lease.
   */
  leaseValid(quorum: Quorum, self: NodeId, now: number): boolean {
    if (this.leaseRevoked) return false;
    const acked = this.quorumAckedRound(quorum, self);
    if (acked === 0) return false;
    let sentAt: number | undefined;
    for (let i = this.rounds.length - 1; i >= 0; i--) {
      const round = this.rounds[i]!;
      if (round.round <= acked) {
        // Rounds are in order: the newest one at or before `acked` was sent no later.
        sentAt = round.round === acked ? round.sentAt : undefined;
        break;
      }
    }
    return sentAt !== undefined && now - sentAt < this.leaseTicks;
  }

  /** The newest round a quorum (this leader included) has acknowledged; 0: none. */
  private quorumAckedRound(quorum: Quorum, self: NodeId): number {
    return quorum.committedIndex((id) => (id === self ? this.round : this.acked.get(id)));
  }
}
