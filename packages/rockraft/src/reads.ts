// Linearizable reads, batched: the reads that arrive together share one ReadIndex request
// (one heartbeat round on the leader), and each is answered with the read index the
// leader confirmed for its batch.
import type { Message, RawNode, ReadState, SoftState } from "@rockraft/raft-core";
import { RockraftError } from "./errors.js";
import type { Clock, TimerHandle } from "./seams.js";

/** A read waiting for its read index; it settles once (at the latest at its deadline). */
class PendingRead {
  settled = false;

  constructor(
    private readonly onResolve: (index: number) => void,
    private readonly onReject: (error: Error) => void,
    /** Wall-clock ms after which the caller no longer waits. */
    readonly deadline: number,
  ) {}

  resolve(index: number): void {
    if (this.settled) return;
    this.settled = true;
    this.onResolve(index);
  }

  reject(error: Error): void {
    if (this.settled) return;
    this.settled = true;
    this.onReject(error);
  }
}

/** A ReadIndex request raft-core sent: its reads, and the leader and term it went to. */
interface SentBatch {
  readonly reads: PendingRead[];
  readonly lead: number;
  readonly term: number;
}

export class ReadBatcher {
  /** Reads not yet sent to raft-core. */
  private queued: PendingRead[] = [];
  /** Batches raft-core is confirming, by read context, with the leader and term sent to. */
  private readonly batches = new Map<string, SentBatch>();
  private counter = 0;
  /**
   * One timer for every read's deadline, armed at the earliest one not yet settled: a read
   * costs no timer of its own, and still fails at its deadline when no answer comes.
   */
  private sweepTimer: TimerHandle;
  private sweepAt = Infinity;
  /** Reads whose request the network dropped unsent, to be queued again after a pause. */
  private resending: PendingRead[] = [];
  private resendTimer: TimerHandle;

  /**
   * `prefix` starts every read context. It must be random per process: a restarted node
   * must never reuse a context a leader may still hold from before (it would be answered
   * with that older, lower read index).
   */
  constructor(
    private readonly prefix: string,
    private readonly clock: Clock,
    /** Asks for a Ready soon: reads were queued again. */
    private readonly wake: () => void,
  ) {}

  /** Whether reads wait to be sent. */
  get hasQueued(): boolean {
    return this.queued.length > 0;
  }

  /** A read point for a linearizable read: resolves with the index to wait for. */
  request(deadline: number): Promise<number> {
    const read = new Promise<number>((resolve, reject) => {
      this.queued.push(new PendingRead(resolve, reject, deadline));
    });
    this.armSweep(deadline);
    return read;
  }

  /** Sends the queued reads as one ReadIndex request; kept for later when there is no leader. */
  flush(raw: RawNode, now: number): void {
    if (this.queued.length === 0) return;
    const batch = this.queued.filter((read) => {
      if (read.settled) return false;
      if (read.deadline > now) return true;
      read.reject(
        new RockraftError(
          "RAFT_TIMEOUT",
          "the read's deadline passed before a leader confirmed it",
        ),
      );
      return false;
    });
    this.queued = [];
    if (batch.length === 0) return;
    const context = `${this.prefix}${++this.counter}`;
    const { lead, term } = raw.softState();
    try {
      raw.readIndex(context);
    } catch {
      // No leader right now: keep them for the next wake-up (a leader may appear).
      this.queued = batch;
      return;
    }
    this.batches.set(context, { reads: batch, lead, term });
  }

  /** The leader confirmed read indexes (a Ready's readStates). */
  confirmed(states: readonly ReadState[]): void {
    for (const state of states) {
      const batch = this.batches.get(state.context);
      if (batch === undefined) continue;
      this.batches.delete(state.context);
      for (const read of batch.reads) read.resolve(state.index);
    }
  }

  /**
   * Drops batches whose every read has settled (each at its deadline, by its own timer;
   * waiting for the applied index is the caller's part).
   */
  expire(): void {
    for (const [context, batch] of this.batches) {
      if (batch.reads.every((read) => read.settled)) this.batches.delete(context);
    }
  }

  /**
   * The leader or term is now `now`'s: a batch sent to another leader, or in another term,
   * is lost (a leader drops what it was confirming when its term ends), so its reads fail
   * at once with `error` and may be retried (a read has no effect). Batches sent to the
   * leader of `now` (flushed after it was known) wait on. Without `now`, every batch fails.
   */
  leaderLost(error: Error, now?: Pick<SoftState, "lead" | "term">): void {
    for (const [context, batch] of this.batches) {
      if (now !== undefined && batch.lead === now.lead && batch.term === now.term) continue;
      this.batches.delete(context);
      for (const read of batch.reads) read.reject(error);
    }
  }

  /**
   * Requests the network dropped unsent (no connection to the leader yet): they never
   * reached it, so their reads are queued again after a pause (a read has no effect) and
   * sent once the connection is up, rather than left to their deadline.
   */
  dropped(messages: readonly Message[]): void {
    for (const message of messages) {
      if (message.type !== "MsgReadIndex") continue;
      const batch = this.batches.get(message.context);
      if (batch === undefined) continue;
      this.batches.delete(message.context);
      for (const read of batch.reads) if (!read.settled) this.resending.push(read);
    }
    if (this.resending.length === 0 || this.resendTimer !== undefined) return;
    this.resendTimer = this.clock.setTimeout(() => {
      this.resendTimer = undefined;
      this.queued.push(...this.resending);
      this.resending = [];
      this.wake();
    }, RESEND_PAUSE_MS);
  }

  /** Whether batches wait for confirmation. */
  get hasSent(): boolean {
    return this.batches.size > 0;
  }

  /** Fails every read whose deadline has passed, then waits for the next deadline. */
  private sweep(): void {
    this.sweepTimer = undefined;
    this.sweepAt = Infinity;
    const now = this.clock.now();
    let next = Infinity;
    const visit = (read: PendingRead) => {
      if (read.settled) return;
      if (read.deadline <= now) {
        read.reject(
          new RockraftError("RAFT_TIMEOUT", "no read index from the leader within the deadline"),
        );
      } else next = Math.min(next, read.deadline);
    };
    this.queued.forEach(visit);
    this.resending.forEach(visit);
    for (const batch of this.batches.values()) batch.reads.forEach(visit);
    if (next < Infinity) this.armSweep(next);
  }

  private armSweep(deadline: number): void {
    if (deadline >= this.sweepAt) return;
    this.clock.clear(this.sweepTimer);
    this.sweepAt = deadline;
    this.sweepTimer = this.clock.setTimeout(
      () => this.sweep(),
      Math.max(0, deadline - this.clock.now()),
    );
  }

  /** Rejects every read (the runtime stopped). */
  rejectAll(error: Error): void {
    this.clock.clear(this.sweepTimer);
    this.sweepTimer = undefined;
    this.sweepAt = Infinity;
    this.clock.clear(this.resendTimer);
    this.resendTimer = undefined;
    for (const read of [...this.queued, ...this.resending]) read.reject(error);
    this.queued = [];
    this.resending = [];
    this.leaderLost(error);
  }
}

/** The pause before reads whose request could not be sent are sent again. */
const RESEND_PAUSE_MS = 50;
