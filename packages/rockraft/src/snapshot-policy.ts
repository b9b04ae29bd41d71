/**
 * When this node snapshots its state machine, and how much log it keeps behind a snapshot
 * (`raft.snapshot_logs_since_last`, `raft.snapshot_keep_logs`). raft-core never asks for a
 * snapshot: as etcd's raft does, it leaves the policy to the application.
 */
export class SnapshotPolicy {
  /**
   * A snapshot every `interval` applied entries (0 = never), keeping `keepEntries` entries
   * in the log behind it for followers slightly behind.
   */
  constructor(
    private readonly interval: number,
    readonly keepEntries: number,
  ) {}

  /** The policy of a config's `[raft]` table. */
  static of(raft: { snapshotLogsSinceLast: number; snapshotKeepLogs: number }): SnapshotPolicy {
    return new SnapshotPolicy(raft.snapshotLogsSinceLast, raft.snapshotKeepLogs);
  }

  /** Whether `interval` entries were applied since the snapshot at `snapshotIndex`; 0 = never. */
  due(applied: number, snapshotIndex: number): boolean {
    return this.interval > 0 && applied - snapshotIndex >= this.interval;
  }
}
