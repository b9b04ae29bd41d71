import { makeConfState } from "./conf-state.js";
import { RaftError } from "./errors.js";
import {
  EMPTY_CONF_STATE,
  EMPTY_HARD_STATE,
  entrySize,
  type ConfState,
  type Entry,
  type HardState,
  type InitialState,
  type Snapshot,
} from "./types.js";

/**
 * The synchronous view of durable state the core reads: the log since the
 * last snapshot, the hard state, and the snapshot. An implementation changes it only after
 * the corresponding write is durable, never ahead of it.
 */
export interface RaftStorage {
  /** The saved hard state and the membership of the latest snapshot. */
  initialState(): InitialState;
  /**
   * Entries in [lo, hi): at least one when lo < hi, then as many more as fit in `maxBytes`
   * (by `entrySize`). Throws `RAFT_LOG_COMPACTED` if lo < firstIndex, `RAFT_LOG_UNAVAILABLE`
   * if hi > lastIndex + 1.
   */
  entries(lo: number, hi: number, maxBytes?: number): Entry[];
  /** Term of the entry at `index`, for index in [firstIndex - 1, lastIndex] (firstIndex - 1 is the snapshot's). */
  term(index: number): number;
  /** Index of the first entry still in the log: the snapshot's index + 1. */
  firstIndex(): number;
  /** Index of the last entry, or the snapshot's index when the log is empty. */
  lastIndex(): number;
  /** The latest snapshot. */
  snapshot(): Snapshot;
}

/** The snapshot of a node that has none: index 0, term 0, no members. */
export const EMPTY_SNAPSHOT: Snapshot = Object.freeze({
  metadata: Object.freeze({ index: 0, term: 0, confState: EMPTY_CONF_STATE }),
  data: new Uint8Array(0),
});

/** The longest prefix of `entries` within `maxBytes`, never fewer than one entry. */
export function limitSize(entries: Entry[], maxBytes: number | undefined): Entry[] {
  if (maxBytes === undefined || entries.length <= 1) return entries;
  let size = entrySize(entries[0]!);
  let count = 1;
  for (; count < entries.length; count++) {
    size += entrySize(entries[count]!);
    if (size > maxBytes) break;
  }
  return count === entries.length ? entries : entries.slice(0, count);
}

/**
 * Storage held in memory: the reference implementation, the simulator's disk, and the
 * in-memory view durable implementations keep in front of their files.
 */
export class MemoryStorage implements RaftStorage {
  private hardStateValue: HardState = EMPTY_HARD_STATE;
  private snapshotValue: Snapshot = EMPTY_SNAPSHOT;
  // Invariant: log[0] is a dummy entry at the snapshot's (index, term); real entries follow
  // at consecutive indexes.
  private log: Entry[] = [{ index: 0, term: 0, type: "normal", data: new Uint8Array(0) }];

  initialState(): InitialState {
    return { hardState: this.hardStateValue, confState: this.snapshotValue.metadata.confState };
  }

  /** The stored hard state. */
  hardState(): HardState {
    return this.hardStateValue;
  }

  /** Replaces the stored hard state. */
  setHardState(hardState: HardState): void {
    this.hardStateValue = hardState;
  }

  entries(lo: number, hi: number, maxBytes?: number): Entry[] {
    const offset = this.log[0]!.index;
    if (lo <= offset) {
      throw new RaftError("RAFT_LOG_COMPACTED", `entries(${lo}, ${hi}): compacted up to ${offset}`);
    }
    if (hi > this.lastIndex() + 1) {
      throw new RaftError(
        "RAFT_LOG_UNAVAILABLE",
        `entries(${lo}, ${hi}): the log ends at ${this.lastIndex()}`,
      );
    }
    if (lo >= hi) return [];
    return limitSize(this.log.slice(lo - offset, hi - offset), maxBytes);
  }

  term(index: number): number {
    const offset = this.log[0]!.index;
    if (index < offset) {
      throw new RaftError("RAFT_LOG_COMPACTED", `term(${index}): compacted up to ${offset}`);
    }
    const entry = this.log[index - offset];
    if (entry === undefined) {
      throw new RaftError(
        "RAFT_LOG_UNAVAILABLE",
        `term(${index}): the log ends at ${this.lastIndex()}`,
      );
    }
    return entry.term;
  }

  firstIndex(): number {
    return this.log[0]!.index + 1;
  }

  lastIndex(): number {
    return this.log[0]!.index + this.log.length - 1;
  }

  snapshot(): Snapshot {
    return this.snapshotValue;
  }

  /**
   * Appends entries, replacing any stored entry at the same or a later index. Entries
   * already covered by the snapshot are ignored. The first must not leave a gap.
   */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const last = entries[entries.length - 1]!.index;
    if (last < first) return;
    const fresh = entries[0]!.index < first ? entries.slice(first - entries[0]!.index) : entries;
    const start = fresh[0]!.index;
    if (start > this.lastIndex() + 1) {
      throw new RaftError(
        "RAFT_LOG_UNAVAILABLE",
        `append: entry ${start} would leave a gap after ${this.lastIndex()}`,
      );
    }
    const offset = this.log[0]!.index;
    this.log.length = start - offset;
    for (const entry of fresh) this.log.push(entry);
  }

  /** Replaces all state with a snapshot received from the leader; the log restarts after it. */
  applySnapshot(snapshot: Snapshot): void {
    const { index, term } = snapshot.metadata;
    if (index < this.snapshotValue.metadata.index) {
      throw new RaftError(
        "RAFT_LOG_COMPACTED",
        `applySnapshot: snapshot ${index} is older than the current one (${this.snapshotValue.metadata.index})`,
      );
    }
    this.snapshotValue = snapshot;
    this.log = [{ index, term, type: "normal", data: new Uint8Array(0) }];
  }

  /** Records a snapshot of applied state up to `index` (which must be in the log). */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    if (index <= this.snapshotValue.metadata.index) {
      throw new RaftError(
        "RAFT_LOG_COMPACTED",
        `createSnapshot(${index}): a snapshot at ${this.snapshotValue.metadata.index} exists`,
      );
    }
    if (index > this.lastIndex()) {
      throw new RaftError(
        "RAFT_LOG_UNAVAILABLE",
        `createSnapshot(${index}): the log ends at ${this.lastIndex()}`,
      );
    }
    this.snapshotValue = {
      metadata: {
        index,
        term: this.term(index),
        confState: makeConfState(confState.voters, confState.learners, confState.votersOutgoing),
      },
      data,
    };
    return this.snapshotValue;
  }

  /**
   * Records `snapshot` as the latest snapshot without touching the log, for storage that
   * loads a snapshot and a log which may still hold entries the snapshot covers.
   */
  setSnapshot(snapshot: Snapshot): void {
    this.snapshotValue = snapshot;
  }

  /**
   * Restarts the log empty after (index, term): the position of the last compacted entry.
   * For loading durable state; entries are appended after it.
   */
  resetLog(index: number, term: number): void {
    this.log = [{ index, term, type: "normal", data: new Uint8Array(0) }];
  }

  /** Discards entries before `compactIndex`; the entry at it becomes the dummy. */
  compact(compactIndex: number): void {
    const offset = this.log[0]!.index;
    if (compactIndex <= offset) return;
    if (compactIndex > this.lastIndex()) {
      throw new RaftError(
        "RAFT_LOG_UNAVAILABLE",
        `compact(${compactIndex}): the log ends at ${this.lastIndex()}`,
      );
    }
    const dummy = this.log[compactIndex - offset]!;
    this.log = [
      { index: dummy.index, term: dummy.term, type: "normal", data: new Uint8Array(0) },
      ...this.log.slice(compactIndex - offset + 1),
    ];
  }
}
