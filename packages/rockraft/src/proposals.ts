import type { ApplyResult } from "@rockraft/storage-level";
import { RockraftError } from "./errors.js";
import type { Clock, TimerHandle } from "./seams.js";
import type { LogId } from "./wait.js";

/** What a write resolves with: its result and where it sits in the log. */
export interface AppliedWrite {
  readonly result: ApplyResult;
  readonly logId: LogId;
}

/** A write waiting to be proposed. */
export interface Proposal {
  readonly data: Uint8Array;
  /** The tag inside `data` that finds this proposal again when it is applied. */
  readonly requestId: string;
  readonly resolve: (applied: AppliedWrite) => void;
  readonly reject: (error: Error) => void;
  /** Epoch milliseconds after which the caller no longer waits. */
  readonly deadline: number;
}

interface Waiting {
  readonly requestId: string;
  readonly resolve: (applied: AppliedWrite) => void;
  readonly reject: (error: Error) => void;
  readonly timer: TimerHandle;
  readonly proposedAt: number;
}

/** A request id as a map key. */
export function requestKey(id: Uint8Array): string {
  return Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString("latin1");
}

/**
 * Proposed writes waiting for their entries to be applied. Each settles exactly once: with
 * its result when its entry is applied here; RAFT_PROPOSAL_DROPPED when another entry was
 * applied at its index (it can then never be committed); RAFT_TIMEOUT with an unknown
 * outcome at its deadline; or the runtime's error when it stops.
 */
export class ProposalTracker {
  /** Proposals this node appended as leader, by log index (several: see `proposedAt`). */
  private readonly byIndex = new Map<number, Waiting[]>();
  /** Proposals raft-core forwarded to the leader (MsgProp), by request id. */
  private readonly forwarded = new Map<string, Waiting>();

  /** `onSettled` is told each successful write's time from proposal to apply, in seconds. */
  constructor(
    private readonly clock: Clock,
    private readonly onSettled: (seconds: number) => void = () => {},
  ) {}

  /** Waiting writes, of both kinds. */
  get size(): number {
    let count = this.forwarded.size;
    for (const waiting of this.byIndex.values()) count += waiting.length;
    return count;
  }

  /**
   * A proposal this node appended as leader at `index`. A write from an earlier term may
   * still wait at the same index (its entry was cut from this log and the index reused):
   * both wait, and the entry applied there settles both, one way or the other.
   */
  proposedAt(index: number, proposal: Proposal): void {
    const waiting = this.wait(proposal, (entry) => {
      const list = this.byIndex.get(index);
      const position = list?.indexOf(entry) ?? -1;
      if (position < 0) return false;
      list!.splice(position, 1);
      if (list!.length === 0) this.byIndex.delete(index);
      return true;
    });
    const list = this.byIndex.get(index);
    if (list === undefined) this.byIndex.set(index, [waiting]);
    else list.push(waiting);
  }

  /** A proposal raft-core forwarded to the leader: found again by its request id. */
  forwardedToLeader(proposal: Proposal): void {
    this.forwarded.set(
      proposal.requestId,
      this.wait(proposal, () => this.forwarded.delete(proposal.requestId)),
    );
  }

  /** A forwarded proposal the transport could not send: it fails with `error`, safely. */
  dropForwarded(requestId: string, error: Error): void {
    const waiting = this.forwarded.get(requestId);
    if (waiting === undefined) return;
    this.forwarded.delete(requestId);
    this.clock.clear(waiting.timer);
    waiting.reject(error);
  }

  /**
   * An entry was applied here: settles whoever waits for it or for its index.
   * `unsafeByIndexOnly` (testing only, a known bug) answers whoever waits at the index with
   * this entry's result, whichever write it is.
   */
  applied(result: ApplyResult, logId: LogId, unsafeByIndexOnly = false): void {
    const requestId =
      "requestId" in result && result.requestId !== undefined
        ? requestKey(result.requestId)
        : undefined;
    const atIndex = this.byIndex.get(result.index);
    if (atIndex !== undefined) {
      this.byIndex.delete(result.index);
      for (const waiting of atIndex) {
        if (waiting.requestId === requestId || unsafeByIndexOnly) {
          this.settle(waiting, result, logId);
          continue;
        }
        // Another entry is committed at its index: this one never will be (entries do not
        // move), so the write definitely failed and may be retried.
        this.clock.clear(waiting.timer);
        waiting.reject(
          new RockraftError(
            "RAFT_PROPOSAL_DROPPED",
            `entry ${result.index} was replaced by a newer leader's entry before it committed`,
          ),
        );
      }
    }
    if (requestId === undefined) return;
    const forwarded = this.forwarded.get(requestId);
    if (forwarded !== undefined) {
      this.forwarded.delete(requestId);
      this.settle(forwarded, result, logId);
    }
  }

  /** Rejects every waiting write with `error` (the runtime stopped). */
  rejectAll(error: Error): void {
    for (const list of this.byIndex.values()) {
      for (const waiting of list) {
        this.clock.clear(waiting.timer);
        waiting.reject(error);
      }
    }
    for (const waiting of this.forwarded.values()) {
      this.clock.clear(waiting.timer);
      waiting.reject(error);
    }
    this.byIndex.clear();
    this.forwarded.clear();
  }

  private settle(waiting: Waiting, result: ApplyResult, logId: LogId): void {
    this.clock.clear(waiting.timer);
    this.onSettled((this.clock.monotonic() - waiting.proposedAt) / 1000);
    waiting.resolve({ result, logId });
  }

  /**
   * A waiting entry, rejected at its deadline unless `forget` (which removes this very
   * entry from where it waits) finds it already gone.
   */
  private wait(proposal: Proposal, forget: (entry: Waiting) => boolean): Waiting {
    const entry: Waiting = {
      requestId: proposal.requestId,
      resolve: proposal.resolve,
      reject: proposal.reject,
      timer: this.clock.setTimeout(
        () => {
          if (forget(entry)) {
            proposal.reject(
              new RockraftError(
                "RAFT_TIMEOUT",
                "the write was not applied within the deadline; its outcome is unknown",
                { outcomeUnknown: true },
              ),
            );
          }
        },
        Math.max(0, proposal.deadline - this.clock.now()),
      ),
      proposedAt: this.clock.monotonic(),
    };
    return entry;
  }
}
