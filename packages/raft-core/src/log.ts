import { RaftError } from "./errors.js";
import { limitSize, type RaftStorage } from "./storage.js";
import type { Entry, Snapshot } from "./types.js";

/**
 * The node's log: the durable part in storage, then the unstable part (entries and a
 * snapshot handed out in a Ready but not yet acknowledged durable by `advance`).
 */
export class RaftLog {
  readonly storage: RaftStorage;
  /** An incoming snapshot not yet persisted; when set, unstable entries follow it. */
  private unstableSnapshot: Snapshot | undefined;
  /** Unstable entries; entry i has index `unstableOffset + i`. */
  private unstableEntries: Entry[] = [];
  // Invariant: unstableOffset <= storage.lastIndex() + 1 (it may be lower when a newer
  // leader's entries are waiting to replace a stored suffix).
  private unstableOffset: number;

  // Invariant: applied <= committed <= lastIndex().
  committed: number;
  applied: number;

  constructor(storage: RaftStorage, applied = 0) {
    this.storage = storage;
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    this.unstableOffset = last + 1;
    this.committed = first - 1;
    this.applied = Math.max(first - 1, applied);
  }

  firstIndex(): number {
    if (this.unstableSnapshot !== undefined) return this.unstableSnapshot.metadata.index + 1;
    return this.storage.firstIndex();
  }

  lastIndex(): number {
    if (this.unstableEntries.length > 0) {
      return this.unstableOffset + this.unstableEntries.length - 1;
    }
    if (this.unstableSnapshot !== undefined) return this.unstableSnapshot.metadata.index;
    return this.storage.lastIndex();
  }

  lastTerm(): number {
    return this.term(this.lastIndex())!;
  }

  /** The last index known durable and matching this log (what a leader may count for itself). */
  stableIndex(): number {
    if (this.unstableSnapshot !== undefined) return 0;
    return Math.min(this.storage.lastIndex(), this.unstableOffset - 1);
  }

  /** Term at `index`, or undefined when it is compacted away or beyond the end. */
  term(index: number): number | undefined {
    if (index >= this.unstableOffset) {
      const entry = this.unstableEntries[index - this.unstableOffset];
      if (entry !== undefined) return entry.term;
      // Past the unstable entries: only the snapshot position itself can be answered.
      if (this.unstableSnapshot?.metadata.index === index)
        return this.unstableSnapshot.metadata.term;
      return undefined;
    }
    if (this.unstableSnapshot !== undefined) {
      return this.unstableSnapshot.metadata.index === index
        ? this.unstableSnapshot.metadata.term
        : undefined;
    }
    if (index < this.storage.firstIndex() - 1 || index > this.storage.lastIndex()) return undefined;
    return this.storage.term(index);
  }

  /** The entry at `index`, or undefined when compacted away or beyond the end. */
  entryAt(index: number): Entry | undefined {
    if (index >= this.unstableOffset) return this.unstableEntries[index - this.unstableOffset];
    if (this.unstableSnapshot !== undefined) return undefined;
    if (index < this.storage.firstIndex() || index > this.storage.lastIndex()) return undefined;
    return this.storage.entries(index, index + 1)[0];
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** §5.4.1: is a log ending at (lastIndex, lastTerm) at least as up to date as ours? */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }

  /** Appends entries after or over the tail; returns the new last index. */
  append(entries: readonly Entry[]): number {
    if (entries.length === 0) return this.lastIndex();
    const after = entries[0]!.index - 1;
    if (after < this.committed) {
      throw new RaftError(
        "RAFT_INVARIANT",
        `append after ${after} would overwrite committed entries (committed ${this.committed})`,
      );
    }
    this.truncateAndAppend(entries);
    return this.lastIndex();
  }

  /**
   * The index of the first entry in `entries` whose term differs from ours, or of the first
   * one we do not have; 0 when we already hold all of them.
   */
  findConflict(entries: readonly Entry[]): number {
    for (const entry of entries) {
      if (!this.matchTerm(entry.index, entry.term)) return entry.index;
    }
    return 0;
  }

  /**
   * Fast backtracking: the largest index <= `index` whose term is <= `term`, with that
   * term. Used on both sides of a rejected append to skip a whole term per round trip.
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    for (let i = index; i > 0; i--) {
      const ourTerm = this.term(i);
      if (ourTerm === undefined) return { index: i, term: 0 };
      if (ourTerm <= term) return { index: i, term: ourTerm };
    }
    return { index: 0, term: 0 };
  }

  commitTo(index: number): void {
    if (index <= this.committed) return;
    if (index > this.lastIndex()) {
      throw new RaftError(
        "RAFT_INVARIANT",
        `commit index ${index} is beyond the last index ${this.lastIndex()}`,
      );
    }
    this.committed = index;
  }

  /** §5.4.2: a leader commits by counting only entries of its own term. */
  maybeCommit(index: number, term: number): boolean {
    if (index > this.committed && this.term(index) === term) {
      this.commitTo(index);
      return true;
    }
    return false;
  }

  appliedTo(index: number): void {
    if (index === 0) return;
    if (index > this.committed || index < this.applied) {
      throw new RaftError(
        "RAFT_INVARIANT",
        `applied index ${index} is outside [${this.applied}, ${this.committed}]`,
      );
    }
    this.applied = index;
  }

  hasNextCommittedEntries(): boolean {
    return this.committed > this.applied;
  }

  /** Committed, unapplied entries, within `maxBytes` (at least one). */
  nextCommittedEntries(maxBytes?: number): Entry[] {
    if (!this.hasNextCommittedEntries()) return [];
    return this.slice(Math.max(this.applied + 1, this.firstIndex()), this.committed + 1, maxBytes);
  }

  unstable(): readonly Entry[] {
    return this.unstableEntries;
  }

  pendingSnapshot(): Snapshot | undefined {
    return this.unstableSnapshot;
  }

  /**
   * `written` (a Ready's entries) are durable: drop them from the unstable part. Entries a
   * newer leader replaced meanwhile stay unstable, so their replacements get written; the
   * unchanged prefix before them is stable.
   */
  stableEntries(written: readonly Entry[]): void {
    let stableCount = 0;
    const last = written[written.length - 1];
    if (last !== undefined && this.unstableEntries[last.index - this.unstableOffset] === last) {
      stableCount = last.index + 1 - this.unstableOffset;
    } else {
      for (const entry of written) {
        if (this.unstableEntries[entry.index - this.unstableOffset] !== entry) break;
        stableCount = entry.index + 1 - this.unstableOffset;
      }
    }
    if (stableCount <= 0) return;
    this.unstableEntries = this.unstableEntries.slice(stableCount);
    this.unstableOffset += stableCount;
  }

  stableSnapshotTo(index: number): void {
    if (this.unstableSnapshot?.metadata.index === index) this.unstableSnapshot = undefined;
  }

  /** Replaces the whole log with a snapshot's position (InstallSnapshot, §7). */
  restore(snapshot: Snapshot): void {
    this.committed = snapshot.metadata.index;
    this.unstableOffset = snapshot.metadata.index + 1;
    this.unstableEntries = [];
    this.unstableSnapshot = snapshot;
  }

  /** Entries in [lo, hi), at least one when lo < hi, within `maxBytes`. */
  slice(lo: number, hi: number, maxBytes?: number): Entry[] {
    if (lo >= hi) return [];
    const first = this.firstIndex();
    if (lo < first) {
      throw new RaftError(
        "RAFT_LOG_COMPACTED",
        `slice(${lo}, ${hi}): compacted up to ${first - 1}`,
      );
    }
    if (hi > this.lastIndex() + 1) {
      throw new RaftError(
        "RAFT_LOG_UNAVAILABLE",
        `slice(${lo}, ${hi}): the log ends at ${this.lastIndex()}`,
      );
    }
    let result: Entry[] = [];
    if (lo < this.unstableOffset) {
      result = this.storage.entries(lo, Math.min(hi, this.unstableOffset), maxBytes);
      // Storage stopped short because of the byte budget: do not continue past it.
      if (result.length < Math.min(hi, this.unstableOffset) - lo) return result;
    }
    if (hi > this.unstableOffset) {
      const from = Math.max(lo, this.unstableOffset) - this.unstableOffset;
      const unstable = this.unstableEntries.slice(from, hi - this.unstableOffset);
      result = result.length === 0 ? unstable : result.concat(unstable);
      return limitSize(result, maxBytes);
    }
    return result;
  }

  private truncateAndAppend(entries: readonly Entry[]): void {
    const first = entries[0]!.index;
    const end = this.unstableOffset + this.unstableEntries.length;
    if (first === end) {
      for (const entry of entries) this.unstableEntries.push(entry);
    } else if (first <= this.unstableOffset) {
      // Replaces the whole unstable part, and possibly a stored suffix from `first` on.
      this.unstableOffset = first;
      this.unstableEntries = entries.slice();
    } else {
      this.unstableEntries = this.unstableEntries.slice(0, first - this.unstableOffset);
      for (const entry of entries) this.unstableEntries.push(entry);
    }
  }
}
