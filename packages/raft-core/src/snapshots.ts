// Snapshots (§7): one installed from the leader replaces the log and the membership; one the
// application took lets the log before it be compacted.
import { applyConf } from "./membership.js";
import type { Raft } from "./raft.js";
import type { MsgSnap } from "./types.js";

/** Replaces log and membership with a snapshot's (§7). */
export function restore(r: Raft, snapshot: MsgSnap["snapshot"]): void {
  r.log.restore(snapshot);
  r.configs.restore(snapshot.metadata.confState);
  applyConf(r, snapshot.metadata.confState);
}

/**
 * The application made a snapshot of its state through `index` durable and put it in the
 * storage view. The log before it is compacted, keeping `keepEntries` entries behind it
 * so that slightly lagging followers still catch up from the log. When to snapshot, and
 * how much to keep, is the application's policy.
 */
export function snapshotTaken(r: Raft, index: number, keepEntries: number): void {
  if (!Number.isSafeInteger(keepEntries) || keepEntries < 0) {
    throw new RangeError(
      `snapshotTaken(${index}, ${keepEntries}): keepEntries must be a non-negative integer`,
    );
  }
  const stored = r.log.storage.snapshot().metadata.index;
  if (stored !== index) {
    throw new RangeError(
      `snapshotTaken(${index}): the storage's snapshot is at index ${stored}; install the snapshot in the storage view first`,
    );
  }
  // The application may have applied entries this node handed out as committed before
  // `advance()` records them as applied: the bound is the commit index.
  if (index > r.log.committed) {
    throw new RangeError(`snapshotTaken(${index}): beyond the commit index ${r.log.committed}`);
  }
  const compactTo = index - keepEntries;
  if (compactTo >= r.log.storage.firstIndex() && compactTo > (r.pendingCompaction ?? 0)) {
    r.pendingCompaction = compactTo;
  }
}
