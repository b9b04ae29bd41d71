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
  /**
   * When it was sent (monotonic ms), if to another node: its request or answer may be lost
   * on the way, and it is asked again if unanswered (see `retry`).
   */
  readonly sentAt: number | undefined;
  /**
   * Its unsettled reads were asked again in a newer request: they follow that one (a leader
   * change fails them there), and this one's answer, should it still come, answers them too.
   */
  superseded: boolean;
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
  /** One timer for asking again of batches sent to another node and not answered. */
  private retryTimer: TimerHandle;

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
    const remote = lead !== raw.id;
    const sentAt = remote ? this.clock.monotonic() : undefined;
    this.batches.set(context, { reads: batch, lead, term, sentAt, superseded: false });
    if (remote) this.armRetry(READ_RETRY_MS);
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
      if (now !== undefined && batch.superseded) continue; // its reads wait where they went
      for (const read of batch.reads) read.reject(error);
    }
  }

  /**
   * Requests the network dropped unsent (no connection to the leader: it is down, or a new
   * connection's first attempt failed): they never reached it, so their reads are queued
   * again after a pause (a read has no effect) and sent once the connection is up, rather
   * than left to their deadline.
   */
  dropped(messages: readonly Message[]): void {
    for (const message of messages) {
      if (message.type !== "MsgReadIndex") continue;
      const batch = this.batches.get(message.context);
      if (batch === undefined) continue;
      this.batches.delete(message.context);
      if (batch.superseded) continue; // its reads went out again already
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

  /**
   * Batches sent to the leader and still unanswered after {@link READ_RETRY_MS} are asked
   * again, together in one new request: their request or its answer may have been lost on
   * the way (a stream that broke after writing it), and nothing else would tell. Each stays
   * in the map, superseded: a slow leader's late answer to it still counts (an answer to any
   * request made after a read arrived is a valid read index for it). Safe: a read has no
   * effect, and a later request can only be answered with a later read index. The timer
   * runs every {@link READ_RETRY_MS} while such batches wait, so a batch is asked again
   * 500 to 1,000 ms after it was sent, and however many wait, at most one new request goes
   * out per round. (A leader's own batches need no retry: its heartbeat rounds confirm them.)
   */
  private retry(): void {
    this.retryTimer = undefined;
    const now = this.clock.monotonic();
    let waiting = false;
    let asked = false;
    for (const batch of this.batches.values()) {
      if (batch.sentAt === undefined || batch.superseded) continue;
      if (batch.sentAt + READ_RETRY_MS > now) {
        waiting = true; // asked again at the next round
        continue;
      }
      batch.superseded = true;
      for (const read of batch.reads) {
        if (read.settled) continue;
        this.queued.push(read);
        asked = true;
      }
    }
    if (waiting) this.armRetry(READ_RETRY_MS);
    if (asked) this.wake();
  }

  private armRetry(ms: number): void {
    if (this.retryTimer !== undefined) return;
    this.retryTimer = this.clock.setTimeout(() => this.retry(), Math.max(0, ms));
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
    this.clock.clear(this.retryTimer);
    this.retryTimer = undefined;
    for (const read of [...this.queued, ...this.resending]) read.reject(error);
    this.queued = [];
    this.resending = [];
    this.leaderLost(error);
  }
}

/** The pause before reads whose request could not be sent are sent again. */
const RESEND_PAUSE_MS = 50;
/**
 * How long a batch sent to the leader waits for its answer before it is asked again
 * (etcd's server retries its ReadIndex requests after the same time).
 */
const READ_RETRY_MS = 500;
